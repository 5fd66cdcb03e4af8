// SPDX-License-Identifier: GPL-2.0

//! The two ghOSt scheduling classes.
//!
//! - `ghost_sched_class` holds the tasks whose scheduling is delegated to an
//!   agent. It ranks directly below `fair`, so CFS/EEVDF, RT and deadline tasks
//!   always preempt ghost tasks: an agent schedules only the CPU time the
//!   rest of the system leaves over. `sched_ext` (which would sit between
//!   `fair` and `idle` too) cannot be built together with ghost
//!   (`SCHED_CLASS_GHOST` depends on `!SCHED_CLASS_EXT`).
//! - `ghost_agent_sched_class` ranks directly below `stop`, above `dl`. It
//!   holds no tasks of its own: its only job is to pick a CPU's agent (a
//!   task of `ghost_sched_class`) ahead of every other class when the agent
//!   must run, so that a busy CPU cannot starve the scheduler of its tasks.
//!
//! The order is fixed by the linker sections the two tables are placed in
//! (`SCHED_DATA` in `include/asm-generic/vmlinux.lds.h`) and checked at boot
//! by [`crate::selftest`].
//!
//! State of this file: tasks cannot enter `SCHED_GHOST` yet (the core
//! scheduler rejects policy 18 with `EINVAL`), so no task is ever of either
//! class. The per-task callbacks below are nevertheless complete for a class
//! that holds no task of its own, because the core scheduler calls several of
//! them without a `NULL` check.

use crate::sched_class::{
    set_cpus_allowed_common, Adapter, AffinityContext, Rq, SchedClass, SchedClassOps,
};
use kernel::prelude::*;
use kernel::task::Task;

/// `ghost_sched_class`: tasks scheduled by agents.
pub struct GhostClass;

#[vtable]
impl SchedClassOps for GhostClass {
    fn enqueue_task(_rq: &Rq, _p: &Task, _flags: i32) {
        // Nothing is queued in the kernel: agents keep their own run queues
        // and learn about runnable tasks from messages.
    }

    fn dequeue_task(_rq: &Rq, _p: &Task, _flags: i32) -> bool {
        true
    }

    fn yield_task(_rq: &Rq) {}

    fn wakeup_preempt(_rq: &Rq, _p: &Task, _flags: i32) {
        // A ghost task never preempts another one by itself: only an agent's
        // transaction puts a task on a CPU.
    }

    fn balance(_rq: &Rq, _prev: &Task) -> bool {
        false
    }

    fn pick_task(_rq: &Rq) -> Option<&Task> {
        // The kernel runs only what an agent latched on this CPU; nothing is
        // latched while no task can be in the class.
        None
    }

    fn put_prev_task(_rq: &Rq, _p: &Task, _next: Option<&Task>) {}

    fn set_next_task(_rq: &Rq, _p: &Task, _first: bool) {}

    fn select_task_rq(_p: &Task, task_cpu: i32, _flags: i32) -> i32 {
        // Stay where the task is: placement is the agent's decision.
        task_cpu
    }

    fn set_cpus_allowed(p: &Task, ctx: &AffinityContext) {
        set_cpus_allowed_common(p, ctx)
    }

    fn task_tick(_rq: &Rq, _p: &Task, _queued: bool) {}

    fn switched_to(_rq: &Rq, _p: &Task) {}

    fn prio_changed(_rq: &Rq, _p: &Task, _oldprio: i32) {}

    fn update_curr(_rq: &Rq) {}
}

/// `ghost_agent_sched_class`: picks a CPU's agent ahead of other classes.
pub struct GhostAgentClass;

#[vtable]
impl SchedClassOps for GhostAgentClass {
    fn balance(_rq: &Rq, _prev: &Task) -> bool {
        false
    }

    fn pick_task(_rq: &Rq) -> Option<&Task> {
        // No CPU has an agent yet.
        None
    }
}

/// The table of `ghost_sched_class`, in the section that `SCHED_DATA` places
/// directly after `fair`'s.
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
