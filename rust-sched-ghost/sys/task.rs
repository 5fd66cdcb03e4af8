// SPDX-License-Identifier: GPL-2.0

//! Tasks as ghOSt names them: by pid or by gtid ([`crate::gtid`]).

use crate::gtid::{GtidAllocator, Layout, TaskRef};
use crate::sys::rq::{Rq, TaskPtr};
use core::ptr::NonNull;
use kernel::bindings;
use kernel::prelude::*;

/// `SCHED_GHOST`.
pub const SCHED_GHOST: i32 = kernel::uapi::SCHED_GHOST as i32;

/// `SCHED_NORMAL`.
pub const SCHED_NORMAL: u32 = bindings::SCHED_NORMAL;

/// `SCHED_FLAG_RESET_ON_FORK`.
pub const SCHED_FLAG_RESET_ON_FORK: u64 = bindings::SCHED_FLAG_RESET_ON_FORK as u64;

/// The gtid layout of this kernel (from `PID_MAX_LIMIT`).
pub const LAYOUT: Layout = match Layout::new(bindings::GHOST_PID_MAX_LIMIT as u32) {
    Some(l) => l,
    // Unreachable: checked at compile time just below.
    None => Layout::FALLBACK,
};
const _: () = assert!(Layout::new(bindings::GHOST_PID_MAX_LIMIT as u32).is_some());

/// The source of every gtid.
static GTIDS: GtidAllocator = GtidAllocator::new();

/// A fresh gtid for a task whose pid (initial namespace) is `pid`.
pub fn alloc_gtid(pid: i32) -> i64 {
    GTIDS.alloc(&LAYOUT, pid)
}

/// A counted reference to a task.
///
/// The task is only ever reached through C accessors: bindgen gives
/// `task_struct` a 64-byte alignment that the task_struct cache does not
/// guarantee, so Rust references to it (as `kernel::task::Task` makes) are
/// not sound here.
///
/// # Invariants
///
/// `self.0` is a task on which this handle owns a reference.
pub struct TaskHandle(NonNull<bindings::task_struct>);

// SAFETY: a task reference may be dropped from any thread.
unsafe impl Send for TaskHandle {}
// SAFETY: `&TaskHandle` only reads the task through C accessors that are
// valid from any CPU while the reference is held (an enclave's member list
// reads a member's task while its owner may too).
unsafe impl Sync for TaskHandle {}

impl TaskHandle {
    /// Takes over a reference the caller holds on `p` (`None` if NULL).
    fn from_counted(p: *mut bindings::task_struct) -> Option<Self> {
        // INVARIANT: the caller passes a task on which it owns a reference.
        NonNull::new(p).map(TaskHandle)
    }

    /// The calling task.
    pub fn current() -> Result<Self> {
        // SAFETY: reads the per-CPU `current` pointer.
        let p = NonNull::new(unsafe { bindings::get_current() }).ok_or(ESRCH)?;
        // SAFETY: `current` is a live task; the reference taken here is
        // owned by the handle.
        unsafe { bindings::get_task_struct(p.as_ptr()) };
        // INVARIANT: a reference was just taken.
        Ok(TaskHandle(p))
    }

    /// Takes a reference on `p`.
    pub fn get(p: TaskPtr) -> Self {
        // SAFETY: `p` is alive (its invariant); the reference taken here is
        // owned by the handle.
        unsafe { bindings::get_task_struct(p.as_raw()) };
        // INVARIANT: a reference was just taken.
        TaskHandle(p.as_non_null())
    }

    /// The task, as the scheduler code reaches it.
    pub fn as_ptr(&self) -> TaskPtr {
        // SAFETY: the handle keeps the task alive while the result is used
        // (the borrow of `self` does not bound it: callers keep the handle).
        unsafe { TaskPtr::from_non_null(self.0) }
    }

    /// The task's gtid.
    pub fn gtid(&self) -> i64 {
        // SAFETY: the handle keeps the task alive (type invariant).
        unsafe { bindings::ghost_task_gtid(self.0.as_ptr()) }
    }

    /// The task's thread group id (the process id).
    pub fn tgid(&self) -> i32 {
        // SAFETY: as in `gtid`.
        unsafe { bindings::ghost_task_tgid(self.0.as_ptr()) }
    }
}

impl Drop for TaskHandle {
    fn drop(&mut self) {
        // SAFETY: the handle owns one reference (type invariant).
        unsafe { bindings::put_task_struct(self.0.as_ptr()) }
    }
}

