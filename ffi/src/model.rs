//! `keel_model`: a model exported by the host (`keel fit`, `keel emlp train`, `keel bayes
//! export`, `keel rl train --export/--export-value`) loaded in place from a byte buffer, usually
//! in flash, and evaluated with caller scratch.

use keel_core::io::SafeTensors;
use keel_core::nn::{Bma, Emlp, Mlp};
use keel_core::rl::{Policy, ValueModel};

use crate::boundary::{self, guard, input, no_nan, out, output, span, Handle};
use crate::status::KeelStatus;

/// Tensors a model file may hold (the value model's whole agent has 46).
pub(crate) const MAX_TENSORS: usize = 64;
/// Layers of an MLP, and of each network inside a policy, value model or BMA.
pub(crate) const LAYERS: usize = 8;
/// Blocks of an EMLP.
const EMLP_BLOCKS: usize = 4;
/// Bilinear parts per EMLP block.
const EMLP_PARTS: usize = 8;

/// What a model file holds, from its `keel.kind` metadata.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeelKind {
    /// `mlp`: a dense network (`keel fit`); evaluation gives its outputs (logits, regression
    /// values, or Gaussian means and deviations).
    Mlp = 1,
    /// `emlp`: an equivariant MLP (`keel emlp train`); evaluation gives its outputs.
    Emlp = 2,
    /// `bma`: a Bayesian model average of posterior samples (`keel bayes export`); evaluation
    /// gives the averaged class probabilities.
    Bma = 3,
    /// `policy`: a SAC actor (`keel rl train --export`); evaluation gives the deterministic
    /// action `tanh μ(obs)` in `[−1, 1]`.
    Policy = 4,
    /// `rl-value`: a SAC-SVG(H) agent's model-based value estimate (`keel rl train
    /// --export-value`); evaluation gives one number, `V̂_H(obs)`.
    Value = 5,
    /// `chnn`: a learned Hamiltonian system; load it with `keel_dynamics_load_learned`.
    Chnn = 6,
    /// `clnn`: a learned Lagrangian system; load it with `keel_dynamics_load_learned`.
    Clnn = 7,
    /// A chain pendulum built by `keel_dynamics_chain_pendulum*` (never in a file).
    ChainPendulum = 8,
}

/// Words of storage in a `keel_model` (64-bit targets: the bodies hold pointers and `usize`s, so
/// twice what they take on a 32-bit controller; a compile-time assertion keeps it enough).
#[cfg(target_pointer_width = "64")]
pub const KEEL_MODEL_WORDS: usize = 576;
/// Words of storage in a `keel_model` (32-bit targets such as Cortex-M).
#[cfg(not(target_pointer_width = "64"))]
pub const KEEL_MODEL_WORDS: usize = 296;

/// Storage for one loaded model: declare it (static, global or on the stack), pass its address
/// to `keel_model_load`, and keep the model bytes alive and unchanged while it is used (the
/// handle points into them: weights are read in place, never copied). The contents are
/// private; copying the struct copies the handle.
#[repr(C)]
pub struct KeelModel {
    /// Private.
    pub opaque: [u64; KEEL_MODEL_WORDS],
}

