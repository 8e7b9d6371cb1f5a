//! `keel_dynamics`: a constrained mechanical system to integrate — the chain pendulum of Finzi,
//! Wang & Wilson (NeurIPS 2020) with 1 to 3 links, or a learned CHNN/CLNN of a chain of 1 to 3
//! nodes in the plane loaded from an exported file — and `keel_rk4_step`, one classic RK4 step.
//!
//! States are flat float arrays of `2·N·2` values in the core's order (`keel_core::dynamics::Phase`):
//! the `N` node positions `(x, y)`, then the `N` momenta (chain pendulum, CHNN) or velocities
//! (CLNN, which integrates the Lagrangian form).

use keel_core::dynamics::learned::{self, Form, Learned};
use keel_core::dynamics::systems::ChainPendulum;
use keel_core::dynamics::{Lagrangian, Phase};
use keel_core::integrate::{Rk4, StateVector};
use keel_core::io::SafeTensors;

use crate::boundary::{self, guard, input, no_nan, not_nan, out, output, span, Handle};
use crate::model::{kind_of, model_bytes, KeelKind, MAX_TENSORS};
use crate::status::KeelStatus;

/// Layers of a learned potential.
const POTENTIAL_LAYERS: usize = 4;
/// Stack scratch of a learned potential's gradient: a 3 × 256 tanh MLP (the paper's) needs 1281
/// floats (5 kB of stack per vector-field evaluation); larger potentials fail to load with
/// `SCRATCH_TOO_SMALL`.
const POTENTIAL_SCRATCH: usize = 1281;

/// Words of storage in a `keel_dynamics` (64-bit targets: the bodies hold pointers and `usize`s, so
/// twice what they take on a 32-bit controller; a compile-time assertion keeps it enough).
#[cfg(target_pointer_width = "64")]
pub const KEEL_DYNAMICS_WORDS: usize = 120;
/// Words of storage in a `keel_dynamics` (32-bit targets such as Cortex-M).
#[cfg(not(target_pointer_width = "64"))]
pub const KEEL_DYNAMICS_WORDS: usize = 72;

/// Storage for one system: declare it, pass its address to `keel_dynamics_chain_pendulum*` or
/// `keel_dynamics_load_learned`. A learned system points into its model bytes, which must stay
/// valid and unchanged while it is used. The contents are private.
#[repr(C)]
pub struct KeelDynamics {
    /// Private.
    pub opaque: [u64; KEEL_DYNAMICS_WORDS],
}

type LearnedChain<const N: usize> =
    Learned<'static, f32, N, 2, N, POTENTIAL_LAYERS, POTENTIAL_SCRATCH>;

/// A system of the C API.
pub(crate) enum DynamicsBody {
    Chain1(ChainPendulum<f32, 1>),
    Chain2(ChainPendulum<f32, 2>),
    Chain3(ChainPendulum<f32, 3>),
    Learned1(LearnedChain<1>),
    Learned2(LearnedChain<2>),
    Learned3(LearnedChain<3>),
}

impl Handle for KeelDynamics {
    type Body = DynamicsBody;
    const MAGIC: u64 = u64::from_le_bytes(*b"keel-dyn");
}

/// What the C API does with a system, on flat state slices (lengths checked here, once).
trait Flat {
    /// `N`: nodes (links).
    fn nodes(&self) -> usize;
    fn kind(&self) -> KeelKind;
    fn rk4(&self, rk4: &Rk4<f32>, t: f32, z: &mut [f32]) -> keel_core::Result<()>;
    fn energy(&self, z: &[f32]) -> keel_core::Result<f32>;
    fn momentum_to_velocity(&self, z: &[f32], out: &mut [f32]) -> keel_core::Result<()>;
    fn velocity_to_momentum(&self, z: &[f32], out: &mut [f32]) -> keel_core::Result<()>;
    fn angles_to_state(
        &self,
        _angles: &[f32],
        _rates: &[f32],
        _velocity: bool,
        _out: &mut [f32],
    ) -> Result<(), KeelStatus> {
        Err(KeelStatus::WrongKind)
    }
}

/// A flat slice as a state, or `SHAPE_MISMATCH`.
fn phase<const N: usize>(z: &[f32]) -> keel_core::Result<Phase<f32, N, 2>> {
    let mut p = Phase::<f32, N, 2>::zeros();
    let s = p.as_mut_slice();
    if z.len() != s.len() {
        return Err(keel_core::Error::ShapeMismatch {
            what: "state",
            expected: s.len(),
            got: z.len(),
        });
    }
    s.copy_from_slice(z);
    Ok(p)
}

