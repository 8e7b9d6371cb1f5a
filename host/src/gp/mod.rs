//! Gaussian-process regression on the host: the same core code the controller runs (exact GP,
//! WISKI) over heap storage sized at run time, plus the dense SKI posterior computed from
//! explicit `W` and `K_UU` as the host's reference.

pub mod bo;

use std::time::Instant;

use keel_core::gp::{
    refactor_scratch_len, Convention, ExactBuffers, ExactGp, Family, Grid, Kernel, Wiski,
    WiskiBuffers, MAX_NONZEROS,
};
use keel_core::linalg::{cholesky_in_place, solve_lower_in_place};
use serde::Serialize;

use crate::error::{Error, Result};

/// Largest input dimension of the exact GP (SKI/WISKI: 3).
pub const MAX_EXACT_DIM: usize = 8;

/// Kernel and noise hyperparameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Hyper {
    /// Kernel family.
    pub family: Family,
    /// Outputscale `s` (prior variance).
    pub outputscale: f64,
    /// One lengthscale per input dimension (or one shared, expanded by [`Hyper::for_dim`]).
    pub lengthscale: Vec<f64>,
    /// Noise variance σ².
    pub noise: f64,
}

impl Hyper {
    /// Checks the values and expands a single lengthscale to `dim` dimensions.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the flag for a non-positive or non-finite value, or a
    /// lengthscale list of the wrong length.
    pub fn for_dim(&self, dim: usize) -> Result<Hyper> {
        let positive = |flag: &str, v: f64| {
            if v > 0.0 && v.is_finite() {
                Ok(())
            } else {
                Err(Error::invalid(flag, v, "must be positive and finite"))
            }
        };
        positive("outputscale", self.outputscale)?;
        positive("noise", self.noise)?;
        let lengthscale = match self.lengthscale.len() {
            1 => vec![self.lengthscale[0]; dim],
            n if n == dim => self.lengthscale.clone(),
            n => {
                return Err(Error::invalid(
                    "lengthscale",
                    format!("{n} values"),
                    format!("give one value or one per input dimension ({dim})"),
                ))
            }
        };
        for &l in &lengthscale {
            positive("lengthscale", l)?;
        }
        Ok(Hyper {
            lengthscale,
            ..self.clone()
        })
    }

    pub(crate) fn kernel<const D: usize>(&self) -> Result<Kernel<f64, D>> {
        let mut l = [0.0; D];
        l.copy_from_slice(&self.lengthscale);
        Kernel::new(self.family, self.outputscale, l).map_err(core("kernel"))
    }
}

/// An interpolation grid as given on the command line.
#[derive(Clone, Debug, PartialEq)]
pub struct GridSpec {
    /// Nodes per dimension.
    pub size: Vec<usize>,
    /// Lower bounds.
    pub lo: Vec<f64>,
    /// Upper bounds.
    pub hi: Vec<f64>,
    /// Node placement.
    pub convention: Convention,
    /// Clamp off-grid inputs instead of failing.
    pub clamp: bool,
}

impl GridSpec {
    /// Expands single values to `dim` dimensions and checks them.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for lists of the wrong length, fewer than 4 nodes, bad bounds,
    /// or more than 3 dimensions.
    pub fn for_dim(&self, dim: usize) -> Result<GridSpec> {
        if !(1..=3).contains(&dim) {
            return Err(Error::invalid(
                "input columns",
                dim,
                "SKI and WISKI interpolate on grids of 1 to 3 dimensions",
            ));
        }
        fn expand<T: Clone + std::fmt::Debug>(flag: &str, v: &[T], dim: usize) -> Result<Vec<T>> {
            match v.len() {
                1 => Ok(vec![v[0].clone(); dim]),
                n if n == dim => Ok(v.to_vec()),
                _ => Err(Error::invalid(
                    flag,
                    format!("{v:?}"),
                    format!("give one value or one per input dimension ({dim})"),
                )),
            }
        }
        let size = expand("grid_size", &self.size, dim)?;
        if let Some(&g) = size.iter().find(|&&g| g < 4) {
            return Err(Error::invalid(
                "grid_size",
                g,
                "cubic interpolation needs at least 4 grid points per dimension",
            ));
        }
        if self.lo.len() != self.hi.len() {
            return Err(Error::invalid(
                "grid_bounds",
                format!("{} lower, {} upper", self.lo.len(), self.hi.len()),
                "give lo,hi pairs",
            ));
        }
        let lo = expand("grid_bounds", &self.lo, dim)?;
        let hi = expand("grid_bounds", &self.hi, dim)?;
        for (l, h) in lo.iter().zip(&hi) {
            if !(l.is_finite() && h.is_finite() && l < h) {
                return Err(Error::invalid(
                    "grid_bounds",
                    format!("{l},{h}"),
                    "need finite lo < hi",
                ));
            }
        }
        let nodes = size.iter().fold(1u128, |n, &s| n.saturating_mul(s as u128));
        if nodes > 8192 {
            return Err(Error::invalid(
                "grid_size",
                format!("{size:?}"),
                format!(
                    "{nodes} grid nodes: WISKI keeps two m×m matrices ({}); use at most 8192",
                    keel_engine::memory::format_bytes(
                        nodes.saturating_mul(nodes).saturating_mul(16)
                    )
                ),
            ));
        }
        Ok(GridSpec {
            size,
            lo,
            hi,
            ..self.clone()
        })
    }

    pub(crate) fn grid<const D: usize>(&self) -> Result<Grid<f64, D>> {
        let (mut lo, mut hi, mut size) = ([0.0; D], [0.0; D], [0usize; D]);
        lo.copy_from_slice(&self.lo);
        hi.copy_from_slice(&self.hi);
        size.copy_from_slice(&self.size);
        Ok(Grid::new(lo, hi, size, self.convention)
            .map_err(core("grid"))?
            .clamping(self.clamp))
    }

    /// Number of grid nodes.
    pub fn nodes(&self) -> usize {
        self.size.iter().product()
    }
}

/// Training data: row-major inputs `[n, dim]`, targets, per-point noise factors.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainData {
    /// Input dimension.
    pub dim: usize,
    /// Inputs, row-major.
    pub x: Vec<f64>,
    /// Targets.
    pub y: Vec<f64>,
    /// Noise factors `d_i` (noise variance σ² d_i).
    pub d: Vec<f64>,
}

impl TrainData {
    /// Rows.
    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// No rows.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }
}

/// A posterior at test inputs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Posterior {
    /// Predictive mean.
    pub mean: Vec<f64>,
    /// Variance of f.
    pub var_f: Vec<f64>,
    /// Variance of a new observation (var_f + σ²).
    pub var_y: Vec<f64>,
    /// log p(y) of the training data.
    pub log_marginal_likelihood: f64,
}

