//! What `keel simulate` is asked to do: the system, its parameters, the initial state, the
//! integrator and the output grid — parsed and validated before anything runs.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use keel_core::dynamics::DipoleSign;

use crate::error::{Error, Result};

/// The systems `keel simulate` knows (the CHNN paper's bodies).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SystemKind {
    /// Planar chain of point masses from a fixed pivot (`--links N`).
    ChainPendulum,
    /// Spherical pendulums coupled by springs (`--bobs N`).
    CoupledPendulum,
    /// Magnetised spherical pendulum above two magnets.
    MagnetPendulum,
    /// Heavy top pinned at a point.
    Gyroscope,
    /// Free rigid body.
    Rotor,
}

impl SystemKind {
    /// Every system, in the paper's order.
    pub const ALL: [SystemKind; 5] = [
        SystemKind::ChainPendulum,
        SystemKind::CoupledPendulum,
        SystemKind::MagnetPendulum,
        SystemKind::Gyroscope,
        SystemKind::Rotor,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            SystemKind::ChainPendulum => "chain-pendulum",
            SystemKind::CoupledPendulum => "coupled-pendulum",
            SystemKind::MagnetPendulum => "magnet-pendulum",
            SystemKind::Gyroscope => "gyroscope",
            SystemKind::Rotor => "rotor",
        }
    }

    /// The paper's sampling interval and trajectory length (s).
    pub fn paper_grid(self) -> (f64, f64) {
        match self {
            SystemKind::ChainPendulum => (0.03, 3.0),
            SystemKind::CoupledPendulum | SystemKind::MagnetPendulum | SystemKind::Rotor => {
                (0.05, 5.0)
            }
            SystemKind::Gyroscope => (0.02, 2.0),
        }
    }
}

impl fmt::Display for SystemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SystemKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        SystemKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = SystemKind::ALL.iter().map(|k| k.name()).collect();
                Error::invalid(
                    "SYSTEM",
                    s,
                    format!("unknown system; expected one of {}", names.join(", ")),
                )
            })
    }
}

/// Scalar type of the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Dtype {
    /// Single precision (what the controller runs).
    F32,
    /// Double precision.
    #[default]
    F64,
}

/// Which integrator, with its own settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum IntegratorSpec {
    /// Adaptive Dormand–Prince 5(4); outputs from its dense output.
    Dopri5 {
        /// Relative tolerance.
        rtol: f64,
        /// Absolute tolerance.
        atol: f64,
    },
    /// Fixed-step RK4 with `substeps` steps per output interval.
    Rk4 {
        /// Classic tableau or the 3/8 rule.
        three_eighths: bool,
        /// Steps per output interval.
        substeps: usize,
    },
    /// Symplectic leapfrog (RATTLE) with `substeps` steps per output interval.
    Leapfrog {
        /// Steps per output interval.
        substeps: usize,
    },
}

impl IntegratorSpec {
    /// Name as given on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            IntegratorSpec::Dopri5 { .. } => "dopri5",
            IntegratorSpec::Rk4 {
                three_eighths: false,
                ..
            } => "rk4",
            IntegratorSpec::Rk4 {
                three_eighths: true,
                ..
            } => "rk4-38",
            IntegratorSpec::Leapfrog { .. } => "leapfrog",
        }
    }
}

/// Physical parameters; `None` takes the paper's default for the system.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SystemParams {
    /// Chain links.
    pub links: Option<usize>,
    /// Coupled-pendulum bobs.
    pub bobs: Option<usize>,
    /// Per-bob masses (chain, coupled).
    pub masses: Option<Vec<f64>>,
    /// Per-link lengths (chain, coupled).
    pub lengths: Option<Vec<f64>>,
    /// Single-body mass (magnet, gyroscope, rotor).
    pub mass: Option<f64>,
    /// Gravitational acceleration.
    pub gravity: Option<f64>,
    /// Spring stiffness (coupled).
    pub spring_k: Option<f64>,
    /// Dipole strength (magnet).
    pub q: Option<f64>,
    /// Dipole energy sign (magnet).
    pub dipole_sign: DipoleSign,
}

