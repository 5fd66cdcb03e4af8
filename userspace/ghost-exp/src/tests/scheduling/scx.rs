//! sched_ext beside ghost (the bench kernel variant, `configs/bench`): the
//! rule that ghost yields to ext the way it yields to CFS
//! (`Documentation/ghost-rs/scheduling.rst`, "ghost and sched_ext").
//!
//! With the kernel's own `scx_simple` loaded (a switch-all BPF scheduler:
//! every normal task and kernel thread is an ext task) beside a
//! `ghost-agent fifo` enclave on CPUs 1-2:
//!
//! - loading and unloading the BPF scheduler (which re-derive every task's
//!   class) leave ghost tasks and agents in ghost;
//! - (a) a CPU-bound ext task pinned to an enclave CPU gets CPU time while
//!   ghost spinners run in the enclave;
//! - (b) the ghost tasks still make progress (on the other enclave CPU);
//! - (c) kernel threads are not starved: work queued on every CPU
//!   (`/proc/sys/vm/stat_refresh`) and RCU grace periods
//!   (`membarrier(MEMBARRIER_CMD_GLOBAL)`) keep completing, the BPF
//!   scheduler is not ejected ("runnable task stall") and the kernel logs
//!   no stall (`scripts/vm-run` fails the run on any splat);
//! - (d) the scheduler unloads cleanly and the ghost tasks keep running;
//!   destroying the enclave puts every task back in CFS, still running.
//!
//! The schedulers are built by `scripts/build-scx` in the bench kernel's
//! tree; `scripts/vm-run` passes their directory as `GHOST_SCX_DIR`. On a
//! kernel without sched_ext (no `/sys/kernel/sched_ext`: the default
//! kernel of `make test`) the test says SKIP and passes. `make test-scx`
//! runs it on the bench kernel with 4 vCPUs.

use crate::harness::sys::{self, shared_page};
use crate::harness::{nr_cpu_ids, online_enclave, path, tail, wait_for, Proc, AGENT_UP_S};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// sched_ext's sysfs directory: present when the kernel has sched_ext.
const SCX_SYSFS: &str = "/sys/kernel/sched_ext";

/// The enclave's CPUs (the ext task is pinned to the first).
const ENCLAVE_CPUS: &str = "1-2";
const EXT_CPU: usize = 1;

/// Ghost spinners: two join before the BPF scheduler is loaded, one after.
const SPINNERS: usize = 3;

/// Rounds of kernel-thread work (each: work on every CPU, an RCU grace
/// period, a 1 ms sleep) that must complete under the load.
const ROUNDS: u64 = 20;

/// Counters the children bump (a shared page).
#[repr(C)]
struct Counters {
    spin: [AtomicU64; SPINNERS],
    ext: AtomicU64,
    rounds: AtomicU64,
}

