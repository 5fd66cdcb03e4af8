//! Memory shared with the kernel.
//!
//! [`Mapping`] maps a ghostfs file (or anonymous memory, in tests) with
//! `nix`'s `mmap` and hands out bounds- and alignment-checked atomics and
//! volatile reads of it; `read_plain` decodes a uapi payload copied out of
//! a queue's ring. Everything here treats the memory as untrusted: offsets
//! and lengths are checked, every bit pattern of the types handed out is
//! valid.

use std::ffi::c_void;
use std::mem::{align_of, size_of};
use std::num::NonZeroUsize;
use std::os::fd::BorrowedFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicI32, AtomicI64, AtomicU16, AtomicU32, AtomicU64, AtomicU8};

use ghost_abi as abi;
use nix::sys::mman::{mmap, mmap_anonymous, munmap, MapFlags, ProtFlags};

use crate::error::{Error, Result};

/// An integer type whose atomic counterpart a [`Mapping`] can hand out.
///
/// Implemented for the atomic integer types of `std::sync::atomic`; sealed.
pub trait AtomicCell: sealed::Sealed {}

mod sealed {
    /// Sealing for [`super::AtomicCell`].
    pub trait Sealed {}
}

macro_rules! atomic_cell {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl AtomicCell for $t {}
    )*};
}
atomic_cell!(AtomicU8, AtomicU16, AtomicU32, AtomicI32, AtomicU64, AtomicI64);