/// How the initial state is given; anything left `None` is sampled with the seed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InitSpec {
    /// Chain: link angles from the downward vertical.
    pub angles: Option<Vec<f64>>,
    /// Chain: angular velocities.
    pub angular_velocities: Option<Vec<f64>>,
    /// Magnet/coupled: spherical angles `φ,θ` per bob.
    pub spherical: Option<Vec<f64>>,
    /// Magnet/coupled: spherical rates per bob.
    pub spherical_rates: Option<Vec<f64>>,
    /// Gyroscope/rotor: ZXZ Euler angles.
    pub euler: Option<Vec<f64>>,
    /// Gyroscope/rotor: Euler-angle rates.
    pub euler_rates: Option<Vec<f64>>,
    /// Rotor: centre-of-mass position.
    pub com: Option<Vec<f64>>,
    /// Rotor: centre-of-mass velocity.
    pub com_velocity: Option<Vec<f64>>,
    /// A JSON file with Cartesian `x` and `v`.
    pub file: Option<PathBuf>,
    /// Project a file's state onto the constraints instead of rejecting it.
    pub project: bool,
    /// Largest constraint violation accepted from a file.
    pub manifold_tol: f64,
}

/// A complete, validated simulation request.
#[derive(Clone, Debug, PartialEq)]
pub struct SimulateConfig {
    /// The system.
    pub system: SystemKind,
    /// Its parameters.
    pub params: SystemParams,
    /// The initial state.
    pub init: InitSpec,
    /// Seed for sampled parameters and states.
    pub seed: u64,
    /// End time (s).
    pub t_end: f64,
    /// Output spacing (s).
    pub dt: f64,
    /// Integrator.
    pub integrator: IntegratorSpec,
    /// Scalar type.
    pub dtype: Dtype,
}

impl SimulateConfig {
    /// The paper's setting for `system`: default parameters, sampled state, dopri5 at
    /// rtol = atol = 1e-10 on the paper's output grid.
    pub fn paper(system: SystemKind, seed: u64) -> Self {
        let (dt, t_end) = system.paper_grid();
        SimulateConfig {
            system,
            params: SystemParams::default(),
            init: InitSpec {
                manifold_tol: 1e-6,
                ..InitSpec::default()
            },
            seed,
            t_end,
            dt,
            integrator: IntegratorSpec::Dopri5 {
                rtol: 1e-10,
                atol: 1e-10,
            },
            dtype: Dtype::F64,
        }
    }

