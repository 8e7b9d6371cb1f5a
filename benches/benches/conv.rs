//! The engine's image layers (issue 21 §5): a convolution alone, and one training step of a
//! small CNN on the digits' shape. The PyTorch-CPU and JAX-CPU peers
//! (`benches/peers/cnn_step.py`) time the same work on the same inputs.
//!
//! Bench ids are `<what>/<dtype>/<case>`:
//! - `conv2d_fwd/f32/<cin>-<cout>/8x8/b128`: `x.conv2d(w, Some(b), pad 1)` of a `[128, cin, 8, 8]`
//!   batch with a 3×3 kernel, under `no_grad` (inference);
//! - `conv2d_fwd_bwd/f32/<cin>-<cout>/8x8/b128`: the recorded convolution and the gradients of
//!   `⟨gy, y⟩` (a fixed cotangent `gy`) to the weight, the bias and — for `cin > 1`, where a
//!   network needs it — the input (`keel::grad`);
//! - `conv2d_direct_fwd/f32/<cin>-<cout>/8x8/b128`: the same convolution by `keel_core`'s direct
//!   loop (`nn::Cnn`, what the controller runs: no patch matrix), image by image on one thread,
//!   from a file `keel::export::cnn::cnn_bytes` writes with the same weights — the measurement
//!   behind the engine's choice of im2col + GEMM;
//! - `cnn_step/f32/c32,c32,m2,c64,g/b128`: one training step of the CNN `c32,c32,m2,c64,g` plus
//!   a dense layer to 10 (`Cnn::new`: 3×3 convolutions with padding 1 and bias, batch norm in
//!   training mode, ReLU, 2×2 max pooling, global mean, linear) on `[128, 1, 8, 8]` images:
//!   fresh variables, forward in `Mode::Train`, mean cross-entropy, `loss.item()`, `backward`
//!   and Adam (lr 1e-3) under `no_grad`. Parameters, Adam moments and batch-norm running
//!   statistics carry over from step to step (steady state); `iter_batched` clones nothing
//!   here, so the batch setup only hands over the fixed batch.
//!
//! - `conv3x3_{fwd,wgrad}/{winograd,direct,patches}/f32/<cin>-<cout>/<h>x<w>/b<n>`: the
//!   engine's three CPU kernels for 3×3 "same" convolutions side by side, on CPUs with AVX2 +
//!   FMA or AVX-512F — Winograd's F(2×2, 3×3) (`backend::cpu::conv_winograd`), the
//!   shifted-copy direct kernel (`backend::cpu::conv_shift`) and patches with `gemm`
//!   (`backend::cpu::conv::conv2d_patches`), the convolution and its weight gradient, at the
//!   shapes of the digits' CNNs, 28×28 images and wider layers: the measurement behind the
//!   engine's choice between them. `KEEL_CPU_ISA=avx2` times what a CPU without AVX-512 runs
//!   (Keel's kernels; `gemm` still picks its own).
//!
//! Inputs: images `x[k] = √2·sin(0.37·k + 0.1)` (`k` the row-major index), labels
//! `(7i + 3) mod 10`, cotangents `gy[k] = cos(0.11·k)`; the CNN is drawn by `Cnn::new` from
//! `Xoshiro256PlusPlus::seed_from_u64(0)`, convolution weights for the conv benches with the
//! same initialisation. The peer reproduces all of them; before timing, the harness prints the
//! losses of the first steps (`cnn_step check: …`) for the peer to compare.
//!
//! ```text
//! cargo bench -p keel-benches --bench conv
//! ```

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use keel::autodiff::{backward, grad, no_grad};
use keel::init::{self, Init};
use keel::nn::cnn::{parse_spec, Cnn, CnnState, Mode};
use keel::optim::{Optimizer, OptimizerKind};
use keel::params::Params;
use keel::tensor::Conv2dOpts;
use keel::{DType, Tensor};
use keel_core::random::Xoshiro256PlusPlus;

/// Seed of every initialisation.
const SEED: u64 = 0;
/// Batch size.
const BATCH: usize = 128;
/// Image side (the digits: 8×8).
const SIDE: usize = 8;
/// The benched network (the output layer to [`CLASSES`] is added by `Cnn::new`).
const SPEC: &str = "c32,c32,m2,c64,g";
/// Output classes.
const CLASSES: usize = 10;
/// Adam learning rate.
const LR: f64 = 1e-3;
/// Steps whose losses are printed as the cross-check with the peers.
const CHECK_STEPS: usize = 5;

/// `[BATCH, c, SIDE, SIDE]` of `√2·sin(0.37·k + 0.1)`.
fn images(c: usize) -> Tensor {
    let v: Vec<f64> = (0..BATCH * c * SIDE * SIDE)
        .map(|k| std::f64::consts::SQRT_2 * (0.37 * k as f64 + 0.1).sin())
        .collect();
    Tensor::from_f64s(&v, &[BATCH, c, SIDE, SIDE], DType::F32).expect("images")
}

