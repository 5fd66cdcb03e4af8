// SPDX-License-Identifier: GPL-2.0

//! Errors and credentials: errnos the `kernel` crate has no constant for, and
//! capability checks of the current task.
//!
//! Callers name the errnos and capabilities below (`errno(EDEADLK)`,
//! `capable(CAP_SYS_ADMIN)`) rather than `bindings::`; errnos the `kernel`
//! crate has are used from `kernel::error::code`.

use kernel::bindings;
use kernel::ffi::c_int;
use kernel::prelude::*;

/// `EDEADLK`: an agent would wait for itself.
pub const EDEADLK: u32 = bindings::EDEADLK;
/// `EOVERFLOW`: a value too large for its field.
pub const EOVERFLOW: u32 = bindings::EOVERFLOW;
/// `ESTALE`: a barrier the caller passed is out of date.
pub const ESTALE: u32 = bindings::ESTALE;
/// `EOPNOTSUPP`: an operation ghost-rs does not implement.
pub const EOPNOTSUPP: u32 = bindings::EOPNOTSUPP;

/// `CAP_SYS_ADMIN`.
pub const CAP_SYS_ADMIN: u32 = bindings::CAP_SYS_ADMIN;
/// `CAP_SYS_NICE`.
pub const CAP_SYS_NICE: u32 = bindings::CAP_SYS_NICE;

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

/// `ESTALE` (the kernel crate has no constant for it).
pub fn estale() -> Error {
    errno(ESTALE)
}
