//! Checked wrappers over the system calls an agent makes.
//!
//! Two error styles, on purpose:
//!
//! - setup calls return [`crate::Result`]: an [`Error`] that names the
//!   operation and its file or ioctl;
//! - calls on the scheduling path ([`ghost_run`], the commit and queue
//!   ioctls) return a bare [`Errno`], so that the agent loop never
//!   allocates; [`Errno::context`] turns one into an [`Error`] when it is
//!   reported.

use std::fmt;
use std::mem::{align_of, size_of};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, AtomicI64, AtomicU16, AtomicU32, AtomicU64, AtomicU8};

use crate::error::{errno_name, last_errno, Error, Result};
use crate::txn::CpuMask;

/// An errno returned by a system call on the scheduling path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

impl Errno {
    /// The errno of this thread's last failed system call.
    pub fn last() -> Self {
        Self(last_errno())
    }

    /// The [`Error`] of `what` failing with this errno.
    pub fn context(self, what: impl Into<String>) -> Error {
        Error::sys(what, self.0)
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&errno_name(self.0))
    }
}

/// The [`Error`] of `what` failing with an `std::io` error.
pub fn io_error(what: impl Into<String>, e: &std::io::Error) -> Error {
    Error::sys(what, e.raw_os_error().unwrap_or(0))
}

/// Opens `path` for reading, writing or both; the error names the path.
pub fn open_file(path: &std::path::Path, read: bool, write: bool) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(read)
        .write(write)
        .open(path)
        .map_err(|e| {
            let mode = if write && !read { " for writing" } else { "" };
            io_error(format!("open {}{mode}", path.display()), &e)
        })
}

/// `ioctl(fd, req, arg)`: the call's non-negative result, or its errno.
///
/// # Safety
///
/// `arg` must be what command `req` expects: null for a command without an
/// argument, else a pointer to a live, writable value of the command's
/// argument type (the kernel reads and may write `_IOC_SIZE(req)` bytes
/// there), including any user pointers stored inside it.
pub unsafe fn ioctl<T>(
    fd: BorrowedFd<'_>,
    req: u64,
    arg: *mut T,
) -> std::result::Result<i32, Errno> {
    // SAFETY: the caller vouches for `arg` (see above); `fd` is open.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), req as libc::c_ulong, arg) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(r)
    }
}

/// `ghost_run(gtid, agent_barrier, task_barrier, run_cpu, run_flags)`, the
/// ghost-rs system call with the arguments and semantics of
/// `GHOST_IOC_RUN`: a local yield (`gtid` 0) or a ping
/// (`GHOST_AGENT_GTID`).
///
/// Errors: `ESTALE` (a yield whose `agent_barrier` is stale: read the
/// messages and retry), `EINTR` (a signal), `EINVAL`, `EPERM`.
#[cfg(target_arch = "x86_64")]
pub fn ghost_run(
    gtid: i64,
    agent_barrier: u32,
    task_barrier: u32,
    run_cpu: i32,
    run_flags: i32,
) -> std::result::Result<(), Errno> {
    // SAFETY: a system call with integer arguments only.
    let r = unsafe {
        libc::syscall(
            ghost_abi::NR_GHOST_RUN,
            gtid,
            agent_barrier,
            task_barrier,
            run_cpu,
            run_flags,
        )
    };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// `ghost_run` exists on x86_64 only: `ENOSYS` elsewhere.
#[cfg(not(target_arch = "x86_64"))]
pub fn ghost_run(
    _gtid: i64,
    _agent_barrier: u32,
    _task_barrier: u32,
    _run_cpu: i32,
    _run_flags: i32,
) -> std::result::Result<(), Errno> {
    Err(Errno(libc::ENOSYS))
}

/// The calling thread's id.
pub fn gettid() -> i32 {
    // SAFETY: no arguments; cannot fail.
    unsafe { libc::gettid() }
}

/// The CPU the calling thread runs on.
pub fn current_cpu() -> Result<usize> {
    // SAFETY: no arguments.
    let c = unsafe { libc::sched_getcpu() };
    usize::try_from(c).map_err(|_| Error::last("sched_getcpu"))
}

/// Pins the calling thread to `cpu` (`sched_setaffinity`).
pub fn pin_to_cpu(cpu: usize) -> Result<()> {
    let what = || format!("sched_setaffinity to CPU {cpu}");
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(Error::sys(what(), libc::EINVAL));
    }
    // SAFETY: `cpu_set_t` is a plain bitmask; all zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu < CPU_SETSIZE` (checked above): the bit is inside `set`.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid mask of the size passed.
    if unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) } != 0 {
        return Err(Error::last(what()));
    }
    Ok(())
}

