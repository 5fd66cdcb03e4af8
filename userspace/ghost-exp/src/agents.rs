//! The bundled binaries against the live kernel: `ghost-agent` (both
//! policies) runs ghOSt's `simple_exp` scenarios (`ghost-exp simple`),
//! `ghostctl` drives a live enclave, an agent is upgraded in place, and
//! Ctrl-C of an agent leaves no task stuck.
//!
//! The binaries are the ones built next to this one (`build/cargo/release`).
//! Each runs as a child process with its output in a file under `/tmp`;
//! every wait is bounded.

use crate::scheduling::wait_for;
use crate::suite::nr_cpu_ids;
use crate::sys::{self, Exit};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Thread counts of the scenarios are divided by this (TCG is slow).
const SCALE: &str = "20";

/// A bundled binary: the one next to `ghost-exp`.
fn bin(name: &str) -> Result<PathBuf, String> {
    let me = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let p = me.with_file_name(name);
    ensure!(p.exists(), "{} not found (make userspace)", p.display());
    Ok(p)
}

/// A child process whose output goes to a file; killed (after the
/// enclaves are destroyed: its ghost threads could not die otherwise) and
/// reaped if the test ends before it.
pub(crate) struct Proc {
    child: Option<Child>,
    log: PathBuf,
    what: String,
}

impl Proc {
    /// Starts `name args...`.
    pub(crate) fn start(name: &str, args: &[&str]) -> Result<Proc, String> {
        Proc::start_exe(&bin(name)?, name, args)
    }

    /// Starts the program at `exe` (called `name` in messages and the log
    /// file name) with `args`.
    pub(crate) fn start_exe(exe: &Path, name: &str, args: &[&str]) -> Result<Proc, String> {
        let what = format!("{name} {}", args.join(" "));
        static N: AtomicU32 = AtomicU32::new(0);
        let log = PathBuf::from(format!(
            "/tmp/ghost-test-{}-{}-{name}.log",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let out = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| format!("dup: {e}"))?;
        let child = Command::new(exe)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("{what}: {e}"))?;
        Ok(Proc {
            child: Some(child),
            log,
            what,
        })
    }

    fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// What it printed so far.
    pub(crate) fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `sig`.
    pub(crate) fn signal(&self, sig: i32) {
        // SAFETY: plain syscall on our own child.
        unsafe { libc::kill(self.pid(), sig) };
    }

    /// Waits for it to end: with `secs` 0, only whether it has; otherwise
    /// for `secs`, at least the hang cap (an exit that takes a second on a
    /// quiet machine can take minutes on a loaded one).
    pub(crate) fn wait(&mut self, secs: u64) -> Result<Exit, String> {
        let secs = match secs {
            0 => 0,
            s => crate::scheduling::hang_cap(s * 1000) / 1000,
        };
        let end = Instant::now() + Duration::from_secs(secs);
        let child = self.child.as_mut().ok_or("already reaped")?;
        loop {
            match child.try_wait() {
                Ok(Some(st)) => {
                    self.child = None;
                    use std::os::unix::process::ExitStatusExt;
                    return Ok(match (st.code(), st.signal()) {
                        (Some(c), _) => Exit::Code(c),
                        (_, Some(s)) => Exit::Signal(s),
                        _ => Exit::Code(-1),
                    });
                }
                Ok(None) if Instant::now() < end => std::thread::sleep(Duration::from_millis(20)),
                Ok(None) => {
                    return Err(format!(
                        "`{}` still running after {secs} s; it printed:\n{}",
                        self.what,
                        tail(&self.output())
                    ))
                }
                Err(e) => return Err(format!("wait {}: {e}", self.what)),
            }
        }
    }

