//! Matrix-free null space of the stacked constraints, for monomials whose Gram matrix is too big
//! to form (`T(p, q)` of size `N = d^(p+q)` above [`super::DENSE_MAX`]).
//!
//! The method is Chebyshev-filtered subspace iteration (Zhou & Saad) on `G = Σ CᵢᵀCᵢ`, where each
//! `Cᵢ` is a Kronecker product minus the identity (a discrete generator) or a Kronecker sum (a
//! Lie-algebra generator) applied by mode products — neither `C` nor `G` is ever stored; one
//! product `G x` costs `O(N · (p+q) · nnz)` where `nnz` is the nonzeros per column of the base
//! generators. Around each filter sweep a Rayleigh–Ritz step on the block rotates to Ritz
//! vectors; those with `‖C v‖∞` at rounding level are locked (and the block stays orthogonal to
//! them), and the block doubles while it holds nothing but null vectors (the reference's "rank
//! doubling", since the null-space dimension is not known in advance).
//!
//! Why this and not the reference's momentum gradient descent on `‖C Q‖²`, or plain Lanczos: the
//! Gram spectra of these constraints are benign — for a compact group `G` is a sum of Casimir-like
//! operators whose nonzero eigenvalues are bounded away from 0 (for SO(3) on `T(k)`, `l(l+1)` with
//! `l ≥ 1`, against a largest of `k(k+1)`), so a degree-16 Chebyshev polynomial that is small on
//! `[a, λ_max]` and large at 0 amplifies null components by orders of magnitude per sweep, where
//! gradient descent converges at the rate of `λ₁/λ_max` per step. Single-vector Lanczos would find
//! only one vector of the (highly degenerate) null space; a block method is needed anyway.
//! Convergence is declared on the constraint residual itself, not on Ritz values, and the result
//! passes the same residual check as the dense solver's.

use keel_core::linalg::symmetric_eigen;
use keel_core::random::{standard_normal, Xoshiro256PlusPlus};
use rayon::prelude::*;

use super::{Constraint, MAX_BASIS_ENTRIES};
use crate::emlp::mat::Mat;
use crate::error::{Error, Result};

/// Degree of the Chebyshev filter per sweep.
const DEGREE: usize = 16;
/// Sweeps before giving up.
const MAX_SWEEPS: usize = 200;
/// First block size.
const FIRST_BLOCK: usize = 16;

/// `G = Σ CᵢᵀCᵢ` and the `Cᵢ` on vectors of length `n = d^k`.
pub(super) struct Operator<'a> {
    /// The constraints.
    pub cons: &'a [Constraint],
    /// Base dimension.
    pub d: usize,
    /// Strides of the `k` axes.
    pub stride: &'a [usize],
    /// Length `d^k`.
    pub n: usize,
}

/// Scratch for one worker.
struct Work {
    cx: Vec<f64>,
    t: Vec<f64>,
    u: Vec<f64>,
}

impl Work {
    fn new(n: usize) -> Work {
        Work {
            cx: vec![0.0; n],
            t: vec![0.0; n],
            u: vec![0.0; n],
        }
    }
}