/// Locks every current and future page of the process in memory
/// (`mlockall(MCL_CURRENT | MCL_FUTURE)`), so that an agent never waits
/// for a page fault while it schedules.
pub fn mlockall() -> Result<()> {
    // SAFETY: flags only.
    if unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) } != 0 {
        return Err(Error::last("mlockall(MCL_CURRENT | MCL_FUTURE)"));
    }
    Ok(())
}

/// The scheduling policy of thread `tid` (0: the caller), flags included
/// (`SCHED_RESET_ON_FORK`).
pub fn sched_getscheduler(tid: i32) -> Result<i32> {
    // SAFETY: an integer argument only.
    let p = unsafe { libc::sched_getscheduler(tid) };
    if p < 0 {
        return Err(Error::last(format!("sched_getscheduler({tid})")));
    }
    Ok(p)
}

/// The CPUs thread `tid` may run on (`sched_getaffinity`). A bare
/// [`Errno`] (`ESRCH`: no such thread): the agent runtime calls it while it
/// reads messages.
pub fn sched_getaffinity(tid: i32) -> std::result::Result<CpuMask, Errno> {
    // SAFETY: `cpu_set_t` is a plain bitmask; all zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a writable mask of the size passed.
    if unsafe { libc::sched_getaffinity(tid, size_of::<libc::cpu_set_t>(), &mut set) } != 0 {
        return Err(Errno::last());
    }
    let mut mask = CpuMask::new();
    for cpu in 0..CpuMask::CPUS.min(libc::CPU_SETSIZE as usize) {
        // SAFETY: `cpu < CPU_SETSIZE`: the bit is inside `set`.
        if unsafe { libc::CPU_ISSET(cpu, &set) } {
            mask.set(cpu);
        }
    }
    Ok(mask)
}

/// Sends `sig` to thread `tid` of this process (`tgkill`).
pub fn tgkill(tid: i32, sig: i32) -> std::result::Result<(), Errno> {
    // SAFETY: integer arguments only.
    let r = unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, sig) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// A set of signals (`sigset_t`).
fn sigset(sigs: &[i32]) -> libc::sigset_t {
    // SAFETY: `sigset_t` is plain data; `sigemptyset` initializes it.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid `sigset_t`; the signal numbers are checked
    // by `sigaddset`, which fails (harmlessly) on invalid ones.
    unsafe {
        libc::sigemptyset(&mut set);
        for &s in sigs {
            libc::sigaddset(&mut set, s);
        }
    }
    set
}

/// Changes the calling thread's signal mask: `how` is `SIG_BLOCK`,
/// `SIG_UNBLOCK` or `SIG_SETMASK`. Returns the previous mask.
pub fn sigmask(how: i32, sigs: &[i32]) -> Result<libc::sigset_t> {
    let set = sigset(sigs);
    // SAFETY: `sigset_t` is plain data, filled in by the call.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid set pointers.
    let r = unsafe { libc::pthread_sigmask(how, &set, &mut old) };
    if r != 0 {
        return Err(Error::sys("pthread_sigmask", r));
    }
    Ok(old)
}

/// Restores a signal mask returned by [`sigmask`].
pub fn restore_sigmask(old: &libc::sigset_t) {
    // SAFETY: `old` is a mask returned by `pthread_sigmask`.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, old, std::ptr::null_mut()) };
}