/// Labels `(7i + 3) mod CLASSES`.
fn labels() -> Vec<usize> {
    (0..BATCH).map(|i| (7 * i + 3) % CLASSES).collect()
}

/// Padding 1, stride 1: the size-preserving 3×3 convolution.
fn same() -> Conv2dOpts {
    Conv2dOpts {
        padding: [1, 1],
        ..Conv2dOpts::default()
    }
}

/// One convolution layer's operands.
struct ConvCase {
    x: Tensor,
    w: Tensor,
    b: Tensor,
    gy: Tensor,
    input_grad: bool,
}

impl ConvCase {
    fn new(cin: usize, cout: usize) -> ConvCase {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(SEED);
        let fan_in = cin * 9;
        let w = init::weight(Init::PyTorchDefault, cout, fan_in, DType::F32, &mut rng)
            .and_then(|w| w.reshape(&[cout, cin, 3, 3]))
            .expect("weight");
        let b = init::bias(cout, fan_in, DType::F32, &mut rng).expect("bias");
        let n = BATCH * cout * SIDE * SIDE;
        let gy: Vec<f64> = (0..n).map(|k| (0.11 * k as f64).cos()).collect();
        ConvCase {
            x: images(cin),
            w,
            b,
            gy: Tensor::from_f64s(&gy, &[BATCH, cout, SIDE, SIDE], DType::F32).expect("gy"),
            input_grad: cin > 1,
        }
    }

    fn forward(&self) -> Tensor {
        no_grad(|| self.x.conv2d(&self.w, Some(&self.b), same())).expect("conv2d")
    }

    fn forward_backward(&self) -> Vec<Option<Tensor>> {
        let (x, w, b) = (self.x.variable(), self.w.variable(), self.b.variable());
        let y = x.conv2d(&w, Some(&b), same()).expect("conv2d");
        let mut wrt = vec![&w, &b];
        if self.input_grad {
            wrt.push(&x);
        }
        grad(&[&y], &[Some(&self.gy)], &wrt, false).expect("grad")
    }
}

/// The convolution of `case` as a one-layer `keel.kind = "cnn"` file for the core.
fn direct_file(case: &ConvCase, cin: usize, cout: usize) -> Vec<u8> {
    use keel::export::cnn::{cnn_bytes, CnnConfig, CnnLayer};
    let config = CnnConfig {
        input: [cin, SIDE, SIDE],
        layers: vec![CnnLayer::Conv {
            out: cout,
            kernel: [3, 3],
            stride: [1, 1],
            padding: [1, 1],
            dilation: [1, 1],
            groups: 1,
            activation: "identity".into(),
        }],
        output: keel::export::OutputKind::Logits,
        normalization: None,
        augerino: None,
        classes: None,
    };
    let w = case.w.to_vec_f64().expect("host tensor");
    let b = case.b.to_vec_f64().expect("host tensor");
    cnn_bytes(
        &config,
        &[
            ("layer0.weight".into(), vec![cout, cin, 3, 3], w),
            ("layer0.bias".into(), vec![cout], b),
        ],
    )
    .expect("a valid one-layer CNN")
}

fn conv(c: &mut Criterion) {
    eprintln!("{}", keel_benches::cpu_line());
    for (cin, cout) in [(1, 32), (32, 64)] {
        let case = ConvCase::new(cin, cout);
        let id = |what: &str| format!("{what}/f32/{cin}-{cout}/{SIDE}x{SIDE}/b{BATCH}");
        let bytes = direct_file(&case, cin, cout);
        let st = keel_core::io::SafeTensors::<8>::parse(&bytes).expect("written above");
        let net = keel_core::nn::Cnn::<2>::from_safetensors(&st).expect("written above");
        let xs = case.x.to_vec_f32().expect("host tensor");
        let per = cin * SIDE * SIDE;
        let mut out = vec![0.0f32; cout * SIDE * SIDE];
        let mut scratch = vec![0.0f32; net.scratch_len()];
        c.bench_function(&id("conv2d_direct_fwd"), |bch| {
            bch.iter(|| {
                for img in xs.chunks(per) {
                    net.forward(img, &mut out, &mut scratch)
                        .expect("sizes fixed above");
                }
                black_box(out[0])
            })
        });
        c.bench_function(&id("conv2d_fwd"), |bch| {
            bch.iter(|| black_box(case.forward()))
        });
        c.bench_function(&id("conv2d_fwd_bwd"), |bch| {
            bch.iter(|| black_box(case.forward_backward()))
        });
    }
}

/// The CNN, its running statistics, its optimizer and the fixed batch.
struct Training {
    cnn: Cnn,
    params: Params,
    state: CnnState,
    opt: Optimizer,
    x: Tensor,
    labels: Vec<usize>,
    steps: u64,
}

