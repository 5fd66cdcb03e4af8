// SPDX-License-Identifier: GPL-2.0

//! Timerfds with a ghost part: thin wrappers over the timerfd core's
//! `ghost_timerfd_settime()` (patch 0008) and the kernel's `itimerspec`
//! copies to and from user memory.

use kernel::bindings;
use kernel::prelude::*;

/// A timer setting (`struct itimerspec64`), as `timerfd_settime()` takes
/// and reports it.
pub struct TimerSpec(bindings::itimerspec64);

impl TimerSpec {
    /// Copies a `struct __kernel_itimerspec` in from user address `at`
    /// (`EFAULT` if it is not readable).
    pub fn read(at: usize) -> Result<TimerSpec> {
        // SAFETY: all-zero is a valid `itimerspec64` (integers only).
        let mut its: bindings::itimerspec64 = unsafe { core::mem::zeroed() };
        // SAFETY: `its` is valid for writes; `at` is only handed to the
        // kernel's user-copy routine, which checks it.
        let r = unsafe { bindings::get_itimerspec64(&mut its, at as *const _) };
        if r != 0 {
            return Err(EFAULT);
        }
        Ok(TimerSpec(its))
    }

    /// Copies it out to user address `at` as a `struct __kernel_itimerspec`
    /// (`EFAULT` if it is not writable).
    pub fn write(&self, at: usize) -> Result {
        // SAFETY: `self.0` is valid for reads; `at` is only handed to the
        // kernel's user-copy routine, which checks it.
        let r = unsafe { bindings::put_itimerspec64(&self.0, at as *mut _) };
        if r != 0 {
            return Err(EFAULT);
        }
        Ok(())
    }
}

/// The ghost part of a timerfd (`struct timerfd_ghost`).
#[derive(Clone, Copy)]
pub struct TimerfdGhost {
    /// The CPU whose agent hears of expiries.
    pub cpu: i32,
    /// `TIMERFD_GHOST_*`.
    pub flags: i32,
    /// Reported in `MSG_CPU_TIMER_EXPIRED`.
    pub type_: u64,
    /// Reported in `MSG_CPU_TIMER_EXPIRED`.
    pub cookie: u64,
}

/// `timerfd_settime(fd, flags, new, &old)` that also sets the timerfd's
/// ghost part; returns the old setting. `EBADF` for an fd that is no
/// timerfd, else the errors of `timerfd_settime()`. Process context.
pub fn settime(fd: i32, flags: i32, new: &TimerSpec, ghost: TimerfdGhost) -> Result<TimerSpec> {
    let g = bindings::timerfd_ghost {
        cpu: ghost.cpu,
        flags: ghost.flags,
        type_: ghost.type_,
        cookie: ghost.cookie,
    };
    // SAFETY: all-zero is a valid `itimerspec64`.
    let mut old: bindings::itimerspec64 = unsafe { core::mem::zeroed() };
    // SAFETY: every pointer is to a valid local for the call; the callee
    // looks the fd up itself.
    let r = unsafe { bindings::ghost_timerfd_settime(fd, flags, &new.0, &mut old, &g) };
    if r != 0 {
        return Err(Error::from_errno(r));
    }
    Ok(TimerSpec(old))
}

/// Reads the ghost part C hands to `ghost_timerfd_expired()`.
///
/// # Safety
///
/// `g` is NULL or points to a valid `struct timerfd_ghost` for the call.
pub unsafe fn ghost_part(g: *const bindings::timerfd_ghost) -> Option<TimerfdGhost> {
    // SAFETY: the caller's contract.
    let g = unsafe { g.as_ref() }?;
    Some(TimerfdGhost {
        cpu: g.cpu,
        flags: g.flags,
        type_: g.type_,
        cookie: g.cookie,
    })
}
