//! Properties of the constrained dynamics through the public API, for `f32` and `f64`:
//! `DΦᵀż = 0`, projection onto the manifold, Hamiltonian/Lagrangian agreement, bounded leapfrog
//! energy error, Dopri5 energy drift within a multiple of its tolerance.

use keel_core::dynamics::systems::{
    ChainPendulum, CoupledPendulum, Gyroscope, MagnetPendulum, Rotor,
};
use keel_core::dynamics::{DipoleSign, Lagrangian, Mechanics, Phase, Potential, ProjectParams};
use keel_core::integrate::{Dopri5, Leapfrog, Rk4, StateVector, VectorField};
use keel_core::random::Xoshiro256PlusPlus;
use keel_core::Real;
use proptest::prelude::*;

/// Largest `|DΦᵀż|` relative to the size of the terms it sums, at the state `z`.
fn tangency_error<
    T: Real,
    const N: usize,
    const D: usize,
    const C: usize,
    P: Potential<T, N, D>,
>(
    m: &Mechanics<T, N, D, C, P>,
    z: &Phase<T, N, D>,
) -> f64 {
    let mut dz = Phase::zeros();
    m.hamiltonian_rate(z, None, &mut dz).unwrap();
    let rates = m.constraint_rates(z, &dz);
    let scale = dz
        .as_slice()
        .iter()
        .fold(0.0f64, |a, v| a.max(v.as_f64().abs()))
        * z.as_slice()
            .iter()
            .fold(1.0f64, |a, v| a.max(v.as_f64().abs()));
    rates
        .as_flattened()
        .iter()
        .fold(0.0f64, |a, v| a.max(v.as_f64().abs()))
        / scale
}

