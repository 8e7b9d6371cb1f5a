//! Automatic differentiation on recorded tensor operations.
//!
//! While recording is on (the default; see [`no_grad`]), every operation whose inputs include a
//! tracked tensor (a [`Tensor::variable`] or something computed from one) remembers its inputs as
//! an `Op`. Then:
//! - [`grad`] runs reverse mode (vector–Jacobian products). Its backward rules are ordinary
//!   tensor operations, so with `create_graph = true` the gradients are themselves recorded and
//!   can be differentiated again (gradients of gradients, Hessian–vector products: [`hvp`]).
//! - [`jvp`] runs forward mode over the recorded graph: tangents flow from inputs to outputs in
//!   one forward sweep with per-operation rules (Jacobian–vector products without forming a
//!   Jacobian and without a second reverse pass).

mod rules;

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::backend::cpu::conv::PatchGeom;
use crate::backend::cpu::kernels::{BinaryOp, UnaryOp};
use crate::error::{Error, Result};
use crate::tensor::{Tensor, MAX_RANK};

thread_local! {
    static RECORDING: Cell<bool> = const { Cell::new(true) };
}

/// Whether operations are being recorded on this thread.
pub fn is_recording() -> bool {
    RECORDING.with(|r| r.get())
}

/// Runs `f` with recording off: results are plain values (inference, optimizer updates).
pub fn no_grad<R>(f: impl FnOnce() -> R) -> R {
    with_recording(false, f)
}

/// Runs `f` with recording set to `on`, restoring the previous state afterwards (also on panic).
pub fn with_recording<R>(on: bool, f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            RECORDING.with(|r| r.set(self.0));
        }
    }
    let _restore = Restore(RECORDING.with(|r| r.replace(on)));
    f()
}

/// How a tensor was computed (the inputs are kept alive for the backward pass).
#[derive(Clone)]
pub(crate) enum Op {
    Unary(Tensor, UnaryOp),
    /// Input and the multiplier `a` of `a·x + b`.
    Affine(Tensor, f64),
    Powf(Tensor, f64),
    Binary(Tensor, Tensor, BinaryOp),
    /// Mask (detached), then the two branches.
    Where(Tensor, Tensor, Tensor),
    Matmul(Tensor, Tensor, bool, bool),
    /// Sum over an axis, kept with size 1.
    Sum(Tensor, usize),
    /// Maximum over an axis, kept with size 1.
    Max(Tensor, usize),
    BroadcastTo(Tensor),
    Reshape(Tensor),
    Permute(Tensor, [usize; MAX_RANK]),
    /// Axis and start; the length is the output's.
    Narrow(Tensor, usize, usize),
    /// Axis and start; the full size is the output's.
    Pad(Tensor, usize, usize),
    Concat(Vec<Tensor>, usize),
    IndexSelect(Tensor, usize, Arc<[usize]>),
    IndexAdd(Tensor, usize, Arc<[usize]>),
    Cast(Tensor),
    /// A copy to another device.
    ToDevice(Tensor),
    /// The patch matrix of an image (the padding's fill is not differentiated).
    Im2col(Tensor, PatchGeom),
    /// Patches summed back into an image.
    Col2im(Tensor, PatchGeom),
    /// A CPU convolution: image, weight, bias, and the geometry (channels-last patches).
    Conv2d(Tensor, Tensor, Option<Tensor>, PatchGeom),
    /// The weight gradient of a CPU convolution: image, output gradient, geometry.
    Conv2dWeightGrad(Tensor, Tensor, PatchGeom),
    /// Batch normalisation in training mode on the CPU (one fused kernel): image `x`, `γ`, `β`,
    /// then the batch mean and biased variance `[c]` the forward pass computed (values for the
    /// fused backward kernel, not inputs) and `ε`.
    BatchNorm(Tensor, Tensor, Tensor, Tensor, Tensor, f64),
    /// Max pooling on the CPU (one kernel): image and the pooling geometry (column layout,
    /// one group per channel).
    MaxPool2d(Tensor, PatchGeom),
}

