// SPDX-License-Identifier: GPL-2.0

//! Queues: the rings through which the kernel sends messages to agents.
//!
//! `GHOST_IOC_CREATE_QUEUE` makes one and returns a file descriptor for it:
//! an anonymous inode `[ghost_queue]` (`O_RDWR | O_CLOEXEC`) whose only
//! operations are `mmap` and `close`. The mapping is the ring of
//! [`crate::ring`]: a `struct ghost_queue_header` (version 0, `start` 64,
//! `nelems`), then `head`, `tail`, `overflow` and the slots.
//!
//! A queue belongs to the enclave whose `ctl` created it: the enclave keeps
//! a reference until it is destroyed, so tasks and agents, which the
//! scheduler reaches with runqueue locks held, may point to their queue
//! without counting references (dropping the last one there could sleep).
//! The memory goes with the last of the enclave, the descriptor and the
//! mappings.

use crate::ring::{map_bytes, InPlace, Producer, RingHeader, RingMem, RING_HEADER, RING_START};
use crate::sys::anonfd::{AnonFile, AnonFops};
use crate::sys::mm::{UserBuf, Vma};
use crate::sys::rawlock::RawSpinLock;
use core::ffi::c_int;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use kernel::prelude::*;
use kernel::str::CStr;
use kernel::sync::Arc;

/// One queue.
///
/// # Invariants
///
/// `buf` holds at least [`map_bytes`]`(nelems)` bytes.
pub struct Queue {
    buf: UserBuf,
    nelems: u32,
    /// The enclave that created the queue.
    pub enclave_id: u64,
    /// The kernel's private ring state; its lock serializes producers.
    producer: RawSpinLock<Producer>,
    /// The CPUs whose agent a message may wake (`CONFIG_QUEUE_WAKEUP`, at
    /// most [`MAX_WAKE`]), packed in one word so that readers see one
    /// configuration: CPU `i` in bits `32*i..32*i+32`, -1 for none (no CPU
    /// at all: the agent polls).
    wake_cpus: AtomicU64,
}

/// The most wakeup CPUs a queue has (`GHOST_MAX_WINFO`).
pub const MAX_WAKE: usize = kernel::uapi::GHOST_MAX_WINFO as usize;

/// No wakeup CPU: both halves -1.
const NO_WAKE: u64 = u64::MAX;

/// Packs two CPU numbers (-1: none) into one word.
fn pack_wake(cpus: [i32; MAX_WAKE]) -> u64 {
    let [a, b] = cpus;
    (u64::from(b as u32) << 32) | u64::from(a as u32)
}

/// The inverse of [`pack_wake`].
fn unpack_wake(w: u64) -> [i32; MAX_WAKE] {
    [w as u32 as i32, (w >> 32) as u32 as i32]
}

impl Queue {
    /// A zeroed queue of `nelems` slots (a power of two, at most 65536) on
    /// NUMA node `node`; `EINVAL` otherwise. May sleep.
    pub fn new(nelems: u32, node: c_int, enclave_id: u64) -> Result<Arc<Queue>> {
        // `None` unless a power of two up to 65536.
        let producer = Producer::new(nelems).ok_or(EINVAL)?;
        let buf = UserBuf::new(map_bytes(nelems), node)?;
        // INVARIANT: `UserBuf` rounds up, never down.
        let q = Queue {
            buf,
            nelems,
            enclave_id,
            producer: RawSpinLock::new(producer)?,
            wake_cpus: AtomicU64::new(NO_WAKE),
        };
        let words = [kernel::uapi::GHOST_QUEUE_VERSION, RING_START as u32, nelems];
        for (i, v) in words.into_iter().enumerate() {
            if let Some(w) = q.header_word(i) {
                // The last one (`nelems`) with release order.
                w.store(v, Ordering::Release);
            }
        }
        Ok(Arc::new(q, GFP_KERNEL)?)
    }

