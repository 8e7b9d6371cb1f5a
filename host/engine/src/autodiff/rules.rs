//! Derivative rules of every primitive, written with tensor operations (so they can be recorded
//! and differentiated again).

use std::collections::HashMap;

use super::Op;
use crate::backend::ops::{BinaryOp, UnaryOp};
use crate::error::Result;
use crate::tensor::Tensor;

/// `f'(x)` of an elementwise unary op, given its input `x` and output `y`.
fn unary_derivative(op: UnaryOp, x: &Tensor, y: &Tensor) -> Result<Tensor> {
    match op {
        UnaryOp::Neg => x.ones_like()?.neg(),
        UnaryOp::Exp => Ok(y.clone()),
        UnaryOp::Log => x.powf(-1.0),
        UnaryOp::Log1p => x.add_scalar(1.0)?.powf(-1.0),
        UnaryOp::Tanh => y.square()?.affine(-1.0, 1.0),
        UnaryOp::Sigmoid => y.mul(&y.affine(-1.0, 1.0)?),
        UnaryOp::Softplus => x.sigmoid(),
        UnaryOp::Relu => x.step(),
        UnaryOp::Sin => x.cos(),
        UnaryOp::Cos => x.sin()?.neg(),
        UnaryOp::Sqrt => y.powf(-1.0)?.mul_scalar(0.5),
        UnaryOp::Square => x.mul_scalar(2.0),
        UnaryOp::Abs => x.sign(),
        UnaryOp::Step | UnaryOp::Sign => x.zeros_like(),
    }
}

