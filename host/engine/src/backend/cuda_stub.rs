//! The CUDA backend's stand-in when keel is built without the `cuda` feature: every request for
//! a GPU is [`Error::CudaNotCompiled`], and `CudaStorage` has no values, so the CPU-only build
//! carries no dead GPU paths.

use super::cpu::CpuStorage;
use super::ops::{BinaryOp, MatmulDims, UnaryOp};
use super::{AdamHyper, DType, SgdHyper};
use crate::error::{Error, Result};
use crate::tensor::Shape;

/// A GPU the machine offers.
#[derive(Clone, Debug, PartialEq)]
pub struct GpuInfo {
    /// Ordinal.
    pub ordinal: usize,
    /// Device name.
    pub name: String,
    /// Total memory in bytes.
    pub total_mem: usize,
    /// Compute capability.
    pub compute_capability: (i32, i32),
}

/// Versions of the CUDA libraries found.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct CudaVersions {
    /// Driver API version (e.g. 13000).
    pub driver: Option<i32>,
    /// NVRTC version.
    pub nvrtc: Option<(i32, i32)>,
}

/// The GPUs usable here, or why none is.
///
/// # Errors
/// Always, in this build: the reason names the missing feature.
pub fn probe() -> std::result::Result<Vec<GpuInfo>, String> {
    Err("this build has no CUDA support (built without the `cuda` feature)".into())
}

/// NCCL's stand-in: no library, no communicator.
pub mod nccl {
    use crate::error::{Error, Result};
    use crate::tensor::Tensor;

    /// Why NCCL cannot be used.
    ///
    /// # Errors
    /// Always, in this build.
    pub fn library() -> std::result::Result<i32, String> {
        Err("this build has no CUDA support (built without the `cuda` feature)".into())
    }

    /// A new NCCL unique id.
    ///
    /// # Errors
    /// [`Error::CudaNotCompiled`].
    pub fn unique_id() -> Result<[u8; 128]> {
        Err(Error::CudaNotCompiled)
    }

    /// A communicator; none can be made in this build.
    #[derive(Debug)]
    pub struct Communicator {
        never: std::convert::Infallible,
    }

    impl Communicator {
        /// Joins a communicator.
        ///
        /// # Errors
        /// [`Error::CudaNotCompiled`].
        pub fn new(_ordinal: usize, _rank: usize, _size: usize, _id: &[u8; 128]) -> Result<Self> {
            Err(Error::CudaNotCompiled)
        }

        /// This process's rank.
        pub fn rank(&self) -> usize {
            match self.never {}
        }

        /// Ranks in the communicator.
        pub fn size(&self) -> usize {
            match self.never {}
        }

        /// The GPU it runs on.
        pub fn ordinal(&self) -> usize {
            match self.never {}
        }

        /// The sum over the ranks.
        ///
        /// # Errors
        /// None can be called: no communicator exists in this build.
        pub fn sum(&self, _t: &Tensor) -> Result<Tensor> {
            match self.never {}
        }
    }
}

/// Library versions (none in this build).
pub fn versions() -> CudaVersions {
    CudaVersions::default()
}

/// Opens GPU `ordinal`.
///
/// # Errors
/// [`Error::CudaNotCompiled`].
pub fn open(_ordinal: usize) -> Result<()> {
    Err(Error::CudaNotCompiled)
}

/// Compiles every kernel to PTX (the CI check).
///
/// # Errors
/// [`Error::CudaNotCompiled`].
pub fn compile_all_kernels(_arch: &'static str) -> Result<Vec<(String, usize)>> {
    Err(Error::CudaNotCompiled)
}

/// Waits for a GPU.
///
/// # Errors
/// [`Error::CudaNotCompiled`].
pub fn synchronize(_ordinal: usize) -> Result<()> {
    Err(Error::CudaNotCompiled)
}

/// Peak memory bandwidth of a GPU.
///
/// # Errors
/// [`Error::CudaNotCompiled`].
pub fn peak_bandwidth(_ordinal: usize) -> Result<f64> {
    Err(Error::CudaNotCompiled)
}

/// Bytes of a GPU's memory pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolMemory {
    /// Held from the driver.
    pub reserved: u64,
    /// In use by live allocations.
    pub used: u64,
}

/// A GPU's memory pool.
///
/// # Errors
/// [`Error::CudaNotCompiled`].
pub fn pool_memory(_ordinal: usize) -> Result<PoolMemory> {
    Err(Error::CudaNotCompiled)
}

/// GPU memory (no values exist in this build).
#[derive(Debug)]
pub enum CudaStorage {}

