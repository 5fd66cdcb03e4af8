//! More fault cases (issue 18, item 3): an agent SIGKILLed with a sync
//! group half-claimed; `ghost_run` from a thread of an agent's process that
//! is no agent; tasks exiting while latched on a CPU whose agent is being
//! killed; CPU hotplug during enclave destroys; 1000 enclaves created and
//! destroyed by 8 threads at once.
//!
//! Each case accepts an errno or a clean outcome, never a lost task (every
//! task ends in CFS or exits: the suite checks that no thread is left in
//! the ghost class once the test's enclaves are gone) and never a kernel
//! splat (`scripts/vm-run` checks the kernel log). Waits are bounded by a
//! cap that only catches a hang ([`HANG_MS`]) and say what they waited for.

use crate::harness::figures;
use crate::harness::sys::ghost_run;
use crate::harness::sys::{self, errno_name, Exit};
use crate::harness::{attach, make_enclave, observe, wait_for, Txn};
use crate::harness::{
    ghost_states, ghost_threads, kept_enclave_agent, kill_and_restart, seed, Rng,
};
use crate::harness::{nr_cpu_ids, Test};
use crate::harness::{open_rw, path};
use crate::harness::{script, Agent, Next};
use ghost_abi as abi;
use std::mem::offset_of;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

/// The tests of this file, in the order they run.
pub const TESTS: &[Test] = &[
    Test {
        name: "sync_group_half_claimed_agent_killed",
        run: sync_group_half_claimed_agent_killed,
    },
    Test {
        name: "ghost_run_from_non_agent_thread",
        run: ghost_run_from_non_agent_thread,
    },
    Test {
        name: "latched_exits_while_agent_killed",
        run: latched_exits_while_agent_killed,
    },
    Test {
        name: "enclaves_1000_by_8_threads",
        run: enclaves_1000_by_8_threads,
    },
];

/// The tests that run after every other (the fuzzer's too): a known kernel
/// bug in one of them strands an agent on CPU 1 for good.
pub const LAST: &[Test] = &[Test {
    name: "hotplug_during_destroys",
    run: hotplug_during_destroys,
}];

/// A cap on every wait of this file that only catches a hang (ms): each
/// waits for something that takes milliseconds on a quiet machine.
const HANG_MS: u64 = crate::harness::HANG_FLOOR_MS;

/// A spinning task of enclave `id`: joins it, then counts in `work` until
/// `stop`; exit 0 (3 if it could not join).
fn spinner(id: u64, work: &'static AtomicU64, stop: &'static AtomicU32) -> Result<i32, String> {
    sys::fork_child(move || {
        if sys::write_once(&path(id, "tasks"), b"0").is_err() {
            return 3;
        }
        while stop.load(SeqCst) == 0 {
            work.fetch_add(1, SeqCst);
        }
        0
    })
}

/// Waits (up to [`HANG_MS`]) for `work` to grow by `by`; the error says
/// `what` did not happen, with the ghost threads' states.
fn grows(work: &AtomicU64, by: u64, what: &str) -> Result<(), String> {
    let at = work.load(SeqCst);
    ensure!(
        wait_for(HANG_MS, || work.load(SeqCst) > at + by),
        "{what}: no progress in {} s ({} iterations)\n  {}",
        HANG_MS / 1000,
        work.load(SeqCst),
        ghost_states()
    );
    Ok(())
}

/// SIGKILLs our child `pid` and reaps it; how it ended.
fn kill_child(pid: i32) -> Result<Exit, String> {
    sys::kill(pid, libc::SIGKILL);
    sys::wait_child(pid)
}

/// A sleeping agent of `cpu` in its own process: attaches, becomes the
/// agent, sets `up`, then drains its queue and blocks until killed.
/// `error` gets the failed step.
fn sleeper_agent(
    id: u64,
    cpu: usize,
    up: &'static AtomicU32,
    error: &'static AtomicI32,
) -> Result<i32, String> {
    sys::fork_child(move || {
        let Ok(e) = attach(id, cpu) else {
            error.store(-1, SeqCst);
            return 1;
        };
        let a = match Agent::join(e, cpu) {
            Ok(a) => a,
            Err(x) => {
                error.store(if x > 0 { x } else { -2 }, SeqCst);
                return 1;
            }
        };
        up.store(1, SeqCst);
        a.sleep_forever()
    })
}

// ---------------------------------------------------------------------
// (a) An agent SIGKILLed with a sync group half-claimed.

/// Agents of CPU `c1` killed in [`sync_group_half_claimed_agent_killed`].
const SG_KILLS: u32 = 15;

#[repr(C)]
struct Sg {
    sat_up: AtomicU32,
    sat_error: AtomicI32,
    up: AtomicU32,
    error: AtomicI32,
    /// 1: every sync group is a healthy one (no half-claimed member).
    healthy: AtomicU32,
    /// Sync groups tried by the current agent; how they ended in all:
    /// returned 1, returned 0, failed with an errno (the last one).
    groups: AtomicU32,
    ok: AtomicU32,
    failed: AtomicU32,
    errs: AtomicU32,
    last_errno: AtomicI32,
    work: AtomicU64,
    stop: AtomicU32,
}

