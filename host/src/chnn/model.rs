//! CHNN on the engine: `H(x, p) = ½ pᵀM⁻¹p + V(x)` in Cartesian coordinates with a learned `V`
//! (an MLP) and learned masses, integrated through the projected vector field
//! `ż = P(z) J∇H(z)` of the known constraint graph (the reference's
//! `biases/models/constrained_hnn.py`, `dynamics/hamiltonian.py` and `systems/rigid_body.py`).
//!
//! The model knows the graph only — which nodes are tethered, linked or jointed, and which nodes
//! form a body — never the lengths (they enter through the states). Everything here is batched
//! tensor code, so the rollout loss differentiates through the integrator, the projection and
//! `∇V` (gradients of gradients).

use keel_core::dynamics::{Constraint, MassMatrix, Mechanics, Potential};
use keel_core::random::Xoshiro256PlusPlus;
use keel_core::Real;

use super::coords::Coords;
use crate::backend::DType;
use crate::error::{Error, Result};
use crate::init::Init;
use crate::nn::{widths, Activation, Mlp};
use crate::params::{ParamId, Params};
use crate::tensor::Tensor;

/// A conversion of a model's constant tensors (masks, constraint maps, mass maps): to another
/// precision or device.
pub(super) type Constants = dyn Fn(&Tensor) -> Result<Tensor>;

/// One constraint of the graph, without its length.
#[derive(Clone, Debug, PartialEq)]
pub enum Link {
    /// `|x_a − x_b|²` is constant.
    Distance {
        /// First node.
        a: usize,
        /// Second node.
        b: usize,
    },
    /// `|x_node − anchor|²` is constant.
    Tether {
        /// Node.
        node: usize,
        /// Fixed point.
        anchor: Vec<f64>,
    },
    /// `Σ_k w_k x_{n_k, axis}` is constant (joints, pins).
    Linear {
        /// Spatial axis.
        axis: usize,
        /// `(node, weight)` terms.
        terms: Vec<(usize, f64)>,
    },
}

/// What the model is told about a system: nodes, spatial dimension, constraint graph, bodies.
#[derive(Clone, Debug, PartialEq)]
pub struct Graph {
    /// Nodes.
    pub n: usize,
    /// Spatial dimension.
    pub d: usize,
    /// Constraints, in the order of `Ψ`'s rows.
    pub links: Vec<Link>,
    /// Bodies as (first node, node count): a point mass has one node; an extended body of
    /// dimension `d_b` has `d_b + 1` (centre of mass, then unit axis points).
    pub bodies: Vec<(usize, usize)>,
}

impl Graph {
    /// The graph of a core system.
    pub fn of<T: Real, const N: usize, const D: usize, const C: usize, P: Potential<T, N, D>>(
        m: &Mechanics<T, N, D, C, P>,
    ) -> Graph {
        let links = m
            .constraints()
            .iter()
            .map(|c| match c {
                Constraint::Distance { a, b, .. } => Link::Distance { a: *a, b: *b },
                Constraint::Tether { node, anchor, .. } => Link::Tether {
                    node: *node,
                    anchor: anchor.iter().map(|v| v.as_f64()).collect(),
                },
                Constraint::Linear(l) => Link::Linear {
                    axis: l.axis(),
                    terms: l.terms().map(|(n, w)| (n, w.as_f64())).collect(),
                },
            })
            .collect();
        Graph {
            n: N,
            d: D,
            links,
            bodies: bodies(m.mass()),
        }
    }

    /// Number of constraints `C`.
    pub fn c(&self) -> usize {
        self.links.len()
    }

    /// `A` (`[nd, C·nd]`) and `b` (`[C·nd]`) with `∂Φ_c/∂x = (x A + b)[c·nd..(c+1)·nd]` and
    /// `∂Φ̇_c/∂x = (v A)[…]`: every constraint's gradient is affine in the positions.
    fn jacobian_maps(&self) -> (Vec<f64>, Vec<f64>) {
        let nd = self.n * self.d;
        let cn = self.c() * nd;
        let mut a = vec![0.0; nd * cn];
        let mut b = vec![0.0; cn];
        for (c, link) in self.links.iter().enumerate() {
            let col = |i: usize| c * nd + i;
            match link {
                Link::Distance { a: p, b: q } => {
                    for k in 0..self.d {
                        let (i, j) = (p * self.d + k, q * self.d + k);
                        a[i * cn + col(i)] += 2.0;
                        a[j * cn + col(i)] -= 2.0;
                        a[i * cn + col(j)] -= 2.0;
                        a[j * cn + col(j)] += 2.0;
                    }
                }
                Link::Tether { node, anchor } => {
                    for k in 0..self.d {
                        let i = node * self.d + k;
                        a[i * cn + col(i)] += 2.0;
                        b[col(i)] -= 2.0 * anchor[k];
                    }
                }
                Link::Linear { axis, terms } => {
                    for &(node, w) in terms {
                        b[col(node * self.d + axis)] += w;
                    }
                }
            }
        }
        (a, b)
    }
}

/// Bodies of a mass structure as (first node, count).
fn bodies<T: Real, const N: usize>(m: &MassMatrix<T, N>) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut s = 0;
    while s < N {
        let (start, len) = m.body_of(s);
        out.push((start, len.max(1)));
        s = start + len.max(1);
    }
    out
}

