//! Bayesian linear regression with known noise: `y = Xw + ε`, `ε ~ N(0, σ²)`, prior
//! `w ~ N(0, s²I)`, at temperature `T` in the reference's convention (the noise scale becomes
//! `σ√T`, the prior is divided by `T`) — an HMC target with an analytic posterior
//! `N(μ, Σ)`, `Σ = T (XᵀX/σ² + I/s²)⁻¹`, `μ = Σ Xᵀy / (σ² T)`.

use keel_core::linalg::{cholesky_in_place, solve_lower_in_place, solve_lower_transpose_in_place};

use super::hmc::Target;
use crate::backend::hmc::{PriorArgs, PriorKind};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// The model and its data (`x` row-major `[n, d]`).
#[derive(Clone, Debug)]
pub struct LinearGaussian {
    /// Design matrix, row-major.
    pub x: Vec<f64>,
    /// Targets.
    pub y: Vec<f64>,
    /// Features per row.
    pub d: usize,
    /// Noise standard deviation `σ`.
    pub noise_std: f64,
    /// Prior standard deviation `s`.
    pub prior_std: f64,
    /// Temperature `T`.
    pub temperature: f64,
}

impl LinearGaussian {
    /// Checks the shapes and scales.
    ///
    /// # Errors
    /// Mismatched data; a scale or temperature that is not a positive number; a NaN in the data.
    pub fn new(
        x: Vec<f64>,
        y: Vec<f64>,
        d: usize,
        noise_std: f64,
        prior_std: f64,
        temperature: f64,
    ) -> Result<LinearGaussian> {
        if d == 0 || x.len() != y.len() * d {
            return Err(Error::invalid(
                "data",
                format!("{} values for {} rows", x.len(), y.len()),
                format!("expected {d} features per row"),
            ));
        }
        for (flag, v) in [
            ("noise_std", noise_std),
            ("prior_std", prior_std),
            ("temperature", temperature),
        ] {
            if !(v > 0.0 && v.is_finite()) {
                return Err(Error::invalid(flag, v, "must be a positive number"));
            }
        }
        if let Some(i) = x.iter().chain(&y).position(|v| !v.is_finite()) {
            return Err(Error::invalid(
                "data",
                format!("value {i}"),
                "is not a finite number",
            ));
        }
        Ok(LinearGaussian {
            x,
            y,
            d,
            noise_std,
            prior_std,
            temperature,
        })
    }

    fn rows(&self) -> impl Iterator<Item = (&[f64], f64)> {
        self.x.chunks(self.d).zip(self.y.iter().copied())
    }

    /// The exact posterior mean and covariance (row-major `[d, d]`).
    ///
    /// # Errors
    /// [`Error::Core`] if the precision is not positive definite (it always is for `s > 0`).
    pub fn posterior(&self) -> Result<(Vec<f64>, Vec<f64>)> {
        let d = self.d;
        let nv = self.noise_std * self.noise_std;
        let mut prec = vec![0.0; d * d];
        let mut b = vec![0.0; d];
        for (row, y) in self.rows() {
            for i in 0..d {
                b[i] += row[i] * y / nv;
                for j in 0..d {
                    prec[i * d + j] += row[i] * row[j] / nv;
                }
            }
        }
        for i in 0..d {
            prec[i * d + i] += 1.0 / (self.prior_std * self.prior_std);
        }
        cholesky_in_place(&mut prec, d).map_err(Error::core("posterior precision"))?;
        // Σ = T·P⁻¹ column by column, μ = P⁻¹ b (the temperature cancels in the mean).
        let solve = |mut v: Vec<f64>| -> Result<Vec<f64>> {
            solve_lower_in_place(&prec, d, &mut v).map_err(Error::core("posterior solve"))?;
            solve_lower_transpose_in_place(&prec, d, &mut v)
                .map_err(Error::core("posterior solve"))?;
            Ok(v)
        };
        let mean = solve(b)?;
        let mut cov = vec![0.0; d * d];
        for j in 0..d {
            let mut e = vec![0.0; d];
            e[j] = 1.0;
            for (i, v) in solve(e)?.into_iter().enumerate() {
                cov[i * d + j] = self.temperature * v;
            }
        }
        Ok((mean, cov))
    }
}

impl Target for LinearGaussian {
    fn dim(&self) -> usize {
        self.d
    }

    fn likelihood_and_gradient(&self, w: &Tensor) -> Result<(f64, Tensor)> {
        let w = w.to_vec_f64()?;
        let var = self.noise_std * self.noise_std * self.temperature;
        let mut ll = 0.0;
        let mut g = vec![0.0; self.d];
        for (row, y) in self.rows() {
            let r = y - row.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>();
            ll -= 0.5 * (r * r / var + (2.0 * std::f64::consts::PI * var).ln());
            for (gi, xi) in g.iter_mut().zip(row) {
                *gi += r * xi / var;
            }
        }
        Ok((ll, Tensor::from_vec(g, &[self.d])?))
    }

    fn prior(&self) -> (PriorArgs, f64) {
        (
            PriorArgs {
                kind: PriorKind::Gaussian,
                params: [self.prior_std, 0.0, 0.0],
            },
            self.temperature,
        )
    }
}