    /// Waits up to `secs` for a clean exit (code 0).
    pub(crate) fn finish(&mut self, secs: u64) -> Result<String, String> {
        let exit = self.wait(secs)?;
        let out = self.output();
        ensure!(
            exit == Exit::Code(0),
            "`{}` ended {exit:?}; it printed:\n{}",
            self.what,
            tail(&out)
        );
        Ok(out)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = crate::suite::destroy_all_enclaves();
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

/// The last lines of `s`.
fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// Runs `name args...` to completion (bounded), returns its output.
fn run(name: &str, args: &[&str], secs: u64) -> Result<String, String> {
    Proc::start(name, args)?.finish(secs)
}

/// How long an agent may take to come online (`agent_online` reads 1), in
/// seconds: a cap that only catches a hang. A started agent comes up in a
/// second or two on an idle machine, but a busy TCG host has taken more
/// than 60 s for the first start after boot.
pub(crate) const AGENT_UP_S: u64 = 300;

/// The id of the enclave whose agent is online, once there is one (waits
/// up to `secs`).
pub(crate) fn online_enclave(secs: u64) -> Option<u64> {
    let mut id = None;
    wait_for(secs * 1000, || {
        id = ghost::ghostfs::list().ok().and_then(|ids| {
            ids.into_iter().find(|i| {
                std::fs::read_to_string(crate::mapped::path(*i, "agent_online"))
                    .is_ok_and(|s| s.trim() == "1")
            })
        });
        id.is_some()
    });
    id
}

/// Runs the six scenarios under `agent` and stops it with SIGINT: every
/// scenario passes, the agent exits 0 with its statistics, and its
/// enclave is gone.
fn scenarios_under(agent_args: &[&str]) -> Result<(), String> {
    sys::ensure_ghostfs()?;
    let mut agent = Proc::start("ghost-agent", agent_args)?;
    let id = online_enclave(AGENT_UP_S).ok_or_else(|| {
        format!(
            "no agent online after {AGENT_UP_S} s; ghost-agent printed:\n{}",
            tail(&agent.output())
        )
    })?;
    let out = run(
        "ghost-exp",
        &[
            "simple",
            "--enclave",
            &id.to_string(),
            "--verify",
            "--scale",
            SCALE,
        ],
        600,
    )?;
    let passed = out.lines().filter(|l| l.starts_with("PASS ")).count();
    ensure!(passed == 6, "{passed} of 6 scenarios passed:\n{out}");
    agent.signal(libc::SIGINT);
    let stats = agent.finish(30)?;
    ensure!(
        stats.contains("TASK_NEW") && stats.contains("COMPLETE"),
        "no statistics table at exit:\n{}",
        tail(&stats)
    );
    ensure!(
        !std::path::Path::new(&crate::mapped::path(id, "ctl")).exists(),
        "enclave_{id} still there after the agent that created it stopped"
    );
    Ok(())
}

/// `ghost-agent fifo` on the last CPU runs the six simple_exp scenarios.
pub fn agent_fifo_runs_simple_exp() -> Result<(), String> {
    let cpu = (nr_cpu_ids()? - 1).to_string();
    scenarios_under(&["fifo", "--cpus", &cpu])
}

/// `ghost-agent fifo-central` (global agent on CPU 0) runs them too.
pub fn agent_fifo_central_runs_simple_exp() -> Result<(), String> {
    let n = nr_cpu_ids()?;
    ensure!(n >= 2, "needs 2 CPUs, have {n}");
    let cpus = format!("0-{}", n - 1);
    scenarios_under(&["fifo-central", "--cpus", &cpus, "--global-cpu", "0"])
}

/// A process that sleeps (for `ghostctl tasks add`).
fn sleeper() -> Result<i32, String> {
    sys::fork_child(|| {
        std::thread::sleep(Duration::from_secs(30));
        0
    })
}

/// `ghostctl` against a live enclave with an agent: list, status, tasks
/// add/list/remove, set/get, and its exit codes for bad input.
pub fn ghostctl_drives_live_enclave() -> Result<(), String> {
    sys::ensure_ghostfs()?;
    let cpu = (nr_cpu_ids()? - 1).to_string();
    let _agent = Proc::start("ghost-agent", &["fifo", "--cpus", &cpu])?;
    let id = online_enclave(AGENT_UP_S)
        .ok_or(format!("no agent online after {AGENT_UP_S} s"))?
        .to_string();
    let list = run("ghostctl", &["--json", "list"], 20)?;
    ensure!(list.contains("\"id\""), "ghostctl --json list: {list}");
    let pid = sleeper()?;
    let p = pid.to_string();
    run("ghostctl", &["tasks", "add", &id, &p], 20)?;
    ensure!(
        sys::sched_policy(pid) == ghost_abi::SCHED_GHOST,
        "tasks add: policy {}",
        sys::sched_policy(pid)
    );
    let status = run("ghostctl", &["status", &id], 20)?;
    ensure!(
        status.contains("online") && status.contains(&p),
        "ghostctl status lacks the agent or pid {p}:\n{status}"
    );
    let tasks = run("ghostctl", &["tasks", "list", &id], 20)?;
    ensure!(tasks.contains(&p), "tasks list lacks {p}: {tasks}");
    run("ghostctl", &["set", &id, "deliver_ticks", "on"], 20)?;
    let got = run("ghostctl", &["get", &id, "deliver_ticks"], 20)?;
    ensure!(got.trim().ends_with('1'), "get deliver_ticks: {got:?}");
    run("ghostctl", &["tasks", "remove", &p], 20)?;
    ensure!(
        sys::sched_policy(pid) == libc::SCHED_OTHER,
        "tasks remove: policy {}",
        sys::sched_policy(pid)
    );
    // Exit codes a script can act on: 2 bad command line, 3 no enclave.
    for (args, want) in [
        (vec!["status", "999"], 3),
        (vec!["frobnicate"], 2),
        (vec!["set", id.as_str(), "deliver_ticks", "maybe"], 2),
    ] {
        let mut p = Proc::start("ghostctl", &args)?;
        let exit = p.wait(20)?;
        ensure!(
            exit == Exit::Code(want),
            "ghostctl {args:?} ended {exit:?}, want exit {want}: {}",
            p.output().trim()
        );
    }
    run("ghostctl", &["destroy", &id], 20)?;
    ensure!(
        ghost::ghostfs::list().is_ok_and(|l| l.is_empty()),
        "enclaves left after ghostctl destroy"
    );
    // SAFETY: plain syscall on our own child.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    sys::wait_child(pid)?;
    Ok(())
}

/// In-place upgrade: agent B started on A's enclave waits; A is killed;
/// B takes over and the scenarios, started under A, still pass.
pub fn agent_upgrade_in_place() -> Result<(), String> {
    sys::ensure_ghostfs()?;
    let cpu = (nr_cpu_ids()? - 1).to_string();
    let mut a = Proc::start("ghost-agent", &["fifo", "--cpus", &cpu, "--keep-enclave"])?;
    let id = online_enclave(AGENT_UP_S)
        .ok_or(format!("agent A not online after {AGENT_UP_S} s"))?
        .to_string();
    let mut b = Proc::start("ghost-agent", &["fifo", "--enclave", &id])?;
    std::thread::sleep(Duration::from_millis(300));
    ensure!(
        b.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None))),
        "agent B did not wait for A: {}",
        tail(&b.output())
    );
    let mut exp = Proc::start(
        "ghost-exp",
        &[
            "simple",
            "--enclave",
            &id,
            "--verify",
            "--scale",
            SCALE,
            "BusyExp",
            "SimpleExpMany",
        ],
    )?;
    std::thread::sleep(Duration::from_millis(200));
    a.signal(libc::SIGKILL);
    let exit = a.wait(20)?;
    ensure!(
        exit == Exit::Signal(libc::SIGKILL),
        "agent A ended {exit:?}"
    );
    let out = exp.finish(600)?;
    let passed = out.lines().filter(|l| l.starts_with("PASS ")).count();
    ensure!(
        passed == 2,
        "after the takeover {passed} of 2 passed:\n{out}"
    );
    // B comes online once A is gone: within a second on a quiet machine,
    // possibly after the scenarios (run by the fallback meanwhile) on a
    // loaded one.
    let online = crate::mapped::path(id.parse().unwrap_or(0), "agent_online");
    ensure!(
        wait_for(AGENT_UP_S * 1000, || std::fs::read_to_string(&online)
            .is_ok_and(|s| s.trim() == "1")),
        "agent B is not online after {AGENT_UP_S} s: {}",
        tail(&b.output())
    );
    b.signal(libc::SIGTERM);
    b.finish(30)?;
    // An agent that attached leaves the enclave for the next one.
    run("ghostctl", &["destroy", &id], 20)?;
    Ok(())
}

