//! Which thread a gtid names.
//!
//! A gtid is `tid << seqnum_bits | seqnum`: the thread id in the initial pid
//! namespace in the high bits, a sequence number in the low ones. The split
//! comes from `/proc/sys/kernel/pid_max_max` (ghOSt ABI 91); the kernel's
//! own code for it (`rust-sched-ghost/gtid.rs`) is what [`Layout`] is.
//!
//! The thread id of a gtid is what system calls about the task take (e.g.
//! `sched_getaffinity`), as long as the caller lives in the initial pid
//! namespace: [`Layout::names_own_threads`] checks that.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::error::{Error, Result};
use crate::sys;

/// A map keyed by gtid, hashed with [`GtidHasher`]: the agent looks tasks
/// up several times per message, and the standard hash (SipHash, made to
/// resist keys chosen to collide) cost more than the rest of the lookup.
/// Gtids come from the kernel, not from an adversary.
pub type GtidMap<V> = HashMap<i64, V, BuildHasherDefault<GtidHasher>>;

/// A cheap hash of integer keys (a multiply and a shift per key).
#[derive(Debug, Default, Clone, Copy)]
pub struct GtidHasher(u64);

impl GtidHasher {
    fn add(&mut self, x: u64) {
        let h = (self.0 ^ x).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        // The high bits (the best mixed) into the low ones, which pick the
        // bucket.
        self.0 = h ^ (h >> 29);
    }
}

impl Hasher for GtidHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.add(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_i64(&mut self, n: i64) {
        self.add(n as u64);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
}

/// The kernel crate's gtid layout (pure code, shared with the kernel).
#[path = "../../../rust-sched-ghost/gtid.rs"]
#[allow(dead_code)]
mod kernel;

pub use kernel::Layout;

/// Where the kernel shows the pid bound gtids are laid out for.
pub const PID_MAX_MAX: &str = "/proc/sys/kernel/pid_max_max";

impl Layout {
    /// The layout the running kernel uses ([`PID_MAX_MAX`]).
    pub fn read() -> Result<Self> {
        let text = std::fs::read_to_string(PID_MAX_MAX)
            .map_err(|e| sys::io_error(format!("read {PID_MAX_MAX}"), &e))?;
        Self::parse(&text).ok_or_else(|| {
            Error::msg(
                format!("read {PID_MAX_MAX}"),
                format!("{:?} is not a pid bound", text.trim()),
            )
        })
    }

    /// The layout for the contents of [`PID_MAX_MAX`] (a decimal number).
    pub fn parse(text: &str) -> Option<Self> {
        Self::new(text.trim().parse().ok()?)
    }

    /// The thread id (in the initial pid namespace) of task `gtid`; `None`
    /// for the special gtids (zero and negative).
    pub fn tid(&self, gtid: i64) -> Option<i32> {
        (gtid > 0).then(|| self.pid_of(gtid))
    }

    /// Whether gtids name this process's threads by the ids it sees: the
    /// calling thread's gtid (`/proc/thread-self/ghost/gtid`) holds its own
    /// thread id. False in a pid namespace other than the initial one, or
    /// on a kernel without gtids.
    pub fn names_own_threads(&self) -> bool {
        std::fs::read_to_string("/proc/thread-self/ghost/gtid")
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
            .and_then(|g| self.tid(g))
            == Some(sys::gettid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tids_of_gtids() {
        let l = Layout::parse("4194304\n").unwrap();
        assert_eq!(l.seqnum_bits(), 41);
        assert_eq!(l.tid((1234 << 41) | 7), Some(1234));
        assert_eq!(l.tid(ghost_abi::GHOST_IDLE_GTID), None);
        assert_eq!(l.tid(0), None);
        let l = Layout::parse("32768").unwrap();
        assert_eq!(l.tid((99 << 48) | 1), Some(99));
        for bad in ["", "x", "1", "-5", "4194304 1"] {
            assert!(Layout::parse(bad).is_none(), "{bad:?} parsed");
        }
    }
}
