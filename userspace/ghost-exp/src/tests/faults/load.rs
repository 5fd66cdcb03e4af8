//! Fault injection: agents killed at random moments under load, with every
//! task of the load finishing its work; agents killed under a fork/exec
//! workload, with nothing wedged and the tasks run by the kernel's fallback
//! while there is no agent; enclaves destroyed under load, with
//! every task back in CFS and running. Seeded and bounded; the seed is
//! printed (`GHOST_FAULT_SEED` replays it).

use crate::harness::figures;
use crate::harness::sys::{self, Exit};
use crate::harness::sys::{ended, enter, pin, Touched};
use crate::harness::sys::{ghost_states, proc_cpu_ticks, stat_cpu_ticks, threads_of};
use crate::harness::wait_for;
use crate::harness::{ghost_threads, kept_enclave_agent, kill_and_restart, seed, Rng};
use crate::harness::{nr_cpu_ids, Test};
use crate::harness::{online_enclave, Proc, AGENT_UP_S};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The fault-injection tests, in the order they run.
pub const TESTS: &[Test] = &[
    Test {
        name: "agent_kills_under_load",
        run: agent_kills_under_load,
    },
    Test {
        name: "agent_deaths_never_wedge",
        run: agent_deaths_never_wedge,
    },
    Test {
        name: "destroys_under_load",
        run: destroys_under_load,
    },
    Test {
        name: "churn_10000_threads",
        run: churn_10000_threads,
    },
    Test {
        name: "memory_pressure_with_agents",
        run: memory_pressure_with_agents,
    },
];

/// Agents killed.
const KILLS: u32 = 100;
/// Threads of the load.
const THREADS: u32 = 200;
/// Rounds of work per thread at least (each ~1 ms of spinning and a 1 ms
/// sleep); threads go on until the kills are over.
const ROUNDS: u32 = 20;

/// The load's progress, in a shared page.
#[repr(C)]
struct Load {
    entered: AtomicU32,
    failed: AtomicU32,
    done: AtomicU32,
    rounds: AtomicU32,
    /// Set once the kills are over: threads end after their `ROUNDS`.
    stop: AtomicU32,
}

/// The load: `THREADS` threads in enclave `id` that each do rounds of
/// spinning and sleeping, at least `ROUNDS` and until told to stop.
fn load_main(id: u64, l: &'static Load) -> i32 {
    ghost_threads(
        id,
        THREADS as usize,
        None,
        &l.entered,
        &l.failed,
        move |_| {
            let mut mine = 0;
            while mine < ROUNDS || l.stop.load(Ordering::SeqCst) == 0 {
                mine += 1;
                let end = Instant::now() + Duration::from_millis(1);
                while Instant::now() < end {
                    std::hint::spin_loop();
                }
                std::thread::sleep(Duration::from_millis(1));
                l.rounds.fetch_add(1, Ordering::SeqCst);
            }
            l.done.fetch_add(1, Ordering::SeqCst);
        },
    )
}

