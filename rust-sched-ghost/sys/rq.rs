// SPDX-License-Identifier: GPL-2.0

//! Runqueues, tasks and ghOSt's per-CPU state, behind small safe wrappers.
//!
//! - [`Rq`]: a CPU's `struct rq`, borrowed only while its lock is held. An
//!   `&Rq` is the proof of that: the class callbacks get one from the core
//!   scheduler, process context gets one from [`RqGuard`] or
//!   [`TaskRqGuard`].
//! - [`TaskPtr`]: a `task_struct` reached only through C accessors (bindgen
//!   gives `task_struct` a 64-byte alignment that its slab cache does not
//!   guarantee, so Rust references to it are not sound).
//! - [`RqCell`]: a value only the holder of one CPU's rq lock touches
//!   (checked), and [`AtomicTask`]: a task published for lock-free readers;
//!   the pieces of ghOSt's per-CPU state ([`crate::agent::percpu`]).

use crate::sys::cpu::cpu_valid;
use core::cell::Cell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicPtr, Ordering};
use kernel::bindings;
use kernel::prelude::*;
use kernel::types::Opaque;

/// A CPU's runqueue (`struct rq`), borrowed while its lock is held.
///
/// # Invariants
///
/// A `&Rq` is only created from a pointer to a live `struct rq` whose lock
/// the current CPU holds for as long as the borrow lasts.
#[repr(transparent)]
pub struct Rq(Opaque<bindings::rq>);

impl Rq {
    /// Borrows the runqueue at `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a valid `struct rq` whose lock is held by the
    /// caller for all of `'a`.
    pub unsafe fn from_raw<'a>(ptr: *mut bindings::rq) -> &'a Rq {
        // SAFETY: `Rq` is a transparent wrapper of `struct rq`, and the caller
        // guarantees that `ptr` is valid for `'a`.
        unsafe { &*ptr.cast::<Rq>() }
    }

    /// The CPU this runqueue belongs to.
    pub fn cpu(&self) -> i32 {
        // SAFETY: by the type invariant the rq is valid; `rq->cpu` is written
        // once at boot and never changes.
        unsafe { (*self.0.get()).cpu }
    }

    /// The raw pointer, for the wrappers in this crate that call C.
    pub fn as_raw(&self) -> *mut bindings::rq {
        self.0.get()
    }

    /// The task running on this CPU. `rq->curr` is never NULL: `None`
    /// (with a `WARN_ONCE`) only if that were broken.
    pub fn curr(&self) -> Option<TaskPtr> {
        // SAFETY: the rq is locked (type invariant); `rq->curr` stays alive
        // while it is `curr`.
        let p = unsafe { bindings::ghost_rq_curr(self.as_raw()) };
        // SAFETY: a CPU's current task is alive while its rq lock is held.
        let curr = unsafe { TaskPtr::from_raw(p) };
        if curr.is_none() {
            crate::warn_once!("rq->curr is NULL");
        }
        curr
    }

    /// Whether `p` is the task running on this CPU.
    pub fn is_curr(&self, p: TaskPtr) -> bool {
        self.curr() == Some(p)
    }

    /// Adds one to (`true`) or takes one from this CPU's `nr_running`.
    pub fn add_nr_running(&self, more: bool) {
        // SAFETY: the rq is locked (type invariant).
        unsafe {
            if more {
                bindings::ghost_add_nr_running(self.as_raw(), 1)
            } else {
                bindings::ghost_sub_nr_running(self.as_raw(), 1)
            }
        }
    }

    /// Runnable tasks on this CPU, of every class (`rq->nr_running`, less
    /// the sleeping CFS tasks whose dequeue EEVDF delays).
    pub fn nr_running(&self) -> u32 {
        // SAFETY: the rq is locked (type invariant).
        unsafe { bindings::ghost_rq_nr_running(self.as_raw()) }
    }

    /// Asks the current task of this CPU to reschedule (an IPI if remote).
    pub fn resched_curr(&self) {
        // SAFETY: the rq is locked (type invariant), as `resched_curr` needs.
        unsafe { bindings::resched_curr(self.as_raw()) }
    }

    /// Charges the runtime of the current task up to now.
    pub fn update_curr(&self) {
        // SAFETY: the rq is locked (type invariant).
        unsafe { bindings::update_curr_common(self.as_raw()) };
    }

    /// Starts the runtime accounting of `p`, which becomes current.
    pub fn start_exec(&self, p: TaskPtr) {
        // SAFETY: the rq is locked (type invariant); `p` is live (its
        // invariant) and becoming this rq's current task.
        unsafe { bindings::ghost_set_exec_start(self.as_raw(), p.as_raw()) }
    }
}

