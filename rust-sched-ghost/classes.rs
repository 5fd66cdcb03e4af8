// SPDX-License-Identifier: GPL-2.0

//! The two ghOSt scheduling classes.
//!
//! - `ghost_sched_class` holds the tasks whose scheduling is delegated to an
//!   agent. It ranks directly above `idle`, below `fair` and `ext`, so
//!   CFS/EEVDF, sched_ext, RT and deadline tasks always preempt ghost tasks:
//!   an agent schedules only the CPU time the rest of the system leaves
//!   over. Ghost yields to a BPF scheduler (`CONFIG_SCHED_CLASS_EXT`) the way
//!   it yields to CFS; with a switch-all BPF scheduler every normal task and
//!   kernel thread is an ext task and outranks ghost tasks.
//! - `ghost_agent_sched_class` ranks directly below `stop`, above `dl`. It
//!   holds no tasks of its own: its only job is to pick a CPU's agent (a
//!   task of `ghost_sched_class`) ahead of every other class when the agent
//!   must run, so that a busy CPU cannot starve the scheduler of its tasks.
//!
//! The order is fixed by the linker sections the two tables are placed in
//! (`SCHED_DATA` in `include/asm-generic/vmlinux.lds.h`) and checked at boot
//! by [`crate::selftest`].
//!
//! The class callbacks are thin: the logic is in [`crate::sched`] (edges
//! and messages) and [`crate::agent`] (agents).

use crate::agent::throttle;
use crate::gtask::{GhostTask, SW_RUNNABLE};
use crate::msgs;
use crate::sched;
use crate::sys::cpu::this_cpu;
use crate::sys::sched_class::{
    set_cpus_allowed_common, Adapter, AffinityContext, BalanceUnlock, Rq, SchedClass,
    SchedClassOps, TaskPtr,
};
use kernel::bindings;
use kernel::prelude::*;
use kernel::uapi;

/// `ghost_sched_class`: tasks scheduled by agents, and the agents.
pub struct GhostClass;

#[vtable]
impl SchedClassOps for GhostClass {
    fn enqueue_task(rq: &Rq, p: TaskPtr, flags: i32) {
        let Some(gt) = GhostTask::of(rq, p) else {
            return;
        };
        // Counted in `nr_running`, so that the core's "only CFS tasks" fast
        // path does not skip the ghost classes.
        if gt.set_counted(true) {
            rq.count_running(true);
        }
        if gt.is_agent() {
            // The agent runs ahead of every class, but the core preempts by
            // class rank (ghost is below fair and ext): ask for the CPU ourselves.
            if !rq.is_curr(p) {
                rq.resched_curr();
            }
            if flags as u32 & bindings::ENQUEUE_WAKEUP != 0 {
                // Woken from a block outside `ghost_run` (see
                // `sched::cpu_switch`).
                if let Some(g) = rq.ghost() {
                    if !g
                        .blocked_in_run()
                        .load(core::sync::atomic::Ordering::SeqCst)
                    {
                        msgs::cpu::agent_runnability(rq, g, false);
                    }
                }
            }
            return;
        }
        gt.sync_runtime(p);
        gt.set_waiting(crate::sys::time::now());
        gt.sw_flags(SW_RUNNABLE, 0);
        if let Some(g) = rq.ghost() {
            crate::fallback::link(rq, gt);
            // No agent will commit it: the fallback runs it (an idle CPU
            // must pick again).
            if crate::fallback::applies(g, gt) && rq.curr().is_some_and(|c| c.is_idle()) {
                rq.resched_curr();
            }
        }
        let flags = flags as u32;
        if gt.new_pending() && gt.active() && flags & bindings::ENQUEUE_INITIAL != 0 {
            // A fork child's first wakeup.
            crate::members::announce_child(rq, p, gt, true);
        } else if flags & bindings::ENQUEUE_WAKEUP != 0 && gt.announced() {
            msgs::task::wakeup(&gt, Some(rq), p.cpu(), rq.cpu(), this_cpu());
        }
    }

    fn dequeue_task(rq: &Rq, p: TaskPtr, flags: i32) -> bool {
        let Some(gt) = GhostTask::of(rq, p) else {
            return true;
        };
        if gt.set_counted(false) {
            rq.count_running(false);
        }
        if rq.ghost().is_some() {
            crate::fallback::unlink(rq, gt);
        }
        if !gt.is_agent() && flags as u32 & bindings::DEQUEUE_SLEEP != 0 {
            gt.sw_flags(0, SW_RUNNABLE);
            gt.clear_waiting();
        }
        true
    }

    fn yield_task(rq: &Rq) {
        let Some(curr) = rq.curr() else {
            return;
        };
        if let Some(gt) = GhostTask::of(rq, curr) {
            if !gt.is_agent() {
                gt.set_yield();
            }
        }
    }

