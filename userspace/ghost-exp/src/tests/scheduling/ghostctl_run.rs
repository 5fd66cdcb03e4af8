//! `ghostctl run`: a command started inside an enclave, in an existing one
//! (`--enclave N`) or in an ephemeral one with its own agent (`--create`),
//! checked from inside the command (its scheduling policy, field 41 of
//! `/proc/self/stat`, is `SCHED_GHOST`) and afterwards (exit code passed
//! on, no enclave or agent left behind, clear errors).

use crate::harness::sys::{self, Exit};
use crate::harness::{nr_cpu_ids, online_enclave, tail, Proc, Test, AGENT_UP_S};
use ghost_abi::SCHED_GHOST;

/// The tests of this file.
pub(crate) const TESTS: &[Test] = &[
    Test {
        name: "ghostctl_run_in_enclave",
        run: ghostctl_run_in_enclave,
    },
    Test {
        name: "ghostctl_run_create",
        run: ghostctl_run_create,
    },
];

/// A shell script that prints its own scheduling policy (`policy=N`, from
/// `/proc/self/stat`: the shell's, not a child's) and the enclave id from
/// the environment, then exits with `code`.
fn report_script(code: i32) -> String {
    format!(
        r#"read -r s < /proc/$$/stat; s=${{s##*) }}; set -- $s; shift 38; echo "policy=$1 id=$GHOST_ENCLAVE_ID"; exit {code}"#
    )
}

/// Runs `ghostctl ARGS` (bounded): its exit and output.
fn ghostctl(args: &[&str]) -> Result<(Exit, String), String> {
    let mut p = Proc::start("ghostctl", args)?;
    // Generous: `--create` starts an agent, which under TCG on a loaded
    // host has taken a minute.
    let exit = p.wait(AGENT_UP_S + 120)?;
    Ok((exit, p.output()))
}

/// The `policy=` the report script printed.
fn policy_in(out: &str) -> Option<i32> {
    out.lines()
        .find_map(|l| l.strip_prefix("policy="))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|p| p.parse().ok())
}

/// Whether a `ghost-agent` process is running.
fn agents_running() -> Vec<String> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|d| {
            let comm = std::fs::read_to_string(d.path().join("comm")).ok()?;
            (comm.trim() == "ghost-agent").then(|| d.file_name().to_string_lossy().into_owned())
        })
        .collect()
}

/// `ghostctl run --enclave N -- COMMAND` runs COMMAND in `SCHED_GHOST` in
/// enclave N, with its exit code; a missing enclave exits 3, a missing
/// program 127, an enclave without an agent is refused.
pub fn ghostctl_run_in_enclave() -> Result<(), String> {
    sys::ensure_ghostfs()?;
    let cpu = (nr_cpu_ids()? - 1).to_string();
    let mut agent = Proc::start("ghost-agent", &["fifo", "--cpus", &cpu])?;
    let id = online_enclave(AGENT_UP_S)
        .ok_or(format!("no agent online after {AGENT_UP_S} s"))?
        .to_string();
    let script = report_script(7);
    let (exit, out) = ghostctl(&["run", "--enclave", &id, "--", "/bin/sh", "-c", &script])?;
    ensure!(
        exit == Exit::Code(7),
        "ghostctl run ended {exit:?}, want the command's exit 7: {out}"
    );
    ensure!(
        policy_in(&out) == Some(SCHED_GHOST),
        "the command's policy is {:?}, want SCHED_GHOST ({SCHED_GHOST}): {out}",
        policy_in(&out)
    );
    ensure!(
        out.contains(&format!("id={id}")),
        "GHOST_ENCLAVE_ID not {id} in the command's environment: {out}"
    );
    for (args, want, says) in [
        (
            vec!["run", "--enclave", "999", "--", "/bin/true"],
            3,
            "no enclave_999",
        ),
        (
            vec!["run", "--enclave", id.as_str(), "--", "/nonexistent/prog"],
            127,
            "ENOENT",
        ),
    ] {
        let (exit, out) = ghostctl(&args)?;
        ensure!(
            exit == Exit::Code(want) && out.contains(says),
            "ghostctl {args:?} ended {exit:?}, want exit {want} saying {says:?}: {out}"
        );
    }
    // Without an agent the command would not run: refused.
    agent.signal(libc::SIGINT);
    agent.finish(60)?;
    let bare_cpu = cpu.clone();
    let (exit, out) = ghostctl(&["create", "--cpus", &bare_cpu])?;
    ensure!(
        exit == Exit::Code(0),
        "ghostctl create ended {exit:?}: {out}"
    );
    let bare = ghost::ghostfs::list()
        .map_err(|e| e.to_string())?
        .first()
        .copied()
        .ok_or("no enclave after ghostctl create")?
        .to_string();
    let (exit, out) = ghostctl(&["run", "--enclave", &bare, "--", "/bin/true"])?;
    ensure!(
        exit == Exit::Code(1) && out.contains("no agent online"),
        "ghostctl run in an enclave without agent ended {exit:?}: {out}"
    );
    ghostctl(&["destroy", &bare])?;
    Ok(())
}