macro_rules! per_scalar {
    ($($name:ident: $t:ty, $eps_mult:expr;)*) => {$(
        mod $name {
            use super::*;
            type T = $t;
            const EPS: f64 = <$t>::EPSILON as f64;

            proptest! {
                #![proptest_config(ProptestConfig::with_cases(24))]

                #[test]
                fn projected_field_is_tangent_to_the_manifold(seed in any::<u64>()) {
                    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
                    let tol = $eps_mult * EPS;
                    let p = ChainPendulum::<T, 3>::paper().unwrap();
                    let z = p.sample(&mut rng).unwrap();
                    prop_assert!(tangency_error(p.mechanics(), &z) < tol);
                    let p = ChainPendulum::<T, 5>::paper().unwrap();
                    let z = p.sample(&mut rng).unwrap();
                    prop_assert!(tangency_error(p.mechanics(), &z) < tol);
                    let c = CoupledPendulum::<T, 3>::paper().unwrap();
                    let z = c.sample(&mut rng).unwrap();
                    prop_assert!(tangency_error(c.mechanics(), &z) < tol);
                    let m = MagnetPendulum::<T, 2>::paper(DipoleSign::Reference).unwrap();
                    let z = m.sample(&mut rng);
                    prop_assert!(tangency_error(m.mechanics(), &z) < tol);
                    let g = Gyroscope::<T>::paper().unwrap();
                    let z = g.sample(&mut rng);
                    prop_assert!(tangency_error(g.mechanics(), &z) < tol);
                    let r = Rotor::<T>::paper().unwrap();
                    let z = r.sample(&mut rng);
                    prop_assert!(tangency_error(r.mechanics(), &z) < tol);
                }

                #[test]
                fn projection_lands_on_the_manifold(seed in any::<u64>(), noise in 0.01f64..0.2) {
                    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
                    let g = Gyroscope::<T>::paper().unwrap();
                    let m = g.mechanics();
                    let mut z = m.to_velocity_form(&g.sample(&mut rng));
                    // Perturb every coordinate, then project back.
                    for (i, v) in z.as_mut_slice().iter_mut().enumerate() {
                        *v += T::from_f64(noise * ((i as f64 * 1.7).sin()));
                    }
                    let before = m.violation(&m.from_velocity_form(&z)).max().as_f64();
                    // The perturbation really left the manifold: measured at least 6× `noise`
                    // (f32) and 19× (f64) over 144 cases each.
                    prop_assert!(before > noise, "violation before projection {before}");
                    m.project(&mut z, ProjectParams::default()).unwrap();
                    let after = m.violation(&m.from_velocity_form(&z)).max().as_f64();
                    // The default tolerance is 64ε on the RMS of the violation, scaled by the
                    // state's size (spin rates ~10): measured at most 2.9e3·ε in f32 (3.5e-4)
                    // and 2.5e3·ε in f64 (5.4e-13) over 144 cases each.
                    prop_assert!(after < 1e4 * EPS, "violation after projection {after}");
                }
            }

            #[test]
            fn sampled_states_satisfy_the_constraints() {
                let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
                for _ in 0..20 {
                    let p = ChainPendulum::<T, 2>::paper().unwrap();
                    let z = p.sample(&mut rng).unwrap();
                    prop_assert_ok(p.mechanics().violation(&z).max().as_f64() < 1e3 * EPS);
                    let g = Gyroscope::<T>::paper().unwrap();
                    let z = g.sample(&mut rng);
                    prop_assert_ok(g.mechanics().violation(&z).max().as_f64() < 1e3 * EPS);
                    let r = Rotor::<T>::paper().unwrap();
                    let z = r.sample(&mut rng);
                    prop_assert_ok(r.mechanics().violation(&z).max().as_f64() < 1e3 * EPS);
                }
            }

            #[test]
            fn leapfrog_energy_error_stays_bounded_over_1e5_steps() {
                let p = ChainPendulum::<T, 3>::paper().unwrap();
                let m = p.mechanics();
                let mut z = p.state_from_angles(&[T::from_f64(0.9), T::from_f64(-0.4), T::from_f64(1.3)], &[T::ZERO; 3]);
                let e0 = m.energy(&z).as_f64();
                let lf = Leapfrog::new(T::from_f64(1e-3)).unwrap();
                let steps = 100_000;
                let (mut early, mut late, mut worst_violation) = (0.0f64, 0.0f64, 0.0f64);
                for k in 0..steps {
                    lf.step(m, &mut z).unwrap();
                    let de = ((m.energy(&z).as_f64() - e0) / e0).abs();
                    if k < steps / 10 { early = early.max(de) } else if k >= steps * 9 / 10 { late = late.max(de) }
                    if k % 1000 == 0 { worst_violation = worst_violation.max(m.violation(&z).max().as_f64()) }
                }
                // Symplectic: an O(h²) oscillation that does not grow. In f32 the rounding floor
                // (~1e-7 per step, a random walk over 1e5 steps) dominates.
                let bound = if EPS > 1e-10 { 3e-4 } else { 2e-5 };
                assert!(early < bound && late < bound, "energy error early {early:e}, late {late:e}");
                if EPS < 1e-10 {
                    assert!(late < 3.0 * early, "energy error grew: early {early:e}, late {late:e}");
                }
                assert!(worst_violation < 1e3 * EPS, "constraint violation {worst_violation:e}");
            }

            #[test]
            fn lagrangian_twin_matches_hamiltonian_flow() {
                let p = ChainPendulum::<T, 3>::paper().unwrap();
                let m = p.mechanics();
                let z = p.state_from_angles(&[T::from_f64(0.5), T::from_f64(1.0), T::from_f64(-0.3)], &[T::from_f64(0.2), T::ZERO, T::from_f64(-0.5)]);
                let mut dz = Phase::zeros();
                m.rate(T::ZERO, &z, &mut dz).unwrap();
                let zv = m.to_velocity_form(&z);
                let mut dzv = Phase::zeros();
                Lagrangian(m).rate(T::ZERO, &zv, &mut dzv).unwrap();
                // ẋ agree, and v̇ = M⁻¹ṗ because M is constant.
                let vdot = m.velocity(dz.p());
                for i in 0..3 {
                    for d in 0..2 {
                        let tol = 1e3 * EPS;
                        assert!((dz.x()[i][d] - dzv.x()[i][d]).abs().as_f64() < tol);
                        assert!((vdot[i][d] - dzv.p()[i][d]).abs().as_f64() < tol * 10.0);
                    }
                }
            }

            #[test]
            fn dopri5_energy_drift_stays_near_rtol() {
                let rtol = if EPS > 1e-10 { 1e-5 } else { 1e-10 };
                let g = Gyroscope::<T>::paper().unwrap();
                let m = g.mechanics();
                let z0 = m.from_velocity_form(&g.velocity_state_from_euler(
                    [T::from_f64(0.3), T::from_f64(1.0), T::from_f64(0.2)],
                    [T::from_f64(0.5), T::from_f64(0.3), T::from_f64(10.0)],
                ));
                let scale = (m.kinetic_energy(z0.p()) + m.potential().energy(z0.x()).abs()).as_f64();
                let e0 = m.energy(&z0).as_f64();
                let mut s = Dopri5::new(T::from_f64(rtol), T::from_f64(rtol)).unwrap().start(m, T::ZERO, z0).unwrap();
                let mut worst = 0.0f64;
                for k in 1..=100 {
                    let z = s.advance_to(m, T::from_f64(0.02 * k as f64)).unwrap();
                    worst = worst.max((m.energy(&z).as_f64() - e0).abs() / scale);
                }
                assert!(worst < 100.0 * rtol, "drift {worst:e} at rtol {rtol:e}");
            }

            #[test]
            fn rk4_converges_to_dopri5() {
                let g = Gyroscope::<T>::paper().unwrap();
                let m = g.mechanics();
                let z0 = g.velocity_state_from_euler(
                    [T::from_f64(0.3), T::from_f64(1.0), T::from_f64(0.2)],
                    [T::from_f64(0.5), T::from_f64(0.3), T::from_f64(10.0)],
                );
                let z0 = m.from_velocity_form(&z0);
                let tol = if EPS > 1e-10 { 1e-6 } else { 1e-12 };
                let mut s = Dopri5::new(T::from_f64(tol), T::from_f64(tol)).unwrap().start(m, T::ZERO, z0).unwrap();
                let reference = s.advance_to(m, T::from_f64(0.5)).unwrap();
                let rk = Rk4::new(T::from_f64(1e-3)).unwrap();
                let mut z = z0;
                rk.advance(m, T::ZERO, &mut z, 500).unwrap();
                let err = keel_core::metrics::relative_error(z.as_slice(), reference.as_slice()).as_f64();
                assert!(err < if EPS > 1e-10 { 1e-4 } else { 1e-9 }, "rk4 vs dopri5: {err:e}");
            }
        }
    )*};
}

