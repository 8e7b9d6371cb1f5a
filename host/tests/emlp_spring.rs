//! The double spring pendulum (host/src/emlp/spring.rs) against an independent reference
//! (fixtures/emlp/double_spring.json, written by fixtures/gen/double_spring.py: the reference's
//! Hamiltonian differentiated by sympy, the flow integrated by scipy's DOP853 at 1e-12).

use std::path::PathBuf;

use keel::emlp::spring::{SpringPendulum, State, STATE};
use serde_json::Value;

fn fixture() -> Value {
    let p: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "fixtures",
        "emlp",
        "double_spring.json",
    ]
    .iter()
    .collect();
    serde_json::from_slice(&std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .expect("fixture JSON")
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("list")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

fn state(v: &Value) -> State {
    floats(v).try_into().expect("12 components")
}

#[test]
fn energy_and_gradient_match_the_sympy_reference() {
    let f = fixture();
    let sys = SpringPendulum::PAPER;
    let states = f["states"].as_array().unwrap();
    assert_eq!(states.len(), 8);
    for s in states {
        let z = state(&s["z"]);
        let e = s["energy"].as_f64().unwrap();
        assert!((sys.energy(&z) - e).abs() < 1e-12 * (1.0 + e.abs()), "H");
        let g = floats(&s["gradient"]);
        let ours = sys.gradient(&z);
        for i in 0..STATE {
            assert!(
                (ours[i] - g[i]).abs() < 1e-12,
                "∂H/∂z{i}: {} vs {}",
                ours[i],
                g[i]
            );
        }
    }
}

#[test]
fn keels_dopri5_follows_the_scipy_trajectory() {
    let f = fixture();
    let t = &f["trajectory"];
    let times = floats(&t["times"]);
    let z0 = state(&t["z0"]);
    let want: Vec<State> = t["states"].as_array().unwrap().iter().map(state).collect();
    assert!(t["sensitivity"].as_f64().unwrap() < 1e-9);
    let got = SpringPendulum::PAPER.rollout(&z0, &times, 1e-11).unwrap();
    assert_eq!(got.len(), want.len());
    let mut worst = 0.0f64;
    for (a, b) in got.iter().zip(&want) {
        for (u, v) in a.iter().zip(b) {
            worst = worst.max((u - v).abs());
        }
    }
    assert!(worst < 1e-8, "max |Keel − scipy| over 6 s = {worst:.2e}");
    let energies = floats(&t["energy"]);
    for (z, e) in got.iter().zip(&energies) {
        assert!((SpringPendulum::PAPER.energy(z) - e).abs() < 1e-8);
    }
}
