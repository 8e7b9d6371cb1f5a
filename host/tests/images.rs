//! The image readers against small files in the real formats, written by an independent numpy
//! script (`fixtures/gen/image_formats.py`, numpy 1.26.4): `fixtures/data/images/tiny-idx/`
//! (12 MNIST-like 28×28 images with their labels), `tiny-cifar/data_batch_1.bin` (10 CIFAR-10
//! records) and `tiny-formats.json`, which lists per file the count, shape, labels, per-image
//! byte sums (per channel for CIFAR), the first 16 bytes of every image and probes
//! `[channel, row, col, byte]` placed so that a transposed, flipped or channel-swapped read
//! fails. Pixels come back as `byte / 255`, so they are compared as `round(255·p)` with
//! `|255·p − byte| < 1e-9`.
//!
//! Then bad input, made here by cutting and editing those bytes: truncation (where the file
//! ends and which image needed more), wrong magic numbers, counts that differ between files,
//! sizes refused before allocating, corrupt gzip, and the CSV image loader's shape and NaN
//! checks. Every error must be an input error (exit status 2) on one line.

use std::io::Write;
use std::path::{Path, PathBuf};

use keel::data::Targets;
use keel::images::cifar::read_cifar;
use keel::images::csv::read_csv_images;
use keel::images::idx::read_idx;
use keel::images::{ImageSet, ImageShape};
use keel::Error;
use serde_json::Value;

fn images_dir() -> PathBuf {
    [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "fixtures",
        "data",
        "images",
    ]
    .iter()
    .collect()
}

