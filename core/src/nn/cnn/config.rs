//! The `keel.config` of a CNN file, parsed without a heap.

use crate::io::json::{Number, Parser, Source};
use crate::io::JsonStr;
use crate::nn::{Activation, Output};
use crate::{Error, Result};

/// A 2-D convolution, PyTorch's `Conv2d` (cross-correlation, NCHW, zero padding), followed by an
/// activation. Batch normalisation is folded into its weight and bias by the exporter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2d {
    /// Output channels `O` (a multiple of `groups`).
    pub out_channels: usize,
    /// Kernel `[kh, kw]`.
    pub kernel: [usize; 2],
    /// Stride `[sh, sw]` (≥ 1).
    pub stride: [usize; 2],
    /// Zero padding on each side `[ph, pw]`.
    pub padding: [usize; 2],
    /// Dilation `[dh, dw]` (≥ 1).
    pub dilation: [usize; 2],
    /// Groups `g`: input and output channels split into `g` independent blocks.
    pub groups: usize,
    /// The activation applied to the convolution's output.
    pub activation: Activation,
}

/// A pooling window (PyTorch's `MaxPool2d`/`AvgPool2d` with `ceil_mode = False`; average
/// pooling counts the padding, `count_include_pad = True`, dilation 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2d {
    /// Window `[kh, kw]`.
    pub kernel: [usize; 2],
    /// Stride `[sh, sw]` (≥ 1; PyTorch's default is the kernel).
    pub stride: [usize; 2],
    /// Padding on each side `[ph, pw]`, at most half the window (as PyTorch requires).
    pub padding: [usize; 2],
}

/// One layer of a CNN, in the order the configuration lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CnnLayer {
    /// `"conv"`: weight `[O, C/g, kh, kw]`, bias `[O]`.
    Conv(Conv2d),
    /// `"maxpool"`: the largest value of each window (padding never wins).
    MaxPool(Pool2d),
    /// `"avgpool"`: each window's sum over `kh·kw`, padded zeros included.
    AvgPool(Pool2d),
    /// `"global_mean"`: `[C, H, W] → [C, 1, 1]`, each channel's mean.
    GlobalMean,
    /// `"flatten"`: `[C, H, W] → [C·H·W, 1, 1]` in channel-major order (no data moves).
    Flatten,
    /// `"dense"`: weight `[out, in]`, bias `[out]`, on a flat input `[in, 1, 1]`.
    Dense {
        /// Output width.
        outputs: usize,
        /// The activation applied to the layer's output.
        activation: Activation,
    },
}

impl CnnLayer {
    /// The configuration's `type`.
    pub const fn name(&self) -> &'static str {
        match self {
            CnnLayer::Conv(_) => "conv",
            CnnLayer::MaxPool(_) => "maxpool",
            CnnLayer::AvgPool(_) => "avgpool",
            CnnLayer::GlobalMean => "global_mean",
            CnnLayer::Flatten => "flatten",
            CnnLayer::Dense { .. } => "dense",
        }
    }

    /// Whether the layer has `layer{i}.weight` and `layer{i}.bias` tensors.
    pub const fn has_weights(&self) -> bool {
        matches!(self, CnnLayer::Conv(_) | CnnLayer::Dense { .. })
    }
}