/// A task, reached through C accessors only.
///
/// # Invariants
///
/// The task is alive for as long as the `TaskPtr` is used: its creator
/// holds a reference on it, or the lock of its rq, or is a callback the
/// core scheduler calls on it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TaskPtr(NonNull<bindings::task_struct>);

// SAFETY: a `TaskPtr` is only an address; every use goes through C
// accessors that are valid from any CPU (under the type invariant).
unsafe impl Send for TaskPtr {}

impl TaskPtr {
    /// Wraps a task pointer known not to be NULL.
    ///
    /// # Safety
    ///
    /// As for [`Self::from_raw`].
    pub unsafe fn from_non_null(p: NonNull<bindings::task_struct>) -> TaskPtr {
        TaskPtr(p)
    }

    /// The task, as a non-NULL pointer.
    pub fn as_non_null(self) -> NonNull<bindings::task_struct> {
        self.0
    }

    /// Wraps `p`; `None` if NULL.
    ///
    /// # Safety
    ///
    /// `p` must be NULL or a task that stays alive while the result is used.
    pub unsafe fn from_raw(p: *mut bindings::task_struct) -> Option<TaskPtr> {
        NonNull::new(p).map(TaskPtr)
    }

    /// The raw pointer.
    pub fn as_raw(self) -> *mut bindings::task_struct {
        self.0.as_ptr()
    }

    /// The calling task. `current` is never NULL: `None` (with a
    /// `WARN_ONCE`) only if that were broken.
    pub fn current() -> Option<TaskPtr> {
        // SAFETY: reads the per-CPU `current` pointer.
        let p = unsafe { bindings::get_current() };
        // SAFETY: the current task is alive while it runs this code.
        let me = unsafe { TaskPtr::from_raw(p) };
        if me.is_none() {
            crate::warn_once!("current is NULL");
        }
        me
    }

    /// Wakes the task if it sleeps (`wake_up_process`). Any context, hard
    /// interrupts included; no rq lock held.
    pub fn wake_up(self) {
        // SAFETY: the task is alive (type invariant); `wake_up_process` may
        // be called from any context that holds no rq lock.
        unsafe { bindings::wake_up_process(self.as_raw()) };
    }

    /// Sends the task `SIGKILL` (as the kernel: no permission checks).
    pub fn kill(self) {
        // SAFETY: the task is alive (type invariant).
        unsafe { bindings::send_sig(bindings::SIGKILL as i32, self.as_raw(), 1) };
    }

    /// Sets the task's policy to `policy`, keeping its nice value, with
    /// `sched_flags` `flags` (a kernel call: no permission checks).
    /// Process context, no lock held.
    pub fn set_policy(self, policy: u32, flags: u64) -> Result {
        // SAFETY: plain C data; zero is a valid value of every field.
        let mut a: bindings::sched_attr = unsafe { core::mem::zeroed() };
        a.size = core::mem::size_of::<bindings::sched_attr>() as u32;
        a.sched_policy = policy;
        a.sched_nice = self.nice();
        a.sched_flags = flags;
        // SAFETY: the task is alive (type invariant) and `a` a valid
        // attribute set; process context.
        let r = unsafe { bindings::sched_setattr_nocheck(self.as_raw(), &a) };
        if r < 0 {
            return Err(Error::from_errno(r));
        }
        Ok(())
    }

    /// Pins the task to `cpu` (`set_cpus_allowed_ptr`). Process context,
    /// no lock held.
    pub fn pin_to_cpu(self, cpu: i32) -> Result {
        if !cpu_valid(cpu) {
            return Err(EINVAL);
        }
        // SAFETY: the task is alive (type invariant); `cpu` is a valid CPU
        // id; process context.
        let r = unsafe { bindings::ghost_pin_to_cpu(self.as_raw(), cpu) };
        if r < 0 {
            return Err(Error::from_errno(r));
        }
        Ok(())
    }

    /// The task's gtid.
    pub fn gtid(self) -> i64 {
        // SAFETY: the task is alive (type invariant).
        unsafe { bindings::ghost_task_gtid(self.as_raw()) }
    }

    /// The task's pid (initial namespace).
    pub fn pid(self) -> i32 {
        // SAFETY: the task is alive (type invariant).
        unsafe { bindings::ghost_task_pid(self.as_raw()) }
    }

    /// The task's thread group id.
    pub fn tgid(self) -> i32 {
        // SAFETY: the task is alive (type invariant).
        unsafe { bindings::ghost_task_tgid(self.as_raw()) }
    }

    /// The gtid of the task's parent.
    pub fn parent_gtid(self) -> i64 {
        // SAFETY: the task is alive (type invariant); the parent is read
        // under RCU in C.
        unsafe { bindings::ghost_task_parent_gtid(self.as_raw()) }
    }