/// The handler of [`install_wake_handler`]: it does nothing; its only job
/// is to make a blocking system call return `EINTR`.
extern "C" fn wake_handler(_sig: libc::c_int) {}

/// Installs a handler for `sig` that does nothing, without `SA_RESTART`,
/// so that a thread blocked in `ghost_run` or a commit returns `EINTR`
/// when `sig` is sent to it with [`tgkill`].
pub fn install_wake_handler(sig: i32) -> Result<()> {
    // SAFETY: `sigaction` is plain data; the fields are set below.
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction = wake_handler as extern "C" fn(libc::c_int) as libc::sighandler_t;
    sa.sa_flags = 0;
    // SAFETY: `sa.sa_mask` is a valid `sigset_t`.
    unsafe { libc::sigemptyset(&mut sa.sa_mask) };
    // SAFETY: a valid `sigaction`; the handler is async-signal-safe (it
    // does nothing).
    if unsafe { libc::sigaction(sig, &sa, std::ptr::null_mut()) } != 0 {
        return Err(Error::last(format!("sigaction({sig})")));
    }
    Ok(())
}

/// A `signalfd(2)` for a set of signals, which the caller must block.
#[derive(Debug)]
pub struct SignalFd {
    fd: OwnedFd,
}

impl SignalFd {
    /// A non-blocking signalfd for `sigs`.
    pub fn new(sigs: &[i32]) -> Result<Self> {
        let set = sigset(sigs);
        // SAFETY: a valid set; -1 asks for a new descriptor.
        let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) };
        if fd < 0 {
            return Err(Error::last("signalfd"));
        }
        // SAFETY: a new descriptor, owned from here on.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self { fd })
    }

    /// The next pending signal, if any.
    pub fn read(&self) -> Option<i32> {
        // SAFETY: plain data, filled in by `read`.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let n = size_of::<libc::signalfd_siginfo>();
        // SAFETY: `info` is writable for `n` bytes.
        let r = unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                (&mut info as *mut libc::signalfd_siginfo).cast(),
                n,
            )
        };
        (r == n as isize).then_some(info.ssi_signo as i32)
    }

    /// The descriptor, to poll.
    pub fn fd(&self) -> BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.fd.as_fd()
    }
}

/// An `eventfd(2)`: a counter threads use to wake a poller.
#[derive(Debug)]
pub struct EventFd {
    fd: OwnedFd,
}

impl EventFd {
    /// A non-blocking eventfd.
    pub fn new() -> Result<Self> {
        // SAFETY: integer arguments only.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(Error::last("eventfd"));
        }
        // SAFETY: a new descriptor, owned from here on.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self { fd })
    }

    /// Adds one to the counter (wakes pollers).
    pub fn notify(&self) {
        let one = 1u64;
        // SAFETY: writes 8 bytes from a live `u64`. A full counter (EAGAIN)
        // already wakes pollers, so the result does not matter.
        let _ = unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    /// The descriptor, to poll.
    pub fn fd(&self) -> BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.fd.as_fd()
    }
}