/// Writes a state into a flat slice of the same length (checked by [`phase`] on the input side;
/// the output's own length is checked here).
fn store<const N: usize>(p: &Phase<f32, N, 2>, out: &mut [f32]) -> keel_core::Result<()> {
    let s = p.as_slice();
    if out.len() != s.len() {
        return Err(keel_core::Error::ShapeMismatch {
            what: "output state",
            expected: s.len(),
            got: out.len(),
        });
    }
    out.copy_from_slice(s);
    Ok(())
}

impl<const N: usize> Flat for ChainPendulum<f32, N> {
    fn nodes(&self) -> usize {
        N
    }
    fn kind(&self) -> KeelKind {
        KeelKind::ChainPendulum
    }
    fn rk4(&self, rk4: &Rk4<f32>, t: f32, z: &mut [f32]) -> keel_core::Result<()> {
        let mut p = phase::<N>(z)?;
        rk4.step(self.mechanics(), t, &mut p)?;
        store(&p, z)
    }
    fn energy(&self, z: &[f32]) -> keel_core::Result<f32> {
        Ok(self.mechanics().energy(&phase::<N>(z)?))
    }
    fn momentum_to_velocity(&self, z: &[f32], out: &mut [f32]) -> keel_core::Result<()> {
        store(&self.mechanics().to_velocity_form(&phase::<N>(z)?), out)
    }
    fn velocity_to_momentum(&self, z: &[f32], out: &mut [f32]) -> keel_core::Result<()> {
        store(&self.mechanics().from_velocity_form(&phase::<N>(z)?), out)
    }
    fn angles_to_state(
        &self,
        angles: &[f32],
        rates: &[f32],
        velocity: bool,
        out: &mut [f32],
    ) -> Result<(), KeelStatus> {
        let (Ok(a), Ok(r)) = (<&[f32; N]>::try_from(angles), <&[f32; N]>::try_from(rates)) else {
            return Err(KeelStatus::ShapeMismatch);
        };
        let z = if velocity {
            self.velocity_state_from_angles(a, r)
        } else {
            self.state_from_angles(a, r)
        };
        Ok(store(&z, out)?)
    }
}

impl<const N: usize> Flat for LearnedChain<N> {
    fn nodes(&self) -> usize {
        N
    }
    fn kind(&self) -> KeelKind {
        match self.form {
            Form::Hamiltonian => KeelKind::Chnn,
            Form::Lagrangian => KeelKind::Clnn,
        }
    }
    fn rk4(&self, rk4: &Rk4<f32>, t: f32, z: &mut [f32]) -> keel_core::Result<()> {
        let mut p = phase::<N>(z)?;
        match self.form {
            Form::Hamiltonian => rk4.step(&self.mechanics, t, &mut p)?,
            Form::Lagrangian => rk4.step(&Lagrangian(&self.mechanics), t, &mut p)?,
        }
        store(&p, z)
    }
    fn energy(&self, z: &[f32]) -> keel_core::Result<f32> {
        let p = phase::<N>(z)?;
        Ok(match self.form {
            Form::Hamiltonian => self.mechanics.energy(&p),
            Form::Lagrangian => self
                .mechanics
                .energy(&self.mechanics.from_velocity_form(&p)),
        })
    }
    fn momentum_to_velocity(&self, z: &[f32], out: &mut [f32]) -> keel_core::Result<()> {
        let p = phase::<N>(z)?;
        match self.form {
            Form::Hamiltonian => store(&self.mechanics.to_velocity_form(&p), out),
            Form::Lagrangian => store(&p, out),
        }
    }
    fn velocity_to_momentum(&self, z: &[f32], out: &mut [f32]) -> keel_core::Result<()> {
        let p = phase::<N>(z)?;
        match self.form {
            Form::Hamiltonian => store(&self.mechanics.from_velocity_form(&p), out),
            Form::Lagrangian => store(&p, out),
        }
    }
}

impl DynamicsBody {
    fn flat(&self) -> &dyn Flat {
        match self {
            DynamicsBody::Chain1(s) => s,
            DynamicsBody::Chain2(s) => s,
            DynamicsBody::Chain3(s) => s,
            DynamicsBody::Learned1(s) => s,
            DynamicsBody::Learned2(s) => s,
            DynamicsBody::Learned3(s) => s,
        }
    }
}

