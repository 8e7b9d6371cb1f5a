//! Learned constrained dynamics (`keel.kind = "chnn"` or `"clnn"`, `keel chnn train --export`)
//! loaded by `keel_core::dynamics::learned::load` and rolled out by the core's RK4 — the code
//! the firmware runs, in `float32` or `float64`.
//!
//! The core sizes a system at compile time (nodes `N`, dimension `D`, constraints `C`); the
//! file's `keel.chnn` metadata names the system, and one instance per system of the CHNN paper
//! is compiled here (chain pendulums of 1 to 6 links, coupled pendulums of 1 to 6 bobs, the
//! magnet pendulum, the gyroscope and the rotor, as `keel simulate` has them).

use std::collections::BTreeMap;

use keel_core::dynamics::learned::{self, Form};
use keel_core::dynamics::{Lagrangian, Phase};
use keel_core::integrate::Rk4;
use keel_core::io::SafeTensors;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::array::{input, Input, Scalar};
use crate::error::{core, guard};
use crate::model::{MAX_LAYERS, MAX_TENSORS};
use numpy::PyArrayMethods;

/// Scratch scalars of the learned potential's gradient: the stored activations of every hidden
/// layer and two of the widest (4 layers of 512, or 3 of 1024, fit).
const SCRATCH: usize = 8192;

/// A system's sizes: nodes, dimension, scalar constraints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Sizes {
    nodes: usize,
    dim: usize,
    constraints: usize,
}

/// The sizes of the system a `keel.chnn` configuration names.
fn sizes(system: &str, links: Option<usize>) -> Result<Sizes, String> {
    let s = |nodes, dim, constraints| Sizes {
        nodes,
        dim,
        constraints,
    };
    let n = links.unwrap_or(3);
    match system {
        "chain-pendulum" if (1..=6).contains(&n) => Ok(s(n, 2, n)),
        "coupled-pendulum" if (1..=6).contains(&n) => Ok(s(n, 3, n)),
        "chain-pendulum" | "coupled-pendulum" => Err(format!("{system} of {n}: supported 1 to 6")),
        "magnet-pendulum" => Ok(s(1, 3, 1)),
        "gyroscope" => Ok(s(4, 3, 9)),
        "rotor" => Ok(s(4, 3, 6)),
        other => Err(format!("unknown system `{other}`")),
    }
}

/// `steps` RK4 steps of `dt` from the velocity-form state `z0` (positions then velocities),
/// returning every state, velocity form, row-major `(steps + 1) × 2ND`.
fn rollout<T: Scalar, const N: usize, const D: usize, const C: usize>(
    bytes: &[u8],
    z0: &[T],
    dt: T,
    steps: usize,
) -> Result<Vec<T>, keel_core::Error> {
    let st = SafeTensors::<MAX_TENSORS>::parse(bytes)?;
    let mut z = Phase::<T, N, D>::zeros();
    for i in 0..N {
        for k in 0..D {
            z.x_mut()[i][k] = z0[i * D + k];
            z.p_mut()[i][k] = z0[N * D + i * D + k];
        }
    }
    let x0 = *z.x_mut();
    let m = learned::load::<T, N, D, C, MAX_LAYERS, SCRATCH, MAX_TENSORS>(&st, &x0)?;
    let mech = &m.mechanics;
    if m.form == Form::Hamiltonian {
        z = mech.from_velocity_form(&z);
    }
    let rk4 = Rk4::new(dt)?;
    let mut out = Vec::with_capacity((steps + 1) * 2 * N * D);
    for step in 0..=steps {
        if step > 0 {
            match m.form {
                Form::Hamiltonian => rk4.step(mech, T::ZERO, &mut z)?,
                Form::Lagrangian => rk4.step(&Lagrangian(mech), T::ZERO, &mut z)?,
            }
        }
        let zv = match m.form {
            Form::Hamiltonian => mech.to_velocity_form(&z),
            Form::Lagrangian => z,
        };
        out.extend(zv.x().as_flattened());
        out.extend(zv.p().as_flattened());
    }
    Ok(out)
}

/// Runs `$f::<T, N, D, C>($args)` for the sizes `$s`, one instance per system.
macro_rules! by_sizes {
    ($s:expr, $f:ident, $t:ty, ($($arg:expr),*)) => {
        match ($s.nodes, $s.dim, $s.constraints) {
            (1, 2, 1) => $f::<$t, 1, 2, 1>($($arg),*),
            (2, 2, 2) => $f::<$t, 2, 2, 2>($($arg),*),
            (3, 2, 3) => $f::<$t, 3, 2, 3>($($arg),*),
            (4, 2, 4) => $f::<$t, 4, 2, 4>($($arg),*),
            (5, 2, 5) => $f::<$t, 5, 2, 5>($($arg),*),
            (6, 2, 6) => $f::<$t, 6, 2, 6>($($arg),*),
            (1, 3, 1) => $f::<$t, 1, 3, 1>($($arg),*),
            (2, 3, 2) => $f::<$t, 2, 3, 2>($($arg),*),
            (3, 3, 3) => $f::<$t, 3, 3, 3>($($arg),*),
            (4, 3, 4) => $f::<$t, 4, 3, 4>($($arg),*),
            (5, 3, 5) => $f::<$t, 5, 3, 5>($($arg),*),
            (6, 3, 6) => $f::<$t, 6, 3, 6>($($arg),*),
            (4, 3, 9) => $f::<$t, 4, 3, 9>($($arg),*),
            (4, 3, 6) => $f::<$t, 4, 3, 6>($($arg),*),
            _ => unreachable!("sizes() gives only the sizes listed here"),
        }
    };
}