/// Learned masses: per body `θ ∈ R^{d_b+1}`, `m = exp θ₀`, `I_k = exp θ_k`, so that
/// `M⁻¹ = (1/m)·11ᵀ + diag(0, 1/I_1, …)` per body and `M = Σ_b m e₀e₀ᵀ + Σ_k I_k (e₀−e_k)(e₀−e_k)ᵀ`.
/// Both are `Uᵀ diag(w) U` with constant `U` (one row per "atom", `[atoms, n]`) and
/// `w = exp(±θ)`.
#[derive(Clone, Debug)]
pub struct Masses {
    /// `θ`, one per atom (`[atoms]`).
    pub theta: ParamId,
    u_minv: Tensor,
    u_m: Tensor,
}

impl Masses {
    fn new(
        params: &mut Params,
        name: &str,
        graph: &Graph,
        dtype: DType,
        rng: &mut Xoshiro256PlusPlus,
    ) -> Result<Masses> {
        let n = graph.n;
        let mut u_minv = Vec::new();
        let mut u_m = Vec::new();
        for &(s, len) in &graph.bodies {
            let mut row = vec![0.0; n];
            row[s..s + len].iter_mut().for_each(|v| *v = 1.0);
            u_minv.push(row);
            let mut row = vec![0.0; n];
            row[s] = 1.0;
            u_m.push(row);
            for k in s + 1..s + len {
                let mut row = vec![0.0; n];
                row[k] = 1.0;
                u_minv.push(row);
                let mut row = vec![0.0; n];
                row[s] = 1.0;
                row[k] = -1.0;
                u_m.push(row);
            }
        }
        let atoms = u_m.len();
        let flat = |rows: Vec<Vec<f64>>| -> Vec<f64> { rows.into_iter().flatten().collect() };
        // The reference initialises θ with 0.1·N(0, 1).
        let theta: Vec<f64> = (0..atoms)
            .map(|_| 0.1 * keel_core::random::standard_normal::<f64, _>(rng))
            .collect();
        Ok(Masses {
            theta: params.insert(
                format!("{name}.theta"),
                Tensor::from_f64s(&theta, &[atoms], dtype)?,
            )?,
            u_minv: Tensor::from_f64s(&flat(u_minv), &[atoms, n], dtype)?,
            u_m: Tensor::from_f64s(&flat(u_m), &[atoms, n], dtype)?,
        })
    }

    /// `Uᵀ diag(w) U` (`[n, n]`).
    fn matrix(u: &Tensor, w: &Tensor) -> Result<Tensor> {
        Ok(u.mul(&w.unsqueeze(1)?)?.matmul_t(u, true, false)?)
    }

    fn map(&self, f: &Constants) -> Result<Masses> {
        Ok(Masses {
            theta: self.theta,
            u_minv: f(&self.u_minv)?,
            u_m: f(&self.u_m)?,
        })
    }

    /// `M⁻¹` on nodes (`[n, n]`).
    pub fn inverse(&self, params: &Params) -> Result<Tensor> {
        Masses::matrix(&self.u_minv, &params.get(self.theta).neg()?.exp()?)
    }

    /// `M` on nodes (`[n, n]`).
    pub fn forward(&self, params: &Params) -> Result<Tensor> {
        Masses::matrix(&self.u_m, &params.get(self.theta).exp()?)
    }
}

/// `m [n, n]` applied along the node axis of `y [B, n·d]` (every spatial coordinate alike).
pub fn on_nodes(m: &Tensor, y: &Tensor, n: usize, d: usize) -> Result<Tensor> {
    let b = y.dims()[0];
    Ok(y.reshape(&[b, n, d])?
        .transpose(1, 2)?
        .matmul_t(m, false, true)?
        .transpose(1, 2)?
        .reshape(&[b, n * d])?)
}

/// Solves `S x = r` for a batch of small symmetric positive definite `S` (`[B, C, C]`, `r`
/// `[B, C, 1]`) by Gaussian elimination without pivoting (safe for SPD), in differentiable
/// tensor operations.
pub fn spd_solve(s: &Tensor, r: &Tensor) -> Result<Tensor> {
    let c = s.dims()[1];
    let mut rows: Vec<Tensor> = (0..c)
        .map(|i| s.narrow(1, i, 1))
        .collect::<keel_engine::Result<_>>()?; // [B, 1, C]
    let mut rhs: Vec<Tensor> = (0..c)
        .map(|i| r.narrow(1, i, 1))
        .collect::<keel_engine::Result<_>>()?; // [B, 1, 1]
    for k in 0..c {
        let pivot = rows[k].narrow(2, k, 1)?; // [B, 1, 1]
        for i in k + 1..c {
            let f = rows[i].narrow(2, k, 1)?.div(&pivot)?;
            rows[i] = rows[i].sub(&rows[k].mul(&f)?)?;
            rhs[i] = rhs[i].sub(&rhs[k].mul(&f)?)?;
        }
    }
    let mut x: Vec<Option<Tensor>> = vec![None; c];
    for k in (0..c).rev() {
        let mut acc = rhs[k].clone();
        for (j, xj) in x.iter().enumerate().skip(k + 1) {
            if let Some(xj) = xj {
                acc = acc.sub(&rows[k].narrow(2, j, 1)?.mul(xj)?)?;
            }
        }
        x[k] = Some(acc.div(&rows[k].narrow(2, k, 1)?)?);
    }
    let parts: Vec<Tensor> = x.into_iter().flatten().collect();
    Ok(Tensor::concat(&parts, 1)?)
}

