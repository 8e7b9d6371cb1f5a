//! The firmware's WISKI behind a learned stem (`KEEL-FW model=wiski-stem`) checked on the host.
//!
//! `keel gp online --method wiski --stem K --export FILE` leaves a model for the controller
//! (`keel_core::gp::WiskiFile`, written by [`crate::export::wiski`]): the stem frozen as
//! `z = tanh(W x + c)` on raw rows, the grid, the kernel and noise, and the sufficient
//! statistics of the stream (Stanton et al., *Kernel Interpolation for Scalable Online Gaussian
//! Processes*, AISTATS 2021, §3: the model is resumed from `WᵀW`, `Wᵀy` and a few scalars by
//! one refactorisation). The firmware embeds such a file and a few held-out rows of the same
//! split ([`write_wiski_samples`]), resumes the model in `f32`, and for each row computes its
//! features, predicts, then absorbs the row's standardised target with the stem fixed. It prints
//!
//! ```text
//! KEEL-FW model=wiski-stem nodes=<m> inputs=<P> features=<D> n0=<points in the file> rows=<r> \
//!     z=<r·D words> y=<r words> mean=<r words> var_f=<r words> lml0=<word> \
//!     final_mean=<r words> final_var_f=<r words> lml=<word> n=<n0 + r>
//! ```
//!
//! (`mean`, `var_f`: each row's prediction before it was absorbed; `final_*`: at every row after
//! all were; `lml0`, `lml`: log p(y) of the file's points, then with the rows.) [`check_wiski_stem`]
//! reruns the same core code on the host from the same two files, in `f32` (every word must be
//! bit-identical) and in `f64` (within [`WISKI_STEM_TOLERANCE`]).

use std::collections::BTreeMap;
use std::path::Path;

use keel_core::gp::{refactor_scratch_len, WiskiBuffers, WiskiFile};
use keel_core::io::SafeTensors;
use keel_core::Real;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::firmware::{field, hex_words, model_line};

/// The model the firmware embeds (`keel gp online --data fixtures/data/computers.csv --target
/// price --method wiski --stem 2 --grid-size 8 --seed 0 --export …`).
pub const WISKI_STEM_MODEL: &str = "wiski-computers.safetensors";
/// Its held-out rows (`x [r, P]` raw, `y [r]` in the data's units, `row [r]` their CSV rows),
/// written by [`write_wiski_samples`].
pub const WISKI_STEM_SAMPLES: &str = "wiski-computers-samples.safetensors";
/// Rows the firmware predicts and absorbs.
pub const WISKI_STEM_ROWS: usize = 16;
/// Tolerance of the firmware's `f32` model against the host's `f64` rerun, the DESIGN's `f32`
/// contract as for the 1-D stream ([`crate::firmware::GP_TOLERANCE`]): features and means within
/// `tol · (1 + |f64|)`, latent variances within `tol ·` the outputscale (the prior variance),
/// log p(y) within `tol · max(1, |f64|)`. Measured on the embedded model (m = 64, resumed from
/// 5,633 points): means 1.2e-5, features 8.3e-8, variances 2.2e-9, log p(y) 7.0e-7.
pub const WISKI_STEM_TOLERANCE: f64 = crate::firmware::GP_TOLERANCE;

/// A parsed `KEEL-FW model=wiski-stem` line.
#[derive(Clone, Debug, PartialEq)]
pub struct FirmwareWiskiStemRun {
    /// Grid nodes `m`.
    pub nodes: usize,
    /// Raw input columns `P`.
    pub inputs: usize,
    /// Stem features `D`.
    pub features: usize,
    /// Points in the exported statistics.
    pub n0: u64,
    /// Rows predicted and absorbed.
    pub rows: usize,
    /// Stem features of the rows (`rows × features`).
    pub z: Vec<f32>,
    /// Standardised targets absorbed.
    pub y: Vec<f32>,
    /// Predictive means before each row was absorbed.
    pub mean: Vec<f32>,
    /// Latent variances before each row was absorbed.
    pub var_f: Vec<f32>,
    /// log p(y) of the file's points.
    pub lml0: f32,
    /// Means at every row after all were absorbed.
    pub final_mean: Vec<f32>,
    /// Latent variances there.
    pub final_var_f: Vec<f32>,
    /// log p(y) with the rows.
    pub lml: f32,
    /// Points at the end.
    pub n: u64,
}

