// SPDX-License-Identifier: GPL-2.0

//! An enclave's `cpu_data`: one page per CPU id, each holding that CPU's
//! transaction (`struct ghost_txn`), mapped read-write by agents.
//!
//! Agents write these pages whenever they like, so the kernel treats every
//! byte it reads from them as untrusted. Writes go through atomics: an agent
//! may be reading the same words.

use crate::sys::mm::{UserBuf, Vma, NUMA_NO_NODE, PAGE_SIZE};
use core::mem::offset_of;
use core::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use kernel::prelude::*;
use kernel::uapi;

const _: () = assert!(core::mem::size_of::<uapi::ghost_cpu_data>() == PAGE_SIZE);
const _: () = assert!(core::mem::size_of::<uapi::ghost_txn>() == 64);

/// The values of `ghost_txn.state` (`enum ghost_txn_state`, whose
/// constants bindgen prefixes with the enum's name).
pub mod state {
    use kernel::uapi;

    /// `GHOST_TXN_COMPLETE`.
    pub const COMPLETE: i32 = uapi::ghost_txn_state_GHOST_TXN_COMPLETE;
    /// `GHOST_TXN_ABORTED`.
    pub const ABORTED: i32 = uapi::ghost_txn_state_GHOST_TXN_ABORTED;
    /// `GHOST_TXN_TARGET_ONCPU`.
    pub const TARGET_ONCPU: i32 = uapi::ghost_txn_state_GHOST_TXN_TARGET_ONCPU;
    /// `GHOST_TXN_TARGET_STALE`.
    pub const TARGET_STALE: i32 = uapi::ghost_txn_state_GHOST_TXN_TARGET_STALE;
    /// `GHOST_TXN_TARGET_NOT_FOUND`.
    pub const TARGET_NOT_FOUND: i32 = uapi::ghost_txn_state_GHOST_TXN_TARGET_NOT_FOUND;
    /// `GHOST_TXN_TARGET_NOT_RUNNABLE`.
    pub const TARGET_NOT_RUNNABLE: i32 = uapi::ghost_txn_state_GHOST_TXN_TARGET_NOT_RUNNABLE;
    /// `GHOST_TXN_AGENT_STALE`.
    pub const AGENT_STALE: i32 = uapi::ghost_txn_state_GHOST_TXN_AGENT_STALE;
    /// `GHOST_TXN_CPU_OFFLINE`.
    pub const CPU_OFFLINE: i32 = uapi::ghost_txn_state_GHOST_TXN_CPU_OFFLINE;
    /// `GHOST_TXN_CPU_UNAVAIL`.
    pub const CPU_UNAVAIL: i32 = uapi::ghost_txn_state_GHOST_TXN_CPU_UNAVAIL;
    /// `GHOST_TXN_INVALID_FLAGS`.
    pub const INVALID_FLAGS: i32 = uapi::ghost_txn_state_GHOST_TXN_INVALID_FLAGS;
    /// `GHOST_TXN_INVALID_TARGET`.
    pub const INVALID_TARGET: i32 = uapi::ghost_txn_state_GHOST_TXN_INVALID_TARGET;
    /// `GHOST_TXN_NOT_PERMITTED`.
    pub const NOT_PERMITTED: i32 = uapi::ghost_txn_state_GHOST_TXN_NOT_PERMITTED;
    /// `GHOST_TXN_INVALID_CPU`.
    pub const INVALID_CPU: i32 = uapi::ghost_txn_state_GHOST_TXN_INVALID_CPU;
    /// `GHOST_TXN_NO_AGENT`.
    pub const NO_AGENT: i32 = uapi::ghost_txn_state_GHOST_TXN_NO_AGENT;
    /// `GHOST_TXN_UNSUPPORTED_VERSION`.
    pub const UNSUPPORTED_VERSION: i32 = uapi::ghost_txn_state_GHOST_TXN_UNSUPPORTED_VERSION;
    /// `GHOST_TXN_POISONED`.
    pub const POISONED: i32 = uapi::ghost_txn_state_GHOST_TXN_POISONED;
    /// `GHOST_TXN_READY`.
    pub const READY: i32 = uapi::ghost_txn_state_GHOST_TXN_READY;
}

