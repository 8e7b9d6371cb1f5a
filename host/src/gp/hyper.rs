//! Kernel and noise hyperparameters, the interpolation grid as the caller gives it, and the
//! log-space vector `θ = (log s, log ℓ₁ … log ℓ_D, log σ²)` that fitting moves — the outputscale,
//! ARD lengthscales and Gaussian noise of the SKI models of Stanton et al., *Kernel Interpolation
//! for Scalable Online Gaussian Processes* (AISTATS 2021), whose reference code
//! (wjmaddox/online_gp, `online_gp/models/online_ski_regression.py`) learns the same three on the
//! log scale through gpytorch's positive constraints.

use keel_core::gp::{Convention, Family, Grid, Kernel};

use crate::error::{Error, Result};

/// Kernel and noise hyperparameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Hyper {
    /// Kernel family.
    pub family: Family,
    /// Outputscale `s` (prior variance).
    pub outputscale: f64,
    /// One lengthscale per input dimension (or one shared, expanded by [`Hyper::for_dim`]).
    pub lengthscale: Vec<f64>,
    /// Noise variance σ².
    pub noise: f64,
}

impl Hyper {
    /// Checks the values and expands a single lengthscale to `dim` dimensions.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the flag for a non-positive or non-finite value, or a
    /// lengthscale list of the wrong length.
    pub fn for_dim(&self, dim: usize) -> Result<Hyper> {
        let positive = |flag: &str, v: f64| {
            if v > 0.0 && v.is_finite() {
                Ok(())
            } else {
                Err(Error::invalid(flag, v, "must be positive and finite"))
            }
        };
        positive("outputscale", self.outputscale)?;
        positive("noise", self.noise)?;
        let lengthscale = match self.lengthscale.len() {
            1 => vec![self.lengthscale[0]; dim],
            n if n == dim => self.lengthscale.clone(),
            n => {
                return Err(Error::invalid(
                    "lengthscale",
                    format!("{n} values"),
                    format!("give one value or one per input dimension ({dim})"),
                ))
            }
        };
        for &l in &lengthscale {
            positive("lengthscale", l)?;
        }
        Ok(Hyper {
            lengthscale,
            ..self.clone()
        })
    }

    pub(crate) fn kernel<const D: usize>(&self) -> Result<Kernel<f64, D>> {
        let mut l = [0.0; D];
        l.copy_from_slice(&self.lengthscale);
        Kernel::new(self.family, self.outputscale, l).map_err(Error::core("kernel"))
    }
}

/// An interpolation grid as given on the command line.
#[derive(Clone, Debug, PartialEq)]
pub struct GridSpec {
    /// Nodes per dimension.
    pub size: Vec<usize>,
    /// Lower bounds.
    pub lo: Vec<f64>,
    /// Upper bounds.
    pub hi: Vec<f64>,
    /// Node placement.
    pub convention: Convention,
    /// Clamp off-grid inputs instead of failing.
    pub clamp: bool,
}

impl GridSpec {
    /// Expands single values to `dim` dimensions and checks them.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for lists of the wrong length, fewer than 4 nodes, bad bounds,
    /// or more than 3 dimensions.
    pub fn for_dim(&self, dim: usize) -> Result<GridSpec> {
        if !(1..=3).contains(&dim) {
            return Err(Error::invalid(
                "input columns",
                dim,
                "SKI and WISKI interpolate on grids of 1 to 3 dimensions",
            ));
        }
        fn expand<T: Clone + std::fmt::Debug>(flag: &str, v: &[T], dim: usize) -> Result<Vec<T>> {
            match v.len() {
                1 => Ok(vec![v[0].clone(); dim]),
                n if n == dim => Ok(v.to_vec()),
                _ => Err(Error::invalid(
                    flag,
                    format!("{v:?}"),
                    format!("give one value or one per input dimension ({dim})"),
                )),
            }
        }
        let size = expand("grid_size", &self.size, dim)?;
        if let Some(&g) = size.iter().find(|&&g| g < 4) {
            return Err(Error::invalid(
                "grid_size",
                g,
                "cubic interpolation needs at least 4 grid points per dimension",
            ));
        }
        if self.lo.len() != self.hi.len() {
            return Err(Error::invalid(
                "grid_bounds",
                format!("{} lower, {} upper", self.lo.len(), self.hi.len()),
                "give lo,hi pairs",
            ));
        }
        let lo = expand("grid_bounds", &self.lo, dim)?;
        let hi = expand("grid_bounds", &self.hi, dim)?;
        for (l, h) in lo.iter().zip(&hi) {
            if !(l.is_finite() && h.is_finite() && l < h) {
                return Err(Error::invalid(
                    "grid_bounds",
                    format!("{l},{h}"),
                    "need finite lo < hi",
                ));
            }
        }
        let nodes = size.iter().fold(1u128, |n, &s| n.saturating_mul(s as u128));
        if nodes > 8192 {
            return Err(Error::invalid(
                "grid_size",
                format!("{size:?}"),
                format!(
                    "{nodes} grid nodes: WISKI keeps two m×m matrices ({}); use at most 8192",
                    keel_engine::memory::format_bytes(
                        nodes.saturating_mul(nodes).saturating_mul(16)
                    )
                ),
            ));
        }
        Ok(GridSpec {
            size,
            lo,
            hi,
            ..self.clone()
        })
    }

    pub(crate) fn grid<const D: usize>(&self) -> Result<Grid<f64, D>> {
        let (mut lo, mut hi, mut size) = ([0.0; D], [0.0; D], [0usize; D]);
        lo.copy_from_slice(&self.lo);
        hi.copy_from_slice(&self.hi);
        size.copy_from_slice(&self.size);
        Ok(Grid::new(lo, hi, size, self.convention)
            .map_err(Error::core("grid"))?
            .clamping(self.clamp))
    }

    /// Number of grid nodes.
    pub fn nodes(&self) -> usize {
        self.size.iter().product()
    }
}

/// Log-space hyperparameters `θ = (log s, log ℓ₁ … log ℓ_D, log σ²)`.
pub fn to_theta(h: &Hyper) -> Vec<f64> {
    let mut t = vec![h.outputscale.ln()];
    t.extend(h.lengthscale.iter().map(|l| l.ln()));
    t.push(h.noise.ln());
    t
}

/// Inverse of [`to_theta`].
pub fn from_theta(family: Family, t: &[f64]) -> Hyper {
    Hyper {
        family,
        outputscale: t[0].exp(),
        lengthscale: t[1..t.len() - 1].iter().map(|v| v.exp()).collect(),
        noise: t[t.len() - 1].exp(),
    }
}
