// SPDX-License-Identifier: GPL-2.0

//! Ghost timerfds (ghOSt ABI 91): an ordinary timerfd, armed with
//! `GHOST_IOC_TIMERFD_SETTIME`, whose expiries the agent of a CPU also hears
//! of as `MSG_CPU_TIMER_EXPIRED {cpu, type, cookie}`.
//!
//! - [`settime_ioctl`]: the ioctl. It is `timerfd_settime()` plus a ghost
//!   part `{cpu, flags, type, cookie}`; with `TIMERFD_GHOST_ENABLED` each
//!   expiry produces the message on `cpu`'s agent queue; without it (or
//!   after a plain `timerfd_settime()`) none. The timerfd itself behaves as
//!   always (its `read()` count, poll, periodic re-arming on read).
//! - [`expired`]: the timer callback's hook (interrupt context): it locks
//!   the CPU's runqueue, produces the message and wakes the agent as the
//!   queue's wakeup configuration says. A CPU without an agent (never had
//!   one, or left the enclave since) gets nothing.
//!
//! Owns: the ioctl's checks and the expiry's message. Calls:
//! [`crate::sys::timerfd`] (the timerfd core), [`crate::msgs::cpu`].

use crate::enclave::Enclave;
use crate::ghostfs::uarg;
use crate::sys::rq::RqGuard;
use crate::sys::timerfd::{settime, TimerSpec, TimerfdGhost};
use kernel::prelude::*;
use kernel::uapi;

/// `GHOST_IOC_TIMERFD_SETTIME {timerfd, flags, in_tmr, out_tmr,
/// timerfd_ghost}` on the ctl file of `e`. `EINVAL` for unknown ghost
/// flags, or with `TIMERFD_GHOST_ENABLED` a CPU that is not online or not
/// `e`'s; `EFAULT` for an unreadable `in_tmr` or unwritable `out_tmr`
/// (which may be NULL); `EBADF` for an fd that is no timerfd; else what
/// `timerfd_settime()` returns for `flags` and the setting.
pub fn settime_ioctl(e: &Enclave, arg: usize) -> Result<isize> {
    let a: uapi::ghost_ioc_timerfd_settime = uarg::read(arg)?;
    let tg = a.timerfd_ghost;
    let known = uapi::TIMERFD_GHOST_ENABLED as i32;
    if tg.flags & !known != 0 {
        return Err(EINVAL);
    }
    if tg.flags & known != 0 && !(crate::sys::cpu::cpu_online(tg.cpu) && e.owns_cpu(tg.cpu)) {
        return Err(EINVAL);
    }
    let new = TimerSpec::read(a.in_tmr as usize)?;
    let ghost = TimerfdGhost {
        cpu: tg.cpu,
        flags: tg.flags,
        type_: tg.type_,
        cookie: tg.cookie,
    };
    let old = settime(a.timerfd, a.flags, &new, ghost)?;
    if !a.out_tmr.is_null() {
        old.write(a.out_tmr as usize)?;
    }
    Ok(0)
}

/// A timerfd with ghost part `g` (enabled) expired: `CPU_TIMER_EXPIRED` for
/// the agent of `g.cpu`. Timer callback (interrupt context, no runqueue
/// lock held); never sleeps.
pub fn expired(g: TimerfdGhost) {
    if g.flags & uapi::TIMERFD_GHOST_ENABLED as i32 == 0 {
        return;
    }
    let Some(rq) = RqGuard::lock(g.cpu) else {
        return;
    };
    if let Some(lg) = rq.ghost() {
        crate::msgs::cpu::timer_expired(&rq, lg, g.type_, g.cookie);
    }
}
