//! Read-only views of the memory ghostfs shares with agents: `cpu_data`
//! (one transaction page per CPU) and `sw_regions/sw_<id>` (status words).
//!
//! ghostctl only looks: it maps `PROT_READ`, `MAP_SHARED`, offset 0, the
//! file's whole size, which is what ghostfs requires (ghostfs.rst), through a
//! descriptor opened read-only (so `cpu_data`, mode 0660, and `sw_<id>`,
//! 0440, need root or the enclave's group).
//!
//! Destroying an enclave revokes every mapping of its files, and the next
//! access gets `SIGBUS`. A monitor cannot rule that out: the enclave can go
//! between any check and any load. So a `SIGBUS` handler replaces a revoked
//! range that belongs to a live [`Mapping`] by zero pages and marks the
//! mapping [`revoked`](Mapping::revoked); readers check that flag after
//! reading and report the enclave gone instead of zeros. A `SIGBUS` at any
//! other address restores the default action, so the faulting access repeats
//! and the process dies as it would have without the handler.

use std::ffi::c_void;
use std::fs::File;
use std::num::NonZeroUsize;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Once;

use ghost::Error;
use ghost_abi::{GhostStatusWord, GhostSwRegionHeader, GhostTxn};
use nix::sys::mman::{mmap, mmap_anonymous, munmap, MapFlags, ProtFlags};
use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};

/// The page size ghostfs lays `cpu_data` out in (one page per CPU).
pub const PAGE: usize = 4096;

/// Types for which every bit pattern of their size is a valid value, so they
/// can be read from memory another party writes.
///
/// # Safety
///
/// Implement only for integers and `#[repr(C)]` structs (and unions) made of
/// integers.
pub unsafe trait Plain: Copy {}

// SAFETY: integers.
unsafe impl Plain for u32 {}
// SAFETY: integers.
unsafe impl Plain for u64 {}
// SAFETY: `#[repr(C)]`, integer fields only.
unsafe impl Plain for GhostSwRegionHeader {}
// SAFETY: `#[repr(C)]`, integer fields only.
unsafe impl Plain for GhostStatusWord {}
// SAFETY: `#[repr(C)]`, integer fields and a union of one `i32`.
unsafe impl Plain for GhostTxn {}

/// How many mappings can be guarded at once: `cpu_data` plus an enclave's
/// 64 regions fit with room to spare.
const SLOTS: usize = 128;

/// One guarded range. `start` is 0 while the slot holds no mapping; it is
/// stored after `len` on registration and cleared before `munmap`.
struct Slot {
    used: AtomicBool,
    start: AtomicUsize,
    len: AtomicUsize,
    revoked: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)] // only used to initialise `GUARDED`
const FREE_SLOT: Slot = Slot {
    used: AtomicBool::new(false),
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    revoked: AtomicBool::new(false),
};

static GUARDED: [Slot; SLOTS] = [FREE_SLOT; SLOTS];

/// The `SIGBUS` handler: see the module documentation. Only atomics and
/// `mmap`/`signal` system calls, which are safe in a signal handler.
extern "C" fn on_sigbus(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut c_void) {
    // SAFETY: an `SA_SIGINFO` handler gets a valid `siginfo_t`; for SIGBUS
    // `si_addr` is the faulting address.
    let addr = unsafe { (*info).si_addr() } as usize;
    for slot in &GUARDED {
        let start = slot.start.load(Ordering::Acquire);
        let len = slot.len.load(Ordering::Acquire);
        if start == 0 || addr < start || addr - start >= len {
            continue;
        }
        let (Some(at), Some(len)) = (NonZeroUsize::new(start), NonZeroUsize::new(len)) else {
            break;
        };
        // SAFETY: `start..start + len` is a mapping a live `Mapping` owns
        // (registered after `mmap`, cleared before `munmap`). Replacing it
        // with anonymous read-only zero pages keeps the range mapped until
        // that `Mapping` unmaps it; nothing else refers to the old pages.
        let p = unsafe {
            mmap_anonymous(
                Some(at),
                len,
                ProtFlags::PROT_READ,
                MapFlags::MAP_PRIVATE | MapFlags::MAP_FIXED,
            )
        };
        if p.is_ok() {
            slot.revoked.store(true, Ordering::Release);
            return;
        }
        break;
    }
    // SAFETY: resets SIGBUS to its default action; returning repeats the
    // faulting access, which then terminates the process as usual.
    let _ = unsafe { signal::signal(Signal::SIGBUS, SigHandler::SigDfl) };
}

