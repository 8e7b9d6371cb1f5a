//! A WISKI model exported by the host (`keel gp online --export`, `keel.kind = "wiski"`): what
//! the stream left behind, resumed on the controller — the learned feature map ("stem") frozen
//! as `z = tanh(W x + c)`, the grid, the kernel and noise, and WISKI's sufficient statistics
//! (`A = WᵀW`, `b = Wᵀy`, `c_yy`, `log|D|`, `n`; Stanton et al., *Kernel Interpolation for
//! Scalable Online Gaussian Processes*, AISTATS 2021). The controller keeps absorbing points in
//! constant time with the stem fixed.
//!
//! Tensors (any float dtype; read by index, nothing allocated):
//! - `grid` `[3, D]`: lower bounds, upper bounds, nodes per dimension;
//! - `kernel` `[2 + D]`: outputscale, noise variance, lengthscales;
//! - `statistics.precision` `[m, m]`, `statistics.b` `[m]`, `statistics.scalars` `[3]`
//!   (`c_yy`, `log|D|`, `n`);
//! - `stem.weight` `[D, P]` and `stem.bias` `[D]`, or neither (the inputs are the features).
//!
//! Metadata: `keel.kernel` (`rbf`, `matern12`, `matern32`, `matern52`), `keel.grid`
//! (`extended` or `endpoints`), `keel.clamp` (`true` or `false`).

use super::grid::{Convention, Grid};
use super::kernel::{Family, Kernel};
use super::wiski::{Wiski, WiskiBuffers};
use crate::io::{SafeTensors, TensorView};
use crate::{Error, Real, Result};

/// An exported WISKI model, borrowed from its file.
#[derive(Clone, Copy, Debug)]
pub struct WiskiFile<'a> {
    grid: TensorView<'a>,
    kernel: TensorView<'a>,
    precision: TensorView<'a>,
    b: TensorView<'a>,
    scalars: TensorView<'a>,
    stem: Option<(TensorView<'a>, TensorView<'a>)>,
    family: Family,
    convention: Convention,
    clamp: bool,
    dims: usize,
    inputs: usize,
    nodes: usize,
}

