//! Checked wrappers over the system calls an agent makes.
//!
//! Through `nix` where it has a safe call (signals, signalfd, eventfd,
//! poll, affinity, mlockall). The raw calls (the ghost ioctls and
//! `ghost_run`, the calls `nix` lacks or has no safe form of) and the
//! mappings live in [`crate::ffi`] and are re-exported here, so that
//! callers find every system call in one place.
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
use std::os::fd::{AsFd, BorrowedFd};

use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow, Signal};
use nix::unistd::Pid;

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

/// The calling thread's id.
pub fn gettid() -> i32 {
    nix::unistd::gettid().as_raw()
}

/// The CPU the calling thread runs on.
pub fn current_cpu() -> Result<usize> {
    nix::sched::sched_getcpu().map_err(|e| Error::sys("sched_getcpu", e as i32))
}

/// Pins the calling thread to `cpu` (`sched_setaffinity`).
pub fn pin_to_cpu(cpu: usize) -> Result<()> {
    let what = || format!("sched_setaffinity to CPU {cpu}");
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu).map_err(|e| Error::sys(what(), e as i32))?;
    nix::sched::sched_setaffinity(Pid::from_raw(0), &set).map_err(|e| Error::sys(what(), e as i32))
}

/// Locks every current and future page of the process in memory
/// (`mlockall(MCL_CURRENT | MCL_FUTURE)`), so that an agent never waits
/// for a page fault while it schedules.
pub fn mlockall() -> Result<()> {
    use nix::sys::mman::MlockAllFlags;
    nix::sys::mman::mlockall(MlockAllFlags::MCL_CURRENT | MlockAllFlags::MCL_FUTURE)
        .map_err(|e| Error::sys("mlockall(MCL_CURRENT | MCL_FUTURE)", e as i32))
}

/// The CPUs thread `tid` may run on (`sched_getaffinity`). A bare
/// [`Errno`] (`ESRCH`: no such thread): the agent runtime calls it while it
/// reads messages.
pub fn sched_getaffinity(tid: i32) -> std::result::Result<CpuMask, Errno> {
    let set = nix::sched::sched_getaffinity(Pid::from_raw(tid)).map_err(|e| Errno(e as i32))?;
    let mut mask = CpuMask::new();
    for cpu in 0..CpuMask::CPUS.min(nix::sched::CpuSet::count()) {
        if set.is_set(cpu).unwrap_or(false) {
            mask.set(cpu);
        }
    }
    Ok(mask)
}

/// A set of signals; numbers that are not signals are left out.
fn sigset(sigs: &[i32]) -> SigSet {
    let mut set = SigSet::empty();
    for &s in sigs {
        if let Ok(sig) = Signal::try_from(s) {
            set.add(sig);
        }
    }
    set
}

/// Changes the calling thread's signal mask: `how` is `SIG_BLOCK`,
/// `SIG_UNBLOCK` or `SIG_SETMASK`. Returns the previous mask.
pub fn sigmask(how: i32, sigs: &[i32]) -> Result<SigSet> {
    let how = match how {
        libc::SIG_BLOCK => SigmaskHow::SIG_BLOCK,
        libc::SIG_UNBLOCK => SigmaskHow::SIG_UNBLOCK,
        libc::SIG_SETMASK => SigmaskHow::SIG_SETMASK,
        _ => return Err(Error::sys("pthread_sigmask", libc::EINVAL)),
    };
    let mut old = SigSet::empty();
    pthread_sigmask(how, Some(&sigset(sigs)), Some(&mut old))
        .map_err(|e| Error::sys("pthread_sigmask", e as i32))?;
    Ok(old)
}

/// Restores a signal mask returned by [`sigmask`].
pub fn restore_sigmask(old: &SigSet) {
    let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(old), None);
}

/// A `signalfd(2)` for a set of signals, which the caller must block.
#[derive(Debug)]
pub struct SignalFd {
    fd: nix::sys::signalfd::SignalFd,
}

impl SignalFd {
    /// A non-blocking signalfd for `sigs`.
    pub fn new(sigs: &[i32]) -> Result<Self> {
        use nix::sys::signalfd::SfdFlags;
        let fd = nix::sys::signalfd::SignalFd::with_flags(
            &sigset(sigs),
            SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK,
        )
        .map_err(|e| Error::sys("signalfd", e as i32))?;
        Ok(Self { fd })
    }

    /// The next pending signal, if any.
    pub fn read(&self) -> Option<i32> {
        match self.fd.read_signal() {
            Ok(Some(info)) => Some(info.ssi_signo as i32),
            _ => None,
        }
    }

    /// The descriptor, to poll.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// An `eventfd(2)`: a counter threads use to wake a poller.
#[derive(Debug)]
pub struct EventFd {
    fd: nix::sys::eventfd::EventFd,
}

impl EventFd {
    /// A non-blocking eventfd.
    pub fn new() -> Result<Self> {
        use nix::sys::eventfd::EfdFlags;
        let fd =
            nix::sys::eventfd::EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
                .map_err(|e| Error::sys("eventfd", e as i32))?;
        Ok(Self { fd })
    }

    /// Adds one to the counter (wakes pollers). A full counter (EAGAIN)
    /// already wakes pollers, so the result does not matter.
    pub fn notify(&self) {
        let _ = self.fd.arm();
    }

    /// The descriptor, to poll.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// `poll(2)` on `fds` (descriptor, events) for up to `timeout_ms` (-1:
/// forever). Returns the `revents` of each; `EINTR` counts as no event.
pub fn poll(fds: &[(BorrowedFd<'_>, i16)], timeout_ms: i32) -> Result<Vec<i16>> {
    use nix::poll::{PollFd, PollFlags, PollTimeout};
    let mut p: Vec<PollFd<'_>> = fds
        .iter()
        .map(|(fd, ev)| PollFd::new(*fd, PollFlags::from_bits_retain(*ev)))
        .collect();
    let timeout = PollTimeout::try_from(timeout_ms).unwrap_or(PollTimeout::NONE);
    match nix::poll::poll(&mut p, timeout) {
        Ok(_) => Ok(p
            .iter()
            .map(|x| x.revents().map_or(0, |r| r.bits()))
            .collect()),
        Err(nix::errno::Errno::EINTR) => Ok(vec![0; p.len()]),
        Err(e) => Err(Error::sys("poll", e as i32)),
    }
}

pub use crate::ffi::ghost::{
    ghost_run, ioctl_assoc_queue, ioctl_commit, ioctl_config_queue_wakeup, ioctl_create_queue,
    ioctl_create_queue_raw, ioctl_get_cpu_time, ioctl_null, ioctl_set_default_queue, ioctl_sw_free,
    ioctl_sw_get_info,
};
pub use crate::ffi::os::{
    exit_now, fork_single_threaded, install_wake_handler, sched_getscheduler,
    sched_setscheduler_other, tgkill, thread_count,
};
pub use crate::ffi::{AtomicCell, Mapping};

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

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
        let ((reader, _writer), (tx, rx)) =
            (nix::unistd::pipe().unwrap(), std::sync::mpsc::channel());
        let t = std::thread::spawn(move || {
            sigmask(libc::SIG_UNBLOCK, &[libc::SIGUSR2]).unwrap();
            tx.send(gettid()).unwrap();
            let mut b = [0u8; 1];
            nix::unistd::read(reader.as_raw_fd(), &mut b).map_err(|e| e as i32)
        });
        let tid = rx.recv().unwrap();
        while !t.is_finished() {
            tgkill(tid, libc::SIGUSR2).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(t.join().unwrap(), Err(libc::EINTR));
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
}
