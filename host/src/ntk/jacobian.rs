//! The Jacobian of a trained network's outputs with respect to its parameters, used only through
//! its products (Maddox, Tang, Moreno, Wilson & Damianou, "Fast Adaptation with Linearized
//! Neural Networks", AISTATS 2021; reference code `finite_ntk/lazy/jacobian.py`, `ntk.py`,
//! `fvp.py`, `fvp_reg.py`): `J u` by forward mode, `Jᵀ v` by reverse mode, both batched over the
//! data, so the `n × P` matrix is never formed.
//!
//! Vectors in parameter space are flat `f64` slices in the order of the network's [`Params`]
//! (each tensor row-major); vectors in function space are the selected outputs of the rows of
//! `X`, row after row (`n·k` entries for `k` selected outputs).

use keel_engine::autodiff::{grad, jvp, with_recording};
use keel_engine::params::Params;
use keel_engine::{DType, Tensor};

use crate::error::{Error, Result};

/// A network the linearization differentiates: its outputs `[n, k]` for inputs `[n, d]` under
/// the parameters `params` (which may be recorded variables).
pub trait Network {
    /// The forward pass.
    ///
    /// # Errors
    /// Engine errors (a wrong input width).
    fn forward(&self, params: &Params, x: &Tensor) -> Result<Tensor>;
}

impl Network for keel_engine::nn::Mlp {
    fn forward(&self, params: &Params, x: &Tensor) -> Result<Tensor> {
        Ok(keel_engine::nn::Mlp::forward(self, params, x)?)
    }
}

/// Which of the network's outputs the linearization sees: all of them, or one (the reference's
/// `used_dims`, e.g. the mean of a heteroscedastic network's `[mean, scale]` head).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outputs {
    /// Every output column.
    All,
    /// One output column.
    One(usize),
}

/// The flat length of a parameter set.
pub fn param_count(params: &Params) -> usize {
    params.values().iter().map(Tensor::numel).sum()
}

/// The parameters as one flat `f64` vector.
///
/// # Errors
/// Engine errors (a device read).
pub fn flatten(tensors: &[Tensor]) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(tensors.iter().map(Tensor::numel).sum());
    for t in tensors {
        out.extend(t.to_vec_f64()?);
    }
    Ok(out)
}

/// Splits a flat vector into tensors shaped like `like`'s values, in `dtype`.
///
/// # Errors
/// [`Error::InvalidInput`] if the length differs from the parameter count.
pub fn unflatten(flat: &[f64], like: &Params, dtype: DType) -> Result<Vec<Tensor>> {
    let p = param_count(like);
    if flat.len() != p {
        return Err(Error::invalid(
            "parameter vector",
            flat.len(),
            format!("the network has {p} parameters"),
        ));
    }
    let mut at = 0;
    like.values()
        .iter()
        .map(|t| {
            let n = t.numel();
            let piece = Tensor::from_f64s(&flat[at..at + n], t.dims(), dtype)?;
            at += n;
            Ok(piece.to_device(t.device())?)
        })
        .collect()
}

/// Adds per-parameter gradients (`None`: zero) to the flat `acc`, laid out as `like`.
fn accumulate(acc: &mut [f64], grads: &[Option<Tensor>], like: &[Tensor]) -> Result<()> {
    let mut at = 0;
    for (g, p) in grads.iter().zip(like) {
        let n = p.numel();
        if let Some(g) = g {
            for (a, b) in acc[at..at + n].iter_mut().zip(g.to_vec_f64()?) {
                *a += b;
            }
        }
        at += n;
    }
    Ok(())
}

/// `θ̂ + s·d` as a new parameter set (detached), for `d` flat.
fn shifted(params: &Params, d: &[f64], s: f64) -> Result<Params> {
    let dtype = params.values()[0].dtype();
    let step = unflatten(d, params, dtype)?;
    let mut out = Params::new();
    for ((name, t), dt) in params.names().iter().zip(params.values()).zip(&step) {
        out.insert(name.clone(), t.detach().add(&dt.mul_scalar(s)?)?)?;
    }
    Ok(out)
}

/// The Jacobian `J = ∂f(X; θ)/∂θ` at the trained parameters `θ̂`, as an operator.
///
/// Products run over the rows of `X` in chunks of [`Jacobian::chunk`] rows, so memory stays
/// bounded by one chunk's activations; every product runs the forward pass again (nothing is
/// kept between products).
pub struct Jacobian<'a, N: Network> {
    net: &'a N,
    params: &'a Params,
    x: &'a Tensor,
    outputs: Outputs,
    k: usize,
    chunk: usize,
}

