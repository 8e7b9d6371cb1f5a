//! Back ends behind the tensor API. `Storage` is the dispatch point: the CPU backend today; the
//! CUDA backend (a later issue) slots in as a second variant with the same operations, and with
//! the `cuda` feature off a same-named stub returns [`Error::CudaNotCompiled`].

pub mod cpu;

use std::fmt;

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
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
        })
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

impl Device {
    /// Checks that this build and machine can use the device.
    ///
    /// # Errors
    /// [`Error::CudaNotCompiled`] for a CUDA device in this build.
    pub fn check(self) -> Result<()> {
        match self {
            Device::Cpu => Ok(()),
            Device::Cuda(_) => Err(Error::CudaNotCompiled),
        }
    }
}

/// A tensor's buffer on some device.
#[derive(Debug)]
pub enum Storage {
    /// Host memory.
    Cpu(cpu::CpuStorage),
}

impl Storage {
    /// Element type.
    pub fn dtype(&self) -> DType {
        match self {
            Storage::Cpu(cpu::CpuStorage::F32(_)) => DType::F32,
            Storage::Cpu(cpu::CpuStorage::F64(_)) => DType::F64,
        }
    }

    /// Device.
    pub fn device(&self) -> Device {
        match self {
            Storage::Cpu(_) => Device::Cpu,
        }
    }

    /// The CPU buffer.
    pub fn cpu(&self) -> &cpu::CpuStorage {
        match self {
            Storage::Cpu(c) => c,
        }
    }
}
