// SPDX-License-Identifier: GPL-2.0

//! CPU hotplug: a CPU that belongs to an enclave, or has an agent, cannot
//! go offline.
//!
//! An enclave's agents are pinned to their CPUs and its tasks are latched
//! there; rather than tear that down under the agent's feet, the offline is
//! refused with `EBUSY` and the core keeps the CPU online. So `echo 0 >
//! /sys/devices/system/cpu/cpuN/online` fails with `EBUSY` while CPU N is
//! an enclave's, or while an agent of CPU N has not left yet (a destroy
//! frees the enclave's CPUs before its agents are gone): remove it from the
//! enclave's `cpulist` (or destroy the enclave and let its agents leave)
//! first.
//!
//! The refusal comes first, from `sched_cpu_deactivate()`, before the core
//! deactivates the CPU: once inactive, the CPU pushes every task that
//! schedules there to another CPU, breaking its affinity, and an agent
//! pushed so would sit on a CPU where no agent class runs it, for good (its
//! process unkillable, a destroy waiting for it). A dynamic hotplug state's
//! teardown callback checks again, later: a `cpulist` write checks that
//! the CPU is *active* under the enclave registry's lock, and this second
//! check takes that lock after the core deactivated the CPU, so a write
//! that slipped in between the first check and the deactivation is seen
//! here (one that comes later sees the CPU inactive and gets `ENODEV`).
//! So an enclave CPU is always online, and `GHOST_TXN_CPU_OFFLINE` (still
//! checked by every commit) cannot happen.

//! Calls: [`crate::registry`] (whether a CPU is an enclave's), [`crate::sys::rq`]
//! (whether an agent holds it), [`crate::sys::cpu`] (the hotplug state).

use crate::sys::cpu::OfflineCheck;
use kernel::prelude::*;

/// Whether `cpu` may go offline: `EBUSY` if it belongs to an enclave
/// (logged) or an agent holds it (from `become agent` until the agent has
/// left the class). Process context. Also `sched_cpu_deactivate()`'s
/// check, through [`crate::entry`].
pub fn may_go_offline(cpu: u32) -> Result {
    if crate::registry::cpu_in_enclave(cpu as usize) {
        pr_info!("CPU {} belongs to an enclave: it stays online\n", cpu);
        return Err(EBUSY);
    }
    let claimed = i32::try_from(cpu)
        .ok()
        .and_then(crate::agent::percpu::GhostRq::of)
        .is_some_and(|g| g.agent_claimed());
    if claimed {
        // Not logged: a destroy's agents leave soon, and a retrying writer
        // would flood the log.
        return Err(EBUSY);
    }
    Ok(())
}

/// The teardown check of the hotplug state (the `cpuhp` thread of the CPU:
/// process context).
struct Teardown;

impl OfflineCheck for Teardown {
    fn may_go_offline(cpu: u32) -> Result {
        may_go_offline(cpu)
    }
}

/// Registers the teardown check (boot). Not invoked now: no CPU belongs to
/// an enclave yet.
pub fn init() -> Result {
    crate::sys::cpu::setup_offline_callback::<Teardown>(kernel::c_str!("sched/ghost:online"))
}
