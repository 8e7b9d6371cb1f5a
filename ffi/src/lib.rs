//! # keel-ffi
//!
//! A C API for `keel-core`, for controller firmware written in C or C++: load a model the host
//! exported (a safetensors file, read in place from flash), evaluate it with caller scratch,
//! step a constrained system (a chain pendulum or a learned CHNN/CLNN) with RK4, run a control
//! environment, update and query an online GP (WISKI), and adapt a regression MLP to a few new
//! points by its linearisation (the finite-NTK GP). Single precision (`float`)
//! throughout: that is what runs on the controller.
//!
//! The header is `ffi/include/keel.h`, generated from this crate by cbindgen (`ffi/cbindgen.toml`;
//! the test `header_is_current` fails when it is stale and says how to regenerate it).
//!
//! ## Contract (also in the header)
//! - **Status codes.** Every function returns a `keel_status` (`KEEL_STATUS_OK` = 0); outputs
//!   go through pointer arguments. `keel_status_str` names a code. Nothing panics across the
//!   boundary: inputs are checked (null pointers, alignment, lengths, NaNs, kinds) and reported
//!   as codes. On hosts with `std` a panic — a bug — is caught and returned as
//!   `KEEL_STATUS_PANIC`; on bare metal (`target_os = "none"`) the crate's panic handler
//!   executes `udf` (a HardFault), which the firmware's fault handler reports.
//! - **No allocation.** Handles (`keel_model`, `keel_dynamics`, `keel_wiski`, `keel_env`,
//!   `keel_ntk`) are
//!   plain structs of fixed size, 8-byte aligned, that the caller declares wherever it likes
//!   (static, stack); an initialising call fills one, and on failure leaves it invalid (later
//!   calls on it return `KEEL_STATUS_INVALID_HANDLE`). They hold no pointers to themselves, so
//!   copying one copies the handle; nothing needs freeing.
//! - **Borrowed memory.** A model or learned system points into its file's bytes, a WISKI GP
//!   into its `memory`, and an NTK adaptation into its `memory` and its `keel_model` handle:
//!   those must stay valid (and, for GP and NTK memory, untouched by the caller; for the model
//!   handle, in place and not reloaded) while the handle is used. Scratch is only used during a
//!   call.
//! - **Threads.** Calls that take a `const` handle may run concurrently on one handle with
//!   separate scratch and outputs; calls that take a mutable handle need exclusive access.
//!
//! `unsafe` lives only in this crate (the core forbids it); each block has a `SAFETY` comment,
//! and every raw pointer passes through `boundary` (null, alignment, length and overlap checks)
//! before it becomes a reference.

#![cfg_attr(target_os = "none", no_std)]
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

mod boundary;
pub mod dynamics;
pub mod env;
pub mod model;
pub mod ntk;
pub mod status;
pub mod tensor;
pub mod wiski;

pub use dynamics::{KeelDynamics, KEEL_DYNAMICS_WORDS};
pub use env::{KeelEnv, KeelEnvKind, KEEL_ENV_WORDS};
pub use model::{KeelKind, KeelModel, KEEL_MODEL_WORDS};
pub use ntk::{KeelNtk, KeelNtkPrior, KEEL_NTK_MAX_POINTS, KEEL_NTK_WORDS};
pub use status::{keel_status_str, KeelStatus};
pub use tensor::keel_tensor_read;
pub use wiski::{KeelWiski, KeelWiskiConfig, KEEL_WISKI_MAX_NODES, KEEL_WISKI_WORDS};

/// On bare metal a panic (a bug: the API checks its inputs and the core returns errors) must
/// not return into C: trap with a permanently undefined instruction, which raises a HardFault
/// the firmware reports (the C example's handler prints and exits with failure).
#[cfg(target_os = "none")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    #[cfg(target_arch = "arm")]
    // SAFETY: `udf` only raises the undefined-instruction fault; it touches no memory.
    unsafe {
        core::arch::asm!("udf #0", options(nomem, nostack, noreturn))
    }
    // Other bare-metal targets: stop here (a debugger sees where).
    #[cfg(not(target_arch = "arm"))]
    loop {
        core::hint::spin_loop();
    }
}

/// Checks that the header the caller compiled against matches this library: pass
/// `sizeof(keel_model)`, `sizeof(keel_dynamics)`, `sizeof(keel_wiski)`, `sizeof(keel_env)` and
/// `sizeof(keel_ntk)`.
/// Call it once at start-up; a mismatch means a stale header or a library built for another
/// pointer width.
///
/// # Errors
/// `KEEL_STATUS_INVALID_ARGUMENT` if any size differs from the library's.
#[no_mangle]
pub extern "C" fn keel_abi_check(
    model: usize,
    dynamics: usize,
    wiski: usize,
    env: usize,
    ntk: usize,
) -> KeelStatus {
    use core::mem::size_of;
    let ours = [
        size_of::<KeelModel>(),
        size_of::<KeelDynamics>(),
        size_of::<KeelWiski>(),
        size_of::<KeelEnv>(),
        size_of::<KeelNtk>(),
    ];
    if ours == [model, dynamics, wiski, env, ntk] {
        KeelStatus::Ok
    } else {
        KeelStatus::InvalidArgument
    }
}
