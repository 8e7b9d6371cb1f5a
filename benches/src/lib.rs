//! # keel-benches
//!
//! The inputs of Keel's benchmarks, shared by the criterion harness (`benches/dynamics.rs`) and
//! this crate's tests, so a broken bench case fails `cargo test` instead of only a bench run.
//!
//! Every case is one of the paper's systems (`::paper()`) with a fixed initial state drawn by the
//! system's own sampler from [`Xoshiro256PlusPlus`] seeded with [`SEED`], and the paper's `dt`.
//! The cases have different types (`N`, `D`, `C`, potential), so they are handed out one by one
//! to a [`Visitor`] by [`for_each_case`].
//!
//! The Python peers (numpy RK4 loop, scipy `solve_ivp`) live in `benches/peers/`; see
//! `benches/RESULTS.md` for measured numbers.

use keel_core::dynamics::systems::{
    ChainPendulum, CoupledPendulum, Gyroscope, MagnetPendulum, Rotor,
};
use keel_core::dynamics::{DipoleSign, Mechanics, Phase, Potential};
use keel_core::random::Xoshiro256PlusPlus;
use keel_core::{Real, Result};

/// Seed of the initial states.
pub const SEED: u64 = 0;

/// A scalar type the benches run in.
pub trait Precision: Real {
    /// `"f32"` or `"f64"`: the second part of a bench id.
    const NAME: &'static str;
    /// `rtol = atol` of the Dopri5 benches.
    const DOPRI5_TOL: f64;
}

impl Precision for f32 {
    const NAME: &'static str = "f32";
    const DOPRI5_TOL: f64 = 1e-5;
}

impl Precision for f64 {
    const NAME: &'static str = "f64";
    const DOPRI5_TOL: f64 = 1e-8;
}

/// One system at one initial state.
#[derive(Clone, Copy, Debug)]
pub struct Case<T, const N: usize, const D: usize, const C: usize, P> {
    /// The last part of a bench id, e.g. `chain-pendulum-3`.
    pub name: &'static str,
    /// The system's constrained mechanics.
    pub mechanics: Mechanics<T, N, D, C, P>,
    /// Hamiltonian-form initial state `(x, p)` on the constraint manifold.
    pub z0: Phase<T, N, D>,
    /// The paper's sampling interval for this system.
    pub dt: T,
}

/// Receives every case of one precision in turn.
pub trait Visitor<T: Precision> {
    /// Called once per case.
    fn visit<const N: usize, const D: usize, const C: usize, P: Potential<T, N, D>>(
        &mut self,
        case: &Case<T, N, D, C, P>,
    );
}

fn chain<T: Precision, const L: usize, V: Visitor<T>>(name: &'static str, v: &mut V) -> Result<()> {
    let sys = ChainPendulum::<T, L>::paper()?;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(SEED);
    v.visit(&Case {
        name,
        mechanics: *sys.mechanics(),
        z0: sys.sample(&mut rng)?,
        dt: T::from_f64(ChainPendulum::<T, L>::DT),
    });
    Ok(())
}

/// Calls `v` with every bench case in precision `T`, in a fixed order: chain pendulums with 1, 2,
/// 3 and 5 links, 3 coupled pendulums, the magnet pendulum over 2 magnets
/// ([`DipoleSign::Physical`]), the gyroscope and the rotor.
///
/// # Errors
/// If a system cannot be built or its sampler fails (neither happens for the paper systems).
pub fn for_each_case<T: Precision, V: Visitor<T>>(v: &mut V) -> Result<()> {
    chain::<T, 1, V>("chain-pendulum-1", v)?;
    chain::<T, 2, V>("chain-pendulum-2", v)?;
    chain::<T, 3, V>("chain-pendulum-3", v)?;
    chain::<T, 5, V>("chain-pendulum-5", v)?;

    let sys = CoupledPendulum::<T, 3>::paper()?;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(SEED);
    v.visit(&Case {
        name: "coupled-pendulum-3",
        mechanics: *sys.mechanics(),
        z0: sys.sample(&mut rng)?,
        dt: T::from_f64(CoupledPendulum::<T, 3>::DT),
    });

    let sys = MagnetPendulum::<T, 2>::paper(DipoleSign::Physical)?;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(SEED);
    v.visit(&Case {
        name: "magnet-pendulum-2",
        mechanics: *sys.mechanics(),
        z0: sys.sample(&mut rng),
        dt: T::from_f64(MagnetPendulum::<T, 2>::DT),
    });

    let sys = Gyroscope::<T>::paper()?;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(SEED);
    v.visit(&Case {
        name: "gyroscope",
        mechanics: *sys.mechanics(),
        z0: sys.sample(&mut rng),
        dt: T::from_f64(Gyroscope::<T>::DT),
    });

    let sys = Rotor::<T>::paper()?;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(SEED);
    v.visit(&Case {
        name: "rotor",
        mechanics: *sys.mechanics(),
        z0: sys.sample(&mut rng),
        dt: T::from_f64(Rotor::<T>::DT),
    });
    Ok(())
}

