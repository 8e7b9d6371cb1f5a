//! Fuzz target `samples`: see `harness::samples` (`host/fuzz/harness.rs`).

#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::samples(data);
});
