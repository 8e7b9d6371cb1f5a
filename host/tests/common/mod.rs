//! Helpers shared by the library's tests.

// Each test file is its own crate and uses a different subset of these.
#![allow(dead_code)]

mod chnn;
pub use chnn::chnn_config;
