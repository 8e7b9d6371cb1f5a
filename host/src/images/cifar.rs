//! CIFAR-10's binary batches (Krizhevsky, *Learning Multiple Layers of Features from Tiny
//! Images*, 2009; the "binary version" on the data set's page): `data_batch_1.bin` …
//! `data_batch_5.bin` and `test_batch.bin`, each a sequence of 3073-byte records — one label
//! byte (0–9), then the 32×32 red, green and blue planes, row-major. The format has no header
//! and no count: a file is a whole number of records. Class names come from `batches.meta.txt`
//! next to the batch (one per line) when it is there, else the data set's ten names.

use std::path::{Path, PathBuf};

use super::source::Source;
use super::{ImageSet, ImageShape};
use crate::data::Targets;
use crate::error::{Error, Result};
use crate::limits;

/// Bytes per record: the label and 3 × 32 × 32 pixels.
pub const RECORD_BYTES: usize = 1 + PIXELS;
const PIXELS: usize = 3 * 32 * 32;

/// CIFAR-10's classes in label order.
pub const CLASS_NAMES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// The class names in `batches.meta.txt` beside `batch`, if that file exists.
fn class_names(batch: &Path) -> Result<Vec<String>> {
    let meta: PathBuf = batch.with_file_name("batches.meta.txt");
    if !meta.is_file() {
        return Ok(CLASS_NAMES.iter().map(|s| s.to_string()).collect());
    }
    let text = crate::output::read_text(&meta)?;
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if names.len() != CLASS_NAMES.len() {
        return Err(Error::Malformed {
            path: meta,
            reason: format!(
                "{} class names; CIFAR-10 has {} (one per line)",
                names.len(),
                CLASS_NAMES.len()
            ),
        });
    }
    Ok(names)
}

/// Reads one or more CIFAR-10 binary batches into one set, in the order given: `3×32×32`
/// images scaled to `[0, 1]` (`byte / 255`), the ten classes named from the first batch's
/// `batches.meta.txt` when present.
///
/// # Errors
/// [`Error::InvalidInput`] (setting `batches`) for an empty list, or files whose images would
/// not fit in this machine's memory (refused before reading them); [`Error::Io`] for a file that
/// cannot be read; [`Error::Malformed`] naming the file for an empty file, a label above 9
/// (saying that CIFAR-100's two-label records are not this format), a size that is not a whole
/// number of records (`file ends at byte 30000; image 10 needs bytes 27657..30730 (records are
/// 3073 bytes)`), corrupt gzip data, or a `batches.meta.txt` without ten names.
pub fn read_cifar(batches: &[PathBuf]) -> Result<ImageSet> {
    let first = batches
        .first()
        .ok_or_else(|| Error::invalid("batches", "(none)", "give at least one batch file"))?;
    let classes = class_names(first)?;
    let mut sources = Vec::with_capacity(batches.len());
    let mut declared: u128 = 0;
    for path in batches {
        let src = Source::open(path)?;
        if let Some(len) = src.disk_len {
            declared += u128::from(len) / RECORD_BYTES as u128;
        }
        sources.push(src);
    }
    let bytes_per_image = (PIXELS * (1 + std::mem::size_of::<f64>())) as u128;
    limits::memory(
        "batches",
        first.display(),
        &format!("{declared} CIFAR-10 images"),
        declared * bytes_per_image,
    )?;
    let mut pixels = Vec::with_capacity(declared as usize * PIXELS);
    let mut labels = Vec::with_capacity(declared as usize);
    let mut record = vec![0u8; RECORD_BYTES];
    for mut src in sources {
        let mut k = 0u64;
        loop {
            let start = src.pos();
            let got = src.fill(&mut record)?;
            if got == 0 {
                break;
            }
            if got < RECORD_BYTES {
                return Err(src.bad(format!(
                    "file ends at {}; image {} needs bytes {start}..{} (records are \
                     {RECORD_BYTES} bytes: a label and 3×32×32 pixels)",
                    src.at(src.pos()),
                    k + 1,
                    start + RECORD_BYTES as u64
                )));
            }
            let label = record[0] as usize;
            if label >= CLASS_NAMES.len() {
                return Err(src.bad(format!(
                    "image {} (byte {start}) has label {label}; CIFAR-10 labels are 0–9 \
                     (CIFAR-100's binary records, with two label bytes, are not supported)",
                    k + 1
                )));
            }
            labels.push(label);
            pixels.extend(record[1..].iter().map(|&b| f64::from(b) / 255.0));
            k += 1;
            if src.disk_len.is_none() && k.is_multiple_of(1024) {
                // gzip: the count is known only as it is read.
                limits::memory(
                    "batches",
                    src.path.display(),
                    "the decompressed CIFAR-10 images",
                    labels.len() as u128 * bytes_per_image,
                )?;
            }
        }
        if k == 0 {
            return Err(src.bad("contains no images"));
        }
    }
    ImageSet::new(
        ImageShape::new(3, 32, 32)?,
        pixels,
        Targets::Classes { labels, classes },
    )
}
