// SPDX-License-Identifier: GPL-2.0

//! The read-only sysctl `kernel.pid_max_max`: the pid bound gtids are laid
//! out for, which ghOSt userspace reads to decode gtids.

use core::cell::UnsafeCell;
use kernel::bindings;
use kernel::ffi::c_int;
use kernel::prelude::*;

/// A read-only `int` that a sysctl table points at.
#[repr(transparent)]
struct SysctlInt(UnsafeCell<c_int>);

// SAFETY: the value is written only at compile time; sysctl only reads it
// (mode 0444).
unsafe impl Sync for SysctlInt {}

/// The value of `kernel.pid_max_max`: the pid bound gtids are laid out for.
static PID_MAX_MAX: SysctlInt = SysctlInt(UnsafeCell::new(bindings::GHOST_PID_MAX_LIMIT));

/// A sysctl table that C reads through a pointer (kept in writable memory:
/// the C side takes it by non-const pointer).
#[repr(transparent)]
struct SysctlTable(UnsafeCell<[bindings::ctl_table; 1]>);

// SAFETY: only the sysctl core touches the table, under its own locks.
unsafe impl Sync for SysctlTable {}

static PID_MAX_MAX_TABLE: SysctlTable = SysctlTable(UnsafeCell::new([bindings::ctl_table {
    procname: kernel::c_str!("pid_max_max").as_char_ptr(),
    data: PID_MAX_MAX.0.get().cast(),
    maxlen: core::mem::size_of::<c_int>() as c_int,
    mode: 0o444,
    proc_handler: Some(bindings::proc_dointvec),
    poll: core::ptr::null_mut(),
    extra1: core::ptr::null_mut(),
    extra2: core::ptr::null_mut(),
}]));

/// Registers `/proc/sys/kernel/pid_max_max` (ghOSt userspace computes the
/// gtid layout from it). Once, at boot; the table stays for good.
pub fn init_pid_max_max() -> Result {
    let table = PID_MAX_MAX_TABLE.0.get();
    // SAFETY: `table` is a static array of one entry, valid for the kernel's
    // lifetime; the path is a static string.
    let header = unsafe {
        bindings::register_sysctl_sz(
            kernel::c_str!("kernel").as_char_ptr(),
            table.cast::<bindings::ctl_table>(),
            1,
        )
    };
    if header.is_null() {
        return Err(ENOMEM);
    }
    Ok(())
}
