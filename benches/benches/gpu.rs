//! GPU benchmarks (run by `cuda/check.sh` on a machine with a GPU; on any other machine this
//! prints why it has nothing to measure and exits successfully, as it measured nothing):
//! - bandwidth of elementwise and reduction kernels as a fraction of the device's peak;
//! - one MLP training step (784→1024→1024→10, batch 1024, f32, Adam) on the GPU, to set
//!   against PyTorch eager on the same GPU (`benches/peers/torch_mlp_gpu.py`);
//! - one full-batch HMC leapfrog step of an MLP 784→256→256→10 on 100k synthetic points (f32),
//!   against PyTorch on the same GPU (`benches/peers/torch_hmc_gpu.py`);
//! - one CNN training step on 28×28 images (batch 256, f32, Adam; layers
//!   `c32,c32,m2,c64,m2,c64,g` and a dense output: 3×3 convolutions with batch norm and ReLU),
//!   against PyTorch with cuDNN on the same GPU (`benches/peers/torch_cnn_gpu.py`);
//! - HMC chains and ensemble members in lockstep on the digits MLP (64 → 64 → 10, f64, 1617
//!   rows): one iteration of C chains (a 5-step trajectory and the MH test,
//!   `hmc::advance_batched`) and one epoch of M members (12 steps of batch 128,
//!   `stochastic::sgd_members`) for C, M = 1, 2, 4, … 64 — chain iterations and member epochs
//!   per second (issue 25 §4).
//!
//! Each figure is the median of repeated timings taken after a device synchronisation.

use std::time::Instant;

use keel::autodiff::{backward, no_grad};
use keel::backend::cuda;
use keel::init::Init;
use keel::nn::{Activation, Mlp};
use keel::optim::{Optimizer, OptimizerKind};
use keel::params::Params;
use keel::{DType, Device, Result, Tensor};
use keel_core::random::Xoshiro256PlusPlus;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median seconds of `f` over `reps` runs after `warm` warm-up runs, synchronising around each.
fn time(
    ordinal: usize,
    warm: usize,
    reps: usize,
    mut f: impl FnMut() -> Result<()>,
) -> Result<f64> {
    for _ in 0..warm {
        f()?;
    }
    cuda::synchronize(ordinal)?;
    let mut t = Vec::with_capacity(reps);
    for _ in 0..reps {
        let s = Instant::now();
        f()?;
        cuda::synchronize(ordinal)?;
        t.push(s.elapsed().as_secs_f64());
    }
    Ok(median(t))
}

