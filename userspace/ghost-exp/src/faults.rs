//! Fault injection: agents killed at random moments under load, with every
//! task of the load finishing its work; enclaves destroyed under load, with
//! every task back in CFS and running. Seeded and bounded; the seed is
//! printed (`GHOST_FAULT_SEED` replays it).

use crate::agents::{online_enclave, Proc};
use crate::figures;
use crate::scheduling::wait_for;
use crate::suite::{nr_cpu_ids, Test};
use crate::sys::{self, Exit};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The fault-injection tests, in the order they run.
pub const TESTS: &[Test] = &[
    Test {
        name: "agent_kills_under_load",
        run: agent_kills_under_load,
    },
    Test {
        name: "destroys_under_load",
        run: destroys_under_load,
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

/// A small seeded generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `lo..hi` (`hi > lo`).
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

/// The seed: `GHOST_FAULT_SEED`, else the clock.
fn seed() -> u64 {
    std::env::var("GHOST_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        })
}

/// Runs `n` threads (64 KiB stacks) that each record their tid in
/// `tids[i]` (if given), count themselves in `entered` (before joining: once in ghost a thread runs again only when
/// the agent gets to it), join enclave `id` (counting `failed` if they
/// cannot) and run `body(i)`; waits for them. The exit code of a load
/// process: 0 if all `n` started and joined.
fn ghost_threads(
    id: u64,
    n: usize,
    tids: Option<&'static [AtomicU32]>,
    entered: &'static AtomicU32,
    failed: &'static AtomicU32,
    body: impl Fn(usize) + Copy + Send + 'static,
) -> i32 {
    let tasks = crate::mapped::path(id, "tasks");
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
    let cpu = (nr_cpu_ids()? - 1).to_string();
    let seed = seed();
    let mut rng = Rng(seed);
    let start = Instant::now();
    let mut agent = Proc::start("ghost-agent", &["fifo", "--cpus", &cpu, "--keep-enclave"])?;
    let id = online_enclave(20).ok_or("first agent not online after 20 s")?;
    let ids = id.to_string();
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
        agent.signal(libc::SIGKILL);
        let exit = agent.wait(20)?;
        ensure!(
            exit == Exit::Signal(libc::SIGKILL),
            "agent {kills} ended {exit:?}"
        );
        kills += 1;
        figures::faults(1);
        agent = Proc::start("ghost-agent", &["fifo", "--enclave", &ids])?;
        ensure!(
            online_enclave(20) == Some(id),
            "agent {} did not take over within 20 s (seed {seed}):\n{}",
            kills + 1,
            agent.output()
        );
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
    sys::write_once(&crate::mapped::path(id, "ctl"), b"destroy")
        .map_err(|x| format!("destroy: {}", sys::errno_name(x)))?;
    println!(
        "  agent_kills_under_load: {kills} agents killed, {THREADS} threads all done ({} rounds), {:.1} s (seed {seed})",
        rounds(),
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
        let id = online_enclave(20).ok_or(format!("round {round}: no agent online"))?;
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
        sys::write_once(&crate::mapped::path(id, "ctl"), b"destroy")
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
            ensure!(
                wait_for(5000, || sp.work[i].load(Ordering::Relaxed) > w),
                "round {round}: thread {tid} stopped after destroy"
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
