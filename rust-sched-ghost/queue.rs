// SPDX-License-Identifier: GPL-2.0

//! Queues: the rings through which the kernel sends messages to agents.
//!
//! `GHOST_IOC_CREATE_QUEUE` makes one and returns a file descriptor for it:
//! an anonymous inode `[ghost_queue]` (`O_RDWR | O_CLOEXEC`) whose only
//! operations are `mmap` and `close`. The mapping is the ring of
//! [`crate::ring`]: a `struct ghost_queue_header` (version 0, `start` 64,
//! `nelems`), then `head`, `tail`, `overflow` and the slots. The queue's
//! memory lives as long as the descriptor or a mapping of it.

use crate::mm::{UserBuf, Vma};
use crate::ring::{map_bytes, valid_nelems, RING_START};
use crate::OpsTable;
use core::ffi::c_int;
use core::sync::atomic::{AtomicU32, Ordering};
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
}

impl Queue {
    /// A zeroed queue of `nelems` slots (a power of two, at most 65536) on
    /// NUMA node `node`; `EINVAL` otherwise. May sleep.
    pub fn new(nelems: u32, node: c_int) -> Result<Arc<Queue>> {
        if !valid_nelems(nelems) {
            return Err(EINVAL);
        }
        let buf = UserBuf::new(map_bytes(nelems), node)?;
        // INVARIANT: `UserBuf` rounds up, never down.
        let q = Queue { buf, nelems };
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
