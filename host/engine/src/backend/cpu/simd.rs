//! Run-time selection of vector code for the CPU kernels whose loops the compiler vectorises.
//!
//! The crate is built for the target's baseline (SSE2 on x86-64), so a plain loop runs four
//! `f32` lanes wide. [`multiversion!`] compiles one kernel body three times — for AVX-512F, for
//! AVX2 + FMA and for the baseline — and runs the copy of the level [`isa`](super::isa::isa)
//! reports (the CPU's, capped by `KEEL_CPU_ISA`); on other targets only the baseline copy
//! exists. The bodies are the same Rust, and Rust neither reassociates floating-point sums nor
//! fuses `a·b + c` into an FMA on its own, so all three copies return the same bits: the choice
//! changes the speed, never a result. (The same idea as the `multiversion` crate and `pulp`'s
//! `Arch::dispatch`, without the dependency.)

/// Defines `fn $name<T: Float>(…)` whose body is compiled for AVX-512F, for AVX2 + FMA and for
/// the baseline, and which runs the widest copy the CPU supports.
macro_rules! multiversion {
    (
        $(#[$meta:meta])*
        $vis:vis fn $name:ident<T: Float>($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?
        $body:block
    ) => {
        $(#[$meta])*
        $vis fn $name<T: Float>($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body<T: Float>($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn avx512<T: Float>($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn avx2<T: Float>($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                match $crate::backend::cpu::isa::isa() {
                    // SAFETY: `avx512` only requires the AVX-512F instructions, which `isa`
                    // reports only where the CPU has them.
                    $crate::backend::cpu::isa::Isa::Avx512 => return unsafe { avx512($($arg),*) },
                    // SAFETY: `avx2` only requires AVX2 and FMA, which `isa` reports only where
                    // the CPU has them.
                    $crate::backend::cpu::isa::Isa::Avx2 => return unsafe { avx2($($arg),*) },
                    $crate::backend::cpu::isa::Isa::Baseline => {}
                }
            }
            body($($arg),*)
        }
    };
}

pub(crate) use multiversion;
