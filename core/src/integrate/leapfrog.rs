//! Symplectic leapfrog (Störmer–Verlet) for separable Hamiltonians `H = ½pᵀM⁻¹p + V(x)`, and its
//! constrained form RATTLE (Andersen 1983; Leimkuhler & Reich, *Simulating Hamiltonian
//! Dynamics*, §7.2) for systems with holonomic constraints.
//!
//! One step of size `h`:
//! ```text
//! p½   = pₙ − (h/2)(∇V(xₙ) + G(xₙ)λ)
//! xₙ₊₁ = xₙ + h M⁻¹ p½                 with Φ(xₙ₊₁) = 0       (Newton on λ)
//! pₙ₊₁ = p½ − (h/2)(∇V(xₙ₊₁) + G(xₙ₊₁)ν)  with G(xₙ₊₁)ᵀM⁻¹pₙ₊₁ = 0  (linear in ν)
//! ```
//! The map is symplectic on the constraint manifold and keeps `Φ` and `Φ̇` at zero, so the
//! energy error stays bounded (O(h²)) over arbitrarily many steps instead of drifting. Without
//! constraints it is the plain velocity Verlet step.

use super::check_finite;
use crate::dynamics::{Mechanics, Phase, Potential};
use crate::error::{Error, Result};
use crate::integrate::StateVector;
use crate::linalg::{lu_factor, lu_solve};
use crate::real::Real;

/// Settings of RATTLE's implicit position-constraint solve.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RattleParams<T> {
    /// Converged when every `|Φ_c| ≤ tol · scale_c` (`scale` = length² for distances).
    pub tol: T,
    /// Newton iterations allowed per step.
    pub max_iter: usize,
}

impl<T: Real> Default for RattleParams<T> {
    fn default() -> Self {
        Self {
            tol: T::from_f64(32.0) * T::EPSILON,
            max_iter: 50,
        }
    }
}

/// Fixed-step symplectic leapfrog; RATTLE when the system has constraints.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Leapfrog<T> {
    /// Step size (positive, finite).
    pub dt: T,
    /// Constraint-solve settings.
    pub params: RattleParams<T>,
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

impl<T: Real> Leapfrog<T> {
    /// Leapfrog with step `dt` and default constraint-solve settings.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if `dt` is not positive and finite.
    pub fn new(dt: T) -> Result<Self> {
        if !(dt > T::ZERO) || !dt.is_finite() {
            return Err(Error::InvalidParameter {
                name: "dt",
                value: dt.as_f64(),
            });
        }
        Ok(Self {
            dt,
            params: RattleParams::default(),
        })
    }

