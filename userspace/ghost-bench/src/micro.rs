//! The microbenchmarks of the ghOSt paper (SOSP'21, §4.1, Table 3) and the
//! CFS reference, measured on the running kernel.
//!
//! Each *configuration* runs in a child process of its own (a fresh
//! enclave, its agents and tasks, threads of that child); the child sends
//! its samples through a pipe, then destroys its enclave, which kills it
//! (the kernel kills the agents of a destroyed enclave, and with them the
//! process). The parent interleaves the configurations: round 1 runs every
//! configuration once, then round 2, and so on.
//!
//! Layout, for `n` CPUs (CPU 0 is never in an enclave: the driving thread
//! runs there under CFS):
//!
//! - *local*: an enclave of CPU `n-1`; its agent (a queue that wakes it)
//!   and one task pinned to that CPU. The driver wakes the task through a
//!   pipe; the agent commits it on its own CPU (`COMMIT_AT_TXN_COMMIT`);
//!   the task runs, then blocks on the pipe again, which wakes the agent.
//! - *global N*: an enclave of CPUs `1..n`; a spinning global agent on
//!   CPU 1 polls a queue that wakes nobody; the other CPUs have agents that
//!   sleep in `ghost_run`; N tasks, one pinned to each of CPUs `2..2+N`. The
//!   driver wakes the N tasks; once the global agent has seen N wakeups it
//!   commits N transactions with one `GHOST_IOC_COMMIT_TXN`.
//! - *cfs 1 CPU* / *cfs 2 CPUs*: two threads ping-pong a byte through two
//!   pipes, both on CPU `n-1`, or on CPUs `n-2` and `n-1`.
//!
//! Times are `CLOCK_MONOTONIC` (the vDSO), in ns, taken by the threads
//! named in each metric's description.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use ghost::cpus::CpuSet;
use ghost::enclave::{self, Enclave};
use ghost::ghostfs::EnclaveDir;
use ghost::queue::{Message, Queue, Received};
use ghost::sw::StatusWord;
use ghost::sys::{self, Errno};
use ghost::txn::{CpuMask, TxnRequest, TxnResult};
use ghost_abi as abi;
use serde::{Deserialize, Serialize};

use crate::stats::{self, Summary};

/// The most tasks a configuration has: the paper's largest group commit
/// (32 transactions, which needs 34 CPUs: `make bench` boots that many
/// vCPUs for the group commits, and the VM kernel's `NR_CPUS` is 64).
const MAX_TASKS: usize = 32;

/// How long a configuration may go without progress before it is called
/// hung (a cap that only catches a hang).
const STALL_CAP: Duration = Duration::from_secs(60);

/// How long the global agent waits, with no message, for a group to fill
/// before it commits the part that is runnable (ns). A task of the group
/// can block on something the others hold (a lock handed to a woken task
/// that the agent has not run yet); the iteration is then discarded
/// ([`Shared::partial`]), not measured. Far above the time the driver's
/// wakes take to arrive, even under TCG.
const GROUP_FLUSH_NS: u64 = 50_000_000;

/// What a metric measures and the paper's figure for it (ns, on the
/// paper's hardware; `None`: not in Table 3).
pub struct MetricInfo {
    /// The metric's name in the JSON output.
    pub name: &'static str,
    /// What is timed, from where to where.
    pub desc: &'static str,
    /// ghOSt's Table 3 figure, ns.
    pub paper_ns: Option<f64>,
}

/// Every metric, in report order. `group_commit_N_*` are named per N.
pub const METRICS: &[MetricInfo] = &[
    MetricInfo {
        name: "msg_local",
        desc: "message delivery to a local agent: a task blocks (read(2) on a pipe) on its CPU -> the agent of that CPU, woken by TASK_BLOCKED, has read it",
        paper_ns: Some(725.0),
    },
    MetricInfo {
        name: "msg_local_wakeup",
        desc: "TASK_WAKEUP to a local agent: a CFS thread on CPU 0 writes the task's pipe -> the agent of the task's CPU has read TASK_WAKEUP (includes the waker's write(2) and the cross-CPU wake)",
        paper_ns: None,
    },
    MetricInfo {
        name: "msg_global",
        desc: "message delivery to a spinning global agent: a task blocks on its CPU -> the global agent, polling on another CPU, has read TASK_BLOCKED",
        paper_ns: Some(265.0),
    },
    MetricInfo {
        name: "local_schedule",
        desc: "local schedule (commit + switch): the agent calls COMMIT_TXN for its own CPU -> the task runs on it",
        paper_ns: Some(888.0),
    },
    MetricInfo {
        name: "remote_schedule_agent",
        desc: "remote schedule, agent side: the global agent's COMMIT_TXN of one transaction for another CPU, call to return",
        paper_ns: Some(668.0),
    },
    MetricInfo {
        name: "remote_schedule_target",
        desc: "remote schedule, target side: the global agent calls COMMIT_TXN -> the task runs on the target CPU",
        paper_ns: Some(1064.0),
    },
    MetricInfo {
        name: "ghost_run_estale",
        desc: "ghost_run system call, an agent's yield with a stale agent barrier: call to return (ESTALE)",
        paper_ns: None,
    },
    MetricInfo {
        name: "ghost_run_ping_self",
        desc: "ghost_run system call, an agent pings its own CPU (GHOST_AGENT_GTID): call, reschedule, return",
        paper_ns: None,
    },
    MetricInfo {
        name: "null_ioctl",
        desc: "GHOST_IOC_NULL on the enclave's ctl, from an agent thread: call to return",
        paper_ns: None,
    },
    MetricInfo {
        name: "syscall_getppid",
        desc: "getppid(2), a system call doing nothing, for reference (the paper's 'syscall')",
        paper_ns: Some(72.0),
    },
    MetricInfo {
        name: "clock_read",
        desc: "two back-to-back CLOCK_MONOTONIC reads: the timing overhead inside every other figure",
        paper_ns: None,
    },
    MetricInfo {
        name: "cfs_switch_1cpu",
        desc: "CFS context switch: two threads on one CPU ping-pong a byte through two pipes; one round trip / 2 (a switch plus a pipe write and read)",
        paper_ns: Some(599.0),
    },
    MetricInfo {
        name: "cfs_switch_2cpu",
        desc: "CFS pipe ping-pong across two CPUs: one round trip / 2 (a cross-CPU wakeup plus a pipe write and read)",
        paper_ns: None,
    },
];

