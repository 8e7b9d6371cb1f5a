//! Krylov solvers on operators known only through their products: preconditioned conjugate
//! gradients for `A x = b` and Lanczos tridiagonalisation for roots of `A⁻¹`, both for symmetric
//! positive-definite `A` (Hestenes & Stiefel 1952; Lanczos 1950; Golub & Van Loan, *Matrix
//! Computations*, §10.2 and §10.1). The linearized-network posteriors use them as the reference
//! code does through GPyTorch (`inv_matmul` by CG, `root_decomposition` by Lanczos).

use keel_core::linalg::symmetric_eigen;

use crate::error::{Error, Result};

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

/// How a conjugate-gradient solve ended.
#[derive(Clone, Debug, PartialEq)]
pub struct CgReport {
    /// Iterations taken (operator products after the first residual).
    pub iterations: usize,
    /// `‖b − A x‖ / ‖b‖` of the returned `x`, from the recurrence.
    pub relative_residual: f64,
    /// Whether the residual reached the tolerance.
    pub converged: bool,
}

/// Settings of a conjugate-gradient solve.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CgSettings {
    /// Stop when `‖r‖ ≤ tol·‖b‖`.
    pub tol: f64,
    /// Give up after this many iterations.
    pub max_iter: usize,
}

impl CgSettings {
    /// Checks the settings.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming `cg_tol` or `cg_max_iter`.
    pub fn check(&self) -> Result<()> {
        if !(self.tol > 0.0) || !self.tol.is_finite() {
            return Err(Error::invalid(
                "cg_tol",
                self.tol,
                "must be positive and finite",
            ));
        }
        if self.max_iter == 0 {
            return Err(Error::invalid("cg_max_iter", 0, "must be at least 1"));
        }
        Ok(())
    }
}

/// Solves `A x = b` by conjugate gradients, preconditioned by the diagonal `m` of an
/// approximation to `A` when given (Jacobi: `z = r / m`). Starts from `x = 0`.
///
/// Does not fail when the tolerance is not reached: the report says so, and the caller decides
/// (the posteriors turn it into an error naming the iterations and the residual).
///
/// # Errors
/// Errors of the operator; [`Error::Solver`] if the operator is not positive definite along a
/// search direction (`pᵀAp ≤ 0`) or returns a vector of the wrong length or a non-finite value.
pub fn cg(
    mut apply: impl FnMut(&[f64]) -> Result<Vec<f64>>,
    b: &[f64],
    precond: Option<&[f64]>,
    settings: CgSettings,
) -> Result<(Vec<f64>, CgReport)> {
    settings.check()?;
    let n = b.len();
    if let Some(m) = precond {
        if m.len() != n || m.iter().any(|d| !(*d > 0.0) || !d.is_finite()) {
            return Err(Error::Solver {
                reason: "CG preconditioner: the diagonal must be positive and as long as b".into(),
            });
        }
    }
    let bnorm = norm(b);
    let mut x = vec![0.0; n];
    if bnorm == 0.0 {
        return Ok((
            x,
            CgReport {
                iterations: 0,
                relative_residual: 0.0,
                converged: true,
            },
        ));
    }
    let precondition = |r: &[f64]| -> Vec<f64> {
        match precond {
            Some(m) => r.iter().zip(m).map(|(r, m)| r / m).collect(),
            None => r.to_vec(),
        }
    };
    let mut r = b.to_vec();
    let mut z = precondition(&r);
    let mut p = z.clone();
    let mut rz = dot(&r, &z);
    let mut rel = 1.0;
    for it in 0..settings.max_iter {
        let ap = apply(&p)?;
        if ap.len() != n || ap.iter().any(|v| !v.is_finite()) {
            return Err(Error::Solver {
                reason: format!(
                    "CG: the operator returned {} values (expected {n}) or a non-finite one",
                    ap.len()
                ),
            });
        }
        let pap = dot(&p, &ap);
        if !(pap > 0.0) {
            return Err(Error::Solver {
                reason: format!(
                    "CG: the operator is not positive definite (pᵀAp = {pap:e} in iteration {})",
                    it + 1
                ),
            });
        }
        let a = rz / pap;
        for i in 0..n {
            x[i] += a * p[i];
            r[i] -= a * ap[i];
        }
        rel = norm(&r) / bnorm;
        if rel <= settings.tol {
            return Ok((
                x,
                CgReport {
                    iterations: it + 1,
                    relative_residual: rel,
                    converged: true,
                },
            ));
        }
        z = precondition(&r);
        let rz_new = dot(&r, &z);
        let beta = rz_new / rz;
        rz = rz_new;
        for i in 0..n {
            p[i] = z[i] + beta * p[i];
        }
    }
    Ok((
        x,
        CgReport {
            iterations: settings.max_iter,
            relative_residual: rel,
            converged: false,
        },
    ))
}

