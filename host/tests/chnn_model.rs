//! CHNN on the engine: the projected vector field against the core's mechanics, the analytic
//! input gradient of the potential MLP against reverse mode, and the batched SPD solve.

use keel::autodiff::grad;
use keel::backend::DType;
use keel::chnn::model::{spd_solve, tanh_mlp_input_gradient, Chnn, Graph, Projector};
use keel::params::Params;
use keel::tensor::Tensor;
use keel_core::dynamics::systems::{ChainPendulum, Gyroscope};
use keel_core::dynamics::{Mechanics, Phase, Potential};
use keel_core::integrate::StateVector;
use keel_core::random::{standard_normal, Xoshiro256PlusPlus};

/// `M⁻¹` on nodes, column by column from the core's `inverse_apply`.
fn true_minv<const N: usize, const D: usize, const C: usize, P: Potential<f64, N, D>>(
    m: &Mechanics<f64, N, D, C, P>,
) -> Tensor {
    let mut out = vec![0.0; N * N];
    for j in 0..N {
        let mut p = [[0.0; D]; N];
        p[j][0] = 1.0;
        let v = m.velocity(&p);
        for i in 0..N {
            out[i * N + j] = v[i][0];
        }
    }
    Tensor::from_f64s(&out, &[N, N], DType::F64).unwrap()
}

/// Compares the engine's projected field with `hamiltonian_rate` on `states` (Hamiltonian
/// form), with the true `∇V` and `M⁻¹`.
fn check_field<const N: usize, const D: usize, const C: usize, P: Potential<f64, N, D>>(
    m: &Mechanics<f64, N, D, C, P>,
    states: &[Phase<f64, N, D>],
) {
    let graph = Graph::of(m);
    assert_eq!(graph.c(), C);
    let proj = Projector::new(&graph, DType::F64).unwrap();
    let nd = N * D;
    let b = states.len();
    let mut xs = Vec::new();
    let mut ps = Vec::new();
    let mut gs = Vec::new();
    for z in states {
        xs.extend(z.x().as_flattened());
        ps.extend(z.p().as_flattened());
        let mut g = [[0.0; D]; N];
        m.potential().accumulate_gradient(z.x(), &mut g);
        gs.extend(g.as_flattened());
    }
    let t = |v: &[f64]| Tensor::from_f64s(v, &[b, nd], DType::F64).unwrap();
    let (xd, pd) = proj
        .vector_field(&t(&xs), &t(&ps), &t(&gs), &true_minv(m))
        .unwrap();
    let (xd, pd) = (xd.to_vec_f64().unwrap(), pd.to_vec_f64().unwrap());
    for (k, z) in states.iter().enumerate() {
        let mut dz = Phase::zeros();
        m.hamiltonian_rate(z, None, &mut dz).unwrap();
        let want = dz.as_slice();
        let got: Vec<f64> = xd[k * nd..(k + 1) * nd]
            .iter()
            .chain(&pd[k * nd..(k + 1) * nd])
            .copied()
            .collect();
        close(&got, want, &format!("Hamiltonian, state {k}"));
    }
    // The Lagrangian twin (CLNN) on the same states in velocity form.
    let mut vs = Vec::new();
    for z in states {
        vs.extend(m.velocity(z.p()).as_flattened());
    }
    let acc = proj
        .acceleration(&t(&xs), &t(&vs), &t(&gs), &true_minv(m))
        .unwrap()
        .to_vec_f64()
        .unwrap();
    for (k, z) in states.iter().enumerate() {
        let zv = m.to_velocity_form(z);
        let mut dz = Phase::zeros();
        m.lagrangian_rate(&zv, None, &mut dz).unwrap();
        close(
            &acc[k * nd..(k + 1) * nd],
            dz.p().as_flattened(),
            &format!("Lagrangian, state {k}"),
        );
    }
}

