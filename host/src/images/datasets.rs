//! The generated data sets of the Augerino paper (Benton, Finzi, Izmailov & Wilson, *Learning
//! Invariances in Neural Networks*, NeurIPS 2020, §5 and the reference repository's
//! `experiments/{rotmnist,mario-iggy,olivetti}`), rebuilt from what this machine has: the 8×8
//! digits (`fixtures/data/digits.csv`) and two sprites drawn here. All are seeded and rebuilt
//! bit for bit from their parameters.
//!
//! - **`rotated-digits`** ([`rotated_digits`]; RotMNIST's construction): every digit rotated
//!   *once*, at construction, by an angle drawn from U(−π, π); labels are the digits. Split
//!   into train and test by a seeded permutation (`test_fraction`, default ¼).
//! - **`mario-iggy`** ([`mario_iggy`]): two asymmetric 8×8 pixel-art sprites ([`SPRITES`]);
//!   four classes, `2·sprite + upside_down`: class 0 = Mario upright (angle ∈ U(−π/4, π/4)),
//!   1 = Mario upside down (angle ∈ π + U(−π/4, π/4)), 2 and 3 the same for Iggy. The classes
//!   are exactly balanced (in order, then shuffled). Sizes as the reference's: 10,000 train and
//!   5,000 test by default. A model can only tell the classes apart if it is *not* invariant to
//!   rotations by more than π/2 — on this set Augerino's learned rotation width should settle
//!   near π/2, the reference's finding.
//! - **`rotation-regression`** ([`rotation_regression`]; the reference's Olivetti-faces
//!   construction with digits in place of faces): the digits are split into train and test
//!   *sources* (so test images are unseen digits, as the reference holds out people), each
//!   source repeated `copies` times, every copy rotated by U(−π/2, π/2); the target is the
//!   angle **in degrees**, as in the reference (MSE loss). The target is not rotation
//!   invariant, so the learned rotation width should shrink.
//!
//! **Rotation without losing the image.** An 8×8 digit fills its frame: rotated inside 8×8 its
//! corners leave the image, and bilinear resampling at a pitch comparable to a stroke's width
//! smears every stroke over its neighbours. So every image is resampled *once* onto a larger
//! square canvas: upsampled by `upsample` (default 2, so a source pixel covers 2×2 canvas
//! pixels and a stroke keeps a sharp core) into a canvas wide enough for everything bilinear
//! interpolation touches at any angle. Interpolation spreads each source pixel over one source
//! pitch either side of its centre, so an `h × w` image covers `(h+1) × (w+1)` pitches; rotated,
//! that rectangle's diagonal spans `upsample·√((h+1)² + (w+1)²)` canvas pixels (25.5 for the
//! 8×8 digits and sprites). The canvas side is that, rounded up, plus one so the outermost ring
//! of pixels stays empty, rounded up to a multiple of 4 (for pooling): **28×28** for the 8×8
//! images — MNIST's size, so a network for RotMNIST fits unchanged. One call of
//! [`keel_core::vision::warp_bilinear`] does the upsampling and the rotation together
//! ([`rotate_into_canvas`]), with zero outside the source, so nothing is clipped at any angle
//! and there is one interpolation, not two.
//!
//! Angles follow Augerino's rotation generator `G₂ = E₁₀ − E₀₁`: an image recorded with angle
//! `α` is the upright one warped by `expm(α·G₂) = [[cos α, −sin α, 0], [sin α, cos α, 0]]`
//! (PyTorch's `affine_grid` convention: counter-clockwise by `α` as displayed), so warping it by
//! `expm(−α·G₂)` stands it up again.
//!
//! Pixels are in `[0, 1]`: the digits are divided by the set's largest value (16 for
//! `digits.csv`, whose pixels count dark cells of 4×4 blocks); the sprites are drawn in
//! `{0, ½, 1}`.

use std::f64::consts::{FRAC_PI_2, FRAC_PI_4, PI};
use std::fmt;
use std::str::FromStr;

