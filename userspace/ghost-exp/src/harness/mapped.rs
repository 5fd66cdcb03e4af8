//! Memory mappings: the ABI's shared memory (queues, `cpu_data`, status
//! words), the anonymous shared pages a test shares with its children,
//! memory pressure, and the `SIGBUS` of a revoked enclave mapping. With
//! [`super::sys`], the only module of ghost-exp with `unsafe`: every
//! access to a mapping is bounds-checked here, so the rest of the crate
//! reads and writes mappings through safe methods.

use std::io;
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicU32, Ordering};

fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// A memory mapping of our own, unmapped on drop.
pub struct Mapping {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; every access
// is a volatile or atomic one through `&self` (the kernel and other
// processes write it concurrently anyway).
unsafe impl Send for Mapping {}
// SAFETY: as above: shared access is atomic or volatile.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Its first byte's address (for a fault handler's ranges, and as a
    /// pointer argument the kernel checks).
    pub fn addr(&self) -> usize {
        self.ptr as usize
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    fn check(&self, off: usize, size: usize, what: &str) {
        assert!(
            off.checked_add(size).is_some_and(|end| end <= self.len),
            "{what} past the mapping"
        );
    }

    /// Reads the `T` at byte `off` (volatile: the kernel writes concurrently).
    pub fn read<T: Copy>(&self, off: usize) -> T {
        self.check(off, std::mem::size_of::<T>(), "read");
        // SAFETY: in bounds (checked); the mapping is readable.
        unsafe { std::ptr::read_volatile(self.ptr.add(off).cast::<T>()) }
    }

    /// Writes the `T` at byte `off`.
    pub fn write<T: Copy>(&self, off: usize, v: T) {
        self.check(off, std::mem::size_of::<T>(), "write");
        // SAFETY: in bounds (checked); the caller mapped it writable.
        unsafe { std::ptr::write_volatile(self.ptr.add(off).cast::<T>(), v) }
    }

    /// Writes `bytes` at byte `off`, one volatile byte store each.
    pub fn write_bytes(&self, off: usize, bytes: &[u8]) {
        self.check(off, bytes.len(), "write");
        for (i, &b) in bytes.iter().enumerate() {
            // SAFETY: in bounds (checked); the caller mapped it writable.
            unsafe { std::ptr::write_volatile(self.ptr.add(off + i), b) };
        }
    }

    /// The `u32` at byte `off` as an atomic (shared with the kernel).
    pub fn atomic(&self, off: usize) -> &AtomicU32 {
        assert!(off % 4 == 0, "atomic not 4-aligned");
        self.check(off, 4, "atomic");
        // SAFETY: in bounds and 4-aligned (checked; mappings are page
        // aligned); the memory lives as long as `self`.
        unsafe { AtomicU32::from_ptr(self.ptr.add(off).cast()) }
    }

    /// The `u64` at byte `off`, read as two atomic words (4-aligned only).
    pub fn u64(&self, off: usize) -> u64 {
        u64::from(self.atomic(off).load(Ordering::Acquire))
            | (u64::from(self.atomic(off + 4).load(Ordering::Acquire)) << 32)
    }

    /// `mprotect` of the whole mapping.
    pub fn protect(&self, prot: i32) -> Result<(), i32> {
        self.protect_range(0, self.len, prot)
    }

    /// `mprotect` of `len` bytes at byte `off` (page-aligned, inside).
    pub fn protect_range(&self, off: usize, len: usize, prot: i32) -> Result<(), i32> {
        self.check(off, len, "mprotect");
        // SAFETY: a range of our own mapping (checked), whose memory is
        // only reached through this value's checked accessors.
        if unsafe { libc::mprotect(self.ptr.add(off).cast(), len, prot) } == 0 {
            Ok(())
        } else {
            Err(errno())
        }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping once.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// `mmap(NULL, len, prot, flags, fd, off)`.
pub fn mmap_fd(
    fd: &impl std::os::fd::AsRawFd,
    len: usize,
    prot: i32,
    flags: i32,
    off: i64,
) -> Result<Mapping, i32> {
    mmap_raw(fd.as_raw_fd(), len, prot, flags, off)
}

/// `mmap(NULL, len, prot, flags, fd, off)` with any descriptor number (-1
/// for anonymous memory) and flags: the fuzzer passes garbage, which the
/// kernel refuses. Safe: the kernel picks the address (`MAP_FIXED` and
/// `MAP_FIXED_NOREPLACE` are cleared, so nothing of ours is replaced).
pub fn mmap_raw(fd: i32, len: usize, prot: i32, flags: i32, off: i64) -> Result<Mapping, i32> {
    let flags = flags & !(libc::MAP_FIXED | libc::MAP_FIXED_NOREPLACE);
    // SAFETY: a new mapping chosen by the kernel; nothing is overwritten.
    let p = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, fd, off) };
    if p == libc::MAP_FAILED {
        Err(errno())
    } else {
        Ok(Mapping { ptr: p.cast(), len })
    }
}

/// A zeroed shared `T` that survives fork: an anonymous `MAP_SHARED`
/// mapping, never unmapped (the suite's processes are short-lived). `T`
/// must hold atomics only (arrays and structs of them): zeroed memory is
/// then a valid `T`, shared safely between the processes.
pub fn shared_mem<T>() -> Result<&'static T, String> {
    let len = std::mem::size_of::<T>().next_multiple_of(4096);
    let m = mmap_raw(
        -1,
        len,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_SHARED | libc::MAP_ANONYMOUS,
        0,
    )
    .map_err(|e| format!("mmap: {}", ghost::error::errno_name(e)))?;
    let p = m.ptr;
    std::mem::forget(m);
    // SAFETY: a fresh mapping of at least `size_of::<T>()` bytes, page
    // aligned, never unmapped (forgotten above); zeroed memory is a valid
    // `T` (the callers' types hold atomics only).
    Ok(unsafe { &*p.cast::<T>() })
}