/// The transaction pages of one enclave.
///
/// # Invariants
///
/// `buf` holds exactly `ncpus` pages.
pub struct CpuData {
    buf: UserBuf,
    ncpus: usize,
}

impl CpuData {
    /// Zeroed pages for CPUs `0..ncpus`. May sleep.
    pub fn new(ncpus: usize) -> Result<Self> {
        let len = ncpus.checked_mul(PAGE_SIZE).ok_or(ENOMEM)?;
        let buf = UserBuf::new(len, NUMA_NO_NODE)?;
        // INVARIANT: `len` is a multiple of the page size, so `UserBuf`
        // allocated exactly `ncpus` pages.
        Ok(CpuData { buf, ncpus })
    }

    /// The size of the `cpu_data` file.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// The buffer offset of byte `off` of `cpu`'s transaction, if `cpu`
    /// exists and `off` is within a transaction.
    fn txn_field(&self, cpu: usize, off: usize) -> Option<usize> {
        if cpu >= self.ncpus || off >= core::mem::size_of::<uapi::ghost_txn>() {
            return None;
        }
        cpu.checked_mul(PAGE_SIZE)?.checked_add(off)
    }

    /// The `s32` at byte `off` of `cpu`'s transaction (shared with
    /// userspace, hence atomic).
    fn txn_i32(&self, cpu: usize, off: usize) -> Option<&AtomicI32> {
        self.buf.at(self.txn_field(cpu, off)?)
    }

    /// Resets `cpu`'s transaction, as when `cpu` joins the enclave: all
    /// zeroes, then `cpu`, no sync-group owner, and state `COMPLETE` last
    /// (release), so an agent that sees the state sees the rest.
    pub fn reset_txn(&self, cpu: usize) {
        let Ok(cpu_val) = i32::try_from(cpu) else {
            return;
        };
        for off in (0..core::mem::size_of::<uapi::ghost_txn>()).step_by(8) {
            if let Some(w) = self.txn_u64(cpu, off) {
                w.store(0, Ordering::Relaxed);
            }
        }
        if let Some(f) = self.txn_i32(cpu, offset_of!(uapi::ghost_txn, cpu)) {
            f.store(cpu_val, Ordering::Relaxed);
        }
        if let Some(f) = self.txn_i32(cpu, offset_of!(uapi::ghost_txn, u)) {
            f.store(uapi::GHOST_NO_SYNC_GROUP_OWNER, Ordering::Relaxed);
        }
        if let Some(f) = self.txn_i32(cpu, offset_of!(uapi::ghost_txn, state)) {
            f.store(state::COMPLETE, Ordering::Release);
        }
    }

    /// The `u64` at byte `off` of `cpu`'s transaction (atomic, as above).
    fn txn_u64(&self, cpu: usize, off: usize) -> Option<&AtomicU64> {
        self.buf.at(self.txn_field(cpu, off)?)
    }

    /// `cpu`'s transaction, if `cpu` exists.
    pub fn txn(&self, cpu: i32) -> Option<Txn<'_>> {
        let cpu = usize::try_from(cpu).ok()?;
        (cpu < self.ncpus).then_some(Txn { data: self, cpu })
    }

    /// Maps the whole file: `MAP_SHARED`, offset 0, exactly [`Self::len`]
    /// bytes, never executable (`EINVAL` otherwise).
    pub fn mmap(&self, vma: &mut Vma) -> Result {
        if !vma.is_shared() || vma.is_exec() || vma.pgoff() != 0 {
            return Err(EINVAL);
        }
        vma.seal();
        vma.map(&self.buf)
    }
}

/// One CPU's transaction. Every read is of untrusted memory: callers
/// validate what they get.
pub struct Txn<'a> {
    data: &'a CpuData,
    cpu: usize,
}

