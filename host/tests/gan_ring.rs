//! The 8-Gaussian ring, its metrics and the GAN plots, through the public API (issue 23; Wu et
//! al., "Improving GAN Training with Probability Ratio Clipping and Sample Reweighting",
//! NeurIPS 2020, small-scale experiment).

use keel::gan::ring::{coverage_threshold, ring_quality, Ring};
use keel::gan::variance::GanLossSeries;
use keel::plot::{plot_gan_images, plot_gan_ring, plot_surrogate_curve};
use keel::Error;
use keel_core::random::{uniform, Xoshiro256PlusPlus};

/// `P(‖ε‖ ≤ 3σ)` for `ε ~ N(0, σ²I₂)`: `‖ε‖/σ` is chi-distributed with 2 degrees of freedom,
/// whose CDF is `1 − exp(−x²/2)`.
fn expected_fraction() -> f64 {
    1.0 - (-4.5f64).exp()
}

#[test]
fn the_ring_itself_covers_every_mode_with_the_chi2_fraction() {
    let ring = Ring::default();
    assert!((expected_fraction() - 0.98889).abs() < 1e-5);
    for seed in 0..5 {
        let n = 2000;
        let s = ring.sample(n, &mut Xoshiro256PlusPlus::seed_from_u64(seed));
        let q = ring_quality(&ring, &s).unwrap();
        assert_eq!(q.modes_covered, 8, "seed {seed}: {q:?}");
        assert_eq!(q.per_mode.len(), 8);
        // Each mode gets n/8 = 250 samples on average: all far above the 20 needed.
        assert!(q.per_mode.iter().all(|&c| c > 150), "seed {seed}: {q:?}");
        // Binomial standard error of the fraction; 5 of them either side.
        let p = expected_fraction();
        let se = (p * (1.0 - p) / n as f64).sqrt();
        assert!(
            (q.high_quality_fraction - p).abs() <= 5.0 * se,
            "seed {seed}: fraction {} vs {p} ± {}",
            q.high_quality_fraction,
            5.0 * se
        );
    }
}

#[test]
fn samples_at_one_centre_cover_one_mode() {
    let ring = Ring::default();
    let c = ring.centres()[5];
    let s: Vec<f64> = (0..2000).flat_map(|_| c).collect();
    let q = ring_quality(&ring, &s).unwrap();
    assert_eq!(q.modes_covered, 1);
    assert_eq!(q.high_quality_fraction, 1.0);
    assert_eq!(q.per_mode, [0, 0, 0, 0, 0, 2000, 0, 0]);
}

#[test]
fn uniform_noise_in_a_box_covers_nothing() {
    let ring = Ring::default();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
    let s: Vec<f64> = (0..4000)
        .map(|_| 6.0 * uniform::<f64, _>(&mut rng) - 3.0)
        .collect();
    let q = ring_quality(&ring, &s).unwrap();
    assert_eq!(q.modes_covered, 0, "{q:?}");
    // Expected: 8 discs of radius 0.06 in a 6 × 6 box, 8π·0.06²/36 ≈ 0.0025.
    assert!(q.high_quality_fraction < 0.01, "{q:?}");
}

#[test]
fn the_threshold_scales_with_the_sample_count() {
    let ring = Ring::default();
    // 200 samples: 2 per mode needed. One mode with 2, one with 1.
    let c = ring.centres();
    let mut s: Vec<f64> = Vec::new();
    s.extend(c[0]);
    s.extend(c[0]);
    s.extend(c[1]);
    s.extend((0..197).flat_map(|_| [0.0, 0.0]));
    assert_eq!(coverage_threshold(200), 2);
    let q = ring_quality(&ring, &s).unwrap();
    assert_eq!(q.modes_covered, 1);
    assert_eq!(q.per_mode[..2], [2, 1]);
}

#[test]
fn bad_samples_are_refused() {
    let ring = Ring::default();
    for bad in [
        &[][..],
        &[1.0, 2.0, 3.0][..],
        &[1.0, f64::NAN][..],
        &[f64::INFINITY, 0.0][..],
    ] {
        let e = ring_quality(&ring, bad).unwrap_err();
        assert!(matches!(e, Error::InvalidInput { .. }), "{e}");
        assert!(e.is_input_error());
    }
}

fn losses(n: usize) -> GanLossSeries {
    let iterations: Vec<usize> = (1..=n).map(|i| 10 * i).collect();
    GanLossSeries {
        critic: iterations
            .iter()
            .map(|&i| -1.0 + (i as f64 * 0.07).sin() / (1.0 + i as f64 * 0.01))
            .collect(),
        generator: iterations
            .iter()
            .map(|&i| 0.5 + 0.3 * (i as f64 * 0.05).cos())
            .collect(),
        iterations,
        window: 10,
    }
}

