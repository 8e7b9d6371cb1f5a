//! Checkpoints of multi-chain HMC runs: the finished chains and the running one, enough to
//! continue exactly where a run stopped (the resumed run draws the same numbers as an
//! uninterrupted one). Written atomically as safetensors (`keel.kind =
//! bayes-hmc-checkpoint`): `chain{c}.samples` `F64 [S, P]` per chain so far, `theta` `F64 [P]`
//! (the running chain's state), and the counters, generator state and settings fingerprint as
//! metadata.

use std::collections::BTreeMap;
use std::path::Path;

use keel_core::random::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

use super::hmc::{Chain, ChainState, HmcConfig, Target};
use crate::error::{Error, Result};
use crate::output::write_atomic;

/// A finished chain's summary (its samples are stored beside it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finished {
    /// Acceptance rate after burn-in.
    pub acceptance_rate: f64,
    /// Non-finite energies.
    pub nan_energies: usize,
    /// `L` after burn-in.
    pub leapfrog_steps: usize,
    /// `ε` after burn-in (bits, exact).
    pub step_size_bits: u64,
}

#[derive(Serialize, Deserialize)]
struct Counters {
    fingerprint: String,
    finished: Vec<Finished>,
    iteration: usize,
    step_size_bits: u64,
    accepted: usize,
    nan: usize,
    rng: [u64; 4],
}

/// A run's progress: finished chains and the running one.
pub struct Progress<'a> {
    /// Chains done, with their samples.
    pub finished: &'a [Chain],
    /// The running chain.
    pub running: &'a ChainState,
}

