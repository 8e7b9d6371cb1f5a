//! The CUDA backend through `cudarc`: cuBLAS for matrix products, cuRAND for random numbers, and
//! Keel's own kernels (`cuda/*.cu` at the repository root, embedded in the binary) for everything
//! else, compiled by NVRTC on first use for the device's architecture and cached on disk keyed by
//! source hash and architecture.
//!
//! cudarc loads the CUDA libraries at run time and *panics* if one is missing, so every entry
//! point first checks `is_culib_present()` and turns an absent driver, NVRTC or device into
//! [`Error::NoGpu`](crate::Error::NoGpu) with the reason.
//!
//! `unsafe` lives here (kernel launches and cuBLAS calls), each block with a `// SAFETY:` line
//! naming the kernel signature it matches.

mod device;
pub mod nccl;
mod storage;

pub use device::{
    compile_all_kernels, open, peak_bandwidth, pool_memory, probe, synchronize, versions,
    CudaVersions, GpuInfo, PoolMemory,
};
pub use storage::CudaStorage;

/// The kernel sources, one file per op family (`{op}_{dtype}` names inside).
pub(crate) const SOURCES: &[(&str, &str)] = &[
    ("unary", include_str!("../../../../../cuda/unary.cu")),
    ("binary", include_str!("../../../../../cuda/binary.cu")),
    ("reduce", include_str!("../../../../../cuda/reduce.cu")),
    ("layout", include_str!("../../../../../cuda/layout.cu")),
    ("index", include_str!("../../../../../cuda/index.cu")),
    ("cast", include_str!("../../../../../cuda/cast.cu")),
    ("optim", include_str!("../../../../../cuda/optim.cu")),
    ("hmc", include_str!("../../../../../cuda/hmc.cu")),
    ("conv", include_str!("../../../../../cuda/conv.cu")),
];
