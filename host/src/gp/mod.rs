//! Gaussian-process regression on the host: the same core code the controller runs (exact GP,
//! WISKI — Stanton, Maddox, Delbridge & Wilson, *Kernel Interpolation for Scalable Online
//! Gaussian Processes*, AISTATS 2021) over heap storage sized at run time, plus the dense SKI
//! posterior computed from explicit `W` and `K_UU` as the host's reference.
//!
//! One file per concept: `hyper` (kernel and noise hyperparameters, the interpolation grid,
//! `θ = log(s, ℓ, σ²)`), `store` (heap storage for the core's models, and the WISKI model built
//! and fed in it), `posterior` (training data; the exact, WISKI and dense SKI posteriors),
//! `stream` (prequential streams through an online GP, online hyperparameter learning), `mll`
//! (the log marginal likelihood's gradient: exact and dense, or SKI's from WISKI's caches),
//! `fit` (maximising it with Adam), `classify` (online Dirichlet-GP classification of real rows
//! or the banana stream, with the streaming SVGP beside it), `timing`,
//! and `dim` (run-time input dimension to const-generic `D`). [`bo`] is Bayesian optimisation
//! with an online GP surrogate (`nei`: its noisy expected improvement, `joint`: posterior
//! covariances between points); [`active`] is active learning by the integrated posterior
//! variance (the paper's qNIPV experiment).
//!
//! Online regression on real rows ([`online`]): `stem` (the learned feature map), `weights`
//! (interpolation weights and their gradient in the point), `partial` (the stem's online
//! objective), `pretrain` (the batch fit through the features), `sparse` (the O-SGPR and O-SVGP
//! baselines).

#[macro_use]
mod dim;

pub mod active;
pub mod bo;
mod classify;
mod fit;
mod hyper;
mod joint;
mod mll;
mod nei;
mod online;
mod partial;
mod posterior;
mod pretrain;
mod sparse;
mod stem;
mod store;
mod stream;
mod timing;
mod weights;

pub use classify::{
    banana, classify, dirichlet_target, ClassData, ClassPoint, ClassifyConfig, ClassifyMethod,
    ClassifyReport, Labelled2d, MAX_CLASSES, MAX_STATE_BYTES,
};
pub use dim::MAX_EXACT_DIM;
pub use fit::{fit, FitReport};
pub use hyper::{from_theta, to_theta, GridSpec, Hyper};
pub use mll::{exact_mll_grad, ski_mll_grad};
pub use online::{
    online, projection_stream, OnlineConfig, OnlineData, OnlineMethod, OnlinePoint, OnlineReport,
    MAX_EXACT_ROWS,
};
pub use posterior::{exact, ski_dense, wiski, Posterior, TrainData};
pub use pretrain::PretrainConfig;
pub use sparse::{Osgpr, Osvgp};
pub use stem::{FrozenStem, LinearStem};
pub use store::{ExactStore, WiskiStore};
pub use stream::{
    stream, synthetic_stream, LearnedHyper, OnlineLearning, Snapshot, SnapshotPlan, StreamMethod,
    StreamReport,
};
pub use timing::timed;

pub(crate) use store::Store;
