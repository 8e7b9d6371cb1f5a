//! `keel simulate`: integrate one of the paper's constrained systems from a given or sampled
//! initial state and report positions, velocities, energy and constraint violation.

mod config;
pub mod init;
mod run;

pub use config::{
    expect_len, join, parse_list, Dtype, InitSpec, IntegratorSpec, SimulateConfig, SystemKind,
    SystemParams,
};
pub use run::{run, RunStats, Trajectory};

use keel_core::dynamics::systems::{
    ChainPendulum, CoupledPendulum, Gyroscope, MagnetPendulum, Rotor,
};
use keel_core::random::{standard_normal, Xoshiro256PlusPlus};
use keel_core::Real;

use crate::error::{Error, Result};
use init::{load_state, to_array};

/// Largest chain (links) and coupled-pendulum (bobs) sizes compiled in.
pub const MAX_LINKS: usize = 6;

/// Runs the simulation `cfg` describes.
///
/// # Errors
/// [`Error::InvalidInput`] for inconsistent settings (checked before integrating),
/// [`Error::Io`]/[`Error::Malformed`] for an unreadable `--init` file, [`Error::Core`] if the
/// integration fails.
pub fn simulate(cfg: &SimulateConfig) -> Result<Trajectory> {
    cfg.validate()?;
    match cfg.dtype {
        Dtype::F32 => simulate_as::<f32>(cfg),
        Dtype::F64 => simulate_as::<f64>(cfg),
    }
}

fn simulate_as<T: Real>(cfg: &SimulateConfig) -> Result<Trajectory> {
    let times = cfg.output_times();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(cfg.seed);
    macro_rules! sized {
        ($n:expr, $flag:literal, $f:ident) => {
            match $n {
                1 => $f::<T, 1>(cfg, &times, &mut rng),
                2 => $f::<T, 2>(cfg, &times, &mut rng),
                3 => $f::<T, 3>(cfg, &times, &mut rng),
                4 => $f::<T, 4>(cfg, &times, &mut rng),
                5 => $f::<T, 5>(cfg, &times, &mut rng),
                6 => $f::<T, 6>(cfg, &times, &mut rng),
                n => Err(Error::invalid(
                    $flag,
                    n,
                    format!("supported: 1 to {MAX_LINKS}"),
                )),
            }
        };
    }
    match cfg.system {
        SystemKind::ChainPendulum => sized!(cfg.params.links.unwrap_or(3), "links", chain),
        SystemKind::CoupledPendulum => sized!(cfg.params.bobs.unwrap_or(3), "bobs", coupled),
        SystemKind::MagnetPendulum => magnet::<T>(cfg, &times, &mut rng),
        SystemKind::Gyroscope => gyroscope::<T>(cfg, &times, &mut rng),
        SystemKind::Rotor => rotor::<T>(cfg, &times, &mut rng),
    }
}

/// A per-entry list given on the command line, or `fallback` drawn/defaulted.
fn list_or<T: Real, const K: usize>(
    flag: &str,
    given: &Option<Vec<f64>>,
    what: &str,
    fallback: impl FnOnce() -> Result<[T; K]>,
) -> Result<[T; K]> {
    match given {
        Some(v) => {
            expect_len(flag, v, K, what)?;
            Ok(to_array(v))
        }
        None => fallback(),
    }
}

fn normals<T: Real, const K: usize>(rng: &mut Xoshiro256PlusPlus) -> [T; K] {
    core::array::from_fn(|_| standard_normal(rng))
}

