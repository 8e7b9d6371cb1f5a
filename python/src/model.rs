//! `keel.load`: an exported model read by the core's own loader — `Mlp`, `Emlp`, `Bma`,
//! `Policy`, `ValueModel` (`keel_core::nn`, `keel_core::rl`), the code the firmware runs — and
//! evaluated row by row on numpy arrays. Each Python object owns the file's bytes; the core's
//! model borrows its weights from them in place, as it borrows them from flash on a controller.

use std::collections::BTreeMap;

use keel_core::io::SafeTensors;
use ouroboros::self_referencing;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::array::{input, map_rows, rows, Input, Scalar};
use crate::dynamics::LearnedDynamics;
use crate::error::{core, guard};

/// Most tensors a model file may hold (an EMLP of 16 blocks with 8 bilinear parts each holds
/// fewer than 16 · (3 + 3 · 8) + 5).
pub const MAX_TENSORS: usize = 512;
/// Most layers of an MLP, policy, value network or model average.
pub const MAX_LAYERS: usize = 16;
/// Most EMLP blocks, and bilinear parts per block.
pub const MAX_BLOCKS: usize = 16;
pub const MAX_PARTS: usize = 8;

type CoreMlp<'a> = keel_core::nn::Mlp<'a, MAX_LAYERS>;
type CoreEmlp<'a> = keel_core::nn::Emlp<'a, MAX_BLOCKS, MAX_PARTS>;
type CoreBma<'a> = keel_core::nn::Bma<'a, MAX_LAYERS>;
type CorePolicy<'a> = keel_core::rl::Policy<'a, MAX_LAYERS>;
type CoreValue<'a> = keel_core::rl::ValueModel<'a, MAX_LAYERS>;

/// The file's `__metadata__` as strings (escapes decoded).
fn metadata(st: &SafeTensors<'_, MAX_TENSORS>) -> BTreeMap<String, String> {
    st.metadata_entries()
        .map(|(k, v)| (k.chars().collect(), v.chars().collect()))
        .collect()
}

/// Declares a Python class owning a file's bytes and the core model borrowing them.
macro_rules! owned_model {
    ($cell:ident, $core:ident, $load:expr) => {
        #[self_referencing]
        pub(super) struct $cell {
            pub(super) bytes: Vec<u8>,
            #[borrows(bytes)]
            #[covariant]
            pub(super) model: $core<'this>,
        }

        impl $cell {
            pub(super) fn load(bytes: Vec<u8>) -> Result<Self, keel_core::Error> {
                $cell::try_new(bytes, |b: &Vec<u8>| {
                    let st = SafeTensors::<MAX_TENSORS>::parse(b)?;
                    $load(&st)
                })
            }
        }
    };
}

/// The models, each owning its file's bytes (read only through the model borrowing them).
#[allow(dead_code)]
mod cells {
    use super::*;
    owned_model!(MlpCell, CoreMlp, |st| CoreMlp::from_safetensors_of_kind(
        st, "mlp"
    ));
    owned_model!(EmlpCell, CoreEmlp, CoreEmlp::from_safetensors);
    owned_model!(BmaCell, CoreBma, CoreBma::from_safetensors);
    owned_model!(PolicyCell, CorePolicy, CorePolicy::from_safetensors);
    owned_model!(ValueCell, CoreValue, CoreValue::from_safetensors);
}
use cells::{BmaCell, EmlpCell, MlpCell, PolicyCell, ValueCell};

/// What every loaded model carries besides its weights: where it came from and its metadata.
#[derive(Clone, Debug)]
struct Source {
    name: String,
    metadata: BTreeMap<String, String>,
}

impl Source {
    fn kind(&self) -> &str {
        self.metadata.get("keel.kind").map_or("", String::as_str)
    }

    fn repr(&self, class: &str, shape: String) -> String {
        format!("<keel.{class} {shape} from {}>", self.name)
    }

    fn error(&self, e: keel_core::Error) -> PyErr {
        core(&self.name, e)
    }
}

