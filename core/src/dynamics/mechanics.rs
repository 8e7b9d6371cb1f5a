//! A constrained mechanical system in Cartesian coordinates and its projected dynamics.
//!
//! Hamiltonian form (CHNN; the reference's `ConstrainedHamiltonianDynamics` and `Proj` in
//! `biases/dynamics/hamiltonian.py`): with `z = (x, p)`, `H = ½pᵀM⁻¹p + V(x)` and the
//! phase-space constraints `Ψ = (Φ, Φ̇)` with Jacobian `DΦ = ∂Ψ/∂z` (2ND × 2C),
//!
//! ```text
//! ż = P(z) J∇H,   P = I − J DΦ (DΦᵀ J DΦ)⁻¹ DΦᵀ,   J = [[0, I], [−I, 0]],
//! ```
//!
//! i.e. `ż = J∇H − J DΦ λ` with `(DΦᵀ J DΦ) λ = DΦᵀ J ∇H`. With `G = ∂Φ/∂x`, `Ġ = ∂Φ̇/∂x`
//! (rows `G_c`, `Ġ_c`) and `λ = (λ₀, λ₁)`, the 2C×2C matrix has the blocks
//!
//! ```text
//! DΦᵀ J DΦ = [[0, S], [−S, A]],   S = G M⁻¹ Gᵀ,   A = Ġ M⁻¹ Gᵀ − G M⁻¹ Ġᵀ,
//! ```
//!
//! `S` symmetric positive definite while the constraints are independent, `A` antisymmetric.
//! The reference's `Proj` hands the whole 2C×2C system to a dense LU (`torch.solve`); its block
//! rows are `S λ₁ = G v` and `S λ₀ = A λ₁ − (Ġ v − M⁻¹G ∇V)`, so [`Mechanics::hamiltonian_rate`]
//! factors the C×C `S = L Lᵀ` once by Cholesky (no pivoting) and solves two triangular pairs:
//! about C³/6 multiply–adds for the factor instead of the 2C×2C LU's 8C³/3, and `A` is never
//! formed (`A λ₁ = Ġ (M⁻¹Gᵀλ₁) − M⁻¹G (Ġᵀλ₁)` reuses two sums the field needs anyway).
//! `DΦᵀ ż = 0` holds by construction, so `Φ` and `Φ̇` are invariants of the flow.
//! Measurements: `benches/RESULTS.md`, "one step of the constrained dynamics".
//!
//! Lagrangian form (CLNN; the reference's `ConstrainedLagrangianDynamics`, also in
//! `hamiltonian.py`): with `z = (x, v)`, `G = ∂Φ/∂x`, `ẍ = f − M⁻¹G (GᵀM⁻¹G)⁻¹ (Gᵀf + Ġᵀv)` and the
//! physical force `f = −M⁻¹∇V`. (The reference code uses `f = +M⁻¹∇V`; a learned potential absorbs
//! the sign, a known one must not.) `GᵀM⁻¹G` is the same `S`, solved by the same Cholesky.

use super::constraint::{Constraint, Linear};
use super::mass::MassMatrix;
use super::phase::Phase;
use super::potential::Potential;
use crate::error::{Error, Result};
use crate::integrate::{StateVector, VectorField};
use crate::linalg::{
    cholesky_fixed, lu_factor, lu_solve, solve_lower_fixed, solve_lower_transpose_fixed,
};
use crate::real::Real;

/// A system of `N` nodes in `D` dimensions with `C` scalar constraints and potential `P`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mechanics<T, const N: usize, const D: usize, const C: usize, P> {
    mass: MassMatrix<T, N>,
    constraints: [Constraint<T, D>; C],
    potential: P,
}

/// How far a state is from the constraint manifold.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Violation<T> {
    /// `max_c |Φ_c(x)|` (squared-length units for distances and tethers).
    pub position: T,
    /// `max_c |Φ̇_c(x, v)|`.
    pub velocity: T,
}

impl<T: Real> Violation<T> {
    /// The larger of the two parts.
    pub fn max(&self) -> T {
        self.position.max(self.velocity)
    }
}

/// Settings of the Newton–Raphson projection onto the constraint manifold.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProjectParams<T> {
    /// Stop when the RMS of `Ψ = (Φ, Φ̇)` is below `tol · max(1, RMS(z)²)`.
    pub tol: T,
    /// Give up after this many iterations (the reference uses 500).
    pub max_iter: usize,
}

impl<T: Real> Default for ProjectParams<T> {
    fn default() -> Self {
        Self {
            tol: T::from_f64(64.0) * T::EPSILON,
            max_iter: 500,
        }
    }
}

/// Builds a [`Mechanics`] node by node and constraint by constraint. Adding an extended body
/// adds its internal distance constraints too.
#[derive(Clone, Debug)]
pub struct MechanicsBuilder<T, const N: usize, const D: usize, const C: usize> {
    mass: MassMatrix<T, N>,
    /// The constraints so far: at most `C`, a `heapless` vector whose fallible `push` refuses
    /// the `C + 1`-th.
    constraints: heapless::Vec<Constraint<T, D>, C>,
}

