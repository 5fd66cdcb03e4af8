//! Thin, checked wrappers over the system calls the tests and the fuzzer
//! use. With [`super::mapped`], the only module of ghost-exp with
//! `unsafe`: every other module calls these safe functions. The ones that
//! take raw integers (descriptor numbers, ioctl commands and argument
//! addresses, `ghost_run` arguments) are safe because the kernel validates
//! them; an address argument is either memory of ours set aside for the
//! kernel to read or fill, or a deliberately invalid one the kernel must
//! refuse with `EFAULT`.

pub(crate) use super::mapped::Touched;
pub use super::mapped::{mmap_fd, shared_page, Mapping};
use ghost_abi as abi;
use std::ffi::CString;
use std::io;

/// Where ghostfs is mounted.
pub const GHOSTFS: &str = "/sys/fs/ghost";

/// The errno of the last failed call.
pub fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// The symbolic name of an errno, for messages.
pub use ghost::error::errno_name;

pub(crate) fn cstr(s: &str) -> CString {
    CString::new(s).expect("path without NUL")
}

/// `mount -t ghost ghost <target>`.
pub fn mount_ghostfs(target: &str) -> Result<(), i32> {
    nix::mount::mount(
        Some("ghost"),
        target,
        Some("ghost"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|e| e as i32)
}

/// `umount <target>`.
pub fn umount(target: &str) -> Result<(), i32> {
    nix::mount::umount(target).map_err(|e| e as i32)
}

/// The filesystem magic of the filesystem holding `path`.
pub fn fs_magic(path: &str) -> Result<u64, i32> {
    nix::sys::statfs::statfs(path)
        .map(|st| st.filesystem_type().0 as u64)
        .map_err(|e| e as i32)
}

/// Makes sure ghostfs is mounted at [`GHOSTFS`].
pub fn ensure_ghostfs() -> Result<(), String> {
    if fs_magic(GHOSTFS) == Ok(u64::from(ghost_abi::GHOST_SUPER_MAGIC)) {
        return Ok(());
    }
    mount_ghostfs(GHOSTFS).map_err(|e| format!("mount -t ghost ghost {GHOSTFS}: {}", errno_name(e)))
}

/// Writes `data` with one `write(2)` to `path`; returns the errno on failure.
pub fn write_once(path: &str, data: &[u8]) -> Result<usize, i32> {
    let p = cstr(path);
    // SAFETY: valid path.
    let fd = unsafe { libc::open(p.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(errno());
    }
    // SAFETY: `fd` is open; `data` is valid for its length.
    let r = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
    let e = errno();
    // SAFETY: `fd` is open and owned here.
    unsafe { libc::close(fd) };
    if r < 0 {
        Err(e)
    } else {
        Ok(r as usize)
    }
}

/// The kernel log, read with `klogctl(SYSLOG_ACTION_READ_ALL)`.
pub fn kernel_log() -> Result<String, i32> {
    // SAFETY: SYSLOG_ACTION_SIZE_BUFFER takes no buffer.
    let size = unsafe { libc::klogctl(10, std::ptr::null_mut(), 0) };
    if size < 0 {
        return Err(errno());
    }
    let mut buf = vec![0u8; size as usize];
    // SAFETY: `buf` is valid for `size` bytes.
    let n = unsafe { libc::klogctl(3, buf.as_mut_ptr().cast(), size) };
    if n < 0 {
        return Err(errno());
    }
    buf.truncate(n as usize);
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// The scheduling policy of thread `tid` (0: the caller).
pub fn sched_policy(tid: i32) -> i32 {
    // SAFETY: plain syscall.
    unsafe { libc::sched_getscheduler(tid) }
}

/// Every thread of the system: its tid and its `/proc/<pid>/task/<tid>`
/// directory (none if `/proc` cannot be read).
pub fn threads() -> Vec<(i32, std::path::PathBuf)> {
    let mut found = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return found;
    };
    for p in procs.flatten() {
        let Ok(tasks) = std::fs::read_dir(p.path().join("task")) else {
            continue;
        };
        for t in tasks.flatten() {
            if let Some(tid) = t.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) {
                found.push((tid, t.path()));
            }
        }
    }
    found
}

/// Every thread `tid` of the system for which `f(tid)` holds, as
/// `tid (comm)`.
pub fn threads_where(f: impl Fn(i32) -> bool) -> Vec<String> {
    threads()
        .into_iter()
        .filter(|&(tid, _)| f(tid))
        .map(|(tid, dir)| {
            let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            format!("{tid} ({})", comm.trim())
        })
        .collect()
}

/// Forks; the child runs `f` and exits with its return value. Returns the
/// child's pid. The caller must be single-threaded.
pub fn fork_child(f: impl FnOnce() -> i32) -> Result<i32, String> {
    // SAFETY: the suite is single-threaded; the child exits with `_exit`.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", errno_name(errno())));
    }
    if pid == 0 {
        let code = f();
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    if let Ok(mut c) = CHILDREN.lock() {
        c.push(pid);
    }
    Ok(pid)
}

/// The children [`fork_child`] started and [`wait_child`] did not reap.
static CHILDREN: std::sync::Mutex<Vec<i32>> = std::sync::Mutex::new(Vec::new());

/// Kills and reaps every child a test left behind (a test that failed
/// half-way); returns how many there were. Destroy the enclaves first: a
/// ghost task without an agent does not even run to die.
pub fn kill_leftover_children() -> usize {
    let left = CHILDREN
        .lock()
        .map(|mut c| std::mem::take(&mut *c))
        .unwrap_or_default();
    for &pid in &left {
        // SAFETY: plain syscall on our own child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    for &pid in &left {
        let _ = wait_child(pid);
    }
    left.len()
}

/// Stops tracking child `pid` (one the kernel left stuck, which
/// [`kill_leftover_children`] could not reap).
pub fn forget_child(pid: i32) {
    if let Ok(mut c) = CHILDREN.lock() {
        c.retain(|&p| p != pid);
    }
}

/// How a child ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Exit {
    /// `exit(code)`.
    Code(i32),
    /// Killed by a signal.
    Signal(i32),
}

