//! Fuzz target `checkpoints`: see `harness::checkpoints` (`host/fuzz/harness.rs`).

#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::checkpoints(data);
});
