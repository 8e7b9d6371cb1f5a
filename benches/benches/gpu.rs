//! GPU benchmarks (run by `cuda/check.sh` on a machine with a GPU; on any other machine this
//! prints why it has nothing to measure and exits successfully, as it measured nothing):
//! - bandwidth of elementwise and reduction kernels as a fraction of the device's peak;
//! - one MLP training step (784→1024→1024→10, batch 1024, f32, Adam) on the GPU, to set
//!   against PyTorch eager on the same GPU (`benches/peers/torch_mlp_gpu.py`).
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
            Box::new(|| no_grad(|| x.exp().map(drop))),
        ),
        (
            "binary add (f32, 64 Mi)",
            3.0 * n as f64 * bytes4,
            Box::new(|| no_grad(|| x.add(&y).map(drop))),
        ),
        (
            "affine (f32, 64 Mi)",
            2.0 * n as f64 * bytes4,
            Box::new(|| no_grad(|| x.affine(2.0, 1.0).map(drop))),
        ),
        (
            "sum over rows (f32, 8192×8192 → 8192)",
            (8192.0 * 8192.0 + 8192.0) * bytes4,
            Box::new(|| no_grad(|| rows.sum(&[0], false).map(drop))),
        ),
        (
            "sum over columns (f32, 8192×8192 → 8192)",
            (8192.0 * 8192.0 + 8192.0) * bytes4,
            Box::new(|| no_grad(|| rows.sum(&[1], false).map(drop))),
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
        no_grad(|| opt.step(&mut params, &grads, 1e-3))
    };
    let s = time(ordinal, 10, 50, &mut step)?;
    println!(
        "mlp_step f32 784-1024-1024-10 b1024 Adam: {:.3} ms",
        s * 1e3
    );
    println!("JSON {{\"bench\":\"mlp_step\",\"seconds\":{s}}}");
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
