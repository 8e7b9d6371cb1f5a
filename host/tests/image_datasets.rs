//! The generated Augerino data sets: determinism by seed, class balance, angle ranges, that
//! rotation onto the canvas keeps the whole image (nothing clipped, mass kept), and that an
//! image warped back by its recorded angle is its upright source again.
//!
//! "Close" is measured as the relative L2 distance `‖a − b‖ / ‖b‖` on the canvas. Warping
//! back costs a second bilinear interpolation of an image whose strokes are ~2 canvas pixels
//! wide, so the distance is not zero; the tests compare it with the distance to the *wrong*
//! canonical images (the other sprite, the upside-down one), which must be several times
//! larger, and bound it by 0.1, 2.5 times the worst measured here (0.041; printed with
//! `--nocapture`).
//! Mass (the pixel sum) is kept to 2% (worst measured 0.45%): a source pixel covers
//! `upsample²` canvas pixels.

use std::f64::consts::PI;
use std::path::PathBuf;

use keel::images::csv::read_csv_images;
use keel::images::datasets::{
    canvas_side, mario_iggy, rotate_into_canvas, rotated_digits, rotation_regression, sprite,
    Generated, MarioIggy, RotatedDigits, RotationRegression, SPRITES, SPRITE_SHAPE,
};
use keel::images::{ImageSet, ImageShape};
use keel_core::vision::warp_bilinear;

fn digits() -> ImageSet {
    let p: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "fixtures",
        "data",
        "digits.csv",
    ]
    .iter()
    .collect();
    read_csv_images(&p, "label", true, ImageShape::parse("1x8x8").unwrap()).unwrap()
}

fn rel(a: &[f64], b: &[f64]) -> f64 {
    let d: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
    let n: f64 = b.iter().map(|y| y * y).sum();
    (d / n).sqrt()
}

/// `image` (a canvas) warped by the rotation `−angle`: stood up again.
fn unrotate(image: &[f64], side: usize, angle: f64) -> Vec<f64> {
    let (s, c) = (-angle).sin_cos();
    let mut out = vec![0.0; side * side];
    warp_bilinear(
        image,
        1,
        side,
        side,
        &[[c, -s, 0.0], [s, c, 0.0]],
        &mut out,
        side,
        side,
    )
    .unwrap();
    out
}

fn upright(image: &[f64], shape: ImageShape) -> Vec<f64> {
    let side = canvas_side(shape.height, shape.width, 2);
    let mut out = vec![0.0; side * side];
    rotate_into_canvas(image, shape, 2, 0.0, &mut out).unwrap();
    out
}

fn small_mario_iggy(seed: u64) -> MarioIggy {
    MarioIggy {
        seed,
        train: 402,
        test: 101,
        ..MarioIggy::default()
    }
}

#[test]
fn the_canvas_holds_the_rotated_frame() {
    assert_eq!(canvas_side(8, 8, 2), 28);
    assert_eq!(canvas_side(28, 28, 1), 44);
    // Every sprite pixel lies inside the canvas at any angle: mass is kept (a source pixel
    // covers upsample² = 4 canvas pixels) and the canvas's border ring stays empty.
    for k in 0..2 {
        let src = sprite(k);
        let mass: f64 = src.iter().sum::<f64>() * 4.0;
        for step in 0..16 {
            let angle = -PI + step as f64 * PI / 8.0 + 0.1;
            let mut out = vec![0.0; 28 * 28];
            rotate_into_canvas(&src, SPRITE_SHAPE, 2, angle, &mut out).unwrap();
            let got: f64 = out.iter().sum();
            assert!(
                (got - mass).abs() < 0.02 * mass,
                "sprite {k}, angle {angle}: {got} vs {mass}"
            );
            for i in 0..28 {
                for j in [0, 27] {
                    assert_eq!(out[i * 28 + j], 0.0, "column {j} row {i} at {angle}");
                    assert_eq!(out[j * 28 + i], 0.0, "row {j} column {i} at {angle}");
                }
            }
        }
    }
}

#[test]
fn sprites_differ_from_each_other_and_from_their_turned_selves() {
    for (name, rows) in SPRITES {
        assert!(rows.iter().all(|r| r.len() == 8), "{name}");
    }
    let up = [
        upright(&sprite(0), SPRITE_SHAPE),
        upright(&sprite(1), SPRITE_SHAPE),
    ];
    for (k, u) in up.iter().enumerate() {
        // Not symmetric under quarter or half turns.
        for turns in 1..4 {
            let turned = unrotate(u, 28, -(turns as f64) * PI / 2.0);
            assert!(
                rel(&turned, u) > 0.5,
                "sprite {k} after {turns} quarter turns"
            );
        }
    }
    assert!(rel(&up[0], &up[1]) > 0.5);
}