pub(crate) fn core(context: &'static str) -> impl Fn(keel_core::Error) -> Error {
    move |source| Error::Core {
        context: context.to_string(),
        source,
    }
}

pub(crate) fn row<const D: usize>(x: &[f64], i: usize) -> [f64; D] {
    let mut r = [0.0; D];
    r.copy_from_slice(&x[i * D..(i + 1) * D]);
    r
}

macro_rules! by_dim {
    ($dim:expr, $max:literal, $f:ident ( $($arg:expr),* )) => {
        match $dim {
            1 => $f::<1>($($arg),*),
            2 => $f::<2>($($arg),*),
            3 => $f::<3>($($arg),*),
            4 if $max >= 4 => $f::<4>($($arg),*),
            5 if $max >= 5 => $f::<5>($($arg),*),
            6 if $max >= 6 => $f::<6>($($arg),*),
            7 if $max >= 7 => $f::<7>($($arg),*),
            8 if $max >= 8 => $f::<8>($($arg),*),
            d => Err(Error::invalid(
                "input columns",
                d,
                format!("supported: 1 to {}", $max),
            )),
        }
    };
}

/// Exact GP posterior through the core's online GP (points added one at a time).
///
/// # Errors
/// [`Error::InvalidInput`] for bad hyperparameters or dimensions; [`Error::Core`] if the kernel
/// matrix is not positive definite (with the failing row).
pub fn exact(hyper: &Hyper, train: &TrainData, test: &[f64]) -> Result<Posterior> {
    let hyper = hyper.for_dim(train.dim)?;
    by_dim!(train.dim, 8, exact_d(&hyper, train, test))
}

fn exact_d<const D: usize>(hyper: &Hyper, train: &TrainData, test: &[f64]) -> Result<Posterior> {
    let n = train.len();
    let mut store = ExactStore::new(n, D);
    let mut gp = ExactGp::new(hyper.kernel::<D>()?, hyper.noise, store.buffers())
        .map_err(core("exact GP"))?;
    for i in 0..n {
        gp.push_with_noise(row::<D>(&train.x, i), train.y[i], train.d[i])
            .map_err(|r| Error::Core {
                context: format!("training row {}", i + 1),
                source: r.error,
            })?;
    }
    let mut post = Posterior {
        mean: vec![],
        var_f: vec![],
        var_y: vec![],
        log_marginal_likelihood: gp.log_marginal_likelihood(),
    };
    for i in 0..test.len() / D {
        let p = gp.predict(&row::<D>(test, i)).map_err(core("prediction"))?;
        post.mean.push(p.mean);
        post.var_f.push(p.var_f);
        post.var_y.push(p.var_y);
    }
    Ok(post)
}

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
                        .map_err(core("WISKI"))?,
                )
            }
            Store::Exact(s) => {
                Box::new(ExactGp::new(kernel, hyper.noise, s.buffers()).map_err(core("exact GP"))?)
            }
        })
    }
}

/// WISKI posterior: the training rows streamed one at a time through the core's constant-time
/// update.
///
/// # Errors
/// As [`exact`], plus [`Error::Core`] with `OutOfGrid` naming the row for inputs off the grid.
pub fn wiski(hyper: &Hyper, grid: &GridSpec, train: &TrainData, test: &[f64]) -> Result<Posterior> {
    let hyper = hyper.for_dim(train.dim)?;
    let grid = grid.for_dim(train.dim)?;
    by_dim!(train.dim, 3, wiski_d(&hyper, &grid, train, test))
}

fn wiski_d<const D: usize>(
    hyper: &Hyper,
    grid: &GridSpec,
    train: &TrainData,
    test: &[f64],
) -> Result<Posterior> {
    let mut store = WiskiStore::new(grid.nodes());
    let (buf, scratch) = store.split();
    let mut gp = Wiski::new(
        grid.grid::<D>()?,
        hyper.kernel::<D>()?,
        hyper.noise,
        buf,
        scratch,
    )
    .map_err(core("WISKI"))?;
    for i in 0..train.len() {
        gp.observe_with_noise(&row::<D>(&train.x, i), train.y[i], train.d[i])
            .map_err(|source| Error::Core {
                context: format!("training row {}", i + 1),
                source,
            })?;
    }
    let mut post = Posterior {
        mean: vec![],
        var_f: vec![],
        var_y: vec![],
        log_marginal_likelihood: gp.log_marginal_likelihood(),
    };
    for i in 0..test.len() / D {
        let p = gp
            .predict(&row::<D>(test, i))
            .map_err(|source| Error::Core {
                context: format!("test row {}", i + 1),
                source,
            })?;
        post.mean.push(p.mean);
        post.var_f.push(p.var_f);
        post.var_y.push(p.var_y);
    }
    Ok(post)
}

/// Dense SKI posterior (the host's reference): explicit sparse `W`, dense `K_UU`, and a Cholesky
/// of `W K_UU Wᵀ + σ²D` (`O(n³)`; meant for checking, not for large n).
///
/// # Errors
/// As [`wiski`]; [`Error::Core`] with `NotPositiveDefinite` if the n×n system is not.
pub fn ski_dense(
    hyper: &Hyper,
    grid: &GridSpec,
    train: &TrainData,
    test: &[f64],
) -> Result<Posterior> {
    let hyper = hyper.for_dim(train.dim)?;
    let grid = grid.for_dim(train.dim)?;
    by_dim!(train.dim, 3, ski_dense_d(&hyper, &grid, train, test))
}

type SparseRow = Vec<(usize, f64)>;

