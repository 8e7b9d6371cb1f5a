//! The paper's synthetic regression sets (`emlp/datasets.py`), generated exactly by their formulas,
//! with the reference's equivariance-preserving standardisation statistics.

use std::sync::Arc;

use keel_core::random::{standard_normal, Xoshiro256PlusPlus};

use super::group::Group;
use super::parse::parse_rep;
use super::rep::Rep;
use crate::error::{Error, Result};

/// Which data set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dataset {
    /// `y = sin|x₁| − ½|x₂|³ + x₁·x₂/(|x₁||x₂|)`, x₁, x₂ ∈ ℝ⁵; O(5); 2V → V⁰.
    O5Synthetic,
    /// Inertia tensor of 5 point masses; O(3); 5V⁰ + 5V → T(2).
    Inertia,
    /// e⁻μ⁻ scattering amplitude of four 4-momenta; O(1,3); 4V → V⁰.
    ParticleInteraction,
}

impl Dataset {
    /// Parse `o5-synthetic`, `inertia`, `particle-interaction`.
    pub fn parse(s: &str) -> Result<Dataset> {
        match s {
            "o5-synthetic" | "o5synthetic" | "O5Synthetic" => Ok(Dataset::O5Synthetic),
            "inertia" | "Inertia" => Ok(Dataset::Inertia),
            "particle-interaction" | "ParticleInteraction" => Ok(Dataset::ParticleInteraction),
            _ => Err(Error::invalid(
                "dataset",
                s,
                "unknown data set (o5-synthetic, inertia, particle-interaction)",
            )),
        }
    }

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Dataset::O5Synthetic => "o5-synthetic",
            Dataset::Inertia => "inertia",
            Dataset::ParticleInteraction => "particle-interaction",
        }
    }

    /// The symmetry group the paper uses.
    pub fn default_group(self) -> &'static str {
        match self {
            Dataset::O5Synthetic => "O(5)",
            Dataset::Inertia => "O(3)",
            Dataset::ParticleInteraction => "O13()",
        }
    }

    /// Input and output representation strings (the reference's).
    pub fn reps(self) -> (&'static str, &'static str) {
        match self {
            Dataset::O5Synthetic => ("2*V", "Scalar"),
            Dataset::Inertia => ("5*Scalar+5*V", "T(2)"),
            Dataset::ParticleInteraction => ("4*V", "Scalar"),
        }
    }

    /// Input and output representations for `g` (whose base dimension must fit the data).
    pub fn representations(self, g: &Arc<Group>) -> Result<(Rep, Rep)> {
        let need = match self {
            Dataset::O5Synthetic => 5,
            Dataset::Inertia => 3,
            Dataset::ParticleInteraction => 4,
        };
        if g.d != need {
            return Err(Error::invalid(
                "group",
                &g.name,
                format!(
                    "acts on ℝ^{} but {} needs a group acting on ℝ^{need}",
                    g.d,
                    self.name()
                ),
            ));
        }
        let (i, o) = self.reps();
        let p = |s: &str| parse_rep(s, Some(g)).map_err(|e| Error::invalid("rep", s, e.render(s)));
        Ok((p(i)?, p(o)?))
    }

    /// Input and output sizes.
    pub fn sizes(self) -> (usize, usize) {
        match self {
            Dataset::O5Synthetic => (10, 1),
            Dataset::Inertia => (20, 9),
            Dataset::ParticleInteraction => (16, 1),
        }
    }
}

/// Rows of inputs and targets, with standardisation statistics.
#[derive(Clone, Debug)]
pub struct Table {
    /// Inputs, `n × n_in`, row-major.
    pub x: Vec<f64>,
    /// Targets, `n × n_out`.
    pub y: Vec<f64>,
    /// Input size.
    pub n_in: usize,
    /// Output size.
    pub n_out: usize,
    /// Per-input-feature scale (inputs are divided by it; never centred, which would break
    /// equivariance).
    pub x_scale: Vec<f64>,
    /// Per-output mean and standard deviation (the model predicts standardised targets).
    pub y_mean: Vec<f64>,
    /// Per-output standard deviation.
    pub y_std: Vec<f64>,
}

impl Table {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.x.len() / self.n_in
    }
}