impl<T: Real, const N: usize, const D: usize, const C: usize> Default
    for MechanicsBuilder<T, N, D, C>
{
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Real, const N: usize, const D: usize, const C: usize> MechanicsBuilder<T, N, D, C> {
    /// An empty builder.
    pub fn new() -> Self {
        Self {
            mass: MassMatrix::empty(),
            constraints: heapless::Vec::new(),
        }
    }

    /// The mass structure so far (e.g. to compute gravity weights).
    pub fn mass(&self) -> &MassMatrix<T, N> {
        &self.mass
    }

    fn push(&mut self, c: Constraint<T, D>) -> Result<()> {
        c.validate(N)?;
        self.constraints.push(c).map_err(|_| Error::CountMismatch {
            what: "constraints",
            expected: C,
            got: C + 1,
        })
    }

    /// Adds a general linear constraint `Σ_k w_k x_{n_k, axis} = offset` (joints and pins are
    /// built from these).
    ///
    /// # Errors
    /// An invalid node or axis; more than `C` constraints.
    pub fn linear(&mut self, c: Linear<T>) -> Result<()> {
        self.push(Constraint::Linear(c))
    }

    /// Adds a point mass; returns its node index.
    ///
    /// # Errors
    /// As [`MassMatrix::add_point_mass`].
    pub fn point_mass(&mut self, m: T) -> Result<usize> {
        self.mass.add_point_mass(m)
    }

    /// Adds an extended body of mass `m` with moments `I_k = m·λ_k` (body dimension =
    /// `moments.len()`), and its internal constraints `|x_k − x₀| = 1`, `|x_k − x_j| = √2`.
    /// Returns its first (centre-of-mass) node.
    ///
    /// # Errors
    /// As [`MassMatrix::add_body`]; [`Error::CountMismatch`] if the constraints do not fit.
    pub fn body(&mut self, m: T, moments: &[T]) -> Result<usize> {
        if moments.len() > D {
            return Err(Error::InvalidParameter {
                name: "body dimension",
                value: moments.len() as f64,
            });
        }
        let s = self.mass.add_body(m, moments)?;
        let db = moments.len();
        for k in 1..=db {
            self.push(Constraint::Distance {
                a: s,
                b: s + k,
                length: T::ONE,
            })?;
        }
        for k in 1..=db {
            for j in 1..k {
                self.push(Constraint::Distance {
                    a: s + j,
                    b: s + k,
                    length: T::TWO.sqrt(),
                })?;
            }
        }
        Ok(s)
    }

    /// Keeps nodes `a` and `b` at distance `length`.
    ///
    /// # Errors
    /// [`Error::IndexOutOfRange`], [`Error::InvalidParameter`], [`Error::CountMismatch`].
    pub fn distance(&mut self, a: usize, b: usize, length: T) -> Result<()> {
        self.push(Constraint::Distance { a, b, length })
    }

    /// Keeps `node` at distance `length` from the fixed point `anchor`.
    ///
    /// # Errors
    /// As [`MechanicsBuilder::distance`].
    pub fn tether(&mut self, node: usize, anchor: [T; D], length: T) -> Result<()> {
        self.push(Constraint::Tether {
            node,
            anchor,
            length,
        })
    }

    fn barycentric(&self, body: usize, attach: &[T]) -> Result<(usize, [T; 4])> {
        if body >= self.mass.assigned() || self.mass.body_of(body).0 != body {
            return Err(Error::IndexOutOfRange {
                what: "body",
                index: body,
                len: N,
            });
        }
        let (start, len) = self.mass.body_of(body);
        if attach.len() + 1 != len {
            return Err(Error::CountMismatch {
                what: "attachment coordinates",
                expected: len - 1,
                got: attach.len(),
            });
        }
        let mut w = [T::ZERO; 4];
        let mut sum = T::ZERO;
        for (k, c) in attach.iter().enumerate() {
            if !c.is_finite() {
                return Err(Error::InvalidParameter {
                    name: "attachment",
                    value: c.as_f64(),
                });
            }
            w[k + 1] = *c;
            sum += *c;
        }
        w[0] = T::ONE - sum;
        Ok((start, w))
    }

    /// A ball joint: the point with body-frame coordinates `attach_a` of the body starting at
    /// node `body_a` coincides with the point `attach_b` of body `body_b` (D linear constraints
    /// with barycentric weights `(1 − Σc, c₁, …)`).
    ///
    /// # Errors
    /// [`Error::IndexOutOfRange`] if a node is not a body's first node,
    /// [`Error::CountMismatch`] if an attachment has the wrong length or constraints overflow.
    pub fn joint(
        &mut self,
        body_a: usize,
        attach_a: &[T],
        body_b: usize,
        attach_b: &[T],
    ) -> Result<()> {
        let (sa, wa) = self.barycentric(body_a, attach_a)?;
        let (sb, wb) = self.barycentric(body_b, attach_b)?;
        for axis in 0..D {
            let mut lin = Linear::new(axis, T::ZERO);
            for k in 0..=attach_a.len() {
                lin.push(sa + k, wa[k])?;
            }
            for k in 0..=attach_b.len() {
                lin.push(sb + k, -wb[k])?;
            }
            self.push(Constraint::Linear(lin))?;
        }
        Ok(())
    }

    /// Pins the point with body-frame coordinates `attach` of the body starting at `body` to the
    /// fixed point `point` (D linear constraints).
    ///
    /// # Errors
    /// As [`MechanicsBuilder::joint`].
    pub fn pin(&mut self, body: usize, attach: &[T], point: [T; D]) -> Result<()> {
        let (s, w) = self.barycentric(body, attach)?;
        for (axis, q) in point.iter().enumerate() {
            let mut lin = Linear::new(axis, *q);
            for k in 0..=attach.len() {
                lin.push(s + k, w[k])?;
            }
            self.push(Constraint::Linear(lin))?;
        }
        Ok(())
    }

    /// Finishes the system with potential `potential`.
    ///
    /// # Errors
    /// [`Error::CountMismatch`] unless exactly `N` nodes and `C` constraints were added; as
    /// [`Potential::validate`] (e.g. [`Error::IndexOutOfRange`] for a spring on a node `≥ N`).
    pub fn build<P: Potential<T, N, D>>(self, potential: P) -> Result<Mechanics<T, N, D, C, P>> {
        potential.validate()?;
        if !self.mass.is_complete() {
            return Err(Error::CountMismatch {
                what: "nodes",
                expected: N,
                got: self.mass.assigned(),
            });
        }
        let constraints =
            self.constraints
                .into_array()
                .map_err(|partial| Error::CountMismatch {
                    what: "constraints",
                    expected: C,
                    got: partial.len(),
                })?;
        Ok(Mechanics {
            mass: self.mass,
            constraints,
            potential,
        })
    }
}

type Nodes<T, const N: usize, const D: usize> = [[T; D]; N];

#[inline]
fn ndot<T: Real, const N: usize, const D: usize>(a: &Nodes<T, N, D>, b: &Nodes<T, N, D>) -> T {
    let mut s = T::ZERO;
    for i in 0..N {
        for d in 0..D {
            s += a[i][d] * b[i][d];
        }
    }
    s
}

/// Per-constraint Jacobians at one state.
struct Jacobians<T, const N: usize, const D: usize, const C: usize> {
    /// ∂Φ_c/∂x (= ∂Φ̇_c/∂v).
    g: [Nodes<T, N, D>; C],
    /// ∂Φ̇_c/∂x.
    gd: [Nodes<T, N, D>; C],
}

impl<T: Real, const N: usize, const D: usize, const C: usize> Jacobians<T, N, D, C> {
    fn zeros() -> Self {
        Self {
            g: [[[T::ZERO; D]; N]; C],
            gd: [[[T::ZERO; D]; N]; C],
        }
    }
}

/// The Cholesky factor `S = L Lᵀ` of the constraint Gram matrix `S = G M⁻¹ Gᵀ` (C×C, symmetric
/// positive definite while the constraints are independent), ready for [`GramFactor::solve`].
struct GramFactor<T, const C: usize> {
    /// `L` on and below the diagonal (row-major), zeros above.
    l: [[T; C]; C],
}

impl<T: Real, const C: usize> GramFactor<T, C> {
    /// Factors `s` (only its lower triangle is read). A pivot `L_jj² ≤ 2C·ε·max_i S_ii` counts as
    /// zero: the constraints are (numerically) dependent at this state. `2C·ε` is the relative
    /// threshold the 2C×2C LU applied to its pivots before; it also covers the few ulps a
    /// Cholesky pivot of an exactly singular `S` can come out at (a rod listed twice).
    ///
    /// # Errors
    /// [`Error::Singular`] with the failing column for a non-positive, non-finite or tiny pivot.
    fn new(mut s: [[T; C]; C]) -> Result<Self> {
        let mut scale = T::ZERO;
        for (i, row) in s.iter().enumerate() {
            if row[i] > scale {
                scale = row[i];
            }
        }
        let tiny = T::from_usize(2 * C) * T::EPSILON * scale;
        cholesky_fixed(&mut s).map_err(|e| match e {
            Error::NotPositiveDefinite { pivot, .. } => Error::Singular { column: pivot },
            other => other,
        })?;
        for (j, row) in s.iter().enumerate() {
            if !(row[j] * row[j] > tiny) {
                return Err(Error::Singular { column: j });
            }
        }
        Ok(Self { l: s })
    }

    /// `b ← S⁻¹ b` (`L y = b`, then `Lᵀ x = y`).
    ///
    /// # Errors
    /// None for a factor [`GramFactor::new`] accepted (its diagonal is positive).
    fn solve(&self, b: &mut [T; C]) -> Result<()> {
        solve_lower_fixed(&self.l, b)?;
        solve_lower_transpose_fixed(&self.l, b)
    }
}

impl<T: Real, const N: usize, const D: usize, const C: usize, P: Potential<T, N, D>>
    Mechanics<T, N, D, C, P>
{
    /// The mass structure.
    pub fn mass(&self) -> &MassMatrix<T, N> {
        &self.mass
    }

    /// The constraints, in the order of the rows of `Ψ`.
    pub fn constraints(&self) -> &[Constraint<T, D>; C] {
        &self.constraints
    }

    /// The potential.
    pub fn potential(&self) -> &P {
        &self.potential
    }

    /// `v = M⁻¹p`.
    pub fn velocity(&self, p: &Nodes<T, N, D>) -> Nodes<T, N, D> {
        let mut v = [[T::ZERO; D]; N];
        self.mass.inverse_apply(p, &mut v);
        v
    }

    /// `p = M v`.
    pub fn momentum(&self, v: &Nodes<T, N, D>) -> Nodes<T, N, D> {
        let mut p = [[T::ZERO; D]; N];
        self.mass.apply(v, &mut p);
        p
    }

    /// `(x, p) → (x, v)`.
    pub fn to_velocity_form(&self, z: &Phase<T, N, D>) -> Phase<T, N, D> {
        Phase::new(*z.x(), self.velocity(z.p()))
    }

    /// `(x, v) → (x, p)`.
    pub fn from_velocity_form(&self, z: &Phase<T, N, D>) -> Phase<T, N, D> {
        Phase::new(*z.x(), self.momentum(z.p()))
    }

    /// Kinetic energy `½pᵀM⁻¹p`.
    pub fn kinetic_energy(&self, p: &Nodes<T, N, D>) -> T {
        T::HALF * ndot(p, &self.velocity(p))
    }

    /// Total energy `H(x, p)` of a Hamiltonian-form state.
    pub fn energy(&self, z: &Phase<T, N, D>) -> T {
        self.kinetic_energy(z.p()) + self.potential.energy(z.x())
    }

    /// `(Φ, Φ̇)` at a Hamiltonian-form state.
    pub fn constraint_values(&self, z: &Phase<T, N, D>) -> [[T; C]; 2] {
        let v = self.velocity(z.p());
        self.residuals(z.x(), &v)
    }

    fn residuals(&self, x: &Nodes<T, N, D>, v: &Nodes<T, N, D>) -> [[T; C]; 2] {
        let mut out = [[T::ZERO; C]; 2];
        for (c, con) in self.constraints.iter().enumerate() {
            out[0][c] = con.value(x);
            out[1][c] = con.rate(x, v);
        }
        out
    }

    /// Largest `|Φ|` and `|Φ̇|` at a Hamiltonian-form state.
    pub fn violation(&self, z: &Phase<T, N, D>) -> Violation<T> {
        let r = self.constraint_values(z);
        let mut out = Violation {
            position: T::ZERO,
            velocity: T::ZERO,
        };
        for c in 0..C {
            out.position = out.position.max(r[0][c].abs());
            out.velocity = out.velocity.max(r[1][c].abs());
        }
        out
    }

    /// The Jacobians at `(x, v)`, written into `j` in place: returned by value (or built with
    /// `core::array::from_fn`), the 2·C·N·D values were copied once more (a `memcpy` per
    /// evaluation on the Cortex-M4F).
    fn jacobians(&self, x: &Nodes<T, N, D>, v: &Nodes<T, N, D>, j: &mut Jacobians<T, N, D, C>) {
        for ((con, g), gd) in self.constraints.iter().zip(&mut j.g).zip(&mut j.gd) {
            con.gradient(x, g);
            con.rate_gradient(v, gd);
        }
    }

    /// `DΦᵀ ż`: the rates of change of `(Φ, Φ̇)` along `ż` at the Hamiltonian-form state `z`.
    /// Zero (to rounding) for `ż` from [`Mechanics::hamiltonian_rate`]: the flow stays on the
    /// constraint manifold.
    pub fn constraint_rates(&self, z: &Phase<T, N, D>, zdot: &Phase<T, N, D>) -> [[T; C]; 2] {
        let v = self.velocity(z.p());
        let mut j = Jacobians::zeros();
        self.jacobians(z.x(), &v, &mut j);
        let mut out = [[T::ZERO; C]; 2];
        for c in 0..C {
            let mg = self.velocity(&j.g[c]);
            out[0][c] = ndot(&j.g[c], zdot.x());
            out[1][c] = ndot(&j.gd[c], zdot.x()) + ndot(&mg, zdot.p());
        }
        out
    }

    /// `mg_c = M⁻¹G_c` for every constraint (written in place: returned by value, the array
    /// was copied on the Cortex-M4F).
    #[inline]
    fn inverse_mass_rows(&self, g: &[Nodes<T, N, D>; C], mg: &mut [Nodes<T, N, D>; C]) {
        for (gc, mgc) in g.iter().zip(mg.iter_mut()) {
            self.mass.inverse_apply(gc, mgc);
        }
    }

    /// The lower triangle of `S = G M⁻¹ Gᵀ` (`S_ab = G_a·M⁻¹G_b`), factored.
    #[inline]
    fn gram(g: &[Nodes<T, N, D>; C], mg: &[Nodes<T, N, D>; C]) -> Result<GramFactor<T, C>> {
        let mut s = [[T::ZERO; C]; C];
        for a in 0..C {
            for b in 0..=a {
                s[a][b] = ndot(&g[a], &mg[b]);
            }
        }
        GramFactor::new(s)
    }

    /// The projected Hamiltonian vector field `ż = P(z) J∇H(z)` at `z = (x, p)`, with an optional
    /// external force `F` on the nodes (added to `−∇V` before projection; a control input).
    ///
    /// Solved through the blocks of `DΦᵀ J DΦ` (module doc): with `S = L Lᵀ`,
    /// `λ₁ = S⁻¹ G v`, `ẋ = v − M⁻¹Gᵀλ₁`, `q = ∇V − F − Ġᵀλ₁`, `λ₀ = S⁻¹(M⁻¹G q − Ġ ẋ)` and
    /// `ṗ = −q + Gᵀλ₀`: the same field as the 2C×2C solve, to rounding.
    ///
    /// # Errors
    /// [`Error::Singular`] if the constraints are degenerate at `z` (e.g. a rod of zero length):
    /// a Cholesky pivot of `S` at most `2C·ε·max S_ii`.
    pub fn hamiltonian_rate(
        &self,
        z: &Phase<T, N, D>,
        force: Option<&Nodes<T, N, D>>,
        dz: &mut Phase<T, N, D>,
    ) -> Result<()> {
        let x = z.x();
        let (xdot, pdot) = dz.split_mut();
        // ẋ starts as v = M⁻¹p; q as ∇V − F.
        self.mass.inverse_apply(z.p(), xdot);
        let mut q = [[T::ZERO; D]; N];
        self.potential.accumulate_gradient(x, &mut q);
        if let Some(f) = force {
            for (qi, fi) in q.iter_mut().zip(f) {
                for (qd, fd) in qi.iter_mut().zip(fi) {
                    *qd -= *fd;
                }
            }
        }
        if C > 0 {
            let mut j = Jacobians::zeros();
            self.jacobians(x, xdot, &mut j);
            let mut mg = [[[T::ZERO; D]; N]; C];
            self.inverse_mass_rows(&j.g, &mut mg);
            let s = Self::gram(&j.g, &mg)?;
            // S λ₁ = G v.
            let mut l1: [T; C] = core::array::from_fn(|c| ndot(&j.g[c], xdot));
            s.solve(&mut l1)?;
            // ẋ = v − Σ λ₁_c M⁻¹G_c;  q −= Σ λ₁_c Ġ_c.
            for c in 0..C {
                for i in 0..N {
                    for d in 0..D {
                        xdot[i][d] -= l1[c] * mg[c][i][d];
                        q[i][d] -= l1[c] * j.gd[c][i][d];
                    }
                }
            }
            // S λ₀ = A λ₁ − (Ġ v − M⁻¹G (∇V − F)) = M⁻¹G q − Ġ ẋ.
            let mut l0: [T; C] = core::array::from_fn(|c| ndot(&mg[c], &q) - ndot(&j.gd[c], xdot));
            s.solve(&mut l0)?;
            // ṗ = −∇V + F + Σ (λ₀_c G_c + λ₁_c Ġ_c) = −q + Σ λ₀_c G_c.
            for c in 0..C {
                for i in 0..N {
                    for d in 0..D {
                        q[i][d] -= l0[c] * j.g[c][i][d];
                    }
                }
            }
        }
        for i in 0..N {
            for d in 0..D {
                pdot[i][d] = -q[i][d];
            }
        }
        Ok(())
    }

    /// [`Mechanics::hamiltonian_rate`] the way the reference computes it: the whole `2C × 2C`
    /// system `K λ = r`, `K = DΦᵀ J DΦ` (row-major, destroyed; `r` becomes `λ`), solved by
    /// `solve`. Kept as the independent formulation the Cholesky path is tested against, and for
    /// [`NalgebraLu`].
    #[cfg(any(test, feature = "nalgebra"))]
    fn hamiltonian_rate_with(
        &self,
        z: &Phase<T, N, D>,
        force: Option<&Nodes<T, N, D>>,
        dz: &mut Phase<T, N, D>,
        solve: impl FnOnce(&mut [T], &mut [T]) -> Result<()>,
    ) -> Result<()> {
        let x = z.x();
        let v = self.velocity(z.p());
        let mut grad = [[T::ZERO; D]; N];
        self.potential.accumulate_gradient(x, &mut grad);
        if let Some(f) = force {
            for i in 0..N {
                for d in 0..D {
                    grad[i][d] -= f[i][d];
                }
            }
        }
        let (xdot, pdot) = dz.split_mut();
        *xdot = v;
        for i in 0..N {
            for d in 0..D {
                pdot[i][d] = -grad[i][d];
            }
        }
        if C == 0 {
            return Ok(());
        }
        let mut j = Jacobians::zeros();
        self.jacobians(x, &v, &mut j);
        let mut mg = [[[T::ZERO; D]; N]; C];
        self.inverse_mass_rows(&j.g, &mut mg);
        // K = DΦᵀ J DΦ in blocks [[0, S], [−S, A]] with S_ij = G_i·M⁻¹G_j (symmetric) and
        // A_ij = Ġ_i·M⁻¹G_j − M⁻¹G_i·Ġ_j (antisymmetric); row/column index = block·C + i.
        let mut k = [[[[T::ZERO; C]; 2]; C]; 2];
        let mut rhs = [[T::ZERO; C]; 2];
        for i in 0..C {
            for jj in i..C {
                let s = ndot(&j.g[i], &mg[jj]);
                k[0][i][1][jj] = s;
                k[0][jj][1][i] = s;
                k[1][i][0][jj] = -s;
                k[1][jj][0][i] = -s;
                if jj > i {
                    let a = ndot(&j.gd[i], &mg[jj]) - ndot(&mg[i], &j.gd[jj]);
                    k[1][i][1][jj] = a;
                    k[1][jj][1][i] = -a;
                }
            }
            // DΦᵀ J∇H with J∇H = (v, −∇V).
            rhs[0][i] = ndot(&j.g[i], &v);
            rhs[1][i] = ndot(&j.gd[i], &v) - ndot(&mg[i], &grad);
        }
        solve(
            k.as_flattened_mut().as_flattened_mut().as_flattened_mut(),
            rhs.as_flattened_mut(),
        )?;
        let [l0, l1] = rhs;
        // ż = J∇H − J DΦ λ:  ẋ −= Σ λ̇_c M⁻¹G_c,  ṗ += Σ (λ_c G_c + λ̇_c Ġ_c).
        for c in 0..C {
            for i in 0..N {
                for d in 0..D {
                    xdot[i][d] -= l1[c] * mg[c][i][d];
                    pdot[i][d] += l0[c] * j.g[c][i][d] + l1[c] * j.gd[c][i][d];
                }
            }
        }
        Ok(())
    }

    /// The constrained Lagrangian vector field at `z = (x, v)`:
    /// `ẋ = v`, `v̇ = f − M⁻¹G (GᵀM⁻¹G)⁻¹ (Gᵀf + Ġᵀv)` with `f = M⁻¹(−∇V + F)`.
    ///
    /// `GᵀM⁻¹G` is the `S` of [`Mechanics::hamiltonian_rate`], factored by the same Cholesky.
    ///
    /// # Errors
    /// [`Error::Singular`] if `GᵀM⁻¹G` is singular at `x` (as for
    /// [`Mechanics::hamiltonian_rate`]).
    pub fn lagrangian_rate(
        &self,
        z: &Phase<T, N, D>,
        force: Option<&Nodes<T, N, D>>,
        dz: &mut Phase<T, N, D>,
    ) -> Result<()> {
        let x = z.x();
        let v = z.p();
        let mut minus_grad = [[T::ZERO; D]; N];
        self.potential.accumulate_gradient(x, &mut minus_grad);
        for i in 0..N {
            for d in 0..D {
                minus_grad[i][d] = -minus_grad[i][d] + force.map_or(T::ZERO, |f| f[i][d]);
            }
        }
        let (xdot, vdot) = dz.split_mut();
        *xdot = *v;
        self.mass.inverse_apply(&minus_grad, vdot);
        if C == 0 {
            return Ok(());
        }
        let mut j = Jacobians::zeros();
        self.jacobians(x, v, &mut j);
        let mut mg = [[[T::ZERO; D]; N]; C];
        self.inverse_mass_rows(&j.g, &mut mg);
        let s = Self::gram(&j.g, &mg)?;
        let mut rhs: [T; C] = core::array::from_fn(|a| ndot(&j.g[a], vdot) + ndot(&j.gd[a], v));
        s.solve(&mut rhs)?;
        for c in 0..C {
            for i in 0..N {
                for d in 0..D {
                    vdot[i][d] -= rhs[c] * mg[c][i][d];
                }
            }
        }
        Ok(())
    }

    /// Newton–Raphson projection of a velocity-form state `(x, v)` onto `Ψ = (Φ, Φ̇) = 0` (the
    /// reference's `project_onto_constraints` in `biases/systems/rigid_body.py`):
    /// `Δz = Jψᵀ(JψJψᵀ)⁻¹(−Ψ)`, each component clamped to `±RMS(z)/2`.
    /// Returns the iterations used.
    ///
    /// # Errors
    /// [`Error::ProjectionFailed`] after `max_iter` iterations; [`Error::Singular`] if the
    /// constraint Jacobian loses rank; [`Error::NonFinite`] for a non-finite state.
    pub fn project(&self, z: &mut Phase<T, N, D>, params: ProjectParams<T>) -> Result<usize> {
        let n_state = T::from_usize(2 * N * D);
        let rms = |s: &[T], n: T| {
            let mut acc = T::ZERO;
            for v in s {
                acc += *v * *v;
            }
            (acc / n).sqrt()
        };
        for it in 0..=params.max_iter {
            crate::integrate::check_finite(z.as_slice(), T::ZERO)?;
            let (x, v) = (z.x(), z.p());
            let mut r = self.residuals(x, v);
            let z_rms = rms(z.as_slice(), n_state);
            let res = if C == 0 {
                T::ZERO
            } else {
                rms(r.as_flattened(), T::from_usize(2 * C))
            };
            if res <= params.tol * T::ONE.max(z_rms * z_rms) {
                return Ok(it);
            }
            if it == params.max_iter {
                return Err(Error::ProjectionFailed {
                    iterations: it,
                    residual: res.as_f64(),
                });
            }
            let mut j = Jacobians::zeros();
            self.jacobians(x, v, &mut j);
            // A = Jψ Jψᵀ with Jψ rows (G_c, 0) for Φ_c and (Ġ_c, G_c) for Φ̇_c.
            let mut a = [[[[T::ZERO; C]; 2]; C]; 2];
            for i in 0..C {
                for k in 0..C {
                    let gg = ndot(&j.g[i], &j.g[k]);
                    a[0][i][0][k] = gg;
                    a[0][i][1][k] = ndot(&j.g[i], &j.gd[k]);
                    a[1][i][0][k] = ndot(&j.gd[i], &j.g[k]);
                    a[1][i][1][k] = ndot(&j.gd[i], &j.gd[k]) + gg;
                }
            }
            for val in r.as_flattened_mut() {
                *val = -*val;
            }
            let mut perm = [[0usize; C]; 2];
            let mut scratch = [[T::ZERO; C]; 2];
            let af = a.as_flattened_mut().as_flattened_mut().as_flattened_mut();
            lu_factor(af, 2 * C, perm.as_flattened_mut())?;
            lu_solve(
                af,
                2 * C,
                perm.as_flattened(),
                r.as_flattened_mut(),
                scratch.as_flattened_mut(),
            )?;
            let clamp = z_rms * T::HALF;
            let mut dz = Phase::<T, N, D>::zeros();
            {
                let (dx, dv) = dz.split_mut();
                for c in 0..C {
                    for i in 0..N {
                        for d in 0..D {
                            dx[i][d] += r[0][c] * j.g[c][i][d] + r[1][c] * j.gd[c][i][d];
                            dv[i][d] += r[1][c] * j.g[c][i][d];
                        }
                    }
                }
            }
            for (zi, di) in z.as_mut_slice().iter_mut().zip(dz.as_slice()) {
                let step = if clamp > T::ZERO {
                    di.max(-clamp).min(clamp)
                } else {
                    *di
                };
                *zi += step;
            }
        }
        Err(Error::ProjectionFailed {
            iterations: params.max_iter,
            residual: f64::NAN,
        })
    }

    /// Projects a Hamiltonian-form state `(x, p)` (through its velocities).
    ///
    /// # Errors
    /// As [`Mechanics::project`].
    pub fn project_hamiltonian(
        &self,
        z: &mut Phase<T, N, D>,
        params: ProjectParams<T>,
    ) -> Result<usize> {
        let mut zv = self.to_velocity_form(z);
        let it = self.project(&mut zv, params)?;
        *z = self.from_velocity_form(&zv);
        Ok(it)
    }
}

impl<T: Real, const N: usize, const D: usize, const C: usize, P: Potential<T, N, D>> VectorField<T>
    for Mechanics<T, N, D, C, P>
{
    type State = Phase<T, N, D>;
    /// The unforced Hamiltonian field (see [`Mechanics::hamiltonian_rate`]).
    #[inline]
    fn rate(&self, _t: T, z: &Phase<T, N, D>, dz: &mut Phase<T, N, D>) -> Result<()> {
        self.hamiltonian_rate(z, None, dz)
    }
}

/// The Lagrangian twin of a system: integrates `(x, v)` with [`Mechanics::lagrangian_rate`].
#[derive(Clone, Copy, Debug)]
pub struct Lagrangian<'a, M>(pub &'a M);

