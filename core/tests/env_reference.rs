//! The cart-pole swing-up and the acrobot against gymnasium's equations of motion
//! (`fixtures/rl/{cartpole,acrobot}_gym.json`, written by `fixtures/gen/envs_gym.py` with
//! gymnasium 1.0.0): the cart-pole's rates are `CartPoleEnv.step`'s own (Barto, Sutton &
//! Anderson 1983; gymnasium/envs/classic_control/cartpole.py) under a continuous force, the
//! acrobot's are `AcrobotEnv._dsdt` (gymnasium/envs/classic_control/acrobot.py, "book"
//! dynamics) with Keel's point masses at the link ends (`LINK_COM_POS = 1`, `LINK_MOI = 0`), both
//! integrated there with classic RK4 at Keel's scheme (4 steps of 12.5 ms per 50 ms interval).
//! Unlike the conservation laws of `core/tests/rl.rs`, these fail for a wrong constant (gravity,
//! a mass, a length, the force or torque scale).
//!
//! The pendulum is not here: `core/tests/rl.rs` replays gymnasium's `Pendulum-v1` itself
//! (`fixtures/rl/pendulum_gym.json`) step for step.

use keel_core::integrate::StateVector;
use keel_core::rl::{Acrobot, CartPoleSwingUp, Env};
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let path = format!("{}/../fixtures/rl/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
        .unwrap()
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn episodes(fx: &Value) -> &Vec<Value> {
    let eps = fx["episodes"].as_array().unwrap();
    assert_eq!(eps.len(), 4, "episodes in the fixture");
    for ep in eps {
        for key in ["actions", "states", "rewards", "terminated"] {
            assert_eq!(ep[key].as_array().unwrap().len(), 200, "{key}");
        }
    }
    eps
}

/// `|a − b| / (1 + |b|)`.
fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / (1.0 + b.abs())
}

#[test]
fn cartpole_steps_match_gymnasiums_equations() {
    let fx = fixture("cartpole_gym.json");
    assert_eq!(fx["gymnasium"], "1.0.0");
    let (mut worst_state, mut worst_reward, mut compared) = (0.0f64, 0.0f64, 0);
    for (k, ep) in episodes(&fx).iter().enumerate() {
        let actions = f64s(&ep["actions"]);
        let rewards = f64s(&ep["rewards"]);
        let mut before = f64s(&ep["start"]);
        let mut env = CartPoleSwingUp::<f64>::new();
        for (t, &a) in actions.iter().enumerate() {
            // One step from the reference's state, so nothing accumulates.
            env.set_state([before[0], before[1], before[2], before[3]]);
            let step = env.step(&[a]).unwrap();
            let want = f64s(&ep["states"][t]);
            let got = env.state();
            // The same RK4 on the same equations in the same coordinates: only rounding differs
            // (measured 9.5e-16 relative; bound 4e-15, ~18 ulp).
            for d in 0..4 {
                let e = rel(got[d], want[d]);
                worst_state = worst_state.max(e);
                assert!(
                    e < 4e-15,
                    "episode {k} step {t} state[{d}]: {} vs gymnasium {}",
                    got[d],
                    want[d]
                );
            }
            // (1 + cos θ)/2: the core's libm cosine against numpy's (measured 8.9e-16; bound 4e-15).
            let e = rel(step.reward, rewards[t]);
            worst_reward = worst_reward.max(e);
            assert!(e < 4e-15, "episode {k} step {t} reward");
            assert_eq!(
                step.terminated,
                ep["terminated"][t].as_bool().unwrap(),
                "episode {k} step {t}: x = {}",
                got[0]
            );
            before = want;
            compared += 1;
        }
    }
    assert_eq!(compared, 800);
    eprintln!(
        "cart-pole vs gymnasium, one step: state {worst_state:.1e}, reward {worst_reward:.1e}"
    );
}

#[test]
fn cartpole_episodes_follow_gymnasium_and_truncate_at_200() {
    let fx = fixture("cartpole_gym.json");
    let mut worst = 0.0f64;
    for (k, ep) in episodes(&fx).iter().enumerate() {
        let start = f64s(&ep["start"]);
        let mut env = CartPoleSwingUp::<f64>::new();
        env.set_state([start[0], start[1], start[2], start[3]]);
        let actions = f64s(&ep["actions"]);
        let mut ep_worst = 0.0f64;
        for (t, &a) in actions.iter().enumerate() {
            let step = env.step(&[a]).unwrap();
            let want = f64s(&ep["states"][t]);
            for d in 0..4 {
                ep_worst = ep_worst.max(rel(env.state()[d], want[d]));
            }
            let terminated = ep["terminated"][t].as_bool().unwrap();
            assert_eq!(step.terminated, terminated, "episode {k} step {t}");
            assert_eq!(
                step.truncated,
                t == 199 && !terminated,
                "episode {k} step {t}"
            );
        }
        worst = worst.max(ep_worst);
    }
    // 200 steps from the same start: rounding differences grow with the swing (measured 4.6e-12
    // relative, in the episode whose pole spins at up to 8.7 rad/s; bound 2e-11).
    eprintln!("cart-pole episodes vs gymnasium: largest relative deviation {worst:.1e}");
    assert!(worst < 2e-11, "{worst:e}");
}