/// Installs [`on_sigbus`] once.
fn install_guard() -> Result<(), Error> {
    static ONCE: Once = Once::new();
    static FAILED: AtomicBool = AtomicBool::new(false);
    ONCE.call_once(|| {
        let sa = SigAction::new(
            SigHandler::SigAction(on_sigbus),
            SaFlags::SA_SIGINFO,
            SigSet::empty(),
        );
        // SAFETY: `on_sigbus` only uses atomics and the `mmap`/`signal`
        // system calls, which are async-signal-safe.
        let r = unsafe { signal::sigaction(Signal::SIGBUS, &sa) };
        FAILED.store(r.is_err(), Ordering::Relaxed);
    });
    if FAILED.load(Ordering::Relaxed) {
        return Err(Error::msg("sigaction(SIGBUS)", "cannot guard mappings"));
    }
    Ok(())
}

/// A read-only, `SIGBUS`-guarded mapping of a whole ghostfs file.
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    slot: &'static Slot,
}

impl Mapping {
    /// Maps `path` read-only: `PROT_READ`, `MAP_SHARED`, offset 0, its whole
    /// size. Errors name the file and the call.
    pub fn open(path: &Path) -> Result<Self, Error> {
        install_guard()?;
        let file = File::open(path).map_err(|e| {
            Error::sys(
                format!("open {} read-only", path.display()),
                e.raw_os_error().unwrap_or(0),
            )
        })?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let Some(nz_len) = usize::try_from(size).ok().and_then(NonZeroUsize::new) else {
            return Err(Error::msg(
                format!("mmap {}", path.display()),
                "the file has no size",
            ));
        };
        let len = nz_len.get();
        let slot = GUARDED
            .iter()
            .find(|s| {
                s.used
                    .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            })
            .ok_or_else(|| {
                Error::msg(
                    format!("mmap {}", path.display()),
                    format!("more than {SLOTS} mappings at once"),
                )
            })?;
        // SAFETY: a fresh read-only shared mapping of an open file; the
        // kernel picks the address. The descriptor may close afterwards.
        let p = unsafe {
            mmap(
                None,
                nz_len,
                ProtFlags::PROT_READ,
                MapFlags::MAP_SHARED,
                &file,
                0,
            )
        };
        let ptr = match p {
            Ok(p) => p.cast::<u8>(),
            Err(e) => {
                let errno = e as i32;
                slot.used.store(false, Ordering::Release);
                return Err(Error::sys(
                    format!(
                        "mmap {} (PROT_READ, MAP_SHARED, {len} bytes)",
                        path.display()
                    ),
                    errno,
                ));
            }
        };
        slot.revoked.store(false, Ordering::Relaxed);
        slot.len.store(len, Ordering::Release);
        slot.start.store(ptr.as_ptr() as usize, Ordering::Release);
        Ok(Self { ptr, len, slot })
    }

    /// The mapping's length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the kernel revoked the mapping (the enclave was destroyed):
    /// everything read from it since is zeros and must be discarded.
    pub fn revoked(&self) -> bool {
        self.slot.revoked.load(Ordering::Acquire)
    }

    /// The address of a `T` at byte `off`, if it lies inside the mapping and
    /// is aligned for `T`.
    fn at<T>(&self, off: usize) -> Option<*const T> {
        let end = off.checked_add(std::mem::size_of::<T>())?;
        if end > self.len || off % std::mem::align_of::<T>() != 0 {
            return None;
        }
        // SAFETY: `off + size_of::<T>() <= len`: inside the mapping.
        Some(unsafe { self.ptr.as_ptr().add(off) }.cast::<T>())
    }