use keel_core::random::{uniform, Xoshiro256PlusPlus};
use keel_core::vision::warp_bilinear;
use keel_core::Real;

use super::{ImageSet, ImageShape};
use crate::data::{permutation, Targets};
use crate::error::{Error, Result};
use crate::limits;

/// The generated sets, by the names the command line uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Generated {
    /// `rotated-digits`: see [`rotated_digits`].
    RotatedDigits,
    /// `mario-iggy`: see [`mario_iggy`].
    MarioIggy,
    /// `rotation-regression`: see [`rotation_regression`].
    RotationRegression,
}

impl Generated {
    /// Every generated set.
    pub const ALL: [Generated; 3] = [
        Generated::RotatedDigits,
        Generated::MarioIggy,
        Generated::RotationRegression,
    ];

    /// The set's name (`rotated-digits`, `mario-iggy`, `rotation-regression`).
    pub fn name(self) -> &'static str {
        match self {
            Generated::RotatedDigits => "rotated-digits",
            Generated::MarioIggy => "mario-iggy",
            Generated::RotationRegression => "rotation-regression",
        }
    }
}

impl fmt::Display for Generated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Generated {
    type Err = Error;

    /// # Errors
    /// [`Error::InvalidInput`] (setting `dataset`) listing the names.
    fn from_str(s: &str) -> Result<Self> {
        Generated::ALL
            .into_iter()
            .find(|g| g.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Generated::ALL.iter().map(|g| g.name()).collect();
                Error::invalid(
                    "dataset",
                    s,
                    format!("unknown data set; one of {}", names.join(", ")),
                )
            })
    }
}

/// Generated images with the rotation each received.
#[derive(Clone, Debug, PartialEq)]
pub struct Rotated {
    /// The images (on the canvas) and their targets.
    pub images: ImageSet,
    /// Per image, the rotation angle `α` in radians (Augerino's generator convention).
    pub angles: Vec<f64>,
    /// Per image, the index of the source it was made from: the digit's row in the input set,
    /// or the sprite (0 Mario, 1 Iggy).
    pub sources: Vec<usize>,
}

/// A generated train/test pair.
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    /// Training images.
    pub train: Rotated,
    /// Test images.
    pub test: Rotated,
}

/// The side of the square canvas onto which a `height × width` image upsampled by `upsample`
/// rotates without clipping anything bilinear interpolation touches:
/// `⌈upsample·√((h+1)² + (w+1)²)⌉ + 1` rounded up to a multiple of 4 (28 for 8×8 and
/// `upsample = 2`; see the module doc).
pub fn canvas_side(height: usize, width: usize, upsample: usize) -> usize {
    let (h, w) = ((height + 1) as f64, (width + 1) as f64);
    let support = upsample as f64 * (h * h + w * w).sqrt();
    (support.ceil() as usize + 1).div_ceil(4) * 4
}

/// The shape of `shape`'s rotation canvas ([`canvas_side`]).
pub fn canvas_shape(shape: ImageShape, upsample: usize) -> ImageShape {
    let side = canvas_side(shape.height, shape.width, upsample);
    ImageShape {
        channels: shape.channels,
        height: side,
        width: side,
    }
}

