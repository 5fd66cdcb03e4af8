// SPDX-License-Identifier: GPL-2.0

//! An enclave's `cpu_data`: one page per CPU id, each holding that CPU's
//! transaction (`struct ghost_txn`), mapped read-write by agents.
//!
//! Agents write these pages whenever they like, so the kernel treats every
//! byte it reads from them as untrusted. Writes go through atomics: an agent
//! may be reading the same words.

use crate::mm::{UserBuf, Vma, NUMA_NO_NODE, PAGE_SIZE};
use core::mem::offset_of;
use core::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use kernel::prelude::*;
use kernel::uapi;

const _: () = assert!(core::mem::size_of::<uapi::ghost_cpu_data>() == PAGE_SIZE);
const _: () = assert!(core::mem::size_of::<uapi::ghost_txn>() == 64);

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

    /// The address of byte `off` of `cpu`'s transaction, if `cpu` exists.
    fn txn_field(&self, cpu: usize, off: usize) -> Option<*mut u8> {
        if cpu >= self.ncpus || off >= core::mem::size_of::<uapi::ghost_txn>() {
            return None;
        }
        // In bounds: `cpu * PAGE_SIZE + off` is below `ncpus` pages (type
        // invariant), and cannot overflow since the buffer exists.
        Some(self.buf.as_ptr().wrapping_add(cpu * PAGE_SIZE + off))
    }

    fn txn_i32(&self, cpu: usize, off: usize) -> Option<&AtomicI32> {
        let p = self.txn_field(cpu, off)?;
        // SAFETY: `p` is in the buffer, which lives as long as `&self`, and
        // 4-aligned (every `s32` of `ghost_txn` is, in a page-aligned
        // buffer). The memory is shared with userspace, hence atomic access.
        Some(unsafe { AtomicI32::from_ptr(p.cast::<i32>()) })
    }

    /// Resets `cpu`'s transaction, as when `cpu` joins the enclave: all
    /// zeroes, then `cpu`, no sync-group owner, and state `COMPLETE` last
    /// (release), so an agent that sees the state sees the rest.
    pub fn reset_txn(&self, cpu: usize) {
        let Ok(cpu_val) = i32::try_from(cpu) else {
            return;
        };
        for off in (0..core::mem::size_of::<uapi::ghost_txn>()).step_by(8) {
            if let Some(p) = self.txn_field(cpu, off) {
                // SAFETY: as in `txn_i32`, 8-aligned.
                unsafe { AtomicU64::from_ptr(p.cast::<u64>()) }.store(0, Ordering::Relaxed);
            }
        }
        if let Some(f) = self.txn_i32(cpu, offset_of!(uapi::ghost_txn, cpu)) {
            f.store(cpu_val, Ordering::Relaxed);
        }
        if let Some(f) = self.txn_i32(cpu, offset_of!(uapi::ghost_txn, u)) {
            f.store(uapi::GHOST_NO_SYNC_GROUP_OWNER, Ordering::Relaxed);
        }
        if let Some(f) = self.txn_i32(cpu, offset_of!(uapi::ghost_txn, state)) {
            f.store(uapi::GHOST_TXN_COMPLETE, Ordering::Release);
        }
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
