//! Sizes refused before anything is allocated or run: a setting whose memory could never fit
//! in this machine, or whose work would take absurdly long, is an input error naming the
//! setting and what it would need — not an abort from the allocator halfway through, or a run
//! that never ends.

use std::fmt::Display;

use keel_engine::memory::{format_bytes, total};

use crate::error::{Error, Result};

/// The most elementary steps (integrator steps, environment steps, rows through a network) a
/// run may ask for: 10¹³, days of work on any machine Keel runs on.
pub const MAX_WORK: u128 = 10_000_000_000_000;

/// Refuses `setting = value` when `what` (its largest allocation, or its sum) needs more than
/// this machine's memory.
///
/// # Errors
/// [`Error::InvalidInput`] saying how much it would need and how much there is.
pub fn memory(setting: &str, value: impl Display, what: &str, bytes: u128) -> Result<()> {
    let have = total();
    if bytes > have {
        return Err(Error::invalid(
            setting,
            value,
            format!(
                "{what} would need {} of memory; this machine has {}",
                format_bytes(bytes),
                format_bytes(have)
            ),
        ));
    }
    Ok(())
}

/// Refuses `setting = value` when it asks for more than [`MAX_WORK`] `units` of work.
///
/// # Errors
/// [`Error::InvalidInput`] naming the amount.
pub fn work(setting: &str, value: impl Display, units: u128, unit: &str) -> Result<()> {
    if units > MAX_WORK {
        return Err(Error::invalid(
            setting,
            value,
            format!("would take {units:.3e} {unit}; at most {MAX_WORK:.0e} are allowed"),
        ));
    }
    Ok(())
}

/// Refuses a count that must be at least 1.
///
/// # Errors
/// [`Error::InvalidInput`] naming `setting`.
pub fn positive(setting: &str, value: usize) -> Result<()> {
    if value == 0 {
        return Err(Error::invalid(setting, 0, "must be at least 1"));
    }
    Ok(())
}

/// Parameters (weights and biases) of dense layers of `widths` (input first).
pub fn dense_parameters(widths: &[usize]) -> u128 {
    widths
        .windows(2)
        .map(|w| (w[0] as u128 + 1).saturating_mul(w[1] as u128))
        .fold(0u128, u128::saturating_add)
}

/// Bytes to train a network of `parameters` with Adam and `activations` values per row for
/// `rows` rows at a time: values, gradients and two moments of every parameter, and the
/// forward values and their gradients of every row, in `dtype_bytes`.
pub fn training_bytes(parameters: u128, activations: u128, rows: u128, dtype_bytes: u128) -> u128 {
    parameters
        .saturating_mul(4)
        .saturating_add(activations.saturating_mul(rows).saturating_mul(3))
        .saturating_mul(dtype_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_sizes_are_refused_with_what_they_need() {
        let e = memory("hidden", 100_000_000, "the network", 1 << 80).unwrap_err();
        let text = e.to_string();
        assert!(e.is_input_error());
        assert!(
            text.contains("hidden") && text.contains("1.0 YiB"),
            "{text}"
        );
        memory("hidden", 64, "the network", 1 << 20).unwrap();
        assert!(work("substeps", 1, MAX_WORK + 1, "integrator steps").is_err());
        work("substeps", 1, MAX_WORK, "integrator steps").unwrap();
        assert_eq!(dense_parameters(&[64, 128, 10]), 65 * 128 + 129 * 10);
    }
}
