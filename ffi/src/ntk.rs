//! `keel_ntk`: on-board adaptation of a loaded regression MLP to a few new points by its
//! linearisation — the finite neural-tangent-kernel GP of Maddox, Tang, Moreno, Wilson &
//! Damianou, *Fast Adaptation with Linearized Neural Networks* (AISTATS 2021, §3)
//! (`keel_core::nn::NtkAdaptation`: the model, algorithm, memory and accuracy are documented
//! there). The adaptation keeps each point's gradient in factored form (`R` floats: the sum of
//! the layers' input and output widths) and the Cholesky factor of the `n × n` kernel matrix, in
//! caller memory of `N·R + N² + N` floats for a capacity of `N ≤ KEEL_NTK_MAX_POINTS` points.
//!
//! A `keel_ntk` borrows its `keel_model` (the network) as well as its memory: the model handle
//! must stay where it is, loaded with the same file, while the adaptation is used. Every call
//! checks that the model handle still holds the MLP it was built from (`INVALID_HANDLE`
//! otherwise), which catches a model handle reloaded, or cleared by a failed load, in between.

use keel_core::nn::{Mlp, NtkAdaptation, NtkBuffers, PriorMean};

use crate::boundary::{self, guard, input, no_nan, not_nan, out, output, span, Handle};
use crate::model::{KeelModel, ModelBody, LAYERS};
use crate::status::KeelStatus;

/// Largest capacity, in points, the C API accepts: the capacity of the Rust firmware's
/// adaptation and of the host's checks of it (`keel firmware check`). The sine network
/// (`R = 162`) takes 24 960 bytes of memory at this bound; the kernel matrix is factored in `f32`,
/// whose accuracy degrades as `n` grows (see `keel_core::nn::NtkAdaptation`).
pub const KEEL_NTK_MAX_POINTS: usize = 32;

/// The prior mean of a `keel_ntk` (passed to `keel_ntk_init` as an `int32_t`).
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeelNtkPrior {
    /// `m = 0`: the linearised model's offset is fitted to the targets themselves.
    Zero = 0,
    /// `m(x) = f(x)`: the network plus a correction fitted to the residuals (usually what a
    /// controller wants: with no points the prediction is the network's).
    Network = 1,
}

/// Words of storage in a `keel_ntk` (64-bit targets: the body holds pointers and `usize`s, so
/// twice what it takes on a 32-bit controller; a compile-time assertion keeps it enough).
#[cfg(target_pointer_width = "64")]
pub const KEEL_NTK_WORDS: usize = 20;
/// Words of storage in a `keel_ntk` (32-bit targets such as Cortex-M).
#[cfg(not(target_pointer_width = "64"))]
pub const KEEL_NTK_WORDS: usize = 12;

/// Storage for one adaptation. Its matrices live in the `memory` given to `keel_ntk_init`, which
/// must stay valid, and untouched by the caller, while it is used; so must its `keel_model`.
#[repr(C)]
pub struct KeelNtk {
    /// Private.
    pub opaque: [u64; KEEL_NTK_WORDS],
}

/// An adaptation of the C API: the core's, the model handle it borrows its network from, and
/// the byte range of its memory (for the overlap checks).
pub(crate) struct NtkBody {
    ntk: NtkAdaptation<'static, f32, LAYERS>,
    model: *const KeelModel,
    memory: (usize, usize),
}

impl Handle for KeelNtk {
    type Body = NtkBody;
    const MAGIC: u64 = u64::from_le_bytes(*b"keel-ntk");
}

/// The MLP in a loaded model handle.
///
/// # Errors
/// `WRONG_KIND` for a model of another kind (EMLP, BMA, policy, value model). A CNN, or any
/// other kind the C API cannot load, never makes a `keel_model` (`keel_model_load` refuses it).
///
/// # Safety
/// As [`boundary::body`], with `'static` meaning "while the adaptation is used" (the contract
/// of `keel_ntk_init`).
unsafe fn mlp_of(model: *const KeelModel) -> Result<&'static Mlp<'static, LAYERS>, KeelStatus> {
    // SAFETY: forwarded contract.
    match unsafe { boundary::body(model) }? {
        ModelBody::Mlp(m) => Ok(m),
        _ => Err(KeelStatus::WrongKind),
    }
}

