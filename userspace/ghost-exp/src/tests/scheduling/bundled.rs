//! The bundled binaries against the live kernel: `ghost-agent` (every
//! bundled policy) runs ghOSt's `simple_exp` scenarios (`ghost-exp simple`),
//! `ghostctl` drives a live enclave, an agent is upgraded in place, and
//! Ctrl-C of an agent leaves no task stuck.
//!
//! The binaries are the ones built next to this one (`build/cargo/release`).
//! Each runs as a child process with its output in a file under `/tmp`;
//! every wait is bounded.

use crate::harness::nr_cpu_ids;
use crate::harness::sys::{self, Exit};
use crate::harness::wait_for;
use crate::harness::{online_enclave, tail, Proc, AGENT_UP_S};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Thread counts of the scenarios are divided by this (TCG is slow).
const SCALE: &str = "20";

/// Runs `name args...` to completion (bounded), returns its output.
fn run(name: &str, args: &[&str], secs: u64) -> Result<String, String> {
    Proc::start(name, args)?.finish(secs)
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
        !std::path::Path::new(&crate::harness::path(id, "ctl")).exists(),
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

/// The centralized bundled policies' arguments: every CPU, the global
/// agent on CPU 0.
fn centralized(policy: &str, extra: &[&str]) -> Result<(), String> {
    let n = nr_cpu_ids()?;
    ensure!(n >= 2, "needs 2 CPUs, have {n}");
    let cpus = format!("0-{}", n - 1);
    let mut args = vec![policy, "--cpus", &cpus, "--global-cpu", "0"];
    args.extend_from_slice(extra);
    scenarios_under(&args)
}

/// `ghost-agent shinjuku` runs them, preempting by a time slice (2 ms:
/// the 30 µs default is shorter than one commit under TCG).
pub fn agent_shinjuku_runs_simple_exp() -> Result<(), String> {
    centralized("shinjuku", &["--preemption-time-slice", "2ms"])
}

/// `ghost-agent sol` (sync-group commits) runs them.
pub fn agent_sol_runs_simple_exp() -> Result<(), String> {
    centralized("sol", &[])
}

/// `ghost-agent edf` runs them (no task declares a deadline: FIFO order
/// behind the deadline tasks, of which there are none).
pub fn agent_edf_runs_simple_exp() -> Result<(), String> {
    centralized("edf", &[])
}

/// `ghost-agent fair` (per-CPU virtual runtime, preemption at ticks) on
/// the last CPU runs them.
pub fn agent_fair_runs_simple_exp() -> Result<(), String> {
    let cpu = (nr_cpu_ids()? - 1).to_string();
    scenarios_under(&["fair", "--cpus", &cpu])
}

/// A process that sleeps until killed (for `ghostctl tasks add`).
fn sleeper() -> Result<i32, String> {
    sys::fork_child(sys::sleep_until_killed)
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
    sys::kill(pid, libc::SIGKILL);
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
    let online = crate::harness::path(id.parse().unwrap_or(0), "agent_online");
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
        if sys::write_once(&crate::harness::path(id, "tasks"), b"0").is_err() {
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
    sys::kill(task, libc::SIGKILL);
    sys::wait_child(task)?;
    Ok(())
}