/// A CNN's configuration, the JSON object the host stores (serialised into a string) under the
/// `keel.config` metadata key:
///
/// ```json
/// {"input":[1,8,8],"input_normalization":true,"output":"logits",
///  "layers":[
///   {"type":"conv","out":8,"kernel":[3,3],"stride":[1,1],"padding":[1,1],"dilation":[1,1],
///    "groups":1,"activation":"relu"},
///   {"type":"maxpool","kernel":[2,2],"stride":[2,2],"padding":[0,0]},
///   {"type":"conv","out":16,"kernel":[3,3],"stride":[1,1],"padding":[1,1],"dilation":[1,1],
///    "groups":1,"activation":"relu"},
///   {"type":"global_mean"},
///   {"type":"dense","out":10,"activation":"identity"}],
///  "augerino":{"copies":4}}
/// ```
///
/// `input` (`[C, H, W]`, each ≥ 1), `input_normalization`, `output` (`"logits"` or
/// `"regression"`) and `layers` (at least one, at most `L`) are required; `augerino` is optional
/// (`null` or absent for a plain CNN; `copies` ≥ 1 is the default number of transforms `J`).
/// The floats live in tensors, not here: `input.mean`/`input.std` (`[1]` each) when
/// `input_normalization` is on, `augerino.widths` (`[6]`) with `augerino`.
///
/// A layer is an object with a `type` and that type's keys. Every pair (`kernel`, `stride`,
/// `padding`, `dilation`) is `[h, w]` or one integer for both. Defaults, as PyTorch's: `conv`
/// `stride` 1, `padding` 0, `dilation` 1, `groups` 1 (`out`, `kernel`, `activation` required);
/// pools `stride` = `kernel`, `padding` 0 (`kernel` required); `dense` needs `out` and
/// `activation`. A key of another layer type (`dilation` on a pool, `out` on `flatten`) is an
/// error rather than silently ignored; unknown keys are ignored (room for the host to record
/// more), at the top level and in a layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CnnConfig<const L: usize> {
    input: [usize; 3],
    layers: [CnnLayer; L],
    depth: usize,
    output: Output,
    input_normalization: bool,
    augerino_copies: Option<usize>,
}

fn invalid(what: &'static str) -> Error {
    Error::InvalidConfig { what }
}

fn layer_error(layer: usize, what: &'static str) -> Error {
    Error::InvalidLayer { layer, what }
}

/// An unsigned integer that fits `usize`, or `err`.
fn uint<S: Source>(p: &mut Parser<S>, err: Error) -> Result<usize> {
    if !matches!(p.peek_token(), Some(b'0'..=b'9')) {
        return Err(err);
    }
    match p.number()? {
        Number::Unsigned(v) => usize::try_from(v).map_err(|_| err),
        Number::Other => Err(err),
    }
}

/// `[h, w]` or one integer for both.
fn pair<S: Source>(p: &mut Parser<S>, err: Error) -> Result<[usize; 2]> {
    if p.peek_token() != Some(b'[') {
        let v = uint(p, err)?;
        return Ok([v, v]);
    }
    p.begin_array()?;
    let mut out = [0usize; 2];
    let mut n = 0usize;
    let mut first = true;
    while p.next_element(&mut first)? {
        let v = uint(p, err)?;
        *out.get_mut(n).ok_or(err)? = v;
        n += 1;
    }
    if n == 2 {
        Ok(out)
    } else {
        Err(err)
    }
}

/// A string value of at most 16 bytes mapped through `from_name`, or `err`.
fn named<S: Source, V>(
    p: &mut Parser<S>,
    from_name: impl Fn(&str) -> Option<V>,
    err: Error,
) -> Result<V> {
    if p.peek_token() != Some(b'"') {
        return Err(err);
    }
    let mut buf = [0u8; 16];
    let name = p.small_string(&mut buf)?;
    name.and_then(from_name).ok_or(err)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Conv,
    MaxPool,
    AvgPool,
    GlobalMean,
    Flatten,
    Dense,
}

impl Kind {
    fn from_name(name: &str) -> Option<Kind> {
        Some(match name {
            "conv" => Kind::Conv,
            "maxpool" => Kind::MaxPool,
            "avgpool" => Kind::AvgPool,
            "global_mean" => Kind::GlobalMean,
            "flatten" => Kind::Flatten,
            "dense" => Kind::Dense,
            _ => return None,
        })
    }
}

/// The keys a layer object gave.
#[derive(Default)]
struct LayerKeys {
    kind: Option<Kind>,
    out: Option<usize>,
    kernel: Option<[usize; 2]>,
    stride: Option<[usize; 2]>,
    padding: Option<[usize; 2]>,
    dilation: Option<[usize; 2]>,
    groups: Option<usize>,
    activation: Option<Activation>,
}