/// Finds the task a `tasks` write names: `0` the writer, a pid in the
/// writer's pid namespace, or a gtid. `ESRCH` if there is no such task
/// (or the gtid's pid now belongs to another task); `EINVAL` for a number
/// that is neither.
pub fn lookup(v: u64) -> Result<TaskHandle> {
    let task = match LAYOUT.task_ref(v).ok_or(EINVAL)? {
        TaskRef::Current => TaskHandle::current()?,
        TaskRef::Pid(pid) => {
            // SAFETY: looks the pid up under RCU and returns a counted task.
            TaskHandle::from_counted(unsafe { bindings::find_get_task_by_vpid(pid) })
                .ok_or(ESRCH)?
        }
        TaskRef::Gtid { gtid, pid } => {
            // SAFETY: as above, in the initial pid namespace.
            let t = TaskHandle::from_counted(unsafe { bindings::ghost_get_task_by_gpid(pid) })
                .ok_or(ESRCH)?;
            if t.gtid() != gtid {
                return Err(ESRCH);
            }
            t
        }
    };
    Ok(task)
}

/// The task with gtid `gtid`, if it is alive.
pub fn by_gtid(gtid: i64) -> Option<TaskHandle> {
    let v = u64::try_from(gtid).ok()?;
    match LAYOUT.task_ref(v)? {
        TaskRef::Gtid { gtid, pid } => {
            // SAFETY: looks the pid up under RCU and returns a counted task.
            let t = TaskHandle::from_counted(unsafe { bindings::ghost_get_task_by_gpid(pid) })?;
            (t.gtid() == gtid).then_some(t)
        }
        _ => None,
    }
}

/// Puts the calling task to sleep (`TASK_INTERRUPTIBLE`) until `done`
/// says so. `done` runs after the task state is set, so a wake between
/// its check and the sleep is not lost: whoever makes `done` true must
/// then wake the task. Process context, no lock held.
pub fn sleep_until(mut done: impl FnMut() -> bool) {
    loop {
        // SAFETY: sets the calling task's state; process context.
        unsafe { bindings::ghost_set_current_interruptible() };
        if done() {
            break;
        }
        // SAFETY: process context, no lock held (the caller's duty).
        unsafe { bindings::schedule() };
    }
    // SAFETY: the calling task's state; process context.
    unsafe { bindings::ghost_set_current_running() };
}

/// A task's `pi_lock` and the lock of its runqueue, held (`task_rq_lock`),
/// with a reference on the task.
pub struct TaskRqGuard {
    task: TaskHandle,
    rq: *mut bindings::rq,
    rf: bindings::rq_flags,
}

impl TaskRqGuard {
    /// Locks `task`'s runqueue. Must not be called with an rq lock held.
    pub fn lock(task: TaskHandle) -> TaskRqGuard {
        // SAFETY: all-zero `rq_flags` is a valid initial value (C declares
        // it uninitialized on the stack).
        let mut rf: bindings::rq_flags = unsafe { core::mem::zeroed() };
        // SAFETY: the handle keeps the task alive; the locks are released in
        // `drop`.
        let rq = unsafe { bindings::task_rq_lock(task.as_ptr().as_raw(), &mut rf) };
        TaskRqGuard { task, rq, rf }
    }

    /// The task.
    pub fn task(&self) -> TaskPtr {
        self.task.as_ptr()
    }

    /// Unlocks, giving back the reference on the task.
    pub fn unlock(self) -> TaskHandle {
        let mut this = core::mem::ManuallyDrop::new(self);
        // SAFETY: `task_rq_lock` (or `move_to`) left exactly these locks
        // held; `this` is never used or dropped again, so the handle is
        // moved out exactly once.
        unsafe {
            bindings::ghost_task_rq_unlock(this.rq, this.task().as_raw(), &mut this.rf);
            core::ptr::read(&this.task)
        }
    }

    /// Moves the (queued) task to `cpu`'s runqueue, which this guard then
    /// holds instead. The caller checked that the task is queued, not
    /// running, and not migration-disabled; `cpu` need not be in its
    /// affinity (placement is the agent's, as in ghOSt).
    pub fn move_to(&mut self, cpu: i32) {
        // SAFETY: the guard holds `pi_lock` and the task's rq lock, as
        // `move_queued_task` needs; it returns the new rq, locked, and the
        // task's `pi_lock` stays held.
        self.rq = unsafe {
            bindings::ghost_move_queued_task(self.rq, &mut self.rf, self.task().as_raw(), cpu)
        };
    }
}

impl core::ops::Deref for TaskRqGuard {
    type Target = Rq;

    fn deref(&self) -> &Rq {
        // SAFETY: the lock is held for the guard's lifetime.
        unsafe { Rq::from_raw(self.rq) }
    }
}

impl Drop for TaskRqGuard {
    fn drop(&mut self) {
        // SAFETY: `task_rq_lock` (or `move_to`) left exactly these locks held.
        unsafe { bindings::ghost_task_rq_unlock(self.rq, self.task().as_raw(), &mut self.rf) }
    }
}