/// The paper's group-commit figures (N = 10): agent side, target side.
pub const PAPER_GROUP10: (f64, f64) = (3964.0, 1821.0);

/// Description and paper figure of a metric name (group commits too).
pub fn metric_info(name: &str) -> (String, Option<f64>) {
    if let Some(m) = METRICS.iter().find(|m| m.name == name) {
        return (m.desc.to_string(), m.paper_ns);
    }
    if let Some(rest) = name.strip_prefix("group_commit_") {
        let (n, side) = rest.split_once('_').unwrap_or((rest, ""));
        let ten = n == "10";
        return match side {
            "agent" => (
                format!("group commit of {n} transactions (one per CPU), agent side: one COMMIT_TXN for {n} other CPUs, call to return"),
                ten.then_some(PAPER_GROUP10.0),
            ),
            _ => (
                format!("group commit of {n} transactions, target side: COMMIT_TXN called -> each of the {n} tasks runs (one sample per task)"),
                ten.then_some(PAPER_GROUP10.1),
            ),
        };
    }
    (String::new(), None)
}

/// A nanosecond clock shared by the threads of a process
/// (`CLOCK_MONOTONIC`, from the first call).
fn now() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Nanoseconds from `a` to `b`, as a sample (0 if the clock went back).
fn delta(a: u64, b: u64) -> f64 {
    b.saturating_sub(a) as f64
}

/// One configuration of a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Config {
    /// CFS pipe ping-pong on one CPU.
    Cfs1,
    /// CFS pipe ping-pong across two CPUs.
    Cfs2,
    /// A per-CPU agent and its task (plus the ghost_run and ioctl figures).
    Local,
    /// A spinning global agent and N tasks on N other CPUs.
    Global(usize),
}

impl Config {
    /// Its name in messages.
    pub fn name(&self) -> String {
        match self {
            Self::Cfs1 => "cfs-1cpu".into(),
            Self::Cfs2 => "cfs-2cpu".into(),
            Self::Local => "local-agent".into(),
            Self::Global(n) => format!("global-agent-{n}"),
        }
    }
}

/// The options of a run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Rounds (each runs every configuration once).
    pub rounds: usize,
    /// Measured iterations per configuration and round.
    pub iters: usize,
    /// Iterations before those, not recorded.
    pub warmup: usize,
    /// The group sizes asked for.
    pub groups: Vec<usize>,
    /// Only the group commits of 2 transactions or more (`--only-groups`:
    /// `make bench`'s second boot, with enough CPUs for them).
    pub only_groups: bool,
    /// A label for the output (the VM mode).
    pub mode: String,
}

/// One metric of the output.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetricOut {
    /// Its name.
    pub name: String,
    /// What is timed.
    pub desc: String,
    /// The unit of the samples and figures.
    pub unit: String,
    /// ghOSt's Table 3 figure, if it has one.
    pub paper_ns: Option<f64>,
    /// Over all the samples of every round.
    pub summary: Summary,
    /// The median of each round, in order.
    pub round_medians: Vec<f64>,
    /// Every sample (ns).
    pub samples: Vec<f64>,
    /// Where it was measured when not in this run's boot (`ghost-bench
    /// report` merges the group commits of `make bench`'s second boot:
    /// "34-vCPU boot").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// The output of `ghost-bench micro`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MicroOut {
    /// The mode label given on the command line.
    pub mode: String,
    /// Only the group commits were run (`--only-groups`).
    #[serde(default)]
    pub only_groups: bool,
    /// The kernel (`uname -r`).
    pub kernel: String,
    /// Online CPUs.
    pub cpus: usize,
    /// Rounds and measured iterations per configuration and round.
    pub rounds: usize,
    /// Measured iterations per configuration and round.
    pub iters: usize,
    /// The figures.
    pub metrics: Vec<MetricOut>,
    /// What was not measured, and why.
    pub skipped: Vec<String>,
    /// Failed commits (counted, retried), per configuration, and per
    /// configuration and outcome (`local-agent TARGET_STALE`).
    pub commit_failures: BTreeMap<String, u64>,
    /// Iterations not measured, per configuration: the global agent
    /// committed a partial group because a task of the group stayed
    /// blocked on something else (see [`GROUP_FLUSH_NS`]).
    #[serde(default)]
    pub partial_groups: BTreeMap<String, u64>,
    /// Configurations that failed, with the error.
    pub errors: Vec<String>,
}

/// What one configuration of one round produced (sent by the child).
#[derive(Debug, Default, Serialize, Deserialize)]
struct ChildOut {
    samples: BTreeMap<String, Vec<f64>>,
    commit_failures: u64,
    #[serde(default)]
    failure_kinds: BTreeMap<String, u64>,
    /// Iterations not measured: the global agent committed a partial
    /// group (see [`GROUP_FLUSH_NS`]).
    #[serde(default)]
    partial_groups: u64,
    error: Option<String>,
}

