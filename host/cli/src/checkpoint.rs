//! The checkpoint flags the training commands share.

use std::path::{Path, PathBuf};

use clap::Args;
use keel::checkpoint::Options;
use keel::error::{Error, Result};

#[derive(Args)]
pub struct CheckpointArgs {
    /// Write a training checkpoint here every --checkpoint-every epochs (atomically).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Epochs between checkpoints.
    #[arg(long, default_value_t = 10, value_parser = super::values::at_least_one)]
    checkpoint_every: usize,
    /// Continue from --checkpoint if the file exists (same configuration required); the
    /// resumed run ends with the same numbers as an uninterrupted one.
    #[arg(long)]
    resume: bool,
    /// Stop after this many epochs (checkpointing first); continue later with --resume.
    #[arg(long, value_parser = super::values::at_least_one)]
    stop_after: Option<usize>,
}

impl CheckpointArgs {
    /// The options, after checking the file can be written.
    pub fn options(&self) -> Result<Options> {
        check(self.checkpoint.as_deref(), self.resume, self.stop_after)?;
        Ok(Options {
            path: self.checkpoint.clone(),
            every: self.checkpoint_every,
            resume: self.resume,
            stop_after: self.stop_after,
        })
    }
}

/// `--resume` and `--stop-after` need `--checkpoint`, and the checkpoint must be writable.
pub fn check(checkpoint: Option<&Path>, resume: bool, stop_after: Option<usize>) -> Result<()> {
    match checkpoint {
        Some(p) => keel::output::check_writable("--checkpoint", p),
        None if resume || stop_after.is_some() => {
            let flag = if resume { "--resume" } else { "--stop-after" };
            Err(Error::invalid(flag, "set", "needs --checkpoint FILE"))
        }
        None => Ok(()),
    }
}