/// `poll(2)` on `fds` (descriptor, events) for up to `timeout_ms` (-1:
/// forever). Returns the `revents` of each; `EINTR` counts as no event.
pub fn poll(fds: &[(BorrowedFd<'_>, i16)], timeout_ms: i32) -> Result<Vec<i16>> {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|(fd, ev)| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: *ev,
            revents: 0,
        })
        .collect();
    // SAFETY: `p` holds `p.len()` valid `pollfd`s.
    let r = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, timeout_ms) };
    if r < 0 {
        let e = last_errno();
        if e != libc::EINTR {
            return Err(Error::sys("poll", e));
        }
    }
    Ok(p.iter()
        .map(|x| if r < 0 { 0 } else { x.revents })
        .collect())
}

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
    ptr: *mut u8,
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
    /// in errors.
    pub fn map_shared(fd: BorrowedFd<'_>, len: usize, prot: i32, what: &str) -> Result<Self> {
        Self::map(fd.as_raw_fd(), len, prot, libc::MAP_SHARED, what)
    }

    /// Zeroed anonymous shared memory of `len` bytes: a stand-in for a
    /// kernel mapping in tests, and memory that outlives `fork`.
    pub fn anonymous(len: usize) -> Result<Self> {
        Self::map(
            -1,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            "anonymous memory",
        )
    }

    fn map(fd: i32, len: usize, prot: i32, flags: i32, what: &str) -> Result<Self> {
        if len == 0 {
            return Err(Error::sys(format!("mmap {what} (0 bytes)"), libc::EINVAL));
        }
        // SAFETY: a new mapping at an address the kernel chooses: nothing
        // existing is replaced.
        let p = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, fd, 0) };
        if p == libc::MAP_FAILED {
            return Err(Error::last(format!("mmap {what} ({len} bytes)")));
        }
        Ok(Self { ptr: p.cast(), len })
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
        let p = unsafe { self.ptr.add(off) };
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
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
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
    fn errno_context_names_the_call() {
        let e = Errno(libc::ESTALE).context("ghost_run");
        assert!(e.to_string().starts_with("ghost_run: ESTALE"), "{e}");
        assert_eq!(Errno(libc::EINTR).to_string(), "EINTR");
    }

    #[test]
    fn wake_signal_interrupts_a_blocked_thread() {
        // What the runtime's shutdown relies on: a thread blocked in a
        // system call returns EINTR when the no-op handler runs.
        install_wake_handler(libc::SIGUSR2).unwrap();
        let (mut fds, (tx, rx)) = ([0; 2], std::sync::mpsc::channel());
        // SAFETY: `fds` has room for two descriptors.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let reader = fds[0];
        let t = std::thread::spawn(move || {
            sigmask(libc::SIG_UNBLOCK, &[libc::SIGUSR2]).unwrap();
            tx.send(gettid()).unwrap();
            let mut b = [0u8; 1];
            // SAFETY: reads into a live one-byte buffer.
            let r = unsafe { libc::read(reader, b.as_mut_ptr().cast(), 1) };
            (r, last_errno())
        });
        let tid = rx.recv().unwrap();
        while !t.is_finished() {
            tgkill(tid, libc::SIGUSR2).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(t.join().unwrap(), (-1, libc::EINTR));
        // SAFETY: closing the pipe this test opened.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
    }

    #[test]
    fn signalfd_reads_blocked_signals() {
        let old = sigmask(libc::SIG_BLOCK, &[libc::SIGUSR1]).unwrap();
        let fd = SignalFd::new(&[libc::SIGUSR1]).unwrap();
        assert_eq!(fd.read(), None);
        tgkill(gettid(), libc::SIGUSR1).unwrap();
        let rev = poll(&[(fd.fd(), libc::POLLIN)], 1000).unwrap();
        assert_eq!(rev, vec![libc::POLLIN]);
        assert_eq!(fd.read(), Some(libc::SIGUSR1));
        restore_sigmask(&old);
        let ev = EventFd::new().unwrap();
        assert_eq!(poll(&[(ev.fd(), libc::POLLIN)], 0).unwrap(), vec![0]);
        ev.notify();
        assert_eq!(
            poll(&[(ev.fd(), libc::POLLIN)], 0).unwrap(),
            vec![libc::POLLIN]
        );
    }

    #[test]
    fn affinity_of_a_thread_and_of_none() {
        let mine = sched_getaffinity(gettid()).unwrap();
        assert!(mine.contains(current_cpu().unwrap()));
        assert_eq!(sched_getaffinity(0), Ok(mine));
        // Above any pid the kernel hands out.
        assert_eq!(sched_getaffinity(i32::MAX), Err(Errno(libc::ESRCH)));
    }

    #[test]
    fn anonymous_zero_length_is_refused() {
        assert_eq!(Mapping::anonymous(0).unwrap_err().errno, libc::EINVAL);
    }
}
