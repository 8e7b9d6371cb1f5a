//! The double spring pendulum of the EMLP paper (Finzi, Welling & Wilson, *A Practical Method
//! for Constructing Equivariant Multilayer Perceptrons for Arbitrary Matrix Groups*, ICML 2021;
//! the reference's `DoubleSpringPendulum` in `experiments/trainer/hamiltonian_dynamics.py`): two
//! unit masses in 3-D, the first hung from the origin by a spring, the second from the first,
//! under gravity along −z. With `z = (x₁, x₂, p₁, p₂)`, each in R³,
//!
//! ```text
//! H = |p₁|²/2m₁ + |p₂|²/2m₂ + ½k₁(|x₁| − l₁)² + k₂(|x₁ − x₂| − l₂)² + g(m₁x₁_z + m₂x₂_z)
//! ```
//!
//! with every constant 1 (the second spring's term has no ½, as the reference codes it). `H` is
//! invariant under rotations about z and reflections through planes containing it, i.e. O(2)
//! acting on the first two coordinates of each vector. Trajectories are integrated here with
//! Keel's dopri5 and cut as the reference cuts them: 150 samples 0.2 apart from the reference's
//! initial-state distribution, one random 5-sample chunk kept per trajectory.

use keel_core::integrate::{Dopri5, VectorField};
use keel_core::random::{standard_normal, uniform, Xoshiro256PlusPlus};

use crate::error::{Error, Result};

/// Components of a state `(x₁, x₂, p₁, p₂)`.
pub const STATE: usize = 12;
/// A state.
pub type State = [f64; STATE];
/// Samples per trajectory (the reference's `T = 30`, `dt = 0.2`: `arange(0, 30, 0.2)`).
pub const SAMPLES: usize = 150;
/// Time between samples.
pub const DT: f64 = 0.2;
/// Samples per training chunk.
pub const CHUNK: usize = 5;
/// Most trajectories a set may hold (the reference generates 5000).
pub const MAX_TRAJECTORIES: usize = 20_000;

/// The system's constants.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SpringPendulum {
    /// Masses.
    pub m: [f64; 2],
    /// Spring constants.
    pub k: [f64; 2],
    /// Rest lengths.
    pub l: [f64; 2],
    /// Gravity.
    pub g: f64,
}

impl SpringPendulum {
    /// The paper's system: every constant 1.
    pub const PAPER: SpringPendulum = SpringPendulum {
        m: [1.0, 1.0],
        k: [1.0, 1.0],
        l: [1.0, 1.0],
        g: 1.0,
    };

    /// `H(z)`.
    pub fn energy(&self, z: &State) -> f64 {
        let (x1, x2, p1, p2) = parts(z);
        let r1 = norm(x1);
        let r12 = norm(&sub(x1, x2));
        dot(p1, p1) / (2.0 * self.m[0])
            + dot(p2, p2) / (2.0 * self.m[1])
            + 0.5 * self.k[0] * (r1 - self.l[0]).powi(2)
            + self.k[1] * (r12 - self.l[1]).powi(2)
            + self.g * (self.m[0] * x1[2] + self.m[1] * x2[2])
    }

    /// `∇H(z)`, analytic.
    pub fn gradient(&self, z: &State) -> State {
        let (x1, x2, p1, p2) = parts(z);
        let d = sub(x1, x2);
        let (r1, r12) = (norm(x1), norm(&d));
        // ∂/∂x₁ of ½k₁(|x₁| − l₁)² is k₁(|x₁| − l₁) x₁/|x₁|; of k₂(|d| − l₂)² it is
        // 2k₂(|d| − l₂) d/|d|, and minus that for x₂.
        let s1 = self.k[0] * (r1 - self.l[0]) / r1;
        let s12 = 2.0 * self.k[1] * (r12 - self.l[1]) / r12;
        let mut out = [0.0; STATE];
        for a in 0..3 {
            out[a] = s1 * x1[a] + s12 * d[a];
            out[3 + a] = -s12 * d[a];
            out[6 + a] = p1[a] / self.m[0];
            out[9 + a] = p2[a] / self.m[1];
        }
        out[2] += self.g * self.m[0];
        out[5] += self.g * self.m[1];
        out
    }

    /// Hamilton's equations `ż = J∇H = (∂H/∂p, −∂H/∂x)`.
    pub fn field(&self, z: &State) -> State {
        let g = self.gradient(z);
        let mut out = [0.0; STATE];
        out[..6].copy_from_slice(&g[6..]);
        for a in 0..6 {
            out[6 + a] = -g[a];
        }
        out
    }

    /// The reference's initial states: `x₁ = (0, 0, −1.5) + 0.2N`, `x₂ = (0, 0, −3) + 0.2N`,
    /// `p = 0.4N` (every component independent).
    pub fn sample(rng: &mut Xoshiro256PlusPlus) -> State {
        let mut z = [0.0; STATE];
        for (i, v) in z.iter_mut().enumerate() {
            let n: f64 = standard_normal(rng);
            *v = match i {
                2 => -1.5 + 0.2 * n,
                5 => -3.0 + 0.2 * n,
                0..6 => 0.2 * n,
                _ => 0.4 * n,
            };
        }
        z
    }

    /// States at `times` (the first is the start) by dopri5 at `rtol` (atol 1e-9·rtol/1e-7).
    ///
    /// # Errors
    /// Integration errors (a spring collapsed to zero length, a non-finite state).
    pub fn rollout(&self, z0: &State, times: &[f64], rtol: f64) -> Result<Vec<State>> {
        let t0 = times.first().copied().unwrap_or(0.0);
        let mut solver = Dopri5::new(rtol, rtol * 1e-2)
            .and_then(|d| d.start(self, t0, *z0))
            .map_err(Error::core("dopri5"))?;
        let mut out = Vec::with_capacity(times.len());
        for &t in times {
            out.push(if t == t0 {
                *z0
            } else {
                solver.advance_to(self, t).map_err(Error::core("dopri5"))?
            });
        }
        Ok(out)
    }
}