/// Runs the benchmark: every configuration `rounds` times, interleaved.
pub fn run(opts: &Options) -> MicroOut {
    let ncpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (configs, groups, skipped) = plan(ncpus, opts);
    let mut all: BTreeMap<String, Vec<Vec<f64>>> = BTreeMap::new();
    let mut failures: BTreeMap<String, u64> = BTreeMap::new();
    let mut partial: BTreeMap<String, u64> = BTreeMap::new();
    let mut errors = Vec::new();
    for round in 0..opts.rounds {
        for &c in &configs {
            let r = match c {
                Config::Cfs1 => cfs_pingpong(ncpus - 1, ncpus - 1, opts),
                Config::Cfs2 => cfs_pingpong(ncpus - 2, ncpus - 1, opts),
                _ => in_child(c, ncpus, opts),
            };
            let name = c.name();
            eprintln!(
                "ghost-bench: round {}/{} {name}: {}",
                round + 1,
                opts.rounds,
                r.error.as_deref().unwrap_or("ok")
            );
            if let Some(e) = r.error {
                errors.push(format!("round {} {name}: {e}", round + 1));
            }
            *failures.entry(name.clone()).or_default() += r.commit_failures;
            if r.partial_groups > 0 {
                *partial.entry(name.clone()).or_default() += r.partial_groups;
            }
            for (k, v) in r.failure_kinds {
                *failures.entry(format!("{name} {k}")).or_default() += v;
            }
            for (k, v) in r.samples {
                all.entry(k).or_default().push(v);
            }
        }
    }
    for &n in &groups {
        if n == 1 && !opts.only_groups {
            // Group of 1: the remote schedule's samples.
            for side in ["agent", "target"] {
                if let Some(v) = all.get(&format!("remote_schedule_{side}")).cloned() {
                    all.insert(format!("group_commit_1_{side}"), v);
                }
            }
        }
    }
    let mut metrics = Vec::new();
    let mut keys: Vec<&String> = all.keys().collect();
    keys.sort_by_key(|k| report_order(k));
    for k in keys {
        let rounds = &all[k];
        let samples: Vec<f64> = rounds.iter().flatten().copied().collect();
        let Some(summary) = stats::summarize(&samples) else {
            continue;
        };
        let (desc, paper_ns) = metric_info(k);
        metrics.push(MetricOut {
            name: k.clone(),
            desc,
            unit: "ns".into(),
            paper_ns,
            summary,
            round_medians: rounds.iter().filter_map(|r| stats::median(r)).collect(),
            samples,
            source: None,
        });
    }
    MicroOut {
        mode: opts.mode.clone(),
        only_groups: opts.only_groups,
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
        cpus: ncpus,
        rounds: opts.rounds,
        iters: opts.iters,
        metrics,
        skipped,
        commit_failures: failures,
        partial_groups: partial,
        errors,
    }
}

/// What a run on `ncpus` CPUs does: the configurations of a round, the
/// group sizes (sorted), and what it skips, and why.
fn plan(ncpus: usize, opts: &Options) -> (Vec<Config>, Vec<usize>, Vec<String>) {
    let mut skipped = Vec::new();
    let mut configs = Vec::new();
    if !opts.only_groups {
        configs.push(Config::Cfs1);
        if ncpus >= 3 {
            configs.push(Config::Cfs2);
        } else {
            skipped.push("cfs_switch_2cpu: needs CPUs 1 and 2 (this system has fewer)".into());
        }
        if ncpus >= 2 {
            configs.push(Config::Local);
        } else {
            skipped.push("local agent: needs 2 CPUs".into());
        }
    }
    // The global agent's CPU 1, the targets 2..n.
    let targets = ncpus.saturating_sub(2);
    let mut groups: Vec<usize> = opts.groups.clone();
    if opts.only_groups {
        groups.retain(|&n| n >= 2);
    }
    groups.sort_unstable();
    groups.dedup();
    if targets >= 1 {
        if !opts.only_groups {
            configs.push(Config::Global(1));
        }
    } else {
        skipped
            .push("global agent (msg_global, remote schedule, group commits): needs 3 CPUs".into());
    }
    // A size that does not fit is replaced by the largest that does.
    let fit = targets.min(MAX_TASKS);
    if fit >= 2 && groups.iter().any(|&n| n > fit) && !groups.contains(&fit) {
        groups.push(fit);
        groups.sort_unstable();
    }
    for &n in &groups {
        if n <= 1 {
            continue;
        }
        if n <= fit {
            configs.push(Config::Global(n));
        } else {
            skipped.push(format!(
                "group_commit_{n}: needs {} CPUs (a global agent, {n} targets, CPU 0 for the driver); this system has {ncpus}",
                n + 2
            ));
        }
    }
    (configs, groups, skipped)
}

/// The figures a run on `cpus` CPUs must have.
fn required(cpus: usize) -> Vec<&'static str> {
    let mut r = vec![
        "msg_local",
        "msg_local_wakeup",
        "local_schedule",
        "ghost_run_estale",
        "ghost_run_ping_self",
        "null_ioctl",
        "syscall_getppid",
        "cfs_switch_1cpu",
    ];
    if cpus >= 3 {
        r.extend([
            "cfs_switch_2cpu",
            "msg_global",
            "remote_schedule_agent",
            "remote_schedule_target",
            "group_commit_1_agent",
            "group_commit_1_target",
        ]);
    }
    r
}

/// Checks a `ghost-bench micro` output file (see `ghost-bench check`):
/// the number of figures, or what is wrong.
pub fn check(path: &std::path::Path) -> Result<usize, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    check_text(&text)
}

fn check_text(text: &str) -> Result<usize, String> {
    let m: MicroOut = serde_json::from_str(text).map_err(|e| format!("does not parse: {e}"))?;
    if let Some(e) = m.errors.first() {
        return Err(format!("the run had errors: {e}"));
    }
    for name in required(m.cpus) {
        let Some(x) = m.metrics.iter().find(|x| x.name == name) else {
            return Err(format!("no figure {name} ({} CPUs)", m.cpus));
        };
        let s = &x.summary;
        if s.n == 0 || s.n != x.samples.len() || !(s.median > 0.0 && s.median <= s.p99) {
            return Err(format!("figure {name} is inconsistent: {s:?}"));
        }
    }
    Ok(m.metrics.len())
}

/// Where a metric goes in the output: [`METRICS`]' order, then the group
/// commits by N.
pub fn report_order(name: &str) -> (usize, usize, String) {
    let i = METRICS
        .iter()
        .position(|m| m.name == name)
        .unwrap_or(METRICS.len());
    (i, group_n(name), name.to_string())
}