/// `G = ∂Φ/∂x`, `Ġ = ∂Φ̇/∂x`, `M⁻¹G` (each `[B, C, n·d]`) and `S = GᵀM⁻¹G` (`[B, C, C]`).
struct Jacobians {
    g: Tensor,
    gd: Tensor,
    mg: Tensor,
    s: Tensor,
}

/// The constraint structure as tensors, shared by every evaluation.
#[derive(Clone, Debug)]
pub struct Projector {
    graph: Graph,
    a: Tensor,
    b: Tensor,
}

impl Projector {
    /// From the graph.
    pub fn new(graph: &Graph, dtype: DType) -> Result<Projector> {
        let (a, b) = graph.jacobian_maps();
        let nd = graph.n * graph.d;
        let cn = graph.c() * nd;
        Ok(Projector {
            graph: graph.clone(),
            a: Tensor::from_f64s(&a, &[nd, cn], dtype)?,
            b: Tensor::from_f64s(&b, &[cn], dtype)?,
        })
    }

    /// The constraint Jacobians at positions `x` and velocities `v` (`[B, n·d]`).
    fn jacobians(&self, x: &Tensor, v: &Tensor, minv: &Tensor) -> Result<Jacobians> {
        let (n, d, c) = (self.graph.n, self.graph.d, self.graph.c());
        let nd = n * d;
        let bsz = x.dims()[0];
        let g = x.matmul(&self.a)?.add(&self.b)?.reshape(&[bsz, c, nd])?;
        let gd = v.matmul(&self.a)?.reshape(&[bsz, c, nd])?;
        let mg = on_nodes(minv, &g.reshape(&[bsz * c, nd])?, n, d)?.reshape(&[bsz, c, nd])?;
        let s = g.matmul_t(&mg, false, true)?;
        Ok(Jacobians { g, gd, mg, s })
    }

    /// The constrained Lagrangian acceleration (CLNN; the reference's
    /// `ConstrainedLagrangianDynamics`) at positions `x` and velocities `v` (`[B, n·d]`):
    /// `ẍ = f − M⁻¹G (GᵀM⁻¹G)⁻¹ (Gᵀf + Ġᵀv)` with the physical `f = −M⁻¹∇V` (the reference's code
    /// uses `+M⁻¹∇V`; a learned `V` absorbs either sign).
    pub fn acceleration(
        &self,
        x: &Tensor,
        v: &Tensor,
        grad_v: &Tensor,
        minv: &Tensor,
    ) -> Result<Tensor> {
        let (n, d, c) = (self.graph.n, self.graph.d, self.graph.c());
        let nd = n * d;
        let bsz = x.dims()[0];
        let f = on_nodes(minv, grad_v, n, d)?.neg()?;
        if c == 0 {
            return Ok(f);
        }
        let Jacobians { g, gd, mg, s } = self.jacobians(x, v, minv)?;
        let col = |t: &Tensor| t.reshape(&[bsz, nd, 1]);
        let r = g.matmul(&col(&f)?)?.add(&gd.matmul(&col(v)?)?)?; // [B, C, 1]
        let lambda = spd_solve(&s, &r)?;
        Ok(f.sub(&lambda.matmul_t(&mg, true, false)?.reshape(&[bsz, nd])?)?)
    }

    /// `ż = P(z) J∇H(z)` for `H = ½pᵀM⁻¹p + V(x)`, given `x`, `p` (`[B, n·d]`), `∇V`
    /// (`[B, n·d]`) and `M⁻¹` on nodes (`[n, n]`): returns `(ẋ, ṗ)`.
    ///
    /// With `G = ∂Φ/∂x`, `Ġ = ∂Φ̇/∂x`, `v = M⁻¹p`, the matrix `DΦᵀJDΦ` is
    /// `[[0, S], [−S, K − Kᵀ]]` with `S = GᵀM⁻¹G` and `K = ĠᵀM⁻¹G`, so the multipliers need only
    /// two solves with the SPD `S`: `Sλ₂ = Gᵀv`, `Sλ₁ = (K−Kᵀ)λ₂ − (Ġᵀv − (M⁻¹G)ᵀ∇V)`; then
    /// `ẋ = v − M⁻¹Gλ₂`, `ṗ = −∇V + Gλ₁ + Ġλ₂`.
    pub fn vector_field(
        &self,
        x: &Tensor,
        p: &Tensor,
        grad_v: &Tensor,
        minv: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let (n, d, c) = (self.graph.n, self.graph.d, self.graph.c());
        let nd = n * d;
        let bsz = x.dims()[0];
        let v = on_nodes(minv, p, n, d)?;
        if c == 0 {
            return Ok((v, grad_v.neg()?));
        }
        let Jacobians { g, gd, mg, s } = self.jacobians(x, &v, minv)?;
        let k = gd.matmul_t(&mg, false, true)?;
        let w = k.sub(&k.transpose(1, 2)?)?;
        let col = |t: &Tensor| t.reshape(&[bsz, nd, 1]);
        let r1 = g.matmul(&col(&v)?)?; // [B, C, 1]
        let r2 = gd.matmul(&col(&v)?)?.sub(&mg.matmul(&col(grad_v)?)?)?;
        let l2 = spd_solve(&s, &r1)?;
        let l1 = spd_solve(&s, &w.matmul(&l2)?.sub(&r2)?)?;
        let row = |l: &Tensor, m: &Tensor| -> Result<Tensor> {
            Ok(l.matmul_t(m, true, false)?.reshape(&[bsz, nd])?)
        };
        let xdot = v.sub(&row(&l2, &mg)?)?;
        let pdot = grad_v.neg()?.add(&row(&l1, &g)?)?.add(&row(&l2, &gd)?)?;
        Ok((xdot, pdot))
    }
}