/// How long [`wait_child`] waits (ms): a cap that only catches a hang
/// (every caller waits for a child that has been told to end, or whose
/// work is over).
pub(crate) const CHILD_CAP_MS: u64 = 900_000;

/// Waits for child `pid` (up to [`CHILD_CAP_MS`]; then the error shows its
/// threads' states and kernel stacks).
pub fn wait_child(pid: i32) -> Result<Exit, String> {
    let mut status = 0;
    let start = std::time::Instant::now();
    loop {
        // SAFETY: waiting for our own child.
        match unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } {
            r if r == pid => break,
            0 if start.elapsed() < std::time::Duration::from_millis(CHILD_CAP_MS) => {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            0 => {
                return Err(format!(
                    "child {pid} did not end within {} s (a hang); its threads:\n{}",
                    CHILD_CAP_MS / 1000,
                    threads_of(pid)
                ))
            }
            _ => return Err(format!("waitpid: {}", errno_name(errno()))),
        }
    }
    if let Ok(mut c) = CHILDREN.lock() {
        c.retain(|&p| p != pid);
    }
    if libc::WIFEXITED(status) {
        Ok(Exit::Code(libc::WEXITSTATUS(status)))
    } else {
        Ok(Exit::Signal(libc::WTERMSIG(status)))
    }
}

/// A pipe: `(read end, write end)`.
pub fn pipe() -> Result<(std::fs::File, std::fs::File), String> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| format!("pipe: {}", errno_name(e as i32)))?;
    Ok((r.into(), w.into()))
}

