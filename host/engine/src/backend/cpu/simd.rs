//! Run-time selection of vector code for the CPU kernels whose loops the compiler vectorises.
//!
//! The crate is built for the target's baseline (SSE2 on x86-64), so a plain loop runs four
//! `f32` lanes wide. [`multiversion!`] compiles one kernel body three times — for AVX-512F, for
//! AVX2 + FMA and for the baseline — and picks at run time from what the CPU reports
//! (`is_x86_feature_detected!`, cached by `std`); on other targets only the baseline copy
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
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: `avx512` only requires the AVX-512F instructions, which the CPU
                    // was just checked to have.
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: `avx2` only requires AVX2 and FMA, which the CPU was just checked
                    // to have.
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}

pub(crate) use multiversion;