fn ski_dense_d<const D: usize>(
    hyper: &Hyper,
    spec: &GridSpec,
    train: &TrainData,
    test: &[f64],
) -> Result<Posterior> {
    let grid = spec.grid::<D>()?;
    let kernel = hyper.kernel::<D>()?;
    let m = grid.len();
    let size = *grid.size();
    let mut kuu = vec![0.0; m * m];
    for i in 0..m {
        for j in 0..m {
            let (mut ri, mut rj, mut v) = (i, j, kernel.outputscale());
            for k in (0..D).rev() {
                let g = size[k];
                v *= kernel.factor(k, grid.coordinate(k, ri % g) - grid.coordinate(k, rj % g));
                ri /= g;
                rj /= g;
            }
            kuu[i * m + j] = v;
        }
    }
    let sparse = |x: &[f64; D], what: &str, i: usize| -> Result<SparseRow> {
        let mut idx = [0usize; MAX_NONZEROS];
        let mut w = [0.0; MAX_NONZEROS];
        let nnz = grid
            .weights(x, &mut idx, &mut w)
            .map_err(|source| Error::Core {
                context: format!("{what} row {}", i + 1),
                source,
            })?;
        Ok(idx[..nnz]
            .iter()
            .copied()
            .zip(w[..nnz].iter().copied())
            .collect())
    };
    // K_UU w for a sparse w.
    let kw = |w: &SparseRow| -> Vec<f64> {
        let mut out = vec![0.0; m];
        for &(j, wj) in w {
            for (o, k) in out.iter_mut().zip(&kuu[j * m..(j + 1) * m]) {
                *o += wj * k;
            }
        }
        out
    };
    let n = train.len();
    let rows: Vec<SparseRow> = (0..n)
        .map(|i| sparse(&row::<D>(&train.x, i), "training", i))
        .collect::<Result<_>>()?;
    let kwt: Vec<Vec<f64>> = rows.iter().map(kw).collect();
    let mut kxx = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let v: f64 = rows[i].iter().map(|&(a, wa)| wa * kwt[j][a]).sum();
            kxx[i * n + j] = v;
            kxx[j * n + i] = v;
        }
        kxx[i * n + i] += hyper.noise * train.d[i];
    }
    cholesky_in_place(&mut kxx, n).map_err(core("dense SKI system W K Wᵀ + σ²D"))?;
    let mut z = train.y.clone();
    solve_lower_in_place(&kxx, n, &mut z).map_err(core("dense SKI solve"))?;
    let logdet: f64 = (0..n).map(|i| 2.0 * kxx[i * n + i].ln()).sum();
    let lml = -0.5
        * (z.iter().map(|v| v * v).sum::<f64>()
            + logdet
            + n as f64 * (2.0 * std::f64::consts::PI).ln());
    let mut post = Posterior {
        mean: vec![],
        var_f: vec![],
        var_y: vec![],
        log_marginal_likelihood: lml,
    };
    for t in 0..test.len() / D {
        let ws = sparse(&row::<D>(test, t), "test", t)?;
        let kws = kw(&ws);
        let prior: f64 = ws.iter().map(|&(a, wa)| wa * kws[a]).sum();
        let mut c: Vec<f64> = rows
            .iter()
            .map(|r| r.iter().map(|&(a, wa)| wa * kws[a]).sum())
            .collect();
        solve_lower_in_place(&kxx, n, &mut c).map_err(core("dense SKI solve"))?;
        let var_f = (prior - c.iter().map(|v| v * v).sum::<f64>()).max(0.0);
        post.mean.push(c.iter().zip(&z).map(|(a, b)| a * b).sum());
        post.var_f.push(var_f);
        post.var_y.push(var_f + hyper.noise);
    }
    Ok(post)
}

/// Wall time of `f` in seconds with its result.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let t = Instant::now();
    let r = f();
    (r, t.elapsed().as_secs_f64())
}

/// Which online GP a stream runs through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamMethod {
    /// WISKI (constant-time updates).
    Wiski,
    /// The exact GP (`O(n²)` per update, capacity = stream length).
    Exact,
}

impl StreamMethod {
    /// `wiski` or `exact`.
    pub fn name(self) -> &'static str {
        match self {
            StreamMethod::Wiski => "wiski",
            StreamMethod::Exact => "exact",
        }
    }

    /// Parses [`StreamMethod::name`].
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming `--method`.
    pub fn parse(s: &str) -> Result<StreamMethod> {
        match s {
            "wiski" => Ok(StreamMethod::Wiski),
            "exact" => Ok(StreamMethod::Exact),
            m => Err(Error::invalid("method", m, "use wiski or exact")),
        }
    }
}

/// The posterior on a line of inputs after some number of points (1-D streams).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Snapshot {
    /// Points absorbed.
    pub seen: usize,
    /// Predictive mean on the line.
    pub mean: Vec<f64>,
    /// Predictive standard deviation of f on the line.
    pub std_f: Vec<f64>,
}

/// Results of a prequential (predict, then learn) pass over a stream.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StreamReport {
    /// `wiski` or `exact`.
    pub method: &'static str,
    /// Points streamed.
    pub n: usize,
    /// Input dimension.
    pub dim: usize,
    /// Grid nodes (WISKI).
    pub grid_nodes: Option<usize>,
    /// Root mean squared error of each point's prediction made before it was absorbed.
    pub prequential_rmse: f64,
    /// Mean negative log predictive density of each point before it was absorbed.
    pub prequential_nll: f64,
    /// log p(y) of the whole stream at the end.
    pub log_marginal_likelihood: f64,
    /// Median update time (µs).
    pub update_us_median: f64,
    /// Median update time over the first 10 % of the stream (µs).
    pub update_us_median_first_tenth: f64,
    /// Median update time over the last 10 % of the stream (µs).
    pub update_us_median_last_tenth: f64,
    /// Slowest update (µs).
    pub update_us_max: f64,
    /// Median prediction time (µs).
    pub predict_us_median: f64,
    /// Bytes of model state (independent of n for WISKI).
    pub state_bytes: usize,
    /// Whole pass, seconds.
    pub seconds: f64,
    /// Hyperparameters learned online (with `--learn`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub learned: Option<LearnedHyper>,
    /// Posterior snapshots on a line (1-D only, when asked for).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub snapshots: Vec<Snapshot>,
}

pub(crate) fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// One online GP, whichever kind.
pub(crate) trait Online<const D: usize> {
    fn predict(&mut self, x: &[f64; D]) -> keel_core::Result<keel_core::gp::Prediction<f64>>;
    fn absorb(&mut self, x: &[f64; D], y: f64, d: f64) -> keel_core::Result<()>;
    fn lml(&self) -> f64;
}

impl<const D: usize> Online<D> for Wiski<'_, f64, D> {
    fn predict(&mut self, x: &[f64; D]) -> keel_core::Result<keel_core::gp::Prediction<f64>> {
        Wiski::predict(self, x)
    }
    fn absorb(&mut self, x: &[f64; D], y: f64, d: f64) -> keel_core::Result<()> {
        self.observe_with_noise(x, y, d)
    }
    fn lml(&self) -> f64 {
        self.log_marginal_likelihood()
    }
}

impl<const D: usize> Online<D> for ExactGp<'_, f64, D> {
    fn predict(&mut self, x: &[f64; D]) -> keel_core::Result<keel_core::gp::Prediction<f64>> {
        ExactGp::predict(self, x)
    }
    fn absorb(&mut self, x: &[f64; D], y: f64, d: f64) -> keel_core::Result<()> {
        self.push_with_noise(*x, y, d).map_err(|r| r.error)
    }
    fn lml(&self) -> f64 {
        self.log_marginal_likelihood()
    }
}

