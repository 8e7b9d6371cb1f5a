//! Rotations for the 3-D rigid bodies: ZXZ Euler angles (intrinsic, as scipy's
//! `Rotation.from_euler('ZXZ', …)` and the CHNN reference code) and the 4-node representation of
//! a rigid body.

use crate::real::Real;

/// `R = Rz(φ)·Rx(θ)·Rz(ψ)`, mapping body coordinates to world coordinates.
pub fn rotation_zxz<T: Real>(euler: [T; 3]) -> [[T; 3]; 3] {
    let [phi, theta, psi] = euler;
    let (s1, c1) = (phi.libm_sin(), phi.libm_cos());
    let (s2, c2) = (theta.libm_sin(), theta.libm_cos());
    let (s3, c3) = (psi.libm_sin(), psi.libm_cos());
    [
        [c1 * c3 - s1 * c2 * s3, -c1 * s3 - s1 * c2 * c3, s1 * s2],
        [s1 * c3 + c1 * c2 * s3, -s1 * s3 + c1 * c2 * c3, -c1 * s2],
        [s2 * s3, s2 * c3, c2],
    ]
}

/// Body-frame angular velocity `ω` from ZXZ Euler angles and their rates:
/// `ω = (φ̇ sinθ sinψ + θ̇ cosψ, φ̇ sinθ cosψ − θ̇ sinψ, φ̇ cosθ + ψ̇)`.
pub fn body_angular_velocity<T: Real>(euler: [T; 3], rates: [T; 3]) -> [T; 3] {
    let [_, theta, psi] = euler;
    let [dphi, dtheta, dpsi] = rates;
    [
        dphi * theta.libm_sin() * psi.libm_sin() + dtheta * psi.libm_cos(),
        dphi * theta.libm_sin() * psi.libm_cos() - dtheta * psi.libm_sin(),
        dphi * theta.libm_cos() + dpsi,
    ]
}

/// Node positions and velocities of a rigid body: node 0 at the centre of mass, node `k` at
/// `x₀ + R e_k`, velocities `ẋ₀` and `ẋ₀ + Ṙ e_k` with `Ṙ = R[ω]×`.
pub fn rigid_body_nodes<T: Real>(
    com: [T; 3],
    com_velocity: [T; 3],
    euler: [T; 3],
    euler_rates: [T; 3],
) -> ([[T; 3]; 4], [[T; 3]; 4]) {
    let r = rotation_zxz(euler);
    let w = body_angular_velocity(euler, euler_rates);
    // [ω]× columns: [ω]× e_k = ω × e_k.
    let cross = [
        [T::ZERO, -w[2], w[1]],
        [w[2], T::ZERO, -w[0]],
        [-w[1], w[0], T::ZERO],
    ];
    let mut x = [com; 4];
    let mut v = [com_velocity; 4];
    for k in 0..3 {
        for d in 0..3 {
            x[k + 1][d] += r[d][k];
            // (R[ω]×)_{d,k} = Σ_j R_{d,j} [ω]×_{j,k}
            let mut rd = T::ZERO;
            for j in 0..3 {
                rd += r[d][j] * cross[j][k];
            }
            v[k + 1][d] += rd;
        }
    }
    (x, v)
}

/// The point on a sphere used by the CHNN reference for pendulum bobs, from its spherical angles
/// `(φ, θ)`: `(−cos θ, sin φ sin θ, cos φ sin θ)` (the frame z-axis of ZXZ angles
/// `(φ + π/2, θ, 0)` rotated −90° about y); `(φ, θ) = (π, π/2)` hangs straight down. Returns the
/// unit vector and its time derivative.
pub fn sphere_point<T: Real>(phi: T, theta: T, dphi: T, dtheta: T) -> ([T; 3], [T; 3]) {
    let (sp, cp) = (phi.libm_sin(), phi.libm_cos());
    let (st, ct) = (theta.libm_sin(), theta.libm_cos());
    (
        [-ct, sp * st, cp * st],
        [
            st * dtheta,
            cp * st * dphi + sp * ct * dtheta,
            -sp * st * dphi + cp * ct * dtheta,
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_is_orthonormal_and_matches_axis_angles() {
        let r = rotation_zxz([0.3f64, 1.1, -0.7]);
        for a in 0..3 {
            for b in 0..3 {
                let s: f64 = (0..3).map(|k| r[k][a] * r[k][b]).sum();
                assert!((s - if a == b { 1.0 } else { 0.0 }).abs() < 1e-15);
            }
        }
        // Pure θ about x: third column is (0, −sin θ, cos θ).
        let r = rotation_zxz([0.0f64, 0.4, 0.0]);
        assert!(
            (r[1][2] + 0.4f64.libm_sin()).abs() < 1e-16
                && (r[2][2] - 0.4f64.libm_cos()).abs() < 1e-16
        );
    }

    #[test]
    fn node_velocities_are_time_derivatives() {
        let (e, de) = ([0.3f64, 1.1, -0.7], [0.5, -0.2, 3.0]);
        let (com, dcom) = ([0.1, 0.2, 0.3], [1.0, -1.0, 0.5]);
        let (_, v) = rigid_body_nodes(com, dcom, e, de);
        let h = 1e-6;
        let at = |s: f64| {
            let ee = [e[0] + s * de[0], e[1] + s * de[1], e[2] + s * de[2]];
            let cc = [
                com[0] + s * dcom[0],
                com[1] + s * dcom[1],
                com[2] + s * dcom[2],
            ];
            rigid_body_nodes(cc, dcom, ee, de).0
        };
        let (xp, xm) = (at(h), at(-h));
        for k in 0..4 {
            for d in 0..3 {
                let num = (xp[k][d] - xm[k][d]) / (2.0 * h);
                assert!((num - v[k][d]).abs() < 1e-8, "node {k} axis {d}");
            }
        }
    }

    #[test]
    fn sphere_point_derivative() {
        let (p, v) = sphere_point(2.5f64, 1.2, 0.3, -0.4);
        assert!((p.iter().map(|a| a * a).sum::<f64>() - 1.0).abs() < 1e-15);
        let h = 1e-6;
        let (pp, _) = sphere_point(2.5 + 0.3 * h, 1.2 - 0.4 * h, 0.0, 0.0);
        let (pm, _) = sphere_point(2.5 - 0.3 * h, 1.2 + 0.4 * h, 0.0, 0.0);
        for d in 0..3 {
            assert!(((pp[d] - pm[d]) / (2.0 * h) - v[d]).abs() < 1e-8);
        }
        let (down, _) = sphere_point(
            core::f64::consts::PI,
            core::f64::consts::FRAC_PI_2,
            0.0,
            0.0,
        );
        assert!(down[0].abs() < 1e-15 && down[1].abs() < 1e-15 && (down[2] + 1.0).abs() < 1e-15);
    }
}
