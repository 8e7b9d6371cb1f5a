//! Potential energies `V(x)` of node positions, with analytic gradients.
//!
//! Potentials compose: `(A, B)` is `A + B`, and `()` is the zero potential (a free body).

use crate::error::{Error, Result};
use crate::real::Real;

/// A potential energy `V(x)` on `N` nodes in `D` dimensions.
///
/// `energy` and `accumulate_gradient` are infallible (they run inside every integrator stage);
/// a potential that refers to nodes by index checks those indices once, in
/// [`validate`](Potential::validate), which [`MechanicsBuilder::build`](super::MechanicsBuilder::build)
/// calls.
pub trait Potential<T: Real, const N: usize, const D: usize> {
    /// `V(x)`.
    fn energy(&self, x: &[[T; D]; N]) -> T;
    /// Adds `∇V(x)` into `grad` (callers zero it first).
    fn accumulate_gradient(&self, x: &[[T; D]; N], grad: &mut [[T; D]; N]);
    /// Checks what `energy` and `accumulate_gradient` assume of the potential's own data (node
    /// indices below `N`). The default has nothing to check.
    ///
    /// # Errors
    /// [`Error::IndexOutOfRange`] for a node index `≥ N`.
    fn validate(&self) -> Result<()> {
        Ok(())
    }
}

/// `Ok` if `index < N`, else [`Error::IndexOutOfRange`] for `what`.
fn node<const N: usize>(what: &'static str, index: usize) -> Result<()> {
    if index < N {
        Ok(())
    } else {
        Err(Error::IndexOutOfRange {
            what,
            index,
            len: N,
        })
    }
}

impl<T: Real, const N: usize, const D: usize> Potential<T, N, D> for () {
    #[inline]
    fn energy(&self, _x: &[[T; D]; N]) -> T {
        T::ZERO
    }
    #[inline]
    fn accumulate_gradient(&self, _x: &[[T; D]; N], _grad: &mut [[T; D]; N]) {}
}

impl<T: Real, const N: usize, const D: usize, A, B> Potential<T, N, D> for (A, B)
where
    A: Potential<T, N, D>,
    B: Potential<T, N, D>,
{
    #[inline]
    fn energy(&self, x: &[[T; D]; N]) -> T {
        self.0.energy(x) + self.1.energy(x)
    }
    #[inline]
    fn accumulate_gradient(&self, x: &[[T; D]; N], grad: &mut [[T; D]; N]) {
        self.0.accumulate_gradient(x, grad);
        self.1.accumulate_gradient(x, grad);
    }
    fn validate(&self) -> Result<()> {
        self.0.validate()?;
        self.1.validate()
    }
}

/// Uniform gravity `g` along the negative last axis (−y in 2-D, −z in 3-D):
/// `V = g Σ_i w_i x_{i,vertical}`, where `w` are the column sums of the mass matrix (so a rigid
/// body contributes `g·m·z_com`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gravity<T, const N: usize> {
    /// Gravitational acceleration (m/s²).
    pub g: T,
    /// Gravitational mass of each node (see [`MassMatrix::gravity_weights`](super::MassMatrix::gravity_weights)).
    pub weights: [T; N],
}

impl<T: Real, const N: usize, const D: usize> Potential<T, N, D> for Gravity<T, N> {
    #[inline]
    fn energy(&self, x: &[[T; D]; N]) -> T {
        let mut s = T::ZERO;
        // `last` is the vertical axis (none when D = 0: no gravity, and no `D − 1` underflow).
        for (w, xi) in self.weights.iter().zip(x) {
            if let Some(&z) = xi.last() {
                s += *w * z;
            }
        }
        self.g * s
    }
    #[inline]
    fn accumulate_gradient(&self, _x: &[[T; D]; N], grad: &mut [[T; D]; N]) {
        for (w, gi) in self.weights.iter().zip(grad) {
            if let Some(gz) = gi.last_mut() {
                *gz += self.g * *w;
            }
        }
    }
}

/// A linear spring between two nodes: `½k(|x_a − x_b| − rest)²`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spring<T> {
    /// First node.
    pub a: usize,
    /// Second node.
    pub b: usize,
    /// Stiffness (N/m).
    pub k: T,
    /// Rest length (m).
    pub rest: T,
}

/// Up to `S` springs (the first `len` are active).
///
/// # Panics
/// As a [`Potential`] on `N` nodes, `energy` and `accumulate_gradient` panic on a spring with a
/// node `≥ N`: [`Potential::validate`] (called by
/// [`MechanicsBuilder::build`](super::MechanicsBuilder::build)) reports it as an error first.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Springs<T, const S: usize> {
    springs: [Spring<T>; S],
    len: usize,
}