/// The machine a bench ran on, for its tables: the CPU's model name, the vector extensions that
/// decide which kernels run, the number of CPUs and the level Keel's own kernels run — `CPU:
/// <name>; vector: avx512f avx2 fma; 2 CPUs; Keel's kernels: avx512` (from `/proc/cpuinfo`, the
/// run-time feature checks and `KEEL_CPU_ISA`; elsewhere, what is known).
pub fn cpu_line() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let name = info
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == "model name").then(|| v.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let mut vector: Vec<&str> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        for (f, on) in [
            ("avx512f", std::arch::is_x86_feature_detected!("avx512f")),
            ("avx512bw", std::arch::is_x86_feature_detected!("avx512bw")),
            ("avx512vl", std::arch::is_x86_feature_detected!("avx512vl")),
            ("avx2", std::arch::is_x86_feature_detected!("avx2")),
            ("fma", std::arch::is_x86_feature_detected!("fma")),
        ] {
            if on {
                vector.push(f);
            }
        }
    }
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let vector = if vector.is_empty() {
        "baseline".to_string()
    } else {
        vector.join(" ")
    };
    let isa = keel::backend::cpu::isa::isa();
    let capped = if isa < keel::backend::cpu::isa::detected() {
        " (capped by KEEL_CPU_ISA)"
    } else {
        ""
    };
    format!(
        "CPU: {name}; vector: {vector}; {cpus} CPUs; Keel's kernels: {}{capped}",
        isa.name()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_core::integrate::{Dopri5, Leapfrog, Rk4, StateVector, VectorField};

    /// Runs every integrator the benches time once on every case, from the bench's own state.
    struct Smoke<T> {
        names: Vec<&'static str>,
        _t: core::marker::PhantomData<T>,
    }

    impl<T: Precision> Visitor<T> for Smoke<T> {
        fn visit<const N: usize, const D: usize, const C: usize, P: Potential<T, N, D>>(
            &mut self,
            case: &Case<T, N, D, C, P>,
        ) {
            let m = &case.mechanics;
            let id = format!("{}/{}", T::NAME, case.name);
            let tol = T::from_f64(1e3) * T::EPSILON;
            let finite = |z: &Phase<T, N, D>| z.as_slice().iter().all(|v| v.is_finite());
            assert!(finite(&case.z0), "{id}: z0");
            let v0 = m.violation(&case.z0).max();
            assert!(v0 <= tol, "{id}: z0 off the manifold by {}", v0.as_f64());

            let mut dz = Phase::zeros();
            m.rate(T::ZERO, &case.z0, &mut dz).unwrap();
            assert!(finite(&dz), "{id}: rate");

            let mut z = case.z0;
            Rk4::new(case.dt).unwrap().step(m, T::ZERO, &mut z).unwrap();
            assert!(finite(&z) && z != case.z0, "{id}: rk4");

            let mut z = case.z0;
            Leapfrog::new(case.dt).unwrap().step(m, &mut z).unwrap();
            assert!(
                m.violation(&z).max() <= T::from_f64(1e2) * tol,
                "{id}: leapfrog"
            );

            let tol = T::from_f64(T::DOPRI5_TOL);
            let mut solver = Dopri5::new(tol, tol)
                .unwrap()
                .start(m, T::ZERO, case.z0)
                .unwrap();
            solver.step(m).unwrap();
            assert!(
                solver.t() > T::ZERO && finite(solver.state()),
                "{id}: dopri5"
            );
            self.names.push(case.name);
        }
    }

    fn smoke<T: Precision>() {
        let mut v = Smoke::<T> {
            names: Vec::new(),
            _t: core::marker::PhantomData,
        };
        for_each_case(&mut v).unwrap();
        assert_eq!(v.names.len(), 8);
    }

    #[test]
    fn every_case_steps_f64() {
        smoke::<f64>();
    }

    #[test]
    fn every_case_steps_f32() {
        smoke::<f32>();
    }
}
