// SPDX-License-Identifier: GPL-2.0

//! Membership: tasks and agents joining and leaving an enclave (staging
//! their ghost state, forks, retiring the state), and the listing of an
//! enclave's tasks. The one place where a task's state and its enclave
//! are put together and taken apart: it sits above both
//! ([`crate::enclave`] keeps the member list, [`crate::gtask`] the state,
//! which points down to its enclave).
//!
//! A pid lookup does not find every member. A task that exits is released
//! by its parent (`release_task()` unhashes its pid) before its last
//! switch, and in ghost only an agent's commit gives it that switch. So
//! the enclave keeps its own list, as ghOSt does: a gtid that the pid hash
//! no longer knows is looked for there (`Enclave::find_member`), and
//! destroying an enclave moves exactly its members back to CFS.
//!
//! Every [`GhostTask`] is linked from its allocation to its drop (see
//! `GhostTask::new`) and holds a reference on its task, so a member's task
//! is valid while it is linked, whichever path frees the state. It also
//! holds a counted reference on its enclave (`Enclave::enter`), given back
//! when the state is freed ([`retire`]).
//!
//! Locking: the member list sits in a raw spinlock of the enclave, taken
//! inside runqueue locks (a task retired under its rq lock unlinks itself);
//! no runqueue lock is ever taken while it is held.
//!
//! Owns: staging, installing and retiring task state. Calls:
//! [`crate::enclave`], [`crate::gtask`], [`crate::fallback`] (a state
//! leaves its CPU's list before it is freed), [`crate::msgs`],
//! [`crate::agent::percpu`] and [`crate::sys`].

use crate::agent::percpu::GhostRq;
use crate::enclave::Enclave;
use crate::gtask::{GhostTask, SLOT};
use crate::msgs;
use crate::queue::Queue;
use crate::sys::cred::{capable, CAP_SYS_NICE};
use crate::sys::rq::{Rq, TaskPtr};
use crate::sys::task::TaskRqGuard;
use crate::sys::task::{TaskHandle, SCHED_GHOST, SCHED_NORMAL};
use kernel::prelude::*;
use kernel::sync::Arc;

impl Enclave {
    /// The tasks (not agents) in this enclave, with a reference each.
    /// May sleep.
    pub fn tasks(&self) -> KVec<TaskHandle> {
        let mut out = KVec::new();
        for t in self.members_snapshot() {
            let g = TaskRqGuard::lock(t);
            let mine = GhostTask::of(&g, g.task())
                .is_some_and(|gt| !gt.is_agent() && core::ptr::eq(gt.enclave(), self));
            let t = g.unlock();
            if mine {
                // Out of memory: the list is short by one; callers retry or
                // report what they have.
                let _ = out.push(t, GFP_KERNEL);
            }
        }
        out
    }
}

/// Frees `gt` (off its task already) and uncounts it from its enclave,
/// releasing an agent's claim on its CPU. Never sleeps.
pub fn retire(gt: KBox<GhostTask>) {
    if let Some(cpu) = gt.agent_cpu {
        if let Some(g) = GhostRq::of(cpu) {
            g.release_agent();
        }
    }
    // Off the member list, then the task reference, then (last) the
    // reference on the enclave.
    drop(gt);
}

/// The agent state of the caller: its CPU and enclave, if it is an agent.
pub fn current_agent() -> Option<(i32, *const Enclave)> {
    let g = TaskRqGuard::lock(TaskHandle::current().ok()?);
    let gt = GhostTask::of(&g, g.task())?;
    Some((gt.agent_cpu?, gt.enclave() as *const Enclave))
}

/// Sets `p`'s policy (kernel call: no permission checks).
pub fn set_policy(p: TaskPtr, policy: i32, flags: u64) -> Result {
    p.set_policy(u32::try_from(policy).map_err(|_| EINVAL)?, flags)
}

