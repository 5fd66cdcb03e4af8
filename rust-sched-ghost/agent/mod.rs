// SPDX-License-Identifier: GPL-2.0

//! Agents: becoming one, blocking in `ghost_run`, being woken, dying.
//!
//! An agent is a thread in `ghost_sched_class`, pinned to its CPU, that
//! `ghost_agent_sched_class` picks ahead of every other class whenever it is
//! runnable. It gives its CPU away by sleeping (`TASK_INTERRUPTIBLE`) in
//! `ghost_run` or in a local commit; anything that concerns it (a message on
//! a queue that wakes it, a ping, an `RTLA_*` edge) bumps its CPU's agent
//! barrier and sets `should_wake`; if the agent sleeps, it is woken
//! directly by a waker that holds no runqueue lock ([`wake_unlocked`]), and
//! otherwise from its CPU's irq_work ([`wake`]): messages are produced with
//! runqueue locks held, where `try_to_wake_up()` cannot be called. The rule
//! in full: [`percpu`].
//!
//! Lost wakeups cannot happen: the agent clears `should_wake` before it
//! compares the barrier it was given (a wake after that comparison sets the
//! flag again), it says it sleeps (`blocked_in_run`) before it looks at the
//! flag, while a waker sets the flag before it looks at `blocked_in_run`,
//! and it sets its task state before it looks at the flag (a wake after
//! that makes it runnable again).

pub mod percpu;
pub mod throttle;

pub use percpu::{block, current_cpu, wake, wake_unlocked, wake_work};

use crate::agent::percpu::{GhostRq, LockedGhostRq};
use crate::cpu_data::state;
use crate::enclave::Enclave;
use crate::gtask::GhostTask;
use crate::members::{set_policy, stage, unstage};
use crate::msgs;
use crate::queue::Queue;
use crate::sys::cpu::cpu_online;
use crate::sys::cred::{capable, CAP_SYS_NICE};
use crate::sys::rq::{Rq, RqGuard, TaskPtr};
use crate::sys::task::{TaskHandle, SCHED_FLAG_RESET_ON_FORK, SCHED_GHOST};
use crate::sys::time::now;
use core::sync::atomic::Ordering;
use kernel::prelude::*;
use kernel::sync::Arc;
use kernel::uapi;

/// Kills the agent `a` of `cpu` (destroy): `SIGKILL`, then a wake so that
/// it sees the signal. Process context, no runqueue lock held.
pub fn kill(a: &TaskHandle, cpu: i32) {
    a.as_ptr().kill();
    wake_unlocked(cpu);
}

/// `become agent <cpu> <qfd>` on enclave `e`: the calling thread becomes
/// the agent of `cpu`, with its CPU messages going to the queue `qfd` (-1:
/// the default queue). The checks run in ghOSt's order, so a request wrong
/// in several ways fails as it does there: `EPERM` without `CAP_SYS_NICE`;
/// `EINVAL` for a CPU number past `nr_cpu_ids`; `EBADF` for an fd that is
/// not a queue; `EBUSY` if the CPU has an agent; `ENODEV` if `cpu` is not
/// the enclave's (or is offline); `ENXIO` for no queue (or one of another
/// enclave); `EBUSY` if the caller is already in ghost; `EXDEV` while the
/// enclave is destroyed. May sleep.
pub fn become_agent(e: &Arc<Enclave>, cpu: u32, qfd: i32) -> Result {
    if !capable(CAP_SYS_NICE) {
        return Err(EPERM);
    }
    if cpu >= crate::sys::cpu::nr_cpu_ids() {
        return Err(EINVAL);
    }
    let cpu = i32::try_from(cpu).map_err(|_| EINVAL)?;
    let by_fd = if qfd == -1 {
        None
    } else {
        Some(Queue::from_fd(qfd)?)
    };
    let g = GhostRq::of(cpu).ok_or(EINVAL)?;
    if !g.claim_agent() {
        return Err(EBUSY);
    }
    // Checked under the claim, which stops `cpulist` from taking the CPU
    // away (see `Registry::set_cpus`).
    let q = match checked_queue(e, cpu, by_fd.as_deref()) {
        Ok(q) => q,
        Err(err) => {
            g.release_agent();
            return Err(err);
        }
    };
    let me = match TaskHandle::current() {
        Ok(me) => me,
        Err(err) => {
            g.release_agent();
            return Err(err);
        }
    };
    let p = me.as_ptr();
    if let Err(err) = stage(e, p, Some(cpu), Some(q)) {
        g.release_agent();
        return Err(err);
    }
    // Pinned in the kernel (cpusets cannot move an agent away).
    let r = p
        .pin_to_cpu(cpu)
        .and_then(|()| set_policy(p, SCHED_GHOST, SCHED_FLAG_RESET_ON_FORK));
    if let Err(err) = r {
        // Retiring the state releases the claim.
        unstage(p);
        return Err(err);
    }
    Ok(())
}

/// The queue of a new agent of `e`'s `cpu`: `by_fd`, or the enclave's
/// default. `ENODEV` if `cpu` is not `e`'s or is offline; `ENXIO` for no
/// queue or one of another enclave.
fn checked_queue<'a>(e: &'a Enclave, cpu: i32, by_fd: Option<&'a Queue>) -> Result<&'a Queue> {
    if !e.owns_cpu(cpu) || !cpu_online(cpu) {
        return Err(ENODEV);
    }
    // Every queue of `e` is kept by `e`, which the caller keeps alive.
    let q = match by_fd {
        Some(q) => q,
        None => e.default_queue().ok_or(ENXIO)?,
    };
    if !e.owns_queue(q) {
        return Err(ENXIO);
    }
    Ok(q)
}