impl<'a> WiskiFile<'a> {
    /// Reads and checks a `wiski` file.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for another `keel.kind`, unknown metadata, grid sizes that are
    /// not integers ≥ 4 or disagree with the statistics, a negative or fractional count;
    /// [`Error::TensorNotFound`] / [`Error::TensorShape`] for missing or misshapen tensors.
    pub fn from_safetensors<const MAX: usize>(st: &SafeTensors<'a, MAX>) -> Result<Self> {
        if !st.metadata("keel.kind").is_some_and(|k| k == "wiski") {
            return Err(Error::InvalidConfig {
                what: "`keel.kind` is not `wiski`",
            });
        }
        let family = match st.metadata("keel.kernel") {
            Some(k) if k == "rbf" => Family::Rbf,
            Some(k) if k == "matern12" => Family::Matern12,
            Some(k) if k == "matern32" => Family::Matern32,
            Some(k) if k == "matern52" => Family::Matern52,
            _ => {
                return Err(Error::InvalidConfig {
                    what: "`keel.kernel` is not rbf, matern12, matern32 or matern52",
                })
            }
        };
        let convention = match st.metadata("keel.grid") {
            Some(g) if g == "extended" => Convention::Extended,
            Some(g) if g == "endpoints" => Convention::Endpoints,
            _ => {
                return Err(Error::InvalidConfig {
                    what: "`keel.grid` is not `extended` or `endpoints`",
                })
            }
        };
        let clamp = match st.metadata("keel.clamp") {
            Some(c) if c == "true" => true,
            Some(c) if c == "false" => false,
            _ => {
                return Err(Error::InvalidConfig {
                    what: "`keel.clamp` is not `true` or `false`",
                })
            }
        };
        let find = |role: &'static str| {
            st.tensor(role)
                .map_err(|_| Error::TensorNotFound { role, layer: None })
        };
        let shape = |role| Error::TensorShape { role, layer: None };
        let grid = find("grid")?;
        if grid.rank() != 2 || grid.shape()[0] != 3 || !(1..=3).contains(&grid.shape()[1]) {
            return Err(shape("grid"));
        }
        let dims = grid.shape()[1];
        let mut nodes = 1usize;
        for k in 0..dims {
            let g = grid.get_f64(2 * dims + k)?;
            if !((4.0..=4096.0).contains(&g) && g == (g as u64) as f64) {
                return Err(Error::InvalidConfig {
                    what: "grid sizes must be integers from 4 to 4096",
                });
            }
            nodes = nodes.saturating_mul(g as usize);
        }
        let kernel = find("kernel")?;
        if kernel.rank() != 1 || kernel.len() != dims + 2 {
            return Err(shape("kernel"));
        }
        let precision = find("statistics.precision")?;
        if precision.rank() != 2 || precision.shape() != [nodes, nodes] {
            return Err(shape("statistics.precision"));
        }
        let b = find("statistics.b")?;
        if b.rank() != 1 || b.len() != nodes {
            return Err(shape("statistics.b"));
        }
        let scalars = find("statistics.scalars")?;
        if scalars.rank() != 1 || scalars.len() != 3 {
            return Err(shape("statistics.scalars"));
        }
        let n = scalars.get_f64(2)?;
        if !((0.0..9.0e15).contains(&n) && n == (n as u64) as f64) {
            return Err(Error::InvalidConfig {
                what: "the point count must be a whole number ≥ 0",
            });
        }
        let stem = match (st.tensor("stem.weight"), st.tensor("stem.bias")) {
            (Ok(w), Ok(c)) => {
                if w.rank() != 2 || w.shape()[0] != dims || w.shape()[1] == 0 {
                    return Err(shape("stem.weight"));
                }
                if c.rank() != 1 || c.len() != dims {
                    return Err(shape("stem.bias"));
                }
                Some((w, c))
            }
            (Err(_), Err(_)) => None,
            _ => {
                return Err(Error::InvalidConfig {
                    what: "a stem needs both `stem.weight` and `stem.bias`",
                })
            }
        };
        let inputs = stem.map_or(dims, |(w, _)| w.shape()[1]);
        Ok(WiskiFile {
            grid,
            kernel,
            precision,
            b,
            scalars,
            stem,
            family,
            convention,
            clamp,
            dims,
            inputs,
            nodes,
        })
    }

    /// Input columns a row has (the stem's, or the grid's dimensions without one).
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// Grid dimensions `D` (the stem's features).
    pub fn dims(&self) -> usize {
        self.dims
    }

    /// Grid nodes `m`: the model's buffers hold `2m² + 4m` scalars.
    pub fn nodes(&self) -> usize {
        self.nodes
    }

    /// Whether the file holds a stem.
    pub fn has_stem(&self) -> bool {
        self.stem.is_some()
    }

    fn check_dims<const D: usize>(&self) -> Result<()> {
        if D == self.dims {
            Ok(())
        } else {
            Err(Error::ShapeMismatch {
                what: "grid dimensions D (the stem's features)",
                expected: self.dims,
                got: D,
            })
        }
    }

    /// The features of the row `x` (`inputs()` values): `tanh(W x + c)` through the stem, or `x`
    /// itself without one.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for a row of another length or `D ≠ dims()`;
    /// [`Error::NonFinite`] (index = the column) for a non-finite input.
    pub fn features<T: Real, const D: usize>(&self, x: &[T], z: &mut [T; D]) -> Result<()> {
        self.check_dims::<D>()?;
        if x.len() != self.inputs {
            return Err(Error::ShapeMismatch {
                what: "input row (the stem's input columns)",
                expected: self.inputs,
                got: x.len(),
            });
        }
        if let Some(i) = x.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite { index: i, t: 0.0 });
        }
        match self.stem {
            None => z.copy_from_slice(x),
            Some((w, c)) => {
                for (j, zj) in z.iter_mut().enumerate() {
                    let mut acc: T = c.get(j)?;
                    for (i, xi) in x.iter().enumerate() {
                        acc += w.get::<T>(j * self.inputs + i)? * *xi;
                    }
                    *zj = acc.libm_tanh();
                }
            }
        }
        Ok(())
    }

    /// The model in `buf` (sized for [`nodes`](WiskiFile::nodes)): the statistics copied in,
    /// then one refactorisation (`O(m³)`, in `scratch` of
    /// [`refactor_scratch_len`](super::refactor_scratch_len)`(m)` scalars).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for `D ≠ dims()`; as [`Wiski::from_statistics`].
    pub fn model<'b, T: Real, const D: usize>(
        &self,
        buf: WiskiBuffers<'b, T>,
        scratch: &mut [T],
    ) -> Result<Wiski<'b, T, D>> {
        self.check_dims::<D>()?;
        let (mut lo, mut hi, mut size) = ([T::ZERO; D], [T::ZERO; D], [0usize; D]);
        let mut lengthscale = [T::ZERO; D];
        for k in 0..D {
            lo[k] = self.grid.get(k)?;
            hi[k] = self.grid.get(D + k)?;
            size[k] = self.grid.get_f64(2 * D + k)? as usize;
            lengthscale[k] = self.kernel.get(2 + k)?;
        }
        let grid = Grid::new(lo, hi, size, self.convention)?.clamping(self.clamp);
        let kernel = Kernel::new(self.family, self.kernel.get(0)?, lengthscale)?;
        let noise: T = self.kernel.get(1)?;
        let m = self.nodes;
        crate::error::expect_count(
            "precision buffer entries (grid nodes²)",
            buf.precision.len(),
            m.saturating_mul(m),
        )?;
        crate::error::expect_count("b buffer entries (grid nodes)", buf.b.len(), m)?;
        for (i, v) in buf.precision.iter_mut().enumerate() {
            *v = self.precision.get(i)?;
        }
        for (i, v) in buf.b.iter_mut().enumerate() {
            *v = self.b.get(i)?;
        }
        let stats = (
            self.scalars.get(0)?,
            self.scalars.get(1)?,
            self.scalars.get_f64(2)? as u64,
        );
        Wiski::from_statistics(grid, kernel, noise, buf, stats, scratch)
    }
}
