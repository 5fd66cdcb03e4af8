//! The reliability figures of a suite run: what the tests tried, what faults
//! they injected, and how many tasks went into ghost and came back out.
//!
//! Tests add to the counters as they go (`figures::ops(n)`, ...); the suite
//! prints one `FIGURES test=<name> ...` line for each test that counted
//! something and a `FIGURES total ...` line at the end, which `scripts/test`
//! turns into the reliability table (adding the kernel splat count it takes
//! from the guest's kernel log).

use std::sync::atomic::{AtomicU64, Ordering};

/// Operations tried: ghostfs writes, ioctls, syscalls, commits, fuzz calls.
static OPS: AtomicU64 = AtomicU64::new(0);
/// Faults injected: agent kills, destroys under load, memory pressure,
/// garbage written into shared memory.
static FAULTS: AtomicU64 = AtomicU64::new(0);
/// Tasks that entered ghost.
static ENTERED: AtomicU64 = AtomicU64::new(0);
/// Tasks seen back out of ghost: in CFS, or exited after running to the end.
static RETURNED: AtomicU64 = AtomicU64::new(0);

/// Counts `n` operations tried.
pub fn ops(n: u64) {
    OPS.fetch_add(n, Ordering::Relaxed);
}

/// Counts `n` faults injected.
pub fn faults(n: u64) {
    FAULTS.fetch_add(n, Ordering::Relaxed);
}

/// Counts `n` tasks that entered ghost.
pub fn entered(n: u64) {
    ENTERED.fetch_add(n, Ordering::Relaxed);
}

/// Counts `n` tasks seen back out of ghost (in CFS, or finished and exited).
pub fn returned(n: u64) {
    RETURNED.fetch_add(n, Ordering::Relaxed);
}

/// A copy of the counters.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub ops: u64,
    pub faults: u64,
    pub entered: u64,
    pub returned: u64,
}

impl Snapshot {
    /// The counters now.
    pub fn now() -> Snapshot {
        Snapshot {
            ops: OPS.load(Ordering::Relaxed),
            faults: FAULTS.load(Ordering::Relaxed),
            entered: ENTERED.load(Ordering::Relaxed),
            returned: RETURNED.load(Ordering::Relaxed),
        }
    }

    /// What was counted since `before`.
    pub fn since(self, before: Snapshot) -> Snapshot {
        Snapshot {
            ops: self.ops - before.ops,
            faults: self.faults - before.faults,
            entered: self.entered - before.entered,
            returned: self.returned - before.returned,
        }
    }

    /// The counters as `key=value` pairs, as `scripts/test` parses them.
    pub fn line(&self) -> String {
        format!(
            "ops={} faults={} entered={} returned={}",
            self.ops, self.faults, self.entered, self.returned
        )
    }
}