/// A tanh MLP of `sizes` with orthogonal initialisation (the reference's networks for every
/// model), its layers named `{prefix}layer{i}`.
fn tanh_mlp(
    params: &mut Params,
    prefix: &str,
    sizes: &[usize],
    dtype: DType,
    rng: &mut Xoshiro256PlusPlus,
) -> Result<Mlp> {
    Ok(Mlp::named(
        params,
        prefix,
        sizes,
        Activation::Tanh,
        Init::Orthogonal { gain: 1.0 },
        dtype,
        rng,
    )?)
}

/// The hidden activations of a tanh MLP (every layer but the output).
fn tanh_mlp_hidden(mlp: &Mlp, params: &Params, x: &Tensor) -> Result<Vec<Tensor>> {
    let last = mlp.layers.len() - 1;
    let mut hs: Vec<Tensor> = Vec::with_capacity(last);
    for l in &mlp.layers[..last] {
        let h = l.forward(params, hs.last().unwrap_or(x))?.tanh()?;
        hs.push(h);
    }
    Ok(hs)
}

/// The forward pass of a tanh MLP keeping every hidden activation: `(hidden, output)`.
fn tanh_mlp_trace(mlp: &Mlp, params: &Params, x: &Tensor) -> Result<(Vec<Tensor>, Tensor)> {
    let hs = tanh_mlp_hidden(mlp, params, x)?;
    let out = mlp.layers[mlp.layers.len() - 1].forward(params, hs.last().unwrap_or(x))?;
    Ok((hs, out))
}

/// The input vector–Jacobian product of a tanh MLP from its hidden activations `hs`
/// ([`tanh_mlp_trace`]): `δ_L = c W_L`, `δ_{l−1} = (δ_l ⊙ (1 − h_l²)) W_l`, returned as `δ_0`
/// (`[B, in]`). `cotangent` is `[B, out]`; `None` means a unit cotangent on a single output
/// (the gradient of `Σ_rows f`).
fn tanh_mlp_pullback(
    mlp: &Mlp,
    params: &Params,
    hs: &[Tensor],
    cotangent: Option<&Tensor>,
) -> Result<Tensor> {
    let last = mlp.layers.len() - 1;
    let w = params.get(mlp.layers[last].weight); // [out, H]
    let mut delta = match cotangent {
        Some(c) => c.matmul(w)?,
        None => w.clone(),
    };
    for (l, h) in mlp.layers[..last].iter().zip(hs).rev() {
        let slope = h.square()?.neg()?.add_scalar(1.0)?;
        delta = delta.mul(&slope)?.matmul(params.get(l.weight))?;
    }
    Ok(delta)
}

/// The Jacobian–vector product of a tanh MLP from its hidden activations `hs`
/// ([`tanh_mlp_trace`]) along the input tangent `t` (`[B, in]`): `ṫ_l = (ṫ_{l−1} W_lᵀ) ⊙ (1 − h_l²)`,
/// then `ṫ W_Lᵀ` (`[B, out]`) — forward mode written out as tensor operations.
fn tanh_mlp_jvp(mlp: &Mlp, params: &Params, hs: &[Tensor], t: &Tensor) -> Result<Tensor> {
    let last = mlp.layers.len() - 1;
    let mut dot = t.clone();
    for (l, h) in mlp.layers[..last].iter().zip(hs) {
        let slope = h.square()?.neg()?.add_scalar(1.0)?;
        dot = dot
            .matmul_t(params.get(l.weight), false, true)?
            .mul(&slope)?;
    }
    Ok(dot.matmul_t(params.get(mlp.layers[last].weight), false, true)?)
}

/// `∂/∂x Σ_rows f(x)` for a tanh MLP `f` with a scalar output, written out as tensor
/// operations (so it differentiates like any other expression).
///
/// # Errors
/// [`Error::InvalidInput`] unless the MLP is tanh with one output.
pub fn tanh_mlp_input_gradient(mlp: &Mlp, params: &Params, x: &Tensor) -> Result<Tensor> {
    let last = mlp.layers.len() - 1;
    if mlp.activation != Activation::Tanh || mlp.layers[last].out != 1 {
        return Err(Error::invalid(
            "potential",
            format!("{:?} → {}", mlp.activation, mlp.layers[last].out),
            "needs a tanh MLP with one output",
        ));
    }
    // The output layer is not needed for the gradient; only the hidden activations.
    let hs = tanh_mlp_hidden(mlp, params, x)?;
    tanh_mlp_pullback(mlp, params, &hs, None)
}

