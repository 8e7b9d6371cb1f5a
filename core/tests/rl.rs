//! The reinforcement-learning environments: Pendulum-v1 against gymnasium itself
//! (`fixtures/rl/pendulum_gym.json`, from `fixtures/gen/pendulum_gym.py`); the cart-pole and the
//! acrobot against conservation laws they must obey (energy with no input, and the work–energy
//! balance `ΔE = F·Δx` / `ΔE = τ·Δ(φ₂ − φ₁)` under a constant input) — their steps against
//! gymnasium's equations are in `env_reference.rs`; episode bookkeeping, action handling and the
//! Welford normaliser.

use keel_core::integrate::StateVector;
use keel_core::random::{uniform, Xoshiro256PlusPlus};
use keel_core::rl::{rescale, Acrobot, CartPoleSwingUp, Env, Pendulum, Welford};
use serde_json::Value;

fn fixture() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/rl/pendulum_gym.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[test]
fn pendulum_matches_gymnasium_step_for_step() {
    let fx = fixture();
    let mut worst: f64 = 0.0;
    for (k, ep) in fx["episodes"].as_array().unwrap().iter().enumerate() {
        let start = f64s(&ep["start"]);
        let mut env = Pendulum::<f64>::new();
        env.set_state([start[0], start[1]]);
        let torques = f64s(&ep["torques"]);
        let rewards = f64s(&ep["rewards"]);
        for (t, u) in torques.iter().enumerate() {
            let step = env.step_torque(*u).unwrap();
            let want = f64s(&ep["states"][t]);
            let got = env.state();
            for d in 0..2 {
                let err = (got[d] - want[d]).abs() / (1.0 + want[d].abs());
                worst = worst.max(err);
                assert!(
                    err < 1e-12,
                    "episode {k} step {t} state[{d}]: {} vs gym {}",
                    got[d],
                    want[d]
                );
            }
            let err = (step.reward - rewards[t]).abs() / (1.0 + rewards[t].abs());
            assert!(
                err < 1e-12,
                "episode {k} step {t} reward {} vs gym {}",
                step.reward,
                rewards[t]
            );
            assert_eq!(
                step.truncated,
                ep["truncated"][t].as_bool().unwrap(),
                "episode {k} step {t}"
            );
            assert!(!step.terminated);
            // The core's sin/cos are libm's; the test's are the platform's (an ulp apart).
            let want_obs = [got[0].cos(), got[0].sin(), got[1]];
            for (o, w) in step.observation.iter().zip(want_obs) {
                assert!((o - w).abs() < 1e-15, "observation {o} vs {w}");
            }
        }
    }
    eprintln!("pendulum vs gymnasium: largest relative state error {worst:.1e}");
    for pair in fx["rescale"].as_array().unwrap() {
        let (a, u) = (pair[0].as_f64().unwrap(), pair[1].as_f64().unwrap());
        assert_eq!(rescale(a, -2.0, 2.0).unwrap(), u, "RescaleAction({a})");
    }
}

#[test]
fn actions_are_clamped_and_nan_is_refused() {
    let mut a = Pendulum::<f64>::new();
    let mut b = a;
    a.set_state([0.5, 0.1]);
    b.set_state([0.5, 0.1]);
    let sa = a.step(&[7.0]).unwrap();
    let sb = b.step(&[1.0]).unwrap();
    assert_eq!(sa, sb, "an action beyond 1 acts as 1");
    assert!(a.step(&[f64::NAN]).is_err());
    assert!(a.step_torque(f64::NAN).is_err());
    let mut c = CartPoleSwingUp::<f64>::new();
    assert!(c.step(&[f64::NAN]).is_err());
    let mut r = Acrobot::<f64>::new().unwrap();
    assert!(r.step(&[f64::NAN]).is_err());
}

#[test]
fn episodes_truncate_at_the_time_limit_and_the_cart_can_leave_the_track() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
    let mut p = Pendulum::<f64>::new();
    p.reset(&mut rng).unwrap();
    for t in 0..200 {
        let s = p.step(&[0.3]).unwrap();
        assert_eq!(s.truncated, t == 199, "step {t}");
    }
    let mut c = CartPoleSwingUp::<f64>::new();
    let o = c.reset(&mut rng).unwrap();
    assert!(o[2] < -0.99, "the pole starts down: cos θ = {}", o[2]);
    let mut ended = None;
    for t in 0..200 {
        let s = c.step(&[1.0]).unwrap();
        if s.terminated {
            assert!(c.state()[0] > CartPoleSwingUp::<f64>::TRACK);
            assert!(!s.truncated);
            ended = Some(t);
            break;
        }
    }
    assert!(ended.is_some(), "full force drives the cart off the track");
}

/// The cart-pole's energy (uniform pole of half-length l, θ = 0 upright) and horizontal momentum.
fn cartpole_energy(z: [f64; 4]) -> (f64, f64) {
    type C = CartPoleSwingUp<f64>;
    let (mc, mp, l, g) = (C::CART_MASS, C::POLE_MASS, C::HALF_LENGTH, C::G);
    let [_, xd, th, thd] = z;
    let kinetic = 0.5 * (mc + mp) * xd * xd
        + mp * l * xd * thd * th.cos()
        + 0.5 * (4.0 / 3.0) * mp * l * l * thd * thd;
    (
        kinetic + mp * g * l * th.cos(),
        (mc + mp) * xd + mp * l * thd * th.cos(),
    )
}

