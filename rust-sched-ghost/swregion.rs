// SPDX-License-Identifier: GPL-2.0

//! Status-word regions of an enclave: 2 MiB of kernel-written memory that
//! agents map read-only as `sw_regions/sw_<id>` ([`crate::sw`] has the
//! layout and the allocator).
//!
//! Calls: [`crate::sw`], [`crate::sys::mm`] and [`crate::sys::shared`] (the
//! memory and its typed view).

use crate::sw::{Region, SwInfo, REGION_SIZE};
use crate::sys::mm::{UserBuf, Vma};
use crate::sys::shared::TypedBuf;
use core::mem::{offset_of, size_of};
use core::sync::atomic::AtomicU32;
use kernel::prelude::*;
use kernel::uapi;

// The pure layout in `sw` is the uapi's.
const _: () = assert!(size_of::<uapi::ghost_status_word>() == size_of::<crate::sw::StatusWord>());
const _: () =
    assert!(size_of::<uapi::ghost_sw_region_header>() == size_of::<crate::sw::RegionHeader>());
const _: () =
    assert!(offset_of!(uapi::ghost_status_word, flags) == offset_of!(crate::sw::StatusWord, flags));
const _: () = assert!(
    offset_of!(uapi::ghost_status_word, runtime) == offset_of!(crate::sw::StatusWord, runtime)
);
const _: () = assert!(
    offset_of!(uapi::ghost_sw_region_header, available)
        == offset_of!(crate::sw::RegionHeader, available)
);
const _: () = assert!(uapi::GHOST_SW_F_ALLOCATED == crate::sw::F_ALLOCATED);

/// One region.
pub struct SwRegion {
    /// The id (`sw_<id>`).
    pub id: u32,
    /// [`REGION_SIZE`] bytes, page aligned: a [`Region`].
    buf: TypedBuf<Region>,
    /// Where the next allocation scan starts.
    hint: AtomicU32,
}

impl SwRegion {
    /// Allocates a zeroed region on `node` and fills in its header. May
    /// sleep.
    pub fn new(id: u32, node: u32) -> Result<Self> {
        let numa = kernel::ffi::c_int::try_from(node).map_err(|_| EINVAL)?;
        let buf = UserBuf::new(REGION_SIZE, numa)?;
        if buf.len() != REGION_SIZE {
            return Err(EINVAL);
        }
        let r = SwRegion {
            id,
            buf: TypedBuf::new(buf)?,
            hint: AtomicU32::new(0),
        };
        r.region().init(id, node);
        Ok(r)
    }

    /// The region's memory.
    pub fn region(&self) -> &Region {
        // Only the kernel writes the memory (userspace maps it read-only).
        self.buf.get()
    }

    /// Allocates a status word; `None` if the region is full.
    pub fn alloc(&self) -> Option<SwInfo> {
        let index = self.region().alloc(&self.hint)?;
        Some(SwInfo { id: self.id, index })
    }

    /// Frees the status word at `index`; `false` if it was not allocated.
    pub fn free(&self, index: u32) -> bool {
        self.region().free(index)
    }

    /// Maps the region: read-only (`PROT_WRITE`, or a later
    /// `mprotect(PROT_WRITE)`, is refused), `MAP_SHARED`, offset 0,
    /// exactly 2 MiB; `EINVAL` otherwise.
    pub fn mmap(&self, vma: &mut Vma) -> Result {
        if vma.is_write() || vma.is_exec() || !vma.is_shared() || vma.pgoff() != 0 {
            return Err(EINVAL);
        }
        vma.deny_write();
        vma.seal();
        vma.map(self.buf.buf())
    }
}