fn run(ordinal: usize) -> Result<()> {
    let dev = Device::Cuda(ordinal);
    let peak = cuda::peak_bandwidth(ordinal)?;
    println!("peak memory bandwidth: {:.0} GB/s", peak / 1e9);
    let n = 1usize << 26; // 64 Mi f32 = 256 MiB per buffer
    let x = Tensor::randn(&[n], DType::F32, dev, 1)?;
    let y = Tensor::randn(&[n], DType::F32, dev, 2)?;
    let rows = Tensor::randn(&[8192, 8192], DType::F32, dev, 3)?;
    let bytes4 = 4.0f64;
    type Case<'a> = (&'a str, f64, Box<dyn FnMut() -> Result<()> + 'a>);
    let cases: Vec<Case> = vec![
        (
            "unary exp (f32, 64 Mi)",
            2.0 * n as f64 * bytes4,
            Box::new(|| Ok(no_grad(|| x.exp().map(drop))?)),
        ),
        (
            "binary add (f32, 64 Mi)",
            3.0 * n as f64 * bytes4,
            Box::new(|| Ok(no_grad(|| x.add(&y).map(drop))?)),
        ),
        (
            "affine (f32, 64 Mi)",
            2.0 * n as f64 * bytes4,
            Box::new(|| Ok(no_grad(|| x.affine(2.0, 1.0).map(drop))?)),
        ),
        (
            "sum over rows (f32, 8192×8192 → 8192)",
            (8192.0 * 8192.0 + 8192.0) * bytes4,
            Box::new(|| Ok(no_grad(|| rows.sum(&[0], false).map(drop))?)),
        ),
        (
            "sum over columns (f32, 8192×8192 → 8192)",
            (8192.0 * 8192.0 + 8192.0) * bytes4,
            Box::new(|| Ok(no_grad(|| rows.sum(&[1], false).map(drop))?)),
        ),
        (
            "max over columns (f32, 8192×8192 → 8192)",
            (8192.0 * 8192.0 + 8192.0) * bytes4,
            Box::new(|| Ok(no_grad(|| rows.max(1, false).map(drop))?)),
        ),
        (
            "sum of all (f32, 64 Mi → 1)",
            n as f64 * bytes4,
            Box::new(|| Ok(no_grad(|| x.sum(&[0], false).map(drop))?)),
        ),
    ];
    println!(
        "{:<44} {:>10} {:>10} {:>8}",
        "kernel", "median", "GB/s", "of peak"
    );
    for (name, moved, mut f) in cases {
        let s = time(ordinal, 3, 20, &mut f)?;
        let bw = moved / s;
        println!(
            "{name:<44} {:>8.3} ms {:>10.0} {:>7.1}%",
            s * 1e3,
            bw / 1e9,
            100.0 * bw / peak
        );
        println!("JSON {{\"bench\":\"bandwidth\",\"case\":\"{name}\",\"seconds\":{s},\"bytes_per_s\":{bw},\"fraction_of_peak\":{}}}", bw / peak);
    }

    // MLP training step 784→1024→1024→10, batch 1024, f32, Adam.
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(0);
    let mut params = Params::new();
    let mlp = Mlp::new(
        &mut params,
        &[784, 1024, 1024, 10],
        Activation::Relu,
        Init::PyTorchDefault,
        DType::F32,
        &mut rng,
    )?;
    let mut params = params.to_device(dev)?;
    let mut opt = Optimizer::new(OptimizerKind::adam(), &params)?;
    let xb = Tensor::randn(&[1024, 784], DType::F32, dev, 4)?;
    let labels: Vec<usize> = (0..1024).map(|i| (i * 7) % 10).collect();
    let mut step = || -> Result<()> {
        let vars = params.variables();
        let loss = mlp.forward(&vars, &xb)?.cross_entropy(&labels)?;
        let refs: Vec<&Tensor> = vars.values().iter().collect();
        let grads = no_grad(|| backward(&loss, &refs))?;
        Ok(no_grad(|| opt.step(&mut params, &grads, 1e-3))?)
    };
    // Warm-up by hand, so that the memory pool can be read between warm-up and timing: a
    // step served from the pool leaves its reserved bytes where they were (issue 25 §3).
    for _ in 0..10 {
        step()?;
    }
    cuda::synchronize(ordinal)?;
    let before = cuda::pool_memory(ordinal);
    let s = time(ordinal, 0, 50, &mut step)?;
    let after = cuda::pool_memory(ordinal);
    println!(
        "mlp_step f32 784-1024-1024-10 b1024 Adam: {:.3} ms",
        s * 1e3
    );
    println!("JSON {{\"bench\":\"mlp_step\",\"seconds\":{s}}}");
    match (before, after) {
        (Ok(b), Ok(a)) => {
            println!(
                "memory pool after 10 warm-up steps: {} B reserved ({} B in use); after 50 more: {} B reserved ({} B in use){}",
                b.reserved,
                b.used,
                a.reserved,
                a.used,
                if a.reserved == b.reserved {
                    " — no allocation from the driver after warm-up"
                } else {
                    " — the pool grew: steps still allocate from the driver"
                }
            );
            println!(
                "JSON {{\"bench\":\"pool\",\"reserved_after_warmup\":{},\"reserved_after_50\":{}}}",
                b.reserved, a.reserved
            );
        }
        (b, a) => println!("memory pool not readable: {b:?} / {a:?}"),
    }
    hmc_leapfrog(ordinal)?;
    cnn_step(ordinal)?;
    chains_and_members(ordinal)
}