/// A line of `/sys/kernel/sched_ext/FILE`, trimmed ("" if unreadable).
fn scx_attr(file: &str) -> String {
    std::fs::read_to_string(format!("{SCX_SYSFS}/{file}"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The kernel's example scheduler `name`: in `GHOST_SCX_DIR`.
fn scx_bin(name: &str) -> Result<PathBuf, String> {
    let dir = std::env::var("GHOST_SCX_DIR").unwrap_or_default();
    let p = PathBuf::from(&dir).join(name);
    ensure!(
        !dir.is_empty() && p.exists(),
        "{name} not found in GHOST_SCX_DIR={dir:?}: build the schedulers with scripts/build-scx \
         (make test-scx does)"
    );
    Ok(p)
}

/// The threads of process `pid` in the ghost class (its agents, for an
/// agent process).
fn ghost_threads_of(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|t| t.file_name().to_string_lossy().parse::<i32>().ok())
        .filter(|&tid| sys::sched_policy(tid) == ghost_abi::SCHED_GHOST)
        .count()
}

/// Lines of the kernel log that say a task, a kernel thread or RCU was
/// starved, or that sched_ext ejected its scheduler for an error.
fn starvation_lines() -> Result<Vec<String>, String> {
    let log = sys::kernel_log().map_err(|e| format!("klogctl: {}", sys::errno_name(e)))?;
    const SIGNS: [&str; 5] = [
        "runnable task stall",
        "kthread starved",
        "detected stalls",
        "rcu_check_gp_start_stall",
        "blocked for more than",
    ];
    // sched_ext says why it disabled a scheduler; only an unload by its
    // program is clean.
    let ejected = |l: &str| {
        l.contains("sched_ext: BPF scheduler")
            && l.contains(" disabled (")
            && !l.contains("(unregistered from user space)")
    };
    Ok(log
        .lines()
        .filter(|l| SIGNS.iter().any(|s| l.contains(s)) || ejected(l))
        .map(str::to_string)
        .collect())
}

/// After the BPF scheduler `what` (loaded, unloaded; either re-derives
/// every task's class): the ghost tasks `spinners` and the `agents` agent
/// threads of process `agent` are still in ghost, and ghost tasks progress.
fn still_in_ghost(
    what: &str,
    spinners: &[i32],
    agent: i32,
    agents: usize,
    progress: &dyn Fn(u64) -> bool,
) -> Result<(), String> {
    for &pid in spinners {
        ensure!(
            sys::sched_policy(pid) == ghost_abi::SCHED_GHOST,
            "ghost task {pid} left ghost when the BPF scheduler {what}: policy {}",
            sys::sched_policy(pid)
        );
    }
    ensure!(
        ghost_threads_of(agent) == agents,
        "the agents left ghost when the BPF scheduler {what}: {}",
        sys::threads_of(agent)
    );
    ensure!(
        progress(1000),
        "ghost tasks stopped when the BPF scheduler {what}"
    );
    Ok(())
}

/// `scx_simple` (switch-all) beside a `ghost-agent fifo` enclave: neither
/// side starves the other or kernel threads (the module's (a)-(d)).
pub fn scx_switch_all_beside_ghost() -> Result<(), String> {
    if !std::path::Path::new(SCX_SYSFS).exists() {
        println!("  SKIP scx_switch_all_beside_ghost: no {SCX_SYSFS} (a kernel without sched_ext)");
        return Ok(());
    }
    let simple = scx_bin("scx_simple")?;
    let n = nr_cpu_ids()?;
    ensure!(
        n >= 3,
        "needs 3 CPUs (enclave on {ENCLAVE_CPUS}), have {n}; make test-scx boots 4"
    );
    ensure!(
        scx_attr("state") == "disabled",
        "a BPF scheduler is already loaded: state {:?}, ops {:?}",
        scx_attr("state"),
        scx_attr("root/ops")
    );
    let before = starvation_lines()?;
    ensure!(
        before.is_empty(),
        "kernel log before the test:\n{}",
        before.join("\n")
    );
    sys::ensure_ghostfs()?;
    let c: &'static Counters = shared_page()?;

    let mut agent = Proc::start("ghost-agent", &["fifo", "--cpus", ENCLAVE_CPUS])?;
    let id = online_enclave(AGENT_UP_S).ok_or_else(|| {
        format!(
            "no agent online after {AGENT_UP_S} s; ghost-agent printed:\n{}",
            tail(&agent.output())
        )
    })?;
    let agents = ghost_threads_of(agent.pid());
    ensure!(
        agents >= 2,
        "{agents} agent threads in the ghost class, want 2 (CPUs {ENCLAVE_CPUS})"
    );
    let tasks = path(id, "tasks");
    let spinner = |i: usize| {
        let tasks = tasks.clone();
        sys::fork_child(move || {
            if sys::write_once(&tasks, b"0").is_err() {
                return 3;
            }
            loop {
                c.spin[i].fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let spun = || {
        c.spin
            .iter()
            .map(|s| s.load(Ordering::Relaxed))
            .sum::<u64>()
    };
    // Ghost tasks progress: the spinners' sum grows by `by`.
    let ghost_progress = |by: u64| {
        let at = spun();
        wait_for(5000, || spun() > at + by)
    };
    let mut spinners = vec![spinner(0)?, spinner(1)?];
    for (i, &pid) in spinners.iter().enumerate() {
        ensure!(
            wait_for(5000, || c.spin[i].load(Ordering::Relaxed) > 1000),
            "ghost spinner {i} (pid {pid}) did not run under the agent; {}",
            sys::threads_of(pid)
        );
    }

    // Load the switch-all scheduler: every task's class is re-derived.
    let mut scx = Proc::start_exe(&simple, "scx_simple", &[])?;
    ensure!(
        wait_for(30_000, || scx_attr("state") == "enabled"
            || sys::ended(scx.pid())),
        "scx_simple did not load"
    );
    ensure!(
        scx_attr("state") == "enabled" && scx_attr("root/ops") == "simple",
        "scx_simple did not load: state {:?}, ops {:?}; it printed:\n{}",
        scx_attr("state"),
        scx_attr("root/ops"),
        tail(&scx.output())
    );
    ensure!(
        scx_attr("switch_all") == "1",
        "scx_simple is not switch-all: switch_all {:?}",
        scx_attr("switch_all")
    );
    still_in_ghost("loaded", &spinners, agent.pid(), agents, &ghost_progress)?;
    // A task joining while every other task is an ext task goes to ghost
    // (it waits behind a spinner of its home CPU: FIFO).
    let late = spinner(2)?;
    spinners.push(late);
    ensure!(
        wait_for(5000, || sys::sched_policy(late) == ghost_abi::SCHED_GHOST
            || sys::ended(late)),
        "a task joining under the BPF scheduler is not in ghost: policy {}; {}",
        sys::sched_policy(late),
        sys::threads_of(late)
    );

    // (a) An ext task pinned to an enclave CPU: it outranks the ghost
    // tasks there, as a CFS task would.
    let ext = sys::fork_child(move || {
        if !sys::pin(EXT_CPU) {
            return 3;
        }
        loop {
            c.ext.fetch_add(1, Ordering::Relaxed);
        }
    })?;
    ensure!(
        wait_for(10_000, || sys::proc_cpu_ticks(ext) >= 50 || sys::ended(ext)),
        "the ext task pinned to CPU {EXT_CPU} got {} ticks (count {}) beside the ghost spinners; {}",
        sys::proc_cpu_ticks(ext),
        c.ext.load(Ordering::Relaxed),
        sys::threads_of(ext)
    );
    ensure!(
        !sys::ended(ext),
        "the ext task could not pin itself to CPU {EXT_CPU}"
    );
    ensure!(
        sys::sched_policy(ext) == libc::SCHED_OTHER && scx_attr("state") == "enabled",
        "the CPU-bound task is not an ext task: policy {}, sched_ext {:?}",
        sys::sched_policy(ext),
        scx_attr("state")
    );
    // (b) Ghost tasks still progress, on the other enclave CPU.
    ensure!(
        ghost_progress(1000),
        "ghost tasks made no progress beside the pinned ext task"
    );

    // (c) Kernel threads: work on every CPU (kworkers, ext tasks under a
    // switch-all scheduler, on the enclave CPUs too) and RCU grace periods.
    let rounds = sys::fork_child(move || loop {
        if std::fs::read("/proc/sys/vm/stat_refresh").is_err() {
            return 4;
        }
        if sys::membarrier_global().is_err() {
            return 5;
        }
        std::thread::sleep(Duration::from_millis(1));
        c.rounds.fetch_add(1, Ordering::Relaxed);
    })?;
    ensure!(
        wait_for(20_000, || c.rounds.load(Ordering::Relaxed) >= ROUNDS
            || sys::ended(rounds)),
        "{} of {ROUNDS} rounds of kernel-thread work (stat_refresh, membarrier) completed; {}",
        c.rounds.load(Ordering::Relaxed),
        sys::threads_of(rounds)
    );
    ensure!(
        !sys::ended(rounds),
        "the kernel-thread work failed: {:?}",
        sys::wait_child(rounds)
    );
    sys::kill(rounds, libc::SIGKILL);
    sys::wait_child(rounds)?;
    // Every side still runs, and the BPF scheduler was not ejected.
    let at = c.ext.load(Ordering::Relaxed);
    ensure!(
        wait_for(5000, || c.ext.load(Ordering::Relaxed) > at + 1000),
        "the ext task stopped"
    );
    ensure!(
        ghost_progress(1000),
        "ghost tasks stopped during the kernel-thread work"
    );
    ensure!(
        scx_attr("state") == "enabled" && !sys::ended(scx.pid()),
        "the BPF scheduler is gone: state {:?}; scx_simple printed:\n{}",
        scx_attr("state"),
        tail(&scx.output())
    );
    let starved = starvation_lines()?;
    ensure!(
        starved.is_empty(),
        "starvation in the kernel log:\n{}",
        starved.join("\n")
    );

    // (d) Unload: every task's class is re-derived again; ghost stays.
    scx.signal(libc::SIGINT);
    scx.wait(60)?;
    ensure!(
        wait_for(30_000, || scx_attr("state") == "disabled"),
        "sched_ext state {:?} after scx_simple exited",
        scx_attr("state")
    );
    let log = sys::kernel_log().map_err(|e| format!("klogctl: {}", sys::errno_name(e)))?;
    let how: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("BPF scheduler \"simple\" disabled"))
        .collect();
    ensure!(
        how.last()
            .is_some_and(|l| l.contains("unregistered from user space")),
        "scx_simple did not unload cleanly: {how:?}"
    );
    still_in_ghost("unloaded", &spinners, agent.pid(), agents, &ghost_progress)?;

    // Destroy the enclave: every task is back in CFS (sched_ext is off),
    // still running.
    agent.signal(libc::SIGINT);
    agent.finish(30)?;
    for &pid in &spinners {
        ensure!(
            sys::sched_policy(pid) == libc::SCHED_OTHER,
            "spinner {pid} has policy {} after the enclave was destroyed",
            sys::sched_policy(pid)
        );
    }
    ensure!(
        ghost_progress(1000),
        "the former ghost tasks do not run in CFS"
    );
    for pid in spinners.into_iter().chain([ext]) {
        sys::kill(pid, libc::SIGKILL);
        sys::wait_child(pid)?;
    }
    let starved = starvation_lines()?;
    ensure!(
        starved.is_empty(),
        "starvation in the kernel log:\n{}",
        starved.join("\n")
    );
    Ok(())
}
