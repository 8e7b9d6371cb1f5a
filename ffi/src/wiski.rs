//! `keel_wiski`: the online structured-kernel-interpolation GP (WISKI; Stanton, Maddox, Delbridge
//! & Wilson, *Kernel Interpolation for Scalable Online Gaussian Processes*, AISTATS 2021) on a
//! grid of `m` nodes in 1 or 2 dimensions, in caller memory: `O(m²)` per observation, whatever
//! came before (`keel_core::gp::Wiski`).

use keel_core::gp::{refactor_scratch_len, Convention, Family, Grid, Kernel, Wiski, WiskiBuffers};

use crate::boundary::{self, guard, input, not_nan, out, output, span, Handle};
use crate::status::KeelStatus;

/// Largest grid the C API accepts, in nodes (`m`): its memory is `2m² + 4m` floats (4 MB in
/// `f32` at this bound), far beyond a controller, so a larger `m` is surely a mistake.
pub const KEEL_WISKI_MAX_NODES: usize = 1024;

/// A WISKI configuration.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KeelWiskiConfig {
    /// Input dimensions: 1 or 2.
    pub dims: u32,
    /// Grid nodes per dimension (at least 4 each; the product is `m`, at most
    /// `KEEL_WISKI_MAX_NODES`).
    pub size: [u32; 2],
    /// Lower grid bound per dimension.
    pub lo: [f32; 2],
    /// Upper grid bound per dimension.
    pub hi: [f32; 2],
    /// Grid convention: 0 = end points are nodes, 1 = the reference's extended grid
    /// (`keel_core::gp::Convention`).
    pub convention: u32,
    /// Kernel: 0 = RBF, 1 = Matérn 1/2, 2 = Matérn 3/2, 3 = Matérn 5/2.
    pub family: u32,
    /// Kernel output scale (positive).
    pub outputscale: f32,
    /// Kernel length scale per dimension (positive).
    pub lengthscale: [f32; 2],
    /// Observation noise variance (positive).
    pub noise: f32,
}

/// Words of storage in a `keel_wiski` (64-bit targets: the bodies hold pointers and `usize`s, so
/// twice what they take on a 32-bit controller; a compile-time assertion keeps it enough).
#[cfg(target_pointer_width = "64")]
pub const KEEL_WISKI_WORDS: usize = 24;
/// Words of storage in a `keel_wiski` (32-bit targets such as Cortex-M).
#[cfg(not(target_pointer_width = "64"))]
pub const KEEL_WISKI_WORDS: usize = 16;

/// Storage for one online GP. The GP's matrices live in the `memory` given to
/// `keel_wiski_init`, which must stay valid, and untouched by the caller, while it is used.
#[repr(C)]
pub struct KeelWiski {
    /// Private.
    pub opaque: [u64; KEEL_WISKI_WORDS],
}

/// A GP of the C API.
pub(crate) enum WiskiBody {
    D1(Wiski<'static, f32, 1>),
    D2(Wiski<'static, f32, 2>),
}

impl Handle for KeelWiski {
    type Body = WiskiBody;
    const MAGIC: u64 = u64::from_le_bytes(*b"keel-gp\0");
}

/// `m` for a configuration's grid, checked.
fn nodes(cfg: &KeelWiskiConfig) -> Result<usize, KeelStatus> {
    let sizes = match cfg.dims {
        1 => &cfg.size[..1],
        2 => &cfg.size[..2],
        _ => return Err(KeelStatus::UnsupportedSize),
    };
    let m = sizes
        .iter()
        .try_fold(1usize, |m, &s| m.checked_mul(s as usize));
    match m {
        Some(m) if (1..=KEEL_WISKI_MAX_NODES).contains(&m) => Ok(m),
        _ => Err(KeelStatus::UnsupportedSize),
    }
}

/// Floats of `memory` (`2m² + 4m`) and of `scratch` (`2m²`) that `keel_wiski_init` needs for
/// `config`'s grid.
///
/// # Errors
/// `NULL_POINTER`, `MISALIGNED`; `UNSUPPORTED_SIZE` for `dims` other than 1 or 2, or a grid of
/// 0 or more than `KEEL_WISKI_MAX_NODES` nodes.
///
/// # Safety
/// `config` points to a readable `keel_wiski_config`; `memory_len` and `scratch_len` to
/// writable `size_t`s.
#[no_mangle]
pub unsafe extern "C" fn keel_wiski_sizes(
    config: *const KeelWiskiConfig,
    memory_len: *mut usize,
    scratch_len: *mut usize,
) -> KeelStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        let cfg = unsafe { input(config, 1) }?;
        let m = nodes(&cfg[0])?;
        // SAFETY: the caller's contract.
        *unsafe { out(memory_len) }? = 2 * m * m + 4 * m;
        // SAFETY: the caller's contract.
        *unsafe { out(scratch_len) }? = refactor_scratch_len(m);
        Ok(())
    })
}

