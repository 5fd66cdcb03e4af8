//! The few system calls `nix` has no safe wrapper for, each behind a
//! wrapper whose contract makes it sound: `tgkill`, `sched_getscheduler`,
//! `sched_setscheduler`, `sigaction` with a handler that does nothing, and
//! `fork` of a single-threaded process.

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

use crate::error::{Error, Result};
use crate::sys::Errno;

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

/// Sends `sig` to thread `tid` of this process (`tgkill`).
pub fn tgkill(tid: i32, sig: i32) -> std::result::Result<(), Errno> {
    let pid = nix::unistd::getpid().as_raw();
    // SAFETY: integer arguments only.
    let r = unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, sig) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
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

/// The number of threads of this process that may still run user code:
/// the entries of `/proc/self/task` not yet exiting. A joined thread can
/// linger there for a moment while the kernel finishes its exit: its joiner
/// is woken when its tid is cleared, in `exit_mm()`, while it still has its
/// memory map, so "has no address space" does not catch it (ghost-bench
/// met that window). It has `PF_EXITING` (0x4) in its `stat` flags from the
/// start of `do_exit()`, before that: it is not counted, nor is one gone.
pub fn thread_count() -> Result<usize> {
    let dir = std::fs::read_dir("/proc/self/task")
        .map_err(|e| crate::sys::io_error("read /proc/self/task", &e))?;
    let live = |e: &std::fs::DirEntry| {
        std::fs::read_to_string(e.path().join("stat"))
            .ok()
            .and_then(|s| stat_flags(&s))
            .is_some_and(|f| f & PF_EXITING == 0)
    };
    Ok(dir.flatten().filter(live).count())
}

/// The kernel's `PF_EXITING` task flag.
const PF_EXITING: u64 = 0x4;

/// The `flags` field (the 9th) of a `/proc/<pid>/task/<tid>/stat` line;
/// `None` if it does not parse. The command name (2nd, in parentheses) may
/// hold spaces and parentheses: fields are counted after the last `)`.
fn stat_flags(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(6)?.parse().ok()
}

/// `fork()`, refused (`EBUSY`) unless this process has a single thread:
/// then the child is a full copy with no lock held by a vanished thread, so
/// it may run any code. No other thread can appear between the check and
/// the `fork`: only the one thread could create it.
pub fn fork_single_threaded() -> Result<nix::unistd::ForkResult> {
    let n = thread_count()?;
    if n != 1 {
        return Err(Error::sys(
            format!("fork: the process has {n} threads, not 1"),
            libc::EBUSY,
        ));
    }
    // SAFETY: the process is single-threaded (checked above), which is
    // `fork`'s requirement for a child that runs arbitrary code.
    unsafe { nix::unistd::fork() }.map_err(|e| Error::sys("fork", e as i32))
}

/// `_exit(code)`: ends the process now, without running destructors or
/// `atexit` handlers, and without waiting for its other threads (for a
/// forked child, which must not run the parent's).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` is async-signal-safe and takes an integer; it does
    // not return.
    unsafe { libc::_exit(code) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_flags_after_the_command_name() {
        let line = "42 (a) b (c)) R 1 42 42 0 -1 4194560 100 0 0 0";
        assert_eq!(stat_flags(line), Some(4194560));
        assert_eq!(stat_flags("42 (x) R 1"), None);
        assert_eq!(stat_flags("garbage"), None);
        let me = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert_eq!(stat_flags(&me).map(|f| f & PF_EXITING), Some(0));
    }

    #[test]
    fn fork_is_refused_with_other_threads() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || rx.recv());
        assert!(thread_count().unwrap() >= 2);
        let e = fork_single_threaded().unwrap_err();
        assert_eq!(e.errno, libc::EBUSY, "{e}");
        drop(tx);
        let _ = t.join();
    }
}
