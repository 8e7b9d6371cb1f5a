//! Corrupted copies of test images for distribution-shift studies, in the spirit of CIFAR-10-C
//! (Hendrycks & Dietterich, ICLR 2019; the corrupted images on which the BNN paper — Izmailov,
//! Vikram, Hoffman & Wilson, "What Are Bayesian Neural Network Posteriors Really Like?", ICML
//! 2021 — compares its posteriors under shift) and MNIST-C (Mu & Gilmer, 2019): four
//! corruptions at severities 1 to 5, generated from a seed.
//!
//! | corruption | parameter | severity 1 | 2 | 3 | 4 | 5 |
//! |---|---|---|---|---|---|---|
//! | `noise`  | Gaussian noise σ, as a fraction of the pixel range `R` | 0.08 | 0.12 | 0.18 | 0.26 | 0.38 |
//! | `blur`   | Gaussian kernel σ, pixels | 0.5 | 0.75 | 1.0 | 1.25 | 1.5 |
//! | `shift`  | translation vector `(dy, dx)`, whole pixels (its length) | (1, 0) (1) | (1, 1) (√2) | (2, 0) (2) | (2, 2) (2√2) | (3, 0) (3) |
//! | `rotate` | rotation angle, degrees (sign drawn per image) | 10 | 20 | 30 | 45 | 60 |
//!
//! - **Scale.** Pixels lie in `[0, R]` (`R` = 16 for the 8×8 digits, 1 for byte formats scaled by
//!   1/255): the caller says `R`. Noise is `x + σR·ξ`, `ξ ~ N(0, 1)` per pixel, clipped to
//!   `[0, R]`; the other corruptions only move or average pixels and stay inside the range.
//! - **Blur**: a separable Gaussian kernel truncated at `⌈3σ⌉` pixels and normalised, the image
//!   extended at its border by its edge pixels (scipy's `mode='nearest'`).
//! - **Shift**: the image moved by the table's vector turned by a quarter turn drawn per image
//!   (four orientations: right/down/left/up at odd severities, the four diagonals at even ones),
//!   the uncovered pixels 0 ([`translate`]). On 8×8 digits a shift of 3 pixels moves most of
//!   the digit out of the frame, so the severities grow by half a pixel of length at a time.
//! - **Rotate**: about the image centre `((h − 1)/2, (w − 1)/2)`, sampled bilinearly, pixels that
//!   come from outside the image 0; sines and cosines from libm, so the bits are the same on
//!   every platform.
//!
//! **Determinism.** One generator (`Xoshiro256PlusPlus` from the seed) draws, image by image in
//! order, what that image needs (noise: one `ξ` per pixel; shift: a direction; rotate: a sign) —
//! the same draws at every severity (common random numbers), so a seed gives bit-identical sets,
//! and a higher severity is the same distortion made larger. Tested: `host/tests/corrupt.rs`.
//!
//! The parameters are Keel's, chosen for 8×8 images (the CIFAR-10-C values are for 32×32 and
//! would barely move an 8×8 digit); they are not the benchmark's.

use keel_core::random::{standard_normal, uniform, Xoshiro256PlusPlus};
use keel_core::Real;
use std::f64::consts::SQRT_2;

use super::ImageShape;
use crate::error::{Error, Result};

/// The severities, 1 (mild) to 5 (severe).
pub const SEVERITIES: std::ops::RangeInclusive<usize> = 1..=5;

/// One of the four corruptions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Corruption {
    /// Additive Gaussian noise, clipped to the pixel range.
    Noise,
    /// Gaussian blur.
    Blur,
    /// Translation by whole pixels, zero fill.
    Shift,
    /// Rotation about the centre, bilinear, zero fill.
    Rotate,
}

impl Corruption {
    /// Every corruption, in the order of the table above.
    pub const ALL: [Corruption; 4] = [
        Corruption::Noise,
        Corruption::Blur,
        Corruption::Shift,
        Corruption::Rotate,
    ];