    /// Checks every setting that does not depend on the system's size.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the flag.
    pub fn validate(&self) -> Result<()> {
        positive("dt", self.dt)?;
        positive("t_end", self.t_end)?;
        if self.t_end / self.dt > 10_000_000.0 {
            return Err(Error::invalid(
                "dt",
                self.dt,
                "more than 10⁷ output rows; use a larger `dt`",
            ));
        }
        match self.integrator {
            IntegratorSpec::Dopri5 { rtol, atol } => {
                positive("rtol", rtol)?;
                if !(atol >= 0.0) || !atol.is_finite() {
                    return Err(Error::invalid("atol", atol, "must be ≥ 0 and finite"));
                }
                if self.dtype == Dtype::F32 && rtol < 1e-6 {
                    return Err(Error::invalid(
                        "rtol",
                        rtol,
                        "below f32 resolution; use ≥ 1e-6 with `dtype` f32",
                    ));
                }
                // About 450 ulps of f64: tighter, the error estimate is rounding noise.
                if rtol < 1e-13 {
                    return Err(Error::invalid(
                        "rtol",
                        rtol,
                        "below f64 resolution; use ≥ 1e-13",
                    ));
                }
            }
            IntegratorSpec::Rk4 { substeps, .. } | IntegratorSpec::Leapfrog { substeps } => {
                crate::limits::positive("substeps", substeps)?;
                let rows = (self.t_end / self.dt).ceil() as u128;
                crate::limits::work(
                    "substeps",
                    substeps,
                    rows.saturating_mul(substeps as u128),
                    "integrator steps",
                )?;
            }
        }
        let p = &self.params;
        for (flag, v) in [("mass", p.mass), ("spring_k", p.spring_k), ("q", p.q)] {
            if let Some(v) = v {
                if flag == "mass" {
                    positive(flag, v)?
                } else {
                    finite_nonneg(flag, v)?
                }
            }
        }
        if let Some(g) = p.gravity {
            finite_nonneg("gravity", g)?;
        }
        for (flag, list) in [("masses", &p.masses), ("lengths", &p.lengths)] {
            if let Some(list) = list {
                for v in list {
                    if !(*v > 0.0) || !v.is_finite() {
                        return Err(Error::invalid(
                            flag,
                            join(list),
                            format!("every entry must be positive and finite (got {v})"),
                        ));
                    }
                }
            }
        }
        let applies = |flag: &str, given: bool, ok: &[SystemKind]| {
            if given && !ok.contains(&self.system) {
                let names: Vec<_> = ok.iter().map(|k| k.name()).collect();
                Err(Error::invalid(
                    flag,
                    "(given)",
                    format!(
                        "does not apply to {}; it is for {}",
                        self.system,
                        names.join(", ")
                    ),
                ))
            } else {
                Ok(())
            }
        };
        use SystemKind::*;
        let i = &self.init;
        applies("links", p.links.is_some(), &[ChainPendulum])?;
        applies("bobs", p.bobs.is_some(), &[CoupledPendulum])?;
        applies(
            "masses",
            p.masses.is_some(),
            &[ChainPendulum, CoupledPendulum],
        )?;
        applies(
            "lengths",
            p.lengths.is_some(),
            &[ChainPendulum, CoupledPendulum],
        )?;
        applies(
            "mass",
            p.mass.is_some(),
            &[MagnetPendulum, Gyroscope, Rotor],
        )?;
        applies("spring_k", p.spring_k.is_some(), &[CoupledPendulum])?;
        applies("q", p.q.is_some(), &[MagnetPendulum])?;
        applies(
            "gravity",
            p.gravity.is_some(),
            &[ChainPendulum, CoupledPendulum, MagnetPendulum, Gyroscope],
        )?;
        applies("angles", i.angles.is_some(), &[ChainPendulum])?;
        applies(
            "angular_velocities",
            i.angular_velocities.is_some(),
            &[ChainPendulum],
        )?;
        applies(
            "spherical",
            i.spherical.is_some(),
            &[MagnetPendulum, CoupledPendulum],
        )?;
        applies(
            "spherical_rates",
            i.spherical_rates.is_some(),
            &[MagnetPendulum, CoupledPendulum],
        )?;
        applies("euler", i.euler.is_some(), &[Gyroscope, Rotor])?;
        applies("euler_rates", i.euler_rates.is_some(), &[Gyroscope, Rotor])?;
        applies("com", i.com.is_some(), &[Rotor])?;
        applies("com_velocity", i.com_velocity.is_some(), &[Rotor])?;
        let coordinates_given = [
            &i.angles,
            &i.angular_velocities,
            &i.spherical,
            &i.spherical_rates,
            &i.euler,
            &i.euler_rates,
            &i.com,
            &i.com_velocity,
        ]
        .iter()
        .any(|o| o.is_some());
        if i.file.is_some() && coordinates_given {
            return Err(Error::invalid(
                "init",
                i.file
                    .as_ref()
                    .map(|f| f.display().to_string())
                    .unwrap_or_default(),
                "give either `init` or coordinates, not both",
            ));
        }
        if !(i.manifold_tol > 0.0) {
            return Err(Error::invalid(
                "manifold_tol",
                i.manifold_tol,
                "must be positive",
            ));
        }
        Ok(())
    }

