//! Scheduling tests: real tasks scheduled by a real agent on the real
//! kernel.
//!
//! The agent here is deliberately minimal (a per-CPU FIFO for one CPU,
//! written against the raw ABI): it is the test's instrument, and counts
//! every message it sees in shared memory so that the test can assert on
//! the kernel's behaviour.

use crate::harness::nr_cpu_ids;
use crate::harness::sys::{self, errno_name, Exit};
use crate::harness::{attach, current_cpu, hog, make_enclave, wait_for, Enclave};
use crate::harness::{ioctl, path};
use crate::harness::{Agent, Msg, Next, Script};
use ghost_abi as abi;
use std::collections::VecDeque;
use std::io::Write;
use std::mem::offset_of;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// Memory shared by the test, its agent and its workload (an anonymous
/// `MAP_SHARED` page, set up before the forks).
#[repr(C)]
struct Shared {
    /// The agent does not commit while this is nonzero.
    hold: AtomicU32,
    /// Messages the agent saw, by type (index `type - 64`, task messages).
    msgs: [AtomicU32; 16],
    /// Transaction outcomes the agent saw: COMPLETE, and anything else.
    commits_ok: AtomicU32,
    commits_failed: AtomicU32,
    /// The last failed state.
    last_failure: AtomicI32,
    /// The agent is up (it became the agent).
    agent_up: AtomicU32,
    /// The agent's setup failed at this step (nonzero: an errno).
    agent_error: AtomicI32,
    /// Workload: iterations done, the CPU it last ran on, its phase.
    work: AtomicU64,
    work_cpu: AtomicI32,
    /// Workload: 0 spin; 1 spin and sleep; 2 stop.
    phase: AtomicU32,
    /// Workload: it is about to join.
    joining: AtomicU32,
    /// Probes of a starting agent (see [`probe`]): outcomes, in order.
    probes: [AtomicI32; 12],
}

/// The test agent: becomes the agent of `cpu` and runs a FIFO of runnable
/// tasks, one at a time, until it is killed. Runs in its own process; the
/// return value is its exit code.
fn agent_main(id: u64, cpu: usize, sh: &Shared, takeover: bool) -> i32 {
    let Ok(e) = attach(id, cpu) else {
        sh.agent_error.store(-3, Ordering::SeqCst);
        return 1;
    };
    // Taking over: the old agent may still be on its way out (EBUSY).
    let a = match Agent::join(e, cpu) {
        Ok(a) => a,
        Err(err) => {
            sh.agent_error.store(err, Ordering::SeqCst);
            return 1;
        }
    };
    if takeover {
        probe(&a.e, cpu, a.me, sh);
        sh.probes[10].store(adopt_tasks(&a.e), Ordering::SeqCst);
        // Learn the tasks the old agent knew.
        if (&a.e.ctl).write_all(b"discover tasks").is_err() {
            sh.agent_error.store(-4, Ordering::SeqCst);
            return 1;
        }
    }
    sh.agent_up.store(1, Ordering::SeqCst);
    a.run(&mut Fifo {
        sh,
        runq: VecDeque::new(),
        barriers: Default::default(),
    })
}

/// The test agent's script: a FIFO of the runnable tasks, each run on the
/// agent's CPU until it blocks, yields or is preempted.
struct Fifo<'s> {
    sh: &'s Shared,
    runq: VecDeque<i64>,
    /// gtid → (last seqnum, status-word index).
    barriers: std::collections::HashMap<i64, (u32, u32)>,
}

