//! The ghost-rs userspace library.
//!
//! ghost-rs is ghOSt (Linux scheduling delegated to userspace agents) for
//! Linux 6.12; this crate is what agents and tools are built on:
//!
//! - [`ghostfs`]: mounting `/sys/fs/ghost`, creating, listing, inspecting and
//!   destroying enclaves, tunables, moving tasks in and out;
//! - [`cpus`]: CPU sets and the cpulist syntax;
//! - [`gtid`]: which thread a gtid names;
//! - [`enclave`]: an enclave as an agent holds it: the `ctl` descriptor and
//!   its ioctls and commands (`become agent`, `discover tasks`), the
//!   `cpu_data` and status-word mappings, the `agent_online` claim;
//! - [`queue`]: message queues: creation, the ring consumer, typed messages;
//! - [`sw`]: status-word regions and lookups;
//! - [`txn`]: transactions in `cpu_data`, commits and sync groups;
//! - [`sys`]: checked system-call wrappers (`ghost_run`, the typed ioctls,
//!   signals, affinity), mostly through `nix`;
//! - [`ffi`]: the only module with `unsafe` (denied everywhere else): memory
//!   shared with the kernel ([`ffi::Mapping`]), the ghost ioctls and
//!   `ghost_run`, and the few calls `nix` has no safe wrapper for;
//! - [`policy`]: the interface a scheduling policy implements (run queues:
//!   enqueue, dequeue, pick) and the guide to writing one;
//! - [`scheduler`]: the kernel-free core of the runtime: what runs where
//!   (task states, each CPU's current task, latches, re-announcements),
//!   message dispatch, the pick step;
//! - [`agent`]: the agent runtime: one pinned agent thread per CPU, the
//!   message loop, shutdown and in-place upgrade;
//! - [`policies`]: the bundled policies (per-CPU FIFO, centralized FIFO);
//! - [`stats`]: what an agent counts;
//! - [`quantile`]: the nearest-rank quantile of benchmark samples;
//! - [`error`]: one error type that names the file or ioctl and the errno.
//!
//! Layouts and constants come from the `ghost-abi` crate (ghOSt ABI 91).

#![deny(unsafe_code)]

pub mod agent;
pub mod cpus;
pub mod enclave;
pub mod error;
#[allow(unsafe_code)]
pub mod ffi;
pub mod ghostfs;
pub mod gtid;
pub mod policies;
pub mod policy;
pub mod quantile;
pub mod queue;
pub mod scheduler;
pub mod stats;
pub mod sw;
pub mod sys;
pub mod txn;

pub use error::{Error, Result};