fn f64_bytes(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Writes a checkpoint atomically.
///
/// # Errors
/// [`Error::Io`]; device errors reading the state.
pub fn save(path: &Path, fingerprint: &str, p: &Progress<'_>) -> Result<()> {
    let theta = p.running.current.theta.to_vec_f64()?;
    let dim = theta.len();
    let mut tensors: Vec<(String, &'static str, Vec<usize>, Vec<u8>)> = Vec::new();
    let chains = p
        .finished
        .iter()
        .map(|c| &c.samples)
        .chain([&p.running.samples]);
    for (c, samples) in chains.enumerate() {
        let flat: Vec<f64> = samples.iter().flatten().copied().collect();
        tensors.push((
            format!("chain{c}.samples"),
            "F64",
            vec![samples.len(), dim],
            f64_bytes(&flat),
        ));
    }
    tensors.push(("theta".into(), "F64", vec![dim], f64_bytes(&theta)));
    let counters = Counters {
        fingerprint: fingerprint.into(),
        finished: p
            .finished
            .iter()
            .map(|c| Finished {
                acceptance_rate: c.acceptance_rate,
                nan_energies: c.nan_energies,
                leapfrog_steps: c.leapfrog_steps,
                step_size_bits: c.step_size.to_bits(),
            })
            .collect(),
        iteration: p.running.iteration,
        step_size_bits: p.running.step_size.to_bits(),
        accepted: p.running.accepted,
        nan: p.running.nan,
        rng: p.running.rng.state(),
    };
    let meta = BTreeMap::from([
        ("keel.kind".to_string(), "bayes-hmc-checkpoint".to_string()),
        (
            "keel.hmc".to_string(),
            serde_json::to_string(&counters)
                .map_err(|e| Error::invalid("checkpoint", "counters", e.to_string()))?,
        ),
    ]);
    write_atomic(path, &crate::checksum::sealed_safetensors(&tensors, &meta))
}

/// Reads a checkpoint for a run with `fingerprint`: the finished chains and the running one
/// (its cached likelihood and gradient recomputed).
///
/// # Errors
/// [`Error::Io`]; as [`load_bytes`].
pub fn load(
    path: &Path,
    fingerprint: &str,
    target: &dyn Target,
    cfg_of: &dyn Fn(usize) -> Result<HmcConfig>,
) -> Result<(Vec<Chain>, ChainState)> {
    load_bytes(
        &crate::output::read(path)?,
        path,
        fingerprint,
        target,
        cfg_of,
    )
}

/// As [`load`], from the file's bytes (`path` names it in errors).
///
/// # Errors
/// [`Error::Malformed`] for a damaged file (its checksum differs from its contents), one that
/// is not a checkpoint, or one whose tensors do not fit `target`; [`Error::InvalidInput`]
/// (`--resume`) for one from other settings.
pub fn load_bytes(
    bytes: &[u8],
    path: &Path,
    fingerprint: &str,
    target: &dyn Target,
    cfg_of: &dyn Fn(usize) -> Result<HmcConfig>,
) -> Result<(Vec<Chain>, ChainState)> {
    let bad = |reason: String| Error::Malformed {
        path: path.to_path_buf(),
        reason,
    };
    let st = keel_core::io::SafeTensors::<64>::parse(bytes).map_err(|e| bad(e.to_string()))?;
    if st.metadata("keel.kind").and_then(|k| k.as_str()) != Some("bayes-hmc-checkpoint") {
        return Err(bad("not an HMC checkpoint".into()));
    }
    crate::checksum::verify(&st).map_err(bad)?;
    let text: String = st
        .metadata("keel.hmc")
        .ok_or_else(|| bad("no keel.hmc metadata".into()))?
        .chars()
        .collect();
    let c: Counters = serde_json::from_str(&text).map_err(|e| bad(format!("keel.hmc: {e}")))?;
    if c.fingerprint != fingerprint {
        return Err(Error::invalid(
            "resume",
            path.display(),
            "the checkpoint was written by a run with other settings or data",
        ));
    }
    let dim = target.dim();
    let k = c.finished.len();
    // Exactly the tensors this writer writes: every chain so far, and the running state.
    for (name, view) in st.tensors() {
        let name: String = name.chars().collect();
        let chain = name
            .strip_prefix("chain")
            .and_then(|r| r.strip_suffix(".samples"))
            .and_then(|i| i.parse::<usize>().ok())
            .filter(|&i| i <= k && name == format!("chain{i}.samples"));
        let shape_ok = match chain {
            Some(_) => view.rank() == 2 && view.shape()[1] == dim,
            None if name == "theta" => view.shape() == [dim],
            None => {
                return Err(bad(format!(
                    "unexpected tensor `{name}` (a checkpoint after {k} finished chains holds \
                     chain0.samples … chain{k}.samples and theta)"
                )))
            }
        };
        if view.dtype() != keel_core::io::Dtype::F64 || !shape_ok {
            return Err(bad(format!(
                "`{name}` is {} {:?}; this model has {dim} parameters (F64)",
                view.dtype().name(),
                view.shape()
            )));
        }
    }
    let read = |name: &str| -> Result<Vec<f64>> {
        let t = st.tensor(name).map_err(|e| bad(format!("{name}: {e}")))?;
        (0..t.len())
            .map(|i| t.get_f64(i))
            .collect::<core::result::Result<Vec<_>, _>>()
            .map_err(|e| bad(e.to_string()))
    };
    let rows = |name: &str| -> Result<Vec<Vec<f64>>> {
        let flat = read(name)?;
        if flat.len() % dim.max(1) != 0 {
            return Err(bad(format!("{name} does not hold {dim}-parameter rows")));
        }
        Ok(flat.chunks(dim.max(1)).map(<[f64]>::to_vec).collect())
    };
    let mut finished = Vec::new();
    for (i, f) in c.finished.iter().enumerate() {
        finished.push(Chain {
            samples: rows(&format!("chain{i}.samples"))?,
            acceptance_rate: f.acceptance_rate,
            nan_energies: f.nan_energies,
            leapfrog_steps: f.leapfrog_steps,
            step_size: f64::from_bits(f.step_size_bits),
        });
    }
    let theta = read("theta")?;
    let rng = Xoshiro256PlusPlus::from_state(c.rng)
        .ok_or_else(|| bad("generator state is zero".into()))?;
    let running = ChainState::restore(
        target,
        theta,
        rng,
        c.iteration,
        f64::from_bits(c.step_size_bits),
        c.accepted,
        c.nan,
        rows(&format!("chain{k}.samples"))?,
        &cfg_of(k)?,
    )?;
    Ok((finished, running))
}