/// N of a `group_commit_N_*` name (0 for others), to sort by.
pub fn group_n(name: &str) -> usize {
    name.strip_prefix("group_commit_")
        .and_then(|r| r.split('_').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// CFS ping-pong between a thread on `a` and one on `b`.
fn cfs_pingpong(a: usize, b: usize, opts: &Options) -> ChildOut {
    let mut out = ChildOut::default();
    let name = if a == b {
        "cfs_switch_1cpu"
    } else {
        "cfs_switch_2cpu"
    };
    let r = (|| -> Result<Vec<f64>, String> {
        let (r1, w1) = pipe()?;
        let (r2, w2) = pipe()?;
        let total = opts.warmup + opts.iters;
        std::thread::scope(|s| {
            let echo = s.spawn(move || -> Result<(), String> {
                sys::pin_to_cpu(b).map_err(|e| e.to_string())?;
                let (mut r1, mut w2) = (r1, w2);
                let mut buf = [0u8; 1];
                for _ in 0..total {
                    r1.read_exact(&mut buf).map_err(|e| format!("read: {e}"))?;
                    w2.write_all(&buf).map_err(|e| format!("write: {e}"))?;
                }
                Ok(())
            });
            let ping = s.spawn(move || -> Result<Vec<f64>, String> {
                sys::pin_to_cpu(a).map_err(|e| e.to_string())?;
                let (mut r2, mut w1) = (r2, w1);
                let mut buf = [0u8; 1];
                let mut v = Vec::with_capacity(opts.iters);
                for i in 0..total {
                    let t0 = now();
                    w1.write_all(b"x").map_err(|e| format!("write: {e}"))?;
                    r2.read_exact(&mut buf).map_err(|e| format!("read: {e}"))?;
                    let t1 = now();
                    if i >= opts.warmup {
                        v.push(delta(t0, t1) / 2.0);
                    }
                }
                Ok(v)
            });
            let v = ping.join().map_err(|_| "the ping thread panicked")??;
            echo.join().map_err(|_| "the echo thread panicked")??;
            Ok(v)
        })
    })();
    match r {
        Ok(v) => {
            out.samples.insert(name.into(), v);
        }
        Err(e) => out.error = Some(e),
    }
    out
}

/// A pipe, as two files.
fn pipe() -> Result<(File, File), String> {
    let (r, w) = nix::unistd::pipe().map_err(|e| format!("pipe: {e}"))?;
    Ok((File::from(r), File::from(w)))
}

/// Runs a ghost configuration in a child process and collects its output.
fn in_child(c: Config, ncpus: usize, opts: &Options) -> ChildOut {
    let fail = |e: String| ChildOut {
        error: Some(e),
        ..ChildOut::default()
    };
    let (rd, wr) = match nix::unistd::pipe() {
        Ok(p) => p,
        Err(e) => return fail(format!("pipe: {e}")),
    };
    // The parent is single-threaded here (the ping-pong threads were
    // joined), so the child may run any code; it ends with `_exit`.
    let pid = match sys::fork_single_threaded() {
        Err(e) => return fail(format!("fork: {e}")),
        Ok(nix::unistd::ForkResult::Child) => {
            drop(rd);
            child_main(c, ncpus, opts, File::from(wr))
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => child,
    };
    drop(wr);
    let mut out = read_child(rd, pid);
    // The enclave died with the child (it was ephemeral); a hung child was
    // killed, which destroys it too.
    if out.samples.is_empty() && out.error.is_none() {
        out.error = Some("the child sent nothing".into());
    }
    out
}

/// Reads the child's JSON until EOF; kills it if it goes quiet for longer
/// than the stall cap. Reaps it.
fn read_child(rd: OwnedFd, pid: nix::unistd::Pid) -> ChildOut {
    let mut f = File::from(rd);
    let mut buf = Vec::new();
    let mut last = Instant::now();
    let mut hung = false;
    loop {
        let rev = sys::poll(&[(f.as_fd(), libc::POLLIN)], 1000).unwrap_or_default();
        if rev.first().is_some_and(|&r| r != 0) {
            let mut chunk = [0u8; 65536];
            match f.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    last = Instant::now();
                }
            }
        } else if last.elapsed() > STALL_CAP * 3 {
            hung = true;
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            break;
        }
    }
    let _ = nix::sys::wait::waitpid(pid, None);
    let text = String::from_utf8_lossy(&buf);
    let mut out = match text.lines().last().map(serde_json::from_str::<ChildOut>) {
        Some(Ok(o)) => o,
        _ => ChildOut::default(),
    };
    if hung {
        out.error = Some(format!(
            "no result within {} s: killed (a hang)",
            (STALL_CAP * 3).as_secs()
        ));
    }
    out
}

/// The child: runs the configuration, writes one JSON line, destroys the
/// enclave (which kills this process) or exits.
fn child_main(c: Config, ncpus: usize, opts: &Options, mut out: File) -> ! {
    let mut res = ChildOut::default();
    let mut dir = None;
    // On success `child_run` finishes inside its thread scope (whose
    // threads never end); here only for errors before that.
    if let Err(e) = child_run(c, ncpus, opts, &mut out, &mut dir) {
        res.error = Some(e);
    }
    finish(&mut out, &res, dir.as_ref())
}

/// Sends the result, then destroys the enclave, which kills this process
/// (the kernel kills a destroyed enclave's agents), or exits.
fn finish(out: &mut File, res: &ChildOut, dir: Option<&EnclaveDir>) -> ! {
    let line = serde_json::to_string(res).unwrap_or_else(|_| "{}".into());
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
    if let Some(d) = dir {
        let _ = d.destroy();
    }
    // Ends the child without running the parent's destructors (and
    // without joining threads that never end).
    sys::exit_now(0)
}

/// With `GHOST_BENCH_TRACE` set and not empty, prints a progress line
/// (`scripts/vm-run` passes it to the guest, empty when it is unset).
fn trace(what: &str) {
    if std::env::var_os("GHOST_BENCH_TRACE").is_some_and(|v| !v.is_empty()) {
        eprintln!("ghost-bench[{}]: {what}", std::process::id());
    }
}

/// Shared by the threads of a ghost configuration.
struct Shared {
    ntasks: usize,
    /// 0: setup (commit whatever is runnable); 1: measuring.
    phase: AtomicU32,
    /// The global agent commits once this many tasks are runnable.
    group_n: AtomicUsize,
    agents_up: AtomicUsize,
    /// Tasks: gtid, the CPU, when it was about to block, when it ran, how
    /// often it ran.
    gtid: [AtomicI64; MAX_TASKS],
    t_block: [AtomicU64; MAX_TASKS],
    t_run: [AtomicU64; MAX_TASKS],
    runs: [AtomicU64; MAX_TASKS],
    /// The agent: when it read TASK_BLOCKED / TASK_WAKEUP of a task, how
    /// many TASK_BLOCKED it read.
    t_seen_blocked: [AtomicU64; MAX_TASKS],
    t_seen_wakeup: [AtomicU64; MAX_TASKS],
    blocked_seen: [AtomicU64; MAX_TASKS],
    /// The agent's last commit: call, return; successful commits (groups).
    t_commit_start: AtomicU64,
    t_commit_end: AtomicU64,
    commits: AtomicU64,
    /// Partial groups the global agent committed (see [`GROUP_FLUSH_NS`]).
    partial: AtomicU64,
    commit_failures: AtomicU64,
    failure_kinds: Mutex<BTreeMap<String, u64>>,
    /// The local agent measured the system calls.
    syscalls_done: AtomicBool,
    error: Mutex<Option<String>>,
    samples: Mutex<BTreeMap<String, Vec<f64>>>,
}

impl Shared {
    fn new(ntasks: usize) -> Self {
        Self {
            ntasks,
            phase: AtomicU32::new(0),
            group_n: AtomicUsize::new(ntasks),
            agents_up: AtomicUsize::new(0),
            gtid: std::array::from_fn(|_| AtomicI64::new(0)),
            t_block: std::array::from_fn(|_| AtomicU64::new(0)),
            t_run: std::array::from_fn(|_| AtomicU64::new(0)),
            runs: std::array::from_fn(|_| AtomicU64::new(0)),
            t_seen_blocked: std::array::from_fn(|_| AtomicU64::new(0)),
            t_seen_wakeup: std::array::from_fn(|_| AtomicU64::new(0)),
            blocked_seen: std::array::from_fn(|_| AtomicU64::new(0)),
            t_commit_start: AtomicU64::new(0),
            t_commit_end: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            partial: AtomicU64::new(0),
            commit_failures: AtomicU64::new(0),
            failure_kinds: Mutex::new(BTreeMap::new()),
            syscalls_done: AtomicBool::new(false),
            error: Mutex::new(None),
            samples: Mutex::new(BTreeMap::new()),
        }
    }

    fn fail(&self, e: String) {
        if let Ok(mut g) = self.error.lock() {
            g.get_or_insert(e);
        }
    }

    /// Counts a failed commit and its outcome.
    fn commit_failed(&self, r: Option<TxnResult>) {
        self.commit_failures.fetch_add(1, Ordering::Relaxed);
        let k = r.map_or("PENDING".to_string(), |r| r.to_string());
        if let Ok(mut g) = self.failure_kinds.lock() {
            *g.entry(k).or_default() += 1;
        }
    }

    fn failed(&self) -> Option<String> {
        self.error.lock().ok().and_then(|g| g.clone())
    }

    fn record(&self, name: &str, v: Vec<f64>) {
        if let Ok(mut g) = self.samples.lock() {
            g.entry(name.to_string()).or_default().extend(v);
        }
    }

    /// The task index of `gtid`.
    fn index_of(&self, gtid: i64) -> Option<usize> {
        (0..self.ntasks).find(|&j| self.gtid[j].load(Ordering::Acquire) == gtid)
    }
}

/// A runnable task as the agent knows it: index, gtid, barrier.
#[derive(Clone, Copy)]
struct Runnable {
    j: usize,
    gtid: i64,
    barrier: u32,
}

/// Applies one message to the agent's runnable list and the shared
/// timestamps.
/// Returns whether a task that had been committed is runnable again
/// without a wakeup (TASK_PREEMPT, TASK_YIELD): the global agent commits it
/// at once instead of waiting for a whole group (the group's other tasks
/// may have run and blocked meanwhile, and would never join it).
fn handle(sh: &Shared, r: Received, runnable: &mut Vec<Runnable>) -> bool {
    let t = now();
    let Some(gtid) = r.msg.gtid() else {
        return false;
    };
    let Some(j) = sh.index_of(gtid) else {
        return false;
    };
    let set = |runnable: &mut Vec<Runnable>| {
        let e = Runnable {
            j,
            gtid,
            barrier: r.seqnum,
        };
        match runnable.iter_mut().find(|x| x.j == j) {
            Some(x) => *x = e,
            None => runnable.push(e),
        }
    };
    match r.msg {
        Message::TaskNew(p) if p.runnable != 0 => set(runnable),
        Message::TaskWakeup(_) => {
            sh.t_seen_wakeup[j].store(t, Ordering::Release);
            set(runnable);
        }
        Message::TaskPreempt(_) | Message::TaskYield(_) => {
            set(runnable);
            return true;
        }
        Message::TaskBlocked(_) => {
            runnable.retain(|x| x.j != j);
            sh.t_seen_blocked[j].store(t, Ordering::Release);
            sh.blocked_seen[j].fetch_add(1, Ordering::AcqRel);
        }
        Message::TaskDead(_) | Message::TaskDeparted(_) => runnable.retain(|x| x.j != j),
        _ => {
            if let Some(x) = runnable.iter_mut().find(|x| x.j == j) {
                x.barrier = r.seqnum;
            }
        }
    }
    false
}

/// Reads the calling thread's gtid.
fn own_gtid() -> Result<i64, String> {
    let s = std::fs::read_to_string("/proc/thread-self/ghost/gtid")
        .map_err(|e| format!("read /proc/thread-self/ghost/gtid: {e}"))?;
    s.trim()
        .parse()
        .map_err(|_| format!("gtid `{}` is not a number", s.trim()))
}

/// A task: pinned to `cpu`, joins the enclave, then blocks on its pipe,
/// runs when woken, records when, blocks again.
fn task(sh: &Shared, j: usize, cpu: usize, dir: &EnclaveDir, mut rd: File) {
    let setup = (|| -> Result<(), String> {
        sys::pin_to_cpu(cpu).map_err(|e| e.to_string())?;
        sh.gtid[j].store(own_gtid()?, Ordering::Release);
        dir.add_task(0).map_err(|e| e.to_string())
    })();
    if let Err(e) = setup {
        sh.fail(format!("task {j}: {e}"));
        return;
    }
    let mut b = [0u8; 1];
    loop {
        sh.t_block[j].store(now(), Ordering::Release);
        if !matches!(rd.read(&mut b), Ok(1)) {
            return;
        }
        sh.t_run[j].store(now(), Ordering::Release);
        sh.runs[j].fetch_add(1, Ordering::AcqRel);
    }
}

/// Becomes the agent of `cpu` (messages to `q`, or the default queue) and
/// returns its status word.
fn become_agent<'e>(
    e: &'e Enclave,
    cpu: usize,
    q: Option<&Queue>,
) -> Result<StatusWord<'e>, String> {
    sys::pin_to_cpu(cpu).map_err(|e| e.to_string())?;
    e.become_agent(cpu, q).map_err(|e| e.to_string())?;
    let info = e.agent_sw_info(cpu).map_err(|e| e.to_string())?;
    e.sw()
        .get(info)
        .ok_or_else(|| format!("agent of CPU {cpu}: status word {info:?} is not mapped"))
}

