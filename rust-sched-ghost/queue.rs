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

use crate::ring::{map_bytes, Producer, RingHeader, RingMem, RING_HEADER, RING_START};
use crate::sys::mm::{UserBuf, Vma};
use crate::sys::rawlock::RawSpinLock;
use crate::OpsTable;
use core::ffi::c_int;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use kernel::bindings;
use kernel::prelude::*;
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
        q.header_word(0)
            .store(kernel::uapi::GHOST_QUEUE_VERSION, Ordering::Relaxed);
        q.header_word(1).store(RING_START as u32, Ordering::Relaxed);
        q.header_word(2).store(nelems, Ordering::Release);
        Ok(Arc::new(q, GFP_KERNEL)?)
    }

    /// Word `i` (0..3) of the `ghost_queue_header`.
    fn header_word(&self, i: usize) -> &AtomicU32 {
        let p = self.buf.as_ptr().wrapping_add(4 * i.min(2)).cast::<u32>();
        // SAFETY: the first 12 bytes of the buffer (type invariant: it is at
        // least one page) hold the header; the buffer is page aligned and
        // lives as long as `self`; shared with userspace, hence atomic.
        unsafe { AtomicU32::from_ptr(p) }
    }

    /// Appends a message (`ty`, `seqnum`, `payload`); `false` if it was
    /// dropped (ring full: `overflow` counts it). Any context; never sleeps.
    pub fn produce(&self, ty: u16, seqnum: u32, payload: &[u8]) -> bool {
        let base = self.buf.as_ptr().wrapping_add(RING_START);
        let words = base.wrapping_add(RING_HEADER).cast::<AtomicU32>();
        // SAFETY: the buffer holds the ring header at `RING_START` and then
        // `2 * nelems` words (type invariant), is suitably aligned for
        // `u32`s (page aligned, offsets multiple of 4), lives as long as
        // `self`, and is shared with userspace, hence only accessed through
        // atomics.
        let mem = unsafe {
            RingMem {
                header: &*base.cast::<RingHeader>(),
                words: core::slice::from_raw_parts(words, 2 * self.nelems as usize),
            }
        };
        self.producer
            .lock()
            .produce(&mem, ty, seqnum, payload)
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
        let fd = u32::try_from(fd).map_err(|_| EBADF)?;
        // SAFETY: takes a reference on the file behind `fd` (or NULL).
        let file = unsafe { bindings::fget(fd) };
        if file.is_null() {
            return Err(EBADF);
        }
        // SAFETY: `file` is live (we hold a reference).
        let is_queue = unsafe { (*file).f_op } == QUEUE_FOPS.get() as *const _;
        let q = if is_queue {
            // SAFETY: a queue file's `private_data` is the reference
            // `into_fd` gave it, alive while the file is; take another.
            let q = unsafe { Arc::from_raw((*file).private_data.cast::<Queue>().cast_const()) };
            let copy = q.clone();
            core::mem::forget(q);
            Ok(copy)
        } else {
            Err(EBADF)
        };
        // SAFETY: drops the reference `fget` took.
        unsafe { bindings::fput(file) };
        q
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

    /// A new `[ghost_queue]` file descriptor for `q`.
    pub fn into_fd(q: Arc<Queue>) -> Result<c_int> {
        let flags = c_int::try_from(bindings::O_RDWR | bindings::O_CLOEXEC).map_err(|_| EINVAL)?;
        let raw = Arc::into_raw(q);
        // SAFETY: the name and operations are statics; `raw` is a counted
        // reference that the file owns from here on (dropped in `release`).
        let fd = unsafe {
            bindings::anon_inode_getfd(
                kernel::c_str!("[ghost_queue]").as_char_ptr(),
                QUEUE_FOPS.get(),
                raw.cast_mut().cast(),
                flags,
            )
        };
        if fd < 0 {
            // SAFETY: no file took the reference: give it back.
            drop(unsafe { Arc::from_raw(raw) });
            return Err(Error::from_errno(fd));
        }
        Ok(fd)
    }
}

/// The file operations of a queue descriptor.
static QUEUE_FOPS: OpsTable<bindings::file_operations> = {
    // SAFETY: plain C data; all-zeroes means "no operation".
    let mut f: bindings::file_operations = unsafe { core::mem::zeroed() };
    f.mmap = Some(queue_mmap);
    f.release = Some(queue_release);
    // SAFETY: function pointers only; C only reads the table.
    unsafe { OpsTable::new(f) }
};

/// The queue of a `[ghost_queue]` file.
///
/// # Safety
///
/// `file` must be a live file created by [`Queue::into_fd`].
unsafe fn queue_of<'a>(file: *mut bindings::file) -> &'a Queue {
    // SAFETY: `private_data` holds the reference `into_fd` gave the file,
    // valid until `release`.
    unsafe { &*(*file).private_data.cast::<Queue>() }
}

unsafe extern "C" fn queue_mmap(
    file: *mut bindings::file,
    vma: *mut bindings::vm_area_struct,
) -> c_int {
    // SAFETY: the VFS calls this on a live queue file.
    let q = unsafe { queue_of(file) };
    // SAFETY: `vma` is the mapping being set up, under `mmap_lock`.
    let vma = unsafe { Vma::from_raw(vma) };
    match q.mmap(vma) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

unsafe extern "C" fn queue_release(
    _inode: *mut bindings::inode,
    file: *mut bindings::file,
) -> c_int {
    // SAFETY: the last close of a queue file: take back the reference
    // `into_fd` gave it. Mappings keep their pages on their own.
    drop(unsafe { Arc::from_raw((*file).private_data.cast::<Queue>().cast_const()) });
    0
}
