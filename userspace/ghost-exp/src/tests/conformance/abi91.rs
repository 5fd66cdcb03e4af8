//! ghOSt ABI 91 semantics that issue 17 brought to ghost-rs, each checked
//! with real agents and tasks: how a task's exit is reported, what becomes
//! of a dead agent's status word, `sched_setattr(SCHED_GHOST)` on a ghost
//! task, the NUMA node, the commit semantics (unschedule, a task already
//! on its CPU, poisoning, barrier bumps, mask length, non-agent callers),
//! the errno order of `tasks`, `become agent` and `cpulist`, the agent's
//! status-word flags, and `SW_GET_INFO`/`GET_CPU_TIME` with gtid 0.
//!
//! Most tests use the conformance rig ([`crate::harness::rig`]): an
//! agent process whose commander thread (agent of `c0`) carries out the
//! test's commands and runs tasks on `c1`, whose agent (the sleeper, a
//! thread of the same process) sleeps in `ghost_run`. The commands that
//! only these tests need are carried out by `crate::harness::rig::command`.

use crate::harness::figures;
use crate::harness::sys::thread_cpu_ns;
use crate::harness::sys::{self, errno_name, Exit};
use crate::harness::{attach, current_cpu, make_enclave, observe, sw_get_info, wait_for, Enclave};
use crate::harness::{create_enclave, Test};
use crate::harness::{create_queue, ioctl, open_rw, path};
use crate::harness::{
    final_state, txn, OP_COMMIT_MASK_LEN, OP_COMMIT_WITH_HOME, OP_SELF_INFO, OP_SETSCHED_SELF,
    OP_SW_FREE_INDEX,
};
use crate::harness::{getattr, setattr, two_cpus};
use crate::harness::{
    mismatches, nice_of, rig, set_policy, spinner, state_name, write_errno, Rig, RigUp, FRESH,
    GIVEN, OP_PING,
};
use crate::harness::{script, start_agent, Agent, Next};
use ghost_abi as abi;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicI32, AtomicU32};
use std::time::Duration;

/// Records a failure (a formatted reason) in `$wrong` unless `$cond` holds:
/// for tests that check several things and report every failure at once.
macro_rules! expect {
    ($wrong:expr, $cond:expr, $($fmt:tt)+) => {
        if !$cond {
            $wrong.push(format!($($fmt)+));
        }
    };
}

/// The tests, in the order they run.
pub const TESTS: &[Test] = &[
    Test {
        name: "abi91_exit_blocked_then_dead",
        run: exit_blocked_then_dead,
    },
    Test {
        name: "abi91_dead_agent_word_canfree",
        run: dead_agent_word_canfree,
    },
    Test {
        name: "abi91_setattr_nice_in_ghost",
        run: setattr_nice_in_ghost,
    },
    Test {
        name: "abi91_numa_node0",
        run: numa_node0,
    },
    Test {
        name: "abi91_commit_semantics",
        run: commit_semantics,
    },
    Test {
        name: "abi91_tasks_join_eperm",
        run: tasks_join_eperm,
    },
    Test {
        name: "abi91_become_agent_errno_order",
        run: become_agent_errno_order,
    },
    Test {
        name: "abi91_cpulist_errno_order",
        run: cpulist_errno_order,
    },
    Test {
        name: "abi91_agent_word_flags",
        run: agent_word_flags,
    },
    Test {
        name: "abi91_sw_info_and_cpu_time",
        run: sw_info_and_cpu_time,
    },
];

/// A gtid no task has.
const NO_TASK: i64 = 0x7fff_ffff_0000_0001;

/// `GHOST_IOC_GET_CPU_TIME` of `gtid` (0: the caller): ns, or the errno.
fn cpu_time(ctl: &std::fs::File, gtid: i64) -> Result<u64, i32> {
    let mut a = abi::GhostIocGetCpuTime { gtid, runtime: 0 };
    ioctl(ctl, abi::GHOST_IOC_GET_CPU_TIME, (&raw mut a).cast())?;
    Ok(a.runtime)
}

/// A message type's name, for failure reports.
fn msg_name(ty: u16) -> String {
    ghost::queue::MESSAGE_TYPES
        .iter()
        .find(|(t, _)| *t == ty)
        .map_or_else(|| ty.to_string(), |(_, n)| (*n).to_string())
}

/// A commit by the commander on `c1` of `gtid` with `commit_flags` (the
/// barrier: see [`RigUp::commit`]).
fn commit_with(rig: &RigUp, gtid: i64, commit_flags: u8, mode: u32) -> Result<i32, String> {
    rig.r.commit_flags.store(u32::from(commit_flags), SeqCst);
    let s = rig.commit(gtid, 0, mode);
    rig.r.commit_flags.store(0, SeqCst);
    s
}

/// One `write(2)` for each case `(enclave, file, value, errno wanted (0:
/// success), what it is)`; a line for each that ended otherwise.
fn write_cases(cases: &[(u64, &str, String, i32, &str)]) -> Vec<String> {
    let mut wrong = Vec::new();
    for (id, file, value, want, what) in cases {
        let got = sys::write_once(&path(*id, file), value.as_bytes()).map_or_else(|x| x, |_| 0);
        figures::ops(1);
        if got != *want {
            wrong.push(format!(
                "{what}: {value:?} to enclave_{id}/{file}: {}, want {}",
                errno_name(got),
                errno_name(*want)
            ));
        }
    }
    wrong
}

/// Destroys enclaves `ids`; each of `agents` (processes) must end killed
/// by it.
fn destroy_and_reap(ids: &[u64], agents: &[i32]) -> Result<(), String> {
    let mut destroyed = Ok(());
    for &id in ids {
        if let Err(x) = sys::write_once(&path(id, "ctl"), b"destroy") {
            destroyed = Err(format!("destroy enclave_{id}: {}", errno_name(x)));
        }
    }
    for &pid in agents {
        let exit = sys::wait_child(pid)?;
        ensure!(
            exit == Exit::Signal(libc::SIGKILL),
            "agent {pid} ended {exit:?}"
        );
    }
    destroyed
}

/// Waits (at most 10 s) until the child reporting in `flag` reached
/// `step` or failed (a negative step).
fn reached(flag: &AtomicI32, step: i32, what: &str) -> Result<(), String> {
    let at = || flag.load(SeqCst);
    ensure!(
        wait_for(10_000, || at() == step || at() < 0),
        "{what}: at step {} after 10 s, want {step}",
        at()
    );
    ensure!(at() == step, "{what}: failed at step {}", at());
    Ok(())
}

/// The rig's commander frees status word `index` (`SW_FREE`, 0), and the
/// word is then free (flags 0).
fn freed_by_agent(rig: &RigUp, obs: &Enclave, index: u32, what: &str) -> Result<(), String> {
    let freed = rig.command(OP_SW_FREE_INDEX, 0, i64::from(index), 0, 0)?;
    ensure!(freed == 0, "SW_FREE of {what}: {}", errno_name(freed));
    let flags = obs.sw_word(index).1;
    ensure!(flags == 0, "{what} after SW_FREE: flags {flags:#x}");
    Ok(())
}

/// What the rig saw, for failure reports: the outcomes of the commander's
/// automatic commits, the task messages it read, task 0's iterations and
/// last CPU.
fn rig_state(rig: &RigUp) -> String {
    let msgs: Vec<String> = (64..80u16)
        .filter(|&t| rig.a_count(t) != 0)
        .map(|t| format!("{} x{}", msg_name(t), rig.a_count(t)))
        .collect();
    format!(
        "auto commits: [{}]; messages: [{}]; task 0: {} iterations, last on CPU {}",
        rig.unexpected_outcomes(&[]).join(", "),
        msgs.join(", "),
        rig.r.works[0].load(SeqCst),
        rig.r.cpus[0].load(SeqCst)
    )
}

/// The threads runnable (state R) on `cpu`, as `tid (comm)`.
fn runnable_threads_on(cpu: usize) -> Vec<String> {
    sys::threads_where(|tid| runnable_on(tid, cpu))
}

