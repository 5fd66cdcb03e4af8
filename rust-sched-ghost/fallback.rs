// SPDX-License-Identifier: GPL-2.0

//! The agentless fallback: a dead agent never wedges the system.
//!
//! ghOSt runs a ghost task only when an agent commits it. When the agents
//! of an enclave die (a crash, a kill) and no new agent has attached yet,
//! its runnable tasks wait. A task that waits inside the kernel can hold
//! what the next agent needs to start (a path lookup of the agent's own
//! `execve` waiting in `d_alloc_parallel()` on a lookup the ghost task
//! started, a `mmap_lock`, a pipe): the new agent never comes, and with it
//! every other exec of the system. So, as long as an enclave is
//! *orphaned* (its last agent died or left while it lives, and none has
//! attached since; see `Enclave::orphaned`), a CPU without an agent runs
//! the runnable tasks of orphaned enclaves queued on it itself (and so does
//! a CPU whose agent is exiting, see [`applies`]): round
//! robin, one tick each. The tasks stay in their enclave (their messages
//! still flow to its queues) for the next agent, which finds them as
//! ghOSt's in-place upgrade does (status words, `discover tasks`). An
//! enclave that was never given an agent is not orphaned: its tasks wait,
//! as in ghOSt. `agentless_timeout` bounds how long an enclave may stay
//! orphaned before it is destroyed (every task back to CFS).
//!
//! Each CPU keeps its runnable ghost tasks (not agents) on a list, in the
//! order they became runnable there: a task is on the list of the CPU
//! whose runqueue it is queued on, linked by the class's `enqueue_task` and
//! unlinked by `dequeue_task` (migrations are a dequeue and an enqueue), or
//! when its state is uninstalled. Everything here runs with that CPU's
//! runqueue lock held, which the `&Rq` arguments prove.
//!
//! # Invariants
//!
//! - A [`GhostTask`] is on at most one list, the one of the runqueue it is
//!   queued on, and `linked` says whether it is on one.
//! - A linked [`GhostTask`] is alive: it is unlinked before its state is
//!   freed ([`crate::gtask::uninstall`] unlinks it).
//! - The `prev`/`next` pointers of linked tasks and the list's head and
//!   tail are only read or written with that runqueue's lock held.

use crate::agent::percpu::LockedGhostRq;
use crate::gtask::GhostTask;
use crate::sys::percpu::PerCpu;
use crate::sys::rq::{Rq, RqCell};
use crate::sys::sched_class::TaskPtr;
use core::ptr;

/// The head and tail of a CPU's list.
pub struct FbList {
    head: RqCell<*const GhostTask>,
    tail: RqCell<*const GhostTask>,
}

/// Every CPU's list.
static LISTS: PerCpu<FbList> = PerCpu::new();

/// Sets up every CPU's list (boot, before any task is in a ghost class).
pub fn init() -> kernel::error::Result {
    LISTS.init(FbList::new)
}

/// The list of `rq`'s CPU (`None` only before [`init`]).
fn list_of(rq: &Rq) -> Option<&'static FbList> {
    LISTS.get(rq.cpu())
}

impl FbList {
    /// An empty list, of CPU `cpu`.
    pub const fn new(cpu: i32) -> Self {
        FbList {
            head: RqCell::new(cpu, ptr::null()),
            tail: RqCell::new(cpu, ptr::null()),
        }
    }
}

/// Links `gt` at the tail of the list of `rq`'s CPU (`rq` locked).
/// Agents are never linked; a linked task stays where it is.
pub fn link(rq: &Rq, gt: &GhostTask) {
    let l = gt.fb_link();
    if gt.is_agent() || l.linked() {
        return;
    }
    let Some(list) = list_of(rq) else {
        return;
    };
    let tail = list.tail.get(rq);
    l.prev.set(tail);
    l.next.set(ptr::null());
    // SAFETY: a non-NULL tail is a linked task, alive (invariants); the
    // runqueue lock, which the caller holds, protects its link.
    match unsafe { tail.as_ref() } {
        Some(t) => t.fb_link().next.set(gt),
        None => list.head.set(rq, gt),
    }
    list.tail.set(rq, gt);
    l.linked.set(true);
}

