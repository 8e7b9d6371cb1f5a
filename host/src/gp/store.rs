//! Heap storage for the core's online GPs, sized at run time (the controller uses fixed arrays).
//! WISKI is the online SKI GP of Stanton et al., *Kernel Interpolation for Scalable Online
//! Gaussian Processes* (AISTATS 2021); the reference code builds its model in
//! `online_gp/models/batched_fixed_noise_online_gp.py` (wjmaddox/online_gp).

use keel_core::gp::{refactor_scratch_len, ExactBuffers, ExactGp, Wiski, WiskiBuffers};

use super::hyper::{GridSpec, Hyper};
use super::stream::{Online, StreamMethod};
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
}

/// Heap storage for an [`ExactGp`] of `capacity` points in `dim` dimensions.
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

    /// An empty model in this storage (`grid` must be expanded to `D` dimensions for WISKI).
    pub(crate) fn build<const D: usize>(
        &mut self,
        grid: &GridSpec,
        hyper: &Hyper,
    ) -> Result<Box<dyn Online<D> + '_>> {
        let kernel = hyper.kernel::<D>()?;
        Ok(match self {
            Store::Wiski(s) => {
                let (buf, scratch) = s.split();
                Box::new(
                    Wiski::new(grid.grid::<D>()?, kernel, hyper.noise, buf, scratch)
                        .map_err(Error::core("WISKI"))?,
                )
            }
            Store::Exact(s) => Box::new(
                ExactGp::new(kernel, hyper.noise, s.buffers()).map_err(Error::core("exact GP"))?,
            ),
        })
    }
}