/// Fills an empty `slot`, or `duplicate`.
fn set<V>(slot: &mut Option<V>, v: V, duplicate: Error) -> Result<()> {
    if slot.is_some() {
        return Err(duplicate);
    }
    *slot = Some(v);
    Ok(())
}

/// Reads one layer object (the parser at its `{`).
fn parse_layer<S: Source>(p: &mut Parser<S>, i: usize) -> Result<CnnLayer> {
    if p.peek_token() != Some(b'{') {
        return Err(layer_error(i, "a layer must be a JSON object"));
    }
    p.begin_object()?;
    let mut k = LayerKeys::default();
    let mut first = true;
    while p.next_member(&mut first)? {
        let key_at = p.offset();
        let mut buf = [0u8; 16];
        let key = p.small_string(&mut buf)?;
        p.colon()?;
        let duplicate = Error::DuplicateKey { offset: key_at };
        match key {
            Some("type") => {
                let err = layer_error(
                    i,
                    "`type` must be `conv`, `maxpool`, `avgpool`, `global_mean`, `flatten` or \
                     `dense`",
                );
                set(&mut k.kind, named(p, Kind::from_name, err)?, duplicate)?;
            }
            Some("out") => {
                let v = uint(p, layer_error(i, "`out` must be a positive integer"))?;
                set(&mut k.out, v, duplicate)?;
            }
            Some("kernel") => {
                let v = pair(p, layer_error(i, "`kernel` must be [h, w] or an integer"))?;
                set(&mut k.kernel, v, duplicate)?;
            }
            Some("stride") => {
                let v = pair(p, layer_error(i, "`stride` must be [h, w] or an integer"))?;
                set(&mut k.stride, v, duplicate)?;
            }
            Some("padding") => {
                let v = pair(p, layer_error(i, "`padding` must be [h, w] or an integer"))?;
                set(&mut k.padding, v, duplicate)?;
            }
            Some("dilation") => {
                let v = pair(p, layer_error(i, "`dilation` must be [h, w] or an integer"))?;
                set(&mut k.dilation, v, duplicate)?;
            }
            Some("groups") => {
                let v = uint(p, layer_error(i, "`groups` must be a positive integer"))?;
                set(&mut k.groups, v, duplicate)?;
            }
            Some("activation") => {
                let err = layer_error(i, "unknown `activation`");
                set(
                    &mut k.activation,
                    named(p, Activation::from_name, err)?,
                    duplicate,
                )?;
            }
            _ => p.skip_value()?,
        }
    }
    build_layer(&k, i)
}

