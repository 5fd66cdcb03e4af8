//! Small system helpers of the fuzz.

use super::rng::child;
use super::{abi, destroy_all_enclaves, sys, Duration, Exit, File, Instant, GHOSTFS};
use std::os::fd::AsRawFd;

pub(super) fn open(p: &str, flags: i32) -> Result<File, i32> {
    sys::open_raw(p, flags)
}

/// One `write(2)` (or `pwrite` at `off`) of `data` to a fresh open of `p`.
pub(super) fn write_file(p: &str, data: &[u8], off: Option<i64>) -> Result<i64, i32> {
    let f = open(p, libc::O_WRONLY)?;
    write_fd(f.as_raw_fd(), data, off)
}

pub(super) fn write_fd(fd: i32, data: &[u8], off: Option<i64>) -> Result<i64, i32> {
    sys::write_at(fd, data, off)
}

/// `ghost_run` (syscall 463) with raw arguments.
pub(super) fn ghost_run(a: [i64; 5]) -> Result<i64, i32> {
    sys::ghost_run_args(a)
}

/// An ioctl with raw arguments (see [`sys::ioctl_raw`]: `arg` never points
/// at memory we need intact).
pub(super) fn raw_ioctl(fd: i32, cmd: u64, arg: usize) -> Result<i64, i32> {
    sys::ioctl_raw(fd, cmd, arg)
}

pub(super) fn set_affinity(tid: i32, cpus: &[usize]) -> Result<i64, i32> {
    sys::set_affinity(tid, cpus).map(|()| 0)
}

pub(super) fn set_policy(tid: i32, policy: i32) -> Result<i64, i32> {
    sys::set_policy(tid, policy).map(|()| 0)
}

pub(super) fn sleep_us(us: u64) {
    std::thread::sleep(Duration::from_micros(us));
}

/// Whether `fd` is open in this process.
pub(super) fn fd_open(fd: i64) -> bool {
    i32::try_from(fd).is_ok_and(|fd| fd >= 0 && sys::fd_flags(fd) >= 0)
}

/// `waitid(WNOWAIT)`: whether child `pid` has ended (not reaped).
pub(super) fn ended(pid: i32) -> bool {
    sys::ended(pid)
}

/// Waits up to `ms` for child `pid`; `None` if it did not end.
pub(super) fn wait_for_exit(pid: i32, ms: u64) -> Result<Option<Exit>, String> {
    let end = Instant::now() + Duration::from_millis(ms);
    loop {
        if ended(pid) {
            return sys::wait_child(pid).map(Some);
        }
        if Instant::now() > end {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits up to `ms` for child `pid`, else kills it; how it ended, and
/// whether it had to be killed. A child that does not die of `SIGKILL`
/// within 10 s is stuck in the kernel: an error naming where.
pub(super) fn reap(pid: i32, ms: u64) -> Result<(Exit, bool), String> {
    if let Some(e) = wait_for_exit(pid, ms)? {
        return Ok((e, false));
    }
    sys::kill(pid, libc::SIGKILL);
    match wait_for_exit(pid, 10_000)? {
        Some(e) => Ok((e, true)),
        None => Err(format!(
            "process {pid} did not die of SIGKILL within 10 s: stuck in the kernel{}",
            where_stuck(pid)
        )),
    }
}

/// Where the threads of process `pid` are in the kernel (state, wchan,
/// stack), for a hang report.
pub(super) fn where_stuck(pid: i32) -> String {
    let mut out = String::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let p = t.path();
        let read = |f: &str| std::fs::read_to_string(p.join(f)).unwrap_or_default();
        let state = read("status")
            .lines()
            .find(|l| l.starts_with("State:"))
            .unwrap_or("")
            .to_string();
        out += &format!(
            "\n      thread {}: {state}, wchan {}, stack:\n        {}",
            t.file_name().to_string_lossy(),
            read("wchan"),
            read("stack").trim().replace('\n', "\n        ")
        );
    }
    out
}

/// [`destroy_all_enclaves`] in a child, bounded: a destroy that does not
/// return within 30 s is a hang.
pub(super) fn destroy_all_bounded() -> Result<(), String> {
    let pid = sys::fork_child(|| {
        child(|| match destroy_all_enclaves() {
            Ok(_) => 0,
            Err(e) => {
                eprintln!("fuzz: {e}");
                1
            }
        })
    })?;
    match wait_for_exit(pid, 30_000)? {
        Some(Exit::Code(0)) => Ok(()),
        Some(e) => Err(format!("destroying the enclaves failed ({e:?})")),
        None => Err(format!(
            "destroying the enclaves did not return within 30 s{}",
            where_stuck(pid)
        )),
    }
}

pub(super) fn exists(id: u64) -> bool {
    std::path::Path::new(&format!("{GHOSTFS}/enclave_{id}")).exists()
}

/// The enclaves there are.
pub(super) fn enclave_ids() -> Vec<u64> {
    std::fs::read_dir(GHOSTFS)
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_prefix("enclave_"))
                        .and_then(|n| n.parse().ok())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Threads of the system in the ghost class, as `tid (comm)`.
pub(super) fn ghost_threads() -> Vec<String> {
    let mut v = Vec::new();
    for p in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        for t in std::fs::read_dir(p.path().join("task"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let Some(tid) = t.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            if sys::sched_policy(tid) == abi::SCHED_GHOST {
                let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
                v.push(format!("{tid} ({})", comm.trim()));
            }
        }
    }
    v
}

/// The kernel log's lines that look like a splat.
pub(super) fn splats(log: &str) -> Vec<String> {
    const PATTERNS: [&str; 19] = [
        "WARNING:",
        "BUG:",
        "Oops",
        "Kernel panic",
        "general protection fault",
        "sleeping function called from invalid context",
        "possible recursive locking",
        "possible circular locking",
        "inconsistent lock state",
        "lock held when returning to user space",
        "suspicious RCU usage",
        "UBSAN:",
        "KASAN:",
        "list_add corruption",
        "list_del corruption",
        "rust_panic",
        "panicked at",
        "blocked for more than",
        "detected stalls",
    ];
    log.lines()
        .filter(|l| PATTERNS.iter().any(|p| l.contains(p)))
        .map(str::to_string)
        .collect()
}
