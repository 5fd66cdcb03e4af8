// SPDX-License-Identifier: GPL-2.0

//! Every C entry point of the crate (`#[no_mangle]`, declared in
//! `<linux/ghost.h>` and the patched core files), as thin trampolines in
//! the style of the [`crate::sys::sched_class`] adapter: each converts the
//! raw pointers C passes into the crate's safe types ([`Rq`], [`TaskPtr`],
//! [`SeqFile`]), stating why that is sound, calls the module that does the
//! work, and turns its `Result` into an errno.
//!
//! | Entry point | Called by | Work in |
//! |---|---|---|
//! | `ghost_sched_fork`, `ghost_sched_cancel_fork` | `sched_fork()`, `sched_cancel_fork()` | [`crate::sched`] |
//! | `ghost_setscheduler_check` | `__sched_setscheduler()` | [`crate::sched`] |
//! | `ghost_pnt_prologue`, `ghost_prepare_task_switch`, `ghost_tick` | `__schedule()`, `context_switch()`, `sched_tick()` | [`crate::sched`] |
//! | `ghost_agent_picked` | sched_ext's `put_prev_task_scx()`, `switch_class()` | [`crate::classes`] |
//! | `ghost_alloc_gtid`, `ghost_group_exit` | `copy_process()`, `do_exit()` | [`crate::sys::task`], [`crate::enclave`] |
//! | `ghost_proc_show_gtid` | `/proc/<pid>/ghost/gtid` | here |
//! | `ghost_run` | `ghost_run(2)` | [`crate::agent`] |
//! | `ghost_cpu_deactivate` | `sched_cpu_deactivate()` | [`crate::hotplug`] |
//! | `ghost_timerfd_expired` | `timerfd_triggered()` | [`crate::timerfd`] |
//! | `ghost_commit_greedy_txn` | `exit_to_user_mode_prepare()` | [`crate::txn`] |

use crate::sys::kernfs::SeqFile;
use crate::sys::rq::{Rq, TaskPtr};
use crate::sys::sched_class::BalanceUnlock;
use core::fmt::Write;
use kernel::bindings;
use kernel::ffi::{c_int, c_long, c_uint};
use kernel::prelude::*;

