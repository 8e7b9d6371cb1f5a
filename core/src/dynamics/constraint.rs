//! Holonomic constraints `Φ(x) = 0` of a node graph, with analytic `Φ`, `Φ̇ = D_xΦ · v` and their
//! Jacobians (the reference code's `biases/systems/rigid_body.py`, `dist_constraints_DPhi` and
//! `joint_constraints_DPhi`).
//!
//! Three kinds cover every system of the paper:
//! - [`Constraint::Distance`]: `|x_a − x_b|² − l² = 0` (rods, a rigid body's internal edges);
//! - [`Constraint::Tether`]: `|x_i − c|² − l² = 0` to a fixed point `c`;
//! - [`Constraint::Linear`]: `Σ_k w_k x_{n_k, axis} − b = 0`, one spatial axis at a time. A joint
//!   between two bodies is `D` of these with barycentric weights `c̃ = (1 − Σc, c₁, …, c_{d_b})`
//!   on each body's nodes (`+` for one body, `−` for the other); a joint to a fixed point `q`
//!   has `b = q_axis`.
//!
//! Every kind satisfies `∂Φ̇/∂v = ∂Φ/∂x`, which the projected dynamics relies on.

use crate::error::{Error, Result};
use crate::real::Real;

/// Most nodes a linear constraint can involve: two 3-D bodies of 4 nodes each.
pub const MAX_LINEAR_TERMS: usize = 8;

/// One scalar linear constraint `Σ_k w_k x_{n_k, axis} = offset`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Linear<T> {
    axis: usize,
    nodes: [usize; MAX_LINEAR_TERMS],
    weights: [T; MAX_LINEAR_TERMS],
    len: usize,
    offset: T,
}

impl<T: Real> Linear<T> {
    /// An empty constraint on `axis` with right-hand side `offset`.
    pub fn new(axis: usize, offset: T) -> Self {
        Self {
            axis,
            nodes: [0; MAX_LINEAR_TERMS],
            weights: [T::ZERO; MAX_LINEAR_TERMS],
            len: 0,
            offset,
        }
    }

    /// Adds the term `weight · x_{node, axis}`.
    ///
    /// # Errors
    /// [`Error::CountMismatch`] beyond [`MAX_LINEAR_TERMS`] terms.
    pub fn push(&mut self, node: usize, weight: T) -> Result<()> {
        if self.len == MAX_LINEAR_TERMS {
            return Err(Error::CountMismatch {
                what: "linear-constraint terms",
                expected: MAX_LINEAR_TERMS,
                got: self.len + 1,
            });
        }
        self.nodes[self.len] = node;
        self.weights[self.len] = weight;
        self.len += 1;
        Ok(())
    }

    /// The spatial axis constrained.
    pub fn axis(&self) -> usize {
        self.axis
    }

    /// The `(node, weight)` terms.
    pub fn terms(&self) -> impl Iterator<Item = (usize, T)> + '_ {
        self.nodes[..self.len]
            .iter()
            .copied()
            .zip(self.weights[..self.len].iter().copied())
    }

    /// The right-hand side.
    pub fn offset(&self) -> T {
        self.offset
    }
}

/// A scalar holonomic constraint on `D`-dimensional node positions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Constraint<T, const D: usize> {
    /// `|x_a − x_b|² − length² = 0`.
    Distance {
        /// First node.
        a: usize,
        /// Second node.
        b: usize,
        /// Rest distance (> 0).
        length: T,
    },
    /// `|x_node − anchor|² − length² = 0`.
    Tether {
        /// Tethered node.
        node: usize,
        /// Fixed point.
        anchor: [T; D],
        /// Tether length (> 0).
        length: T,
    },
    /// `Σ_k w_k x_{n_k, axis} − offset = 0`.
    Linear(Linear<T>),
}

#[inline]
fn sub<T: Real, const D: usize>(a: &[T; D], b: &[T; D]) -> [T; D] {
    let mut r = [T::ZERO; D];
    for d in 0..D {
        r[d] = a[d] - b[d];
    }
    r
}

#[inline]
fn dot<T: Real, const D: usize>(a: &[T; D], b: &[T; D]) -> T {
    let mut s = T::ZERO;
    for d in 0..D {
        s += a[d] * b[d];
    }
    s
}