/// `ghostctl run --create --cpus LIST [--policy P] -- COMMAND` runs COMMAND
/// in `SCHED_GHOST` in a new enclave with its own agent, passes its exit
/// code on, and leaves no enclave and no agent behind; busy CPUs and an
/// agent that cannot start are reported as such, also without leftovers.
pub fn ghostctl_run_create() -> Result<(), String> {
    sys::ensure_ghostfs()?;
    let n = nr_cpu_ids()?;
    let cpu = (n - 1).to_string();
    let left = || -> Result<(), String> {
        let enclaves = ghost::ghostfs::list().map_err(|e| e.to_string())?;
        let agents = agents_running();
        ensure!(
            enclaves.is_empty() && agents.is_empty(),
            "left behind: enclaves {enclaves:?}, ghost-agent pids {agents:?}"
        );
        Ok(())
    };
    left()?;
    let script = report_script(5);
    for policy in ["fifo", "fair"] {
        let (exit, out) = ghostctl(&[
            "run", "--create", "--cpus", &cpu, "--policy", policy, "--", "/bin/sh", "-c", &script,
        ])?;
        ensure!(
            exit == Exit::Code(5),
            "ghostctl run --create --policy {policy} ended {exit:?}, want the command's exit 5: {out}"
        );
        ensure!(
            policy_in(&out) == Some(SCHED_GHOST),
            "--policy {policy}: the command's policy is {:?}, want SCHED_GHOST: {out}",
            policy_in(&out)
        );
        left()?;
    }
    if n >= 2 {
        // A centralized policy on two CPUs (global agent on the first).
        let cpus = format!("{}-{}", n - 2, n - 1);
        let (exit, out) = ghostctl(&[
            "run",
            "--create",
            "--cpus",
            &cpus,
            "--policy",
            "fifo-central",
            "--",
            "/bin/sh",
            "-c",
            &script,
        ])?;
        ensure!(
            exit == Exit::Code(5) && policy_in(&out) == Some(SCHED_GHOST),
            "fifo-central on {cpus}: ended {exit:?}: {out}"
        );
        left()?;
    }
    // Busy CPUs: another enclave holds them.
    let mut holder = Proc::start("ghostctl", &["create", "--cpus", &cpu, "--ephemeral"])?;
    ensure!(
        crate::harness::wait_for(10_000, || ghost::ghostfs::list()
            .is_ok_and(|l| !l.is_empty())),
        "ghostctl create --ephemeral made no enclave: {}",
        tail(&holder.output())
    );
    let (exit, out) = ghostctl(&["run", "--create", "--cpus", &cpu, "--", "/bin/true"])?;
    ensure!(
        exit == Exit::Code(1) && out.contains("not free"),
        "ghostctl run --create on busy CPU {cpu} ended {exit:?}: {out}"
    );
    holder.signal(libc::SIGTERM);
    holder.finish(60)?;
    left()?;
    // An agent that cannot start (a bad argument): its exit and output
    // are reported; nothing is left behind.
    let (exit, out) = ghostctl(&[
        "run",
        "--create",
        "--cpus",
        &cpu,
        "--agent-arg=--no-such-option",
        "--",
        "/bin/true",
    ])?;
    ensure!(
        exit == Exit::Code(1)
            && out.contains("failed to come online")
            && out.contains("agent_online")
            && out.contains("no-such-option"),
        "ghostctl run --create with a failing agent ended {exit:?}: {out}"
    );
    left()?;
    Ok(())
}
