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
//! And with `scx_qmap -p` (partitioned: only `SCHED_EXT` tasks are ext
//! tasks), a `SCHED_EXT` task pinned to an enclave CPU gets CPU time beside
//! the ghost spinners, which go on on the other CPU.
//!
//! The schedulers are built by `scripts/build-scx` in the bench kernel's
//! tree; `scripts/vm-run` passes their directory as `GHOST_SCX_DIR`. On a
//! kernel without sched_ext (no `/sys/kernel/sched_ext`: the default
//! kernel of `make test`), or with fewer than 3 CPUs, the tests say SKIP
//! and pass. `make test-scx`
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

/// The `SCHED_EXT` policy (`<linux/sched.h>`): a task of a partitioned
/// BPF scheduler.
const SCHED_EXT: i32 = 7;

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
/// agent process: `SCHED_GHOST` with `SCHED_RESET_ON_FORK`).
fn ghost_threads_of(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|t| t.file_name().to_string_lossy().parse::<i32>().ok())
        .filter(|&tid| {
            sys::sched_policy(tid) & !libc::SCHED_RESET_ON_FORK == ghost_abi::SCHED_GHOST
        })
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

/// The ghost side of a test: an enclave on [`ENCLAVE_CPUS`] with
/// `ghost-agent fifo`, and its spinners.
struct GhostSide {
    agent: Proc,
    /// The agent threads in the ghost class.
    agents: usize,
    tasks: String,
    spinners: Vec<i32>,
    c: &'static Counters,
}

impl GhostSide {
    /// The agent, online, and two spinners running under it. Checks first
    /// that no BPF scheduler is loaded and that the kernel log is clean.
    fn start() -> Result<GhostSide, String> {
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
        let agent = Proc::start("ghost-agent", &["fifo", "--cpus", ENCLAVE_CPUS])?;
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
        let mut e = GhostSide {
            agent,
            agents,
            tasks: path(id, "tasks"),
            spinners: Vec::new(),
            c: shared_page()?,
        };
        for i in 0..2 {
            let pid = e.spinner(i)?;
            ensure!(
                wait_for(5000, || e.c.spin[i].load(Ordering::Relaxed) > 1000),
                "ghost spinner {i} (pid {pid}) did not run under the agent; {}",
                sys::threads_of(pid)
            );
        }
        Ok(e)
    }

    /// Starts spinner `i`: it joins the enclave and counts in `spin[i]`.
    fn spinner(&mut self, i: usize) -> Result<i32, String> {
        let (tasks, c) = (self.tasks.clone(), self.c);
        let pid = sys::fork_child(move || {
            if sys::write_once(&tasks, b"0").is_err() {
                return 3;
            }
            loop {
                if let Some(n) = c.spin.get(i) {
                    n.fetch_add(1, Ordering::Relaxed);
                }
            }
        })?;
        self.spinners.push(pid);
        Ok(pid)
    }

    /// Whether ghost tasks progress: the spinners' sum grows by 1000.
    fn progress(&self) -> bool {
        let spun = || {
            self.c
                .spin
                .iter()
                .map(|s| s.load(Ordering::Relaxed))
                .sum::<u64>()
        };
        let at = spun();
        wait_for(5000, || spun() > at + 1000)
    }

    /// After the BPF scheduler `what` (loaded, unloaded; either re-derives
    /// every task's class): the spinners and the agents are still in ghost,
    /// and ghost tasks progress.
    fn still_in_ghost(&self, what: &str) -> Result<(), String> {
        for &pid in &self.spinners {
            ensure!(
                sys::sched_policy(pid) == ghost_abi::SCHED_GHOST,
                "ghost task {pid} left ghost when the BPF scheduler {what}: policy {}",
                sys::sched_policy(pid)
            );
        }
        ensure!(
            ghost_threads_of(self.agent.pid()) == self.agents,
            "the agents left ghost when the BPF scheduler {what}: {}",
            sys::threads_of(self.agent.pid())
        );
        ensure!(
            self.progress(),
            "ghost tasks stopped when the BPF scheduler {what}"
        );
        Ok(())
    }

