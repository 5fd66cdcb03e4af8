//! (placeholder, filled in by the fuzz work)

use crate::suite::Test;

/// The fuzz tests, in the order they run.
pub const TESTS: &[Test] = &[];
