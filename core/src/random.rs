//! Seeded random numbers without `std`: a small, fast generator and the two distributions the
//! initial-condition samplers need.
//!
//! Every sampler takes any [`rand_core::Rng`], so a user can plug in their own generator;
//! [`Xoshiro256PlusPlus`] is what Keel's own commands use, seeded with `--seed`.

use core::convert::Infallible;

use rand_core::{Rng, TryRng};

use crate::real::Real;

/// SplitMix64 (Steele, Lea & Flood 2014): used to expand a 64-bit seed into a full state.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub const fn new(seed: u64) -> Self {
        Self { state: seed }
    }
}

impl TryRng for SplitMix64 {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok((self.try_next_u64()? >> 32) as u32)
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Ok(z ^ (z >> 31))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        fill_from_u64(self, dst);
        Ok(())
    }
}

/// xoshiro256++ (Blackman & Vigna 2019): Keel's default generator; 256-bit state, period
/// 2²⁵⁶ − 1, seeded from a `u64` through [`SplitMix64`].
#[derive(Clone, Debug)]
pub struct Xoshiro256PlusPlus {
    s: [u64; 4],
}

impl Xoshiro256PlusPlus {
    /// A generator whose state is expanded from `seed` (any value, including 0, is fine).
    pub fn seed_from_u64(seed: u64) -> Self {
        let mut sm = SplitMix64::new(seed);
        let s = [sm.next_u64(), sm.next_u64(), sm.next_u64(), sm.next_u64()];
        Self { s }
    }

    /// The 256-bit state, to save a generator mid-stream (e.g. in a training checkpoint).
    pub fn state(&self) -> [u64; 4] {
        self.s
    }

    /// A generator continuing from a saved [`state`](Xoshiro256PlusPlus::state); `None` for the
    /// all-zero state, which xoshiro never reaches and from which it would emit only zeros.
    pub fn from_state(s: [u64; 4]) -> Option<Self> {
        if s == [0; 4] {
            None
        } else {
            Some(Self { s })
        }
    }
}

impl TryRng for Xoshiro256PlusPlus {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok((self.try_next_u64()? >> 32) as u32)
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        Ok(result)
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        fill_from_u64(self, dst);
        Ok(())
    }
}

fn fill_from_u64<R: Rng + ?Sized>(rng: &mut R, dst: &mut [u8]) {
    for chunk in dst.chunks_mut(8) {
        let bytes = rng.next_u64().to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
}

/// A uniform draw from `[0, 1)` with 53 random bits (rounded to `T`).
#[inline]
pub fn uniform<T: Real, R: Rng + ?Sized>(rng: &mut R) -> T {
    T::from_f64((rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64))
}

/// A standard normal draw (Box–Muller, computed in `f64` then rounded to `T`).
pub fn standard_normal<T: Real, R: Rng + ?Sized>(rng: &mut R) -> T {
    // u1 in (0, 1] so the logarithm is finite.
    let u1 = ((rng.next_u64() >> 11) as f64 + 1.0) * (1.0 / (1u64 << 53) as f64);
    let u2 = (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
    let r = libm::sqrt(-2.0 * libm::log(u1));
    T::from_f64(r * libm::cos(2.0 * core::f64::consts::PI * u2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xoshiro_reference_vector() {
        // Reference output of xoshiro256++ for state [1, 2, 3, 4] (from the authors' C code).
        let mut r = Xoshiro256PlusPlus { s: [1, 2, 3, 4] };
        let expected = [41943041u64, 58720359, 3588806011781223, 3591011842654386];
        for e in expected {
            assert_eq!(r.next_u64(), e);
        }
    }

    #[test]
    fn normal_moments() {
        let mut r = Xoshiro256PlusPlus::seed_from_u64(7);
        let n = 200_000;
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        for _ in 0..n {
            let x: f64 = standard_normal(&mut r);
            s1 += x;
            s2 += x * x;
        }
        let mean = s1 / n as f64;
        let var = s2 / n as f64 - mean * mean;
        // Standard errors: 1/sqrt(n) ≈ 0.0022 for the mean, sqrt(2/n) ≈ 0.0032 for the variance.
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.015, "var {var}");
    }

    #[test]
    fn uniform_in_unit_interval() {
        let mut r = Xoshiro256PlusPlus::seed_from_u64(0);
        for _ in 0..10_000 {
            let u: f32 = uniform(&mut r);
            assert!((0.0..=1.0).contains(&u));
        }
    }
}
