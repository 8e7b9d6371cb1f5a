//! Training checkpoints shared by the training commands: parameters, Adam moments, the batch
//! generator's state and batch order, plus whatever parameter sets and series a command adds
//! (the best-validation parameters, a loss history), in one safetensors file written
//! atomically. A run resumed from a checkpoint continues with exactly the numbers an
//! uninterrupted run would have used.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use keel_core::io::SafeTensors;
use keel_core::random::Xoshiro256PlusPlus;

use crate::error::{Error, Result};
use crate::optim::Optimizer;
use crate::params::{ParamId, Params};
use crate::tensor::Tensor;

/// When and where a training run checkpoints.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// The file (none: no checkpoints).
    pub path: Option<PathBuf>,
    /// Epochs between checkpoints (0 counts as 1); the last epoch is always written.
    pub every: usize,
    /// Continue from `path` if the file exists (it must come from the same configuration).
    pub resume: bool,
    /// Stop (after checkpointing) once this many epochs are done, to split a long run into
    /// time-boxed pieces; `None` runs to the end.
    pub stop_after: Option<usize>,
}

impl Options {
    /// Whether the run stops after `done` epochs.
    pub fn stops_at(&self, done: usize) -> bool {
        self.stop_after.is_some_and(|s| done >= s)
    }

    /// Whether to write a checkpoint after `done` of `total` epochs.
    pub fn due(&self, done: usize, total: usize) -> bool {
        self.path.is_some()
            && (done.is_multiple_of(self.every.max(1)) || done == total || self.stops_at(done))
    }

    /// The file to resume from, if resuming and it exists.
    pub fn resume_from(&self) -> Option<&Path> {
        self.path.as_deref().filter(|p| self.resume && p.exists())
    }
}

/// What a checkpoint holds.
pub struct Snapshot<'a> {
    /// `keel.kind` of the file (e.g. `emlp-checkpoint`); a load checks it.
    pub kind: &'a str,
    /// The run's configuration in words; a load refuses a different one.
    pub fingerprint: &'a str,
    /// Epochs completed.
    pub epoch: usize,
    /// The parameters.
    pub params: &'a Params,
    /// The optimizer (step count and moments).
    pub opt: &'a Optimizer,
    /// The generator that shuffles batches.
    pub rng: &'a Xoshiro256PlusPlus,
    /// The current batch order.
    pub order: &'a [usize],
    /// Further parameter sets with the same layout, by prefix (e.g. `best`).
    pub extra_params: &'a [(&'a str, &'a Params)],
    /// Further series, by name (e.g. a loss history).
    pub series: &'a [(&'a str, &'a [f64])],
    /// Further metadata.
    pub meta: BTreeMap<String, String>,
}

/// What a load restores beyond the parameters, optimizer, generator and order it writes back.
pub struct Restored {
    /// Epochs completed.
    pub epoch: usize,
    /// The series saved, by name.
    pub series: BTreeMap<String, Vec<f64>>,
    /// The metadata.
    pub meta: BTreeMap<String, String>,
}

/// The metadata entries of a run that keeps its best validation epoch: the value (exact, as its
/// bits) and the epoch; [`Restored::best`] reads them back.
pub fn best_meta(value: f64, epoch: usize) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("best_val".to_string(), format!("{:016x}", value.to_bits())),
        ("best_epoch".to_string(), epoch.to_string()),
    ])
}

impl Restored {
    /// The best validation value and its epoch that [`best_meta`] stored.
    ///
    /// # Errors
    /// [`Error::Malformed`] naming `path` and the entry missing or not a number.
    pub fn best(&self, path: &Path) -> Result<(f64, usize)> {
        let bad = |what: &str| Error::Malformed {
            path: path.to_path_buf(),
            reason: format!("`{what}` missing or not a number"),
        };
        let value = self
            .meta
            .get("best_val")
            .and_then(|v| u64::from_str_radix(v, 16).ok())
            .map(f64::from_bits)
            .ok_or_else(|| bad("best_val"))?;
        let epoch = self
            .meta
            .get("best_epoch")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| bad("best_epoch"))?;
        Ok((value, epoch))
    }
}