/// Unlinks `gt` from the list of `rq`'s CPU, if it is on it (`rq` locked,
/// and `gt`'s task is queued there or leaving it).
pub fn unlink(rq: &Rq, gt: &GhostTask) {
    let l = gt.fb_link();
    if !l.linked() {
        return;
    }
    let Some(list) = list_of(rq) else {
        return;
    };
    let (prev, next) = (l.prev.get(), l.next.get());
    // SAFETY: the neighbours of a linked task are linked tasks of the same
    // list, alive (invariants); the caller holds the runqueue lock.
    match unsafe { prev.as_ref() } {
        Some(p) => p.fb_link().next.set(next),
        None => list.head.set(rq, next),
    }
    // SAFETY: as above.
    match unsafe { next.as_ref() } {
        Some(n) => n.fb_link().prev.set(prev),
        None => list.tail.set(rq, prev),
    }
    l.prev.set(ptr::null());
    l.next.set(ptr::null());
    l.linked.set(false);
}

/// Whether the fallback runs `gt` on a CPU whose state is `g`: the CPU has
/// no agent and `gt`'s enclave is orphaned, or the CPU's agent is exiting.
///
/// An exiting agent (killed, say) still is its CPU's agent until it leaves
/// the class at the end of `do_exit()`, and on the way it may wait, in
/// `exit_mmap()`, for a lock a ghost task holds (an `i_mmap_rwsem` of a
/// file both map): that task must run, or the agent never leaves and its
/// enclave never becomes orphaned. So from `PF_EXITING` on, its CPU's
/// tasks run as on an agentless CPU (`agent_deaths_never_wedge` found it:
/// the dying agent and two `exec`s in `D` for good).
pub fn applies(g: LockedGhostRq<'_>, gt: &GhostTask) -> bool {
    !gt.is_agent()
        && match g.agent() {
            None => gt.enclave().orphaned(),
            Some(a) => a.exiting(),
        }
}

/// Whether `g`'s CPU has no agent that can schedule it: none, or one that
/// is exiting (see [`applies`]).
fn agentless(g: LockedGhostRq<'_>) -> bool {
    g.agent().map_or(true, |a| a.exiting())
}

/// The first task on `g`'s list the fallback may run (see [`applies`]),
/// other than `skip`.
fn first_runnable<'a>(
    rq: &'a Rq,
    g: LockedGhostRq<'_>,
    skip: Option<TaskPtr>,
) -> Option<&'a GhostTask> {
    let mut at = list_of(rq)?.head.get(rq);
    // SAFETY: each pointer followed is a linked task of this list, alive
    // while the caller holds the runqueue lock (invariants).
    while let Some(t) = unsafe { at.as_ref() } {
        if Some(t.task()) != skip && t.task().queued() && applies(g, t) {
            return Some(t);
        }
        at = t.fb_link().next.get();
    }
    None
}

/// The ghost class's pick on a CPU without an agent: the task of an
/// orphaned enclave that has waited longest here, moved to the tail (round
/// robin). `None` when there is none (or the CPU has an agent).
pub fn pick(rq: &Rq, g: LockedGhostRq<'_>) -> Option<TaskPtr> {
    if !agentless(g) {
        return None;
    }
    let t = first_runnable(rq, g, None)?;
    unlink(rq, t);
    link(rq, t);
    Some(t.task())
}

/// The tick on a CPU without an agent: whether the running ghost task
/// `curr` should make room for another task the fallback runs here.
pub fn should_rotate(rq: &Rq, g: LockedGhostRq<'_>, curr: TaskPtr) -> bool {
    agentless(g) && first_runnable(rq, g, Some(curr)).is_some()
}
