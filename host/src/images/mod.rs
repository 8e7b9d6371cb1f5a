//! Image data: a set of equally shaped images with class labels or real targets, read from the
//! formats users hold and generated for the Augerino experiments.
//!
//! - [`idx`]: MNIST / Fashion-MNIST IDX files (`*-images-idx3-ubyte` + `*-labels-idx1-ubyte`,
//!   plain or gzip-compressed);
//! - [`cifar`]: CIFAR-10 binary batches (`data_batch_*.bin`, `test_batch.bin`);
//! - [`csv`]: a CSV table whose feature columns are the pixels of an image of a given shape
//!   (the digits, `1x8x8`);
//! - [`corrupt`]: noise, blur, shifts and rotations at severities 1–5, from a seed (the
//!   distribution-shift study of `keel bayes shift`);
//! - [`datasets`]: the generated, seeded sets of the Augerino paper — rotated digits, the
//!   Mario-and-Iggy sprites, rotation regression.
//!
//! Every reader checks the file against its format's own description before trusting it —
//! magic numbers, dimensions, counts that agree between files, sizes refused before allocating
//! ([`crate::limits`]), truncation reported with the byte where the file ends and the image
//! that needed more — and reports through [`Error`] so a command prints one line.
//!
//! Pixels are `f64` in NCHW order (image, channel, row, column); byte formats are scaled to
//! `[0, 1]` (`byte / 255`), CSV values are kept as they are.

pub mod cifar;
pub mod corrupt;
pub mod csv;
pub mod datasets;
pub mod idx;
mod source;

use std::fmt;

use crate::data::{Dataset, Targets};
use crate::error::{Error, Result};

/// The shape of one image: channels, height (rows), width (columns).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ImageShape {
    /// Channels (1 for grey, 3 for RGB).
    pub channels: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
}

impl ImageShape {
    /// A shape with every side at least 1 and a pixel count that fits `usize`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] (setting `image_shape`) for a zero side or an overflowing count.
    pub fn new(channels: usize, height: usize, width: usize) -> Result<Self> {
        let shape = ImageShape {
            channels,
            height,
            width,
        };
        if channels == 0 || height == 0 || width == 0 {
            return Err(Error::invalid(
                "image_shape",
                shape,
                "every side must be at least 1",
            ));
        }
        if channels
            .checked_mul(height)
            .and_then(|x| x.checked_mul(width))
            .is_none()
        {
            return Err(Error::invalid(
                "image_shape",
                shape,
                "the pixel count overflows",
            ));
        }
        Ok(shape)
    }

    /// Parses `CxHxW` (e.g. `1x8x8`, `3x32x32`; `×` and `X` also separate).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] (setting `image_shape`) for anything else.
    pub fn parse(text: &str) -> Result<Self> {
        let parts: Vec<&str> = text.split(['x', 'X', '×']).map(str::trim).collect();
        let sides: Option<Vec<usize>> = parts.iter().map(|p| p.parse().ok()).collect();
        match sides.as_deref() {
            Some(&[c, h, w]) => ImageShape::new(c, h, w),
            _ => Err(Error::invalid(
                "image_shape",
                text,
                "expected channels×height×width as three whole numbers, e.g. 1x8x8",
            )),
        }
    }

    /// Scalars per image, `channels · height · width`.
    pub fn pixels(&self) -> usize {
        self.channels * self.height * self.width
    }
}

impl fmt::Display for ImageShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}x{}", self.channels, self.height, self.width)
    }
}

/// Images of one shape with their targets (class labels, or real values for regression).
#[derive(Clone, Debug, PartialEq)]
pub struct ImageSet {
    /// The shape of every image.
    pub shape: ImageShape,
    /// `len · shape.pixels()` values, NCHW.
    pub pixels: Vec<f64>,
    /// One target per image.
    pub targets: Targets,
}

impl ImageSet {
    /// An image set whose lengths agree.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] (setting `images`) when `pixels` is not a whole number of images
    /// or the targets are not one per image.
    pub fn new(shape: ImageShape, pixels: Vec<f64>, targets: Targets) -> Result<Self> {
        let per = shape.pixels();
        if per == 0 {
            return Err(Error::invalid(
                "image_shape",
                shape,
                "every side must be at least 1",
            ));
        }
        if !pixels.len().is_multiple_of(per) {
            return Err(Error::invalid(
                "images",
                format!("{} pixels", pixels.len()),
                format!("not a whole number of {shape} images"),
            ));
        }
        let n = pixels.len() / per;
        let t = match &targets {
            Targets::Classes { labels, .. } => labels.len(),
            Targets::Values(v) => v.len(),
        };
        if t != n {
            return Err(Error::invalid(
                "images",
                format!("{n} images"),
                format!("{t} targets given; need one per image"),
            ));
        }
        Ok(ImageSet {
            shape,
            pixels,
            targets,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.pixels.len() / self.shape.pixels().max(1)
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.pixels.is_empty()
    }

    /// Image `i` (CHW).
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn image(&self, i: usize) -> &[f64] {
        let per = self.shape.pixels();
        &self.pixels[i * per..(i + 1) * per]
    }

    /// The number of classes (0 for regression targets).
    pub fn classes(&self) -> usize {
        match &self.targets {
            Targets::Classes { classes, .. } => classes.len(),
            Targets::Values(_) => 0,
        }
    }

    /// The class labels, for a classification set.
    pub fn labels(&self) -> Option<&[usize]> {
        match &self.targets {
            Targets::Classes { labels, .. } => Some(labels),
            Targets::Values(_) => None,
        }
    }

    /// The real targets, for a regression set.
    pub fn values(&self) -> Option<&[f64]> {
        match &self.targets {
            Targets::Values(v) => Some(v),
            Targets::Classes { .. } => None,
        }
    }

    /// The images `idx`, in that order, as a new set.
    ///
    /// # Panics
    /// If an index is out of range.
    pub fn subset(&self, idx: &[usize]) -> ImageSet {
        let mut pixels = Vec::with_capacity(idx.len() * self.shape.pixels());
        for &i in idx {
            pixels.extend_from_slice(self.image(i));
        }
        let targets = match &self.targets {
            Targets::Classes { labels, classes } => Targets::Classes {
                labels: idx.iter().map(|&i| labels[i]).collect(),
                classes: classes.clone(),
            },
            Targets::Values(v) => Targets::Values(idx.iter().map(|&i| v[i]).collect()),
        };
        ImageSet {
            shape: self.shape,
            pixels,
            targets,
        }
    }

    /// The images as a table with one feature column per pixel (`p0`, `p1`, … in CHW order),
    /// for the methods that train on flat features.
    pub fn to_dataset(&self) -> Dataset {
        Dataset {
            features: (0..self.shape.pixels()).map(|k| format!("p{k}")).collect(),
            x: self.pixels.clone(),
            y: self.targets.clone(),
        }
    }
}
