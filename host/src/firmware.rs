//! `keel firmware check`: the embedded proof. The Cortex-M4F firmware (`firmware/`) integrates a
//! chain pendulum in `f32` under QEMU and prints its final state as IEEE-754 bit patterns; this
//! module reruns the same steps with the same `keel-core` code on the host and compares.
//!
//! The firmware's result line:
//! ```text
//! KEEL-FW system=chain-pendulum links=3 integrator=rk4 dtype=f32 dt=<word> steps=1000 \
//!     angles=<words> rates=<words> state=<2·N·D words>
//! ```
//! where every word is an `f32`'s IEEE-754 bits as 8 hex digits (lists comma-separated), so the
//! host reruns exactly the firmware's inputs and compares exactly its outputs.

use std::collections::BTreeMap;

use keel_core::dynamics::systems::ChainPendulum;
use keel_core::integrate::{Rk4, StateVector};
use serde::Serialize;

use crate::error::{Error, Result};

/// A parsed firmware result line.
#[derive(Clone, Debug, PartialEq)]
pub struct FirmwareRun {
    /// Chain links.
    pub links: usize,
    /// RK4 step.
    pub dt: f32,
    /// Steps taken.
    pub steps: usize,
    /// Initial link angles.
    pub angles: Vec<f32>,
    /// Initial angular velocities.
    pub rates: Vec<f32>,
    /// Final state as printed.
    pub state: Vec<f32>,
}

/// Outcome of comparing the firmware with the host.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Comparison {
    /// Final state from the firmware.
    pub firmware: Vec<f32>,
    /// Final state from the host.
    pub host: Vec<f32>,
    /// `‖fw − host‖∞ / ‖host‖∞`.
    pub relative_error: f64,
    /// Components whose bits are identical.
    pub identical_components: usize,
    /// The tolerance checked.
    pub tolerance: f64,
    /// Whether `relative_error ≤ tolerance`.
    pub pass: bool,
}

/// The tolerance of the firmware check (DESIGN.md: f32 core results match within 1e-4; the
/// same code on both sides should agree far closer, and the issue asks for 1e-5).
pub const TOLERANCE: f64 = 1e-5;

/// Finds and parses the `KEEL-FW system=` line in firmware output.
///
/// # Errors
/// [`Error::InvalidInput`] naming the missing or malformed field.
pub fn parse(output: &str) -> Result<FirmwareRun> {
    let line = output
        .lines()
        .find(|l| l.trim_start().starts_with("KEEL-FW system="))
        .ok_or_else(|| {
            Error::invalid(
                "firmware output",
                "(log)",
                "no 'KEEL-FW system=' line; did the firmware run?",
            )
        })?;
    let fields: BTreeMap<&str, &str> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let get = |k: &str| {
        fields
            .get(k)
            .copied()
            .ok_or_else(|| Error::invalid("firmware output", line, format!("missing {k}=")))
    };
    let expect = |k: &str, want: &str| -> Result<()> {
        let v = get(k)?;
        if v == want {
            Ok(())
        } else {
            Err(Error::invalid(
                "firmware output",
                v,
                format!("{k} must be {want} (the only scenario the check knows)"),
            ))
        }
    };
    expect("system", "chain-pendulum")?;
    expect("integrator", "rk4")?;
    expect("dtype", "f32")?;
    let links: usize = get("links")?
        .parse()
        .map_err(|_| Error::invalid("links", get("links").unwrap_or(""), "not an integer"))?;
    if links != 3 {
        return Err(Error::invalid(
            "links",
            links,
            "the check is compiled for the 3-link chain",
        ));
    }
    let steps: usize = get("steps")?
        .parse()
        .map_err(|_| Error::invalid("steps", get("steps").unwrap_or(""), "not an integer"))?;
    let words = |key: &str, n: usize| -> Result<Vec<f32>> {
        let text = get(key)?;
        let v = text
            .split(',')
            .map(|w| match u32::from_str_radix(w, 16) {
                Ok(bits) if w.len() == 8 => Ok(f32::from_bits(bits)),
                _ => Err(Error::invalid(key, w, "not an 8-digit hex word")),
            })
            .collect::<Result<Vec<f32>>>()?;
        if v.len() != n {
            return Err(Error::invalid(
                key,
                text,
                format!("expected {n} words, got {}", v.len()),
            ));
        }
        Ok(v)
    };
    let dt = words("dt", 1)?[0];
    let angles = words("angles", links)?;
    let rates = words("rates", links)?;
    let state = words("state", 4 * links)?;
    Ok(FirmwareRun {
        links,
        dt,
        steps,
        angles,
        rates,
        state,
    })
}

