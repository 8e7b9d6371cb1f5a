//! The distribution-shift corruptions (`keel::images::corrupt`) and the ±1-pixel shift
//! augmentation (`keel::bayes::augment`) on the shipped digits: reproducible from a seed,
//! distortion growing with severity, bad names and severities refused, shifts that are exact
//! translations.

use std::path::{Path, PathBuf};

use keel::bayes::augment::{expanded, ShiftAugment, OFFSETS};
use keel::bayes::mlp::{Labels, Split};
use keel::images::corrupt::{corrupt, translate, Corruption};
use keel::images::ImageShape;
use keel_core::random::Xoshiro256PlusPlus;

fn digits_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/data/digits.csv")
}

/// The first 300 digits' raw pixels (0..16).
fn digits() -> (Vec<f64>, ImageShape) {
    let data = keel::data::read_csv(&digits_path(), "label", true).unwrap();
    (
        data.x[..300 * 64].to_vec(),
        ImageShape::new(1, 8, 8).unwrap(),
    )
}

fn mean_squared_change(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>() / a.len() as f64
}

#[test]
fn the_same_seed_gives_bit_identical_sets_and_another_seed_another() {
    let (x, shape) = digits();
    for c in Corruption::ALL {
        for severity in 1..=5 {
            let a = corrupt(&x, shape, c, severity, 16.0, 7).unwrap();
            let b = corrupt(&x, shape, c, severity, 16.0, 7).unwrap();
            let same = a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits());
            assert!(same, "{c} {severity}: two runs of one seed differ");
            assert!(
                a.iter().all(|p| (0.0..=16.0).contains(p)),
                "{c}: out of range"
            );
            if c != Corruption::Blur {
                // Blur draws nothing; the others draw per image.
                let other = corrupt(&x, shape, c, severity, 16.0, 8).unwrap();
                assert_ne!(a, other, "{c} {severity}: seeds 7 and 8 gave the same set");
            }
        }
    }
}

/// Noise, blur and rotation: the mean squared change grows with every severity. Shift: every
/// image is an exact translation by a vector of the table's length, which grows with severity
/// (its mean squared change saturates once the digit leaves the 8×8 frame: 33.1, 47.7, 63.7,
/// 71.9, 69.0 on these digits, so it is not the measure).
#[test]
fn distortion_grows_with_severity() {
    let (x, shape) = digits();
    for c in [Corruption::Noise, Corruption::Blur, Corruption::Rotate] {
        let changes: Vec<f64> = (1..=5)
            .map(|s| mean_squared_change(&corrupt(&x, shape, c, s, 16.0, 3).unwrap(), &x))
            .collect();
        assert!(changes[0] > 0.0, "{c}: severity 1 changed nothing");
        for w in changes.windows(2) {
            assert!(w[1] > w[0], "{c}: distortion does not grow: {changes:?}");
        }
    }
    let mut lengths = Vec::new();
    for s in 1..=5 {
        let length = Corruption::Shift.parameter(s).unwrap();
        lengths.push(length);
        let shifted = corrupt(&x, shape, Corruption::Shift, s, 16.0, 3).unwrap();
        let mut out = vec![0.0; 64];
        for (img, got) in x.chunks(64).zip(shifted.chunks(64)) {
            let found = (-3i64..=3).any(|dy| {
                (-3i64..=3).any(|dx| {
                    let l = ((dy * dy + dx * dx) as f64).sqrt();
                    translate(img, shape, dy, dx, &mut out);
                    (l - length).abs() < 1e-12 && out == got
                })
            });
            assert!(
                found,
                "severity {s}: not a translation by a vector of length {length}"
            );
        }
    }
    assert!(lengths.windows(2).all(|w| w[1] > w[0]), "{lengths:?}");
}

#[test]
fn unknown_names_and_severities_outside_1_to_5_are_refused() {
    let (x, shape) = digits();
    for bad in ["", "fog", "Noise", "rotation"] {
        let e = Corruption::parse(bad).unwrap_err().to_string();
        assert!(e.contains("corruption"), "{e}");
    }
    for c in Corruption::ALL {
        assert_eq!(Corruption::parse(c.name()).unwrap(), c);
        for severity in [0, 6, 100] {
            let e = corrupt(&x, shape, c, severity, 16.0, 0).unwrap_err();
            assert!(e.to_string().contains("severity"), "{e}");
        }
        assert!(corrupt(&x, shape, c, 1, 0.0, 0).is_err(), "a zero range");
        assert!(
            corrupt(&x[..63], shape, c, 1, 16.0, 0).is_err(),
            "a partial image"
        );
    }
}

