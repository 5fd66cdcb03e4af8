// SPDX-License-Identifier: GPL-2.0

//! ghost's sysctls, under `/proc/sys/kernel/`:
//!
//! - `pid_max_max` (read-only): the pid bound gtids are laid out for, which
//!   ghOSt userspace reads to decode gtids;
//! - `ghost_agent_throttle_ms` (0644, 0..=60000, default 100): how long an
//!   agent may run ahead of waiting tasks of other classes on its CPU before
//!   they get the CPU until the next tick (see `agent::throttle`); 0 turns
//!   throttling off (ghOSt's behaviour).

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicI32, Ordering};
use kernel::bindings;
use kernel::ffi::c_int;
use kernel::prelude::*;

/// A read-only `int` that a sysctl table points at.
#[repr(transparent)]
struct SysctlInt(UnsafeCell<c_int>);

// SAFETY: the value is written only at compile time; sysctl only reads it
// (mode 0444, or as a bound).
unsafe impl Sync for SysctlInt {}

/// The value of `kernel.pid_max_max`: the pid bound gtids are laid out for.
static PID_MAX_MAX: SysctlInt = SysctlInt(UnsafeCell::new(bindings::GHOST_PID_MAX_LIMIT));

/// The default of `kernel.ghost_agent_throttle_ms`.
pub const AGENT_THROTTLE_MS_DEFAULT: c_int = 100;

/// `kernel.ghost_agent_throttle_ms`, written by `proc_dointvec_minmax` (an
/// aligned `int` store) and read here with atomic loads.
static AGENT_THROTTLE_MS: AtomicI32 = AtomicI32::new(AGENT_THROTTLE_MS_DEFAULT);

/// The bounds of `kernel.ghost_agent_throttle_ms`.
static ZERO: SysctlInt = SysctlInt(UnsafeCell::new(0));
static THROTTLE_MAX: SysctlInt = SysctlInt(UnsafeCell::new(60_000));

/// `kernel.ghost_agent_throttle_ms` in nanoseconds (0: throttling off).
/// Any context.
pub fn agent_throttle_ns() -> i64 {
    i64::from(AGENT_THROTTLE_MS.load(Ordering::Relaxed).max(0)).saturating_mul(1_000_000)
}

/// A sysctl table that C reads through a pointer (kept in writable memory:
/// the C side takes it by non-const pointer).
#[repr(transparent)]
struct SysctlTable(UnsafeCell<[bindings::ctl_table; 2]>);

// SAFETY: only the sysctl core touches the table, under its own locks.
unsafe impl Sync for SysctlTable {}

static TABLE: SysctlTable = SysctlTable(UnsafeCell::new([
    bindings::ctl_table {
        procname: kernel::c_str!("pid_max_max").as_char_ptr(),
        data: PID_MAX_MAX.0.get().cast(),
        maxlen: core::mem::size_of::<c_int>() as c_int,
        mode: 0o444,
        proc_handler: Some(bindings::proc_dointvec),
        poll: core::ptr::null_mut(),
        extra1: core::ptr::null_mut(),
        extra2: core::ptr::null_mut(),
    },
    bindings::ctl_table {
        procname: kernel::c_str!("ghost_agent_throttle_ms").as_char_ptr(),
        data: AGENT_THROTTLE_MS.as_ptr().cast(),
        maxlen: core::mem::size_of::<c_int>() as c_int,
        mode: 0o644,
        proc_handler: Some(bindings::proc_dointvec_minmax),
        poll: core::ptr::null_mut(),
        extra1: ZERO.0.get().cast(),
        extra2: THROTTLE_MAX.0.get().cast(),
    },
]));

/// Registers ghost's sysctls (see the module). Once, at boot; the table
/// stays for good.
pub fn init() -> Result {
    let table = TABLE.0.get();
    // SAFETY: `table` is a static array of two entries, valid for the
    // kernel's lifetime, whose `data` and bounds point at statics of the
    // `int` size they declare; the path is a static string.
    let header = unsafe {
        bindings::register_sysctl_sz(
            kernel::c_str!("kernel").as_char_ptr(),
            table.cast::<bindings::ctl_table>(),
            2,
        )
    };
    if header.is_null() {
        return Err(ENOMEM);
    }
    Ok(())
}
