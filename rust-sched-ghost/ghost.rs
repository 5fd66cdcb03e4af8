// SPDX-License-Identifier: GPL-2.0

//! ghost-rs: Google's ghOSt scheduling classes for Linux, in Rust.
//!
//! ghOSt delegates thread scheduling to userspace *agents*. The kernel reports
//! every scheduling event as a message in shared memory; agents decide and
//! commit *transactions*, which the kernel carries out. This crate is the
//! kernel side: it has mechanism and no policy.
//!
//! Layout of the crate:
//!
//! - [`sys`]: the thin safe wrappers over the C kernel (runqueues, tasks,
//!   kernfs, mappable memory, locks, wait queues, the `sched_class` adapter,
//!   the intrusive list, counted enclave references, the per-task slot):
//!   with the C entry points ([`entry`]), the only code that is not safe
//!   Rust;
//! - [`classes`]: `ghost_sched_class` (below fair and ext) and
//!   `ghost_agent_sched_class` (above deadline, below stop);
//! - [`selftest`]: the boot-time check that both classes sit where the core
//!   scheduler expects them;
//! - [`ghostfs`]: the `ghost` filesystem (`/sys/fs/ghost`);
//! - [`registry`]: the live enclaves by id, and which CPUs each owns
//!   ([`cpu_enclave`]: each CPU's owner, read lock-free under RCU);
//!   [`enclave`]: the enclave object, its member list and task count
//!   (its ghostfs directory is [`ghostfs::dir`]); [`members`]: tasks and
//!   agents joining and leaving an enclave (above both the enclave and
//!   [`gtask`]);
//! - [`msgs`]: message production (task and CPU messages);
//! - [`gtask`]: a task's ghOSt state, its
//!   stay's state machine in [`gstate`];
//! - [`cpu_data`], [`swregion`]: the memory agents map (transactions,
//!   status words), on [`sys::mm`] (mappable buffers) and [`sw`] (the status-word
//!   layout and allocator);
//! - [`gtid`]: global task ids;
//! - [`entry`]: every C entry point of the crate (scheduler hooks, fork,
//!   exit, procfs, `ghost_run(2)`, CPU hotplug), as thin trampolines to the
//!   modules that do the work;
//! - [`ghostfs::ioctl`]: the `GHOST_IOC_*` ioctls of an enclave's `ctl`,
//!   their arguments copied whole as the uapi structs ([`ghostfs::uarg`]);
//! - [`queue`]: message queues (descriptors and mappings) on [`ring`] (the
//!   ring producer);
//! - [`parse`]: parsers for what userspace writes to ghostfs files;
//! - [`fallback`]: the agentless fallback (an orphaned enclave's tasks run
//!   until a new agent attaches).
//!
//! [`parse`], [`gtid`], [`sw`], [`ring`] and [`gstate`] are pure code, also
//! unit-tested on the host.
//!
//! The interface is ghOSt ABI [`GHOST_VERSION`] (`include/uapi/linux/ghost.h`).

// `pin_init!` of the enclave (one macro step per field) needs more than the
// default 128.
#![recursion_limit = "256"]

use kernel::prelude::*;

pub mod agent;
pub mod classes;
pub mod cpu_data;
pub mod cpu_enclave;
pub mod destroy;
pub mod enclave;
pub mod entry;
pub mod fallback;
pub mod ghostfs;
pub mod gstate;
pub mod gtask;
pub mod gtid;
pub mod hotplug;
pub mod members;
pub mod msg;
pub mod msgs;
pub mod parse;
pub mod queue;
pub mod registry;
pub mod ring;
pub mod sched;
pub mod selftest;
pub mod sw;
pub mod swregion;
pub mod sys;
pub mod timerfd;
pub mod txn;
pub mod watchdog;

/// [`sys::OpsTable`], where the crate's modules have always named it.
pub use sys::OpsTable;

/// The ghOSt ABI version this kernel implements.
pub const GHOST_VERSION: u32 = kernel::uapi::GHOST_VERSION;

module! {
    type: Ghost,
    name: "ghost",
    author: "ghost-rs developers",
    description: "ghOSt: scheduling delegated to userspace agents",
    license: "GPL",
}

/// The built-in "module": runs once at boot (device initcall level).
struct Ghost;

impl kernel::Module for Ghost {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        selftest::check_class_order()?;
        agent::percpu::init(agent::wake_work)?;
        agent::throttle::init()?;
        txn::init()?;
        fallback::init()?;
        watchdog::init();
        sys::sysctl::init()?;
        hotplug::init()?;
        ghostfs::init()?;
        pr_info!(
            "ABI {} ready (ghostfs type \"ghost\", mount at /sys/fs/ghost)\n",
            GHOST_VERSION
        );
        Ok(Ghost)
    }
}
