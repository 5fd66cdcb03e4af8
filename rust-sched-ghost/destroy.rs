// SPDX-License-Identifier: GPL-2.0

//! Destroying an enclave's scheduling side: its agents are killed and every
//! task goes back to `SCHED_NORMAL`, and the destroy returns once no task
//! or agent points to the enclave (nothing is ever leaked: a task that
//! cannot leave yet keeps the destroy waiting, and is reported).
//!
//! Owns: the order of a destroy (the destroyer itself, agents, tasks) and
//! its waiting. Calls: [`crate::enclave`] (the object: dying, members, the
//! wait queue), [`crate::sched`] (moving a task out), [`crate::agent`]
//! (killing an agent), [`crate::gtask`] and the rq/task wrappers.
//! Called by: [`crate::registry`] and the `ctl` file (`destroy`).

use crate::agent::percpu::GhostRq;
use crate::enclave::Enclave;
use crate::gtask::GhostTask;
use crate::sys::rq::RqGuard;
use crate::sys::task::{TaskHandle, TaskRqGuard};
use kernel::prelude::*;
use kernel::sync::Arc;

/// How long a `destroy` round waits for news before it moves the tasks
/// out again (ms).
const SHUTDOWN_RECHECK_MS: u32 = 100;

/// After how long without progress a `destroy` reports who is left (ms).
const SHUTDOWN_REPORT_MS: u32 = 10_000;

/// Destroys the scheduling side: no task may join any more, agents are
/// killed, every task goes back to `SCHED_NORMAL`; returns once no
/// task or agent points to the enclave. Process context (sleeps).
pub fn shutdown(e: &Arc<Enclave>) {
    e.mark_dying();
    // A task of this enclave that destroys it leaves first: once the
    // agents are killed, nothing would run it again if it slept or were
    // preempted below (an allocation, the wait), and it would wait for
    // its own destroy for good. So does an agent of it (the last thread
    // of an ephemeral enclave's owner may be one): it cannot wait for
    // its own exit; it is killed all the same, as every agent is.
    if let Ok(me) = crate::sys::task::TaskHandle::current() {
        let g = TaskRqGuard::lock(me);
        let mine = GhostTask::of(&g, g.task())
            .filter(|gt| core::ptr::eq(gt.enclave(), &**e))
            .map(|gt| gt.agent_cpu);
        let me = g.unlock();
        if let Some(agent_cpu) = mine {
            crate::sched::leave_ghost(&me);
            if let Some(cpu) = agent_cpu {
                crate::agent::kill(&me, cpu);
            }
        }
    }
    // Agents first: once they are gone, nothing commits.
    for cpu in 0..crate::sys::cpu::nr_cpu_ids() as i32 {
        let agent = {
            let Some(rq) = RqGuard::lock(cpu) else {
                continue;
            };
            let Some(g) = GhostRq::of(cpu) else {
                continue;
            };
            g.agent()
                .filter(|a| {
                    GhostTask::of(&rq, *a).is_some_and(|gt| core::ptr::eq(gt.enclave(), &**e))
                })
                .map(TaskHandle::get)
        };
        if let Some(a) = agent {
            crate::agent::kill(&a, cpu);
        }
    }
    // Then tasks; a task forking meanwhile adds a child that the next
    // round moves. Each round waits until the last task is out (`leave`
    // wakes `LEFT`) or a late member needs moving (`link_member` does).
    // Without either for `SHUTDOWN_RECHECK_MS` (a task that could not
    // be moved yet, e.g. one still being forked), the round repeats.
    // Nothing is ever leaked: a task pointing to the enclave keeps
    // `destroy` waiting, and one that does so for long is reported.
    let mut stalled_ms: u32 = 0;
    let mut reported = false;
    loop {
        let links = e.late_links();
        let before = e.nr_tasks();
        for t in e.tasks() {
            crate::sched::leave_ghost(&t);
        }
        let woken = e.wait_for_leavers(SHUTDOWN_RECHECK_MS, || {
            e.nr_tasks() == 0 || e.late_links() != links
        });
        let left = e.nr_tasks();
        if left == 0 {
            if reported {
                pr_info!("enclave_{}: the last task left\n", e.id);
            }
            return;
        }
        if woken || left < before {
            stalled_ms = 0;
            continue;
        }
        stalled_ms = stalled_ms.saturating_add(SHUTDOWN_RECHECK_MS);
        if stalled_ms >= SHUTDOWN_REPORT_MS && !reported {
            reported = true;
            pr_warn!(
                "enclave_{}: destroy still waits for {} tasks or agents to leave\n",
                e.id,
                left
            );
            for t in e.members_snapshot() {
                pr_warn!("enclave_{}: left: pid {}\n", e.id, t.as_ptr().pid());
            }
        }
    }
}