impl<T: Real, const D: usize> Constraint<T, D> {
    /// Checks indices against `n` nodes, the axis against `D`, and lengths.
    ///
    /// # Errors
    /// [`Error::IndexOutOfRange`] or [`Error::InvalidParameter`].
    pub fn validate(&self, n: usize) -> Result<()> {
        let node = |i: usize| {
            if i < n {
                Ok(())
            } else {
                Err(Error::IndexOutOfRange {
                    what: "node",
                    index: i,
                    len: n,
                })
            }
        };
        let length = |l: T| {
            if l > T::ZERO && l.is_finite() {
                Ok(())
            } else {
                Err(Error::InvalidParameter {
                    name: "length",
                    value: l.as_f64(),
                })
            }
        };
        match self {
            Constraint::Distance { a, b, length: l } => {
                node(*a)?;
                node(*b)?;
                if a == b {
                    return Err(Error::InvalidParameter {
                        name: "distance constraint node",
                        value: *a as f64,
                    });
                }
                length(*l)
            }
            Constraint::Tether {
                node: i,
                anchor,
                length: l,
            } => {
                node(*i)?;
                if anchor.iter().any(|v| !v.is_finite()) {
                    return Err(Error::InvalidParameter {
                        name: "anchor",
                        value: f64::NAN,
                    });
                }
                length(*l)
            }
            Constraint::Linear(lin) => {
                if lin.axis >= D {
                    return Err(Error::IndexOutOfRange {
                        what: "axis",
                        index: lin.axis,
                        len: D,
                    });
                }
                for (i, w) in lin.terms() {
                    node(i)?;
                    if !w.is_finite() {
                        return Err(Error::InvalidParameter {
                            name: "joint weight",
                            value: w.as_f64(),
                        });
                    }
                }
                Ok(())
            }
        }
    }

    /// Whether every node index is below `n` and a linear constraint's axis below `D` (the
    /// indexing preconditions of [`value`](Constraint::value) and the other evaluations).
    fn indices_fit(&self, n: usize) -> bool {
        match self {
            Constraint::Distance { a, b, .. } => *a < n && *b < n,
            Constraint::Tether { node, .. } => *node < n,
            Constraint::Linear(lin) => lin.axis < D && lin.terms().all(|(i, _)| i < n),
        }
    }

    /// `Φ(x)`.
    ///
    /// # Panics
    /// If a node index is `≥ N` or a linear constraint's axis `≥ D` (checked in debug builds):
    /// [`Constraint::validate`]`(N)` reports these as errors, and every constraint a
    /// [`Mechanics`](super::Mechanics) holds has passed it.
    #[inline]
    pub fn value<const N: usize>(&self, x: &[[T; D]; N]) -> T {
        debug_assert!(self.indices_fit(N), "constraint index out of range");
        match self {
            Constraint::Distance { a, b, length } => {
                let r = sub(&x[*a], &x[*b]);
                dot(&r, &r) - *length * *length
            }
            Constraint::Tether {
                node,
                anchor,
                length,
            } => {
                let r = sub(&x[*node], anchor);
                dot(&r, &r) - *length * *length
            }
            Constraint::Linear(lin) => {
                let mut s = -lin.offset;
                for (i, w) in lin.terms() {
                    s += w * x[i][lin.axis];
                }
                s
            }
        }
    }

    /// `Φ̇(x, v) = ∂Φ/∂x · v`.
    ///
    /// # Panics
    /// If a node index is `≥ N` or a linear constraint's axis `≥ D` (checked in debug builds):
    /// [`Constraint::validate`]`(N)` reports these as errors, and every constraint a
    /// [`Mechanics`](super::Mechanics) holds has passed it.
    #[inline]
    pub fn rate<const N: usize>(&self, x: &[[T; D]; N], v: &[[T; D]; N]) -> T {
        debug_assert!(self.indices_fit(N), "constraint index out of range");
        match self {
            Constraint::Distance { a, b, .. } => {
                T::TWO * dot(&sub(&x[*a], &x[*b]), &sub(&v[*a], &v[*b]))
            }
            Constraint::Tether { node, anchor, .. } => {
                T::TWO * dot(&sub(&x[*node], anchor), &v[*node])
            }
            Constraint::Linear(lin) => {
                let mut s = T::ZERO;
                for (i, w) in lin.terms() {
                    s += w * v[i][lin.axis];
                }
                s
            }
        }
    }

    /// Writes `∂Φ/∂x` (which also equals `∂Φ̇/∂v`) into `g`, overwriting it.
    ///
    /// # Panics
    /// If a node index is `≥ N` or a linear constraint's axis `≥ D` (checked in debug builds):
    /// [`Constraint::validate`]`(N)` reports these as errors, and every constraint a
    /// [`Mechanics`](super::Mechanics) holds has passed it.
    #[inline]
    pub fn gradient<const N: usize>(&self, x: &[[T; D]; N], g: &mut [[T; D]; N]) {
        debug_assert!(self.indices_fit(N), "constraint index out of range");
        *g = [[T::ZERO; D]; N];
        match self {
            Constraint::Distance { a, b, .. } => {
                for d in 0..D {
                    let r = T::TWO * (x[*a][d] - x[*b][d]);
                    g[*a][d] = r;
                    g[*b][d] = -r;
                }
            }
            Constraint::Tether { node, anchor, .. } => {
                for d in 0..D {
                    g[*node][d] = T::TWO * (x[*node][d] - anchor[d]);
                }
            }
            Constraint::Linear(lin) => {
                for (i, w) in lin.terms() {
                    g[i][lin.axis] += w;
                }
            }
        }
    }