impl<'a, N: Network> Jacobian<'a, N> {
    /// The Jacobian of `net` at `params` on the rows of `x` (`[n, d]`), restricted to `outputs`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] if `x` is not a matrix with rows, or the output index is out of
    /// range; engine errors from a trial forward pass on one row.
    pub fn new(net: &'a N, params: &'a Params, x: &'a Tensor, outputs: Outputs) -> Result<Self> {
        if x.rank() != 2 || x.dims()[0] == 0 {
            return Err(Error::invalid(
                "inputs",
                format!("{:?}", x.dims()),
                "need a matrix [rows, features] with at least one row",
            ));
        }
        if params.is_empty() {
            return Err(Error::invalid("parameters", 0, "the network has none"));
        }
        let probe = net.forward(params, &x.narrow(0, 0, 1)?)?;
        if probe.rank() != 2 {
            return Err(Error::invalid(
                "network outputs",
                format!("{:?}", probe.dims()),
                "the linearization needs outputs [rows, k]",
            ));
        }
        let width = probe.dims()[1];
        let k = match outputs {
            Outputs::All => width,
            Outputs::One(j) if j < width => 1,
            Outputs::One(j) => {
                return Err(Error::invalid(
                    "output",
                    j,
                    format!("the network has {width} outputs (0-based)"),
                ))
            }
        };
        Ok(Jacobian {
            net,
            params,
            x,
            outputs,
            k,
            chunk: 4096,
        })
    }

    /// Rows per forward pass (default 4096).
    #[must_use]
    pub fn chunk(mut self, rows: usize) -> Self {
        self.chunk = rows.max(1);
        self
    }

    /// Rows of `X`.
    pub fn rows(&self) -> usize {
        self.x.dims()[0]
    }

    /// Outputs per row seen by the linearization.
    pub fn outputs_per_row(&self) -> usize {
        self.k
    }

    /// The function-space dimension `n·k`.
    pub fn len(&self) -> usize {
        self.rows() * self.k
    }

    /// Whether the function space is empty (never: `new` refuses empty inputs).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The parameter-space dimension `P`.
    pub fn params_len(&self) -> usize {
        param_count(self.params)
    }

    /// The trained parameters `θ̂`.
    pub fn params(&self) -> &Params {
        self.params
    }

    /// The network, its parameters and the output selection (to linearize the same network on
    /// other inputs).
    pub fn parts(&self) -> (&'a N, &'a Params, Outputs) {
        (self.net, self.params, self.outputs)
    }

    fn select(&self, out: &Tensor) -> Result<Tensor> {
        Ok(match self.outputs {
            Outputs::All => out.clone(),
            Outputs::One(j) => out.narrow(1, j, 1)?,
        })
    }

    fn chunks(&self) -> impl Iterator<Item = (usize, usize)> {
        let (n, c) = (self.rows(), self.chunk);
        (0..n.div_ceil(c)).map(move |i| (i * c, c.min(n - i * c)))
    }

    /// The selected outputs `f(X; params)` for any parameter set shaped like `θ̂`, flat.
    ///
    /// # Errors
    /// Engine errors.
    pub fn values_at(&self, params: &Params) -> Result<Vec<f64>> {
        let mut out = Vec::with_capacity(self.len());
        for (start, len) in self.chunks() {
            let xc = self.x.narrow(0, start, len)?;
            let f = with_recording(false, || -> Result<Tensor> {
                self.select(&self.net.forward(params, &xc)?)
            })?;
            out.extend(f.to_vec_f64()?);
        }
        Ok(out)
    }

    /// The selected outputs `f(X; θ̂)`, flat.
    ///
    /// # Errors
    /// Engine errors.
    pub fn values(&self) -> Result<Vec<f64>> {
        self.values_at(self.params)
    }

    /// `J u` for a parameter-space `u` (length `P`): the directional derivative of the outputs,
    /// by forward mode.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on a wrong length; engine errors.
    pub fn jvp(&self, u: &[f64]) -> Result<Vec<f64>> {
        let vars = self.params.variables();
        let dtype = vars.values()[0].dtype();
        let tangents = unflatten(u, self.params, dtype)?;
        let inputs: Vec<&Tensor> = vars.values().iter().collect();
        let tans: Vec<&Tensor> = tangents.iter().collect();
        let mut out = Vec::with_capacity(self.len());
        for (start, len) in self.chunks() {
            let xc = self.x.narrow(0, start, len)?;
            let f = with_recording(true, || self.select(&self.net.forward(&vars, &xc)?))?;
            match jvp(&[&f], &inputs, &tans)?.pop().flatten() {
                Some(t) => out.extend(t.to_vec_f64()?),
                None => out.extend(std::iter::repeat_n(0.0, len * self.k)),
            }
        }
        Ok(out)
    }

