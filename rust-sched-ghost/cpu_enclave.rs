// SPDX-License-Identifier: GPL-2.0

//! Per CPU, the enclave owning it, published for lock-free readers under
//! RCU: the one lock-free owner table. The return-to-user greedy commit
//! point ([`crate::txn`]) finds its CPU's enclave with
//! [`with_this_cpu_enclave`], and a commit learns its enclave's CPUs with
//! [`owned_by`] (through the registry's [`crate::enclave::CpuOwners`]),
//! neither taking a lock. The entry code calls that commit point only on a
//! CPU whose entry is set (the table is the C per-CPU variable
//! `ghost_cpu_enclave`, see [`crate::sys::rcu`]).
//!
//! Written only by [`crate::registry`], under its lock, along with its
//! `cpu_owner` (the same fact: a CPU's entry is the live enclave whose id is
//! its `cpu_owner`): set when a CPU joins a live enclave, cleared when it
//! leaves one (a `cpulist` write, or the enclave taken out to be
//! destroyed). The
//! [`crate::sys::rcu::Retired`] count a clear gives back is dropped after
//! the registry lock, in process context: it waits for a grace period, so
//! when the registry's `set_cpus` or `take` returns, no reader still uses
//! the enclave for a CPU it lost, and the enclave (its `cpu_data`
//! transactions included) cannot be freed before.
//!
//! Owns: the per-CPU pointers. Calls: [`crate::sys::rcu`]. Called by:
//! [`crate::registry`] (writes, and its lock-free `cpus_of`), [`crate::txn`]
//! (reads).

use crate::enclave::Enclave;
use crate::sys::rcu::RcuPerCpu;
use kernel::prelude::*;

/// The published owner of each CPU (each entry holds a count of it).
pub static CPU_ENCLAVE: RcuPerCpu<Enclave> = RcuPerCpu::new();

/// Sets up [`CPU_ENCLAVE`], every CPU unowned. Once, at boot.
pub fn init() -> Result {
    CPU_ENCLAVE.init()
}

/// Calls `f` with the enclave owning this CPU, if any, and this CPU's id,
/// lock-free. The caller has interrupts off (the return-to-user hook, an
/// irq_work): that is the RCU-sched read-side section `f` runs in, so `f`
/// must neither sleep nor enable interrupts. The answer may be stale by a
/// CPU-set change still waiting for its grace period, but the enclave is
/// alive for the call.
pub fn with_this_cpu_enclave<R>(f: impl FnOnce(&Enclave, i32) -> R) -> Option<R> {
    CPU_ENCLAVE.with_this_cpu(f)
}

/// Whether `e` owns `cpu` now (lock-free: an address comparison; the
/// caller holds `e`). Any context.
pub fn owned_by(cpu: i32, e: &Enclave) -> bool {
    CPU_ENCLAVE.is(cpu, e)
}