/// The gtid of task `tid` (`/proc/<tid>/ghost/gtid`); 0 if it cannot be read.
pub fn gtid_of(tid: i32) -> i64 {
    std::fs::read_to_string(format!("/proc/{tid}/ghost/gtid"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Sets the allowed CPUs of `tid` (0: the caller).
pub fn set_affinity(tid: i32, cpus: &[usize]) -> Result<(), i32> {
    let mut set = nix::sched::CpuSet::new();
    for &c in cpus {
        set.set(c).map_err(|e| e as i32)?;
    }
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(tid), &set).map_err(|e| e as i32)
}

/// `CAP_SYS_ADMIN` and `CAP_SYS_NICE` (linux/capability.h).
pub const CAP_SYS_ADMIN: u32 = 21;
pub const CAP_SYS_NICE: u32 = 23;

/// Drops the capabilities `caps` (numbers, e.g. [`CAP_SYS_NICE`]) from
/// the calling thread's effective, permitted and inheritable sets (capget
/// and capset, `_LINUX_CAPABILITY_VERSION_3`).
pub fn drop_caps(caps: &[u32]) -> Result<(), i32> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut h = Header {
        version: 0x2008_0522,
        pid: 0,
    };
    let mut d = [Data::default(); 2];
    // SAFETY: capget fills the header's two data structs (version 3).
    if unsafe { libc::syscall(libc::SYS_capget, &raw mut h, d.as_mut_ptr()) } != 0 {
        return Err(errno());
    }
    for &c in caps {
        let Some(data) = d.get_mut((c / 32) as usize) else {
            return Err(libc::EINVAL);
        };
        let bit = 1u32 << (c % 32);
        data.effective &= !bit;
        data.permitted &= !bit;
        data.inheritable &= !bit;
    }
    // SAFETY: capset with the header and the two data structs of version 3.
    if unsafe { libc::syscall(libc::SYS_capset, &raw mut h, d.as_ptr()) } != 0 {
        return Err(errno());
    }
    Ok(())
}

/// The threads in the ghost class, for a stall report: a count by state
/// (`R`, `S`, `D`, ...) and, for the first few, `tid (comm) state wchan`
/// and the kernel stack of the running ones.
pub(crate) fn ghost_states() -> String {
    let mut by_state = std::collections::BTreeMap::<char, u32>::new();
    let mut lines = Vec::new();
    // Runnable and uninterruptible threads first: they tell a stall.
    let mut threads = threads();
    threads.sort_by_cached_key(|(tid, dir)| {
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
        let sleeping = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].trim_start().chars().next())
            == Some('S');
        (sleeping, *tid)
    });
    for (tid, dir) in threads {
        if sched_policy(tid) != ghost_abi::SCHED_GHOST {
            continue;
        }
        let rd = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
        let stat = rd("stat");
        let state = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].trim_start().chars().next())
            .unwrap_or('?');
        *by_state.entry(state).or_default() += 1;
        if lines.len() < 12 {
            let cpu = stat
                .rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().nth(36))
                .unwrap_or("?");
            let mut l = format!(
                "{tid} ({}) {state} cpu {cpu} {}",
                rd("comm").trim(),
                rd("wchan")
            );
            if state != 'S' && lines.len() < 4 {
                for f in rd("stack").lines().take(8) {
                    l.push_str("\n      ");
                    l.push_str(f);
                }
            }
            lines.push(l);
        }
    }
    format!(
        "ghost threads by state {by_state:?}:\n    {}",
        lines.join("\n    ")
    )
}

/// The user + system time of the thread whose `/proc` directory is `dir`,
/// in clock ticks (USER_HZ, 100 per second); 0 if unreadable. (Not
/// `schedstat`: our kernels have no `CONFIG_SCHED_INFO`.)
pub(crate) fn stat_cpu_ticks(dir: &std::path::Path) -> u64 {
    let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
    stat.rfind(')').map_or(0, |i| {
        stat[i + 1..]
            .split_whitespace()
            .skip(11)
            .take(2)
            .filter_map(|x| x.parse::<u64>().ok())
            .sum()
    })
}

/// The user + system time of every thread of process `pid`, in clock
/// ticks.
pub(crate) fn proc_cpu_ticks(pid: i32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|t| stat_cpu_ticks(&t.path()))
        .sum()
}

/// The threads of process `pid`: `tid (comm) state cpu wchan` and kernel
/// stack.
pub(crate) fn threads_of(pid: i32) -> String {
    let mut out = String::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return format!("no process {pid}");
    };
    for t in tasks.flatten() {
        let rd = |f: &str| std::fs::read_to_string(t.path().join(f)).unwrap_or_default();
        let stat = rd("stat");
        let rest: Vec<&str> = stat
            .rfind(')')
            .map(|i| stat[i + 1..].split_whitespace().collect())
            .unwrap_or_default();
        let tid = t.file_name().to_string_lossy().into_owned();
        out.push_str(&format!(
            "    {tid} ({}) {} cpu {} policy {} wchan {} cpu time {} ticks\n",
            rd("comm").trim(),
            rest.first().unwrap_or(&"?"),
            rest.get(36).unwrap_or(&"?"),
            sched_policy(tid.parse().unwrap_or(0)),
            rd("wchan"),
            stat_cpu_ticks(&t.path())
        ));
        for f in rd("stack").lines().take(12) {
            out.push_str(&format!("        {f}\n"));
        }
    }
    out
}