/// `got` equals `want` to 1e-10 of the largest component.
fn close(got: &[f64], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(1.0f64, |a, v| a.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-10 * scale,
            "{what} component {i}: engine {g} vs core {w}"
        );
    }
}

#[test]
fn projected_fields_match_the_core_on_pendulums_and_the_gyroscope() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
    let p2 = ChainPendulum::<f64, 2>::paper().unwrap();
    let m = p2.mechanics();
    let mut states: Vec<_> = (0..5)
        .map(|_| m.from_velocity_form(&p2.sample(&mut rng).unwrap()))
        .collect();
    // Off the velocity manifold too (Φ̇ ≠ 0): the full projection, not just ẋ = M⁻¹p.
    let mut off = states[0];
    off.p_mut()[1][0] += 0.3;
    states.push(off);
    check_field(m, &states);

    let p3 = ChainPendulum::<f64, 3>::paper().unwrap();
    let states: Vec<_> = (0..4)
        .map(|_| {
            p3.mechanics()
                .from_velocity_form(&p3.sample(&mut rng).unwrap())
        })
        .collect();
    check_field(p3.mechanics(), &states);

    // An extended body with a pinned joint: linear constraints and a non-diagonal M⁻¹.
    let gyro = Gyroscope::<f64>::paper().unwrap();
    let states: Vec<_> = (0..4)
        .map(|_| gyro.mechanics().from_velocity_form(&gyro.sample(&mut rng)))
        .collect();
    check_field(gyro.mechanics(), &states);
}

#[test]
fn learned_masses_reproduce_the_body_structure() {
    // With θ set to the true log-masses, M⁻¹ and M are the core's, and inverse to each other.
    let gyro = Gyroscope::<f64>::paper().unwrap();
    let m = gyro.mechanics();
    let graph = Graph::of(m);
    assert_eq!(graph.bodies, vec![(0, 4)]);
    let mut params = Params::new();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(0);
    let net = Chnn::new(&mut params, &graph, 16, 2, DType::F64, &mut rng).unwrap();
    let mass = m.mass();
    let theta: Vec<f64> = std::iter::once(mass.body_mass(0).ln())
        .chain((1..4).map(|k| mass.moment(k).ln()))
        .collect();
    params
        .set(
            net.masses.theta,
            Tensor::from_f64s(&theta, &[4], DType::F64).unwrap(),
        )
        .unwrap();
    let minv = net.masses.inverse(&params).unwrap().to_vec_f64().unwrap();
    let want = true_minv(m).to_vec_f64().unwrap();
    for (a, b) in minv.iter().zip(&want) {
        assert!((a - b).abs() < 1e-9 * (1.0 + b.abs()), "{a} vs {b}");
    }
    let mm = net.masses.forward(&params).unwrap();
    let eye = mm
        .matmul(&net.masses.inverse(&params).unwrap())
        .unwrap()
        .to_vec_f64()
        .unwrap();
    for i in 0..4 {
        for j in 0..4 {
            let e = if i == j { 1.0 } else { 0.0 };
            assert!(
                (eye[i * 4 + j] - e).abs() < 1e-9,
                "M·M⁻¹[{i}][{j}] = {}",
                eye[i * 4 + j]
            );
        }
    }
}

#[test]
fn the_potential_gradient_matches_reverse_mode() {
    let p2 = ChainPendulum::<f64, 2>::paper().unwrap();
    let graph = Graph::of(p2.mechanics());
    let mut params = Params::new();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(4);
    let net = Chnn::new(&mut params, &graph, 32, 3, DType::F64, &mut rng).unwrap();
    let xs: Vec<f64> = (0..6 * 4)
        .map(|_| standard_normal::<f64, _>(&mut rng))
        .collect();
    let x = Tensor::from_f64s(&xs, &[6, 4], DType::F64)
        .unwrap()
        .variable();
    let v = net
        .potential
        .forward(&params, &x)
        .unwrap()
        .sum_all()
        .unwrap();
    let want = grad(&[&v], &[None], &[&x], false).unwrap()[0]
        .clone()
        .unwrap()
        .to_vec_f64()
        .unwrap();
    let got = tanh_mlp_input_gradient(&net.potential, &params, &x)
        .unwrap()
        .to_vec_f64()
        .unwrap();
    assert!(want.iter().any(|v| v.abs() > 1e-3));
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() < 1e-12 * (1.0 + w.abs()), "{g} vs {w}");
    }
}