#[allow(missing_docs, clippy::missing_errors_doc, clippy::too_many_arguments)]
impl CudaStorage {
    pub fn len(&self) -> usize {
        match *self {}
    }
    pub fn is_empty(&self) -> bool {
        match *self {}
    }
    pub fn dtype(&self) -> DType {
        match *self {}
    }
    pub fn ordinal(&self) -> usize {
        match *self {}
    }
    pub fn full(_ordinal: usize, _v: f64, _n: usize, _dtype: DType) -> Result<CudaStorage> {
        Err(Error::CudaNotCompiled)
    }
    pub fn from_cpu(_ordinal: usize, _c: &CpuStorage) -> Result<CudaStorage> {
        Err(Error::CudaNotCompiled)
    }
    pub fn randn(_ordinal: usize, _n: usize, _dtype: DType, _seed: u64) -> Result<CudaStorage> {
        Err(Error::CudaNotCompiled)
    }
    pub fn to_cpu(&self) -> Result<CpuStorage> {
        match *self {}
    }
    pub fn try_clone(&self) -> Result<CudaStorage> {
        match *self {}
    }
    pub fn unary(&self, _op: UnaryOp) -> Result<CudaStorage> {
        match *self {}
    }
    pub fn affine(&self, _a: f64, _b: f64) -> Result<CudaStorage> {
        match *self {}
    }
    pub fn powf(&self, _c: f64) -> Result<CudaStorage> {
        match *self {}
    }
    pub fn binary(
        &self,
        _op: BinaryOp,
        _sa: &Shape,
        _b: &CudaStorage,
        _sb: &Shape,
        _out: &Shape,
        _name: &'static str,
    ) -> Result<CudaStorage> {
        match *self {}
    }
    pub fn where_(
        m: &CudaStorage,
        _sm: &Shape,
        _a: &CudaStorage,
        _sa: &Shape,
        _b: &CudaStorage,
        _sb: &Shape,
        _out: &Shape,
    ) -> Result<CudaStorage> {
        match *m {}
    }
    pub fn matmul(
        &self,
        _b: &CudaStorage,
        _a_stride: usize,
        _b_stride: usize,
        _batch: usize,
        _d: MatmulDims,
    ) -> Result<CudaStorage> {
        match *self {}
    }
    pub fn reduce_axis(
        &self,
        _name: &'static str,
        _o: usize,
        _d: usize,
        _i: usize,
    ) -> Result<CudaStorage> {
        match *self {}
    }
    pub fn strided_copy(
        &self,
        _out: &Shape,
        _offset: usize,
        _strides: &[usize],
    ) -> Result<CudaStorage> {
        match *self {}
    }
    pub fn copy_block_from(
        &mut self,
        _src: &CudaStorage,
        _o: usize,
        _d_src: usize,
        _i: usize,
        _d_dst: usize,
        _offset: usize,
    ) -> Result<()> {
        match *self {}
    }
    pub fn index_op(
        &self,
        _name: &'static str,
        _o: usize,
        _d: usize,
        _i: usize,
        _idx: &[usize],
    ) -> Result<CudaStorage> {
        match *self {}
    }
    pub fn cast(&self, _dtype: DType) -> Result<CudaStorage> {
        match *self {}
    }
    pub fn im2col(&self, _g: &crate::backend::ops::PatchGeom, _fill: f64) -> Result<CudaStorage> {
        match *self {}
    }
    pub fn col2im(&self, _g: &crate::backend::ops::PatchGeom) -> Result<CudaStorage> {
        match *self {}
    }
    pub fn adam(
        &self,
        _g: &CudaStorage,
        _m: &mut CudaStorage,
        _v: &mut CudaStorage,
        _h: &AdamHyper,
    ) -> Result<CudaStorage> {
        match *self {}
    }
    pub fn sgd(
        &self,
        _g: &CudaStorage,
        _buf: Option<&mut CudaStorage>,
        _h: &SgdHyper,
    ) -> Result<CudaStorage> {
        match *self {}
    }
    pub fn hmc_leapfrog(
        &mut self,
        _p: &mut CudaStorage,
        _g: &CudaStorage,
        _h: &crate::backend::hmc::LeapfrogArgs,
    ) -> Result<()> {
        match *self {}
    }
    pub fn hmc_sum_squares(&self) -> Result<Vec<f64>> {
        match *self {}
    }
    pub fn hmc_prior_difference(
        &self,
        _old: &CudaStorage,
        _prior: &crate::backend::hmc::PriorArgs,
    ) -> Result<Vec<f64>> {
        match *self {}
    }
}
