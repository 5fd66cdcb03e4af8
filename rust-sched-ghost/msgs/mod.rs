// SPDX-License-Identifier: GPL-2.0

//! Message production, in one place: [`task`] messages (about one task, to
//! its queue, sequenced by the task barrier) and [`cpu`] messages (about a
//! CPU, to its agent's queue, sequenced by the agent barrier). The edges
//! that call them are the scheduler hooks of [`crate::sched`], the class
//! callbacks of [`crate::classes`], agents ([`crate::agent`]) and commits
//! ([`crate::txn`]).
//!
//! Where each task message is produced:
//!
//! | Message | Edge |
//! |---|---|
//! | TASK_NEW | the task enters the class (`switched_to`); deferred to its switch-out when it was running; for a fork child, its first enqueue |
//! | TASK_WAKEUP | enqueue with `ENQUEUE_WAKEUP` |
//! | TASK_BLOCKED, TASK_YIELD, TASK_DEAD | the pick-next prologue, before the pick (so the agent woken by it is a candidate) |
//! | TASK_PREEMPT | the task switch (`prepare_task_switch`), when a runnable task loses its CPU; or a latch replaced by a commit |
//! | TASK_DEPARTED | the task leaves the class (`switched_from`) |
//! | TASK_ON_CPU | `set_next_task`, when the commit asked for it |
//!
//!
//! CPU messages: see [`cpu`].

pub mod cpu;
pub mod task;