/// `sched_setscheduler(pid, policy, 0)`: the errno on failure.
pub(crate) fn set_policy(pid: i32, policy: i32) -> Result<(), i32> {
    let p = libc::sched_param { sched_priority: 0 };
    // SAFETY: plain syscall with a valid parameter.
    if unsafe { libc::sched_setscheduler(pid, policy, &p) } == 0 {
        Ok(())
    } else {
        Err(errno())
    }
}

/// The nice value of `pid`.
pub(crate) fn nice_of(pid: i32) -> i32 {
    // SAFETY: plain syscall.
    unsafe { libc::getpriority(libc::PRIO_PROCESS, pid as u32) }
}

/// `struct sched_attr` (SCHED_ATTR_SIZE_VER1, 56 bytes).
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct SchedAttr {
    pub(crate) size: u32,
    pub(crate) policy: u32,
    pub(crate) flags: u64,
    pub(crate) nice: i32,
    pub(crate) priority: u32,
    pub(crate) runtime: u64,
    pub(crate) deadline: u64,
    pub(crate) period: u64,
    pub(crate) util_min: u32,
    pub(crate) util_max: u32,
}

/// `sched_setattr(pid, {policy, nice, runtime}, 0)`: 0 or the errno.
pub(crate) fn setattr(pid: i32, policy: i32, nice: i32, runtime: u64) -> i32 {
    let a = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy: policy as u32,
        nice,
        runtime,
        ..Default::default()
    };
    // SAFETY: sched_setattr with a valid, fully initialised attribute.
    if unsafe { libc::syscall(libc::SYS_sched_setattr, pid, &a, 0) } == 0 {
        0
    } else {
        errno()
    }
}

/// `sched_getattr(pid)`: the attributes, or the errno.
pub(crate) fn getattr(pid: i32) -> Result<SchedAttr, i32> {
    let mut a = SchedAttr::default();
    let size = std::mem::size_of::<SchedAttr>() as u32;
    // SAFETY: sched_getattr fills at most `size` bytes of `a`.
    if unsafe { libc::syscall(libc::SYS_sched_getattr, pid, &raw mut a, size, 0) } == 0 {
        Ok(a)
    } else {
        Err(errno())
    }
}

/// `kill(pid, sig)` (`sig` 0: whether `pid` exists): 0, or -1 with the
/// errno set.
pub fn kill(pid: i32, sig: i32) -> i32 {
    let sig = match sig {
        0 => None,
        s => match nix::sys::signal::Signal::try_from(s) {
            Ok(s) => Some(s),
            Err(e) => {
                e.set();
                return -1;
            }
        },
    };
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig) {
        Ok(()) => 0,
        Err(e) => {
            e.set();
            -1
        }
    }
}

/// `sched_yield()`.
pub fn sched_yield() {
    let _ = nix::sched::sched_yield();
}

/// `pause()`: sleeps until a signal arrives (the callers are killed).
pub fn pause() {
    nix::unistd::pause();
}

/// A child's life that only sleeps, until the test (or the suite's
/// cleanup) kills it: a sleep of fixed length could end while a test on a
/// slow machine still uses the child.
pub(crate) fn sleep_until_killed() -> i32 {
    loop {
        pause();
    }
}

/// Sleeps while `word` holds `val` (`FUTEX_WAIT`, not private: `word` may
/// be in a page shared by processes); returns at a wake, a signal or at
/// once if `word` changed.
pub(crate) fn futex_wait(word: &std::sync::atomic::AtomicU32, val: u32) {
    // SAFETY: a valid, aligned u32 that outlives the call; no timeout.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            val,
            std::ptr::null::<libc::timespec>(),
        )
    };
}

/// Wakes every thread in [`futex_wait`] on `word`.
pub(crate) fn futex_wake(word: &std::sync::atomic::AtomicU32) {
    // SAFETY: a valid, aligned u32; FUTEX_WAKE only reads its address.
    unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX) };
}

