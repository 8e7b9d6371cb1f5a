//! SAC-SVG(H)'s networks on the engine (the reference's `svg/actor.py`, `critic.py`, `dx.py`):
//! orthogonally initialised MLPs with zero biases, the tanh-squashed Gaussian actor with the
//! bounded log-std map and its stable log density, the double-Q critic, and the deterministic
//! recurrent residual world model (MLP encoder → GRU cell, PyTorch's gate order r, z, n → linear
//! decoder).

use keel_core::random::{uniform, Xoshiro256PlusPlus};

use crate::backend::{DType, Device};
use crate::error::Result;
use crate::init::Init;
use crate::nn::{Activation, Linear, Mlp};
use crate::params::{ParamId, Params};
use crate::tensor::Tensor;

/// `ln 2π / 2`.
const HALF_LN_2PI: f64 = 0.918_938_533_204_672_7;
/// `ln 2`.
const LN_2: f64 = std::f64::consts::LN_2;

/// An MLP of widths `sizes` named `{prefix}layer{i}`, ReLU between layers, weights orthogonal
/// (gain 1) and biases zero — the reference's `weight_init`.
///
/// # Errors
/// A zero width; a duplicate name.
pub fn mlp(
    params: &mut Params,
    prefix: &str,
    sizes: &[usize],
    dtype: DType,
    rng: &mut Xoshiro256PlusPlus,
) -> Result<Mlp> {
    let net = Mlp::named(
        params,
        prefix,
        sizes,
        Activation::Relu,
        Init::Orthogonal { gain: 1.0 },
        dtype,
        rng,
    )?;
    for l in &net.layers {
        params.set(l.bias, Tensor::zeros(&[l.out], dtype)?)?;
    }
    Ok(net)
}

/// The tanh-squashed Gaussian policy: `(μ, ℓ̃) = trunk(x)`,
/// `ℓ = ℓ_min + ½(ℓ_max − ℓ_min)(tanh ℓ̃ + 1)`, `ũ = μ + e^ℓ ε`, `u = tanh ũ`.
#[derive(Clone, Debug)]
pub struct Actor {
    /// `obs → hidden → 2A` (means first).
    pub trunk: Mlp,
    /// Actions.
    pub actions: usize,
    /// `[ℓ_min, ℓ_max]`.
    pub log_std_bounds: [f64; 2],
}

/// Actions sampled from the policy with their log densities.
pub struct Sampled {
    /// `u = tanh ũ`, `[B, A]`.
    pub action: Tensor,
    /// `log π(u|x)`, `[B]`.
    pub log_prob: Tensor,
}

impl Actor {
    /// `(μ, ℓ)` for observations `[B, O]`.
    ///
    /// # Errors
    /// Engine errors (shapes).
    pub fn mean_and_log_std(&self, params: &Params, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let out = self.trunk.forward(params, x)?;
        let a = self.actions;
        let mu = out.narrow(1, 0, a)?;
        let [lo, hi] = self.log_std_bounds;
        let log_std = out
            .narrow(1, a, a)?
            .tanh()?
            .add_scalar(1.0)?
            .mul_scalar(0.5 * (hi - lo))?
            .add_scalar(lo)?;
        Ok((mu, log_std))
    }

    /// Reparameterised samples with noise `eps` `[B, A]` and their log densities
    /// `Σ_d [log N(ũ; μ, σ) − 2(log 2 − ũ − softplus(−2ũ))]`.
    ///
    /// # Errors
    /// Engine errors (shapes).
    pub fn sample(&self, params: &Params, x: &Tensor, eps: &Tensor) -> Result<Sampled> {
        let (mu, log_std) = self.mean_and_log_std(params, x)?;
        let pre = mu.add(&log_std.exp()?.mul(eps)?)?;
        let action = pre.tanh()?;
        let gauss = eps
            .square()?
            .mul_scalar(-0.5)?
            .sub(&log_std)?
            .add_scalar(-HALF_LN_2PI)?;
        let log_det = pre
            .mul_scalar(-2.0)?
            .softplus()?
            .add(&pre)?
            .neg()?
            .add_scalar(LN_2)?
            .mul_scalar(2.0)?;
        let log_prob = gauss.sub(&log_det)?.sum(&[1], false)?;
        Ok(Sampled { action, log_prob })
    }

    /// The deterministic action `tanh μ` (deployment and evaluation).
    ///
    /// # Errors
    /// Engine errors (shapes).
    pub fn mean_action(&self, params: &Params, x: &Tensor) -> Result<Tensor> {
        Ok(self.mean_and_log_std(params, x)?.0.tanh()?)
    }
}

/// Two independent Q networks on `[obs, act]`.
#[derive(Clone, Debug)]
pub struct DoubleQ {
    /// First Q.
    pub q1: Mlp,
    /// Second Q.
    pub q2: Mlp,
}

impl DoubleQ {
    /// `(Q₁, Q₂)` as `[B]` each.
    ///
    /// # Errors
    /// Engine errors (shapes).
    pub fn forward(&self, params: &Params, x: &Tensor, u: &Tensor) -> Result<(Tensor, Tensor)> {
        let xu = Tensor::concat(&[x.clone(), u.clone()], 1)?;
        let b = xu.dims()[0];
        Ok((
            self.q1.forward(params, &xu)?.reshape(&[b])?,
            self.q2.forward(params, &xu)?.reshape(&[b])?,
        ))
    }