/// Which learned dynamics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelKind {
    /// Constrained Hamiltonian network (Cartesian, explicit constraints).
    Chnn,
    /// Constrained Lagrangian network: the CHNN's potential and masses, Lagrangian dynamics
    /// on `(x, v)`.
    Clnn,
    /// Neural ODE baseline: an MLP for `(q̇, q̈)` in generalised coordinates.
    Node,
    /// Hamiltonian network in generalised coordinates with a learned `M⁻¹(q)`.
    Hnn,
    /// Deep Lagrangian network in generalised coordinates with a learned `M(q)`.
    Delan,
}

impl ModelKind {
    /// Every model.
    pub const ALL: [ModelKind; 5] = [
        ModelKind::Chnn,
        ModelKind::Clnn,
        ModelKind::Node,
        ModelKind::Hnn,
        ModelKind::Delan,
    ];

    /// Parses `chnn`, `clnn`, `node`, `hnn` or `delan`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the choices.
    pub fn parse(s: &str) -> Result<ModelKind> {
        ModelKind::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                Error::invalid(
                    "model",
                    s,
                    "unknown model (expected chnn, clnn, node, hnn or delan)",
                )
            })
    }

    /// The flag value.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Chnn => "chnn",
            ModelKind::Clnn => "clnn",
            ModelKind::Node => "node",
            ModelKind::Hnn => "hnn",
            ModelKind::Delan => "delan",
        }
    }

    /// Whether the model works in Cartesian coordinates with the constraint graph (CHNN,
    /// CLNN) rather than in angles (the baselines).
    pub fn cartesian(self) -> bool {
        matches!(self, ModelKind::Chnn | ModelKind::Clnn)
    }
}

/// A CHNN (or CLNN, the same parameters with Lagrangian dynamics): learned potential MLP and
/// masses over a known constraint graph.
#[derive(Clone, Debug)]
pub struct Chnn {
    /// The graph.
    pub graph: Graph,
    /// `V(vec x)`: 3 × 256 tanh, orthogonal initialisation (the reference's).
    pub potential: Mlp,
    /// Learned masses.
    pub masses: Masses,
    projector: Projector,
}

impl Chnn {
    /// A model with `layers` hidden layers of `hidden` units.
    ///
    /// # Errors
    /// Invalid sizes.
    pub fn new(
        params: &mut Params,
        graph: &Graph,
        hidden: usize,
        layers: usize,
        dtype: DType,
        rng: &mut Xoshiro256PlusPlus,
    ) -> Result<Chnn> {
        let potential = tanh_mlp(
            params,
            "",
            &widths(graph.n * graph.d, hidden, layers, 1),
            dtype,
            rng,
        )?;
        let masses = Masses::new(params, "mass", graph, dtype, rng)?;
        Ok(Chnn {
            graph: graph.clone(),
            potential,
            masses,
            projector: Projector::new(graph, dtype)?,
        })
    }

    /// The same network with its constant tensors in `dtype` (parameters convert separately,
    /// [`Params::to_dtype`]).
    ///
    /// # Errors
    /// Conversion errors.
    pub fn to_dtype(&self, dtype: DType) -> Result<Chnn> {
        self.map(&move |t| Ok(t.to_dtype(dtype)?))
    }

    /// The same network with `f` applied to each constant tensor.
    pub(super) fn map(&self, f: &Constants) -> Result<Chnn> {
        Ok(Chnn {
            graph: self.graph.clone(),
            potential: self.potential.clone(),
            masses: self.masses.map(f)?,
            projector: Projector {
                graph: self.projector.graph.clone(),
                a: f(&self.projector.a)?,
                b: f(&self.projector.b)?,
            },
        })
    }

    /// `∇V(x)` (`[B, n·d]`) written out as tensor operations (forward through the tanh layers,
    /// then back through their transposes), so it differentiates like any other expression —
    /// no nested reverse pass over the rollout's graph.
    pub fn grad_potential(&self, params: &Params, x: &Tensor) -> Result<Tensor> {
        tanh_mlp_input_gradient(&self.potential, params, x)
    }

    /// The learned vector field at `(x, p)`.
    pub fn vector_field(
        &self,
        params: &Params,
        x: &Tensor,
        p: &Tensor,
        minv: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let gv = self.grad_potential(params, x)?;
        self.projector.vector_field(x, p, &gv, minv)
    }

    /// The learned Lagrangian acceleration at `(x, v)` (CLNN).
    pub fn acceleration(
        &self,
        params: &Params,
        x: &Tensor,
        v: &Tensor,
        minv: &Tensor,
    ) -> Result<Tensor> {
        let gv = self.grad_potential(params, x)?;
        self.projector.acceleration(x, v, &gv, minv)
    }
}

/// The Neural ODE baseline in generalised coordinates: `(q̇, q̈) = MLP(cos q_a, sin q_a, q_l, q̇)`
/// (tanh; the reference's `NN` model), with `q_a` the angles and `q_l` the other coordinates.
#[derive(Clone, Debug)]
pub struct Node {
    /// The network (`embedding + dof → hidden… → 2·dof`).
    pub mlp: Mlp,
    /// The system's generalised coordinates.
    pub coords: Coords,
}