    /// Word `i` (0..3) of the `ghost_queue_header` (shared with
    /// userspace, hence atomic); `None` only if the buffer were smaller
    /// than its type invariant says.
    fn header_word(&self, i: usize) -> Option<&AtomicU32> {
        self.buf.at(4 * i.min(2))
    }

    /// Appends a message (`ty`, `seqnum`, a payload of `len` bytes that
    /// `fill` writes in place, in the ring slot, under the producer's lock;
    /// see [`crate::ring::Producer::produce_in_place`]); `false` if it was
    /// dropped (ring full: `overflow` counts it). Any context; never sleeps
    /// (nor may `fill`).
    pub fn produce(
        &self,
        ty: u16,
        seqnum: u32,
        len: usize,
        fill: impl FnOnce(&InPlace<'_>),
    ) -> bool {
        // The buffer holds the ring header at `RING_START` and then
        // `2 * nelems` words (type invariant).
        let header = self.buf.at::<RingHeader>(RING_START);
        let words = (self.nelems as usize)
            .checked_mul(2)
            .and_then(|n| self.buf.slice_at::<AtomicU32>(RING_START + RING_HEADER, n));
        let (Some(header), Some(words)) = (header, words) else {
            return false;
        };
        let mem = RingMem { header, words };
        self.producer
            .lock()
            .produce_in_place(&mem, ty, seqnum, len, fill)
            .is_ok()
    }

    /// The CPU whose agent a message of a task on `preferred` wakes: that
    /// CPU if the queue lists it, else the first CPU it lists (ghOSt's
    /// `target_cpu`); `None` if it lists none.
    pub fn wake_target(&self, preferred: i32) -> Option<i32> {
        let cpus = unpack_wake(self.wake_cpus.load(Ordering::Acquire));
        if cpus.contains(&preferred) && preferred >= 0 {
            return Some(preferred);
        }
        cpus.first().copied().filter(|&c| c >= 0)
    }

    /// Sets the CPUs whose agents messages wake (empty: none).
    pub fn set_wake_cpus(&self, cpus: &[i32]) {
        let mut w = [-1i32; MAX_WAKE];
        for (slot, &c) in w.iter_mut().zip(cpus) {
            *slot = c;
        }
        self.wake_cpus.store(pack_wake(w), Ordering::Release);
    }

    /// The queue behind file descriptor `fd`, if it is a `[ghost_queue]`
    /// descriptor; `EBADF` otherwise.
    pub fn from_fd(fd: i32) -> Result<Arc<Queue>> {
        QUEUE_FOPS.from_fd(fd)
    }

    /// The size of the mapping (what `CREATE_QUEUE` reports as `mapsize`).
    pub fn map_size(&self) -> usize {
        self.buf.len()
    }

    /// The number of slots.
    pub fn nelems(&self) -> u32 {
        self.nelems
    }

    /// Maps the queue: `MAP_SHARED`, offset 0, exactly [`Self::map_size`]
    /// bytes, not executable; `EINVAL` otherwise. Children do not inherit
    /// the mapping.
    pub fn mmap(&self, vma: &mut Vma) -> Result {
        if !vma.is_shared() || vma.is_exec() || vma.pgoff() != 0 {
            return Err(EINVAL);
        }
        vma.seal();
        vma.map(&self.buf)
    }

    /// A new `[ghost_queue]` file descriptor (`O_RDWR | O_CLOEXEC`) for
    /// `q`.
    pub fn into_fd(q: Arc<Queue>) -> Result<c_int> {
        QUEUE_FOPS.into_fd(q)
    }
}

impl AnonFile for Queue {
    const NAME: &'static CStr = kernel::c_str!("[ghost_queue]");

    fn mmap(&self, vma: &mut Vma) -> Result {
        Queue::mmap(self, vma)
    }
}

/// The file operations of a queue descriptor.
static QUEUE_FOPS: AnonFops<Queue> = AnonFops::new();