/// A chain of `links` with the given parameters.
fn chain(
    links: usize,
    masses: &[f32],
    lengths: &[f32],
    g: f32,
) -> Result<DynamicsBody, KeelStatus> {
    fn build<const N: usize>(
        m: &[f32],
        l: &[f32],
        g: f32,
    ) -> Result<ChainPendulum<f32, N>, KeelStatus> {
        let (Ok(m), Ok(l)) = (<[f32; N]>::try_from(m), <[f32; N]>::try_from(l)) else {
            return Err(KeelStatus::ShapeMismatch);
        };
        Ok(ChainPendulum::new(m, l, g)?)
    }
    Ok(match links {
        1 => DynamicsBody::Chain1(build(masses, lengths, g)?),
        2 => DynamicsBody::Chain2(build(masses, lengths, g)?),
        3 => DynamicsBody::Chain3(build(masses, lengths, g)?),
        _ => return Err(KeelStatus::UnsupportedSize),
    })
}

/// Makes `dynamics` the chain pendulum of `links` (1 to 3) links with the paper's masses, lengths
/// and gravity (`keel_core::dynamics::systems::ChainPendulum::paper`; the firmware's 3-pendulum).
///
/// # Errors
/// `NULL_POINTER`, `MISALIGNED`; `UNSUPPORTED_SIZE` for another link count.
///
/// # Safety
/// `dynamics` points to writable storage of `sizeof(keel_dynamics)` bytes.
#[no_mangle]
pub unsafe extern "C" fn keel_dynamics_chain_pendulum_paper(
    dynamics: *mut KeelDynamics,
    links: usize,
) -> KeelStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        unsafe { boundary::invalidate(dynamics) }?;
        let body = match links {
            1 => DynamicsBody::Chain1(ChainPendulum::paper()?),
            2 => DynamicsBody::Chain2(ChainPendulum::paper()?),
            3 => DynamicsBody::Chain3(ChainPendulum::paper()?),
            _ => return Err(KeelStatus::UnsupportedSize),
        };
        // SAFETY: the caller's contract.
        unsafe { boundary::install(dynamics, body) }
    })
}

/// Makes `dynamics` a chain pendulum of `links` (1 to 3) links with `masses` and `lengths`
/// (`links` floats each, positive and finite) and gravity `gravity` (m/s², finite, along −y).
///
/// # Errors
/// `NULL_POINTER`, `MISALIGNED`; `UNSUPPORTED_SIZE`; `INVALID_ARGUMENT` for a NaN;
/// `INVALID_PARAMETER` for a non-positive or infinite mass or length, or an infinite gravity.
///
/// # Safety
/// `dynamics` as in [`keel_dynamics_chain_pendulum_paper`]; `masses` and `lengths` point to
/// `links` readable floats.
#[no_mangle]
pub unsafe extern "C" fn keel_dynamics_chain_pendulum(
    dynamics: *mut KeelDynamics,
    links: usize,
    masses: *const f32,
    lengths: *const f32,
    gravity: f32,
) -> KeelStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        unsafe { boundary::invalidate(dynamics) }?;
        if !(1..=3).contains(&links) {
            return Err(KeelStatus::UnsupportedSize);
        }
        // SAFETY: the caller's contract.
        let m = unsafe { input(masses, links) }?;
        // SAFETY: the caller's contract.
        let l = unsafe { input(lengths, links) }?;
        no_nan(m)?;
        no_nan(l)?;
        if not_nan(gravity)?.is_infinite() {
            return Err(KeelStatus::InvalidParameter);
        }
        let body = chain(links, m, l, gravity)?;
        // SAFETY: the caller's contract.
        unsafe { boundary::install(dynamics, body) }
    })
}