impl<T: Real, const N: usize, const D: usize, const C: usize, P: Potential<T, N, D>> VectorField<T>
    for Lagrangian<'_, Mechanics<T, N, D, C, P>>
{
    type State = Phase<T, N, D>;
    #[inline]
    fn rate(&self, _t: T, z: &Phase<T, N, D>, dz: &mut Phase<T, N, D>) -> Result<()> {
        self.0.lagrangian_rate(z, None, dz)
    }
}

/// A system driven by a constant external force on its nodes (a zero-order-hold control input):
/// integrates the Hamiltonian form with [`Mechanics::hamiltonian_rate`].
#[derive(Clone, Copy, Debug)]
pub struct Driven<'a, M, F> {
    /// The system.
    pub system: &'a M,
    /// Force on each node.
    pub force: F,
}

impl<T: Real, const N: usize, const D: usize, const C: usize, P: Potential<T, N, D>> VectorField<T>
    for Driven<'_, Mechanics<T, N, D, C, P>, [[T; D]; N]>
{
    type State = Phase<T, N, D>;
    #[inline]
    fn rate(&self, _t: T, z: &Phase<T, N, D>, dz: &mut Phase<T, N, D>) -> Result<()> {
        self.system.hamiltonian_rate(z, Some(&self.force), dz)
    }
}

