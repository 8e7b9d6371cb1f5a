//! The host tensor engine (`keel`): one MLP training step as `keel fit` takes it, its parts, and
//! square matrix products. The JAX peer (`benches/peers/mlp_step.py`) times the same work.
//!
//! Bench ids are `<what>/<dtype>/<case>`:
//! - `mlp_step/f32/64-256-256-10/b128`: one full training step of an MLP 64→256→256→10 (ReLU)
//!   on a batch of 128 — the loop body of `keel fit` (`host/src/fit.rs`): fresh variables,
//!   forward, cross-entropy against fixed labels, `loss.item()`, `backward` under `no_grad`,
//!   Adam step (lr 1e-3) under `no_grad`. The parameters and Adam moments carry over from
//!   iteration to iteration (steady state), as in training;
//! - `mlp_forward/…`: forward + cross-entropy + `item()` under `no_grad` (inference cost);
//! - `mlp_grad/…`: the step without the optimizer (recorded forward + loss + `backward`);
//! - `adam/…`: the optimizer step alone, on fixed gradients;
//! - `matmul/<dtype>/<n>`: `a.matmul(&b)` of two `n×n` matrices (no gradient recording).
//!
//! Inputs: the MLP is `Mlp::new(…, Init::PyTorchDefault, DType::F32, …)` from
//! `Xoshiro256PlusPlus::seed_from_u64(SEED)`; the batch is `x[i][j] = √2·sin(0.37·(64i + j) + 0.1)`
//! and labels `(7i + 3) mod 10` — formulas the JAX peer reproduces exactly (it also reproduces
//! the seeded initialisation), so both sides train the same network on the same batch. Before
//! timing, the harness prints the loss of the first steps from the initial parameters on stderr
//! (`mlp_step check: …`), which `benches/peers/run_engine.sh` compares with the peer's.
//!
//! ```text
//! cargo bench -p keel-benches --bench engine -- mlp_step
//! ```

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use keel::autodiff::{backward, no_grad};
use keel::init::Init;
use keel::nn::{Activation, Mlp};
use keel::optim::{Optimizer, OptimizerKind};
use keel::params::Params;
use keel::{DType, Tensor};
use keel_core::random::{uniform, Xoshiro256PlusPlus};

/// Seed of the MLP's initialisation and of the matmul operands.
const SEED: u64 = 0;
/// Layer widths of the benched MLP.
const SIZES: [usize; 4] = [64, 256, 256, 10];
/// Batch size.
const BATCH: usize = 128;
/// Adam learning rate.
const LR: f64 = 1e-3;
/// Steps whose losses are printed as the cross-check with the peer.
const CHECK_STEPS: usize = 5;

/// `[BATCH, SIZES[0]]` inputs `√2·sin(0.37·k + 0.1)`, `k` the row-major index.
fn batch_inputs(dtype: DType) -> Tensor {
    let cols = SIZES[0];
    let v: Vec<f64> = (0..BATCH * cols)
        .map(|k| std::f64::consts::SQRT_2 * (0.37 * k as f64 + 0.1).sin())
        .collect();
    Tensor::from_f64s(&v, &[BATCH, cols], dtype).expect("batch")
}

/// Labels `(7i + 3) mod classes`.
fn batch_labels() -> Vec<usize> {
    let classes = SIZES[SIZES.len() - 1];
    (0..BATCH).map(|i| (7 * i + 3) % classes).collect()
}

/// A model, its optimizer and the fixed batch: everything one training step touches.
struct Training {
    mlp: Mlp,
    params: Params,
    opt: Optimizer,
    x: Tensor,
    labels: Vec<usize>,
}

impl Training {
    fn new(dtype: DType) -> Training {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(SEED);
        let mut params = Params::new();
        let mlp = Mlp::new(
            &mut params,
            &SIZES,
            Activation::Relu,
            Init::PyTorchDefault,
            dtype,
            &mut rng,
        )
        .expect("mlp");
        let opt = Optimizer::new(OptimizerKind::adam(), &params).expect("adam");
        Training {
            mlp,
            params,
            opt,
            x: batch_inputs(dtype),
            labels: batch_labels(),
        }
    }