/// Whether `pid`'s nice is `nice`, seen by `getpriority` and by
/// `sched_getattr` (which also says `SCHED_GHOST`).
fn check_nice(pid: i32, nice: i32, who: &str) -> Result<(), String> {
    ensure!(
        nice_of(pid) == nice,
        "{who}: getpriority {}, want {nice}",
        nice_of(pid)
    );
    let a = getattr(pid).map_err(|x| format!("{who}: sched_getattr: {}", errno_name(x)))?;
    ensure!(
        a.policy == abi::SCHED_GHOST as u32 && a.nice == nice,
        "{who}: sched_getattr policy {} nice {}, want {} and {nice}",
        a.policy,
        a.nice,
        abi::SCHED_GHOST
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// R2: a task that exits on its CPU.

/// R2: a ghost task that exits while it runs on its CPU is reported as
/// ghOSt reports it: TASK_BLOCKED, then TASK_DEAD, for the same gtid, with
/// consecutive sequence numbers; when TASK_DEAD arrives the task's status
/// word is `CANFREE` (still `INUSE`) and neither `RUNNABLE` nor `ONCPU`; it
/// stays so until the agent frees it.
fn exit_blocked_then_dead() -> Result<(), String> {
    let rig = rig(191)?;
    off_c1(&rig, || blocked_then_dead(&rig))?;
    rig.finish(&[])
}

/// Runs `f` with the calling thread (a CFS task, which would take `c1`
/// from the ghost task now and then) kept on the rig's `c0`.
fn off_c1<T>(rig: &RigUp, f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    sys::set_affinity(0, &[rig.c0]).map_err(|x| format!("affinity: {}", errno_name(x)))?;
    let res = f();
    let all: Vec<usize> = (0..=rig.c1).collect();
    let _ = sys::set_affinity(0, &all);
    res
}

/// Starts task 0 of the rig (a spinner that may run on every CPU).
fn start_task(rig: &RigUp) -> Result<i32, String> {
    let (id, r, c0) = (rig.id, rig.r, rig.c0);
    let all: Vec<usize> = (0..=rig.c1).collect();
    let t = sys::fork_child(move || {
        let _ = sys::set_affinity(0, &all);
        spinner(id, r, 0, c0)
    })?;
    figures::entered(1);
    Ok(t)
}

fn blocked_then_dead(rig: &RigUp) -> Result<(), String> {
    let r = rig.r;
    let (id, c1) = (rig.id, rig.c1);
    // Run the tasks, but leave the words of dead ones to the test.
    r.auto.store(1, SeqCst);
    let t = start_task(rig)?;
    ensure!(rig.progresses(0), "the task did not run");
    let gtid = sys::gtid_of(t);
    ensure!(gtid > 0, "no gtid for the task");
    r.log_gtid.store(gtid as u64, SeqCst);
    let obs = observe(id)?;
    let index = obs
        .sw_info(abi::GHOST_TASK, gtid as u64)
        .map_err(|x| format!("SW_GET_INFO of the task: {}", errno_name(x)))?
        .index;
    // Running on c1 (a CFS task may have it for a moment; the commander
    // runs it again).
    let oncpu = |f: u32| f & abi::GHOST_SW_TASK_ONCPU != 0;
    ensure!(
        wait_for(10_000, || oncpu(obs.sw_word(index).1)
            && r.cpus[0].load(SeqCst) == c1 as i32),
        "the task is not on CPU {c1} (waited 10 s): word flags {:#x}; {}; runnable on CPU \
         {c1}: {:?}",
        obs.sw_word(index).1,
        rig_state(rig),
        runnable_threads_on(c1)
    );
    // It sees this only while it runs, and exits at once.
    r.stop[0].store(1, SeqCst);
    ensure!(
        wait_for(10_000, || rig.a_count(abi::MSG_TASK_DEAD) == 1),
        "no TASK_DEAD when the running task exited ({} messages logged)",
        r.log_n.load(SeqCst)
    );
    let exit = sys::wait_child(t)?;
    ensure!(exit == Exit::Code(0), "task ended {exit:?}");
    figures::returned(1);
    // The ring's last messages, oldest first.
    let logged = r.log_n.load(SeqCst) as usize;
    let n = logged.min(r.log.len());
    let log: Vec<(u16, u32, u32)> = (logged - n..logged)
        .map(|i| {
            let e = &r.log[i % r.log.len()];
            (
                e[0].load(SeqCst) as u16,
                e[1].load(SeqCst),
                e[2].load(SeqCst),
            )
        })
        .collect();
    let names: Vec<String> = log
        .iter()
        .map(|(t, s, f)| format!("{}#{s}({f:#x})", msg_name(*t)))
        .collect();
    let tail: Vec<u16> = log.iter().rev().take(2).rev().map(|m| m.0).collect();
    ensure!(
        tail == [abi::MSG_TASK_BLOCKED, abi::MSG_TASK_DEAD],
        "the messages of the task that exited end {:?}, want TASK_BLOCKED then TASK_DEAD \
         (log: {})",
        tail.iter().map(|&t| msg_name(t)).collect::<Vec<_>>(),
        names.join(" ")
    );
    ensure!(
        log.windows(2).all(|w| w[1].1 > w[0].1),
        "sequence numbers do not increase: {}",
        names.join(" ")
    );
    let (blocked, dead) = (log[n - 2], log[n - 1]);
    ensure!(
        dead.1 == blocked.1.wrapping_add(1),
        "TASK_BLOCKED #{} then TASK_DEAD #{}: not consecutive",
        blocked.1,
        dead.1
    );
    let live = abi::GHOST_SW_TASK_RUNNABLE | abi::GHOST_SW_TASK_ONCPU;
    let want = abi::GHOST_SW_F_INUSE | abi::GHOST_SW_F_CANFREE;
    ensure!(
        dead.2 & want == want && dead.2 & live == 0,
        "status word at TASK_DEAD {:#x}: want INUSE and CANFREE, not RUNNABLE or ONCPU",
        dead.2
    );
    // The word waits for its agent.
    let (_, flags, g) = obs.sw_word(index);
    ensure!(
        flags & want == want && flags & live == 0 && g == gtid,
        "status word after TASK_DEAD: flags {flags:#x} gtid {g}, want CANFREE of {gtid}"
    );
    freed_by_agent(rig, &obs, index, "the dead task's word")?;
    drop(obs);
    Ok(())
}

// ---------------------------------------------------------------------------
// R4: a dead agent's status word.

/// R4: when an agent thread exits and its process lives on, its status
/// word (found earlier with `SW_GET_INFO(GHOST_AGENT)`) is marked
/// `CANFREE` and stays allocated (`INUSE`, its gtid, the region's
/// `available` count unchanged) until the process frees it with `SW_FREE`,
/// which then succeeds; freeing it again fails (EINVAL: not `CANFREE`).
/// The CPU has no agent any more (`SW_GET_INFO(GHOST_AGENT)`: EINVAL).
fn dead_agent_word_canfree() -> Result<(), String> {
    let rig = rig(192)?;
    let r = rig.r;
    let c1 = rig.c1;
    let obs = observe(rig.id)?;
    let index = obs
        .sw_info(abi::GHOST_AGENT, c1 as u64)
        .map_err(|x| format!("SW_GET_INFO(GHOST_AGENT, {c1}): {}", errno_name(x)))?
        .index;
    let tid = r.b_tid.load(SeqCst);
    let agent_gtid = sys::gtid_of(tid);
    let (_, flags, g) = obs.sw_word(index);
    let agent_word = abi::GHOST_SW_F_INUSE | abi::GHOST_SW_TASK_IS_AGENT;
    ensure!(
        flags & agent_word == agent_word && flags & abi::GHOST_SW_F_CANFREE == 0 && g == agent_gtid,
        "the live agent's word: flags {flags:#x} gtid {g}, want INUSE and IS_AGENT, not \
         CANFREE, gtid {agent_gtid}"
    );
    let available = obs.sw_available();
    // The agent thread returns when woken; the process goes on.
    r.b_exit.store(1, SeqCst);
    let res = rig.command(OP_PING, c1, 0, 0, 0)?;
    ensure!(res == 0, "ping of the agent of {c1}: {}", errno_name(res));
    let thread = format!("/proc/{}/task/{tid}", rig.agents);
    ensure!(
        wait_for(10_000, || !std::path::Path::new(&thread).exists()),
        "the agent thread {tid} did not exit"
    );
    let canfree = abi::GHOST_SW_F_INUSE | abi::GHOST_SW_F_CANFREE;
    ensure!(
        wait_for(10_000, || obs.sw_word(index).1 & canfree == canfree),
        "the dead agent's word: flags {:#x}, want INUSE and CANFREE",
        obs.sw_word(index).1
    );
    let info = obs.sw_info(abi::GHOST_AGENT, c1 as u64);
    ensure!(
        info.as_ref().err() == Some(&libc::EINVAL),
        "SW_GET_INFO(GHOST_AGENT, {c1}) with the agent dead: {info:?}, want EINVAL"
    );
    // Nothing frees it but its process.
    for round in 0..3 {
        std::thread::sleep(Duration::from_millis(100));
        let (_, flags, g) = obs.sw_word(index);
        ensure!(
            flags & canfree == canfree && g == agent_gtid && obs.sw_available() == available,
            "round {round}: the dead agent's word: flags {flags:#x} gtid {g}, region \
             available {} (was {available}): freed by the kernel",
            obs.sw_available()
        );
    }
    // The commander is a thread of the same process: still there.
    freed_by_agent(&rig, &obs, index, "the dead agent's word")?;
    ensure!(
        obs.sw_available() == available + 1,
        "region available {} after SW_FREE, want {}",
        obs.sw_available(),
        available + 1
    );
    // ghOSt: the word is no longer CANFREE.
    let again = rig.command(OP_SW_FREE_INDEX, 0, i64::from(index), 0, 0)?;
    ensure!(
        again == libc::EINVAL,
        "a second SW_FREE of the same word: {}, want EINVAL",
        errno_name(again)
    );
    drop(obs);
    rig.finish(&[])
}

// ---------------------------------------------------------------------------
// R7: SCHED_GHOST again.

/// R7: `sched_setattr(SCHED_GHOST)` with a new nice value on a task that is
/// already in ghost (by another process, and by the task itself) returns 0,
/// sets its nice (`getpriority`, `sched_getattr`) and the agent gets one
/// TASK_PRIORITY_CHANGED with that nice; the task keeps running.
/// `sched_setscheduler(SCHED_GHOST)` and `sched_setattr` with the same nice
/// return 0 and send nothing. An agent doing either for itself, or another
/// process doing it for an agent, gets EPERM, and nothing changes.
fn setattr_nice_in_ghost() -> Result<(), String> {
    let rig = rig(193)?;
    let r = rig.r;
    r.auto.store(3, SeqCst);
    let t = start_task(&rig)?;
    ensure!(rig.progresses(0), "the task did not run");
    let prio = || rig.a_count(abi::MSG_TASK_PRIORITY_CHANGED);
    for nice in [5, -4] {
        let p0 = prio();
        let x = setattr(t, abi::SCHED_GHOST, nice, 0);
        figures::ops(1);
        ensure!(
            x == 0,
            "sched_setattr(task, SCHED_GHOST, nice {nice}): {}",
            errno_name(x)
        );
        rig.one_priority_change(p0, nice, &format!("sched_setattr nice {nice}"))?;
        check_nice(t, nice, "the task")?;
        ensure!(rig.progresses(0), "the task stopped after nice {nice}");
    }
    // The task itself.
    let p0 = prio();
    r.renice_result.store(-999, SeqCst);
    r.renice_attr.store(1, SeqCst);
    r.renice.store(100 + 8, SeqCst);
    ensure!(
        wait_for(10_000, || r.renice_result.load(SeqCst) != -999),
        "the task did not renice itself"
    );
    let x = r.renice_result.load(SeqCst);
    ensure!(
        x == 0,
        "the task's own sched_setattr(0, SCHED_GHOST, nice 8): {}",
        errno_name(x)
    );
    rig.one_priority_change(p0, 8, "the task's own sched_setattr nice 8")?;
    check_nice(t, 8, "the task")?;
    // No new nice: success, no message.
    let p0 = prio();
    let x = set_policy(t, abi::SCHED_GHOST);
    ensure!(
        x == Ok(()),
        "sched_setscheduler(task, SCHED_GHOST): {x:?}, want Ok"
    );
    let x = setattr(t, abi::SCHED_GHOST, 8, 0);
    ensure!(
        x == 0,
        "sched_setattr(task, SCHED_GHOST, the same nice): {}",
        errno_name(x)
    );
    figures::ops(2);
    std::thread::sleep(Duration::from_millis(300));
    ensure!(
        prio() == p0,
        "{} TASK_PRIORITY_CHANGED without a new nice",
        prio() - p0
    );
    check_nice(t, 8, "the task")?;
    // An agent: EPERM, for itself and from another process.
    let agent = rig.agents;
    let agent_nice = nice_of(agent);
    let res = rig.command(OP_SETSCHED_SELF, 0, i64::from(agent_nice + 3), 0, 0)?;
    let aux = r.aux.load(SeqCst);
    ensure!(
        res == libc::EPERM && aux == libc::EPERM,
        "an agent's own sched_setattr(SCHED_GHOST, nice): {}, sched_setscheduler(SCHED_GHOST): \
         {}; want EPERM for both",
        errno_name(res),
        errno_name(aux)
    );
    let x = setattr(agent, abi::SCHED_GHOST, agent_nice + 3, 0);
    ensure!(
        x == libc::EPERM,
        "sched_setattr(agent, SCHED_GHOST, nice): {}, want EPERM",
        errno_name(x)
    );
    let x = set_policy(agent, abi::SCHED_GHOST);
    ensure!(
        x == Err(libc::EPERM),
        "sched_setscheduler(agent, SCHED_GHOST): {x:?}, want EPERM"
    );
    figures::ops(4);
    ensure!(
        nice_of(agent) == agent_nice,
        "the agent's nice {} after the refusals, was {agent_nice}",
        nice_of(agent)
    );
    let policy = sys::sched_policy(agent);
    ensure!(
        policy == abi::SCHED_GHOST | libc::SCHED_RESET_ON_FORK,
        "the agent's policy {policy:#x} after the refusals"
    );
    ensure!(prio() == p0, "a TASK_PRIORITY_CHANGED for the agent");
    ensure!(rig.progresses(0), "the task did not keep running");
    rig.finish(&[(0, t)])
}

// ---------------------------------------------------------------------------
// NUMA.

/// NUMA (CONFIG_NUMA=y, one node): `/sys/devices/system/node/node0`
/// exists, `node/online` and `node/possible` list node 0, and node 0's
/// `cpulist` covers exactly the online CPUs (ghOSt's topology reads it).
fn numa_node0() -> Result<(), String> {
    let read = |p: &str| std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}"));
    let list = |p: &str| -> Result<Vec<usize>, String> {
        let s = read(p)?;
        let set = ghost::cpus::CpuSet::parse(s.trim()).map_err(|e| format!("{p}: {e}"))?;
        Ok(set.iter().collect())
    };
    let node = "/sys/devices/system/node";
    let md =
        std::fs::metadata(format!("{node}/node0")).map_err(|e| format!("{node}/node0: {e}"))?;
    ensure!(md.is_dir(), "{node}/node0 is not a directory");
    for f in ["online", "possible"] {
        let nodes = list(&format!("{node}/{f}"))?;
        ensure!(nodes == [0], "{node}/{f} lists nodes {nodes:?}, want [0]");
    }
    let cpus = list(&format!("{node}/node0/cpulist"))?;
    let online = list("/sys/devices/system/cpu/online")?;
    ensure!(!online.is_empty(), "no online CPU");
    ensure!(
        cpus == online,
        "node0/cpulist {cpus:?}, online CPUs {online:?}"
    );
    for cpu in &online {
        let link = format!("/sys/devices/system/cpu/cpu{cpu}/node0");
        ensure!(
            std::fs::symlink_metadata(&link).is_ok(),
            "{link} is missing"
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Commits.

/// ghOSt's commit semantics (`_ghost_commit_txn` and its ioctl), with the
/// remote transactions committed in the call (`COMMIT_AT_TXN_COMMIT`):
///
/// - a failed transaction on another CPU in the same `COMMIT_TXN` call
///   poisons the committing agent's own CPU's transaction (`POISONED`), and
///   only a failure does;
/// - `INC_AGENT_BARRIER_ON_FAILURE` bumps the target CPU's agent barrier
///   when the commit fails, and without the flag a failure leaves it;
/// - a mask of 4096 bytes is accepted (cut, not EINVAL);
/// - committing the task that already runs on that CPU with
///   `ALLOW_TASK_ONCPU` is `COMPLETE` and the task keeps running, no
///   TASK_PREEMPT (without the flag: `TARGET_ONCPU`);
/// - gtid 0 on a remote CPU where a ghost task runs is `COMPLETE` and takes
///   the task off (TASK_PREEMPT; it stays runnable and off the CPU);
/// - a thread that is no agent may call `COMMIT_TXN` (0), but a task (or
///   gtid 0) transaction of its ends `NOT_PERMITTED` and nothing runs.
fn commit_semantics() -> Result<(), String> {
    let rig = rig(195)?;
    let t = off_c1(&rig, || commits(&rig))?;
    rig.r.auto.store(3, SeqCst);
    rig.finish(&[(0, t)])
}

fn commits(rig: &RigUp) -> Result<i32, String> {
    let r = rig.r;
    let (id, c1) = (rig.id, rig.c1);
    let obs = observe(id)?;
    let at_commit = abi::COMMIT_AT_TXN_COMMIT;
    // Every check runs; the failures are reported together.
    let mut wrong = Vec::new();

    // Poisoning: the home CPU's transaction after a failed remote one.
    r.commit_flags.store(u32::from(at_commit), SeqCst);
    let home = rig.command(OP_COMMIT_WITH_HOME, c1, NO_TASK, 0, 0)?;
    let remote = r.aux.load(SeqCst);
    let ok_home = rig.command(OP_COMMIT_WITH_HOME, c1, abi::GHOST_AGENT_GTID, 0, 0)?;
    let ok_remote = r.aux.load(SeqCst);
    r.commit_flags.store(0, SeqCst);
    expect!(
        wrong,
        remote == abi::GHOST_TXN_TARGET_NOT_FOUND && home == abi::GHOST_TXN_POISONED,
        "one COMMIT_TXN, remote txn of no task: remote {}, home {}; want TARGET_NOT_FOUND \
         and POISONED",
        state_name(remote),
        state_name(home)
    );
    expect!(
        wrong,
        ok_remote == abi::GHOST_TXN_COMPLETE && ok_home == abi::GHOST_TXN_COMPLETE,
        "one COMMIT_TXN, remote ping: remote {}, home {}; want COMPLETE for both",
        state_name(ok_remote),
        state_name(ok_home)
    );

    // The agent barrier of c1 on a failed commit, with and without
    // INC_AGENT_BARRIER_ON_FAILURE. Other events may bump it too: with
    // the flag every try must have moved it, without it one try of ten
    // must have left it.
    let agent_word = obs
        .sw_info(abi::GHOST_AGENT, c1 as u64)
        .map_err(|x| format!("SW_GET_INFO(GHOST_AGENT, {c1}): {}", errno_name(x)))?
        .index;
    r.barrier.store(0, SeqCst);
    let failed_commit = |flags: u8| -> Result<(i32, u32), String> {
        let before = obs.sw_barrier(agent_word);
        let s = commit_with(rig, NO_TASK, flags | at_commit, GIVEN)?;
        Ok((s, obs.sw_barrier(agent_word).wrapping_sub(before)))
    };
    let mut with_flag = Vec::new();
    for _ in 0..5 {
        with_flag.push(failed_commit(abi::INC_AGENT_BARRIER_ON_FAILURE)?);
    }
    let mut without_flag = Vec::new();
    for _ in 0..10 {
        let (s, moved) = failed_commit(0)?;
        without_flag.push((s, moved));
        if moved == 0 {
            break;
        }
    }
    let not_found = |v: &[(i32, u32)]| v.iter().all(|&(s, _)| s == abi::GHOST_TXN_TARGET_NOT_FOUND);
    expect!(
        wrong,
        not_found(&with_flag) && not_found(&without_flag),
        "commits of no task: {:?}, want TARGET_NOT_FOUND",
        with_flag
            .iter()
            .chain(&without_flag)
            .map(|&(s, _)| state_name(s))
            .collect::<Vec<_>>()
    );
    expect!(
        wrong,
        with_flag.iter().all(|&(_, moved)| moved >= 1),
        "failed commits with INC_AGENT_BARRIER_ON_FAILURE moved the agent barrier of CPU \
         {c1} by {:?}, want at least 1 each",
        with_flag.iter().map(|m| m.1).collect::<Vec<_>>()
    );
    expect!(
        wrong,
        without_flag.last().is_some_and(|m| m.1 == 0),
        "failed commits without INC_AGENT_BARRIER_ON_FAILURE moved the agent barrier of \
         CPU {c1} every time, by {:?}",
        without_flag.iter().map(|m| m.1).collect::<Vec<_>>()
    );

    // A 4096-byte mask.
    let res = rig.command(OP_COMMIT_MASK_LEN, c1, 4096, 0, 0)?;
    let s = r.aux.load(SeqCst);
    expect!(
        wrong,
        res == 0 && s == abi::GHOST_TXN_COMPLETE,
        "COMMIT_TXN with mask_len 4096: {} (txn {}), want 0 and COMPLETE",
        if res < 0 {
            errno_name(-res).to_string()
        } else {
            res.to_string()
        },
        state_name(s)
    );
    figures::ops(20);

    // A task running on c1.
    r.auto.store(1, SeqCst);
    let t = start_task(rig)?;
    ensure!(rig.progresses(0), "the task did not run");
    let gtid = sys::gtid_of(t);
    let word = obs
        .sw_info(abi::GHOST_TASK, gtid as u64)
        .map_err(|x| format!("SW_GET_INFO of the task: {}", errno_name(x)))?
        .index;
    let preempts = || rig.a_count(abi::MSG_TASK_PREEMPT);

    // ALLOW_TASK_ONCPU on the task that runs there: no message about the
    // task (its barrier stays), it stays ONCPU and keeps running. A CFS
    // task may take c1 for a moment at any time (a TASK_PREEMPT that is
    // not the commit's): tries of at least 30 ms each (until the hang cap:
    // on a loaded machine a CFS task comes more often), each proving first
    // that the task was on the CPU (TARGET_ONCPU without the flag).
    let mut tries = Vec::new();
    let mut kept = false;
    let mut try_once = || -> Result<bool, String> {
        ensure!(rig.progresses(0), "the task did not run again");
        let without = commit_with(rig, gtid, at_commit, FRESH)?;
        let b0 = obs.sw_word(word).0;
        let with = commit_with(rig, gtid, abi::ALLOW_TASK_ONCPU | at_commit, FRESH)?;
        let w = r.works[0].load(SeqCst);
        std::thread::sleep(Duration::from_millis(30));
        let ran = wait_for(30, || r.works[0].load(SeqCst) > w);
        let (b1, flags, _) = obs.sw_word(word);
        let quiet = b1 == b0 && flags & abi::GHOST_SW_TASK_ONCPU != 0;
        tries.push(format!(
            "{} then {}, {} messages, flags {flags:#x}, ran {ran}",
            state_name(without),
            state_name(with),
            b1.wrapping_sub(b0)
        ));
        // Not a passing circumstance: the commit itself is refused. A CFS
        // task runnable on c1 (CPU_UNAVAIL) is one: try again.
        let refused = ![
            abi::GHOST_TXN_COMPLETE,
            abi::GHOST_TXN_TARGET_STALE,
            abi::GHOST_TXN_CPU_UNAVAIL,
        ]
        .contains(&with);
        kept = without == abi::GHOST_TXN_TARGET_ONCPU
            && with == abi::GHOST_TXN_COMPLETE
            && quiet
            && ran;
        Ok(refused || kept)
    };
    let mut err = None;
    wait_for(1000, || {
        try_once().unwrap_or_else(|e| {
            err = Some(e);
            true
        })
    });
    if let Some(e) = err {
        return Err(e);
    }
    expect!(
        wrong,
        kept,
        "the running task committed with ALLOW_TASK_ONCPU did not keep its CPU \
         quietly (want COMPLETE, no message, still ONCPU and running); {} tries, the \
         last: {}; runnable on CPU {c1} now: {:?}",
        tries.len(),
        tries[tries.len().saturating_sub(10)..].join("; "),
        runnable_threads_on(c1)
    );

    // Unschedule: gtid 0 on c1, nothing running the task afterwards. It
    // runs there first (no CFS task took it off since it last ran).
    r.auto.store(0, SeqCst);
    // Committed again until it is seen running (on a busy host the task
    // may need several commits first): the hang cap.
    let mut err = None;
    let running = wait_for(10_000, || {
        let w = r.works[0].load(SeqCst);
        std::thread::sleep(Duration::from_millis(20));
        if obs.sw_word(word).1 & abi::GHOST_SW_TASK_ONCPU != 0 && r.works[0].load(SeqCst) > w {
            return true;
        }
        if let Err(e) = commit_with(rig, gtid, at_commit, FRESH) {
            err = Some(e);
            return true;
        }
        false
    });
    if let Some(e) = err {
        return Err(e);
    }
    ensure!(
        running,
        "the task does not run on CPU {c1} before gtid 0 is committed there"
    );
    let p0 = preempts();
    let s = commit_with(rig, 0, at_commit, FRESH)?;
    expect!(
        wrong,
        s == abi::GHOST_TXN_COMPLETE,
        "gtid 0 on CPU {c1}: {}, want COMPLETE",
        state_name(s)
    );
    let preempted = wait_for(10_000, || preempts() > p0);
    expect!(
        wrong,
        preempted,
        "no TASK_PREEMPT for the task gtid 0 was to take off CPU {c1} (waited 10 s)"
    );
    std::thread::sleep(Duration::from_millis(50));
    let w = r.works[0].load(SeqCst);
    std::thread::sleep(Duration::from_millis(300));
    let ran = r.works[0].load(SeqCst) - w;
    let flags = obs.sw_word(word).1;
    expect!(
        wrong,
        ran == 0
            && flags & abi::GHOST_SW_TASK_RUNNABLE != 0
            && flags & abi::GHOST_SW_TASK_ONCPU == 0,
        "after gtid 0 on its CPU the task ran {ran} iterations in 300 ms, its word {flags:#x} \
         (want none, RUNNABLE and not ONCPU)"
    );

    // A thread that is no agent (this one): the call returns 0, each
    // transaction ends NOT_PERMITTED, and the task stays off.
    if ran == 0 {
        for (what, g) in [("the task", gtid), ("gtid 0", 0)] {
            let barrier = obs.sw_word(word).0;
            obs.fill(c1, &txn(g, at_commit, barrier));
            let res = crate::harness::commit_txns(&obs.ctl, &[c1], false);
            let s = final_state(&obs, c1);
            figures::ops(1);
            expect!(
                wrong,
                res == Ok(0) && s == abi::GHOST_TXN_NOT_PERMITTED,
                "COMMIT_TXN of {what} by a non-agent: {res:?}, txn {}; want Ok(0) and \
                 NOT_PERMITTED",
                state_name(s)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
        let ran = r.works[0].load(SeqCst) - w;
        expect!(
            wrong,
            ran == 0,
            "the task ran {ran} iterations after a non-agent's commits"
        );
    }
    drop(obs);
    if !wrong.is_empty() {
        // The task is the rig's to stop (the suite's cleanup kills it).
        return Err(wrong.join("; "));
    }
    Ok(t)
}

// ---------------------------------------------------------------------------
// tasks.

/// `tasks` of an enclave refuses, with EPERM, the pid of a task of
/// another enclave and the pid of an agent (of this enclave or another):
/// nothing moves. A task already in the enclave is accepted again (0).
fn tasks_join_eperm() -> Result<(), String> {
    let rig = rig(196)?;
    let r = rig.r;
    r.auto.store(3, SeqCst);
    let t = start_task(&rig)?;
    ensure!(rig.progresses(0), "the task did not run");
    let other = 197;
    create_enclave(&format!("create {other} 91"))?;
    sys::write_once(&path(other, "ctl"), b"create sw_region 0 0")
        .map_err(|x| format!("enclave_{other} sw_region: {}", errno_name(x)))?;
    let child = sys::fork_child(sys::sleep_until_killed)?;
    let res = tasks_probes(&rig, other, child, t);
    let gone = sys::write_once(&path(other, "ctl"), b"destroy");
    sys::kill(child, libc::SIGKILL);
    sys::wait_child(child)?;
    res?;
    gone.map_err(|x| format!("destroy enclave_{other}: {}", errno_name(x)))?;
    figures::returned(1);
    rig.finish(&[(0, t)])
}

fn tasks_probes(rig: &RigUp, other: u64, child: i32, t: i32) -> Result<(), String> {
    ensure!(
        wait_for(5000, || std::fs::read_to_string(format!(
            "/proc/{child}/stat"
        ))
        .is_ok_and(|s| s.split(' ').nth(2) == Some("S"))),
        "the child did not go to sleep"
    );
    sys::write_once(&path(other, "tasks"), child.to_string().as_bytes())
        .map_err(|x| format!("joining enclave_{other}: {}", errno_name(x)))?;
    figures::entered(1);
    let agents = rig.agents;
    let sleeper = rig.r.b_tid.load(SeqCst);
    let (me, eperm) = (rig.id, libc::EPERM);
    let wrong = write_cases(&[
        (
            me,
            "tasks",
            child.to_string(),
            eperm,
            "a task of another enclave",
        ),
        (
            me,
            "tasks",
            agents.to_string(),
            eperm,
            "an agent of this enclave",
        ),
        (
            me,
            "tasks",
            sleeper.to_string(),
            eperm,
            "an agent thread of this enclave",
        ),
        (
            other,
            "tasks",
            agents.to_string(),
            eperm,
            "an agent of another enclave",
        ),
        (
            me,
            "tasks",
            t.to_string(),
            0,
            "a task already in this enclave",
        ),
    ]);
    ensure!(wrong.is_empty(), "{}", wrong.join("; "));
    let listed = |e: u64| -> Result<Vec<i32>, String> {
        let s = std::fs::read_to_string(path(e, "tasks")).map_err(|x| x.to_string())?;
        Ok(s.split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect())
    };
    let (mine, theirs) = (listed(rig.id)?, listed(other)?);
    ensure!(
        mine == [t] && theirs == [child],
        "tasks after the refusals: enclave_{} {mine:?} (want [{t}]), enclave_{other} \
         {theirs:?} (want [{child}])",
        rig.id
    );
    for (pid, want, what) in [
        (child, abi::SCHED_GHOST, "the other enclave's task"),
        (
            agents,
            abi::SCHED_GHOST | libc::SCHED_RESET_ON_FORK,
            "the agent",
        ),
        (
            sleeper,
            abi::SCHED_GHOST | libc::SCHED_RESET_ON_FORK,
            "the agent thread",
        ),
        (t, abi::SCHED_GHOST, "the task"),
    ] {
        let p = sys::sched_policy(pid);
        ensure!(p == want, "{what}: policy {p:#x} after the refusals");
    }
    ensure!(rig.progresses(0), "the task stopped running");
    Ok(())
}

// ---------------------------------------------------------------------------
// become agent.

/// Shared with the probing child of [`become_agent_errno_order`].
#[repr(C)]
struct Probe {
    /// 1: the checks without agents done; 2: agents up (the test); 3: all
    /// done. A setup failure: negative.
    step: AtomicI32,
    out: [AtomicI32; 16],
}

/// `become agent` requests that are wrong in several ways at once fail
/// with the first errno of ghOSt's order: EPERM (no CAP_SYS_NICE), EINVAL
/// (a CPU number of `nr_cpu_ids` or more), EBADF (a descriptor that is not
/// a queue), EBUSY (the CPU has an agent), ENODEV (a CPU that is not the
/// enclave's), ENXIO (a queue of another enclave). The refused thread
/// stays as it was (CFS, every CPU).
fn become_agent_errno_order() -> Result<(), String> {
    sys::ensure_ghostfs()?;
    let (nr, c0, c1) = two_cpus()?;
    let (a, b) = (198, 199);
    make_enclave(a, c1)?;
    make_enclave(b, c0)?;
    let sh: &'static Probe = sys::shared_page()?;
    for o in &sh.out {
        o.store(-1, SeqCst);
    }
    let prober = sys::fork_child(move || probe_become_agent(a, b, nr, sh))?;
    let r = (|| -> Result<(Vec<i32>, i32, i32), String> {
        reached(&sh.step, 1, "the prober's checks without agents")?;
        // Agents: A's on c1, B's on c0.
        let ea = attach(a, c1)?;
        let agent_a = start_agent(a, &ea, c1)?;
        let eb = attach(b, c0)?;
        let agent_b = start_agent(b, &eb, c0)?;
        sh.step.store(2, SeqCst);
        reached(&sh.step, 3, "the prober's checks with agents")?;
        Ok((
            sh.out.iter().map(|o| o.load(SeqCst)).collect(),
            agent_a,
            agent_b,
        ))
    })();
    let agents = r.as_ref().map_or(vec![], |&(_, a, b)| vec![a, b]);
    let reaped = destroy_and_reap(&[a, b], &agents);
    let exit = sys::wait_child(prober)?;
    let (o, _, _) = r?;
    reaped?;
    ensure!(exit == Exit::Code(0), "the prober ended {exit:?}");
    figures::ops(10);
    let eperm = libc::EPERM;
    let want = [
        (0, eperm, "no CAP_SYS_NICE, CPU nr_cpu_ids, no queue fd"),
        (1, libc::EINVAL, "CPU nr_cpu_ids, no queue fd"),
        (2, libc::EBADF, "no queue fd, CPU not the enclave's"),
        (
            3,
            libc::ENODEV,
            "CPU not the enclave's, queue of another enclave",
        ),
        (4, libc::ENXIO, "queue of another enclave"),
        (5, eperm, "no CAP_SYS_NICE, CPU with an agent"),
        (6, libc::EBADF, "no queue fd, CPU with an agent"),
        (
            7,
            libc::EBUSY,
            "CPU with another enclave's agent, not the enclave's, its queue",
        ),
        (
            8,
            libc::EBUSY,
            "CPU with another enclave's agent, not the enclave's",
        ),
        (
            9,
            libc::EBUSY,
            "CPU with an agent, queue of another enclave",
        ),
        (10, libc::SCHED_OTHER, "policy after the refusals"),
        (11, nr as i32, "CPUs allowed after the refusals"),
    ];
    let wrong = mismatches(&o, &want);
    ensure!(wrong.is_empty(), "{}", wrong.join("; "));
    Ok(())
}

/// The prober: writes `become agent` requests to enclave `a`'s `ctl`
/// (enclave `b` owns `c0`, `a` owns `c1`), before and after the test starts
/// agents on both CPUs; records each errno in `sh.out`.
fn probe_become_agent(a: u64, b: u64, nr: usize, sh: &Probe) -> i32 {
    let (c0, c1) = (0, nr - 1);
    let fail = |step: i32| {
        sh.step.store(step, SeqCst);
        1
    };
    let Ok(ctl) = open_rw(&path(a, "ctl")) else {
        return fail(-1);
    };
    let Ok(ea) = attach(a, c1) else {
        return fail(-2);
    };
    let Ok(ctl_b) = open_rw(&path(b, "ctl")) else {
        return fail(-3);
    };
    let Ok((qb, _)) = create_queue(&ctl_b, 64, -1, 0) else {
        return fail(-4);
    };
    let (qa, qb, bad) = (ea.queue.as_raw_fd(), qb.as_raw_fd(), ctl.as_raw_fd());
    let out = |i: usize, v: i32| sh.out[i].store(v, SeqCst);
    let try_ = |cpu: usize, q: i32| write_errno(&ctl, &format!("become agent {cpu} {q}"));
    // Capabilities are per thread.
    let without_nice = |cpu: usize, q: i32| {
        std::thread::scope(|s| {
            s.spawn(|| {
                if sys::drop_caps(&[sys::CAP_SYS_NICE]).is_err() {
                    return -2;
                }
                try_(cpu, q)
            })
            .join()
            .unwrap_or(-3)
        })
    };
    out(0, without_nice(nr, bad));
    out(1, try_(nr, bad));
    out(2, try_(c0, bad));
    out(3, try_(c0, qb));
    out(4, try_(c1, qb));
    sh.step.store(1, SeqCst);
    if !wait_for(20_000, || sh.step.load(SeqCst) == 2) {
        return fail(-5);
    }
    out(5, without_nice(c1, qa));
    out(6, try_(c1, bad));
    out(7, try_(c0, qb));
    out(8, try_(c0, qa));
    out(9, try_(c1, qb));
    out(10, sys::sched_policy(0));
    let allowed = sys::affinity_count(0);
    out(11, allowed);
    sh.step.store(3, SeqCst);
    0
}

// ---------------------------------------------------------------------------
// cpulist.

/// Puts CPU `cpu` back online when dropped.
struct Online(usize);

impl Drop for Online {
    fn drop(&mut self) {
        let _ = sys::write_once(
            &format!("/sys/devices/system/cpu/cpu{}/online", self.0),
            b"1",
        );
    }
}

/// `cpulist` writes wrong in several ways at once fail with the first errno
/// of ghOSt's order (registry.rs `set_cpus`): a CPU ≥ `nr_cpu_ids` (ERANGE,
/// the parse) before taking away a CPU that has an agent (EEXIST), before
/// adding an offline CPU (ENODEV), before adding another enclave's CPU
/// (EBUSY); each refused write changes nothing.
fn cpulist_errno_order() -> Result<(), String> {
    sys::ensure_ghostfs()?;
    let (nr, c0, c1) = two_cpus()?;
    let (a, b) = (201, 202);
    make_enclave(a, c0)?;
    let e = attach(a, c0)?;
    let agent = start_agent(a, &e, c0)?;
    create_enclave(&format!("create {b} 91"))?;
    sys::write_once(&path(b, "cpulist"), format!("{c1}").as_bytes())
        .map_err(|x| format!("enclave_{b} cpulist {c1}: {}", errno_name(x)))?;
    let res = cpulist_cases(a, b, nr, c0, c1);
    let reaped = destroy_and_reap(&[a, b], &[agent]);
    res.and(reaped)
}

fn cpulist_cases(a: u64, b: u64, nr: usize, c0: usize, c1: usize) -> Result<(), String> {
    let cpus = |id: u64| {
        std::fs::read_to_string(path(id, "cpulist"))
            .map_or_else(|x| x.to_string(), |s| s.trim().to_string())
    };
    // Each case refused, and nothing changed.
    let refused = |when: &str, cases: &[(u64, &str, String, i32, &str)]| {
        let before = (cpus(a), cpus(b));
        let wrong = write_cases(cases);
        ensure!(wrong.is_empty(), "{when}: {}", wrong.join("; "));
        let after = (cpus(a), cpus(b));
        ensure!(
            after == before,
            "{when}: cpulists after the refusals {after:?}, were {before:?}"
        );
        Ok(())
    };
    let (one, both, c0s) = (format!("{c1}"), format!("{c0},{c1}"), format!("{c0}"));
    let list = "cpulist";
    refused(
        &format!("CPU {c1} in enclave_{b}"),
        &[
            (
                a,
                list,
                format!("{nr}"),
                libc::ERANGE,
                "CPU nr_cpu_ids, the agent's CPU taken away",
            ),
            (
                a,
                list,
                one.clone(),
                libc::EEXIST,
                "the agent's CPU taken away, another enclave's added",
            ),
            (
                a,
                list,
                "\n".into(),
                libc::EEXIST,
                "the agent's CPU taken away",
            ),
            (
                a,
                list,
                both.clone(),
                libc::EBUSY,
                "another enclave's CPU added",
            ),
        ],
    )?;
    // c1 free, then offline.
    sys::write_once(&path(b, "cpulist"), b"\n")
        .map_err(|x| format!("enclave_{b} cpulist empty: {}", errno_name(x)))?;
    let online = format!("/sys/devices/system/cpu/cpu{c1}/online");
    sys::write_once(&online, b"0").map_err(|x| format!("CPU {c1} offline: {}", errno_name(x)))?;
    let guard = Online(c1);
    let res = refused(
        &format!("CPU {c1} offline"),
        &[
            (
                a,
                list,
                one.clone(),
                libc::EEXIST,
                "the agent's CPU taken away, an offline CPU added",
            ),
            (a, list, both.clone(), libc::ENODEV, "an offline CPU added"),
            (
                b,
                list,
                both,
                libc::ENODEV,
                "an offline CPU and another enclave's added",
            ),
            (b, list, c0s, libc::EBUSY, "another enclave's CPU added"),
        ],
    );
    drop(guard);
    ensure!(
        std::fs::read_to_string(&online).is_ok_and(|s| s.trim() == "1"),
        "CPU {c1} did not come back online"
    );
    res?;
    sys::write_once(&path(b, "cpulist"), one.as_bytes())
        .map_err(|x| format!("enclave_{b} cpulist {c1} again: {}", errno_name(x)))?;
    Ok(())
}

// ---------------------------------------------------------------------------
// The agent's status word.

/// Shared with the sampling agent of [`agent_word_flags`].
#[repr(C)]
struct Samples {
    up: AtomicI32,
    /// What the test is doing (see [`word_flags`]); the agent counts its
    /// samples by phase.
    phase: AtomicU32,
    /// 0: the agent sleeps 1 ms between samples; 1: it only yields
    /// (`sched_yield`), but naps 1 ms every 200 samples (per-CPU kernel
    /// threads that woke meanwhile get the CPU); 2: it only yields.
    spin: AtomicU32,
    samples: [AtomicU32; 8],
    boost: [AtomicU32; 8],
    avail: [AtomicU32; 8],
    /// Samples with BOOST_PRIO clear and CPU_AVAIL set.
    free: [AtomicU32; 8],
    /// The CFS task: it ran on the agent's CPU; stop.
    hog_on: AtomicU32,
    hog_stop: AtomicU32,
}

/// The agent of `cpu`: gives its CPU away, sleeping a millisecond outside
/// `ghost_run` or (see `spin`) only yielding, and after each time it is
/// picked again samples the flags of its own status word; a sample counts
/// for the test's phase if the phase was the same before it gave the CPU
/// away (so the pick happened during the phase).
fn sampling_agent(id: u64, cpu: usize, sh: &Samples) -> i32 {
    // (The test's affinity, inherited, excludes `cpu`.)
    let Ok(e) = sys::set_affinity(0, &[cpu])
        .map_err(|x| x.to_string())
        .and_then(|()| attach(id, cpu))
    else {
        sh.up.store(-1, SeqCst);
        return 1;
    };
    let a = match Agent::join(e, cpu) {
        Ok(a) => a,
        Err(x) => {
            sh.up.store(-1000 - x, SeqCst);
            return 1;
        }
    };
    sh.up.store(1, SeqCst);
    let mut n = 0u32;
    // Each round: gives the CPU away, then samples its word's flags.
    let step = |a: &Agent, _| {
        let phase = sh.phase.load(SeqCst) as usize;
        n = n.wrapping_add(1);
        match sh.spin.load(SeqCst) {
            2 => {
                sys::sched_yield();
            }
            1 if n % 200 != 0 => {
                sys::sched_yield();
            }
            _ => std::thread::sleep(Duration::from_millis(1)),
        }
        let f = a.e.sw_word(a.me).1;
        if sh.phase.load(SeqCst) as usize == phase && phase < sh.samples.len() {
            let boost = f & abi::GHOST_SW_BOOST_PRIO != 0;
            let avail = f & abi::GHOST_SW_CPU_AVAIL != 0;
            sh.samples[phase].fetch_add(1, SeqCst);
            sh.boost[phase].fetch_add(u32::from(boost), SeqCst);
            sh.avail[phase].fetch_add(u32::from(avail), SeqCst);
            sh.free[phase].fetch_add(u32::from(!boost && avail), SeqCst);
        }
        Next::Again
    };
    a.run(&mut script(|_| {}, step, |_| {}))
}

/// Whether `pid` is runnable (state R) on `cpu` (`/proc/<pid>/stat`).
fn runnable_on(pid: i32, cpu: usize) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        let f: Vec<&str> = s
            .rsplit_once(')')
            .map_or(vec![], |(_, r)| r.split_whitespace().collect());
        // Fields 3 (state) and 39 (processor).
        f.first() == Some(&"R") && f.get(36) == Some(&cpu.to_string().as_str())
    })
}

/// The agent's status-word flags (ghOSt): each time the agent is picked
/// while a CFS task is runnable on its CPU, its word has `BOOST_PRIO` set
/// ("yield soon") and `CPU_AVAIL` clear, whether the CFS task has had the
/// CPU (the agent sleeps between picks) or not (the agent only yields, so
/// the CFS task never runs); `CPU_AVAIL` stays clear while the CFS task
/// has the CPU. With the CPU free of other classes the agent sees
/// `BOOST_PRIO` clear and `CPU_AVAIL` set, before, between and after.
///
/// ghost-rs adds agent throttling (`kernel.ghost_agent_throttle_ms`,
/// conformance.rst): the phases above run with it off (ghOSt's behaviour);
/// turned on again, the CFS task queued behind the spinning agent gets the
/// CPU, and the agent runs again after it. Bad values of the sysctl are
/// refused (EINVAL) and leave it unchanged.
fn agent_word_flags() -> Result<(), String> {
    sys::ensure_ghostfs()?;
    let (nr, c0, c1) = two_cpus()?;
    let old = std::fs::read_to_string(THROTTLE)
        .map_err(|x| format!("{THROTTLE}: {x}"))?
        .trim()
        .to_string();
    for bad in ["-1", "60001", "x"] {
        let r = sys::write_once(THROTTLE, bad.as_bytes());
        ensure!(
            r == Err(libc::EINVAL),
            "{THROTTLE} <- {bad:?}: {r:?}, want EINVAL"
        );
    }
    let now = std::fs::read_to_string(THROTTLE).unwrap_or_default();
    ensure!(
        now.trim() == old,
        "{THROTTLE} is {now:?} after bad writes, was {old:?}"
    );
    // The test's own process stays off c1 (it is a task of another class).
    sys::set_affinity(0, &[c0]).map_err(|x| format!("affinity: {}", errno_name(x)))?;
    let res = word_flags(c1, &old);
    let all: Vec<usize> = (0..nr).collect();
    let _ = sys::set_affinity(0, &all);
    let _ = sys::write_once(THROTTLE, old.as_bytes());
    res
}

/// ghost-rs's agent throttling (see [`agent_word_flags`]).
const THROTTLE: &str = "/proc/sys/kernel/ghost_agent_throttle_ms";

/// Sets [`THROTTLE`] to `ms`.
fn set_throttle(ms: &str) -> Result<(), String> {
    sys::write_once(THROTTLE, ms.as_bytes())
        .map(|_| ())
        .map_err(|x| format!("{THROTTLE} <- {ms}: {}", errno_name(x)))
}

/// [`agent_word_flags`] in phases: 1 the CPU free; 2 a CFS task spinning
/// on it; 4 free again; 5 free, the agent spinning; 6 the agent spinning
/// and a CFS task queued behind it (3 and 7: transitions, not checked);
/// 7 throttling back on (`throttle_ms`, the sysctl's value before).
fn word_flags(c1: usize, throttle_ms: &str) -> Result<(), String> {
    let id = 203;
    make_enclave(id, c1)?;
    let sh: &'static Samples = sys::shared_page()?;
    let agent = sys::fork_child(move || sampling_agent(id, c1, sh))?;
    reached(&sh.up, 1, "the sampling agent")?;
    let obs = observe(id)?;
    let word = obs
        .sw_info(abi::GHOST_AGENT, c1 as u64)
        .map_err(|x| format!("SW_GET_INFO(GHOST_AGENT, {c1}): {}", errno_name(x)))?
        .index;
    let count = |a: &[AtomicU32; 8], p: usize| a[p].load(SeqCst);
    let summary = |p: usize| {
        format!(
            "{} samples, {} with BOOST_PRIO, {} with CPU_AVAIL",
            count(&sh.samples, p),
            count(&sh.boost, p),
            count(&sh.avail, p)
        )
    };
    // Phase `p` until 20 samples saw the CPU free (at most 20000 samples).
    let free_seen = |p: usize, what: &str| -> Result<(), String> {
        sh.phase.store(p as u32, SeqCst);
        let enough = || count(&sh.free, p) >= 20 || count(&sh.samples, p) >= 20_000;
        ensure!(
            wait_for(60_000, enough),
            "{what}: the agent took {} samples in 60 s",
            count(&sh.samples, p)
        );
        ensure!(
            count(&sh.free, p) >= 20,
            "{what}: {} samples with BOOST_PRIO clear and CPU_AVAIL set, want 20 ({}); \
             runnable on CPU {c1}: {:?}",
            count(&sh.free, p),
            summary(p),
            runnable_threads_on(c1)
        );
        Ok(())
    };
    // Phase `p` until the agent took 50 samples; then each must have
    // BOOST_PRIO and no CPU_AVAIL. Returns how often CPU_AVAIL was set in
    // `looks` looks from here meanwhile.
    let busy_seen = |p: usize, what: &str| -> Result<(u32, u32), String> {
        sh.phase.store(p as u32, SeqCst);
        let (mut looks, mut avail) = (0u32, 0u32);
        // A look every 2 ms, until the hang cap.
        wait_for(60_000, || {
            if count(&sh.samples, p) >= 50 {
                return true;
            }
            looks += 1;
            avail += u32::from(obs.sw_word(word).1 & abi::GHOST_SW_CPU_AVAIL != 0);
            false
        });
        sh.phase.store(p as u32 + 1, SeqCst);
        let (n, boost, agent_avail) = (
            count(&sh.samples, p),
            count(&sh.boost, p),
            count(&sh.avail, p),
        );
        ensure!(
            n >= 50,
            "{what}: the agent took {n} samples in {looks} looks"
        );
        ensure!(
            boost == n && agent_avail == 0,
            "{what}: of {n} samples of the agent, {boost} with BOOST_PRIO (want all) and \
             {agent_avail} with CPU_AVAIL (want none)"
        );
        Ok((looks, avail))
    };
    // A CFS task that spins on c1 until told to stop.
    let start_hog = || {
        sys::fork_child(move || {
            if sys::set_affinity(0, &[c1]).is_err() {
                return 1;
            }
            while sh.hog_stop.load(SeqCst) == 0 {
                if current_cpu() == c1 as i32 {
                    sh.hog_on.store(1, SeqCst);
                }
            }
            0
        })
    };
    let stop_hog = |hog: i32| -> Result<(), String> {
        sh.hog_stop.store(1, SeqCst);
        let exit = sys::wait_child(hog)?;
        ensure!(exit == Exit::Code(0), "the CFS task ended {exit:?}");
        sh.hog_stop.store(0, SeqCst);
        sh.hog_on.store(0, SeqCst);
        Ok(())
    };

    free_seen(1, "the CPU free of other classes")?;
    let hog = start_hog()?;
    let hogged = (|| {
        ensure!(
            wait_for(10_000, || sh.hog_on.load(SeqCst) != 0),
            "the CFS task did not run on CPU {c1}"
        );
        busy_seen(2, "a CFS task spinning on the CPU")
    })();
    stop_hog(hog)?;
    let (looks, outside_avail) = hogged?;
    ensure!(
        outside_avail == 0,
        "CPU_AVAIL set in {outside_avail} of {looks} looks while the CFS task had CPU {c1}"
    );
    free_seen(4, "the CPU free again")?;
    // The agent keeps its CPU: it only yields. A CFS task that wants the
    // CPU never gets it, and the agent is told so (ghOSt; ghost-rs with
    // agent throttling off).
    set_throttle("0")?;
    sh.spin.store(1, SeqCst);
    free_seen(5, "the agent spinning, the CPU free")?;
    sh.spin.store(2, SeqCst);
    let hog = start_hog()?;
    let queued = (|| {
        ensure!(
            wait_for(10_000, || runnable_on(hog, c1)),
            "the CFS task is not runnable on CPU {c1}: {:?}",
            std::fs::read_to_string(format!("/proc/{hog}/stat"))
        );
        busy_seen(6, "the agent spinning, a CFS task queued behind it")?;
        ensure!(
            sh.hog_on.load(SeqCst) == 0,
            "the CFS task ran on CPU {c1} while its agent spun"
        );
        // Throttling on: the CFS task gets the CPU while the agent still
        // only yields, and the agent runs again after it (phase 7).
        set_throttle(throttle_ms)?;
        ensure!(
            wait_for(60_000, || sh.hog_on.load(SeqCst) != 0),
            "the CFS task did not run on CPU {c1} behind the spinning agent with \
             {THROTTLE} {throttle_ms} (60 s)"
        );
        let seen = count(&sh.samples, 7);
        ensure!(
            wait_for(60_000, || count(&sh.samples, 7) > seen),
            "the throttled agent did not run again on CPU {c1} ({seen} samples, 60 s)"
        );
        Ok(())
    })();
    // The agent sleeps again, so that the CFS task runs (and stops).
    sh.spin.store(0, SeqCst);
    stop_hog(hog)?;
    queued?;
    drop(obs);
    destroy_and_reap(&[id], &[agent])
}

// ---------------------------------------------------------------------------
// SW_GET_INFO and GET_CPU_TIME.

/// `SW_GET_INFO`: `GHOST_AGENT` for an online CPU of the enclave that has
/// no agent is EINVAL (another enclave's CPU: ENODEV); `GHOST_TASK` with
/// gtid 0 is the caller's own word: an agent's (the one `GHOST_AGENT` of
/// its CPU names) and a task's (the one its gtid names); a caller that is
/// not in the enclave: ENOENT. `GET_CPU_TIME` with gtid 0 is the caller's
/// CPU time (between two `CLOCK_THREAD_CPUTIME_ID` reads around it, and
/// growing), for a ghost task too; of no task: ESRCH.
fn sw_info_and_cpu_time() -> Result<(), String> {
    sys::ensure_ghostfs()?;
    let (_, c0, c1) = two_cpus()?;
    // Every check runs; the failures are reported together.
    let mut wrong = Vec::new();
    // An enclave of c1 without an agent.
    let id = 205;
    make_enclave(id, c1)?;
    let obs = observe(id)?;
    let none = obs.sw_info(abi::GHOST_AGENT, c1 as u64);
    let elsewhere = obs.sw_info(abi::GHOST_AGENT, c0 as u64);
    drop(obs);
    sys::write_once(&path(id, "ctl"), b"destroy")
        .map_err(|x| format!("destroy: {}", errno_name(x)))?;
    expect!(
        wrong,
        none.as_ref().err() == Some(&libc::EINVAL),
        "SW_GET_INFO(GHOST_AGENT) of an enclave CPU without an agent: {none:?}, want EINVAL"
    );
    expect!(
        wrong,
        elsewhere.as_ref().err() == Some(&libc::ENODEV),
        "SW_GET_INFO(GHOST_AGENT) of a CPU not in the enclave: {elsewhere:?}, want ENODEV"
    );
    let rig = rig(204)?;
    let t = self_info(&rig, &mut wrong)?;
    rig.finish(&[(1, t)])?;
    ensure!(wrong.is_empty(), "{}", wrong.join("; "));
    Ok(())
}

/// What the task of [`self_info`] reports: `out[0]` its own word by gtid
/// 0, `out[1]` by its gtid, `out[2]` 1 if its `GET_CPU_TIME(0)` lay between
/// its thread CPU clock before and after, `out[3]` 1 if it grew.
fn info_task(id: u64, r: &Rig) -> i32 {
    let Ok(ctl) = open_rw(&path(id, "ctl")) else {
        return 2;
    };
    if sys::write_once(&path(id, "tasks"), b"0").is_err() {
        return 3;
    }
    let gtid = sys::gtid_of(sys::gettid());
    let index = |x: Result<abi::GhostSwInfo, i32>| x.map_or_else(|x| -x, |i| i.index as i32);
    r.out[0].store(index(sw_get_info(&ctl, abi::GHOST_TASK, 0)), SeqCst);
    r.out[1].store(
        index(sw_get_info(&ctl, abi::GHOST_TASK, gtid as u64)),
        SeqCst,
    );
    let before = thread_cpu_ns();
    let first = cpu_time(&ctl, 0).unwrap_or(0);
    let after = thread_cpu_ns();
    r.out[2].store(
        i32::from(first > 0 && before <= first && first <= after),
        SeqCst,
    );
    let spin_until = thread_cpu_ns() + 2_000_000;
    while thread_cpu_ns() < spin_until {
        std::hint::spin_loop();
    }
    let second = cpu_time(&ctl, 0).unwrap_or(0);
    r.out[3].store(i32::from(second > first), SeqCst);
    r.out[4].store(1, SeqCst);
    while r.stop[1].load(SeqCst) == 0 {
        r.works[1].fetch_add(1, SeqCst);
    }
    0
}

fn self_info(rig: &RigUp, wrong: &mut Vec<String>) -> Result<i32, String> {
    let r = rig.r;
    let id = rig.id;
    let obs = observe(id)?;
    // The commander, an agent: its own word by gtid 0.
    let by_zero = rig.command(OP_SELF_INFO, 0, 0, 0, 0)?;
    let by_cpu = r.aux.load(SeqCst);
    let outside = obs
        .sw_info(abi::GHOST_AGENT, rig.c0 as u64)
        .map(|i| i.index as i32);
    expect!(
        wrong,
        by_zero >= 0 && by_zero == by_cpu && outside == Ok(by_zero),
        "an agent's SW_GET_INFO(GHOST_TASK, 0): {by_zero}, (GHOST_AGENT, its CPU): {by_cpu}, \
         from outside: {outside:?}; want the same word"
    );
    // Not in the enclave: no word.
    let mine = obs.sw_info(abi::GHOST_TASK, 0);
    expect!(
        wrong,
        mine.as_ref().err() == Some(&libc::ENOENT),
        "SW_GET_INFO(GHOST_TASK, 0) of a thread outside the enclave: {mine:?}, want ENOENT"
    );
    // GET_CPU_TIME of this thread.
    let before = thread_cpu_ns();
    let first = cpu_time(&obs.ctl, 0);
    let after = thread_cpu_ns();
    expect!(
        wrong,
        first.is_ok_and(|t| t > 0 && before <= t && t <= after),
        "GET_CPU_TIME(0): {first:?} ns, the thread's CPU clock {before} before and {after} after"
    );
    let spin_until = thread_cpu_ns() + 2_000_000;
    while thread_cpu_ns() < spin_until {
        std::hint::spin_loop();
    }
    let second = cpu_time(&obs.ctl, 0);
    expect!(
        wrong,
        matches!((first, second), (Ok(a), Ok(b)) if b >= a + 2_000_000),
        "GET_CPU_TIME(0) {first:?} ns, then {second:?} ns after 2 ms of CPU"
    );
    let bogus = cpu_time(&obs.ctl, NO_TASK);
    expect!(
        wrong,
        bogus == Err(libc::ESRCH),
        "GET_CPU_TIME of no task: {bogus:?}, want ESRCH"
    );
    figures::ops(6);
    // A ghost task: the same from inside.
    r.auto.store(3, SeqCst);
    for o in &r.out {
        o.store(-1, SeqCst);
    }
    let t = sys::fork_child(move || info_task(id, r))?;
    figures::entered(1);
    ensure!(
        wait_for(20_000, || r.out[4].load(SeqCst) == 1),
        "the ghost task did not report (it ran {} iterations)",
        r.works[1].load(SeqCst)
    );
    let o: Vec<i32> = r.out.iter().map(|o| o.load(SeqCst)).collect();
    let gtid = sys::gtid_of(t);
    let word = obs
        .sw_info(abi::GHOST_TASK, gtid as u64)
        .map(|i| i.index as i32);
    expect!(
        wrong,
        o[0] >= 0 && o[0] == o[1] && Ok(o[0]) == word,
        "a ghost task's SW_GET_INFO(GHOST_TASK, 0): {}, by its gtid: {}, from outside: \
         {word:?}; want the same word",
        o[0],
        o[1]
    );
    expect!(
        wrong,
        o[2] == 1 && o[3] == 1,
        "a ghost task's GET_CPU_TIME(0): within its CPU clock {}, grew {}",
        o[2] == 1,
        o[3] == 1
    );
    let theirs = cpu_time(&obs.ctl, gtid);
    expect!(
        wrong,
        theirs.is_ok_and(|t| t >= 2_000_000),
        "GET_CPU_TIME of the task: {theirs:?} ns, want 2 ms or more"
    );
    drop(obs);
    Ok(t)
}
