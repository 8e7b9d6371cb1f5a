//! GANs: one outer iteration of the ring GAN on the CPU — five critic steps (re-weighted
//! WGAN-GP loss, the gradient penalty's double backward) and five generator steps (for `ppo` each
//! one classifier step and one clipped-surrogate step) — with the paper's small-scale networks
//! (MLPs 3 × 128, latent 128, batch 256, f32), as `benches/peers/gan_step.py --ring` times
//! PyTorch.
//!
//! Bench ids: `gan/ring-outer-iteration/{wgan-gp,ppo}`. Each sample is `keel::gan::train` with one
//! outer iteration and two evaluation samples, so it also counts building the three networks
//! (≈ 100 k parameters drawn from the generator) and the short evaluation — a few per cent of
//! the iteration.
//!
//! ```text
//! cargo bench -p keel-benches --bench gan
//! ```

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use keel::backend::{DType, Device};
use keel::gan::{self, GanConfig, GanData, Method, Ring};

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("gan");
    g.measurement_time(Duration::from_secs(10));
    g.sample_size(10);
    for method in [Method::WganGp, Method::Ppo] {
        let mut cfg = GanConfig::new(GanData::Ring(Ring::default()), method);
        cfg.iterations = 1;
        cfg.eval_samples = 2;
        cfg.snapshots = 0;
        cfg.curve_points = 0;
        cfg.dtype = DType::F32;
        cfg.device = Device::Cpu;
        g.bench_function(format!("ring-outer-iteration/{}", method.name()), |b| {
            b.iter(|| black_box(gan::train(&cfg, &mut |_| {}).expect("train")))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