#[test]
fn noise_scales_with_the_pixel_range() {
    // The same draws on an image scaled by 1/16 with range 1 are the digits' scaled by 1/16.
    let (x, shape) = digits();
    let unit: Vec<f64> = x.iter().map(|v| v / 16.0).collect();
    let a = corrupt(&x, shape, Corruption::Noise, 3, 16.0, 1).unwrap();
    let b = corrupt(&unit, shape, Corruption::Noise, 3, 1.0, 1).unwrap();
    for (p, q) in a.iter().zip(&b) {
        assert!((p / 16.0 - q).abs() < 1e-12, "{p} vs {q}");
    }
}

#[test]
fn translation_moves_every_pixel_and_keeps_the_mass_that_stays_inside() {
    let (x, shape) = digits();
    let img = &x[..64];
    let mut out = vec![0.0; 64];
    for (dy, dx) in OFFSETS.iter().copied().chain([(2, -3), (-5, 4)]) {
        translate(img, shape, dy, dx, &mut out);
        let mut kept = 0.0;
        for r in 0..8i64 {
            for q in 0..8i64 {
                let (sr, sq) = (r - dy, q - dx);
                let want = if (0..8).contains(&sr) && (0..8).contains(&sq) {
                    let v = img[(sr * 8 + sq) as usize];
                    kept += v;
                    v
                } else {
                    0.0
                };
                assert_eq!(
                    out[(r * 8 + q) as usize],
                    want,
                    "({dy}, {dx}) at ({r}, {q})"
                );
            }
        }
        // Mass: what the shift keeps inside the frame, exactly.
        assert_eq!(out.iter().sum::<f64>(), kept);
    }
}

fn digits_split() -> Split {
    let data = keel::data::read_csv(&digits_path(), "label", true).unwrap();
    Split::new(&data, 0.1, 0).unwrap()
}

#[test]
fn augmented_batches_are_translations_of_the_raw_rows() {
    let split = digits_split();
    let shape = ImageShape::new(1, 8, 8).unwrap();
    let aug = ShiftAugment::new(&split, shape).unwrap();
    let rows: Vec<usize> = (0..200).collect();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(4);
    let (x, offsets) = aug.batch(&rows, &mut rng);
    let raw = |v: f64, k: usize| v * split.x_std[k] + split.x_mean[k];
    let mut seen = std::collections::BTreeSet::new();
    for (i, &(dy, dx)) in offsets.iter().enumerate() {
        seen.insert((dy, dx));
        let src: Vec<f64> = (0..64).map(|k| raw(split.x_train[i * 64 + k], k)).collect();
        let mut want = vec![0.0; 64];
        translate(&src, shape, dy, dx, &mut want);
        for k in 0..64 {
            let got = raw(x[i * 64 + k], k);
            assert!(
                (got - want[k]).abs() < 1e-9,
                "row {i} pixel {k}: {got} vs {}",
                want[k]
            );
        }
    }
    assert_eq!(
        seen.len(),
        9,
        "all nine offsets drawn in 200 rows: {seen:?}"
    );
    // Another draw shifts differently; the same seed the same.
    let again = aug.batch(&rows, &mut Xoshiro256PlusPlus::seed_from_u64(4));
    assert_eq!(again.1, offsets);
}

#[test]
fn the_expanded_set_holds_every_row_nine_times() {
    let split = digits_split();
    let shape = ImageShape::new(1, 8, 8).unwrap();
    let big = expanded(&split, shape).unwrap();
    let n = split.y_train.len();
    assert_eq!(big.y_train.len(), 9 * n);
    assert_eq!(big.x_test, split.x_test);
    // The identity copy comes first and is the split's own rows.
    for (a, b) in big.x_train[..n * 64].iter().zip(&split.x_train) {
        assert!((a - b).abs() < 1e-12);
    }
    let (Labels::Classes(l), Labels::Classes(l0)) = (&big.y_train, &split.y_train) else {
        panic!("classes");
    };
    for k in 0..9 {
        assert_eq!(&l[k * n..(k + 1) * n], &l0[..]);
    }
    assert!(expanded(&split, ImageShape::new(1, 4, 4).unwrap()).is_err());
}