/// A loaded model.
// It lives in the caller's fixed-size storage, never moved or boxed: the variants' sizes differ
// by design.
#[allow(clippy::large_enum_variant)]
pub(crate) enum ModelBody {
    Mlp(Mlp<'static, LAYERS>),
    Emlp(Emlp<'static, EMLP_BLOCKS, EMLP_PARTS>),
    Bma(Bma<'static, LAYERS>),
    Policy(Policy<'static, LAYERS>),
    Value(ValueModel<'static, LAYERS>),
}

impl Handle for KeelModel {
    type Body = ModelBody;
    const MAGIC: u64 = u64::from_le_bytes(*b"keel-mdl");
}

impl ModelBody {
    fn kind(&self) -> KeelKind {
        match self {
            ModelBody::Mlp(_) => KeelKind::Mlp,
            ModelBody::Emlp(_) => KeelKind::Emlp,
            ModelBody::Bma(_) => KeelKind::Bma,
            ModelBody::Policy(_) => KeelKind::Policy,
            ModelBody::Value(_) => KeelKind::Value,
        }
    }

    fn inputs(&self) -> usize {
        match self {
            ModelBody::Mlp(m) => m.inputs(),
            ModelBody::Emlp(m) => m.inputs(),
            ModelBody::Bma(m) => m.inputs(),
            ModelBody::Policy(m) => m.observations(),
            ModelBody::Value(m) => m.observations(),
        }
    }

    fn outputs(&self) -> usize {
        match self {
            ModelBody::Mlp(m) => m.outputs(),
            ModelBody::Emlp(m) => m.outputs(),
            ModelBody::Bma(m) => m.classes(),
            ModelBody::Policy(m) => m.actions(),
            ModelBody::Value(_) => 1,
        }
    }

    fn scratch_len(&self) -> usize {
        match self {
            ModelBody::Mlp(m) => m.forward_scratch_len(),
            ModelBody::Emlp(m) => m.scratch_len(),
            ModelBody::Bma(m) => m.scratch_len(),
            ModelBody::Policy(m) => m.scratch_len(),
            ModelBody::Value(m) => m.scratch_len(),
        }
    }

    fn eval(&self, x: &[f32], y: &mut [f32], scratch: &mut [f32]) -> keel_core::Result<()> {
        match self {
            ModelBody::Mlp(m) => m.forward(x, y, scratch),
            ModelBody::Emlp(m) => m.forward(x, y, scratch),
            ModelBody::Bma(m) => m.predict(x, y, scratch),
            ModelBody::Policy(m) => m.act(x, y, scratch),
            ModelBody::Value(m) => {
                let [v] = y else {
                    return Err(keel_core::Error::ShapeMismatch {
                        what: "value output",
                        expected: 1,
                        got: y.len(),
                    });
                };
                *v = m.value(x, scratch)?;
                Ok(())
            }
        }
    }
}

/// The kind named by a parsed file's `keel.kind`.
pub(crate) fn kind_of(st: &SafeTensors<'_, MAX_TENSORS>) -> Result<KeelKind, KeelStatus> {
    let kind = st.metadata("keel.kind").ok_or(KeelStatus::InvalidConfig)?;
    [
        ("mlp", KeelKind::Mlp),
        ("emlp", KeelKind::Emlp),
        ("bma", KeelKind::Bma),
        ("policy", KeelKind::Policy),
        ("rl-value", KeelKind::Value),
        ("chnn", KeelKind::Chnn),
        ("clnn", KeelKind::Clnn),
    ]
    .into_iter()
    .find(|(name, _)| kind == *name)
    .map(|(_, k)| k)
    .ok_or(KeelStatus::InvalidConfig)
}

/// The caller's model bytes, with the lifetime the handle's contract gives them.
///
/// # Safety
/// As [`input`]; the bytes stay valid and unchanged as long as any handle made from them is used.
pub(crate) unsafe fn model_bytes(
    bytes: *const u8,
    len: usize,
) -> Result<&'static [u8], KeelStatus> {
    // SAFETY: forwarded contract (`'static` stands for "as long as the handle is used").
    unsafe { input(bytes, len) }
}

/// The kind of model in a safetensors file, after validating the whole file (as a load would).
///
/// # Errors
/// `NULL_POINTER` for a null `bytes` or `kind`; the file's validation errors (`TRUNCATED`,
/// `INVALID_JSON`, …); `INVALID_CONFIG` if `keel.kind` is missing or unknown.
///
/// # Safety
/// `bytes` points to `len` readable bytes; `kind` to a writable `int32_t`.
#[no_mangle]
pub unsafe extern "C" fn keel_kind_of(bytes: *const u8, len: usize, kind: *mut i32) -> KeelStatus {
    guard(|| {
        // SAFETY: the caller's contract (this function's `# Safety`).
        let data = unsafe { input(bytes, len) }?;
        // SAFETY: as above.
        let kind = unsafe { out(kind) }?;
        let st = SafeTensors::<MAX_TENSORS>::parse(data)?;
        *kind = kind_of(&st)? as i32;
        Ok(())
    })
}

/// Loads the model in `bytes` (a safetensors file exported by the host) into `model`, reading
/// its kind from the file. The weights stay where they are (flash); `model` records where.
///
/// # Errors
/// `NULL_POINTER`, `MISALIGNED` (the handle must be 8-byte aligned: declare a `keel_model`);
/// the file's validation errors; `INVALID_CONFIG` for an unknown kind or a bad configuration;
/// `WRONG_KIND` for a learned dynamics model (`chnn`/`clnn`: use `keel_dynamics_load_learned`);
/// `CAPACITY_EXCEEDED` for more tensors (64) or layers (8; EMLP: 4 blocks of 8 parts) than the
/// API holds; the model's own loading errors. On any error the handle is left invalid.
///
/// # Safety
/// `model` points to writable storage of `sizeof(keel_model)` bytes; `bytes` to `len` bytes that
/// stay valid and unchanged for as long as the handle is used.
#[no_mangle]
pub unsafe extern "C" fn keel_model_load(
    model: *mut KeelModel,
    bytes: *const u8,
    len: usize,
) -> KeelStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        unsafe { boundary::invalidate(model) }?;
        // SAFETY: the caller's contract: the bytes outlive every use of the handle.
        let data = unsafe { model_bytes(bytes, len) }?;
        let st = SafeTensors::<MAX_TENSORS>::parse(data)?;
        let body = match kind_of(&st)? {
            KeelKind::Mlp => ModelBody::Mlp(Mlp::from_safetensors(&st)?),
            KeelKind::Emlp => ModelBody::Emlp(Emlp::from_safetensors(&st)?),
            KeelKind::Bma => ModelBody::Bma(Bma::from_safetensors(&st)?),
            KeelKind::Policy => ModelBody::Policy(Policy::from_safetensors(&st)?),
            KeelKind::Value => ModelBody::Value(ValueModel::from_safetensors(&st)?),
            KeelKind::Chnn | KeelKind::Clnn | KeelKind::ChainPendulum => {
                return Err(KeelStatus::WrongKind)
            }
        };
        // SAFETY: the caller's contract.
        unsafe { boundary::install(model, body) }
    })
}

/// Shared body of the size queries.
///
/// # Safety
/// `model` as in [`keel_model_eval`]; `n` points to a writable `size_t`.
unsafe fn query(
    model: *const KeelModel,
    n: *mut usize,
    f: impl FnOnce(&ModelBody) -> usize,
) -> KeelStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        let m = unsafe { boundary::body(model) }?;
        // SAFETY: the caller's contract.
        *unsafe { out(n) }? = f(m);
        Ok(())
    })
}