impl<T: Real, const S: usize> Springs<T, S> {
    /// No springs.
    pub fn new() -> Self {
        Self {
            springs: [Spring {
                a: 0,
                b: 0,
                k: T::ZERO,
                rest: T::ZERO,
            }; S],
            len: 0,
        }
    }

    /// Adds a spring; returns it back if all `S` slots are used.
    ///
    /// # Errors
    /// `Err(spring)` when full.
    pub fn push(&mut self, spring: Spring<T>) -> core::result::Result<(), Spring<T>> {
        if self.len == S {
            return Err(spring);
        }
        self.springs[self.len] = spring;
        self.len += 1;
        Ok(())
    }

    /// The active springs.
    pub fn as_slice(&self) -> &[Spring<T>] {
        &self.springs[..self.len]
    }
}

impl<T: Real, const S: usize> Default for Springs<T, S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Real, const N: usize, const D: usize, const S: usize> Potential<T, N, D> for Springs<T, S> {
    fn energy(&self, x: &[[T; D]; N]) -> T {
        debug_assert!(
            Potential::<T, N, D>::validate(self).is_ok(),
            "spring node ≥ {N}"
        );
        let mut e = T::ZERO;
        for s in self.as_slice() {
            let mut r2 = T::ZERO;
            for d in 0..D {
                let r = x[s.a][d] - x[s.b][d];
                r2 += r * r;
            }
            let stretch = r2.sqrt() - s.rest;
            e += T::HALF * s.k * stretch * stretch;
        }
        e
    }
    fn accumulate_gradient(&self, x: &[[T; D]; N], grad: &mut [[T; D]; N]) {
        debug_assert!(
            Potential::<T, N, D>::validate(self).is_ok(),
            "spring node ≥ {N}"
        );
        for s in self.as_slice() {
            let mut r2 = T::ZERO;
            for d in 0..D {
                let r = x[s.a][d] - x[s.b][d];
                r2 += r * r;
            }
            let len = r2.sqrt();
            if len == T::ZERO {
                continue; // direction undefined; the force magnitude k·rest has no direction
            }
            let f = s.k * (len - s.rest) / len;
            for d in 0..D {
                let g = f * (x[s.a][d] - x[s.b][d]);
                grad[s.a][d] += g;
                grad[s.b][d] -= g;
            }
        }
    }
    fn validate(&self) -> Result<()> {
        for s in self.as_slice() {
            node::<N>("spring node", s.a)?;
            node::<N>("spring node", s.b)?;
        }
        Ok(())
    }
}

/// Sign convention of the dipole–dipole interaction energy in [`MagnetDipoles`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DipoleSign {
    /// The physical energy `U = [ |r|²(μ₀·μ_k) − 3(μ₀·r)(μ_k·r) ] / (4π|r|⁵)`.
    #[default]
    Physical,
    /// The CHNN reference code's energy `[ −|r|²(μ₀·μ_k) − 3(μ₀·r)(μ_k·r) ] / (4π|r|⁵)` (the
    /// `μ₀·μ_k` term has the opposite sign); use it to reproduce the paper's data.
    Reference,
}

/// Fixed magnetic dipoles acting on a magnetised bob (the CHNN magnet pendulum): the bob at
/// `r₀ = x_node` carries the dipole `μ₀ = q r₀/|r₀|²` (pointing along the rod), magnet `k` sits at
/// `p_k` with dipole `μ_k`, and with `r = p_k − r₀` each pair contributes
/// `[ s|r|²(μ₀·μ_k) − 3(μ₀·r)(μ_k·r) ] / (4π|r|⁵)`, `s` from [`DipoleSign`].
///
/// # Panics
/// As a [`Potential`] on `N` nodes, `energy` and `accumulate_gradient` panic if `node ≥ N`:
/// [`Potential::validate`] (called by [`MechanicsBuilder::build`](super::MechanicsBuilder::build))
/// reports it as an error first.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MagnetDipoles<T, const K: usize> {
    /// The magnetised node.
    pub node: usize,
    /// Bob dipole strength `q`.
    pub q: T,
    /// Magnet positions.
    pub positions: [[T; 3]; K],
    /// Magnet dipole moments.
    pub dipoles: [[T; 3]; K],
    /// Energy sign convention.
    pub sign: DipoleSign,
}

