//! `keel.Wiski`: the core's online structured-kernel-interpolation GP
//! (`keel_core::gp::Wiski`, Stanton et al., AISTATS 2021) in `float64`, with its constant-time
//! update, on a grid of 1 to 3 dimensions. The settings are checked by the host library's
//! `keel::gp::hyper` (the checks and messages `keel gp` gives), the model is the core's.

use keel::gp::{GridSpec, Hyper};
use keel_core::gp::{refactor_scratch_len, Convention, Family, Grid, Kernel, WiskiBuffers};
use ouroboros::self_referencing;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::array::{input, rows, values, Input};
use crate::error::{core, guard};

/// The model's heap storage (`m` grid nodes): what the controller keeps in fixed arrays.
struct Memory {
    root: Vec<f64>,
    precision: Vec<f64>,
    b: Vec<f64>,
    mean: Vec<f64>,
    work: Vec<f64>,
}

impl Memory {
    fn new(m: usize) -> Memory {
        Memory {
            root: vec![0.0; m * m],
            precision: vec![0.0; m * m],
            b: vec![0.0; m],
            mean: vec![0.0; m],
            work: vec![0.0; 2 * m],
        }
    }

    fn buffers(&mut self) -> WiskiBuffers<'_, f64> {
        WiskiBuffers {
            root: &mut self.root,
            precision: &mut self.precision,
            b: &mut self.b,
            mean: &mut self.mean,
            work: &mut self.work,
        }
    }
}

macro_rules! sized_gp {
    ($name:ident, $d:literal) => {
        #[self_referencing]
        pub(super) struct $name {
            pub(super) memory: Memory,
            #[borrows(mut memory)]
            #[covariant]
            pub(super) gp: keel_core::gp::Wiski<'this, f64, $d>,
        }

        impl $name {
            pub(super) fn build(
                hyper: &Hyper,
                grid: &GridSpec,
                scratch: &mut [f64],
            ) -> Result<Self, keel_core::Error> {
                let (mut lo, mut hi, mut size, mut l) =
                    ([0.0; $d], [0.0; $d], [0usize; $d], [0.0; $d]);
                lo.copy_from_slice(&grid.lo);
                hi.copy_from_slice(&grid.hi);
                size.copy_from_slice(&grid.size);
                l.copy_from_slice(&hyper.lengthscale);
                let g = Grid::new(lo, hi, size, grid.convention)?.clamping(grid.clamp);
                let k = Kernel::new(hyper.family, hyper.outputscale, l)?;
                $name::try_new(Memory::new(grid.nodes()), |memory| {
                    keel_core::gp::Wiski::new(g, k, hyper.noise, memory.buffers(), scratch)
                })
            }
        }
    };
}

/// The models of each dimension (their memory is used only through the model borrowing it).
#[allow(dead_code)]
mod models {
    use super::*;
    sized_gp!(Gp1, 1);
    sized_gp!(Gp2, 2);
    sized_gp!(Gp3, 3);
}
use models::{Gp1, Gp2, Gp3};

enum Sized {
    D1(Gp1),
    D2(Gp2),
    D3(Gp3),
}

/// Runs `$body` with `$gp` the model of any dimension `$D` (a const).
macro_rules! with_gp {
    ($sized:expr, $method:ident, |$gp:ident, $D:ident| $body:expr) => {
        match $sized {
            Sized::D1(s) => s.$method(|$gp| {
                const $D: usize = 1;
                $body
            }),
            Sized::D2(s) => s.$method(|$gp| {
                const $D: usize = 2;
                $body
            }),
            Sized::D3(s) => s.$method(|$gp| {
                const $D: usize = 3;
                $body
            }),
        }
    };
}

/// The online SKI GP (WISKI) of the controller core, in float64: `update` absorbs observations
/// one at a time in constant time (independent of how many came before), `predict` gives the
/// posterior mean and variance of f.
///
/// Arguments: `lo`, `hi` (grid bounds: one value, or one per input dimension), `dim` (1 to 3,
/// default: the length of `lo`), `grid_size` (nodes per dimension; default 64 in 1-D, 16 in
/// 2-D, 8 in 3-D), `kernel` (`rbf`, `matern12`, `matern32`, `matern52`), `outputscale`,
/// `lengthscale` (one value or one per dimension), `noise` (σ²), `convention` (`endpoints` or
/// `extended`), `clamp` (inputs off the grid clamped to its edge instead of refused).
#[pyclass(module = "keel")]
pub struct Wiski {
    sized: Sized,
    scratch: Vec<f64>,
    dim: usize,
    nodes: usize,
    noise: f64,
}