/// An agent that only sleeps in `ghost_run` (the target CPUs of the
/// global agent).
fn satellite(sh: &Shared, e: &Enclave, cpu: usize) {
    let me = match become_agent(e, cpu, None) {
        Ok(me) => me,
        Err(err) => return sh.fail(format!("satellite agent: {err}")),
    };
    sh.agents_up.fetch_add(1, Ordering::AcqRel);
    loop {
        let _ = sys::ghost_run(0, me.barrier(), 0, cpu as i32, 0);
    }
}

/// Times `f` `n` times.
fn time_n(n: usize, mut f: impl FnMut() -> bool) -> Result<Vec<f64>, ()> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t0 = now();
        let ok = f();
        let t1 = now();
        if !ok {
            return Err(());
        }
        v.push(delta(t0, t1));
    }
    Ok(v)
}

/// The system-call figures, from the local agent.
fn measure_syscalls(sh: &Shared, e: &Enclave, me: &StatusWord<'_>, cpu: usize, n: usize) {
    let c = cpu as i32;
    let n = n.max(200) * 5;
    match time_n(n, || {
        sys::ghost_run(0, me.barrier().wrapping_sub(1), 0, c, 0) == Err(Errno(libc::ESTALE))
    }) {
        Ok(v) => sh.record("ghost_run_estale", v),
        Err(()) => sh.fail("ghost_run with a stale barrier did not return ESTALE".into()),
    }
    match time_n(n, || {
        sys::ghost_run(abi::GHOST_AGENT_GTID, 0, 0, c, 0).is_ok()
    }) {
        Ok(v) => sh.record("ghost_run_ping_self", v),
        Err(()) => sh.fail("ghost_run ping of the agent's own CPU failed".into()),
    }
    match time_n(n, || sys::ioctl_null(e.ctl()).is_ok()) {
        Ok(v) => sh.record("null_ioctl", v),
        Err(()) => sh.fail("GHOST_IOC_NULL failed".into()),
    }
    if let Ok(v) = time_n(n, || {
        std::hint::black_box(nix::unistd::getppid());
        true
    }) {
        sh.record("syscall_getppid", v);
    }
    if let Ok(v) = time_n(n, || true) {
        sh.record("clock_read", v);
    }
}