/// The layer the keys describe, every value checked.
fn build_layer(k: &LayerKeys, i: usize) -> Result<CnnLayer> {
    let kind = k.kind.ok_or(layer_error(i, "a layer needs a `type`"))?;
    let positive = |v: [usize; 2], what| {
        if v[0] >= 1 && v[1] >= 1 {
            Ok(v)
        } else {
            Err(layer_error(i, what))
        }
    };
    let foreign = |present: bool| {
        if present {
            Err(layer_error(i, "a key of another layer type"))
        } else {
            Ok(())
        }
    };
    match kind {
        Kind::Conv => {
            let out = k.out.ok_or(layer_error(i, "`conv` needs `out`"))?;
            let groups = k.groups.unwrap_or(1);
            if out == 0 {
                return Err(layer_error(i, "`out` must be a positive integer"));
            }
            if groups == 0 {
                return Err(layer_error(i, "`groups` must be a positive integer"));
            }
            if out % groups != 0 {
                return Err(layer_error(i, "`out` is not a multiple of `groups`"));
            }
            let kernel = k.kernel.ok_or(layer_error(i, "`conv` needs `kernel`"))?;
            Ok(CnnLayer::Conv(Conv2d {
                out_channels: out,
                kernel: positive(kernel, "`kernel` must be positive")?,
                stride: positive(k.stride.unwrap_or([1, 1]), "`stride` must be positive")?,
                padding: k.padding.unwrap_or([0, 0]),
                dilation: positive(k.dilation.unwrap_or([1, 1]), "`dilation` must be positive")?,
                groups,
                activation: k
                    .activation
                    .ok_or(layer_error(i, "`conv` needs `activation`"))?,
            }))
        }
        Kind::MaxPool | Kind::AvgPool => {
            foreign(
                k.out.is_some()
                    || k.dilation.is_some()
                    || k.groups.is_some()
                    || k.activation.is_some(),
            )?;
            let kernel = positive(
                k.kernel.ok_or(layer_error(i, "a pool needs `kernel`"))?,
                "`kernel` must be positive",
            )?;
            let padding = k.padding.unwrap_or([0, 0]);
            if padding[0] > kernel[0] / 2 || padding[1] > kernel[1] / 2 {
                return Err(layer_error(
                    i,
                    "pool padding must be at most half the kernel",
                ));
            }
            let pool = Pool2d {
                kernel,
                stride: positive(k.stride.unwrap_or(kernel), "`stride` must be positive")?,
                padding,
            };
            Ok(if kind == Kind::MaxPool {
                CnnLayer::MaxPool(pool)
            } else {
                CnnLayer::AvgPool(pool)
            })
        }
        Kind::GlobalMean | Kind::Flatten => {
            foreign(
                k.out.is_some()
                    || k.kernel.is_some()
                    || k.stride.is_some()
                    || k.padding.is_some()
                    || k.dilation.is_some()
                    || k.groups.is_some()
                    || k.activation.is_some(),
            )?;
            Ok(if kind == Kind::GlobalMean {
                CnnLayer::GlobalMean
            } else {
                CnnLayer::Flatten
            })
        }
        Kind::Dense => {
            foreign(
                k.kernel.is_some()
                    || k.stride.is_some()
                    || k.padding.is_some()
                    || k.dilation.is_some()
                    || k.groups.is_some(),
            )?;
            let outputs = k.out.ok_or(layer_error(i, "`dense` needs `out`"))?;
            if outputs == 0 {
                return Err(layer_error(i, "`out` must be a positive integer"));
            }
            Ok(CnnLayer::Dense {
                outputs,
                activation: k
                    .activation
                    .ok_or(layer_error(i, "`dense` needs `activation`"))?,
            })
        }
    }
}