/// A Lanczos tridiagonalisation `A Q ≈ Q T` from a start vector, with full
/// re-orthogonalisation (the basis is kept, so `m` vectors of the operator's length).
#[derive(Clone, Debug)]
pub struct Lanczos {
    /// The orthonormal basis `q₁ … q_m`.
    pub q: Vec<Vec<f64>>,
    /// The diagonal of `T`.
    pub alpha: Vec<f64>,
    /// The off-diagonal of `T` (`m − 1` entries).
    pub beta: Vec<f64>,
    /// Whether the Krylov space became invariant under `A` (the next residual vanished
    /// relative to `‖A‖`): then `Q T Qᵀ` is `A` restricted to that space exactly.
    pub invariant: bool,
}

impl Lanczos {
    /// Runs at most `max_rank` steps of Lanczos on `apply` from `start`, stopping early when the
    /// Krylov space becomes invariant.
    ///
    /// # Errors
    /// [`Error::Solver`] for a zero or non-finite start vector, or an operator returning a
    /// wrong length or non-finite values; errors of the operator.
    pub fn run(
        mut apply: impl FnMut(&[f64]) -> Result<Vec<f64>>,
        start: &[f64],
        max_rank: usize,
    ) -> Result<Lanczos> {
        let n = start.len();
        let s = norm(start);
        if !(s > 0.0) || !s.is_finite() {
            return Err(Error::Solver {
                reason: "Lanczos: the start vector is zero or not finite".into(),
            });
        }
        let max_rank = max_rank.clamp(1, n);
        let mut q: Vec<Vec<f64>> = vec![start.iter().map(|v| v / s).collect()];
        let (mut alpha, mut beta) = (Vec::new(), Vec::new());
        let mut scale = 0.0f64;
        loop {
            let j = q.len() - 1;
            let mut w = apply(&q[j])?;
            if w.len() != n || w.iter().any(|v| !v.is_finite()) {
                return Err(Error::Solver {
                    reason: "Lanczos: the operator returned a wrong length or a non-finite value"
                        .into(),
                });
            }
            let a = dot(&w, &q[j]);
            alpha.push(a);
            scale = scale.max(norm(&w));
            // w ← w − a q_j − β q_{j−1}, then twice against every kept vector (full
            // re-orthogonalisation keeps Q orthonormal to rounding).
            for _ in 0..2 {
                for qi in &q {
                    let c = dot(&w, qi);
                    for (wk, qk) in w.iter_mut().zip(qi) {
                        *wk -= c * qk;
                    }
                }
            }
            if q.len() == max_rank {
                return Ok(Lanczos {
                    q,
                    alpha,
                    beta,
                    invariant: max_rank == n,
                });
            }
            let b = norm(&w);
            if b <= 1e-10 * scale {
                return Ok(Lanczos {
                    q,
                    alpha,
                    beta,
                    invariant: true,
                });
            }
            beta.push(b);
            q.push(w.into_iter().map(|v| v / b).collect());
        }
    }

    /// The rank `m` of the decomposition.
    pub fn rank(&self) -> usize {
        self.q.len()
    }

    /// The eigen-decomposition `T = V Λ Vᵀ`: the eigenvalues and `V` row-major (`m × m`,
    /// column `j` the eigenvector of `λ_j`).
    ///
    /// # Errors
    /// [`Error::Core`] if the eigensolver fails (non-finite `T`).
    pub fn eigen(&self) -> Result<(Vec<f64>, Vec<f64>)> {
        let m = self.rank();
        let mut t = vec![0.0; m * m];
        for i in 0..m {
            t[i * m + i] = self.alpha[i];
            if i + 1 < m {
                t[i * m + i + 1] = self.beta[i];
                t[(i + 1) * m + i] = self.beta[i];
            }
        }
        let mut v = vec![0.0; m * m];
        symmetric_eigen(&mut t, m, &mut v).map_err(Error::core("Lanczos eigen-decomposition"))?;
        Ok(((0..m).map(|i| t[i * m + i]).collect(), v))
    }

