// SPDX-License-Identifier: GPL-2.0

//! Errors and credentials: errnos the `kernel` crate has no constant for, and
//! capability checks of the current task.

use kernel::bindings;
use kernel::ffi::c_int;
use kernel::prelude::*;

/// An errno the `kernel` crate has no constant for (e.g. `EOPNOTSUPP`).
pub fn errno(e: u32) -> Error {
    Error::from_errno(c_int::try_from(e).map_or(-(bindings::EINVAL as c_int), |e| -e))
}

/// Whether the current task has `cap` in the initial user namespace.
pub fn capable(cap: u32) -> bool {
    let Ok(cap) = c_int::try_from(cap) else {
        return false;
    };
    // SAFETY: `capable` only reads the current task's credentials.
    unsafe { bindings::capable(cap) }
}

/// `CAP_SYS_NICE`.
pub const CAP_SYS_NICE: u32 = bindings::CAP_SYS_NICE;

/// `ESTALE` (the kernel crate has no constant for it).
pub fn estale() -> Error {
    errno(bindings::ESTALE)
}
