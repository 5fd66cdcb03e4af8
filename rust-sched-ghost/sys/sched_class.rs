// SPDX-License-Identifier: GPL-2.0

//! Scheduler class operation tables.
//!
//! The core scheduler calls a class through `struct sched_class`, a table of
//! function pointers. This module turns a Rust implementation of
//! [`SchedClassOps`] into such a table at compile time, in the style of
//! `rust/kernel/net/phy.rs`: a `#[vtable]` trait, and an [`Adapter`] whose
//! `extern "C"` trampolines convert raw pointers into references and back.
//!
//! Every callback runs with the runqueue lock held and interrupts disabled:
//! implementations must not sleep, must not allocate with `GFP_KERNEL`, and
//! must not reach a panic path (a Rust panic in the kernel is `BUG()`).
//!
//! The position of a class in the class order is decided by the linker
//! section its table is placed in (see `SCHED_DATA` in
//! `include/asm-generic/vmlinux.lds.h`), not by this module.

pub use crate::sys::rq::{Rq, TaskPtr};
use core::marker::PhantomData;
use kernel::bindings;
use kernel::ffi::c_int;
use kernel::prelude::*;
use kernel::types::Opaque;

/// Wraps a task pointer the core scheduler passed to a callback.
///
/// # Safety
///
/// `ptr` must be a task that stays alive for the callback (true for tasks
/// handed to class callbacks: the caller holds a reference or the task's
/// runqueue lock).
unsafe fn task(ptr: *mut bindings::task_struct) -> Option<TaskPtr> {
    // SAFETY: the caller's guarantee.
    let p = unsafe { TaskPtr::from_raw(ptr) };
    if p.is_none() {
        // The core never passes NULL here: no substitute task, the
        // callback does nothing.
        crate::warn_once!("sched_class callback with a NULL task");
    }
    p
}