/// Builds an empty GP with `config` in `memory` (exactly the `memory_len` from
/// `keel_wiski_sizes`); `scratch` (at least its `scratch_len`) is used only during the call.
///
/// # Errors
/// `NULL_POINTER`, `MISALIGNED`; `UNSUPPORTED_SIZE` (as `keel_wiski_sizes`); `INVALID_ARGUMENT`
/// for an unknown `convention` or `family`, or a NaN bound or scale; `INVALID_PARAMETER` for a
/// non-positive scale or noise, or a grid the core refuses (fewer than 4 nodes, `lo ≥ hi`);
/// `COUNT_MISMATCH` if `memory_len` is not the size needed; `SCRATCH_TOO_SMALL`;
/// `BUFFER_OVERLAP` if `memory` and `scratch` overlap. On any error the handle is left invalid.
///
/// # Safety
/// `gp` points to writable storage of `sizeof(keel_wiski)` bytes; `config` to a readable
/// `keel_wiski_config`; `memory` to `memory_len` writable floats that stay valid, and are not
/// touched by the caller, while the handle is used; `scratch` to `scratch_len` writable floats.
#[no_mangle]
pub unsafe extern "C" fn keel_wiski_init(
    gp: *mut KeelWiski,
    config: *const KeelWiskiConfig,
    memory: *mut f32,
    memory_len: usize,
    scratch: *mut f32,
    scratch_len: usize,
) -> KeelStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        unsafe { boundary::invalidate(gp) }?;
        // SAFETY: the caller's contract.
        let cfg = unsafe { input(config, 1) }?[0];
        let m = nodes(&cfg)?;
        let convention = match cfg.convention {
            0 => Convention::Endpoints,
            1 => Convention::Extended,
            _ => return Err(KeelStatus::InvalidArgument),
        };
        let family = match cfg.family {
            0 => Family::Rbf,
            1 => Family::Matern12,
            2 => Family::Matern32,
            3 => Family::Matern52,
            _ => return Err(KeelStatus::InvalidArgument),
        };
        let floats = cfg.lo.iter().chain(&cfg.hi).chain(&cfg.lengthscale);
        if floats
            .chain([&cfg.outputscale, &cfg.noise])
            .any(|v| v.is_nan())
        {
            return Err(KeelStatus::InvalidArgument);
        }
        // SAFETY: the caller's contract: `memory` outlives every use of the handle.
        let mem: &'static mut [f32] = unsafe { output(memory, memory_len, &[]) }?;
        // SAFETY: the caller's contract; disjoint from `memory` (checked).
        let scratch = unsafe { output(scratch, scratch_len, &[span(mem)]) }?;
        if mem.len() != 2 * m * m + 4 * m {
            return Err(KeelStatus::CountMismatch);
        }
        let (root, rest) = mem.split_at_mut(m * m);
        let (precision, rest) = rest.split_at_mut(m * m);
        let (b, rest) = rest.split_at_mut(m);
        let (mean, work) = rest.split_at_mut(m);
        let buffers = WiskiBuffers {
            root,
            precision,
            b,
            mean,
            work,
        };
        let s = |i: usize| cfg.size[i] as usize;
        let body = match cfg.dims {
            1 => {
                let grid = Grid::new([cfg.lo[0]], [cfg.hi[0]], [s(0)], convention)?;
                let kernel = Kernel::new(family, cfg.outputscale, [cfg.lengthscale[0]])?;
                WiskiBody::D1(Wiski::new(grid, kernel, cfg.noise, buffers, scratch)?)
            }
            _ => {
                let grid = Grid::new(cfg.lo, cfg.hi, [s(0), s(1)], convention)?;
                let kernel = Kernel::new(family, cfg.outputscale, cfg.lengthscale)?;
                WiskiBody::D2(Wiski::new(grid, kernel, cfg.noise, buffers, scratch)?)
            }
        };
        // SAFETY: the caller's contract.
        unsafe { boundary::install(gp, body) }
    })
}