    /// Parses `noise`, `blur`, `shift` or `rotate`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] (setting `corruption`) for anything else.
    pub fn parse(name: &str) -> Result<Corruption> {
        Corruption::ALL
            .into_iter()
            .find(|c| c.name() == name)
            .ok_or_else(|| {
                Error::invalid(
                    "corruption",
                    name,
                    "unknown corruption; expected noise, blur, shift or rotate",
                )
            })
    }

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Corruption::Noise => "noise",
            Corruption::Blur => "blur",
            Corruption::Shift => "shift",
            Corruption::Rotate => "rotate",
        }
    }

    /// What [`Corruption::parameter`] measures, with its unit.
    pub fn parameter_name(self) -> &'static str {
        match self {
            Corruption::Noise => "noise σ / pixel range",
            Corruption::Blur => "kernel σ (pixels)",
            Corruption::Shift => "shift (pixels)",
            Corruption::Rotate => "angle (degrees)",
        }
    }

    /// The table's parameter at `severity`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] (setting `severity`) outside 1..=5.
    pub fn parameter(self, severity: usize) -> Result<f64> {
        let table: [f64; 5] = match self {
            Corruption::Noise => [0.08, 0.12, 0.18, 0.26, 0.38],
            Corruption::Blur => [0.5, 0.75, 1.0, 1.25, 1.5],
            Corruption::Shift => [1.0, SQRT_2, 2.0, 2.0 * SQRT_2, 3.0],
            Corruption::Rotate => [10.0, 20.0, 30.0, 45.0, 60.0],
        };
        check_severity(severity)?;
        Ok(table[severity - 1])
    }
}

impl std::fmt::Display for Corruption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `severity` must lie in 1..=5.
///
/// # Errors
/// [`Error::InvalidInput`] (setting `severity`) otherwise.
pub fn check_severity(severity: usize) -> Result<()> {
    if SEVERITIES.contains(&severity) {
        Ok(())
    } else {
        Err(Error::invalid(
            "severity",
            severity,
            "must be 1 to 5 (0 is the clean images)",
        ))
    }
}

/// `images` (whole images of `shape`, CHW, pixels in `[0, range]`) corrupted by `corruption` at
/// `severity`, the random draws from `seed` (see the module doc).
///
/// # Errors
/// [`Error::InvalidInput`]: a severity outside 1..=5 (`severity`), a range that is not a
/// positive number (`pixel_range`), pixels that are not whole images (`images`).
pub fn corrupt(
    images: &[f64],
    shape: ImageShape,
    corruption: Corruption,
    severity: usize,
    range: f64,
    seed: u64,
) -> Result<Vec<f64>> {
    let p = corruption.parameter(severity)?;
    if !(range > 0.0 && range.is_finite()) {
        return Err(Error::invalid(
            "pixel_range",
            range,
            "must be a positive number (the largest pixel value: 16 for the digits)",
        ));
    }
    let per = shape.pixels();
    if !images.len().is_multiple_of(per) {
        return Err(Error::invalid(
            "images",
            format!("{} pixels", images.len()),
            format!("not a whole number of {shape} images"),
        ));
    }
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut out = vec![0.0; images.len()];
    for (img, dst) in images.chunks_exact(per).zip(out.chunks_exact_mut(per)) {
        match corruption {
            Corruption::Noise => {
                for (d, &x) in dst.iter_mut().zip(img) {
                    let xi: f64 = standard_normal(&mut rng);
                    *d = (x + p * range * xi).clamp(0.0, range);
                }
            }
            Corruption::Blur => blur(img, shape, p, dst),
            Corruption::Shift => {
                let k = (uniform::<f64, _>(&mut rng) * 4.0).floor().min(3.0) as usize;
                let (dy, dx) = shift_vector(severity, k);
                translate(img, shape, dy, dx, dst);
            }
            Corruption::Rotate => {
                let sign = if uniform::<f64, _>(&mut rng) < 0.5 {
                    -1.0
                } else {
                    1.0
                };
                rotate(img, shape, sign * p.to_radians(), dst);
            }
        }
    }
    Ok(out)
}

/// The shift of `severity` (1..=5) turned by `quarter` quarter turns: `(0, m)` (right) or
/// `(m, m)` (down-right) for `m = ⌈severity/2⌉`, axis-aligned at odd severities.
fn shift_vector(severity: usize, quarter: usize) -> (i64, i64) {
    let m = severity.div_ceil(2) as i64;
    let (mut dy, mut dx) = if severity % 2 == 1 { (0, m) } else { (m, m) };
    for _ in 0..quarter {
        (dy, dx) = (dx, -dy);
    }
    (dy, dx)
}

/// `image` (CHW of `shape`) moved down by `dy` and right by `dx` whole pixels into `out`:
/// `out[c, r, q] = image[c, r − dy, q − dx]`, 0 where that lies outside the image.
///
/// # Panics
/// If `image` or `out` is not one image of `shape`.
pub fn translate(image: &[f64], shape: ImageShape, dy: i64, dx: i64, out: &mut [f64]) {
    let (h, w) = (shape.height, shape.width);
    assert_eq!(
        image.len(),
        shape.pixels(),
        "translate: one image of {shape}"
    );
    assert_eq!(out.len(), shape.pixels(), "translate: one image of {shape}");
    for c in 0..shape.channels {
        for r in 0..h {
            for q in 0..w {
                let (sr, sq) = (r as i64 - dy, q as i64 - dx);
                out[c * h * w + r * w + q] =
                    if (0..h as i64).contains(&sr) && (0..w as i64).contains(&sq) {
                        image[c * h * w + sr as usize * w + sq as usize]
                    } else {
                        0.0
                    };
            }
        }
    }
}

