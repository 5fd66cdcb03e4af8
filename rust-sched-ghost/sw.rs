// SPDX-License-Identifier: GPL-2.0

//! Status-word regions: the memory layout and the allocator.
//!
//! A region is exactly 2 MiB, mapped read-only by agents
//! (`sw_regions/sw_<id>`): a 64-byte header, then [`SW_CAPACITY`] status
//! words of 32 bytes. The kernel writes status words; agents only read
//! them. Because no agent can write a region, the kernel may trust what it
//! reads back from one.
//!
//! The allocator is lock-free, so it can run in any context (the scheduling
//! core allocates for a task joining an enclave and frees on `SW_FREE` or
//! task death):
//!
//! - [`Region::alloc`] scans from a rotating start for a word whose `flags`
//!   is 0, claims it with a compare-and-swap to `F_ALLOCATED`, and
//!   decrements `available`;
//! - [`Region::free`] zeroes the word's fields, then release-stores
//!   `flags = 0` and increments `available`, so a scanner that sees the
//!   slot free also sees it zeroed.
//!
//! `available` is kept true at every moment a reader can observe outside a
//! single allocation or free in progress. The layouts match
//! `struct ghost_sw_region_header` and `struct ghost_status_word` of the
//! uapi header (checked against the generated bindings in the kernel and
//! against the C header on the host).
//!
//! This file is pure code (no `kernel` crate), also tested on the host.

use core::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};

/// The size of a region, in bytes.
pub const REGION_SIZE: usize = 2 << 20;
/// Bytes before the first status word (the header, cache-line aligned).
pub const SW_START: usize = 64;
/// Status words in a region.
pub const SW_CAPACITY: usize = (REGION_SIZE - SW_START) / core::mem::size_of::<StatusWord>();

/// `flags`: the word is live (a task or agent owns it).
pub const F_INUSE: u32 = 1 << 0;
/// `flags`: the task is dead or departed; the agent must free the word.
pub const F_CANFREE: u32 = 1 << 1;
/// `flags`: the slot is taken.
pub const F_ALLOCATED: u32 = 1 << 2;

/// `struct ghost_sw_region_header`.
#[repr(C, align(64))]
pub struct RegionHeader {
    /// Layout version (0).
    pub version: AtomicU32,
    /// The region id (`sw_<id>`).
    pub id: AtomicU32,
    /// The NUMA node the region was asked for.
    pub numa_node: AtomicU32,
    /// Offset of the first status word ([`SW_START`]).
    pub start: AtomicU32,
    /// Number of status words ([`SW_CAPACITY`]).
    pub capacity: AtomicU32,
    /// Status words not allocated.
    pub available: AtomicU32,
}

/// `struct ghost_status_word`.
#[repr(C, align(32))]
pub struct StatusWord {
    /// Bumped for every message about the task (or mirrors the agent
    /// barrier for an agent's word).
    pub barrier: AtomicU32,
    /// `F_*`, CPU and task flags.
    pub flags: AtomicU32,
    /// The task the word describes.
    pub gtid: AtomicU64,
    /// When the task last went on a CPU (ktime, ns).
    pub switch_time: AtomicI64,
    /// The task's total runtime (ns).
    pub runtime: AtomicU64,
}

/// A whole region, as it lies in memory.
#[repr(C)]
pub struct Region {
    /// The header.
    pub header: RegionHeader,
    /// The status words.
    pub words: [StatusWord; SW_CAPACITY],
}

const _: () = assert!(core::mem::size_of::<RegionHeader>() == SW_START);
const _: () = assert!(core::mem::size_of::<StatusWord>() == 32);
const _: () = assert!(core::mem::size_of::<Region>() == REGION_SIZE);

/// A status word's place: the region id and its index there
/// (`struct ghost_sw_info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwInfo {
    /// The region id.
    pub id: u32,
    /// The index in the region.
    pub index: u32,
}

impl Region {
    /// Fills in the header of a zeroed region.
    pub fn init(&self, id: u32, numa_node: u32) {
        let h = &self.header;
        h.version.store(0, Ordering::Relaxed);
        h.id.store(id, Ordering::Relaxed);
        h.numa_node.store(numa_node, Ordering::Relaxed);
        h.start.store(SW_START as u32, Ordering::Relaxed);
        h.capacity.store(SW_CAPACITY as u32, Ordering::Relaxed);
        h.available.store(SW_CAPACITY as u32, Ordering::Release);
    }

    /// Allocates a status word, scanning from `*hint` (which it advances).
    /// The word comes back zeroed with `flags == F_ALLOCATED`; the caller
    /// fills it and sets `F_INUSE` last, with release order. `None` when
    /// the region is full.
    pub fn alloc(&self, hint: &AtomicU32) -> Option<u32> {
        // Reserve a slot first, so `available` never goes below zero and a
        // full region fails without a scan.
        let avail = &self.header.available;
        avail
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |a| a.checked_sub(1))
            .ok()?;
        let n = self.words.len();
        let start = (hint.load(Ordering::Relaxed) as usize) % n;
        // A reservation guarantees a free slot exists, but a concurrent free
        // may move it behind the scan: keep going round until one is taken.
        loop {
            for i in (start..n).chain(0..start) {
                let Some(w) = self.words.get(i) else {
                    continue;
                };
                if w.flags
                    .compare_exchange(0, F_ALLOCATED, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    hint.store(((i + 1) % n) as u32, Ordering::Relaxed);
                    return Some(i as u32);
                }
            }
        }
    }

    /// The status word at `index`, if the index is in range.
    pub fn word(&self, index: u32) -> Option<&StatusWord> {
        self.words.get(index as usize)
    }

    /// Whether an allocated word has every flag of `flags` and gtid
    /// `gtid`. Reads every word: for rare paths only.
    pub fn has_word(&self, flags: u32, gtid: u64) -> bool {
        self.words.iter().any(|w| {
            let f = w.flags.load(Ordering::Acquire);
            f & F_ALLOCATED != 0 && f & flags == flags && w.gtid.load(Ordering::Relaxed) == gtid
        })
    }

    /// Frees the allocated word at `index`. Returns `false` (and changes
    /// nothing) if the index is out of range or the word is not allocated.
    /// The caller owns the word (no one else frees it concurrently).
    pub fn free(&self, index: u32) -> bool {
        let Some(w) = self.word(index) else {
            return false;
        };
        if w.flags.load(Ordering::Acquire) & F_ALLOCATED == 0 {
            return false;
        }
        w.barrier.store(0, Ordering::Relaxed);
        w.gtid.store(0, Ordering::Relaxed);
        w.switch_time.store(0, Ordering::Relaxed);
        w.runtime.store(0, Ordering::Relaxed);
        w.flags.store(0, Ordering::Release);
        self.header.available.fetch_add(1, Ordering::AcqRel);
        true
    }

    /// Status words not allocated.
    pub fn available(&self) -> u32 {
        self.header.available.load(Ordering::Acquire)
    }
}