/// Evaluates the argument `$x` (named `stringify!($x)` in errors) row by row with
/// `eval(row, out, scratch)` in the array's own precision.
macro_rules! call_rows {
    ($py:expr, $x:ident, $width:expr, $out:expr, $scratch:expr, $takes:expr, |$row:ident, $o:ident, $s:ident| $body:expr) => {{
        fn run<'py, T: Scalar>(
            py: Python<'py>,
            x: &numpy::PyReadonlyArrayDyn<'py, T>,
            width: usize,
            out: usize,
            scratch: usize,
            (name, takes): (&str, &str),
            mut eval: impl FnMut(&[T], &mut [T], &mut [T]) -> PyResult<()>,
        ) -> PyResult<Bound<'py, PyAny>> {
            let r = rows(x, width, name, takes)?;
            let mut s = vec![T::ZERO; scratch];
            map_rows(py, &r, width, out, |_, row, o| eval(row, o, &mut s))
        }
        let name = stringify!($x);
        match input($x, name)? {
            Input::F32(a) => run(
                $py,
                &a,
                $width,
                $out,
                $scratch,
                (name, $takes),
                |$row, $o, $s| $body,
            ),
            Input::F64(a) => run(
                $py,
                &a,
                $width,
                $out,
                $scratch,
                (name, $takes),
                |$row, $o, $s| $body,
            ),
        }
    }};
}

/// A multilayer perceptron (`keel.kind = "mlp"`, `keel fit --export`), evaluated by
/// `keel_core::nn::Mlp`.
#[pyclass(module = "keel", frozen)]
pub struct Mlp {
    cell: MlpCell,
    source: Source,
}

#[pymethods]
impl Mlp {
    /// The network's head on `x`: logits (classification), regression outputs (targets
    /// un-standardised), or means then scales σ (a Gaussian head). `x`: float32 or float64,
    /// 1-D (one row of `inputs` values) or 2-D (rows × `inputs`), borrowed without a copy when
    /// C-contiguous (copied once otherwise); raw inputs — the file's standardisation is applied.
    /// Returns an array of the same dtype, `outputs` wide.
    fn __call__<'py>(&self, py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        guard(|| {
            let m = self.cell.borrow_model();
            let err = |e| self.source.error(e);
            call_rows!(
                py,
                x,
                m.inputs(),
                m.outputs(),
                m.forward_scratch_len(),
                "the model takes",
                |row, o, s| m.forward(row, o, s).map_err(err)
            )
        })
    }

    /// The predicted class of each row (a classifier's largest logit), as int64.
    fn predict_class<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        guard(|| {
            let m = self.cell.borrow_model();
            let classes: Vec<i64> = match input(x, "x")? {
                Input::F32(a) => classes_of(
                    &rows(&a, m.inputs(), "x", "the model takes")?,
                    m,
                    &self.source,
                )?,
                Input::F64(a) => classes_of(
                    &rows(&a, m.inputs(), "x", "the model takes")?,
                    m,
                    &self.source,
                )?,
            };
            Ok(numpy::PyArray1::from_vec(py, classes).into_any())
        })
    }

    /// Inputs per row.
    #[getter]
    fn inputs(&self) -> usize {
        self.cell.borrow_model().inputs()
    }

    /// Outputs per row.
    #[getter]
    fn outputs(&self) -> usize {
        self.cell.borrow_model().outputs()
    }

    /// The file's `__metadata__` (`keel.kind`, `keel.config` …) as strings.
    #[getter]
    fn metadata(&self) -> BTreeMap<String, String> {
        self.source.metadata.clone()
    }

    /// `keel.kind`.
    #[getter]
    fn kind(&self) -> String {
        self.source.kind().to_string()
    }

    fn __repr__(&self) -> String {
        let m = self.cell.borrow_model();
        self.source
            .repr("Mlp", format!("{} → {}", m.inputs(), m.outputs()))
    }
}

fn classes_of<T: Scalar>(
    r: &crate::array::Rows<'_, T>,
    m: &CoreMlp<'_>,
    source: &Source,
) -> PyResult<Vec<i64>> {
    let width = m.inputs();
    let mut scratch = vec![T::ZERO; m.forward_scratch_len()];
    (0..r.rows)
        .map(|i| {
            m.predict_class(&r.data[i * width..(i + 1) * width], &mut scratch)
                .map(|c| c as i64)
                .map_err(|e| source.error(e))
        })
        .collect()
}

