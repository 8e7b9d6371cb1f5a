//! The part of WISKI's log marginal likelihood that depends on a new point's features, and its
//! gradient with respect to them — the objective of the online stem step of Stanton et al.,
//! *Kernel Interpolation for Scalable Online Gaussian Processes* (AISTATS 2021; the reference
//! code's `online_gp/mlls/streaming_partial_mll.py`, wjmaddox/online_gp).
//!
//! With `C = (K′⁻¹ + A)⁻¹` the covariance cache (`C = S Sᵀ`, the core's root), `a = C b`, the new
//! point's interpolation weights `w`, target `y` (noise factor 1), `v = C w`, `s = 1 + wᵀCw`,
//! `b′ = b + w y` and `t = vᵀb′`:
//! `partial = ½ [(b′ᵀC b′ − t²/s)/σ² − log s]`,
//! which is `log p(y | data so far) + ½(y² + bᵀa)/σ² + ½ log 2πσ²` (Sherman–Morrison: the
//! quadratic form and log-determinant after the point is absorbed, less what does not depend on
//! `w`). Only `w` moves with the features: `a`, `b`, `C` are the caches, held fixed. A point
//! with noise factor `d` (noise `σ²d`, as the Dirichlet classifier's) enters the caches as
//! `(w/√d, y/√d)` with factor 1, and is computed so.

use keel_core::gp::{Grid, Wiski};

use super::weights::weight_gradient;
use crate::error::Result;

