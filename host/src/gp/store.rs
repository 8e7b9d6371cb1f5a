//! Heap storage for the core's online GPs, sized at run time (the controller uses fixed arrays),
//! and the one place a WISKI model is built in it and fed training rows ([`WiskiStore::fed`]):
//! the WISKI posterior, the SKI fit, the SKI likelihood gradient and the online-learning stream
//! all start there. WISKI is the online SKI GP of Stanton et al., *Kernel Interpolation for Scalable Online
//! Gaussian Processes* (AISTATS 2021); the reference code builds its model in
//! `online_gp/models/batched_fixed_noise_online_gp.py` (wjmaddox/online_gp).

use keel_core::gp::{refactor_scratch_len, ExactBuffers, Wiski, WiskiBuffers};

use super::dim::row;
use super::hyper::{GridSpec, Hyper};
use super::posterior::TrainData;
use super::stream::StreamMethod;
use crate::error::{Error, Result};

/// Heap storage for a [`Wiski`] on `m` nodes.
#[derive(Debug)]
pub struct WiskiStore {
    root: Vec<f64>,
    precision: Vec<f64>,
    b: Vec<f64>,
    mean: Vec<f64>,
    work: Vec<f64>,
    scratch: Vec<f64>,
}

impl WiskiStore {
    /// Zeroed storage for `m` grid nodes.
    pub fn new(m: usize) -> WiskiStore {
        WiskiStore {
            root: vec![0.0; m * m],
            precision: vec![0.0; m * m],
            b: vec![0.0; m],
            mean: vec![0.0; m],
            work: vec![0.0; 2 * m],
            scratch: vec![0.0; refactor_scratch_len(m)],
        }
    }

    /// The model's slices and the refactorisation scratch.
    pub fn split(&mut self) -> (WiskiBuffers<'_, f64>, &mut [f64]) {
        (
            WiskiBuffers {
                root: &mut self.root,
                precision: &mut self.precision,
                b: &mut self.b,
                mean: &mut self.mean,
                work: &mut self.work,
            },
            &mut self.scratch,
        )
    }

    /// An empty WISKI model in this storage (`grid` expanded to `D` dimensions, the storage
    /// sized for its nodes), and the refactorisation scratch beside it.
    pub(crate) fn model<const D: usize>(
        &mut self,
        grid: &GridSpec,
        hyper: &Hyper,
    ) -> Result<(Wiski<'_, f64, D>, &mut [f64])> {
        let (buf, scratch) = self.split();
        let gp = Wiski::new(
            grid.grid::<D>()?,
            hyper.kernel::<D>()?,
            hyper.noise,
            buf,
            scratch,
        )
        .map_err(Error::core("WISKI"))?;
        Ok((gp, scratch))
    }

    /// [`model`](WiskiStore::model) with the first `rows` rows of `data` fed in by `feed`; an
    /// error names the row as `{what} row {i}` (counting from 1).
    pub(crate) fn fed<const D: usize>(
        &mut self,
        grid: &GridSpec,
        hyper: &Hyper,
        data: &TrainData,
        rows: usize,
        feed: Feed,
        what: &str,
    ) -> Result<(Wiski<'_, f64, D>, &mut [f64])> {
        let (mut gp, scratch) = self.model::<D>(grid, hyper)?;
        for i in 0..rows {
            let x = row::<D>(&data.x, i);
            match feed {
                Feed::Observe => gp.observe_with_noise(&x, data.y[i], data.d[i]),
                Feed::Statistics => gp.accumulate(&x, data.y[i], data.d[i]),
            }
            .map_err(|source| Error::Core {
                context: format!("{what} row {}", i + 1),
                source,
            })?;
        }
        if feed == Feed::Statistics {
            gp.refactorize(scratch)
                .map_err(Error::core("WISKI refactorisation"))?;
        }
        Ok((gp, scratch))
    }
}

/// How [`WiskiStore::fed`] puts training rows into a WISKI model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Feed {
    /// One constant-time posterior update per row ([`Wiski::observe_with_noise`]): the online
    /// path, and the likelihood accumulated from the innovations.
    Observe,
    /// The rows into the sufficient statistics only ([`Wiski::accumulate`]), then one `O(m³)`
    /// refactorisation: for fitting, where every new θ rebuilds the posterior from the
    /// statistics anyway.
    Statistics,
}

/// Heap storage for an [`ExactGp`](keel_core::gp::ExactGp) of `capacity` points in `dim`
/// dimensions.
#[derive(Debug)]
pub struct ExactStore {
    x: Vec<f64>,
    y: Vec<f64>,
    d: Vec<f64>,
    l: Vec<f64>,
    z: Vec<f64>,
    work: Vec<f64>,
}

impl ExactStore {
    /// Zeroed storage.
    pub fn new(capacity: usize, dim: usize) -> ExactStore {
        ExactStore {
            x: vec![0.0; capacity * dim],
            y: vec![0.0; capacity],
            d: vec![0.0; capacity],
            l: vec![0.0; capacity * capacity],
            z: vec![0.0; capacity],
            work: vec![0.0; capacity],
        }
    }

    /// The model's slices.
    pub fn buffers(&mut self) -> ExactBuffers<'_, f64> {
        ExactBuffers {
            x: &mut self.x,
            y: &mut self.y,
            d: &mut self.d,
            l: &mut self.l,
            z: &mut self.z,
            work: &mut self.work,
        }
    }
}

/// Owned storage of either online GP, so a model can be (re)built from it.
#[derive(Debug)]
pub(crate) enum Store {
    Wiski(WiskiStore),
    Exact(ExactStore),
}

impl Store {
    /// Storage for `method`: the grid's nodes for WISKI, `capacity` points in `dim`
    /// dimensions for the exact GP.
    pub(crate) fn new(method: StreamMethod, grid: &GridSpec, capacity: usize, dim: usize) -> Store {
        match method {
            StreamMethod::Wiski => Store::Wiski(WiskiStore::new(grid.nodes())),
            StreamMethod::Exact => Store::Exact(ExactStore::new(capacity, dim)),
        }
    }
}
