//! `ghostctl run`: a command inside an enclave, like `chrt` or `taskset`.
//!
//! - `--enclave N`: ghostctl checks that the enclave has an agent online,
//!   moves itself into it (`tasks`), and `exec`s the command, which so
//!   starts in `SCHED_GHOST` (the class is kept across `exec` and by every
//!   thread and child it creates).
//! - `--create --cpus LIST [--policy P]`: ghostctl creates an ephemeral
//!   enclave on LIST (the kernel destroys it if ghostctl dies), starts
//!   `ghost-agent P --enclave ID` from its own directory with the agent's
//!   output in an anonymous file, waits for `agent_online` (bounded by the
//!   agent's progress: see [`await_agent`]), runs `ghostctl run --enclave
//!   ID -- COMMAND` as a child (so the command joins before `exec` as
//!   above), and when the command exits destroys the enclave (the kernel
//!   kills its agent), reaps the agent, and exits with the command's code.
//!   Stop signals sent to ghostctl by a process go on to the command (see
//!   [`crate::hold`]).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ghost::ghostfs::{CreateOptions, EnclaveDir};

use crate::cli::{exit, RunArgs};
use crate::commands::{mounted, open, Failure};
use crate::hold;
use crate::term::{self, Wake};

/// How often the agent's state is checked while ghostctl waits for it.
const POLL: Duration = Duration::from_millis(50);
/// The agent is given up on when its CPU time and output have not changed
/// for this long (it is stuck, or waiting for something that will not
/// come) ...
const AGENT_STALL: Duration = Duration::from_secs(30);
/// ... or, making progress, when it is still not online after this long.
const AGENT_CAP: Duration = Duration::from_secs(600);
/// How long the agent gets to die after its enclave is destroyed before
/// it is sent SIGKILL.
const AGENT_REAP: Duration = Duration::from_secs(30);

/// `ghostctl run`.
pub fn run(args: &RunArgs) -> Result<u8, Failure> {
    if args.create {
        run_created(args)
    } else {
        // Without --create clap requires --enclave.
        exec_in(args.enclave.unwrap_or_default(), &args.command)
    }
}

/// Joins enclave `id` and execs `command`; returns only on failure.
fn exec_in(id: u64, command: &[String]) -> Result<u8, Failure> {
    let e = open(id)?;
    let online = e.agent_online().map_err(|err| lost(&e, err))?;
    if !online {
        return Err(Failure::new(
            exit::FAILED,
            format!(
                "enclave_{id} has no agent online ({} is 0): the command would not be \
                 scheduled; start one (`ghost-agent fifo --enclave {id}`) or use --create",
                e.file("agent_online").display()
            ),
        ));
    }
    e.add_task(0).map_err(|err| lost(&e, err))?;
    let Some((prog, rest)) = command.split_first() else {
        return Err(Failure::new(exit::USAGE, "no command"));
    };
    // Only returns on failure.
    let err = Command::new(prog)
        .args(rest)
        .env("GHOST_ENCLAVE_ID", id.to_string())
        .env("GHOST_ENCLAVE", &e.path)
        .exec();
    let errno = err.raw_os_error().unwrap_or(0);
    // As shells and chrt(1) do: 127 when there is no such program, 126
    // when it cannot be run.
    let code = if errno == libc::ENOENT { 127 } else { 126 };
    Err(Failure::new(
        code,
        ghost::Error::sys(format!("exec `{}`", command.join(" ")), errno).to_string(),
    ))
}

/// The failure of an operation on `e`: exit 3 if `e` has gone meanwhile.
fn lost(e: &EnclaveDir, err: ghost::Error) -> Failure {
    let code = if e.path.is_dir() {
        exit::FAILED
    } else {
        exit::NO_ENCLAVE
    };
    Failure::new(code, err.to_string())
}