/// A learned CHNN (Hamiltonian) or CLNN (Lagrangian) model of one of the CHNN paper's systems.
#[pyclass(module = "keel", frozen)]
pub struct LearnedDynamics {
    bytes: Vec<u8>,
    sizes: Sizes,
    system: String,
    dt: f64,
    name: String,
    metadata: BTreeMap<String, String>,
}

impl LearnedDynamics {
    /// Reads the file's system from its `keel.chnn` metadata and checks that the core loads it
    /// (on a configuration of distinct points: the constraint lengths are measured on the state
    /// each rollout starts from).
    pub fn load(
        bytes: Vec<u8>,
        name: String,
        metadata: BTreeMap<String, String>,
    ) -> PyResult<Self> {
        let bad = |what: String| PyValueError::new_err(format!("{name}: {what}"));
        let info: serde_json::Value = metadata
            .get("keel.chnn")
            .ok_or_else(|| bad("no `keel.chnn` metadata naming the system".into()))
            .and_then(|s| {
                serde_json::from_str(s).map_err(|e| bad(format!("`keel.chnn` is not JSON: {e}")))
            })?;
        let system = info["system"]
            .as_str()
            .ok_or_else(|| bad("`keel.chnn` names no `system`".into()))?
            .to_string();
        let links = info["links"].as_u64().map(|n| n as usize);
        let sizes = sizes(&system, links).map_err(bad)?;
        let dt = info["dt"].as_f64().unwrap_or(0.03);
        let n = sizes.nodes * sizes.dim;
        let probe: Vec<f64> = (0..2 * n)
            .map(|i| {
                if i < n {
                    1.0 + i as f64 + 0.25 * (i % 3) as f64
                } else {
                    0.0
                }
            })
            .collect();
        by_sizes!(sizes, rollout, f64, (&bytes, &probe, 0.01, 0)).map_err(|e| core(&name, e))?;
        Ok(LearnedDynamics {
            bytes,
            sizes,
            system,
            dt,
            name,
            metadata,
        })
    }
}

/// `rollout` for the sizes of `d`, in `T`.
fn rollout_as<'py, T: Scalar>(
    py: Python<'py>,
    d: &LearnedDynamics,
    z0: &numpy::PyReadonlyArrayDyn<'py, T>,
    dt: f64,
    steps: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let width = 2 * d.sizes.nodes * d.sizes.dim;
    let r = crate::array::rows(
        z0,
        width,
        "z0",
        "the state (positions, then velocities) has",
    )?;
    if !r.single {
        return Err(PyValueError::new_err(format!(
            "z0 must be one state (1-D, {width} values), not {} rows",
            r.rows
        )));
    }
    let states = by_sizes!(
        d.sizes,
        rollout,
        T,
        (&d.bytes, &r.data[..], T::from64(dt), steps)
    )
    .map_err(|e| core(&d.name, e))?;
    Ok(numpy::PyArray1::from_vec(py, states)
        .reshape([steps + 1, width])?
        .into_any())
}

#[pymethods]
impl LearnedDynamics {
    /// The core's RK4 rollout: `steps` steps of `dt` (default: the training data's step) from
    /// the state `z0` — node positions then velocities, `2 · nodes · dim` values, float32 or
    /// float64 (the precision of the rollout). The constraint lengths are measured on `z0`.
    /// Returns every state, velocity form, as `(steps + 1) × 2 · nodes · dim`.
    #[pyo3(signature = (z0, steps, dt = None))]
    fn rollout<'py>(
        &self,
        py: Python<'py>,
        z0: &Bound<'py, PyAny>,
        steps: usize,
        dt: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        guard(|| {
            let dt = dt.unwrap_or(self.dt);
            if !(dt > 0.0 && dt.is_finite()) {
                return Err(PyValueError::new_err(format!(
                    "dt = {dt}: the step must be positive and finite"
                )));
            }
            if steps > 10_000_000 {
                return Err(PyValueError::new_err(format!(
                    "steps = {steps}: at most 10,000,000 steps in one rollout"
                )));
            }
            match input(z0, "z0")? {
                Input::F32(a) => rollout_as(py, self, &a, dt, steps),
                Input::F64(a) => rollout_as(py, self, &a, dt, steps),
            }
        })
    }

    /// The system's name (`chain-pendulum`, …).
    #[getter]
    fn system(&self) -> String {
        self.system.clone()
    }

    /// Nodes.
    #[getter]
    fn nodes(&self) -> usize {
        self.sizes.nodes
    }

    /// Spatial dimension of a node.
    #[getter]
    fn dim(&self) -> usize {
        self.sizes.dim
    }

    /// Scalar constraints.
    #[getter]
    fn constraints(&self) -> usize {
        self.sizes.constraints
    }

    /// The training data's time step (the default `dt` of `rollout`).
    #[getter]
    fn dt(&self) -> f64 {
        self.dt
    }

    /// The file's `__metadata__` as strings.
    #[getter]
    fn metadata(&self) -> BTreeMap<String, String> {
        self.metadata.clone()
    }

    /// `keel.kind`: `chnn` or `clnn`.
    #[getter]
    fn kind(&self) -> String {
        self.metadata.get("keel.kind").cloned().unwrap_or_default()
    }

    fn __repr__(&self) -> String {
        format!(
            "<keel.LearnedDynamics {} of a {} ({}×{}, {} constraints) from {}>",
            self.kind(),
            self.system,
            self.sizes.nodes,
            self.sizes.dim,
            self.sizes.constraints,
            self.name
        )
    }
}