/// Resamples `image` (CHW of `shape`) onto its rotation canvas ([`canvas_shape`]), upsampled by
/// `upsample` and rotated by `angle` about the centre, into `out`: one bilinear warp
/// (`keel_core::vision::warp_bilinear`) with
/// `θ = diag(1/zₓ, 1/z_y)·[[cos α, −sin α, 0], [sin α, cos α, 0]]`, where
/// `zₓ = upsample·(w−1)/(side−1)` is the part of the canvas's normalised width the source's
/// pixel centres span (likewise `z_y`), so a source pixel covers `upsample²` canvas pixels.
///
/// # Errors
/// [`Error::InvalidInput`] (setting `upsample`) for 0, or (`images`) for a single-pixel side;
/// [`Error::Core`] if the warp refuses the buffers (`out` must hold the canvas) or the angle is
/// not finite.
pub fn rotate_into_canvas(
    image: &[f64],
    shape: ImageShape,
    upsample: usize,
    angle: f64,
    out: &mut [f64],
) -> Result<()> {
    limits::positive("upsample", upsample)?;
    if shape.height < 2 || shape.width < 2 {
        return Err(Error::invalid(
            "images",
            shape,
            "rotation needs at least 2 pixels per side",
        ));
    }
    let canvas = canvas_shape(shape, upsample);
    let span = (canvas.width - 1) as f64;
    let zx = (upsample * (shape.width - 1)) as f64 / span;
    let zy = (upsample * (shape.height - 1)) as f64 / span;
    // libm, as the core computes: the same bits on every platform.
    let (s, c) = (angle.libm_sin(), angle.libm_cos());
    let theta = [[c / zx, -s / zx, 0.0], [s / zy, c / zy, 0.0]];
    warp_bilinear(
        image,
        shape.channels,
        shape.height,
        shape.width,
        &theta,
        out,
        canvas.height,
        canvas.width,
    )
    .map_err(Error::core("rotating an image onto its canvas"))
}

/// Rotates `sources[k]`'s image by `angles[k]` for every k, with `targets[k]`.
fn rotate_all(
    set: &ImageSet,
    upsample: usize,
    sources: Vec<usize>,
    angles: Vec<f64>,
    targets: Targets,
) -> Result<Rotated> {
    let canvas = canvas_shape(set.shape, upsample);
    let per = canvas.pixels();
    limits::memory(
        "images",
        sources.len(),
        "the generated images",
        (sources.len() as u128) * per as u128 * 8,
    )?;
    let mut pixels = vec![0.0; sources.len() * per];
    for ((&src, &angle), out) in sources
        .iter()
        .zip(&angles)
        .zip(pixels.chunks_exact_mut(per))
    {
        rotate_into_canvas(set.image(src), set.shape, upsample, angle, out)?;
    }
    Ok(Rotated {
        images: ImageSet::new(canvas, pixels, targets)?,
        angles,
        sources,
    })
}

/// Draws from U(lo, hi).
fn draw(rng: &mut Xoshiro256PlusPlus, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * uniform::<f64, _>(rng)
}

/// The pixels divided by their largest value (unchanged when that is 0 or below).
fn unit_scaled(set: &ImageSet) -> ImageSet {
    let max = set.pixels.iter().copied().fold(0.0, f64::max);
    let mut out = set.clone();
    if max > 0.0 {
        out.pixels.iter_mut().for_each(|p| *p /= max);
    }
    out
}

/// Splits `0..n` by a seeded permutation: (train, test) indices, each in increasing order.
fn split_indices(
    n: usize,
    test_fraction: f64,
    rng: &mut Xoshiro256PlusPlus,
) -> Result<(Vec<usize>, Vec<usize>)> {
    if !(test_fraction > 0.0 && test_fraction < 1.0) {
        return Err(Error::invalid(
            "test_fraction",
            test_fraction,
            "must lie strictly between 0 and 1",
        ));
    }
    let n_test = ((n as f64 * test_fraction).round() as usize).clamp(1, n.saturating_sub(1));
    if n < 2 {
        return Err(Error::invalid(
            "images",
            n,
            "need at least two images to split into train and test",
        ));
    }
    let perm = permutation(n, rng);
    let mut test = perm[..n_test].to_vec();
    let mut train = perm[n_test..].to_vec();
    test.sort_unstable();
    train.sort_unstable();
    Ok((train, test))
}

/// Parameters of [`rotated_digits`].
#[derive(Clone, Debug, PartialEq)]
pub struct RotatedDigits {
    /// Seeds the angles and the split.
    pub seed: u64,
    /// Share of the digits held out for testing (default ¼).
    pub test_fraction: f64,
    /// Upsampling onto the canvas (default 2: 8×8 → a 28×28 canvas).
    pub upsample: usize,
}

impl Default for RotatedDigits {
    fn default() -> Self {
        RotatedDigits {
            seed: 0,
            test_fraction: 0.25,
            upsample: 2,
        }
    }
}

