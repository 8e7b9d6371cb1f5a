//! The learned feature map ("stem") that lets SKI's 1–3-D grid serve inputs of many dimensions:
//! the reference's `LinearStem` (Stanton et al., *Kernel Interpolation for Scalable Online
//! Gaussian Processes*, AISTATS 2021; `online_gp/models/stems.py`, wjmaddox/online_gp), a linear
//! map to `k` features, batch normalisation without an affine part, and `tanh(·/2)`, so that the
//! features lie in (−1, 1), inside the grid.
//!
//! Batch normalisation after a linear layer removes its bias and divides each feature by its
//! standard deviation over the data: feature `j` is `u_j = w_jᵀ(x − x̄) / √(w_jᵀ Σ w_j + ε)` with
//! `x̄`, `Σ` the mean and (biased) covariance of the inputs seen, `ε = 10⁻⁵` (PyTorch's). Keel
//! keeps `x̄` and `Σ` as running statistics of every row seen — the reference recomputes them
//! from a batch of up to 1024 rows seen at each step — and differentiates through them, as
//! batch normalisation in training mode does. For the controller the map is frozen into
//! `z = tanh(A x + c)` ([`LinearStem::frozen`]).

use keel_core::random::{uniform, Xoshiro256PlusPlus};

use super::fit::ThetaAdam;
use crate::error::{Error, Result};

/// Batch normalisation's ε.
const BN_EPS: f64 = 1e-5;

/// Running mean and co-moment of the inputs (Welford).
#[derive(Clone, Debug, PartialEq)]
struct Moments {
    n: f64,
    mean: Vec<f64>,
    /// `Σ_i (x_i − x̄)(x_i − x̄)ᵀ`, row-major.
    comoment: Vec<f64>,
}

/// A linear stem: `p` inputs to `k` features in (−1, 1).
#[derive(Clone, Debug, PartialEq)]
pub struct LinearStem {
    inputs: usize,
    features: usize,
    /// `k × p`, row-major.
    weight: Vec<f64>,
    moments: Moments,
}

/// The stem frozen for the controller: `z = tanh(A x + c)`.
#[derive(Clone, Debug, PartialEq)]
pub struct FrozenStem {
    /// `k × p`, row-major.
    pub a: Vec<f64>,
    /// `k` offsets.
    pub c: Vec<f64>,
}

impl LinearStem {
    /// A stem from `inputs` to `features` with PyTorch's `nn.Linear` initialisation
    /// (`U(−1/√p, 1/√p)`), drawn from `rng`; no rows seen yet.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming `stem` for `features` outside 1..=3 or no inputs.
    pub fn new(inputs: usize, features: usize, rng: &mut Xoshiro256PlusPlus) -> Result<Self> {
        if !(1..=3).contains(&features) {
            return Err(Error::invalid(
                "stem",
                features,
                "the stem feeds a grid of 1 to 3 dimensions",
            ));
        }
        if inputs == 0 {
            return Err(Error::invalid(
                "stem",
                "0 inputs",
                "the data have no input columns",
            ));
        }
        let bound = 1.0 / (inputs as f64).sqrt();
        let weight = (0..inputs * features)
            .map(|_| bound * (2.0 * uniform::<f64, _>(rng) - 1.0))
            .collect();
        Ok(LinearStem {
            inputs,
            features,
            weight,
            moments: Moments {
                n: 0.0,
                mean: vec![0.0; inputs],
                comoment: vec![0.0; inputs * inputs],
            },
        })
    }

    /// Input columns.
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// Features.
    pub fn features(&self) -> usize {
        self.features
    }

    /// The weights `k × p`, row-major.
    pub fn weight(&self) -> &[f64] {
        &self.weight
    }

    /// Replaces the weights.
    ///
    /// # Panics
    /// If `w` does not hold `k × p` values (a caller's bug).
    pub fn set_weight(&mut self, w: &[f64]) {
        assert_eq!(w.len(), self.weight.len(), "stem weights");
        self.weight.copy_from_slice(w);
    }