impl Op {
    /// The differentiable inputs.
    pub(crate) fn inputs(&self) -> Vec<&Tensor> {
        match self {
            Op::Unary(a, _)
            | Op::Affine(a, ..)
            | Op::Powf(a, _)
            | Op::Sum(a, _)
            | Op::Max(a, _)
            | Op::BroadcastTo(a)
            | Op::Reshape(a)
            | Op::Permute(a, _)
            | Op::Narrow(a, ..)
            | Op::Pad(a, ..)
            | Op::IndexSelect(a, ..)
            | Op::IndexAdd(a, ..)
            | Op::Cast(a)
            | Op::ToDevice(a)
            | Op::Im2col(a, _)
            | Op::Col2im(a, _)
            | Op::MaxPool2d(a, _) => vec![a],
            Op::Binary(a, b, _) | Op::Matmul(a, b, ..) | Op::Conv2dWeightGrad(a, b, _) => {
                vec![a, b]
            }
            Op::Where(_, a, b) => vec![a, b],
            Op::BatchNorm(x, gamma, beta, ..) => vec![x, gamma, beta],
            Op::Conv2d(x, w, b, _) => [Some(x), Some(w), b.as_ref()]
                .into_iter()
                .flatten()
                .collect(),
            Op::Concat(parts, _) => parts.iter().collect(),
        }
    }
}

/// Tracked nodes reachable from `roots`, inputs before the nodes that use them.
fn topo_order(roots: &[&Tensor]) -> Vec<Tensor> {
    let mut order = Vec::new();
    let mut visited = HashSet::new();
    // Iterative post-order DFS (graphs can be deep: long rollouts through an integrator).
    let mut stack: Vec<(Tensor, bool)> = roots
        .iter()
        .filter(|t| t.is_tracked())
        .map(|t| ((*t).clone(), false))
        .collect();
    while let Some((t, expanded)) = stack.pop() {
        if expanded {
            order.push(t);
            continue;
        }
        if !visited.insert(t.id()) {
            continue;
        }
        stack.push((t.clone(), true));
        if let Some(op) = t.op() {
            for i in op.inputs() {
                if i.is_tracked() && !visited.contains(&i.id()) {
                    stack.push((i.clone(), false));
                }
            }
        }
    }
    order
}

/// Reverse mode: the gradients of `Σ_k ⟨seed_k, output_k⟩` with respect to each input (`None`
/// where an input does not influence the outputs). A `None` seed means ones (for a scalar output,
/// d output / d input).
///
/// With `create_graph`, the gradient computation is recorded so the results can be
/// differentiated again.
///
/// # Errors
/// [`Error::ShapeMismatch`] if a seed's shape differs from its output's; [`Error::NotTracked`] if
/// an input is not a variable.
pub fn grad(
    outputs: &[&Tensor],
    seeds: &[Option<&Tensor>],
    inputs: &[&Tensor],
    create_graph: bool,
) -> Result<Vec<Option<Tensor>>> {
    for i in inputs {
        if !i.is_tracked() {
            return Err(Error::NotTracked { op: "grad" });
        }
    }
    with_recording(create_graph, || {
        let mut grads: HashMap<u64, Tensor> = HashMap::new();
        for (k, out) in outputs.iter().enumerate() {
            let seed = match seeds.get(k).copied().flatten() {
                Some(s) => {
                    if s.shape() != out.shape() {
                        return Err(Error::ShapeMismatch {
                            op: "grad seed",
                            lhs: out.shape(),
                            rhs: s.shape(),
                        });
                    }
                    s.clone()
                }
                None => out.ones_like()?,
            };
            accumulate(&mut grads, out.id(), seed)?;
        }
        let order = topo_order(outputs);
        let wanted: HashSet<u64> = inputs.iter().map(|t| t.id()).collect();
        // Nodes with a path to a wanted input (`order` lists inputs before their users): only
        // their gradients are computed.
        let mut needed: HashSet<u64> = HashSet::new();
        for node in &order {
            let leads = wanted.contains(&node.id())
                || node
                    .op()
                    .is_some_and(|op| op.inputs().iter().any(|i| needed.contains(&i.id())));
            if leads {
                needed.insert(node.id());
            }
        }
        let wants = |t: &Tensor| needed.contains(&t.id());
        for node in order.iter().rev() {
            let Some(op) = node.op() else { continue };
            if !needed.contains(&node.id()) {
                continue;
            }
            let Some(g) = grads.get(&node.id()).cloned() else {
                continue;
            };
            if !wanted.contains(&node.id()) {
                grads.remove(&node.id());
            }
            for (input, gi) in rules::vjp(op, node, &g, &wants)? {
                if input.is_tracked() {
                    accumulate(&mut grads, input.id(), gi)?;
                }
            }
        }
        Ok(inputs.iter().map(|t| grads.get(&t.id()).cloned()).collect())
    })
}