/// `partial` and `∂partial/∂z` (one entry per grid dimension) at features `z`, for a point of
/// target `y` and noise factor `d` (> 0).
///
/// # Errors
/// A feature off the grid (unless it clamps).
pub(crate) fn partial_mll<const D: usize>(
    gp: &Wiski<'_, f64, D>,
    grid3: &Grid<f64, 3>,
    clamp: bool,
    z: &[f64; D],
    y: f64,
    d: f64,
) -> Result<(f64, [f64; D])> {
    let mut wg = weight_gradient(grid3, clamp, z)?;
    let root_d = d.sqrt();
    let y = y / root_d;
    for e in 0..wg.nnz {
        wg.weight[e] /= root_d;
        for g in wg.grad[e].iter_mut() {
            *g /= root_d;
        }
    }
    let m = gp.grid().len();
    let s_mat = gp.root();
    let a = gp.grid_mean();
    let (_, b, _, _, _) = gp.statistics();
    let sigma2 = gp.noise();
    let (idx, w) = (&wg.index[..wg.nnz], &wg.weight[..wg.nnz]);
    // φ = Sᵀw, v = Sφ = Cw.
    let mut phi = vec![0.0; m];
    for (&i, &wi) in idx.iter().zip(w) {
        for (p, r) in phi.iter_mut().zip(&s_mat[i * m..(i + 1) * m]) {
            *p += wi * r;
        }
    }
    let v: Vec<f64> = s_mat
        .chunks_exact(m)
        .map(|row| row.iter().zip(&phi).map(|(r, p)| r * p).sum())
        .collect();
    let wcw: f64 = phi.iter().map(|p| p * p).sum();
    let wa: f64 = idx.iter().zip(w).map(|(&i, wi)| wi * a[i]).sum();
    let ba: f64 = b.iter().zip(a).map(|(x, y)| x * y).sum();
    let s = 1.0 + wcw;
    // C b′ = a + y v; b′ᵀC b′ = bᵀa + 2y wᵀa + y² wᵀCw; t = wᵀC b′ = wᵀa + y wᵀCw.
    let bcb = ba + 2.0 * y * wa + y * y * wcw;
    let t = wa + y * wcw;
    let value = 0.5 * ((bcb - t * t / s) / sigma2 - s.ln());
    // ∂/∂w_j (only the non-zeros move): ½[(2y(a + yv) − (2t/s)(a + 2yv) + 2(t/s)² v)/σ² − 2v/s].
    let mut dz = [0.0; D];
    for (e, &j) in idx.iter().enumerate() {
        let (aj, vj) = (a[j], v[j]);
        let dw = 0.5
            * ((2.0 * y * (aj + y * vj) - 2.0 * t / s * (aj + 2.0 * y * vj)
                + 2.0 * (t / s).powi(2) * vj)
                / sigma2
                - 2.0 * vj / s);
        for (k, d) in dz.iter_mut().enumerate() {
            *d += dw * wg.grad[e][k];
        }
    }
    Ok((value, dz))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gp::hyper::{GridSpec, Hyper};
    use crate::gp::store::WiskiStore;
    use crate::gp::weights::grid_3d;
    use keel_core::gp::{Convention, Family};

    /// The partial likelihood is the new point's log predictive density plus terms free of its
    /// features (checked against the core's likelihood before and after absorbing the point),
    /// and its gradient matches central differences in the features.
    #[test]
    fn partial_likelihood_is_the_predictive_density_and_its_gradient_is_right() {
        let spec = GridSpec {
            size: vec![12, 10],
            lo: vec![-1.1],
            hi: vec![1.1],
            convention: Convention::Extended,
            clamp: false,
        }
        .for_dim(2)
        .unwrap();
        let h = Hyper {
            family: Family::Rbf,
            outputscale: 1.2,
            lengthscale: vec![0.4, 0.6],
            noise: 0.07,
        };
        let mut store = WiskiStore::new(spec.nodes());
        let (mut gp, _) = store.model::<2>(&spec, &h).unwrap();
        for i in 0..25 {
            let x = [(i as f64 * 0.71).sin() * 0.9, (i as f64 * 0.37).cos() * 0.9];
            gp.observe(&x, (2.0 * x[0]).sin() - x[1]).unwrap();
        }
        let g3 = grid_3d(&spec).unwrap();
        let (z, y) = ([0.21, -0.33], 0.8);
        let (value, grad) = partial_mll(&gp, &g3, false, &z, y, 1.0).unwrap();
        let (_, b, _, _, _) = gp.statistics();
        let ba: f64 = b.iter().zip(gp.grid_mean()).map(|(p, q)| p * q).sum();
        let before = gp.log_marginal_likelihood();
        let sigma2 = h.noise;
        let expected =
            value - 0.5 * (y * y + ba) / sigma2 - 0.5 * (2.0 * std::f64::consts::PI * sigma2).ln();
        gp.observe(&z, y).unwrap();
        let delta = gp.log_marginal_likelihood() - before;
        assert!((delta - expected).abs() < 1e-9, "{delta} vs {expected}");
        // The gradient at the model without the point: rebuild it.
        let mut store = WiskiStore::new(spec.nodes());
        let (mut gp, _) = store.model::<2>(&spec, &h).unwrap();
        for i in 0..25 {
            let x = [(i as f64 * 0.71).sin() * 0.9, (i as f64 * 0.37).cos() * 0.9];
            gp.observe(&x, (2.0 * x[0]).sin() - x[1]).unwrap();
        }
        for k in 0..2 {
            let eps = 1e-6;
            let (mut up, mut down) = (z, z);
            up[k] += eps;
            down[k] -= eps;
            let fd = (partial_mll(&gp, &g3, false, &up, y, 1.0).unwrap().0
                - partial_mll(&gp, &g3, false, &down, y, 1.0).unwrap().0)
                / (2.0 * eps);
            assert!(
                (fd - grad[k]).abs() < 1e-6 * (1.0 + fd.abs()),
                "z{k}: {} vs {fd}",
                grad[k]
            );
        }
    }

    /// With a noise factor `d`, the partial likelihood still differs from the gain in the log
    /// marginal likelihood on absorbing the point (with noise `σ²d`) by a term free of its
    /// features, and its gradient matches central differences.
    #[test]
    fn partial_likelihood_with_a_noise_factor() {
        let spec = GridSpec {
            size: vec![9, 11],
            lo: vec![-1.0],
            hi: vec![1.0],
            convention: Convention::Extended,
            clamp: false,
        }
        .for_dim(2)
        .unwrap();
        let h = Hyper {
            family: Family::Rbf,
            outputscale: 0.8,
            lengthscale: vec![0.5, 0.3],
            noise: 1.0,
        };
        let g3 = grid_3d(&spec).unwrap();
        let (y, d) = (-0.6, 4.6);
        let gain_less_partial = |z: [f64; 2]| {
            let mut store = WiskiStore::new(spec.nodes());
            let (mut gp, _) = store.model::<2>(&spec, &h).unwrap();
            for i in 0..20 {
                let x = [(i as f64 * 0.53).sin() * 0.8, (i as f64 * 0.29).cos() * 0.8];
                gp.observe_with_noise(&x, x[0] - x[1], 0.7 + (i % 3) as f64)
                    .unwrap();
            }
            let (value, grad) = partial_mll(&gp, &g3, false, &z, y, d).unwrap();
            let eps = 1e-6;
            for k in 0..2 {
                let (mut up, mut down) = (z, z);
                up[k] += eps;
                down[k] -= eps;
                let fd = (partial_mll(&gp, &g3, false, &up, y, d).unwrap().0
                    - partial_mll(&gp, &g3, false, &down, y, d).unwrap().0)
                    / (2.0 * eps);
                assert!(
                    (fd - grad[k]).abs() < 1e-6 * (1.0 + fd.abs()),
                    "{fd} {grad:?}"
                );
            }
            let before = gp.log_marginal_likelihood();
            gp.observe_with_noise(&z, y, d).unwrap();
            gp.log_marginal_likelihood() - before - value
        };
        let (a, b) = (
            gain_less_partial([0.1, -0.4]),
            gain_less_partial([-0.55, 0.62]),
        );
        assert!((a - b).abs() < 1e-9, "{a} vs {b}");
    }
}