    /// `task_struct::ghost`: the task's ghOSt state (see [`crate::gtask`]).
    pub fn ghost_raw(self) -> *mut core::ffi::c_void {
        // SAFETY: the task is alive (type invariant).
        unsafe { bindings::ghost_task_ghost(self.as_raw()) }
    }

    /// Sets `task_struct::ghost`.
    pub fn set_ghost_raw(self, g: *mut core::ffi::c_void) {
        // SAFETY: the task is alive (type invariant); callers serialize
        // writers (see `crate::gtask`).
        unsafe { bindings::ghost_task_set_ghost(self.as_raw(), g) }
    }

    /// Sets `task_struct::ghost` to `g` if it is NULL (a compare-and-swap,
    /// so two claimers cannot both win); whether it did.
    pub fn claim_ghost_raw(self, g: *mut core::ffi::c_void) -> bool {
        // SAFETY: the task is alive (type invariant); an atomic
        // compare-and-swap of the field.
        unsafe { bindings::ghost_task_claim(self.as_raw(), g) }
    }

    /// The task's scheduling policy.
    pub fn policy(self) -> i32 {
        // SAFETY: the task is alive (type invariant).
        unsafe { bindings::ghost_task_policy(self.as_raw()) }
    }

    /// The CPU whose runqueue the task is on (or was last).
    pub fn cpu(self) -> i32 {
        // SAFETY: the task is alive (type invariant).
        unsafe { bindings::ghost_task_cpu(self.as_raw()) }
    }

    /// Whether the task is queued on its runqueue (runnable).
    pub fn queued(self) -> bool {
        // SAFETY: the task is alive (type invariant).
        unsafe { bindings::ghost_task_queued(self.as_raw()) }
    }

    /// Whether the task is executing on a CPU (`p->on_cpu`).
    pub fn on_cpu(self) -> bool {
        // SAFETY: the task is alive (type invariant).
        unsafe { bindings::ghost_task_on_cpu(self.as_raw()) }
    }

    /// Whether the task is exiting for good (`TASK_DEAD`).
    pub fn dead(self) -> bool {
        // SAFETY: the task is alive (type invariant).
        unsafe { bindings::ghost_task_dead(self.as_raw()) }
    }

    /// Whether the task's state is `TASK_RUNNING` (a lockless read: it
    /// runs, is runnable, or was woken and has not run yet; not asleep).
    pub fn state_running(self) -> bool {
        // SAFETY: the task is alive (type invariant).
        unsafe { bindings::ghost_task_state_running(self.as_raw()) }
    }

    /// Whether the task is in `ghost_sched_class`.
    pub fn in_ghost_class(self) -> bool {
        // SAFETY: the task is alive (type invariant).
        unsafe { bindings::ghost_task_in_class(self.as_raw()) }
    }

    /// The task's nice value.
    pub fn nice(self) -> i32 {
        // SAFETY: the task is alive (type invariant).
        unsafe { bindings::ghost_task_nice(self.as_raw()) }
    }

    /// The task's total runtime (ns).
    pub fn runtime(self) -> u64 {
        // SAFETY: the task is alive (type invariant).
        unsafe { bindings::ghost_task_runtime(self.as_raw()) }
    }

    /// The CPU time the task has used, up to now if it is running. Takes
    /// the task's rq lock: must not be called with an rq lock held.
    pub fn sched_runtime(self) -> u64 {
        // SAFETY: the task is alive (type invariant); no rq lock is held
        // (the caller's duty).
        unsafe { bindings::ghost_task_sched_runtime(self.as_raw()) }
    }

    /// Whether the task may not migrate now (`migrate_disable()`).
    pub fn migration_disabled(self) -> bool {
        // SAFETY: the task is alive (type invariant).
        unsafe { bindings::ghost_task_migration_disabled(self.as_raw()) }
    }

    /// Whether a signal is pending for the task.
    pub fn signal_pending(self) -> bool {
        // SAFETY: the task is alive (type invariant).
        unsafe { bindings::ghost_task_signal_pending(self.as_raw()) }
    }

    /// Whether the task is a CPU's idle task.
    pub fn is_idle(self) -> bool {
        // SAFETY: the task is alive (type invariant).
        unsafe { bindings::ghost_task_is_idle(self.as_raw()) }
    }

    /// Whether the task is exiting (`PF_EXITING`: in `do_exit()`, past
    /// `exit_signals()`).
    pub fn exiting(self) -> bool {
        // SAFETY: the task is alive (type invariant).
        unsafe { bindings::ghost_task_exiting(self.as_raw()) }
    }

    /// Whether the task is a kernel thread.
    pub fn is_kthread(self) -> bool {
        // SAFETY: the task is alive (type invariant).
        unsafe { bindings::ghost_task_is_kthread(self.as_raw()) }
    }