fn f64_bytes(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Writes `s` to `path` atomically.
///
/// # Errors
/// Device reads; I/O.
pub fn save(path: &Path, s: &Snapshot<'_>) -> Result<()> {
    let mut t: Vec<(String, &'static str, Vec<usize>, Vec<u8>)> = Vec::new();
    for (i, p) in s.params.values().iter().enumerate() {
        t.push((
            format!("param.{i}"),
            "F64",
            vec![p.numel()],
            f64_bytes(&p.to_vec_f64()?),
        ));
        for (prefix, extra) in s.extra_params {
            let e = extra.get(ParamId(i));
            t.push((
                format!("{prefix}.{i}"),
                "F64",
                vec![e.numel()],
                f64_bytes(&e.to_vec_f64()?),
            ));
        }
    }
    let (step, m, v) = s.opt.state()?;
    for (i, (m, v)) in m.iter().zip(&v).enumerate() {
        if let Some(m) = m {
            t.push((format!("adam_m.{i}"), "F64", vec![m.len()], f64_bytes(m)));
        }
        if let Some(v) = v {
            t.push((format!("adam_v.{i}"), "F64", vec![v.len()], f64_bytes(v)));
        }
    }
    for (name, values) in s.series {
        t.push((
            format!("series.{name}"),
            "F64",
            vec![values.len()],
            f64_bytes(values),
        ));
    }
    let ord: Vec<u8> = s
        .order
        .iter()
        .flat_map(|&x| (x as u64).to_le_bytes())
        .collect();
    t.push(("order".into(), "U64", vec![s.order.len()], ord));
    let r = s.rng.state();
    let mut meta = s.meta.clone();
    meta.extend([
        ("keel.kind".to_string(), s.kind.to_string()),
        ("fingerprint".to_string(), s.fingerprint.to_string()),
        ("names".to_string(), s.params.names().join(",")),
        ("epoch".to_string(), s.epoch.to_string()),
        ("step".to_string(), step.to_string()),
        (
            "rng".to_string(),
            format!("{},{},{},{}", r[0], r[1], r[2], r[3]),
        ),
    ]);
    crate::output::write_atomic(path, &crate::checksum::sealed_safetensors(&t, &meta))
}

/// Restores a checkpoint written by [`save`] for the same `kind` and `fingerprint` into
/// `params` (keeping their dtype and device), `opt`, `rng`, `order` and `extra_params`.
///
/// # Errors
/// [`Error::Io`]; as [`load_bytes`].
#[allow(clippy::too_many_arguments)] // Each is written back; a struct of &muts would only rename them.
pub fn load(
    path: &Path,
    kind: &str,
    fingerprint: &str,
    params: &mut Params,
    opt: &mut Optimizer,
    rng: &mut Xoshiro256PlusPlus,
    order: &mut [usize],
    extra_params: &mut [(&str, &mut Params)],
) -> Result<Restored> {
    let bytes = crate::output::read(path)?;
    load_bytes(
        &bytes,
        path,
        kind,
        fingerprint,
        params,
        opt,
        rng,
        order,
        extra_params,
    )
}

/// As [`load`], from the file's bytes (`path` names it in errors). Nothing is written back
/// unless the whole file checks out.
///
/// # Errors
/// [`Error::Malformed`] for a file that is not such a checkpoint, whose checksum does not match
/// its contents (a changed, renamed, added or missing tensor or metadata entry), or whose
/// tensors do not fit the model; [`Error::InvalidInput`] (setting `resume`) for one from another
/// configuration.
#[allow(clippy::too_many_arguments)] // As `load`.
pub fn load_bytes(
    bytes: &[u8],
    path: &Path,
    kind: &str,
    fingerprint: &str,
    params: &mut Params,
    opt: &mut Optimizer,
    rng: &mut Xoshiro256PlusPlus,
    order: &mut [usize],
    extra_params: &mut [(&str, &mut Params)],
) -> Result<Restored> {
    let bad = |reason: String| Error::Malformed {
        path: path.into(),
        reason,
    };
    let st = open::<1024>(bytes, path, kind, fingerprint)?;
    let meta = |k: &str| -> Result<String> {
        st.metadata(k)
            .map(|v| v.chars().collect())
            .ok_or_else(|| bad(format!("no `{k}` in the metadata (not a keel {kind})")))
    };
    if meta("names")? != params.names().join(",") {
        return Err(bad("parameter names differ from this model's".into()));
    }
    let num = |k: &str| -> Result<u64> {
        meta(k)?
            .parse()
            .map_err(|_| bad(format!("`{k}` is not a number")))
    };
    let epoch = usize::try_from(num("epoch")?).map_err(|_| bad("`epoch` is too large".into()))?;
    let step = num("step")?;
    let restored_rng = parse_rng(&meta("rng")?).map_err(bad)?;
    let n = params.len();
    // Every tensor is one this writer writes for this model: nothing unknown, nothing renamed.
    let known = |name: &str| -> bool {
        let indexed = |prefix: &str| {
            name.strip_prefix(prefix)
                .and_then(|i| i.strip_prefix('.'))
                .and_then(|i| i.parse::<usize>().ok())
                .is_some_and(|i| i < n && name == format!("{prefix}.{i}"))
        };
        name == "order"
            || name.starts_with("series.")
            || indexed("param")
            || indexed("adam_m")
            || indexed("adam_v")
            || extra_params.iter().any(|(prefix, _)| indexed(prefix))
    };
    for (name, view) in st.tensors() {
        let name: String = name.chars().collect();
        if !known(&name) {
            return Err(bad(format!(
                "unexpected tensor `{name}` (a {kind} of {n} parameters holds param.*, \
                 adam_m.*, adam_v.*, order, series.* and the extra sets)"
            )));
        }
        let want = if name == "order" {
            keel_core::io::Dtype::U64
        } else {
            keel_core::io::Dtype::F64
        };
        if view.dtype() != want || view.rank() != 1 {
            return Err(bad(format!(
                "`{name}` is {} {:?}; the writer stores {} vectors",
                view.dtype().name(),
                view.shape(),
                want.name()
            )));
        }
    }
    let f64s = |name: &str| -> Result<Option<Vec<f64>>> {
        let Ok(view) = st.tensor(name) else {
            return Ok(None);
        };
        (0..view.len())
            .map(|i| view.get_f64(i))
            .collect::<core::result::Result<Vec<_>, _>>()
            .map(Some)
            .map_err(|e| bad(format!("{name}: {e}")))
    };
    // Read everything first: a damaged file leaves the run untouched.
    let mut values = Vec::with_capacity(n);
    let mut extra_values: Vec<Vec<Tensor>> = vec![Vec::with_capacity(n); extra_params.len()];
    let (mut m, mut v) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n {
        let like = params.get(ParamId(i));
        let (dims, dtype, dev) = (like.dims().to_vec(), like.dtype(), like.device());
        let numel = like.numel();
        let take = |name: String| -> Result<Tensor> {
            let data = f64s(&name)?.ok_or_else(|| bad(format!("missing {name}")))?;
            if data.len() != numel {
                return Err(bad(format!(
                    "{name} holds {} values; the parameter has {numel}",
                    data.len()
                )));
            }
            Ok(Tensor::from_f64s(&data, &dims, dtype)
                .map_err(|e| bad(format!("{name}: {e}")))?
                .to_device(dev)?)
        };
        values.push(take(format!("param.{i}"))?);
        for (k, (prefix, _)) in extra_params.iter().enumerate() {
            extra_values[k].push(take(format!("{prefix}.{i}"))?);
        }
        let (mi, vi) = (f64s(&format!("adam_m.{i}"))?, f64s(&format!("adam_v.{i}"))?);
        let fits = |x: &Option<Vec<f64>>| x.as_ref().is_none_or(|x| x.len() == numel);
        if mi.is_some() != vi.is_some() || !fits(&mi) || !fits(&vi) {
            return Err(bad(format!(
                "the Adam moments of parameter {i} are incomplete or of the wrong length"
            )));
        }
        m.push(mi);
        v.push(vi);
    }
    let new_order = read_order(&st, order.len()).map_err(bad)?;
    let mut series = BTreeMap::new();
    let names: Vec<String> = st.tensors().map(|(k, _)| k.chars().collect()).collect();
    for name in names {
        if let Some(s) = name.strip_prefix("series.") {
            if let Some(vals) = f64s(&name)? {
                series.insert(s.to_string(), vals);
            }
        }
    }
    let all_meta = st
        .metadata_entries()
        .map(|(k, v)| (k.chars().collect(), v.chars().collect()))
        .collect();
    // Write back.
    for (i, value) in values.into_iter().enumerate() {
        params.set(ParamId(i), value)?;
    }
    for ((_, extra), vals) in extra_params.iter_mut().zip(extra_values) {
        for (i, value) in vals.into_iter().enumerate() {
            extra.set(ParamId(i), value)?;
        }
    }
    opt.restore(params, step, m, v)?;
    order.copy_from_slice(&new_order);
    *rng = restored_rng;
    Ok(Restored {
        epoch,
        series,
        meta: all_meta,
    })
}

/// Parses a checkpoint's bytes and checks its `keel.kind`, its checksum and that it belongs to
/// the run `fingerprint` describes (the checks every checkpoint kind shares).
///
/// # Errors
/// [`Error::Malformed`] for another kind or a damaged file; [`Error::InvalidInput`] (setting
/// `resume`) for a checkpoint of another configuration.
pub(crate) fn open<'a, const N: usize>(
    bytes: &'a [u8],
    path: &Path,
    kind: &str,
    fingerprint: &str,
) -> Result<SafeTensors<'a, N>> {
    let bad = |reason: String| Error::Malformed {
        path: path.into(),
        reason,
    };
    let st = SafeTensors::<'_, N>::parse(bytes).map_err(|e| bad(e.to_string()))?;
    let meta = |k: &str| -> Result<String> {
        st.metadata(k)
            .map(|v| v.chars().collect())
            .ok_or_else(|| bad(format!("no `{k}` in the metadata (not a keel {kind})")))
    };
    if meta("keel.kind")? != kind {
        return Err(bad(format!("not a keel {kind}")));
    }
    crate::checksum::verify(&st).map_err(bad)?;
    let fp = meta("fingerprint")?;
    if fp != fingerprint {
        return Err(Error::invalid(
            "resume",
            path.display(),
            format!("the checkpoint is for `{fp}`, this run is `{fingerprint}`"),
        ));
    }
    Ok(st)
}