/// Finds and parses the `KEEL-FW model=wiski-stem` line.
///
/// # Errors
/// [`Error::InvalidInput`] naming the missing or malformed field, or counts that disagree.
pub fn parse_wiski_stem(output: &str) -> Result<FirmwareWiskiStemRun> {
    let (line, fields) = model_line(output, "wiski-stem")?;
    let get = |k: &str| field(&fields, line, k);
    let words = |k: &str| hex_words(k, get(k)?);
    let one = |k: &str| -> Result<f32> {
        match words(k)?.as_slice() {
            [v] => Ok(*v),
            _ => Err(Error::invalid(
                "firmware output",
                line,
                format!("{k}= must be one word"),
            )),
        }
    };
    let int = |k: &str| -> Result<u64> {
        get(k)?
            .parse()
            .map_err(|_| Error::invalid("firmware output", line, format!("{k}= is not an integer")))
    };
    let run = FirmwareWiskiStemRun {
        nodes: int("nodes")? as usize,
        inputs: int("inputs")? as usize,
        features: int("features")? as usize,
        n0: int("n0")?,
        rows: int("rows")? as usize,
        z: words("z")?,
        y: words("y")?,
        mean: words("mean")?,
        var_f: words("var_f")?,
        lml0: one("lml0")?,
        final_mean: words("final_mean")?,
        final_var_f: words("final_var_f")?,
        lml: one("lml")?,
        n: int("n")?,
    };
    let r = run.rows;
    if !(1..=3).contains(&run.features)
        || !(4..=4096).contains(&run.nodes)
        || !(1..=1024).contains(&r)
        || !(1..=4096).contains(&run.inputs)
        || run.z.len() != r * run.features
        || [
            &run.y,
            &run.mean,
            &run.var_f,
            &run.final_mean,
            &run.final_var_f,
        ]
        .iter()
        .any(|v| v.len() != r)
        || run.n0.checked_add(r as u64) != Some(run.n)
    {
        return Err(Error::invalid(
            "firmware output",
            line,
            "features= 1 to 3, nodes= 4 to 4096, rows= 1 to 1024, inputs= 1 to 4096; z= needs \
             rows × features words, y=, mean=, var_f=, final_mean= and final_var_f= one word per \
             row; n= must be n0= + rows=",
        ));
    }
    Ok(run)
}

/// The firmware's scenario rerun in `T`, and what the comparison needs besides.
#[derive(Clone, Debug, PartialEq)]
struct Rerun<T> {
    nodes: usize,
    inputs: usize,
    n0: u64,
    z: Vec<T>,
    y: Vec<T>,
    mean: Vec<T>,
    var_f: Vec<T>,
    lml0: T,
    final_mean: Vec<T>,
    final_var_f: Vec<T>,
    lml: T,
    /// The kernel's outputscale (the prior variance of f).
    outputscale: f64,
    /// The target's mean and sd (`target.scale`).
    scale: (f64, f64),
    /// The rows' targets in the data's units.
    targets: Vec<f64>,
}

/// Reruns the firmware's scenario with the core in `T`: the model resumed from `model`, the
/// first `rows` rows of `samples` featurised, predicted, absorbed, and predicted again.
fn rerun<T: Real>(model: &[u8], samples: &[u8], rows: usize, path: &Path) -> Result<Rerun<T>> {
    let st = SafeTensors::<16>::parse(model).map_err(Error::malformed(path))?;
    let file = WiskiFile::from_safetensors(&st).map_err(Error::malformed(path))?;
    match file.dims() {
        1 => rerun_in::<T, 1>(&st, &file, samples, rows, path),
        2 => rerun_in::<T, 2>(&st, &file, samples, rows, path),
        _ => rerun_in::<T, 3>(&st, &file, samples, rows, path),
    }
}

