//! Reading an initial state from a JSON file and checking it against the constraints.

use keel_core::dynamics::{Mechanics, Phase, Potential, ProjectParams};
use keel_core::integrate::StateVector;
use keel_core::Real;
use serde_json::Value;

use super::config::InitSpec;
use crate::error::{Error, Result};

/// Converts a checked-length slice to an array of `T`.
pub(crate) fn to_array<T: Real, const K: usize>(v: &[f64]) -> [T; K] {
    core::array::from_fn(|i| T::from_f64(v[i]))
}

/// Reads `{"x": …, "v": …}` (Cartesian positions and velocities, each a flat list of `N·D`
/// numbers or `N` lists of `D`) from `init.file`. A `keel simulate --json` output is accepted
/// too: its last row is used. The state must lie on the constraint manifold within
/// `init.manifold_tol` unless `init.project` is set, in which case it is projected.
///
/// # Errors
/// [`Error::Io`], [`Error::Malformed`] naming the file and the problem.
pub(crate) fn load_state<
    T: Real,
    const N: usize,
    const D: usize,
    const C: usize,
    P: Potential<T, N, D>,
>(
    init: &InitSpec,
    m: &Mechanics<T, N, D, C, P>,
) -> Result<Phase<T, N, D>> {
    let Some(path) = init.file.as_deref() else {
        return Err(Error::invalid("init", "", "no file given"));
    };
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_state(&text, path, init, m)
}

/// As `load_state` (what `--init FILE` reads), from the file's text: `path` names it in
/// errors; `init.file` is not read.
///
/// # Errors
/// [`Error::Malformed`] naming the file and the problem; [`Error::Core`] if projecting fails.
pub fn parse_state<
    T: Real,
    const N: usize,
    const D: usize,
    const C: usize,
    P: Potential<T, N, D>,
>(
    text: &str,
    path: &std::path::Path,
    init: &InitSpec,
    m: &Mechanics<T, N, D, C, P>,
) -> Result<Phase<T, N, D>> {
    let bad = |reason: String| Error::Malformed {
        path: path.to_path_buf(),
        reason,
    };
    let doc: Value = serde_json::from_str(text).map_err(|e| bad(format!("not valid JSON: {e}")))?;
    let is_trajectory = doc.get("t").is_some();
    let field = |key: &str| -> Result<Vec<f64>> {
        let mut v = doc
            .get(key)
            .ok_or_else(|| bad(format!("missing \"{key}\"")))?;
        if is_trajectory {
            v = v
                .as_array()
                .and_then(|rows| rows.last())
                .ok_or_else(|| bad(format!("\"{key}\" has no rows")))?;
        }
        let flat = flatten(v).ok_or_else(|| {
            bad(format!(
                "\"{key}\" must be a list of numbers or of lists of numbers"
            ))
        })?;
        if flat.len() != N * D {
            return Err(bad(format!(
                "\"{key}\" has {} numbers; this system needs {N} nodes × {D} = {}",
                flat.len(),
                N * D
            )));
        }
        if let Some(i) = flat.iter().position(|v| !v.is_finite()) {
            return Err(bad(format!("\"{key}\"[{i}] is not finite")));
        }
        Ok(flat)
    };
    let (x, v) = (field("x")?, field("v")?);
    let mut z = Phase::<T, N, D>::zeros();
    for (o, i) in z.as_mut_slice().iter_mut().zip(x.iter().chain(&v)) {
        *o = T::from_f64(*i);
    }
    let violation = m.violation(&m.from_velocity_form(&z));
    let worst = violation.max().as_f64();
    if worst > init.manifold_tol {
        if !init.project {
            return Err(bad(format!(
                "state is off the constraint manifold: max |Φ| = {:.3e}, max |Φ̇| = {:.3e} > `manifold_tol` {:e} \
                 (set `project` to project it)",
                violation.position.as_f64(),
                violation.velocity.as_f64(),
                init.manifold_tol
            )));
        }
        m.project(&mut z, ProjectParams::default())
            .map_err(Error::core(format!(
                "projecting {} onto the constraints",
                path.display()
            )))?;
    }
    Ok(m.from_velocity_form(&z))
}

fn flatten(v: &Value) -> Option<Vec<f64>> {
    let mut out = Vec::new();
    for item in v.as_array()? {
        match item {
            Value::Number(n) => out.push(n.as_f64()?),
            Value::Array(row) => {
                for e in row {
                    out.push(e.as_f64()?);
                }
            }
            _ => return None,
        }
    }
    Some(out)
}