fn formats() -> Value {
    let text = std::fs::read_to_string(images_dir().join("tiny-formats.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn idx_paths() -> (PathBuf, PathBuf) {
    let d = images_dir().join("tiny-idx");
    (
        d.join("train-images-idx3-ubyte"),
        d.join("train-labels-idx1-ubyte"),
    )
}

fn ints(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

/// The image's bytes, checking that every pixel is a byte over 255.
fn bytes(set: &ImageSet, i: usize) -> Vec<i64> {
    set.image(i)
        .iter()
        .map(|&p| {
            let b = (p * 255.0).round();
            assert!(
                (p * 255.0 - b).abs() < 1e-9 && (0.0..=255.0).contains(&b),
                "{p}"
            );
            b as i64
        })
        .collect()
}

fn check_against_fixture(set: &ImageSet, doc: &Value, channels: usize) {
    let n = doc["count"].as_u64().unwrap() as usize;
    assert_eq!(set.len(), n);
    let shape = ints(&doc["shape"]);
    let (h, w) = (
        shape[shape.len() - 2] as usize,
        shape[shape.len() - 1] as usize,
    );
    assert_eq!(set.shape, ImageShape::new(channels, h, w).unwrap());
    let labels: Vec<usize> = ints(&doc["labels_values"])
        .iter()
        .map(|&l| l as usize)
        .collect();
    assert_eq!(set.labels().unwrap(), &labels[..]);
    let sums = ints(&doc["pixel_sums"]);
    for i in 0..n {
        let b = bytes(set, i);
        assert_eq!(b.iter().sum::<i64>(), sums[i], "image {i} sum");
        assert_eq!(
            &b[..16],
            &ints(&doc["first16"][i])[..],
            "image {i} first bytes"
        );
        for probe in doc["probes"][i].as_array().unwrap() {
            let p = ints(probe);
            let k = (p[0] as usize * h + p[1] as usize) * w + p[2] as usize;
            assert_eq!(b[k], p[3], "image {i} probe {p:?}");
        }
        if channels == 3 {
            let plane = h * w;
            for c in 0..3 {
                let s: i64 = b[c * plane..(c + 1) * plane].iter().sum();
                assert_eq!(
                    s,
                    doc["channel_sums"][i][c].as_i64().unwrap(),
                    "image {i} channel {c}"
                );
            }
        }
    }
}

/// The message of an input error, checked to be one line.
fn input_error(e: Error) -> String {
    let text = e.to_string();
    assert!(e.is_input_error(), "not an input error: {text}");
    assert!(!text.contains('\n'), "more than one line: {text}");
    text
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

#[test]
fn idx_files_read_as_the_independent_script_wrote_them() {
    let doc = formats();
    let (images, labels) = idx_paths();
    let set = read_idx(&images, &labels).unwrap();
    check_against_fixture(&set, &doc["idx"], 1);
    // Classes 0..=largest label, named by number.
    let largest = *set.labels().unwrap().iter().max().unwrap();
    assert_eq!(set.classes(), largest + 1);
    if let Targets::Classes { classes, .. } = &set.targets {
        assert_eq!(classes[3], "3");
    }
}

#[test]
fn gzip_compressed_idx_files_read_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let (images, labels) = idx_paths();
    let gi = write(dir.path(), "i.gz", &gzip(&std::fs::read(&images).unwrap()));
    let gl = write(dir.path(), "l.gz", &gzip(&std::fs::read(&labels).unwrap()));
    let plain = read_idx(&images, &labels).unwrap();
    assert_eq!(read_idx(&gi, &gl).unwrap(), plain);
    assert_eq!(read_idx(&gi, &labels).unwrap(), plain);
}

#[test]
fn truncated_idx_files_say_where_they_end() {
    let dir = tempfile::tempdir().unwrap();
    let (images, labels) = idx_paths();
    let raw = std::fs::read(&images).unwrap();
    // 16-byte header, 784 bytes per image: cut inside image 5 (bytes 3152..3936).
    let cut = write(dir.path(), "cut", &raw[..3252]);
    let text = input_error(read_idx(&cut, &labels).unwrap_err());
    assert!(
        text.contains("file ends at byte 3252; image 5 of 12 needs bytes 3152..3936"),
        "{text}"
    );
    // The same cut, compressed: found while reading, counted in decompressed bytes.
    let cutgz = write(dir.path(), "cut.gz", &gzip(&raw[..3252]));
    let text = input_error(read_idx(&cutgz, &labels).unwrap_err());
    assert!(
        text.contains(
            "file ends at byte 3252 of the decompressed data; image 5 of 12 needs bytes 3152..3936"
        ),
        "{text}"
    );
    // Cut inside the header.
    let head = write(dir.path(), "head", &raw[..10]);
    let text = input_error(read_idx(&head, &labels).unwrap_err());
    assert!(
        text.contains("file ends at byte 10") && text.contains("4..16"),
        "{text}"
    );
    // A label file one label short.
    let lab = std::fs::read(&labels).unwrap();
    let short = write(dir.path(), "short", &lab[..lab.len() - 1]);
    let text = input_error(read_idx(&images, &short).unwrap_err());
    assert!(
        text.contains("file ends at byte 19; label 12 of 12 needs byte 19"),
        "{text}"
    );
    // Bytes after the declared images.
    let mut long = raw.clone();
    long.extend_from_slice(&[0; 5]);
    let long = write(dir.path(), "long", &long);
    let text = input_error(read_idx(&long, &labels).unwrap_err());
    assert!(
        text.contains(
            "has 5 bytes after the 12 images its header declares, which end at byte 9424"
        ),
        "{text}"
    );
}

#[test]
fn wrong_magic_and_mismatched_counts_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (images, labels) = idx_paths();
    let raw = std::fs::read(&images).unwrap();
    let lab = std::fs::read(&labels).unwrap();
    // The files swapped.
    let text = input_error(read_idx(&labels, &images).unwrap_err());
    assert!(
        text.contains("0x00000801") && text.contains("a label file"),
        "{text}"
    );
    // Not IDX at all.
    let mut png = raw.clone();
    png[..4].copy_from_slice(b"\x89PNG");
    let p = write(dir.path(), "png", &png);
    let text = input_error(read_idx(&p, &labels).unwrap_err());
    assert!(
        text.contains("not an IDX file: magic number 0x89504e47"),
        "{text}"
    );
    // IDX floats.
    let mut floats = raw.clone();
    floats[2] = 0x0D;
    let p = write(dir.path(), "floats", &floats);
    let text = input_error(read_idx(&p, &labels).unwrap_err());
    assert!(
        text.contains("type 0x0d (32-bit float) is not supported"),
        "{text}"
    );
    // Eleven labels for twelve images (a consistent label file of 11).
    let mut eleven = lab[..lab.len() - 1].to_vec();
    eleven[4..8].copy_from_slice(&11u32.to_be_bytes());
    let p = write(dir.path(), "eleven", &eleven);
    let text = input_error(read_idx(&images, &p).unwrap_err());
    assert!(
        text.contains("declares 11 labels") && text.contains("declares 12 images"),
        "{text}"
    );
    // Zero images, zero-width images.
    let mut zero = raw[..16].to_vec();
    zero[4..8].copy_from_slice(&0u32.to_be_bytes());
    let p = write(dir.path(), "zero", &zero);
    assert!(input_error(read_idx(&p, &labels).unwrap_err()).contains("declares 0 images"));
    let mut narrow = raw.clone();
    narrow[12..16].copy_from_slice(&0u32.to_be_bytes());
    let p = write(dir.path(), "narrow", &narrow);
    assert!(input_error(read_idx(&p, &labels).unwrap_err()).contains("28×0 pixels"));
}

#[test]
fn absurd_declared_sizes_are_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let (images, _) = idx_paths();
    let raw = std::fs::read(&images).unwrap();
    let header = |n: u32, r: u32, c: u32| {
        let mut h = raw[..4].to_vec();
        for d in [n, r, c] {
            h.extend_from_slice(&d.to_be_bytes());
        }
        h
    };
    let labels_of = |n: u32| {
        let mut l = vec![0, 0, 8, 1];
        l.extend_from_slice(&n.to_be_bytes());
        l
    };
    // 4·10⁹ images of 65535² pixels: far beyond any memory, refused from the header (with the
    // matching label header, so the count check passes), plain and compressed.
    let mut huge = header(u32::MAX, 65_535, 65_535);
    huge.extend_from_slice(&raw[16..]);
    let lab = write(dir.path(), "lab", &labels_of(u32::MAX));
    for (name, bytes) in [("huge", huge.clone()), ("huge.gz", gzip(&huge))] {
        let p = write(dir.path(), name, &bytes);
        let e = read_idx(&p, &lab).unwrap_err();
        assert!(matches!(e, Error::InvalidInput { .. }), "{e}");
        let text = input_error(e);
        assert!(text.contains("images") && text.contains("memory"), "{text}");
    }
    // A count that fits in memory but not in the file: refused from the file's size.
    let mut more = header(1000, 28, 28);
    more.extend_from_slice(&raw[16..]);
    let p = write(dir.path(), "more", &more);
    let lab = write(dir.path(), "lab1000", &labels_of(1000));
    let text = input_error(read_idx(&p, &lab).unwrap_err());
    assert!(
        text.contains("file ends at byte 9424; image 13 of 1000 needs bytes 9424..10208"),
        "{text}"
    );
}

#[test]
fn corrupt_gzip_is_malformed_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let (images, labels) = idx_paths();
    let mut gz = gzip(&std::fs::read(&images).unwrap());
    let mid = gz.len() / 2;
    for b in &mut gz[mid..mid + 40] {
        *b ^= 0x5a;
    }
    let p = write(dir.path(), "bad.gz", &gz);
    let text = input_error(read_idx(&p, &labels).unwrap_err());
    assert!(
        text.contains("bad.gz: corrupt gzip data after byte"),
        "{text}"
    );
}