    /// A copy of the `T` at byte `off` (a volatile read: the kernel writes
    /// the memory concurrently, so the copy may mix old and new fields).
    /// `None` if out of bounds or misaligned.
    pub fn read<T: Plain>(&self, off: usize) -> Option<T> {
        let p = self.at::<T>(off)?;
        // SAFETY: `p` is in bounds and aligned (`at`), the pages stay mapped
        // while `self` lives (zero pages after a revocation), and `T: Plain`
        // accepts any bits.
        Some(unsafe { std::ptr::read_volatile(p) })
    }

    /// The `u32` at byte `off`, loaded with acquire order, as the ABI asks
    /// for `flags` and `state` fields. `None` if out of bounds or misaligned.
    pub fn load_acquire(&self, off: usize) -> Option<u32> {
        let p = self.at::<u32>(off)?;
        // SAFETY: `p` is in bounds, 4-byte aligned and mapped while `self`
        // lives; the kernel only accesses it atomically or with plain
        // stores of whole words, and we only load.
        Some(unsafe { AtomicU32::from_ptr(p.cast_mut()) }.load(Ordering::Acquire))
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        self.slot.start.store(0, Ordering::Release);
        // SAFETY: `ptr..ptr + len` is our mapping (or the zero pages that
        // replaced it); nothing borrows it past `self`.
        let _ = unsafe { munmap(self.ptr.cast(), self.len) };
        self.slot.used.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn scratch_file(name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("ghostctl-mapped-{}-{name}", std::process::id()));
        let mut f = File::create(&p).unwrap();
        f.write_all(bytes).unwrap();
        p
    }

    #[test]
    fn reads_are_bounds_and_alignment_checked() {
        let mut bytes = vec![0u8; PAGE];
        bytes[8..12].copy_from_slice(&0xdead_beefu32.to_ne_bytes());
        let p = scratch_file("rw", &bytes);
        let m = Mapping::open(&p).unwrap();
        assert_eq!(m.len(), PAGE);
        assert_eq!(m.read::<u32>(8), Some(0xdead_beef));
        assert_eq!(m.load_acquire(8), Some(0xdead_beef));
        assert_eq!(m.read::<u32>(9), None, "misaligned");
        assert_eq!(m.read::<u32>(PAGE - 4), Some(0));
        assert_eq!(m.read::<u32>(PAGE), None, "past the end");
        assert_eq!(m.read::<u64>(usize::MAX - 3), None, "overflowing offset");
        // `GhostTxn::state` is at byte 8.
        assert_eq!(
            m.read::<GhostTxn>(0).map(|t| t.state as u32),
            Some(0xdead_beef)
        );
        assert!(!m.revoked());
        drop(m);
        let _ = std::fs::remove_file(p);
    }

    #[test]
    fn errors_name_the_file() {
        let e = Mapping::open(Path::new("/nonexistent/sw_0")).err().unwrap();
        assert_eq!(e.errno, libc::ENOENT);
        assert!(
            e.to_string()
                .starts_with("open /nonexistent/sw_0 read-only: ENOENT"),
            "{e}"
        );
        let p = scratch_file("empty", b"");
        let e = Mapping::open(&p).err().unwrap();
        assert!(e.to_string().ends_with("the file has no size"), "{e}");
        let _ = std::fs::remove_file(p);
    }

    #[test]
    fn a_truncated_file_is_replaced_by_zero_pages() {
        // A shared mapping past the end of a truncated file faults with
        // SIGBUS, as a revoked ghostfs mapping does.
        let p = scratch_file("trunc", &[0xffu8; 2 * PAGE]);
        let m = Mapping::open(&p).unwrap();
        assert_eq!(m.read::<u32>(PAGE), Some(u32::MAX));
        File::create(&p).unwrap(); // truncates to 0 bytes
        assert_eq!(m.read::<u32>(PAGE), Some(0));
        assert!(m.revoked());
        drop(m);
        let _ = std::fs::remove_file(p);
    }
}
