//! Online classification with one GP per class on Dirichlet-transformed targets (Milios et al.,
//! *Dirichlet-based Gaussian Processes for Large-scale Calibrated Classification*, NeurIPS 2018),
//! as Stanton et al., *Kernel Interpolation for Scalable Online Gaussian Processes* (AISTATS
//! 2021), stream it through WISKI (the reference code's
//! `online_gp/models/online_ski_classifier.py` and `gp_dirichlet_classification.py`,
//! wjmaddox/online_gp), and Keel's banana stream to run it on.

use std::time::Instant;

use serde::Serialize;

use super::hyper::{GridSpec, Hyper};
use super::store::Store;
use super::stream::StreamMethod;
use super::timing::median;
use crate::error::{Error, Result};

/// The Dirichlet-based classification transform (Milios et al. 2018) for one class indicator:
/// `α = α_ε + 1[y = c]`, `σ̃² = log(1/α + 1)`, `ỹ = log α − σ̃²/2`. Returns `(ỹ, σ̃²)`.
pub fn dirichlet_target(is_class: bool, alpha_eps: f64) -> (f64, f64) {
    let alpha = alpha_eps + if is_class { 1.0 } else { 0.0 };
    let var = (1.0 / alpha + 1.0).ln();
    (alpha.ln() - 0.5 * var, var)
}

/// A labelled 2-D stream: inputs, class labels (0 or 1).
#[derive(Clone, Debug, PartialEq)]
pub struct Labelled2d {
    /// Inputs `[n, 2]`, row-major.
    pub x: Vec<f64>,
    /// Labels.
    pub label: Vec<usize>,
}

/// Keel's banana stream: two interleaved crescents (each a half circle of radius 1, the second
/// shifted by (1, −0.5) and flipped), Gaussian noise of sd `noise`, mapped affinely from
/// `[−1.25, 2.25] × [−0.85, 1.35]` onto `[−1, 1]²`, in random order. Seeded.
pub fn banana(n: usize, noise: f64, seed: u64) -> Labelled2d {
    use keel_core::random::{standard_normal, uniform, Xoshiro256PlusPlus};
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut x = Vec::with_capacity(2 * n);
    let mut label = Vec::with_capacity(n);
    for _ in 0..n {
        let c = usize::from(uniform::<f64, _>(&mut rng) < 0.5);
        let t = std::f64::consts::PI * uniform::<f64, _>(&mut rng);
        let (mut a, mut b) = if c == 0 {
            (t.cos(), t.sin())
        } else {
            (1.0 - t.cos(), 0.5 - t.sin())
        };
        a += noise * standard_normal::<f64, _>(&mut rng);
        b += noise * standard_normal::<f64, _>(&mut rng);
        x.push((2.0 * (a + 1.25) / 3.5 - 1.0).clamp(-1.0, 1.0));
        x.push((2.0 * (b + 0.85) / 2.2 - 1.0).clamp(-1.0, 1.0));
        label.push(c);
    }
    Labelled2d { x, label }
}

/// Results of online Dirichlet-GP classification.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClassifyReport {
    /// `wiski` or `exact`.
    pub method: &'static str,
    /// Points streamed.
    pub n: usize,
    /// Fraction of stream points classified correctly before they were absorbed.
    pub online_accuracy: f64,
    /// Accuracy on the held-out test points after the stream.
    pub test_accuracy: f64,
    /// Mean negative log probability of the test labels (class probabilities by Monte Carlo
    /// over the two GPs' posteriors, 256 draws).
    pub test_nll: f64,
    /// Median time to absorb one point into both class GPs (µs).
    pub update_us_median: f64,
    /// Seconds in all.
    pub seconds: f64,
}