/// The agent of `c1`: commits sync groups of {the task on `c0`, a ping of itself on `c1`} in
/// a loop. Unless `healthy`, every other group is *half-claimed* before
/// the commit: `c0`'s transaction already reads as claimed by `c1` and
/// owned by `c1`'s group (what the kernel writes while it commits a group),
/// the state a kill in the middle of a group would leave if it were
/// userspace's. Killed at a random moment by the test.
fn sg_agent(id: u64, c0: usize, c1: usize, gtid: i64, sh: &'static Sg) -> i32 {
    let Ok(e) = attach(id, c1) else {
        sh.error.store(-1, SeqCst);
        return 1;
    };
    // Mapped before it is an agent (an agent may not open enclave files).
    let Ok(cd) = open_rw(&path(id, "cpu_data")) else {
        sh.error.store(-4, SeqCst);
        return 1;
    };
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    let Ok(txns) = sys::mmap_fd(&cd, 4096 * (c1 + 1), rw, libc::MAP_SHARED, 0) else {
        sh.error.store(-5, SeqCst);
        return 1;
    };
    let a = match Agent::join(e, c1) {
        Ok(a) => a,
        Err(x) => {
            sh.error.store(if x > 0 { x } else { -2 }, SeqCst);
            return 1;
        }
    };
    // The task's messages go to the queue it joined with (the agent of CPU
    // 0's): its barrier is read from its status word.
    let word = match a.e.sw_info(abi::GHOST_TASK, gtid as u64) {
        Ok(info) => info.index,
        Err(x) => {
            sh.error.store(x, SeqCst);
            return 1;
        }
    };
    sh.up.store(1, SeqCst);
    let mut k = 0u32;
    let step = |a: &Agent, _| {
        let e = &a.e;
        let task_barrier = e.sw_barrier(word);
        k += 1;
        let t = |gtid: i64, task_barrier: u32| Txn {
            gtid,
            run_flags: 0,
            commit_flags: 0,
            agent_barrier: 0,
            task_barrier,
            version: 0,
        };
        e.fill(c0, &t(gtid, task_barrier));
        e.fill(c1, &t(abi::GHOST_AGENT_GTID, 0));
        if k % 2 == 0 && sh.healthy.load(SeqCst) == 0 {
            let at = 4096 * c0;
            txns.atomic(at + offset_of!(abi::GhostTxn, state))
                .store(c1 as u32, SeqCst);
            txns.write::<i32>(at + 48, c1 as i32);
        }
        sh.groups.fetch_add(1, SeqCst);
        match e.commit(&[c0, c1], true) {
            Ok(1) => sh.ok.fetch_add(1, SeqCst),
            Ok(_) => sh.failed.fetch_add(1, SeqCst),
            Err(x) => {
                sh.last_errno.store(x, SeqCst);
                sh.errs.fetch_add(1, SeqCst)
            }
        };
        // Let the task run a little (and the test's kill land anywhere).
        Next::Sleep(Duration::from_micros(300))
    };
    a.run(&mut script(|_| {}, step, |_| {}))
}