/// The paper's online hyperparameter learning: a full-batch fit on the first points, then one
/// Adam step on `log p(y)/n` (from the cached statistics) before each new point is absorbed.
#[derive(Clone, Debug, PartialEq)]
pub struct OnlineLearning {
    /// Points used for pretraining (the paper: the first 5 %).
    pub pretrain: usize,
    /// Adam steps of pretraining.
    pub pretrain_steps: usize,
    /// Pretraining learning rate.
    pub pretrain_lr: f64,
    /// Online learning rate (one step per point).
    pub lr: f64,
}

/// Hyperparameters at the end of an online-learning stream.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LearnedHyper {
    /// Outputscale.
    pub outputscale: f64,
    /// Lengthscales.
    pub lengthscale: Vec<f64>,
    /// Noise variance.
    pub noise: f64,
    /// Points in the pretraining batch (not scored).
    pub pretrain_points: usize,
}

/// Where 1-D snapshots are taken and drawn.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SnapshotPlan {
    /// After how many points.
    pub at: Vec<usize>,
    /// The inputs to predict at.
    pub line: Vec<f64>,
}

/// Streams `data` through an online GP: for each point, predict it, then absorb it.
///
/// # Errors
/// As [`wiski`] / [`exact`], naming the stream row that failed.
pub fn stream(
    method: StreamMethod,
    hyper: &Hyper,
    grid: &GridSpec,
    data: &TrainData,
    plan: &SnapshotPlan,
    learning: Option<&OnlineLearning>,
    mut progress: impl FnMut(usize),
) -> Result<StreamReport> {
    let hyper = hyper.for_dim(data.dim)?;
    if learning.is_some() && method == StreamMethod::Exact {
        return Err(Error::invalid(
            "learn",
            "exact",
            "online hyperparameter learning runs with `method` wiski (each exact step would cost O(n³))",
        ));
    }
    match method {
        StreamMethod::Wiski => {
            let grid = grid.for_dim(data.dim)?;
            by_dim!(
                data.dim,
                3,
                stream_wiski_d(&hyper, &grid, data, plan, learning, &mut progress)
            )
        }
        StreamMethod::Exact => by_dim!(
            data.dim,
            8,
            stream_exact_d(&hyper, data, plan, &mut progress)
        ),
    }
}

fn stream_wiski_d<const D: usize>(
    hyper: &Hyper,
    grid: &GridSpec,
    data: &TrainData,
    plan: &SnapshotPlan,
    learning: Option<&OnlineLearning>,
    progress: &mut dyn FnMut(usize),
) -> Result<StreamReport> {
    let m = grid.nodes();
    let mut store = WiskiStore::new(m);
    let (buf, scratch) = store.split();
    let mut gp = Wiski::new(
        grid.grid::<D>()?,
        hyper.kernel::<D>()?,
        hyper.noise,
        buf,
        scratch,
    )
    .map_err(core("WISKI"))?;
    let mut report = match learning {
        None => run_stream::<D>(&mut gp, data, plan, 0, progress)?,
        Some(l) => {
            // Pretraining: the first points into the statistics, a full-batch fit, one
            // refactorisation; then predict → one Adam step on L/n from the caches → absorb.
            let n0 = l.pretrain.min(data.len());
            for i in 0..n0 {
                gp.accumulate(&row::<D>(&data.x, i), data.y[i], data.d[i])
                    .map_err(|source| Error::Core {
                        context: format!("stream row {}", i + 1),
                        source,
                    })?;
            }
            gp.refactorize(scratch)
                .map_err(core("WISKI refactorisation"))?;
            let mut h = hyper.clone();
            if n0 > 0 {
                h = adam(&h, l.pretrain_steps, l.pretrain_lr, n0, |h| {
                    ski_mll_grad_d(&mut gp, h, scratch)
                })?
                .0;
            }
            gp.set_hyperparameters(h.kernel::<D>()?, h.noise, scratch)
                .map_err(core("WISKI refactorisation"))?;
            let mut learner = Learner {
                gp,
                scratch,
                theta: to_theta(&h),
                family: h.family,
                adam: AdamState::default(),
                lr: l.lr,
            };
            let mut r = run_stream::<D>(&mut learner, data, plan, n0, progress)?;
            let h = from_theta(learner.family, &learner.theta);
            r.learned = Some(LearnedHyper {
                outputscale: h.outputscale,
                lengthscale: h.lengthscale,
                noise: h.noise,
                pretrain_points: n0,
            });
            r
        }
    };
    report.method = StreamMethod::Wiski.name();
    report.grid_nodes = Some(m);
    report.state_bytes = (2 * m * m + 4 * m) * 8;
    Ok(report)
}

/// WISKI with one hyperparameter step before each point is absorbed (the paper's online loop).
struct Learner<'a, const D: usize> {
    gp: Wiski<'a, f64, D>,
    scratch: &'a mut [f64],
    theta: Vec<f64>,
    family: Family,
    adam: AdamState,
    lr: f64,
}

impl<const D: usize> Online<D> for Learner<'_, D> {
    fn predict(&mut self, x: &[f64; D]) -> keel_core::Result<keel_core::gp::Prediction<f64>> {
        self.gp.predict(x)
    }
    fn absorb(&mut self, x: &[f64; D], y: f64, d: f64) -> keel_core::Result<()> {
        let n = self.gp.len() as usize;
        if n > 0 && self.lr > 0.0 {
            let h = from_theta(self.family, &self.theta);
            let (_, g) = ski_mll_grad_d(&mut self.gp, &h, self.scratch).map_err(|e| match e {
                Error::Core { source, .. } => source,
                _ => keel_core::Error::InvalidConfig {
                    what: "hyperparameter step",
                },
            })?;
            self.adam.step(&mut self.theta, &g, self.lr, 1.0 / n as f64);
            let h = from_theta(self.family, &self.theta);
            let mut l = [0.0; D];
            l.copy_from_slice(&h.lengthscale);
            let kernel = Kernel::new(h.family, h.outputscale, l)?;
            self.gp.set_hyperparameters(kernel, h.noise, self.scratch)?;
        }
        self.gp.observe_with_noise(x, y, d)
    }
    fn lml(&self) -> f64 {
        self.gp.log_marginal_likelihood()
    }
}