fn rerun_in<T: Real, const D: usize>(
    st: &SafeTensors<'_, 16>,
    file: &WiskiFile<'_>,
    samples: &[u8],
    rows: usize,
    path: &Path,
) -> Result<Rerun<T>> {
    let core = |e| Error::core("firmware WISKI-stem rerun")(e);
    let bad = Error::malformed(path);
    let scale = st.tensor("target.scale").map_err(&bad)?;
    let (y_mean, y_sd): (T, T) = (scale.get(0).map_err(&bad)?, scale.get(1).map_err(&bad)?);
    let outputscale = st
        .tensor("kernel")
        .and_then(|k| k.get_f64(0))
        .map_err(&bad)?;
    let sst = SafeTensors::<4>::parse(samples).map_err(core)?;
    let (xt, yt) = (
        sst.tensor("x").map_err(core)?,
        sst.tensor("y").map_err(core)?,
    );
    let p = file.inputs();
    if xt.len() < rows * p || yt.len() < rows {
        return Err(Error::invalid(
            "samples",
            format!("{} values of x, {} of y", xt.len(), yt.len()),
            format!("the firmware ran {rows} rows of {p} inputs"),
        ));
    }
    let m = file.nodes();
    let (mut root, mut precision) = (vec![T::ZERO; m * m], vec![T::ZERO; m * m]);
    let (mut b, mut mean, mut work) = (vec![T::ZERO; m], vec![T::ZERO; m], vec![T::ZERO; 2 * m]);
    let mut scratch = vec![T::ZERO; refactor_scratch_len(m)];
    let buf = WiskiBuffers {
        root: &mut root,
        precision: &mut precision,
        b: &mut b,
        mean: &mut mean,
        work: &mut work,
    };
    let mut gp = file.model::<T, D>(buf, &mut scratch).map_err(core)?;
    let n0 = gp.len();
    let lml0 = gp.log_marginal_likelihood();
    let mut out = Rerun {
        nodes: m,
        inputs: p,
        n0,
        z: Vec::new(),
        y: Vec::new(),
        mean: Vec::new(),
        var_f: Vec::new(),
        lml0,
        final_mean: Vec::new(),
        final_var_f: Vec::new(),
        lml: lml0,
        outputscale,
        scale: (
            scale.get_f64(0).map_err(&bad)?,
            scale.get_f64(1).map_err(&bad)?,
        ),
        targets: Vec::new(),
    };
    let mut zs = Vec::with_capacity(rows);
    for k in 0..rows {
        let x = (0..p)
            .map(|i| xt.get::<T>(k * p + i))
            .collect::<core::result::Result<Vec<T>, _>>()
            .map_err(core)?;
        let target: T = yt.get(k).map_err(core)?;
        let y = (target - y_mean) / y_sd;
        let mut z = [T::ZERO; D];
        file.features(&x, &mut z).map_err(core)?;
        let pred = gp.predict(&z).map_err(core)?;
        gp.observe(&z, y).map_err(core)?;
        out.z.extend_from_slice(&z);
        out.y.push(y);
        out.mean.push(pred.mean);
        out.var_f.push(pred.var_f);
        out.targets.push(yt.get_f64(k).map_err(core)?);
        zs.push(z);
    }
    for z in &zs {
        let pred = gp.predict(z).map_err(core)?;
        out.final_mean.push(pred.mean);
        out.final_var_f.push(pred.var_f);
    }
    out.lml = gp.log_marginal_likelihood();
    Ok(out)
}

