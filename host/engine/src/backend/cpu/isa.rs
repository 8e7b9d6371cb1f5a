//! Which vector instructions Keel's own CPU kernels use.
//!
//! The crate is built for the target's baseline (SSE2 on x86-64); the kernels that pay for
//! wider vectors (the convolutions' register blocks, transposes and Winograd transforms, and the
//! loops compiled once per level by `multiversion!`: binary elementwise ops, column sums, the
//! exponential, the HMC leapfrog and optimizer updates) are compiled for AVX-512F and for
//! AVX2 + FMA as well, and [`isa`] says which copy runs: the widest the CPU reports
//! (`is_x86_feature_detected!`), capped by the environment variable `KEEL_CPU_ISA` (`avx512`,
//! `avx2` or `baseline`) when it is set. The cap lets one machine measure and test what a CPU
//! without AVX-512 (or without AVX2) runs; it never enables what the CPU lacks. It covers
//! Keel's kernels only — the `gemm` crate chooses its own micro-kernels.

use std::sync::atomic::{AtomicU8, Ordering};

/// The environment variable that caps [`isa`].
pub const ENV: &str = "KEEL_CPU_ISA";

/// A level of x86-64 vector instructions, ordered from narrowest to widest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// The target's baseline (SSE2 on x86-64; any other architecture).
    Baseline,
    /// AVX2 with FMA: sixteen 256-bit registers.
    Avx2,
    /// AVX-512F: thirty-two 512-bit registers.
    Avx512,
}

impl Isa {
    /// The name `KEEL_CPU_ISA` takes.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Baseline => "baseline",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    /// The level named `name` (as [`Isa::name`] writes it), if any.
    pub fn from_name(name: &str) -> Option<Isa> {
        [Isa::Baseline, Isa::Avx2, Isa::Avx512]
            .into_iter()
            .find(|i| i.name() == name)
    }
}

/// The widest level this CPU runs.
pub fn detected() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return Isa::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return Isa::Avx2;
        }
    }
    Isa::Baseline
}

/// The cap `KEEL_CPU_ISA` sets: `Ok(None)` when it is unset, an error naming the accepted values
/// when it holds anything else.
pub fn cap_from_env() -> Result<Option<Isa>, String> {
    let Some(v) = std::env::var_os(ENV) else {
        return Ok(None);
    };
    v.to_str()
        .and_then(|s| Isa::from_name(s.trim()))
        .map(Some)
        .ok_or_else(|| format!("{ENV}={v:?} is not a vector level: use avx512, avx2 or baseline"))
}

/// The cap in force: `UNREAD` until the environment is read, then an [`Isa`] as a number.
static CAP: AtomicU8 = AtomicU8::new(UNREAD);
const UNREAD: u8 = u8::MAX;

fn encode(i: Isa) -> u8 {
    i as u8
}

fn decode(v: u8) -> Isa {
    match v {
        0 => Isa::Baseline,
        1 => Isa::Avx2,
        _ => Isa::Avx512,
    }
}

/// The level Keel's kernels run: [`detected`], capped by `KEEL_CPU_ISA` (read once; a value that
/// is not a level caps nothing — the `keel` command refuses it before any work) or by
/// [`set_cap`].
pub fn isa() -> Isa {
    let mut cap = CAP.load(Ordering::Relaxed);
    if cap == UNREAD {
        let from_env = cap_from_env().ok().flatten().unwrap_or(Isa::Avx512);
        // A `set_cap` that ran meanwhile wins.
        cap = match CAP.compare_exchange(
            UNREAD,
            encode(from_env),
            Ordering::Relaxed,
            Ordering::Relaxed,
        ) {
            Ok(_) => encode(from_env),
            Err(now) => now,
        };
    }
    detected().min(decode(cap))
}

/// Caps [`isa`] at `cap` for the rest of the process (benches and tests compare the kernels side
/// by side this way). A kernel's [`Isa::Avx512`] and [`Isa::Avx2`] copies return the same bits,
/// but which kernel an operation takes can depend on the level (3×3 convolutions go by
/// Winograd's algorithm from 16 channels with AVX2, from 32 with AVX-512F), and
/// [`Isa::Baseline`] takes patches and `gemm` for every convolution: a run's last digits can
/// differ between levels.
pub fn set_cap(cap: Isa) {
    CAP.store(encode(cap), Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_the_cap_never_widens() {
        for i in [Isa::Baseline, Isa::Avx2, Isa::Avx512] {
            assert_eq!(Isa::from_name(i.name()), Some(i));
        }
        // Whatever the cap, never wider than the CPU (`set_cap` is for benches and the
        // integration tests, which run in processes of their own).
        assert!(isa() <= detected());
        assert_eq!(Isa::from_name("sse9"), None);
    }
}
