//! Properties of the bundled policies under a workload (placeholder).

use crate::harness::Test;

/// The tests of this file.
pub(crate) const TESTS: &[Test] = &[];
