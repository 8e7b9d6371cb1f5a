//! Extended bodies and joints against closed-form mechanics: a uniform rod pinned at one end
//! (the compound pendulum) and two rods joined end to end (their Lagrange equations in absolute
//! angles, integrated here with a written-out RK4, besides energy and the constraints).

use keel_core::dynamics::{Gravity, MechanicsBuilder, Phase};
use keel_core::integrate::{Dopri5, StateVector, VectorField};

/// A uniform rod of length `len` and mass `m`, pinned at one end at the origin, as a 1-D body in
/// the plane: node 0 at the centre of mass, node 1 one unit along the rod; the second moment of a
/// uniform rod along its axis is λ = len²/12, and the pin is at body coordinate −len/2.
fn rod(m: f64, len: f64, g: f64) -> keel_core::dynamics::Mechanics<f64, 2, 2, 3, Gravity<f64, 2>> {
    let mut b = MechanicsBuilder::<f64, 2, 2, 3>::new();
    let body = b.body(m, &[m * len * len / 12.0]).unwrap();
    b.pin(body, &[-len / 2.0], [0.0, 0.0]).unwrap();
    let weights = b.mass().gravity_weights();
    b.build(Gravity { g, weights }).unwrap()
}

/// The rod hanging at angle θ from the downward vertical, rotating at ω (velocity form).
fn rod_state(len: f64, theta: f64, omega: f64) -> Phase<f64, 2, 2> {
    let u = [theta.sin(), -theta.cos()];
    let du = [theta.cos() * omega, theta.sin() * omega];
    let c = len / 2.0;
    Phase::new(
        [[c * u[0], c * u[1]], [c * u[0] + u[0], c * u[1] + u[1]]],
        [
            [c * du[0], c * du[1]],
            [c * du[0] + du[0], c * du[1] + du[1]],
        ],
    )
}