impl<T: Real, const K: usize> MagnetDipoles<T, K> {
    fn sign(&self) -> T {
        match self.sign {
            DipoleSign::Physical => T::ONE,
            DipoleSign::Reference => -T::ONE,
        }
    }
}

#[inline]
fn dot3<T: Real>(a: &[T; 3], b: &[T; 3]) -> T {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

impl<T: Real, const N: usize, const K: usize> Potential<T, N, 3> for MagnetDipoles<T, K> {
    fn energy(&self, x: &[[T; 3]; N]) -> T {
        debug_assert!(self.node < N, "magnetised node {} ≥ {N}", self.node);
        let x0 = x[self.node];
        let s0 = dot3(&x0, &x0);
        let m0 = [
            self.q * x0[0] / s0,
            self.q * x0[1] / s0,
            self.q * x0[2] / s0,
        ];
        let sign = self.sign();
        let four_pi = T::from_f64(4.0) * T::PI;
        let mut e = T::ZERO;
        for k in 0..K {
            let p = self.positions[k];
            let mk = self.dipoles[k];
            let r = [p[0] - x0[0], p[1] - x0[1], p[2] - x0[2]];
            let rho2 = dot3(&r, &r);
            let rho = rho2.sqrt();
            let rho5 = rho2 * rho2 * rho;
            e += (sign * rho2 * dot3(&m0, &mk) - T::from_f64(3.0) * dot3(&m0, &r) * dot3(&mk, &r))
                / (four_pi * rho5);
        }
        e
    }

    fn accumulate_gradient(&self, x: &[[T; 3]; N], grad: &mut [[T; 3]; N]) {
        // With a = μ₀·r, b = μ_k·r, c = μ₀·μ_k, Q = ∂μ₀/∂x = q(I/s − 2xxᵀ/s²), ∂r/∂x = −I:
        // ∇a = Qr − μ₀, ∇b = −μ_k, ∇c = Qμ_k, ∇ρ⁻ⁿ = nρ⁻ⁿ⁻²r, and
        // 4π∇U = −3(b∇a + a∇b)ρ⁻⁵ − 15abρ⁻⁷r + s(∇c ρ⁻³ + 3cρ⁻⁵r).
        debug_assert!(self.node < N, "magnetised node {} ≥ {N}", self.node);
        let x0 = x[self.node];
        let s0 = dot3(&x0, &x0);
        let q = self.q;
        let m0 = [q * x0[0] / s0, q * x0[1] / s0, q * x0[2] / s0];
        let q_apply = |u: &[T; 3]| {
            let xu = dot3(&x0, u);
            let mut out = [T::ZERO; 3];
            for d in 0..3 {
                out[d] = q * (u[d] / s0 - T::TWO * x0[d] * xu / (s0 * s0));
            }
            out
        };
        let sign = self.sign();
        let four_pi = T::from_f64(4.0) * T::PI;
        let three = T::from_f64(3.0);
        for k in 0..K {
            let p = self.positions[k];
            let mk = self.dipoles[k];
            let r = [p[0] - x0[0], p[1] - x0[1], p[2] - x0[2]];
            let rho2 = dot3(&r, &r);
            let rho = rho2.sqrt();
            let rho3 = rho2 * rho;
            let rho5 = rho3 * rho2;
            let rho7 = rho5 * rho2;
            let a = dot3(&m0, &r);
            let b = dot3(&mk, &r);
            let c = dot3(&m0, &mk);
            let qr = q_apply(&r);
            let qm = q_apply(&mk);
            for d in 0..3 {
                let grad_a = qr[d] - m0[d];
                let grad_b = -mk[d];
                let grad_c = qm[d];
                let g = -three * (b * grad_a + a * grad_b) / rho5
                    - T::from_f64(15.0) * a * b * r[d] / rho7
                    + sign * (grad_c / rho3 + three * c * r[d] / rho5);
                grad[self.node][d] += g / four_pi;
            }
        }
    }
    fn validate(&self) -> Result<()> {
        node::<N>("magnetised node", self.node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fd_gradient<P: Potential<f64, 2, 3>>(p: &P, x: [[f64; 3]; 2]) {
        let mut g = [[0.0; 3]; 2];
        p.accumulate_gradient(&x, &mut g);
        let h = 1e-6;
        for i in 0..2 {
            for d in 0..3 {
                let (mut xp, mut xm) = (x, x);
                xp[i][d] += h;
                xm[i][d] -= h;
                let num = (p.energy(&xp) - p.energy(&xm)) / (2.0 * h);
                let tol = 1e-7 * (1.0 + num.abs());
                assert!(
                    (num - g[i][d]).abs() < tol,
                    "node {i} axis {d}: {num} vs {}",
                    g[i][d]
                );
            }
        }
    }

    #[test]
    fn a_spring_or_magnet_on_a_missing_node_is_refused_at_build() {
        use crate::dynamics::MechanicsBuilder;
        let builder = || {
            let mut b = MechanicsBuilder::<f64, 2, 3, 0>::new();
            b.point_mass(1.0).unwrap();
            b.point_mass(1.0).unwrap();
            b
        };
        let mut springs = Springs::<f64, 2>::new();
        springs
            .push(Spring {
                a: 0,
                b: 5,
                k: 1.0,
                rest: 1.0,
            })
            .unwrap();
        // The first energy evaluation indexed x[5] of 2 nodes: a panic.
        assert_eq!(
            builder().build(springs).err(),
            Some(Error::IndexOutOfRange {
                what: "spring node",
                index: 5,
                len: 2,
            })
        );
        let magnets = MagnetDipoles::<f64, 1> {
            node: 2,
            q: 1.0,
            positions: [[0.0, 0.0, -1.0]],
            dipoles: [[0.0, 0.0, 1.0]],
            sign: DipoleSign::Physical,
        };
        // In a pair too.
        assert_eq!(
            builder().build(((), magnets)).err(),
            Some(Error::IndexOutOfRange {
                what: "magnetised node",
                index: 2,
                len: 2,
            })
        );
        let mut ok = Springs::<f64, 1>::new();
        ok.push(Spring {
            a: 0,
            b: 1,
            k: 1.0,
            rest: 1.0,
        })
        .unwrap();
        assert!(builder().build(ok).is_ok());
    }

    #[test]
    fn gravity_needs_no_vertical_axis_index() {
        // D = 0 has no vertical axis: no `D − 1` underflow, no gravity.
        let g = Gravity::<f64, 2> {
            g: 9.81,
            weights: [1.0, 2.0],
        };
        assert_eq!(Potential::<f64, 2, 0>::energy(&g, &[[], []]), 0.0);
        let x = [[0.0, 1.0], [0.0, -1.0]];
        assert_eq!(Potential::<f64, 2, 2>::energy(&g, &x), 9.81 * (1.0 - 2.0));
    }

    #[test]
    fn gradients_match_finite_differences() {
        let x = [[0.2, -0.1, -0.9], [1.1, 0.3, -0.8]];
        fd_gradient(
            &Gravity {
                g: 9.81,
                weights: [1.5, 0.7],
            },
            x,
        );
        let mut springs = Springs::<f64, 2>::new();
        springs
            .push(Spring {
                a: 0,
                b: 1,
                k: 10.0,
                rest: 1.0,
            })
            .unwrap();
        fd_gradient(&springs, x);
        for sign in [DipoleSign::Physical, DipoleSign::Reference] {
            let magnets = MagnetDipoles {
                node: 0,
                q: 0.3,
                positions: [[0.1, 0.0, -1.05], [-0.1, 0.0, -1.05]],
                dipoles: [[0.0, 0.0, 0.3], [0.0, 0.0, 0.3]],
                sign,
            };
            fd_gradient(&magnets, x);
            fd_gradient(
                &(
                    Gravity {
                        g: 9.81,
                        weights: [3.0, 0.0],
                    },
                    magnets,
                ),
                x,
            );
        }
    }

    #[test]
    fn dipole_signs_differ_only_in_the_aligned_term() {
        // On the axis below a single +z magnet, r ∥ z: the physical energy of two parallel
        // dipoles in line is negative, −2|μ₀||μ₁|/(4πρ³); the reference sign gives −4|μ₀||μ₁|/(4πρ³).
        let mut m = MagnetDipoles {
            node: 0,
            q: 1.0,
            positions: [[0.0, 0.0, -2.0]],
            dipoles: [[0.0, 0.0, -1.0]],
            sign: DipoleSign::Physical,
        };
        let x = [[0.0, 0.0, -1.0]]; // μ₀ = (0,0,−1), |r| = 1
        let e_phys: f64 = Potential::<f64, 1, 3>::energy(&m, &x);
        assert!((e_phys - (-2.0 / (4.0 * core::f64::consts::PI))).abs() < 1e-15);
        m.sign = DipoleSign::Reference;
        let e_ref: f64 = Potential::<f64, 1, 3>::energy(&m, &x);
        assert!((e_ref - (-4.0 / (4.0 * core::f64::consts::PI))).abs() < 1e-15);
    }
}