impl Script for Fifo<'_> {
    fn on_msg(&mut self, a: &Agent, m: &Msg) {
        let (sh, runq, barriers) = (self.sh, &mut self.runq, &mut self.barriers);
        let i = m.ty.wrapping_sub(64) as usize;
        if let Some(c) = sh.msgs.get(i) {
            c.fetch_add(1, Ordering::SeqCst);
        }
        if m.payload.len() < 8 {
            return;
        }
        let (gtid, seq) = (m.u64_at(0) as i64, m.seq);
        match m.ty {
            abi::MSG_TASK_NEW => {
                barriers.insert(gtid, (seq, m.new_word()));
                let r = offset_of!(abi::GhostMsgPayloadTaskNew, runnable);
                if m.u8_at(r) != 0 {
                    runq.push_back(gtid);
                }
            }
            abi::MSG_TASK_WAKEUP | abi::MSG_TASK_PREEMPT | abi::MSG_TASK_YIELD => {
                if let Some(b) = barriers.get_mut(&gtid) {
                    b.0 = seq;
                }
                if !runq.contains(&gtid) {
                    runq.push_back(gtid);
                }
            }
            abi::MSG_TASK_BLOCKED => {
                if let Some(b) = barriers.get_mut(&gtid) {
                    b.0 = seq;
                }
                runq.retain(|&g| g != gtid);
            }
            abi::MSG_TASK_DEAD | abi::MSG_TASK_DEPARTED => {
                runq.retain(|&g| g != gtid);
                if let Some((_, idx)) = barriers.remove(&gtid) {
                    let mut info = abi::GhostSwInfo { id: 0, index: idx };
                    let _ = ioctl(&a.e.ctl, abi::GHOST_IOC_SW_FREE, (&raw mut info).cast());
                }
            }
            _ => {}
        }
    }

    fn step(&mut self, a: &Agent, agent_barrier: u32) -> Next {
        let sh = self.sh;
        if sh.hold.load(Ordering::SeqCst) != 0 {
            return Next::Sleep(Duration::from_millis(1));
        }
        let Some(gtid) = self.runq.front().copied() else {
            return Next::Block;
        };
        let task_barrier = self.barriers.get(&gtid).map_or(0, |b| b.0);
        let state = a.e.run_local(a.cpu, gtid, agent_barrier, task_barrier);
        if state == abi::GHOST_TXN_COMPLETE {
            sh.commits_ok.fetch_add(1, Ordering::SeqCst);
            self.runq.pop_front();
        } else {
            sh.commits_failed.fetch_add(1, Ordering::SeqCst);
            sh.last_failure.store(state, Ordering::SeqCst);
            // The task is gone: forget it. Otherwise try again.
            if state == abi::GHOST_TXN_TARGET_NOT_FOUND
                || state == abi::GHOST_TXN_TARGET_NOT_RUNNABLE
                || state == abi::GHOST_TXN_INVALID_TARGET
            {
                self.runq.pop_front();
            } else if state == abi::GHOST_TXN_CPU_UNAVAIL {
                return Next::Sleep(Duration::from_micros(100));
            }
        }
        Next::Again
    }
}

/// Provokes error outcomes as a new agent of `cpu` (whose status word is
/// `me`), recording them in `sh.probes`: transactions with an unknown gtid,
/// a bad version, bad flags, the agent's own gtid, a stale agent barrier, a
/// CPU without an agent; then `ghost_run` with a stale barrier, a ping of
/// itself, and `ghost_run` with the barrier the ping moved.
fn probe(e: &Enclave, cpu: usize, me: u32, sh: &Shared) {
    let my_gtid: i64 = std::fs::read_to_string("/proc/self/ghost/gtid")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let set = |i: usize, v: i32| sh.probes[i].store(v, Ordering::SeqCst);
    let b = || e.sw_barrier(me);
    set(0, e.run_local(cpu, 0x7fff_ffff_0000_0001, b(), 0));
    set(1, e.commit_raw(cpu, 5, 0, b(), 0, 1));
    set(2, e.commit_raw(cpu, 5, 0xff, b(), 0, 0));
    set(3, e.run_local(cpu, my_gtid, b(), 0));
    // A local commit with a stale agent barrier (of nothing: a task commit
    // fails on the task first, as ghOSt checks the target before the
    // barrier).
    set(4, e.run_local(cpu, 0, b().wrapping_sub(1), 0));
    // CPU 0 is the enclave's but has no agent.
    set(5, e.commit_raw(0, 0, 0, 0, 0, 0));
    set(6, e.block(b().wrapping_sub(1), cpu).err().unwrap_or(0));
    let b = b();
    let ping = sys::ghost_run_raw(abi::GHOST_AGENT_GTID, 0, 0, cpu as i32, 0);
    set(7, ping as i32);
    set(8, e.block(b, cpu).err().unwrap_or(0));
    set(9, e.sw_barrier(me).wrapping_sub(b) as i32);
}