/// `(cos q_a, sin q_a, q_l)` of `q` (`[B, dof]`) whose first `angles` entries are angles.
pub fn embed(q: &Tensor, angles: usize) -> Result<Tensor> {
    let dof = q.dims()[1];
    let a = q.narrow(1, 0, angles)?;
    let mut parts = vec![a.cos()?, a.sin()?];
    if dof > angles {
        parts.push(q.narrow(1, angles, dof - angles)?);
    }
    Ok(Tensor::concat(&parts, 1)?)
}

/// `∂f/∂q` from the gradient `g = [∂f/∂cos q_a, ∂f/∂sin q_a, ∂f/∂q_l]` of a function of the
/// embedding, at `q` (`[B, dof]`).
fn embedding_pullback(q: &Tensor, g: &Tensor, angles: usize) -> Result<Tensor> {
    let dof = q.dims()[1];
    let a = q.narrow(1, 0, angles)?;
    let (g_cos, g_sin) = (g.narrow(1, 0, angles)?, g.narrow(1, angles, angles)?);
    let ga = a.cos()?.mul(&g_sin)?.sub(&a.sin()?.mul(&g_cos)?)?;
    if dof == angles {
        return Ok(ga);
    }
    Ok(Tensor::concat(
        &[ga, g.narrow(1, 2 * angles, dof - angles)?],
        1,
    )?)
}

impl Node {
    /// A network with `layers` hidden layers of `hidden` units.
    ///
    /// # Errors
    /// Invalid sizes.
    pub fn new(
        params: &mut Params,
        coords: Coords,
        hidden: usize,
        layers: usize,
        dtype: DType,
        rng: &mut Xoshiro256PlusPlus,
    ) -> Result<Node> {
        let (dof, a) = (coords.dof(), coords.angles());
        let mlp = tanh_mlp(
            params,
            "",
            &widths(dof + a + dof, hidden, layers, 2 * dof),
            dtype,
            rng,
        )?;
        Ok(Node { mlp, coords })
    }

    /// `(q̇, q̈)` at `(q, q̇)` (each `[B, dof]`).
    pub fn vector_field(
        &self,
        params: &Params,
        q: &Tensor,
        dq: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let dof = self.coords.dof();
        let inp = Tensor::concat(&[embed(q, self.coords.angles())?, dq.clone()], 1)?;
        let out = self.mlp.forward(params, &inp)?;
        Ok((out.narrow(1, 0, dof)?, out.narrow(1, dof, dof)?))
    }
}

/// The HNN baseline (biases/models/hnn.py) in generalised coordinates:
/// `H(q, p) = ½ pᵀM⁻¹(q)p + V(q)` with `M⁻¹(q) = L(q)L(q)ᵀ + 10⁻⁴ I`, `L` lower triangular with
/// a softplus diagonal, `V` and `L` two tanh MLPs (orthogonal initialisation) on the embedding
/// `(cos q_a, sin q_a, q_l)` ([`embed`]). `L`'s entries are the mass network's outputs in row-major order (the
/// reference reads the transposed upper triangle; the same family).
#[derive(Clone, Debug)]
pub struct Hnn {
    /// `V` (`embedding → hidden… → 1`).
    pub potential: Mlp,
    /// `L` (`embedding → hidden… → dof²`).
    pub mass: Mlp,
    /// The system's generalised coordinates.
    pub coords: Coords,
    strict: Tensor,
    eye: Tensor,
}

/// The `10⁻⁴ I` added to `LLᵀ`.
const HNN_EPS: f64 = 1e-4;

/// The `εI` added to DeLaN's `LLᵀ`: the reference's Lagrangian baseline adds `0.1|q̇|²` to `T`
/// "to prevent a singular mass matrix at initialisation" (`biases/models/lnn.py`), i.e. `0.2 I`
/// to `M`. Lagrangian dynamics do not change when `L` is scaled, so the floor costs no
/// generality: the networks learn `M` and `V` at whatever common scale keeps `M ≥ 0.2 I`.
const DELAN_EPS: f64 = 0.2;

impl Hnn {
    /// Networks with `layers` hidden layers of `hidden` units.
    ///
    /// # Errors
    /// Invalid sizes.
    pub fn new(
        params: &mut Params,
        coords: Coords,
        hidden: usize,
        layers: usize,
        dtype: DType,
        rng: &mut Xoshiro256PlusPlus,
    ) -> Result<Hnn> {
        let l = coords.dof();
        let e = l + coords.angles();
        let potential = tanh_mlp(
            params,
            "potential.",
            &widths(e, hidden, layers, 1),
            dtype,
            rng,
        )?;
        let mass = tanh_mlp(
            params,
            "mass.",
            &widths(e, hidden, layers, l * l),
            dtype,
            rng,
        )?;
        let (strict, eye) = Hnn::masks(l, dtype)?;
        Ok(Hnn {
            potential,
            mass,
            coords,
            strict,
            eye,
        })
    }