impl VectorField<f64> for SpringPendulum {
    type State = State;

    fn rate(&self, _t: f64, z: &State, dz: &mut State) -> keel_core::Result<()> {
        *dz = self.field(z);
        Ok(())
    }
}

/// One kept chunk of a trajectory.
#[derive(Clone, Debug, PartialEq)]
pub struct Chunk {
    /// Index of its first sample in the trajectory.
    pub start: usize,
    /// `CHUNK` consecutive states.
    pub z: Vec<State>,
}

/// A data set: whole trajectories (for rollout errors) and one chunk of each (for training).
#[derive(Clone, Debug, PartialEq)]
pub struct DynamicsSet {
    /// `SAMPLES` states per trajectory.
    pub trajectories: Vec<Vec<State>>,
    /// One chunk per trajectory.
    pub chunks: Vec<Chunk>,
}

/// Generates `n` trajectories of the paper's system (dopri5, rtol 1e-7, on the reference's grid)
/// with seed `seed`, and keeps one random chunk of each. A set of `n` is the first `n` of a
/// larger set with the same seed.
///
/// # Errors
/// [`Error::InvalidInput`] for `n` = 0 or above [`MAX_TRAJECTORIES`]; integration errors.
pub fn generate(n: usize, seed: u64) -> Result<DynamicsSet> {
    if n == 0 || n > MAX_TRAJECTORIES {
        return Err(Error::invalid(
            "n_train",
            n,
            format!("between 1 and {MAX_TRAJECTORIES} trajectories"),
        ));
    }
    let sys = SpringPendulum::PAPER;
    let times: Vec<f64> = (0..SAMPLES).map(|k| k as f64 * DT).collect();
    let mut trajectories = Vec::with_capacity(n);
    let mut chunks = Vec::with_capacity(n);
    for i in 0..n {
        let mut rng =
            Xoshiro256PlusPlus::seed_from_u64(crate::chnn::data::trajectory_seed(seed, i));
        let z0 = SpringPendulum::sample(&mut rng);
        let traj = sys.rollout(&z0, &times, 1e-7)?;
        let pieces = SAMPLES / CHUNK;
        let k = ((uniform::<f64, _>(&mut rng) * pieces as f64) as usize).min(pieces - 1);
        chunks.push(Chunk {
            start: k * CHUNK,
            z: traj[k * CHUNK..(k + 1) * CHUNK].to_vec(),
        });
        trajectories.push(traj);
    }
    Ok(DynamicsSet {
        trajectories,
        chunks,
    })
}

fn parts(z: &State) -> (&[f64; 3], &[f64; 3], &[f64; 3], &[f64; 3]) {
    let c = |i: usize| -> &[f64; 3] { z[3 * i..3 * i + 3].try_into().unwrap_or(&[0.0; 3]) };
    (c(0), c(1), c(2), c(3))
}

fn sub(a: &[f64; 3], b: &[f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn dot(a: &[f64; 3], b: &[f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn norm(a: &[f64; 3]) -> f64 {
    dot(a, a).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gradient_is_the_energys_by_central_differences() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        let sys = SpringPendulum::PAPER;
        for _ in 0..5 {
            let z = SpringPendulum::sample(&mut rng);
            let g = sys.gradient(&z);
            for i in 0..STATE {
                let h = 1e-6;
                let (mut a, mut b) = (z, z);
                a[i] += h;
                b[i] -= h;
                let fd = (sys.energy(&a) - sys.energy(&b)) / (2.0 * h);
                assert!((fd - g[i]).abs() < 1e-7, "component {i}: {fd} vs {}", g[i]);
            }
        }
    }

    #[test]
    fn trajectories_keep_the_energy_and_the_symmetry() {
        let d = generate(3, 0).unwrap();
        let sys = SpringPendulum::PAPER;
        for (traj, c) in d.trajectories.iter().zip(&d.chunks) {
            assert_eq!(traj.len(), SAMPLES);
            assert_eq!(c.z[..], traj[c.start..c.start + CHUNK]);
            let e0 = sys.energy(&traj[0]);
            for z in traj {
                assert!((sys.energy(z) - e0).abs() < 1e-5 * (1.0 + e0.abs()));
            }
        }
        // A rotation about z and a reflection of the start rotate and reflect the trajectory.
        let (c, s) = (0.6f64, 0.8f64);
        let act = |z: &State| -> State {
            let mut out = *z;
            for v in 0..4 {
                let (x, y) = (z[3 * v], z[3 * v + 1]);
                out[3 * v] = c * x - s * y;
                out[3 * v + 1] = -(s * x + c * y);
            }
            out
        };
        let times: Vec<f64> = (0..20).map(|k| k as f64 * DT).collect();
        let z0 = d.trajectories[1][0];
        let a = sys.rollout(&act(&z0), &times, 1e-10).unwrap();
        let b = sys.rollout(&z0, &times, 1e-10).unwrap();
        for (za, zb) in a.iter().zip(&b) {
            let gb = act(zb);
            for (u, v) in za.iter().zip(&gb) {
                assert!((u - v).abs() < 1e-7, "{u} vs {v}");
            }
        }
        assert!(generate(0, 0).is_err());
        assert!(generate(MAX_TRAJECTORIES + 1, 0).is_err());
    }
}
