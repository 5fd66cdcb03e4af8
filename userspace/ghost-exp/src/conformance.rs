//! (placeholder, filled in by the conformance work)

use crate::suite::Test;

/// The conformance tests, in the order they run.
pub const TESTS: &[Test] = &[];