/// An equivariant MLP (`keel.kind = "emlp"`, `keel emlp train --export`), evaluated by
/// `keel_core::nn::Emlp`.
#[pyclass(module = "keel", frozen)]
pub struct Emlp {
    cell: EmlpCell,
    source: Source,
}

#[pymethods]
impl Emlp {
    /// The network on `x` (float32/float64, 1-D or rows × `inputs`; borrowed when
    /// C-contiguous, copied once otherwise); an array of the same dtype, `outputs` wide.
    fn __call__<'py>(&self, py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        guard(|| {
            let m = self.cell.borrow_model();
            let err = |e| self.source.error(e);
            call_rows!(
                py,
                x,
                m.inputs(),
                m.outputs(),
                m.scratch_len(),
                "the model takes",
                |row, o, s| m.forward(row, o, s).map_err(err)
            )
        })
    }

    /// Inputs per row.
    #[getter]
    fn inputs(&self) -> usize {
        self.cell.borrow_model().inputs()
    }

    /// Outputs per row.
    #[getter]
    fn outputs(&self) -> usize {
        self.cell.borrow_model().outputs()
    }

    /// Equivariant blocks.
    #[getter]
    fn blocks(&self) -> usize {
        self.cell.borrow_model().blocks()
    }

    /// The file's `__metadata__` as strings.
    #[getter]
    fn metadata(&self) -> BTreeMap<String, String> {
        self.source.metadata.clone()
    }

    /// `keel.kind`.
    #[getter]
    fn kind(&self) -> String {
        self.source.kind().to_string()
    }

    fn __repr__(&self) -> String {
        let m = self.cell.borrow_model();
        self.source.repr(
            "Emlp",
            format!("{} → {}, {} blocks", m.inputs(), m.outputs(), m.blocks()),
        )
    }
}

/// A Bayesian model average (`keel.kind = "bma"`, `keel bayes export`): class probabilities
/// averaged over the stored samples by `keel_core::nn::Bma`.
#[pyclass(module = "keel", frozen)]
pub struct Bma {
    cell: BmaCell,
    source: Source,
}

#[pymethods]
impl Bma {
    /// The averaged class probabilities `(1/S) Σ_s softmax(f_s(x))` of each row of `x`
    /// (float32/float64, 1-D or rows × `inputs`, raw inputs; borrowed when C-contiguous).
    fn __call__<'py>(&self, py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        guard(|| {
            let m = self.cell.borrow_model();
            let err = |e| self.source.error(e);
            call_rows!(
                py,
                x,
                m.inputs(),
                m.classes(),
                m.scratch_len(),
                "the model takes",
                |row, o, s| m.predict(row, o, s).map_err(err)
            )
        })
    }

    /// Inputs per row.
    #[getter]
    fn inputs(&self) -> usize {
        self.cell.borrow_model().inputs()
    }

    /// Classes (outputs per row).
    #[getter]
    fn outputs(&self) -> usize {
        self.cell.borrow_model().classes()
    }

    /// Samples averaged.
    #[getter]
    fn count(&self) -> usize {
        self.cell.borrow_model().count()
    }

    /// The file's `__metadata__` as strings.
    #[getter]
    fn metadata(&self) -> BTreeMap<String, String> {
        self.source.metadata.clone()
    }

    /// `keel.kind`.
    #[getter]
    fn kind(&self) -> String {
        self.source.kind().to_string()
    }

    fn __repr__(&self) -> String {
        let m = self.cell.borrow_model();
        self.source.repr(
            "Bma",
            format!(
                "{} → {} classes, {} samples",
                m.inputs(),
                m.classes(),
                m.count()
            ),
        )
    }
}

/// A SAC-SVG(H) policy (`keel.kind = "policy"`, `keel rl train --export`), evaluated by
/// `keel_core::rl::Policy`.
#[pyclass(module = "keel", frozen)]
pub struct Policy {
    cell: PolicyCell,
    source: Source,
}