fn list(v: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<f64>> {
    if let Ok(x) = v.extract::<f64>() {
        return Ok(vec![x]);
    }
    v.extract::<Vec<f64>>().map_err(|_| {
        pyo3::exceptions::PyTypeError::new_err(format!(
            "{what} must be a number or a list of numbers"
        ))
    })
}

fn setting(e: keel::error::Error) -> PyErr {
    PyValueError::new_err(e.to_string())
}

#[pymethods]
impl Wiski {
    #[new]
    #[pyo3(signature = (lo, hi, *, dim = None, grid_size = None, kernel = "rbf", outputscale = 1.0, lengthscale = None, noise = 0.01, convention = "endpoints", clamp = false))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        lo: &Bound<'_, PyAny>,
        hi: &Bound<'_, PyAny>,
        dim: Option<usize>,
        grid_size: Option<&Bound<'_, PyAny>>,
        kernel: &str,
        outputscale: f64,
        lengthscale: Option<&Bound<'_, PyAny>>,
        noise: f64,
        convention: &str,
        clamp: bool,
    ) -> PyResult<Self> {
        guard(|| {
            let lo = list(lo, "lo")?;
            let hi = list(hi, "hi")?;
            let dim = dim.unwrap_or(lo.len());
            let size = match grid_size {
                None => vec![[64, 16, 8].get(dim.wrapping_sub(1)).copied().unwrap_or(8)],
                Some(g) => list(g, "grid_size")?
                    .into_iter()
                    .map(|v| {
                        if v >= 0.0 && v.fract() == 0.0 && v <= 1e6 {
                            Ok(v as usize)
                        } else {
                            Err(PyValueError::new_err(format!(
                                "invalid value '{v}' for grid_size: a count of grid nodes"
                            )))
                        }
                    })
                    .collect::<PyResult<_>>()?,
            };
            let family = Family::from_name(kernel).ok_or_else(|| {
                PyValueError::new_err(format!(
                    "invalid value '{kernel}' for kernel: rbf, matern12, matern32 or matern52"
                ))
            })?;
            let convention = Convention::from_name(convention).ok_or_else(|| {
                PyValueError::new_err(format!(
                    "invalid value '{convention}' for convention: endpoints or extended"
                ))
            })?;
            let hyper = Hyper {
                family,
                outputscale,
                lengthscale: match lengthscale {
                    None => vec![1.0],
                    Some(l) => list(l, "lengthscale")?,
                },
                noise,
            }
            .for_dim(dim)
            .map_err(setting)?;
            let grid = GridSpec {
                size,
                lo,
                hi,
                convention,
                clamp,
            }
            .for_dim(dim)
            .map_err(setting)?;
            let nodes = grid.nodes();
            let mut scratch = vec![0.0; refactor_scratch_len(nodes)];
            let err = |e| core("WISKI", e);
            let sized = match dim {
                1 => Sized::D1(Gp1::build(&hyper, &grid, &mut scratch).map_err(err)?),
                2 => Sized::D2(Gp2::build(&hyper, &grid, &mut scratch).map_err(err)?),
                _ => Sized::D3(Gp3::build(&hyper, &grid, &mut scratch).map_err(err)?),
            };
            Ok(Wiski {
                sized,
                scratch,
                dim,
                nodes,
                noise,
            })
        })
    }

    /// Absorbs observations `y` at inputs `x` (rows × dim, or one row; `y` one value per row),
    /// in order, each in constant time. On an error at some row, the rows before it stay
    /// absorbed and the error names the row.
    fn update(&mut self, x: &Bound<'_, PyAny>, y: &Bound<'_, PyAny>) -> PyResult<()> {
        guard(|| {
            let xs = match input(x, "x")? {
                Input::F64(a) => rows(&a, self.dim, "x", "the GP's inputs have")?
                    .data
                    .into_owned(),
                Input::F32(a) => rows(&a, self.dim, "x", "the GP's inputs have")?
                    .data
                    .iter()
                    .map(|&v| f64::from(v))
                    .collect(),
            };
            let n = xs.len() / self.dim;
            let ys: Vec<f64> = match y.extract::<f64>() {
                Ok(v) => vec![v],
                Err(_) => values(&input(y, "y")?, "y")?,
            };
            if ys.len() != n {
                return Err(PyValueError::new_err(format!(
                    "x has {n} rows and y {} values: give one y per row",
                    ys.len()
                )));
            }
            if let Some(i) = ys.iter().position(|v| !v.is_finite()) {
                return Err(PyValueError::new_err(format!(
                    "y is {}: observations must be finite (value {i})",
                    ys[i]
                )));
            }
            with_gp!(&mut self.sized, with_gp_mut, |gp, D| {
                for (i, &yi) in ys.iter().enumerate() {
                    let mut xi = [0.0; D];
                    xi.copy_from_slice(&xs[i * D..(i + 1) * D]);
                    gp.observe(&xi, yi)
                        .map_err(|e| core(&format!("x row {i}"), e))?;
                }
                Ok(())
            })
        })
    }

    /// The posterior at `x` (rows × dim, or one row): `(mean, var)` with `var` the variance of
    /// f (add `noise` for a new observation's), float64 arrays of one value per row (floats for
    /// one row).
    fn predict<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        guard(|| {
            let (xs, single) = match input(x, "x")? {
                Input::F64(a) => {
                    let r = rows(&a, self.dim, "x", "the GP's inputs have")?;
                    (r.data.into_owned(), r.single)
                }
                Input::F32(a) => {
                    let r = rows(&a, self.dim, "x", "the GP's inputs have")?;
                    (r.data.iter().map(|&v| f64::from(v)).collect(), r.single)
                }
            };
            let n = xs.len() / self.dim;
            let (mut mean, mut var) = (Vec::with_capacity(n), Vec::with_capacity(n));
            with_gp!(&self.sized, with_gp, |gp, D| {
                for i in 0..n {
                    let mut xi = [0.0; D];
                    xi.copy_from_slice(&xs[i * D..(i + 1) * D]);
                    let p = gp
                        .predict(&xi)
                        .map_err(|e| core(&format!("x row {i}"), e))?;
                    mean.push(p.mean);
                    var.push(p.var_f);
                }
                Ok::<(), PyErr>(())
            })?;
            if single {
                Ok((
                    pyo3::types::PyFloat::new(py, mean[0]).into_any(),
                    pyo3::types::PyFloat::new(py, var[0]).into_any(),
                ))
            } else {
                Ok((
                    numpy::PyArray1::from_vec(py, mean).into_any(),
                    numpy::PyArray1::from_vec(py, var).into_any(),
                ))
            }
        })
    }

    /// Rebuilds the posterior from the sufficient statistics (`O(m³)`), resetting accumulated
    /// rounding.
    fn refactorize(&mut self) -> PyResult<()> {
        guard(|| {
            let scratch = &mut self.scratch;
            with_gp!(&mut self.sized, with_gp_mut, |gp, _D| gp
                .refactorize(scratch)
                .map_err(|e| core("WISKI refactorisation", e)))
        })
    }

    /// log p(y) of the observations so far.
    #[getter]
    fn log_marginal_likelihood(&self) -> f64 {
        with_gp!(&self.sized, with_gp, |gp, _D| gp.log_marginal_likelihood())
    }

    /// The noise variance σ².
    #[getter]
    fn noise(&self) -> f64 {
        self.noise
    }

    /// Input dimensions.
    #[getter]
    fn dim(&self) -> usize {
        self.dim
    }

    /// Grid nodes m.
    #[getter]
    fn nodes(&self) -> usize {
        self.nodes
    }

    /// Observations absorbed.
    fn __len__(&self) -> usize {
        with_gp!(&self.sized, with_gp, |gp, _D| gp.len() as usize)
    }

    fn __repr__(&self) -> String {
        format!(
            "<keel.Wiski {}-D, {} grid nodes, {} observations>",
            self.dim,
            self.nodes,
            self.__len__()
        )
    }
}