fn chain<T: Real, const L: usize>(
    cfg: &SimulateConfig,
    times: &[f64],
    rng: &mut Xoshiro256PlusPlus,
) -> Result<Trajectory> {
    let p = &cfg.params;
    let masses = list_or("masses", &p.masses, "one per link", || {
        ChainPendulum::<T, L>::paper_masses().map_err(Error::core("paper masses"))
    })?;
    let lengths = list_or("lengths", &p.lengths, "one per link", || {
        ChainPendulum::<T, L>::paper_lengths().map_err(Error::core("paper lengths"))
    })?;
    let g = T::from_f64(p.gravity.unwrap_or(9.81));
    let sys =
        ChainPendulum::<T, L>::new(masses, lengths, g).map_err(Error::core("chain pendulum"))?;
    let i = &cfg.init;
    let z0 = if i.file.is_some() {
        load_state(i, sys.mechanics())?
    } else if i.angles.is_none() && i.angular_velocities.is_none() {
        sys.sample(rng)
            .map_err(Error::core("sampling an initial state"))?
    } else {
        let angles = list_or("angles", &i.angles, "one per link", || Ok(normals(rng)))?;
        let rates = list_or(
            "angular_velocities",
            &i.angular_velocities,
            "one per link",
            || Ok(normals(rng)),
        )?;
        sys.state_from_angles(&angles, &rates)
    };
    run(
        SystemKind::ChainPendulum.name(),
        sys.mechanics(),
        z0,
        times,
        cfg.integrator,
    )
}

fn coupled<T: Real, const B: usize>(
    cfg: &SimulateConfig,
    times: &[f64],
    rng: &mut Xoshiro256PlusPlus,
) -> Result<Trajectory> {
    let p = &cfg.params;
    let masses = list_or("masses", &p.masses, "one per bob", || Ok([T::ONE; B]))?;
    let lengths = list_or("lengths", &p.lengths, "one per bob", || Ok([T::ONE; B]))?;
    let k = T::from_f64(p.spring_k.unwrap_or(10.0));
    let g = T::from_f64(p.gravity.unwrap_or(10.0));
    let sys = CoupledPendulum::<T, B>::new(masses, lengths, k, g)
        .map_err(Error::core("coupled pendulum"))?;
    let i = &cfg.init;
    let z0 = if i.file.is_some() {
        load_state(i, sys.mechanics())?
    } else if i.spherical.is_none() && i.spherical_rates.is_none() {
        sys.sample(rng)
            .map_err(Error::core("sampling an initial state"))?
    } else {
        let flat = |flag: &str, v: &Option<Vec<f64>>, default: [f64; 2]| -> Result<[[T; 2]; B]> {
            let mut out = [[T::from_f64(default[0]), T::from_f64(default[1])]; B];
            if let Some(v) = v {
                expect_len(flag, v, 2 * B, "φ,θ for each bob")?;
                for (b, pair) in v.chunks(2).enumerate() {
                    out[b] = [T::from_f64(pair[0]), T::from_f64(pair[1])];
                }
            }
            Ok(out)
        };
        let angles = flat(
            "spherical",
            &i.spherical,
            [std::f64::consts::PI, std::f64::consts::FRAC_PI_2],
        )?;
        let rates = flat("spherical_rates", &i.spherical_rates, [0.0, 0.0])?;
        let mut z = sys.velocity_state_from_spherical(&angles, &rates);
        // Springs do not constrain; the state is exactly on the tethers' spheres.
        sys.mechanics()
            .project(&mut z, Default::default())
            .map_err(Error::core("projecting the initial state"))?;
        sys.mechanics().from_velocity_form(&z)
    };
    run(
        SystemKind::CoupledPendulum.name(),
        sys.mechanics(),
        z0,
        times,
        cfg.integrator,
    )
}