fn prop_assert_ok(b: bool) {
    assert!(b);
}

per_scalar! {
    f64_props: f64, 1e3;
    f32_props: f32, 1e3;
}

/// Dopri5's energy drift over each paper system's trajectory, relative to the energy scale
/// `T + |V|`, stays within a small multiple of its tolerance (f64).
#[test]
fn dopri5_energy_drift_is_a_small_multiple_of_rtol() {
    fn drift<const N: usize, const D: usize, const C: usize, P: Potential<f64, N, D>>(
        m: &Mechanics<f64, N, D, C, P>,
        z0: Phase<f64, N, D>,
        t_end: f64,
        rtol: f64,
    ) -> f64 {
        let e0 = m.energy(&z0);
        // Energy scale: kinetic plus |potential| (the total can be near zero).
        let scale = m.kinetic_energy(z0.p()) + m.potential().energy(z0.x()).abs();
        let mut s = Dopri5::new(rtol, rtol).unwrap().start(m, 0.0, z0).unwrap();
        let mut worst = 0.0f64;
        for k in 1..=100 {
            let z = s.advance_to(m, t_end * k as f64 / 100.0).unwrap();
            worst = worst.max((m.energy(&z) - e0).abs() / scale);
        }
        worst
    }
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(11);
    for rtol in [1e-8, 1e-10] {
        let bound = 100.0 * rtol;
        let p = ChainPendulum::<f64, 3>::paper().unwrap();
        let d = drift(p.mechanics(), p.sample(&mut rng).unwrap(), 3.0, rtol);
        assert!(d < bound, "3-pendulum drift {d:e} at rtol {rtol:e}");
        let c = CoupledPendulum::<f64, 3>::paper().unwrap();
        let d = drift(c.mechanics(), c.sample(&mut rng).unwrap(), 5.0, rtol);
        assert!(d < bound, "coupled drift {d:e} at rtol {rtol:e}");
        let g = Gyroscope::<f64>::paper().unwrap();
        let d = drift(g.mechanics(), g.sample(&mut rng), 2.0, rtol);
        assert!(d < bound, "gyroscope drift {d:e} at rtol {rtol:e}");
        let r = Rotor::<f64>::paper().unwrap();
        let d = drift(r.mechanics(), r.sample(&mut rng), 5.0, rtol);
        assert!(d < bound, "rotor drift {d:e} at rtol {rtol:e}");
        let m = MagnetPendulum::<f64, 2>::paper(DipoleSign::Physical).unwrap();
        let d = drift(m.mechanics(), m.sample(&mut rng), 5.0, rtol);
        assert!(d < bound, "magnet drift {d:e} at rtol {rtol:e}");
    }
}

