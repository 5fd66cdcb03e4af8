// SPDX-License-Identifier: GPL-2.0

//! The clock: monotonic time in nanoseconds (`ktime_get()`).

use kernel::bindings;

/// The monotonic clock, in ns. Any context.
pub fn now() -> i64 {
    // SAFETY: reads the clock; any context.
    unsafe { bindings::ktime_get() }
}