/// A system whose field solves the whole `K × K` system `DΦᵀ J DΦ λ = DΦᵀ J ∇H` (`K = 2C`, the
/// reference's formulation) by nalgebra's fixed-size LU, instead of [`Mechanics`]'s Cholesky of
/// the C×C block `S`: the same field up to rounding, kept to measure one against the other
/// (README, "Architecture notes"; `cargo bench -p keel-benches --bench linalg`,
/// `firmware/measure_linalg.sh`). Feature `nalgebra`.
#[cfg(feature = "nalgebra")]
#[derive(Clone, Copy, Debug)]
pub struct NalgebraLu<'a, M, const K: usize>(pub &'a M);

#[cfg(feature = "nalgebra")]
impl<
        T: Real + nalgebra::RealField,
        const N: usize,
        const D: usize,
        const C: usize,
        P: Potential<T, N, D>,
        const K: usize,
    > VectorField<T> for NalgebraLu<'_, Mechanics<T, N, D, C, P>, K>
where
    nalgebra::Const<K>: nalgebra::DimMin<nalgebra::Const<K>, Output = nalgebra::Const<K>>,
{
    type State = Phase<T, N, D>;
    /// The unforced Hamiltonian field.
    ///
    /// # Errors
    /// As [`Mechanics::hamiltonian_rate`]; [`Error::CountMismatch`] unless `K = 2C`.
    #[inline]
    fn rate(&self, _t: T, z: &Phase<T, N, D>, dz: &mut Phase<T, N, D>) -> Result<()> {
        self.0.hamiltonian_rate_with(z, None, dz, |kf, rhs| {
            let b: &mut [T; K] = rhs.try_into().map_err(|_| Error::CountMismatch {
                what: "constraint system size K (= 2C)",
                expected: 2 * C,
                got: K,
            })?;
            crate::linalg::nalgebra::lu_solve_fixed::<T, K>(kf, b)
        })
    }
}