/// Loads a learned CHNN or CLNN (`keel chnn train --export`) of a planar chain with `N = 1…3`
/// nodes and `N` constraints into `dynamics`. The model never saw the constraint lengths: they
/// are measured on `x0`, `2·N` floats of node positions `(x, y)` of a state of the real system
/// (`x0_len` gives `N`).
///
/// # Errors
/// `NULL_POINTER`, `MISALIGNED`; `UNSUPPORTED_SIZE` if `x0_len` is not 2, 4 or 6; the file's
/// validation errors; `WRONG_KIND` for a file that is not `chnn`/`clnn`; `COUNT_MISMATCH` if the
/// model has another node or constraint count; `SCRATCH_TOO_SMALL` for a potential larger than
/// 3 × 256; `INVALID_ARGUMENT` for a NaN in `x0`. On any error the handle is left invalid.
///
/// # Safety
/// `dynamics` as in [`keel_dynamics_chain_pendulum_paper`]; `bytes` points to `len` bytes that
/// stay valid and unchanged while the handle is used; `x0` to `x0_len` readable floats.
#[no_mangle]
pub unsafe extern "C" fn keel_dynamics_load_learned(
    dynamics: *mut KeelDynamics,
    bytes: *const u8,
    len: usize,
    x0: *const f32,
    x0_len: usize,
) -> KeelStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        unsafe { boundary::invalidate(dynamics) }?;
        // SAFETY: the caller's contract: the bytes outlive every use of the handle.
        let data = unsafe { model_bytes(bytes, len) }?;
        // SAFETY: the caller's contract.
        let x0 = unsafe { input(x0, x0_len) }?;
        no_nan(x0)?;
        let st = SafeTensors::<MAX_TENSORS>::parse(data)?;
        if !matches!(kind_of(&st)?, KeelKind::Chnn | KeelKind::Clnn) {
            return Err(KeelStatus::WrongKind);
        }
        fn load<const N: usize>(
            st: &SafeTensors<'static, MAX_TENSORS>,
            x0: &[f32],
        ) -> Result<LearnedChain<N>, KeelStatus> {
            let mut x = [[0.0f32; 2]; N];
            x.as_flattened_mut().copy_from_slice(x0);
            Ok(learned::load::<
                f32,
                N,
                2,
                N,
                POTENTIAL_LAYERS,
                POTENTIAL_SCRATCH,
                MAX_TENSORS,
            >(st, &x)?)
        }
        let body = match x0_len {
            2 => DynamicsBody::Learned1(load::<1>(&st, x0)?),
            4 => DynamicsBody::Learned2(load::<2>(&st, x0)?),
            6 => DynamicsBody::Learned3(load::<3>(&st, x0)?),
            _ => return Err(KeelStatus::UnsupportedSize),
        };
        // SAFETY: the caller's contract.
        unsafe { boundary::install(dynamics, body) }
    })
}

/// The system's kind (`KEEL_KIND_CHAIN_PENDULUM`, `KEEL_KIND_CHNN` or `KEEL_KIND_CLNN`), its
/// node count `N` and its state length `4·N`; any output pointer may be null to skip it.
///
/// # Errors
/// `NULL_POINTER` (for `dynamics`), `MISALIGNED`, `INVALID_HANDLE`.
///
/// # Safety
/// `dynamics` points to a `keel_dynamics`; each non-null output to a writable value.
#[no_mangle]
pub unsafe extern "C" fn keel_dynamics_info(
    dynamics: *const KeelDynamics,
    kind: *mut i32,
    nodes: *mut usize,
    state_len: *mut usize,
) -> KeelStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        let d = unsafe { boundary::body(dynamics) }?.flat();
        if !kind.is_null() {
            // SAFETY: the caller's contract (non-null checked).
            *unsafe { out(kind) }? = d.kind() as i32;
        }
        if !nodes.is_null() {
            // SAFETY: as above.
            *unsafe { out(nodes) }? = d.nodes();
        }
        if !state_len.is_null() {
            // SAFETY: as above.
            *unsafe { out(state_len) }? = 4 * d.nodes();
        }
        Ok(())
    })
}

/// One classic RK4 step of size `dt` from time `t`, in place on `state` (`state_len = 4·N`).
/// On error `state` is unchanged.
///
/// # Errors
/// `NULL_POINTER`, `MISALIGNED`, `INVALID_HANDLE`; `INVALID_ARGUMENT` for a NaN `dt`, `t` or
/// state component; `INVALID_PARAMETER` for a `dt` that is not positive and finite;
/// `SHAPE_MISMATCH` for a wrong `state_len`; `NON_FINITE` if the step produces NaN or infinity;
/// `SINGULAR` if the constraint system is singular at the state.
///
/// # Safety
/// `dynamics` points to a `keel_dynamics` (whose model bytes, if learned, are still valid);
/// `state` to `state_len` readable and writable floats.
#[no_mangle]
pub unsafe extern "C" fn keel_rk4_step(
    dynamics: *const KeelDynamics,
    dt: f32,
    t: f32,
    state: *mut f32,
    state_len: usize,
) -> KeelStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        let d = unsafe { boundary::body(dynamics) }?.flat();
        let t = not_nan(t)?;
        let rk4 = Rk4::new(not_nan(dt)?)?;
        // SAFETY: the caller's contract.
        let z = unsafe { output(state, state_len, &[]) }?;
        no_nan(z)?;
        Ok(d.rk4(&rk4, t, z)?)
    })
}

