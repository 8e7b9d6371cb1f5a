//! The command's tests, one module per file, built as one test binary: run one file's tests
//! with `cargo test -p keel-cli --test all <file>::` (e.g. `gp_cli::`). The MPI tests are their
//! own binary (`--features mpi --test mpi`).

mod common;

mod bayes_cnn_cli;
mod bayes_hmc;
mod bayes_mlp;
mod bayes_shift;
mod chnn_train;
mod cli;
mod cnn_cli;
mod distill_cli;
mod emlp_cli;
mod exit_codes;
mod fit;
mod gan_cli;
mod gp_active_cli;
mod gp_cli;
mod ntk_cli;
mod rl;
mod simplex_cli;