/// The operations of a scheduling class.
///
/// Methods that an implementation does not provide are left `NULL` in the
/// table; the core scheduler checks for `NULL` only for some callbacks, so a
/// class that can hold tasks must provide every per-task callback.
#[vtable]
pub trait SchedClassOps {
    /// `enqueue_task`: `p` becomes runnable on `rq`.
    fn enqueue_task(_rq: &Rq, _p: TaskPtr, _flags: i32) {
        kernel::build_error(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `dequeue_task`: `p` stops being runnable on `rq`. Returns `true` when
    /// the task is fully dequeued (`false` defers the dequeue, as EEVDF does).
    fn dequeue_task(_rq: &Rq, _p: TaskPtr, _flags: i32) -> bool {
        kernel::build_error(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `yield_task`: the current task of `rq` called `sched_yield()`.
    fn yield_task(_rq: &Rq) {
        kernel::build_error(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `wakeup_preempt`: `p`, of this class, woke up on `rq` whose current
    /// task is of this class too.
    fn wakeup_preempt(_rq: &Rq, _p: TaskPtr, _flags: i32) {
        kernel::build_error(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `balance`: called before picking; returns `true` if this class (or a
    /// higher one) has a task to run on `rq`. `unlock` may drop `rq`'s lock
    /// for a while.
    fn balance(_rq: &Rq, _prev: TaskPtr, _unlock: &BalanceUnlock) -> bool {
        kernel::build_error(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `pick_task`: the task of this class that should run next on `rq`.
    fn pick_task(_rq: &Rq) -> Option<TaskPtr> {
        kernel::build_error(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `put_prev_task`: `p`, of this class, is leaving the CPU for `next`.
    fn put_prev_task(_rq: &Rq, _p: TaskPtr, _next: Option<TaskPtr>) {
        kernel::build_error(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `set_next_task`: `p` becomes the current task of `rq`.
    fn set_next_task(_rq: &Rq, _p: TaskPtr, _first: bool) {
        kernel::build_error(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `select_task_rq`: the CPU `p` should wake up or be placed on.
    fn select_task_rq(_p: TaskPtr, _task_cpu: i32, _flags: i32) -> i32 {
        kernel::build_error(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `task_woken`: `p` was woken on `rq` (after enqueue).
    fn task_woken(_rq: &Rq, _p: TaskPtr) {
        kernel::build_error(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `set_cpus_allowed`: `p`'s affinity changes to what `ctx` describes.
    ///
    /// The implementation must apply the change (usually through
    /// [`set_cpus_allowed_common`]).
    /// `rq` is `p`'s runqueue, locked by the core.
    fn set_cpus_allowed(_rq: &Rq, _p: TaskPtr, _ctx: &AffinityContext) {
        kernel::build_error(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `task_tick`: the scheduler tick, with `p` the current task of `rq`.
    fn task_tick(_rq: &Rq, _p: TaskPtr, _queued: bool) {
        kernel::build_error(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `task_dead`: `p`, of this class, has exited for the last time.
    fn task_dead(_p: TaskPtr) {
        kernel::build_error(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `switched_from`: `p` is leaving this class.
    fn switched_from(_rq: &Rq, _p: TaskPtr) {
        kernel::build_error(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `switched_to`: `p` has just joined this class.
    fn switched_to(_rq: &Rq, _p: TaskPtr) {
        kernel::build_error(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `prio_changed`: `p`'s priority changed from `oldprio`.
    fn prio_changed(_rq: &Rq, _p: TaskPtr, _oldprio: i32) {
        kernel::build_error(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `update_curr`: account the runtime of `rq`'s current task.
    fn update_curr(_rq: &Rq) {
        kernel::build_error(kernel::error::VTABLE_DEFAULT_ERROR)
    }
}

/// The affinity change passed to [`SchedClassOps::set_cpus_allowed`].
#[repr(transparent)]
pub struct AffinityContext(Opaque<bindings::affinity_context>);

impl AffinityContext {
    /// Whether the change only toggles `migrate_disable()`: not a change
    /// of the task's allowed CPUs that anyone asked for.
    pub fn is_migrate_toggle(&self) -> bool {
        // SAFETY: the context is valid for this callback (see the
        // trampoline); `flags` is a plain integer.
        let flags = unsafe { (*self.0.get()).flags };
        flags & (bindings::SCA_MIGRATE_DISABLE | bindings::SCA_MIGRATE_ENABLE) != 0
    }
}

/// Applies an affinity change the way every other class does
/// (`set_cpus_allowed_common()`).
pub fn set_cpus_allowed_common(p: TaskPtr, ctx: &AffinityContext) {
    // SAFETY: `p` and `ctx` are the valid objects the core passed to
    // `set_cpus_allowed`, whose locks (`pi_lock` and the rq lock) it holds.
    unsafe { bindings::set_cpus_allowed_common(p.as_raw(), ctx.0.get()) }
}

/// Builds `struct sched_class` tables from [`SchedClassOps`] implementations.
pub struct Adapter<T: SchedClassOps>(PhantomData<T>);

impl<T: SchedClassOps> Adapter<T> {
    unsafe extern "C" fn enqueue_task(
        rq: *mut bindings::rq,
        p: *mut bindings::task_struct,
        flags: c_int,
    ) {
        // SAFETY: the core calls this with a valid, locked `rq` and a valid `p`.
        let (rq, p) = unsafe { (Rq::from_raw(rq), task(p)) };
        let Some(p) = p else {
            return;
        };
        T::enqueue_task(rq, p, flags)
    }

    unsafe extern "C" fn dequeue_task(
        rq: *mut bindings::rq,
        p: *mut bindings::task_struct,
        flags: c_int,
    ) -> bool {
        // SAFETY: the core calls this with a valid, locked `rq` and a valid `p`.
        let (rq, p) = unsafe { (Rq::from_raw(rq), task(p)) };
        let Some(p) = p else {
            return true;
        };
        T::dequeue_task(rq, p, flags)
    }

    unsafe extern "C" fn yield_task(rq: *mut bindings::rq) {
        // SAFETY: the core calls this with a valid, locked `rq`.
        T::yield_task(unsafe { Rq::from_raw(rq) })
    }

    unsafe extern "C" fn wakeup_preempt(
        rq: *mut bindings::rq,
        p: *mut bindings::task_struct,
        flags: c_int,
    ) {
        // SAFETY: the core calls this with a valid, locked `rq` and a valid `p`.
        let (rq, p) = unsafe { (Rq::from_raw(rq), task(p)) };
        let Some(p) = p else {
            return;
        };
        T::wakeup_preempt(rq, p, flags)
    }

    unsafe extern "C" fn balance(
        rq: *mut bindings::rq,
        prev: *mut bindings::task_struct,
        rf: *mut bindings::rq_flags,
    ) -> c_int {
        // INVARIANT: the core calls this with `rq` locked and pinned by `rf`.
        let unlock = BalanceUnlock { rq, rf };
        // SAFETY: the core calls this with a valid, locked `rq` and its valid
        // current task `prev`.
        let (rq, prev) = unsafe { (Rq::from_raw(rq), task(prev)) };
        let Some(prev) = prev else {
            return 0;
        };
        c_int::from(T::balance(rq, prev, &unlock))
    }

    unsafe extern "C" fn pick_task(rq: *mut bindings::rq) -> *mut bindings::task_struct {
        // SAFETY: the core calls this with a valid, locked `rq`.
        match T::pick_task(unsafe { Rq::from_raw(rq) }) {
            Some(p) => p.as_raw(),
            None => core::ptr::null_mut(),
        }
    }

    unsafe extern "C" fn put_prev_task(
        rq: *mut bindings::rq,
        p: *mut bindings::task_struct,
        next: *mut bindings::task_struct,
    ) {
        // SAFETY: the core calls this with a valid, locked `rq`, its valid
        // current task `p`, and `next` either NULL or a valid task.
        let (rq, p) = unsafe { (Rq::from_raw(rq), task(p)) };
        let Some(p) = p else {
            return;
        };
        // SAFETY: as above, a non-NULL `next` is a valid task.
        let next = unsafe { TaskPtr::from_raw(next) };
        T::put_prev_task(rq, p, next)
    }

    unsafe extern "C" fn set_next_task(
        rq: *mut bindings::rq,
        p: *mut bindings::task_struct,
        first: bool,
    ) {
        // SAFETY: the core calls this with a valid, locked `rq` and a valid `p`.
        let (rq, p) = unsafe { (Rq::from_raw(rq), task(p)) };
        let Some(p) = p else {
            return;
        };
        T::set_next_task(rq, p, first)
    }

    unsafe extern "C" fn select_task_rq(
        p: *mut bindings::task_struct,
        task_cpu: c_int,
        flags: c_int,
    ) -> c_int {
        // SAFETY: the core calls this with a valid `p` whose `pi_lock` it holds.
        let Some(p) = (unsafe { task(p) }) else {
            return task_cpu;
        };
        T::select_task_rq(p, task_cpu, flags)
    }

    unsafe extern "C" fn task_woken(rq: *mut bindings::rq, p: *mut bindings::task_struct) {
        // SAFETY: the core calls this with a valid, locked `rq` and a valid `p`.
        let (rq, p) = unsafe { (Rq::from_raw(rq), task(p)) };
        let Some(p) = p else {
            return;
        };
        T::task_woken(rq, p)
    }

    unsafe extern "C" fn set_cpus_allowed(
        p: *mut bindings::task_struct,
        ctx: *mut bindings::affinity_context,
    ) {
        // SAFETY: the core calls this with a valid `p` and `ctx`, holding
        // `p->pi_lock` and its rq lock. `AffinityContext` is transparent.
        let (p, ctx) = unsafe { (task(p), &*ctx.cast::<AffinityContext>()) };
        let Some(p) = p else {
            return;
        };
        // SAFETY: `task_cpu(p)` is a valid CPU; its rq is `p`'s, locked by
        // the core for this call.
        let rq = unsafe { Rq::from_raw(bindings::ghost_cpu_rq(p.cpu())) };
        T::set_cpus_allowed(rq, p, ctx)
    }

    unsafe extern "C" fn task_tick(
        rq: *mut bindings::rq,
        p: *mut bindings::task_struct,
        queued: c_int,
    ) {
        // SAFETY: the core calls this with a valid, locked `rq` and its current task `p`.
        let (rq, p) = unsafe { (Rq::from_raw(rq), task(p)) };
        let Some(p) = p else {
            return;
        };
        T::task_tick(rq, p, queued != 0)
    }

    unsafe extern "C" fn task_dead(p: *mut bindings::task_struct) {
        // SAFETY: the core calls this with a valid `p` it holds a reference on.
        if let Some(p) = unsafe { task(p) } {
            T::task_dead(p)
        }
    }

    unsafe extern "C" fn switched_from(rq: *mut bindings::rq, p: *mut bindings::task_struct) {
        // SAFETY: the core calls this with a valid, locked `rq` and a valid `p`.
        let (rq, p) = unsafe { (Rq::from_raw(rq), task(p)) };
        let Some(p) = p else {
            return;
        };
        T::switched_from(rq, p)
    }

    unsafe extern "C" fn switched_to(rq: *mut bindings::rq, p: *mut bindings::task_struct) {
        // SAFETY: the core calls this with a valid, locked `rq` and a valid `p`.
        let (rq, p) = unsafe { (Rq::from_raw(rq), task(p)) };
        let Some(p) = p else {
            return;
        };
        T::switched_to(rq, p)
    }

    unsafe extern "C" fn prio_changed(
        rq: *mut bindings::rq,
        p: *mut bindings::task_struct,
        oldprio: c_int,
    ) {
        // SAFETY: the core calls this with a valid, locked `rq` and a valid `p`.
        let (rq, p) = unsafe { (Rq::from_raw(rq), task(p)) };
        let Some(p) = p else {
            return;
        };
        T::prio_changed(rq, p, oldprio)
    }

    unsafe extern "C" fn update_curr(rq: *mut bindings::rq) {
        // SAFETY: the core calls this with a valid, locked `rq`.
        T::update_curr(unsafe { Rq::from_raw(rq) })
    }

    /// The `struct sched_class` for `T`: provided operations are set, the rest
    /// stay `NULL`.
    pub const fn build() -> bindings::sched_class {
        // SAFETY: `struct sched_class` is plain data (integers and optional
        // function pointers); all-zeroes is a valid value (every op `NULL`).
        let mut c: bindings::sched_class = unsafe { core::mem::zeroed() };
        if T::HAS_ENQUEUE_TASK {
            c.enqueue_task = Some(Self::enqueue_task);
        }
        if T::HAS_DEQUEUE_TASK {
            c.dequeue_task = Some(Self::dequeue_task);
        }
        if T::HAS_YIELD_TASK {
            c.yield_task = Some(Self::yield_task);
        }
        if T::HAS_WAKEUP_PREEMPT {
            c.wakeup_preempt = Some(Self::wakeup_preempt);
        }
        if T::HAS_BALANCE {
            c.balance = Some(Self::balance);
        }
        if T::HAS_PICK_TASK {
            c.pick_task = Some(Self::pick_task);
        }
        if T::HAS_PUT_PREV_TASK {
            c.put_prev_task = Some(Self::put_prev_task);
        }
        if T::HAS_SET_NEXT_TASK {
            c.set_next_task = Some(Self::set_next_task);
        }
        if T::HAS_SELECT_TASK_RQ {
            c.select_task_rq = Some(Self::select_task_rq);
        }
        if T::HAS_TASK_WOKEN {
            c.task_woken = Some(Self::task_woken);
        }
        if T::HAS_SET_CPUS_ALLOWED {
            c.set_cpus_allowed = Some(Self::set_cpus_allowed);
        }
        if T::HAS_TASK_TICK {
            c.task_tick = Some(Self::task_tick);
        }
        if T::HAS_TASK_DEAD {
            c.task_dead = Some(Self::task_dead);
        }
        if T::HAS_SWITCHED_FROM {
            c.switched_from = Some(Self::switched_from);
        }
        if T::HAS_SWITCHED_TO {
            c.switched_to = Some(Self::switched_to);
        }
        if T::HAS_PRIO_CHANGED {
            c.prio_changed = Some(Self::prio_changed);
        }
        if T::HAS_UPDATE_CURR {
            c.update_curr = Some(Self::update_curr);
        }
        c
    }
}

/// A `struct sched_class` table placed in a linker section by the caller.
///
/// A transparent wrapper so that the table can be a `static` (the bindgen
/// type holds raw pointers, so it is not `Sync` by itself).
#[repr(transparent)]
pub struct SchedClass(bindings::sched_class);

// SAFETY: the table is immutable after link time and only holds function
// pointers and integers; the core scheduler reads it from any CPU.
unsafe impl Sync for SchedClass {}

impl SchedClass {
    /// Wraps a table built by [`Adapter::build`].
    pub const fn new(c: bindings::sched_class) -> Self {
        SchedClass(c)
    }

    /// The address of the table, as the core scheduler sees it.
    pub fn as_ptr(&self) -> *const bindings::sched_class {
        &self.0
    }
}

/// The right of a `balance` callback (or of `__schedule()`'s pick-next
/// prologue, just before the pick that calls `balance`) to drop its
/// runqueue's lock for a while, as the fair class's newidle balance does
/// (interrupts stay off).
///
/// # Invariants
///
/// `rq` is locked by the caller of `balance` and pinned by `rf`, for the
/// callback.
pub struct BalanceUnlock {
    rq: *mut bindings::rq,
    rf: *mut bindings::rq_flags,
}

impl BalanceUnlock {
    /// The right to unlock `rq` for the pick-next prologue of
    /// `__schedule()` (see `ghost_pnt_prologue` in `linux/ghost.h`).
    ///
    /// # Safety
    ///
    /// `rq` is locked and pinned by `rf`, in `__schedule()` before the pick
    /// (where the pick's `balance` may drop the lock too), for as long as
    /// the value lives.
    pub unsafe fn for_prologue(rq: *mut bindings::rq, rf: *mut bindings::rq_flags) -> Self {
        // INVARIANT: the caller's guarantee.
        BalanceUnlock { rq, rf }
    }

    /// Runs `f` with the runqueue unlocked, then locks it again. `f` must
    /// not use the callback's [`Rq`] (it is not locked meanwhile), and the
    /// callback must re-read what it knew of the runqueue afterwards: others
    /// may have changed it.
    pub fn unlocked<R>(&self, f: impl FnOnce() -> R) -> R {
        // SAFETY: `rq` is locked and pinned by `rf` (type invariant).
        unsafe { bindings::ghost_balance_unlock(self.rq, self.rf) };
        let r = f();
        // SAFETY: relocks what was unlocked just above, with the same `rf`.
        unsafe { bindings::ghost_balance_relock(self.rq, self.rf) };
        r
    }
}
