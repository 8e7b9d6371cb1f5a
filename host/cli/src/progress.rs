//! Progress bars on stderr, drawn from the library's [`Tick`] reports.

use indicatif::{ProgressBar, ProgressStyle};
use keel::progress::Tick;

/// A progress bar over `len` things called `unit` (hidden unless `show`, and on MPI ranks other
/// than 0), labelled `prefix`,
/// with a message slot, the elapsed time and an estimate of the total.
pub fn counted_bar(show: bool, len: usize, prefix: String, unit: &str) -> ProgressBar {
    // Under MPI only rank 0 draws.
    let bar = if show && crate::ranks::prints() {
        ProgressBar::new(len as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{prefix}} [{{bar:30}}] {{pos}}/{{len}} {unit} {{msg}} ({{elapsed}} / ~{{duration}})"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_prefix(prefix);
    bar
}

/// The training commands' bar over `epochs` (hidden unless `show`), labelled `prefix`.
pub fn epoch_bar(show: bool, epochs: usize, prefix: String) -> ProgressBar {
    counted_bar(show, epochs, prefix, "epochs")
}

/// Moves `bar` to a library report: its position, length and values.
pub fn show(bar: &ProgressBar, t: &Tick) {
    bar.set_length(t.total as u64);
    bar.set_position(t.done as u64);
    if !t.values.is_empty() {
        bar.set_message(values(t.values));
    }
}

/// `loss 0.1234 val 1.23e-5`: four decimals where they read well, else three significant
/// digits in scientific notation.
fn values(values: &[(&str, f64)]) -> String {
    values
        .iter()
        .map(|(name, v)| {
            if *v == 0.0 || (1e-2..1e4).contains(&v.abs()) {
                format!("{name} {v:.4}")
            } else {
                format!("{name} {v:.3e}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn values_read_well_at_every_scale() {
        assert_eq!(
            super::values(&[("loss", 0.5), ("val", 1.5e-5), ("acc", f64::NAN)]),
            "loss 0.5000 val 1.500e-5 acc NaN"
        );
    }
}