/// Checks a capacity the C API accepts.
fn capacity(n: usize) -> Result<usize, KeelStatus> {
    if (1..=KEEL_NTK_MAX_POINTS).contains(&n) {
        Ok(n)
    } else {
        Err(KeelStatus::UnsupportedSize)
    }
}

/// Floats of `memory` (`N·R + N² + N`) that `keel_ntk_init` needs for an adaptation of `model`
/// holding up to `capacity` points, and of `scratch` that `keel_ntk_adapt` and
/// `keel_ntk_predict` need (`R + w + N`, `w` the widest layer, or `4w` if larger). For the sine
/// network of the firmware (1 → 40 → 40 → 1, `R = 162`) and `capacity = 10`: 1 730 and 212.
///
/// # Errors
/// `NULL_POINTER`, `MISALIGNED`, `INVALID_HANDLE`; `WRONG_KIND` unless `model` holds an MLP;
/// `UNSUPPORTED_SIZE` for a capacity of 0 or more than `KEEL_NTK_MAX_POINTS` (32).
///
/// # Safety
/// `model` points to a `keel_model` whose model bytes are still valid; `memory_len` and
/// `scratch_len` to writable `size_t`s.
#[no_mangle]
pub unsafe extern "C" fn keel_ntk_sizes(
    model: *const KeelModel,
    capacity: usize,
    memory_len: *mut usize,
    scratch_len: *mut usize,
) -> KeelStatus {
    guard(|| {
        // SAFETY: the caller's contract (only used during this call).
        let mlp = unsafe { mlp_of(model) }?;
        let n = self::capacity(capacity)?;
        // SAFETY: the caller's contract.
        *unsafe { out(memory_len) }? = NtkAdaptation::<f32, LAYERS>::memory_len(mlp, n);
        // SAFETY: the caller's contract.
        *unsafe { out(scratch_len) }? = NtkAdaptation::<f32, LAYERS>::scratch_len_for(mlp, n);
        Ok(())
    })
}

/// Builds an adaptation of the MLP in `model` with prior mean `prior_mean` (a `keel_ntk_prior`)
/// and observation noise variance `noise` (σ²) in `memory`, holding no points yet (predictions
/// are the prior's). The capacity is the one whose `memory_len` `keel_ntk_sizes` reported.
///
/// # Errors
/// `NULL_POINTER`, `MISALIGNED`, `INVALID_HANDLE` (for `model`); `WRONG_KIND` unless `model`
/// holds an MLP (not an EMLP, BMA, policy or value model); `INVALID_CONFIG` for an MLP that is
/// not a regression network with one output (a classifier, a Gaussian-output network);
/// `INVALID_ARGUMENT` for an unknown `prior_mean` or a NaN `noise`; `INVALID_PARAMETER` for a
/// `noise` that is not positive and finite; `COUNT_MISMATCH` unless `memory_len` is the
/// `memory_len` of a capacity from 1 to `KEEL_NTK_MAX_POINTS`. On any error the handle is left
/// invalid.
///
/// # Safety
/// `ntk` points to writable storage of `sizeof(keel_ntk)` bytes; `model` to a loaded
/// `keel_model` that stays in place, loaded with the same bytes, while the handle is used;
/// `memory` to `memory_len` writable floats that stay valid, and are not touched by the caller,
/// while the handle is used.
#[no_mangle]
pub unsafe extern "C" fn keel_ntk_init(
    ntk: *mut KeelNtk,
    model: *const KeelModel,
    prior_mean: i32,
    noise: f32,
    memory: *mut f32,
    memory_len: usize,
) -> KeelStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        unsafe { boundary::invalidate(ntk) }?;
        // SAFETY: the caller's contract: the model handle outlives every use of `ntk`.
        let mlp = unsafe { mlp_of(model) }?;
        let mean = match prior_mean {
            0 => PriorMean::Zero,
            1 => PriorMean::Network,
            _ => return Err(KeelStatus::InvalidArgument),
        };
        let noise = not_nan(noise)?;
        // SAFETY: the caller's contract: `memory` outlives every use of the handle.
        let mem: &'static mut [f32] = unsafe { output(memory, memory_len, &[]) }?;
        let n = (1..=KEEL_NTK_MAX_POINTS)
            .find(|&n| NtkAdaptation::<f32, LAYERS>::memory_len(mlp, n) == mem.len())
            .ok_or(KeelStatus::CountMismatch)?;
        let memory = span(mem);
        let (factors, rest) = mem.split_at_mut(n * mlp.gradient_factors_len());
        let (factor, z) = rest.split_at_mut(n * n);
        let buffers = NtkBuffers { factors, factor, z };
        let body = NtkBody {
            ntk: NtkAdaptation::new(mlp, mean, noise, buffers)?,
            model,
            memory,
        };
        // SAFETY: the caller's contract.
        unsafe { boundary::install(ntk, body) }
    })
}