/// The loaded model's kind (a `keel_kind` value).
///
/// # Errors
/// `NULL_POINTER`, `MISALIGNED`, `INVALID_HANDLE` (not loaded, or the load failed).
///
/// # Safety
/// `model` points to a `keel_model` (loaded or not); `kind` to a writable `int32_t`.
#[no_mangle]
pub unsafe extern "C" fn keel_model_kind(model: *const KeelModel, kind: *mut i32) -> KeelStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        let m = unsafe { boundary::body(model) }?;
        // SAFETY: the caller's contract.
        *unsafe { out(kind) }? = m.kind() as i32;
        Ok(())
    })
}

/// Floats the model's input `x` holds (policy and value: observations).
///
/// # Errors
/// As [`keel_model_kind`].
///
/// # Safety
/// As [`keel_model_kind`], with `n` a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn keel_model_inputs(model: *const KeelModel, n: *mut usize) -> KeelStatus {
    // SAFETY: forwarded contract.
    unsafe { query(model, n, ModelBody::inputs) }
}

/// Floats the model's output `y` holds (BMA: classes; policy: actions; value: 1).
///
/// # Errors
/// As [`keel_model_kind`].
///
/// # Safety
/// As [`keel_model_inputs`].
#[no_mangle]
pub unsafe extern "C" fn keel_model_outputs(model: *const KeelModel, n: *mut usize) -> KeelStatus {
    // SAFETY: forwarded contract.
    unsafe { query(model, n, ModelBody::outputs) }
}

/// Floats of scratch `keel_model_eval` needs.
///
/// # Errors
/// As [`keel_model_kind`].
///
/// # Safety
/// As [`keel_model_inputs`].
#[no_mangle]
pub unsafe extern "C" fn keel_model_scratch_len(
    model: *const KeelModel,
    n: *mut usize,
) -> KeelStatus {
    // SAFETY: forwarded contract.
    unsafe { query(model, n, ModelBody::scratch_len) }
}

/// Evaluates the model on `x` (`x_len` = `keel_model_inputs`) into `y` (`y_len` =
/// `keel_model_outputs`), using `scratch` (at least `keel_model_scratch_len` floats): an MLP's
/// or EMLP's outputs, a BMA's averaged class probabilities, a policy's deterministic action in
/// `[−1, 1]`, a value model's `V̂_H(x)`. The model is not changed; calls on one handle from
/// several threads need separate scratch.
///
/// # Errors
/// `NULL_POINTER`, `MISALIGNED` (floats need 4-byte alignment), `INVALID_HANDLE`;
/// `BUFFER_OVERLAP` if `y` or `scratch` overlaps another buffer; `INVALID_ARGUMENT` for a NaN
/// in `x`; `SHAPE_MISMATCH` for a wrong `x_len` or `y_len`; `SCRATCH_TOO_SMALL`; `NON_FINITE`
/// if an output is not finite (e.g. from an infinite input; `y` then holds it).
///
/// # Safety
/// `model` points to a `keel_model` whose model bytes are still valid; `x` to `x_len` readable
/// floats; `y` and `scratch` to `y_len` and `scratch_len` writable floats.
#[no_mangle]
pub unsafe extern "C" fn keel_model_eval(
    model: *const KeelModel,
    x: *const f32,
    x_len: usize,
    y: *mut f32,
    y_len: usize,
    scratch: *mut f32,
    scratch_len: usize,
) -> KeelStatus {
    guard(|| {
        // SAFETY: the caller's contract (this function's `# Safety`).
        let m = unsafe { boundary::body(model) }?;
        // SAFETY: as above.
        let x = unsafe { input(x, x_len) }?;
        // SAFETY: as above; disjoint from `x` (checked).
        let y = unsafe { output(y, y_len, &[span(x)]) }?;
        // SAFETY: as above; disjoint from `x` and `y` (checked).
        let scratch = unsafe { output(scratch, scratch_len, &[span(x), span(y)]) }?;
        no_nan(x)?;
        m.eval(x, y, scratch)?;
        // The MLP lets NaN and infinity propagate (its documented behaviour); the C API reports
        // them instead of handing a controller a NaN command.
        if y.iter().all(|v| v.is_finite()) {
            Ok(())
        } else {
            Err(KeelStatus::NonFinite)
        }
    })
}
