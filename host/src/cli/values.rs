//! Value types that several commands' flags share.

use clap::ValueEnum;

/// `--dtype`: the scalar type of a run.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DtypeArg {
    F32,
    F64,
}

impl From<DtypeArg> for keel::DType {
    fn from(d: DtypeArg) -> Self {
        match d {
            DtypeArg::F32 => keel::DType::F32,
            DtypeArg::F64 => keel::DType::F64,
        }
    }
}
