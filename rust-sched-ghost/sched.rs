// SPDX-License-Identifier: GPL-2.0

//! The scheduling core: the hooks the core scheduler calls
//! (`<linux/ghost.h>`, through [`crate::entry`]) and the class edges of
//! [`crate::classes`] (enter, leave, pick, switch, tick), which produce the
//! messages of [`crate::msgs`]. Joining and leaving an enclave (staging the
//! state, forks) is [`crate::members`].
//!
//! Which edge produces which message: see [`crate::msgs`].
//!
//! ONCPU is cleared only after the message that takes the task off its CPU
//! is produced, so an agent that sees a task off-CPU sees a stable barrier.

use crate::agent::percpu::LockedGhostRq;
use crate::agent::throttle;
use crate::gtask::{self, GhostTask};
use crate::members;
use crate::msgs;
use crate::sw::F_CANFREE;
use crate::sys::rq::{Rq, TaskPtr};
use crate::sys::sched_class::BalanceUnlock;
use crate::sys::task::TaskHandle;
use crate::sys::task::TaskRqGuard;
use crate::sys::time::now;
use core::sync::atomic::Ordering;
use kernel::prelude::*;
use kernel::uapi;

pub use crate::sys::task::SCHED_GHOST;

// Membership moved to `crate::members`; these names stay reachable here for
// the enclave's call sites until they name `members` themselves.
pub use crate::members::{current_agent, discover_tasks, join, leave_ghost, ungate};

/// `__sched_setscheduler()` of `p` to `policy`, when the old or the new
/// policy is `SCHED_GHOST`. Entering is only done by ghOSt itself (ghostfs):
/// userspace gets `EBADF`. A ghost task may set `SCHED_GHOST` again (to
/// change its nice value); an agent may not (`EPERM`), nor leave ghost.
/// Process context, no lock held; the caller holds a reference on `p`.
pub fn setscheduler_check(p: TaskPtr, policy: i32, user: bool) -> Result {
    let g = TaskRqGuard::lock(TaskHandle::get(p));
    let gt = GhostTask::of(&g, p);
    if policy == SCHED_GHOST {
        match (user, gt) {
            // An agent's scheduling is not the user's to change.
            (true, Some(gt)) if gt.is_agent() => Err(EPERM),
            // A ghost task staying in ghost: only its nice value can change
            // (ghOSt accepts it and sends TASK_PRIORITY_CHANGED).
            (true, Some(gt)) if gt.active() && p.policy() == SCHED_GHOST => Ok(()),
            (true, _) if p.policy() == SCHED_GHOST => Err(EPERM),
            (true, _) => Err(EBADF),
            // ghOSt's own call: the state is staged and not yet active.
            (false, Some(gt)) if !gt.active() => Ok(()),
            (false, _) => Err(EBADF),
        }
    } else if user && gt.is_some_and(|gt| gt.is_agent()) {
        Err(EPERM)
    } else {
        Ok(())
    }
}

/// `p`'s ghost state and its CPU's, if `p` (a task on the locked `rq`) is
/// in the ghost class.
fn in_class(rq: &Rq, p: TaskPtr) -> Option<(TaskPtr, &GhostTask, LockedGhostRq<'_>)> {
    if !p.in_ghost_class() {
        return None;
    }
    Some((p, GhostTask::of(rq, p)?, rq.ghost()?))
}

/// Wakes the agent of `rq`'s CPU when the latch's run flags ask for it on
/// this edge (`RTLA_ON_*`).
fn rtla(rq: &Rq, g: LockedGhostRq<'_>, flag: u32) {
    if g.run_flags() & flag != 0 {
        crate::agent::percpu::wake(rq.cpu());
    }
}

/// The pick-next prologue: `prev` (the current task of `rq`) is about to
/// be switched out or re-picked. Produces the messages of the edges that
/// are known now (blocked, yield, dead, a deferred TASK_NEW), so that an
/// agent they wake is a candidate of this very pick: a sleeping agent of
/// this CPU that they wake is woken right here, with the runqueue unlocked
/// for the wake (as ghOSt's agent, which stays queued while it waits, is
/// picked at once), rather than from the CPU's irq_work after a switch to
/// idle and back. Only when `prev` is a ghost task (see below), not the
/// agent itself (it cannot be woken from its own switch; the irq_work wakes
/// it). `__schedule()`, `rq` locked and pinned by `unlock`'s flags,
/// `prev == rq->curr`.
pub fn pnt_prologue(rq: &Rq, prev: TaskPtr, unlock: &BalanceUnlock) {
    // Only for the edges of a ghost task leaving the CPU: a CPU message
    // of another switch (CPU_BUSY when a CFS task comes to the idle CPU)
    // must not put the agent before that task, or the idle CPU's switch to
    // it (CPU_NOT_IDLE, for NEED_CPU_NOT_IDLE) would never be seen.
    let local = crate::agent::percpu::GhostRq::of(rq.cpu())
        .filter(|g| prev.in_ghost_class() && g.agent().is_some_and(|a| a != prev));
    if let Some(g) = local {
        g.defer_local_wake(true);
    }
    prologue_edges(rq, prev);
    if let Some(g) = local {
        if g.defer_local_wake(false) {
            // No use of `rq` while it is unlocked.
            unlock.unlocked(|| crate::agent::percpu::wake_deferred(g));
        }
    }
}