/// Reruns the firmware's scenario on the host in `f32` with the same core code.
///
/// # Errors
/// [`Error::Core`] if the integration fails.
pub fn host_run(run: &FirmwareRun) -> Result<Vec<f32>> {
    let p = ChainPendulum::<f32, 3>::paper().map_err(Error::core("chain pendulum"))?;
    let a: [f32; 3] = core::array::from_fn(|i| run.angles[i]);
    let r: [f32; 3] = core::array::from_fn(|i| run.rates[i]);
    let mut z = p.state_from_angles(&a, &r);
    let rk4 = Rk4::new(run.dt).map_err(Error::core("rk4"))?;
    rk4.advance(p.mechanics(), 0.0, &mut z, run.steps)
        .map_err(Error::core("host rk4 run"))?;
    Ok(z.as_slice().to_vec())
}

/// Compares the firmware's final state with the host's.
///
/// # Errors
/// As [`host_run`].
pub fn check(run: &FirmwareRun) -> Result<Comparison> {
    let host = host_run(run)?;
    let norm = host.iter().fold(0.0f64, |m, v| m.max(f64::from(v.abs())));
    let diff = run
        .state
        .iter()
        .zip(&host)
        .fold(0.0f64, |m, (a, b)| m.max(f64::from((a - b).abs())));
    let relative_error = if norm > 0.0 { diff / norm } else { diff };
    let identical_components = run
        .state
        .iter()
        .zip(&host)
        .filter(|(a, b)| a.to_bits() == b.to_bits())
        .count();
    Ok(Comparison {
        firmware: run.state.clone(),
        host,
        relative_error,
        identical_components,
        tolerance: TOLERANCE,
        pass: relative_error <= TOLERANCE && relative_error.is_finite(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(v: &[f32]) -> String {
        v.iter()
            .map(|v| format!("{:08x}", v.to_bits()))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn line(state: &[f32]) -> String {
        format!(
            "boot\nKEEL-FW system=chain-pendulum links=3 integrator=rk4 dtype=f32 dt={} steps=50 angles={} rates={} state={}\n",
            hex(&[0.01]),
            hex(&[0.3, -0.2, 1.1]),
            hex(&[0.0, 0.5, -0.3]),
            hex(state)
        )
    }

    #[test]
    fn host_result_passes_its_own_check_and_a_perturbed_one_fails() {
        let probe = parse(&line(&[0.0; 12])).unwrap();
        let host = host_run(&probe).unwrap();
        let c = check(&parse(&line(&host)).unwrap()).unwrap();
        assert!(c.pass && c.identical_components == 12 && c.relative_error == 0.0);
        let mut off = host.clone();
        off[7] *= 1.001;
        let c = check(&parse(&line(&off)).unwrap()).unwrap();
        assert!(!c.pass, "relative error {}", c.relative_error);
    }

    #[test]
    fn malformed_lines_are_rejected() {
        assert!(parse("nothing here").is_err());
        let ok = line(&[0.0; 12]);
        assert!(parse(&ok.replace("links=3", "links=4")).is_err());
        assert!(parse(&ok.replace("state=00000000,", "state=zz,")).is_err());
        assert!(parse(&ok.replace("state=00000000,", "state=0,")).is_err());
        assert!(parse(&ok.replace("steps=50", "steps=x")).is_err());
        assert!(parse(&ok.replace("dtype=f32", "dtype=f64")).is_err());
    }
}