    /// Whether the task's affinity allows `cpu`.
    pub fn allowed_on(self, cpu: i32) -> bool {
        // SAFETY: the task is alive (type invariant); the C side checks the
        // range of `cpu`.
        unsafe { bindings::ghost_task_allowed_on(self.as_raw(), cpu) }
    }
}

/// The lock of a CPU's runqueue, held (interrupts off).
pub struct RqGuard {
    rq: *mut bindings::rq,
    flags: usize,
}

impl RqGuard {
    /// Locks the runqueue of `cpu`; `None` for a CPU id out of range.
    /// Must not be called with another rq lock held.
    pub fn lock(cpu: i32) -> Option<RqGuard> {
        if !crate::sys::cpu::cpu_valid(cpu) {
            return None;
        }
        // SAFETY: `cpu` is a valid CPU id: its rq exists for good.
        let rq = unsafe { bindings::ghost_cpu_rq(cpu) };
        // SAFETY: `rq` is valid; the lock is released in `drop`.
        let flags = unsafe { bindings::ghost_rq_lock_irqsave(rq) };
        Some(RqGuard { rq, flags })
    }
}

impl core::ops::Deref for RqGuard {
    type Target = Rq;

    fn deref(&self) -> &Rq {
        // SAFETY: the lock is held for the guard's lifetime.
        unsafe { Rq::from_raw(self.rq) }
    }
}

impl Drop for RqGuard {
    fn drop(&mut self) {
        // SAFETY: this guard locked `rq` with these flags.
        unsafe { bindings::ghost_rq_unlock_irqrestore(self.rq, self.flags as _) }
    }
}

/// A value of one CPU's ghOSt state that only the holder of that CPU's rq
/// lock reads or writes: every access takes the locked [`Rq`] as proof and
/// checks that it is that CPU's.
///
/// # Invariants
///
/// `v` is only accessed by a CPU holding the rq lock of CPU `cpu`.
pub struct RqCell<T: Copy> {
    cpu: i32,
    v: Cell<T>,
    /// What a read with the wrong runqueue gets (the value at creation).
    init: T,
}

// SAFETY: the cell is only accessed under CPU `cpu`'s rq lock (type
// invariant, checked by every accessor), which serializes all CPUs; `T` is
// `Copy` (plain data, moved by value under the lock).
unsafe impl<T: Copy> Sync for RqCell<T> {}

impl<T: Copy> RqCell<T> {
    /// A cell of CPU `cpu` holding `v`.
    pub const fn new(cpu: i32, v: T) -> Self {
        RqCell {
            cpu,
            v: Cell::new(v),
            init: v,
        }
    }

    /// Whether `rq` is this cell's CPU's (with a `WARN_ONCE` if not).
    fn mine(&self, rq: &Rq) -> bool {
        if rq.cpu() == self.cpu {
            return true;
        }
        crate::warn_once!("RqCell: another CPU's runqueue");
        false
    }

    /// The value; `rq` is this cell's CPU's runqueue, locked.
    pub fn get(&self, rq: &Rq) -> T {
        // INVARIANT: only with the right lock held.
        if self.mine(rq) {
            self.v.get()
        } else {
            self.init
        }
    }

    /// Sets the value; `rq` is this cell's CPU's runqueue, locked.
    pub fn set(&self, rq: &Rq, v: T) {
        // INVARIANT: only with the right lock held.
        if self.mine(rq) {
            self.v.set(v);
        }
    }

    /// Sets the value, returning the old one (as [`Self::get`] for a wrong
    /// runqueue).
    pub fn replace(&self, rq: &Rq, v: T) -> T {
        // INVARIANT: only with the right lock held.
        if self.mine(rq) {
            self.v.replace(v)
        } else {
            self.init
        }
    }
}

/// A task pointer published for lock-free readers (a CPU's agent): written
/// under a runqueue lock, read from anywhere.
pub struct AtomicTask(AtomicPtr<bindings::task_struct>);

impl AtomicTask {
    /// No task.
    pub const fn new() -> Self {
        AtomicTask(AtomicPtr::new(core::ptr::null_mut()))
    }

    /// Publishes `p` (or none).
    pub fn store(&self, p: Option<TaskPtr>) {
        let raw = p.map_or(core::ptr::null_mut(), TaskPtr::as_raw);
        self.0.store(raw, Ordering::Release);
    }

    /// The task published last. It is alive for as long as the reader
    /// uses it only inside an RCU read-side section (any IRQ handler; task
    /// memory is RCU-freed) or under the lock its writer holds while the
    /// task is published: the users' contract, as documented at each use.
    pub fn load(&self) -> Option<TaskPtr> {
        // SAFETY: a task published here is alive while published, and its
        // memory stays valid through an RCU grace period after (see above).
        unsafe { TaskPtr::from_raw(self.0.load(Ordering::Acquire)) }
    }
}