/// [`shared_mem`] of at most a page.
pub fn shared_page<T>() -> Result<&'static T, String> {
    assert!(std::mem::size_of::<T>() <= 4096);
    shared_mem()
}

/// `madvise` advice: fault every page in, writable (Linux 5.14).
pub(crate) const MADV_POPULATE_WRITE: i32 = 23;

/// Anonymous private memory, every page written; unmapped on drop.
pub(crate) struct Touched(*mut libc::c_void, usize);

impl Touched {
    /// `len` bytes; `None` if the mapping is refused.
    pub(crate) fn new(len: usize, salt: u8) -> Option<Touched> {
        // SAFETY: a new private anonymous mapping; nothing is overwritten.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return None;
        }
        // Faulted in by the kernel (much faster than a fault per page under
        // TCG), then written to by hand, which also covers a kernel
        // without MADV_POPULATE_WRITE.
        // SAFETY: advice on our own mapping.
        unsafe { libc::madvise(p, len, MADV_POPULATE_WRITE) };
        for off in (0..len).step_by(4096) {
            // SAFETY: inside the mapping, which is writable.
            unsafe { p.cast::<u8>().add(off).write_volatile(salt) };
        }
        Some(Touched(p, len))
    }
}

impl Drop for Touched {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping once.
        unsafe { libc::munmap(self.0, self.1) };
    }
}

/// The enclave mappings of a process, for its SIGBUS handler: `(start,
/// len, NUL-terminated enclave directory)`.
static REVOCABLE: AtomicPtr<Vec<(usize, usize, Vec<u8>)>> = AtomicPtr::new(std::ptr::null_mut());
/// The exit codes of a SIGBUS in one of them: its enclave is gone (the
/// mapping was revoked), or it is still there.
static EXIT_REVOKED: AtomicI32 = AtomicI32::new(1);
static EXIT_LIVE: AtomicI32 = AtomicI32::new(1);

/// Installs the SIGBUS handler, knowing the enclave mappings in `maps`
/// (`(start, len, enclave directory)`): a fault in one of them exits
/// `revoked` if its directory is gone (destroyed: the mapping was revoked),
/// else `live`; any other SIGBUS kills the process as usual. Call once
/// per process.
pub fn on_sigbus(maps: Vec<(usize, usize, String)>, revoked: i32, live: i32) {
    let v: Vec<(usize, usize, Vec<u8>)> = maps
        .into_iter()
        .map(|(a, l, dir)| {
            let mut d = dir.into_bytes();
            d.push(0);
            (a, l, d)
        })
        .collect();
    EXIT_REVOKED.store(revoked, Ordering::SeqCst);
    EXIT_LIVE.store(live, Ordering::SeqCst);
    REVOCABLE.store(Box::into_raw(Box::new(v)), Ordering::SeqCst);
    // SAFETY: `sigaction` is plain data, filled in below.
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction =
        sigbus as extern "C" fn(i32, *mut libc::siginfo_t, *mut libc::c_void) as libc::sighandler_t;
    sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESETHAND;
    // SAFETY: a valid sigset and sigaction; the handler is
    // async-signal-safe (atomics, access, nanosleep, clock_gettime,
    // _exit).
    unsafe {
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut());
    }
}

extern "C" fn sigbus(_sig: i32, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO.
    let addr = unsafe { (*info).si_addr() } as usize;
    let p = REVOCABLE.load(Ordering::SeqCst);
    if p.is_null() {
        return;
    }
    // SAFETY: set before the handler was installed, never freed.
    let maps = unsafe { &*p };
    for (start, len, dir) in maps {
        if addr >= *start && addr < start + len {
            // The directory goes with the destroy that revoked the
            // mapping, as soon as the host lets that destroy run: a hang
            // cap, not a count of tries, ends the wait.
            let t0 = now_ms();
            while now_ms().saturating_sub(t0) < crate::harness::wait::HANG_FLOOR_MS {
                // SAFETY: a NUL-terminated path.
                if unsafe { libc::access(dir.as_ptr().cast(), libc::F_OK) } != 0 {
                    // SAFETY: ends the process.
                    unsafe { libc::_exit(EXIT_REVOKED.load(Ordering::SeqCst)) };
                }
                let ts = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 10_000_000,
                };
                // SAFETY: a valid timespec.
                unsafe { libc::nanosleep(&ts, std::ptr::null_mut()) };
            }
            // SAFETY: ends the process.
            unsafe { libc::_exit(EXIT_LIVE.load(Ordering::SeqCst)) };
        }
    }
    // Not ours: SA_RESETHAND restored the default, the fault repeats.
}

/// `CLOCK_MONOTONIC` in ms (async-signal-safe, for [`sigbus`]).
fn now_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec; clock_gettime is async-signal-safe.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1000 + (ts.tv_nsec as u64) / 1_000_000
}