fn stream_exact_d<const D: usize>(
    hyper: &Hyper,
    data: &TrainData,
    plan: &SnapshotPlan,
    progress: &mut dyn FnMut(usize),
) -> Result<StreamReport> {
    let n = data.len();
    let mut store = ExactStore::new(n, D);
    let mut gp = ExactGp::new(hyper.kernel::<D>()?, hyper.noise, store.buffers())
        .map_err(core("exact GP"))?;
    let mut report = run_stream::<D>(&mut gp, data, plan, 0, progress)?;
    report.method = StreamMethod::Exact.name();
    report.state_bytes = (n * n + n * (D + 5)) * 8;
    Ok(report)
}

/// The prequential pass over `data[skip..]` (the first `skip` rows are already in the model).
fn run_stream<const D: usize>(
    gp: &mut dyn Online<D>,
    data: &TrainData,
    plan: &SnapshotPlan,
    skip: usize,
    progress: &mut dyn FnMut(usize),
) -> Result<StreamReport> {
    let n = data.len();
    let scored = n - skip.min(n);
    let start = Instant::now();
    let (mut se, mut nll) = (0.0, 0.0);
    let mut update_us = Vec::with_capacity(n);
    let mut predict_us = Vec::with_capacity(n);
    let mut snapshots = Vec::new();
    let row_err = |i: usize| {
        move |source| Error::Core {
            context: format!("stream row {}", i + 1),
            source,
        }
    };
    let snapshot = |gp: &mut dyn Online<D>, seen: usize| -> Result<Snapshot> {
        let mut s = Snapshot {
            seen,
            mean: vec![],
            std_f: vec![],
        };
        for &x in &plan.line {
            let mut p = [0.0; D];
            p[0] = x;
            let pr = gp.predict(&p).map_err(core("snapshot"))?;
            s.mean.push(pr.mean);
            s.std_f.push(pr.var_f.sqrt());
        }
        Ok(s)
    };
    for i in skip.min(n)..n {
        if D == 1 && plan.at.contains(&i) {
            snapshots.push(snapshot(gp, i)?);
        }
        let x = row::<D>(&data.x, i);
        let t = Instant::now();
        let p = gp.predict(&x).map_err(row_err(i))?;
        predict_us.push(t.elapsed().as_secs_f64() * 1e6);
        let e = data.y[i] - p.mean;
        let var = p.var_f + (p.var_y - p.var_f) * data.d[i];
        se += e * e;
        nll += 0.5 * ((2.0 * std::f64::consts::PI * var).ln() + e * e / var);
        let t = Instant::now();
        gp.absorb(&x, data.y[i], data.d[i]).map_err(row_err(i))?;
        update_us.push(t.elapsed().as_secs_f64() * 1e6);
        if i % 256 == 255 {
            progress(i + 1);
        }
    }
    if D == 1 && plan.at.contains(&n) {
        snapshots.push(snapshot(gp, n)?);
    }
    progress(n);
    let tenth = (scored / 10).max(1);
    let first = median(&mut update_us[..tenth.min(scored)].to_vec());
    let last = median(&mut update_us[scored.saturating_sub(tenth)..].to_vec());
    let max = update_us.iter().copied().fold(0.0, f64::max);
    Ok(StreamReport {
        method: "",
        n,
        dim: D,
        grid_nodes: None,
        prequential_rmse: (se / scored.max(1) as f64).sqrt(),
        prequential_nll: nll / scored.max(1) as f64,
        log_marginal_likelihood: gp.lml(),
        update_us_median: median(&mut update_us),
        update_us_median_first_tenth: first,
        update_us_median_last_tenth: last,
        update_us_max: max,
        predict_us_median: median(&mut predict_us),
        state_bytes: 0,
        seconds: start.elapsed().as_secs_f64(),
        learned: None,
        snapshots,
    })
}

/// A seeded 1-D stream: `x ~ U(−3, 3)`, `y = sin(3x) + 0.3x + 0.2·N(0, 1)`.
pub fn synthetic_stream(n: usize, seed: u64) -> TrainData {
    use keel_core::random::{standard_normal, uniform, Xoshiro256PlusPlus};
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut x = Vec::with_capacity(n);
    let mut y = Vec::with_capacity(n);
    for _ in 0..n {
        let xi = -3.0 + 6.0 * uniform::<f64, _>(&mut rng);
        x.push(xi);
        y.push((3.0 * xi).sin() + 0.3 * xi + 0.2 * standard_normal::<f64, _>(&mut rng));
    }
    TrainData {
        dim: 1,
        x,
        y,
        d: vec![1.0; n],
    }
}

/// Log-space hyperparameters `θ = (log s, log ℓ₁ … log ℓ_D, log σ²)`.
pub fn to_theta(h: &Hyper) -> Vec<f64> {
    let mut t = vec![h.outputscale.ln()];
    t.extend(h.lengthscale.iter().map(|l| l.ln()));
    t.push(h.noise.ln());
    t
}

/// Inverse of [`to_theta`].
pub fn from_theta(family: Family, t: &[f64]) -> Hyper {
    Hyper {
        family,
        outputscale: t[0].exp(),
        lengthscale: t[1..t.len() - 1].iter().map(|v| v.exp()).collect(),
        noise: t[t.len() - 1].exp(),
    }
}

/// The exact GP's log marginal likelihood and its gradient with respect to [`to_theta`]:
/// `∂L/∂θ = ½ tr((ααᵀ − K⁻¹) ∂K/∂θ)`, dense (`O(n³)`).
///
/// # Errors
/// [`Error::Core`] if `K + σ²D` is not positive definite.
pub fn exact_mll_grad(h: &Hyper, train: &TrainData) -> Result<(f64, Vec<f64>)> {
    let (n, dim) = (train.len(), train.dim);
    let h = h.for_dim(dim)?;
    let x = |i: usize| &train.x[i * dim..(i + 1) * dim];
    let r2 = |i: usize, j: usize| -> f64 {
        x(i).iter()
            .zip(x(j))
            .zip(&h.lengthscale)
            .map(|((a, b), l)| ((a - b) / l).powi(2))
            .sum()
    };
    let mut k = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            k[i * n + j] = h.outputscale * h.family.profile(r2(i, j));
        }
        k[i * n + i] += h.noise * train.d[i];
    }
    let mut l = k.clone();
    cholesky_in_place(&mut l, n).map_err(core("exact GP kernel matrix"))?;
    let mut z = train.y.clone();
    solve_lower_in_place(&l, n, &mut z).map_err(core("exact GP solve"))?;
    let logdet: f64 = (0..n).map(|i| 2.0 * l[i * n + i].ln()).sum();
    let mll = -0.5
        * (z.iter().map(|v| v * v).sum::<f64>()
            + logdet
            + n as f64 * (2.0 * std::f64::consts::PI).ln());
    // α = K⁻¹y and K⁻¹ (columns by two triangular solves each).
    let mut alpha = z;
    keel_core::linalg::solve_lower_transpose_in_place(&l, n, &mut alpha)
        .map_err(core("exact GP solve"))?;
    let mut kinv = vec![0.0; n * n];
    let mut col = vec![0.0; n];
    for c in 0..n {
        col.fill(0.0);
        col[c] = 1.0;
        solve_lower_in_place(&l, n, &mut col).map_err(core("exact GP solve"))?;
        keel_core::linalg::solve_lower_transpose_in_place(&l, n, &mut col)
            .map_err(core("exact GP solve"))?;
        for (r, v) in col.iter().enumerate() {
            kinv[r * n + c] = *v;
        }
    }
    let mut grad = vec![0.0; dim + 2];
    for i in 0..n {
        for j in 0..n {
            let w = alpha[i] * alpha[j] - kinv[i * n + j];
            let rr = r2(i, j);
            let kf = h.outputscale * h.family.profile(rr);
            grad[0] += 0.5 * w * kf;
            let dp = h.outputscale * h.family.profile_derivative(rr);
            for (kd, (a, b)) in x(i).iter().zip(x(j)).enumerate() {
                let s2 = ((a - b) / h.lengthscale[kd]).powi(2);
                grad[1 + kd] += 0.5 * w * dp * (-2.0 * s2);
            }
        }
        grad[dim + 1] += 0.5 * (alpha[i] * alpha[i] - kinv[i * n + i]) * h.noise * train.d[i];
    }
    Ok((mll, grad))
}