    /// Advances the Hamiltonian-form state `z = (x, p)` by one step. `z` must satisfy the
    /// constraints (project it first).
    ///
    /// # Errors
    /// [`Error::ConstraintSolveFailed`] if the position constraints cannot be met (step too
    /// large), [`Error::Singular`] for degenerate constraints, [`Error::NonFinite`]. On error `z`
    /// is unchanged.
    pub fn step<const N: usize, const D: usize, const C: usize, P: Potential<T, N, D>>(
        &self,
        sys: &Mechanics<T, N, D, C, P>,
        z: &mut Phase<T, N, D>,
    ) -> Result<()> {
        let h = self.dt;
        let hh = h * T::HALF;
        let x0 = *z.x();
        let mut grad = [[T::ZERO; D]; N];
        sys.potential().accumulate_gradient(&x0, &mut grad);
        let mut p = *z.p();
        for i in 0..N {
            for d in 0..D {
                p[i][d] -= hh * grad[i][d];
            }
        }
        let v = sys.velocity(&p);
        let mut x_hat = x0;
        for i in 0..N {
            for d in 0..D {
                x_hat[i][d] += h * v[i][d];
            }
        }
        let cons = sys.constraints();
        let mut x = x_hat;
        if C > 0 {
            // Position constraints: x = x̂ − Σ μ_c M⁻¹G_c(x₀), Newton on μ.
            let mut g0 = [[[T::ZERO; D]; N]; C];
            let mut y = [[[T::ZERO; D]; N]; C];
            for c in 0..C {
                cons[c].gradient(&x0, &mut g0[c]);
                y[c] = sys.velocity(&g0[c]);
            }
            let mut mu = [T::ZERO; C];
            let mut converged = false;
            let mut worst = T::ZERO;
            for _ in 0..=self.params.max_iter {
                let mut r = [T::ZERO; C];
                worst = T::ZERO;
                for c in 0..C {
                    r[c] = cons[c].value(&x);
                    worst = worst.max(r[c].abs() / cons[c].scale());
                }
                if !worst.is_finite() {
                    break;
                }
                if worst <= self.params.tol {
                    converged = true;
                    break;
                }
                let mut jac = [[T::ZERO; C]; C];
                let mut g = [[T::ZERO; D]; N];
                for a in 0..C {
                    cons[a].gradient(&x, &mut g);
                    for b in 0..C {
                        jac[a][b] = ndot(&g, &y[b]);
                    }
                }
                let mut perm = [0usize; C];
                let mut scratch = [T::ZERO; C];
                let jf = jac.as_flattened_mut();
                lu_factor(jf, C, &mut perm)?;
                lu_solve(jf, C, &perm, &mut r, &mut scratch)?;
                for c in 0..C {
                    mu[c] += r[c];
                }
                x = x_hat;
                for c in 0..C {
                    for i in 0..N {
                        for d in 0..D {
                            x[i][d] -= mu[c] * y[c][i][d];
                        }
                    }
                }
            }
            if !converged {
                return Err(Error::ConstraintSolveFailed {
                    iterations: self.params.max_iter,
                    residual: worst.as_f64(),
                });
            }
            let inv_h = T::ONE / h;
            for c in 0..C {
                for i in 0..N {
                    for d in 0..D {
                        p[i][d] -= inv_h * mu[c] * g0[c][i][d];
                    }
                }
            }
        }
        let mut grad = [[T::ZERO; D]; N];
        sys.potential().accumulate_gradient(&x, &mut grad);
        for i in 0..N {
            for d in 0..D {
                p[i][d] -= hh * grad[i][d];
            }
        }
        if C > 0 {
            // Velocity constraints: p ← p − Σ ν_c G_c(x) with G(x)ᵀM⁻¹p = 0.
            let mut g1 = [[[T::ZERO; D]; N]; C];
            let mut y1 = [[[T::ZERO; D]; N]; C];
            for c in 0..C {
                cons[c].gradient(&x, &mut g1[c]);
                y1[c] = sys.velocity(&g1[c]);
            }
            let mut s = [[T::ZERO; C]; C];
            let mut nu = [T::ZERO; C];
            for a in 0..C {
                for b in 0..C {
                    s[a][b] = ndot(&g1[a], &y1[b]);
                }
                nu[a] = ndot(&y1[a], &p);
            }
            let mut perm = [0usize; C];
            let mut scratch = [T::ZERO; C];
            let sf = s.as_flattened_mut();
            lu_factor(sf, C, &mut perm)?;
            lu_solve(sf, C, &perm, &mut nu, &mut scratch)?;
            for c in 0..C {
                for i in 0..N {
                    for d in 0..D {
                        p[i][d] -= nu[c] * g1[c][i][d];
                    }
                }
            }
        }
        let out = Phase::new(x, p);
        check_finite(out.as_slice(), T::ZERO)?;
        *z = out;
        Ok(())
    }

    /// Takes `steps` steps.
    ///
    /// # Errors
    /// As [`Leapfrog::step`]; `z` holds the last good state.
    pub fn advance<const N: usize, const D: usize, const C: usize, P: Potential<T, N, D>>(
        &self,
        sys: &Mechanics<T, N, D, C, P>,
        z: &mut Phase<T, N, D>,
        steps: usize,
    ) -> Result<()> {
        for _ in 0..steps {
            self.step(sys, z)?;
        }
        Ok(())
    }
}