    /// The root `R = V Λ^{−1/2}` (`m × m`, row-major) with `T⁻¹ = R Rᵀ`, so that
    /// `A⁻¹ ≈ (Q R)(Q R)ᵀ` on the Krylov space (the reference's root `S = Q V Λ^{−1/2}`).
    ///
    /// # Errors
    /// [`Error::Solver`] if `T` has an eigenvalue ≤ 0 (the operator is not positive definite).
    pub fn inverse_root(&self) -> Result<Vec<f64>> {
        let m = self.rank();
        let (lam, v) = self.eigen()?;
        if let Some(l) = lam.iter().find(|l| !(**l > 0.0)) {
            return Err(Error::Solver {
                reason: format!(
                    "Lanczos: T has the eigenvalue {l:e}; the operator is not positive definite"
                ),
            });
        }
        let mut r = v;
        for i in 0..m {
            for j in 0..m {
                r[i * m + j] /= lam[j].sqrt();
            }
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spd(n: usize) -> Vec<f64> {
        // A = B Bᵀ + I with a fixed B.
        let b: Vec<f64> = (0..n * n)
            .map(|k| ((k * 7919 % 101) as f64 / 101.0) - 0.5)
            .collect();
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] = (0..n).map(|k| b[i * n + k] * b[j * n + k]).sum::<f64>();
            }
            a[i * n + i] += 1.0;
        }
        a
    }

    fn mv(a: &[f64], x: &[f64]) -> Vec<f64> {
        let n = x.len();
        (0..n).map(|i| dot(&a[i * n..(i + 1) * n], x)).collect()
    }

    #[test]
    fn cg_solves_to_the_tolerance() {
        let n = 12;
        let a = spd(n);
        let b: Vec<f64> = (0..n).map(|i| (i as f64).sin()).collect();
        let diag: Vec<f64> = (0..n).map(|i| a[i * n + i]).collect();
        for pre in [None, Some(&diag[..])] {
            let (x, rep) = cg(
                |v| Ok(mv(&a, v)),
                &b,
                pre,
                CgSettings {
                    tol: 1e-12,
                    max_iter: 100,
                },
            )
            .unwrap();
            assert!(rep.converged);
            let r: Vec<f64> = mv(&a, &x).iter().zip(&b).map(|(p, q)| p - q).collect();
            assert!(norm(&r) / norm(&b) < 1e-11, "{rep:?}");
        }
    }

    #[test]
    fn cg_reports_a_solve_that_did_not_converge() {
        let n = 12;
        let a = spd(n);
        let b = vec![1.0; n];
        let (_, rep) = cg(
            |v| Ok(mv(&a, v)),
            &b,
            None,
            CgSettings {
                tol: 1e-14,
                max_iter: 2,
            },
        )
        .unwrap();
        assert!(!rep.converged);
        assert_eq!(rep.iterations, 2);
        assert!(rep.relative_residual > 1e-14);
    }

    #[test]
    fn cg_refuses_an_indefinite_operator() {
        let e = cg(
            |v| Ok(v.iter().map(|x| -x).collect()),
            &[1.0, 2.0],
            None,
            CgSettings {
                tol: 1e-8,
                max_iter: 5,
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("not positive definite"), "{e}");
    }

    #[test]
    fn full_lanczos_root_inverts_the_operator() {
        // diag(1, …, n) plus a weak coupling: well-separated eigenvalues, so the Krylov space of
        // a generic start vector is the whole space.
        let n = 9;
        let a: Vec<f64> = (0..n * n)
            .map(|k| {
                let (i, j): (usize, usize) = (k / n, k % n);
                let coupling = 0.2 / (1.0 + i.abs_diff(j) as f64);
                coupling + if i == j { (i + 1) as f64 } else { 0.0 }
            })
            .collect();
        let start: Vec<f64> = (0..n).map(|i| 1.0 + i as f64).collect();
        let l = Lanczos::run(|v| Ok(mv(&a, v)), &start, n).unwrap();
        assert!(l.invariant);
        assert_eq!(l.rank(), n);
        let m = l.rank();
        let r = l.inverse_root().unwrap();
        // (Q R)(Q R)ᵀ A = I.
        let qr: Vec<Vec<f64>> = (0..m)
            .map(|j| {
                (0..n)
                    .map(|i| (0..m).map(|k| l.q[k][i] * r[k * m + j]).sum())
                    .collect()
            })
            .collect();
        for c in 0..n {
            let mut e = vec![0.0; n];
            e[c] = 1.0;
            let ae = mv(&a, &e);
            let back: Vec<f64> = (0..n)
                .map(|i| qr.iter().map(|col| col[i] * dot(col, &ae)).sum())
                .collect();
            for i in 0..n {
                let want = if i == c { 1.0 } else { 0.0 };
                assert!((back[i] - want).abs() < 1e-10, "{i} {c}: {}", back[i]);
            }
        }
    }

    #[test]
    fn lanczos_stops_on_an_invariant_space() {
        // A = I + u uᵀ: the Krylov space of any start vector has dimension ≤ 2.
        let n = 10;
        let u: Vec<f64> = (0..n).map(|i| i as f64 * 0.3).collect();
        let start: Vec<f64> = (0..n).map(|i| (i as f64).cos()).collect();
        let l = Lanczos::run(
            |v| {
                let c = dot(&u, v);
                Ok(v.iter().zip(&u).map(|(x, ui)| x + c * ui).collect())
            },
            &start,
            n,
        )
        .unwrap();
        assert!(l.invariant);
        assert_eq!(l.rank(), 2);
    }
}