/// The total energy `H(x, p)` at `state` (a CLNN's velocity-form state is converted first).
///
/// # Errors
/// As [`keel_rk4_step`] for the handle and `state`; `NULL_POINTER` for `energy`.
///
/// # Safety
/// As [`keel_rk4_step`] (read-only `state`); `energy` points to a writable float.
#[no_mangle]
pub unsafe extern "C" fn keel_dynamics_energy(
    dynamics: *const KeelDynamics,
    state: *const f32,
    state_len: usize,
    energy: *mut f32,
) -> KeelStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        let d = unsafe { boundary::body(dynamics) }?.flat();
        // SAFETY: the caller's contract.
        let z = unsafe { input(state, state_len) }?;
        no_nan(z)?;
        // SAFETY: the caller's contract.
        let e = unsafe { out(energy) }?;
        *e = d.energy(z)?;
        Ok(())
    })
}

/// Shared body of the two conversions.
///
/// # Safety
/// As [`keel_dynamics_to_velocity`].
unsafe fn convert(
    dynamics: *const KeelDynamics,
    state: *const f32,
    out_state: *mut f32,
    state_len: usize,
    to_velocity: bool,
) -> KeelStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        let d = unsafe { boundary::body(dynamics) }?.flat();
        // SAFETY: the caller's contract.
        let z = unsafe { input(state, state_len) }?;
        // SAFETY: the caller's contract; disjoint from `z` (checked).
        let o = unsafe { output(out_state, state_len, &[span(z)]) }?;
        no_nan(z)?;
        if to_velocity {
            d.momentum_to_velocity(z, o)?;
        } else {
            d.velocity_to_momentum(z, o)?;
        }
        Ok(())
    })
}

/// `(x, p) → (x, v)` with the system's (learned) masses; a copy for a CLNN, whose states are
/// already `(x, v)`. `out_state` must not overlap `state`.
///
/// # Errors
/// As [`keel_rk4_step`]; `BUFFER_OVERLAP`.
///
/// # Safety
/// `dynamics` as in [`keel_rk4_step`]; `state` and `out_state` point to `state_len` floats
/// (readable, resp. writable).
#[no_mangle]
pub unsafe extern "C" fn keel_dynamics_to_velocity(
    dynamics: *const KeelDynamics,
    state: *const f32,
    out_state: *mut f32,
    state_len: usize,
) -> KeelStatus {
    // SAFETY: forwarded contract.
    unsafe { convert(dynamics, state, out_state, state_len, true) }
}

/// `(x, v) → (x, p)`, the inverse of [`keel_dynamics_to_velocity`] (e.g. to start a learned
/// CHNN from a real chain's velocity-form state).
///
/// # Errors
/// As [`keel_dynamics_to_velocity`].
///
/// # Safety
/// As [`keel_dynamics_to_velocity`].
#[no_mangle]
pub unsafe extern "C" fn keel_dynamics_from_velocity(
    dynamics: *const KeelDynamics,
    state: *const f32,
    out_state: *mut f32,
    state_len: usize,
) -> KeelStatus {
    // SAFETY: forwarded contract.
    unsafe { convert(dynamics, state, out_state, state_len, false) }
}

/// A chain pendulum's state for absolute link angles (from the downward vertical, rad) and
/// angular velocities (rad/s), `links` floats each: the Hamiltonian form `(x, p)` if
/// `velocity_form` is 0, else `(x, v)`. Written to `state` (`state_len = 4·links`).
///
/// # Errors
/// `NULL_POINTER`, `MISALIGNED`, `INVALID_HANDLE`; `WRONG_KIND` for a learned system (it knows
/// no link lengths); `SHAPE_MISMATCH` if `links` or `state_len` does not match the chain;
/// `INVALID_ARGUMENT` for a NaN angle or rate; `BUFFER_OVERLAP`.
///
/// # Safety
/// `dynamics` as in [`keel_rk4_step`]; `angles`, `rates` point to `links` readable floats,
/// `state` to `state_len` writable floats.
#[no_mangle]
pub unsafe extern "C" fn keel_dynamics_state_from_angles(
    dynamics: *const KeelDynamics,
    angles: *const f32,
    rates: *const f32,
    links: usize,
    velocity_form: i32,
    state: *mut f32,
    state_len: usize,
) -> KeelStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        let d = unsafe { boundary::body(dynamics) }?.flat();
        // SAFETY: the caller's contract.
        let a = unsafe { input(angles, links) }?;
        // SAFETY: the caller's contract.
        let r = unsafe { input(rates, links) }?;
        no_nan(a)?;
        no_nan(r)?;
        // SAFETY: the caller's contract; disjoint from the inputs (checked).
        let z = unsafe { output(state, state_len, &[span(a), span(r)]) }?;
        d.angles_to_state(a, r, velocity_form != 0, z)
    })
}
