//! The CHNN paper's chain pendulum simulated step by step by the core's integrators — the code
//! `firmware/` runs on the Cortex-M4F and `keel_ffi`'s `keel_rk4_step` exposes to C — in
//! `float32` (the controller's arithmetic) or `float64`.

use keel_core::dynamics::systems::ChainPendulum as Chain;
use keel_core::dynamics::Phase;
use keel_core::integrate::{Leapfrog, Rk4, StateVector};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

use crate::array::{input, rows, Input, Scalar};
use crate::error::guard;

/// What an angle or rate array holds, in errors.
const PER_LINK: &str = "one value per link:";

/// Most steps in one rollout (its states are returned as one array).
const MAX_STEPS: usize = 10_000_000;

/// Runs `$f::<T, L>($args)` for the links `$l` (1 to 6, checked by the constructor).
macro_rules! by_links {
    ($l:expr, $f:ident, $t:ty, ($($arg:expr),*)) => {
        match $l {
            1 => $f::<$t, 1>($($arg),*),
            2 => $f::<$t, 2>($($arg),*),
            3 => $f::<$t, 3>($($arg),*),
            4 => $f::<$t, 4>($($arg),*),
            5 => $f::<$t, 5>($($arg),*),
            _ => $f::<$t, 6>($($arg),*),
        }
    };
}

/// The integrators a rollout can use.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Method {
    Rk4,
    Leapfrog,
}

/// The phase-space state (positions, then momenta) of `angles` and `rates`.
fn from_angles<T: Scalar, const L: usize>(
    angles: &[T],
    rates: &[T],
) -> Result<Vec<T>, keel_core::Error> {
    let p = Chain::<T, L>::paper()?;
    let (mut a, mut r) = ([T::ZERO; L], [T::ZERO; L]);
    a.copy_from_slice(angles);
    r.copy_from_slice(rates);
    Ok(p.state_from_angles(&a, &r).as_slice().to_vec())
}

/// The total energy of each state.
fn energies<T: Scalar, const L: usize>(z: &[T]) -> Result<Vec<f64>, keel_core::Error> {
    let p = Chain::<T, L>::paper()?;
    let mut s = Phase::<T, L, 2>::zeros();
    Ok(z.chunks_exact(4 * L)
        .map(|row| {
            s.as_mut_slice().copy_from_slice(row);
            p.mechanics().energy(&s).into()
        })
        .collect())
}

/// `steps` steps of `dt` from `z0`, every state row-major `(steps + 1) × 4L`.
fn rollout<T: Scalar, const L: usize>(
    z0: &[T],
    dt: T,
    steps: usize,
    method: Method,
) -> Result<Vec<T>, keel_core::Error> {
    let p = Chain::<T, L>::paper()?;
    let m = p.mechanics();
    let mut z = Phase::<T, L, 2>::zeros();
    z.as_mut_slice().copy_from_slice(z0);
    let mut out = Vec::with_capacity((steps + 1) * 4 * L);
    out.extend_from_slice(z.as_slice());
    match method {
        Method::Rk4 => {
            let rk4 = Rk4::new(dt)?;
            for k in 0..steps {
                rk4.step(m, dt * T::from_usize(k), &mut z)?;
                out.extend_from_slice(z.as_slice());
            }
        }
        Method::Leapfrog => {
            let lf = Leapfrog::new(dt)?;
            for _ in 0..steps {
                lf.step(m, &mut z)?;
                out.extend_from_slice(z.as_slice());
            }
        }
    }
    Ok(out)
}

/// The chain pendulum of the CHNN paper (its masses and lengths) in Cartesian coordinates with
/// explicit constraints, `links` links in the plane. A state is `4 · links` values: the nodes'
/// positions `x`, then their momenta `p` (the core's phase-space form), float32 or float64 —
/// the precision the core computes in.
#[pyclass(module = "keel", frozen)]
pub struct ChainPendulum {
    links: usize,
}

fn run<'py, T: Scalar>(
    py: Python<'py>,
    links: usize,
    z0: &numpy::PyReadonlyArrayDyn<'py, T>,
    dt: f64,
    steps: usize,
    method: Method,
) -> PyResult<Bound<'py, PyAny>> {
    let width = 4 * links;
    let r = rows(z0, width, "z0", "the state (positions, then momenta) has")?;
    if !r.single {
        return Err(PyValueError::new_err(format!(
            "z0 must be one state (1-D, {width} values), not {} rows",
            r.rows
        )));
    }
    let states = py
        .detach(|| {
            by_links!(
                links,
                rollout,
                T,
                (&r.data[..], T::from64(dt), steps, method)
            )
        })
        .map_err(|e| PyRuntimeError::new_err(format!("rollout failed: {e}")))?;
    use numpy::PyArrayMethods;
    Ok(numpy::PyArray1::from_vec(py, states)
        .reshape([steps + 1, width])?
        .into_any())
}