    /// The loop body of `keel fit` (`host/src/fit.rs`) for a classification batch, without the
    /// optional gradient clipping; returns the loss.
    fn step(&mut self) -> f64 {
        let vars = self.params.variables();
        let out = self.mlp.forward(&vars, &self.x).expect("forward");
        let loss = out.cross_entropy(&self.labels).expect("loss");
        let l = loss.item().expect("item");
        let refs: Vec<&Tensor> = vars.values().iter().collect();
        let grads = no_grad(|| backward(&loss, &refs)).expect("backward");
        no_grad(|| self.opt.step(&mut self.params, &grads, LR)).expect("adam step");
        l
    }

    /// Forward and loss with recording off.
    fn forward_loss(&self) -> f64 {
        no_grad(|| {
            let out = self.mlp.forward(&self.params, &self.x)?;
            out.cross_entropy(&self.labels)?.item()
        })
        .expect("forward")
    }

    /// The step without the optimizer: recorded forward, loss, gradients.
    fn grads(&self) -> Vec<Tensor> {
        let vars = self.params.variables();
        let out = self.mlp.forward(&vars, &self.x).expect("forward");
        let loss = out.cross_entropy(&self.labels).expect("loss");
        black_box(loss.item().expect("item"));
        let refs: Vec<&Tensor> = vars.values().iter().collect();
        no_grad(|| backward(&loss, &refs)).expect("backward")
    }
}

fn mlp(c: &mut Criterion) {
    eprintln!("{}", keel_benches::cpu_line());
    let case = format!("{}/b{BATCH}", SIZES.map(|s| s.to_string()).join("-"));
    let id = |what: &str| format!("{what}/f32/{case}");

    let mut check = Training::new(DType::F32);
    let losses: Vec<String> = (0..CHECK_STEPS)
        .map(|_| format!("{:.7}", check.step()))
        .collect();
    eprintln!(
        "mlp_step check: f32 {case}, Adam lr {LR}, losses of steps 1..{CHECK_STEPS}: [{}]",
        losses.join(", ")
    );

    let mut t = Training::new(DType::F32);
    c.bench_function(&id("mlp_step"), |b| b.iter(|| black_box(t.step())));

    let t = Training::new(DType::F32);
    c.bench_function(&id("mlp_forward"), |b| {
        b.iter(|| black_box(t.forward_loss()))
    });
    c.bench_function(&id("mlp_grad"), |b| b.iter(|| black_box(t.grads())));

    let mut t = Training::new(DType::F32);
    let grads = t.grads();
    c.bench_function(&id("adam"), |b| {
        b.iter(|| {
            no_grad(|| t.opt.step(&mut t.params, black_box(&grads), LR)).expect("adam step");
        })
    });
}

/// An `n×n` matrix of uniform draws in `[−1, 1)`.
fn square(n: usize, dtype: DType, rng: &mut Xoshiro256PlusPlus) -> Tensor {
    let v: Vec<f64> = (0..n * n)
        .map(|_| 2.0 * uniform::<f64, _>(rng) - 1.0)
        .collect();
    Tensor::from_f64s(&v, &[n, n], dtype).expect("matrix")
}

fn matmul(c: &mut Criterion) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(SEED);
    let mut g = c.benchmark_group("matmul");
    for (dtype, n) in [
        (DType::F32, 128),
        (DType::F64, 128),
        (DType::F32, 256),
        (DType::F32, 512),
        (DType::F32, 1024),
    ] {
        let (a, b) = (square(n, dtype, &mut rng), square(n, dtype, &mut rng));
        if n >= 1024 {
            // ~2·10⁹ flops per product: criterion's minimum of 10 samples keeps this short.
            g.sample_size(10);
        }
        g.bench_function(format!("{dtype}/{n}"), |bch| {
            bch.iter(|| black_box(&a).matmul(black_box(&b)).expect("matmul"))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    // Short defaults for a 2-core CI; `-- --warm-up-time 3 --measurement-time 10` overrides.
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = mlp, matmul
}
criterion_main!(benches);
