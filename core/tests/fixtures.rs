//! Keel's Cartesian constrained dynamics against an independent derivation.
//!
//! The fixtures in `fixtures/dynamics/` come from `fixtures/gen/dynamics.py` (numpy 1.26.4,
//! scipy 1.12.0, sympy 1.12): each system's equations of motion are derived with sympy in
//! *generalized* coordinates — absolute link angles for the chain pendulum, spherical angles for
//! the spherical, coupled and magnet pendulums, ZXZ Euler angles for the heavy symmetric top
//! (gyroscope), Euler's equations plus orientation for the free rigid body (rotor) — and
//! integrated with `solve_ivp(method="DOP853", rtol=1e-12, atol=1e-12)`; the script then maps
//! the states to Cartesian node positions and velocities. Nothing in that derivation uses
//! constraints, Lagrange multipliers or Keel's code.
//!
//! Here Keel integrates the same initial state in Cartesian coordinates with the projected
//! vector field and its own Dopri5 at rtol = atol = 1e-10, and every position and velocity at
//! every output time must match within the fixture's tolerance (1e-7 absolute). The generator
//! checked that its own answers move by < 1e-8 between rtol 1e-10 and 1e-12, so chaos does not
//! eat the tolerance.

use std::path::PathBuf;

use keel_core::dynamics::systems::{
    ChainPendulum, CoupledPendulum, Gyroscope, MagnetPendulum, Rotor,
};
use keel_core::dynamics::{DipoleSign, Mechanics, Phase, Potential};
use keel_core::integrate::{Dopri5, StateVector};
use serde_json::Value;

fn load(case: &str) -> Value {
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "fixtures",
        "dynamics",
        &format!("{case}.json"),
    ]
    .iter()
    .collect();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn nums(v: &Value) -> Vec<f64> {
    match v {
        Value::Number(n) => vec![n.as_f64().unwrap()],
        Value::Array(a) => a.iter().flat_map(nums).collect(),
        _ => panic!("expected numbers, got {v}"),
    }
}

fn arr<const K: usize>(v: &Value) -> [f64; K] {
    let n = nums(v);
    assert_eq!(n.len(), K, "length of {v}");
    core::array::from_fn(|i| n[i])
}

/// Integrates from the fixture's first row and compares every row; returns the worst deviation.
fn compare<const N: usize, const D: usize, const C: usize, P: Potential<f64, N, D>>(
    case: &str,
    m: &Mechanics<f64, N, D, C, P>,
    fx: &Value,
) -> f64 {
    let tol = fx["tolerance"].as_f64().unwrap();
    assert!(
        tol <= 1e-7,
        "{case}: tolerance {tol} looser than the issue's 1e-7"
    );
    let times = nums(&fx["t"]);
    let xs = fx["x"].as_array().unwrap();
    let vs = fx["v"].as_array().unwrap();
    let energies = nums(&fx["energy"]);
    assert_eq!(times.len(), xs.len(), "{case}: rows of x");
    assert_eq!(times.len(), vs.len(), "{case}: rows of v");
    assert_eq!(times.len(), energies.len(), "{case}: energies");
    assert!(times.len() >= 2, "{case}: no times to compare");
    let mut z = Phase::<f64, N, D>::zeros();
    let first: Vec<f64> = nums(&xs[0]).into_iter().chain(nums(&vs[0])).collect();
    assert_eq!(first.len(), 2 * N * D, "{case}: first state's size");
    for (o, i) in z.as_mut_slice().iter_mut().zip(first) {
        *o = i;
    }
    let z0 = m.from_velocity_form(&z);
    // Same energy, computed independently (Cartesian here, generalized coordinates there).
    let e_scale = energies[0].abs().max(1.0);
    assert!(
        (m.energy(&z0) - energies[0]).abs() < 1e-10 * e_scale,
        "{case}: energy {} vs {}",
        m.energy(&z0),
        energies[0]
    );
    let mut solver = Dopri5::new(1e-10, 1e-10)
        .unwrap()
        .start(m, times[0], z0)
        .unwrap();
    let mut worst = 0.0f64;
    for (k, &t) in times.iter().enumerate().skip(1) {
        let z = solver.advance_to(m, t).unwrap();
        let x_ref = nums(&xs[k]);
        let v_ref = nums(&vs[k]);
        let v = m.velocity(z.p());
        assert_eq!(x_ref.len(), N * D, "{case}: t = {t}: x's size");
        assert_eq!(v_ref.len(), N * D, "{case}: t = {t}: v's size");
        for (i, (a, b)) in z.x().as_flattened().iter().zip(&x_ref).enumerate() {
            let d = (a - b).abs();
            worst = worst.max(d);
            assert!(
                d <= tol,
                "{case}: t = {t}: x[{i}] = {a} vs {b} (|Δ| = {d:e})"
            );
        }
        for (i, (a, b)) in v.as_flattened().iter().zip(&v_ref).enumerate() {
            let d = (a - b).abs();
            worst = worst.max(d);
            assert!(
                d <= tol,
                "{case}: t = {t}: v[{i}] = {a} vs {b} (|Δ| = {d:e})"
            );
        }
        assert!(
            (m.energy(&z) - energies[k]).abs() < 1e-8 * e_scale,
            "{case}: t = {t}: energy"
        );
    }
    worst
}

