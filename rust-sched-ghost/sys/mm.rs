// SPDX-License-Identifier: GPL-2.0

//! Memory shared with userspace: zeroed `vmalloc` buffers that can be
//! mapped into a process ([`UserBuf`]), and the mapping being set up
//! ([`Vma`]).
//!
//! Pages are mapped with `remap_vmalloc_range`, which takes a reference on
//! each page for the mapping: a buffer may be freed while a process still
//! maps it (the process keeps the pages until it unmaps them), so an
//! enclave can be destroyed under live mappings.

use core::ptr::NonNull;
use kernel::bindings;
use kernel::ffi::{c_int, c_ulong, c_void};
use kernel::prelude::*;
use kernel::types::Opaque;

/// The page size.
pub const PAGE_SIZE: usize = bindings::PAGE_SIZE;
/// Any NUMA node (`NUMA_NO_NODE`).
pub const NUMA_NO_NODE: c_int = -1;

/// A zeroed, page-aligned `vmalloc` buffer that can be mapped to userspace.
///
/// # Invariants
///
/// `ptr` was returned by `vmalloc` with `VM_USERMAP` for `len` bytes (a
/// multiple of the page size) and is freed only by `Drop`.
pub struct UserBuf {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the buffer is plain memory; what it holds is accessed with
// atomics or volatile operations by its users.
unsafe impl Send for UserBuf {}
// SAFETY: as above.
unsafe impl Sync for UserBuf {}

impl UserBuf {
    /// Allocates `len` zeroed bytes (rounded up to whole pages) on NUMA
    /// node `node` (`-1`: any). May sleep.
    pub fn new(len: usize, node: c_int) -> Result<Self> {
        let len = len.checked_next_multiple_of(PAGE_SIZE).ok_or(ENOMEM)?;
        if len == 0 {
            return Err(EINVAL);
        }
        let size = c_ulong::try_from(len).map_err(|_| ENOMEM)?;
        // SAFETY: a plain allocation; the result is checked for NULL.
        let p = unsafe { bindings::ghost_vmalloc_user_node(size, node) };
        let ptr = NonNull::new(p.cast::<u8>()).ok_or(ENOMEM)?;
        // INVARIANT: just allocated with `VM_USERMAP`, `len` bytes.
        Ok(UserBuf { ptr, len })
    }

    /// The buffer's length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The start of the buffer.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The `T` at byte `off`, shared with userspace; `None` unless it lies
    /// within the buffer and `off` is aligned for `T`.
    pub fn at<T: Shared>(&self, off: usize) -> Option<&T> {
        self.slice_at::<T>(off, 1)?.first()
    }

    /// The `n` consecutive `T`s from byte `off`, shared with userspace;
    /// `None` unless they lie within the buffer and `off` is aligned for
    /// `T`.
    pub fn slice_at<T: Shared>(&self, off: usize, n: usize) -> Option<&[T]> {
        let bytes = n.checked_mul(core::mem::size_of::<T>())?;
        if off.checked_add(bytes)? > self.len || off % core::mem::align_of::<T>() != 0 {
            return None;
        }
        // `off` is within the buffer (checked above).
        let p = self.ptr.as_ptr().wrapping_add(off).cast::<T>();
        // SAFETY: `n` `T`s from `p` lie within the buffer (checked), which
        // lives as long as `&self`, and `p` is aligned (the buffer is page
        // aligned, `off` a multiple of `T`'s alignment). `T: Shared`: every
        // bit pattern is a valid `T` and all its accesses are atomic, so
        // userspace writing the memory at any time is fine.
        Some(unsafe { core::slice::from_raw_parts(p, n) })
    }
}

/// A type that may live in memory userspace writes at any time.
///
/// # Safety
///
/// Every bit pattern is a valid value, and the type is only accessed
/// through atomic operations (it is made of atomics, with no padding that
/// matters).
pub unsafe trait Shared {}

// SAFETY: an atomic integer: any bit pattern, atomic accesses only.
unsafe impl Shared for core::sync::atomic::AtomicU32 {}
// SAFETY: as above.
unsafe impl Shared for core::sync::atomic::AtomicI32 {}
// SAFETY: as above.
unsafe impl Shared for core::sync::atomic::AtomicU64 {}
// SAFETY: three `AtomicU32`s (the layout [`crate::ring`] describes, a pure
// module with no dependencies).
unsafe impl Shared for crate::ring::RingHeader {}

impl Drop for UserBuf {
    fn drop(&mut self) {
        // SAFETY: by the type invariant `ptr` came from vmalloc and is freed
        // once, here. Pages still mapped somewhere stay alive through the
        // references the mappings hold.
        unsafe { bindings::vfree(self.ptr.as_ptr().cast::<c_void>()) }
    }
}

/// A `VM_*` flag as `vm_flags_t`.
const fn vm(flag: u32) -> c_ulong {
    // Lossless: `vm_flags_t` is `unsigned long`, 64 bits wide here.
    flag as c_ulong
}

/// A mapping being created by `mmap(2)`, as handed to a file's `mmap`.
#[repr(transparent)]
pub struct Vma(Opaque<bindings::vm_area_struct>);

impl Vma {
    /// Wraps the `vma` of an `mmap` callback.
    ///
    /// # Safety
    ///
    /// `vma` must be the mapping being set up by the running `mmap`
    /// callback (the caller holds `mmap_lock` for writing), valid for `'a`.
    pub unsafe fn from_raw<'a>(vma: *mut bindings::vm_area_struct) -> &'a mut Vma {
        // SAFETY: guaranteed by the caller; `Vma` is transparent.
        unsafe { &mut *vma.cast::<Vma>() }
    }

