//! GAN checkpoints (`keel.kind = "gan-checkpoint"`): the three networks, the generator's
//! running statistics, the three Adam states, the random generator, the real-batch order and
//! cursor, the loss series and the snapshots so far — everything a resumed run needs to
//! continue with the numbers of an uninterrupted one — in one sealed safetensors file written
//! atomically.

use std::collections::BTreeMap;
use std::path::Path;

use keel_core::random::Xoshiro256PlusPlus;

use super::data::RealBatches;
use super::train::Networks;
use crate::error::{Error, Result};
use crate::optim::Optimizer;
use crate::params::{ParamId, Params};
use crate::tensor::Tensor;

/// `keel.kind` of a GAN checkpoint.
pub const KIND: &str = "gan-checkpoint";

/// The most tensors a GAN checkpoint holds (the ResNets' three networks with their Adam
/// moments, the running statistics, 64 snapshots: about 340). The parser's table of this many
/// entries lives on the stack (≈ 100 B each), so it is kept small.
const MAX_TENSORS: usize = 512;

/// What [`save`] writes.
pub(crate) struct SavedState<'a> {
    pub nets: &'a Networks,
    /// Generator, critic, classifier.
    pub opts: [&'a Optimizer; 3],
    pub rng: &'a Xoshiro256PlusPlus,
    pub batches: &'a RealBatches,
    pub critic_losses: &'a [f64],
    pub generator_losses: &'a [f64],
    pub snapshots: &'a [(usize, Vec<f64>)],
    pub iteration: usize,
}

/// What [`load`] writes back.
pub(crate) struct State<'a> {
    pub nets: &'a mut Networks,
    pub opts: [&'a mut Optimizer; 3],
    pub rng: &'a mut Xoshiro256PlusPlus,
    pub batches: &'a mut RealBatches,
    pub critic_losses: &'a mut Vec<f64>,
    pub generator_losses: &'a mut Vec<f64>,
    pub snapshots: &'a mut Vec<(usize, Vec<f64>)>,
    pub iteration: &'a mut usize,
}

const PARTS: [&str; 3] = ["generator", "critic", "classifier"];