fn chain<const L: usize>(case: &str) -> f64 {
    let fx = load(case);
    let p = &fx["params"];
    let sys = ChainPendulum::<f64, L>::new(
        arr(&p["masses"]),
        arr(&p["lengths"]),
        p["gravity"].as_f64().unwrap(),
    )
    .unwrap();
    compare(case, sys.mechanics(), &fx)
}

#[test]
fn chain_pendulums_match_angle_space_reference() {
    for (case, worst) in [
        ("chain_pendulum_1", chain::<1>("chain_pendulum_1")),
        ("chain_pendulum_2", chain::<2>("chain_pendulum_2")),
        (
            "chain_pendulum_2_scipy_value",
            chain::<2>("chain_pendulum_2_scipy_value"),
        ),
        ("chain_pendulum_3", chain::<3>("chain_pendulum_3")),
        ("chain_pendulum_3_cli", chain::<3>("chain_pendulum_3_cli")),
        ("chain_pendulum_5", chain::<5>("chain_pendulum_5")),
    ] {
        eprintln!("{case}: worst |Δ| = {worst:.2e}");
    }
}

#[test]
fn spherical_and_magnet_pendulums_match_spherical_angle_reference() {
    let fx = load("spherical_pendulum");
    let p = &fx["params"];
    let sys = MagnetPendulum::<f64, 2>::new(
        p["mass"].as_f64().unwrap(),
        p["length"].as_f64().unwrap(),
        0.0, // magnets off
        p["gravity"].as_f64().unwrap(),
        DipoleSign::Physical,
    )
    .unwrap();
    eprintln!(
        "spherical: {:.2e}",
        compare("spherical_pendulum", sys.mechanics(), &fx)
    );
    for (case, sign) in [
        ("magnet_pendulum_physical", DipoleSign::Physical),
        ("magnet_pendulum_reference", DipoleSign::Reference),
    ] {
        let fx = load(case);
        let p = &fx["params"];
        let sys = MagnetPendulum::<f64, 2>::new(
            p["mass"].as_f64().unwrap(),
            p["length"].as_f64().unwrap(),
            p["q"].as_f64().unwrap(),
            p["gravity"].as_f64().unwrap(),
            sign,
        )
        .unwrap();
        // The fixture's magnets are where Keel puts them.
        let magnets = &sys.mechanics().potential().1;
        for (k, pos) in fx["params"]["magnet_positions"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
        {
            let want: [f64; 3] = arr(pos);
            for d in 0..3 {
                assert!((magnets.positions[k][d] - want[d]).abs() < 1e-15);
            }
        }
        assert_eq!(
            p["dipole_sign"].as_f64().unwrap(),
            if sign == DipoleSign::Physical {
                1.0
            } else {
                -1.0
            }
        );
        eprintln!("{case}: {:.2e}", compare(case, sys.mechanics(), &fx));
    }
}

#[test]
fn coupled_pendulums_match_spherical_angle_reference() {
    let fx = load("coupled_pendulum_3");
    let p = &fx["params"];
    assert_eq!(p["spring_rest"].as_f64().unwrap(), 1.0);
    let sys = CoupledPendulum::<f64, 3>::new(
        arr(&p["masses"]),
        arr(&p["lengths"]),
        p["spring_k"].as_f64().unwrap(),
        p["gravity"].as_f64().unwrap(),
    )
    .unwrap();
    eprintln!(
        "coupled: {:.2e}",
        compare("coupled_pendulum_3", sys.mechanics(), &fx)
    );
}

#[test]
fn gyroscope_matches_heavy_symmetric_top_in_euler_angles() {
    let fx = load("gyroscope");
    let p = &fx["params"];
    let pivot: [f64; 3] = arr(&p["pivot_body_coords"]);
    assert_eq!(&pivot[..2], &[0.0, 0.0]);
    let sys = Gyroscope::<f64>::new(
        p["mass"].as_f64().unwrap(),
        arr(&p["moments"]),
        -pivot[2],
        p["gravity"].as_f64().unwrap(),
    )
    .unwrap();
    eprintln!(
        "gyroscope: {:.2e}",
        compare("gyroscope", sys.mechanics(), &fx)
    );
}

#[test]
fn rotor_matches_euler_equations_of_the_free_rigid_body() {
    let fx = load("rotor");
    let p = &fx["params"];
    let sys = Rotor::<f64>::new(p["mass"].as_f64().unwrap(), arr(&p["moments"])).unwrap();
    eprintln!("rotor: {:.2e}", compare("rotor", sys.mechanics(), &fx));
}

/// The paper systems' default parameters agree with what the fixtures were generated for.
#[test]
fn paper_defaults_match_fixture_parameters() {
    let g = Gyroscope::<f64>::paper().unwrap();
    let fx = load("gyroscope");
    assert_eq!(g.moments(), arr::<3>(&fx["params"]["moments"]));
    assert_eq!(g.com_height(), -nums(&fx["params"]["pivot_body_coords"])[2]);
    let r = Rotor::<f64>::paper().unwrap();
    assert_eq!(r.moments(), arr::<3>(&load("rotor")["params"]["moments"]));
}