    fn raw(&self) -> *mut bindings::vm_area_struct {
        self.0.get()
    }

    /// The length of the mapping in bytes.
    pub fn len(&self) -> usize {
        // SAFETY: the vma is valid (guaranteed by `from_raw`'s caller).
        let size = unsafe { bindings::ghost_vma_size(self.raw()) };
        usize::try_from(size).unwrap_or(0)
    }

    /// The file offset of the mapping, in pages.
    pub fn pgoff(&self) -> usize {
        // SAFETY: as in `len`.
        usize::try_from(unsafe { (*self.raw()).vm_pgoff }).unwrap_or(usize::MAX)
    }

    fn flags(&self) -> c_ulong {
        // SAFETY: as in `len`.
        unsafe { bindings::ghost_vma_flags(self.raw()) }
    }

    /// `MAP_SHARED` (`VM_MAYSHARE`: a shared mapping of a read-only file
    /// has no `VM_SHARED`).
    pub fn is_shared(&self) -> bool {
        self.flags() & vm(bindings::VM_MAYSHARE) != 0
    }

    /// Mapped writable.
    pub fn is_write(&self) -> bool {
        self.flags() & vm(bindings::VM_WRITE) != 0
    }

    /// Mapped executable.
    pub fn is_exec(&self) -> bool {
        self.flags() & vm(bindings::VM_EXEC) != 0
    }

    /// Forbids `mprotect(PROT_WRITE)` later on this mapping.
    pub fn deny_write(&mut self) {
        // SAFETY: as in `len`; `mmap_lock` is held for writing.
        unsafe { bindings::ghost_vma_flags_mod(self.raw(), 0, vm(bindings::VM_MAYWRITE)) }
    }

    /// Forbids `mprotect(PROT_EXEC)` later, and keeps the mapping out of
    /// children (`fork`) and core dumps.
    pub fn seal(&mut self) {
        let set = vm(bindings::VM_DONTCOPY | bindings::VM_DONTDUMP);
        // SAFETY: as in `deny_write`.
        unsafe { bindings::ghost_vma_flags_mod(self.raw(), set, vm(bindings::VM_MAYEXEC)) }
    }

    /// Maps all of `buf` (the mapping must be exactly its size).
    pub fn map(&mut self, buf: &UserBuf) -> Result {
        if self.len() != buf.len() {
            return Err(EINVAL);
        }
        let (vma, addr) = (self.raw(), buf.as_ptr().cast::<c_void>());
        // SAFETY: `buf` is a live `VM_USERMAP` vmalloc area as large as the
        // mapping; `remap_vmalloc_range` checks the bounds again and takes a
        // page reference per mapped page.
        let ret = unsafe { bindings::remap_vmalloc_range(vma, addr, 0) };
        if ret != 0 {
            return Err(Error::from_errno(ret));
        }
        Ok(())
    }
}
