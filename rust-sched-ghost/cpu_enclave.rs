// SPDX-License-Identifier: GPL-2.0

//! Per CPU, the enclave owning it, published for lock-free readers under
//! RCU: the return-to-user greedy commit point ([`crate::txn`]) finds the
//! CPU's enclave with [`with_cpu_enclave`] without taking a lock.
//!
//! Written only by [`crate::registry`], under its lock, along with its
//! `cpu_owner`: set when a CPU joins a live enclave, cleared when it leaves
//! one (a `cpulist` write, or the enclave taken out to be destroyed). The
//! [`crate::sys::rcu::Retired`] count a clear gives back is dropped after
//! the registry lock, in process context: it waits for a grace period, so
//! when the registry's `set_cpus` or `take` returns, no reader still uses
//! the enclave for a CPU it lost, and the enclave (its `cpu_data`
//! transactions included) cannot be freed before.
//!
//! Owns: the per-CPU pointers. Calls: [`crate::sys::rcu`]. Called by:
//! [`crate::registry`] (writes), [`crate::txn`] (reads).

use crate::enclave::Enclave;
use crate::sys::rcu::RcuPerCpu;
use kernel::prelude::*;

/// The published owner of each CPU (each entry holds a count of it).
pub static CPU_ENCLAVE: RcuPerCpu<Enclave> = RcuPerCpu::new();

/// Sets up [`CPU_ENCLAVE`], every CPU unowned. Once, at boot.
pub fn init() -> Result {
    CPU_ENCLAVE.init()
}

/// Calls `f` with the enclave owning `cpu`, if any, lock-free, inside an
/// RCU-sched read-side section (`f` must not sleep). The answer may be
/// stale by a CPU-set change still waiting for its grace period, but the
/// enclave is alive for the call. Any context.
pub fn with_cpu_enclave<R>(cpu: i32, f: impl FnOnce(&Enclave) -> R) -> Option<R> {
    CPU_ENCLAVE.with(cpu, f)
}