    /// `Jᵀ v` for a function-space `v` (length `n·k`), by reverse mode: `Σᵢ vᵢ ∇_θ fᵢ`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on a wrong length; engine errors.
    pub fn vjp(&self, v: &[f64]) -> Result<Vec<f64>> {
        if v.len() != self.len() {
            return Err(Error::invalid(
                "function-space vector",
                v.len(),
                format!(
                    "expected {} entries ({} rows × {})",
                    self.len(),
                    self.rows(),
                    self.k
                ),
            ));
        }
        let vars = self.params.variables();
        let dtype = vars.values()[0].dtype();
        let inputs: Vec<&Tensor> = vars.values().iter().collect();
        let mut acc = vec![0.0; self.params_len()];
        for (start, len) in self.chunks() {
            let xc = self.x.narrow(0, start, len)?;
            let f = with_recording(true, || self.select(&self.net.forward(&vars, &xc)?))?;
            let seed =
                Tensor::from_f64s(&v[start * self.k..(start + len) * self.k], f.dims(), dtype)?
                    .to_device(f.device())?;
            let grads = grad(&[&f], &[Some(&seed)], &inputs, false)?;
            accumulate(&mut acc, &grads, vars.values())?;
        }
        Ok(acc)
    }

    /// `diag(J Jᵀ)`: the squared norm of each output's parameter gradient, one reverse pass per
    /// row and output (the reference's `NeuralTangent.diag`). Costs `n·k` backward passes.
    ///
    /// # Errors
    /// Engine errors.
    pub fn sq_norms(&self) -> Result<Vec<f64>> {
        let vars = self.params.variables();
        let inputs: Vec<&Tensor> = vars.values().iter().collect();
        let mut out = Vec::with_capacity(self.len());
        for i in 0..self.rows() {
            let xi = self.x.narrow(0, i, 1)?;
            let f = with_recording(true, || self.select(&self.net.forward(&vars, &xi)?))?;
            for j in 0..self.k {
                let fj = f.narrow(1, j, 1)?;
                let grads = grad(&[&fj], &[None], &inputs, false)?;
                let mut s = 0.0;
                for g in grads.into_iter().flatten() {
                    s += g.to_vec_f64()?.iter().map(|x| x * x).sum::<f64>();
                }
                out.push(s);
            }
        }
        Ok(out)
    }

    /// The exact Gauss–Newton product `Jᵀ J u` (forward then reverse mode).
    ///
    /// # Errors
    /// As [`Jacobian::jvp`] and [`Jacobian::vjp`].
    pub fn gauss_newton(&self, u: &[f64]) -> Result<Vec<f64>> {
        self.vjp(&self.jvp(u)?)
    }

    /// The reference's finite-difference Fisher-vector product for a Gaussian likelihood
    /// (`FVPR_FD`): `F v ≈ ‖v‖/ε · ∇_θ′ (1/n) Σᵢ ½‖f(xᵢ; θ̂) − f(xᵢ; θ′)‖²` at `θ′ = θ̂ + ε v/‖v‖`,
    /// which approaches `Jᵀ J v / n` as `ε → 0`. The reference uses `ε = 1e-4`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for `ε ≤ 0` or a wrong length; engine errors.
    pub fn fisher_fd_regression(&self, v: &[f64], eps: f64) -> Result<Vec<f64>> {
        self.fisher_fd(v, eps, Likelihood::Gaussian)
    }

    /// The reference's finite-difference Fisher-vector product for a softmax classifier
    /// (`FVP_FD`): the gradient of `(1/n) Σᵢ KL(p(xᵢ; θ̂) ‖ p(xᵢ; θ′))` at `θ′ = θ̂ + ε v/‖v‖`,
    /// times `‖v‖/ε`. The outputs are the logits (all of them: the KL needs every class).
    ///
    /// # Errors
    /// As [`Jacobian::fisher_fd_regression`].
    pub fn fisher_fd_classification(&self, v: &[f64], eps: f64) -> Result<Vec<f64>> {
        self.fisher_fd(v, eps, Likelihood::Softmax)
    }

