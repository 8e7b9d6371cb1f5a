//! Experience replay as the reference keeps it (`svg/replay_buffer.py`): transitions in order, the
//! running Welford statistics of every stored observation (normalisation applied when batches are
//! drawn), single-step batches, and multi-step windows that never cross an episode's end.

use keel_core::random::{uniform, Xoshiro256PlusPlus};
use keel_core::rl::{clamped_std, welford_update};

use crate::error::{Error, Result};

/// A stored transition.
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    /// Observation (raw).
    pub obs: Vec<f64>,
    /// Normalised action in `[−1, 1]`.
    pub action: Vec<f64>,
    /// Reward.
    pub reward: f64,
    /// Next observation (raw).
    pub next_obs: Vec<f64>,
    /// A true terminal (`done_no_max`: not set by the time limit).
    pub terminal: bool,
    /// The last transition of its episode (terminal or truncated).
    pub last: bool,
}

/// Running mean and population variance per dimension, in f64, of any size (the core's
/// [`keel_core::rl::Welford`] arithmetic on slices).
#[derive(Clone, Debug, PartialEq)]
pub struct Normalizer {
    /// Observations seen.
    pub count: u64,
    /// Means.
    pub mean: Vec<f64>,
    /// Sums of squared deviations.
    pub m2: Vec<f64>,
}

impl Normalizer {
    /// No data yet.
    pub fn new(dim: usize) -> Self {
        Normalizer {
            count: 0,
            mean: vec![0.0; dim],
            m2: vec![0.0; dim],
        }
    }

    /// Adds one observation.
    pub fn push(&mut self, x: &[f64]) {
        self.count += 1;
        welford_update(self.count, &mut self.mean, &mut self.m2, x);
    }

    /// Population standard deviations clamped to `[MIN_STD, MAX_STD]` (`keel_core::rl`).
    pub fn std(&self) -> Vec<f64> {
        let mut s = vec![0.0; self.m2.len()];
        clamped_std(self.count, &self.m2, &mut s);
        s
    }

    /// `(x − mean)/std`, appended to `out`.
    pub fn normalize_into(&self, x: &[f64], std: &[f64], out: &mut Vec<f64>) {
        out.extend(
            x.iter()
                .zip(&self.mean)
                .zip(std)
                .map(|((v, m), s)| (v - m) / s),
        );
    }
}

/// The buffer.
#[derive(Clone, Debug)]
pub struct Replay {
    /// Transitions in the order they happened.
    pub items: Vec<Transition>,
    /// Statistics of the stored observations.
    pub stats: Normalizer,
    capacity: usize,
}

/// A drawn single-step batch, row-major, observations normalised.
pub struct Batch {
    /// `[B, O]`.
    pub obs: Vec<f64>,
    /// `[B, A]`.
    pub action: Vec<f64>,
    /// `[B]`.
    pub reward: Vec<f64>,
    /// `[B, O]`.
    pub next_obs: Vec<f64>,
    /// `[B]`: 1 for a true terminal.
    pub terminal: Vec<f64>,
}

/// Multi-step windows: `obs[t]` `[B, O]` for `t < L`, `action[t]` `[B, A]` for `t < L − 1`.
pub struct Windows {
    /// Normalised observations per time step.
    pub obs: Vec<Vec<f64>>,
    /// Actions per time step.
    pub action: Vec<Vec<f64>>,
}

fn below(rng: &mut Xoshiro256PlusPlus, n: usize) -> usize {
    ((uniform::<f64, _>(rng) * n as f64) as usize).min(n - 1)
}

impl Replay {
    /// An empty buffer for `dim`-dimensional observations holding up to `capacity` transitions
    /// (the oldest are dropped beyond it).
    pub fn new(dim: usize, capacity: usize) -> Self {
        Replay {
            items: Vec::new(),
            stats: Normalizer::new(dim),
            capacity: capacity.max(1),
        }
    }

    /// Stores a transition and counts its observation in the statistics.
    pub fn push(&mut self, t: Transition) {
        self.stats.push(&t.obs);
        if self.items.len() == self.capacity {
            self.items.remove(0);
        }
        self.items.push(t);
    }

    /// Transitions stored.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether none are stored.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// `b` transitions drawn uniformly with replacement.
    ///
    /// # Errors
    /// An empty buffer.
    pub fn sample(&self, b: usize, rng: &mut Xoshiro256PlusPlus) -> Result<Batch> {
        if self.items.is_empty() {
            return Err(Error::invalid("replay", 0, "no transitions to sample"));
        }
        let std = self.stats.std();
        let mut batch = Batch {
            obs: Vec::new(),
            action: Vec::new(),
            reward: Vec::with_capacity(b),
            next_obs: Vec::new(),
            terminal: Vec::with_capacity(b),
        };
        for _ in 0..b {
            let t = &self.items[below(rng, self.items.len())];
            self.stats.normalize_into(&t.obs, &std, &mut batch.obs);
            batch.action.extend_from_slice(&t.action);
            batch.reward.push(t.reward);
            self.stats
                .normalize_into(&t.next_obs, &std, &mut batch.next_obs);
            batch.terminal.push(if t.terminal { 1.0 } else { 0.0 });
        }
        Ok(batch)
    }

    /// Whether the window of `len` states starting at transition `i` stays inside one episode:
    /// none of transitions `i … i + len − 2` ends its episode.
    pub fn window_ok(&self, i: usize, len: usize) -> bool {
        i + len - 1 <= self.items.len() && !self.items[i..i + len - 1].iter().any(|t| t.last)
    }

    /// The transitions a window of `len` states may start at (those inside one episode), in
    /// order — computed once per update and shared by its draws.
    pub fn window_starts(&self, len: usize) -> Vec<usize> {
        (0..self.items.len())
            .filter(|&i| len >= 2 && self.window_ok(i, len))
            .collect()
    }

    /// `b` windows of `len ≥ 2` states drawn uniformly among `starts` (from
    /// [`Replay::window_starts`] with the same `len`).
    ///
    /// # Errors
    /// `len < 2`; no such window yet.
    pub fn sample_windows(
        &self,
        starts: &[usize],
        b: usize,
        len: usize,
        rng: &mut Xoshiro256PlusPlus,
    ) -> Result<Windows> {
        if len < 2 {
            return Err(Error::invalid("window length", len, "must be at least 2"));
        }
        if starts.is_empty() {
            return Err(Error::invalid(
                "replay",
                self.items.len(),
                format!("no window of {len} states inside one episode yet"),
            ));
        }
        let std = self.stats.std();
        let mut w = Windows {
            obs: vec![Vec::new(); len],
            action: vec![Vec::new(); len - 1],
        };
        for _ in 0..b {
            let i = starts[below(rng, starts.len())];
            for t in 0..len {
                // States 0 … L − 2 are the transitions' observations (each the previous one's
                // next observation, inside an episode); state L − 1 the last one's next.
                let x = if t + 1 < len {
                    &self.items[i + t].obs
                } else {
                    &self.items[i + len - 2].next_obs
                };
                self.stats.normalize_into(x, &std, &mut w.obs[t]);
                if t + 1 < len {
                    w.action[t].extend_from_slice(&self.items[i + t].action);
                }
            }
        }
        Ok(w)
    }
}
