//! keel-core's integration tests, one module per file, built as one test binary: run one file's
//! tests with `cargo test -p keel-core --test all <file>::` (e.g. `emlp::`). The nalgebra views'
//! tests are their own binary (`--features nalgebra --test nalgebra`).

/// SplitMix64 draws for reproducible weights, shared by the modules.
#[path = "common/splitmix.rs"]
mod splitmix;

mod bma;
mod bodies;
mod cnn;
mod dynamics;
mod emlp;
mod env_reference;
mod fixtures;
mod gp;
mod io;
mod nn;
mod ntk;
mod readme;
mod rl;
mod simplex;
mod vision;