/// An enclave of CPUs 0 and `c1` with a sleeping agent on CPU 0 and a
/// spinning task; `SG_KILLS` times an agent of `c1` commits sync groups
/// (half of them half-claimed, see [`sg_agent`]) and is SIGKILLed at a
/// random moment. Every SYNC_GROUP_TXN returns 0 or 1 (no errno), each
/// new agent comes up on a CPU whose last agent died mid-group, a final
/// agent's healthy groups run the task, the fallback runs it once no
/// agent is left, and after the destroy it runs in CFS.
pub fn sync_group_half_claimed_agent_killed() -> Result<(), String> {
    sys::ensure_ghostfs()?;
    let n = nr_cpu_ids()?;
    ensure!(n >= 2, "needs 2 CPUs, have {n}");
    let (c0, c1) = (0, n - 1);
    let seed = seed();
    let mut rng = Rng(seed);
    let sh: &'static Sg = sys::shared_page()?;
    let id = 61;
    make_enclave(id, c1)?;
    sys::write_once(&path(id, "cpulist"), format!("{c0},{c1}").as_bytes())
        .map_err(|e| format!("cpulist {c0},{c1}: {}", errno_name(e)))?;
    let sat = sleeper_agent(id, c0, &sh.sat_up, &sh.sat_error)?;
    ensure!(
        wait_for(HANG_MS, || sh.sat_up.load(SeqCst) != 0
            || sh.sat_error.load(SeqCst) != 0),
        "the agent of CPU {c0} did not come up"
    );
    ensure!(
        sh.sat_error.load(SeqCst) == 0,
        "the agent of CPU {c0} failed at {}",
        sh.sat_error.load(SeqCst)
    );
    let task = spinner(id, &sh.work, &sh.stop)?;
    ensure!(
        wait_for(HANG_MS, || sys::sched_policy(task) == abi::SCHED_GHOST),
        "the task did not join (policy {})",
        sys::sched_policy(task)
    );
    figures::entered(1);
    let gtid = sys::gtid_of(task);
    let start_agent = || -> Result<i32, String> {
        sh.up.store(0, SeqCst);
        sh.groups.store(0, SeqCst);
        let a = sys::fork_child(move || sg_agent(id, c0, c1, gtid, sh))?;
        let up = wait_for(HANG_MS, || {
            sh.up.load(SeqCst) != 0 && sh.groups.load(SeqCst) >= 2 || sh.error.load(SeqCst) != 0
        });
        ensure!(
            up && sh.error.load(SeqCst) == 0,
            "the agent of CPU {c1} did not come up and commit (error {}, {} groups)\n  {}",
            sh.error.load(SeqCst),
            sh.groups.load(SeqCst),
            ghost_states()
        );
        Ok(a)
    };
    for round in 0..SG_KILLS {
        let a = start_agent()?;
        std::thread::sleep(Duration::from_micros(rng.range(0, 20_000)));
        let exit = kill_child(a)?;
        ensure!(
            exit == Exit::Signal(libc::SIGKILL),
            "round {round}: agent ended {exit:?}"
        );
        figures::faults(1);
    }
    // A new agent's healthy groups run the task.
    sh.healthy.store(1, SeqCst);
    let a = start_agent()?;
    grows(&sh.work, 1000, "the task under a new agent's sync groups")?;
    kill_child(a)?;
    // No agent left: the fallback runs the task.
    kill_child(sat)?;
    grows(&sh.work, 1000, "the task with no agent (fallback)")?;
    sys::write_once(&path(id, "ctl"), b"destroy")
        .map_err(|x| format!("destroy: {}", errno_name(x)))?;
    ensure!(
        sys::sched_policy(task) == libc::SCHED_OTHER,
        "task policy {} after the destroy",
        sys::sched_policy(task)
    );
    grows(&sh.work, 1000, "the task in CFS after the destroy")?;
    figures::returned(1);
    sh.stop.store(1, SeqCst);
    let exit = sys::wait_child(task)?;
    ensure!(exit == Exit::Code(0), "task ended {exit:?}");
    let (ok, failed, errs) = (
        sh.ok.load(SeqCst),
        sh.failed.load(SeqCst),
        sh.errs.load(SeqCst),
    );
    ensure!(
        errs == 0,
        "{errs} SYNC_GROUP_TXN failed with an errno (last {})",
        errno_name(sh.last_errno.load(SeqCst))
    );
    ensure!(ok > 0, "no sync group committed ({failed} failed)");
    println!(
        "  sync_group_half_claimed_agent_killed: {SG_KILLS} agents killed mid-group; \
         {ok} groups committed, {failed} failed (seed {seed})"
    );
    Ok(())
}

// ---------------------------------------------------------------------
// (b) ghost_run from a thread of an agent's process that is no agent.

#[repr(C)]
struct Nr {
    up: AtomicU32,
    error: AtomicI32,
    /// The agent thread's id, and its wakes.
    tid: AtomicI32,
    wakes: AtomicU32,
    /// Tells the agent thread to leave (return, ending the thread).
    leave: AtomicU32,
    /// The outcomes, see [`ghost_run_from_non_agent_thread`].
    r: [AtomicI32; 12],
    /// Pings sent while the agent thread left: 0, EINVAL, anything else.
    race: [AtomicU32; 3],
    done: AtomicU32,
}

