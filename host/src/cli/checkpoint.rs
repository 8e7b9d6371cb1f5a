//! The checkpoint flags the training commands share.

use std::path::PathBuf;

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
        match &self.checkpoint {
            Some(p) => keel::output::check_writable("--checkpoint", p)?,
            None if self.resume || self.stop_after.is_some() => {
                let flag = if self.resume {
                    "--resume"
                } else {
                    "--stop-after"
                };
                return Err(Error::invalid(flag, "set", "needs --checkpoint FILE"));
            }
            None => {}
        }
        Ok(Options {
            path: self.checkpoint.clone(),
            every: self.checkpoint_every,
            resume: self.resume,
            stop_after: self.stop_after,
        })
    }
}
