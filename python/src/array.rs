//! numpy arrays in and out: a model's input is borrowed without a copy when it is C-contiguous
//! `float32` or `float64` (a strided view is copied once), checked for shape and finiteness at
//! the boundary, and the result comes back as a new array of the same dtype.

use numpy::ndarray::IxDyn;
use numpy::{
    Element, PyArray1, PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

/// The scalars a model runs in: the core is generic over both.
pub trait Scalar: Element + keel_core::Real + Copy + Into<f64> {
    /// `v` in this precision (rounded to nearest for `f32`).
    fn from64(v: f64) -> Self;
}

impl Scalar for f32 {
    fn from64(v: f64) -> Self {
        v as f32
    }
}

impl Scalar for f64 {
    fn from64(v: f64) -> Self {
        v
    }
}

/// An input array of either precision.
pub enum Input<'py> {
    F32(PyReadonlyArrayDyn<'py, f32>),
    F64(PyReadonlyArrayDyn<'py, f64>),
}

/// `x` as a float32 or float64 array; any other type or dtype is a `TypeError` naming it.
pub fn input<'py>(x: &Bound<'py, PyAny>, what: &str) -> PyResult<Input<'py>> {
    if let Ok(a) = x.cast::<PyArrayDyn<f64>>() {
        return Ok(Input::F64(a.try_readonly()?));
    }
    if let Ok(a) = x.cast::<PyArrayDyn<f32>>() {
        return Ok(Input::F32(a.try_readonly()?));
    }
    let kind = match x.cast::<numpy::PyUntypedArray>() {
        Ok(a) => format!("an array of dtype {}", a.dtype().str()?),
        Err(_) => format!("a {}", x.get_type().name()?),
    };
    Err(PyTypeError::new_err(format!(
        "{what} must be a numpy array of dtype float32 or float64, not {kind} \
         (convert with np.asarray({what}, dtype=np.float64))"
    )))
}

/// Rows of an input: `rows × width` scalars, row-major, and whether the caller gave one row as
/// a 1-D array.
pub struct Rows<'a, T: Clone> {
    pub data: std::borrow::Cow<'a, [T]>,
    pub rows: usize,
    pub single: bool,
}

/// The rows of `x` (1-D: one row; 2-D: one per row), each `width` wide and finite; `what` names
/// the argument and `takes` what its width is, in errors.
pub fn rows<'a, T: Scalar>(
    x: &'a PyReadonlyArrayDyn<'_, T>,
    width: usize,
    what: &str,
    takes: &str,
) -> PyResult<Rows<'a, T>> {
    let shape = x.shape().to_vec();
    let (rows, got, single) = match shape.as_slice() {
        [w] => (1, *w, true),
        [n, w] => (*n, *w, false),
        _ => {
            return Err(PyValueError::new_err(format!(
                "{what} must be 1-D (one row) or 2-D (rows × {width}), not of shape {shape:?}"
            )))
        }
    };
    if got != width {
        return Err(PyValueError::new_err(format!(
            "{what} has {got} columns (shape {shape:?}); {takes} {width}"
        )));
    }
    // Borrowed only in C order: numpy calls a Fortran-order array contiguous too, and its
    // memory is column-major.
    let data = match x.as_slice() {
        Ok(s) if x.is_c_contiguous() => std::borrow::Cow::Borrowed(s),
        _ => std::borrow::Cow::Owned(x.as_array().iter().copied().collect()),
    };
    if let Some(i) = data.iter().position(|v| !(*v).into().is_finite()) {
        let v: f64 = data[i].into();
        let at = if single {
            format!("[{i}]")
        } else {
            format!("[{}, {}]", i / width, i % width)
        };
        return Err(PyValueError::new_err(format!(
            "{what}{at} is {v}: inputs must be finite"
        )));
    }
    Ok(Rows { data, rows, single })
}

/// The values of a 1-D array as `f64`, each finite; `what` names it in errors.
pub fn values(x: &Input<'_>, what: &str) -> PyResult<Vec<f64>> {
    fn of<T: Scalar>(a: &PyReadonlyArrayDyn<'_, T>, what: &str) -> PyResult<Vec<f64>> {
        if a.ndim() != 1 {
            return Err(PyValueError::new_err(format!(
                "{what} must be 1-D, not of shape {:?}",
                a.shape()
            )));
        }
        let v: Vec<f64> = a.as_array().iter().map(|&v| v.into()).collect();
        if let Some(i) = v.iter().position(|v| !v.is_finite()) {
            return Err(PyValueError::new_err(format!(
                "{what}[{i}] is {}: values must be finite",
                v[i]
            )));
        }
        Ok(v)
    }
    match x {
        Input::F32(a) => of(a, what),
        Input::F64(a) => of(a, what),
    }
}

/// `f` applied to each row of `rows` (`out` scalars each) as a new array: 1-D for a single row,
/// else `rows × out`.
pub fn map_rows<'py, T: Scalar>(
    py: Python<'py>,
    rows: &Rows<'_, T>,
    width: usize,
    out: usize,
    mut f: impl FnMut(usize, &[T], &mut [T]) -> PyResult<()>,
) -> PyResult<Bound<'py, PyAny>> {
    let mut result = vec![T::ZERO; rows.rows * out];
    for r in 0..rows.rows {
        f(
            r,
            &rows.data[r * width..(r + 1) * width],
            &mut result[r * out..(r + 1) * out],
        )?;
    }
    let shape: Vec<usize> = if rows.single {
        vec![out]
    } else {
        vec![rows.rows, out]
    };
    Ok(PyArray1::from_vec(py, result)
        .reshape(IxDyn(&shape))?
        .into_any())
}
