//! WISKI models exported for the controller (`keel.kind = "wiski"`), in the layout
//! `keel_core::gp::WiskiFile` reads (its module doc is the format's reference): the grid, the
//! kernel and noise, the sufficient statistics of every point absorbed, and the learned stem
//! frozen as `z = tanh(W x + c)` with the input scaling folded in, so the controller feeds raw
//! rows. Targets are in the stream's standardised units; `target.scale` holds the mean and
//! standard deviation to undo it. All tensors are little-endian `F64`.

use std::collections::BTreeMap;

use keel_core::gp::{Convention, Family};
use keel_core::io::SafeTensors;

use crate::error::{Error, Result};
use crate::gp::{GridSpec, Hyper};

/// Everything a `wiski` file holds.
#[derive(Clone, Debug, PartialEq)]
pub struct WiskiExport {
    /// The grid (one entry per feature dimension).
    pub grid: GridSpec,
    /// Kernel and noise.
    pub hyper: Hyper,
    /// `A` (`m × m`, row-major).
    pub precision: Vec<f64>,
    /// `b`.
    pub b: Vec<f64>,
    /// `c_yy`, `log|D|`, `n`.
    pub scalars: (f64, f64, u64),
    /// The stem on raw inputs: `W` (`D × P`, row-major) and `c`.
    pub stem: (Vec<f64>, Vec<f64>),
    /// The target's mean and standard deviation.
    pub target: (f64, f64),
}

fn f64_bytes(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The file's bytes, read back through the core's loader before they are returned.
///
/// # Errors
/// [`Error::InvalidInput`] for inconsistent sizes; [`Error::Core`] if the core refuses the file.
pub fn wiski_bytes(e: &WiskiExport) -> Result<Vec<u8>> {
    let d = e.grid.size.len();
    let m = e.grid.nodes();
    let p = e.stem.0.len() / d.max(1);
    if e.precision.len() != m * m
        || e.b.len() != m
        || e.stem.1.len() != d
        || p * d != e.stem.0.len()
    {
        return Err(Error::invalid(
            "export",
            format!("{m} nodes, {d} features"),
            "the statistics or the stem do not match the grid",
        ));
    }
    let mut grid = e.grid.lo.clone();
    grid.extend(&e.grid.hi);
    grid.extend(e.grid.size.iter().map(|&g| g as f64));
    let mut kernel = vec![e.hyper.outputscale, e.hyper.noise];
    kernel.extend(&e.hyper.lengthscale);
    let (c_yy, log_det_d, n) = e.scalars;
    let tensors: Vec<(String, &'static str, Vec<usize>, Vec<u8>)> = vec![
        ("grid".into(), "F64", vec![3, d], f64_bytes(&grid)),
        ("kernel".into(), "F64", vec![d + 2], f64_bytes(&kernel)),
        (
            "statistics.precision".into(),
            "F64",
            vec![m, m],
            f64_bytes(&e.precision),
        ),
        ("statistics.b".into(), "F64", vec![m], f64_bytes(&e.b)),
        (
            "statistics.scalars".into(),
            "F64",
            vec![3],
            f64_bytes(&[c_yy, log_det_d, n as f64]),
        ),
        (
            "stem.weight".into(),
            "F64",
            vec![d, p],
            f64_bytes(&e.stem.0),
        ),
        ("stem.bias".into(), "F64", vec![d], f64_bytes(&e.stem.1)),
        (
            "target.scale".into(),
            "F64",
            vec![2],
            f64_bytes(&[e.target.0, e.target.1]),
        ),
    ];
    let family = match e.hyper.family {
        Family::Rbf => "rbf",
        Family::Matern12 => "matern12",
        Family::Matern32 => "matern32",
        Family::Matern52 => "matern52",
    };
    let convention = match e.grid.convention {
        Convention::Extended => "extended",
        Convention::Endpoints => "endpoints",
    };
    let metadata: BTreeMap<String, String> = [
        ("keel.kind", "wiski"),
        ("keel.kernel", family),
        ("keel.grid", convention),
        ("keel.clamp", if e.grid.clamp { "true" } else { "false" }),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let bytes = super::safetensors_bytes_typed(&tensors, &metadata);
    let st = SafeTensors::<16>::parse(&bytes).map_err(Error::core("exported WISKI file"))?;
    keel_core::gp::WiskiFile::from_safetensors(&st).map_err(Error::core("exported WISKI file"))?;
    Ok(bytes)
}