/// Whether thread `tid` sleeps (state `S` in `/proc/<tid>/stat`; for an
/// agent thread: blocked in `ghost_run`).
pub(crate) fn asleep(tid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{tid}/stat")).is_ok_and(|s| {
        s.rfind(')')
            .and_then(|i| s[i + 1..].trim_start().chars().next())
            == Some('S')
    })
}

/// The calling thread's id.
pub fn gettid() -> i32 {
    nix::unistd::gettid().as_raw()
}

/// `setpriority(PRIO_PROCESS, pid, nice)` (`pid` 0: the caller): 0, or -1
/// with the errno set.
pub fn setpriority(pid: i32, nice: i32) -> i32 {
    // SAFETY: plain syscall with integer arguments.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, pid as u32, nice) }
}

/// The CPU time of the calling thread (`CLOCK_THREAD_CPUTIME_ID`), ns.
pub(crate) fn thread_cpu_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is writable; a valid clock id.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// The number of CPUs `pid` may use.
pub(crate) fn affinity_count(pid: i32) -> i32 {
    let Ok(set) = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(pid)) else {
        return -1;
    };
    (0..nix::sched::CpuSet::count())
        .filter(|&c| set.is_set(c).unwrap_or(false))
        .count() as i32
}

/// `sched_setscheduler(pid, policy, prio)`: 0 or the errno.
pub(crate) fn setscheduler(pid: i32, policy: i32, prio: i32) -> i32 {
    super::figures::ops(1);
    let p = libc::sched_param {
        sched_priority: prio,
    };
    // SAFETY: plain syscall with a valid parameter.
    if unsafe { libc::sched_setscheduler(pid, policy, &p) } == 0 {
        0
    } else {
        errno()
    }
}

/// `ghost_run(GHOST_AGENT_GTID, 0, 0, cpu, 0)` (a ping): 0 or the errno.
pub(crate) fn ghost_run_ping(cpu: usize) -> i32 {
    super::figures::ops(1);
    // SAFETY: the ghost_run syscall with plain integer arguments.
    let r = unsafe {
        libc::syscall(
            abi::NR_GHOST_RUN,
            abi::GHOST_AGENT_GTID,
            0u32,
            0u32,
            cpu as i32,
            0,
        )
    };
    if r == 0 {
        0
    } else {
        errno()
    }
}

/// `bpf(BPF_PROG_LOAD)` of a program type the kernel does not have (ghOSt's
/// ghost program types are not part of ghost-rs): 0 or the errno.
pub(crate) fn bpf_prog_load() -> i32 {
    super::figures::ops(1);
    // union bpf_attr, BPF_PROG_LOAD part: prog_type first; the rest zero.
    let mut attr = [0u32; 32];
    attr[0] = 0x7fff;
    // SAFETY: a zeroed attribute buffer of the stated size.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            5, // BPF_PROG_LOAD
            attr.as_mut_ptr(),
            std::mem::size_of_val(&attr),
        )
    };
    if r >= 0 {
        // SAFETY: a descriptor the call returned, closed once.
        unsafe { libc::close(r as i32) };
        0
    } else {
        errno()
    }
}

/// Becomes uid 65534 with primary group `gid` and no other group.
pub(crate) fn become_nobody(gid: u32) -> bool {
    // SAFETY: plain syscalls in a child process.
    unsafe {
        libc::setgroups(0, std::ptr::null()) == 0
            && libc::setgid(gid) == 0
            && libc::setuid(65534) == 0
    }
}

/// Writes `0` to the `tasks` file `path` (no allocation: safe in a child
/// forked from a threaded process).
pub(crate) fn enter(path: &std::ffi::CStr) -> bool {
    // SAFETY: plain syscalls on a valid path and our own descriptor.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return false;
        }
        let ok = libc::write(fd, b"0".as_ptr().cast(), 1) == 1;
        libc::close(fd);
        ok
    }
}

/// Whether child `pid` has ended (it stays to be reaped by
/// `wait_child`).
pub(crate) fn ended(pid: i32) -> bool {
    // SAFETY: `info` is a plain C struct waitid fills in; our own child.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        ) == 0
            && info.si_pid() == pid
    }
}

