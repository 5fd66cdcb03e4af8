//! Checked wrappers over the system calls an agent makes.
//!
//! Through `nix` where it has the call (signals, signalfd, eventfd, poll,
//! affinity, mlockall, the ioctls via its `ioctl_readwrite_bad!`); `libc`
//! only for what `nix` lacks (`ghost_run`, `tgkill`,
//! `sched_getscheduler`/`sched_setscheduler`). Each ioctl has a safe typed
//! wrapper here, so no other module needs `unsafe` for one; the mappings
//! are in [`crate::shm`].
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
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use ghost_abi as abi;
use nix::sys::signal::{
    pthread_sigmask, sigaction, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal,
};
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

/// The ghost ioctls as `nix` declares them: `unsafe fn(fd, *mut arg)`,
/// called only by the typed wrappers below.
mod raw {
    use ghost_abi as abi;

    nix::ioctl_readwrite_bad!(
        create_queue,
        abi::GHOST_IOC_CREATE_QUEUE,
        abi::GhostIocCreateQueue
    );
    nix::ioctl_readwrite_bad!(
        set_default_queue,
        abi::GHOST_IOC_SET_DEFAULT_QUEUE,
        abi::GhostIocSetDefaultQueue
    );
    nix::ioctl_readwrite_bad!(
        config_queue_wakeup,
        abi::GHOST_IOC_CONFIG_QUEUE_WAKEUP,
        abi::GhostIocConfigQueueWakeup
    );
    nix::ioctl_readwrite_bad!(
        assoc_queue,
        abi::GHOST_IOC_ASSOC_QUEUE,
        abi::GhostIocAssocQueue
    );
    nix::ioctl_readwrite_bad!(
        sw_get_info,
        abi::GHOST_IOC_SW_GET_INFO,
        abi::GhostIocSwGetInfo
    );
    nix::ioctl_readwrite_bad!(sw_free, abi::GHOST_IOC_SW_FREE, abi::GhostSwInfo);
    nix::ioctl_readwrite_bad!(
        get_cpu_time,
        abi::GHOST_IOC_GET_CPU_TIME,
        abi::GhostIocGetCpuTime
    );
    nix::ioctl_readwrite_bad!(
        commit_txn,
        abi::GHOST_IOC_COMMIT_TXN,
        abi::GhostIocCommitTxn
    );
    nix::ioctl_readwrite_bad!(
        sync_group_txn,
        abi::GHOST_IOC_SYNC_GROUP_TXN,
        abi::GhostIocCommitTxn
    );
}

/// A `nix` result as the call's non-negative result or a bare [`Errno`].
fn errno_of(r: nix::Result<i32>) -> std::result::Result<i32, Errno> {
    r.map_err(|e| Errno(e as i32))
}