    /// The strictly lower triangular mask and the identity (`[L, L]`).
    fn masks(l: usize, dtype: DType) -> Result<(Tensor, Tensor)> {
        let strict: Vec<f64> = (0..l * l)
            .map(|k| if k / l > k % l { 1.0 } else { 0.0 })
            .collect();
        let eye: Vec<f64> = (0..l * l)
            .map(|k| if k / l == k % l { 1.0 } else { 0.0 })
            .collect();
        Ok((
            Tensor::from_f64s(&strict, &[l, l], dtype)?,
            Tensor::from_f64s(&eye, &[l, l], dtype)?,
        ))
    }

    /// The same networks with their constant tensors in `dtype`.
    ///
    /// # Errors
    /// Conversion errors.
    pub fn to_dtype(&self, dtype: DType) -> Result<Hnn> {
        self.map(&move |t| Ok(t.to_dtype(dtype)?))
    }

    /// The same networks with `f` applied to each constant tensor.
    pub(super) fn map(&self, f: &Constants) -> Result<Hnn> {
        Ok(Hnn {
            strict: f(&self.strict)?,
            eye: f(&self.eye)?,
            ..self.clone()
        })
    }

    /// `(L(q), LLᵀ + εI, raw mass-network output, its hidden activations)`: `M⁻¹(q)` here
    /// (ε = 10⁻⁴), `M(q)` in [`Delan`] (ε = 0.2).
    fn factor(
        &self,
        params: &Params,
        emb: &Tensor,
        eps: f64,
    ) -> Result<(Tensor, Tensor, Tensor, Vec<Tensor>)> {
        let l = self.coords.dof();
        let b = emb.dims()[0];
        let (hs, raw) = tanh_mlp_trace(&self.mass, params, emb)?;
        let raw = raw.reshape(&[b, l, l])?;
        let lower = raw
            .mul(&self.strict)?
            .add(&raw.softplus()?.mul(&self.eye)?)?;
        let minv = lower
            .matmul_t(&lower, false, true)?
            .add(&self.eye.mul_scalar(eps)?)?;
        Ok((lower, minv, raw, hs))
    }

    /// `M⁻¹(q)` (`[B, L, L]`).
    pub fn inverse_mass(&self, params: &Params, th: &Tensor) -> Result<Tensor> {
        Ok(self
            .factor(params, &embed(th, self.coords.angles())?, HNN_EPS)?
            .1)
    }

    /// `M⁻¹(q) y` for `y` `[B, L]`.
    pub fn velocity(&self, params: &Params, th: &Tensor, p: &Tensor) -> Result<Tensor> {
        let b = th.dims()[0];
        let l = self.coords.dof();
        Ok(self
            .inverse_mass(params, th)?
            .matmul(&p.reshape(&[b, l, 1])?)?
            .reshape(&[b, l])?)
    }

    /// `M(q) ω`: a solve with the SPD `M⁻¹(q)`.
    pub fn momentum(&self, params: &Params, th: &Tensor, om: &Tensor) -> Result<Tensor> {
        let b = th.dims()[0];
        let l = self.coords.dof();
        Ok(
            spd_solve(&self.inverse_mass(params, th)?, &om.reshape(&[b, l, 1])?)?
                .reshape(&[b, l])?,
        )
    }

    /// Hamilton's equations `(q̇, ṗ) = (∂H/∂p, −∂H/∂q)` at `(q, p)` (each `[B, dof]`).
    ///
    /// `∂H/∂q` is written out: with `u = Lᵀp`, `½pᵀLLᵀp` has `∂/∂L_ij = p_i u_j`, pulled back
    /// through the softplus diagonal and the mass network; `V` by its own pullback; both
    /// through the embedding.
    pub fn vector_field(
        &self,
        params: &Params,
        th: &Tensor,
        p: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let l = self.coords.dof();
        let b = th.dims()[0];
        let emb = embed(th, self.coords.angles())?;
        let (lower, minv, raw, hs_m) = self.factor(params, &emb, HNN_EPS)?;
        let pc = p.reshape(&[b, l, 1])?;
        let qdot = minv.matmul(&pc)?.reshape(&[b, l])?;
        let u = lower.matmul_t(&pc, true, false)?.reshape(&[b, 1, l])?;
        let slope = self.strict.add(&raw.sigmoid()?.mul(&self.eye)?)?;
        let cot = pc.mul(&u)?.mul(&slope)?.reshape(&[b, l * l])?;
        let g_t = tanh_mlp_pullback(&self.mass, params, &hs_m, Some(&cot))?;
        let hs_v = tanh_mlp_hidden(&self.potential, params, &emb)?;
        let g_v = tanh_mlp_pullback(&self.potential, params, &hs_v, None)?;
        let g = g_t.add(&g_v)?;
        // ṗ = −∂H/∂q.
        let pdot = embedding_pullback(th, &g, self.coords.angles())?.neg()?;
        Ok((qdot, pdot))
    }
}