/// The targets of `x` (`n × n_in`) by the data set's formula.
pub fn targets(ds: Dataset, x: &[f64]) -> Vec<f64> {
    let (n_in, _) = ds.sizes();
    let mut y = Vec::new();
    for row in x.chunks_exact(n_in) {
        match ds {
            Dataset::O5Synthetic => {
                let (a, b) = row.split_at(5);
                let na = a.iter().map(|v| v * v).sum::<f64>().sqrt();
                let nb = b.iter().map(|v| v * v).sum::<f64>().sqrt();
                let dot: f64 = a.iter().zip(b).map(|(u, v)| u * v).sum();
                y.push(na.sin() - 0.5 * nb.powi(3) + dot / (na * nb));
            }
            Dataset::Inertia => {
                let (m, r) = row.split_at(5);
                let mut t = [0.0; 9];
                for (i, &mi) in m.iter().enumerate() {
                    let ri = &r[3 * i..3 * i + 3];
                    let r2: f64 = ri.iter().map(|v| v * v).sum();
                    for a in 0..3 {
                        for b in 0..3 {
                            let id = if a == b { 1.0 } else { 0.0 };
                            t[a * 3 + b] += mi * (r2 * id - ri[a] * ri[b]);
                        }
                    }
                }
                y.extend_from_slice(&t);
            }
            Dataset::ParticleInteraction => {
                let eta = [1.0, -1.0, -1.0, -1.0];
                let p = |k: usize| &row[4 * k..4 * k + 4];
                let dot = |u: &[f64], v: &[f64]| (0..4).map(|i| eta[i] * u[i] * v[i]).sum::<f64>();
                let (p1, p2, p3, p4) = (p(0), p(1), p(2), p(3));
                let (c_e, c_mu) = (dot(p1, p3) - dot(p1, p1), dot(p2, p4) - dot(p2, p2));
                let mut m = 0.0;
                for a in 0..4 {
                    for b in 0..4 {
                        let eab = if a == b { eta[a] } else { 0.0 };
                        let le = p1[a] * p3[b] - c_e * eab;
                        let lmu = eta[a] * p2[a] * eta[b] * p4[b] - c_mu * eab;
                        m += le * lmu;
                    }
                }
                y.push(4.0 * m);
            }
        }
    }
    y
}

/// Draw `n` rows with `rng` and compute the reference's statistics over all of them.
pub fn generate(ds: Dataset, n: usize, rng: &mut Xoshiro256PlusPlus) -> Table {
    let (n_in, n_out) = ds.sizes();
    let mut x: Vec<f64> = (0..n * n_in)
        .map(|_| standard_normal::<f64, _>(rng))
        .collect();
    match ds {
        Dataset::Inertia => {
            for row in x.chunks_exact_mut(n_in) {
                for m in &mut row[..5] {
                    *m = (1.0 + m.exp()).ln();
                }
            }
        }
        Dataset::ParticleInteraction => x.iter_mut().for_each(|v| *v /= 4.0),
        Dataset::O5Synthetic => {}
    }
    let y = targets(ds, &x);
    let (x_scale, y_mean, y_std) = statistics(ds, &x, &y);
    Table {
        x,
        y,
        n_in,
        n_out,
        x_scale,
        y_mean,
        y_std,
    }
}

/// The reference's standardisation over rows `x` (`n × n_in`) and targets `y`: per-vector input
/// scales (O5Synthetic: RMS; ParticleInteraction: √ of the mean |Minkowski square| per
/// coordinate), target mean and standard deviation; none for Inertia.
pub fn statistics(ds: Dataset, x: &[f64], y: &[f64]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (n_in, n_out) = ds.sizes();
    let n = x.len() / n_in;
    let nf = n.max(1) as f64;
    match ds {
        Dataset::O5Synthetic | Dataset::ParticleInteraction => {
            let (vectors, d) = if ds == Dataset::O5Synthetic {
                (2, 5)
            } else {
                (4, 4)
            };
            let mut scale = Vec::with_capacity(n_in);
            for v in 0..vectors {
                let s = if ds == Dataset::O5Synthetic {
                    // RMS over rows and coordinates.
                    (x.chunks_exact(n_in)
                        .map(|r| r[v * d..v * d + d].iter().map(|a| a * a).sum::<f64>())
                        .sum::<f64>()
                        / (nf * d as f64))
                        .sqrt()
                } else {
                    // sqrt(mean over rows of mean over coordinates |(pη)∘p|).
                    let eta = [1.0, -1.0, -1.0, -1.0];
                    (x.chunks_exact(n_in)
                        .map(|r| {
                            (0..4)
                                .map(|i| (eta[i] * r[v * 4 + i] * r[v * 4 + i]).abs())
                                .sum::<f64>()
                                / 4.0
                        })
                        .sum::<f64>()
                        / nf)
                        .sqrt()
                };
                scale.extend(std::iter::repeat_n(s, d));
            }
            let mean = y.iter().sum::<f64>() / nf;
            let std = (y.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / nf).sqrt();
            (scale, vec![mean], vec![std])
        }
        // The reference does not standardise Inertia.
        Dataset::Inertia => (vec![1.0; n_in], vec![0.0; n_out], vec![1.0; n_out]),
    }
}
