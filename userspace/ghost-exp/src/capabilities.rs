//! (placeholder, filled in by the enclave/capabilities conformance work)

use crate::suite::Test;

/// The capabilities tests, in the order they run.
pub const TESTS: &[Test] = &[];