/// A WISKI model holding the training statistics, for evaluating the log marginal likelihood
/// and its gradient at any hyperparameters from the caches alone (`O(m³)` each, independent
/// of n): `∂L/∂θ = ½ vᵀ∂K_UU v/σ⁴ − ½ tr(∂K_UU G)/σ²` for kernel parameters and
/// `−½[vᵀK′v/σ² − q/σ² − tr(K′G) + n]` for `log σ²`, with `a = Cb`, `v = b − Aa`,
/// `G = A − ACA`, `q = c_yy − bᵀa` — no inverse of `K_UU` anywhere.
fn ski_mll_grad_d<const D: usize>(
    gp: &mut Wiski<'_, f64, D>,
    h: &Hyper,
    scratch: &mut [f64],
) -> Result<(f64, Vec<f64>)> {
    if gp.kernel() != &h.kernel::<D>()? || gp.noise() != h.noise {
        gp.set_hyperparameters(h.kernel::<D>()?, h.noise, scratch)
            .map_err(core("WISKI refactorisation"))?;
    }
    let grid = *gp.grid();
    let m = grid.len();
    let size = *grid.size();
    let (a_mat, b, c_yy, _, n) = gp.statistics();
    let a = gp.grid_mean();
    let s = gp.root();
    let v: Vec<f64> = (0..m)
        .map(|i| b[i] - (0..m).map(|j| a_mat[i * m + j] * a[j]).sum::<f64>())
        .collect();
    let q = c_yy - b.iter().zip(a).map(|(x, y)| x * y).sum::<f64>();
    // AS, then G = A − (AS)(AS)ᵀ.
    let mut as_ = vec![0.0; m * m];
    for i in 0..m {
        for k in 0..m {
            let aik = a_mat[i * m + k];
            if aik != 0.0 {
                for j in 0..m {
                    as_[i * m + j] += aik * s[k * m + j];
                }
            }
        }
    }
    let sigma2 = h.noise;
    // Per-dimension factors and their log-lengthscale derivatives.
    let factors: Vec<(Vec<f64>, Vec<f64>)> = (0..D)
        .map(|k| {
            let g = size[k];
            let mut f = vec![0.0; g * g];
            let mut df = vec![0.0; g * g];
            for i in 0..g {
                for j in 0..g {
                    let r2 = ((grid.coordinate(k, i) - grid.coordinate(k, j)) / h.lengthscale[k])
                        .powi(2);
                    f[i * g + j] = h.family.profile(r2);
                    df[i * g + j] = h.family.profile_derivative(r2) * (-2.0 * r2);
                }
            }
            (f, df)
        })
        .collect();
    let mut grad = vec![0.0; D + 2];
    let mut tr_kg = 0.0;
    let mut vkv = 0.0;
    let mut digits_i = [0usize; D];
    let mut digits_j = [0usize; D];
    for i in 0..m {
        let mut r = i;
        for k in (0..D).rev() {
            digits_i[k] = r % size[k];
            r /= size[k];
        }
        for j in 0..m {
            let mut r = j;
            for k in (0..D).rev() {
                digits_j[k] = r % size[k];
                r /= size[k];
            }
            let g_ij =
                a_mat[i * m + j] - (0..m).map(|c| as_[i * m + c] * as_[j * m + c]).sum::<f64>();
            let vv = v[i] * v[j];
            let mut kuu = h.outputscale;
            for k in 0..D {
                let gk = size[k];
                kuu *= factors[k].0[digits_i[k] * gk + digits_j[k]];
            }
            // ∂K_UU/∂log s = K_UU.
            grad[0] += 0.5 * vv * kuu / (sigma2 * sigma2) - 0.5 * kuu * g_ij / sigma2;
            for k in 0..D {
                let gk = size[k];
                let f = factors[k].0[digits_i[k] * gk + digits_j[k]];
                let df = factors[k].1[digits_i[k] * gk + digits_j[k]];
                let dk = if f != 0.0 {
                    kuu / f * df
                } else {
                    let mut p = h.outputscale * df;
                    for l in (0..D).filter(|&l| l != k) {
                        p *= factors[l].0[digits_i[l] * size[l] + digits_j[l]];
                    }
                    p
                };
                grad[1 + k] += 0.5 * vv * dk / (sigma2 * sigma2) - 0.5 * dk * g_ij / sigma2;
            }
            tr_kg += kuu / sigma2 * g_ij;
            vkv += vv * kuu / sigma2;
        }
    }
    grad[D + 1] = -0.5 * (vkv / sigma2 - q / sigma2 - tr_kg + n as f64);
    Ok((gp.log_marginal_likelihood(), grad))
}

/// What `--fit` did.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FitReport {
    /// Log marginal likelihood at the starting hyperparameters.
    pub log_marginal_likelihood_start: f64,
    /// … and at the fitted ones.
    pub log_marginal_likelihood_end: f64,
    /// Adam steps taken.
    pub iterations: usize,
    /// Fitted outputscale.
    pub outputscale: f64,
    /// Fitted lengthscales.
    pub lengthscale: Vec<f64>,
    /// Fitted noise variance.
    pub noise: f64,
    /// Seconds.
    pub seconds: f64,
}

