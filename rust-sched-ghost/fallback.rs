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
//! when its state is taken off its task ([`crate::members::uninstall`]).
//! The list is a [`RqList`] (the crate's one intrusive list, on the
//! [`GhostTask`]'s `fb` links): only the holder of that CPU's runqueue lock
//! touches it, which the `&Rq` arguments prove (checked).
//!
//! # Invariants
//!
//! - A [`GhostTask`] is on at most one list, the one of the runqueue it is
//!   queued on.
//! - A linked [`GhostTask`] is alive: it is unlinked before its state is
//!   freed ([`crate::members::uninstall`] unlinks it, under that runqueue
//!   lock).
//!
//! Owns: the per-CPU lists. Calls: [`crate::gtask`],
//! [`crate::agent::percpu`] (whether the CPU has an agent) and
//! [`crate::sys`].

use crate::agent::percpu::LockedGhostRq;
use crate::gtask::{GhostTask, FALLBACK_LIST};
use crate::sys::list::RqList;
use crate::sys::percpu::PerCpu;
use crate::sys::rq::Rq;
use crate::sys::sched_class::TaskPtr;

/// A CPU's list.
pub type FbList = RqList<GhostTask, FALLBACK_LIST>;

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

/// Links `gt` at the tail of the list of `rq`'s CPU (`rq` locked).
/// Agents are never linked; a linked task stays where it is.
pub fn link(rq: &Rq, gt: &GhostTask) {
    if gt.is_agent() {
        return;
    }
    if let Some(list) = list_of(rq) {
        list.with(rq, |l| l.push_back(gt));
    }
}

/// Unlinks `gt` from the list of `rq`'s CPU, if it is on it (`rq` locked,
/// and `gt`'s task is queued there or leaving it).
pub fn unlink(rq: &Rq, gt: &GhostTask) {
    if let Some(list) = list_of(rq) {
        list.with(rq, |l| l.remove(gt));
    }
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

/// Whether the fallback may run `t` (see [`applies`]), other than `skip`.
fn runnable(g: LockedGhostRq<'_>, t: &GhostTask, skip: Option<TaskPtr>) -> bool {
    Some(t.task()) != skip && t.task().queued() && applies(g, t)
}

/// The ghost class's pick on a CPU without an agent: the task of an
/// orphaned enclave that has waited longest here, moved to the tail (round
/// robin). `None` when there is none (or the CPU has an agent).
pub fn pick(rq: &Rq, g: LockedGhostRq<'_>) -> Option<TaskPtr> {
    if !agentless(g) {
        return None;
    }
    list_of(rq)?
        .with(rq, |l| {
            l.rotate_first(|t| runnable(g, t, None))
                .map(GhostTask::task)
        })
        .flatten()
}

/// The tick on a CPU without an agent: whether the running ghost task
/// `curr` should make room for another task the fallback runs here.
pub fn should_rotate(rq: &Rq, g: LockedGhostRq<'_>, curr: TaskPtr) -> bool {
    agentless(g)
        && list_of(rq).is_some_and(|list| {
            list.with(rq, |l| l.iter().any(|t| runnable(g, t, Some(curr))))
                .unwrap_or(false)
        })
}
