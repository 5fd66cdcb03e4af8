// SPDX-License-Identifier: GPL-2.0

//! Global task ids (gtids): how ghOSt names a task.
//!
//! A gtid is a positive `i64`: the task's pid in the initial pid namespace
//! in the high bits, and a sequence number from a global counter in the low
//! [`Layout::seqnum_bits`] bits. The sequence number is never 0, so a gtid is
//! never a plain pid, and a recycled pid gets a different gtid than the task
//! that had it before. Gtids are assigned at fork and never change.
//!
//! The split comes from the largest pid the kernel can ever use
//! (`pid_max_max`, shown in `/proc/sys/kernel/pid_max_max`): the pid takes
//! `32 - clz(pid_max_max - 1)` bits (22 for the usual 4194304) and the
//! sequence number the rest of the 63 (41). Userspace derives the same split
//! from the same file.
//!
//! This file is pure code (no `kernel` crate), also tested on the host.

use core::sync::atomic::{AtomicU64, Ordering};

/// How a gtid splits into pid and sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    seqnum_bits: u32,
}

/// What a number written to a `tasks` file names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskRef {
    /// `0`: the writer itself.
    Current,
    /// A pid in the writer's pid namespace.
    Pid(i32),
    /// A gtid; its pid (in the initial namespace) is `pid`.
    Gtid {
        /// The whole gtid.
        gtid: i64,
        /// The pid part.
        pid: i32,
    },
}

impl Layout {
    /// The usual layout: 22-bit pids (`pid_max_max` 4194304), 41-bit
    /// sequence numbers.
    pub const FALLBACK: Layout = Layout { seqnum_bits: 41 };

    /// The layout for a kernel whose pids stay below `pid_max_max`
    /// (`PID_MAX_LIMIT`). `None` if that is not a usable bound.
    pub const fn new(pid_max_max: u32) -> Option<Self> {
        if pid_max_max < 2 {
            return None;
        }
        let pid_bits = 32 - (pid_max_max - 1).leading_zeros();
        Some(Layout {
            seqnum_bits: 63 - pid_bits,
        })
    }

    /// Bits of the sequence number (41 for 22-bit pids).
    pub const fn seqnum_bits(&self) -> u32 {
        self.seqnum_bits
    }

    fn seqnum_mask(&self) -> u64 {
        (1u64 << self.seqnum_bits) - 1
    }

    /// The gtid of `pid` with sequence number `seq` (masked to its bits;
    /// the caller makes sure it is not 0 once masked).
    pub fn encode(&self, pid: i32, seq: u64) -> i64 {
        let pid = u64::from(pid.unsigned_abs());
        let gtid = (pid << self.seqnum_bits) | (seq & self.seqnum_mask());
        // The pid has at most `63 - seqnum_bits` bits: bit 63 stays clear.
        (gtid & (u64::MAX >> 1)) as i64
    }

    /// The pid (in the initial namespace) of a gtid.
    pub fn pid_of(&self, gtid: i64) -> i32 {
        (gtid.unsigned_abs() >> self.seqnum_bits) as i32
    }

    /// Classifies a number written to a `tasks` file: 0 is the writer, a
    /// value below `2^seqnum_bits` (every pid is) a pid, anything larger a
    /// gtid. `None` for values that are neither (negative as an `i64`, or
    /// a gtid whose sequence number is 0).
    pub fn task_ref(&self, v: u64) -> Option<TaskRef> {
        if v == 0 {
            return Some(TaskRef::Current);
        }
        if v >> self.seqnum_bits == 0 {
            return i32::try_from(v).ok().map(TaskRef::Pid);
        }
        let gtid = i64::try_from(v).ok()?;
        if v & self.seqnum_mask() == 0 {
            return None;
        }
        Some(TaskRef::Gtid {
            gtid,
            pid: self.pid_of(gtid),
        })
    }
}

/// The source of sequence numbers: one global counter.
pub struct GtidAllocator {
    next: AtomicU64,
}

impl GtidAllocator {
    /// A counter starting at 1.
    pub const fn new() -> Self {
        GtidAllocator {
            next: AtomicU64::new(1),
        }
    }

    /// A fresh gtid for `pid`. Lock-free; the sequence number wraps within
    /// its bits and skips 0.
    pub fn alloc(&self, layout: &Layout, pid: i32) -> i64 {
        loop {
            let seq = self.next.fetch_add(1, Ordering::Relaxed) & layout.seqnum_mask();
            if seq != 0 {
                return layout.encode(pid, seq);
            }
        }
    }
}

impl Default for GtidAllocator {
    fn default() -> Self {
        Self::new()
    }
}