/// `KILLS` agents SIGKILLed at random moments (10-60 ms after each comes
/// up) while `THREADS` ghost threads work; each kill is followed by a new
/// agent taking over (in-place upgrade). Every thread finishes all its
/// rounds, and the load exits 0.
pub fn agent_kills_under_load() -> Result<(), String> {
    sys::ensure_ghostfs()?;
    let seed = seed();
    let mut rng = Rng(seed);
    let start = Instant::now();
    let (mut agent, id) = kept_enclave_agent()?;
    let l: &'static Load = sys::shared_page()?;
    let load = sys::fork_child(move || load_main(id, l))?;
    ensure!(
        wait_for(30_000, || l.entered.load(Ordering::SeqCst)
            + l.failed.load(Ordering::SeqCst)
            >= THREADS),
        "only {} of {THREADS} threads started",
        l.entered.load(Ordering::SeqCst)
    );
    ensure!(
        l.failed.load(Ordering::SeqCst) == 0,
        "{} threads could not enter ghost",
        l.failed.load(Ordering::SeqCst)
    );
    figures::entered(THREADS.into());
    let mut kills = 0;
    for _ in 0..KILLS {
        std::thread::sleep(Duration::from_millis(rng.range(10, 60)));
        kills += 1;
        kill_and_restart(
            &mut agent,
            id,
            &format!("kill {kills} (seed {seed})"),
            20,
            || Ok(()),
        )?;
    }
    l.stop.store(1, Ordering::SeqCst);
    let rounds = || l.rounds.load(Ordering::SeqCst);
    ensure!(
        wait_for(300_000, || l.done.load(Ordering::SeqCst) == THREADS),
        "after {kills} kills only {} of {THREADS} threads finished ({} rounds; seed {seed})",
        l.done.load(Ordering::SeqCst),
        rounds()
    );
    let exit = sys::wait_child(load)?;
    ensure!(exit == Exit::Code(0), "load ended {exit:?}");
    figures::returned(THREADS.into());
    agent.signal(libc::SIGTERM);
    agent.finish(30)?;
    sys::write_once(&crate::harness::path(id, "ctl"), b"destroy")
        .map_err(|x| format!("destroy: {}", sys::errno_name(x)))?;
    println!(
        "  agent_kills_under_load: {kills} agents killed, {THREADS} threads all done ({} rounds), {:.1} s (seed {seed})",
        rounds(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Shell loops of the wedge test.
const SHELLS: usize = 24;
/// Agents killed and restarted in the wedge test.
const RESTARTS: u32 = 20;
/// A wait in the wedge test fails when its workload has not progressed
/// for this long (ms); a cap of `WEDGE_CAP_MS` only catches a hang.
const WEDGE_STALL_MS: u64 = 120_000;
const WEDGE_CAP_MS: u64 = 900_000;

/// The shell loops of the wedge test: each appends a byte to its own file
/// after every `sleep` it forks and execs. Dropped: the enclaves are
/// destroyed (ghost tasks cannot be killed reliably otherwise), then the
/// shells are killed and reaped, and their files removed.
struct Shells {
    pids: Vec<i32>,
    files: Vec<String>,
}

impl Shells {
    fn start() -> Result<Shells, String> {
        let mut sh = Shells {
            pids: Vec::new(),
            files: Vec::new(),
        };
        for i in 0..SHELLS {
            let file = format!("/tmp/ghost-wedge-{}-{i}", std::process::id());
            std::fs::write(&file, b"").map_err(|e| format!("{file}: {e}"))?;
            let script = format!("while :; do sleep 0.2; echo >> {file}; done");
            let c = std::process::Command::new("/bin/sh")
                .args(["-c", &script])
                .stdin(std::process::Stdio::null())
                .spawn()
                .map_err(|e| format!("sh: {e}"))?;
            sh.pids.push(c.id() as i32);
            sh.files.push(file);
        }
        Ok(sh)
    }

    /// Bytes each shell appended so far.
    fn counts(&self) -> Vec<u64> {
        self.files
            .iter()
            .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
            .collect()
    }

    fn total(&self) -> u64 {
        self.counts().iter().sum()
    }

    /// Waits until every shell appended at least one more byte than in
    /// `from`, bounded by lack of progress of the whole workload.
    fn each_progressed(&self, from: &[u64]) -> bool {
        crate::harness::wait_while_progressing(
            WEDGE_STALL_MS,
            WEDGE_CAP_MS,
            || self.total(),
            || self.counts().iter().zip(from).all(|(n, f)| n > f),
        )
    }

    /// The shells with no progress since `from`, for a failure message,
    /// with the kernel's count of runnable tasks and what a poke of the
    /// enclave's CPU (a CFS task run there, which makes it schedule) does.
    fn stuck(&self, from: &[u64]) -> String {
        let running = || {
            std::fs::read_to_string("/proc/stat")
                .unwrap_or_default()
                .lines()
                .find_map(|l| l.strip_prefix("procs_running ").map(str::to_owned))
                .unwrap_or_default()
        };
        let before = (running(), self.total());
        let cpu = nr_cpu_ids().map_or(0, |n| n - 1);
        let poked = sys::fork_child(move || i32::from(!pin(cpu)))
            .and_then(sys::wait_child)
            .map_or_else(|e| e, |x| format!("{x:?}"));
        std::thread::sleep(Duration::from_secs(3));
        let after = (running(), self.total());
        format!(
            "{}\n  procs_running {} (total {} lines); after a CFS task ran on CPU {cpu} ({poked}) and 3 s: procs_running {} (total {} lines)",
            self.stuck_list(from),
            before.0,
            before.1,
            after.0,
            after.1
        )
    }

    fn stuck_list(&self, from: &[u64]) -> String {
        let stuck: Vec<String> = self
            .counts()
            .iter()
            .zip(from)
            .zip(&self.pids)
            .filter(|((n, f), _)| n <= f)
            .map(|(_, pid)| pid.to_string())
            .collect();
        format!(
            "{} of {SHELLS} shells made no progress (pids {})",
            stuck.len(),
            stuck.join(" ")
        )
    }
}

impl Drop for Shells {
    fn drop(&mut self) {
        let _ = crate::harness::destroy_all_enclaves();
        for &pid in &self.pids {
            sys::kill(pid, libc::SIGKILL);
            let _ = sys::wait_child(pid);
        }
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// A process started from CFS (an exec of the whole system, as the new
/// agent's is) runs and exits: nothing holds the path lookups of `exec`.
fn cfs_exec_runs(what: &str) -> Result<(), String> {
    let mut p = Proc::start_exe(std::path::Path::new("/bin/sleep"), "sleep", &["0"])?;
    let exit = p.wait(WEDGE_CAP_MS / 1000).map_err(|e| {
        format!(
            "{what}: an exec from CFS is stuck: {e}\n  {}",
            ghost_states()
        )
    })?;
    ensure!(
        exit == Exit::Code(0),
        "{what}: sleep 0 from CFS ended {exit:?}"
    );
    Ok(())
}

/// A dead agent never wedges the system (issue 18): `SHELLS` shell loops
/// fork and exec `sleep` in an enclave run by `ghost-agent fifo`; its agent
/// is SIGKILLed and a new one started, `RESTARTS` times: each new agent
/// comes online (its own exec needs path lookups that a ghost task of the
/// agentless enclave may be in the middle of), an exec from CFS works
/// while there is no agent, and every shell progresses under each new agent
/// (children forked during a takeover reach the new agent).
/// Then the agent is killed with no restart: the fallback runs every shell
/// (`agentless_timeout` 0: for ever), and once `agentless_timeout` is set
/// to 1 ms the watchdog destroys the enclave; every shell is then in CFS
/// and progressing. Bounded by lack of progress of the shells.
pub fn agent_deaths_never_wedge() -> Result<(), String> {
    sys::ensure_ghostfs()?;
    let seed = seed();
    let mut rng = Rng(seed);
    let start = Instant::now();
    let (mut agent, id) = kept_enclave_agent()?;
    let shells = Shells::start()?;
    for &pid in &shells.pids {
        sys::write_once(
            &crate::harness::path(id, "tasks"),
            pid.to_string().as_bytes(),
        )
        .map_err(|x| format!("shell {pid} into enclave_{id}: {}", sys::errno_name(x)))?;
    }
    figures::entered(SHELLS as u64);
    let from = shells.counts();
    ensure!(
        shells.each_progressed(&from),
        "under the first agent: {}\n  {}",
        shells.stuck(&from),
        stall_report(id, &agent)
    );
    for round in 1..=RESTARTS {
        std::thread::sleep(Duration::from_millis(rng.range(50, 500)));
        kill_and_restart(
            &mut agent,
            id,
            &format!("restart {round} (seed {seed})"),
            WEDGE_CAP_MS / 1000,
            || cfs_exec_runs(&format!("after kill {round}")),
        )?;
        // Every shell progresses under each new agent: a task the new
        // agent never heard of (a fork child announced on a dead agent's
        // queue) would stay runnable and stop its shell for good.
        let from = shells.counts();
        if !shells.each_progressed(&from) {
            return Err(format!(
                "under agent {round} (seed {seed}): {}\n  {}",
                shells.stuck(&from),
                stall_report(id, &agent)
            ));
        }
    }
    let restart_lines = shells.total();
    // No restart: the fallback runs the shells for as long as it may.
    let timeout = crate::harness::path(id, "agentless_timeout");
    sys::write_once(&timeout, b"0")
        .map_err(|x| format!("agentless_timeout 0: {}", sys::errno_name(x)))?;
    agent.signal(libc::SIGKILL);
    agent.wait(WEDGE_CAP_MS / 1000)?;
    let from = shells.counts();
    ensure!(
        shells.each_progressed(&from),
        "with no agent (agentless_timeout 0): {}\n  {}",
        shells.stuck(&from),
        ghost_states()
    );
    cfs_exec_runs("with no agent")?;
    ensure!(
        std::path::Path::new(&timeout).exists(),
        "enclave_{id} gone with agentless_timeout 0"
    );
    sys::write_once(&timeout, b"1")
        .map_err(|x| format!("agentless_timeout 1: {}", sys::errno_name(x)))?;
    ensure!(
        wait_for(WEDGE_CAP_MS, || !std::path::Path::new(&timeout).exists()),
        "enclave_{id} still there {} s after agentless_timeout 1 ms",
        WEDGE_CAP_MS / 1000
    );
    let ghost: Vec<i32> = shells
        .pids
        .iter()
        .copied()
        .filter(|&p| sys::sched_policy(p) != libc::SCHED_OTHER)
        .collect();
    ensure!(
        ghost.is_empty(),
        "shells not back in CFS after the agentless timeout: {ghost:?}"
    );
    figures::returned(SHELLS as u64);
    let from = shells.counts();
    ensure!(
        shells.each_progressed(&from),
        "in CFS after the agentless timeout: {}",
        shells.stuck(&from)
    );
    println!(
        "  agent_deaths_never_wedge: {RESTARTS} agents killed and restarted, one killed for good; {SHELLS} shells, {restart_lines} lines during the restarts, {} in all, {:.1} s (seed {seed})",
        shells.total(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Enclaves destroyed under load.
const DESTROYS: u32 = 100;
/// Threads of each load.
const DESTROY_THREADS: usize = 20;

/// Per-thread progress of a destroy round's load, in a shared page.
#[repr(C)]
struct Spin {
    entered: AtomicU32,
    failed: AtomicU32,
    stop: AtomicU32,
    tids: [AtomicU32; DESTROY_THREADS],
    work: [AtomicU32; DESTROY_THREADS],
}

/// `DESTROYS` times: an agent creates an enclave, `DESTROY_THREADS`
/// spinning threads enter it and run, the enclave is destroyed (`echo
/// destroy > ctl`); every thread must then be `SCHED_OTHER` and still
/// running, and the agent killed by the kernel.
pub fn destroys_under_load() -> Result<(), String> {
    sys::ensure_ghostfs()?;
    let cpu = (nr_cpu_ids()? - 1).to_string();
    let start = Instant::now();
    let sp: &'static Spin = sys::shared_page()?;
    let mut returned = 0;
    for round in 0..DESTROYS {
        sp.entered.store(0, Ordering::SeqCst);
        sp.failed.store(0, Ordering::SeqCst);
        sp.stop.store(0, Ordering::SeqCst);
        let mut agent = Proc::start("ghost-agent", &["fifo", "--cpus", &cpu])?;
        let id = online_enclave(AGENT_UP_S).ok_or(format!("round {round}: no agent online"))?;
        let load = sys::fork_child(move || {
            let tids = Some(&sp.tids[..]);
            ghost_threads(
                id,
                DESTROY_THREADS,
                tids,
                &sp.entered,
                &sp.failed,
                move |i| {
                    // Pure spinners: the FIFO agent runs one until it
                    // leaves its CPU, so the others starve until the
                    // destroy. (On a preemptible-RCU kernel a starved
                    // thread preempted inside an RCU read-side section
                    // stalled RCU; ghost now needs non-preemptible RCU, see
                    // scheduling.rst.)
                    while sp.stop.load(Ordering::SeqCst) == 0 {
                        sp.work[i].fetch_add(1, Ordering::Relaxed);
                    }
                },
            )
        })?;
        let all = DESTROY_THREADS as u32;
        ensure!(
            wait_for(20_000, || sp.entered.load(Ordering::SeqCst)
                + sp.failed.load(Ordering::SeqCst)
                >= all),
            "round {round}: {} of {all} threads entered",
            sp.entered.load(Ordering::SeqCst)
        );
        let tid = |i: usize| sp.tids[i].load(Ordering::SeqCst) as i32;
        ensure!(
            wait_for(20_000, || (0..DESTROY_THREADS)
                .all(|i| sys::sched_policy(tid(i)) == ghost_abi::SCHED_GHOST)
                || sp.failed.load(Ordering::SeqCst) != 0),
            "round {round}: not every thread is in ghost"
        );
        ensure!(
            sp.failed.load(Ordering::SeqCst) == 0,
            "round {round}: {} threads could not enter",
            sp.failed.load(Ordering::SeqCst)
        );
        figures::entered(DESTROY_THREADS as u64);
        std::thread::sleep(Duration::from_millis(20));
        sys::write_once(&crate::harness::path(id, "ctl"), b"destroy")
            .map_err(|x| format!("round {round}: destroy: {}", sys::errno_name(x)))?;
        figures::faults(1);
        // Killed by the destroy, or (exit 1) it saw its enclave go first.
        let exit = agent.wait(20)?;
        ensure!(
            exit == Exit::Signal(libc::SIGKILL)
                || (exit == Exit::Code(1) && agent.output().contains("enclave")),
            "round {round}: agent ended {exit:?}: {}",
            agent.output()
        );
        for i in 0..DESTROY_THREADS {
            let tid = tid(i);
            ensure!(
                sys::sched_policy(tid) == libc::SCHED_OTHER,
                "round {round}: thread {tid} policy {} after destroy",
                sys::sched_policy(tid)
            );
            let w = sp.work[i].load(Ordering::Relaxed);
            // A CFS thread runs within milliseconds; the cap only catches
            // one that never runs again (a busy host can stop the VM's
            // vCPUs for seconds).
            ensure!(
                wait_for(60_000, || sp.work[i].load(Ordering::Relaxed) > w),
                "round {round}: thread {tid} made no progress in 60 s after destroy"
            );
            returned += 1;
            figures::returned(1);
        }
        sp.stop.store(1, Ordering::SeqCst);
        let exit = sys::wait_child(load)?;
        ensure!(exit == Exit::Code(0), "round {round}: load ended {exit:?}");
    }
    println!(
        "  destroys_under_load: {DESTROYS} enclaves destroyed under load, {returned} tasks back in CFS and running, {:.1} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Tasks of the churn.
const CHURN: usize = 10_000;
/// Tasks of the churn alive at once, at most.
const CHURN_ALIVE: u32 = 100;
/// The churn fails when no task finished its work for this long (s): a
/// loaded host stops the VM for seconds at a time...
const CHURN_STALL_SECS: u64 = 120;
/// ... or when no task finished while the agent used this much CPU time
/// (s, its threads' user + system time): a bound of the agent's own
/// progress, not of wall time, so a loaded host cannot trip it. A healthy
/// agent spends well under a second of CPU per finished task; one that
/// spins (e.g. quoting a stale barrier: ESTALE, AGENT_STALE in a loop, the
/// churn stall of scheduling.rst) reaches it in about as long of CPU.
const CHURN_AGENT_SPIN_SECS: u64 = 10;
/// ... or when it is not over after this long: a cap that only catches a
/// hang (runs take 78-120 s under TCG on a quiet machine).
const CHURN_CAP_SECS: u64 = 1800;

/// The churn's progress, in a shared page.
#[repr(C)]
struct Churn {
    /// Tasks of the churn alive (counted at their group's start).
    alive: AtomicU32,
    /// Tasks that entered by a write to `tasks`.
    by_file: AtomicU32,
    /// Tasks that entered as a thread cloned by a ghost thread.
    by_clone: AtomicU32,
    /// Tasks that entered as a process forked by a ghost thread.
    by_fork: AtomicU32,
    /// Writes to `tasks` refused.
    enter_failed: AtomicU32,
    /// Threads or processes that could not be created.
    spawn_failed: AtomicU32,
    /// Tasks that were not in ghost when they worked.
    not_ghost: AtomicU32,
    /// Tasks whose work is done (`bits` has one bit per task).
    done: AtomicU32,
    /// Stays that ended by an exit in ghost.
    exited: AtomicU32,
    /// Stays that ended by `sched_setscheduler(SCHED_OTHER)`, found
    /// `SCHED_OTHER` afterwards.
    departed: AtomicU32,
    /// `sched_setscheduler(SCHED_OTHER)` failed, or left another policy.
    depart_bad: AtomicU32,
    /// Tasks that came back after they departed.
    reentered: AtomicU32,
    /// Forked tasks that did not exit 0, threads that panicked.
    bad_end: AtomicU32,
    bits: [AtomicU32; CHURN.div_ceil(32)],
}

/// A task's own random bits (the same whatever the timing).
fn mix(seed: u64, i: usize) -> u64 {
    let mut z = seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Moves the caller to `SCHED_OTHER`; true if it then is `SCHED_OTHER`.
fn depart() -> bool {
    sys::set_policy(0, libc::SCHED_OTHER).is_ok() && sys::sched_policy(0) == libc::SCHED_OTHER
}

/// Spins `us` microseconds.
fn spin_us(us: u64) {
    let end = Instant::now() + Duration::from_micros(us);
    while Instant::now() < end {
        std::hint::spin_loop();
    }
}

impl Churn {
    /// Task `i`'s work: it must be in ghost; spins 50-300 us, sleeps 1 ms
    /// one time in four; then marks `i` done.
    fn work(&self, i: usize, r: u64) {
        if sys::sched_policy(0) != ghost_abi::SCHED_GHOST {
            self.not_ghost.fetch_add(1, Ordering::SeqCst);
        }
        spin_us(50 + (r >> 8) % 250);
        if (r >> 16) % 4 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let bit = 1 << (i % 32);
        if self.bits[i / 32].fetch_or(bit, Ordering::SeqCst) & bit == 0 {
            self.done.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Ends the caller's stay: by departing (half the tasks), one in four
    /// of those coming back (by `tasks`) for more work and leaving again;
    /// else by the coming exit (counted here, before it).
    fn leave(&self, tasks: &std::ffi::CStr, r: u64) {
        if (r >> 24) % 2 == 0 {
            self.exited.fetch_add(1, Ordering::SeqCst);
            return;
        }
        if !depart() {
            self.depart_bad.fetch_add(1, Ordering::SeqCst);
            return;
        }
        self.departed.fetch_add(1, Ordering::SeqCst);
        if (r >> 32) % 4 != 0 {
            return;
        }
        if !enter(tasks) {
            self.enter_failed.fetch_add(1, Ordering::SeqCst);
            return;
        }
        self.reentered.fetch_add(1, Ordering::SeqCst);
        if sys::sched_policy(0) != ghost_abi::SCHED_GHOST {
            self.not_ghost.fetch_add(1, Ordering::SeqCst);
        }
        spin_us(50 + (r >> 40) % 100);
        if (r >> 48) % 2 == 0 {
            self.exited.fetch_add(1, Ordering::SeqCst);
        } else if depart() {
            self.departed.fetch_add(1, Ordering::SeqCst);
        } else {
            self.depart_bad.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// A group of the churn: task `first` enters by `tasks`, then creates
/// tasks `first+1 .. first+n` (in ghost by inheritance: threads it
/// clones, and one in eight a process it forks), works, waits for them,
/// and leaves. Each task counts itself out of `alive` at its end.
fn churn_group(
    c: &'static Churn,
    tasks: &'static std::ffi::CStr,
    seed: u64,
    first: usize,
    n: usize,
) {
    let gone = || {
        c.alive.fetch_sub(1, Ordering::SeqCst);
    };
    if !enter(tasks) {
        c.enter_failed.fetch_add(1, Ordering::SeqCst);
        c.alive.fetch_sub(n as u32, Ordering::SeqCst);
        return;
    }
    c.by_file.fetch_add(1, Ordering::SeqCst);
    let mut threads = Vec::new();
    let mut procs = Vec::new();
    for i in first + 1..first + n {
        let r = mix(seed, i);
        if r % 8 == 0 {
            // The child only makes syscalls and touches atomics (no
            // allocation, no lock), then `_exit`s.
            let pid = sys::fork_bare(|| {
                c.by_fork.fetch_add(1, Ordering::SeqCst);
                c.work(i, r);
                c.leave(tasks, r);
            });
            if pid < 0 {
                c.spawn_failed.fetch_add(1, Ordering::SeqCst);
                gone();
            } else {
                procs.push(pid);
            }
            continue;
        }
        let spawned = std::thread::Builder::new()
            .stack_size(64 << 10)
            .spawn(move || {
                c.by_clone.fetch_add(1, Ordering::SeqCst);
                c.work(i, r);
                c.leave(tasks, r);
                c.alive.fetch_sub(1, Ordering::SeqCst);
            });
        match spawned {
            Ok(t) => threads.push(t),
            Err(_) => {
                c.spawn_failed.fetch_add(1, Ordering::SeqCst);
                gone();
            }
        }
    }
    let r = mix(seed, first);
    c.work(first, r);
    for t in threads {
        if t.join().is_err() {
            c.bad_end.fetch_add(1, Ordering::SeqCst);
        }
    }
    for pid in procs {
        let ok = sys::reaped_exit0(pid);
        if !ok {
            c.bad_end.fetch_add(1, Ordering::SeqCst);
        }
        gone();
    }
    c.leave(tasks, r);
    gone();
}

/// The churn's process: starts groups of 1-5 tasks (`churn_group`) while
/// fewer than `CHURN_ALIVE` tasks are alive, until `CHURN` tasks were
/// started; waits for them. Exit code 0 if every group thread was
/// created and ended normally.
fn churn_main(id: u64, c: &'static Churn, seed: u64) -> i32 {
    let tasks: &'static std::ffi::CStr = Box::leak(
        std::ffi::CString::new(crate::harness::path(id, "tasks"))
            .expect("path without NUL")
            .into_boxed_c_str(),
    );
    let mut rng = Rng(seed);
    let mut groups: Vec<std::thread::JoinHandle<()>> = Vec::new();
    let mut bad = 0;
    let mut next = 0;
    while next < CHURN {
        let n = (rng.range(1, 6) as usize).min(CHURN - next);
        while c.alive.load(Ordering::SeqCst) + n as u32 > CHURN_ALIVE {
            std::thread::sleep(Duration::from_micros(500));
        }
        let (ended, running): (Vec<_>, Vec<_>) = groups.into_iter().partition(|g| g.is_finished());
        groups = running;
        bad += ended.into_iter().filter_map(|g| g.join().err()).count();
        c.alive.fetch_add(n as u32, Ordering::SeqCst);
        let first = next;
        match std::thread::Builder::new()
            .stack_size(64 << 10)
            .spawn(move || churn_group(c, tasks, seed, first, n))
        {
            Ok(g) => groups.push(g),
            Err(_) => {
                c.spawn_failed.fetch_add(n as u32, Ordering::SeqCst);
                c.alive.fetch_sub(n as u32, Ordering::SeqCst);
            }
        }
        next += n;
    }
    for g in groups {
        if g.join().is_err() {
            bad += 1;
        }
    }
    i32::from(bad != 0)
}

/// The count in row `name` of an agent's statistics table (0 if absent:
/// the table lists nonzero counters only).
fn stat(table: &str, name: &str) -> u64 {
    table
        .lines()
        .find_map(|l| {
            let l = l.trim_start();
            let rest = l.strip_prefix(name)?;
            rest.starts_with(' ').then(|| rest.trim().parse().ok())?
        })
        .unwrap_or(0)
}

/// Checks the statistics an agent printed at exit: every `TASK_NEW` is
/// matched by a `TASK_DEAD` or a `TASK_DEPARTED`, no message was dropped;
/// returns `(TASK_NEW, TASK_DEAD, TASK_DEPARTED)`.
fn check_stats(out: &str) -> Result<(u64, u64, u64), String> {
    let (new, dead, departed) = (
        stat(out, "TASK_NEW"),
        stat(out, "TASK_DEAD"),
        stat(out, "TASK_DEPARTED"),
    );
    ensure!(
        new == dead + departed,
        "agent saw TASK_NEW {new} != TASK_DEAD {dead} + TASK_DEPARTED {departed}:\n{out}"
    );
    for row in ["messages dropped (queue full)", "corrupt queue content"] {
        ensure!(stat(out, row) == 0, "agent counted {row}:\n{out}");
    }
    Ok((new, dead, departed))
}

/// `CHURN` tasks enter and leave ghost under `ghost-agent fifo`, at most
/// `CHURN_ALIVE` at once: groups whose first thread enters by `tasks` and
/// clones threads or forks processes (in ghost by inheritance); each task
/// works a little and leaves by exiting or by `SCHED_OTHER`, some coming
/// back by `tasks` and leaving again. Every task does its work, every
/// departed task is `SCHED_OTHER`, every stay ends, the agent stays online
/// and exits 0 on SIGTERM with `TASK_NEW = TASK_DEAD + TASK_DEPARTED`. Bounded
/// by lack of progress (`CHURN_STALL_SECS`) and a hang cap.
pub fn churn_10000_threads() -> Result<(), String> {
    sys::ensure_ghostfs()?;
    let cpu = (nr_cpu_ids()? - 1).to_string();
    let seed = seed();
    println!("  churn_10000_threads: seed {seed}");
    let start = Instant::now();
    let mut agent = Proc::start("ghost-agent", &["fifo", "--cpus", &cpu])?;
    let id = online_enclave(AGENT_UP_S).ok_or(format!("no agent online after {AGENT_UP_S} s"))?;
    let c: &'static Churn = sys::shared_page()?;
    let load = sys::fork_child(move || churn_main(id, c, seed))?;
    let n = |a: &AtomicU32| a.load(Ordering::SeqCst);
    // Progress every 10 s; a stall report (up to 3) when no task finished
    // its work for 10 s; the end of the wait when no task finished while
    // the agent spent CHURN_AGENT_SPIN_SECS of CPU.
    let (mut last, mut since, mut seen, mut reports) = (Instant::now(), Instant::now(), 0, 0);
    let agent_cpu = || proc_cpu_ticks(agent_pid(&agent.output()));
    let (mut cpu_at_progress, mut spun) = (agent_cpu(), None);
    let finished = crate::harness::wait_while_progressing(
        CHURN_STALL_SECS * 1000,
        CHURN_CAP_SECS * 1000,
        || u64::from(n(&c.done)),
        || {
            if last.elapsed() > Duration::from_secs(10) {
                last = Instant::now();
                println!(
                    "  churn: {:.1} s, {} done, {} alive",
                    start.elapsed().as_secs_f64(),
                    n(&c.done),
                    n(&c.alive)
                );
            }
            if n(&c.done) != seen {
                (seen, since, cpu_at_progress) = (n(&c.done), Instant::now(), agent_cpu());
            } else if agent_cpu().saturating_sub(cpu_at_progress) >= CHURN_AGENT_SPIN_SECS * 100 {
                spun = Some(stall_report(id, &agent));
                return true;
            } else if since.elapsed() > Duration::from_secs(10) && reports < 3 {
                reports += 1;
                since = Instant::now();
                println!("  STALL: {}", stall_report(id, &agent));
            }
            ended(load)
        },
    );
    let secs = start.elapsed().as_secs_f64();
    let progress = format!(
        "{} of {CHURN} done, {} alive, entered by tasks {} / clone {} / fork {}, \
         {} exited, {} departed, {} re-entered (seed {seed}, {secs:.1} s)",
        n(&c.done),
        n(&c.alive),
        n(&c.by_file),
        n(&c.by_clone),
        n(&c.by_fork),
        n(&c.exited),
        n(&c.departed),
        n(&c.reentered)
    );
    if let Some(report) = spun {
        return Err(format!(
            "the agent used {CHURN_AGENT_SPIN_SECS} s of CPU while no task finished: {progress}\n  {report}"
        ));
    }
    ensure!(
        finished,
        "churn not over: no task finished for {CHURN_STALL_SECS} s (or {CHURN_CAP_SECS} s in all): {progress}\n  {}",
        stall_report(id, &agent)
    );
    let exit = sys::wait_child(load)?;
    ensure!(
        exit == Exit::Code(0),
        "churn process ended {exit:?}: {progress}"
    );
    for (what, v) in [
        ("writes to tasks refused", &c.enter_failed),
        ("tasks not created", &c.spawn_failed),
        ("tasks not in ghost at work", &c.not_ghost),
        ("departures failed", &c.depart_bad),
        ("bad ends (fork exit != 0, panic)", &c.bad_end),
    ] {
        ensure!(n(v) == 0, "{} {what}: {progress}", n(v));
    }
    let entered = n(&c.by_file) + n(&c.by_clone) + n(&c.by_fork);
    ensure!(
        entered as usize == CHURN && n(&c.done) as usize == CHURN,
        "{entered} entered: {progress}"
    );
    let missing: Vec<usize> = (0..CHURN)
        .filter(|&i| c.bits[i / 32].load(Ordering::SeqCst) & (1 << (i % 32)) == 0)
        .take(10)
        .collect();
    ensure!(
        missing.is_empty(),
        "tasks {missing:?} did not work: {progress}"
    );
    let stays = entered + n(&c.reentered);
    ensure!(
        n(&c.exited) + n(&c.departed) == stays,
        "{stays} stays, {} ended: {progress}",
        n(&c.exited) + n(&c.departed)
    );
    ensure!(n(&c.alive) == 0, "alive count {}: {progress}", n(&c.alive));
    figures::entered(stays.into());
    figures::returned(stays.into());
    figures::ops(u64::from(n(&c.by_file) + n(&c.reentered) + n(&c.departed)));
    // The agent is still there, online, with no task left.
    ensure!(
        agent.wait(0).is_err(),
        "the agent ended during the churn:\n{}",
        agent.output()
    );
    ensure!(
        std::fs::read_to_string(crate::harness::path(id, "agent_online"))
            .is_ok_and(|s| s.trim() == "1"),
        "agent not online after the churn"
    );
    let left = std::fs::read_to_string(crate::harness::path(id, "tasks")).unwrap_or_default();
    ensure!(left.trim().is_empty(), "tasks left in the enclave: {left}");
    agent.signal(libc::SIGTERM);
    let out = agent.finish(30)?;
    let (new, dead, departed) = check_stats(&out)?;
    ensure!(
        new >= CHURN as u64 && new <= u64::from(stays),
        "agent saw {new} TASK_NEW for {CHURN} tasks and {} re-entries",
        n(&c.reentered)
    );
    println!(
        "  churn_10000_threads: {CHURN} tasks (by tasks {}, clone {}, fork {}), {} exited, {} departed, {} re-entered; \
         agent: TASK_NEW {new} = TASK_DEAD {dead} + TASK_DEPARTED {departed}; {secs:.1} s (seed {seed})",
        n(&c.by_file),
        n(&c.by_clone),
        n(&c.by_fork),
        n(&c.exited),
        n(&c.departed),
        n(&c.reentered)
    );
    Ok(())
}

/// Ghost threads under memory pressure.
const PRESSURE_THREADS: usize = 64;
/// Rounds each of them does at least (and on until the pressure is over).
const PRESSURE_ROUNDS: u32 = 20;
/// Cycles of the hog: grow to most of `MemAvailable`, touch, free.
const PRESSURE_CYCLES: u32 = 3;
/// The memory-pressure test fails when nothing moves (the hog, the ghost
/// threads, the enclave creator) for this long, in seconds: longer than
/// the 5 minutes a busy machine may spend in reclaim before the OOM killer
/// acts, with everything waiting for memory...
const PRESSURE_STALL_SECS: u64 = 420;
/// ... or when the hog still runs after this long: a cap that only
/// catches a hang (the OOM killer acts within seconds on a quiet machine,
/// within minutes on a busy one).
const PRESSURE_CAP_SECS: u64 = 1800;
/// Enclave ids the creator cycles through.
const PRESSURE_IDS: u64 = 240;

/// The memory-pressure test's progress, in a shared page.
#[repr(C)]
struct Pressure {
    entered: AtomicU32,
    failed: AtomicU32,
    done: AtomicU32,
    rounds: AtomicU32,
    not_ghost: AtomicU32,
    /// Set once the hog is gone: threads end after their rounds.
    stop: AtomicU32,
    /// Hog cycles done, and the most it held (MiB).
    hog_cycles: AtomicU32,
    hog_peak_mib: AtomicU32,
    /// Set when the hog starts to grow until the OOM killer takes it.
    hog_oom: AtomicU32,
    /// Enclave creations tried, done, and refused with ENOMEM.
    creates: AtomicU32,
    created: AtomicU32,
    enomem: AtomicU32,
    /// Other errors the enclave creator met: the first errno and step.
    other_errno: AtomicU32,
    other_step: AtomicU32,
}

/// `MemAvailable`, in KiB.
fn mem_available() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemAvailable:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        })
        .unwrap_or(0)
}

/// A `/proc/vmstat` counter.
fn vmstat(key: &str) -> u64 {
    std::fs::read_to_string("/proc/vmstat")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Writes the caller's `oom_score_adj`.
fn set_oom_adj(v: &str) -> Result<(), String> {
    sys::write_once("/proc/self/oom_score_adj", v.as_bytes())
        .map(|_| ())
        .map_err(|e| format!("oom_score_adj {v}: {}", sys::errno_name(e)))
}

/// The hog (CFS, on CPU `cpu`, `oom_score_adj` 1000): takes 60% of
/// `MemAvailable` for good, then `PRESSURE_CYCLES` times grows to 90% of
/// what is left available and frees that; then grows 16 MiB at a time until
/// the OOM killer takes it. Exit 3 if it reached 8 GiB instead, 4 if its
/// setup failed.
fn hog_main(p: &'static Pressure, cpu: usize) -> i32 {
    // The OOM killer picks the hog: its badness is its size plus all memory.
    if set_oom_adj("1000").is_err() || !pin(cpu) {
        return 4;
    }
    let mib = |frac: u64| (mem_available() * frac / 10) >> 10;
    let base = mib(6);
    let Some(_ballast) = Touched::new((base << 20) as usize, 1) else {
        return 4;
    };
    for cycle in 0..PRESSURE_CYCLES {
        let more = mib(9);
        if Touched::new((more << 20) as usize, cycle as u8).is_some() {
            p.hog_peak_mib
                .fetch_max((base + more) as u32, Ordering::SeqCst);
        }
        p.hog_cycles.fetch_add(1, Ordering::SeqCst);
    }
    p.hog_oom.store(1, Ordering::SeqCst);
    let mut held = Vec::new();
    for chunk in 1..=512u32 {
        if let Some(t) = Touched::new(16 << 20, chunk as u8) {
            held.push(t);
            p.hog_peak_mib
                .fetch_max(base as u32 + chunk * 16, Ordering::SeqCst);
        }
    }
    3
}

/// The enclave creator (on CPU `cpu`): until `stop`, creates an enclave,
/// a status-word region and a queue's worth of setup, reads its status and
/// destroys it. ENOMEM is counted; any other errno ends it with exit 1.
fn creator_main(p: &'static Pressure, cpu: usize) -> i32 {
    if !pin(cpu) {
        return 4;
    }
    let mut k = 0u64;
    let fail = |step: u32, e: i32| {
        if e == libc::ENOMEM {
            p.enomem.fetch_add(1, Ordering::SeqCst);
            false
        } else {
            p.other_errno.store(e as u32, Ordering::SeqCst);
            p.other_step.store(step, Ordering::SeqCst);
            true
        }
    };
    while p.stop.load(Ordering::SeqCst) == 0 {
        let id = PRESSURE_IDS + k % 5;
        k += 1;
        p.creates.fetch_add(1, Ordering::SeqCst);
        if let Err(e) = sys::write_once(
            &format!("{}/ctl", sys::GHOSTFS),
            format!("create {id} 91").as_bytes(),
        ) {
            if fail(1, e) {
                return 1;
            }
            continue;
        }
        p.created.fetch_add(1, Ordering::SeqCst);
        let ctl = crate::harness::path(id, "ctl");
        if let Err(e) = sys::write_once(&ctl, b"create sw_region 0 0") {
            if fail(2, e) {
                return 1;
            }
        }
        if std::fs::read_to_string(crate::harness::path(id, "status")).is_err() {
            p.other_step.store(3, Ordering::SeqCst);
            return 1;
        }
        if let Err(e) = sys::write_once(&ctl, b"destroy") {
            fail(4, e);
            return 1;
        }
        // Every destroy is a line in the kernel log: not too many.
        std::thread::sleep(Duration::from_millis(10));
    }
    0
}

/// Memory pressure while an agent runs: `ghost-agent fifo` (and this
/// process, and the ghost load: `oom_score_adj` -1000) schedules
/// `PRESSURE_THREADS` threads that allocate and touch 64 KiB, spin and
/// sleep each round; a hog in CFS takes 60% of `MemAvailable`, grows to 90%
/// of the rest and frees that `PRESSURE_CYCLES` times, then grows until the
/// OOM killer takes it;
/// meanwhile enclaves are created and destroyed (ENOMEM allowed, no other
/// error). The OOM killer takes the hog and nothing else; every ghost
/// thread finishes; the agent is alive and exits 0 on SIGTERM with its
/// messages accounted for. The agent itself is kept out of the OOM
/// killer's reach: one it killed would be a SIGKILLed agent, whose tasks
/// wait for the next agent (`agent_kills_under_load`).
pub fn memory_pressure_with_agents() -> Result<(), String> {
    sys::ensure_ghostfs()?;
    let ncpus = nr_cpu_ids()?;
    ensure!(ncpus >= 2, "needs 2 CPUs, have {ncpus}");
    let cpu = ncpus - 1;
    let seed = seed();
    let mut rng = Rng(seed);
    println!("  memory_pressure_with_agents: seed {seed}");
    let start = Instant::now();
    let adj = std::fs::read_to_string("/proc/self/oom_score_adj")
        .map_err(|e| format!("oom_score_adj: {e}"))?;
    set_oom_adj("-1000")?;
    let result = pressure_run(cpu, seed, &mut rng, start);
    let restored = set_oom_adj(adj.trim());
    result.and(restored)
}

fn pressure_run(cpu: usize, seed: u64, rng: &mut Rng, start: Instant) -> Result<(), String> {
    let oom_before = vmstat("oom_kill");
    let mut agent = Proc::start("ghost-agent", &["fifo", "--cpus", &cpu.to_string()])?;
    let id = online_enclave(AGENT_UP_S).ok_or(format!("no agent online after {AGENT_UP_S} s"))?;
    let p: &'static Pressure = sys::shared_page()?;
    let n = |a: &AtomicU32| a.load(Ordering::SeqCst);
    // Spin and sleep a seeded 200-800 us and 1-3 ms.
    let (spin, nap) = (rng.range(200, 800), rng.range(1, 4));
    let load = sys::fork_child(move || {
        ghost_threads(
            id,
            PRESSURE_THREADS,
            None,
            &p.entered,
            &p.failed,
            move |_| {
                if sys::sched_policy(0) != ghost_abi::SCHED_GHOST {
                    p.not_ghost.fetch_add(1, Ordering::SeqCst);
                }
                let mut mine = 0;
                while mine < PRESSURE_ROUNDS || p.stop.load(Ordering::SeqCst) == 0 {
                    mine += 1;
                    // Fresh pages each round: faults, and reclaim under pressure.
                    drop(Touched::new(64 << 10, mine as u8));
                    spin_us(spin);
                    std::thread::sleep(Duration::from_millis(nap));
                    p.rounds.fetch_add(1, Ordering::SeqCst);
                }
                p.done.fetch_add(1, Ordering::SeqCst);
            },
        )
    })?;
    let all = PRESSURE_THREADS as u32;
    ensure!(
        wait_for(30_000, || n(&p.entered) + n(&p.failed) >= all),
        "only {} of {all} threads started",
        n(&p.entered)
    );
    ensure!(
        n(&p.failed) == 0,
        "{} threads could not enter",
        n(&p.failed)
    );
    figures::entered(PRESSURE_THREADS as u64);
    let creator = sys::fork_child(move || creator_main(p, 0))?;
    let hog = sys::fork_child(move || hog_main(p, 0))?;
    // However slowly the hog grows (reclaim under TCG on a busy machine
    // takes minutes), it grows: fail only when nothing moves for
    // PRESSURE_STALL_SECS (the hog, the ghost threads, the creator).
    let hog_over = crate::harness::wait_while_progressing(
        PRESSURE_STALL_SECS * 1000,
        PRESSURE_CAP_SECS * 1000,
        || {
            [&p.hog_cycles, &p.hog_peak_mib, &p.rounds, &p.creates]
                .iter()
                .fold(0u64, |a, c| {
                    a.wrapping_mul(1_000_003).wrapping_add(u64::from(n(c)))
                })
        },
        || ended(hog) || ended(creator),
    );
    let state = || {
        format!(
            "hog: {} cycles, peak {} MiB; {} of {all} threads done, {} rounds; \
             {} enclaves created of {} tries, {} ENOMEM ({:.1} s, seed {seed})",
            n(&p.hog_cycles),
            n(&p.hog_peak_mib),
            n(&p.done),
            n(&p.rounds),
            n(&p.created),
            n(&p.creates),
            n(&p.enomem),
            start.elapsed().as_secs_f64()
        )
    };
    ensure!(
        hog_over,
        "the hog still runs, nothing moved for {PRESSURE_STALL_SECS} s (or {PRESSURE_CAP_SECS} s in all): {}",
        state()
    );
    p.stop.store(1, Ordering::SeqCst);
    let cexit = sys::wait_child(creator)?;
    ensure!(
        cexit == Exit::Code(0),
        "enclave creator ended {cexit:?}: errno {} at step {}: {}",
        sys::errno_name(n(&p.other_errno) as i32),
        n(&p.other_step),
        state()
    );
    let hexit = sys::wait_child(hog)?;
    ensure!(
        hexit == Exit::Signal(libc::SIGKILL) && n(&p.hog_oom) == 1,
        "hog ended {hexit:?}, want killed by the OOM killer: {}",
        state()
    );
    figures::faults(u64::from(n(&p.hog_cycles)) + 1);
    figures::ops(u64::from(n(&p.creates)) * 4);
    let kills = vmstat("oom_kill") - oom_before;
    ensure!(kills == 1, "{kills} OOM kills, want 1 (the hog)");
    // Only this test makes the OOM killer kill: its last report is ours.
    let log = sys::kernel_log().unwrap_or_default();
    let victim = log
        .rfind("Killed process ")
        .and_then(|at| log[at + 15..].split(' ').next())
        .unwrap_or("none");
    ensure!(
        victim == hog.to_string(),
        "the OOM killer's last victim is {victim}, not the hog ({hog})"
    );
    let rounds = n(&p.rounds);
    ensure!(
        wait_for(60_000, || n(&p.done) == all),
        "{} of {all} threads finished after the hog: {}",
        n(&p.done),
        state()
    );
    let lexit = sys::wait_child(load)?;
    ensure!(lexit == Exit::Code(0), "load ended {lexit:?}");
    ensure!(
        n(&p.not_ghost) == 0,
        "{} threads not in ghost",
        n(&p.not_ghost)
    );
    figures::returned(PRESSURE_THREADS as u64);
    ensure!(
        agent.wait(0).is_err(),
        "the agent ended under memory pressure:\n{}",
        agent.output()
    );
    agent.signal(libc::SIGTERM);
    let out = agent.finish(30)?;
    let (new_msgs, dead, _) = check_stats(&out)?;
    ensure!(
        new_msgs == all.into() && dead == all.into(),
        "agent saw {new_msgs} TASK_NEW, {dead} TASK_DEAD for {all} threads"
    );
    let warn_alloc = log.matches("page allocation failure").count();
    println!(
        "  memory_pressure_with_agents: {} hog cycles (peak {} MiB) and an OOM kill of the hog; \
         {all} ghost threads done ({rounds} rounds under pressure, {} in all); {} enclaves created \
         of {} tries, {} ENOMEM, {warn_alloc} page allocation failure reports; {:.1} s (seed {seed})",
        n(&p.hog_cycles),
        n(&p.hog_peak_mib),
        n(&p.rounds),
        n(&p.created),
        n(&p.creates),
        n(&p.enomem),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The threads that ran in the last 300 ms (user + system time grew),
/// ghost or not: `tid (comm) +ns policy syscall` and their kernel stacks.
fn ghost_running() -> String {
    let list = || -> Vec<(String, u64)> {
        let mut v = Vec::new();
        for p in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            for t in std::fs::read_dir(p.path().join("task"))
                .into_iter()
                .flatten()
                .flatten()
            {
                let tid: i32 = t.file_name().to_string_lossy().parse().unwrap_or(0);
                if tid == 0 {
                    continue;
                }
                let ns = stat_cpu_ticks(&t.path()) * 10_000_000;
                v.push((t.path().display().to_string(), ns));
            }
        }
        v
    };
    let a = list();
    std::thread::sleep(Duration::from_millis(300));
    let b: std::collections::HashMap<String, u64> = list().into_iter().collect();
    let mut out = String::new();
    for (path, ns) in a {
        let Some(&now) = b.get(&path) else { continue };
        if now > ns {
            let rd = |f: &str| std::fs::read_to_string(format!("{path}/{f}")).unwrap_or_default();
            out.push_str(&format!(
                "    {path} ({}) +{} ns policy {} syscall {}    stack {}\n",
                rd("comm").trim(),
                now - ns,
                rd("stat")
                    .rsplit(')')
                    .next()
                    .and_then(|r| r.split_whitespace().nth(38))
                    .unwrap_or("?"),
                rd("syscall").trim(),
                rd("stack").replace('\n', " | ")
            ));
        }
    }
    out
}

/// What a stalled enclave looks like: its status and tasks, the ghost
/// threads by state, the agent's threads, what ran lately, and the agent's
/// run queues (SIGUSR1).
fn stall_report(id: u64, agent: &Proc) -> String {
    let rd = |f: &str| std::fs::read_to_string(crate::harness::path(id, f)).unwrap_or_default();
    let mut r = format!(
        "status: {}\n  tasks: {}\n  {}\n  agent threads:\n{}  ran in 300 ms:\n{}",
        rd("status").replace('\n', " "),
        rd("tasks").replace('\n', " "),
        ghost_states(),
        threads_of(agent_pid(&agent.output())),
        ghost_running()
    );
    agent.signal(libc::SIGUSR1);
    std::thread::sleep(Duration::from_millis(500));
    let out = agent.output();
    if let Some(at) = out.rfind("--- enclave_") {
        r.push_str(&format!("  agent:\n{}", &out[at..]));
    }
    r
}

/// The agent's pid, from the line it prints when it starts.
fn agent_pid(out: &str) -> i32 {
    out.split(", pid ")
        .nth(1)
        .and_then(|s| s.split(';').next())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}
