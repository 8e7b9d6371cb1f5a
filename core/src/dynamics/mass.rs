//! The true mass matrix of a graph of point masses and extended rigid bodies, and its
//! closed-form inverse (the reference code's `RigidBody.mass_matrix` in
//! `biases/systems/rigid_body.py`).
//!
//! An extended body of mass `m` with body dimension `d_b ∈ {0, 1, 2, 3}` is represented by
//! `d_b + 1` nodes: node 0 at the centre of mass, node `k` at `x₀ + R e_k` (unit principal
//! axes). With `I_k = m·λ_k`, `λ_k` the second moment `E[y_k²]` of the mass distribution along
//! axis `k`, the kinetic energy is `T = ½m|ẋ₀|² + ½Σ_k I_k|ẋ_k − ẋ₀|²`, i.e. the body block
//! of `M` is `[[m + ΣI, −I₁…−I_d], [−I_k, diag(I_k)]]`, and its inverse is
//! `M⁻¹ = (1/m)·11ᵀ + diag(0, 1/I₁, …, 1/I_d)`. A point mass is a body with `d_b = 0`.
//! `M` acts identically on every spatial coordinate (the full matrix is `M ⊗ I_D`).

use crate::error::{Error, Result};
use crate::real::Real;

/// Mass structure of `N` nodes grouped into bodies (consecutive nodes).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MassMatrix<T, const N: usize> {
    /// First node of each node's body.
    body_start: [usize; N],
    /// Number of nodes in the body that starts at this node (0 for non-first nodes).
    body_len: [usize; N],
    /// Body mass, stored at the body's first node.
    mass: [T; N],
    /// `I_k` at node `start + k` (0 at the centre-of-mass node).
    moment: [T; N],
    /// `1/m` at a body's first node (cached: `M⁻¹` is applied many times per step).
    inv_mass: [T; N],
    /// `1/I_k` at node `start + k` (0 at the centre-of-mass node).
    inv_moment: [T; N],
    /// Nodes assigned so far (equals `N` once complete).
    filled: usize,
}

impl<T: Real, const N: usize> MassMatrix<T, N> {
    /// An empty structure; add bodies with [`MassMatrix::add_point_mass`] and
    /// [`MassMatrix::add_body`] until all `N` nodes are assigned.
    pub fn empty() -> Self {
        Self {
            body_start: [0; N],
            body_len: [0; N],
            mass: [T::ZERO; N],
            moment: [T::ZERO; N],
            inv_mass: [T::ZERO; N],
            inv_moment: [T::ZERO; N],
            filled: 0,
        }
    }

    /// Adds a point mass; returns its node index.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if `m` is not positive and finite,
    /// [`Error::CountMismatch`] if all `N` nodes are already assigned.
    pub fn add_point_mass(&mut self, m: T) -> Result<usize> {
        self.add_body(m, &[])
    }

    /// Adds an extended body of mass `m` with the given moments `I_k = m·λ_k` (one per body
    /// axis, 0 to 3 of them); returns the index of its centre-of-mass node.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a non-positive mass or moment or more than 3 moments,
    /// [`Error::CountMismatch`] if the body does not fit in the remaining nodes.
    pub fn add_body(&mut self, m: T, moments: &[T]) -> Result<usize> {
        if !(m > T::ZERO) || !m.is_finite() {
            return Err(Error::InvalidParameter {
                name: "mass",
                value: m.as_f64(),
            });
        }
        if moments.len() > 3 {
            return Err(Error::InvalidParameter {
                name: "body dimension",
                value: moments.len() as f64,
            });
        }
        for &i in moments {
            if !(i > T::ZERO) || !i.is_finite() {
                return Err(Error::InvalidParameter {
                    name: "moment",
                    value: i.as_f64(),
                });
            }
        }
        let start = self.filled;
        let len = moments.len() + 1;
        if start + len > N {
            return Err(Error::CountMismatch {
                what: "nodes",
                expected: N,
                got: start + len,
            });
        }
        for k in 0..len {
            self.body_start[start + k] = start;
            self.body_len[start + k] = 0;
            self.mass[start + k] = T::ZERO;
            self.moment[start + k] = if k == 0 { T::ZERO } else { moments[k - 1] };
            self.inv_mass[start + k] = T::ZERO;
            self.inv_moment[start + k] = if k == 0 {
                T::ZERO
            } else {
                T::ONE / moments[k - 1]
            };
        }
        self.body_len[start] = len;
        self.mass[start] = m;
        self.inv_mass[start] = T::ONE / m;
        self.filled += len;
        Ok(start)
    }

    /// Nodes assigned to bodies so far.
    pub fn assigned(&self) -> usize {
        self.filled
    }

    /// Whether every node has been assigned to a body.
    pub fn is_complete(&self) -> bool {
        self.filled == N
    }

    /// The body (first node, node count) containing `node` (meaningful once `node` is assigned).
    ///
    /// # Panics
    /// If `node ≥ N` (checked in debug builds with a message). Callers that hold a node from
    /// data check it against `N` first, as [`learned::load`](super::learned::load) does.
    pub fn body_of(&self, node: usize) -> (usize, usize) {
        debug_assert!(node < N, "node {node} of {N}");
        let s = self.body_start[node];
        (s, self.body_len[s])
    }

    /// Mass of the body whose first node is `start` (0 for another node).
    ///
    /// # Panics
    /// If `start ≥ N` (checked in debug builds with a message).
    pub fn body_mass(&self, start: usize) -> T {
        debug_assert!(start < N, "node {start} of {N}");
        self.mass[start]
    }