#[test]
fn mario_iggy_is_balanced_seeded_and_in_range() {
    let a = mario_iggy(&small_mario_iggy(88)).unwrap();
    assert_eq!(a, mario_iggy(&small_mario_iggy(88)).unwrap());
    let b = mario_iggy(&small_mario_iggy(89)).unwrap();
    assert_ne!(a.train.angles, b.train.angles);
    // The test set does not depend on the training size.
    let mut bigger = small_mario_iggy(88);
    bigger.train = 1000;
    assert_eq!(mario_iggy(&bigger).unwrap().test, a.test);

    for (part, n) in [(&a.train, 402), (&a.test, 101)] {
        assert_eq!(part.images.len(), n);
        assert_eq!(part.images.shape, ImageShape::new(1, 28, 28).unwrap());
        assert_eq!(part.images.classes(), 4);
        let labels = part.images.labels().unwrap();
        let mut counts = [0usize; 4];
        for &l in labels {
            counts[l] += 1;
        }
        let (lo, hi) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(
            hi - lo <= 1 && counts.iter().sum::<usize>() == n,
            "{counts:?}"
        );
        for ((&l, &angle), &s) in labels.iter().zip(&part.angles).zip(&part.sources) {
            assert_eq!(s, l / 2);
            let centre = if l % 2 == 1 { PI } else { 0.0 };
            assert!(
                (angle - centre).abs() <= PI / 4.0,
                "class {l}: angle {angle}"
            );
        }
        // The angles fill their ranges, not one point.
        let spread = part
            .angles
            .iter()
            .filter(|a| a.abs() < PI / 2.0)
            .map(|a| a.abs());
        assert!(
            spread.fold(0.0, f64::max) > 0.7,
            "upright angles reach near π/4"
        );
    }
    // Convex combinations of {0, ½, 1}: in [0, 1] up to the rounding of the weights' sum.
    let top = a.train.images.pixels.iter().copied().fold(0.0, f64::max);
    assert!(
        a.train.images.pixels.iter().all(|&p| p >= 0.0) && top <= 1.0 + 1e-12,
        "{top}"
    );
    assert!(
        top > 0.9,
        "the sprites' full-intensity pixels survive: {top}"
    );
}

#[test]
fn mario_iggy_samples_stand_up_again_when_rotated_back() {
    let set = mario_iggy(&small_mario_iggy(7)).unwrap().train;
    let up = [
        upright(&sprite(0), SPRITE_SHAPE),
        upright(&sprite(1), SPRITE_SHAPE),
    ];
    let mut worst: f64 = 0.0;
    for i in 0..set.images.len() {
        let label = set.images.labels().unwrap()[i];
        let back = unrotate(set.images.image(i), 28, set.angles[i]);
        let own = rel(&back, &up[label / 2]);
        let other = rel(&back, &up[1 - label / 2]);
        // Upside down: the same sample stood up by the angle minus π is the turned sprite.
        let half = rel(
            &unrotate(set.images.image(i), 28, set.angles[i] - PI),
            &up[label / 2],
        );
        worst = worst.max(own);
        assert!(own < 0.1, "image {i}: {own}");
        assert!(
            other > 2.0 * own && half > 2.0 * own,
            "image {i}: {own} {other} {half}"
        );
    }
    println!("mario-iggy: worst relative distance after rotating back {worst:.3}");
}