#[cfg(test)]
#[cfg(feature = "nalgebra")]
mod nalgebra_tests {
    use super::*;
    use crate::dynamics::systems::ChainPendulum;
    use crate::integrate::Rk4;

    #[test]
    fn nalgebra_lu_field_follows_keels_on_the_3_pendulum() {
        let p = ChainPendulum::<f64, 3>::paper().unwrap();
        let m = p.mechanics();
        let rk4 = Rk4::new(0.01).unwrap();
        let mut a = p.state_from_angles(&[0.3, -0.2, 1.1], &[0.0, 0.5, -0.3]);
        let mut b = a;
        for k in 0..200 {
            let t = 0.01 * k as f64;
            rk4.step(m, t, &mut a).unwrap();
            rk4.step(&NalgebraLu::<_, 6>(m), t, &mut b).unwrap();
        }
        for (u, v) in a.as_slice().iter().zip(b.as_slice()) {
            assert!((u - v).abs() <= 1e-11 * (1.0 + u.abs()), "{u} vs {v}");
        }
        // K ≠ 2C is refused, not a panic.
        let mut dz = a;
        assert!(matches!(
            NalgebraLu::<_, 4>(m).rate(0.0, &a, &mut dz),
            Err(Error::CountMismatch { .. })
        ));
    }
}

