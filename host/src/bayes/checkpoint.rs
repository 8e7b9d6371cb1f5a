//! Checkpoints of multi-chain HMC runs: the finished chains and the running ones (chains run in
//! lockstep, [`super::hmc::advance_batched`]), enough to continue exactly where a run stopped
//! (the resumed run draws the same numbers as an uninterrupted one). Written atomically as
//! safetensors (`keel.kind = bayes-hmc-checkpoint`): `chain{c}.samples` `F64 [S, P]` per chain
//! so far, `theta{c}` `F64 [P]` per running chain (its state), and the counters, generator
//! states and settings fingerprint as metadata. The finished chains come first: chains
//! `0 … k−1` are finished, `k …` running.

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

/// A running chain's counters (its samples and state are stored beside it).
#[derive(Serialize, Deserialize)]
struct Running {
    iteration: usize,
    step_size_bits: u64,
    accepted: usize,
    nan: usize,
    rng: [u64; 4],
}

#[derive(Serialize, Deserialize)]
struct Counters {
    fingerprint: String,
    finished: Vec<Finished>,
    running: Vec<Running>,
}

/// A run's progress: finished chains and the running ones.
pub struct Progress<'a> {
    /// Chains done, with their samples.
    pub finished: &'a [Chain],
    /// The running chains, in chain order after the finished ones.
    pub running: &'a [ChainState],
}

fn f64_bytes(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Writes a checkpoint atomically.
///
/// # Errors
/// [`Error::Io`]; device errors reading the state.
pub fn save(path: &Path, fingerprint: &str, p: &Progress<'_>) -> Result<()> {
    let k = p.finished.len();
    let mut tensors: Vec<(String, &'static str, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut dim = 0;
    for (j, r) in p.running.iter().enumerate() {
        let theta = r.current.theta.to_vec_f64()?;
        dim = theta.len();
        tensors.push((
            format!("theta{}", k + j),
            "F64",
            vec![dim],
            f64_bytes(&theta),
        ));
    }
    let chains = p
        .finished
        .iter()
        .map(|c| &c.samples)
        .chain(p.running.iter().map(|r| &r.samples));
    if dim == 0 {
        // No running chain: the parameter count from any sample.
        dim = chains.clone().flatten().next().map_or(0, Vec::len);
    }
    for (c, samples) in chains.enumerate() {
        let flat: Vec<f64> = samples.iter().flatten().copied().collect();
        let d = samples.first().map_or(dim, Vec::len);
        tensors.push((
            format!("chain{c}.samples"),
            "F64",
            vec![samples.len(), d],
            f64_bytes(&flat),
        ));
    }
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
        running: p
            .running
            .iter()
            .map(|r| Running {
                iteration: r.iteration,
                step_size_bits: r.step_size.to_bits(),
                accepted: r.accepted,
                nan: r.nan,
                rng: r.rng.state(),
            })
            .collect(),
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

/// Reads a checkpoint for a run with `fingerprint`: the finished chains and the running ones
/// (their cached likelihoods and gradients recomputed).
///
/// # Errors
/// [`Error::Io`]; as [`load_bytes`].
pub fn load(
    path: &Path,
    fingerprint: &str,
    target: &dyn Target,
    cfg_of: &dyn Fn(usize) -> Result<HmcConfig>,
) -> Result<(Vec<Chain>, Vec<ChainState>)> {
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
) -> Result<(Vec<Chain>, Vec<ChainState>)> {
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
    let total = k + c.running.len();
    // Exactly the tensors this writer writes: every chain so far, and the running states.
    let numbered = |name: &str, prefix: &str, suffix: &str| {
        name.strip_prefix(prefix)
            .and_then(|r| r.strip_suffix(suffix))
            .and_then(|i| i.parse::<usize>().ok())
            .filter(|&i| name == format!("{prefix}{i}{suffix}"))
    };
    for (name, view) in st.tensors() {
        let name: String = name.chars().collect();
        let shape_ok = match (
            numbered(&name, "chain", ".samples"),
            numbered(&name, "theta", ""),
        ) {
            (Some(i), _) if i < total => view.rank() == 2 && view.shape()[1] == dim,
            (_, Some(i)) if (k..total).contains(&i) => view.shape() == [dim],
            _ if name == "theta" => {
                return Err(bad(
                    "written by an earlier Keel, which ran one chain at a time; start the run \
                     again without --resume"
                        .into(),
                ))
            }
            _ => {
                return Err(bad(format!(
                    "unexpected tensor `{name}` (a checkpoint with {k} finished and {} running \
                     chains holds chain0.samples … chain{}.samples and theta{k} … theta{})",
                    c.running.len(),
                    total.saturating_sub(1),
                    total.saturating_sub(1)
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
    let mut running = Vec::with_capacity(c.running.len());
    for (j, r) in c.running.iter().enumerate() {
        let chain = k + j;
        let rng = Xoshiro256PlusPlus::from_state(r.rng)
            .ok_or_else(|| bad(format!("chain {chain}: generator state is zero")))?;
        running.push(ChainState::restore(
            target,
            read(&format!("theta{chain}"))?,
            rng,
            r.iteration,
            f64::from_bits(r.step_size_bits),
            r.accepted,
            r.nan,
            rows(&format!("chain{chain}.samples"))?,
            &cfg_of(chain)?,
        )?);
    }
    Ok((finished, running))
}