/// Vector–Jacobian products: for each input of `op` (which produced `out`) that `wants`
/// (a tracked input on a path to a wanted gradient), its share of the cotangent `g`. Inputs of
/// several-input ops that do not lead to a wanted gradient are not differentiated at all (the
/// input gradient of a first convolution whose image is a variable but not asked for, say).
pub(super) fn vjp<'a>(
    op: &'a Op,
    out: &Tensor,
    g: &Tensor,
    wants: &dyn Fn(&Tensor) -> bool,
) -> Result<Vec<(&'a Tensor, Tensor)>> {
    Ok(match op {
        Op::Unary(x, u) => {
            // One pass where the product with the derivative has one: g · step(x) for a ReLU,
            // g / x for a logarithm (a correctly rounded quotient, not a power and a product).
            let gx = match u {
                UnaryOp::Neg => g.neg()?,
                UnaryOp::Relu => g.mul_step(x)?,
                UnaryOp::Log => g.div(x)?,
                u => g.mul(&unary_derivative(*u, x, out)?)?,
            };
            vec![(x, gx)]
        }
        Op::Affine(x, a) => vec![(x, g.mul_scalar(*a)?)],
        Op::Powf(x, c) => vec![(x, g.mul(&x.powf(c - 1.0)?.mul_scalar(*c)?)?)],
        Op::Binary(a, b, bop) => {
            let (da, db) = (a.dims(), b.dims());
            if matches!(bop, BinaryOp::Max | BinaryOp::Gt | BinaryOp::Eq) {
                return Ok(vec![]);
            }
            // relu(a + b) passes the cotangent where its output is positive, to both operands.
            let masked;
            let g = if *bop == BinaryOp::AddRelu {
                masked = g.mul_step(out)?;
                &masked
            } else {
                g
            };
            // Only operands that gradients flow to are differentiated.
            let mut v = Vec::with_capacity(2);
            if wants(a) {
                let ga = match bop {
                    BinaryOp::Mul => g.mul(b)?,
                    BinaryOp::Div => g.div(b)?,
                    BinaryOp::MulStep => g.mul_step(b)?,
                    _ => g.clone(),
                };
                v.push((a, ga.sum_to(da)?));
            }
            if wants(b) && *bop != BinaryOp::MulStep {
                let gb = match bop {
                    BinaryOp::Sub => g.neg()?,
                    BinaryOp::Mul => g.mul(a)?,
                    // d(a/b)/db = −a/b² = −out/b
                    BinaryOp::Div => g.mul(out)?.div(b)?.neg()?,
                    _ => g.clone(),
                };
                v.push((b, gb.sum_to(db)?));
            }
            v
        }
        Op::Where(mask, a, b) => {
            let zero = g.zeros_like()?;
            let mut v = Vec::with_capacity(2);
            if wants(a) {
                v.push((a, Tensor::where_(mask, g, &zero)?.sum_to(a.dims())?));
            }
            if wants(b) {
                v.push((b, Tensor::where_(mask, &zero, g)?.sum_to(b.dims())?));
            }
            v
        }
        Op::Matmul(a, b, ta, tb) => {
            let (ta, tb) = (*ta, *tb);
            // C = Â·B̂ with Â = ta ? Aᵀ : A, B̂ = tb ? Bᵀ : B.
            let mut v = Vec::with_capacity(2);
            if wants(a) {
                let ga = if ta {
                    b.matmul_t(g, tb, true)?
                } else {
                    g.matmul_t(b, false, !tb)?
                };
                v.push((a, ga.sum_to(a.dims())?));
            }
            if wants(b) {
                let gb = if tb {
                    g.matmul_t(a, true, ta)?
                } else {
                    a.matmul_t(g, !ta, false)?
                };
                v.push((b, gb.sum_to(b.dims())?));
            }
            v
        }
        Op::Sum(x, _) => vec![(x, g.broadcast_to(x.dims())?)],
        Op::Max(x, axis) => {
            let mask = x.eq(&out.broadcast_to(x.dims())?)?;
            let count = mask.sum_keepdim(*axis)?;
            vec![(x, g.div(&count)?.broadcast_to(x.dims())?.mul(&mask)?)]
        }
        Op::BroadcastTo(x) => vec![(x, g.sum_to(x.dims())?)],
        Op::Reshape(x) => vec![(x, g.reshape(x.dims())?)],
        Op::Permute(x, p) => {
            let r = x.rank();
            let mut inv = vec![0; r];
            for (i, &pi) in p[..r].iter().enumerate() {
                inv[pi] = i;
            }
            vec![(x, g.permute(&inv)?)]
        }
        Op::Narrow(x, axis, start) => {
            vec![(x, g.pad_axis(*axis as isize, *start, x.dims()[*axis])?)]
        }
        Op::Pad(x, axis, start) => vec![(x, g.narrow(*axis as isize, *start, x.dims()[*axis])?)],
        Op::Concat(parts, axis) => {
            let mut start = 0;
            let mut v = Vec::with_capacity(parts.len());
            for p in parts {
                let len = p.dims()[*axis];
                if wants(p) {
                    v.push((p, g.narrow(*axis as isize, start, len)?));
                }
                start += len;
            }
            v
        }
        Op::IndexSelect(x, axis, idx) => {
            vec![(x, g.index_add(*axis as isize, idx, x.dims()[*axis])?)]
        }
        Op::IndexAdd(x, axis, idx) => vec![(x, g.index_select(*axis as isize, idx)?)],
        Op::Cast(x) => vec![(x, g.to_dtype(x.dtype())?)],
        Op::ToDevice(x) => vec![(x, g.to_device(x.device())?)],
        Op::Im2col(x, geom) => vec![(x, g.col2im(geom)?)],
        Op::Col2im(x, geom) => vec![(x, g.im2col(geom, 0.0)?)],
        Op::Conv2d(x, w, b, geom) => {
            let mut v = Vec::with_capacity(3);
            if wants(x) {
                v.push((x, g.conv2d_input_grad(w, geom)?));
            }
            if wants(w) {
                v.push((w, x.conv2d_weight_grad(g, geom)?));
            }
            if let Some(b) = b.as_ref().filter(|b| wants(b)) {
                v.push((b, g.sum(&[0, 2, 3], false)?));
            }
            v
        }
        Op::MaxPool2d(x, geom) => vec![(x, x.max_pool2d_vjp(out, g, geom)?)],
        Op::BatchNorm(x, gamma, beta, mean, var, eps) => {
            let (dx, dgamma, dbeta) = x.batch_norm_vjp(g, [gamma, mean, var], *eps)?;
            let mut v = Vec::with_capacity(3);
            for (t, d) in [(x, dx), (gamma, dgamma), (beta, dbeta)] {
                if wants(t) {
                    v.push((t, d));
                }
            }
            v
        }
        // ⟨G, gw(x, gy)⟩ = ⟨gy, conv(x, G)⟩: bilinear in the image and the output gradient.
        Op::Conv2dWeightGrad(x, gy, geom) => {
            let mut v = Vec::with_capacity(2);
            if wants(x) {
                v.push((x, gy.conv2d_input_grad(g, geom)?));
            }
            if wants(gy) {
                v.push((gy, x.conv2d_geom(g, None, geom)?));
            }
            v
        }
    })
}

