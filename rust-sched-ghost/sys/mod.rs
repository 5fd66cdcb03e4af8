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
//! - [`rawlock`]: a raw spinlock usable with interrupts off; [`rcu`]:
//!   RCU-protected per-CPU pointers and grace periods;
//! - [`waitq`]: a wait queue any context may wake;
//! - [`sched_class`]: the `struct sched_class` operations-table adapter;
//! - [`cred`]: errnos and capability checks;
//! - [`cpu`]: CPU and NUMA topology, CPU hotplug callbacks;
//! - [`uapi`]: which uapi structs may be copied from and to user memory;
//! - [`once`]: a value built once at boot and kept for good;
//! - [`keep`]: objects kept as long as their owner, one chosen, read lock-free;
//! - [`shared`]: typed views of memory userspace maps;
//! - [`work`]: irq_work and work items; [`time`]: the clock;
//! - [`warn`]: `warn_once!` for impossible states; [`sysctl`]: the
//!   read-only `kernel.pid_max_max`;
//! - [`list`]: the one intrusive list (an enclave's members, each CPU's
//!   runnable ghost tasks);
//! - [`anchor`]: counted references on an object that waits for them (a
//!   task's on its enclave) and back-references to what it keeps;
//! - [`slot`]: the boxed per-task state on `task_struct::ghost`.

pub mod anchor;
pub mod anonfd;
pub mod cpu;
pub mod cred;
pub mod keep;
pub mod kernfs;
pub mod list;
pub mod mm;
pub mod once;
pub mod percpu;
pub mod rawlock;
pub mod rcu;
pub mod rq;
pub mod sched_class;
pub mod shared;
pub mod slot;
pub mod sysctl;
pub mod task;
pub mod time;
pub mod timerfd;
pub mod uapi;
pub mod waitq;
pub mod warn;
pub mod work;

/// An immutable C operations table (a `struct file_operations` and the
/// like) in a `static`, so C can be handed a pointer to it.
#[repr(transparent)]
pub struct OpsTable<T>(T);

// SAFETY: `OpsTable::new`'s contract: the table holds only function
// pointers and pointers to immutable statics, and nobody writes it.
unsafe impl<T> Sync for OpsTable<T> {}

impl<T> OpsTable<T> {
    /// Wraps `table`.
    ///
    /// # Safety
    ///
    /// `table` must hold only function pointers and pointers to immutable
    /// statics, and must not be written through the pointer C gets.
    pub const unsafe fn new(table: T) -> Self {
        OpsTable(table)
    }

    /// The table.
    pub const fn get(&self) -> &T {
        &self.0
    }
}