    /// Starts a CPU-bound task pinned to [`EXT_CPU`] (with policy `policy`
    /// if given), counting in `ext`, and checks that it gets CPU time
    /// beside the ghost spinners and that ghost tasks still progress (on
    /// the other enclave CPU).
    fn pinned_hog(&self, policy: Option<i32>) -> Result<i32, String> {
        let c = self.c;
        let hog = sys::fork_child(move || {
            if !sys::pin(EXT_CPU) || policy.is_some_and(|p| sys::set_policy(0, p).is_err()) {
                return 3;
            }
            loop {
                c.ext.fetch_add(1, Ordering::Relaxed);
            }
        })?;
        ensure!(
            wait_for(10_000, || sys::proc_cpu_ticks(hog) >= 50 || sys::ended(hog)),
            "the ext task pinned to CPU {EXT_CPU} got {} ticks (count {}) beside the ghost spinners; {}",
            sys::proc_cpu_ticks(hog),
            c.ext.load(Ordering::Relaxed),
            sys::threads_of(hog)
        );
        ensure!(
            !sys::ended(hog),
            "the ext task could not pin itself to CPU {EXT_CPU} or set its policy"
        );
        ensure!(
            self.progress(),
            "ghost tasks made no progress beside the pinned ext task"
        );
        Ok(hog)
    }

