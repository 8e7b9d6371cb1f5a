//! Helpers shared by the library's tests.

// Not every test binary uses all of these.
#![allow(dead_code)]

mod chnn;
pub use chnn::chnn_config;