/// `run --create`.
fn run_created(args: &RunArgs) -> Result<u8, Failure> {
    mounted()?;
    term::catch_stop_signals()?;
    let cpus = args.cpus.clone().unwrap_or_default();
    let policy = args.policy.as_deref().unwrap_or("fifo");
    let agent_bin = sibling("ghost-agent")?;
    let opts = CreateOptions {
        gid: None,
        ephemeral: true,
    };
    let created = match args.enclave {
        Some(id) => EnclaveDir::create_with(id, &cpus, &opts),
        None => EnclaveDir::create_next(&cpus, &opts),
    };
    let e = created.map_err(|err| {
        let why = match err.errno {
            libc::EBUSY => format!(
                " (CPUs {cpus} are not free: another enclave holds some of them; \
                 `ghostctl list` shows which)"
            ),
            libc::EEXIST => " (that enclave id is taken)".to_string(),
            _ => String::new(),
        };
        Failure::new(
            exit::FAILED,
            format!("create an enclave for the command: {err}{why}"),
        )
    })?;
    let result = with_agent(&e, &agent_bin, policy, &args.agent_arg, &args.command);
    // The command's enclave goes whatever happened (the kernel would destroy
    // it when ghostctl exits anyway).
    let destroyed = match e.destroy() {
        Ok(()) => Ok(()),
        Err(_) if !e.path.is_dir() => Ok(()),
        Err(err) => Err(Failure::from(err)),
    };
    let (code, mut agent) = result?;
    reap(&mut agent.child);
    destroyed?;
    Ok(code)
}

/// A `ghost-agent` child and the file that holds its output.
struct Agent {
    child: Child,
    log: File,
    what: String,
}

impl Agent {
    /// The last lines of its output, indented, for an error message.
    fn tail(&self) -> String {
        let mut buf = vec![0u8; 64 * 1024];
        let len = self.log.metadata().map(|m| m.len()).unwrap_or(0);
        let from = len.saturating_sub(buf.len() as u64);
        let n = self.log.read_at(&mut buf, from).unwrap_or(0);
        let text = String::from_utf8_lossy(&buf[..n]);
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(20)..];
        if tail.is_empty() {
            "\n  (it printed nothing)".into()
        } else {
            tail.iter().map(|l| format!("\n  {l}")).collect()
        }
    }

    /// Its CPU time in clock ticks and its output's size: what changes
    /// while it makes progress.
    fn progress(&self) -> (u64, u64) {
        let cpu = cpu_ticks(self.child.id()).unwrap_or(0);
        let out = self.log.metadata().map(|m| m.len()).unwrap_or(0);
        (cpu, out)
    }
}

/// Starts the agent, waits for it, runs the command; returns the command's
/// exit code and the agent (to reap once the enclave is destroyed).
fn with_agent(
    e: &EnclaveDir,
    agent_bin: &Path,
    policy: &str,
    agent_args: &[String],
    command: &[String],
) -> Result<(u8, Agent), Failure> {
    let mut agent = start_agent(e, agent_bin, policy, agent_args)?;
    if let Err(f) = await_agent(e, &mut agent) {
        reap_now(&mut agent.child);
        return Err(f);
    }
    let me = sibling("ghostctl")?;
    let id = e.id.to_string();
    let mut words = vec!["run".to_string(), "--enclave".into(), id, "--".into()];
    words.extend_from_slice(command);
    let code = hold::run_command(e, &me.display().to_string(), &words);
    match code {
        Ok(c) => Ok((c, agent)),
        Err(f) => {
            reap_now(&mut agent.child);
            Err(f)
        }
    }
}

/// `ghost-agent POLICY --enclave ID ARGS...` with its stdout and stderr in
/// an anonymous file.
fn start_agent(
    e: &EnclaveDir,
    bin: &Path,
    policy: &str,
    extra: &[String],
) -> Result<Agent, Failure> {
    use nix::sys::memfd::{memfd_create, MemFdCreateFlag};
    let log = File::from(
        memfd_create(c"ghostctl-agent-log", MemFdCreateFlag::MFD_CLOEXEC)
            .map_err(|err| ghost::Error::sys("memfd_create for the agent's output", err as i32))?,
    );
    let dup = |f: &File| {
        f.try_clone()
            .map_err(|err| ghost::sys::io_error("dup the agent's output file", &err))
    };
    let id = e.id.to_string();
    let mut words = vec![policy.to_string(), "--enclave".into(), id];
    words.extend_from_slice(extra);
    let what = format!("{} {}", bin.display(), words.join(" "));
    let child = Command::new(bin)
        .args(&words)
        .stdin(Stdio::null())
        .stdout(dup(&log)?)
        .stderr(dup(&log)?)
        .spawn()
        .map_err(|err| ghost::sys::io_error(format!("start `{what}`"), &err))?;
    Ok(Agent { child, log, what })
}