    /// Adds a row to the running statistics.
    pub fn observe(&mut self, x: &[f64]) {
        let m = &mut self.moments;
        m.n += 1.0;
        let p = self.inputs;
        let delta: Vec<f64> = x.iter().zip(&m.mean).map(|(a, b)| a - b).collect();
        for (mu, d) in m.mean.iter_mut().zip(&delta) {
            *mu += d / m.n;
        }
        for i in 0..p {
            let after = x[i] - m.mean[i];
            for j in 0..p {
                m.comoment[i * p + j] += after * delta[j];
            }
        }
    }

    /// Rows seen.
    pub fn rows_seen(&self) -> usize {
        self.moments.n as usize
    }

    /// `Σ w_j` and `r_j = √(w_jᵀΣw_j + ε)` for each feature.
    fn scales(&self) -> (Vec<f64>, Vec<f64>) {
        let (p, k) = (self.inputs, self.features);
        let n = self.moments.n.max(1.0);
        let mut sw = vec![0.0; k * p];
        let mut r = vec![0.0; k];
        for j in 0..k {
            let w = &self.weight[j * p..(j + 1) * p];
            let mut q = 0.0;
            for a in 0..p {
                let s: f64 = (0..p)
                    .map(|b| self.moments.comoment[a * p + b] / n * w[b])
                    .sum();
                sw[j * p + a] = s;
                q += w[a] * s;
            }
            r[j] = (q + BN_EPS).sqrt();
        }
        (sw, r)
    }

    /// `w_jᵀ(x − x̄)`.
    fn centred(&self, j: usize, x: &[f64]) -> f64 {
        let p = self.inputs;
        self.weight[j * p..(j + 1) * p]
            .iter()
            .zip(x.iter().zip(&self.moments.mean))
            .map(|(w, (x, m))| w * (x - m))
            .sum()
    }

    /// Features of the rows `x` (`[n, p]` row-major) into `z` (`[n, k]`).
    pub fn forward(&self, x: &[f64], z: &mut [f64]) {
        let (p, k) = (self.inputs, self.features);
        let (_, r) = self.scales();
        for (xi, zi) in x.chunks_exact(p).zip(z.chunks_exact_mut(k)) {
            for j in 0..k {
                let h = self.centred(j, xi);
                zi[j] = (0.5 * h / r[j]).tanh();
            }
        }
    }

    /// Features of the rows `x`.
    pub fn features_of(&self, x: &[f64]) -> Vec<f64> {
        let mut z = vec![0.0; x.len() / self.inputs * self.features];
        self.forward(x, &mut z);
        z
    }

    /// `∂L/∂W` (added to `grad`, `k × p`) from `∂L/∂z` (`dz`, `[n, k]`) at the rows `x`, with the
    /// statistics held fixed (they are data, not parameters) but their dependence on `W` through
    /// the normalisation included.
    pub fn backward(&self, x: &[f64], dz: &[f64], grad: &mut [f64]) {
        let (p, k) = (self.inputs, self.features);
        let (sw, r) = self.scales();
        for (xi, gi) in x.chunks_exact(p).zip(dz.chunks_exact(k)) {
            for j in 0..k {
                let h = self.centred(j, xi);
                let z = (0.5 * h / r[j]).tanh();
                // dz/du = ½(1 − z²), u = h/r, du/dw = (x − x̄)/r − h Σw/r³.
                let g = gi[j] * 0.5 * (1.0 - z * z);
                let r3 = r[j] * r[j] * r[j];
                for a in 0..p {
                    let du = (xi[a] - self.moments.mean[a]) / r[j] - h * sw[j * p + a] / r3;
                    grad[j * p + a] += g * du;
                }
            }
        }
    }

    /// The stem's online step (Stanton et al. 2021; the reference's `_update_stem`): one Adam
    /// step of learning rate `lr` up `scale·∂L/∂W` with `∂L/∂z = gz` at the row `x` (none
    /// without a gradient), then the row joins the normalisation's statistics. Returns the
    /// row's features after both.
    ///
    /// # Errors
    /// As the optimizer's step.
    pub(crate) fn online_step(
        &mut self,
        adam: &mut ThetaAdam,
        x: &[f64],
        gz: Option<&[f64]>,
        lr: f64,
        scale: f64,
    ) -> Result<Vec<f64>> {
        if let Some(gz) = gz {
            let mut gw = vec![0.0; self.weight().len()];
            self.backward(x, gz, &mut gw);
            let w = adam.ascend(&gw, lr, scale)?;
            self.set_weight(&w);
        }
        self.observe(x);
        Ok(self.features_of(x))
    }

