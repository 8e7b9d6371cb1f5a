//! Fuzz target `firmware_log`: see `harness::firmware_log` (`host/fuzz/harness.rs`).

#![no_main]

#[path = "../harness.rs"]
mod harness;

/// The firmware assets the log is compared against.
const ASSETS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../firmware/assets");

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::firmware_log(data, std::path::Path::new(ASSETS));
});