/// The firmware's WISKI-behind-a-stem against the host's reruns of the same files.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct WiskiStemComparison {
    /// Grid nodes.
    pub nodes: usize,
    /// Raw input columns.
    pub inputs: usize,
    /// Points in the exported statistics.
    pub n0: u64,
    /// Rows predicted and absorbed on the controller.
    pub rows: usize,
    /// Words (features, targets, predictions, log p(y)) bit-identical to the host's `f32`
    /// rerun, of the total.
    pub identical_to_host_f32: (usize, usize),
    /// Largest `|fw − f64| / (1 + |f64|)` over the features.
    pub feature_error_vs_f64: f64,
    /// Largest `|fw − f64| / (1 + |f64|)` over the means (before and after absorbing).
    pub mean_error_vs_f64: f64,
    /// Largest `|fw − f64| / s` over the latent variances (s = the outputscale).
    pub var_error_vs_f64: f64,
    /// Largest `|fw − f64| / max(1, |f64|)` of the two log p(y).
    pub lml_error_vs_f64: f64,
    /// RMSE of the firmware's predictions made before each row was absorbed (held-out rows), in
    /// the target's units.
    pub rmse_before: f64,
    /// RMSE at the same rows after all were absorbed, in the target's units.
    pub rmse_after: f64,
    /// Tolerance for the `f64` comparisons.
    pub tolerance: f64,
    /// Bit-identical to `f32`, within tolerance of `f64`, and the same model as the files'.
    pub pass: bool,
}

/// Compares a firmware run with host reruns of the embedded files in `assets`.
///
/// # Errors
/// I/O errors for the assets; [`Error::Malformed`] or [`Error::Core`] if the core refuses them.
pub fn check_wiski_stem(run: &FirmwareWiskiStemRun, assets: &Path) -> Result<WiskiStemComparison> {
    let path = assets.join(WISKI_STEM_MODEL);
    let model = crate::output::read(&path)?;
    let samples = crate::output::read(&assets.join(WISKI_STEM_SAMPLES))?;
    let h32 = rerun::<f32>(&model, &samples, run.rows, &path)?;
    let h64 = rerun::<f64>(&model, &samples, run.rows, &path)?;
    Ok(compare(run, &h32, &h64))
}

fn compare(run: &FirmwareWiskiStemRun, h32: &Rerun<f32>, h64: &Rerun<f64>) -> WiskiStemComparison {
    let fw = |r: &FirmwareWiskiStemRun| -> Vec<f32> {
        let mut v: Vec<f32> = [&r.z, &r.y, &r.mean, &r.var_f, &r.final_mean, &r.final_var_f]
            .into_iter()
            .flatten()
            .copied()
            .collect();
        v.extend([r.lml0, r.lml]);
        v
    };
    let host: Vec<f32> = [
        &h32.z,
        &h32.y,
        &h32.mean,
        &h32.var_f,
        &h32.final_mean,
        &h32.final_var_f,
    ]
    .into_iter()
    .flatten()
    .copied()
    .chain([h32.lml0, h32.lml])
    .collect();
    let words = fw(run);
    let identical = words
        .iter()
        .zip(&host)
        .filter(|(a, b)| a.to_bits() == b.to_bits())
        .count();
    let rel = |a: &[f32], b: &[f64]| {
        a.iter()
            .zip(b)
            .map(|(a, b)| (f64::from(*a) - b).abs() / (1.0 + b.abs()))
            .fold(0.0, worse)
    };
    let feature_error = rel(&run.z, &h64.z);
    let mean_error = worse(
        rel(&run.mean, &h64.mean),
        rel(&run.final_mean, &h64.final_mean),
    );
    let s = h64.outputscale;
    let var = |a: &[f32], b: &[f64]| {
        a.iter()
            .zip(b)
            .map(|(a, b)| (f64::from(*a) - b).abs() / s)
            .fold(0.0, worse)
    };
    let var_error = worse(
        var(&run.var_f, &h64.var_f),
        var(&run.final_var_f, &h64.final_var_f),
    );
    let lml = |a: f32, b: f64| (f64::from(a) - b).abs() / b.abs().max(1.0);
    let lml_error = worse(lml(run.lml0, h64.lml0), lml(run.lml, h64.lml));
    let (y_mean, y_sd) = h64.scale;
    let rmse = |m: &[f32]| {
        let se: f64 = m
            .iter()
            .zip(&h64.targets)
            .map(|(m, t)| (f64::from(*m) * y_sd + y_mean - t).powi(2))
            .sum();
        (se / m.len().max(1) as f64).sqrt()
    };
    let same_model = run.nodes == h64.nodes
        && run.inputs == h64.inputs
        && run.n0 == h64.n0
        && run.z.len() == h64.z.len()
        && words.len() == host.len();
    let tol = WISKI_STEM_TOLERANCE;
    let pass = same_model
        && identical == words.len()
        && feature_error <= tol
        && mean_error <= tol
        && var_error <= tol
        && lml_error <= tol;
    WiskiStemComparison {
        nodes: run.nodes,
        inputs: run.inputs,
        n0: run.n0,
        rows: run.rows,
        identical_to_host_f32: (identical, words.len()),
        feature_error_vs_f64: feature_error,
        mean_error_vs_f64: mean_error,
        var_error_vs_f64: var_error,
        lml_error_vs_f64: lml_error,
        rmse_before: rmse(&run.mean),
        rmse_after: rmse(&run.final_mean),
        tolerance: tol,
        pass,
    }
}