/// Waits until `e`'s `agent_online` reads 1. Gives up (an error that says
/// what was awaited, with the agent's last output) when the agent exits,
/// when its CPU time and output stay unchanged for [`AGENT_STALL`], after
/// [`AGENT_CAP`] in all, or on a stop signal.
fn await_agent(e: &EnclaveDir, agent: &mut Agent) -> Result<(), Failure> {
    let awaited = format!(
        "waited for {} to read 1 after starting `{}` (pid {})",
        e.file("agent_online").display(),
        agent.what,
        agent.child.id()
    );
    let start = Instant::now();
    let mut last = agent.progress();
    let mut last_change = Instant::now();
    loop {
        if e.agent_online().unwrap_or(false) {
            return Ok(());
        }
        if let Ok(Some(status)) = agent.child.try_wait() {
            return Err(Failure::new(
                exit::FAILED,
                format!(
                    "the agent failed to come online: it exited ({status}); {}; it printed:{}",
                    awaited,
                    agent.tail()
                ),
            ));
        }
        let now = agent.progress();
        if now != last {
            last = now;
            last_change = Instant::now();
        }
        let why = if last_change.elapsed() > AGENT_STALL {
            Some(format!(
                "no progress (CPU time and output unchanged) for {} s",
                AGENT_STALL.as_secs()
            ))
        } else if start.elapsed() > AGENT_CAP {
            Some(format!("not online after {} s", AGENT_CAP.as_secs()))
        } else {
            None
        };
        if let Some(why) = why {
            return Err(Failure::new(
                exit::FAILED,
                format!(
                    "the agent failed to come online: {why}; {}; it printed:{}",
                    awaited,
                    agent.tail()
                ),
            ));
        }
        if let Wake::Signal(stop) = term::wait(POLL, false) {
            return Err(Failure::new(
                exit::FAILED,
                format!(
                    "stopped by signal {} while the agent came up; {}",
                    stop.signal, awaited
                ),
            ));
        }
    }
}

/// Waits (bounded) for the agent to exit after its enclave went; kills it
/// if it does not.
fn reap(child: &mut Child) {
    let start = Instant::now();
    while start.elapsed() < AGENT_REAP {
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        std::thread::sleep(POLL);
    }
    reap_now(child);
}

/// Kills the agent and reaps it.
fn reap_now(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// `name` in ghostctl's own directory.
fn sibling(name: &str) -> Result<PathBuf, Failure> {
    let me = std::env::current_exe()
        .map_err(|err| ghost::sys::io_error("find ghostctl's own path", &err))?;
    let p = me.with_file_name(name);
    if !p.is_file() {
        return Err(Failure::new(
            exit::FAILED,
            format!("no {name} next to ghostctl (looked for {})", p.display()),
        ));
    }
    Ok(p)
}

/// The user plus system CPU time of process `pid` in clock ticks
/// (`/proc/PID/stat` fields 14 and 15).
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu_ticks(&stat)
}

/// [`cpu_ticks`] of a `/proc/PID/stat` line.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces: fields count from the
    // last `)`, which ends it; field 3 is the first after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace().skip(11);
    let utime: u64 = f.next()?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_of_a_stat_line() {
        let line = "812 (a b) c) S 1 812 812 0 -1 4194560 100 0 0 0 7 5 0 0 20 0 1 0 1 0 0";
        assert_eq!(parse_cpu_ticks(line), Some(12));
        assert_eq!(parse_cpu_ticks("garbage"), None);
        assert!(cpu_ticks(std::process::id()).is_some());
    }

    #[test]
    fn a_missing_sibling_is_named() {
        let f = sibling("no-such-binary-next-to-ghostctl").unwrap_err();
        assert_eq!(f.code, exit::FAILED);
        assert!(f.message.starts_with("no no-such-binary"), "{f}");
    }
}
