//! GAN training (`keel::gan::train`): a resumed run gives exactly the numbers of an
//! uninterrupted one, the saved generator samples as the trained one does, the three methods
//! differ where they should, and the ring generator learns to put its samples on the ring.

use keel::gan::{self, GanConfig, GanData, Method, Ring};
use keel::{DType, Device};

fn ring_config(method: Method, iterations: usize) -> GanConfig {
    let mut cfg = GanConfig::new(GanData::Ring(Ring::default()), method);
    cfg.arch = gan::Arch::Mlp {
        width: 32,
        depth: 2,
    };
    cfg.iterations = iterations;
    cfg.batch = 64;
    cfg.latent = 8;
    cfg.eval_samples = 400;
    cfg.loss_window = 4;
    cfg.dtype = DType::F64;
    cfg.device = Device::Cpu;
    cfg
}

#[test]
fn a_resumed_run_ends_with_the_numbers_of_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let whole = gan::train(&ring_config(Method::Ppo, 10), &mut |_| {}).unwrap();
    let mut cfg = ring_config(Method::Ppo, 10);
    cfg.checkpoint = keel::checkpoint::Options {
        path: Some(dir.path().join("c.safetensors")),
        every: 3,
        resume: true,
        stop_after: Some(4),
    };
    let first = gan::train(&cfg, &mut |_| {}).unwrap();
    assert!(first.stopped_early);
    assert_eq!(first.critic_losses.len(), 4);
    cfg.checkpoint.stop_after = None;
    let rest = gan::train(&cfg, &mut |_| {}).unwrap();
    assert_eq!(rest.report.resumed_at, 4);
    assert_eq!(rest.critic_losses, whole.critic_losses);
    assert_eq!(rest.generator_losses, whole.generator_losses);
    assert_eq!(rest.samples, whole.samples);
    assert_eq!(rest.snapshots, whole.snapshots);
    assert_eq!(
        rest.report.surrogate_curve, whole.report.surrogate_curve,
        "the curve of iteration 5 was taken after the resume"
    );
    // A checkpoint of another configuration is refused, naming both.
    let mut other = cfg.clone();
    other.seed = 1;
    let e = gan::train(&other, &mut |_| {}).unwrap_err().to_string();
    assert!(e.contains("seed=0") && e.contains("seed=1"), "{e}");
}

#[test]
fn the_saved_generator_samples_as_the_trained_one() {
    let run = gan::train(&ring_config(Method::Reweight, 3), &mut |_| {}).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.safetensors");
    run.generator.save(&path).unwrap();
    let loaded = gan::export::load(&path).unwrap();
    assert_eq!(loaded.arch, run.generator.arch);
    assert_eq!(loaded.latent, 8);
    assert_eq!(loaded.method, "reweight");
    // The file holds f32: the loaded generator (f64 arithmetic on f32 values) agrees with the
    // trained one (f64) to f32 rounding of the weights.
    let a = run.generator.sample(50, 7).unwrap();
    let b = loaded.sample(50, 7).unwrap();
    assert_eq!(a.len(), 100);
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-4 * (1.0 + x.abs()), "{x} vs {y}");
    }
    // One changed byte is refused.
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0x40;
    let e = gan::export::from_bytes(&bytes, &path)
        .unwrap_err()
        .to_string();
    assert!(e.contains("g.safetensors"), "{e}");
}

#[test]
fn the_methods_differ_only_where_they_should() {
    // The first critic step is the same for wgan-gp and reweight up to the weights: with every
    // draw equal, the unweighted run's first logged critic loss differs from the weighted one.
    let w = gan::train(&ring_config(Method::WganGp, 2), &mut |_| {}).unwrap();
    let r = gan::train(&ring_config(Method::Reweight, 2), &mut |_| {}).unwrap();
    let p = gan::train(&ring_config(Method::Ppo, 2), &mut |_| {}).unwrap();
    assert_ne!(w.critic_losses[0], r.critic_losses[0]);
    // reweight and ppo share their critic's first outer iteration exactly (same draws, same
    // loss); their generators then differ.
    assert_eq!(r.critic_losses[0], p.critic_losses[0]);
    assert_ne!(r.generator_losses[0], p.generator_losses[0]);
    assert!(p.report.surrogate_curve.is_some() && r.report.surrogate_curve.is_none());
}

#[test]
fn the_surrogate_curve_follows_the_update() {
    let mut cfg = ring_config(Method::Ppo, 4);
    cfg.curve_at = Some(2);
    cfg.curve_points = 5;
    cfg.curve_span = 2.0;
    let run = gan::train(&cfg, &mut |_| {}).unwrap();
    let c = run.report.surrogate_curve.unwrap();
    assert_eq!(c.iteration, 2);
    assert_eq!(c.t, vec![0.0, 0.5, 1.0, 1.5, 2.0]);
    // The update raised the objective it followed (Adam's step has a positive inner product
    // with the gradient; at this learning rate the first-order change dominates).
    assert!(c.surrogate[2] > c.surrogate[0], "{c:?}");
    assert!(c.surrogate.iter().chain(&c.plain).all(|v| v.is_finite()));
}

#[test]
fn bad_settings_are_refused_naming_them() {
    let check = |f: &dyn Fn(&mut GanConfig), setting: &str| {
        let mut cfg = ring_config(Method::Ppo, 2);
        f(&mut cfg);
        let e = gan::train(&cfg, &mut |_| {}).unwrap_err().to_string();
        assert!(e.contains(setting), "{setting}: {e}");
    };
    check(&|c| c.clip_eps = 1.0, "clip_eps");
    check(&|c| c.clip_eps = 0.0, "clip_eps");
    check(&|c| c.batch = 0, "batch");
    check(&|c| c.lr = f64::NAN, "lr");
    check(&|c| c.latent = 1 << 20, "latent");
    check(&|c| c.lambda_gp = -1.0, "lambda_gp");
    check(&|c| c.curve_at = Some(3), "curve_at");
    check(&|c| c.arch = gan::Arch::Dcgan { width: 8 }, "model");
}
