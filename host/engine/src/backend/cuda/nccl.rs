//! NCCL, NVIDIA's collective communication library, through cudarc's `nccl` module: the sum of a
//! tensor over the GPUs of several processes (one process per GPU, `ncclCommInitRank`), without
//! copying it to the host. NCCL is loaded at run time like the other CUDA libraries; [`library`]
//! says whether it can be, and why not — a caller without it sums through host buffers.
//!
//! How the processes meet is the caller's: rank 0 makes a [`unique_id`] and hands the same
//! 128 bytes to every rank (by MPI, say), and each rank opens its [`Communicator`] with them.

use std::sync::Arc;

use cudarc::nccl::{Comm, Id};

use super::device::{device, GpuDevice};
use crate::backend::{Device, Storage};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// NCCL's version (e.g. 22105 for 2.21.5), or why it cannot be used.
///
/// # Errors
/// No library: cudarc opens `libnccl.so` (and CUDA-versioned names), not the `libnccl.so.2` that
/// NCCL's packages and wheels install without a development link; that case is named.
pub fn library() -> std::result::Result<i32, String> {
    // SAFETY: only tries to dlopen the library; no NCCL call is made.
    if !unsafe { cudarc::nccl::sys::is_culib_present() } {
        // SAFETY: loading NCCL runs no initialiser with preconditions; it is dropped at once.
        let soname = unsafe { libloading::Library::new("libnccl.so.2") }.is_ok();
        return Err(if soname {
            "libnccl.so.2 is on the library path but cudarc opens libnccl.so: add a link \
             (ln -s libnccl.so.2 libnccl.so) in a folder on LD_LIBRARY_PATH"
                .into()
        } else {
            "no NCCL library (libnccl.so) on this machine".into()
        });
    }
    cudarc::nccl::result::get_nccl_version().map_err(|e| format!("ncclGetVersion: {e:?}"))
}

fn usable() -> Result<()> {
    library()
        .map(|_| ())
        .map_err(|reason| Error::NoGpu { reason })
}

fn nccl_error(op: &'static str) -> impl Fn(cudarc::nccl::result::NcclError) -> Error {
    move |e| Error::Cuda {
        op: op.into(),
        detail: format!("{e:?}"),
    }
}

/// A new NCCL unique id: made once, on rank 0, and given to every rank's [`Communicator::new`].
///
/// # Errors
/// [`Error::NoGpu`] without NCCL; NCCL's failure.
pub fn unique_id() -> Result<[u8; 128]> {
    usable()?;
    let id = Id::new().map_err(nccl_error("ncclGetUniqueId"))?;
    Ok(id.internal().map(|c| c as u8))
}

/// One rank's NCCL communicator on its GPU. Its collectives run on the engine's stream of that
/// GPU, so they are ordered after the launches that made their inputs and before those that read
/// their outputs.
pub struct Communicator {
    comm: Comm,
    dev: Arc<GpuDevice>,
}

impl std::fmt::Debug for Communicator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Communicator(rank {} of {}, cuda:{})",
            self.comm.rank(),
            self.comm.world_size(),
            self.dev.ordinal
        )
    }
}

impl Communicator {
    /// Joins the communicator of `size` ranks that `id` names, as rank `rank`, on GPU `ordinal`.
    /// Every rank must call it (NCCL waits until all have).
    ///
    /// # Errors
    /// [`Error::NoGpu`] (no NCCL, no such GPU); `rank` not below `size`; NCCL's failure.
    pub fn new(ordinal: usize, rank: usize, size: usize, id: &[u8; 128]) -> Result<Self> {
        if rank >= size {
            return Err(Error::invalid(
                "rank",
                rank,
                format!("not a rank of a group of {size}"),
            ));
        }
        usable()?;
        let dev = device(ordinal)?;
        dev.bind()?;
        let id = Id::uninit(id.map(|b| b as core::ffi::c_char));
        let comm = Comm::from_rank(dev.stream.clone(), rank, size, id)
            .map_err(nccl_error("ncclCommInitRank"))?;
        Ok(Communicator { comm, dev })
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.comm.rank()
    }

    /// Ranks in the communicator.
    pub fn size(&self) -> usize {
        self.comm.world_size()
    }

    /// The GPU it runs on.
    pub fn ordinal(&self) -> usize {
        self.dev.ordinal
    }

    /// The element-wise sum over the ranks of `t` (on this communicator's GPU), in a new tensor
    /// (not recorded for autodiff); every rank receives the same values (NCCL's all-reduce).
    ///
    /// # Errors
    /// A tensor elsewhere than this communicator's GPU; NCCL's or an allocation's failure.
    pub fn sum(&self, t: &Tensor) -> Result<Tensor> {
        match t.storage() {
            Storage::Cuda(s) if s.ordinal() == self.dev.ordinal => Ok(Tensor::from_storage(
                Storage::Cuda(s.all_reduce_sum(&self.comm)?),
                t.shape(),
            )),
            _ => Err(Error::DeviceMismatch {
                op: "nccl sum",
                lhs: t.device(),
                rhs: Device::Cuda(self.dev.ordinal),
            }),
        }
    }
}
