//! Back ends behind the tensor API. [`Storage`] is the dispatch point (operations in
//! [`ops`]): the CPU backend, and the CUDA backend through `cudarc` when the `cuda` feature is on
//! (the default). With the feature off, a same-named stub module makes every CUDA request an
//! [`Error::CudaNotCompiled`], so no operation sprouts `#[cfg]`s.

pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
#[cfg(not(feature = "cuda"))]
#[path = "cuda_stub.rs"]
pub mod cuda;
pub mod hmc;
pub mod launch;
pub mod ops;

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// Element type of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit float.
    F32,
    /// 64-bit float.
    F64,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F64 => 8,
        }
    }

    /// `"f32"` or `"f64"` (kernel name suffixes).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a tensor lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Device {
    /// Host memory.
    #[default]
    Cpu,
    /// An NVIDIA GPU by ordinal.
    Cuda(usize),
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl Device {
    /// Checks that this build and machine can use the device.
    ///
    /// # Errors
    /// [`Error::CudaNotCompiled`] in a build without CUDA; [`Error::NoGpu`] naming why this
    /// machine cannot use the GPU.
    pub fn check(self) -> Result<()> {
        match self {
            Device::Cpu => Ok(()),
            Device::Cuda(n) => cuda::open(n).map(|_| ()),
        }
    }
}

/// What the user asked for with `--device`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeviceRequest {
    /// A GPU if one is usable, else the CPU with a one-line notice.
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// GPU `n` (an error if it is not usable).
    Cuda(usize),
}

impl FromStr for DeviceRequest {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(DeviceRequest::Auto),
            "cpu" => Ok(DeviceRequest::Cpu),
            "cuda" | "gpu" => Ok(DeviceRequest::Cuda(0)),
            _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => Ok(DeviceRequest::Cuda(n)),
                _ => Err(Error::UnknownDevice {
                    name: s.to_string(),
                }),
            },
        }
    }
}

impl DeviceRequest {
    /// Resolves the request on this machine. `auto` falls back to the CPU, returning the reason
    /// as a notice to print (one line).
    ///
    /// # Errors
    /// For an explicit `cuda[:N]` that is not usable: [`Error::NoGpu`] or
    /// [`Error::CudaNotCompiled`].
    pub fn resolve(self) -> Result<(Device, Option<String>)> {
        match self {
            DeviceRequest::Cpu => Ok((Device::Cpu, None)),
            DeviceRequest::Cuda(n) => Device::Cuda(n).check().map(|()| (Device::Cuda(n), None)),
            DeviceRequest::Auto => match Device::Cuda(0).check() {
                Ok(()) => Ok((Device::Cuda(0), None)),
                Err(e) => Ok((Device::Cpu, Some(format!("keel: running on the CPU ({e})")))),
            },
        }
    }
}

/// A tensor's buffer on some device.
#[derive(Debug)]
pub enum Storage {
    /// Host memory.
    Cpu(cpu::CpuStorage),
    /// GPU memory.
    Cuda(cuda::CudaStorage),
}

impl Storage {
    /// Element type.
    pub fn dtype(&self) -> DType {
        match self {
            Storage::Cpu(cpu::CpuStorage::F32(_)) => DType::F32,
            Storage::Cpu(cpu::CpuStorage::F64(_)) => DType::F64,
            Storage::Cuda(g) => g.dtype(),
        }
    }

    /// Device.
    pub fn device(&self) -> Device {
        match self {
            Storage::Cpu(_) => Device::Cpu,
            Storage::Cuda(g) => Device::Cuda(g.ordinal()),
        }
    }

    /// The host buffer, if this lives on the CPU.
    pub fn as_cpu(&self) -> Option<&cpu::CpuStorage> {
        match self {
            Storage::Cpu(c) => Some(c),
            Storage::Cuda(_) => None,
        }
    }
}

/// Adam/AdamW scalars of one step (see `optim.rs`).
#[derive(Clone, Copy, Debug)]
pub struct AdamHyper {
    /// β₁.
    pub b1: f64,
    /// β₂.
    pub b2: f64,
    /// lr / (1 − β₁ᵗ).
    pub step_size: f64,
    /// 1 / √(1 − β₂ᵗ).
    pub inv_sqrt_bc2: f64,
    /// ε.
    pub eps: f64,
    /// L2 decay added to the gradient (Adam).
    pub wd: f64,
    /// Multiplier of p (AdamW: 1 − lr·λ).
    pub decay: f64,
}

/// SGD scalars of one step (see `optim.rs`).
#[derive(Clone, Copy, Debug)]
pub struct SgdHyper {
    /// Learning rate.
    pub lr: f64,
    /// L2 decay.
    pub wd: f64,
    /// Momentum kept from the buffer (0 on the first step).
    pub keep: f64,
    /// Nesterov weight on the buffer.
    pub nest: f64,
    /// Nesterov weight on the direction.
    pub plain: f64,
    /// Classic-momentum weight on the buffer.
    pub base: f64,
}