    /// Writes `∂Φ̇/∂x` (a function of the velocities only) into `g`, overwriting it.
    ///
    /// # Panics
    /// If a node index is `≥ N` or a linear constraint's axis `≥ D` (checked in debug builds):
    /// [`Constraint::validate`]`(N)` reports these as errors, and every constraint a
    /// [`Mechanics`](super::Mechanics) holds has passed it.
    #[inline]
    pub fn rate_gradient<const N: usize>(&self, v: &[[T; D]; N], g: &mut [[T; D]; N]) {
        debug_assert!(self.indices_fit(N), "constraint index out of range");
        *g = [[T::ZERO; D]; N];
        match self {
            Constraint::Distance { a, b, .. } => {
                for d in 0..D {
                    let r = T::TWO * (v[*a][d] - v[*b][d]);
                    g[*a][d] = r;
                    g[*b][d] = -r;
                }
            }
            Constraint::Tether { node, .. } => {
                for d in 0..D {
                    g[*node][d] = T::TWO * v[*node][d];
                }
            }
            Constraint::Linear(_) => {}
        }
    }

    /// A scale for this constraint's residual: `l²` for distances and tethers (the residual is a
    /// squared length), 1 for linear constraints.
    pub fn scale(&self) -> T {
        match self {
            Constraint::Distance { length, .. } | Constraint::Tether { length, .. } => {
                *length * *length
            }
            Constraint::Linear(_) => T::ONE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fd_check(c: Constraint<f64, 3>) {
        let x = [[0.3, -0.2, 0.5], [1.1, 0.4, -0.7], [0.2, 0.9, 0.1]];
        let v = [[0.5, 0.1, -0.3], [-0.2, 0.8, 0.4], [0.6, -0.5, 0.2]];
        let mut g = [[0.0; 3]; 3];
        let mut gd = [[0.0; 3]; 3];
        c.gradient(&x, &mut g);
        c.rate_gradient(&v, &mut gd);
        let h = 1e-6;
        for i in 0..3 {
            for d in 0..3 {
                let (mut xp, mut xm) = (x, x);
                xp[i][d] += h;
                xm[i][d] -= h;
                let num = (c.value(&xp) - c.value(&xm)) / (2.0 * h);
                assert!((num - g[i][d]).abs() < 1e-8, "dΦ/dx {i},{d}");
                let num = (c.rate(&xp, &v) - c.rate(&xm, &v)) / (2.0 * h);
                assert!((num - gd[i][d]).abs() < 1e-8, "dΦ̇/dx {i},{d}");
                let (mut vp, mut vm) = (v, v);
                vp[i][d] += h;
                vm[i][d] -= h;
                let num = (c.rate(&x, &vp) - c.rate(&x, &vm)) / (2.0 * h);
                assert!((num - g[i][d]).abs() < 1e-8, "dΦ̇/dv {i},{d}");
            }
        }
    }

    #[test]
    fn jacobians_match_finite_differences() {
        fd_check(Constraint::Distance {
            a: 0,
            b: 2,
            length: 1.0,
        });
        fd_check(Constraint::Tether {
            node: 1,
            anchor: [0.1, 0.2, -0.3],
            length: 1.3,
        });
        let mut lin = Linear::new(1, 0.25);
        lin.push(0, 0.4).unwrap();
        lin.push(1, 0.6).unwrap();
        lin.push(2, -1.0).unwrap();
        fd_check(Constraint::Linear(lin));
    }

    #[test]
    fn validation_names_the_problem() {
        let c = Constraint::<f64, 2>::Distance {
            a: 0,
            b: 5,
            length: 1.0,
        };
        assert_eq!(
            c.validate(3),
            Err(Error::IndexOutOfRange {
                what: "node",
                index: 5,
                len: 3
            })
        );
        let c = Constraint::<f64, 2>::Tether {
            node: 0,
            anchor: [0.0; 2],
            length: -1.0,
        };
        assert!(matches!(
            c.validate(1),
            Err(Error::InvalidParameter { name: "length", .. })
        ));
        let c = Constraint::<f64, 2>::Linear(Linear::new(2, 0.0));
        assert!(c.validate(1).is_err());
    }
}
