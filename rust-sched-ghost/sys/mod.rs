// SPDX-License-Identifier: GPL-2.0

//! Thin safe wrappers over the C kernel: the only place of the crate, with
//! the C entry points, where `unsafe` code and raw `bindings::` calls live.
//!
//! Each module wraps one kernel facility and states the invariants its safe
//! interface relies on:
//!
//! - [`rq`]: runqueues, their locks, and `task_struct` pointers;
//!   [`percpu`]: one value per CPU id;
//! - [`task`]: task handles that keep a task alive, and lookup by gtid;
//! - [`kernfs`]: kernfs nodes, files and their operations;
//! - [`mm`]: kernel memory that userspace maps; [`anonfd`]: anonymous
//!   file descriptors that own an object (queues);
//! - [`rawlock`]: a raw spinlock usable with interrupts off;
//! - [`waitq`]: a wait queue any context may wake;
//! - [`sched_class`]: the `struct sched_class` operations-table adapter;
//! - [`cred`]: errnos and capability checks;
//! - [`work`]: irq_work and work items; [`time`]: the clock;
//! - [`warn`]: `warn_once!` for impossible states; [`sysctl`]: the
//!   read-only `kernel.pid_max_max`.

pub mod anonfd;
pub mod cred;
pub mod kernfs;
pub mod mm;
pub mod percpu;
pub mod rawlock;
pub mod rq;
pub mod sched_class;
pub mod sysctl;
pub mod task;
pub mod time;
pub mod waitq;
pub mod warn;
pub mod work;