#[test]
fn spd_solve_solves_batches() {
    // S = AAᵀ + I per batch element.
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(9);
    let (b, c) = (5, 4);
    let mut s = vec![0.0; b * c * c];
    let a: Vec<f64> = (0..b * c * c)
        .map(|_| standard_normal::<f64, _>(&mut rng))
        .collect();
    for k in 0..b {
        for i in 0..c {
            for j in 0..c {
                let mut v = if i == j { 1.0 } else { 0.0 };
                for m in 0..c {
                    v += a[k * c * c + i * c + m] * a[k * c * c + j * c + m];
                }
                s[k * c * c + i * c + j] = v;
            }
        }
    }
    let x: Vec<f64> = (0..b * c)
        .map(|_| standard_normal::<f64, _>(&mut rng))
        .collect();
    let st = Tensor::from_f64s(&s, &[b, c, c], DType::F64).unwrap();
    let xt = Tensor::from_f64s(&x, &[b, c, 1], DType::F64).unwrap();
    let r = st.matmul(&xt).unwrap();
    let got = spd_solve(&st, &r).unwrap().to_vec_f64().unwrap();
    for (g, w) in got.iter().zip(&x) {
        assert!((g - w).abs() < 1e-10, "{g} vs {w}");
    }
}

/// `½ Σ_batch vᵀ A v` for `A` `[b, n, n]` and `v` `[b, n]` (a kinetic energy, recorded).
fn half_quadratic(a: &Tensor, v: &Tensor, b: usize, n: usize) -> Tensor {
    let vc = v.reshape(&[b, n, 1]).unwrap();
    vc.matmul_t(&a.matmul(&vc).unwrap(), true, false)
        .unwrap()
        .sum_all()
        .unwrap()
        .mul_scalar(0.5)
        .unwrap()
}

#[test]
fn the_hnn_field_is_hamiltons_equations_of_its_h() {
    use keel::chnn::coords::Coords;
    use keel::chnn::model::Hnn;
    let p3 = ChainPendulum::<f64, 3>::paper().unwrap();
    let graph = Graph::of(p3.mechanics());
    let z0 = vec![
        0.0, -1.1, 0.0, -2.0, 0.0, -3.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    ];
    let coords = Coords::of(&graph, &z0).unwrap();
    let mut params = Params::new();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(9);
    let net = Hnn::new(&mut params, coords, 24, 2, DType::F64, &mut rng).unwrap();
    let b = 5;
    let mut draw = |scale: f64| -> Tensor {
        let v: Vec<f64> = (0..b * 3)
            .map(|_| scale * standard_normal::<f64, _>(&mut rng))
            .collect();
        Tensor::from_f64s(&v, &[b, 3], DType::F64)
            .unwrap()
            .variable()
    };
    let (q, p) = (draw(2.0), draw(1.0));
    // H = ½ pᵀM⁻¹(q)p + V(q), differentiated by reverse mode.
    let t = half_quadratic(&net.inverse_mass(&params, &q).unwrap(), &p, b, 3);
    let emb = Tensor::concat(&[q.cos().unwrap(), q.sin().unwrap()], 1).unwrap();
    let v = net
        .potential
        .forward(&params, &emb)
        .unwrap()
        .sum_all()
        .unwrap();
    let h = t.add(&v).unwrap();
    let g = grad(&[&h], &[None], &[&q, &p], false).unwrap();
    let dq = g[0].clone().unwrap().to_vec_f64().unwrap();
    let dp = g[1].clone().unwrap().to_vec_f64().unwrap();
    let (qdot, pdot) = net.vector_field(&params, &q, &p).unwrap();
    let (qdot, pdot) = (qdot.to_vec_f64().unwrap(), pdot.to_vec_f64().unwrap());
    let minus_dq: Vec<f64> = dq.iter().map(|v| -v).collect();
    assert!(dq.iter().any(|v| v.abs() > 1e-3) && dp.iter().any(|v| v.abs() > 1e-3));
    close(&qdot, &dp, "q̇ = ∂H/∂p");
    close(&pdot, &minus_dq, "ṗ = −∂H/∂q");
    // M(q)·(M⁻¹(q)p) = p.
    let back = net
        .momentum(&params, &q, &net.velocity(&params, &q, &p).unwrap())
        .unwrap()
        .to_vec_f64()
        .unwrap();
    close(&back, &p.to_vec_f64().unwrap(), "M M⁻¹ p = p");
}

