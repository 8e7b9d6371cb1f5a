//! The library's integration tests, one module per file, built as one test binary: run one
//! file's tests with `cargo test -p keel --test all <file>::` (e.g. `gp_fit::`). The methods on
//! a GPU are their own binary (`--test methods_on_device`), which cuda/bundle.sh carries.

mod common;

mod augerino;
mod bayes_cnn;
mod chnn_core;
mod chnn_model;
mod cnn_core;
mod cnn_export;
mod corrupt;
mod distill;
mod emlp_basis;
mod emlp_core_gradient;
mod emlp_dynamics;
mod emlp_fixtures;
mod emlp_model;
mod emlp_spring;
mod ensemble_batched;
mod export;
mod gan;
mod gan_losses;
mod gan_ring;
mod gp_fit;
mod gp_fixtures;
mod gp_online;
mod hmc_batched;
mod image_datasets;
mod images;
mod loaders;
mod ntk;
mod ntk_classify;
mod ntk_core;
mod rl_policy;
mod simplex;
