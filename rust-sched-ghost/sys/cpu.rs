// SPDX-License-Identifier: GPL-2.0

//! CPU and NUMA topology, and CPU hotplug callbacks.
//!
//! - CPU ids and masks: [`nr_cpu_ids`], [`cpu_valid`], [`cpu_online`],
//!   [`cpu_active`], [`this_cpu`]; NUMA nodes: [`node_online`];
//! - [`OfflineCheck`] and [`setup_offline_callback`]: a dynamic hotplug
//!   state whose teardown may refuse to take a CPU offline.
//!
//! Every function tests a bit of a kernel CPU or node mask after checking the
//! id's range; none sleeps, any context may call them.

use kernel::bindings;
use kernel::ffi::{c_int, c_uint};
use kernel::prelude::*;
use kernel::str::CStr;

/// The number of CPU ids.
pub fn nr_cpu_ids() -> u32 {
    // SAFETY: `nr_cpu_ids` is set during early boot and read-only afterwards.
    unsafe { bindings::nr_cpu_ids }
}

/// Whether `cpu` is a CPU id of this machine.
pub fn cpu_valid(cpu: i32) -> bool {
    u32::try_from(cpu).is_ok_and(|c| c < nr_cpu_ids())
}

/// Whether `cpu` is online.
pub fn cpu_online(cpu: i32) -> bool {
    // SAFETY: only tests a bit of the online mask; the id is range-checked.
    cpu_valid(cpu) && unsafe { bindings::ghost_cpu_online(cpu as u32) }
}

/// Whether `cpu` is active: online and not on its way down (the core
/// deactivates a CPU before it takes it offline).
pub fn cpu_active(cpu: i32) -> bool {
    // SAFETY: only tests a bit of the active mask; the id is range-checked.
    cpu_valid(cpu) && unsafe { bindings::ghost_cpu_active(cpu as u32) }
}

/// The CPU the caller runs on (stable only with preemption off; callers
/// use it as a hint or under an rq lock).
pub fn this_cpu() -> i32 {
    // SAFETY: reads this CPU's id; any value returned is a valid CPU id.
    unsafe { bindings::ghost_this_cpu() }
}

/// Whether NUMA node `node` exists and is online.
pub fn node_online(node: i32) -> bool {
    // SAFETY: only tests a bit of the online-node mask; the C helper checks
    // the range (`0 <= node < nr_node_ids`).
    unsafe { bindings::ghost_node_online(node) }
}

/// The teardown check of a dynamic hotplug state (see
/// [`setup_offline_callback`]).
pub trait OfflineCheck {
    /// Whether `cpu` may go offline; an error (e.g. `EBUSY`) keeps it
    /// online. Runs in the `cpuhp` thread of `cpu` (process context).
    fn may_go_offline(cpu: u32) -> Result;
}

/// The C teardown callback of `T`.
///
/// # Safety
///
/// Called by the hotplug core, in process context.
unsafe extern "C" fn offline_trampoline<T: OfflineCheck>(cpu: c_uint) -> c_int {
    match T::may_go_offline(cpu) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// Registers a dynamic online state (`CPUHP_AP_ONLINE_DYN`) named `name`
/// whose teardown runs `T`'s check, with no startup callback; it is not
/// invoked for the CPUs online now. Boot, once per `T`.
pub fn setup_offline_callback<T: OfflineCheck>(name: &'static CStr) -> Result {
    // SAFETY: a static name and a callback that lives for good; no startup
    // callback, and the teardown is not invoked now.
    let r = unsafe {
        bindings::__cpuhp_setup_state(
            bindings::cpuhp_state_CPUHP_AP_ONLINE_DYN,
            name.as_char_ptr(),
            false,
            None,
            Some(offline_trampoline::<T>),
            false,
        )
    };
    if r < 0 {
        return Err(Error::from_errno(r));
    }
    Ok(())
}

/// Makes `cpu` reschedule (an IPI if remote), if it is online. Process
/// context, no rq lock held.
pub fn resched_cpu(cpu: i32) {
    if cpu_online(cpu) {
        // SAFETY: `cpu` is an online CPU id; `resched_cpu` takes its rq
        // lock, which the caller does not hold.
        unsafe { bindings::resched_cpu(cpu) };
    }
}