fn assert_png(path: &std::path::Path) {
    let bytes = std::fs::read(path).unwrap();
    assert!(bytes.len() > 1000, "{} bytes", bytes.len());
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
}

fn assert_refused(r: keel::Result<()>, path: &std::path::Path) {
    assert!(matches!(r, Err(Error::Plot { .. })), "{r:?}");
    assert!(!path.exists());
}

#[test]
fn ring_plot_is_written_and_empty_input_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ring = Ring::default();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
    let mut far = ring.sample(500, &mut rng);
    far.extend([40.0, -40.0]);
    let snaps = vec![
        (
            0,
            ring.sample(500, &mut rng).iter().map(|v| 0.1 * v).collect(),
        ),
        (1000, far),
        (2000, ring.sample(500, &mut rng)),
    ];
    let path = dir.path().join("ring.png");
    plot_gan_ring(&path, &snaps, &ring.centres(), &losses(200)).unwrap();
    assert_png(&path);
    // Fewer logged entries than the window: the variance panel is left empty, not refused.
    let path = dir.path().join("short.png");
    plot_gan_ring(&path, &snaps[..1], &ring.centres(), &losses(3)).unwrap();
    assert_png(&path);

    let path = dir.path().join("bad.png");
    assert_refused(
        plot_gan_ring(&path, &[], &ring.centres(), &losses(20)),
        &path,
    );
    assert_refused(plot_gan_ring(&path, &snaps, &[], &losses(20)), &path);
    assert_refused(
        plot_gan_ring(&path, &[(0, vec![])], &ring.centres(), &losses(20)),
        &path,
    );
    assert_refused(
        plot_gan_ring(
            &path,
            &[(0, vec![1.0, 2.0, 3.0])],
            &ring.centres(),
            &losses(20),
        ),
        &path,
    );
    assert_refused(
        plot_gan_ring(&path, &snaps, &ring.centres(), &losses(0)),
        &path,
    );
    let mut nan = losses(20);
    nan.critic[4] = f64::NAN;
    assert_refused(plot_gan_ring(&path, &snaps, &ring.centres(), &nan), &path);
}

#[test]
fn image_plot_is_written_and_bad_input_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(2);
    for (channels, side, count) in [(1, 8, 64), (3, 32, 16)] {
        let images: Vec<f64> = (0..count * channels * side * side)
            .map(|_| 2.2 * uniform::<f64, _>(&mut rng) - 1.1)
            .collect();
        let path = dir.path().join(format!("images{channels}.png"));
        plot_gan_images(&path, &images, channels, side, side, 8, Some(&losses(50))).unwrap();
        assert_png(&path);
        // A bare grid (keel gan sample) without the loss panels.
        let bare = dir.path().join(format!("bare{channels}.png"));
        plot_gan_images(&bare, &images, channels, side, side, 8, None).unwrap();
        assert_png(&bare);
    }
    let path = dir.path().join("bad.png");
    let one = vec![0.0; 64];
    assert_refused(
        plot_gan_images(&path, &[], 1, 8, 8, 8, Some(&losses(5))),
        &path,
    );
    assert_refused(
        plot_gan_images(&path, &one, 2, 8, 4, 8, Some(&losses(5))),
        &path,
    );
    assert_refused(
        plot_gan_images(&path, &one, 1, 8, 8, 0, Some(&losses(5))),
        &path,
    );
    assert_refused(
        plot_gan_images(&path, &one[..63], 1, 8, 8, 8, Some(&losses(5))),
        &path,
    );
    assert_refused(
        plot_gan_images(&path, &one, 1, 8, 8, 8, Some(&losses(0))),
        &path,
    );
    let mut nan = one.clone();
    nan[10] = f64::NAN;
    assert_refused(
        plot_gan_images(&path, &nan, 1, 8, 8, 8, Some(&losses(5))),
        &path,
    );
}

#[test]
fn surrogate_curve_is_written_and_bad_input_refused() {
    let dir = tempfile::tempdir().unwrap();
    let t: Vec<f64> = (0..=40).map(|i| -0.5 + 0.05 * i as f64).collect();
    let plain: Vec<f64> = t.iter().map(|t| 0.3 * t).collect();
    let surrogate: Vec<f64> = t
        .iter()
        .map(|t| 0.3 * t - 0.15 * (t - 1.0).max(0.0).powi(2) * 3.0)
        .collect();
    let path = dir.path().join("figure1.png");
    plot_surrogate_curve(&path, &t, &surrogate, &plain).unwrap();
    assert_png(&path);
    let path = dir.path().join("bad.png");
    assert_refused(plot_surrogate_curve(&path, &[], &[], &[]), &path);
    assert_refused(
        plot_surrogate_curve(&path, &t, &surrogate[1..], &plain),
        &path,
    );
    let mut nan = plain.clone();
    nan[3] = f64::INFINITY;
    assert_refused(plot_surrogate_curve(&path, &t, &surrogate, &nan), &path);
}
