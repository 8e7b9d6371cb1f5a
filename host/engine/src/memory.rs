//! How much memory the engine lets one buffer take, so that an absurd size is refused with an
//! error before anything is allocated instead of aborting the process.

use crate::backend::DType;
use crate::error::{Error, Result};

/// This machine's memory in bytes (`MemTotal` of `/proc/meminfo`), or 64 GiB where it cannot
/// be read. A request for more than this can never succeed. Read once per process: every
/// filled tensor is checked against it, and reading the file each time cost 2.4 % of an HMC
/// leapfrog step on the digits MLP.
pub fn total() -> u128 {
    static TOTAL: std::sync::OnceLock<u128> = std::sync::OnceLock::new();
    *TOTAL.get_or_init(|| {
        std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kb| kb.parse::<u128>().ok())
            })
            .map_or(64 << 30, |kb| kb * 1024)
    })
}

/// `b` bytes for a reader: `512 B`, `12.0 MiB`, `74.5 PiB`.
pub fn format_bytes(b: u128) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
    let mut x = b as f64;
    let mut u = 0;
    while x >= 1024.0 && u + 1 < units.len() {
        x /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else if x >= 1024.0 {
        format!("{:.1e} B", b as f64)
    } else {
        format!("{x:.1} {}", units[u])
    }
}

/// The bytes `elements` of `dtype` take (saturating).
pub fn bytes(elements: u128, dtype: DType) -> u128 {
    elements.saturating_mul(dtype.size() as u128)
}

/// Refuses a buffer of `elements` of `dtype` (`what` names it) that could not fit in this
/// machine's memory.
///
/// # Errors
/// [`Error::TooLarge`] with the bytes it would need.
pub fn check(what: impl FnOnce() -> String, elements: u128, dtype: DType) -> Result<()> {
    let need = bytes(elements, dtype);
    if need > total() {
        return Err(Error::TooLarge {
            what: what(),
            bytes: need,
        });
    }
    Ok(())
}