fn magnet<T: Real>(
    cfg: &SimulateConfig,
    times: &[f64],
    rng: &mut Xoshiro256PlusPlus,
) -> Result<Trajectory> {
    let p = &cfg.params;
    let sys = MagnetPendulum::<T, 2>::new(
        T::from_f64(p.mass.unwrap_or(3.0)),
        T::ONE,
        T::from_f64(p.q.unwrap_or(0.3)),
        T::from_f64(p.gravity.unwrap_or(9.81)),
        p.dipole_sign,
    )
    .map_err(Error::core("magnet pendulum"))?;
    let i = &cfg.init;
    let z0 = if i.file.is_some() {
        load_state(i, sys.mechanics())?
    } else if i.spherical.is_none() && i.spherical_rates.is_none() {
        sys.sample(rng)
    } else {
        let angles: [T; 2] = list_or("spherical", &i.spherical, "φ,θ", || {
            Ok([T::PI, T::HALF * T::PI])
        })?;
        let rates: [T; 2] = list_or("spherical_rates", &i.spherical_rates, "φ̇,θ̇", || {
            Ok([T::ZERO; 2])
        })?;
        sys.mechanics()
            .from_velocity_form(&sys.velocity_state_from_spherical(angles, rates))
    };
    run(
        SystemKind::MagnetPendulum.name(),
        sys.mechanics(),
        z0,
        times,
        cfg.integrator,
    )
}

fn gyroscope<T: Real>(
    cfg: &SimulateConfig,
    times: &[f64],
    rng: &mut Xoshiro256PlusPlus,
) -> Result<Trajectory> {
    let p = &cfg.params;
    let paper = Gyroscope::<T>::paper().map_err(Error::core("gyroscope"))?;
    let sys = Gyroscope::<T>::new(
        p.mass.map_or(paper.mass(), T::from_f64),
        paper.moments(),
        paper.com_height(),
        T::from_f64(p.gravity.unwrap_or(9.81)),
    )
    .map_err(Error::core("gyroscope"))?;
    let i = &cfg.init;
    let z0 = if i.file.is_some() {
        load_state(i, sys.mechanics())?
    } else if i.euler.is_none() && i.euler_rates.is_none() {
        sys.sample(rng)
    } else {
        let euler: [T; 3] = list_or("euler", &i.euler, "φ,θ,ψ", || Ok([T::ZERO; 3]))?;
        let rates: [T; 3] = list_or("euler_rates", &i.euler_rates, "φ̇,θ̇,ψ̇", || {
            Ok([T::ZERO; 3])
        })?;
        sys.mechanics()
            .from_velocity_form(&sys.velocity_state_from_euler(euler, rates))
    };
    run(
        SystemKind::Gyroscope.name(),
        sys.mechanics(),
        z0,
        times,
        cfg.integrator,
    )
}

fn rotor<T: Real>(
    cfg: &SimulateConfig,
    times: &[f64],
    rng: &mut Xoshiro256PlusPlus,
) -> Result<Trajectory> {
    let p = &cfg.params;
    let paper = Rotor::<T>::paper().map_err(Error::core("rotor"))?;
    let sys = Rotor::<T>::new(p.mass.map_or(paper.mass(), T::from_f64), paper.moments())
        .map_err(Error::core("rotor"))?;
    let i = &cfg.init;
    let z0 = if i.file.is_some() {
        load_state(i, sys.mechanics())?
    } else if [&i.euler, &i.euler_rates, &i.com, &i.com_velocity]
        .iter()
        .all(|o| o.is_none())
    {
        sys.sample(rng)
    } else {
        let zero = || Ok([T::ZERO; 3]);
        let euler: [T; 3] = list_or("euler", &i.euler, "φ,θ,ψ", zero)?;
        let rates: [T; 3] = list_or("euler_rates", &i.euler_rates, "φ̇,θ̇,ψ̇", zero)?;
        let com: [T; 3] = list_or("com", &i.com, "x,y,z", zero)?;
        let com_v: [T; 3] = list_or("com_velocity", &i.com_velocity, "vx,vy,vz", zero)?;
        sys.mechanics()
            .from_velocity_form(&sys.velocity_state_from_com_euler(com, com_v, euler, rates))
    };
    run(
        SystemKind::Rotor.name(),
        sys.mechanics(),
        z0,
        times,
        cfg.integrator,
    )
}