    /// Destroys the enclave (SIGINT to the agent): every task is back in
    /// CFS (sched_ext is off by then), still running; then kills them and
    /// `others`.
    fn destroy(mut self, others: &[i32]) -> Result<(), String> {
        self.agent.signal(libc::SIGINT);
        self.agent.finish(30)?;
        for &pid in &self.spinners {
            ensure!(
                sys::sched_policy(pid) == libc::SCHED_OTHER,
                "spinner {pid} has policy {} after the enclave was destroyed",
                sys::sched_policy(pid)
            );
        }
        ensure!(self.progress(), "the former ghost tasks do not run in CFS");
        for &pid in self.spinners.iter().chain(others) {
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
}

/// Starts the kernel's scheduler `name` with `args` and waits until it is
/// enabled, partial or switch-all as `switch_all` says.
fn load(name: &str, args: &[&str], ops: &str, switch_all: bool) -> Result<Proc, String> {
    let scx = Proc::start_exe(&scx_bin(name)?, name, args)?;
    ensure!(
        wait_for(30_000, || scx_attr("state") == "enabled"
            || sys::ended(scx.pid())),
        "{name} did not load"
    );
    ensure!(
        scx_attr("state") == "enabled" && scx_attr("root/ops") == ops,
        "{name} did not load: state {:?}, ops {:?}; it printed:\n{}",
        scx_attr("state"),
        scx_attr("root/ops"),
        tail(&scx.output())
    );
    let want = if switch_all { "1" } else { "0" };
    ensure!(
        scx_attr("switch_all") == want,
        "{name}: switch_all {:?}, want {want}",
        scx_attr("switch_all")
    );
    Ok(scx)
}

/// Unloads the scheduler (SIGINT to its program): sched_ext is disabled,
/// and says it was unregistered from user space.
fn unload(mut scx: Proc, ops: &str) -> Result<(), String> {
    ensure!(
        scx_attr("state") == "enabled" && !sys::ended(scx.pid()),
        "the BPF scheduler is gone before its unload: state {:?}; it printed:\n{}",
        scx_attr("state"),
        tail(&scx.output())
    );
    scx.signal(libc::SIGINT);
    scx.wait(60)?;
    ensure!(
        wait_for(30_000, || scx_attr("state") == "disabled"),
        "sched_ext state {:?} after {ops} exited",
        scx_attr("state")
    );
    let log = sys::kernel_log().map_err(|e| format!("klogctl: {}", sys::errno_name(e)))?;
    let tag = format!("BPF scheduler \"{ops}\" disabled");
    let how: Vec<&str> = log.lines().filter(|l| l.contains(&tag)).collect();
    ensure!(
        how.last()
            .is_some_and(|l| l.contains("unregistered from user space")),
        "{ops} did not unload cleanly: {how:?}"
    );
    Ok(())
}

/// Whether the kernel has sched_ext and the VM the 3 CPUs the test needs
/// (the enclave on [`ENCLAVE_CPUS`], CPU 0 for the rest); prints the SKIP
/// line if not (`make test-scx` boots 4).
fn have_scx(test: &str) -> Result<bool, String> {
    if !std::path::Path::new(SCX_SYSFS).exists() {
        println!("  SKIP {test}: no {SCX_SYSFS} (a kernel without sched_ext)");
        return Ok(false);
    }
    let n = nr_cpu_ids()?;
    if n < 3 {
        println!("  SKIP {test}: needs 3 CPUs (enclave on {ENCLAVE_CPUS}), the VM has {n}; make test-scx boots 4");
        return Ok(false);
    }
    Ok(true)
}

/// `scx_simple` (switch-all) beside a `ghost-agent fifo` enclave: neither
/// side starves the other or kernel threads (the module's (a)-(d)).
pub fn scx_switch_all_beside_ghost() -> Result<(), String> {
    if !have_scx("scx_switch_all_beside_ghost")? {
        return Ok(());
    }
    scx_bin("scx_simple")?;
    let mut e = GhostSide::start()?;
    let c = e.c;

    // Load the switch-all scheduler: every task's class is re-derived.
    let scx = load("scx_simple", &[], "simple", true)?;
    e.still_in_ghost("loaded")?;
    // A task joining while every other task is an ext task goes to ghost
    // (it waits behind a spinner of its home CPU: FIFO).
    let late = e.spinner(2)?;
    ensure!(
        wait_for(5000, || sys::sched_policy(late) == ghost_abi::SCHED_GHOST
            || sys::ended(late)),
        "a task joining under the BPF scheduler is not in ghost: policy {}; {}",
        sys::sched_policy(late),
        sys::threads_of(late)
    );

    // (a), (b): an ext task (a SCHED_NORMAL task under a switch-all
    // scheduler) pinned to an enclave CPU outranks the ghost tasks there,
    // as a CFS task would; ghost tasks go on on the other CPU.
    let ext = e.pinned_hog(None)?;
    ensure!(
        sys::sched_policy(ext) == libc::SCHED_OTHER && scx_attr("state") == "enabled",
        "the CPU-bound task is not an ext task: policy {}, sched_ext {:?}",
        sys::sched_policy(ext),
        scx_attr("state")
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
        e.progress(),
        "ghost tasks stopped during the kernel-thread work"
    );
    let starved = starvation_lines()?;
    ensure!(
        starved.is_empty(),
        "starvation in the kernel log:\n{}",
        starved.join("\n")
    );

    // (d) Unload: every task's class is re-derived again; ghost stays.
    unload(scx, "simple")?;
    e.still_in_ghost("unloaded")?;
    e.destroy(&[ext])
}

/// `scx_qmap -p` (partitioned: only `SCHED_EXT` tasks are ext tasks) beside
/// a `ghost-agent fifo` enclave: a `SCHED_EXT` task pinned to an enclave
/// CPU gets CPU time beside the ghost spinners, which go on on the other
/// CPU; loading and unloading leave ghost tasks and agents in ghost.
/// (scx_qmap has `ops.cpu_release()`: an agent preempting its tasks calls
/// it, patch 0009.)
pub fn scx_partial_beside_ghost() -> Result<(), String> {
    if !have_scx("scx_partial_beside_ghost")? {
        return Ok(());
    }
    scx_bin("scx_qmap")?;
    let e = GhostSide::start()?;
    let scx = load("scx_qmap", &["-p"], "qmap", false)?;
    e.still_in_ghost("loaded")?;
    let ext = e.pinned_hog(Some(SCHED_EXT))?;
    ensure!(
        sys::sched_policy(ext) == SCHED_EXT,
        "the pinned task has policy {}, want SCHED_EXT",
        sys::sched_policy(ext)
    );
    unload(scx, "qmap")?;
    // Unloaded, the SCHED_EXT task runs in CFS (as sched_ext does with
    // every task of a scheduler that goes away).
    e.still_in_ghost("unloaded")?;
    e.destroy(&[ext])
}
