//! Value types that several commands' flags share.

use clap::ValueEnum;

/// `--dtype`: the scalar type of a run.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DtypeArg {
    F32,
    F64,
}

impl From<DtypeArg> for keel::DType {
    fn from(d: DtypeArg) -> Self {
        match d {
            DtypeArg::F32 => keel::DType::F32,
            DtypeArg::F64 => keel::DType::F64,
        }
    }
}

/// The parser of a count that must be at least 1 (epochs, batch sizes, chains, steps, widths):
/// every command refuses 0 with the same words.
pub fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("not a whole number ({e})")),
    }
}

/// The name a value of a closed set is typed as on the command line (`matern52`, `both`).
pub fn name<T: ValueEnum>(v: &T) -> String {
    v.to_possible_value()
        .map(|p| p.get_name().to_string())
        .unwrap_or_default()
}

/// `Display` for closed sets of values, as they are typed (so they print in messages and JSON
/// the way the user wrote them).
macro_rules! display_as_typed {
    ($($t:ty),* $(,)?) => {
        $(impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&$crate::values::name(self))
            }
        })*
    };
}
pub(crate) use display_as_typed;

/// Parses `--layers` and checks that the network fits images of `input` (channels, height,
/// width) with `outputs` outputs, before any data is generated or read for training: errors
/// name the flag.
pub fn cnn_layers(
    layers: &str,
    input: [usize; 3],
    outputs: usize,
) -> keel::error::Result<Vec<keel::nn::cnn::LayerSpec>> {
    let why = |e: keel_engine::Error| match e {
        keel_engine::Error::InvalidArgument { reason, .. } => reason,
        e => e.to_string(),
    };
    let spec = keel::nn::cnn::parse_spec(layers)
        .map_err(|e| keel::error::Error::invalid("--layers", layers, why(e)))?;
    let mut rng = keel_core::random::Xoshiro256PlusPlus::seed_from_u64(0);
    keel::nn::cnn::Cnn::new(
        &mut keel::params::Params::new(),
        "",
        input,
        &spec,
        outputs.max(1),
        keel::DType::F32,
        &mut rng,
    )
    .map_err(|e| keel::error::Error::invalid("--layers", layers, why(e)))?;
    Ok(spec)
}