    /// `I_k` stored at node `node` (0 for a centre-of-mass node).
    ///
    /// # Panics
    /// If `node ≥ N` (checked in debug builds with a message).
    pub fn moment(&self, node: usize) -> T {
        debug_assert!(node < N, "node {node} of {N}");
        self.moment[node]
    }

    /// `v = M⁻¹ p`, per spatial coordinate.
    #[inline]
    pub fn inverse_apply<const D: usize>(&self, p: &[[T; D]; N], v: &mut [[T; D]; N]) {
        let mut s = 0;
        while s < N {
            let len = self.body_len[s].max(1);
            let inv_m = self.inv_mass[s];
            if len == 1 {
                // Point mass: the common case, without the body loop.
                for d in 0..D {
                    v[s][d] = p[s][d] * inv_m;
                }
                s += 1;
                continue;
            }
            for d in 0..D {
                let mut total = T::ZERO;
                for k in 0..len {
                    total += p[s + k][d];
                }
                let base = total * inv_m;
                v[s][d] = base;
                for k in 1..len {
                    v[s + k][d] = base + p[s + k][d] * self.inv_moment[s + k];
                }
            }
            s += len;
        }
    }

    /// `p = M v`, per spatial coordinate.
    #[inline]
    pub fn apply<const D: usize>(&self, v: &[[T; D]; N], p: &mut [[T; D]; N]) {
        let mut s = 0;
        while s < N {
            let len = self.body_len[s].max(1);
            for d in 0..D {
                let mut p0 = self.mass[s] * v[s][d];
                for k in 1..len {
                    let i_k = self.moment[s + k];
                    let rel = v[s + k][d] - v[s][d];
                    p0 -= i_k * rel;
                    p[s + k][d] = i_k * rel;
                }
                p[s][d] = p0;
            }
            s += len;
        }
    }

    /// Column sums of `M` (the "gravitational mass" of each node): `m` at a body's
    /// centre-of-mass node, 0 at its axis nodes. `Σ_i w_i x_i = Σ_bodies m·x_com`.
    pub fn gravity_weights(&self) -> [T; N] {
        self.mass
    }

    /// The dense `N×N` matrix `M` (for tests and reports).
    pub fn dense(&self) -> [[T; N]; N] {
        let mut m = [[T::ZERO; N]; N];
        for (j, col) in (0..N).map(|j| {
            let mut e = [[T::ZERO; 1]; N];
            e[j][0] = T::ONE;
            let mut out = [[T::ZERO; 1]; N];
            self.apply(&e, &mut out);
            (j, out)
        }) {
            for i in 0..N {
                m[i][j] = col[i][0];
            }
        }
        m
    }

    /// The dense `N×N` matrix `M⁻¹` (for tests and reports).
    pub fn dense_inverse(&self) -> [[T; N]; N] {
        let mut m = [[T::ZERO; N]; N];
        for j in 0..N {
            let mut e = [[T::ZERO; 1]; N];
            e[j][0] = T::ONE;
            let mut out = [[T::ZERO; 1]; N];
            self.inverse_apply(&e, &mut out);
            for i in 0..N {
                m[i][j] = out[i][0];
            }
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_times_matrix_is_identity() {
        let mut m = MassMatrix::<f64, 6>::empty();
        m.add_point_mass(1.3).unwrap();
        m.add_body(0.7, &[0.2, 0.05]).unwrap();
        m.add_body(2.0, &[0.4]).unwrap();
        assert!(m.is_complete());
        let a = m.dense();
        let b = m.dense_inverse();
        for i in 0..6 {
            for j in 0..6 {
                let s: f64 = (0..6).map(|k| a[i][k] * b[k][j]).sum();
                let e = if i == j { 1.0 } else { 0.0 };
                assert!((s - e).abs() < 1e-13, "({i},{j}) = {s}");
                assert!((a[i][j] - a[j][i]).abs() < 1e-15, "M symmetric");
            }
        }
    }

    #[test]
    fn body_kinetic_energy_formula() {
        let mut m = MassMatrix::<f64, 4>::empty();
        m.add_body(0.5, &[0.1, 0.2, 0.3]).unwrap();
        let v = [
            [0.1, -0.2, 0.3],
            [1.0, 0.5, 0.0],
            [-0.3, 0.2, 0.9],
            [0.0, 0.0, -1.0],
        ];
        let mut p = [[0.0; 3]; 4];
        m.apply(&v, &mut p);
        let t_m: f64 = (0..4)
            .map(|i| (0..3).map(|d| v[i][d] * p[i][d]).sum::<f64>())
            .sum::<f64>()
            / 2.0;
        let sq = |a: [f64; 3]| a.iter().map(|x| x * x).sum::<f64>();
        let rel = |k: usize| [v[k][0] - v[0][0], v[k][1] - v[0][1], v[k][2] - v[0][2]];
        let t_f =
            0.5 * 0.5 * sq(v[0]) + 0.5 * (0.1 * sq(rel(1)) + 0.2 * sq(rel(2)) + 0.3 * sq(rel(3)));
        assert!((t_m - t_f).abs() < 1e-15);
    }

    #[test]
    fn rejects_bad_bodies() {
        let mut m = MassMatrix::<f32, 2>::empty();
        assert!(m.add_point_mass(0.0).is_err());
        assert!(m.add_point_mass(f32::NAN).is_err());
        assert!(m.add_body(1.0, &[-1.0]).is_err());
        assert!(m.add_body(1.0, &[1.0, 1.0]).is_err()); // 3 nodes do not fit in 2
        m.add_body(1.0, &[1.0]).unwrap();
        assert!(m.add_point_mass(1.0).is_err());
    }
}