    /// `min(Q₁, Q₂)`, `[B]`.
    ///
    /// # Errors
    /// Engine errors (shapes).
    pub fn min(&self, params: &Params, x: &Tensor, u: &Tensor) -> Result<Tensor> {
        let (a, b) = self.forward(params, x, u)?;
        // `where` carries the gradient to the smaller of the two (`maximum` carries none).
        let a_larger = a.detach().gt(&b.detach())?;
        Ok(Tensor::where_(&a_larger, &b, &a)?)
    }
}

/// A GRU cell (PyTorch's `nn.GRUCell`): `r = σ(W_ir x + b_ir + W_hr h + b_hr)`,
/// `z = σ(W_iz x + b_iz + W_hz h + b_hz)`, `n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))`,
/// `h' = (1 − z) ⊙ n + z ⊙ h`; the three gates stacked `[r; z; n]` in `weight_ih` `[3H, I]`,
/// `weight_hh` `[3H, H]`, `bias_ih`, `bias_hh` `[3H]`; initialised `U(−1/√H, 1/√H)`.
#[derive(Clone, Copy, Debug)]
pub struct Gru {
    /// `weight_ih`.
    pub weight_ih: ParamId,
    /// `weight_hh`.
    pub weight_hh: ParamId,
    /// `bias_ih`.
    pub bias_ih: ParamId,
    /// `bias_hh`.
    pub bias_hh: ParamId,
    /// Hidden size `H`.
    pub hidden: usize,
}

impl Gru {
    /// A cell `inp → hidden` named `{name}.weight_ih`, ….
    ///
    /// # Errors
    /// A duplicate name; a zero size.
    pub fn new(
        params: &mut Params,
        name: &str,
        inp: usize,
        hidden: usize,
        dtype: DType,
        rng: &mut Xoshiro256PlusPlus,
    ) -> Result<Gru> {
        let bound = 1.0 / (hidden as f64).sqrt();
        let mut draw = |dims: &[usize]| -> Result<Tensor> {
            let n: usize = dims.iter().product();
            let v: Vec<f64> = (0..n)
                .map(|_| (2.0 * uniform::<f64, _>(rng) - 1.0) * bound)
                .collect();
            Ok(Tensor::from_f64s(&v, dims, dtype)?)
        };
        Ok(Gru {
            weight_ih: params.insert(format!("{name}.weight_ih"), draw(&[3 * hidden, inp])?)?,
            weight_hh: params.insert(format!("{name}.weight_hh"), draw(&[3 * hidden, hidden])?)?,
            bias_ih: params.insert(format!("{name}.bias_ih"), draw(&[3 * hidden])?)?,
            bias_hh: params.insert(format!("{name}.bias_hh"), draw(&[3 * hidden])?)?,
            hidden,
        })
    }

    /// One step: `h'` for inputs `x` `[B, I]` and state `h` `[B, H]`.
    ///
    /// # Errors
    /// Engine errors (shapes).
    pub fn step(&self, params: &Params, x: &Tensor, h: &Tensor) -> Result<Tensor> {
        let hd = self.hidden;
        let gi = x
            .matmul_t(params.get(self.weight_ih), false, true)?
            .add(params.get(self.bias_ih))?;
        let gh = h
            .matmul_t(params.get(self.weight_hh), false, true)?
            .add(params.get(self.bias_hh))?;
        let gate = |k: usize| -> Result<(Tensor, Tensor)> {
            Ok((gi.narrow(1, k * hd, hd)?, gh.narrow(1, k * hd, hd)?))
        };
        let (ir, hr) = gate(0)?;
        let (iz, hz) = gate(1)?;
        let (inn, hn) = gate(2)?;
        let r = ir.add(&hr)?.sigmoid()?;
        let z = iz.add(&hz)?.sigmoid()?;
        let n = inn.add(&r.mul(&hn)?)?.tanh()?;
        // (1 − z) ⊙ n + z ⊙ h
        Ok(z.neg()?.add_scalar(1.0)?.mul(&n)?.add(&z.mul(h)?)?)
    }
}

/// The deterministic recurrent residual world model:
/// `x_{t+1} = x_t + dec(GRU(enc([x_t, u_t]), h_t))` on normalised observations.
#[derive(Clone, Debug)]
pub struct WorldModel {
    /// Encoder MLP `[obs + act] → … → hidden`.
    pub encoder: Mlp,
    /// The recurrent cell.
    pub gru: Gru,
    /// Linear decoder `hidden → obs`.
    pub decoder: Linear,
}

impl WorldModel {
    /// The next state and recurrent state.
    ///
    /// # Errors
    /// Engine errors (shapes).
    pub fn step(
        &self,
        params: &Params,
        x: &Tensor,
        u: &Tensor,
        h: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let xu = Tensor::concat(&[x.clone(), u.clone()], 1)?;
        let e = self.encoder.forward(params, &xu)?;
        let h = self.gru.step(params, &e, h)?;
        let dx = self.decoder.forward(params, &h)?;
        Ok((x.add(&dx)?, h))
    }

    /// The zero recurrent state for a batch, on `device`.
    ///
    /// # Errors
    /// Engine errors.
    pub fn initial(&self, batch: usize, dtype: DType, device: Device) -> Result<Tensor> {
        Ok(Tensor::full_on(
            0.0,
            &[batch, self.gru.hidden],
            dtype,
            device,
        )?)
    }
}