    fn fisher_fd(&self, v: &[f64], eps: f64, lik: Likelihood) -> Result<Vec<f64>> {
        if !(eps > 0.0) || !eps.is_finite() {
            return Err(Error::invalid("eps", eps, "must be positive and finite"));
        }
        if v.len() != self.params_len() {
            return Err(Error::invalid(
                "parameter vector",
                v.len(),
                format!("the network has {} parameters", self.params_len()),
            ));
        }
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm == 0.0 {
            return Ok(vec![0.0; v.len()]);
        }
        let unit: Vec<f64> = v.iter().map(|x| x / norm).collect();
        let moved = shifted(self.params, &unit, eps)?.variables();
        let inputs: Vec<&Tensor> = moved.values().iter().collect();
        let n = self.rows() as f64;
        let mut acc = vec![0.0; v.len()];
        for (start, len) in self.chunks() {
            let xc = self.x.narrow(0, start, len)?;
            let base = with_recording(false, || -> Result<Tensor> {
                self.select(&self.net.forward(self.params, &xc)?)
            })?
            .detach();
            let loss = with_recording(true, || -> Result<Tensor> {
                let f = self.select(&self.net.forward(&moved, &xc)?)?;
                Ok(match lik {
                    Likelihood::Gaussian => {
                        f.sub(&base)?.square()?.sum_all()?.mul_scalar(0.5 / n)?
                    }
                    Likelihood::Softmax => {
                        // KL(p̂ ‖ p′) = Σ p̂ (log p̂ − log p′); only −Σ p̂ log p′ depends on θ′.
                        let p_hat = base.softmax(-1)?;
                        p_hat
                            .mul(&f.log_softmax(-1)?)?
                            .sum_all()?
                            .mul_scalar(-1.0 / n)?
                    }
                })
            })?;
            let grads = grad(&[&loss], &[None], &inputs, false)?;
            accumulate(&mut acc, &grads, moved.values())?;
        }
        let s = norm / eps;
        Ok(acc.into_iter().map(|x| x * s).collect())
    }

    /// The exact Fisher-vector product of a softmax classifier (the reference's `FVP_AG`): the
    /// Hessian of the detached entropy `−(1/n) Σᵢ Σ_c stopgrad(p_ic) log p_ic(θ)` at `θ̂` times
    /// `v`, by reverse over reverse mode. At `θ̂` this equals `(1/n) Jᵀ (diag p − p pᵀ) J v`.
    ///
    /// # Errors
    /// As [`Jacobian::fisher_fd_regression`].
    pub fn fisher_exact_classification(&self, v: &[f64]) -> Result<Vec<f64>> {
        if v.len() != self.params_len() {
            return Err(Error::invalid(
                "parameter vector",
                v.len(),
                format!("the network has {} parameters", self.params_len()),
            ));
        }
        let vars = self.params.variables();
        let dtype = vars.values()[0].dtype();
        let dirs = unflatten(v, self.params, dtype)?;
        let inputs: Vec<&Tensor> = vars.values().iter().collect();
        let n = self.rows() as f64;
        let mut acc = vec![0.0; v.len()];
        for (start, len) in self.chunks() {
            let xc = self.x.narrow(0, start, len)?;
            let hv = with_recording(true, || -> Result<Vec<Option<Tensor>>> {
                let f = self.select(&self.net.forward(&vars, &xc)?)?;
                let logp = f.log_softmax(-1)?;
                let p = logp.exp()?.detach();
                let ent = p.mul(&logp)?.sum_all()?.mul_scalar(-1.0 / n)?;
                let g = grad(&[&ent], &[None], &inputs, true)?;
                let mut dot: Option<Tensor> = None;
                for (gi, di) in g.iter().zip(&dirs) {
                    if let Some(gi) = gi {
                        let term = gi.mul(di)?.sum_all()?;
                        dot = Some(match dot {
                            Some(d) => d.add(&term)?,
                            None => term,
                        });
                    }
                }
                match dot {
                    Some(d) if d.is_tracked() => Ok(grad(&[&d], &[None], &inputs, false)?),
                    _ => Ok(vec![None; inputs.len()]),
                }
            })?;
            accumulate(&mut acc, &hv, vars.values())?;
        }
        Ok(acc)
    }

    /// The dense Jacobian `[n·k, P]`, row-major, column by column from reverse mode. For tests
    /// and tiny networks only.
    ///
    /// # Errors
    /// [`Error::TooLarge`] above 2²⁶ entries; engine errors.
    pub fn dense(&self) -> Result<Vec<f64>> {
        let (rows, p) = (self.len(), self.params_len());
        if (rows as u128) * (p as u128) > 1 << 26 {
            return Err(Error::TooLarge {
                what: format!("a dense Jacobian of {rows} × {p}"),
                bytes: (rows as u128) * (p as u128) * 8,
            });
        }
        let mut out = Vec::with_capacity(rows * p);
        let mut e = vec![0.0; rows];
        for r in 0..rows {
            e[r] = 1.0;
            out.extend(self.vjp(&e)?);
            e[r] = 0.0;
        }
        Ok(out)
    }
}

#[derive(Clone, Copy)]
enum Likelihood {
    Gaussian,
    Softmax,
}

/// `K_XY v = J_X (J_Yᵀ v)`: the Jacobian kernel between two input sets applied to a vector on
/// `Y`'s side.
///
/// # Errors
/// As [`Jacobian::vjp`] and [`Jacobian::jvp`].
pub fn kernel_mv<N: Network>(jx: &Jacobian<N>, jy: &Jacobian<N>, v: &[f64]) -> Result<Vec<f64>> {
    jx.jvp(&jy.vjp(v)?)
}