fn cifar_batch() -> PathBuf {
    images_dir().join("tiny-cifar").join("data_batch_1.bin")
}

#[test]
fn cifar_batches_read_as_the_independent_script_wrote_them() {
    let doc = formats();
    let set = read_cifar(&[cifar_batch()]).unwrap();
    check_against_fixture(&set, &doc["cifar"], 3);
    let names: Vec<String> = doc["cifar"]["class_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    match &set.targets {
        Targets::Classes { classes, .. } => assert_eq!(classes, &names),
        Targets::Values(_) => panic!("CIFAR-10 has classes"),
    }
    // Two batches: concatenated in order.
    let two = read_cifar(&[cifar_batch(), cifar_batch()]).unwrap();
    assert_eq!(two.len(), 20);
    assert_eq!(two.image(13), set.image(3));
    assert_eq!(two.labels().unwrap()[10..], set.labels().unwrap()[..]);
}

#[test]
fn bad_cifar_batches_are_refused_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    let raw = std::fs::read(cifar_batch()).unwrap();
    // No batches.meta.txt here: the data set's own names.
    let whole = write(dir.path(), "whole.bin", &raw);
    let set = read_cifar(std::slice::from_ref(&whole)).unwrap();
    if let Targets::Classes { classes, .. } = &set.targets {
        assert_eq!(classes[0], "airplane");
        assert_eq!(classes[9], "truck");
    }
    // Cut inside the last record (bytes 27657..30730).
    let cut = write(dir.path(), "cut.bin", &raw[..30000]);
    let text = input_error(read_cifar(&[whole.clone(), cut]).unwrap_err());
    assert!(
        text.contains("cut.bin: file ends at byte 30000; image 10 needs bytes 27657..30730"),
        "{text}"
    );
    // A label out of range in record 3.
    let mut bad = raw.clone();
    bad[2 * 3073] = 57;
    let p = write(dir.path(), "bad.bin", &bad);
    let text = input_error(read_cifar(&[p]).unwrap_err());
    assert!(text.contains("image 3 (byte 6146) has label 57"), "{text}");
    // Empty file, no files.
    let p = write(dir.path(), "empty.bin", &[]);
    assert!(input_error(read_cifar(&[p]).unwrap_err()).contains("contains no images"));
    assert!(input_error(read_cifar(&[]).unwrap_err()).contains("batches"));
    // A meta file with the wrong number of names.
    write(dir.path(), "batches.meta.txt", b"cat\ndog\n");
    let text = input_error(read_cifar(&[whole]).unwrap_err());
    assert!(text.contains("batches.meta.txt: 2 class names"), "{text}");
    // Compressed: the same images.
    let gz = write(dir.path(), "../gz.bin.gz", &gzip(&raw));
    let g = read_cifar(&[gz]).unwrap();
    assert_eq!(g.pixels, set.pixels);
}

