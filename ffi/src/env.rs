//! `keel_env`: the core's control environments (`keel_core::rl`) for a closed loop on the
//! controller: gymnasium's Pendulum-v1, the cart-pole swing-up and the acrobot, stepped with
//! normalised actions in `[−1, 1]` (a policy's `keel_model_eval` output).

use keel_core::rl::{Acrobot, CartPoleSwingUp, Env, Pendulum, Step};

use crate::boundary::{self, guard, input, no_nan, out, output, span, Handle};
use crate::status::KeelStatus;

/// Which environment (`keel_env_init`).
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeelEnvKind {
    /// Pendulum-v1: state `(θ, θ̇)`, observation `(cos θ, sin θ, θ̇)`, one torque.
    Pendulum = 1,
    /// Cart-pole swing-up: state `(x, ẋ, θ, θ̇)`, 5 observations, one force.
    CartPole = 2,
    /// Acrobot: state `(θ₁, θ₂, θ̇₁, θ̇₂)` (absolute angles), 6 observations, one elbow torque.
    Acrobot = 3,
}

/// Words of storage in a `keel_env` (64-bit targets: the bodies hold pointers and `usize`s, so
/// twice what they take on a 32-bit controller; a compile-time assertion keeps it enough).
#[cfg(target_pointer_width = "64")]
pub const KEEL_ENV_WORDS: usize = 56;
/// Words of storage in a `keel_env` (32-bit targets such as Cortex-M).
#[cfg(not(target_pointer_width = "64"))]
pub const KEEL_ENV_WORDS: usize = 40;

/// Storage for one environment. The contents are private.
#[repr(C)]
pub struct KeelEnv {
    /// Private.
    pub opaque: [u64; KEEL_ENV_WORDS],
}

/// An environment of the C API.
// It lives in the caller's fixed-size storage, never moved or boxed: the variants' sizes differ
// by design.
#[allow(clippy::large_enum_variant)]
pub(crate) enum EnvBody {
    Pendulum(Pendulum<f32>),
    CartPole(CartPoleSwingUp<f32>),
    Acrobot(Acrobot<f32>),
}

impl Handle for KeelEnv {
    type Body = EnvBody;
    const MAGIC: u64 = u64::from_le_bytes(*b"keel-env");
}

impl EnvBody {
    fn sizes(&self) -> (usize, usize) {
        match self {
            EnvBody::Pendulum(_) => (2, 3),
            EnvBody::CartPole(_) => (4, 5),
            EnvBody::Acrobot(_) => (4, 6),
        }
    }
}

/// Writes a step's observation into `obs` (length checked).
fn emit<const O: usize>(s: Step<f32, O>, obs: &mut [f32]) -> Result<(f32, bool, bool), KeelStatus> {
    if obs.len() != O {
        return Err(KeelStatus::ShapeMismatch);
    }
    obs.copy_from_slice(&s.observation);
    Ok((s.reward, s.terminated, s.truncated))
}

/// Makes `env` a new environment of `kind` (a `keel_env_kind`), in the environment's default
/// start state (Pendulum-v1 and the cart-pole: hanging down at rest; acrobot: at rest).
///
/// # Errors
/// `NULL_POINTER`, `MISALIGNED`; `INVALID_ARGUMENT` for an unknown kind.
///
/// # Safety
/// `env` points to writable storage of `sizeof(keel_env)` bytes.
#[no_mangle]
pub unsafe extern "C" fn keel_env_init(env: *mut KeelEnv, kind: i32) -> KeelStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        unsafe { boundary::invalidate(env) }?;
        let body = match kind {
            1 => EnvBody::Pendulum(Pendulum::new()),
            2 => EnvBody::CartPole(CartPoleSwingUp::new()),
            3 => EnvBody::Acrobot(Acrobot::new()?),
            _ => return Err(KeelStatus::InvalidArgument),
        };
        // SAFETY: the caller's contract.
        unsafe { boundary::install(env, body) }
    })
}

/// The lengths of the environment's state and observation; either pointer may be null.
///
/// # Errors
/// `NULL_POINTER` (for `env`), `MISALIGNED`, `INVALID_HANDLE`.
///
/// # Safety
/// `env` points to a `keel_env`; each non-null output to a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn keel_env_sizes(
    env: *const KeelEnv,
    state_len: *mut usize,
    observation_len: *mut usize,
) -> KeelStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        let (s, o) = unsafe { boundary::body(env) }?.sizes();
        if !state_len.is_null() {
            // SAFETY: the caller's contract (non-null checked).
            *unsafe { out(state_len) }? = s;
        }
        if !observation_len.is_null() {
            // SAFETY: as above.
            *unsafe { out(observation_len) }? = o;
        }
        Ok(())
    })
}

