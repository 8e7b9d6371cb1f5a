//! Images stored as rows of a CSV table: every column but the target is a pixel, in CHW order
//! (`p0 … p63` for the 8×8 digits).

use std::path::Path;

use super::{ImageSet, ImageShape};
use crate::data::{self, Dataset};
use crate::error::{Error, Result};

/// Reads a CSV table of images of `shape` with [`data::read_csv`]: the target column `target`
/// (classes when `classify`, else real values), every other column a pixel, values kept as
/// they are.
///
/// # Errors
/// Those of [`data::read_csv`] (a NaN or infinite pixel is refused naming its row and column);
/// [`Error::InvalidInput`] (setting `image_shape`) when the shape's pixel count is not the
/// number of feature columns.
pub fn read_csv_images(
    path: &Path,
    target: &str,
    classify: bool,
    shape: ImageShape,
) -> Result<ImageSet> {
    from_dataset(data::read_csv(path, target, classify)?, shape)
}

/// A table's rows as images of `shape`.
///
/// # Errors
/// [`Error::InvalidInput`] (setting `image_shape`) when `shape` does not have one pixel per
/// feature column (saying how many columns there are, and when a shape with that many channels
/// would fit).
pub fn from_dataset(table: Dataset, shape: ImageShape) -> Result<ImageSet> {
    let cols = table.cols();
    if shape.pixels() != cols {
        let side = (cols as f64 / shape.channels.max(1) as f64).sqrt().round() as usize;
        let fits = side
            .checked_mul(side)
            .and_then(|s| s.checked_mul(shape.channels));
        let hint = if fits == Some(cols) {
            format!("; {}x{side}x{side} would fit", shape.channels)
        } else {
            String::new()
        };
        return Err(Error::invalid(
            "image_shape",
            shape,
            format!(
                "{} pixels per image, but the table has {cols} feature columns{hint}",
                shape.pixels()
            ),
        ));
    }
    ImageSet::new(shape, table.x, table.y)
}