#[test]
fn rotated_digits_rotate_every_digit_once_and_keep_it() {
    let digits = digits();
    let p = RotatedDigits::default();
    let a = rotated_digits(&digits, &p).unwrap();
    assert_eq!(a, rotated_digits(&digits, &p).unwrap());
    let b = rotated_digits(
        &digits,
        &RotatedDigits {
            seed: 1,
            ..p.clone()
        },
    )
    .unwrap();
    assert_ne!(a.train.sources, b.train.sources);
    assert_eq!(a.train.images.len() + a.test.images.len(), 1797);
    assert_eq!(a.test.images.len(), 449);
    // Every digit once, in one of the two parts.
    let mut all: Vec<usize> = a
        .train
        .sources
        .iter()
        .chain(&a.test.sources)
        .copied()
        .collect();
    all.sort_unstable();
    assert_eq!(all, (0..1797).collect::<Vec<_>>());
    let labels = digits.labels().unwrap();
    let mut worst: f64 = 0.0;
    for part in [&a.train, &a.test] {
        assert_eq!(part.images.shape, ImageShape::new(1, 28, 28).unwrap());
        assert!(part.angles.iter().all(|a| (-PI..PI).contains(a)));
        for (i, &s) in part.sources.iter().enumerate() {
            assert_eq!(part.images.labels().unwrap()[i], labels[s]);
            let src: Vec<f64> = digits.image(s).iter().map(|p| p / 16.0).collect();
            let back = unrotate(part.images.image(i), 28, part.angles[i]);
            let d = rel(&back, &upright(&src, digits.shape));
            worst = worst.max(d);
            assert!(d < 0.1, "digit {s}: {d}");
            // Nothing clipped: the border ring is empty, the mass kept.
            let img = part.images.image(i);
            assert!((0..28).all(|k| img[k] == 0.0 && img[27 * 28 + k] == 0.0));
            let mass: f64 = src.iter().sum::<f64>() * 4.0;
            assert!((img.iter().sum::<f64>() - mass).abs() < 0.02 * mass);
        }
    }
    // The angles cover the circle.
    let quadrants = a.train.angles.iter().fold([0; 4], |mut q, a| {
        q[(((a + PI) / (PI / 2.0)) as usize).min(3)] += 1;
        q
    });
    assert!(quadrants.iter().all(|&n| n > 250), "{quadrants:?}");
    println!("rotated-digits: worst relative distance after rotating back {worst:.3}");
}

#[test]
fn rotation_regression_targets_are_the_angles_in_degrees() {
    let digits = digits();
    let p = RotationRegression {
        copies: 3,
        ..RotationRegression::default()
    };
    let a = rotation_regression(&digits, &p).unwrap();
    assert_eq!(a, rotation_regression(&digits, &p).unwrap());
    assert_eq!(a.train.images.len() + a.test.images.len(), 3 * 1797);
    assert_eq!(a.train.images.classes(), 0);
    // Train and test sources are disjoint: test digits are unseen.
    assert!(a.test.sources.iter().all(|s| !a.train.sources.contains(s)));
    for part in [&a.train, &a.test] {
        let y = part.images.values().unwrap();
        assert!(y.iter().all(|d| (-90.0..90.0).contains(d)));
        assert!(y.iter().copied().fold(f64::INFINITY, f64::min) < -80.0);
        assert!(y.iter().copied().fold(f64::NEG_INFINITY, f64::max) > 80.0);
        for (i, (&deg, &angle)) in y.iter().zip(&part.angles).enumerate().step_by(37) {
            assert!((deg - angle * 180.0 / PI).abs() < 1e-12);
            // The target is the rotation the image received.
            let s = part.sources[i];
            let src: Vec<f64> = digits.image(s).iter().map(|p| p / 16.0).collect();
            let back = unrotate(part.images.image(i), 28, deg.to_radians());
            assert!(rel(&back, &upright(&src, digits.shape)) < 0.1, "image {i}");
        }
    }
}

#[test]
fn bad_parameters_and_names_are_input_errors() {
    let digits = digits();
    for e in [
        rotated_digits(
            &digits,
            &RotatedDigits {
                test_fraction: 1.0,
                ..Default::default()
            },
        )
        .unwrap_err(),
        rotated_digits(
            &digits,
            &RotatedDigits {
                upsample: 0,
                ..Default::default()
            },
        )
        .unwrap_err(),
        mario_iggy(&MarioIggy {
            train: 0,
            ..MarioIggy::default()
        })
        .unwrap_err(),
        rotation_regression(
            &digits,
            &RotationRegression {
                copies: 0,
                ..Default::default()
            },
        )
        .unwrap_err(),
        "rotated-mnist".parse::<Generated>().unwrap_err(),
    ] {
        assert!(e.is_input_error(), "{e}");
    }
    let e = "rotated-mnist"
        .parse::<Generated>()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("rotated-digits, mario-iggy, rotation-regression"),
        "{e}"
    );
    for g in Generated::ALL {
        assert_eq!(g.name().parse::<Generated>().unwrap(), g);
    }
    // Regression targets cannot make rotated-digits.
    let reg = rotation_regression(&digits, &RotationRegression::default())
        .unwrap()
        .train
        .images;
    assert!(rotated_digits(&reg, &RotatedDigits::default()).is_err());
}
