// SPDX-License-Identifier: GPL-2.0

//! Agents: becoming one, blocking in `ghost_run`, being woken, dying.
//!
//! An agent is a thread in `ghost_sched_class`, pinned to its CPU, that
//! `ghost_agent_sched_class` picks ahead of every other class whenever it is
//! runnable. It gives its CPU away by sleeping (`TASK_INTERRUPTIBLE`) in
//! `ghost_run` or in a local commit; anything that concerns it (a message on
//! a queue that wakes it, a ping, an `RTLA_*` edge) bumps its CPU's agent
//! barrier, sets `should_wake`, and queues the CPU's irq_work, whose handler
//! wakes the agent. The indirection is needed because messages are produced
//! with runqueue locks held, where `try_to_wake_up()` cannot be called.
//!
//! Lost wakeups cannot happen: the agent clears `should_wake` before it
//! compares the barrier it was given (a wake after that comparison sets the
//! flag again), and it sets its task state before it looks at the flag (a
//! wake after that makes it runnable again).

use crate::enclave::Enclave;
use crate::gtask::GhostTask;
use crate::queue::Queue;
use crate::rq::{cpu_online, this_cpu, GhostRq, Rq, RqGuard, TaskPtr};
use crate::sched::{set_policy, stage, unstage, SCHED_GHOST};
use crate::task::TaskHandle;
use core::sync::atomic::Ordering;
use kernel::bindings;
use kernel::prelude::*;
use kernel::sync::Arc;
use kernel::uapi;

/// Wakes the agent of `cpu`: bumps its barrier and has its CPU wake it.
/// Any context (rq locks may be held); never sleeps.
pub fn wake(cpu: i32) {
    let Some(g) = GhostRq::of(cpu) else {
        return;
    };
    g.bump_agent_barrier();
    g.should_wake().store(true, Ordering::SeqCst);
    if cpu_online(cpu) {
        // SAFETY: the irq_work is initialized at boot and lives for good;
        // `cpu` is online. Queueing an already pending work is a no-op.
        unsafe { bindings::irq_work_queue_on(g.wake_work(), cpu) };
    }
}

/// The irq_work handler: runs on the agent's CPU, in hard interrupt
/// context, and wakes the agent if it sleeps and a wake is still wanted.
///
/// # Safety
///
/// Called by the irq_work core with a work of a [`GhostRq`].
pub unsafe extern "C" fn wake_work(_w: *mut bindings::irq_work) {
    let Some(g) = GhostRq::of(this_cpu()) else {
        return;
    };
    // An interrupt handler is an RCU read-side section: the agent's memory
    // (RCU-freed) stays valid even if it exits meanwhile.
    if let Some(a) = g.agent() {
        // Only a wake still wanted: a commit since the `wake()` that queued
        // this has seen its messages and cleared `should_wake`. Waking the
        // agent anyway would preempt the task it just gave its CPU to, and
        // that TASK_PREEMPT would wake it again, for ever.
        if g.blocked_in_run().load(Ordering::SeqCst) && g.should_wake().load(Ordering::SeqCst) {
            // SAFETY: `a` is valid under RCU (see `GhostRq::agent`);
            // `wake_up_process` may be called from hard interrupts.
            unsafe { bindings::wake_up_process(a.as_raw()) };
        }
    }
}

/// Kills the agent `a` of `cpu` (destroy): `SIGKILL`, then a wake so that
/// it sees the signal.
pub fn kill(a: &TaskHandle, cpu: i32) {
    // SAFETY: `a` is a live task (the handle holds a reference).
    unsafe { bindings::send_sig(bindings::SIGKILL as i32, a.as_ptr().as_raw(), 1) };
    wake(cpu);
}