/// Maximises the log marginal likelihood over `θ = log(s, ℓ, σ²)` with Adam (`lr` per step,
/// `iterations` steps, gradient of `L/n`): the exact GP's dense likelihood, or SKI's from the
/// cached statistics (`ski = true`; the training data are absorbed once, each step costs
/// `O(m³)`). The best hyperparameters seen are returned.
///
/// # Errors
/// As [`exact_mll_grad`] / [`wiski`]; [`Error::InvalidInput`] for `lr ≤ 0`.
pub fn fit(
    hyper: &Hyper,
    grid: Option<&GridSpec>,
    train: &TrainData,
    iterations: usize,
    lr: f64,
) -> Result<(Hyper, FitReport)> {
    if !(lr > 0.0 && lr.is_finite()) {
        return Err(Error::invalid("fit_lr", lr, "must be positive"));
    }
    let hyper = hyper.for_dim(train.dim)?;
    let start = Instant::now();
    let (best, l0, l1) = match grid {
        None => adam(&hyper, iterations, lr, train.len(), |h| {
            exact_mll_grad(h, train)
        })?,
        Some(g) => {
            let g = g.for_dim(train.dim)?;
            by_dim!(train.dim, 3, fit_ski_d(&hyper, &g, train, iterations, lr))?
        }
    };
    let report = FitReport {
        log_marginal_likelihood_start: l0,
        log_marginal_likelihood_end: l1,
        iterations,
        outputscale: best.outputscale,
        lengthscale: best.lengthscale.clone(),
        noise: best.noise,
        seconds: start.elapsed().as_secs_f64(),
    };
    Ok((best, report))
}

fn fit_ski_d<const D: usize>(
    hyper: &Hyper,
    grid: &GridSpec,
    train: &TrainData,
    iterations: usize,
    lr: f64,
) -> Result<(Hyper, f64, f64)> {
    let mut store = WiskiStore::new(grid.nodes());
    let (buf, scratch) = store.split();
    let mut gp = Wiski::new(
        grid.grid::<D>()?,
        hyper.kernel::<D>()?,
        hyper.noise,
        buf,
        scratch,
    )
    .map_err(core("WISKI"))?;
    for i in 0..train.len() {
        gp.accumulate(&row::<D>(&train.x, i), train.y[i], train.d[i])
            .map_err(|source| Error::Core {
                context: format!("training row {}", i + 1),
                source,
            })?;
    }
    gp.refactorize(scratch)
        .map_err(core("WISKI refactorisation"))?;
    adam(hyper, iterations, lr, train.len(), |h| {
        ski_mll_grad_d(&mut gp, h, scratch)
    })
}

/// Adam's moment estimates for gradient *ascent* on log-hyperparameters.
#[derive(Clone, Debug, Default)]
struct AdamState {
    m1: Vec<f64>,
    m2: Vec<f64>,
    t: i32,
}

impl AdamState {
    /// One step: `θ ← θ + lr·m̂/(√v̂ + ε)` on the gradient `g·scale`, log-parameters kept within
    /// e^±12.
    fn step(&mut self, theta: &mut [f64], g: &[f64], lr: f64, scale: f64) {
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
        if self.m1.len() != theta.len() {
            self.m1 = vec![0.0; theta.len()];
            self.m2 = vec![0.0; theta.len()];
            self.t = 0;
        }
        self.t += 1;
        for i in 0..theta.len() {
            let gi = g[i] * scale;
            self.m1[i] = b1 * self.m1[i] + (1.0 - b1) * gi;
            self.m2[i] = b2 * self.m2[i] + (1.0 - b2) * gi * gi;
            let mh = self.m1[i] / (1.0 - b1.powi(self.t));
            let vh = self.m2[i] / (1.0 - b2.powi(self.t));
            theta[i] = (theta[i] + lr * mh / (vh.sqrt() + eps)).clamp(-12.0, 12.0);
        }
    }
}

/// Adam ascent on `L(θ)/n`; returns the best hyperparameters seen, and L at the start and there.
fn adam(
    hyper: &Hyper,
    iterations: usize,
    lr: f64,
    n: usize,
    mut eval: impl FnMut(&Hyper) -> Result<(f64, Vec<f64>)>,
) -> Result<(Hyper, f64, f64)> {
    let mut theta = to_theta(hyper);
    let mut state = AdamState::default();
    let scale = 1.0 / n.max(1) as f64;
    let (l0, mut g) = eval(hyper)?;
    let (mut best, mut best_l) = (hyper.clone(), l0);
    for _ in 0..iterations {
        state.step(&mut theta, &g, lr, scale);
        let h = from_theta(hyper.family, &theta);
        let (l, gn) = eval(&h)?;
        if l.is_finite() && l > best_l {
            best = h;
            best_l = l;
        }
        g = gn;
    }
    Ok((best, l0, best_l))
}

/// SKI's log marginal likelihood and gradient (see [`fit`]) for one set of hyperparameters,
/// absorbing `train` first.
///
/// # Errors
/// As [`wiski`].
pub fn ski_mll_grad(hyper: &Hyper, grid: &GridSpec, train: &TrainData) -> Result<(f64, Vec<f64>)> {
    let hyper = hyper.for_dim(train.dim)?;
    let grid = grid.for_dim(train.dim)?;
    by_dim!(train.dim, 3, ski_mll_grad_once_d(&hyper, &grid, train))
}

fn ski_mll_grad_once_d<const D: usize>(
    hyper: &Hyper,
    grid: &GridSpec,
    train: &TrainData,
) -> Result<(f64, Vec<f64>)> {
    let mut store = WiskiStore::new(grid.nodes());
    let (buf, scratch) = store.split();
    let mut gp = Wiski::new(
        grid.grid::<D>()?,
        hyper.kernel::<D>()?,
        hyper.noise,
        buf,
        scratch,
    )
    .map_err(core("WISKI"))?;
    for i in 0..train.len() {
        gp.accumulate(&row::<D>(&train.x, i), train.y[i], train.d[i])
            .map_err(core("training row"))?;
    }
    gp.refactorize(scratch)
        .map_err(core("WISKI refactorisation"))?;
    ski_mll_grad_d(&mut gp, hyper, scratch)
}

/// The Dirichlet-based classification transform (Milios et al. 2018) for one class indicator:
/// `α = α_ε + 1[y = c]`, `σ̃² = log(1/α + 1)`, `ỹ = log α − σ̃²/2`. Returns `(ỹ, σ̃²)`.
pub fn dirichlet_target(is_class: bool, alpha_eps: f64) -> (f64, f64) {
    let alpha = alpha_eps + if is_class { 1.0 } else { 0.0 };
    let var = (1.0 / alpha + 1.0).ln();
    (alpha.ln() - 0.5 * var, var)
}