#[pymethods]
impl Policy {
    /// The deterministic action `tanh μ(obs)` in [−1, 1] for each row of `obs`
    /// (float32/float64, 1-D or rows × `observations`; borrowed when C-contiguous).
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        obs: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        guard(|| {
            let m = self.cell.borrow_model();
            let err = |e| self.source.error(e);
            call_rows!(
                py,
                obs,
                m.observations(),
                m.actions(),
                m.scratch_len(),
                "the policy takes",
                |row, o, s| m.act(row, o, s).map_err(err)
            )
        })
    }

    /// The actuator commands of normalised actions (each row `actions` wide, in [−1, 1]).
    fn to_actuator<'py>(
        &self,
        py: Python<'py>,
        action: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        guard(|| {
            let m = self.cell.borrow_model();
            let err = |e| self.source.error(e);
            call_rows!(
                py,
                action,
                m.actions(),
                m.actions(),
                0,
                "the number of actions is",
                |row, o, _s| m.to_actuator(row, o).map_err(err)
            )
        })
    }

    /// Observations per row.
    #[getter]
    fn observations(&self) -> usize {
        self.cell.borrow_model().observations()
    }

    /// Actions per row.
    #[getter]
    fn actions(&self) -> usize {
        self.cell.borrow_model().actions()
    }

    /// The actuator limits `[(low, high)]`, one pair per action.
    #[getter]
    fn limits(&self) -> Vec<(f64, f64)> {
        let m = self.cell.borrow_model();
        (0..m.actions()).filter_map(|i| m.limits(i)).collect()
    }

    /// The file's `__metadata__` as strings.
    #[getter]
    fn metadata(&self) -> BTreeMap<String, String> {
        self.source.metadata.clone()
    }

    /// `keel.kind`.
    #[getter]
    fn kind(&self) -> String {
        self.source.kind().to_string()
    }

    fn __repr__(&self) -> String {
        let m = self.cell.borrow_model();
        self.source.repr(
            "Policy",
            format!(
                "{} observations → {} actions",
                m.observations(),
                m.actions()
            ),
        )
    }
}

/// The short-horizon model-based value estimate `V̂_H` (`keel.kind = "rl-value"`,
/// `keel rl train --export-value`), evaluated by `keel_core::rl::ValueModel`.
#[pyclass(module = "keel", frozen)]
pub struct ValueModel {
    cell: ValueCell,
    source: Source,
}

#[pymethods]
impl ValueModel {
    /// `V̂_H(obs)` under the deterministic policy for each row of `obs` (float32/float64, 1-D
    /// or rows × `observations`; borrowed when C-contiguous): a scalar for one row, else one
    /// value per row.
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        obs: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        guard(|| match input(obs, "obs")? {
            Input::F32(a) => values(py, &a, self.cell.borrow_model(), &self.source),
            Input::F64(a) => values(py, &a, self.cell.borrow_model(), &self.source),
        })
    }

    /// Observations per row.
    #[getter]
    fn observations(&self) -> usize {
        self.cell.borrow_model().observations()
    }

    /// Actions of the policy inside.
    #[getter]
    fn actions(&self) -> usize {
        self.cell.borrow_model().actions()
    }

    /// The model rollout's horizon H.
    #[getter]
    fn horizon(&self) -> usize {
        self.cell.borrow_model().horizon()
    }

    /// The discount γ.
    #[getter]
    fn gamma(&self) -> f64 {
        self.cell.borrow_model().gamma()
    }

    /// The file's `__metadata__` as strings.
    #[getter]
    fn metadata(&self) -> BTreeMap<String, String> {
        self.source.metadata.clone()
    }

    /// `keel.kind`.
    #[getter]
    fn kind(&self) -> String {
        self.source.kind().to_string()
    }

    fn __repr__(&self) -> String {
        let m = self.cell.borrow_model();
        self.source.repr(
            "ValueModel",
            format!("{} observations, horizon {}", m.observations(), m.horizon()),
        )
    }
}

/// `V̂_H` of each row of `obs`: a float for one row, an array for rows.
fn values<'py, T: Scalar>(
    py: Python<'py>,
    obs: &numpy::PyReadonlyArrayDyn<'py, T>,
    m: &CoreValue<'_>,
    source: &Source,
) -> PyResult<Bound<'py, PyAny>> {
    let width = m.observations();
    let r = rows(obs, width, "obs", "the value model takes")?;
    let mut scratch = vec![T::ZERO; m.scratch_len()];
    let v = (0..r.rows)
        .map(|i| {
            m.value(&r.data[i * width..(i + 1) * width], &mut scratch)
                .map_err(|e| source.error(e))
        })
        .collect::<PyResult<Vec<T>>>()?;
    if r.single {
        Ok(pyo3::types::PyFloat::new(py, v[0].into()).into_any())
    } else {
        Ok(numpy::PyArray1::from_vec(py, v).into_any())
    }
}