/// `become agent <cpu> <qfd>` on enclave `e`: the calling thread becomes
/// the agent of `cpu`, with its CPU messages going to the queue `qfd` (-1:
/// the default queue). `EPERM` without `CAP_SYS_NICE`; `ENODEV` if `cpu` is
/// not the enclave's; `ENXIO` for no queue (or one of another enclave);
/// `EBADF` for an fd that is not a queue; `EBUSY` if the CPU has an agent or
/// the caller is already in ghost; `EXDEV` while the enclave is destroyed.
/// May sleep.
pub fn become_agent(e: &Arc<Enclave>, cpu: u32, qfd: i32) -> Result {
    if !crate::ghostfs::capable(bindings::CAP_SYS_NICE) {
        return Err(EPERM);
    }
    let cpu = i32::try_from(cpu).map_err(|_| ENODEV)?;
    if !e.owns_cpu(cpu) || !cpu_online(cpu) {
        return Err(ENODEV);
    }
    // Every queue of `e` is kept by `e`, which the caller keeps alive.
    let by_fd: Arc<Queue>;
    let q: &Queue = if qfd == -1 {
        e.default_queue().ok_or(ENXIO)?
    } else {
        by_fd = Queue::from_fd(qfd)?;
        &by_fd
    };
    if !e.owns_queue(q) {
        return Err(ENXIO);
    }
    let me = TaskHandle::current()?;
    let p = me.as_ptr();
    let g = GhostRq::of(cpu).ok_or(ENODEV)?;
    if !g.claim_agent() {
        return Err(EBUSY);
    }
    // Again, now that the claim stops `cpulist` from taking the CPU away
    // (see `Registry::set_cpus`).
    if !e.owns_cpu(cpu) {
        g.release_agent();
        return Err(ENODEV);
    }
    if let Err(err) = stage(e, p, Some(cpu), Some(q)) {
        g.release_agent();
        return Err(err);
    }
    // Pinned in the kernel (cpusets cannot move an agent away).
    // SAFETY: `p` is the calling task; process context.
    let pinned = unsafe { bindings::ghost_pin_to_cpu(p.as_raw(), cpu) };
    let r = if pinned < 0 {
        Err(Error::from_errno(pinned))
    } else {
        set_policy(
            p,
            SCHED_GHOST,
            u64::from(bindings::SCHED_FLAG_RESET_ON_FORK),
        )
    };
    if let Err(err) = r {
        // Retiring the state releases the claim.
        unstage(p);
        return Err(err);
    }
    Ok(())
}

/// The agent `p` of `rq`'s CPU enters the class (`switched_to`).
pub fn attach(rq: &Rq, g: &GhostRq, p: TaskPtr, gt: &GhostTask) {
    g.set_agent(rq, Some(p), gt.sw_ptr());
    g.reset_agent_barrier();
    if g.avail(rq) {
        g.agent_sw_flags(uapi::GHOST_SW_CPU_AVAIL, 0);
    } else {
        g.agent_sw_flags(uapi::GHOST_SW_BOOST_PRIO, 0);
    }
    g.should_wake().store(false, Ordering::SeqCst);
    g.set_latched(rq, None, 0);
    // A transaction left by an earlier agent cannot be committed by it.
    if let Some(txn) = gt.enclave().cpu_data().txn(rq.cpu()) {
        if txn.cas_state(uapi::GHOST_TXN_READY as i32, uapi::GHOST_TXN_NO_AGENT) {
            txn.complete(uapi::GHOST_TXN_NO_AGENT, 0, 0);
        }
    }
}

/// The agent of `rq`'s CPU is gone (it died, or left the class): release
/// the latched task, reset the CPU's agent state, fail a pending
/// transaction with `NO_AGENT`. The enclave and its tasks stay, waiting for
/// a new agent, the watchdog or `destroy`.
pub fn detach(rq: &Rq, g: &GhostRq, p: TaskPtr, gt: &GhostTask) {
    if g.agent() != Some(p) {
        return;
    }
    if let Some(l) = g.latched(rq) {
        if let Some(lt) = GhostTask::of(rq, l) {
            let seq = g.next_cpu_seqnum(rq);
            lt.msg_preempt(rq, l, seq, true);
        }
    }
    g.set_latched(rq, None, 0);
    g.set_agent(rq, None, core::ptr::null());
    g.reset_agent_barrier();
    g.blocked_in_run().store(false, Ordering::SeqCst);
    if let Some(txn) = gt.enclave().cpu_data().txn(rq.cpu()) {
        if txn.cas_state(uapi::GHOST_TXN_READY as i32, uapi::GHOST_TXN_NO_AGENT) {
            txn.complete(uapi::GHOST_TXN_NO_AGENT, 0, 0);
        }
    }
}