/// The DeLaN baseline (Lutter, Ritter & Peters, *Deep Lagrangian Networks*, ICLR 2019; the CHNN
/// reference's `biases/models/lnn.py` `DeLaN`) in generalised coordinates:
/// the Lagrangian `½ q̇ᵀM(q)q̇ − V(q)` with `M(q) = C(q)C(q)ᵀ + 0.2 I` (`C` lower triangular with
/// a softplus diagonal) — the [`Hnn`]'s two networks and Cholesky parameterisation, with the
/// matrix read as the mass matrix as in the DeLaN paper — and the Euler–Lagrange equations solved
/// for the acceleration:
///
/// ```text
/// M(q) q̈ = ∂T/∂q − Ṁ q̇ − ∇V,   T = ½ q̇ᵀM(q)q̇,   Ṁ = ĊCᵀ + CĊᵀ,   Ċ = ∂C/∂q · q̇,
/// ```
///
/// `∂T/∂q` by the networks' pullback and `Ċ` by their forward tangent, both written out as tensor
/// operations so the field differentiates like any other expression.
///
/// The CHNN reference's own `DeLaN` reuses its HNN's network for `M⁻¹` (so its field is the HNN's
/// in velocity form); Keel parameterises `M` itself, as the DeLaN paper does, which makes this a
/// different model from [`Hnn`] rather than a change of variables of it.
#[derive(Clone, Debug)]
pub struct Delan {
    /// The potential and Cholesky-factor networks.
    pub nets: Hnn,
}

impl Delan {
    /// Networks with `layers` hidden layers of `hidden` units.
    ///
    /// # Errors
    /// Invalid sizes.
    pub fn new(
        params: &mut Params,
        coords: Coords,
        hidden: usize,
        layers: usize,
        dtype: DType,
        rng: &mut Xoshiro256PlusPlus,
    ) -> Result<Delan> {
        Ok(Delan {
            nets: Hnn::new(params, coords, hidden, layers, dtype, rng)?,
        })
    }

    /// The generalised coordinates.
    pub fn coords(&self) -> &Coords {
        &self.nets.coords
    }

    /// The same networks with their constant tensors in `dtype`.
    ///
    /// # Errors
    /// Conversion errors.
    pub fn to_dtype(&self, dtype: DType) -> Result<Delan> {
        self.map(&move |t| Ok(t.to_dtype(dtype)?))
    }

    /// The same networks with `f` applied to each constant tensor.
    pub(super) fn map(&self, f: &Constants) -> Result<Delan> {
        Ok(Delan {
            nets: self.nets.map(f)?,
        })
    }

    /// `M(q)` (`[B, dof, dof]`), symmetric positive definite by construction.
    pub fn mass(&self, params: &Params, q: &Tensor) -> Result<Tensor> {
        Ok(self
            .nets
            .factor(params, &embed(q, self.coords().angles())?, DELAN_EPS)?
            .1)
    }

    /// `V(q)` (`[B, 1]`).
    pub fn potential(&self, params: &Params, q: &Tensor) -> Result<Tensor> {
        Ok(self
            .nets
            .potential
            .forward(params, &embed(q, self.coords().angles())?)?)
    }

    /// `(q̇, q̈)` at `(q, q̇)` (each `[B, dof]`).
    pub fn vector_field(
        &self,
        params: &Params,
        q: &Tensor,
        dq: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let (n, a) = (self.coords().dof(), self.coords().angles());
        let b = q.dims()[0];
        let net = &self.nets;
        let emb = embed(q, a)?;
        let (lower, m, raw, hs_m) = net.factor(params, &emb, DELAN_EPS)?;
        let slope = net.strict.add(&raw.sigmoid()?.mul(&net.eye)?)?;
        let qc = dq.reshape(&[b, n, 1])?;
        // ∂T/∂q: T = ½|Cᵀq̇|² has ∂/∂C_ij = q̇_i u_j with u = Cᵀq̇ (`lower` is C).
        let u = lower.matmul_t(&qc, true, false)?; // [B, n, 1]
        let cot = qc
            .mul(&u.reshape(&[b, 1, n])?)?
            .mul(&slope)?
            .reshape(&[b, n * n])?;
        let g_t = tanh_mlp_pullback(&net.mass, params, &hs_m, Some(&cot))?;
        let hs_v = tanh_mlp_hidden(&net.potential, params, &emb)?;
        let g_v = tanh_mlp_pullback(&net.potential, params, &hs_v, None)?;
        let force = embedding_pullback(q, &g_t.sub(&g_v)?, a)?; // ∂T/∂q − ∇V
                                                                // Ċ along q̇: the embedding's tangent through the mass network and the softplus diagonal.
        let qa = q.narrow(1, 0, a)?;
        let da = dq.narrow(1, 0, a)?;
        let mut tangent = vec![qa.sin()?.neg()?.mul(&da)?, qa.cos()?.mul(&da)?];
        if n > a {
            tangent.push(dq.narrow(1, a, n - a)?);
        }
        let e_dot = Tensor::concat(&tangent, 1)?;
        let raw_dot = tanh_mlp_jvp(&net.mass, params, &hs_m, &e_dot)?.reshape(&[b, n, n])?;
        let lower_dot = raw_dot.mul(&slope)?;
        // Ṁq̇ = Ċ(Cᵀq̇) + C(Ċᵀq̇).
        let m_dot_q = lower_dot
            .matmul(&u)?
            .add(&lower.matmul(&lower_dot.matmul_t(&qc, true, false)?)?)?;
        let rhs = force.reshape(&[b, n, 1])?.sub(&m_dot_q)?;
        let ddq = spd_solve(&m, &rhs)?.reshape(&[b, n])?;
        Ok((dq.clone(), ddq))
    }
}