/// The messages of [`pnt_prologue`].
fn prologue_edges(rq: &Rq, prev: TaskPtr) {
    if let Some(g) = rq.ghost() {
        if g.agent().is_some() {
            // The CPU is available to ghost while no task of another class
            // wants it (ghOSt updates this at every pick).
            let avail = !rq.others_runnable();
            if g.set_avail(avail) {
                msgs::cpu::availability(rq, g, avail);
            }
        }
    }
    let Some((prev, gt, g)) = in_class(rq, prev) else {
        return;
    };
    if gt.is_agent() {
        if prev.dead() {
            crate::agent::detach(rq, g, prev, gt);
        }
        return;
    }
    if gt.new_pending() {
        // It joined while running: now the agent learns about it.
        msgs::task::new(&gt, Some(rq), prev, prev.queued());
        gt.clear_oncpu();
        return;
    }
    if !gt.oncpu() {
        return;
    }
    // A task that exits blocks for good: TASK_BLOCKED now, TASK_DEAD from
    // `task_dead` once it is off the CPU (ghOSt's order; agents check that
    // a dead task was blocked).
    if !prev.queued() {
        let seq = g.cpu_seqnum();
        msgs::task::blocked(&gt, rq, prev, seq);
        gt.clear_oncpu();
        rtla(rq, g, uapi::RTLA_ON_BLOCKED);
    } else if gt.take_yield() {
        let seq = g.cpu_seqnum();
        msgs::task::yielded(&gt, rq, prev, seq);
        gt.clear_oncpu();
        // A yielding task is not picked again until an agent commits it.
        g.set_must_resched(true);
        rtla(rq, g, uapi::RTLA_ON_YIELD);
    }
}

/// The task switch: `prev` leaves `rq`'s CPU for `next`. A ghost task
/// that is still runnable and had no message yet was preempted. CPU
/// messages of the switch go out too (see [`crate::msgs::cpu`]).
/// `context_switch()`, `rq` locked.
pub fn prepare_task_switch(rq: &Rq, prev: TaskPtr, next: TaskPtr) {
    if let Some(g) = rq.ghost() {
        // The task told to leave is leaving.
        g.set_must_resched(false);
        cpu_switch(rq, g, prev, next);
    }
    let Some((prev, gt, g)) = in_class(rq, prev) else {
        return;
    };
    if gt.is_agent() {
        return;
    }
    if prev.queued() {
        gt.set_waiting(now());
    }
    if !gt.oncpu() {
        return;
    }
    let seq = g.cpu_seqnum();
    if !prev.queued() {
        // Blocked without going through the prologue (an idle-mode pick).
        msgs::task::blocked(&gt, rq, prev, seq);
        gt.clear_oncpu();
        rtla(rq, g, uapi::RTLA_ON_BLOCKED);
        return;
    }
    if g.run_flags() & uapi::ELIDE_PREEMPT == 0 {
        msgs::task::preempt(&gt, rq, prev, seq, false);
    }
    gt.clear_oncpu();
    rtla(rq, g, uapi::RTLA_ON_PREEMPT);
}

/// The CPU-level edges of a task switch from `prev` to `next`: the agent
/// blocks; the CPU becomes busy with (or free of) other classes' tasks;
/// the idle CPU an agent asked to hear about (`NEED_CPU_NOT_IDLE`) gets a
/// task of another class.
fn cpu_switch(rq: &Rq, g: LockedGhostRq<'_>, prev: TaskPtr, next: TaskPtr) {
    let agent = g.agent();
    // The agent blocks outside `ghost_run` (ghOSt's agents stay runnable
    // while blocked in `ghost_run`: no message for that).
    if agent == Some(prev) && !prev.queued() && !g.blocked_in_run().load(Ordering::SeqCst) {
        msgs::cpu::agent_runnability(rq, g, true);
    }
    if agent == Some(next) {
        // The agent preempts everyone: says nothing about the others.
        return;
    }
    let other = !next.is_idle() && !next.in_ghost_class();
    if g.set_avail(!other) {
        msgs::cpu::availability(rq, g, !other);
    }
    let flags = g.run_flags();
    if next.is_idle() && flags & uapi::RTLA_ON_IDLE != 0 && !g.held() {
        // The CPU goes idle: the agent asked to be back then. The ghost
        // class's `pick_task` does this when its pick finds nothing, but
        // the core's fast path (only CFS tasks runnable) picks CFS or idle
        // without asking the ghost classes.
        g.set_latched(None, 0);
        crate::agent::percpu::wake(rq.cpu());
    }
    if other && prev.is_idle() && flags & uapi::NEED_CPU_NOT_IDLE != 0 {
        g.set_latched(g.latched(), flags & !uapi::NEED_CPU_NOT_IDLE);
        msgs::cpu::not_idle(rq, g, next);
    }
}

