//! The true systems behind the data, behind one object-safe interface: their constraint graph
//! (what a model is told), their energy (for the energy error) and projection and integration
//! (for the perturbed-ground-truth chaos floor).

use keel_core::dynamics::systems::{
    ChainPendulum, CoupledPendulum, Gyroscope, MagnetPendulum, Rotor,
};
use keel_core::dynamics::{DipoleSign, Mechanics, Phase, Potential, ProjectParams};
use keel_core::integrate::{Dopri5, StateVector};

use super::data::SystemSpec;
use super::model::Graph;
use crate::error::{Error, Result};
use crate::simulate::SystemKind;

/// A true system, sizes erased.
pub trait Truth {
    /// The constraint graph and bodies.
    fn graph(&self) -> Graph;
    /// `H` of the velocity-form state `(x, v)` (flat, node-major), with the true masses.
    fn energy(&self, x: &[f64], v: &[f64]) -> f64;
    /// Projects the velocity-form state onto `Φ = 0, Φ̇ = 0`.
    ///
    /// # Errors
    /// The core's projection errors.
    fn project(&self, x: &mut [f64], v: &mut [f64]) -> Result<()>;
    /// Integrates from `(x, v)` with dopri5 at `rtol`/`atol` and returns the velocity-form
    /// states at `times` (the first is the start).
    ///
    /// # Errors
    /// Integration errors.
    fn rollout(&self, x: &[f64], v: &[f64], times: &[f64], rtol: f64) -> Result<Vec<Vec<f64>>>;
}

fn phase<const N: usize, const D: usize>(x: &[f64], v: &[f64]) -> Phase<f64, N, D> {
    let mut z = Phase::<f64, N, D>::zeros();
    let s = z.as_mut_slice();
    s[..N * D].copy_from_slice(&x[..N * D]);
    s[N * D..].copy_from_slice(&v[..N * D]);
    z
}

impl<const N: usize, const D: usize, const C: usize, P: Potential<f64, N, D>> Truth
    for Mechanics<f64, N, D, C, P>
{
    fn graph(&self) -> Graph {
        Graph::of(self)
    }

    fn energy(&self, x: &[f64], v: &[f64]) -> f64 {
        Mechanics::energy(self, &self.from_velocity_form(&phase::<N, D>(x, v)))
    }

    fn project(&self, x: &mut [f64], v: &mut [f64]) -> Result<()> {
        let mut z = phase::<N, D>(x, v);
        Mechanics::project(self, &mut z, ProjectParams::default())
            .map_err(Error::core("projecting a perturbed state"))?;
        let s = z.as_slice();
        x[..N * D].copy_from_slice(&s[..N * D]);
        v[..N * D].copy_from_slice(&s[N * D..]);
        Ok(())
    }

    fn rollout(&self, x: &[f64], v: &[f64], times: &[f64], rtol: f64) -> Result<Vec<Vec<f64>>> {
        let z0 = self.from_velocity_form(&phase::<N, D>(x, v));
        let t0 = times.first().copied().unwrap_or(0.0);
        let mut solver = Dopri5::new(rtol, 1e-9)
            .and_then(|d| d.start(self, t0, z0))
            .map_err(Error::core("dopri5"))?;
        let mut out = Vec::with_capacity(times.len());
        for &t in times {
            let z = if t == t0 {
                z0
            } else {
                solver.advance_to(self, t).map_err(Error::core("dopri5"))?
            };
            out.push(self.to_velocity_form(&z).as_slice().to_vec());
        }
        Ok(out)
    }
}

/// The paper's version of `spec` (default parameters, as the data pipeline simulates it).
///
/// # Errors
/// Unsupported sizes; the core's construction errors.
pub fn truth(spec: SystemSpec) -> Result<Box<dyn Truth>> {
    macro_rules! sized {
        ($n:expr, $flag:literal, $ty:ident, [$($k:literal),*]) => {
            match $n {
                $($k => Ok(Box::new(*$ty::<f64, $k>::paper()
                    .map_err(Error::core("paper system"))?
                    .mechanics()) as Box<dyn Truth>),)*
                n => Err(Error::invalid("size", n, concat!("supported: 1 to 6 ", $flag))),
            }
        };
    }
    match spec.kind {
        SystemKind::ChainPendulum => {
            sized!(
                spec.size.unwrap_or(3),
                "links",
                ChainPendulum,
                [1, 2, 3, 4, 5, 6]
            )
        }
        SystemKind::CoupledPendulum => {
            sized!(
                spec.size.unwrap_or(3),
                "bobs",
                CoupledPendulum,
                [1, 2, 3, 4, 5, 6]
            )
        }
        SystemKind::MagnetPendulum => Ok(Box::new(
            *MagnetPendulum::<f64, 2>::new(3.0, 1.0, 0.3, 9.81, DipoleSign::default())
                .map_err(Error::core("magnet pendulum"))?
                .mechanics(),
        )),
        SystemKind::Gyroscope => Ok(Box::new(
            *Gyroscope::<f64>::paper()
                .map_err(Error::core("gyroscope"))?
                .mechanics(),
        )),
        SystemKind::Rotor => Ok(Box::new(
            *Rotor::<f64>::paper()
                .map_err(Error::core("rotor"))?
                .mechanics(),
        )),
    }
}
