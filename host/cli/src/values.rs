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

/// Reads an image file as `keel fit` and `keel gan train` take it: IDX images with their
/// `labels` file, a CIFAR-10 batch (`*.bin`), or a CSV table with `image_shape` (`CxHxW`) and its
/// label column `target`.
///
/// # Errors
/// A missing `--image-shape` or `--target` for a CSV, named as the flag; the readers' errors.
pub fn read_images(
    data: &std::path::Path,
    labels: Option<&std::path::Path>,
    image_shape: Option<&str>,
    target: Option<&str>,
    classify: bool,
) -> keel::error::Result<keel::images::ImageSet> {
    use keel::error::Error;
    use keel::images::{cifar::read_cifar, csv::read_csv_images, idx::read_idx, ImageShape};
    if let Some(labels) = labels {
        return read_idx(data, labels);
    }
    if data.extension().is_some_and(|e| e == "bin") {
        return read_cifar(&[data.to_path_buf()]);
    }
    let Some(shape) = image_shape else {
        return Err(Error::invalid(
            "--image-shape",
            "(not given)",
            format!(
                "{} is read as a CSV table; give its images' CxHxW (IDX images need --labels, CIFAR batches end in .bin)",
                data.display()
            ),
        ));
    };
    let shape = ImageShape::parse(shape)
        .map_err(|e| Error::invalid("--image-shape", shape, e.to_string()))?;
    let Some(target) = target else {
        return Err(Error::invalid(
            "--target",
            "(not given)",
            "a CSV of images needs its label column",
        ));
    };
    read_csv_images(data, target, classify, shape)
}