/// The agent of the local configuration.
fn local_agent(sh: &Shared, e: &Enclave, q: &Queue, cpu: usize, iters: usize) {
    let me = match become_agent(e, cpu, Some(q)) {
        Ok(me) => me,
        Err(err) => return sh.fail(format!("local agent: {err}")),
    };
    trace("local agent up; measuring the system calls");
    measure_syscalls(sh, e, &me, cpu, iters);
    trace("system calls measured");
    sh.syscalls_done.store(true, Ordering::Release);
    sh.agents_up.fetch_add(1, Ordering::AcqRel);
    let Some(txn) = e.cpu_data().txn(cpu) else {
        return sh.fail(format!("no txn for CPU {cpu}"));
    };
    let mut mask = CpuMask::new();
    mask.set(cpu);
    let mut cons = q.ring().consumer();
    let mut runnable = Vec::with_capacity(MAX_TASKS);
    loop {
        let b = me.barrier();
        while let Some(r) = cons.pop() {
            match r {
                Ok(r) => {
                    handle(sh, r, &mut runnable);
                }
                Err(err) => sh.fail(format!("local agent's queue: {err:?}")),
            }
        }
        let Some(&t) = runnable.first() else {
            let _ = sys::ghost_run(0, b, 0, cpu as i32, 0);
            continue;
        };
        let setup = sh.phase.load(Ordering::Acquire) == 0;
        let req = TxnRequest {
            gtid: t.gtid,
            agent_barrier: b,
            task_barrier: t.barrier,
            run_flags: 0,
            commit_flags: abi::COMMIT_AT_TXN_COMMIT | if setup { abi::ALLOW_TASK_ONCPU } else { 0 },
        };
        if txn.open(&req).is_err() {
            txn.finish(1000);
            continue;
        }
        sh.t_commit_start.store(now(), Ordering::Release);
        let _ = e.commit(&mask);
        match txn.finish(1000) {
            Some(TxnResult::Complete) => {
                runnable.retain(|x| x.j != t.j);
                sh.commits.fetch_add(1, Ordering::AcqRel);
            }
            r => sh.commit_failed(r),
        }
    }
}

/// The spinning global agent: commits the runnable tasks, each on its
/// CPU, once `group_n` of them are runnable (any number while setting up,
/// or to retry a failed commit).
fn global_agent(sh: &Shared, e: &Enclave, q: &Queue, cpu: usize, task_cpus: &[usize]) {
    let me = match become_agent(e, cpu, Some(q)) {
        Ok(me) => me,
        Err(err) => return sh.fail(format!("global agent: {err}")),
    };
    trace("global agent up");
    sh.agents_up.fetch_add(1, Ordering::AcqRel);
    let cd = e.cpu_data();
    let mut cons = q.ring().consumer();
    let mut runnable = Vec::with_capacity(MAX_TASKS);
    let mut retry = false;
    let mut last_msg = now();
    loop {
        while let Some(r) = cons.pop() {
            last_msg = now();
            match r {
                Ok(r) => retry |= handle(sh, r, &mut runnable),
                Err(err) => sh.fail(format!("global agent's queue: {err:?}")),
            }
        }
        if runnable.is_empty() {
            retry = false;
        }
        let setup = sh.phase.load(Ordering::Acquire) == 0;
        let full = runnable.len() >= sh.group_n.load(Ordering::Acquire);
        // The clock only while a group is waiting to fill.
        let stuck =
            !full && !runnable.is_empty() && now().saturating_sub(last_msg) > GROUP_FLUSH_NS;
        if runnable.is_empty() || !(setup || retry || full || stuck) {
            std::hint::spin_loop();
            continue;
        }
        if stuck && !setup && !retry {
            sh.partial.fetch_add(1, Ordering::AcqRel);
        }
        let mut mask = CpuMask::new();
        let b = me.barrier();
        for t in &runnable {
            let Some(&tcpu) = task_cpus.get(t.j) else {
                continue;
            };
            let req = TxnRequest {
                gtid: t.gtid,
                agent_barrier: b,
                task_barrier: t.barrier,
                run_flags: 0,
                commit_flags: abi::COMMIT_AT_TXN_COMMIT
                    | if setup { abi::ALLOW_TASK_ONCPU } else { 0 },
            };
            if cd.txn(tcpu).is_some_and(|x| x.open(&req).is_ok()) {
                mask.set(tcpu);
            }
        }
        let t0 = now();
        sh.t_commit_start.store(t0, Ordering::Release);
        let _ = e.commit(&mask);
        sh.t_commit_end.store(now(), Ordering::Release);
        let mut all_ok = true;
        runnable.retain(|t| {
            let r = task_cpus
                .get(t.j)
                .filter(|&&c| mask.contains(c))
                .and_then(|&c| cd.txn(c))
                .and_then(|x| x.finish(100_000));
            let ok = r == Some(TxnResult::Complete);
            if !ok {
                sh.commit_failed(r);
            }
            all_ok &= ok;
            !ok
        });
        if all_ok {
            sh.commits.fetch_add(1, Ordering::AcqRel);
        } else {
            retry = true;
        }
    }
}