#[cfg(test)]
mod solve_tests {
    use super::*;
    use crate::dynamics::systems::{
        ChainPendulum, CoupledPendulum, Gyroscope, MagnetPendulum, Rotor,
    };
    use crate::dynamics::{DipoleSign, Gravity};
    use crate::random::{standard_normal, Xoshiro256PlusPlus};

    /// The reference formulation: the whole 2C×2C system by Keel's partially pivoted LU.
    fn lu_field<const N: usize, const D: usize, const C: usize, P: Potential<f64, N, D>>(
        m: &Mechanics<f64, N, D, C, P>,
        z: &Phase<f64, N, D>,
        force: Option<&Nodes<f64, N, D>>,
        dz: &mut Phase<f64, N, D>,
    ) -> Result<()> {
        m.hamiltonian_rate_with(z, force, dz, |kf, rhs| {
            let mut perm = [[0usize; C]; 2];
            let mut scratch = [[0.0; C]; 2];
            lu_factor(kf, 2 * C, perm.as_flattened_mut())?;
            lu_solve(
                kf,
                2 * C,
                perm.as_flattened(),
                rhs,
                scratch.as_flattened_mut(),
            )
        })
    }

    /// Cholesky field against the LU field at `z`, unforced and with a random force: every
    /// component within `1e-12 · (1 + max |ż|)` (the scale of the terms the solves combine).
    fn agree<const N: usize, const D: usize, const C: usize, P: Potential<f64, N, D>>(
        name: &str,
        m: &Mechanics<f64, N, D, C, P>,
        z: &Phase<f64, N, D>,
        rng: &mut Xoshiro256PlusPlus,
    ) {
        let f: Nodes<f64, N, D> =
            core::array::from_fn(|_| core::array::from_fn(|_| standard_normal(rng)));
        for force in [None, Some(&f)] {
            let (mut a, mut b) = (Phase::zeros(), Phase::zeros());
            m.hamiltonian_rate(z, force, &mut a).unwrap();
            lu_field(m, z, force, &mut b).unwrap();
            let scale = b.as_slice().iter().fold(1.0f64, |s, v| s.max(v.abs()));
            for (k, (u, w)) in a.as_slice().iter().zip(b.as_slice()).enumerate() {
                assert!(
                    (u - w).abs() <= 1e-12 * scale,
                    "{name} (force {}): component {k}: {u} vs {w}",
                    force.is_some()
                );
            }
        }
    }