/// HMC chains and ensemble members in lockstep (see the module doc).
fn chains_and_members(ordinal: usize) -> Result<()> {
    use keel::bayes::hmc::{advance_batched, ChainState, Ensembling, HmcConfig};
    use keel::bayes::mlp::{Bnn, Likelihood, Split};
    use keel::bayes::prior::Prior;
    use keel::bayes::stochastic::{sgd_members, Batching};
    // From the source tree, or (the bundled binary on a GPU machine, cuda/check.sh) from the
    // repository root it runs in.
    let built =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/data/digits.csv");
    let path = if built.exists() {
        built
    } else {
        std::path::PathBuf::from("fixtures/data/digits.csv")
    };
    let data = keel::data::read_csv(&path, "label", true)?;
    let split = Split::new(&data, 0.1, 0)?;
    let bnn = Bnn::new(
        &split,
        &[64],
        Likelihood::Categorical { classes: 10 },
        Prior::Gaussian { std: 0.447 },
        1.0,
        Device::Cuda(ordinal),
        DType::F64,
    )?;
    for c in [1usize, 2, 4, 8, 16, 32, 64] {
        let cfgs: Vec<HmcConfig> = (0..c)
            .map(|k| HmcConfig {
                step_size: 1e-3,
                trajectory_length: 5e-3,
                max_leapfrog_steps: 100,
                iterations: 1000,
                burn_in: 10,
                mh: true,
                ensembling: Ensembling::AcceptedOnly,
                seed: k as u64,
                adapt: None,
            })
            .collect();
        let refs: Vec<&HmcConfig> = cfgs.iter().collect();
        let mut states = cfgs
            .iter()
            .enumerate()
            .map(|(k, cfg)| ChainState::start(&bnn, bnn.init(k as u64), cfg))
            .collect::<Result<Vec<_>>>()?;
        let s = time(ordinal, 2, 10, || {
            let mut each: Vec<&mut ChainState> = states.iter_mut().collect();
            advance_batched(&bnn, &mut each, &refs).map(drop)
        })?;
        println!(
            "hmc_chains C={c:<3} one iteration (5 leapfrog steps): {:.3} ms, {:.0} chain iterations/s",
            s * 1e3,
            c as f64 / s
        );
        println!("JSON {{\"bench\":\"hmc_chains\",\"chains\":{c},\"seconds\":{s}}}");
    }
    for m in [1usize, 2, 4, 8, 16, 32, 64] {
        let batchings: Vec<Batching> = (0..m as u64)
            .map(|seed| Batching {
                batch_size: 128,
                epochs: 1,
                seed,
                augment: None,
            })
            .collect();
        let inits: Vec<Vec<f64>> = (0..m as u64).map(|s| bnn.init(s)).collect();
        let s = time(ordinal, 1, 5, || {
            sgd_members(&bnn, inits.clone(), 1e-3, &batchings, &mut |_| {}).map(drop)
        })?;
        println!(
            "ensemble_members M={m:<3} one epoch (12 steps): {:.3} ms, {:.1} member epochs/s",
            s * 1e3,
            m as f64 / s
        );
        println!("JSON {{\"bench\":\"ensemble_members\",\"members\":{m},\"seconds\":{s}}}");
    }
    Ok(())
}