#[test]
fn compound_pendulum_has_the_textbook_period() {
    // I_pivot = mL²/3, so small oscillations have ω₀² = m g (L/2) / I_pivot = 3g / (2L).
    let (m, len, g, theta0) = (0.7, 1.3, 9.81, 0.02);
    let sys = rod(m, len, g);
    let z0 = sys.from_velocity_form(&rod_state(len, theta0, 0.0));
    assert!(sys.violation(&z0).max() < 1e-14);
    let omega0 = (3.0 * g / (2.0 * len)).sqrt();
    // Finite amplitude: T = T₀(1 + θ₀²/16 + 11θ₀⁴/3072 + …).
    let period = 2.0 * std::f64::consts::PI / omega0
        * (1.0 + theta0 * theta0 / 16.0 + 11.0 * theta0.powi(4) / 3072.0);
    // Find the first return to θ = θ₀ (ω changes sign from + to − near one period) by bisection
    // on the dense output: ω = 0 where the centre of mass's x-velocity is zero.
    let mut s = Dopri5::new(1e-13, 1e-13)
        .unwrap()
        .start(&sys, 0.0, z0)
        .unwrap();
    let vx = |z: &Phase<f64, 2, 2>| sys.velocity(z.p())[0][0];
    let (mut lo, mut hi) = (0.9 * period, 1.1 * period);
    let zlo = s.advance_to(&sys, lo).unwrap();
    assert!(
        vx(&zlo) > 0.0,
        "swinging back up towards θ₀ before one period"
    );
    let zhi = s.advance_to(&sys, hi).unwrap();
    assert!(vx(&zhi) < 0.0);
    // Re-integrate for each bisection point (dense output only covers the last step).
    for _ in 0..50 {
        let mid = 0.5 * (lo + hi);
        let mut s = Dopri5::new(1e-13, 1e-13)
            .unwrap()
            .start(&sys, 0.0, z0)
            .unwrap();
        let z = s.advance_to(&sys, mid).unwrap();
        if vx(&z) > 0.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let measured = 0.5 * (lo + hi);
    assert!(
        (measured - period).abs() < 1e-9 * period,
        "period {measured} vs {period}"
    );
}

#[test]
fn two_rods_joined_end_to_end_follow_lagranges_equations_and_stay_joined() {
    // Rod A pinned at the origin by its end; rod B's end joined to A's other end.
    let (ma, la, mb, lb) = (1.0, 1.0, 0.5, 0.8);
    let mut b = MechanicsBuilder::<f64, 4, 2, 6>::new();
    let a = b.body(ma, &[ma * la * la / 12.0]).unwrap();
    let c = b.body(mb, &[mb * lb * lb / 12.0]).unwrap();
    b.pin(a, &[-la / 2.0], [0.0, 0.0]).unwrap();
    b.joint(a, &[la / 2.0], c, &[-lb / 2.0]).unwrap();
    let weights = b.mass().gravity_weights();
    let sys = b.build(Gravity { g: 9.81, weights }).unwrap();
    // Build a consistent state: A at θa with ωa, B at θb with ωb.
    let (ta, wa, tb, wb) = (0.8f64, 0.5, -0.4f64, 2.0);
    let ua = [ta.sin(), -ta.cos()];
    let dua = [ta.cos() * wa, ta.sin() * wa];
    let ub = [tb.sin(), -tb.cos()];
    let dub = [tb.cos() * wb, tb.sin() * wb];
    let ca = [la / 2.0 * ua[0], la / 2.0 * ua[1]];
    let dca = [la / 2.0 * dua[0], la / 2.0 * dua[1]];
    let cb = [la * ua[0] + lb / 2.0 * ub[0], la * ua[1] + lb / 2.0 * ub[1]];
    let dcb = [
        la * dua[0] + lb / 2.0 * dub[0],
        la * dua[1] + lb / 2.0 * dub[1],
    ];
    let x = [
        ca,
        [ca[0] + ua[0], ca[1] + ua[1]],
        cb,
        [cb[0] + ub[0], cb[1] + ub[1]],
    ];
    let v = [
        dca,
        [dca[0] + dua[0], dca[1] + dua[1]],
        dcb,
        [dcb[0] + dub[0], dcb[1] + dub[1]],
    ];
    let z0 = sys.from_velocity_form(&Phase::new(x, v));
    assert!(sys.violation(&z0).max() < 1e-14, "{:?}", sys.violation(&z0));
    let e0 = sys.energy(&z0);
    let mut s = Dopri5::new(1e-11, 1e-11)
        .unwrap()
        .start(&sys, 0.0, z0)
        .unwrap();
    // The reference: the same two rods in their absolute angles, integrated here.
    let mut q = [ta, tb, wa, wb];
    let h = 1e-4;
    let mut worst = 0.0f64;
    for k in 1..=50 {
        let z = s.advance_to(&sys, 0.1 * k as f64).unwrap();
        for _ in 0..1000 {
            q = rk4_step(&|q| two_rods_rate(q, (ma, la, mb, lb, 9.81)), q, h);
        }
        let x = z.x();
        let angle = |i: usize| {
            let u = [x[i + 1][0] - x[i][0], x[i + 1][1] - x[i][1]];
            u[0].atan2(-u[1])
        };
        for (got, want) in [(angle(0), q[0]), (angle(2), q[1])] {
            let d = (got - want + std::f64::consts::PI).rem_euclid(std::f64::consts::TAU)
                - std::f64::consts::PI;
            worst = worst.max(d.abs());
            // Keel's Dopri5 at rtol = atol = 1e-11 sets the difference: measured 2.6e-9 over the 5 s
            // (2.6e-11 at 1e-13; the reference moves < 1e-11 when h is halved); bound 1e-8.
            assert!(
                d.abs() < 1e-8,
                "t = {}: angle {got} vs {want}",
                0.1 * k as f64
            );
        }
        assert!(
            (sys.energy(&z) - e0).abs() < 1e-8 * e0.abs().max(1.0),
            "energy at t = {}",
            0.1 * k as f64
        );
        assert!(sys.violation(&z).max() < 1e-8);
        // The projected field is tangent: DΦᵀż = 0.
        let mut dz = Phase::zeros();
        sys.rate(0.0, &z, &mut dz).unwrap();
        let r = sys.constraint_rates(&z, &dz);
        assert!(r.as_flattened().iter().all(|v| v.abs() < 1e-11), "{r:?}");
        assert!(z.as_slice().iter().all(|v| v.is_finite()));
    }
    eprintln!("two rods vs angle equations: largest angle difference {worst:.2e}");
}

/// Two uniform rods, A (mass `ma`, length `la`) pinned by one end at the origin and B (`mb`,
/// `lb`) hinged to A's other end, in absolute angles from the downward vertical — Lagrange's
/// equations with `I_A = ma·la²/3` about the pin and `I_B = mb·lb²/12` about B's centre:
///
/// ```text
/// (ma/3 + mb)·la²·θ̈a + c·cos(θa − θb)·θ̈b = −c·sin(θa − θb)·θ̇b² − (ma/2 + mb)·g·la·sin θa
/// c·cos(θa − θb)·θ̈a + mb·lb²/3·θ̈b       =  c·sin(θa − θb)·θ̇a² − mb·g·(lb/2)·sin θb
/// ```
///
/// with `c = mb·la·lb/2`. Returns `(θ̇a, θ̇b, θ̈a, θ̈b)` for `q = (θa, θb, θ̇a, θ̇b)`.
fn two_rods_rate(q: [f64; 4], (ma, la, mb, lb, g): (f64, f64, f64, f64, f64)) -> [f64; 4] {
    let [ta, tb, wa, wb] = q;
    let c = mb * la * lb / 2.0;
    let (sn, cs) = (ta - tb).sin_cos();
    let m = [(ma / 3.0 + mb) * la * la, c * cs, mb * lb * lb / 3.0];
    let r = [
        -c * sn * wb * wb - (ma / 2.0 + mb) * g * la * ta.sin(),
        c * sn * wa * wa - mb * g * lb / 2.0 * tb.sin(),
    ];
    let det = m[0] * m[2] - m[1] * m[1];
    [
        wa,
        wb,
        (m[2] * r[0] - m[1] * r[1]) / det,
        (m[0] * r[1] - m[1] * r[0]) / det,
    ]
}

/// One classic RK4 step, written out (independent of `keel_core::integrate`).
fn rk4_step(f: &dyn Fn([f64; 4]) -> [f64; 4], y: [f64; 4], h: f64) -> [f64; 4] {
    let add = |a: [f64; 4], b: [f64; 4], s: f64| std::array::from_fn(|i| a[i] + s * b[i]);
    let k1 = f(y);
    let k2 = f(add(y, k1, h / 2.0));
    let k3 = f(add(y, k2, h / 2.0));
    let k4 = f(add(y, k3, h));
    std::array::from_fn(|i| y[i] + h / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]))
}