    fn wakeup_preempt(rq: &Rq, p: TaskPtr, _flags: i32) {
        // A ghost task never preempts another by itself: only an agent's
        // transaction puts a task on a CPU. An agent always may.
        if GhostTask::of(rq, p).is_some_and(|gt| gt.is_agent()) && !rq.is_curr(p) {
            rq.resched_curr();
        }
    }

    fn balance(rq: &Rq, _prev: TaskPtr, unlock: &BalanceUnlock) -> bool {
        // A commit point of greedy transactions (ghOSt's `balance_ghost`).
        crate::txn::commit_greedy_at_balance(rq, unlock)
    }

    fn pick_task(rq: &Rq) -> Option<TaskPtr> {
        sched::pick_task(rq)
    }

    fn put_prev_task(rq: &Rq, p: TaskPtr, _next: Option<TaskPtr>) {
        rq.update_curr();
        if let Some(gt) = GhostTask::of(rq, p) {
            gt.sync_runtime(p);
        }
    }

    fn set_next_task(rq: &Rq, p: TaskPtr, _first: bool) {
        sched::set_next_task(rq, p)
    }

    fn select_task_rq(_p: TaskPtr, task_cpu: i32, _flags: i32) -> i32 {
        // Stay where the task is: placement is the agent's decision (a
        // commit moves the task to the CPU it runs on).
        task_cpu
    }

    fn set_cpus_allowed(rq: &Rq, p: TaskPtr, ctx: &AffinityContext) {
        set_cpus_allowed_common(p, ctx);
        if !ctx.is_migrate_toggle() {
            sched::affinity_changed(rq, p);
        }
    }

    fn task_tick(rq: &Rq, p: TaskPtr, _queued: bool) {
        rq.update_curr();
        if let Some(gt) = GhostTask::of(rq, p) {
            gt.sync_runtime(p);
        }
    }

    fn task_dead(p: TaskPtr) {
        sched::task_dead(p)
    }

    fn switched_from(rq: &Rq, p: TaskPtr) {
        sched::switched_from(rq, p)
    }

    fn switched_to(rq: &Rq, p: TaskPtr) {
        sched::switched_to(rq, p)
    }

    fn prio_changed(rq: &Rq, p: TaskPtr, _oldprio: i32) {
        // The core calls this only for a real change (`set_user_nice()`
        // returns early for the same nice value).
        sched::priority_changed(rq, p);
    }

    fn update_curr(rq: &Rq) {
        rq.update_curr();
    }
}

/// `ghost_agent_sched_class`: picks a CPU's agent ahead of other classes.
pub struct GhostAgentClass;

#[vtable]
impl SchedClassOps for GhostAgentClass {
    fn balance(_rq: &Rq, _prev: TaskPtr, _unlock: &BalanceUnlock) -> bool {
        false
    }

    fn pick_task(rq: &Rq) -> Option<TaskPtr> {
        // An agent that is runnable runs: it sleeps (in `ghost_run` or a
        // local commit) when it has nothing to do.
        let g = rq.ghost()?;
        let agent = g.agent()?;
        if !agent.queued() || agent.cpu() != rq.cpu() {
            return None;
        }
        // Running ahead of tasks of other classes that want the CPU: the
        // agent is told so (`BOOST_PRIO`), so that it gives the CPU back
        // soon (a global agent moves to another CPU), as under ghOSt. One
        // that does not is throttled (see `agent::throttle`): passed over
        // until the next tick, while they run.
        if rq.others_runnable() {
            g.agent_sw_flags(uapi::GHOST_SW_BOOST_PRIO, 0);
        } else {
            g.agent_sw_flags(0, uapi::GHOST_SW_BOOST_PRIO);
        }
        if throttle::holds_back(rq) {
            return None;
        }
        Some(agent)
    }
}

/// Whether `next`, just picked on `rq`, is the CPU's agent: a task of
/// `ghost_sched_class` that `ghost_agent_sched_class` picked (the only way
/// an agent runs on its CPU). sched_ext asks when a task of its class is
/// switched out: the agent preempts it like a class above ext, though
/// `ghost_sched_class` ranks below ext. `rq` locked.
pub fn agent_picked(rq: &Rq, next: TaskPtr) -> bool {
    rq.ghost()
        .and_then(|g| g.agent())
        .is_some_and(|a| a == next && a.cpu() == rq.cpu())
}

/// The table of `ghost_sched_class`, in the section that `SCHED_DATA` places
/// directly after `ext`'s (`fair`'s without `CONFIG_SCHED_CLASS_EXT`).
#[no_mangle]
#[used]
#[link_section = "__ghost_sched_class"]
#[allow(non_upper_case_globals)]
pub static ghost_sched_class: SchedClass = SchedClass::new(Adapter::<GhostClass>::build());

/// The table of `ghost_agent_sched_class`, in the section that `SCHED_DATA`
/// places directly after `stop`'s.
#[no_mangle]
#[used]
#[link_section = "__ghost_agent_sched_class"]
#[allow(non_upper_case_globals)]
pub static ghost_agent_sched_class: SchedClass =
    SchedClass::new(Adapter::<GhostAgentClass>::build());
