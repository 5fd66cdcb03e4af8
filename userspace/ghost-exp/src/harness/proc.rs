//! Child processes of a test: the bundled binaries (`ghost-agent`,
//! `ghostctl`, ...) run with their output in a file and every wait bounded;
//! the agent restarts of the fault tests; threads joining an enclave.

use super::figures;
use super::ghostfs::nr_cpu_ids;
use super::sys::{self, ghost_states, Exit};
use super::wait::wait_for;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A bundled binary: the one next to `ghost-exp`.
pub(crate) fn bin(name: &str) -> Result<PathBuf, String> {
    let me = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let p = me.with_file_name(name);
    ensure!(p.exists(), "{} not found (make userspace)", p.display());
    Ok(p)
}

/// A child process whose output goes to a file; killed (after the
/// enclaves are destroyed: its ghost threads could not die otherwise) and
/// reaped if the test ends before it.
pub(crate) struct Proc {
    pub(crate) child: Option<Child>,
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

    pub(crate) fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// What it printed so far.
    pub(crate) fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `sig`.
    pub(crate) fn signal(&self, sig: i32) {
        sys::kill(self.pid(), sig);
    }

    /// Waits for it to end: with `secs` 0, only whether it has; otherwise
    /// for `secs`, at least the hang cap (an exit that takes a second on a
    /// quiet machine can take minutes on a loaded one).
    pub(crate) fn wait(&mut self, secs: u64) -> Result<Exit, String> {
        let secs = match secs {
            0 => 0,
            s => super::wait::hang_cap(s * 1000) / 1000,
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
            let _ = super::ghostfs::destroy_all_enclaves();
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

/// The last lines of `s`.
pub(crate) fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
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
                std::fs::read_to_string(super::ghostfs::path(*i, "agent_online"))
                    .is_ok_and(|s| s.trim() == "1")
            })
        });
        id.is_some()
    });
    id
}

/// Runs `n` threads (64 KiB stacks) that each record their tid in
/// `tids[i]` (if given), count themselves in `entered` (before joining: once in ghost a thread runs again only when
/// the agent gets to it), join enclave `id` (counting `failed` if they
/// cannot) and run `body(i)`; waits for them. The exit code of a load
/// process: 0 if all `n` started and joined.
pub(crate) fn ghost_threads(
    id: u64,
    n: usize,
    tids: Option<&'static [AtomicU32]>,
    entered: &'static AtomicU32,
    failed: &'static AtomicU32,
    body: impl Fn(usize) + Copy + Send + 'static,
) -> i32 {
    let tasks = super::ghostfs::path(id, "tasks");
    let threads: Vec<_> = (0..n)
        .filter_map(|i| {
            let tasks = tasks.clone();
            std::thread::Builder::new()
                .stack_size(64 << 10)
                .spawn(move || {
                    if let Some(t) = tids.and_then(|t| t.get(i)) {
                        t.store(ghost::sys::gettid() as u32, Ordering::SeqCst);
                    }
                    entered.fetch_add(1, Ordering::SeqCst);
                    if sys::write_once(&tasks, b"0").is_err() {
                        failed.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                    body(i);
                })
                .ok()
        })
        .collect();
    let spawned = threads.len();
    for t in threads {
        let _ = t.join();
    }
    i32::from(spawned != n || failed.load(Ordering::SeqCst) != 0)
}

/// A `ghost-agent fifo` on the last CPU whose enclave outlives it
/// (`--keep-enclave`, for the agents that take over), once it is online;
/// and its enclave's id.
pub(crate) fn kept_enclave_agent() -> Result<(Proc, u64), String> {
    let cpu = (nr_cpu_ids()? - 1).to_string();
    let agent = Proc::start("ghost-agent", &["fifo", "--cpus", &cpu, "--keep-enclave"])?;
    let id =
        online_enclave(AGENT_UP_S).ok_or(format!("first agent not online after {AGENT_UP_S} s"))?;
    Ok((agent, id))
}

/// SIGKILLs the agent of the kept enclave `id` (its exit awaited for up
/// to `cap_s`), runs `between` while the enclave has no agent, then starts
/// `ghost-agent fifo --enclave id` in its place and waits until it is
/// online. `what` names the round in the errors.
pub(crate) fn kill_and_restart(
    agent: &mut Proc,
    id: u64,
    what: &str,
    cap_s: u64,
    between: impl FnOnce() -> Result<(), String>,
) -> Result<(), String> {
    agent.signal(libc::SIGKILL);
    let exit = agent.wait(cap_s)?;
    ensure!(
        exit == Exit::Signal(libc::SIGKILL),
        "{what}: the killed agent ended {exit:?}"
    );
    figures::faults(1);
    between()?;
    *agent = Proc::start("ghost-agent", &["fifo", "--enclave", &id.to_string()])?;
    ensure!(
        online_enclave(AGENT_UP_S) == Some(id),
        "{what}: the new agent did not come online within {AGENT_UP_S} s:\n{}\n  {}",
        agent.output(),
        ghost_states()
    );
    Ok(())
}