    /// The map as it stands, as `z = tanh(A x + c)` for the controller.
    pub fn frozen(&self) -> FrozenStem {
        let (p, k) = (self.inputs, self.features);
        let (_, r) = self.scales();
        let mut a = vec![0.0; k * p];
        let mut c = vec![0.0; k];
        for j in 0..k {
            for b in 0..p {
                a[j * p + b] = 0.5 * self.weight[j * p + b] / r[j];
                c[j] -= a[j * p + b] * self.moments.mean[b];
            }
        }
        FrozenStem { a, c }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stem_with_rows() -> (LinearStem, Vec<f64>) {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        let mut stem = LinearStem::new(4, 2, &mut rng).unwrap();
        let x: Vec<f64> = (0..40)
            .map(|i| ((i * 7 % 13) as f64 / 6.0 - 1.0) * (1.0 + (i % 4) as f64 * 0.3))
            .collect();
        for row in x.chunks_exact(4) {
            stem.observe(row);
        }
        (stem, x)
    }

    #[test]
    fn running_statistics_equal_the_batch_ones() {
        let (stem, x) = stem_with_rows();
        let n = 10.0;
        for a in 0..4 {
            let mean: f64 = x.chunks_exact(4).map(|r| r[a]).sum::<f64>() / n;
            assert!((stem.moments.mean[a] - mean).abs() < 1e-14);
            for b in 0..4 {
                let meanb: f64 = x.chunks_exact(4).map(|r| r[b]).sum::<f64>() / n;
                let c: f64 = x
                    .chunks_exact(4)
                    .map(|r| (r[a] - mean) * (r[b] - meanb))
                    .sum();
                assert!((stem.moments.comoment[a * 4 + b] - c).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn features_are_normalised_and_the_frozen_map_agrees() {
        let (stem, x) = stem_with_rows();
        let z = stem.features_of(&x);
        // atanh(z)·2 has mean 0 and variance 1/(1 + ε/var) over the rows: batch normalisation.
        for j in 0..2 {
            let u: Vec<f64> = z.chunks_exact(2).map(|r| 2.0 * r[j].atanh()).collect();
            let mean = u.iter().sum::<f64>() / 10.0;
            let var = u.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 10.0;
            assert!(mean.abs() < 1e-12, "mean {mean}");
            assert!((var - 1.0).abs() < 1e-4, "variance {var}");
        }
        let f = stem.frozen();
        for (row, zr) in x.chunks_exact(4).zip(z.chunks_exact(2)) {
            for j in 0..2 {
                let v: f64 = (0..4).map(|b| f.a[j * 4 + b] * row[b]).sum::<f64>() + f.c[j];
                assert!((v.tanh() - zr[j]).abs() < 1e-14);
            }
        }
    }

    #[test]
    fn backward_is_the_gradient_of_the_features() {
        let (stem, x) = stem_with_rows();
        // L = Σ c_ij z_ij with fixed c.
        let c: Vec<f64> = (0..20).map(|i| (i as f64 * 0.37).sin()).collect();
        let loss =
            |s: &LinearStem| -> f64 { s.features_of(&x).iter().zip(&c).map(|(z, c)| z * c).sum() };
        let mut grad = vec![0.0; 8];
        stem.backward(&x, &c, &mut grad);
        for i in 0..8 {
            let h = 1e-6;
            let mut w = stem.weight().to_vec();
            w[i] += h;
            let mut up = stem.clone();
            up.set_weight(&w);
            w[i] -= 2.0 * h;
            let mut down = stem.clone();
            down.set_weight(&w);
            let fd = (loss(&up) - loss(&down)) / (2.0 * h);
            assert!((fd - grad[i]).abs() < 1e-8, "w{i}: {} vs {fd}", grad[i]);
        }
    }

    #[test]
    fn bad_sizes_are_refused() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(0);
        assert!(LinearStem::new(5, 4, &mut rng).is_err());
        assert!(LinearStem::new(5, 0, &mut rng).is_err());
        assert!(LinearStem::new(0, 2, &mut rng).is_err());
    }
}
