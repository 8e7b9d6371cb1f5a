//! Ground-truth trajectories and training chunks exactly as the reference makes them: each
//! trajectory starts from the system's sampled initial state and is integrated with dopri5
//! (rtol 1e-7, atol 1e-9) onto the paper's grid of 100 samples; it is cut into 20 non-overlapping
//! chunks of 5 samples and one chunk, chosen at random, is kept. Training, validation and test
//! sets use separate seeds (0, 1, 2 in the reference).

use keel_core::random::{uniform, Xoshiro256PlusPlus};

use crate::error::{Error, Result};
use crate::simulate::{simulate, IntegratorSpec, SimulateConfig, SystemKind, Trajectory};

/// Samples per chunk.
pub const CHUNK: usize = 5;
/// Samples per trajectory (the reference's `arange(0, T, dt)` for every system).
pub const SAMPLES: usize = 100;
/// Most trajectories a data set may hold (the reference generates 10,000 and uses a prefix).
pub const MAX_TRAJECTORIES: usize = 10_000;

/// Which system, and its size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SystemSpec {
    /// The system.
    pub kind: SystemKind,
    /// Links (chain pendulum) or bobs (coupled pendulum); ignored otherwise.
    pub size: Option<usize>,
}

/// One kept chunk: `CHUNK` consecutive samples of a trajectory.
#[derive(Clone, Debug, PartialEq)]
pub struct Chunk {
    /// Index of the chunk's first sample in its trajectory.
    pub start: usize,
    /// Sample times, relative to the chunk's start.
    pub t: Vec<f64>,
    /// Cartesian states `[x (N·D), v (N·D)]` per sample.
    pub z: Vec<Vec<f64>>,
}

/// A data set: whole trajectories (for evaluation) and their kept chunks (for training).
#[derive(Clone, Debug, PartialEq)]
pub struct DataSet {
    /// The system.
    pub system: SystemSpec,
    /// Ground-truth trajectories.
    pub trajectories: Vec<Trajectory>,
    /// One chunk per trajectory.
    pub chunks: Vec<Chunk>,
}

/// The seed of trajectory `i` of a set with seed `seed` (distinct for every pair, so a set of
/// 800 is the first 800 of a set of 10,000 with the same seed, as in the reference).
pub fn trajectory_seed(seed: u64, i: usize) -> u64 {
    // SplitMix64's finaliser over (seed, i): well-mixed and distinct per pair.
    let mut z = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(i as u64)
        .wrapping_add(0x632B_E59B_D9B4_E019);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Generates `n` trajectories of `system` with seed `seed` and keeps one random chunk of each.
///
/// # Errors
/// [`Error::InvalidInput`] for `n` = 0 or above [`MAX_TRAJECTORIES`]; simulation errors.
pub fn generate(system: SystemSpec, n: usize, seed: u64) -> Result<DataSet> {
    if n == 0 || n > MAX_TRAJECTORIES {
        return Err(Error::invalid(
            "n_train",
            n,
            format!("between 1 and {MAX_TRAJECTORIES} trajectories"),
        ));
    }
    let mut trajectories = Vec::with_capacity(n);
    let mut chunks = Vec::with_capacity(n);
    for i in 0..n {
        let s = trajectory_seed(seed, i);
        let mut cfg = SimulateConfig::paper(system.kind, s);
        // The reference's grid is `arange(0, T, dt)`: 100 samples, T itself excluded.
        cfg.t_end = cfg.dt * (SAMPLES - 1) as f64;
        cfg.integrator = IntegratorSpec::Dopri5 {
            rtol: 1e-7,
            atol: 1e-9,
        };
        match system.kind {
            SystemKind::ChainPendulum => cfg.params.links = system.size,
            SystemKind::CoupledPendulum => cfg.params.bobs = system.size,
            _ => {}
        }
        let traj = simulate(&cfg)?;
        let samples = traj.t.len();
        let pieces = samples / CHUNK;
        if pieces == 0 {
            return Err(Error::invalid(
                "trajectory",
                samples,
                "fewer samples than one chunk",
            ));
        }
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(s ^ 0xC4A1_C4A1);
        let k = ((uniform::<f64, _>(&mut rng) * pieces as f64) as usize).min(pieces - 1);
        let start = k * CHUNK;
        let t0 = traj.t[start];
        chunks.push(Chunk {
            start,
            t: traj.t[start..start + CHUNK]
                .iter()
                .map(|t| t - t0)
                .collect(),
            z: (start..start + CHUNK)
                .map(|r| traj.x[r].iter().chain(&traj.v[r]).copied().collect())
                .collect(),
        });
        trajectories.push(traj);
    }
    Ok(DataSet {
        system,
        trajectories,
        chunks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pend2() -> SystemSpec {
        SystemSpec {
            kind: SystemKind::ChainPendulum,
            size: Some(2),
        }
    }

    #[test]
    fn chunks_come_from_their_trajectories_on_the_paper_grid() {
        let d = generate(pend2(), 6, 0).unwrap();
        assert_eq!(d.trajectories.len(), 6);
        for (traj, c) in d.trajectories.iter().zip(&d.chunks) {
            assert_eq!(traj.t.len(), 100);
            assert!((traj.t[1] - traj.t[0] - 0.03).abs() < 1e-12);
            assert_eq!(c.start % CHUNK, 0);
            assert_eq!(c.z.len(), CHUNK);
            assert_eq!(c.z[0].len(), 2 * 2 * 2);
            assert_eq!(c.z[2][..4], traj.x[c.start + 2][..]);
            assert_eq!(c.z[2][4..], traj.v[c.start + 2][..]);
            assert!((c.t[4] - 0.12).abs() < 1e-12);
            // dopri5 at rtol 1e-7 keeps the constraints and the energy.
            assert!(traj.constraint_violation.iter().all(|v| *v < 1e-5));
            let e0 = traj.energy[0];
            assert!(traj
                .energy
                .iter()
                .all(|e| (e - e0).abs() < 1e-4 * (1.0 + e0.abs())));
        }
        // Chunks are spread over the trajectory, not always the first.
        assert!(d.chunks.iter().any(|c| c.start > 0));
    }

    #[test]
    fn sets_are_prefixes_and_seeds_separate_them() {
        let small = generate(pend2(), 3, 0).unwrap();
        let large = generate(pend2(), 5, 0).unwrap();
        for (a, b) in small.trajectories.iter().zip(&large.trajectories) {
            assert_eq!((&a.t, &a.x, &a.v), (&b.t, &b.x, &b.v));
        }
        assert_eq!(small.chunks[..], large.chunks[..3]);
        let val = generate(pend2(), 3, 1).unwrap();
        assert_ne!(val.trajectories[0].x[0], small.trajectories[0].x[0]);
        assert!(generate(pend2(), 0, 0).is_err());
        assert!(generate(pend2(), MAX_TRAJECTORIES + 1, 0).is_err());
    }
}