/// In-place upgrade: sends every task of the enclave (a live status word
/// that is not an agent's) to this agent's queue; returns how many.
fn adopt_tasks(e: &Enclave) -> i32 {
    let mut n = 0;
    for index in 0..65534u32 {
        let at = 64 + 32 * index as usize;
        let flags = Enclave::atomic_u32(&e.sw, at + 4).load(Ordering::Acquire);
        let live = flags & abi::GHOST_SW_F_INUSE != 0;
        let skip = abi::GHOST_SW_TASK_IS_AGENT | abi::GHOST_SW_F_CANFREE;
        if !live || flags & skip != 0 {
            continue;
        }
        let gtid: i64 = e.sw.read(at + 8);
        let barrier = e.sw_barrier(index);
        let mut a = abi::GhostIocAssocQueue {
            fd: e.queue.as_raw_fd(),
            src: abi::GhostMsgSrc {
                type_: abi::GHOST_TASK,
                arg: gtid as u64,
            },
            barrier,
            flags: 0,
        };
        if ioctl(&e.ctl, abi::GHOST_IOC_ASSOC_QUEUE, (&raw mut a).cast()).is_ok() {
            n += 1;
        }
    }
    n
}

/// The workload: joins enclave `id` (itself), then counts and records its
/// CPU; in phase 1 it also sleeps and yields; in phase 2 it exits.
fn workload_main(id: u64, sh: &Shared) -> i32 {
    sh.joining.store(1, Ordering::SeqCst);
    if sys::write_once(&path(id, "tasks"), b"0").is_err() {
        return 3;
    }
    loop {
        let n = sh.work.fetch_add(1, Ordering::SeqCst);
        sh.work_cpu.store(current_cpu(), Ordering::SeqCst);
        match sh.phase.load(Ordering::SeqCst) {
            0 => std::hint::spin_loop(),
            1 => {
                if n % 64 == 0 {
                    std::thread::sleep(Duration::from_micros(200));
                } else if n % 64 == 32 {
                    sys::sched_yield();
                }
            }
            _ => return 0,
        }
    }
}

/// A task in an enclave runs only when its agent commits it, on the CPU the
/// agent chose; the messages of its life reach the agent; destroying the
/// enclave under load kills the agent and returns the task to CFS, where
/// it keeps running.
pub fn agent_schedules_tasks() -> Result<(), String> {
    sys::ensure_ghostfs()?;
    let ncpus = nr_cpu_ids()?;
    ensure!(ncpus >= 2, "needs 2 CPUs, have {ncpus}");
    let cpu = ncpus - 1;
    let sh: &Shared = sys::shared_page()?;
    sh.hold.store(1, Ordering::SeqCst);
    let id = 41;
    make_enclave(id, cpu)?;
    let agent = sys::fork_child(|| agent_main(id, cpu, sh, false))?;
    let up = wait_for(5000, || {
        sh.agent_up.load(Ordering::SeqCst) != 0 || sh.agent_error.load(Ordering::SeqCst) != 0
    });
    let err = sh.agent_error.load(Ordering::SeqCst);
    ensure!(up && err == 0, "agent did not come up (error {err})");
    // Agents run SCHED_GHOST with RESET_ON_FORK (their children are CFS).
    let policy = sys::sched_policy(agent);
    ensure!(
        policy == abi::SCHED_GHOST | libc::SCHED_RESET_ON_FORK,
        "agent policy {policy:#x}"
    );
    let status = std::fs::read_to_string(path(id, "status")).map_err(|x| x.to_string())?;
    ensure!(
        status.contains("nr_tasks 1\n"),
        "status with an agent: {status:?}"
    );

    // The workload joins; while the agent holds, it must not run.
    let work = sys::fork_child(|| workload_main(41, sh))?;
    ensure!(
        wait_for(5000, || sh.joining.load(Ordering::SeqCst) != 0
            && sys::sched_policy(work) == abi::SCHED_GHOST),
        "workload did not join (policy {})",
        sys::sched_policy(work)
    );
    std::thread::sleep(Duration::from_millis(300));
    let before = sh.work.load(Ordering::SeqCst);
    ensure!(before == 0, "uncommitted task ran {before} iterations");
    ensure!(
        sh.msgs[(abi::MSG_TASK_NEW - 64) as usize].load(Ordering::SeqCst) == 1,
        "TASK_NEW count {}",
        sh.msgs[3].load(Ordering::SeqCst)
    );
    let tasks = std::fs::read_to_string(path(id, "tasks")).map_err(|x| x.to_string())?;
    ensure!(
        tasks == format!("{work}\n"),
        "tasks file {tasks:?}, want {work}"
    );

    // Released: the agent commits it, and it runs on the agent's CPU.
    sh.hold.store(0, Ordering::SeqCst);
    ensure!(
        wait_for(5000, || sh.work.load(Ordering::SeqCst) > 1000),
        "committed task did not run: {} iterations, {} commits ok, {} failed (last {:#x})",
        sh.work.load(Ordering::SeqCst),
        sh.commits_ok.load(Ordering::SeqCst),
        sh.commits_failed.load(Ordering::SeqCst),
        sh.last_failure.load(Ordering::SeqCst)
    );
    let ran_on = sh.work_cpu.load(Ordering::SeqCst);
    ensure!(
        ran_on == cpu as i32,
        "task ran on CPU {ran_on}, agent chose {cpu}"
    );

    // Sleeping and yielding: BLOCKED, WAKEUP and YIELD reach the agent,
    // and the task keeps making progress.
    sh.phase.store(1, Ordering::SeqCst);
    let count = |t: u16| sh.msgs[(t - 64) as usize].load(Ordering::SeqCst);
    ensure!(
        wait_for(10000, || count(abi::MSG_TASK_BLOCKED) >= 20
            && count(abi::MSG_TASK_WAKEUP) >= 20
            && count(abi::MSG_TASK_YIELD) >= 5),
        "after sleeping and yielding: {} BLOCKED, {} WAKEUP, {} YIELD, {} iterations",
        count(abi::MSG_TASK_BLOCKED),
        count(abi::MSG_TASK_WAKEUP),
        count(abi::MSG_TASK_YIELD),
        sh.work.load(Ordering::SeqCst)
    );
    ensure!(
        sh.work_cpu.load(Ordering::SeqCst) == cpu as i32,
        "task ran on CPU {}",
        sh.work_cpu.load(Ordering::SeqCst)
    );

    // Destroy under load: the agent dies, the task goes back to CFS and
    // keeps running.
    sh.phase.store(0, Ordering::SeqCst);
    sys::write_once(&path(id, "ctl"), b"destroy")
        .map_err(|x| format!("destroy: {}", errno_name(x)))?;
    let exit = sys::wait_child(agent)?;
    ensure!(exit == Exit::Signal(libc::SIGKILL), "agent ended {exit:?}");
    ensure!(
        sys::sched_policy(work) == libc::SCHED_OTHER,
        "task policy after destroy: {}",
        sys::sched_policy(work)
    );
    let at = sh.work.load(Ordering::SeqCst);
    ensure!(
        wait_for(5000, || sh.work.load(Ordering::SeqCst) > at + 1000),
        "task stuck after destroy at {at} iterations"
    );
    sh.phase.store(2, Ordering::SeqCst);
    let exit = sys::wait_child(work)?;
    ensure!(exit == Exit::Code(0), "workload ended {exit:?}");
    Ok(())
}