impl<const L: usize> CnnConfig<L> {
    /// Parses a configuration from the (escaped) metadata string that holds it.
    ///
    /// # Errors
    /// [`Error::InvalidJson`] (offsets count unescaped bytes of the configuration),
    /// [`Error::DuplicateKey`], [`Error::CapacityExceeded`] for more than `L` layers,
    /// [`Error::InvalidLayer`] for a layer without a known `type`, with a missing, zero or
    /// mistyped value, a key of another layer type, `out` not a multiple of `groups`, or pool
    /// padding over half the window, and [`Error::InvalidConfig`] for a missing top-level key,
    /// a value of the wrong type, an `input` that is not three positive integers, no layers, or
    /// an output other than `logits`/`regression`. Whether the layers fit the input is checked
    /// when the model is built ([`Cnn::from_safetensors`](crate::nn::Cnn::from_safetensors)).
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
        let mut input = None;
        let mut layers = [CnnLayer::Flatten; L];
        let mut depth = None;
        let mut output = None;
        let mut normalization = None;
        let mut augerino = None;
        let mut first = true;
        while p.next_member(&mut first)? {
            let key_at = p.offset();
            let mut buf = [0u8; 32];
            let key = p.small_string(&mut buf)?;
            p.colon()?;
            let duplicate = Error::DuplicateKey { offset: key_at };
            match key {
                Some("input") => {
                    if input.is_some() {
                        return Err(duplicate);
                    }
                    const RULE: &str = "`input` must be [C, H, W], three positive integers";
                    if p.peek_token() != Some(b'[') {
                        return Err(invalid(RULE));
                    }
                    p.begin_array()?;
                    let mut shape = [0usize; 3];
                    let mut n = 0usize;
                    let mut first = true;
                    while p.next_element(&mut first)? {
                        let v = uint(&mut p, invalid(RULE))?;
                        *shape.get_mut(n).ok_or(invalid(RULE))? = v;
                        n += 1;
                    }
                    if n != 3 || shape.contains(&0) {
                        return Err(invalid(RULE));
                    }
                    input = Some(shape);
                }
                Some("layers") => {
                    if depth.is_some() {
                        return Err(duplicate);
                    }
                    if p.peek_token() != Some(b'[') {
                        return Err(invalid("`layers` must be an array of layer objects"));
                    }
                    p.begin_array()?;
                    let mut n = 0usize;
                    let mut first = true;
                    while p.next_element(&mut first)? {
                        let layer = parse_layer(&mut p, n)?;
                        *layers.get_mut(n).ok_or(Error::CapacityExceeded {
                            what: "layers",
                            capacity: L,
                        })? = layer;
                        n += 1;
                    }
                    if n == 0 {
                        return Err(invalid("`layers` is empty"));
                    }
                    depth = Some(n);
                }
                Some("output") => {
                    if output.is_some() {
                        return Err(duplicate);
                    }
                    let rule = invalid("a CNN's `output` must be `logits` or `regression`");
                    let o = named(&mut p, Output::from_name, rule)?;
                    if o == Output::Gaussian {
                        return Err(rule);
                    }
                    output = Some(o);
                }
                Some("input_normalization") => {
                    if normalization.is_some() {
                        return Err(duplicate);
                    }
                    normalization = Some(
                        p.boolean()?
                            .ok_or(invalid("`input_normalization` must be a boolean"))?,
                    );
                }
                Some("augerino") => {
                    if augerino.is_some() {
                        return Err(duplicate);
                    }
                    augerino = Some(Self::parse_augerino(&mut p)?);
                }
                _ => p.skip_value()?,
            }
        }
        Ok(CnnConfig {
            input: input.ok_or(invalid("`keel.config` lacks `input`"))?,
            layers,
            depth: depth.ok_or(invalid("`keel.config` lacks `layers`"))?,
            output: output.ok_or(invalid("`keel.config` lacks `output`"))?,
            input_normalization: normalization
                .ok_or(invalid("`keel.config` lacks `input_normalization`"))?,
            augerino_copies: augerino.flatten(),
        })
    }

    /// `null` (no Augerino) or `{"copies": J}` with `J ≥ 1`.
    fn parse_augerino<S: Source>(p: &mut Parser<S>) -> Result<Option<usize>> {
        const RULE: &str = "`augerino` must be null or {\"copies\": J} with J ≥ 1";
        if p.null()? {
            return Ok(None);
        }
        if p.peek_token() != Some(b'{') {
            return Err(invalid(RULE));
        }
        p.begin_object()?;
        let mut copies = None;
        let mut first = true;
        while p.next_member(&mut first)? {
            let key_at = p.offset();
            let mut buf = [0u8; 16];
            let key = p.small_string(&mut buf)?;
            p.colon()?;
            match key {
                Some("copies") => {
                    if copies.is_some() {
                        return Err(Error::DuplicateKey { offset: key_at });
                    }
                    copies = Some(uint(p, invalid(RULE))?);
                }
                _ => p.skip_value()?,
            }
        }
        match copies {
            Some(j) if j >= 1 => Ok(Some(j)),
            _ => Err(invalid(RULE)),
        }
    }

    /// The input shape `[C, H, W]`.
    pub fn input(&self) -> [usize; 3] {
        self.input
    }

    /// The layers, first to last.
    pub fn layers(&self) -> &[CnnLayer] {
        self.layers.get(..self.depth).unwrap_or(&[])
    }

    /// What the outputs mean ([`Output::Logits`] or [`Output::Regression`]).
    pub fn output(&self) -> Output {
        self.output
    }

    /// Whether every pixel is normalised as `(x − input.mean) / input.std` first.
    pub fn input_normalization(&self) -> bool {
        self.input_normalization
    }

    /// Augerino's default number of transforms `J`, if the file holds an Augerino model.
    pub fn augerino_copies(&self) -> Option<usize> {
        self.augerino_copies
    }
}
