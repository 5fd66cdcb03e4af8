//! The fuzz's mappings, and `SIGBUS` on a revoked one.

use super::{sys, AtomicPtr, AtomicU32, Ordering, EXIT_REVOKED, EXIT_SIGBUS_LIVE, GHOSTFS};

/// A mapping of our own (unmapped on drop).
pub(super) struct Map {
    pub(super) ptr: *mut u8,
    pub(super) len: usize,
}

impl Map {
    pub(super) fn new(fd: i32, len: usize, prot: i32, flags: i32, off: i64) -> Result<Map, i32> {
        // SAFETY: a new mapping chosen by the kernel (never MAP_FIXED).
        let p = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, fd, off) };
        if p == libc::MAP_FAILED {
            Err(sys::errno())
        } else {
            Ok(Map { ptr: p.cast(), len })
        }
    }

    pub(super) fn addr(&self) -> usize {
        self.ptr as usize
    }

    /// The `u32` at byte `off` as an atomic (`off` in bounds, 4-aligned).
    pub(super) fn u32(&self, off: usize) -> &AtomicU32 {
        assert!(
            off % 4 == 0 && off + 4 <= self.len,
            "u32 outside the mapping"
        );
        // SAFETY: in bounds and aligned (checked); lives as long as `self`.
        unsafe { AtomicU32::from_ptr(self.ptr.add(off).cast()) }
    }

    /// The `u64` at byte `off` (read as two words: 4-aligned only).
    pub(super) fn u64(&self, off: usize) -> u64 {
        u64::from(self.u32(off).load(Ordering::Acquire))
            | (u64::from(self.u32(off + 4).load(Ordering::Acquire)) << 32)
    }

    /// Writes `bytes` (1, 2, 4 or 8 of them) at byte `off`.
    pub(super) fn write(&self, off: usize, bytes: &[u8]) {
        assert!(off + bytes.len() <= self.len, "write outside the mapping");
        for (i, &b) in bytes.iter().enumerate() {
            // SAFETY: in bounds (checked); the mapping is writable.
            unsafe { std::ptr::write_volatile(self.ptr.add(off + i), b) };
        }
    }
}

impl Drop for Map {
    fn drop(&mut self) {
        // SAFETY: our own mapping, unmapped once.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// The mappings of enclave memory of a fuzz process, for its SIGBUS
/// handler: `(start, len, NUL-terminated enclave directory)`.
pub(super) static REVOCABLE: AtomicPtr<Vec<(usize, usize, Vec<u8>)>> =
    AtomicPtr::new(std::ptr::null_mut());

/// Installs the SIGBUS handler, knowing the mappings in `maps`: a fault in
/// one of them exits [`EXIT_REVOKED`] if its enclave is gone (destroyed:
/// the mapping was revoked), else [`EXIT_SIGBUS_LIVE`]; any other SIGBUS
/// kills the process as usual.
pub(super) fn on_sigbus(maps: Vec<(usize, usize, u64)>) {
    let v: Vec<(usize, usize, Vec<u8>)> = maps
        .into_iter()
        .map(|(a, l, id)| {
            let mut d = format!("{GHOSTFS}/enclave_{id}").into_bytes();
            d.push(0);
            (a, l, d)
        })
        .collect();
    REVOCABLE.store(Box::into_raw(Box::new(v)), Ordering::SeqCst);
    // SAFETY: `sigaction` is plain data, filled in below.
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction =
        sigbus as extern "C" fn(i32, *mut libc::siginfo_t, *mut libc::c_void) as libc::sighandler_t;
    sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESETHAND;
    // SAFETY: a valid sigset and sigaction; the handler is
    // async-signal-safe (atomics, access, nanosleep, _exit).
    unsafe {
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut());
    }
}

pub(super) extern "C" fn sigbus(_sig: i32, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO.
    let addr = unsafe { (*info).si_addr() } as usize;
    let p = REVOCABLE.load(Ordering::SeqCst);
    if p.is_null() {
        return;
    }
    // SAFETY: set once before the handler was installed, never freed.
    let maps = unsafe { &*p };
    for (start, len, dir) in maps {
        if addr >= *start && addr < start + len {
            // The directory goes with the destroy that revoked the
            // mapping; give it a moment.
            for _ in 0..200 {
                // SAFETY: a NUL-terminated path.
                if unsafe { libc::access(dir.as_ptr().cast(), libc::F_OK) } != 0 {
                    // SAFETY: ends the process.
                    unsafe { libc::_exit(EXIT_REVOKED) };
                }
                let ts = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 10_000_000,
                };
                // SAFETY: a valid timespec.
                unsafe { libc::nanosleep(&ts, std::ptr::null_mut()) };
            }
            // SAFETY: ends the process.
            unsafe { libc::_exit(EXIT_SIGBUS_LIVE) };
        }
    }
    // Not ours: SA_RESETHAND restored the default, the fault repeats.
}