    /// Output times `0, dt, 2dt, …` up to and including `t_end` (appended when `t_end` is not a
    /// multiple of `dt`).
    pub fn output_times(&self) -> Vec<f64> {
        let n = (self.t_end / self.dt * (1.0 + 1e-12)).floor() as usize;
        // k/10 rather than k·0.1 where 1/dt is an integer: 0.3, not 0.30000000000000004.
        let inv = (1.0 / self.dt).round();
        let exact = inv >= 1.0 && (inv * self.dt - 1.0).abs() < 1e-12;
        let mut t: Vec<f64> = (0..=n)
            .map(|k| {
                if exact {
                    k as f64 / inv
                } else {
                    k as f64 * self.dt
                }
            })
            .collect();
        if let Some(last) = t.last_mut() {
            if (self.t_end - *last).abs() <= 1e-9 * self.t_end {
                *last = self.t_end;
            } else {
                t.push(self.t_end);
            }
        }
        t
    }
}

fn positive(flag: &str, v: f64) -> Result<()> {
    if v > 0.0 && v.is_finite() {
        Ok(())
    } else {
        Err(Error::invalid(flag, v, "must be positive and finite"))
    }
}

fn finite_nonneg(flag: &str, v: f64) -> Result<()> {
    if v >= 0.0 && v.is_finite() {
        Ok(())
    } else {
        Err(Error::invalid(flag, v, "must be ≥ 0 and finite"))
    }
}

/// Formats a list as typed on the command line.
pub fn join(list: &[f64]) -> String {
    list.iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Parses a comma-separated list of numbers (a leading minus sign is fine).
///
/// # Errors
/// [`Error::InvalidInput`] naming `flag` for an empty list, a non-number or a NaN/∞.
pub fn parse_list(flag: &str, s: &str) -> Result<Vec<f64>> {
    let s = s.trim();
    if s.is_empty() {
        return Err(Error::invalid(flag, s, "empty list"));
    }
    s.split(',')
        .map(|item| {
            let item = item.trim();
            let v: f64 = item
                .parse()
                .map_err(|_| Error::invalid(flag, s, format!("'{item}' is not a number")))?;
            if !v.is_finite() {
                return Err(Error::invalid(flag, s, format!("'{item}' is not finite")));
            }
            Ok(v)
        })
        .collect()
}

/// Requires a list to have exactly `n` entries.
///
/// # Errors
/// [`Error::InvalidInput`] naming `flag` and what the count depends on.
pub fn expect_len(flag: &str, list: &[f64], n: usize, what: &str) -> Result<()> {
    if list.len() == n {
        Ok(())
    } else {
        Err(Error::invalid(
            flag,
            join(list),
            format!("expected {n} values ({what}), got {}", list.len()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_with_leading_minus_and_reject_garbage() {
        assert_eq!(
            parse_list("angles", "-0.62,2.41").unwrap(),
            vec![-0.62, 2.41]
        );
        assert!(parse_list("angles", "1,,2").is_err());
        let e = parse_list("angles", "1,nan").unwrap_err().to_string();
        assert!(e.contains("angles") && e.contains("nan"), "{e}");
    }

    #[test]
    fn output_grid_includes_t_end() {
        let mut c = SimulateConfig::paper(SystemKind::ChainPendulum, 0);
        c.t_end = 5.0;
        c.dt = 0.1;
        let t = c.output_times();
        assert_eq!(t.len(), 51);
        assert_eq!(*t.last().unwrap(), 5.0);
        c.t_end = 0.25;
        assert_eq!(c.output_times(), vec![0.0, 0.1, 0.2, 0.25]);
    }

    #[test]
    fn flags_for_other_systems_are_rejected() {
        let mut c = SimulateConfig::paper(SystemKind::Gyroscope, 0);
        c.init.angles = Some(vec![0.1]);
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("angles") && e.contains("gyroscope"), "{e}");
    }
}