impl NtkBody {
    /// Checks the model handle still holds the MLP the adaptation was built from.
    ///
    /// # Safety
    /// `keel_ntk_init`'s contract for the model handle.
    unsafe fn check_model(&self) -> Result<(), KeelStatus> {
        // SAFETY: forwarded contract.
        match unsafe { boundary::body(self.model) } {
            Ok(ModelBody::Mlp(m)) if core::ptr::eq(m, self.ntk.mlp()) => Ok(()),
            _ => Err(KeelStatus::InvalidHandle),
        }
    }

    /// Refuses a caller buffer that overlaps the adaptation's memory.
    fn disjoint(&self, s: &[f32]) -> Result<(), KeelStatus> {
        let ((s0, s1), (m0, m1)) = (span(s), self.memory);
        if s0 < m1 && m0 < s1 {
            Err(KeelStatus::BufferOverlap)
        } else {
            Ok(())
        }
    }
}

/// Adapts to the `n` points `(xᵢ, yᵢ)` (`x` row-major `n × inputs`, `x_len = n · inputs`),
/// replacing any earlier ones: `n` reverse passes through the network, the kernel matrix and its
/// Cholesky factor. `n = 0` forgets the points (as `keel_ntk_clear`).
///
/// # Errors
/// `NULL_POINTER`, `MISALIGNED`, `INVALID_HANDLE` (also when its `keel_model` was reloaded or
/// cleared); `BUFFER_OVERLAP` if `scratch` overlaps `x` or `y`, or any of them the adaptation's
/// memory; `INVALID_ARGUMENT` for a NaN in `x` or `y`; `CAPACITY_EXCEEDED` for more points than
/// the capacity given at `keel_ntk_init` (at most `KEEL_NTK_MAX_POINTS`); `SHAPE_MISMATCH`
/// unless `x_len = n · inputs`; `NON_FINITE` for an infinite value; `SCRATCH_TOO_SMALL`;
/// `NOT_POSITIVE_DEFINITE` if the kernel matrix is not positive definite in `f32` (a network
/// output that is not finite, or σ² below its rounding). On any error after the handle is found
/// valid, the adaptation holds no points (predictions are the prior's).
///
/// # Safety
/// `ntk` points to an initialised `keel_ntk` whose model handle and memory are still valid; `x`
/// to `x_len` readable floats; `y` to `n` readable floats; `scratch` to `scratch_len` writable
/// floats.
#[no_mangle]
pub unsafe extern "C" fn keel_ntk_adapt(
    ntk: *mut KeelNtk,
    x: *const f32,
    x_len: usize,
    y: *const f32,
    n: usize,
    scratch: *mut f32,
    scratch_len: usize,
) -> KeelStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        let b = unsafe { boundary::body_mut(ntk) }?;
        // SAFETY: the caller's contract (`keel_ntk_init`'s, for the model handle).
        unsafe { b.check_model() }?;
        b.ntk.clear();
        // SAFETY: the caller's contract.
        let x = unsafe { input(x, x_len) }?;
        // SAFETY: the caller's contract.
        let y = unsafe { input(y, n) }?;
        // SAFETY: the caller's contract; disjoint from `x` and `y` (checked).
        let scratch = unsafe { output(scratch, scratch_len, &[span(x), span(y)]) }?;
        for s in [x, y, &*scratch] {
            b.disjoint(s)?;
        }
        no_nan(x)?;
        no_nan(y)?;
        Ok(b.ntk.adapt(x, y, scratch)?)
    })
}