/// Declares a safe wrapper of an ioctl whose argument is plain data (no
/// user pointers inside), read and written in place.
macro_rules! plain_ioctls {
    ($($(#[$doc:meta])* $name:ident => $raw:ident($t:ty);)*) => {$(
        $(#[$doc])*
        pub fn $name(fd: BorrowedFd<'_>, arg: &mut $t) -> std::result::Result<i32, Errno> {
            // SAFETY: `arg` is the command's argument type (the uapi
            // struct `nix` declared it with), live and writable for the
            // call, and holds no pointers the kernel would follow.
            errno_of(unsafe { raw::$raw(fd.as_raw_fd(), arg) })
        }
    )*};
}

plain_ioctls! {
    /// `GHOST_IOC_CREATE_QUEUE`: the new queue's descriptor (see
    /// [`ioctl_create_queue`]).
    ioctl_create_queue_raw => create_queue(abi::GhostIocCreateQueue);
    /// `GHOST_IOC_SET_DEFAULT_QUEUE`.
    ioctl_set_default_queue => set_default_queue(abi::GhostIocSetDefaultQueue);
    /// `GHOST_IOC_ASSOC_QUEUE`: the `GHOST_ASSOC_SF_*` status.
    ioctl_assoc_queue => assoc_queue(abi::GhostIocAssocQueue);
    /// `GHOST_IOC_SW_GET_INFO`: fills in `arg.response`.
    ioctl_sw_get_info => sw_get_info(abi::GhostIocSwGetInfo);
    /// `GHOST_IOC_SW_FREE`.
    ioctl_sw_free => sw_free(abi::GhostSwInfo);
    /// `GHOST_IOC_GET_CPU_TIME`: fills in `arg.runtime`.
    ioctl_get_cpu_time => get_cpu_time(abi::GhostIocGetCpuTime);
}

/// `GHOST_IOC_CREATE_QUEUE` on `ctl`: the new queue's descriptor, owned;
/// the kernel fills in `arg.mapsize`.
pub fn ioctl_create_queue(
    ctl: BorrowedFd<'_>,
    arg: &mut abi::GhostIocCreateQueue,
) -> std::result::Result<OwnedFd, Errno> {
    let fd = ioctl_create_queue_raw(ctl, arg)?;
    // SAFETY: the kernel returned a new descriptor, owned from here on.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `GHOST_IOC_CONFIG_QUEUE_WAKEUP` on `ctl` for queue `qfd`: a message
/// wakes the agents of `w` (none: the agent polls).
pub fn ioctl_config_queue_wakeup(
    ctl: BorrowedFd<'_>,
    qfd: i32,
    w: &[abi::GhostAgentWakeup],
) -> std::result::Result<(), Errno> {
    let mut arg = abi::GhostIocConfigQueueWakeup {
        qfd,
        w: w.as_ptr() as u64,
        ninfo: i32::try_from(w.len()).map_err(|_| Errno(libc::EINVAL))?,
        flags: 0,
    };
    // SAFETY: the command's argument type; `w` points to `ninfo` live
    // `GhostAgentWakeup`s for the duration of the call, which only reads
    // them.
    errno_of(unsafe { raw::config_queue_wakeup(ctl.as_raw_fd(), &mut arg) }).map(|_| ())
}

/// `GHOST_IOC_COMMIT_TXN` (`group` false) or `GHOST_IOC_SYNC_GROUP_TXN`
/// (`group` true) on `ctl` for the CPU bitmask `mask` (`cpu_set_t`
/// layout): the call's result.
pub fn ioctl_commit(
    ctl: BorrowedFd<'_>,
    mask: &[u8],
    group: bool,
) -> std::result::Result<i32, Errno> {
    let mut arg = abi::GhostIocCommitTxn {
        mask_ptr: mask.as_ptr() as u64,
        mask_len: u32::try_from(mask.len()).map_err(|_| Errno(libc::EINVAL))?,
        flags: 0,
    };
    let fd = ctl.as_raw_fd();
    // SAFETY: the command's argument type; `mask_ptr` points to the
    // `mask_len` readable bytes of `mask`, alive for the call, which only
    // reads them.
    errno_of(unsafe {
        if group {
            raw::sync_group_txn(fd, &mut arg)
        } else {
            raw::commit_txn(fd, &mut arg)
        }
    })
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

/// `sched_setscheduler(pid, SCHED_OTHER)` (not in `nix`): moves a task
/// back to CFS.
pub fn sched_setscheduler_other(pid: i32) -> Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid `sched_param` for the duration of the call.
    if unsafe { libc::sched_setscheduler(pid, libc::SCHED_OTHER, &param) } != 0 {
        return Err(Error::last(format!(
            "sched_setscheduler({pid}, SCHED_OTHER)"
        )));
    }
    Ok(())
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
pub fn sigmask(how: i32, sigs: &[i32]) -> Result<libc::sigset_t> {
    let how = match how {
        libc::SIG_BLOCK => SigmaskHow::SIG_BLOCK,
        libc::SIG_UNBLOCK => SigmaskHow::SIG_UNBLOCK,
        libc::SIG_SETMASK => SigmaskHow::SIG_SETMASK,
        _ => return Err(Error::sys("pthread_sigmask", libc::EINVAL)),
    };
    let mut old = SigSet::empty();
    pthread_sigmask(how, Some(&sigset(sigs)), Some(&mut old))
        .map_err(|e| Error::sys("pthread_sigmask", e as i32))?;
    Ok(*old.as_ref())
}

/// Restores a signal mask returned by [`sigmask`].
pub fn restore_sigmask(old: &libc::sigset_t) {
    // SAFETY: `old` is a mask returned by `pthread_sigmask`, so initialised.
    let old = unsafe { SigSet::from_sigset_t_unchecked(*old) };
    let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
}

/// The handler of [`install_wake_handler`]: it does nothing; its only job
/// is to make a blocking system call return `EINTR`.
extern "C" fn wake_handler(_sig: libc::c_int) {}

/// Installs a handler for `sig` that does nothing, without `SA_RESTART`,
/// so that a thread blocked in `ghost_run` or a commit returns `EINTR`
/// when `sig` is sent to it with [`tgkill`].
pub fn install_wake_handler(sig: i32) -> Result<()> {
    let what = || format!("sigaction({sig})");
    let signal = Signal::try_from(sig).map_err(|e| Error::sys(what(), e as i32))?;
    let sa = SigAction::new(
        SigHandler::Handler(wake_handler),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: the handler is async-signal-safe (it does nothing).
    unsafe { sigaction(signal, &sa) }.map_err(|e| Error::sys(what(), e as i32))?;
    Ok(())
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

pub use crate::shm::{AtomicCell, Mapping};

#[cfg(test)]
mod tests {
    use super::*;

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