/// Ctrl-C of an agent with tasks running: the agent stops cleanly and its
/// tasks are back in CFS, still running.
pub fn agent_ctrl_c_leaves_tasks_running() -> Result<(), String> {
    sys::ensure_ghostfs()?;
    let cpu = (nr_cpu_ids()? - 1).to_string();
    let mut agent = Proc::start("ghost-agent", &["fifo", "--cpus", &cpu])?;
    let id = online_enclave(AGENT_UP_S).ok_or(format!("no agent online after {AGENT_UP_S} s"))?;
    let work: &AtomicU64 = sys::shared_page()?;
    let task = sys::fork_child(move || {
        if sys::write_once(&crate::mapped::path(id, "tasks"), b"0").is_err() {
            return 3;
        }
        loop {
            work.fetch_add(1, Ordering::Relaxed);
        }
    })?;
    let ran = |n: u64| {
        let at = work.load(Ordering::Relaxed);
        wait_for(5000, || work.load(Ordering::Relaxed) > at + n)
    };
    ensure!(ran(1000), "the task did not run under the agent");
    ensure!(
        sys::sched_policy(task) == ghost_abi::SCHED_GHOST,
        "task policy {}",
        sys::sched_policy(task)
    );
    agent.signal(libc::SIGINT);
    agent.finish(30)?;
    ensure!(
        sys::sched_policy(task) == libc::SCHED_OTHER,
        "task policy {} after Ctrl-C of the agent",
        sys::sched_policy(task)
    );
    ensure!(
        ran(1000),
        "the task stopped running after Ctrl-C of the agent"
    );
    // SAFETY: plain syscall on our own child.
    unsafe { libc::kill(task, libc::SIGKILL) };
    sys::wait_child(task)?;
    Ok(())
}