#[test]
fn builder_rejects_inconsistent_systems() {
    use keel_core::Error;
    // Too few constraints declared.
    let mut b = MechanicsBuilder::<f64, 2, 2, 2>::new();
    b.body(1.0, &[0.1]).unwrap();
    assert!(matches!(
        b.pin(0, &[-0.5], [0.0, 0.0]),
        Err(Error::CountMismatch { .. })
    ));
    // One constraint more than declared: refused as it is pushed, naming the counts.
    let mut b = MechanicsBuilder::<f64, 1, 2, 1>::new();
    b.point_mass(1.0).unwrap();
    b.tether(0, [0.0, 0.0], 1.0).unwrap();
    assert_eq!(
        b.tether(0, [1.0, 0.0], 1.0),
        Err(Error::CountMismatch {
            what: "constraints",
            expected: 1,
            got: 2
        })
    );
    assert!(
        b.build(()).is_ok(),
        "the refused push left the builder as it was"
    );
    // Fewer constraints than declared: refused when built.
    let mut b = MechanicsBuilder::<f64, 1, 2, 2>::new();
    b.point_mass(1.0).unwrap();
    b.tether(0, [0.0, 0.0], 1.0).unwrap();
    assert!(matches!(
        b.build(()),
        Err(Error::CountMismatch {
            what: "constraints",
            expected: 2,
            got: 1
        })
    ));
    // Missing nodes.
    let mut b = MechanicsBuilder::<f64, 3, 2, 1>::new();
    b.point_mass(1.0).unwrap();
    b.tether(0, [0.0, 0.0], 1.0).unwrap();
    assert!(matches!(
        b.build(()),
        Err(Error::CountMismatch {
            what: "nodes",
            expected: 3,
            got: 1
        })
    ));
    // A joint on a node that does not start a body.
    let mut b = MechanicsBuilder::<f64, 2, 2, 3>::new();
    b.body(1.0, &[0.1]).unwrap();
    assert!(matches!(
        b.pin(1, &[], [0.0, 0.0]),
        Err(Error::IndexOutOfRange { what: "body", .. })
    ));
    // Wrong number of attachment coordinates.
    assert!(matches!(
        b.pin(0, &[0.1, 0.2], [0.0, 0.0]),
        Err(Error::CountMismatch { .. })
    ));
}