/// CFS and RT preempt a running ghost task (TASK_PREEMPT); a killed agent loses
/// no task: the enclave stays (its task runs in the kernel's agentless
/// fallback meanwhile), a new agent takes over (in-place upgrade:
/// `ASSOC_QUEUE` of every live status word, then `discover tasks`) and runs
/// the task again. The new agent first provokes error outcomes of
/// transactions and `ghost_run`.
pub fn agent_takeover_and_errors() -> Result<(), String> {
    sys::ensure_ghostfs()?;
    let ncpus = nr_cpu_ids()?;
    ensure!(ncpus >= 2, "needs 2 CPUs, have {ncpus}");
    let cpu = ncpus - 1;
    let sh: &Shared = sys::shared_page()?;
    let id = 42;
    make_enclave(id, cpu)?;
    // CPU 0 too, without an agent (for NO_AGENT).
    sys::write_once(&path(id, "cpulist"), format!("0,{cpu}").as_bytes())
        .map_err(|e| format!("cpulist: {}", errno_name(e)))?;
    let a = sys::fork_child(|| agent_main(id, cpu, sh, false))?;
    ensure!(
        wait_for(5000, || sh.agent_up.load(Ordering::SeqCst) != 0),
        "first agent did not come up ({})",
        sh.agent_error.load(Ordering::SeqCst)
    );
    let work = sys::fork_child(|| workload_main(id, sh))?;
    ensure!(
        wait_for(5000, || sh.work.load(Ordering::SeqCst) > 1000),
        "task did not run under the first agent"
    );

    // A CFS task on the same CPU preempts the ghost task.
    let count = |t: u16| sh.msgs[(t - 64) as usize].load(Ordering::SeqCst);
    // So does an RT task.
    for (rt, class) in [(false, "CFS"), (true, "RT")] {
        let p0 = count(abi::MSG_TASK_PREEMPT);
        let h = hog(cpu, 300, rt)?;
        let hog_exit = sys::wait_child(h)?;
        ensure!(hog_exit == Exit::Code(0), "{class} hog ended {hog_exit:?}");
        // The agent counts the message when it next runs.
        ensure!(
            wait_for(2000, || count(abi::MSG_TASK_PREEMPT) > p0),
            "no TASK_PREEMPT when {class} took the CPU"
        );
        let at = sh.work.load(Ordering::SeqCst);
        ensure!(
            wait_for(5000, || sh.work.load(Ordering::SeqCst) > at + 1000),
            "task did not resume after the {class} task left"
        );
    }

    // The agent dies; the task stays in the enclave.
    sh.phase.store(1, Ordering::SeqCst);
    sys::kill(a, libc::SIGKILL);
    let exit = sys::wait_child(a)?;
    ensure!(
        exit == Exit::Signal(libc::SIGKILL),
        "first agent ended {exit:?}"
    );
    ensure!(
        sys::sched_policy(work) == abi::SCHED_GHOST,
        "task policy {} after its agent died",
        sys::sched_policy(work)
    );
    ensure!(
        wait_for(5000, || std::fs::read_to_string(path(id, "status"))
            .unwrap_or_default()
            .contains("nr_tasks 1\n")),
        "status after the agent died: {:?}",
        std::fs::read_to_string(path(id, "status"))
    );
    // ghost-rs runs the tasks of an enclave whose agent died itself until
    // a new agent attaches (the agentless fallback; ghOSt leaves them
    // waiting: conformance.rst, kept differences).
    let at = sh.work.load(Ordering::SeqCst);
    ensure!(
        wait_for(60_000, || sh.work.load(Ordering::SeqCst) > at + 1000),
        "the task did not run in the agentless fallback (waited 60 s)"
    );

    // A new agent takes over.
    for m in &sh.msgs {
        m.store(0, Ordering::SeqCst);
    }
    sh.agent_up.store(0, Ordering::SeqCst);
    let b = sys::fork_child(|| agent_main(id, cpu, sh, true))?;
    ensure!(
        wait_for(5000, || sh.agent_up.load(Ordering::SeqCst) != 0
            || sh.agent_error.load(Ordering::SeqCst) != 0),
        "second agent did not come up"
    );
    ensure!(
        sh.agent_error.load(Ordering::SeqCst) == 0,
        "second agent: error {}",
        sh.agent_error.load(Ordering::SeqCst)
    );
    let probes: Vec<i32> = sh.probes.iter().map(|p| p.load(Ordering::SeqCst)).collect();
    let want = [
        abi::GHOST_TXN_TARGET_NOT_FOUND,
        abi::GHOST_TXN_UNSUPPORTED_VERSION,
        abi::GHOST_TXN_INVALID_FLAGS,
        abi::GHOST_TXN_INVALID_TARGET,
        abi::GHOST_TXN_AGENT_STALE,
        abi::GHOST_TXN_NO_AGENT,
        libc::ESTALE,
        0,
        libc::ESTALE,
    ];
    ensure!(
        probes[..want.len()] == want,
        "probe outcomes {probes:x?}, want {want:x?}"
    );
    ensure!(probes[9] >= 1, "a ping did not move the agent barrier");
    ensure!(probes[10] == 1, "adopted {} tasks, want 1", probes[10]);
    // The new agent counts the message when its loop reads it.
    ensure!(
        wait_for(2000, || count(abi::MSG_TASK_NEW) >= 1),
        "discover tasks sent no TASK_NEW"
    );
    let at = sh.work.load(Ordering::SeqCst);
    ensure!(
        wait_for(5000, || sh.work.load(Ordering::SeqCst) > at + 1000),
        "task did not run under the new agent"
    );

    sh.phase.store(2, Ordering::SeqCst);
    let exit = sys::wait_child(work)?;
    ensure!(exit == Exit::Code(0), "workload ended {exit:?}");
    ensure!(
        wait_for(5000, || count(abi::MSG_TASK_DEAD) == 1),
        "no TASK_DEAD for the workload"
    );
    sys::write_once(&path(id, "ctl"), b"destroy")
        .map_err(|x| format!("destroy: {}", errno_name(x)))?;
    let exit = sys::wait_child(b)?;
    ensure!(
        exit == Exit::Signal(libc::SIGKILL),
        "second agent ended {exit:?}"
    );
    Ok(())
}