/// Separable Gaussian blur with standard deviation `sigma` pixels, border pixels repeated.
fn blur(image: &[f64], shape: ImageShape, sigma: f64, out: &mut [f64]) {
    let radius = (3.0 * sigma).ceil() as i64;
    let mut kernel: Vec<f64> = (-radius..=radius)
        .map(|k| (-0.5 * (k as f64 / sigma).powi(2)).exp())
        .collect();
    let total: f64 = kernel.iter().sum();
    kernel.iter_mut().for_each(|k| *k /= total);
    let (h, w) = (shape.height, shape.width);
    let clamp = |i: i64, n: usize| i.clamp(0, n as i64 - 1) as usize;
    let mut rows = vec![0.0; h * w];
    for c in 0..shape.channels {
        let img = &image[c * h * w..(c + 1) * h * w];
        for r in 0..h {
            for q in 0..w {
                rows[r * w + q] = kernel
                    .iter()
                    .enumerate()
                    .map(|(k, g)| g * img[r * w + clamp(q as i64 + k as i64 - radius, w)])
                    .sum();
            }
        }
        let dst = &mut out[c * h * w..(c + 1) * h * w];
        for r in 0..h {
            for q in 0..w {
                dst[r * w + q] = kernel
                    .iter()
                    .enumerate()
                    .map(|(k, g)| g * rows[clamp(r as i64 + k as i64 - radius, h) * w + q])
                    .sum();
            }
        }
    }
}

/// Rotation by `angle` radians (anticlockwise on screen, rows pointing down) about the centre,
/// bilinear, 0 outside.
fn rotate(image: &[f64], shape: ImageShape, angle: f64, out: &mut [f64]) {
    let (h, w) = (shape.height, shape.width);
    let (cy, cx) = ((h as f64 - 1.0) / 2.0, (w as f64 - 1.0) / 2.0);
    let (s, co) = (angle.libm_sin(), angle.libm_cos());
    for c in 0..shape.channels {
        let img = &image[c * h * w..(c + 1) * h * w];
        let at = |r: i64, q: i64| {
            if (0..h as i64).contains(&r) && (0..w as i64).contains(&q) {
                img[r as usize * w + q as usize]
            } else {
                0.0
            }
        };
        for r in 0..h {
            for q in 0..w {
                // The source of output pixel (r, q): the inverse rotation of its offset.
                let (y, x) = (r as f64 - cy, q as f64 - cx);
                let sx = co * x - s * y + cx;
                let sy = s * x + co * y + cy;
                let (y0, x0) = (sy.floor(), sx.floor());
                let (fy, fx) = (sy - y0, sx - x0);
                let (y0, x0) = (y0 as i64, x0 as i64);
                out[c * h * w + r * w + q] = (1.0 - fy)
                    * ((1.0 - fx) * at(y0, x0) + fx * at(y0, x0 + 1))
                    + fy * ((1.0 - fx) * at(y0 + 1, x0) + fx * at(y0 + 1, x0 + 1));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quarter_turn_moves_pixels_exactly() {
        let shape = ImageShape::new(1, 3, 3).unwrap();
        let img: Vec<f64> = (0..9).map(f64::from).collect();
        let mut out = vec![0.0; 9];
        rotate(&img, shape, std::f64::consts::FRAC_PI_2, &mut out);
        // The centre stays; every pixel lands on another grid point.
        assert!((out[4] - 4.0).abs() < 1e-12);
        let mut sorted = out.clone();
        sorted.sort_by(f64::total_cmp);
        for (a, b) in sorted.iter().zip(&img) {
            assert!((a - b).abs() < 1e-12, "{out:?}");
        }
    }

    #[test]
    fn shift_vectors_have_the_tables_lengths() {
        for severity in 1..=5 {
            let want = Corruption::Shift.parameter(severity).unwrap();
            let mut seen = Vec::new();
            for quarter in 0..4 {
                let (dy, dx) = shift_vector(severity, quarter);
                assert!((((dy * dy + dx * dx) as f64).sqrt() - want).abs() < 1e-12);
                seen.push((dy, dx));
            }
            seen.sort_unstable();
            seen.dedup();
            assert_eq!(seen.len(), 4, "four orientations at severity {severity}");
        }
    }

    #[test]
    fn blur_keeps_a_constant_image() {
        let shape = ImageShape::new(1, 4, 5).unwrap();
        let img = vec![3.0; 20];
        let mut out = vec![0.0; 20];
        blur(&img, shape, 1.25, &mut out);
        assert!(out.iter().all(|v| (v - 3.0).abs() < 1e-12));
    }
}