fn bytes(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

type Entry = (String, &'static str, Vec<usize>, Vec<u8>);

fn vector(name: String, v: &[f64]) -> Entry {
    (name, "F64", vec![v.len()], bytes(v))
}

/// Writes the checkpoint atomically.
///
/// # Errors
/// Device reads; I/O.
pub(crate) fn save(path: &Path, fingerprint: &str, s: &SavedState<'_>) -> Result<()> {
    let mut t: Vec<Entry> = Vec::new();
    let mut meta = BTreeMap::new();
    let sets = [&s.nets.g_params, &s.nets.c_params, &s.nets.d_params];
    for ((part, params), opt) in PARTS.iter().zip(sets).zip(s.opts) {
        for (i, p) in params.values().iter().enumerate() {
            t.push(vector(format!("{part}.param.{i}"), &p.to_vec_f64()?));
        }
        let (step, m, v) = opt.state()?;
        for (i, (m, v)) in m.iter().zip(&v).enumerate() {
            if let (Some(m), Some(v)) = (m, v) {
                t.push(vector(format!("{part}.adam_m.{i}"), m));
                t.push(vector(format!("{part}.adam_v.{i}"), v));
            }
        }
        meta.insert(format!("{part}.step"), step.to_string());
        meta.insert(format!("{part}.names"), params.names().join(","));
    }
    for (i, (m, v)) in s.nets.g_running.iter().enumerate() {
        t.push(vector(format!("running.{i}.mean"), &m.to_vec_f64()?));
        t.push(vector(format!("running.{i}.var"), &v.to_vec_f64()?));
    }
    t.push(vector("series.critic".into(), s.critic_losses));
    t.push(vector("series.generator".into(), s.generator_losses));
    for (it, rows) in s.snapshots {
        t.push(vector(format!("snapshot.{it}"), rows));
    }
    let order: Vec<u8> = s
        .batches
        .order
        .iter()
        .flat_map(|&x| (x as u64).to_le_bytes())
        .collect();
    t.push(("order".into(), "U64", vec![s.batches.order.len()], order));
    let r = s.rng.state();
    meta.extend([
        ("keel.kind".to_string(), KIND.to_string()),
        ("fingerprint".to_string(), fingerprint.to_string()),
        ("iteration".to_string(), s.iteration.to_string()),
        ("cursor".to_string(), s.batches.cursor.to_string()),
        (
            "rng".to_string(),
            format!("{},{},{},{}", r[0], r[1], r[2], r[3]),
        ),
    ]);
    crate::output::write_atomic(path, &crate::checksum::sealed_safetensors(&t, &meta))
}

/// Restores a checkpoint of the run `fingerprint` describes. Nothing is written back unless the
/// whole file checks out.
///
/// # Errors
/// [`Error::Malformed`] for a damaged file or one that does not fit the networks;
/// [`Error::InvalidInput`] (setting `resume`) for a checkpoint of another configuration.
pub(crate) fn load(path: &Path, fingerprint: &str, s: &mut State<'_>) -> Result<()> {
    let file = crate::output::read(path)?;
    let bad = |reason: String| Error::Malformed {
        path: path.into(),
        reason,
    };
    let st = crate::checkpoint::open::<{ MAX_TENSORS }>(&file, path, KIND, fingerprint)?;
    let meta = |k: &str| -> Result<String> {
        st.metadata(k)
            .map(|v| v.chars().collect())
            .ok_or_else(|| bad(format!("no `{k}` in the metadata (not a keel {KIND})")))
    };
    let num = |k: &str| -> Result<u64> {
        meta(k)?
            .parse()
            .map_err(|_| bad(format!("`{k}` is not a number")))
    };
    let f64s = |name: &str| -> Result<Option<Vec<f64>>> {
        let Ok(view) = st.tensor(name) else {
            return Ok(None);
        };
        if view.dtype() != keel_core::io::Dtype::F64 || view.rank() != 1 {
            return Err(bad(format!("`{name}` is not an F64 vector")));
        }
        (0..view.len())
            .map(|i| view.get_f64(i))
            .collect::<core::result::Result<Vec<_>, _>>()
            .map(Some)
            .map_err(|e| bad(format!("{name}: {e}")))
    };
    let like = |name: String, t: &Tensor| -> Result<Tensor> {
        let v = f64s(&name)?.ok_or_else(|| bad(format!("missing {name}")))?;
        if v.len() != t.numel() {
            return Err(bad(format!(
                "{name} holds {} values; the network needs {}",
                v.len(),
                t.numel()
            )));
        }
        Ok(Tensor::from_f64s(&v, t.dims(), t.dtype())?.to_device(t.device())?)
    };
    // Read everything first.
    let sets: [&Params; 3] = [&s.nets.g_params, &s.nets.c_params, &s.nets.d_params];
    let mut values: Vec<Vec<Tensor>> = Vec::new();
    let mut moments = Vec::new();
    for (part, params) in PARTS.iter().zip(sets) {
        if meta(&format!("{part}.names"))? != params.names().join(",") {
            return Err(bad(format!(
                "the {part}'s parameter names differ from this run's"
            )));
        }
        let mut vals = Vec::with_capacity(params.len());
        let (mut m, mut v) = (Vec::new(), Vec::new());
        for i in 0..params.len() {
            let p = params.get(ParamId(i));
            vals.push(like(format!("{part}.param.{i}"), p)?);
            let mi = f64s(&format!("{part}.adam_m.{i}"))?;
            let vi = f64s(&format!("{part}.adam_v.{i}"))?;
            let fits = |x: &Option<Vec<f64>>| x.as_ref().is_none_or(|x| x.len() == p.numel());
            if mi.is_some() != vi.is_some() || !fits(&mi) || !fits(&vi) {
                return Err(bad(format!(
                    "the {part}'s Adam moments of parameter {i} do not fit"
                )));
            }
            m.push(mi);
            v.push(vi);
        }
        values.push(vals);
        moments.push((num(&format!("{part}.step"))?, m, v));
    }
    let mut running = Vec::with_capacity(s.nets.g_running.len());
    for (i, (m, v)) in s.nets.g_running.iter().enumerate() {
        running.push((
            like(format!("running.{i}.mean"), m)?,
            like(format!("running.{i}.var"), v)?,
        ));
    }
    let critic = f64s("series.critic")?.ok_or_else(|| bad("missing series.critic".into()))?;
    let generator =
        f64s("series.generator")?.ok_or_else(|| bad("missing series.generator".into()))?;
    let iteration = usize::try_from(num("iteration")?).map_err(|_| bad("`iteration`".into()))?;
    if critic.len() != iteration || generator.len() != iteration {
        return Err(bad(format!(
            "the loss series hold {} and {} values for {iteration} iterations",
            critic.len(),
            generator.len()
        )));
    }
    let mut snapshots = Vec::new();
    for (name, _) in st.tensors() {
        let name: String = name.chars().collect();
        if let Some(it) = name.strip_prefix("snapshot.") {
            let it: usize = it.parse().map_err(|_| bad(format!("`{name}`")))?;
            snapshots.push((it, f64s(&name)?.unwrap_or_default()));
        }
    }
    snapshots.sort_by_key(|(it, _)| *it);
    let n = s.batches.order.len();
    let order = crate::checkpoint::read_order(&st, n).map_err(bad)?;
    let cursor = usize::try_from(num("cursor")?).map_err(|_| bad("`cursor`".into()))?;
    if cursor > n {
        return Err(bad("the batch cursor is past the order".into()));
    }
    let rng = crate::checkpoint::parse_rng(&meta("rng")?).map_err(bad)?;
    // Write back.
    let sets: [&mut Params; 3] = [
        &mut s.nets.g_params,
        &mut s.nets.c_params,
        &mut s.nets.d_params,
    ];
    for (((params, vals), (step, m, v)), opt) in sets
        .into_iter()
        .zip(values)
        .zip(moments)
        .zip(s.opts.iter_mut())
    {
        for (i, t) in vals.into_iter().enumerate() {
            params.set(ParamId(i), t)?;
        }
        opt.restore(params, step, m, v)?;
    }
    s.nets.g_running = running;
    *s.critic_losses = critic;
    *s.generator_losses = generator;
    *s.snapshots = snapshots;
    s.batches.order = order;
    s.batches.cursor = cursor;
    *s.rng = rng;
    *s.iteration = iteration;
    Ok(())
}