/// `membarrier(MEMBARRIER_CMD_GLOBAL)`: returns after an RCU grace period
/// (`synchronize_rcu()`), which needs every CPU's quiescent state and the
/// RCU kernel threads; the errno on failure.
pub(crate) fn membarrier_global() -> Result<(), i32> {
    const MEMBARRIER_CMD_GLOBAL: libc::c_long = 1;
    // SAFETY: plain syscall with integer arguments.
    let r = unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) };
    if r < 0 {
        Err(errno())
    } else {
        Ok(())
    }
}

/// Pins the caller to `cpu`.
pub(crate) fn pin(cpu: usize) -> bool {
    set_affinity(0, &[cpu]).is_ok()
}

/// The errno of a `ghost_run(gtid, barrier, 0, cpu, 0)` (0: success).
pub(crate) fn ghost_run(gtid: i64, barrier: u32, cpu: i32) -> i32 {
    // SAFETY: the ghost_run syscall with plain integer arguments.
    let r = unsafe { libc::syscall(abi::NR_GHOST_RUN, gtid, barrier, 0u32, cpu, 0) };
    if r < 0 {
        errno()
    } else {
        0
    }
}

/// Waits for `POLLPRI` on `f` (nominally `ms`; it gives up only after
/// [`super::wait::hang_cap`]`(ms)`); true if it came.
pub(crate) fn poll_pri(f: &std::fs::File, ms: u64) -> Result<bool, String> {
    use std::os::fd::AsRawFd;
    let mut pfd = libc::pollfd {
        fd: f.as_raw_fd(),
        events: libc::POLLPRI,
        revents: 0,
    };
    let cap = i32::try_from(super::wait::hang_cap(ms)).unwrap_or(i32::MAX);
    // SAFETY: one valid pollfd.
    let r = unsafe { libc::poll(&mut pfd, 1, cap) };
    if r < 0 {
        return Err(format!("poll: {}", errno_name(errno())));
    }
    Ok(r > 0 && pfd.revents & libc::POLLPRI != 0)
}

/// `tgkill(pid, tid, sig)`: 0, or -1 with the errno set.
pub fn tgkill(pid: i32, tid: i32, sig: i32) -> i64 {
    // SAFETY: plain syscall with integer arguments.
    unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, sig) }
}

/// The raw `ghost_run(gtid, agent_barrier, task_barrier, run_cpu,
/// run_flags)` syscall: its return value (-1 with the errno set on failure).
pub fn ghost_run_raw(
    gtid: i64,
    agent_barrier: u32,
    task_barrier: u32,
    cpu: i32,
    run_flags: i32,
) -> i64 {
    // SAFETY: the ghost_run syscall with plain integer arguments.
    unsafe {
        libc::syscall(
            abi::NR_GHOST_RUN,
            gtid,
            agent_barrier,
            task_barrier,
            cpu,
            run_flags,
        )
    }
}

/// `sched_setattr(pid, attr, 0)` with the 48-byte first version of the
/// attribute struct (`SCHED_ATTR_SIZE_VER0`), `policy` and `runtime` set:
/// 0 or the errno.
pub fn setattr_ver0(pid: i32, policy: i32, runtime: u64) -> i32 {
    #[repr(C)]
    #[derive(Default)]
    struct SchedAttrVer0 {
        size: u32,
        policy: u32,
        flags: u64,
        nice: i32,
        priority: u32,
        runtime: u64,
        deadline: u64,
        period: u64,
    }
    let mut a = SchedAttrVer0 {
        size: std::mem::size_of::<SchedAttrVer0>() as u32,
        policy: policy as u32,
        runtime,
        ..Default::default()
    };
    // SAFETY: sched_setattr with a valid VER0 (48-byte) attribute struct.
    let x = unsafe { libc::syscall(libc::SYS_sched_setattr, pid, &raw mut a, 0) };
    if x == 0 {
        0
    } else {
        errno()
    }
}

/// `write(fd, data)` on a raw descriptor: the bytes written, or -1 with the
/// errno set.
pub fn write_raw(fd: i32, data: &[u8]) -> isize {
    // SAFETY: `data` is a valid buffer of `data.len()` bytes.
    unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) }
}

/// `fcntl(fd, F_GETFD)`: the descriptor flags, or -1.
pub fn fd_flags(fd: i32) -> i32 {
    // SAFETY: F_GETFD takes no pointer.
    unsafe { libc::fcntl(fd, libc::F_GETFD) }
}