/// The calling agent gives its CPU away until it is woken. With
/// `barrier`, fails with `ESTALE` if the CPU's agent barrier moved past it
/// (a message the agent has not seen). `EINTR` if a signal is pending.
pub fn block(g: &GhostRq, barrier: Option<u32>) -> Result {
    if let Some(b) = barrier {
        g.should_wake().store(false, Ordering::SeqCst);
        if g.agent_barrier() != b {
            return Err(crate::ghostfs::errno(bindings::ESTALE));
        }
    }
    g.blocked_in_run().store(true, Ordering::SeqCst);
    let me = TaskPtr::current();
    let r = loop {
        // SAFETY: sets the calling task's state; process context.
        unsafe { bindings::ghost_set_current_interruptible() };
        if g.should_wake().swap(false, Ordering::SeqCst) {
            break Ok(());
        }
        if me.signal_pending() {
            break Err(EINTR);
        }
        // SAFETY: process context, no lock held.
        unsafe { bindings::schedule() };
    };
    // SAFETY: the calling task's state; process context.
    unsafe { bindings::ghost_set_current_running() };
    g.blocked_in_run().store(false, Ordering::SeqCst);
    r
}

/// The calling thread's agent CPU and enclave; `EINVAL` if it is no agent.
fn caller() -> Result<(i32, *const Enclave)> {
    crate::sched::current_agent().ok_or(EINVAL)
}

/// `ghost_run()` and `GHOST_IOC_RUN`: `gtid` 0 blocks the calling agent
/// (a local yield; `run_cpu` must be its CPU, `run_flags` at most
/// `RTLA_ON_IDLE`; `ESTALE` for a stale `agent_barrier`); `GHOST_AGENT_GTID`
/// pings the agent of `run_cpu`, which must belong to the caller's process
/// (`run_flags` 0). `EPERM` without `CAP_SYS_NICE`; `EINVAL` otherwise.
pub fn run(
    gtid: i64,
    agent_barrier: u32,
    _task_barrier: u32,
    run_cpu: i32,
    run_flags: i32,
) -> Result {
    if !crate::ghostfs::capable(bindings::CAP_SYS_NICE) {
        return Err(EPERM);
    }
    let (cpu, _e) = caller()?;
    match gtid {
        0 => {
            let flags = u32::try_from(run_flags).map_err(|_| EINVAL)?;
            if run_cpu != cpu || flags & !uapi::RTLA_ON_IDLE != 0 {
                return Err(EINVAL);
            }
            let g = GhostRq::of(cpu).ok_or(EINVAL)?;
            {
                // The agent asks to be woken when its CPU idles; a latch a
                // commit made meanwhile (even one a sync group holds) and
                // its own run flags stay as they are.
                let rq = RqGuard::lock(cpu).ok_or(EINVAL)?;
                g.add_run_flags(&rq, flags);
            }
            block(g, Some(agent_barrier))
        }
        g if g == i64::from(uapi::GHOST_AGENT_GTID) => {
            if run_flags != 0 || !crate::rq::cpu_valid(run_cpu) {
                return Err(EINVAL);
            }
            let same_process = {
                let _rq = RqGuard::lock(run_cpu).ok_or(EINVAL)?;
                GhostRq::of(run_cpu)
                    .and_then(|g| g.agent())
                    .is_some_and(|a| a.tgid() == TaskPtr::current().tgid())
            };
            if !same_process {
                return Err(EINVAL);
            }
            wake(run_cpu);
            Ok(())
        }
        _ => Err(EINVAL),
    }
}

/// `ghost_run(2)`: the system call of `GHOST_IOC_RUN` (same arguments,
/// same function).
#[no_mangle]
pub extern "C" fn ghost_run(
    gtid: i64,
    agent_barrier: u32,
    task_barrier: u32,
    run_cpu: i32,
    run_flags: i32,
) -> core::ffi::c_long {
    match run(gtid, agent_barrier, task_barrier, run_cpu, run_flags) {
        Ok(()) => 0,
        Err(e) => e.to_errno() as core::ffi::c_long,
    }
}