/// An input of the GP's dimension, with no NaN.
fn point<const D: usize>(x: &[f32]) -> Result<[f32; D], KeelStatus> {
    let x = <[f32; D]>::try_from(x).map_err(|_| KeelStatus::ShapeMismatch)?;
    for v in x {
        not_nan(v)?;
    }
    Ok(x)
}

/// Adds the observation `y` at `x` (`x_len` = the GP's dimensions): a constant-time update.
///
/// # Errors
/// `NULL_POINTER`, `MISALIGNED`, `INVALID_HANDLE`; `SHAPE_MISMATCH` for a wrong `x_len`;
/// `INVALID_ARGUMENT` for a NaN in `x` or `y`; `OUT_OF_GRID` for an `x` outside the grid;
/// `NON_FINITE` for an infinite `y`.
///
/// # Safety
/// `gp` points to an initialised `keel_wiski` whose memory is still valid; `x` to `x_len`
/// readable floats.
#[no_mangle]
pub unsafe extern "C" fn keel_wiski_observe(
    gp: *mut KeelWiski,
    x: *const f32,
    x_len: usize,
    y: f32,
) -> KeelStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        let g = unsafe { boundary::body_mut(gp) }?;
        // SAFETY: the caller's contract.
        let x = unsafe { input(x, x_len) }?;
        let y = not_nan(y)?;
        if !y.is_finite() {
            return Err(KeelStatus::NonFinite);
        }
        match g {
            WiskiBody::D1(g) => g.observe(&point::<1>(x)?, y)?,
            WiskiBody::D2(g) => g.observe(&point::<2>(x)?, y)?,
        }
        Ok(())
    })
}

/// The posterior mean and variance of `f(x)`; either output pointer may be null to skip it.
///
/// # Errors
/// As [`keel_wiski_observe`] (without `y`).
///
/// # Safety
/// As [`keel_wiski_observe`]; each non-null output points to a writable float.
#[no_mangle]
pub unsafe extern "C" fn keel_wiski_predict(
    gp: *const KeelWiski,
    x: *const f32,
    x_len: usize,
    mean: *mut f32,
    var_f: *mut f32,
) -> KeelStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        let g = unsafe { boundary::body(gp) }?;
        // SAFETY: the caller's contract.
        let x = unsafe { input(x, x_len) }?;
        let p = match g {
            WiskiBody::D1(g) => g.predict(&point::<1>(x)?)?,
            WiskiBody::D2(g) => g.predict(&point::<2>(x)?)?,
        };
        if !mean.is_null() {
            // SAFETY: the caller's contract (non-null checked).
            *unsafe { out(mean) }? = p.mean;
        }
        if !var_f.is_null() {
            // SAFETY: as above.
            *unsafe { out(var_f) }? = p.var_f;
        }
        Ok(())
    })
}

/// The log marginal likelihood of the observations so far, and their count; either output
/// pointer may be null to skip it.
///
/// # Errors
/// `NULL_POINTER` (for `gp`), `MISALIGNED`, `INVALID_HANDLE`.
///
/// # Safety
/// As [`keel_wiski_predict`].
#[no_mangle]
pub unsafe extern "C" fn keel_wiski_stats(
    gp: *const KeelWiski,
    log_marginal_likelihood: *mut f32,
    count: *mut u64,
) -> KeelStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        let g = unsafe { boundary::body(gp) }?;
        let (lml, n) = match g {
            WiskiBody::D1(g) => (g.log_marginal_likelihood(), g.len()),
            WiskiBody::D2(g) => (g.log_marginal_likelihood(), g.len()),
        };
        if !log_marginal_likelihood.is_null() {
            // SAFETY: the caller's contract (non-null checked).
            *unsafe { out(log_marginal_likelihood) }? = lml;
        }
        if !count.is_null() {
            // SAFETY: as above.
            *unsafe { out(count) }? = n;
        }
        Ok(())
    })
}