/// The posterior at `x` (`x_len` = the model's inputs): the mean, the variance of the latent
/// `f(x)` and of a new observation (that plus σ²). With no points, the prior: `m(x)` and the
/// kernel's `‖J(x)‖²`. Any output pointer may be null to skip it.
///
/// # Errors
/// `NULL_POINTER`, `MISALIGNED`, `INVALID_HANDLE` (as `keel_ntk_adapt`); `BUFFER_OVERLAP` if
/// `scratch` or an output overlaps `x`, `scratch` or the adaptation's memory; `INVALID_ARGUMENT`
/// for a NaN in `x`; `SHAPE_MISMATCH` for a wrong `x_len`; `NON_FINITE` for an infinite input;
/// `SCRATCH_TOO_SMALL`.
///
/// # Safety
/// As [`keel_ntk_adapt`]; each non-null output points to a writable float.
#[no_mangle]
pub unsafe extern "C" fn keel_ntk_predict(
    ntk: *const KeelNtk,
    x: *const f32,
    x_len: usize,
    scratch: *mut f32,
    scratch_len: usize,
    mean: *mut f32,
    var_f: *mut f32,
    var_y: *mut f32,
) -> KeelStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        let b = unsafe { boundary::body(ntk) }?;
        // SAFETY: the caller's contract (`keel_ntk_init`'s, for the model handle).
        unsafe { b.check_model() }?;
        // SAFETY: the caller's contract.
        let x = unsafe { input(x, x_len) }?;
        // SAFETY: the caller's contract; disjoint from `x` (checked).
        let scratch = unsafe { output(scratch, scratch_len, &[span(x)]) }?;
        b.disjoint(x)?;
        b.disjoint(scratch)?;
        let taken = [span(x), span(scratch), b.memory];
        no_nan(x)?;
        let p = b.ntk.predict(x, scratch)?;
        for (ptr, v) in [(mean, p.mean), (var_f, p.var_f), (var_y, p.var_y)] {
            if !ptr.is_null() {
                // SAFETY: the caller's contract (non-null checked); disjoint from the call's
                // buffers (checked).
                unsafe { output(ptr, 1, &taken) }?[0] = v;
            }
        }
        Ok(())
    })
}

/// Floats of the weight offset `u` that `keel_ntk_weight_offset` writes: the network's
/// parameter count `P` (1 761 for the sine network).
///
/// # Errors
/// `NULL_POINTER`, `MISALIGNED`, `INVALID_HANDLE` (as `keel_ntk_adapt`).
///
/// # Safety
/// As [`keel_ntk_predict`]; `n` points to a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn keel_ntk_weight_offset_len(
    ntk: *const KeelNtk,
    n: *mut usize,
) -> KeelStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        let b = unsafe { boundary::body(ntk) }?;
        // SAFETY: the caller's contract (`keel_ntk_init`'s, for the model handle).
        unsafe { b.check_model() }?;
        // SAFETY: the caller's contract.
        *unsafe { out(n) }? = b.ntk.mlp().parameter_count();
        Ok(())
    })
}

/// The posterior mean of the weight offset, `u = Jᵀα` (`u_len` = `keel_ntk_weight_offset_len`,
/// the export's parameter order): the network moved by `u` and linearised, `f(x) + J(x)u`, is
/// the adapted mean. With it, `keel_ntk_predict_mean_jvp` gives means by one forward-mode pass
/// (the paper's parameter-space view), for a controller that keeps `u` (`4P` bytes) and needs
/// only means. `n·P` multiply–adds.
///
/// # Errors
/// `NULL_POINTER`, `MISALIGNED`, `INVALID_HANDLE` (as `keel_ntk_adapt`); `BUFFER_OVERLAP` if
/// `u` and `scratch` overlap each other or the adaptation's memory; `SHAPE_MISMATCH` for a
/// wrong `u_len`; `SCRATCH_TOO_SMALL`.
///
/// # Safety
/// As [`keel_ntk_predict`]; `u` points to `u_len` writable floats.
#[no_mangle]
pub unsafe extern "C" fn keel_ntk_weight_offset(
    ntk: *const KeelNtk,
    u: *mut f32,
    u_len: usize,
    scratch: *mut f32,
    scratch_len: usize,
) -> KeelStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        let b = unsafe { boundary::body(ntk) }?;
        // SAFETY: the caller's contract (`keel_ntk_init`'s, for the model handle).
        unsafe { b.check_model() }?;
        // SAFETY: the caller's contract; disjoint from the memory (checked).
        let u = unsafe { output(u, u_len, &[b.memory]) }?;
        // SAFETY: the caller's contract; disjoint from `u` and the memory (checked).
        let scratch = unsafe { output(scratch, scratch_len, &[span(u), b.memory]) }?;
        Ok(b.ntk.weight_offset(u, scratch)?)
    })
}