/// Jacobian–vector product of one op: the output tangent from the input tangents in `tan`
/// (missing = zero). `None` when no input has a tangent.
pub(super) fn jvp(op: &Op, out: &Tensor, tan: &HashMap<u64, Tensor>) -> Result<Option<Tensor>> {
    let t = |x: &Tensor| tan.get(&x.id());
    Ok(match op {
        Op::Unary(x, u) => match t(x) {
            None => None,
            Some(tx) if matches!(u, UnaryOp::Neg) => Some(tx.neg()?),
            Some(tx) => Some(tx.mul(&unary_derivative(*u, x, out)?)?),
        },
        Op::Affine(x, a) => t(x).map(|tx| tx.mul_scalar(*a)).transpose()?,
        Op::Powf(x, c) => match t(x) {
            None => None,
            Some(tx) => Some(tx.mul(&x.powf(c - 1.0)?.mul_scalar(*c)?)?),
        },
        Op::Binary(a, b, bop) => {
            let (ta, tb) = (t(a), t(b));
            if ta.is_none() && tb.is_none() {
                return Ok(None);
            }
            let shape = out.dims();
            let (pa, pb) = match bop {
                BinaryOp::Add => (
                    ta.map(|x| x.broadcast_to(shape)).transpose()?,
                    tb.map(|x| x.broadcast_to(shape)).transpose()?,
                ),
                BinaryOp::Sub => (
                    ta.map(|x| x.broadcast_to(shape)).transpose()?,
                    tb.map(|x| x.neg()?.broadcast_to(shape)).transpose()?,
                ),
                BinaryOp::Mul => (
                    ta.map(|x| x.mul(b)).transpose()?,
                    tb.map(|x| a.mul(x)).transpose()?,
                ),
                BinaryOp::Div => (
                    ta.map(|x| x.div(b)).transpose()?,
                    tb.map(|x| x.mul(out)?.div(b)?.neg()).transpose()?,
                ),
                BinaryOp::AddRelu => (
                    ta.map(|x| x.broadcast_to(shape)?.mul_step(out))
                        .transpose()?,
                    tb.map(|x| x.broadcast_to(shape)?.mul_step(out))
                        .transpose()?,
                ),
                BinaryOp::MulStep => (ta.map(|x| x.mul_step(b)).transpose()?, None),
                BinaryOp::Max | BinaryOp::Gt | BinaryOp::Eq => (None, None),
            };
            sum_opt(pa, pb)?
        }
        Op::Where(mask, a, b) => {
            let (ta, tb) = (t(a), t(b));
            if ta.is_none() && tb.is_none() {
                return Ok(None);
            }
            let za = match ta {
                Some(x) => x.clone(),
                None => a.zeros_like()?,
            };
            let zb = match tb {
                Some(x) => x.clone(),
                None => b.zeros_like()?,
            };
            Some(Tensor::where_(mask, &za, &zb)?)
        }
        Op::Matmul(a, b, ta, tb) => {
            let pa = t(a).map(|x| x.matmul_t(b, *ta, *tb)).transpose()?;
            let pb = t(b).map(|x| a.matmul_t(x, *ta, *tb)).transpose()?;
            sum_opt(pa, pb)?
        }
        Op::Sum(x, axis) => t(x).map(|tx| tx.sum_keepdim(*axis)).transpose()?,
        Op::Max(x, axis) => match t(x) {
            None => None,
            Some(tx) => {
                let mask = x.eq(&out.broadcast_to(x.dims())?)?;
                let count = mask.sum_keepdim(*axis)?;
                Some(tx.mul(&mask)?.sum_keepdim(*axis)?.div(&count)?)
            }
        },
        Op::BroadcastTo(x) => t(x).map(|tx| tx.broadcast_to(out.dims())).transpose()?,
        Op::Reshape(x) => t(x).map(|tx| tx.reshape(out.dims())).transpose()?,
        Op::Permute(x, p) => t(x).map(|tx| tx.permute(&p[..x.rank()])).transpose()?,
        Op::Narrow(x, axis, start) => t(x)
            .map(|tx| tx.narrow(*axis as isize, *start, out.dims()[*axis]))
            .transpose()?,
        Op::Pad(x, axis, start) => t(x)
            .map(|tx| tx.pad_axis(*axis as isize, *start, out.dims()[*axis]))
            .transpose()?,
        Op::Concat(parts, axis) => {
            if parts.iter().all(|p| t(p).is_none()) {
                return Ok(None);
            }
            let pieces = parts
                .iter()
                .map(|p| match t(p) {
                    Some(x) => Ok(x.clone()),
                    None => p.zeros_like(),
                })
                .collect::<Result<Vec<_>>>()?;
            Some(Tensor::concat(&pieces, *axis as isize)?)
        }
        Op::IndexSelect(x, axis, idx) => t(x)
            .map(|tx| tx.index_select(*axis as isize, idx))
            .transpose()?,
        Op::IndexAdd(x, axis, idx) => t(x)
            .map(|tx| tx.index_add(*axis as isize, idx, out.dims()[*axis]))
            .transpose()?,
        Op::Cast(x) => t(x).map(|tx| tx.to_dtype(out.dtype())).transpose()?,
        Op::ToDevice(x) => t(x).map(|tx| tx.to_device(out.device())).transpose()?,
        Op::Im2col(x, geom) => t(x).map(|tx| tx.im2col(geom, 0.0)).transpose()?,
        Op::Col2im(x, geom) => t(x).map(|tx| tx.col2im(geom)).transpose()?,
        Op::Conv2d(x, w, b, geom) => {
            let px = t(x).map(|tx| tx.conv2d_geom(w, None, geom)).transpose()?;
            let pw = t(w).map(|tw| x.conv2d_geom(tw, None, geom)).transpose()?;
            let pb = match b.as_ref().and_then(t) {
                Some(tb) => Some(
                    tb.reshape(&[1, tb.numel(), 1, 1])?
                        .broadcast_to(out.dims())?,
                ),
                None => None,
            };
            sum_opt(sum_opt(px, pw)?, pb)?
        }
        Op::MaxPool2d(x, geom) => match t(x) {
            None => None,
            Some(tx) => {
                let (mask, count) = x.max_pool2d_ties(out, geom)?;
                Some(
                    tx.im2col(geom, 0.0)?
                        .mul(&mask)?
                        .sum_keepdim(1)?
                        .div(&count)?
                        .reshape(&[geom.c, geom.n, geom.oh, geom.ow])?
                        .permute(&[1, 0, 2, 3])?,
                )
            }
        },
        // ẏ = γ/s·(ẋ − mean(ẋ) − x̂·mean(x̂·ẋ)) + γ̇·x̂ + β̇.
        Op::BatchNorm(x, gamma, beta, _, _, eps) => {
            let (tx, tg, tb) = (t(x), t(gamma), t(beta));
            if tx.is_none() && tg.is_none() && tb.is_none() {
                return Ok(None);
            }
            let c = gamma.numel();
            let (xhat, inv) = x.batch_norm_parts(*eps)?;
            let ch = |v: &Tensor| v.reshape(&[1, c, 1, 1]);
            let px = match tx {
                Some(tx) => {
                    let proj = xhat.mul(&tx.mul(&xhat)?.mean(&[0, 2, 3], true)?)?;
                    Some(
                        tx.sub(&tx.mean(&[0, 2, 3], true)?)?
                            .sub(&proj)?
                            .mul(&inv.mul(&ch(gamma)?)?)?,
                    )
                }
                None => None,
            };
            let pg = tg.map(|tg| xhat.mul(&ch(tg)?)).transpose()?;
            let pb = tb.map(|tb| ch(tb)?.broadcast_to(out.dims())).transpose()?;
            sum_opt(sum_opt(px, pg)?, pb)?
        }
        Op::Conv2dWeightGrad(x, gy, geom) => {
            let px = t(x).map(|tx| tx.conv2d_weight_grad(gy, geom)).transpose()?;
            let pg = t(gy).map(|tg| x.conv2d_weight_grad(tg, geom)).transpose()?;
            sum_opt(px, pg)?
        }
    })
}

fn sum_opt(a: Option<Tensor>, b: Option<Tensor>) -> Result<Option<Tensor>> {
    Ok(match (a, b) {
        (Some(a), Some(b)) => Some(a.add(&b)?),
        (a, b) => a.or(b),
    })
}