fn digits_csv() -> PathBuf {
    [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "fixtures",
        "data",
        "digits.csv",
    ]
    .iter()
    .collect()
}

#[test]
fn the_digits_csv_reads_as_8x8_images() {
    let shape = ImageShape::parse("1x8x8").unwrap();
    let set = read_csv_images(&digits_csv(), "label", true, shape).unwrap();
    assert_eq!(set.len(), 1797);
    assert_eq!(set.classes(), 10);
    // Row 1 of the file (after the header) is image 0, pixels in column order.
    let text = std::fs::read_to_string(digits_csv()).unwrap();
    let first: Vec<f64> = text
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .take(64)
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(set.image(0), &first[..]);
    let flat = set.to_dataset();
    assert_eq!(flat.cols(), 64);
    assert_eq!(flat.x, set.pixels);
}

#[test]
fn image_shapes_must_fit_the_columns_and_pixels_be_numbers() {
    let e = read_csv_images(
        &digits_csv(),
        "label",
        true,
        ImageShape::new(1, 8, 7).unwrap(),
    )
    .unwrap_err();
    let text = input_error(e);
    assert!(
        text.contains("1x8x7")
            && text.contains(
                "56 pixels per image, but the table has 64 feature columns; 1x8x8 would fit"
            ),
        "{text}"
    );
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "nan.csv",
        b"p0,p1,p2,p3,label\n1,2,3,4,a\n1,NaN,3,4,b\n",
    );
    let text = input_error(
        read_csv_images(&p, "label", true, ImageShape::parse("1x2x2").unwrap()).unwrap_err(),
    );
    assert!(text.contains("row 3") && text.contains("p1"), "{text}");
    for bad in ["8x8", "1x8x8x1", "0x8x8", "ax8x8", ""] {
        let text = input_error(ImageShape::parse(bad).unwrap_err());
        assert!(text.contains("image_shape"), "{bad}: {text}");
    }
    assert_eq!(ImageShape::parse("3×32×32").unwrap().pixels(), 3072);
    assert_eq!(
        ImageShape::parse(" 3 X 32 x 32 ").unwrap().to_string(),
        "3x32x32"
    );
}

#[test]
fn image_sets_check_their_lengths() {
    let shape = ImageShape::new(1, 2, 2).unwrap();
    let two = Targets::Values(vec![0.0, 1.0]);
    let set = ImageSet::new(shape, vec![0.5; 8], two.clone()).unwrap();
    assert_eq!((set.len(), set.classes()), (2, 0));
    assert_eq!(set.subset(&[1, 1, 0]).len(), 3);
    let text = input_error(ImageSet::new(shape, vec![0.5; 7], two.clone()).unwrap_err());
    assert!(
        text.contains("not a whole number of 1x2x2 images"),
        "{text}"
    );
    let text = input_error(ImageSet::new(shape, vec![0.5; 12], two.clone()).unwrap_err());
    assert!(
        text.contains("2 targets given; need one per image"),
        "{text}"
    );
    // A shape written as a literal with a zero side is refused too, not divided by.
    let flat = ImageShape {
        channels: 0,
        height: 2,
        width: 2,
    };
    assert!(ImageSet::new(flat, vec![], Targets::Values(vec![])).is_err());
}