/// A value from an independent numpy/scipy integration (DOP853, `fixtures/gen/dynamics.py`
/// reproduces it): 2-pendulum with the paper's parameters,
/// θ = (0.7, −1.1), ω = (0.3, 1.2): positions at t = 1.
#[test]
fn double_pendulum_matches_a_scipy_reference_value() {
    // That check used the 6-digit default parameters (`CHAIN_DEFAULTS` in that script).
    let p = ChainPendulum::<f64, 2>::new([1.172151, 1.039051], [1.035907, 1.082211], 9.81).unwrap();
    let m = p.mechanics();
    let z0 = p.state_from_angles(&[0.7, -1.1], &[0.3, 1.2]);
    let mut s = Dopri5::new(1e-11, 1e-11)
        .unwrap()
        .start(m, 0.0, z0)
        .unwrap();
    let z = s.advance_to(m, 1.0).unwrap();
    let expected = [-0.5971788, -0.8464519, 0.4221850, -1.2098775];
    for (got, want) in z.x().as_flattened().iter().zip(expected) {
        assert!((got - want).abs() < 1e-7, "{got} vs {want}");
    }
}

/// Angles survive the round trip through Cartesian coordinates.
#[test]
fn chain_angles_round_trip() {
    let p = ChainPendulum::<f64, 4>::paper().unwrap();
    let (th, om) = ([0.3, -2.0, 1.0, 3.0], [0.1, 0.2, -0.3, 0.4]);
    let (th2, om2) = p.angles(&p.state_from_angles(&th, &om));
    for i in 0..4 {
        assert!((th[i] - th2[i]).abs() < 1e-14 && (om[i] - om2[i]).abs() < 1e-13);
    }
}

/// The reference code's default parameters (`biases/systems/chain_pendulum.py`), to 6 digits.
#[test]
fn paper_parameters_match_the_reference_code() {
    let m3 = ChainPendulum::<f64, 3>::paper_masses().unwrap();
    let l3 = ChainPendulum::<f64, 3>::paper_lengths().unwrap();
    for (a, b) in m3.iter().zip([1.082211, 1.172151, 1.039051]) {
        assert!((a - b).abs() < 1e-6);
    }
    for (a, b) in l3.iter().zip([1.116715, 0.938924, 1.035907]) {
        assert!((a - b).abs() < 1e-6);
    }
    let l5 = ChainPendulum::<f64, 5>::paper_lengths().unwrap();
    for (a, b) in l5
        .iter()
        .zip([0.906753, 1.370930, 1.313418, 0.950070, 1.116715])
    {
        assert!((a - b).abs() < 1e-6);
    }
    assert!(ChainPendulum::<f64, 11>::paper().is_err());
}