#[pymethods]
impl ChainPendulum {
    /// The paper's chain pendulum of `links` links (1 to 6).
    #[new]
    fn new(links: usize) -> PyResult<Self> {
        if !(1..=6).contains(&links) {
            return Err(PyValueError::new_err(format!(
                "links = {links}: the chain pendulum has 1 to 6 links"
            )));
        }
        Ok(ChainPendulum { links })
    }

    /// Links.
    #[getter]
    fn links(&self) -> usize {
        self.links
    }

    /// The state of link angles (from the downward vertical, rad) and angular rates (rad/s),
    /// `links` each, in the arrays' precision (both float32 or both float64).
    fn state_from_angles<'py>(
        &self,
        py: Python<'py>,
        angles: &Bound<'py, PyAny>,
        rates: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        guard(|| {
            let l = self.links;
            let err = |e| PyValueError::new_err(format!("state_from_angles: {e}"));
            match (input(angles, "angles")?, input(rates, "rates")?) {
                (Input::F64(a), Input::F64(r)) => {
                    let (a, r) = (
                        rows(&a, l, "angles", PER_LINK)?,
                        rows(&r, l, "rates", PER_LINK)?,
                    );
                    let z = by_links!(l, from_angles, f64, (&a.data[..], &r.data[..]));
                    Ok(numpy::PyArray1::from_vec(py, z.map_err(err)?).into_any())
                }
                (Input::F32(a), Input::F32(r)) => {
                    let (a, r) = (
                        rows(&a, l, "angles", PER_LINK)?,
                        rows(&r, l, "rates", PER_LINK)?,
                    );
                    let z = by_links!(l, from_angles, f32, (&a.data[..], &r.data[..]));
                    Ok(numpy::PyArray1::from_vec(py, z.map_err(err)?).into_any())
                }
                _ => Err(PyValueError::new_err(
                    "angles and rates must have the same dtype (both float32 or both float64)",
                )),
            }
        })
    }

    /// The total energy (kinetic + potential) of one state, or of each row of states.
    fn energy<'py>(&self, py: Python<'py>, z: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        guard(|| {
            let (l, w) = (self.links, 4 * self.links);
            let what = "the state (positions, then momenta) has";
            let (e, single) = match input(z, "z")? {
                Input::F64(a) => {
                    let r = rows(&a, w, "z", what)?;
                    (by_links!(l, energies, f64, (&r.data[..])), r.single)
                }
                Input::F32(a) => {
                    let r = rows(&a, w, "z", what)?;
                    (by_links!(l, energies, f32, (&r.data[..])), r.single)
                }
            };
            let e = e.map_err(|e| PyValueError::new_err(format!("energy: {e}")))?;
            if single {
                Ok(e[0].into_pyobject(py)?.into_any())
            } else {
                Ok(numpy::PyArray1::from_vec(py, e).into_any())
            }
        })
    }

    /// `steps` steps of `dt` from the state `z0` by the core's classic RK4 (`method="rk4"`) or
    /// RATTLE (`"leapfrog"`: symplectic on the constraint manifold, so the energy error stays
    /// bounded). Returns every state, `(steps + 1) × 4 · links`, in `z0`'s precision; a step
    /// that fails (a non-finite state, a RATTLE solve that does not converge) is a
    /// `RuntimeError`.
    #[pyo3(signature = (z0, steps, dt, method = "rk4"))]
    fn rollout<'py>(
        &self,
        py: Python<'py>,
        z0: &Bound<'py, PyAny>,
        steps: usize,
        dt: f64,
        method: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        guard(|| {
            let method = match method {
                "rk4" => Method::Rk4,
                "leapfrog" => Method::Leapfrog,
                other => {
                    return Err(PyValueError::new_err(format!(
                        "method = {other:?}: one of \"rk4\", \"leapfrog\""
                    )))
                }
            };
            if !(dt > 0.0 && dt.is_finite()) {
                return Err(PyValueError::new_err(format!(
                    "dt = {dt}: the step must be positive and finite"
                )));
            }
            if steps > MAX_STEPS {
                return Err(PyValueError::new_err(format!(
                    "steps = {steps}: at most 10,000,000 steps in one rollout"
                )));
            }
            match input(z0, "z0")? {
                Input::F32(a) => run(py, self.links, &a, dt, steps, method),
                Input::F64(a) => run(py, self.links, &a, dt, steps, method),
            }
        })
    }
}
