//! Integrating any [`Mechanics`] on an output grid and recording what the user sees.

use std::time::Instant;

use keel_core::dynamics::{Mechanics, Phase, Potential};
use keel_core::integrate::{Dopri5, Leapfrog, Rk4, Rk4Variant};
use keel_core::Real;
use serde::Serialize;

use super::config::IntegratorSpec;
use crate::error::{Error, Result};

/// A simulated trajectory, one row per output time (the JSON of `keel simulate --json`).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Trajectory {
    /// System name.
    pub system: String,
    /// Spatial dimension of the nodes (2 or 3).
    pub dim: usize,
    /// Number of nodes.
    pub nodes: usize,
    /// Output times.
    pub t: Vec<f64>,
    /// Node positions per row, flattened `[x1, y1(, z1), x2, …]`.
    pub x: Vec<Vec<f64>>,
    /// Node velocities per row, same layout.
    pub v: Vec<Vec<f64>>,
    /// Total energy per row.
    pub energy: Vec<f64>,
    /// Largest constraint residual `max(|Φ|, |Φ̇|)` per row.
    pub constraint_violation: Vec<f64>,
    /// Run statistics.
    #[serde(skip)]
    pub stats: RunStats,
}

/// How the run went.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RunStats {
    /// Integrator steps taken (accepted steps for dopri5).
    pub steps: usize,
    /// Vector-field evaluations (dopri5; 4 per RK4 step; 0 for leapfrog, which uses forces).
    pub evaluations: usize,
    /// Rejected dopri5 steps.
    pub rejected: usize,
    /// Wall-clock seconds of the integration.
    pub seconds: f64,
    /// Number of constraints.
    pub constraints: usize,
}

impl Trajectory {
    /// Largest relative energy error `|E(t) − E(0)| / |E(0)|` over the run (absolute when
    /// `E(0) = 0`).
    pub fn max_energy_drift(&self) -> f64 {
        let e0 = self.energy.first().copied().unwrap_or(0.0);
        let scale = if e0 == 0.0 { 1.0 } else { e0.abs() };
        self.energy
            .iter()
            .map(|e| (e - e0).abs() / scale)
            .fold(0.0, f64::max)
    }

    /// Largest constraint violation over the run.
    pub fn max_violation(&self) -> f64 {
        self.constraint_violation
            .iter()
            .copied()
            .fold(0.0, f64::max)
    }
}

/// Integrates `m` from the Hamiltonian-form state `z0` and records every output time.
///
/// # Errors
/// [`Error::Core`] if the integrator fails (non-finite state, step-size underflow, singular
/// constraints, RATTLE not converging), with the time it happened.
pub fn run<T: Real, const N: usize, const D: usize, const C: usize, P: Potential<T, N, D>>(
    name: &str,
    m: &Mechanics<T, N, D, C, P>,
    z0: Phase<T, N, D>,
    times: &[f64],
    integrator: IntegratorSpec,
) -> Result<Trajectory> {
    let mut traj = Trajectory {
        system: name.to_string(),
        dim: D,
        nodes: N,
        t: Vec::with_capacity(times.len()),
        x: Vec::with_capacity(times.len()),
        v: Vec::with_capacity(times.len()),
        energy: Vec::with_capacity(times.len()),
        constraint_violation: Vec::with_capacity(times.len()),
        stats: RunStats {
            constraints: C,
            ..RunStats::default()
        },
    };
    let record = |traj: &mut Trajectory, t: f64, z: &Phase<T, N, D>| {
        traj.t.push(t);
        traj.x
            .push(z.x().as_flattened().iter().map(|v| v.as_f64()).collect());
        traj.v.push(
            m.velocity(z.p())
                .as_flattened()
                .iter()
                .map(|v| v.as_f64())
                .collect(),
        );
        traj.energy.push(m.energy(z).as_f64());
        traj.constraint_violation
            .push(m.violation(z).max().as_f64());
    };
    let start = Instant::now();
    let at = |t: f64| {
        move |e| Error::Core {
            context: format!("integration failed near t = {t:.6}"),
            source: e,
        }
    };
    let mut z = z0;
    record(&mut traj, times[0], &z);
    match integrator {
        IntegratorSpec::Dopri5 { rtol, atol } => {
            let d =
                Dopri5::new(T::from_f64(rtol), T::from_f64(atol)).map_err(Error::core("dopri5"))?;
            let mut s = d.start(m, T::from_f64(times[0]), z).map_err(at(times[0]))?;
            for &t in &times[1..] {
                z = s
                    .advance_to(m, T::from_f64(t))
                    .map_err(at(s.t().as_f64()))?;
                record(&mut traj, t, &z);
            }
            let st = s.stats();
            traj.stats.steps = st.accepted;
            traj.stats.rejected = st.rejected;
            traj.stats.evaluations = st.evaluations;
        }
        IntegratorSpec::Rk4 {
            three_eighths,
            substeps,
        } => {
            let variant = if three_eighths {
                Rk4Variant::ThreeEighths
            } else {
                Rk4Variant::Classic
            };
            for w in times.windows(2) {
                let h = (w[1] - w[0]) / substeps as f64;
                let rk = Rk4::with_variant(T::from_f64(h), variant).map_err(Error::core("rk4"))?;
                let mut t = T::from_f64(w[0]);
                for _ in 0..substeps {
                    rk.step(m, t, &mut z).map_err(at(t.as_f64()))?;
                    t += rk.dt;
                }
                traj.stats.steps += substeps;
                record(&mut traj, w[1], &z);
            }
            traj.stats.evaluations = 4 * traj.stats.steps;
        }
        IntegratorSpec::Leapfrog { substeps } => {
            for w in times.windows(2) {
                let h = (w[1] - w[0]) / substeps as f64;
                let lf = Leapfrog::new(T::from_f64(h)).map_err(Error::core("leapfrog"))?;
                lf.advance(m, &mut z, substeps).map_err(at(w[0]))?;
                traj.stats.steps += substeps;
                record(&mut traj, w[1], &z);
            }
        }
    }
    traj.stats.seconds = start.elapsed().as_secs_f64();
    Ok(traj)
}