/// A transaction's request, copied out of shared memory once.
#[derive(Clone, Copy)]
pub struct TxnRequest {
    /// `version`.
    pub version: i32,
    /// `cpu` (the kernel set it when the CPU joined; the agent may have
    /// scribbled on it since).
    pub cpu: i32,
    /// `gtid`.
    pub gtid: i64,
    /// `agent_barrier`.
    pub agent_barrier: u32,
    /// `task_barrier`.
    pub task_barrier: u32,
    /// `run_flags`.
    pub run_flags: u32,
    /// `commit_flags`.
    pub commit_flags: u32,
}

impl Txn<'_> {
    fn i32_at(&self, off: usize) -> Option<&AtomicI32> {
        self.data.txn_i32(self.cpu, off)
    }

    /// The state.
    pub fn state(&self) -> i32 {
        self.i32_at(offset_of!(uapi::ghost_txn, state))
            .map_or(state::COMPLETE, |s| s.load(Ordering::Acquire))
    }

    /// Compare-and-swaps the state; `true` if it was `from`.
    pub fn cas_state(&self, from: i32, to: i32) -> bool {
        self.i32_at(offset_of!(uapi::ghost_txn, state))
            .is_some_and(|s| {
                s.compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            })
    }

    /// Reads the request (after the claim: the agent must not change it
    /// any more, but if it does, the kernel only sees another request).
    pub fn request(&self) -> TxnRequest {
        let i = |off| self.i32_at(off).map_or(0, |a| a.load(Ordering::Relaxed));
        let flags = i(offset_of!(uapi::ghost_txn, run_flags)) as u32;
        TxnRequest {
            version: i(offset_of!(uapi::ghost_txn, version)),
            cpu: i(offset_of!(uapi::ghost_txn, cpu)),
            gtid: self
                .data
                .txn_u64(self.cpu, offset_of!(uapi::ghost_txn, gtid))
                .map_or(0, |a| a.load(Ordering::Relaxed) as i64),
            agent_barrier: i(offset_of!(uapi::ghost_txn, agent_barrier)) as u32,
            task_barrier: i(offset_of!(uapi::ghost_txn, task_barrier)) as u32,
            // `run_flags` (u16) and `commit_flags` (u8) share a word.
            run_flags: flags & 0xffff,
            commit_flags: (flags >> 16) & 0xff,
        }
    }

    /// Publishes the outcome: `cpu_seqnum` and `commit_time`, then `state`
    /// with release order.
    pub fn complete(&self, state: i32, cpu_seqnum: u64, commit_time: i64) {
        self.set_result(cpu_seqnum, commit_time);
        self.set_state(state);
    }

    /// Stores `state` with release order (after [`Self::set_result`]).
    pub fn set_state(&self, state: i32) {
        if let Some(s) = self.i32_at(offset_of!(uapi::ghost_txn, state)) {
            s.store(state, Ordering::Release);
        }
    }

    /// Stores `u.sync_group_owner`.
    pub fn set_sync_group_owner(&self, owner: i32) {
        if let Some(f) = self.i32_at(offset_of!(uapi::ghost_txn, u)) {
            f.store(owner, Ordering::Relaxed);
        }
    }

    /// Stores `cpu_seqnum` and `commit_time`, not yet published.
    pub fn set_result(&self, cpu_seqnum: u64, commit_time: i64) {
        if let Some(f) = self
            .data
            .txn_u64(self.cpu, offset_of!(uapi::ghost_txn, cpu_seqnum))
        {
            f.store(cpu_seqnum, Ordering::Relaxed);
        }
        if let Some(f) = self
            .data
            .txn_u64(self.cpu, offset_of!(uapi::ghost_txn, commit_time))
        {
            f.store(commit_time as u64, Ordering::Relaxed);
        }
    }
}

const _: () = assert!(offset_of!(uapi::ghost_txn, run_flags) == 20);
const _: () = assert!(offset_of!(uapi::ghost_txn, commit_flags) == 22);
const _: () = assert!(offset_of!(uapi::ghost_txn, gtid) == 24);