/// Reaps child `pid` (`waitpid(pid, 0)`): true if it exited with code 0.
pub fn reaped_exit0(pid: i32) -> bool {
    let mut st = 0;
    // SAFETY: `st` is writable.
    let r = unsafe { libc::waitpid(pid, &mut st, 0) };
    r == pid && libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0
}

/// The CPU the caller runs on (-1 if unknown).
pub(crate) fn current_cpu() -> i32 {
    nix::sched::sched_getcpu().map_or(-1, |c| c as i32)
}

/// `sched_setscheduler(pid, SCHED_FIFO, prio)`: the errno on failure.
pub(crate) fn set_fifo(pid: i32, prio: i32) -> Result<(), i32> {
    let p = libc::sched_param {
        sched_priority: prio,
    };
    // SAFETY: plain syscall with a valid parameter.
    if unsafe { libc::sched_setscheduler(pid, libc::SCHED_FIFO, &p) } == 0 {
        Ok(())
    } else {
        Err(errno())
    }
}

/// Takes ownership of descriptor `fd`, one the kernel just returned to
/// this process (`CREATE_QUEUE`, ...) and nothing else owns: closed when
/// the `File` drops. (A number that is no open descriptor only makes the
/// later reads, writes and close fail with `EBADF`.)
pub(crate) fn adopt_fd(fd: i32) -> std::fs::File {
    use std::os::fd::FromRawFd;
    // SAFETY: the callers pass a descriptor the kernel just created for
    // them, owned by nothing else.
    unsafe { std::fs::File::from_raw_fd(fd) }
}

/// `open(path, flags | O_CLOEXEC)` with any flags (the fuzzer's): the
/// file, or the errno.
pub(crate) fn open_raw(path: &str, flags: i32) -> Result<std::fs::File, i32> {
    let c = std::ffi::CString::new(path).map_err(|_| libc::EINVAL)?;
    // SAFETY: a valid NUL-terminated path; integer flags.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        Err(errno())
    } else {
        Ok(adopt_fd(fd))
    }
}

/// One `write(2)` (or `pwrite` at `off`) of `data` to descriptor number
/// `fd` (any number: the kernel checks it): the bytes written, or the
/// errno. Safe: `data` is our own buffer, only read.
pub(crate) fn write_at(fd: i32, data: &[u8], off: Option<i64>) -> Result<i64, i32> {
    // SAFETY: `data` is valid for its length; the kernel validates `fd`.
    let r = unsafe {
        match off {
            Some(o) => libc::pwrite(fd, data.as_ptr().cast(), data.len(), o),
            None => libc::write(fd, data.as_ptr().cast(), data.len()),
        }
    };
    if r < 0 {
        Err(errno())
    } else {
        Ok(r as i64)
    }
}

/// One `pread(2)` of descriptor number `fd` into `buf` at `off`: the bytes
/// read, or the errno. Safe: the kernel writes at most `buf.len()` bytes
/// into our own buffer.
pub(crate) fn pread(fd: i32, buf: &mut [u8], off: i64) -> Result<i64, i32> {
    // SAFETY: `buf` is valid and writable for its length.
    let r = unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), buf.len(), off) };
    if r < 0 {
        Err(errno())
    } else {
        Ok(r as i64)
    }
}

/// `ghost_run` with five raw integer arguments (the fuzzer's garbage):
/// its return value, or the errno. Safe: the syscall takes integers only.
pub(crate) fn ghost_run_args(a: [i64; 5]) -> Result<i64, i32> {
    // SAFETY: integer arguments only.
    let r = unsafe { libc::syscall(abi::NR_GHOST_RUN, a[0], a[1], a[2], a[3], a[4]) };
    if r < 0 {
        Err(errno())
    } else {
        Ok(r)
    }
}