#[test]
fn the_cart_pole_conserves_energy_and_does_the_work_of_its_force() {
    let mut c = CartPoleSwingUp::<f64>::new();
    c.set_state([0.0, 0.2, 2.5, -1.0]);
    let (e0, m0) = cartpole_energy(c.state());
    for _ in 0..100 {
        c.step(&[0.0]).unwrap();
    }
    let (e1, m1) = cartpole_energy(c.state());
    // RK4 at 12.5 ms over 5 s: errors of order 1e-9 (h⁴ ≈ 2e-8 times the field's scale).
    // Measured: 7.6e-9 (energy), 1.4e-9 (momentum); the bounds leave a margin of about 6 for
    // other platforms' libm, and a wrong term of the equations of motion breaks them by orders
    // of magnitude.
    assert!((e1 - e0).abs() < 5e-8, "no force: energy {e0} → {e1}");
    assert!((m1 - m0).abs() < 1e-8, "no force: momentum {m0} → {m1}");
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(2);
    for _ in 0..50 {
        let a: f64 = 2.0 * uniform::<f64, _>(&mut rng) - 1.0;
        let (before, x0) = (cartpole_energy(c.state()).0, c.state()[0]);
        c.step(&[a]).unwrap();
        let work = a * CartPoleSwingUp::<f64>::MAX_FORCE * (c.state()[0] - x0);
        let gained = cartpole_energy(c.state()).0 - before;
        // Measured: at most 2.8e-8 relative over the 50 steps.
        assert!(
            (gained - work).abs() < 2e-7 * (1.0 + work.abs()),
            "ΔE {gained} vs work {work}"
        );
    }
}

fn wrap(a: f64) -> f64 {
    (a + std::f64::consts::PI).rem_euclid(2.0 * std::f64::consts::PI) - std::f64::consts::PI
}

#[test]
fn the_acrobot_elbow_torque_does_exactly_its_work() {
    let mut r = Acrobot::<f64>::new().unwrap();
    r.set_angles([0.4, -0.3], [0.0, 0.5]);
    let energy = |r: &Acrobot<f64>| r.chain().mechanics().energy(r.phase());
    let e0 = energy(&r);
    for _ in 0..40 {
        r.step_torque(0.0).unwrap();
    }
    // RK4 over 40 steps of 0.05 s (2 s): measured 8.3e-7, the bound is that order.
    assert!(
        (energy(&r) - e0).abs() < 1e-6,
        "no torque: energy {e0} → {}",
        energy(&r)
    );
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
    for _ in 0..60 {
        let tau = 4.0 * uniform::<f64, _>(&mut rng) - 2.0;
        let (phi0, _) = r.angles();
        let before = energy(&r);
        r.step_torque(tau).unwrap();
        let (phi1, _) = r.angles();
        let work = tau * wrap((phi1[1] - phi1[0]) - (phi0[1] - phi0[0]));
        let gained = energy(&r) - before;
        // Measured: at most 4.1e-7 relative over the 60 steps.
        assert!(
            (gained - work).abs() < 1e-6 * (1.0 + work.abs()),
            "ΔE {gained} vs τΔq {work}"
        );
        // The rods keep their lengths.
        let x = r.phase().x();
        let l1 = (x[0][0] * x[0][0] + x[0][1] * x[0][1]).sqrt();
        let l2 = ((x[1][0] - x[0][0]).powi(2) + (x[1][1] - x[0][1]).powi(2)).sqrt();
        assert!(
            (l1 - 1.0).abs() < 1e-9 && (l2 - 1.0).abs() < 1e-9,
            "lengths {l1}, {l2}"
        );
    }
    assert!(r.phase().as_slice().iter().all(|v| v.is_finite()));
}

#[test]
fn f32_environments_follow_f64() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(4);
    let (mut a, mut b) = (CartPoleSwingUp::<f64>::new(), CartPoleSwingUp::<f32>::new());
    a.set_state([0.1, 0.0, 3.0, 0.2]);
    b.set_state([0.1, 0.0, 3.0, 0.2]);
    let (mut ra, mut rb) = (0.0, 0.0f32);
    for _ in 0..100 {
        let u: f64 = 2.0 * uniform::<f64, _>(&mut rng) - 1.0;
        ra += a.step(&[u]).unwrap().reward;
        rb += b.step(&[u as f32]).unwrap().reward;
    }
    assert!(
        (ra - rb as f64).abs() < 1e-3,
        "return {ra} (f64) vs {rb} (f32)"
    );
}

#[test]
fn welford_matches_the_population_statistics_with_the_clamps() {
    let mut w = Welford::<f64, 3>::new();
    assert_eq!(w.std(), [0.1; 3], "no data: the floor");
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
    let mut rows = Vec::new();
    for _ in 0..1000 {
        let u: f64 = uniform(&mut rng);
        let x = [3.0 + 2.0 * u, 1e-3 * u, 50.0 * (u - 0.5)];
        w.push(&x);
        rows.push(x);
    }
    let n = rows.len() as f64;
    for d in 0..3 {
        let mean = rows.iter().map(|r| r[d]).sum::<f64>() / n;
        let var = rows.iter().map(|r| (r[d] - mean).powi(2)).sum::<f64>() / n;
        assert!((w.mean()[d] - mean).abs() < 1e-12 * (1.0 + mean.abs()));
        let want = var.sqrt().clamp(0.1, 10.0);
        assert!(
            (w.std()[d] - want).abs() < 1e-9,
            "dim {d}: {} vs {want}",
            w.std()[d]
        );
    }
    let mut x = [4.0, 0.0, 30.0];
    w.normalize(&mut x);
    assert!(
        (x[2] - (30.0 - w.mean()[2]) / 10.0).abs() < 1e-12,
        "std clamped to 10"
    );
}