/// `rotated-digits`: every image of `digits` (a labelled set, e.g. `digits.csv` read as
/// `1x8x8`) rotated once by U(−π, π) onto its canvas, pixels scaled to `[0, 1]`, split into
/// train and test. The angles are drawn in the input's order, then the split, from one
/// generator seeded with `seed`.
///
/// # Errors
/// [`Error::InvalidInput`] for regression targets (setting `dataset`), a `test_fraction`
/// outside (0, 1), fewer than two images, or `upsample = 0`.
pub fn rotated_digits(digits: &ImageSet, p: &RotatedDigits) -> Result<Split> {
    let Targets::Classes { labels, classes } = &digits.targets else {
        return Err(Error::invalid(
            "dataset",
            "rotated-digits",
            "needs class labels, not real targets",
        ));
    };
    limits::positive("upsample", p.upsample)?;
    let set = unit_scaled(digits);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(p.seed);
    let angles: Vec<f64> = (0..set.len()).map(|_| draw(&mut rng, -PI, PI)).collect();
    let (train, test) = split_indices(set.len(), p.test_fraction, &mut rng)?;
    let part = |idx: Vec<usize>| {
        let targets = Targets::Classes {
            labels: idx.iter().map(|&i| labels[i]).collect(),
            classes: classes.clone(),
        };
        let a = idx.iter().map(|&i| angles[i]).collect();
        rotate_all(&set, p.upsample, idx, a, targets)
    };
    Ok(Split {
        train: part(train)?,
        test: part(test)?,
    })
}

/// The two sprites, 8×8, rows top to bottom, in `{0, ½, 1}` (`#` = 1, `o` = ½, `.` = 0): a
/// capped figure facing right ("Mario") and a shelled creature facing left ("Iggy"). Neither is
/// symmetric under any rotation (nor a reflection), and they differ from each other under every
/// rotation, so both "which sprite" and "which way up" are decidable.
pub const SPRITES: [(&str, [&str; 8]); 2] = [
    (
        "mario",
        [
            "..###...", //
            ".######.", //
            ".#oo#o..", //
            "..oooo..", //
            "..####..", //
            ".##oo##.", //
            "..o..o..", //
            ".##..##.", //
        ],
    ),
    (
        "iggy",
        [
            ".....##.", //
            "....#o#.", //
            ".####...", //
            "#oooo#..", //
            "#o#oo#..", //
            "#ooo##..", //
            ".####...", //
            ".#..##..", //
        ],
    ),
];

/// Sprite `k` of [`SPRITES`] as a `1×8×8` image.
///
/// # Panics
/// If `k > 1`.
pub fn sprite(k: usize) -> Vec<f64> {
    SPRITES[k]
        .1
        .iter()
        .flat_map(|row| {
            row.chars().map(|ch| match ch {
                '#' => 1.0,
                'o' => 0.5,
                _ => 0.0,
            })
        })
        .collect()
}

/// The shape of a sprite before it is put on a canvas.
pub const SPRITE_SHAPE: ImageShape = ImageShape {
    channels: 1,
    height: 8,
    width: 8,
};

/// Parameters of [`mario_iggy`].
#[derive(Clone, Debug, PartialEq)]
pub struct MarioIggy {
    /// Seeds everything (default 88, the reference's data seed).
    pub seed: u64,
    /// Training images (default 10,000).
    pub train: usize,
    /// Test images (default 5,000).
    pub test: usize,
    /// Upsampling onto the canvas (default 2: a 28×28 canvas).
    pub upsample: usize,
}

impl Default for MarioIggy {
    fn default() -> Self {
        MarioIggy {
            seed: 88,
            train: 10_000,
            test: 5_000,
            upsample: 2,
        }
    }
}

/// The class names of `mario-iggy`, in label order.
pub const MARIO_IGGY_CLASSES: [&str; 4] = [
    "mario-upright",
    "mario-upside-down",
    "iggy-upright",
    "iggy-upside-down",
];