/// A write of `tasks`: `t` joins `e`. Success if it already is in `e`
/// (ghOSt's `EALREADY`); `EPERM` if it is in another enclave or an agent
/// (ghOSt: `SCHED_GHOST` again);
/// `EPERM` for a kernel thread, or another process's thread without
/// `CAP_SYS_NICE`; `EXDEV` while `e` is being destroyed; `ENOMEM` when no
/// status word is free. May sleep.
pub fn join(e: &Arc<Enclave>, t: &TaskHandle) -> Result {
    let p = t.as_ptr();
    if p.is_kthread() {
        return Err(EPERM);
    }
    let me = TaskPtr::current().ok_or(ESRCH)?;
    if p.tgid() != me.tgid() && !capable(CAP_SYS_NICE) {
        return Err(EPERM);
    }
    {
        let g = TaskRqGuard::lock(TaskHandle::get(p));
        if let Some(gt) = GhostTask::of(&g, p) {
            return if !gt.is_agent() && core::ptr::eq(gt.enclave(), &**e) {
                Ok(())
            } else {
                Err(EPERM)
            };
        }
    }
    stage(e, p, None, e.default_queue())?;
    gate_reentry(e, p);
    if let Err(err) = set_policy(p, SCHED_GHOST, 0) {
        unstage(p);
        return Err(err);
    }
    Ok(())
}

/// `p` (staged) enters `e` again before the agent freed the word of its
/// last stay there: the agent hears nothing of this stay until it does
/// (ABI: `MSG_GATED`); then [`ungate`] lets the messages flow. The check
/// and the gate are not atomic with the free: a free between them finds
/// nothing to ungate, and the task would stay gated, unknown to the agent,
/// for good. So the word is looked for again once the gate is up; if it
/// was freed meanwhile, the gate comes down here. Either that second look
/// sees the word freed, or the free comes after it and its [`ungate`]
/// sees the gate (the `sw_regions` lock orders the two). May sleep.
fn gate_reentry(e: &Enclave, p: TaskPtr) {
    let gtid = p.gtid();
    if !e.departed_unfreed(gtid) {
        return;
    }
    {
        let g = TaskRqGuard::lock(TaskHandle::get(p));
        if let Some(gt) = GhostTask::of(&g, p) {
            gt.set_gated(true);
        }
    }
    if !e.departed_unfreed(gtid) {
        ungate(e, gtid);
    }
}

/// Prepares `p` to enter the class as a task (`agent_cpu` `None`) or the
/// agent of a CPU of `e`: counts it in `e` (`EXDEV` if `e` is dying),
/// allocates its state and status word (`ENOMEM`), and hangs the state on
/// `p` (`EBUSY` if `p` has one). On failure nothing is left, except an
/// agent's claim on its CPU, which the caller releases. May sleep.
pub fn stage(e: &Enclave, p: TaskPtr, agent_cpu: Option<i32>, q: Option<&Queue>) -> Result {
    let gt = GhostTask::new(e.enter()?, p, p.gtid(), agent_cpu, q)?;
    if let Err(gt) = install(p, gt) {
        gt.free_sw();
        retire(gt);
        return Err(EBUSY);
    }
    Ok(())
}

/// Undoes [`stage`] for a task that did not enter the class after all.
pub fn unstage(p: TaskPtr) {
    let g = TaskRqGuard::lock(TaskHandle::get(p));
    if let Some(gt) = uninstall(Some(&g), p) {
        drop(g);
        gt.free_sw();
        retire(gt);
    }
}

/// Moves `t` back to `SCHED_NORMAL` (destroy). Errors are ignored: a task
/// that cannot be moved is exiting, and its exit retires it.
pub fn leave_ghost(t: &TaskHandle) {
    let _ = t.as_ptr().set_policy(SCHED_NORMAL, 0);
}

/// `discover tasks`: a `TASK_NEW` for every task of `e`, so that a new
/// agent learns them (in-place upgrade).
pub fn discover_tasks(e: &Arc<Enclave>) {
    for t in e.tasks() {
        let g = TaskRqGuard::lock(t);
        let p = g.task();
        if let Some(gt) = GhostTask::of(&g, p) {
            if gt.announced() {
                msgs::task::new(&gt, Some(&g), p, p.queued());
            }
        }
    }
}

/// `sched_fork()`: `p` is a new task, not yet visible to anyone. Clears the
/// ghost state copied from the parent; a `SCHED_GHOST` child joins its
/// parent's enclave, with its messages going to the enclave's default
/// queue. An error: the child must fall back to `SCHED_NORMAL`. Process
/// context.
pub fn fork(p: TaskPtr) -> Result {
    SLOT.forget_copied(p);
    if p.policy() != SCHED_GHOST {
        return Ok(());
    }
    fork_join(p)
}