/// Angular accelerations of the two links from the Cartesian vector field: for a link
/// `d = l(sin φ, −cos φ)`, `d × d̈ = l² φ̈` (the centripetal part of `d̈` is parallel to `d`).
fn link_accelerations(env: &Acrobot<f64>, tau: f64) -> [f64; 2] {
    let z = env.phase();
    let force = Acrobot::elbow_forces(z, tau);
    let mut dz = *z;
    dz.as_mut_slice().fill(0.0);
    env.chain()
        .mechanics()
        .hamiltonian_rate(z, Some(&force), &mut dz)
        .unwrap();
    let m = env.chain().masses();
    let x = z.x();
    let acc = [
        [dz.p()[0][0] / m[0], dz.p()[0][1] / m[0]],
        [dz.p()[1][0] / m[1], dz.p()[1][1] / m[1]],
    ];
    let links = [
        (x[0], acc[0]),
        (
            [x[1][0] - x[0][0], x[1][1] - x[0][1]],
            [acc[1][0] - acc[0][0], acc[1][1] - acc[0][1]],
        ),
    ];
    links.map(|(d, dd)| (d[0] * dd[1] - d[1] * dd[0]) / (d[0] * d[0] + d[1] * d[1]))
}

/// Keel's absolute angles and rates from gymnasium's `(θ₁, θ₂, θ̇₁, θ̇₂)` (θ₂ relative).
fn absolute(s: &[f64]) -> ([f64; 2], [f64; 2]) {
    ([s[0], s[0] + s[1]], [s[2], s[2] + s[3]])
}

#[test]
fn acrobot_vector_field_is_gymnasiums() {
    let fx = fixture("acrobot_gym.json");
    let cases = fx["rates"].as_array().unwrap();
    assert_eq!(cases.len(), 50);
    let mut env = Acrobot::<f64>::new().unwrap();
    let mut worst = 0.0f64;
    for (i, c) in cases.iter().enumerate() {
        let s = f64s(&c["state"]);
        let want = f64s(&c["accelerations"]);
        let (angles, rates) = absolute(&s);
        env.set_angles(angles, rates);
        let [a1, a2] = link_accelerations(&env, c["tau"].as_f64().unwrap());
        // gymnasium's ddθ₂ is the relative angle's. Two routes to the same accelerations (the
        // constrained Cartesian field against Lagrange's equations in angles): rounding only,
        // measured 2.9e-15 relative; bound 1e-14.
        for (got, want) in [(a1, want[0]), (a2 - a1, want[1])] {
            let e = rel(got, want);
            worst = worst.max(e);
            assert!(e < 1e-14, "case {i}: {got} vs gymnasium {want}");
        }
    }
    eprintln!("acrobot accelerations vs gymnasium's _dsdt: {worst:.1e}");
}

/// The unit double pendulum's small oscillations have `ω² = (2 ∓ √2)g/l`; the faster mode,
/// 5.78 rad/s, sets RK4's local error near rest.
const FAST_MODE: f64 = 5.78;

#[test]
fn acrobot_steps_match_gymnasiums_equations() {
    let fx = fixture("acrobot_gym.json");
    assert_eq!(fx["gymnasium"], "1.0.0");
    let h = Acrobot::<f64>::DT / Acrobot::<f64>::SUBSTEPS as f64;
    let (mut worst_obs, mut worst_reward, mut worst_fine, mut compared) =
        (0.0f64, 0.0f64, 0.0f64, 0);
    let mut env = Acrobot::<f64>::new().unwrap();
    for (k, ep) in episodes(&fx).iter().enumerate() {
        let actions = f64s(&ep["actions"]);
        let rewards = f64s(&ep["rewards"]);
        assert_eq!(ep["fine_states"].as_array().unwrap().len(), 200);
        let mut before = f64s(&ep["start"]);
        for (t, &a) in actions.iter().enumerate() {
            let (angles, rates) = absolute(&before);
            env.set_angles(angles, rates);
            let step = env.step(&[a]).unwrap();
            let observe = |s: &[f64]| {
                let (p, w) = absolute(s);
                [p[0].cos(), p[0].sin(), p[1].cos(), p[1].sin(), w[0], w[1]]
            };
            let after = f64s(&ep["states"][t]);
            let (want, fine) = (observe(&after), observe(&f64s(&ep["fine_states"][t])));
            // Keel integrates in Cartesian coordinates with constraints, gymnasium in angles:
            // the two RK4s differ by their local errors, O((hΩ)⁵) with Ω the fastest rate
            // (the fast mode plus the links' speeds before and after). Measured: at most 0.13 of
            // (hΩ)⁵ over the 800 steps (6.0e-5 at |ω| ≈ 12 rad/s, ~1e-9 near rest); bound 0.25.
            let speed = rates
                .iter()
                .chain(&[want[4], want[5]])
                .fold(0.0f64, |m, w| m.max(w.abs()));
            let bound = 0.25 * (h * (FAST_MODE + speed)).powi(5);
            let mut err = 0.0f64;
            for (d, (&got, &want)) in step.observation.iter().zip(&want).enumerate() {
                let e = rel(got, want);
                err = err.max(e);
                assert!(
                    e < bound,
                    "episode {k} step {t} observation[{d}]: {got} vs gymnasium {want} \
                     (bound {bound:.1e})"
                );
                worst_fine = worst_fine.max(rel(got, fine[d]));
            }
            worst_obs = worst_obs.max(err / (h * (FAST_MODE + speed)).powi(5));
            // The reward is the tip height (a sum of two cosines, halved) less the action's cost.
            let e = rel(step.reward, rewards[t]);
            worst_reward = worst_reward.max(e / (h * (FAST_MODE + speed)).powi(5));
            assert!(e < bound, "episode {k} step {t} reward");
            assert!(!step.terminated);
            before = after;
            compared += 1;
        }
    }
    assert_eq!(compared, 800);
    eprintln!(
        "acrobot vs gymnasium, one step, in units of (hΩ)⁵: observation {worst_obs:.2}, \
         reward {worst_reward:.2}; largest distance to a 256-step RK4 {worst_fine:.1e}"
    );
}