/// `mario-iggy`: `train` and `test` images of the two sprites, four exactly balanced classes
/// (`2·sprite + upside_down`), angles U(−π/4, π/4) upright and π + U(−π/4, π/4) upside down.
/// Train and test come from two generators seeded from `seed` (`2·seed` and `2·seed + 1`,
/// wrapping), so the test set does not change with the training size.
///
/// # Errors
/// [`Error::InvalidInput`] for zero sizes or `upsample`, or sizes too large for memory.
pub fn mario_iggy(p: &MarioIggy) -> Result<Split> {
    limits::positive("train", p.train)?;
    limits::positive("test", p.test)?;
    limits::positive("upsample", p.upsample)?;
    let pixels: Vec<f64> = (0..2).flat_map(sprite).collect();
    let sprites = ImageSet::new(SPRITE_SHAPE, pixels, Targets::Values(vec![0.0, 0.0]))?;
    let part = |n: usize, stream: u64| {
        let mut rng =
            Xoshiro256PlusPlus::seed_from_u64(p.seed.wrapping_mul(2).wrapping_add(stream));
        let mut classes: Vec<usize> = (0..n).map(|i| i % 4).collect();
        crate::data::shuffle(&mut classes, &mut rng);
        let angles: Vec<f64> = classes
            .iter()
            .map(|&c| {
                let turn = if c % 2 == 1 { PI } else { 0.0 };
                turn + draw(&mut rng, -FRAC_PI_4, FRAC_PI_4)
            })
            .collect();
        let sources = classes.iter().map(|&c| c / 2).collect();
        let targets = Targets::Classes {
            labels: classes,
            classes: MARIO_IGGY_CLASSES.iter().map(|s| s.to_string()).collect(),
        };
        rotate_all(&sprites, p.upsample, sources, angles, targets)
    };
    Ok(Split {
        train: part(p.train, 0)?,
        test: part(p.test, 1)?,
    })
}

/// Parameters of [`rotation_regression`].
#[derive(Clone, Debug, PartialEq)]
pub struct RotationRegression {
    /// Seeds the split and the angles.
    pub seed: u64,
    /// Share of the source images held out for testing (default ¼).
    pub test_fraction: f64,
    /// Rotated copies of every source image (default 10; the reference repeats each face 30
    /// times).
    pub copies: usize,
    /// Upsampling onto the canvas (default 2: 8×8 → 28×28).
    pub upsample: usize,
}

impl Default for RotationRegression {
    fn default() -> Self {
        RotationRegression {
            seed: 0,
            test_fraction: 0.25,
            copies: 10,
            upsample: 2,
        }
    }
}

/// `rotation-regression`: the images of `sources` (e.g. the digits; their targets are
/// ignored), pixels scaled to `[0, 1]`, split into train and test sources by a seeded
/// permutation, each source repeated `copies` times (copies adjacent) and every copy rotated by
/// U(−π/2, π/2); the target is the angle in degrees, in (−90, 90).
///
/// # Errors
/// [`Error::InvalidInput`] for a `test_fraction` outside (0, 1), fewer than two images, zero
/// `copies` or `upsample`, or a set too large for memory.
pub fn rotation_regression(sources: &ImageSet, p: &RotationRegression) -> Result<Split> {
    limits::positive("copies", p.copies)?;
    limits::positive("upsample", p.upsample)?;
    let set = unit_scaled(sources);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(p.seed);
    let (train, test) = split_indices(set.len(), p.test_fraction, &mut rng)?;
    let mut part = |idx: Vec<usize>| {
        let src: Vec<usize> = idx
            .iter()
            .flat_map(|&i| std::iter::repeat_n(i, p.copies))
            .collect();
        let angles: Vec<f64> = src
            .iter()
            .map(|_| draw(&mut rng, -FRAC_PI_2, FRAC_PI_2))
            .collect();
        let targets = Targets::Values(angles.iter().map(|a| a.to_degrees()).collect());
        rotate_all(&set, p.upsample, src, angles, targets)
    };
    let train = part(train)?;
    let test = part(test)?;
    Ok(Split { train, test })
}