/// One CNN training step at 28×28, batch 256 (see the module doc).
fn cnn_step(ordinal: usize) -> Result<()> {
    use keel::nn::cnn::{parse_spec, Cnn, Mode};
    let dev = Device::Cuda(ordinal);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(0);
    let mut params = Params::new();
    let spec = parse_spec("c32,c32,m2,c64,m2,c64,g")?;
    let (cnn, state) = Cnn::new(
        &mut params,
        "",
        [1, 28, 28],
        &spec,
        10,
        DType::F32,
        &mut rng,
    )?;
    let mut params = params.to_device(dev)?;
    let mut state = state.to_device(dev)?;
    let mut opt = Optimizer::new(OptimizerKind::adam(), &params)?;
    let xb = Tensor::randn(&[256, 1, 28, 28], DType::F32, dev, 5)?;
    let labels: Vec<usize> = (0..256).map(|i| (i * 7) % 10).collect();
    let mut seed = 0;
    let mut step = || -> Result<()> {
        let vars = params.variables();
        seed += 1;
        let loss = cnn
            .forward(&vars, &mut state, &xb, Mode::Train { seed })?
            .cross_entropy(&labels)?;
        let refs: Vec<&Tensor> = vars.values().iter().collect();
        let grads = no_grad(|| backward(&loss, &refs))?;
        Ok(no_grad(|| opt.step(&mut params, &grads, 1e-3))?)
    };
    let s = time(ordinal, 5, 30, &mut step)?;
    println!(
        "cnn_step f32 28x28 b256 c32,c32,m2,c64,m2,c64,g Adam: {:.3} ms",
        s * 1e3
    );
    println!("JSON {{\"bench\":\"cnn_step\",\"seconds\":{s}}}");
    Ok(())
}

/// One full-batch HMC leapfrog step (`keel bayes hmc`'s inner loop: the fused update kernel and
/// one full-batch gradient) for an MLP 784→256→256→10 (f32, Gaussian prior) on 100,000 synthetic
/// 784-dimensional points, against `benches/peers/torch_hmc_gpu.py` on the same GPU.
fn hmc_leapfrog(ordinal: usize) -> Result<()> {
    use keel::bayes::hmc::{leapfrog, State};
    use keel::bayes::mlp::{Bnn, Likelihood, Split};
    use keel::bayes::prior::Prior;
    use keel::data::{Dataset, Targets};
    let (n, d) = (100_000, 784);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(11);
    let x: Vec<f64> = (0..n * d)
        .map(|_| keel_core::random::standard_normal::<f64, _>(&mut rng))
        .collect();
    let labels: Vec<usize> = (0..n).map(|i| (i * 7) % 10).collect();
    let data = Dataset {
        features: (0..d).map(|j| format!("x{j}")).collect(),
        x,
        y: Targets::Classes {
            labels,
            classes: (0..10).map(|c| c.to_string()).collect(),
        },
    };
    let split = Split::new(&data, 0.0, 0)?;
    let bnn = Bnn::new(
        &split,
        &[256, 256],
        Likelihood::Categorical { classes: 10 },
        Prior::Gaussian { std: 0.3 },
        1.0,
        Device::Cuda(ordinal),
        DType::F32,
    )?;
    let state = State::at(&bnn, &bnn.init(0))?;
    let p: Vec<f64> = (0..bnn.dim())
        .map(|_| keel_core::random::standard_normal::<f64, _>(&mut rng))
        .collect();
    let s = time(ordinal, 5, 30, || {
        leapfrog(&bnn, &state, &p, 1e-4, 1).map(drop)
    })?;
    println!(
        "hmc_leapfrog f32 784-256-256-10 on 100k points: {:.3} ms ({:.0} steps/s)",
        s * 1e3,
        1.0 / s
    );
    println!("JSON {{\"bench\":\"hmc_leapfrog\",\"seconds\":{s}}}");
    Ok(())
}

fn main() {
    // `cargo bench` passes harness arguments; this bench takes none.
    let ordinal = 0;
    match cuda::probe() {
        Err(reason) => println!("gpu bench: nothing measured — no usable GPU ({reason})"),
        Ok(_) => {
            if let Err(e) = run(ordinal) {
                eprintln!("gpu bench failed: {e}");
                std::process::exit(1);
            }
        }
    }
}