/// Probes of the main thread of an agent's process (a CFS thread, no
/// agent); `r[i]` gets the outcome.
fn non_agent_probes(id: u64, c1: usize, sh: &'static Nr) -> i32 {
    let set = |i: usize, v: i32| sh.r[i].store(v, SeqCst);
    let agent = std::thread::spawn(move || {
        let Ok(e) = attach(id, c1) else {
            sh.error.store(-1, SeqCst);
            return;
        };
        let Ok(a) = Agent::join(e, c1) else {
            sh.error.store(-2, SeqCst);
            return;
        };
        sh.tid.store(sys::gettid(), SeqCst);
        sh.up.store(1, SeqCst);
        let woke = |r: Result<(), i32>| {
            if r.is_ok() {
                sh.wakes.fetch_add(1, SeqCst);
            }
        };
        a.run_while(&mut script(|_| {}, |_, _| Next::Block, woke), || {
            sh.leave.load(SeqCst) == 0
        });
    });
    if !wait_for(HANG_MS, || {
        sh.up.load(SeqCst) != 0 || sh.error.load(SeqCst) != 0
    }) || sh.error.load(SeqCst) != 0
    {
        return 1;
    }
    let wakes = || sh.wakes.load(SeqCst);
    // Let the agent block (a ping before that only moves the barrier it
    // is about to read), then ping it.
    let blocked = || wait_for(HANG_MS, || sys::asleep(sh.tid.load(SeqCst)));
    blocked();
    let w = wakes();
    set(0, ghost_run(abi::GHOST_AGENT_GTID, 0, c1 as i32));
    set(1, i32::from(wait_for(HANG_MS, || wakes() > w)));
    set(2, ghost_run(0, 0, c1 as i32));
    set(3, ghost_run(0, 0, 0));
    set(4, ghost_run(12345, 0, c1 as i32));
    set(5, ghost_run(abi::GHOST_AGENT_GTID, 0, 0));
    set(6, ghost_run(abi::GHOST_AGENT_GTID, 0, 4096));
    match observe(id) {
        Ok(e) => {
            let t = |gtid: i64| Txn {
                gtid,
                run_flags: 0,
                commit_flags: 0,
                agent_barrier: 0,
                task_barrier: 0,
                version: 0,
            };
            blocked();
            let w = wakes();
            e.fill(c1, &t(abi::GHOST_AGENT_GTID));
            set(
                7,
                e.commit(&[c1], false)
                    .map_or_else(|x| -x, |_| e.txn_state(c1)),
            );
            set(8, i32::from(wait_for(HANG_MS, || wakes() > w)));
            e.fill(c1, &t(abi::GHOST_IDLE_GTID));
            set(
                9,
                e.commit(&[c1], false)
                    .map_or_else(|x| -x, |_| e.txn_state(c1)),
            );
        }
        Err(_) => set(7, -1000),
    }
    // Pings while the agent thread leaves: each wakes it or finds no agent.
    sh.leave.store(1, SeqCst);
    while !agent.is_finished() {
        let r = ghost_run(abi::GHOST_AGENT_GTID, 0, c1 as i32);
        let k = match r {
            0 => 0,
            libc::EINVAL => 1,
            _ => 2,
        };
        sh.race[k].fetch_add(1, SeqCst);
        std::thread::yield_now();
    }
    let _ = agent.join();
    // A joined thread has not yet made its last switch, where its agency
    // ends (its exit wakes the joiner before that): pings may still find
    // it for a moment. Once gone, the agent stays gone: EINVAL.
    let last = std::cell::Cell::new(0);
    wait_for(HANG_MS, || {
        last.set(ghost_run(abi::GHOST_AGENT_GTID, 0, c1 as i32));
        last.get() == libc::EINVAL
    });
    set(10, last.get());
    sh.done.store(1, SeqCst);
    0
}

/// R3 (conformance.rst): a thread of an agent's process that is no agent
/// may ping the agent (`ghost_run(GHOST_AGENT_GTID)`, 0, the agent wakes);
/// everything else it asks of `ghost_run` is `EINVAL` (a local yield, a
/// task, a CPU without an agent, a CPU that does not exist); through
/// `COMMIT_TXN` a ping of its agent is COMPLETE and wakes it, anything else
/// NOT_PERMITTED. A ping from another process is `EINVAL`. Pings while the
/// agent thread leaves get 0 or `EINVAL`, and `EINVAL` once it is gone.
pub fn ghost_run_from_non_agent_thread() -> Result<(), String> {
    sys::ensure_ghostfs()?;
    let n = nr_cpu_ids()?;
    let c1 = n - 1;
    let sh: &'static Nr = sys::shared_page()?;
    let id = 62;
    make_enclave(id, c1)?;
    let p = sys::fork_child(move || non_agent_probes(id, c1, sh))?;
    let other = {
        ensure!(
            wait_for(HANG_MS, || sh.r[0].load(SeqCst) != 0
                || sh.r[1].load(SeqCst) != 0
                || sh.error.load(SeqCst) != 0),
            "the agent process did not start its probes"
        );
        ghost_run(abi::GHOST_AGENT_GTID, 0, c1 as i32)
    };
    let exit = sys::wait_child(p)?;
    ensure!(
        sh.error.load(SeqCst) == 0,
        "agent setup failed at {}",
        sh.error.load(SeqCst)
    );
    ensure!(exit == Exit::Code(0), "the agent process ended {exit:?}");
    ensure!(sh.done.load(SeqCst) == 1, "the probes did not finish");
    let r = |i: usize| sh.r[i].load(SeqCst);
    let einval = libc::EINVAL;
    let name = |e: i32| {
        if e >= 0 {
            errno_name(e)
        } else {
            format!("state {:#x}", e)
        }
    };
    for (i, want, what) in [
        (0, 0, "a ping of its agent"),
        (1, 1, "the agent woke from the ping"),
        (2, einval, "a local yield (gtid 0) on the agent's CPU"),
        (3, einval, "a local yield on CPU 0"),
        (4, einval, "a task gtid"),
        (5, einval, "a ping of a CPU with no agent"),
        (6, einval, "a ping of CPU 4096"),
        (
            7,
            abi::GHOST_TXN_COMPLETE,
            "COMMIT_TXN of a ping of its agent",
        ),
        (8, 1, "the agent woke from the committed ping"),
        (
            9,
            abi::GHOST_TXN_NOT_PERMITTED,
            "COMMIT_TXN of idle on the agent's CPU",
        ),
        (10, einval, "a ping once the agent thread is gone"),
    ] {
        ensure!(r(i) == want, "{what}: {} (want {})", name(r(i)), name(want));
    }
    ensure!(
        other == einval,
        "a ping from another process: {}",
        errno_name(other)
    );
    let race: Vec<u32> = sh.race.iter().map(|a| a.load(SeqCst)).collect();
    ensure!(
        race[2] == 0,
        "pings while the agent left: {race:?} (0, EINVAL, other)"
    );
    sys::write_once(&path(id, "ctl"), b"destroy")
        .map_err(|x| format!("destroy: {}", errno_name(x)))?;
    println!(
        "  ghost_run_from_non_agent_thread: pings while the agent thread left: {} woke it, {} EINVAL",
        race[0], race[1]
    );
    Ok(())
}