/// The kinds `keel.load` reads, in the order its error lists them.
const KINDS: &str = "mlp, emlp, bma, policy, rl-value, chnn, clnn";

/// The Python object for a model file's bytes, by its `keel.kind`.
fn from_bytes(py: Python<'_>, bytes: Vec<u8>, name: String) -> PyResult<Py<PyAny>> {
    let (kind, meta) = {
        let st = SafeTensors::<MAX_TENSORS>::parse(&bytes).map_err(|e| core(&name, e))?;
        let meta = metadata(&st);
        let kind = meta.get("keel.kind").cloned().ok_or_else(|| {
            PyValueError::new_err(format!(
                "{name}: no `keel.kind` metadata: not a model Keel exported (kinds: {KINDS})"
            ))
        })?;
        (kind, meta)
    };
    let source = Source {
        name: name.clone(),
        metadata: meta,
    };
    let err = |e| core(&name, e);
    Ok(match kind.as_str() {
        "mlp" => Py::new(py, Mlp { cell: MlpCell::load(bytes).map_err(err)?, source })?.into_any(),
        "emlp" => Py::new(py, Emlp { cell: EmlpCell::load(bytes).map_err(err)?, source })?.into_any(),
        "bma" => Py::new(py, Bma { cell: BmaCell::load(bytes).map_err(err)?, source })?.into_any(),
        "policy" => Py::new(py, Policy { cell: PolicyCell::load(bytes).map_err(err)?, source })?.into_any(),
        "rl-value" => Py::new(py, ValueModel { cell: ValueCell::load(bytes).map_err(err)?, source })?.into_any(),
        "chnn" | "clnn" => Py::new(py, LearnedDynamics::load(bytes, source.name, source.metadata)?)?.into_any(),
        "node" | "hnn" | "delan" => {
            return Err(PyValueError::new_err(format!(
                "{name}: a `{kind}` model (generalised coordinates) runs only on the host; the core \
                 loads the constrained models, chnn and clnn (evaluate it with `keel.chnn.eval(model=...)`)"
            )))
        }
        other => {
            return Err(PyValueError::new_err(format!(
                "{name}: `keel.kind` is `{other}`, not a model the core evaluates (kinds: {KINDS})"
            )))
        }
    })
}

/// Reads an exported model with the core's loader for its `keel.kind`: `Mlp`, `Emlp`, `Bma`,
/// `Policy`, `ValueModel` or `LearnedDynamics` (chnn/clnn). Raises `OSError` if the file cannot
/// be read and `ValueError` for a file that is not such a model, naming what is wrong.
#[pyfunction]
#[pyo3(signature = (path))]
pub fn load(py: Python<'_>, path: std::path::PathBuf) -> PyResult<Py<PyAny>> {
    guard(|| {
        let bytes = std::fs::read(&path).map_err(|e| {
            use pyo3::exceptions::{
                PyFileNotFoundError, PyIsADirectoryError, PyOSError, PyPermissionError,
            };
            let msg = format!("{}: {e}", path.display());
            match e.kind() {
                std::io::ErrorKind::NotFound => PyFileNotFoundError::new_err(msg),
                std::io::ErrorKind::PermissionDenied => PyPermissionError::new_err(msg),
                std::io::ErrorKind::IsADirectory => PyIsADirectoryError::new_err(msg),
                _ => PyOSError::new_err(msg),
            }
        })?;
        from_bytes(py, bytes, path.display().to_string())
    })
}

/// `load` from the bytes of a file (copied once into the returned object).
#[pyfunction]
#[pyo3(signature = (data, name = "<bytes>".to_string()))]
pub fn load_bytes(py: Python<'_>, data: Vec<u8>, name: String) -> PyResult<Py<PyAny>> {
    guard(|| from_bytes(py, data, name))
}