/// `ioctl(fd, cmd, arg)` with raw integers: the return value, or the
/// errno. `arg` is the address of a struct of ours the command reads or
/// fills (sized for the command: the callers build it from the uapi
/// types), or a deliberately invalid address (NULL, unmapped, a
/// protected page, kernel-looking) that the kernel must refuse with
/// `EFAULT`. The fuzzer's random commands go to ghostfs files, whose
/// handler validates every command and argument; the fuzzer points them
/// only at its own scratch memory ([`crate::fuzz`]'s arena), never at
/// memory it needs intact.
pub(crate) fn ioctl_raw(fd: i32, cmd: u64, arg: usize) -> Result<i64, i32> {
    // SAFETY: see above: the kernel validates `fd`, `cmd` and `arg`; what
    // it may write is memory the caller set aside for it.
    let r = unsafe { libc::ioctl(fd, cmd as libc::c_ulong, arg) };
    if r < 0 {
        Err(errno())
    } else {
        Ok(i64::from(r))
    }
}

/// Forks from a process that may have other threads: the child runs `f`
/// and `_exit(0)`s; the child's pid, or -1 with the errno set. `f` must
/// only make system calls and touch atomics or memory prepared before the
/// fork (no allocation, no lock: another thread may have held one at the
/// fork).
pub(crate) fn fork_bare(f: impl FnOnce()) -> i32 {
    // SAFETY: the child runs `f` (async-signal-safe work, see above) and
    // ends with `_exit`, running no destructor of the parent's state.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        f();
        // SAFETY: ends the child.
        unsafe { libc::_exit(0) };
    }
    pid
}

/// A timerfd (`CLOCK_MONOTONIC`), closed on drop.
pub(crate) fn timerfd() -> Result<nix::sys::timerfd::TimerFd, i32> {
    use nix::sys::timerfd::{ClockId, TimerFd, TimerFlags};
    TimerFd::new(ClockId::CLOCK_MONOTONIC, TimerFlags::TFD_CLOEXEC).map_err(|e| e as i32)
}

/// Whether timerfd `t` is armed (`timerfd_gettime`: time left).
pub(crate) fn timerfd_armed(t: &nix::sys::timerfd::TimerFd) -> bool {
    matches!(t.get(), Ok(Some(_)))
}

/// A new timerfd (`CLOCK_MONOTONIC`, close-on-exec) as a plain descriptor,
/// for tests that hand its number to the kernel (`GHOST_IOC_TIMERFD_SETTIME`).
pub(crate) fn timerfd_fd() -> Result<std::os::fd::OwnedFd, i32> {
    use std::os::fd::FromRawFd;
    // SAFETY: a plain system call with constant arguments.
    let fd = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_CLOEXEC) };
    if fd < 0 {
        return Err(errno());
    }
    // SAFETY: a new descriptor that nothing else owns.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// An `itimerspec` of `value_ms` then every `interval_ms` (0, 0: disarmed).
pub(crate) fn itimerspec_ms(value_ms: i64, interval_ms: i64) -> libc::itimerspec {
    let ts = |ms: i64| libc::timespec {
        tv_sec: ms / 1000,
        tv_nsec: (ms % 1000) * 1_000_000,
    };
    libc::itimerspec {
        it_interval: ts(interval_ms),
        it_value: ts(value_ms),
    }
}

/// `timerfd_settime(fd, 0, s, NULL)`: the errno on failure.
pub(crate) fn timerfd_settime(fd: i32, s: &libc::itimerspec) -> Result<(), i32> {
    // SAFETY: `s` is a valid setting; no old value is asked for. A bad
    // `fd` is the kernel's to refuse (EBADF/EINVAL).
    match unsafe { libc::timerfd_settime(fd, 0, s, std::ptr::null_mut()) } {
        0 => Ok(()),
        _ => Err(errno()),
    }
}

/// `timerfd_gettime(fd)`: the time left and the interval.
pub(crate) fn timerfd_gettime(fd: i32) -> Result<libc::itimerspec, i32> {
    let mut now = itimerspec_ms(0, 0);
    // SAFETY: `now` is ours and writable; a bad `fd` is refused.
    match unsafe { libc::timerfd_gettime(fd, &mut now) } {
        0 => Ok(now),
        _ => Err(errno()),
    }
}

/// The calling thread to `SCHED_FIFO` at `prio`: the errno on failure.
pub(crate) fn set_fifo_self(prio: i32) -> Result<(), i32> {
    let p = libc::sched_param {
        sched_priority: prio,
    };
    // SAFETY: a plain system call on ourselves with a valid parameter.
    match unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &p) } {
        0 => Ok(()),
        _ => Err(errno()),
    }
}