/// A memory mapping shared with the kernel, unmapped on drop.
///
/// The memory is written concurrently by the kernel (and read or written
/// by other threads of the agent), so it is only ever accessed through
/// atomics ([`Mapping::atomic`]) or volatile reads ([`Mapping::read_u32`]),
/// never through references to plain data. Every accessor checks bounds and
/// alignment and returns `None` outside the mapping: offsets often come
/// from the shared memory itself, which is not trusted.
///
/// A mapping of a destroyed enclave's file is revoked by the kernel: the
/// address range stays reserved, but accessing it raises `SIGBUS`.
#[derive(Debug)]
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory, valid until drop, accessed
// only through atomics and volatile reads (see the type's documentation);
// the pointer is not tied to a thread.
unsafe impl Send for Mapping {}
// SAFETY: as above: concurrent access from several threads goes through
// atomics or volatile reads only.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// `mmap(NULL, len, prot, MAP_SHARED, fd, 0)`; `what` names the file
    /// in errors. `prot` is `PROT_*` bits.
    pub fn map_shared(fd: BorrowedFd<'_>, len: usize, prot: i32, what: &str) -> Result<Self> {
        let len = Self::nonzero(len, what)?;
        // SAFETY: a new mapping at an address the kernel chooses: nothing
        // existing is replaced.
        let p = unsafe {
            mmap(
                None,
                len,
                ProtFlags::from_bits_truncate(prot),
                MapFlags::MAP_SHARED,
                fd,
                0,
            )
        };
        Self::mapped(p, len, what)
    }

    /// Zeroed anonymous shared memory of `len` bytes: a stand-in for a
    /// kernel mapping in tests, and memory that outlives `fork`.
    pub fn anonymous(len: usize) -> Result<Self> {
        let what = "anonymous memory";
        let len = Self::nonzero(len, what)?;
        // SAFETY: as in `map_shared`.
        let p = unsafe {
            mmap_anonymous(
                None,
                len,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
            )
        };
        Self::mapped(p, len, what)
    }

    fn nonzero(len: usize, what: &str) -> Result<NonZeroUsize> {
        NonZeroUsize::new(len)
            .ok_or_else(|| Error::sys(format!("mmap {what} (0 bytes)"), libc::EINVAL))
    }

    fn mapped(p: nix::Result<NonNull<c_void>>, len: NonZeroUsize, what: &str) -> Result<Self> {
        match p {
            Ok(p) => Ok(Self {
                ptr: p.cast(),
                len: len.get(),
            }),
            Err(e) => Err(Error::sys(format!("mmap {what} ({len} bytes)"), e as i32)),
        }
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it is empty (never: mappings have at least one byte).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A pointer to byte `off` if `size` bytes from there, aligned to
    /// `align`, are inside the mapping.
    fn at(&self, off: usize, size: usize, align: usize) -> Option<*mut u8> {
        let end = off.checked_add(size)?;
        if end > self.len {
            return None;
        }
        // SAFETY: `off < len` (checked above, size >= 1 for every caller),
        // so the result stays inside the mapping.
        let p = unsafe { self.ptr.as_ptr().add(off) };
        (p as usize % align == 0).then_some(p)
    }

    /// The atomic `A` at byte `off`, if it is inside the mapping and
    /// aligned.
    pub fn atomic<A: AtomicCell>(&self, off: usize) -> Option<&A> {
        let p = self.at(off, size_of::<A>(), align_of::<A>())?;
        // SAFETY: in bounds and aligned (checked); atomics have the size and
        // alignment of their integer, for which any bit pattern is valid;
        // the memory lives as long as `self`. Atomic loads are fine on
        // read-only mappings (plain loads on x86_64).
        Some(unsafe { &*p.cast::<A>() })
    }

    /// A volatile read of the `u32` at byte `off`, if it is inside the
    /// mapping and 4-aligned.
    pub fn read_u32(&self, off: usize) -> Option<u32> {
        let p = self.at(off, 4, 4)?;
        // SAFETY: in bounds and aligned (checked); readable memory.
        Some(unsafe { std::ptr::read_volatile(p.cast::<u32>()) })
    }

    /// Copies `dst.len()` bytes from byte `off` (which must be 4-aligned)
    /// with volatile 32-bit reads; `false` (and nothing copied) if the range
    /// is outside the mapping.
    pub fn copy_out(&self, off: usize, dst: &mut [u8]) -> bool {
        let words = dst.len().div_ceil(4);
        if self.at(off, words * 4, 4).is_none() {
            return false;
        }
        for (i, chunk) in dst.chunks_mut(4).enumerate() {
            let Some(w) = self.read_u32(off + i * 4) else {
                return false;
            };
            let bytes = w.to_ne_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        true
    }

    /// A volatile write of the `u32` at byte `off` (for tests that play the
    /// kernel); `false` outside the mapping.
    pub fn write_u32(&self, off: usize, v: u32) -> bool {
        match self.at(off, 4, 4) {
            Some(p) => {
                // SAFETY: in bounds and aligned (checked); the caller mapped
                // the memory writable (a write to a read-only mapping
                // faults, which is not memory unsafety).
                unsafe { std::ptr::write_volatile(p.cast::<u32>(), v) };
                true
            }
            None => false,
        }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the range this value mapped, once; nothing
        // borrowed from it outlives `self`.
        let _ = unsafe { munmap(self.ptr.cast(), self.len) };
    }
}

/// A uapi payload: plain integers, valid for any bytes. Implemented here,
/// for the message payloads below, and nowhere else.
pub(crate) trait Plain: Copy {}

macro_rules! plain {
    ($($t:ident),*) => {$( impl Plain for abi::$t {} )*};
}
plain!(
    GhostMsgPayloadTaskNew,
    GhostMsgPayloadTaskPreempt,
    GhostMsgPayloadTaskYield,
    GhostMsgPayloadTaskBlocked,
    GhostMsgPayloadTaskDead,
    GhostMsgPayloadTaskDeparted,
    GhostMsgPayloadTaskWakeup,
    GhostMsgPayloadTaskSwitchto,
    GhostMsgPayloadTaskAffinityChanged,
    GhostMsgPayloadTaskPriorityChanged,
    GhostMsgPayloadTaskOnCpu,
    GhostMsgPayloadTaskLatchFailure,
    GhostMsgPayloadCpuTick,
    GhostMsgPayloadTimer,
    GhostMsgPayloadCpuNotIdle,
    GhostMsgPayloadCpuAvailable,
    GhostMsgPayloadCpuBusy,
    GhostMsgPayloadAgentBlocked,
    GhostMsgPayloadAgentWakeup
);

/// Decodes a `T` from the start of `bytes`, `None` if it is too short.
pub(crate) fn read_plain<T: Plain>(bytes: &[u8]) -> Option<T> {
    if bytes.len() < size_of::<T>() {
        return None;
    }
    // SAFETY: `bytes` holds at least `size_of::<T>()` bytes (checked);
    // `T` is plain integers (`Plain`), valid for any bytes; the read
    // does not assume alignment.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn mapping_accessors_check_bounds_and_alignment() {
        let m = Mapping::anonymous(4096).unwrap();
        assert!(m.atomic::<AtomicU32>(4092).is_some());
        assert!(m.atomic::<AtomicU32>(4093).is_none());
        assert!(m.atomic::<AtomicU32>(4096).is_none());
        assert!(m.atomic::<AtomicU64>(4).is_none());
        assert!(m.atomic::<AtomicU32>(usize::MAX - 1).is_none());
        m.atomic::<AtomicU32>(8)
            .unwrap()
            .store(0xdead_beef, Ordering::Relaxed);
        assert_eq!(m.read_u32(8), Some(0xdead_beef));
        let mut b = [0u8; 3];
        assert!(m.copy_out(8, &mut b));
        assert_eq!(b, [0xef, 0xbe, 0xad]);
        assert!(!m.copy_out(4092, &mut [0u8; 8]));
        assert!(!m.write_u32(4096, 1));
    }

    #[test]
    fn anonymous_zero_length_is_refused() {
        assert_eq!(Mapping::anonymous(0).unwrap_err().errno, libc::EINVAL);
    }
}