fn accumulate(grads: &mut HashMap<u64, Tensor>, id: u64, g: Tensor) -> Result<()> {
    let new = match grads.remove(&id) {
        Some(prev) => prev.add(&g)?,
        None => g,
    };
    grads.insert(id, new);
    Ok(())
}

/// Gradients of a scalar `loss` with respect to `params` (zeros where a parameter is unused),
/// not recorded — the training-loop case.
///
/// # Errors
/// [`Error::ShapeMismatch`] unless `loss` has one element; as [`grad`].
pub fn backward(loss: &Tensor, params: &[&Tensor]) -> Result<Vec<Tensor>> {
    if loss.numel() != 1 {
        return Err(Error::ShapeMismatch {
            op: "backward (loss must be a scalar)",
            lhs: loss.shape(),
            rhs: crate::tensor::Shape::scalar(),
        });
    }
    let g = grad(&[loss], &[None], params, false)?;
    g.into_iter()
        .zip(params)
        .map(|(g, p)| match g {
            Some(g) => Ok(g),
            None => p.zeros_like(),
        })
        .collect()
}

/// Forward mode: the directional derivatives `J·t` of `outputs` along `tangents` of `inputs`
/// (`None` where an output does not depend on the inputs). The outputs must have been computed
/// from the inputs while recording.
///
/// # Errors
/// [`Error::ShapeMismatch`] if a tangent's shape differs from its input's.
pub fn jvp(
    outputs: &[&Tensor],
    inputs: &[&Tensor],
    tangents: &[&Tensor],
) -> Result<Vec<Option<Tensor>>> {
    let mut tan: HashMap<u64, Tensor> = HashMap::new();
    for (i, t) in inputs.iter().zip(tangents) {
        if i.shape() != t.shape() {
            return Err(Error::ShapeMismatch {
                op: "jvp tangent",
                lhs: i.shape(),
                rhs: t.shape(),
            });
        }
        tan.insert(i.id(), (*t).clone());
    }
    for node in topo_order(outputs) {
        if tan.contains_key(&node.id()) {
            continue;
        }
        let Some(op) = node.op() else { continue };
        if let Some(t) = rules::jvp(op, &node, &tan)? {
            tan.insert(node.id(), t);
        }
    }
    Ok(outputs.iter().map(|o| tan.get(&o.id()).cloned()).collect())
}

/// Hessian–vector product `∇²f(x)·v` of a scalar `f` computed from the variable `x`, by
/// differentiating `⟨∇f, v⟩` again (reverse over reverse).
///
/// `f` must have been computed while recording.
///
/// # Errors
/// As [`grad`].
pub fn hvp(f: &Tensor, x: &Tensor, v: &Tensor) -> Result<Tensor> {
    let Some(g) = grad(&[f], &[None], &[x], true)?.pop().flatten() else {
        return x.zeros_like();
    };
    let gv = with_recording(true, || g.mul(v).and_then(|t| t.sum_all()))?;
    if !gv.is_tracked() {
        return x.zeros_like();
    }
    match grad(&[&gv], &[None], &[x], false)?.pop().flatten() {
        Some(h) => Ok(h),
        None => x.zeros_like(),
    }
}