    #[test]
    fn cholesky_field_equals_the_lu_field_on_random_states() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(27);
        let p3 = ChainPendulum::<f64, 3>::paper().unwrap();
        let p5 = ChainPendulum::<f64, 5>::paper().unwrap();
        let coupled = CoupledPendulum::<f64, 3>::paper().unwrap();
        let magnet = MagnetPendulum::<f64, 2>::paper(DipoleSign::Physical).unwrap();
        let gyro = Gyroscope::<f64>::paper().unwrap();
        let rotor = Rotor::<f64>::paper().unwrap();
        for _ in 0..20 {
            let z = p3.sample(&mut rng).unwrap();
            agree("chain-pendulum-3", p3.mechanics(), &z, &mut rng);
            let z = p5.sample(&mut rng).unwrap();
            agree("chain-pendulum-5", p5.mechanics(), &z, &mut rng);
            let z = coupled.sample(&mut rng).unwrap();
            agree("coupled-pendulum-3", coupled.mechanics(), &z, &mut rng);
            let z = magnet.sample(&mut rng);
            agree("magnet-pendulum-2", magnet.mechanics(), &z, &mut rng);
            let z = gyro.sample(&mut rng);
            agree("gyroscope", gyro.mechanics(), &z, &mut rng);
            let z = rotor.sample(&mut rng);
            agree("rotor", rotor.mechanics(), &z, &mut rng);
        }
    }

    /// Two degenerate constraint sets, each refused with [`Error::Singular`] by both fields and
    /// by the LU reference, in `f32` and `f64`: a node sitting on its tether's anchor (its row
    /// of `G` is exactly zero) and the same rod listed twice (rows equal, `S` of rank 1).
    macro_rules! degenerate {
        ($($name:ident: $t:ty;)*) => {$(
            #[test]
            fn $name() {
                type T = $t;
                let gravity = Gravity::<T, 2> { g: 9.81, weights: [1.0, 2.0] };
                let z = Phase::<T, 2, 2>::new([[0.0, 0.0], [0.6, -0.8]], [[0.3, 0.1], [-0.2, 0.4]]);

                let mut b = MechanicsBuilder::<T, 2, 2, 2>::new();
                b.point_mass(1.0).unwrap();
                b.point_mass(2.0).unwrap();
                b.tether(0, [0.0, 0.0], 1.0).unwrap();
                b.distance(0, 1, 1.0).unwrap();
                let on_anchor = b.build(gravity).unwrap();

                let mut b = MechanicsBuilder::<T, 2, 2, 2>::new();
                b.point_mass(1.0).unwrap();
                b.point_mass(2.0).unwrap();
                b.distance(0, 1, 1.0).unwrap();
                b.distance(0, 1, 1.0).unwrap();
                let twice = b.build(gravity).unwrap();

                for m in [&on_anchor, &twice] {
                    let mut dz = Phase::zeros();
                    assert!(matches!(
                        m.hamiltonian_rate(&z, None, &mut dz),
                        Err(Error::Singular { .. })
                    ));
                    let zv = m.to_velocity_form(&z);
                    assert!(matches!(
                        m.lagrangian_rate(&zv, None, &mut dz),
                        Err(Error::Singular { .. })
                    ));
                }
            }
        )*};
    }

    degenerate! {
        degenerate_constraints_are_singular_f64: f64;
        degenerate_constraints_are_singular_f32: f32;
    }

    #[test]
    fn degenerate_constraints_are_singular_for_the_lu_reference_too() {
        let gravity = Gravity::<f64, 2> {
            g: 9.81,
            weights: [1.0, 2.0],
        };
        let z = Phase::<f64, 2, 2>::new([[0.0, 0.0], [0.6, -0.8]], [[0.3, 0.1], [-0.2, 0.4]]);
        let mut b = MechanicsBuilder::<f64, 2, 2, 2>::new();
        b.point_mass(1.0).unwrap();
        b.point_mass(2.0).unwrap();
        b.distance(0, 1, 1.0).unwrap();
        b.distance(0, 1, 1.0).unwrap();
        let twice = b.build(gravity).unwrap();
        let mut dz = Phase::zeros();
        assert!(matches!(
            lu_field(&twice, &z, None, &mut dz),
            Err(Error::Singular { .. })
        ));
    }
}