/// The scheduler tick on `rq`'s CPU (`sched_tick()`, `rq` locked).
pub fn tick(rq: &Rq) {
    let Some(curr) = rq.curr() else {
        return;
    };
    if curr.in_ghost_class() {
        if let Some(gt) = GhostTask::of(rq, curr) {
            gt.sync_runtime(curr);
        }
    }
    if let Some(g) = rq.ghost() {
        if let Some(a) = g.agent() {
            msgs::cpu::tick(rq, g, a == curr);
            throttle::tick(rq, a == curr);
        } else if curr.in_ghost_class() && crate::fallback::should_rotate(rq, g, curr) {
            // The fallback's time slice: one tick, then the next task.
            g.set_must_resched(true);
            rq.resched_curr();
        }
    }
    crate::txn::commit_greedy_at_tick(rq);
}

/// `p`'s allowed CPUs changed (`set_cpus_allowed`, `rq` locked):
/// TASK_AFFINITY_CHANGED; then a latch on a CPU it may no longer use is
/// dropped (TASK_PREEMPT with `was_latched`), and a running task is forced
/// off its CPU (TASK_PREEMPT at the switch), as ghOSt's `set_next_task`
/// does when the core changes a running task's attributes.
pub fn affinity_changed(rq: &Rq, p: TaskPtr) {
    let (Some(gt), Some(g)) = (GhostTask::of(rq, p), rq.ghost()) else {
        return;
    };
    if gt.is_agent() || !gt.announced() {
        return;
    }
    msgs::task::affinity_changed(&gt, rq);
    if g.latched() == Some(p) && !p.allowed_on(rq.cpu()) {
        // The task must move away from the CPU it was committed to: the
        // latch is lost, and the agent hears it as a preemption of a latched
        // task, as from ghOSt (which drops the latch when the task moves).
        unlatch_preempted(rq, g, gt, p);
    }
    force_offcpu(rq, g, p);
}

/// The latched task `p` of `rq` will not run there: the latch goes, and
/// the agent gets `TASK_PREEMPT` with `was_latched` so it schedules `p`
/// again.
fn unlatch_preempted(rq: &Rq, g: LockedGhostRq<'_>, gt: &GhostTask, p: TaskPtr) {
    g.set_latched(None, 0);
    let seq = g.next_cpu_seqnum();
    msgs::task::preempt(&gt, rq, p, seq, true);
}

/// `p`'s nice value changed (`prio_changed`, `rq` locked): a running task
/// is forced off its CPU (TASK_PREEMPT at the switch); then
/// TASK_PRIORITY_CHANGED.
pub fn priority_changed(rq: &Rq, p: TaskPtr) {
    let (Some(gt), Some(g)) = (GhostTask::of(rq, p), rq.ghost()) else {
        return;
    };
    if gt.is_agent() || !gt.announced() {
        return;
    }
    force_offcpu(rq, g, p);
    msgs::task::priority_changed(&gt, rq, p.nice());
}

/// A running ghost task `p` must leave its CPU: the agent decides anew.
fn force_offcpu(rq: &Rq, g: LockedGhostRq<'_>, p: TaskPtr) {
    if rq.is_curr(p) {
        g.set_must_resched(true);
        rq.resched_curr();
    }
}

/// `p` enters the class (`switched_to`): ghOSt's state, staged by
/// [`join`] or `become agent`, goes live.
pub fn switched_to(rq: &Rq, p: TaskPtr) {
    let (Some(gt), Some(g)) = (GhostTask::of(rq, p), rq.ghost()) else {
        return;
    };
    if gt.active() {
        // Back from a priority boost: nothing changed for the agent.
        return;
    }
    gt.enter(!gt.is_agent() && rq.is_curr(p));
    gt.publish_sw();
    if gt.is_agent() {
        crate::agent::attach(rq, g, p, gt);
        return;
    }
    if p.queued() {
        gt.sw_flags(gtask::SW_RUNNABLE, 0);
    }
    if rq.is_curr(p) {
        // Running: off the CPU first; TASK_NEW goes out at the switch.
        gt.set_oncpu(now());
        g.set_must_resched(true);
        rq.resched_curr();
    } else {
        msgs::task::new(&gt, Some(rq), p, p.queued());
    }
}