/// 0 or the negative errno of `r`.
fn errno_of(r: Result) -> c_int {
    match r {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// `sched_fork()`: `p` is a new task, not yet visible to anyone. Nonzero:
/// the child must fall back to `SCHED_NORMAL`. Process context.
///
/// # Safety
///
/// `p` is the task being forked.
#[no_mangle]
pub unsafe extern "C" fn ghost_sched_fork(p: *mut bindings::task_struct) -> c_int {
    // SAFETY: `p` is the child being built; alive for the call.
    let Some(p) = (unsafe { TaskPtr::from_raw(p) }) else {
        return 0;
    };
    errno_of(crate::members::fork(p))
}

/// `sched_cancel_fork()`: the fork of `p` failed after `sched_fork()`.
///
/// # Safety
///
/// `p` is the task whose fork failed; no one else can see it.
#[no_mangle]
pub unsafe extern "C" fn ghost_sched_cancel_fork(p: *mut bindings::task_struct) {
    // SAFETY: `p` is alive for the call.
    if let Some(p) = unsafe { TaskPtr::from_raw(p) } {
        crate::members::cancel_fork(p);
    }
}

/// `__sched_setscheduler()` of `p` to `policy`, when the old or the new
/// policy is `SCHED_GHOST`: 0 or a negative errno. Process context, no lock
/// held.
///
/// # Safety
///
/// `p` is a task the caller holds a reference on.
#[no_mangle]
pub unsafe extern "C" fn ghost_setscheduler_check(
    p: *mut bindings::task_struct,
    policy: c_int,
    user: bool,
) -> c_int {
    // SAFETY: the caller holds a reference.
    let Some(p) = (unsafe { TaskPtr::from_raw(p) }) else {
        return EINVAL.to_errno();
    };
    errno_of(crate::sched::setscheduler_check(p, policy, user))
}

/// The pick-next prologue of `__schedule()`.
///
/// # Safety
///
/// Called by `__schedule()` with `rq` locked and pinned by `rf`, right
/// before the pick, and `prev == rq->curr`.
#[no_mangle]
pub unsafe extern "C" fn ghost_pnt_prologue(
    rq: *mut bindings::rq,
    prev: *mut bindings::task_struct,
    rf: *mut bindings::rq_flags,
) {
    // SAFETY: `rq` is locked and pinned by `rf` before the pick, for this
    // call (the caller's guarantee).
    let unlock = unsafe { BalanceUnlock::for_prologue(rq, rf) };
    // SAFETY: `rq` is locked by the caller for this call.
    let rq = unsafe { Rq::from_raw(rq) };
    // SAFETY: `prev` is the current task of the locked `rq`: alive.
    let Some(prev) = (unsafe { TaskPtr::from_raw(prev) }) else {
        crate::warn_once!("ghost_pnt_prologue: prev is NULL");
        return;
    };
    crate::sched::pnt_prologue(rq, prev, &unlock);
}

/// The task switch from `prev` to `next` (`prepare_task_switch()`).
///
/// # Safety
///
/// Called by `context_switch()` with `rq` locked.
#[no_mangle]
pub unsafe extern "C" fn ghost_prepare_task_switch(
    rq: *mut bindings::rq,
    prev: *mut bindings::task_struct,
    next: *mut bindings::task_struct,
) {
    // SAFETY: `rq` is locked by the caller for this call.
    let rq = unsafe { Rq::from_raw(rq) };
    // SAFETY: both tasks are on this locked rq, switching: alive.
    let (Some(prev), Some(next)) = (unsafe { TaskPtr::from_raw(prev) }, unsafe {
        TaskPtr::from_raw(next)
    }) else {
        crate::warn_once!("ghost_prepare_task_switch: NULL task");
        return;
    };
    crate::sched::prepare_task_switch(rq, prev, next);
}

/// The scheduler tick.
///
/// # Safety
///
/// Called by `sched_tick()` with `rq` locked.
#[no_mangle]
pub unsafe extern "C" fn ghost_tick(rq: *mut bindings::rq) {
    // SAFETY: `rq` is locked by the caller for this call.
    let rq = unsafe { Rq::from_raw(rq) };
    crate::sched::tick(rq);
    crate::watchdog::tick();
}

/// sched_ext's `put_prev_task_scx()` / `switch_class()`: whether `next`
/// is `rq`'s agent, picked by `ghost_agent_sched_class` (a class above ext)
/// though its `sched_class` is `ghost_sched_class` (below ext).
///
/// # Safety
///
/// Called with `rq` locked; `next` is the task picked on it.
#[no_mangle]
pub unsafe extern "C" fn ghost_agent_picked(
    rq: *mut bindings::rq,
    next: *mut bindings::task_struct,
) -> bool {
    // SAFETY: `rq` is locked by the caller for this call.
    let rq = unsafe { Rq::from_raw(rq) };
    // SAFETY: `next` was picked on this locked rq: alive.
    let Some(next) = (unsafe { TaskPtr::from_raw(next) }) else {
        return false;
    };
    crate::classes::agent_picked(rq, next)
}

/// `copy_process`: the gtid of a new task whose pid in the initial
/// namespace is `pid`. Runs for every fork; lock-free.
#[no_mangle]
pub extern "C" fn ghost_alloc_gtid(pid: bindings::pid_t) -> i64 {
    crate::sys::task::alloc_gtid(pid)
}

/// `do_exit`: the last thread of thread group `tgid` is exiting. Destroys
/// the ephemeral enclaves it created. Process context; may sleep.
#[no_mangle]
pub extern "C" fn ghost_group_exit(tgid: bindings::pid_t) {
    crate::registry::owner_exited(tgid);
}

/// `/proc/<pid>/ghost/gtid`: the task's gtid, in decimal.
///
/// # Safety
///
/// Called by procfs with the live seq_file of the read and a task it holds
/// a reference on.
#[no_mangle]
pub unsafe extern "C" fn ghost_proc_show_gtid(
    m: *mut bindings::seq_file,
    _ns: *mut bindings::pid_namespace,
    _pid: *mut bindings::pid,
    t: *mut bindings::task_struct,
) -> c_int {
    // SAFETY: procfs holds a reference on the task for the call.
    let Some(t) = (unsafe { TaskPtr::from_raw(t) }) else {
        return EINVAL.to_errno();
    };
    // SAFETY: `m` is the live seq_file of this read.
    let m = unsafe { SeqFile::from_raw(m) };
    match writeln!(m, "{}", t.gtid()) {
        Ok(()) => 0,
        Err(_) => EINVAL.to_errno(),
    }
}

/// `ghost_run(2)`: the system call of `GHOST_IOC_RUN` (same arguments,
/// same function: [`crate::agent::run`]).
#[no_mangle]
pub extern "C" fn ghost_run(
    gtid: i64,
    agent_barrier: u32,
    task_barrier: u32,
    run_cpu: i32,
    run_flags: i32,
) -> c_long {
    errno_of(crate::agent::run(
        gtid,
        agent_barrier,
        task_barrier,
        run_cpu,
        run_flags,
    )) as c_long
}

/// `sched_cpu_deactivate()` of `cpu`, before the CPU is deactivated (its
/// hotplug thread: process context): nonzero keeps it online.
#[no_mangle]
pub extern "C" fn ghost_cpu_deactivate(cpu: c_uint) -> c_int {
    match crate::hotplug::may_go_offline(cpu) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// `timerfd_triggered()`: a timerfd whose ghost part `g` is enabled
/// expired. Timer callback: interrupt context, no runqueue lock held.
///
/// # Safety
///
/// `g` points to a valid `struct timerfd_ghost` for the call.
#[no_mangle]
pub unsafe extern "C" fn ghost_timerfd_expired(g: *const bindings::timerfd_ghost) {
    // SAFETY: the caller's contract.
    if let Some(g) = unsafe { crate::sys::timerfd::ghost_part(g) } {
        crate::timerfd::expired(g);
    }
}

/// `exit_to_user_mode_prepare()`: a commit point of this CPU's greedy
/// transaction. Interrupts off, no lock held; called only when this CPU's
/// `ghost_cpu_enclave` is set.
#[no_mangle]
pub extern "C" fn ghost_commit_greedy_txn() {
    crate::txn::commit_greedy();
}