// ---------------------------------------------------------------------
// (c) Tasks exiting while latched on a CPU whose agent is being killed.

/// Agents killed in [`latched_exits_while_agent_killed`].
const LATCH_KILLS: u32 = 20;
/// Threads of its load, each forking short-lived children.
const LATCH_THREADS: usize = 4;

#[repr(C)]
struct Latch {
    entered: AtomicU32,
    failed: AtomicU32,
    /// Children forked, reaped with exit 0, reaped otherwise.
    born: AtomicU32,
    reaped: AtomicU32,
    bad: AtomicU32,
    stop: AtomicU32,
}

/// The load of [`latched_exits_while_agent_killed`]: `LATCH_THREADS` ghost
/// threads that each fork children (ghost by inheritance) that spin
/// 0-2 ms and exit, one at a time, until `stop`.
fn latch_load(id: u64, l: &'static Latch, seed: u64) -> i32 {
    ghost_threads(id, LATCH_THREADS, None, &l.entered, &l.failed, move |i| {
        let mut rng = Rng(seed ^ (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        while l.stop.load(SeqCst) == 0 {
            let spin = rng.range(0, 2000);
            // The child only spins and calls _exit (async-signal safe: no
            // allocation, no lock).
            let pid = sys::fork_bare(|| {
                let end = Instant::now() + Duration::from_micros(spin);
                while Instant::now() < end {
                    std::hint::spin_loop();
                }
            });
            if pid < 0 {
                l.bad.fetch_add(1, SeqCst);
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            l.born.fetch_add(1, SeqCst);
            if sys::reaped_exit0(pid) {
                l.reaped.fetch_add(1, SeqCst);
            } else {
                l.bad.fetch_add(1, SeqCst);
            }
        }
    })
}

/// `ghost-agent fifo` schedules `LATCH_THREADS` threads that keep forking
/// children which run 0-2 ms and exit (so at any moment some task is
/// latched or running and about to exit); the agent is SIGKILLed at a
/// random moment `LATCH_KILLS` times and a new one takes over. Then the
/// last agent is killed with no successor (the fallback runs the load),
/// and the enclave is destroyed: every child was reaped with exit 0, the
/// load is in CFS and exits 0.
pub fn latched_exits_while_agent_killed() -> Result<(), String> {
    sys::ensure_ghostfs()?;
    let seed = seed();
    let mut rng = Rng(seed);
    let start = Instant::now();
    let (mut agent, id) = kept_enclave_agent()?;
    let l: &'static Latch = sys::shared_page()?;
    let load = sys::fork_child(move || latch_load(id, l, seed))?;
    let n = |a: &AtomicU32| a.load(SeqCst);
    let all = LATCH_THREADS as u32;
    ensure!(
        wait_for(HANG_MS, || n(&l.entered) + n(&l.failed) >= all),
        "only {} of {all} threads started",
        n(&l.entered)
    );
    ensure!(
        n(&l.failed) == 0,
        "{} threads could not enter",
        n(&l.failed)
    );
    figures::entered(all.into());
    let born = |what: &str| -> Result<(), String> {
        let at = n(&l.born);
        ensure!(
            wait_for(HANG_MS, || n(&l.born) > at + 2),
            "{what}: no child forked in {} s ({} born, {} reaped)\n  {}",
            HANG_MS / 1000,
            n(&l.born),
            n(&l.reaped),
            ghost_states()
        );
        Ok(())
    };
    born("under the first agent")?;
    for round in 1..=LATCH_KILLS {
        std::thread::sleep(Duration::from_micros(rng.range(0, 30_000)));
        kill_and_restart(
            &mut agent,
            id,
            &format!("restart {round} (seed {seed})"),
            HANG_MS / 1000,
            || Ok(()),
        )?;
        // Children forked during the takeover reach the new agent too.
        born(&format!("under agent {round}"))?;
    }
    // With no agent, the kernel's fallback must run the load.
    agent.signal(libc::SIGKILL);
    agent.wait(HANG_MS / 1000)?;
    born("with no agent (fallback)")?;
    sys::write_once(&path(id, "ctl"), b"destroy")
        .map_err(|x| format!("destroy: {}", errno_name(x)))?;
    born("in CFS after the destroy")?;
    l.stop.store(1, SeqCst);
    let exit = sys::wait_child(load)?;
    ensure!(
        exit == Exit::Code(0),
        "load ended {exit:?} ({} born, {} reaped, {} bad)",
        n(&l.born),
        n(&l.reaped),
        n(&l.bad)
    );
    ensure!(
        n(&l.bad) == 0 && n(&l.born) == n(&l.reaped),
        "{} children born, {} reaped with exit 0, {} bad",
        n(&l.born),
        n(&l.reaped),
        n(&l.bad)
    );
    figures::returned(all.into());
    println!(
        "  latched_exits_while_agent_killed: {LATCH_KILLS} agents killed, {} short-lived tasks all reaped, {:.1} s (seed {seed})",
        n(&l.reaped),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

// ---------------------------------------------------------------------
// (d) CPU hotplug during enclave destroys.

/// Enclaves created and destroyed in [`hotplug_during_destroys`].
const PLUG_ROUNDS: u32 = 40;

#[repr(C)]
struct Plug {
    up: AtomicU32,
    error: AtomicI32,
    work: AtomicU64,
    stop: AtomicU32,
    /// The plugger: offline writes that worked, that got EBUSY, online
    /// writes that worked; other errnos (the first one, and which write).
    offline: AtomicU32,
    busy: AtomicU32,
    online: AtomicU32,
    other: AtomicU32,
    other_errno: AtomicI32,
    other_what: AtomicU32,
    plug_stop: AtomicU32,
}

/// Writes `cpu`'s `online` file: 0, 1, 0, ... until `plug_stop`, then
/// leaves it online. Exit 1 if it cannot bring it back.
fn plugger(cpu: usize, p: &'static Plug) -> i32 {
    let f = format!("/sys/devices/system/cpu/cpu{cpu}/online");
    while p.plug_stop.load(SeqCst) == 0 {
        for (v, what) in [(b"0", 0u32), (b"1", 1)] {
            match sys::write_once(&f, v) {
                Ok(_) if what == 0 => p.offline.fetch_add(1, SeqCst),
                Ok(_) => {
                    // Online for a moment: enclaves can take it.
                    std::thread::sleep(Duration::from_millis(2));
                    p.online.fetch_add(1, SeqCst)
                }
                Err(libc::EBUSY) => p.busy.fetch_add(1, SeqCst),
                Err(e) => {
                    if p.other.fetch_add(1, SeqCst) == 0 {
                        p.other_errno.store(e, SeqCst);
                        p.other_what.store(what, SeqCst);
                    }
                    0
                }
            };
        }
    }
    let back = wait_for(HANG_MS, || {
        sys::write_once(&f, b"1").is_ok()
            && std::fs::read_to_string(&f).is_ok_and(|s| s.trim() == "1")
    });
    i32::from(!back)
}

/// While another process offlines and onlines the last CPU as fast as it
/// can, `PLUG_ROUNDS` times: an enclave is created, given that CPU
/// (`ENODEV` while it is offline: tried again for a while, then the round
/// goes on without it), a
/// sleeping agent on it and a CFS spinner as a task, and destroyed. The
/// hotplug writes succeed or get `EBUSY` (the CPU is an enclave's); the
/// spinner is back in CFS after each destroy and runs; the CPU ends
/// online.
///
/// KNOWN KERNEL BUG (issue 18, item 3; not fixed): an offline attempt of an
/// enclave CPU that has an agent runs `sched_cpu_deactivate` (with its
/// `balance_push`) before ghost's refusal at `CPUHP_AP_ONLINE_DYN`; an
/// agent scheduled in that window is pushed to another CPU with its
/// affinity broken ("process N (ghost-exp) no longer affine to cpu1"), the
/// rollback does not bring it back, it never runs again, and the destroy
/// gives up on it ("enclave_N: 1 tasks or agents did not leave"). The test
/// then fails with `KERNEL BUG` and the kernel's lines (it runs last: the
/// stranded agent holds CPU 1 for good).
pub fn hotplug_during_destroys() -> Result<(), String> {
    sys::ensure_ghostfs()?;
    let n = nr_cpu_ids()?;
    ensure!(n >= 2, "needs 2 CPUs, have {n}");
    let c1 = n - 1;
    let online = format!("/sys/devices/system/cpu/cpu{c1}/online");
    ensure!(
        std::path::Path::new(&online).exists(),
        "{online} missing: no CPU hotplug"
    );
    let p: &'static Plug = sys::shared_page()?;
    // A CFS spinner that each round joins the enclave (by the test's write
    // of its pid to `tasks`).
    let spin = sys::fork_child(move || {
        while p.stop.load(SeqCst) == 0 {
            p.work.fetch_add(1, SeqCst);
        }
        0
    })?;
    let plug = sys::fork_child(move || plugger(c1, p))?;
    let id = 63;
    let stranded = || {
        sys::kernel_log()
            .unwrap_or_default()
            .matches(&format!("enclave_{id}: "))
            .count()
    };
    let stranded0 = stranded();
    let (mut with_cpu, mut without, mut agents) = (0, 0, 0);
    let result = (|| -> Result<(), String> {
        for round in 0..PLUG_ROUNDS {
            crate::harness::create_enclave(&format!("create {id} 91"))?;
            sys::write_once(&path(id, "ctl"), b"create sw_region 0 0")
                .map_err(|e| format!("round {round}: sw_region: {}", errno_name(e)))?;
            // ENODEV while the CPU is offline: tried again for a while, so
            // that most rounds have the CPU (and an agent) when destroyed.
            let mut has_cpu = false;
            for _ in 0..200 {
                match sys::write_once(&path(id, "cpulist"), c1.to_string().as_bytes()) {
                    Ok(_) => has_cpu = true,
                    Err(libc::ENODEV) => std::thread::sleep(Duration::from_millis(1)),
                    Err(e) => {
                        return Err(format!("round {round}: cpulist {c1}: {}", errno_name(e)))
                    }
                }
                if has_cpu {
                    break;
                }
            }
            if has_cpu {
                with_cpu += 1;
                sys::write_once(&path(id, "tasks"), spin.to_string().as_bytes()).map_err(|e| {
                    format!("round {round}: spinner into the enclave: {}", errno_name(e))
                })?;
            } else {
                without += 1;
            }
            let mut agent = None;
            if has_cpu && round % 2 == 0 {
                p.up.store(0, SeqCst);
                p.error.store(0, SeqCst);
                let a = sleeper_agent(id, c1, &p.up, &p.error)?;
                ensure!(
                    wait_for(HANG_MS, || p.up.load(SeqCst) != 0
                        || p.error.load(SeqCst) != 0),
                    "round {round}: the agent of CPU {c1} did not come up"
                );
                if p.error.load(SeqCst) == 0 {
                    agents += 1;
                }
                agent = Some(a);
            }
            std::thread::sleep(Duration::from_millis(2));
            sys::write_once(&path(id, "ctl"), b"destroy")
                .map_err(|x| format!("round {round}: destroy: {}", errno_name(x)))?;
            figures::faults(1);
            if stranded() > stranded0 {
                if let Some(a) = agent {
                    sys::forget_child(a);
                }
                let log = sys::kernel_log().unwrap_or_default();
                let lines: Vec<&str> = log
                    .lines()
                    .filter(|l| {
                        l.contains(&format!("enclave_{id}: "))
                            || l.contains(&format!("no longer affine to cpu{c1}"))
                    })
                    .collect();
                return Err(format!(
                    "round {round}: KERNEL BUG (issue 18 item 3, known): the destroy left a task behind, \
                     an agent pushed off CPU {c1} by an offline attempt; kernel log:\n    {}",
                    lines.join("\n    ")
                ));
            }
            if let Some(a) = agent {
                // Killed by the destroy, or it failed to become the agent.
                let exit = sys::wait_child(a)?;
                ensure!(
                    exit == Exit::Signal(libc::SIGKILL) || exit == Exit::Code(1),
                    "round {round}: agent ended {exit:?}"
                );
            }
            ensure!(
                sys::sched_policy(spin) == libc::SCHED_OTHER,
                "round {round}: spinner policy {} after the destroy",
                sys::sched_policy(spin)
            );
            figures::returned(1);
        }
        grows(&p.work, 1000, "the spinner in CFS after the destroys")
    })();
    p.plug_stop.store(1, SeqCst);
    let pexit = sys::wait_child(plug)?;
    p.stop.store(1, SeqCst);
    let sexit = sys::wait_child(spin)?;
    result?;
    ensure!(
        p.other.load(SeqCst) == 0,
        "{} hotplug writes failed otherwise, the first {} (writing {})",
        p.other.load(SeqCst),
        errno_name(p.other_errno.load(SeqCst)),
        p.other_what.load(SeqCst)
    );
    ensure!(
        pexit == Exit::Code(0),
        "the plugger ended {pexit:?}: CPU {c1} not back online"
    );
    ensure!(sexit == Exit::Code(0), "the spinner ended {sexit:?}");
    println!(
        "  hotplug_during_destroys: {PLUG_ROUNDS} enclaves ({with_cpu} got CPU {c1}, {without} ENODEV, {agents} with an agent); \
         hotplug: {} offline, {} online, {} EBUSY",
        p.offline.load(SeqCst),
        p.online.load(SeqCst),
        p.busy.load(SeqCst)
    );
    Ok(())
}

// ---------------------------------------------------------------------
// (e) 1000 enclaves created and destroyed by 8 threads at once.

/// Threads, and enclaves each creates and destroys.
const MASS_THREADS: u64 = 8;
const MASS_EACH: u64 = 125;
/// The first enclave id; thread `t` uses ids `MASS_ID + 4t .. + 4`.
const MASS_ID: u64 = 400;

/// What one thread of [`enclaves_1000_by_8_threads`] saw.
#[derive(Default)]
struct Mass {
    created: u64,
    /// create refused with EEXIST (the id's last destroy still going on).
    eexist: u64,
    /// Steps that found the enclave gone (a neighbour destroyed it).
    gone: u64,
    /// The CPU was another's (EBUSY).
    busy: u64,
    /// Neighbours' enclaves this thread destroyed.
    stolen: u64,
}

/// One thread: `MASS_EACH` times creates an enclave with one of its ids,
/// sometimes gives it CPU `cpu`, creates a status-word region, reads its
/// status and destroys it; every fifth time it also destroys one of its
/// neighbour's ids. Allowed errnos: EEXIST on create (retried), EBUSY on
/// the CPU, ENOENT/ENODEV on anything once a neighbour destroyed it.
fn mass_thread(t: u64, cpu: usize) -> Result<Mass, String> {
    let mut m = Mass::default();
    let gone = |e: i32| e == libc::ENOENT || e == libc::ENODEV;
    for k in 0..MASS_EACH {
        let id = MASS_ID + 4 * t + k % 4;
        let cmd = format!("create {id} 91");
        let t0 = Instant::now();
        loop {
            match sys::write_once(&format!("{}/ctl", sys::GHOSTFS), cmd.as_bytes()) {
                Ok(_) => break,
                Err(libc::EEXIST) if t0.elapsed() < Duration::from_millis(HANG_MS) => {
                    m.eexist += 1;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => return Err(format!("thread {t}: {cmd}: {}", errno_name(e))),
            }
        }
        m.created += 1;
        let step = |what: &str, r: Result<usize, i32>, m: &mut Mass| -> Result<(), String> {
            match r {
                Ok(_) => Ok(()),
                Err(e) if gone(e) => {
                    m.gone += 1;
                    Ok(())
                }
                Err(libc::EBUSY) if what == "cpulist" => {
                    m.busy += 1;
                    Ok(())
                }
                Err(e) => Err(format!(
                    "thread {t}: enclave_{id}: {what}: {}",
                    errno_name(e)
                )),
            }
        };
        if k % 3 == 0 {
            step(
                "cpulist",
                sys::write_once(&path(id, "cpulist"), cpu.to_string().as_bytes()),
                &mut m,
            )?;
        }
        step(
            "sw_region",
            sys::write_once(&path(id, "ctl"), b"create sw_region 0 0"),
            &mut m,
        )?;
        step(
            "status",
            std::fs::read(path(id, "status"))
                .map(|v| v.len())
                .map_err(|e| e.raw_os_error().unwrap_or(-1)),
            &mut m,
        )?;
        if k % 5 == 4 {
            let other = MASS_ID + 4 * ((t + 1) % MASS_THREADS) + k % 4;
            match sys::write_once(&path(other, "ctl"), b"destroy") {
                Ok(_) => m.stolen += 1,
                Err(e) if gone(e) => {}
                Err(e) => {
                    return Err(format!(
                        "thread {t}: destroy neighbour enclave_{other}: {}",
                        errno_name(e)
                    ))
                }
            }
        }
        step(
            "destroy",
            sys::write_once(&path(id, "ctl"), b"destroy"),
            &mut m,
        )?;
    }
    Ok(m)
}

/// 8 threads at once create and destroy 125 enclaves each (1000 in all),
/// some with the same CPU, some destroyed by a neighbour: every step
/// succeeds or gets an allowed errno, every create eventually succeeds,
/// and no enclave is left.
pub fn enclaves_1000_by_8_threads() -> Result<(), String> {
    sys::ensure_ghostfs()?;
    let cpu = nr_cpu_ids()? - 1;
    let start = Instant::now();
    let results: Vec<Result<Mass, String>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..MASS_THREADS)
            .map(|t| s.spawn(move || mass_thread(t, cpu)))
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("thread panicked".into())))
            .collect()
    });
    let mut all = Mass::default();
    for r in results {
        let m = r?;
        all.created += m.created;
        all.eexist += m.eexist;
        all.gone += m.gone;
        all.busy += m.busy;
        all.stolen += m.stolen;
    }
    ensure!(
        all.created == MASS_THREADS * MASS_EACH,
        "{} enclaves created, want {}",
        all.created,
        MASS_THREADS * MASS_EACH
    );
    let left: Vec<u64> = ghost::ghostfs::list()
        .unwrap_or_default()
        .into_iter()
        .filter(|i| (MASS_ID..MASS_ID + 4 * MASS_THREADS).contains(i))
        .collect();
    ensure!(left.is_empty(), "enclaves left: {left:?}");
    figures::ops(all.created * 4);
    println!(
        "  enclaves_1000_by_8_threads: {} created and destroyed, {} destroyed by a neighbour, \
         {} steps found it gone, {} EBUSY for CPU {cpu}, {} EEXIST retries; {:.1} s",
        all.created,
        all.stolen,
        all.gone,
        all.busy,
        all.eexist,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
