//! MNIST and Fashion-MNIST files in the IDX format (LeCun et al., "THE MNIST DATABASE of
//! handwritten digits", the file-format section): a big-endian header — two zero bytes, a type
//! byte (`0x08` = unsigned byte), the number of dimensions, then each dimension as a `u32` —
//! followed by the values in row-major order. Image files are `0x00000803` (count, rows,
//! columns), label files `0x00000801` (count). Either may be gzip-compressed (`.gz`, as the
//! sets are distributed); compression is recognised by its magic bytes, not the name.

use std::path::Path;

use super::source::Source;
use super::{ImageSet, ImageShape};
use crate::data::Targets;
use crate::error::Result;
use crate::limits;

/// The magic number of an IDX file of unsigned bytes with `dims` dimensions.
const fn magic(dims: u8) -> u32 {
    0x0800 | dims as u32
}

fn type_name(code: u8) -> &'static str {
    match code {
        0x08 => "unsigned byte",
        0x09 => "signed byte",
        0x0B => "16-bit integer",
        0x0C => "32-bit integer",
        0x0D => "32-bit float",
        0x0E => "64-bit float",
        _ => "not an IDX type",
    }
}

/// Reads an IDX header of unsigned bytes with `dims` dimensions; returns the dimensions.
fn header(src: &mut Source, dims: u8, role: &str) -> Result<Vec<u32>> {
    let mut m = [0u8; 4];
    let got = src.fill(&mut m)?;
    if got < 4 {
        return Err(src.bad(format!(
            "file ends at byte {got}; an IDX {role} file's header needs bytes 0..4 (the magic \
             number 0x{:08x})",
            magic(dims)
        )));
    }
    let found = u32::from_be_bytes(m);
    if m[0] != 0 || m[1] != 0 {
        return Err(src.bad(format!(
            "not an IDX file: magic number 0x{found:08x}; an IDX {role} file starts 0x{:08x}",
            magic(dims)
        )));
    }
    if m[2] != 0x08 {
        return Err(src.bad(format!(
            "IDX type 0x{:02x} ({}) is not supported; {role} files hold unsigned bytes (magic \
             0x{:08x})",
            m[2],
            type_name(m[2]),
            magic(dims)
        )));
    }
    if m[3] != dims {
        let hint = match m[3] {
            1 => " (a label file)",
            3 => " (an image file)",
            _ => "",
        };
        return Err(src.bad(format!(
            "magic number 0x{found:08x} declares {} dimensions{hint}; an IDX {role} file has {dims} \
             (0x{:08x})",
            m[3],
            magic(dims)
        )));
    }
    let mut raw = vec![0u8; 4 * dims as usize];
    let got = src.fill(&mut raw)?;
    if got < raw.len() {
        return Err(src.bad(format!(
            "file ends at {}; the IDX header needs bytes 4..{} (the {dims} dimension sizes)",
            src.at(src.pos()),
            4 + raw.len()
        )));
    }
    Ok(raw
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// Refuses bytes after the declared data.
fn expect_end(src: &mut Source, declared: &str) -> Result<()> {
    let end = src.pos();
    let extra = src.remaining()?;
    if extra == 0 {
        return Ok(());
    }
    let more = if extra >= super::source::DRAIN_LIMIT {
        " or more"
    } else {
        ""
    };
    Err(src.bad(format!(
        "has {extra}{more} bytes after the {declared} its header declares, which end at {}",
        src.at(end)
    )))
}

/// Reads an IDX image file (`0x00000803`) and its label file (`0x00000801`): pixels scaled to
/// `[0, 1]` (`byte / 255`) in a `1×rows×columns` shape, labels as classes `0..=largest label`
/// (named by their number: MNIST's digits, Fashion-MNIST's class indices).
///
/// # Errors
/// [`Error::Io`](crate::Error::Io) for a file that cannot be read;
/// [`Error::Malformed`](crate::Error::Malformed) naming the file for a wrong magic number (saying
/// when the two files look swapped), a type other than unsigned bytes, zero counts or sides,
/// counts that differ between the files, corrupt gzip data, bytes after the declared data, and
/// truncation (`file ends at byte 1234; image 5 of 12 needs bytes 3152..3936`);
/// [`Error::InvalidInput`](crate::Error::InvalidInput) (setting `images`) when the declared
/// images would not fit in this machine's memory — refused before reading them.
pub fn read_idx(images: &Path, labels: &Path) -> Result<ImageSet> {
    let mut img = Source::open(images)?;
    let dims = header(&mut img, 3, "images")?;
    let (n, rows, cols) = (dims[0] as u64, dims[1] as u64, dims[2] as u64);
    if n == 0 {
        return Err(img.bad("declares 0 images"));
    }
    if rows == 0 || cols == 0 {
        return Err(img.bad(format!("declares images of {rows}×{cols} pixels")));
    }
    let mut lab = Source::open(labels)?;
    let m = header(&mut lab, 1, "labels")?[0] as u64;
    if m != n {
        return Err(lab.bad(format!(
            "declares {m} labels; {} declares {n} images",
            images.display()
        )));
    }

    let per = rows * cols;
    let head = img.pos();
    let total = n as u128 * per as u128;
    limits::memory(
        "images",
        images.display(),
        &format!("{n} images of {rows}×{cols} pixels"),
        total * (1 + std::mem::size_of::<f64>() as u128),
    )?;
    let truncated = |src: &Source, ends: u64| {
        let k = (ends - head) / per; // 0-based image that does not fit
        src.bad(format!(
            "file ends at {}; image {} of {n} needs bytes {}..{}",
            src.at(ends),
            k + 1,
            head + k * per,
            head + (k + 1) * per
        ))
    };
    if let Some(len) = img.disk_len {
        if (len as u128) < head as u128 + total {
            return Err(truncated(&img, len));
        }
    }
    let shape = ImageShape::new(1, rows as usize, cols as usize)?;
    let mut pixels = Vec::with_capacity(total as usize);
    let mut buf = vec![0u8; per as usize];
    for _ in 0..n {
        let got = img.fill(&mut buf)?;
        if got < buf.len() {
            return Err(truncated(&img, img.pos()));
        }
        pixels.extend(buf.iter().map(|&b| f64::from(b) / 255.0));
    }
    expect_end(&mut img, &format!("{n} images"))?;

    let mut raw = vec![0u8; n as usize];
    let got = lab.fill(&mut raw)?;
    if got < raw.len() {
        let head = lab.pos() - got as u64;
        return Err(lab.bad(format!(
            "file ends at {}; label {} of {n} needs byte {}",
            lab.at(lab.pos()),
            got + 1,
            head + got as u64
        )));
    }
    expect_end(&mut lab, &format!("{n} labels"))?;
    let largest = raw.iter().copied().max().unwrap_or(0) as usize;
    let targets = Targets::Classes {
        labels: raw.iter().map(|&b| b as usize).collect(),
        classes: (0..=largest).map(|c| c.to_string()).collect(),
    };
    ImageSet::new(shape, pixels, targets)
}