/// The agent `p` of `rq`'s CPU enters the class (`switched_to`).
pub fn attach(rq: &Rq, g: LockedGhostRq<'_>, p: TaskPtr, gt: &GhostTask) {
    g.set_agent(Some(p), gt.sw_ptr());
    g.reset_agent_barrier();
    throttle::reset(rq);
    if g.avail() {
        g.agent_sw_flags(uapi::GHOST_SW_CPU_AVAIL, 0);
    }
    g.should_wake().store(false, Ordering::SeqCst);
    g.set_latched(None, 0);
    gt.enclave().agent_attached();
    // A transaction left by an earlier agent cannot be committed by it.
    if let Some(txn) = gt.enclave().cpu_data().txn(rq.cpu()) {
        if txn.cas_state(state::READY, state::NO_AGENT) {
            txn.complete(state::NO_AGENT, 0, 0);
        }
    }
}

/// The agent of `rq`'s CPU is gone (it died, or left the class): release
/// the latched task, reset the CPU's agent state, fail a pending
/// transaction with `NO_AGENT`. The enclave and its tasks stay, for a new
/// agent; meanwhile the enclave is orphaned and its tasks run in the
/// fallback (see [`crate::fallback`]) until an agent attaches, the
/// `agentless_timeout` destroys it, or `destroy`.
pub fn detach(rq: &Rq, g: LockedGhostRq<'_>, p: TaskPtr, gt: &GhostTask) {
    if g.agent() != Some(p) {
        return;
    }
    if let Some(l) = g.latched() {
        if let Some(lt) = GhostTask::of(rq, l) {
            let seq = g.next_cpu_seqnum();
            msgs::task::preempt(&lt, rq, l, seq, true);
        }
    }
    g.set_latched(None, 0);
    g.set_agent(None, None);
    g.reset_agent_barrier();
    throttle::reset(rq);
    g.blocked_in_run().store(false, Ordering::SeqCst);
    // Its tasks run in the fallback until a new agent attaches.
    gt.enclave().agent_gone(now());
    if let Some(txn) = gt.enclave().cpu_data().txn(rq.cpu()) {
        if txn.cas_state(state::READY, state::NO_AGENT) {
            txn.complete(state::NO_AGENT, 0, 0);
        }
    }
}

/// Run flags `ghost_run` accepts (ghOSt: only `RTLA_ON_IDLE`).
const RUN_SUPPORTED_FLAGS: u32 = uapi::RTLA_ON_IDLE;

/// `ghost_run()` and `GHOST_IOC_RUN`, with ghOSt's checks in ghOSt's order:
/// `EPERM` without `CAP_SYS_NICE`; `EINVAL` for a `run_cpu` that is not an
/// online CPU or for bad `run_flags` (only `RTLA_ON_IDLE`, and only with
/// gtid 0).
///
/// - gtid 0 (`GHOST_NULL_GTID`): a local yield. The caller must be an
///   agent and `run_cpu` its own CPU (`EINVAL`); it blocks until woken,
///   `ESTALE` if `agent_barrier` is stale.
/// - `GHOST_AGENT_GTID`: a ping of the agent of `run_cpu`, from any thread
///   of that agent's process (agent or not: ghOSt's library stops its agents
///   by pinging them from the main thread); `EINVAL` if the CPU has no
///   agent or the agent is another process's.
/// - Anything else: `EINVAL`.
pub fn run(
    gtid: i64,
    agent_barrier: u32,
    _task_barrier: u32,
    run_cpu: i32,
    run_flags: i32,
) -> Result {
    if !capable(CAP_SYS_NICE) {
        return Err(EPERM);
    }
    if !cpu_online(run_cpu) {
        return Err(EINVAL);
    }
    let flags = u32::try_from(run_flags).map_err(|_| EINVAL)?;
    if !crate::txn::run_flags_valid(gtid, flags, RUN_SUPPORTED_FLAGS) {
        return Err(EINVAL);
    }
    match gtid {
        0 => {
            let cpu = current_cpu().ok_or(EINVAL)?;
            if run_cpu != cpu {
                return Err(EINVAL);
            }
            let g = GhostRq::of(cpu).ok_or(EINVAL)?;
            if flags != 0 {
                // The agent asks to be woken when its CPU idles; a latch a
                // commit made meanwhile (even one a sync group holds) and
                // its own run flags stay as they are.
                let rq = RqGuard::lock(cpu).ok_or(EINVAL)?;
                rq.ghost().ok_or(EINVAL)?.add_run_flags(flags);
            }
            block(g, Some(agent_barrier))
        }
        g if g == i64::from(uapi::GHOST_AGENT_GTID) => {
            // An agent pinging itself is of its own process (no lock).
            let same_process = current_cpu() == Some(run_cpu) || {
                let _rq = RqGuard::lock(run_cpu).ok_or(EINVAL)?;
                let agent = GhostRq::of(run_cpu).and_then(|g| g.agent()).ok_or(EINVAL)?;
                Some(agent.tgid()) == TaskPtr::current().map(TaskPtr::tgid)
            };
            if !same_process {
                return Err(EINVAL);
            }
            // No runqueue lock held (the one above is dropped).
            wake_unlocked(run_cpu);
            Ok(())
        }
        _ => Err(EINVAL),
    }
}