/// Waits until `f` holds, polling; an error when the shared error is set
/// or nothing changes for the stall cap (`what` says what was awaited).
fn wait_until(sh: &Shared, what: &str, mut f: impl FnMut() -> bool) -> Result<(), String> {
    let start = Instant::now();
    let mut spins = 0u32;
    while !f() {
        if let Some(e) = sh.failed() {
            return Err(e);
        }
        if start.elapsed() > STALL_CAP {
            return Err(format!(
                "waited {} s for {what} (a hang cap)",
                STALL_CAP.as_secs()
            ));
        }
        spins += 1;
        if spins < 100 {
            std::hint::spin_loop();
        } else {
            std::thread::sleep(Duration::from_micros(20));
        }
    }
    Ok(())
}

/// The child's work for a ghost configuration; `dir` is set once the
/// enclave exists (so that the caller destroys it).
fn child_run(
    c: Config,
    ncpus: usize,
    opts: &Options,
    out: &mut File,
    dir_out: &mut Option<EnclaveDir>,
) -> Result<(), String> {
    sys::pin_to_cpu(0).map_err(|e| e.to_string())?;
    // Every mapped page present and locked before a thread joins ghost: a
    // ghost task that faults on the binary's text (read over 9p in the VM)
    // waits for the page, and the next one to fault waits for its lock,
    // which the kernel hands to a woken task the agent may not have run
    // yet. (Not MCL_FUTURE: the threads' stacks fault in zeroed pages,
    // without I/O, and populating ~40 stacks of 2 MiB costs seconds under
    // TCG.)
    if let Err(e) = nix::sys::mman::mlockall(nix::sys::mman::MlockAllFlags::MCL_CURRENT) {
        trace(&format!("mlockall(MCL_CURRENT): {e} (going on unlocked)"));
    }
    let (ecpus, task_cpus): (Vec<usize>, Vec<usize>) = match c {
        Config::Local => (vec![ncpus - 1], vec![ncpus - 1]),
        Config::Global(n) => ((1..ncpus).collect(), (2..2 + n).collect()),
        _ => return Err("not a ghost configuration".into()),
    };
    let ntasks = task_cpus.len();
    let cpuset: CpuSet = ecpus.iter().copied().collect();
    let dir = enclave::create(&cpuset, true).map_err(|e| e.to_string())?;
    *dir_out = Some(dir.clone());
    let e = Enclave::open(dir.clone()).map_err(|e| e.to_string())?;
    let q = e.create_queue(1024, -1).map_err(|e| e.to_string())?;
    if c == Config::Local {
        e.config_queue_wakeup(&q, &[ncpus - 1])
            .map_err(|e| e.to_string())?;
    }
    e.set_default_queue(&q).map_err(|e| e.to_string())?;
    let sh = Shared::new(ntasks);
    let mut writers = Vec::new();
    let mut readers = Vec::new();
    for _ in 0..ntasks {
        let (r, w) = pipe()?;
        readers.push(r);
        writers.push(w);
    }
    let nagents = ecpus.len();
    trace(&format!("{}: enclave {} set up", c.name(), dir.id));
    std::thread::scope(|s| -> Result<(), String> {
        match c {
            Config::Local => {
                let (sh, e, q) = (&sh, &e, &q);
                s.spawn(move || local_agent(sh, e, q, ncpus - 1, opts.iters));
            }
            _ => {
                let (sh, e, q, tc) = (&sh, &e, &q, &task_cpus);
                s.spawn(move || global_agent(sh, e, q, 1, tc));
                for cpu in 2..ncpus {
                    s.spawn(move || satellite(sh, e, cpu));
                }
            }
        }
        let mut res = ChildOut::default();
        let r = wait_until(&sh, "the agents to start", || {
            sh.agents_up.load(Ordering::Acquire) == nagents
        })
        .and_then(|()| {
            trace("agents up");
            let (shr, dirr) = (&sh, &dir);
            for (j, rd) in readers.drain(..).enumerate() {
                let cpu = task_cpus[j];
                s.spawn(move || task(shr, j, cpu, dirr, rd));
            }
            drive(&sh, c, &mut writers, opts)
        });
        trace(&format!("driver done: {r:?}"));
        res.commit_failures = sh.commit_failures.load(Ordering::Relaxed);
        res.partial_groups = sh.partial.load(Ordering::Relaxed);
        if let Ok(g) = sh.failure_kinds.lock() {
            res.failure_kinds = g.clone();
        }
        if let Ok(mut g) = sh.samples.lock() {
            res.samples.append(&mut g);
        }
        res.error = r.err();
        // The scope's threads never end: finish here.
        finish(out, &res, Some(&dir))
    })
}

