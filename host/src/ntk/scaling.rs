//! The cost of the two posteriors as the number of points grows (the reference's speed
//! notebooks: an MLP 5→200→2000→200→1 with 803,601 parameters, n from 300 upwards, CG in
//! function space against CG in parameter space). Function space solves an `n`-dimensional
//! system whose products cost one reverse and one forward pass over the `n` points; parameter
//! space solves a `P`-dimensional one whose products cost the same passes — so the cost per
//! iteration grows with `n` in both, and what differs is how many iterations each needs.
//!
//! The reference's network uses ELU; Keel's engine has no ELU, so this one uses SiLU (smooth and
//! unbounded above like ELU; the parameter count is the same). The network is as initialised
//! (PyTorch's default), the inputs `x ~ N(0, I₅)`, the targets `y = sin(x₀) + x₁/2 + 0.1·ε`.

use std::time::Instant;

use keel_core::random::{standard_normal, Xoshiro256PlusPlus};
use keel_engine::nn::{Activation, Mlp};
use keel_engine::params::Params;
use keel_engine::{DType, Tensor};

use super::jacobian::{param_count, Jacobian, Outputs};
use super::krylov::{cg, CgReport, CgSettings};
use super::posterior::Space;
use crate::error::{Error, Result};
use crate::progress::{Observer, Tick};

/// The experiment's configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct ScalingConfig {
    /// The numbers of points.
    pub n: Vec<usize>,
    /// Layer widths `[in, …, 1]`.
    pub sizes: Vec<usize>,
    /// Noise variance σ².
    pub noise: f64,
    /// CG tolerance and cap.
    pub cg: CgSettings,
    /// The spaces to time.
    pub spaces: Vec<Space>,
    /// The network's precision (the products' precision; CG runs in f64).
    pub dtype: DType,
    /// Rows per forward pass.
    pub chunk: usize,
    /// Seed.
    pub seed: u64,
}

impl ScalingConfig {
    /// The notebook's network and sizes, with the reference's evaluation tolerance 0.01 and a
    /// cap of 1,000 iterations.
    pub fn reference() -> Self {
        ScalingConfig {
            n: vec![300, 1000, 3000, 10_000, 30_000],
            sizes: vec![5, 200, 2000, 200, 1],
            noise: 0.01,
            cg: CgSettings {
                tol: 0.01,
                max_iter: 1000,
            },
            spaces: vec![Space::Function, Space::Parameter],
            dtype: DType::F32,
            chunk: 4096,
            seed: 0,
        }
    }

    /// Checks the configuration.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the setting.
    pub fn check(&self) -> Result<()> {
        if self.n.is_empty() {
            return Err(Error::invalid(
                "n",
                "",
                "give at least one number of points",
            ));
        }
        if let Some(&n) = self.n.iter().find(|&&n| n == 0 || n > 1_000_000) {
            return Err(Error::invalid("n", n, "each must be in 1..=1000000"));
        }
        if self.sizes.len() < 2 || self.sizes.iter().any(|&w| w == 0 || w > 100_000) {
            return Err(Error::invalid(
                "sizes",
                format!("{:?}", self.sizes),
                "need at least an input and an output width, each in 1..=100000",
            ));
        }
        if self.sizes.last() != Some(&1) {
            return Err(Error::invalid(
                "sizes",
                format!("{:?}", self.sizes),
                "the output width must be 1",
            ));
        }
        if self.spaces.is_empty() {
            return Err(Error::invalid(
                "spaces",
                "",
                "give function, parameter or both",
            ));
        }
        if !(self.noise > 0.0) || !self.noise.is_finite() {
            return Err(Error::invalid(
                "noise",
                self.noise,
                "must be positive and finite",
            ));
        }
        // One chunk's activations, kept for the reverse pass, must stay reasonable.
        let widest = self.sizes.iter().copied().max().unwrap_or(1) as u128;
        let bytes = (self.chunk.max(1) as u128) * widest * (self.sizes.len() as u128) * 8 * 4;
        if bytes > 8 << 30 {
            return Err(Error::TooLarge {
                what: format!(
                    "a chunk of {} rows through widths {:?}",
                    self.chunk, self.sizes
                ),
                bytes,
            });
        }
        self.cg.check()
    }
}

/// One solve's cost.
#[derive(Clone, Debug, PartialEq)]
pub struct ScalingPoint {
    /// Points.
    pub n: usize,
    /// Space.
    pub space: Space,
    /// How CG ended.
    pub cg: CgReport,
    /// Seconds of the solve.
    pub seconds: f64,
}

impl ScalingPoint {
    /// Seconds per CG iteration.
    pub fn seconds_per_iteration(&self) -> f64 {
        self.seconds / self.cg.iterations.max(1) as f64
    }
}

/// The experiment's results.
#[derive(Clone, Debug, PartialEq)]
pub struct ScalingReport {
    /// The configuration.
    pub config: ScalingConfig,
    /// The network's parameter count.
    pub params: usize,
    /// One entry per `n` and space, in that order.
    pub points: Vec<ScalingPoint>,
}

/// Times the CG solve of each space at each `n`. Progress: one tick per solve.
///
/// # Errors
/// [`Error::InvalidInput`] for a bad configuration; solver and engine errors. A solve that
/// stops at the cap is reported (`converged: false`), not an error.
pub fn run(cfg: &ScalingConfig, progress: &mut Observer) -> Result<ScalingReport> {
    cfg.check()?;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(cfg.seed);
    let mut params = Params::new();
    let net = Mlp::new(
        &mut params,
        &cfg.sizes,
        Activation::Silu,
        keel_engine::init::Init::PyTorchDefault,
        cfg.dtype,
        &mut rng,
    )?;
    let d = cfg.sizes[0];
    let total = cfg.n.len() * cfg.spaces.len();
    let mut points = Vec::with_capacity(total);
    let s2 = cfg.noise;
    for &n in &cfg.n {
        let x: Vec<f64> = (0..n * d)
            .map(|_| standard_normal::<f64, _>(&mut rng))
            .collect();
        let y: Vec<f64> = x
            .chunks(d)
            .map(|r| {
                r[0].sin()
                    + 0.5 * r.get(1).copied().unwrap_or(0.0)
                    + 0.1 * standard_normal::<f64, _>(&mut rng)
            })
            .collect();
        let xt = Tensor::from_f64s(&x, &[n, d], cfg.dtype)?;
        let jac = Jacobian::new(&net, &params, &xt, Outputs::All)?.chunk(cfg.chunk);
        for &space in &cfg.spaces {
            let t0 = Instant::now();
            let (_, report) = match space {
                Space::Function => cg(
                    |v| {
                        let kv = jac.jvp(&jac.vjp(v)?)?;
                        Ok(kv.iter().zip(v).map(|(a, b)| a + s2 * b).collect())
                    },
                    &y,
                    None,
                    cfg.cg,
                )?,
                Space::Parameter => {
                    let b = jac.vjp(&y)?;
                    cg(
                        |u| {
                            let g = jac.gauss_newton(u)?;
                            Ok(g.iter().zip(u).map(|(a, b)| a + s2 * b).collect())
                        },
                        &b,
                        None,
                        cfg.cg,
                    )?
                }
            };
            points.push(ScalingPoint {
                n,
                space,
                cg: report,
                seconds: t0.elapsed().as_secs_f64(),
            });
            progress(&Tick {
                done: points.len(),
                total,
                values: &[("n", n as f64)],
            });
        }
    }
    Ok(ScalingReport {
        config: cfg.clone(),
        params: param_count(&params),
        points,
    })
}