/// Starts an episode at `state` (see `keel_env_kind` for its layout) and writes the first
/// observation to `obs` (`obs_len` = the observation length).
///
/// # Errors
/// `NULL_POINTER`, `MISALIGNED`, `INVALID_HANDLE`; `SHAPE_MISMATCH` for a wrong length;
/// `INVALID_ARGUMENT` for a NaN in `state`; `BUFFER_OVERLAP`.
///
/// # Safety
/// `env` points to an initialised `keel_env`; `state` to `state_len` readable floats, `obs` to
/// `obs_len` writable floats.
#[no_mangle]
pub unsafe extern "C" fn keel_env_set_state(
    env: *mut KeelEnv,
    state: *const f32,
    state_len: usize,
    obs: *mut f32,
    obs_len: usize,
) -> KeelStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        let e = unsafe { boundary::body_mut(env) }?;
        // SAFETY: the caller's contract.
        let s = unsafe { input(state, state_len) }?;
        // SAFETY: the caller's contract; disjoint from `state` (checked).
        let o = unsafe { output(obs, obs_len, &[span(s)]) }?;
        if s.len() != e.sizes().0 || o.len() != e.sizes().1 {
            return Err(KeelStatus::ShapeMismatch);
        }
        no_nan(s)?;
        match e {
            EnvBody::Pendulum(p) => {
                p.set_state([s[0], s[1]]);
                o.copy_from_slice(&p.observation());
            }
            EnvBody::CartPole(c) => {
                c.set_state([s[0], s[1], s[2], s[3]]);
                o.copy_from_slice(&c.observation());
            }
            EnvBody::Acrobot(a) => {
                a.set_angles([s[0], s[1]], [s[2], s[3]]);
                o.copy_from_slice(&a.observation());
            }
        }
        Ok(())
    })
}

/// The environment's current state (layout as in `keel_env_kind`).
///
/// # Errors
/// `NULL_POINTER`, `MISALIGNED`, `INVALID_HANDLE`; `SHAPE_MISMATCH` for a wrong `state_len`.
///
/// # Safety
/// `env` points to an initialised `keel_env`; `state` to `state_len` writable floats.
#[no_mangle]
pub unsafe extern "C" fn keel_env_state(
    env: *const KeelEnv,
    state: *mut f32,
    state_len: usize,
) -> KeelStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        let e = unsafe { boundary::body(env) }?;
        // SAFETY: the caller's contract.
        let s = unsafe { output(state, state_len, &[]) }?;
        if s.len() != e.sizes().0 {
            return Err(KeelStatus::ShapeMismatch);
        }
        match e {
            EnvBody::Pendulum(p) => s.copy_from_slice(&p.state()),
            EnvBody::CartPole(c) => s.copy_from_slice(&c.state()),
            EnvBody::Acrobot(a) => {
                let (th, w) = a.angles();
                s[..2].copy_from_slice(&th);
                s[2..].copy_from_slice(&w);
            }
        }
        Ok(())
    })
}

/// One control interval with the normalised `action` (`action_len` = 1; clamped to `[−1, 1]`):
/// writes the next observation, the reward, and whether the episode terminated or was
/// truncated (each flag pointer may be null).
///
/// # Errors
/// `NULL_POINTER`, `MISALIGNED`, `INVALID_HANDLE`; `SHAPE_MISMATCH` for a wrong length;
/// `INVALID_ARGUMENT` for a NaN action; `NON_FINITE` if the state blows up; `BUFFER_OVERLAP`.
///
/// # Safety
/// `env` points to an initialised `keel_env`; `action` to `action_len` readable floats; `obs` to
/// `obs_len` writable floats; `reward` to a writable float; non-null flags to writable `int32_t`s.
#[no_mangle]
pub unsafe extern "C" fn keel_env_step(
    env: *mut KeelEnv,
    action: *const f32,
    action_len: usize,
    obs: *mut f32,
    obs_len: usize,
    reward: *mut f32,
    terminated: *mut i32,
    truncated: *mut i32,
) -> KeelStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        let e = unsafe { boundary::body_mut(env) }?;
        // SAFETY: the caller's contract.
        let a = unsafe { input(action, action_len) }?;
        // SAFETY: the caller's contract; disjoint from `action` (checked).
        let o = unsafe { output(obs, obs_len, &[span(a)]) }?;
        // SAFETY: the caller's contract; disjoint from the other buffers (checked).
        let r = &mut unsafe { output(reward, 1, &[span(a), span(o)]) }?[0];
        let a: [f32; 1] = a.try_into().map_err(|_| KeelStatus::ShapeMismatch)?;
        no_nan(&a)?;
        if o.len() != e.sizes().1 {
            return Err(KeelStatus::ShapeMismatch);
        }
        let (rew, term, trunc) = match e {
            EnvBody::Pendulum(p) => emit(p.step(&a)?, o)?,
            EnvBody::CartPole(c) => emit(c.step(&a)?, o)?,
            EnvBody::Acrobot(ac) => emit(ac.step(&a)?, o)?,
        };
        *r = rew;
        if !terminated.is_null() {
            // SAFETY: the caller's contract (non-null checked).
            *unsafe { out(terminated) }? = i32::from(term);
        }
        if !truncated.is_null() {
            // SAFETY: as above.
            *unsafe { out(truncated) }? = i32::from(trunc);
        }
        Ok(())
    })
}