/// Streams a 2-class problem through one GP per class on the Dirichlet-transformed targets
/// (fixed heteroscedastic noise `σ̃²`, no learned noise: `σ² = 1`), predicting each point before
/// absorbing it, then scores the test set. The targets are centred on the midpoint of the two
/// values ỹ takes, so an empty region predicts a tie rather than "not this class".
///
/// # Errors
/// As [`wiski`](super::wiski) / [`exact`](super::exact).
pub fn classify(
    method: StreamMethod,
    hyper: &Hyper,
    grid: &GridSpec,
    train: &Labelled2d,
    test: &Labelled2d,
    alpha_eps: f64,
    seed: u64,
) -> Result<ClassifyReport> {
    use keel_core::random::{standard_normal, Xoshiro256PlusPlus};
    if !(alpha_eps > 0.0 && alpha_eps.is_finite()) {
        return Err(Error::invalid("alpha_eps", alpha_eps, "must be positive"));
    }
    let mut h = hyper.for_dim(2)?;
    h.noise = 1.0;
    let n = train.label.len();
    let (on, off) = (
        dirichlet_target(true, alpha_eps),
        dirichlet_target(false, alpha_eps),
    );
    let centre = 0.5 * (on.0 + off.0);
    let start = Instant::now();
    // Both classes' models live side by side; exact needs capacity n.
    let grid = match method {
        StreamMethod::Wiski => grid.for_dim(2)?,
        StreamMethod::Exact => grid.clone(),
    };
    let mut stores = [
        Store::new(method, &grid, n, 2),
        Store::new(method, &grid, n, 2),
    ];
    let mut models = stores
        .iter_mut()
        .map(|s| s.build::<2>(&grid, &h))
        .collect::<Result<Vec<_>>>()?;
    let mut correct = 0usize;
    let mut update_us = Vec::with_capacity(n);
    let row_err = |i: usize| {
        move |source| Error::Core {
            context: format!("stream row {}", i + 1),
            source,
        }
    };
    for i in 0..n {
        let x = [train.x[2 * i], train.x[2 * i + 1]];
        let mut best = (f64::NEG_INFINITY, 0);
        for (c, m) in models.iter_mut().enumerate() {
            let p = m.predict(&x).map_err(row_err(i))?;
            if p.mean > best.0 {
                best = (p.mean, c);
            }
        }
        correct += usize::from(best.1 == train.label[i]);
        let t = Instant::now();
        for (c, m) in models.iter_mut().enumerate() {
            let (y, var) = if train.label[i] == c { on } else { off };
            m.absorb(&x, y - centre, var).map_err(row_err(i))?;
        }
        update_us.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let (mut test_correct, mut nll) = (0usize, 0.0);
    let m_test = test.label.len();
    for i in 0..m_test {
        let x = [test.x[2 * i], test.x[2 * i + 1]];
        let mut post = [(0.0, 0.0); 2];
        for (c, m) in models.iter_mut().enumerate() {
            let p = m.predict(&x).map_err(Error::core("test prediction"))?;
            post[c] = (p.mean, p.var_f.sqrt());
        }
        let pred = usize::from(post[1].0 > post[0].0);
        test_correct += usize::from(pred == test.label[i]);
        // p(c) = E[softmax(f)] with f_c ~ N(μ_c, var_c) independently.
        let mut prob = 0.0;
        const DRAWS: usize = 256;
        for _ in 0..DRAWS {
            let f0 = post[0].0 + post[0].1 * standard_normal::<f64, _>(&mut rng);
            let f1 = post[1].0 + post[1].1 * standard_normal::<f64, _>(&mut rng);
            let (fc, fo) = if test.label[i] == 0 {
                (f0, f1)
            } else {
                (f1, f0)
            };
            prob += 1.0 / (1.0 + (fo - fc).exp());
        }
        nll -= (prob / DRAWS as f64).max(1e-12).ln();
    }
    Ok(ClassifyReport {
        method: method.name(),
        n,
        online_accuracy: correct as f64 / n.max(1) as f64,
        test_accuracy: test_correct as f64 / m_test.max(1) as f64,
        test_nll: nll / m_test.max(1) as f64,
        update_us_median: median(&mut update_us),
        seconds: start.elapsed().as_secs_f64(),
    })
}
