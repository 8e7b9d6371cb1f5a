//! Fuzz target `init`: see `harness::init` (`host/fuzz/harness.rs`).

#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::init(data);
});