impl Operator<'_> {
    /// `out += M_a ×_a x`: the mode-`a` product with the axis matrix whose column nonzeros are
    /// `nz` (`nz[j] = [(r, M[r, j])]`).
    fn mode(&self, nz: &[Vec<(usize, f64)>], a: usize, x: &[f64], out: &mut [f64]) {
        let s = self.stride[a];
        for (m, &xv) in x.iter().enumerate() {
            if xv == 0.0 {
                continue;
            }
            let j = (m / s) % self.d;
            let base = m - j * s;
            for &(r, v) in &nz[j] {
                out[base + r * s] += v * xv;
            }
        }
    }

    /// `y = C x` (`transpose`: `Cᵀ x`) for one constraint.
    fn apply(&self, c: &Constraint, transpose: bool, x: &[f64], y: &mut [f64], w: &mut Work) {
        let lists = if transpose { &c.rows } else { &c.cols };
        y.fill(0.0);
        if c.kron {
            w.t.copy_from_slice(x);
            for (a, nz) in lists.iter().enumerate() {
                w.u.fill(0.0);
                self.mode(nz, a, &w.t, &mut w.u);
                std::mem::swap(&mut w.t, &mut w.u);
            }
            for ((y, t), x) in y.iter_mut().zip(&w.t).zip(x) {
                *y = t - x;
            }
        } else {
            for (a, nz) in lists.iter().enumerate() {
                self.mode(nz, a, x, y);
            }
        }
    }

    /// `y = G x`.
    fn gram(&self, x: &[f64], w: &mut Work) -> Vec<f64> {
        let mut y = vec![0.0; self.n];
        let mut back = vec![0.0; self.n];
        let mut cx = std::mem::take(&mut w.cx);
        for c in self.cons {
            self.apply(c, false, x, &mut cx, w);
            self.apply(c, true, &cx, &mut back, w);
            y.iter_mut().zip(&back).for_each(|(y, b)| *y += b);
        }
        w.cx = cx;
        y
    }

    /// `max_i ‖Cᵢ x‖∞`.
    fn residual(&self, x: &[f64], w: &mut Work) -> f64 {
        let mut cx = std::mem::take(&mut w.cx);
        let mut worst = 0.0f64;
        for c in self.cons {
            self.apply(c, false, x, &mut cx, w);
            worst = cx.iter().fold(worst, |m, v| m.max(v.abs()));
        }
        w.cx = cx;
        worst
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn random_vector(n: usize, rng: &mut Xoshiro256PlusPlus) -> Vec<f64> {
    (0..n).map(|_| standard_normal::<f64, _>(rng)).collect()
}

/// Orthonormalises `block` against `locked` (already orthonormal) and itself, twice (modified
/// Gram–Schmidt); a vector that loses all but `1e-10` of its norm is replaced by a fresh random
/// one.
fn orthonormalize(locked: &[Vec<f64>], block: &mut [Vec<f64>], rng: &mut Xoshiro256PlusPlus) {
    let n = block.first().map_or(0, Vec::len);
    for i in 0..block.len() {
        for attempt in 0..4 {
            let (done, rest) = block.split_at_mut(i);
            let v = &mut rest[0];
            let before = dot(v, v).sqrt();
            for _ in 0..2 {
                for u in locked.iter().chain(done.iter()) {
                    let c = dot(u, v);
                    v.iter_mut().zip(u).for_each(|(x, u)| *x -= c * u);
                }
            }
            let norm = dot(v, v).sqrt();
            if norm > 1e-10 * before && norm > 0.0 {
                v.iter_mut().for_each(|x| *x /= norm);
                break;
            }
            if attempt < 3 {
                *v = random_vector(n, rng);
            }
        }
    }
}

/// `p(G) x` with the degree-[`DEGREE`] Chebyshev polynomial of the first kind mapped to the
/// interval `[lo, hi]` (which it keeps within ±1) and normalised to unit length.
fn filter(op: &Operator<'_>, x: &[f64], lo: f64, hi: f64, w: &mut Work) -> Vec<f64> {
    let e = (hi - lo) / 2.0;
    let c = (hi + lo) / 2.0;
    let mut prev = x.to_vec();
    let gx = op.gram(x, w);
    let mut cur: Vec<f64> = gx.iter().zip(x).map(|(g, x)| (g - c * x) / e).collect();
    for _ in 1..DEGREE {
        let g = op.gram(&cur, w);
        let next: Vec<f64> = g
            .iter()
            .zip(&cur)
            .zip(&prev)
            .map(|((g, y), p)| 2.0 * (g - c * y) / e - p)
            .collect();
        prev = cur;
        cur = next;
        // Rescale to keep the numbers in range (the direction is what matters).
        let s = dot(&cur, &cur).sqrt();
        if s > 1e100 {
            cur.iter_mut().for_each(|v| *v /= s);
            prev.iter_mut().for_each(|v| *v /= s);
        }
    }
    let s = dot(&cur, &cur).sqrt();
    if s > 0.0 && s.is_finite() {
        cur.iter_mut().for_each(|v| *v /= s);
    }
    cur
}

/// An upper bound of `λ_max(G)` from 30 Lanczos steps: the largest Ritz value plus the last
/// off-diagonal (Zhou & Saad's bound estimator).
fn upper_bound(op: &Operator<'_>, rng: &mut Xoshiro256PlusPlus) -> Result<f64> {
    let steps = 30.min(op.n);
    let mut w = Work::new(op.n);
    let mut v = random_vector(op.n, rng);
    let s = dot(&v, &v).sqrt();
    v.iter_mut().for_each(|x| *x /= s);
    let mut v_prev = vec![0.0; op.n];
    let (mut alpha, mut beta) = (Vec::new(), Vec::new());
    let mut b_prev = 0.0;
    for _ in 0..steps {
        let mut f = op.gram(&v, &mut w);
        let a = dot(&f, &v);
        f.iter_mut()
            .zip(&v)
            .zip(&v_prev)
            .for_each(|((f, v), p)| *f -= a * v + b_prev * p);
        let b = dot(&f, &f).sqrt();
        alpha.push(a);
        beta.push(b);
        if b <= 1e-14 * a.abs().max(1e-300) {
            break;
        }
        v_prev = std::mem::replace(&mut v, f.iter().map(|x| x / b).collect());
        b_prev = b;
    }
    let k = alpha.len();
    let mut t = vec![0.0; k * k];
    for i in 0..k {
        t[i * k + i] = alpha[i];
        if i + 1 < k {
            t[i * k + i + 1] = beta[i];
            t[(i + 1) * k + i] = beta[i];
        }
    }
    let mut vecs = vec![0.0; k * k];
    symmetric_eigen(&mut t, k, &mut vecs).map_err(|e| Error::Solver {
        reason: format!("Lanczos bound: {e}"),
    })?;
    let top = (0..k).map(|i| t[i * k + i]).fold(0.0f64, f64::max);
    Ok(top + beta.last().copied().unwrap_or(0.0))
}

/// Orthonormal basis of the null space of the constraints, columns in the order they were
/// found. `tol` bounds `‖C v‖∞` of an accepted vector; `what` names the problem in errors.
pub(super) fn null_space(op: &Operator<'_>, tol: f64, what: &str) -> Result<Mat> {
    let n = op.n;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(0x6e75_6c6c);
    let hi = upper_bound(op, &mut rng)?;
    if !hi.is_finite() {
        return Err(Error::Solver {
            reason: format!("{what}: constraint matrix has non-finite entries"),
        });
    }
    if hi <= 0.0 {
        // No constraint acts: every vector is invariant.
        if n.saturating_mul(n) > MAX_BASIS_ENTRIES {
            return Err(Error::TooLarge {
                what: format!("{what}: basis {n} × {n}"),
                bytes: (n as u128) * (n as u128) * 8,
            });
        }
        return Ok(Mat::eye(n));
    }
    let mut locked: Vec<Vec<f64>> = Vec::new();
    let mut block: Vec<Vec<f64>> = (0..FIRST_BLOCK.min(n))
        .map(|_| random_vector(n, &mut rng))
        .collect();
    let mut prev_min = f64::INFINITY;
    let mut converged = false;
    for _sweep in 0..MAX_SWEEPS {
        orthonormalize(&locked, &mut block, &mut rng);
        // Rayleigh–Ritz on the block.
        let g: Vec<Vec<f64>> = block
            .par_iter()
            .map_init(|| Work::new(n), |w, v| op.gram(v, w))
            .collect();
        let m = block.len();
        let mut h = vec![0.0; m * m];
        for i in 0..m {
            for j in i..m {
                let x = 0.5 * (dot(&block[i], &g[j]) + dot(&block[j], &g[i]));
                h[i * m + j] = x;
                h[j * m + i] = x;
            }
        }
        let mut wv = vec![0.0; m * m];
        symmetric_eigen(&mut h, m, &mut wv).map_err(|e| Error::Solver {
            reason: format!("{what}: Rayleigh–Ritz: {e}"),
        })?;
        let mut order: Vec<usize> = (0..m).collect();
        order.sort_by(|&a, &b| h[a * m + a].total_cmp(&h[b * m + b]));
        let theta: Vec<f64> = order.iter().map(|&j| h[j * m + j].max(0.0)).collect();
        let ritz: Vec<Vec<f64>> = order
            .par_iter()
            .map(|&j| {
                let mut v = vec![0.0; n];
                for (i, b) in block.iter().enumerate() {
                    let c = wv[i * m + j];
                    v.iter_mut().zip(b).for_each(|(v, b)| *v += c * b);
                }
                v
            })
            .collect();
        // Lock the Ritz vectors that satisfy the constraints to rounding.
        let res: Vec<f64> = ritz
            .par_iter()
            .zip(&theta)
            .map_init(
                || Work::new(n),
                |w, (v, &t)| {
                    if t < 1e-8 * hi {
                        op.residual(v, w)
                    } else {
                        f64::INFINITY
                    }
                },
            )
            .collect();
        let mut rest = Vec::with_capacity(m);
        let mut newly = 0;
        for (v, r) in ritz.into_iter().zip(&res) {
            if *r <= tol {
                locked.push(v);
                newly += 1;
            } else {
                rest.push(v);
            }
        }
        if locked.len().saturating_mul(n) > MAX_BASIS_ENTRIES {
            return Err(Error::TooLarge {
                what: format!("{what}: basis {n} × {}+", locked.len()),
                bytes: (n as u128) * (locked.len() as u128) * 8,
            });
        }
        if locked.len() == n {
            converged = true;
            break;
        }
        let theta_rest: Vec<f64> = theta
            .iter()
            .zip(&res)
            .filter(|(_, r)| **r > tol)
            .map(|(t, _)| *t)
            .collect();
        let min_rest = theta_rest.first().copied().unwrap_or(f64::INFINITY);
        // Done when nothing new was found, the smallest remaining Ritz value is clearly not zero
        // and has stopped moving (a null direction left in the block keeps shrinking it).
        if newly == 0 && min_rest > 1e-6 * hi && (prev_min - min_rest).abs() <= 1e-3 * min_rest {
            converged = true;
            break;
        }
        prev_min = min_rest;
        // The block must keep room for non-null vectors: grow it while it is mostly null.
        let small = theta.iter().filter(|&&t| t < 1e-6 * hi).count();
        let room = n - locked.len();
        let mut target = m;
        if small + m / 8 + 2 >= m {
            target = (2 * m).min(room);
        }
        target = target.min(room);
        // Filter what remains (damping [a, hi], a = the block's largest Ritz value).
        let lo = theta_rest
            .last()
            .copied()
            .unwrap_or(0.5 * hi)
            .clamp(1e-3 * hi, 0.9 * hi);
        rest.truncate(target);
        while rest.len() < target {
            rest.push(random_vector(n, &mut rng));
        }
        block = rest
            .par_iter()
            .map_init(|| Work::new(n), |w, v| filter(op, v, lo, hi, w))
            .collect();
    }
    if !converged {
        return Err(Error::Solver {
            reason: format!(
                "{what}: the iterative null-space solver did not converge in {MAX_SWEEPS} sweeps"
            ),
        });
    }
    // Final clean-up: one more orthonormalisation of the locked set.
    let mut cols = locked;
    let none: [Vec<f64>; 0] = [];
    orthonormalize(&none, &mut cols, &mut rng);
    let mut q = Mat::zeros(n, cols.len());
    for (c, v) in cols.iter().enumerate() {
        for i in 0..n {
            *q.at_mut(i, c) = v[i];
        }
    }
    Ok(q)
}