/// The driver (CPU 0, CFS): wakes the tasks, waits for them to run and
/// block again, and turns the shared timestamps into samples.
fn drive(sh: &Shared, c: Config, writers: &mut [File], opts: &Options) -> Result<(), String> {
    let n = writers.len();
    wait_until(sh, "every task to join, run once and block", || {
        (0..n).all(|j| sh.blocked_seen[j].load(Ordering::Acquire) >= 1)
    })?;
    sh.phase.store(1, Ordering::Release);
    let mut msg = Vec::new();
    let mut wake = Vec::new();
    let mut target = Vec::new();
    let mut agent = Vec::new();
    let total = opts.warmup + opts.iters;
    for it in 0..total {
        let k = it as u64 + 1;
        wait_until(sh, "the tasks to block again", || {
            (0..n).all(|j| sh.blocked_seen[j].load(Ordering::Acquire) >= k)
        })?;
        let rec = it >= opts.warmup;
        if rec && it > 0 {
            for j in 0..n {
                msg.push(delta(
                    sh.t_block[j].load(Ordering::Acquire),
                    sh.t_seen_blocked[j].load(Ordering::Acquire),
                ));
            }
        }
        let c0 = sh.commits.load(Ordering::Acquire);
        let p0 = sh.partial.load(Ordering::Acquire);
        let t_wake = now();
        for w in writers.iter_mut() {
            w.write_all(b"x").map_err(|e| format!("write: {e}"))?;
        }
        wait_until(sh, "the woken tasks to run", || {
            (0..n).all(|j| sh.runs[j].load(Ordering::Acquire) >= k)
                && sh.commits.load(Ordering::Acquire) > c0
        })?;
        // A partial group was committed: not a group commit, not a sample
        // (counted in the output).
        if sh.partial.load(Ordering::Acquire) != p0 {
            continue;
        }
        if rec {
            let start = sh.t_commit_start.load(Ordering::Acquire);
            for j in 0..n {
                target.push(delta(start, sh.t_run[j].load(Ordering::Acquire)));
            }
            if n == 1 {
                wake.push(delta(t_wake, sh.t_seen_wakeup[0].load(Ordering::Acquire)));
            }
            agent.push(delta(start, sh.t_commit_end.load(Ordering::Acquire)));
        }
    }
    match c {
        Config::Local => {
            sh.record("msg_local", msg);
            sh.record("msg_local_wakeup", wake);
            sh.record("local_schedule", target);
        }
        Config::Global(1) => {
            sh.record("msg_global", msg);
            sh.record("remote_schedule_agent", agent);
            sh.record("remote_schedule_target", target);
        }
        Config::Global(g) => {
            sh.record(&format!("group_commit_{g}_agent"), agent);
            sh.record(&format!("group_commit_{g}_target"), target);
        }
        _ => {}
    }
    if !sh.syscalls_done.load(Ordering::Acquire) && c == Config::Local {
        return Err("the local agent did not measure the system calls".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_metrics_are_described() {
        let (d, p) = metric_info("group_commit_10_agent");
        assert!(d.contains("10 transactions"), "{d}");
        assert_eq!(p, Some(PAPER_GROUP10.0));
        let (d, p) = metric_info("group_commit_6_target");
        assert!(d.contains("target side"), "{d}");
        assert_eq!(p, None);
        assert_eq!(metric_info("local_schedule").1, Some(888.0));
        assert_eq!(group_n("group_commit_32_agent"), 32);
        assert_eq!(group_n("msg_local"), 0);
    }

    #[test]
    fn plan_fits_groups_to_the_cpus() {
        let opts = |only_groups| Options {
            rounds: 1,
            iters: 1,
            warmup: 0,
            groups: vec![1, 10, 32],
            only_groups,
            mode: "t".into(),
        };
        // make bench's main boot: 4 vCPUs, a group of 2 instead.
        let (c, g, sk) = plan(4, &opts(false));
        assert_eq!(
            c,
            [
                Config::Cfs1,
                Config::Cfs2,
                Config::Local,
                Config::Global(1),
                Config::Global(2)
            ]
        );
        assert_eq!(g, [1, 2, 10, 32]);
        assert_eq!(sk.len(), 2, "{sk:?}");
        assert!(sk[0].contains("group_commit_10: needs 12 CPUs"), "{sk:?}");
        // Its groups boot: 34 vCPUs, the group commits alone.
        let (c, g, sk) = plan(34, &opts(true));
        assert_eq!(c, [Config::Global(10), Config::Global(32)]);
        assert_eq!(g, [10, 32]);
        assert!(sk.is_empty(), "{sk:?}");
        // 12 vCPUs: N = 10 only.
        let (c, _, sk) = plan(12, &opts(true));
        assert_eq!(c, [Config::Global(10)]);
        assert!(sk[0].contains("group_commit_32: needs 34 CPUs"), "{sk:?}");
    }

    #[test]
    fn check_wants_every_figure() {
        let metric = |name: &str| MetricOut {
            name: name.into(),
            desc: String::new(),
            unit: "ns".into(),
            paper_ns: None,
            summary: stats::summarize(&[1.0, 2.0]).unwrap(),
            round_medians: vec![1.0],
            samples: vec![1.0, 2.0],
            source: None,
        };
        let mut m = MicroOut {
            mode: "t".into(),
            only_groups: false,
            kernel: String::new(),
            cpus: 2,
            rounds: 1,
            iters: 2,
            metrics: required(2).into_iter().map(metric).collect(),
            skipped: vec![],
            commit_failures: BTreeMap::new(),
            partial_groups: BTreeMap::new(),
            errors: vec![],
        };
        let ok = serde_json::to_string(&m).unwrap();
        assert_eq!(check_text(&ok), Ok(required(2).len()));
        m.cpus = 4;
        let e = check_text(&serde_json::to_string(&m).unwrap()).unwrap_err();
        assert!(e.contains("cfs_switch_2cpu"), "{e}");
        m.cpus = 2;
        m.errors.push("round 1 local-agent: hang".into());
        let e = check_text(&serde_json::to_string(&m).unwrap()).unwrap_err();
        assert!(e.contains("hang"), "{e}");
        assert!(check_text("{").unwrap_err().contains("does not parse"));
    }

    #[test]
    fn cfs_pingpong_measures_on_the_host() {
        // Runs anywhere: two threads on CPU 0.
        let opts = Options {
            rounds: 1,
            iters: 20,
            warmup: 2,
            groups: vec![],
            only_groups: false,
            mode: "test".into(),
        };
        let r = cfs_pingpong(0, 0, &opts);
        assert!(r.error.is_none(), "{:?}", r.error);
        let v = &r.samples["cfs_switch_1cpu"];
        assert_eq!(v.len(), 20);
        assert!(v.iter().all(|&x| x > 0.0));
    }
}