/// A labelled 2-D stream: inputs, class labels (0 or 1).
#[derive(Clone, Debug, PartialEq)]
pub struct Labelled2d {
    /// Inputs `[n, 2]`, row-major.
    pub x: Vec<f64>,
    /// Labels.
    pub label: Vec<usize>,
}

/// Keel's banana stream: two interleaved crescents (each a half circle of radius 1, the second
/// shifted by (1, −0.5) and flipped), Gaussian noise of sd `noise`, mapped affinely from
/// `[−1.25, 2.25] × [−0.85, 1.35]` onto `[−1, 1]²`, in random order. Seeded.
pub fn banana(n: usize, noise: f64, seed: u64) -> Labelled2d {
    use keel_core::random::{standard_normal, uniform, Xoshiro256PlusPlus};
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut x = Vec::with_capacity(2 * n);
    let mut label = Vec::with_capacity(n);
    for _ in 0..n {
        let c = usize::from(uniform::<f64, _>(&mut rng) < 0.5);
        let t = std::f64::consts::PI * uniform::<f64, _>(&mut rng);
        let (mut a, mut b) = if c == 0 {
            (t.cos(), t.sin())
        } else {
            (1.0 - t.cos(), 0.5 - t.sin())
        };
        a += noise * standard_normal::<f64, _>(&mut rng);
        b += noise * standard_normal::<f64, _>(&mut rng);
        x.push((2.0 * (a + 1.25) / 3.5 - 1.0).clamp(-1.0, 1.0));
        x.push((2.0 * (b + 0.85) / 2.2 - 1.0).clamp(-1.0, 1.0));
        label.push(c);
    }
    Labelled2d { x, label }
}

/// Results of online Dirichlet-GP classification.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClassifyReport {
    /// `wiski` or `exact`.
    pub method: &'static str,
    /// Points streamed.
    pub n: usize,
    /// Fraction of stream points classified correctly before they were absorbed.
    pub online_accuracy: f64,
    /// Accuracy on the held-out test points after the stream.
    pub test_accuracy: f64,
    /// Mean negative log probability of the test labels (class probabilities by Monte Carlo
    /// over the two GPs' posteriors, 256 draws).
    pub test_nll: f64,
    /// Median time to absorb one point into both class GPs (µs).
    pub update_us_median: f64,
    /// Seconds in all.
    pub seconds: f64,
}

/// Streams a 2-class problem through one GP per class on the Dirichlet-transformed targets
/// (fixed heteroscedastic noise `σ̃²`, no learned noise: `σ² = 1`), predicting each point before
/// absorbing it, then scores the test set. The targets are centred on the midpoint of the two
/// values ỹ takes, so an empty region predicts a tie rather than "not this class".
///
/// # Errors
/// As [`wiski`] / [`exact`].
pub fn classify(
    method: StreamMethod,
    hyper: &Hyper,
    grid: &GridSpec,
    train: &Labelled2d,
    test: &Labelled2d,
    alpha_eps: f64,
    seed: u64,
) -> Result<ClassifyReport> {
    use keel_core::random::{standard_normal, Xoshiro256PlusPlus};
    if !(alpha_eps > 0.0 && alpha_eps.is_finite()) {
        return Err(Error::invalid("alpha_eps", alpha_eps, "must be positive"));
    }
    let mut h = hyper.for_dim(2)?;
    h.noise = 1.0;
    let n = train.label.len();
    let (on, off) = (
        dirichlet_target(true, alpha_eps),
        dirichlet_target(false, alpha_eps),
    );
    let centre = 0.5 * (on.0 + off.0);
    let start = Instant::now();
    // Both classes' models live side by side; exact needs capacity n.
    let grid = match method {
        StreamMethod::Wiski => grid.for_dim(2)?,
        StreamMethod::Exact => grid.clone(),
    };
    let mut stores = [
        Store::new(method, &grid, n, 2),
        Store::new(method, &grid, n, 2),
    ];
    let mut models = stores
        .iter_mut()
        .map(|s| s.build::<2>(&grid, &h))
        .collect::<Result<Vec<_>>>()?;
    let mut correct = 0usize;
    let mut update_us = Vec::with_capacity(n);
    let row_err = |i: usize| {
        move |source| Error::Core {
            context: format!("stream row {}", i + 1),
            source,
        }
    };
    for i in 0..n {
        let x = [train.x[2 * i], train.x[2 * i + 1]];
        let mut best = (f64::NEG_INFINITY, 0);
        for (c, m) in models.iter_mut().enumerate() {
            let p = m.predict(&x).map_err(row_err(i))?;
            if p.mean > best.0 {
                best = (p.mean, c);
            }
        }
        correct += usize::from(best.1 == train.label[i]);
        let t = Instant::now();
        for (c, m) in models.iter_mut().enumerate() {
            let (y, var) = if train.label[i] == c { on } else { off };
            m.absorb(&x, y - centre, var).map_err(row_err(i))?;
        }
        update_us.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let (mut test_correct, mut nll) = (0usize, 0.0);
    let m_test = test.label.len();
    for i in 0..m_test {
        let x = [test.x[2 * i], test.x[2 * i + 1]];
        let mut post = [(0.0, 0.0); 2];
        for (c, m) in models.iter_mut().enumerate() {
            let p = m.predict(&x).map_err(core("test prediction"))?;
            post[c] = (p.mean, p.var_f.sqrt());
        }
        let pred = usize::from(post[1].0 > post[0].0);
        test_correct += usize::from(pred == test.label[i]);
        // p(c) = E[softmax(f)] with f_c ~ N(μ_c, var_c) independently.
        let mut prob = 0.0;
        const DRAWS: usize = 256;
        for _ in 0..DRAWS {
            let f0 = post[0].0 + post[0].1 * standard_normal::<f64, _>(&mut rng);
            let f1 = post[1].0 + post[1].1 * standard_normal::<f64, _>(&mut rng);
            let (fc, fo) = if test.label[i] == 0 {
                (f0, f1)
            } else {
                (f1, f0)
            };
            prob += 1.0 / (1.0 + (fo - fc).exp());
        }
        nll -= (prob / DRAWS as f64).max(1e-12).ln();
    }
    Ok(ClassifyReport {
        method: method.name(),
        n,
        online_accuracy: correct as f64 / n.max(1) as f64,
        test_accuracy: test_correct as f64 / m_test.max(1) as f64,
        test_nll: nll / m_test.max(1) as f64,
        update_us_median: median(&mut update_us),
        seconds: start.elapsed().as_secs_f64(),
    })
}
