// SPDX-License-Identifier: GPL-2.0

//! The clock: monotonic time in nanoseconds (`ktime_get_mono_fast_ns()`).

use kernel::bindings;

/// The monotonic clock (`CLOCK_MONOTONIC`), in ns. Any context.
///
/// `ktime_get_mono_fast_ns()` rather than `ktime_get()`: the scheduler's
/// hot paths read it (a commit's `commit_time`, a task's `switch_time`,
/// how long it has waited), and `ktime_get()`'s seqcount retry loop is,
/// on a lockdep kernel, a lockdep acquire and release per read. The fast
/// reader is the same clock; it may differ from `ktime_get()` by a few ns
/// only across a change of the clock's rate (NTP), which no user of these
/// timestamps can tell from jitter.
pub fn now() -> i64 {
    // SAFETY: reads the clock; any context (NMI-safe).
    let ns = unsafe { bindings::ktime_get_mono_fast_ns() };
    i64::try_from(ns).unwrap_or(i64::MAX)
}