/// `p` leaves the class (`switched_from`).
pub fn switched_from(rq: &Rq, p: TaskPtr) {
    if p.policy() == SCHED_GHOST {
        // A priority boost (rt_mutex) lends it to RT for a while; it stays
        // a ghost task.
        return;
    }
    let Some(g) = rq.ghost() else {
        return;
    };
    let Some(gt) = members::uninstall(Some(rq), p) else {
        return;
    };
    if gt.is_agent() {
        crate::agent::detach(rq, g, p, &gt);
        members::retire(gt);
        return;
    }
    if g.latched() == Some(p) {
        // Committed but not running yet: a preemption first, then the
        // departure (ghOSt's order).
        unlatch_preempted(rq, g, &gt, p);
    }
    if gt.gated() {
        // No agent ever heard of this stay: nobody else frees its word.
        gt.free_sw();
        members::retire(gt);
        return;
    }
    let was_current = rq.is_curr(p);
    if gt.new_pending() && gt.gtid() == 0 {
        // A fork child leaving before its first wakeup.
        members::announce_child(rq, p, &gt, false);
    } else if gt.new_pending() {
        msgs::task::new(&gt, Some(rq), p, false);
    }
    let seq = g.next_cpu_seqnum();
    msgs::task::departed(&gt, rq, seq, was_current);
    members::retire(gt);
}

/// `p` died (`task_dead`, after its last switch; no lock held): a task
/// sends `TASK_DEAD` (after the `TASK_BLOCKED` of its last switch); its word
/// is `CANFREE`, and freed here only if no agent heard of the task. An
/// agent's word is only marked `CANFREE`: its process frees it (ghOSt's
/// library waits for that flag to know the agent thread is gone).
pub fn task_dead(p: TaskPtr) {
    let g = TaskRqGuard::lock(TaskHandle::get(p));
    if let Some(gt) = members::uninstall(Some(&g), p) {
        if gt.is_agent() {
            gt.sw_flags(F_CANFREE, 0);
        } else if gt.gated() || !msgs::task::dead(&gt, &g) {
            // No agent was told: nobody else frees the word.
            gt.free_sw();
        }
        drop(g);
        members::retire(gt);
    }
}

/// Whether the latched task `p` can still run on `rq`.
fn latch_valid(rq: &Rq, p: TaskPtr) -> bool {
    p.cpu() == rq.cpu()
        && p.queued()
        && p.in_ghost_class()
        && GhostTask::of(rq, p).is_some_and(|gt| !gt.is_agent())
}

/// `pick_task` of the ghost class: the latched task, or the current ghost
/// task if it may keep its CPU, or nothing (the CPU idles).
pub fn pick_task(rq: &Rq) -> Option<TaskPtr> {
    let g = rq.ghost()?;
    let held = g.held();
    if let Some(l) = g.latched().filter(|_| !held) {
        if latch_valid(rq, l) {
            return Some(l);
        }
        // Gone (dead, departed, migrated away): the agent decides again.
        g.set_latched(None, 0);
        crate::agent::percpu::wake(rq.cpu());
    }
    if let Some(curr) = rq
        .curr()
        .filter(|c| c.in_ghost_class() && c.queued() && !g.must_resched())
    {
        if let Some(gt) = GhostTask::of(rq, curr) {
            if !gt.is_agent() && gt.oncpu() && !gt.yield_pending() {
                return Some(curr);
            }
        }
    }
    if !held && g.run_flags() & uapi::RTLA_ON_IDLE != 0 {
        g.set_latched(None, 0);
        crate::agent::percpu::wake(rq.cpu());
    }
    // No agent here: the tasks of an enclave whose agents died run anyway.
    crate::fallback::pick(rq, g)
}

/// `set_next_task`: `p` becomes the current task of `rq`.
pub fn set_next_task(rq: &Rq, p: TaskPtr) {
    rq.start_exec(p);
    let (Some(gt), Some(g)) = (GhostTask::of(rq, p), rq.ghost()) else {
        return;
    };
    g.set_must_resched(false);
    if gt.is_agent() {
        return;
    }
    gt.clear_waiting();
    if g.latched() == Some(p) {
        g.set_latched(None, g.run_flags());
        gt.set_oncpu(now());
        if g.run_flags() & uapi::SEND_TASK_ON_CPU != 0 {
            let seq = g.cpu_seqnum();
            msgs::task::on_cpu(&gt, rq, now(), seq);
        }
    } else if !gt.oncpu() && gt.announced() {
        gt.set_oncpu(now());
    }
}