/// A free rigid body's coordinates: three Euler angles and the centre of mass (angles embedded
/// as `(cos, sin)`, lengths as they are).
fn rotor_coords() -> keel::chnn::coords::Coords {
    use keel::chnn::coords::Coords;
    let rotor = keel_core::dynamics::systems::Rotor::<f64>::paper().unwrap();
    let graph = Graph::of(rotor.mechanics());
    let z0 =
        rotor.velocity_state_from_com_euler([0.1, 0.0, 0.2], [0.0; 3], [0.3, 1.0, -0.4], [0.0; 3]);
    let z0: Vec<f64> = z0
        .x()
        .as_flattened()
        .iter()
        .chain(z0.p().as_flattened())
        .copied()
        .collect();
    let c = Coords::of(&graph, &z0).unwrap();
    assert_eq!((c.dof(), c.angles()), (6, 3));
    c
}

/// Standard-normal `[b, n]` variables scaled by `scale`.
fn draws(rng: &mut Xoshiro256PlusPlus, b: usize, n: usize, scale: f64) -> Tensor {
    let v: Vec<f64> = (0..b * n)
        .map(|_| scale * standard_normal::<f64, _>(rng))
        .collect();
    Tensor::from_f64s(&v, &[b, n], DType::F64)
        .unwrap()
        .variable()
}

#[test]
fn the_hnn_field_with_lengths_among_its_coordinates_is_hamiltons_equations() {
    use keel::chnn::model::{embed, Hnn};
    let mut params = Params::new();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(4);
    let net = Hnn::new(&mut params, rotor_coords(), 16, 2, DType::F64, &mut rng).unwrap();
    let (b, n) = (4, 6);
    let (q, p) = (draws(&mut rng, b, n, 1.5), draws(&mut rng, b, n, 1.0));
    let t = half_quadratic(&net.inverse_mass(&params, &q).unwrap(), &p, b, n);
    let v = net
        .potential
        .forward(&params, &embed(&q, 3).unwrap())
        .unwrap()
        .sum_all()
        .unwrap();
    let h = t.add(&v).unwrap();
    let g = grad(&[&h], &[None], &[&q], false).unwrap();
    let minus_dq: Vec<f64> = g[0]
        .clone()
        .unwrap()
        .to_vec_f64()
        .unwrap()
        .iter()
        .map(|v| -v)
        .collect();
    let (_, pdot) = net.vector_field(&params, &q, &p).unwrap();
    assert!(minus_dq[3..6].iter().any(|v| v.abs() > 1e-3));
    close(&pdot.to_vec_f64().unwrap(), &minus_dq, "ṗ = −∂H/∂q");
}