/// The larger of two errors, NaN if either is (`f64::max` would pass over a NaN, and a
/// firmware output of NaNs would compare as within tolerance).
fn worse(m: f64, e: f64) -> f64 {
    if m.is_nan() || e.is_nan() {
        f64::NAN
    } else {
        m.max(e)
    }
}

/// Where the held-out rows come from: the CSV, its target column, and the split of
/// `keel gp online --seed … --test-fraction …`.
#[derive(Clone, Debug, PartialEq)]
pub struct WiskiSamplesSpec<'a> {
    /// The CSV `gp online --data` read.
    pub data: &'a Path,
    /// Its target column.
    pub target: &'a str,
    /// The run's `--seed` (the row order).
    pub seed: u64,
    /// The run's `--test-fraction`.
    pub test_fraction: f64,
    /// Rows to write (the first of the held-out set).
    pub count: usize,
}

/// Writes the first `spec.count` held-out rows of `keel gp online`'s split of `spec.data` (the
/// rows its exported model never absorbed) to `out` as `f32`: `x [count, P]` raw, `y [count]`
/// the target in the data's units and `row [count]` their 0-based data rows: the held-out rows
/// of [`crate::gp::OnlineData::split`] itself, so they are the ones the model never saw.
/// Returns the rows' indices.
///
/// # Errors
/// I/O and format errors; [`Error::InvalidInput`] for a classification target or too few
/// held-out rows.
pub fn write_wiski_samples(spec: &WiskiSamplesSpec<'_>, out: &Path) -> Result<Vec<usize>> {
    let d = crate::data::read_csv(spec.data, spec.target, false)?;
    let dims = d.features.len();
    let y = match &d.y {
        crate::data::Targets::Values(v) => v.clone(),
        crate::data::Targets::Classes { .. } => {
            return Err(Error::invalid(
                "--target",
                spec.target,
                "the WISKI samples need a numeric target",
            ))
        }
    };
    let split = crate::gp::OnlineData::split(&d.x, &y, dims, spec.test_fraction, spec.seed)?;
    if spec.count == 0 || spec.count > split.test_rows.len() {
        return Err(Error::invalid(
            "--count",
            spec.count,
            format!("the split holds out {} rows", split.test_rows.len()),
        ));
    }
    let rows = &split.test_rows[..spec.count];
    let x: Vec<f64> = rows
        .iter()
        .flat_map(|&i| d.x[i * dims..(i + 1) * dims].iter().copied())
        .collect();
    let targets: Vec<f64> = rows.iter().map(|&i| y[i]).collect();
    let index: Vec<f64> = rows.iter().map(|&i| i as f64).collect();
    let bytes = crate::export::f32_bytes;
    let tensors = vec![
        ("x".to_string(), vec![spec.count, dims], bytes(&x)),
        ("y".to_string(), vec![spec.count], bytes(&targets)),
        ("row".to_string(), vec![spec.count], bytes(&index)),
    ];
    let name = spec
        .data
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let meta = BTreeMap::from([
        ("keel.kind".to_string(), "samples".to_string()),
        ("keel.dataset".to_string(), name),
        ("keel.target".to_string(), spec.target.to_string()),
        ("keel.columns".to_string(), d.features.join(",")),
        ("keel.seed".to_string(), spec.seed.to_string()),
        (
            "keel.test_fraction".to_string(),
            spec.test_fraction.to_string(),
        ),
    ]);
    crate::output::write_atomic(out, &crate::export::safetensors_bytes(&tensors, &meta))?;
    Ok(rows.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(v: &[f32]) -> String {
        v.iter()
            .map(|x| format!("{:08x}", x.to_bits()))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn assets() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../firmware/assets")
    }

    /// The line the firmware would print for the host's f32 rerun.
    fn line(h: &Rerun<f32>, rows: usize) -> String {
        format!(
            "KEEL-FW model=wiski-stem nodes={} inputs={} features=2 n0={} rows={rows} z={} y={} mean={} var_f={} lml0={} final_mean={} final_var_f={} lml={} n={}",
            h.nodes,
            h.inputs,
            h.n0,
            hex(&h.z),
            hex(&h.y),
            hex(&h.mean),
            hex(&h.var_f),
            hex(&[h.lml0]),
            hex(&h.final_mean),
            hex(&h.final_var_f),
            hex(&[h.lml]),
            h.n0 + rows as u64
        )
    }

    #[test]
    fn the_hosts_own_rerun_passes_and_a_changed_word_fails() {
        let dir = assets();
        let path = dir.join(WISKI_STEM_MODEL);
        let model = std::fs::read(&path).unwrap();
        let samples = std::fs::read(dir.join(WISKI_STEM_SAMPLES)).unwrap();
        let h32 = rerun::<f32>(&model, &samples, WISKI_STEM_ROWS, &path).unwrap();
        let text = format!("boot\n{}\nKEEL-FW system=…\n", line(&h32, WISKI_STEM_ROWS));
        let run = parse_wiski_stem(&text).unwrap();
        assert_eq!(run.z.len(), 2 * WISKI_STEM_ROWS);
        let c = check_wiski_stem(&run, &dir).unwrap();
        let total = 7 * WISKI_STEM_ROWS + 2;
        assert!(c.pass && c.identical_to_host_f32 == (total, total), "{c:?}");
        // A prediction made before absorbing is no worse than the target's spread.
        assert!(c.rmse_before < h32.scale.1, "{c:?}");
        let mut bad = run.clone();
        bad.final_mean[3] = f32::from_bits(bad.final_mean[3].to_bits() ^ 1);
        assert!(!check_wiski_stem(&bad, &dir).unwrap().pass);
        let mut other = run.clone();
        other.n0 += 1;
        other.n += 1;
        assert!(!check_wiski_stem(&other, &dir).unwrap().pass);
    }

    #[test]
    fn malformed_wiski_stem_lines_are_refused() {
        let r = 2;
        let w = |n: usize| hex(&vec![0.5f32; n]);
        let ok = format!(
            "KEEL-FW model=wiski-stem nodes=64 inputs=9 features=2 n0=100 rows={r} z={} y={} mean={} var_f={} lml0={} final_mean={} final_var_f={} lml={} n=102",
            w(4), w(2), w(2), w(2), w(1), w(2), w(2), w(1)
        );
        let run = parse_wiski_stem(&ok).unwrap();
        assert_eq!((run.n0, run.n, run.rows), (100, 102, 2));
        // Missing line, missing field, bad word, short list, one word expected, bad counts.
        assert!(parse_wiski_stem("KEEL-FW model=gp").is_err());
        assert!(parse_wiski_stem(&ok.replace(" n=102", "")).is_err());
        assert!(parse_wiski_stem(&ok.replacen("3f000000", "3f00000z", 1)).is_err());
        assert!(parse_wiski_stem(&ok.replacen("3f000000,", "", 1)).is_err());
        assert!(parse_wiski_stem(&ok.replace("lml0=3f000000", "lml0=3f000000,3f000000")).is_err());
        assert!(parse_wiski_stem(&ok.replace("n=102", "n=103")).is_err());
        assert!(parse_wiski_stem(&ok.replace("features=2", "features=4")).is_err());
        assert!(parse_wiski_stem(&ok.replace("nodes=64", "nodes=x")).is_err());
        assert!(parse_wiski_stem(&ok.replace("rows=2", "rows=0")).is_err());
    }
}
