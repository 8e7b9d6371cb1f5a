//! The data a simplex trains on — a CSV table split and standardised as `keel bayes` does
//! ([`crate::bayes::mlp::Split`]: the same rows for the same split seed), or the authors' two
//! spirals — and the [`Spec`] saved with an exported model so `keel simplex slice` can rebuild
//! the same training rows.

use std::path::{Path, PathBuf};

use keel_core::random::{standard_normal, uniform, Xoshiro256PlusPlus};
use serde::{Deserialize, Serialize};

use crate::bayes::mlp::{Labels, Split};
use crate::data::{read_csv, Targets};
use crate::error::{Error, Result};

/// Standardised training and test rows with class labels.
#[derive(Clone, Debug)]
pub struct Problem {
    /// Input columns.
    pub d: usize,
    /// Training inputs (standardised), row-major.
    pub x_train: Vec<f64>,
    /// Training labels.
    pub y_train: Vec<usize>,
    /// Test inputs (standardised).
    pub x_test: Vec<f64>,
    /// Test labels.
    pub y_test: Vec<usize>,
    /// Class names.
    pub classes: Vec<String>,
    /// Feature names.
    pub features: Vec<String>,
    /// Input means (raw x → (x − mean)/std).
    pub mean: Vec<f64>,
    /// Input scales.
    pub std: Vec<f64>,
}

/// Where the rows came from: enough to rebuild them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Spec {
    /// `csv` or `two-spirals`.
    pub source: String,
    /// The CSV file as given (csv).
    pub data: String,
    /// Target column (csv).
    pub target: String,
    /// Rows in the file (csv), checked on rebuild.
    pub rows: usize,
    /// Test fraction (csv).
    pub test_fraction: f64,
    /// Seed of the split's permutation (csv) or of the spirals' draws.
    pub split_seed: u64,
    /// Spiral noise (two-spirals).
    pub noise: f64,
    /// Training and test points per class (two-spirals).
    pub per_class: [usize; 2],
    /// The training run's settings (informational).
    pub settings: serde_json::Value,
}

impl Problem {
    /// Training rows.
    pub fn n_train(&self) -> usize {
        self.y_train.len()
    }
}

/// A CSV table split as `keel bayes` splits it: `test_fraction` of a seeded permutation held
/// out, inputs standardised with the training rows' statistics.
///
/// # Errors
/// The file's errors; a regression target; a split leaving too few rows.
pub fn csv(
    path: &Path,
    target: &str,
    test_fraction: f64,
    split_seed: u64,
) -> Result<(Problem, Spec)> {
    let data = read_csv(path, target, true)?;
    let (classes, features, rows) = match &data.y {
        Targets::Classes { classes, .. } => (classes.clone(), data.features.clone(), data.rows()),
        Targets::Values(_) => return Err(Error::invalid("target", target, "must hold classes")),
    };
    if !(test_fraction > 0.0 && test_fraction < 1.0) {
        return Err(Error::invalid(
            "test_fraction",
            test_fraction,
            "must lie in (0, 1)",
        ));
    }
    let split = Split::new(&data, test_fraction, split_seed)?;
    let labels = |l: &Labels| match l {
        Labels::Classes(v) => v.clone(),
        Labels::Values(_) => Vec::new(),
    };
    let p = Problem {
        d: split.d,
        y_train: labels(&split.y_train),
        y_test: labels(&split.y_test),
        x_train: split.x_train,
        x_test: split.x_test,
        classes,
        features,
        mean: split.x_mean,
        std: split.x_std,
    };
    let spec = Spec {
        source: "csv".into(),
        data: path.display().to_string(),
        target: target.into(),
        rows,
        test_fraction,
        split_seed,
        noise: 0.0,
        per_class: [0, 0],
        settings: serde_json::Value::Null,
    };
    Ok((p, spec))
}

/// `n` points of the first spiral and their negation as the second class, as the reference's
/// `notebooks/two-spirals.ipynb` (`twospirals`): `t = √U · 600 · 2π/360`,
/// `x = (−1.5 cos t · t, 1.5 sin t · t) + N(0, noise²)`, class 1 = −x.
pub fn spirals(n: usize, noise: f64, rng: &mut Xoshiro256PlusPlus) -> (Vec<f64>, Vec<usize>) {
    let mut first = Vec::with_capacity(2 * n);
    for _ in 0..n {
        let t = uniform::<f64, _>(rng).sqrt() * 600.0 * (2.0 * std::f64::consts::PI) / 360.0;
        let ex: f64 = standard_normal(rng);
        let ey: f64 = standard_normal(rng);
        first.push(-1.5 * t.cos() * t + ex * noise);
        first.push(1.5 * t.sin() * t + ey * noise);
    }
    let mut x = first.clone();
    x.extend(first.iter().map(|v| -v));
    let y = (0..2 * n).map(|i| usize::from(i >= n)).collect();
    (x, y)
}

/// The two-spirals problem: `per_class[0]` training and `per_class[1]` test points per class
/// drawn from `seed` (training first); inputs are not standardised (mean 0, scale 1), as in
/// the notebook.
pub fn two_spirals(per_class: [usize; 2], noise: f64, seed: u64) -> (Problem, Spec) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let (x_train, y_train) = spirals(per_class[0], noise, &mut rng);
    let (x_test, y_test) = spirals(per_class[1], noise, &mut rng);
    let p = Problem {
        d: 2,
        x_train,
        y_train,
        x_test,
        y_test,
        classes: vec!["0".into(), "1".into()],
        features: vec!["x".into(), "y".into()],
        mean: vec![0.0; 2],
        std: vec![1.0; 2],
    };
    let spec = Spec {
        source: "two-spirals".into(),
        data: String::new(),
        target: String::new(),
        rows: 2 * (per_class[0] + per_class[1]),
        test_fraction: 0.0,
        split_seed: seed,
        noise,
        per_class,
        settings: serde_json::Value::Null,
    };
    (p, spec)
}

/// The rows a [`Spec`] names; `data` overrides the CSV path it recorded.
///
/// # Errors
/// The file's errors; a file whose row count or classes differ from the spec's.
pub fn rebuild(spec: &Spec, data: Option<&Path>) -> Result<Problem> {
    match spec.source.as_str() {
        "two-spirals" => Ok(two_spirals(spec.per_class, spec.noise, spec.split_seed).0),
        "csv" => {
            let path: PathBuf = data.map_or_else(|| PathBuf::from(&spec.data), Path::to_path_buf);
            let (p, s) = csv(&path, &spec.target, spec.test_fraction, spec.split_seed)?;
            if s.rows != spec.rows {
                return Err(Error::invalid(
                    "data",
                    path.display(),
                    format!(
                        "has {} rows; the model was trained on {} rows of {}",
                        s.rows, spec.rows, spec.data
                    ),
                ));
            }
            Ok(p)
        }
        other => Err(Error::invalid(
            "data source",
            other,
            "expected csv or two-spirals",
        )),
    }
}