/// DeLaN's `q̈` against the Euler–Lagrange equations of its own `L = ½q̇ᵀM(q)q̇ − V(q)`, every
/// derivative by reverse mode: with `p = ∂L/∂q̇`, `(∂p/∂q̇) q̈ + (∂p/∂q) q̇ = ∂L/∂q`. The rows
/// of `∂p/∂q̇` and `∂p/∂q` come from differentiating each component of `p` again.
fn check_delan(coords: keel::chnn::coords::Coords, seed: u64) {
    use keel::chnn::model::Delan;
    let mut params = Params::new();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let n = coords.dof();
    let net = Delan::new(&mut params, coords, 16, 2, DType::F64, &mut rng).unwrap();
    let b = 3;
    let (q, dq) = (draws(&mut rng, b, n, 1.5), draws(&mut rng, b, n, 1.0));
    let m = net.mass(&params, &q).unwrap();
    let lag = half_quadratic(&m, &dq, b, n)
        .sub(&net.potential(&params, &q).unwrap().sum_all().unwrap())
        .unwrap();
    let g = grad(&[&lag], &[None], &[&q, &dq], true).unwrap();
    let (dl_dq, p) = (g[0].clone().unwrap(), g[1].clone().unwrap());
    // Rows i of ∂p/∂q̇ and ∂p/∂q, for every batch element at once (they are independent).
    let mut m_rows = Vec::new();
    let mut c_rows = Vec::new();
    for i in 0..n {
        let pi = p.narrow(1, i, 1).unwrap().sum_all().unwrap();
        let gi = grad(&[&pi], &[None], &[&dq, &q], false).unwrap();
        m_rows.push(gi[0].clone().unwrap().to_vec_f64().unwrap());
        c_rows.push(gi[1].clone().unwrap().to_vec_f64().unwrap());
    }
    let (_, ddq) = net.vector_field(&params, &q, &dq).unwrap();
    let ddq = ddq.to_vec_f64().unwrap();
    let (dq_v, dl) = (dq.to_vec_f64().unwrap(), dl_dq.to_vec_f64().unwrap());
    let m_v = m.to_vec_f64().unwrap();
    let (mut lhs, mut rhs) = (Vec::new(), Vec::new());
    for k in 0..b {
        for i in 0..n {
            let mut acc = 0.0;
            for j in 0..n {
                // The reverse-mode Hessian ∂p/∂q̇ is the network's M.
                let mij = m_rows[i][k * n + j];
                assert!((mij - m_v[(k * n + i) * n + j]).abs() < 1e-10);
                acc += mij * ddq[k * n + j] + c_rows[i][k * n + j] * dq_v[k * n + j];
            }
            lhs.push(acc);
            rhs.push(dl[k * n + i]);
        }
    }
    assert!(ddq.iter().any(|v| v.abs() > 1e-2));
    close(&lhs, &rhs, "d/dt ∂L/∂q̇ = ∂L/∂q");
    // M(q) is symmetric positive definite by construction: its Cholesky pivots are positive.
    for k in 0..b {
        let a: Vec<f64> = m_v[k * n * n..(k + 1) * n * n].to_vec();
        for i in 0..n {
            assert!((a[i * n + (i + 1) % n] - a[((i + 1) % n) * n + i]).abs() < 1e-14);
        }
        let mut l = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..=i {
                let s: f64 =
                    a[i * n + j] - (0..j).map(|t| l[i * n + t] * l[j * n + t]).sum::<f64>();
                if i == j {
                    assert!(s > 0.0, "pivot {i} of M is {s}");
                    l[i * n + i] = s.sqrt();
                } else {
                    l[i * n + j] = s / l[j * n + j];
                }
            }
        }
    }
}

#[test]
fn the_delan_acceleration_solves_the_euler_lagrange_equations_of_its_lagrangian() {
    use keel::chnn::coords::Coords;
    let p2 = ChainPendulum::<f64, 2>::paper().unwrap();
    let graph = Graph::of(p2.mechanics());
    let z0 = vec![0.0, -1.0, 0.0, -2.0, 0.0, 0.0, 0.0, 0.0];
    check_delan(Coords::of(&graph, &z0).unwrap(), 11);
    check_delan(rotor_coords(), 12);
}
