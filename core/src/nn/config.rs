//! The `keel.config` of an MLP file, parsed without a heap.

use super::activation::Activation;
use crate::io::json::{Number, Parser, Source};
use crate::io::JsonStr;
use crate::{Error, Result};

/// What the last layer's outputs mean.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Output {
    /// Classification: raw logits (`"logits"`).
    Logits,
    /// Plain regression outputs (`"regression"`).
    Regression,
    /// A diagonal Gaussian (`"gaussian"`): the last layer has `2k` units, `k` means then `k`
    /// raw scales; `σ = softplus(raw) + 1e-6`.
    Gaussian,
}

impl Output {
    /// The configuration name.
    pub const fn name(self) -> &'static str {
        match self {
            Output::Logits => "logits",
            Output::Regression => "regression",
            Output::Gaussian => "gaussian",
        }
    }

    /// The output kind a configuration name denotes.
    pub fn from_name(name: &str) -> Option<Output> {
        [Output::Logits, Output::Regression, Output::Gaussian]
            .into_iter()
            .find(|o| o.name() == name)
    }
}

/// An MLP's configuration, the JSON object the host stores (serialised into a string) under
/// the `keel.config` metadata key:
///
/// ```json
/// {"sizes":[64,128,128,10],"activation":"relu","output":"logits",
///  "input_standardization":true,"target_standardization":false}
/// ```
///
/// All five keys are required; other keys are ignored (room for the host to record more).
/// `L` is the capacity in layers (`sizes.len() − 1 ≤ L`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MlpConfig<const L: usize> {
    inputs: usize,
    outputs: [usize; L],
    layers: usize,
    activation: Activation,
    output: Output,
    input_standardization: bool,
    target_standardization: bool,
}

fn invalid(what: &'static str) -> Error {
    Error::InvalidConfig { what }
}

impl<const L: usize> MlpConfig<L> {
    /// Parses a configuration from the (escaped) metadata string that holds it.
    ///
    /// # Errors
    /// [`Error::InvalidJson`] (offsets count unescaped bytes of the configuration),
    /// [`Error::DuplicateKey`], [`Error::CapacityExceeded`] for more than `L` layers, and
    /// [`Error::InvalidConfig`] for a missing key, a value of the wrong type, an unknown
    /// activation or output, fewer than two sizes, a zero size, an odd last size for a
    /// Gaussian output, or target standardisation on logits.
    pub fn parse(config: JsonStr<'_>) -> Result<Self> {
        let mut p = Parser::new(config.bytes());
        p.skip_value()?;
        p.end()?;
        Self::parse_object(Parser::new(config.bytes()))
    }

    fn parse_object<S: Source>(mut p: Parser<S>) -> Result<Self> {
        if p.peek_token() != Some(b'{') {
            return Err(invalid("`keel.config` must be a JSON object"));
        }
        p.begin_object()?;
        let mut inputs = None;
        let mut outputs = [0usize; L];
        let mut layers = 0usize;
        let mut activation = None;
        let mut output = None;
        let mut input_std = None;
        let mut target_std = None;
        let mut first = true;
        while p.next_member(&mut first)? {
            let key_at = p.offset();
            let mut buf = [0u8; 32];
            let key = p.small_string(&mut buf)?;
            p.colon()?;
            let duplicate = Error::DuplicateKey { offset: key_at };
            match key {
                Some("sizes") => {
                    if inputs.is_some() {
                        return Err(duplicate);
                    }
                    const RULE: &str = "`sizes` must be an array of positive integers";
                    if p.peek_token() != Some(b'[') {
                        return Err(invalid(RULE));
                    }
                    p.begin_array()?;
                    let mut n = 0usize;
                    let mut first = true;
                    while p.next_element(&mut first)? {
                        if !matches!(p.peek_token(), Some(b'0'..=b'9')) {
                            return Err(invalid(RULE));
                        }
                        let size = match p.number()? {
                            Number::Unsigned(v) if v >= 1 => {
                                usize::try_from(v).map_err(|_| invalid(RULE))?
                            }
                            _ => return Err(invalid(RULE)),
                        };
                        if n == 0 {
                            inputs = Some(size);
                        } else {
                            *outputs.get_mut(n - 1).ok_or(Error::CapacityExceeded {
                                what: "layers",
                                capacity: L,
                            })? = size;
                        }
                        n += 1;
                    }
                    if n < 2 {
                        return Err(invalid("`sizes` needs at least two entries"));
                    }
                    layers = n - 1;
                }
                Some("activation") => {
                    if activation.is_some() {
                        return Err(duplicate);
                    }
                    if p.peek_token() != Some(b'"') {
                        return Err(invalid("`activation` must be a string"));
                    }
                    let mut buf = [0u8; 16];
                    let name = p.small_string(&mut buf)?;
                    activation = Some(
                        name.and_then(Activation::from_name)
                            .ok_or(invalid("unknown `activation`"))?,
                    );
                }
                Some("output") => {
                    if output.is_some() {
                        return Err(duplicate);
                    }
                    if p.peek_token() != Some(b'"') {
                        return Err(invalid("`output` must be a string"));
                    }
                    let mut buf = [0u8; 16];
                    let name = p.small_string(&mut buf)?;
                    output = Some(
                        name.and_then(Output::from_name)
                            .ok_or(invalid("unknown `output`"))?,
                    );
                }
                Some("input_standardization") => {
                    if input_std.is_some() {
                        return Err(duplicate);
                    }
                    input_std = Some(
                        p.boolean()?
                            .ok_or(invalid("`input_standardization` must be a boolean"))?,
                    );
                }
                Some("target_standardization") => {
                    if target_std.is_some() {
                        return Err(duplicate);
                    }
                    target_std = Some(
                        p.boolean()?
                            .ok_or(invalid("`target_standardization` must be a boolean"))?,
                    );
                }
                _ => p.skip_value()?,
            }
        }
        let config = MlpConfig {
            inputs: inputs.ok_or(invalid("`keel.config` lacks `sizes`"))?,
            outputs,
            layers,
            activation: activation.ok_or(invalid("`keel.config` lacks `activation`"))?,
            output: output.ok_or(invalid("`keel.config` lacks `output`"))?,
            input_standardization: input_std
                .ok_or(invalid("`keel.config` lacks `input_standardization`"))?,
            target_standardization: target_std
                .ok_or(invalid("`keel.config` lacks `target_standardization`"))?,
        };
        let last = config.layer_outputs().last().copied().unwrap_or(0);
        if config.output == Output::Gaussian && last % 2 != 0 {
            return Err(invalid("a `gaussian` output needs an even last size"));
        }
        if config.output == Output::Logits && config.target_standardization {
            return Err(invalid("target standardisation does not apply to `logits`"));
        }
        Ok(config)
    }

    /// Width of the network's input (`sizes[0]`).
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// Output width of each layer (`sizes[1..]`).
    pub fn layer_outputs(&self) -> &[usize] {
        self.outputs.get(..self.layers).unwrap_or(&[])
    }

    /// The hidden activation.
    pub fn activation(&self) -> Activation {
        self.activation
    }

    /// What the outputs mean.
    pub fn output(&self) -> Output {
        self.output
    }

    /// Whether the network sees `(x − input.mean) / input.std`.
    pub fn input_standardization(&self) -> bool {
        self.input_standardization
    }

    /// Whether outputs are un-standardised with `target.mean`/`target.std`.
    pub fn target_standardization(&self) -> bool {
        self.target_standardization
    }
}