/// The generator state written as `a,b,c,d`.
pub(crate) fn parse_rng(text: &str) -> core::result::Result<Xoshiro256PlusPlus, String> {
    let words: Vec<u64> = text
        .split(',')
        .map(str::parse)
        .collect::<core::result::Result<_, _>>()
        .map_err(|_| "`rng`".to_string())?;
    let state: [u64; 4] = words
        .try_into()
        .map_err(|_| "`rng` needs 4 words".to_string())?;
    Xoshiro256PlusPlus::from_state(state).ok_or_else(|| "`rng` is the zero state".to_string())
}

/// The `order` tensor, which must be a permutation of `0..len`.
pub(crate) fn read_order<const N: usize>(
    st: &SafeTensors<'_, N>,
    len: usize,
) -> core::result::Result<Vec<usize>, String> {
    let ov = st.tensor("order").map_err(|e| format!("order: {e}"))?;
    if ov.len() != len {
        return Err("the batch order has the wrong length".into());
    }
    let mut seen = vec![false; len];
    let mut order = vec![0; len];
    for (k, o) in order.iter_mut().enumerate() {
        let b = ov.element_bytes(k).map_err(|e| e.to_string())?;
        let x = u64::from_le_bytes(b.try_into().map_err(|_| "order".to_string())?);
        let x = usize::try_from(x).unwrap_or(usize::MAX);
        if x >= len || std::mem::replace(&mut seen[x], true) {
            return Err("the batch order is not a permutation of the training rows".into());
        }
        *o = x;
    }
    Ok(order)
}
