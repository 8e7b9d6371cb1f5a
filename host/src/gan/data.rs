//! What a GAN learns from: the generated 8-Gaussian ring (fresh samples every batch) or a set
//! of images (the digits, IDX or CIFAR files), the images mapped to `[−1, 1]` like the
//! reference's `Normalize(0.5, 0.5)` and split into training and held-out rows.

use keel_core::random::Xoshiro256PlusPlus;

use super::nets::Sample;
use super::ring::Ring;
use crate::data::{permutation, Targets};
use crate::error::{Error, Result};
use crate::images::ImageSet;

/// The share of images held out for the image metrics.
pub const TEST_FRACTION: f64 = 0.2;

/// The data of a run.
#[derive(Clone, Debug)]
pub enum GanData {
    /// Mixture of Gaussians on a circle.
    Ring(Ring),
    /// Images, by name (for the report).
    Images {
        /// `digits`, or the file's name.
        name: String,
        /// The images (their labels train the feature classifier of the image metrics).
        set: ImageSet,
    },
}

impl GanData {
    /// The report's name of the data set.
    pub fn name(&self) -> String {
        match self {
            GanData::Ring(r) => format!("ring{}", r.modes),
            GanData::Images { name, .. } => name.clone(),
        }
    }

    /// One example's shape.
    pub fn sample(&self) -> Sample {
        match self {
            GanData::Ring(_) => Sample::Vector(2),
            GanData::Images { set, .. } => Sample::Image(set.shape),
        }
    }
}

/// The affine map from the generator's `[−1, 1]` to the data's units: `data = offset + scale·g`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PixelMap {
    /// Middle of the data's range.
    pub offset: f64,
    /// Half the data's range (1 for the ring, which is not rescaled).
    pub scale: f64,
}

impl PixelMap {
    /// The identity (the ring).
    pub const IDENTITY: PixelMap = PixelMap {
        offset: 0.0,
        scale: 1.0,
    };

    /// The map of values spanning `[lo, hi]` onto `[−1, 1]`.
    pub fn spanning(lo: f64, hi: f64) -> PixelMap {
        let scale = if hi > lo { (hi - lo) / 2.0 } else { 1.0 };
        PixelMap {
            offset: (hi + lo) / 2.0,
            scale,
        }
    }

    /// Data units → `[−1, 1]`.
    pub fn to_unit(&self, v: f64) -> f64 {
        (v - self.offset) / self.scale
    }

    /// `[−1, 1]` → data units.
    pub fn to_data(&self, v: f64) -> f64 {
        self.offset + self.scale * v
    }
}

/// Images ready for training: scaled, split, with labels where the set has classes.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// One example's shape.
    pub sample: Sample,
    /// Training rows in `[−1, 1]`, row-major.
    pub train: Vec<f64>,
    /// Held-out rows in `[−1, 1]`.
    pub test: Vec<f64>,
    /// Class labels of the training rows (none: regression targets or no classes).
    pub train_labels: Option<Vec<usize>>,
    /// Class labels of the held-out rows.
    pub test_labels: Option<Vec<usize>>,
    /// Number of classes.
    pub classes: usize,
    /// How generator output maps back to the data's units.
    pub map: PixelMap,
}

impl Prepared {
    /// Training rows.
    pub fn n_train(&self) -> usize {
        self.train.len() / self.sample.numel()
    }
}

/// Scales `set` to `[−1, 1]` by its overall pixel range and splits it by a permutation drawn
/// from `seed`.
///
/// # Errors
/// [`Error::InvalidInput`] (setting `dataset`) for non-finite pixels or fewer than 10 images.
pub fn prepare_images(set: &ImageSet, seed: u64) -> Result<Prepared> {
    let n = set.len();
    if n < 10 {
        return Err(Error::invalid(
            "dataset",
            format!("{n} images"),
            "a GAN needs at least 10 images",
        ));
    }
    if let Some(i) = set.pixels.iter().position(|v| !v.is_finite()) {
        let per = set.shape.pixels();
        return Err(Error::invalid(
            "dataset",
            set.pixels[i],
            format!(
                "image {} has a non-finite pixel (index {})",
                i / per,
                i % per
            ),
        ));
    }
    let (lo, hi) = set
        .pixels
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let map = PixelMap::spanning(lo, hi);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x6761_6e5f_7370_6c74);
    let order = permutation(n, &mut rng);
    let n_test = ((n as f64 * TEST_FRACTION).round() as usize).clamp(1, n - 1);
    let (test_idx, train_idx) = order.split_at(n_test);
    let take = |idx: &[usize]| -> Vec<f64> {
        idx.iter()
            .flat_map(|&i| set.image(i).iter().map(|&v| map.to_unit(v)))
            .collect()
    };
    let (labels, classes) = match &set.targets {
        Targets::Classes { labels, classes } => (Some(labels), classes.len()),
        Targets::Values(_) => (None, 0),
    };
    let pick = |idx: &[usize]| labels.map(|l| idx.iter().map(|&i| l[i]).collect::<Vec<_>>());
    Ok(Prepared {
        sample: Sample::Image(set.shape),
        train: take(train_idx),
        test: take(test_idx),
        train_labels: pick(train_idx),
        test_labels: pick(test_idx),
        classes,
        map,
    })
}

/// Hands out batches of real rows: fresh ring samples, or image rows in passes over a
/// permutation of the training set.
#[derive(Clone, Debug)]
pub struct RealBatches {
    /// The permutation of the current pass (images).
    pub order: Vec<usize>,
    /// The next position in `order`.
    pub cursor: usize,
}

impl RealBatches {
    /// A sampler over `n` training rows (0 for the ring), its first pass drawn from `rng`.
    pub fn new(n: usize, rng: &mut Xoshiro256PlusPlus) -> Self {
        RealBatches {
            order: permutation(n, rng),
            cursor: 0,
        }
    }

    /// `b` rows, row-major: ring samples, or the next rows of the pass (a new permutation when
    /// the pass runs out).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] (setting `batch`) when `b` exceeds the training rows.
    pub fn next(
        &mut self,
        data: &GanData,
        prepared: Option<&Prepared>,
        b: usize,
        rng: &mut Xoshiro256PlusPlus,
    ) -> Result<Vec<f64>> {
        match (data, prepared) {
            (GanData::Ring(r), _) => Ok(r.sample(b, rng)),
            (GanData::Images { .. }, Some(p)) => {
                let n = self.order.len();
                if b > n {
                    return Err(Error::invalid(
                        "batch",
                        b,
                        format!("larger than the {n} training images"),
                    ));
                }
                if self.cursor + b > n {
                    self.order = permutation(n, rng);
                    self.cursor = 0;
                }
                let per = p.sample.numel();
                let rows = &self.order[self.cursor..self.cursor + b];
                self.cursor += b;
                Ok(rows
                    .iter()
                    .flat_map(|&i| p.train[i * per..(i + 1) * per].iter().copied())
                    .collect())
            }
            (GanData::Images { .. }, None) => Err(Error::invalid(
                "dataset",
                data.name(),
                "images must be prepared before batching",
            )),
        }
    }
}