impl Training {
    fn new() -> Training {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(SEED);
        let mut params = Params::new();
        let spec = parse_spec(SPEC).expect("spec");
        let (cnn, state) = Cnn::new(
            &mut params,
            "",
            [1, SIDE, SIDE],
            &spec,
            CLASSES,
            DType::F32,
            &mut rng,
        )
        .expect("cnn");
        let opt = Optimizer::new(OptimizerKind::adam(), &params).expect("adam");
        Training {
            cnn,
            params,
            state,
            opt,
            x: images(1),
            labels: labels(),
            steps: 0,
        }
    }

    /// Forward (training mode), loss, gradients, Adam; returns the loss.
    fn step(&mut self, x: &Tensor) -> f64 {
        let vars = self.params.variables();
        let mode = Mode::Train { seed: self.steps };
        self.steps += 1;
        let out = self
            .cnn
            .forward(&vars, &mut self.state, x, mode)
            .expect("forward");
        let loss = out.cross_entropy(&self.labels).expect("loss");
        let l = loss.item().expect("item");
        let refs: Vec<&Tensor> = vars.values().iter().collect();
        let grads = no_grad(|| backward(&loss, &refs)).expect("backward");
        no_grad(|| self.opt.step(&mut self.params, &grads, LR)).expect("adam step");
        l
    }
}

fn cnn(c: &mut Criterion) {
    let id = format!("cnn_step/f32/{SPEC}/b{BATCH}");
    let mut check = Training::new();
    let x = check.x.clone();
    let losses: Vec<String> = (0..CHECK_STEPS)
        .map(|_| format!("{:.7}", check.step(&x)))
        .collect();
    eprintln!(
        "cnn_step check: f32 {SPEC}/b{BATCH}, Adam lr {LR}, losses of steps 1..{CHECK_STEPS}: [{}]",
        losses.join(", ")
    );

    let mut t = Training::new();
    let batch = t.x.clone();
    c.bench_function(&id, |bch| {
        bch.iter_batched(
            || batch.clone(),
            |x| black_box(t.step(&x)),
            BatchSize::SmallInput,
        )
    });
}

/// The three CPU kernels for 3×3 "same" convolutions (see the header) side by side.
fn algorithms(c: &mut Criterion) {
    use keel::backend::cpu::conv::{self, PatchGeom, PatchLayout};
    use keel::backend::cpu::{conv_shift, conv_winograd};
    let cases = [
        (128, 16, 16, 8),
        (128, 32, 32, 8),
        (128, 32, 64, 8),
        (128, 64, 32, 8),
        (128, 32, 64, 4),
        (32, 16, 16, 28),
        (32, 32, 32, 28),
        (32, 64, 64, 14),
        (16, 128, 128, 8),
    ];
    for (n, cin, cout, side) in cases {
        let g = PatchGeom {
            n,
            c: cin,
            h: side,
            w: side,
            groups: 1,
            kernel: [3, 3],
            stride: [1, 1],
            padding: [1, 1],
            dilation: [1, 1],
            oh: side,
            ow: side,
            layout: PatchLayout::PatchesChannelsLast,
        };
        if !conv_winograd::supports(&g) || !conv_shift::applies(&g) {
            eprintln!("conv3x3 benches skipped: neither AVX2 + FMA nor AVX-512F on this CPU");
            return;
        }
        let wave = |len: usize, f: f32| (0..len).map(|k| (f * k as f32 + 0.1).sin()).collect();
        let x: Vec<f32> = wave(g.image_len(), 0.37);
        let w: Vec<f32> = wave(cout * cin * 9, 0.91);
        let b: Vec<f32> = wave(cout, 1.3);
        let gy: Vec<f32> = wave(n * cout * side * side, 0.11);
        let id = |what: &str, how: &str| {
            format!("conv3x3_{what}/{how}/f32/{cin}-{cout}/{side}x{side}/b{n}")
        };
        c.bench_function(&id("fwd", "winograd"), |bch| {
            bch.iter(|| black_box(conv_winograd::conv2d(&x, &w, Some(&b), &g, cout)))
        });
        c.bench_function(&id("fwd", "direct"), |bch| {
            bch.iter(|| black_box(conv_shift::conv2d(&x, &w, Some(&b), &g, cout)))
        });
        c.bench_function(&id("fwd", "patches"), |bch| {
            bch.iter(|| black_box(conv::conv2d_patches(&x, &w, Some(&b), &g, cout)))
        });
        c.bench_function(&id("wgrad", "winograd"), |bch| {
            bch.iter(|| black_box(conv_winograd::conv2d_weight_grad(&x, &gy, &g, cout)))
        });
        c.bench_function(&id("wgrad", "direct"), |bch| {
            bch.iter(|| black_box(conv_shift::conv2d_weight_grad(&x, &gy, &g, cout)))
        });
        c.bench_function(&id("wgrad", "patches"), |bch| {
            bch.iter(|| black_box(conv::conv2d_weight_grad_patches(&x, &gy, &g, cout)))
        });
    }
}

criterion_group! {
    name = benches;
    // Short defaults for a 2-core CI; `-- --warm-up-time 3 --measurement-time 10` overrides.
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = conv, cnn, algorithms
}
criterion_main!(benches);