/// The ghost part of a fork: the child `p` joins the parent's enclave. It
/// is announced at its first wakeup ([`announce_child`]).
fn fork_join(p: TaskPtr) -> Result {
    let entered = {
        let g = TaskRqGuard::lock(TaskHandle::current()?);
        let gt = GhostTask::of(&g, g.task()).ok_or(EINVAL)?;
        if gt.is_agent() {
            // Agents fork with RESET_ON_FORK; never here.
            return Err(EINVAL);
        }
        // The parent, counted in the enclave, keeps it alive while its rq
        // lock is held; the child is counted before it is unlocked.
        gt.enclave().enter()?
    };
    let gt = GhostTask::new(entered, p, 0, None, None)?;
    // In the class from birth; announced at its first wakeup.
    gt.fork_joined();
    match install(p, gt) {
        Ok(()) => Ok(()),
        Err(gt) => {
            gt.free_sw();
            retire(gt);
            Err(EBUSY)
        }
    }
}

/// Announces the fork child `p` (`rq` locked): at its first wakeup, or
/// when it leaves ghost before that. Its gtid exists now (fork assigns it
/// after `sched_fork()`), and only now is its status word published, with
/// that gtid, as ghOSt publishes a forked task's word: an agent that adopts
/// the enclave's tasks by their words never sees one without a gtid.
///
/// Its messages go to the enclave's default queue as it is now, not to its
/// parent's queue (ghOSt's `_ghost_sched_fork` gives a child the default
/// queue): the default queue is where an agent expects new tasks, and the
/// first queue an upgrading agent sets up, before it adopts the enclave's
/// tasks. A parent not yet adopted (still on the queue of a dead agent)
/// would otherwise hand that queue to a child the adoption never saw: its
/// `TASK_NEW` would go where nobody reads, the child would stay runnable
/// and unknown to the agent for good, and a parent in `vfork()` with it.
pub fn announce_child(rq: &Rq, p: TaskPtr, gt: &GhostTask, runnable: bool) {
    gt.set_gtid(p.gtid());
    gt.set_queue(gt.enclave().default_queue());
    gt.publish_sw();
    msgs::task::new(&gt, Some(rq), p, runnable);
}

/// `sched_cancel_fork()`: the fork of `p` failed after `sched_fork()`; no
/// one else can see `p`.
pub fn cancel_fork(p: TaskPtr) {
    if let Some(gt) = uninstall(None, p) {
        gt.free_sw();
        retire(gt);
    }
}

/// The agent freed the gated word of task `gtid`'s earlier stay in `e`: if
/// the task is back in `e`, its messages flow again, starting with
/// TASK_NEW (unless the switch that sends a deferred one is still to
/// come). May sleep.
pub fn ungate(e: &Enclave, gtid: i64) {
    let Some(t) = e.task_by_gtid(gtid) else {
        return;
    };
    let g = TaskRqGuard::lock(t);
    let p = g.task();
    let Some(gt) = GhostTask::of(&g, p) else {
        return;
    };
    if !core::ptr::eq(gt.enclave(), e) || !gt.gated() {
        return;
    }
    gt.set_gated(false);
    if gt.announced() {
        msgs::task::new(&gt, Some(&g), p, p.queued());
    }
}

/// Hangs `gt` on `p` (`task_struct::ghost`); gives it back if `p` already
/// has a state.
pub fn install(p: TaskPtr, gt: KBox<GhostTask>) -> core::result::Result<(), KBox<GhostTask>> {
    SLOT.install(p, gt)
}

/// Takes `p`'s state off it. The caller holds `p`'s rq lock (`rq`), or
/// owns `p` exclusively (`None`: a fork that failed).
pub fn uninstall(rq: Option<&Rq>, p: TaskPtr) -> Option<KBox<GhostTask>> {
    let Some(rq) = rq else {
        // Not queued anywhere: on no CPU's list.
        return SLOT.take_unseen(p);
    };
    let gt = SLOT.take(rq, p)?;
    // Off its CPU's list before it can be freed (a task is linked only
    // while queued on `rq`, which the caller holds).
    crate::fallback::unlink(rq, &gt);
    Some(gt)
}
