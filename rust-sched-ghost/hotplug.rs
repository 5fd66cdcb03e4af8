// SPDX-License-Identifier: GPL-2.0

//! CPU hotplug: a CPU that belongs to an enclave cannot go offline.
//!
//! An enclave's agents are pinned to their CPUs and its tasks are latched
//! there; rather than tear that down under the agent's feet, the teardown
//! callback of a dynamic hotplug state refuses with `EBUSY`, and the core
//! rolls the CPU back online (as it does when the deadline scheduler
//! refuses). So `echo 0 > /sys/devices/system/cpu/cpuN/online` fails with
//! `EBUSY` while CPU N is an enclave's: remove it from the enclave's
//! `cpulist` (or destroy the enclave) first.
//!
//! Nor can an offline CPU join an enclave: a `cpulist` write naming one
//! gets `ENODEV`. The write checks that the CPU is *active* under the
//! enclave registry's lock, and this callback takes that lock after the
//! core deactivated the CPU (`CPUHP_AP_ACTIVE` is torn down before the
//! dynamic states): a write that comes first is seen here, one that comes
//! later sees the CPU inactive. So an enclave CPU is always online, and
//! `GHOST_TXN_CPU_OFFLINE` (still checked by every commit) cannot happen.

use kernel::bindings;
use kernel::ffi::{c_int, c_uint};
use kernel::prelude::*;

/// The teardown callback (the `cpuhp` thread of `cpu`: process context).
///
/// # Safety
///
/// Called by the hotplug core.
unsafe extern "C" fn offline(cpu: c_uint) -> c_int {
    if crate::enclave::cpu_in_enclave(cpu as usize) {
        pr_info!("CPU {} belongs to an enclave: it stays online\n", cpu);
        return -(bindings::EBUSY as c_int);
    }
    0
}

/// Registers the callback (boot).
pub fn init() -> Result {
    // SAFETY: a static name and a callback that lives for good; no startup
    // callback, not invoked now (no CPU belongs to an enclave yet).
    let r = unsafe {
        bindings::__cpuhp_setup_state(
            bindings::cpuhp_state_CPUHP_AP_ONLINE_DYN,
            kernel::c_str!("sched/ghost:online").as_char_ptr(),
            false,
            None,
            Some(offline),
            false,
        )
    };
    if r < 0 {
        return Err(Error::from_errno(r));
    }
    Ok(())
}