/// The adapted mean at `x` by one forward-mode pass along the weight offset `u` from
/// `keel_ntk_weight_offset`: `m(x) + J(x)u`, equal to `keel_ntk_predict`'s mean up to rounding.
///
/// # Errors
/// `NULL_POINTER`, `MISALIGNED`, `INVALID_HANDLE` (as `keel_ntk_adapt`); `BUFFER_OVERLAP` if
/// `scratch` or `mean` overlaps `x`, `u`, each other or the adaptation's memory;
/// `INVALID_ARGUMENT` for a NaN in `x`; `SHAPE_MISMATCH` for a wrong `x_len` or `u_len`;
/// `NON_FINITE` for an infinite `x`, or a mean that is not finite (`u` is not scanned, to keep
/// the call cheap: a NaN or infinity in it shows here; `mean` is then left unwritten);
/// `SCRATCH_TOO_SMALL`.
///
/// # Safety
/// As [`keel_ntk_predict`]; `u` points to `u_len` readable floats, `mean` to a writable float.
#[no_mangle]
pub unsafe extern "C" fn keel_ntk_predict_mean_jvp(
    ntk: *const KeelNtk,
    x: *const f32,
    x_len: usize,
    u: *const f32,
    u_len: usize,
    scratch: *mut f32,
    scratch_len: usize,
    mean: *mut f32,
) -> KeelStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        let b = unsafe { boundary::body(ntk) }?;
        // SAFETY: the caller's contract (`keel_ntk_init`'s, for the model handle).
        unsafe { b.check_model() }?;
        // SAFETY: the caller's contract.
        let x = unsafe { input(x, x_len) }?;
        // SAFETY: the caller's contract.
        let u = unsafe { input(u, u_len) }?;
        let taken = [span(x), span(u), b.memory];
        // SAFETY: the caller's contract; disjoint from the other buffers (checked).
        let scratch = unsafe { output(scratch, scratch_len, &taken) }?;
        // SAFETY: as above.
        let mean =
            &mut unsafe { output(mean, 1, &[taken[0], taken[1], taken[2], span(scratch)]) }?[0];
        b.disjoint(x)?;
        b.disjoint(u)?;
        no_nan(x)?;
        // `u` is not scanned (P floats: that would cost a third of the call); a NaN or infinity
        // in it shows in the result instead, which is checked.
        let m = b.ntk.predict_mean_jvp(x, u, scratch)?;
        if !m.is_finite() {
            return Err(KeelStatus::NonFinite);
        }
        *mean = m;
        Ok(())
    })
}

/// Forgets the points: predictions are the prior's again.
///
/// # Errors
/// `NULL_POINTER`, `MISALIGNED`, `INVALID_HANDLE`.
///
/// # Safety
/// `ntk` points to a `keel_ntk` (initialised or not).
#[no_mangle]
pub unsafe extern "C" fn keel_ntk_clear(ntk: *mut KeelNtk) -> KeelStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        unsafe { boundary::body_mut(ntk) }?.ntk.clear();
        Ok(())
    })
}

/// The log marginal likelihood of the points adapted to, `log p(y)` (for choosing σ² among a
/// few candidates: adapt with each and keep the largest; 0 with no points), their count and the
/// capacity. Any output pointer may be null to skip it.
///
/// # Errors
/// `NULL_POINTER` (for `ntk`), `MISALIGNED`, `INVALID_HANDLE` (as `keel_ntk_adapt`).
///
/// # Safety
/// As [`keel_ntk_predict`]; each non-null output points to writable storage of its type.
#[no_mangle]
pub unsafe extern "C" fn keel_ntk_stats(
    ntk: *const KeelNtk,
    log_marginal_likelihood: *mut f32,
    count: *mut usize,
    capacity: *mut usize,
) -> KeelStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        let b = unsafe { boundary::body(ntk) }?;
        // SAFETY: the caller's contract (`keel_ntk_init`'s, for the model handle).
        unsafe { b.check_model() }?;
        if !log_marginal_likelihood.is_null() {
            // SAFETY: the caller's contract (non-null checked).
            *unsafe { out(log_marginal_likelihood) }? = b.ntk.log_marginal_likelihood();
        }
        for (ptr, v) in [(count, b.ntk.len()), (capacity, b.ntk.capacity())] {
            if !ptr.is_null() {
                // SAFETY: as above.
                *unsafe { out(ptr) }? = v;
            }
        }
        Ok(())
    })
}
