// SPDX-License-Identifier: GPL-2.0

//! [`RcuPerCpu`]: one RCU-protected pointer per CPU to an [`Arc`]-counted
//! object, read lock-free from any context and retired only after a grace
//! period.
//!
//! The pointers are the C per-CPU variable `ghost_cpu_enclave` (defined by
//! the entry code, which tests this CPU's entry before it calls the
//! return-to-user commit point: one per-CPU load on a CPU without one), so
//! there is one such table: the first [`RcuPerCpu::init`] claims it, any
//! other instance stays empty.
//!
//! A set pointer holds one count of its object (`Arc::into_raw`). The
//! reader ([`RcuPerCpu::with_this_cpu`]) runs with interrupts off, which is
//! an RCU-sched read-side section by itself (since the RCU flavors were
//! merged, a grace period also waits for every section with preemption or
//! interrupts disabled): no `rcu_read_lock_sched()`, whose lockdep
//! acquire and release would cost more than the whole check. It may use
//! the object only within that section. Writers swap a pointer out with
//! [`RcuPerCpu::clear`], which hands the count back as a [`Retired`]:
//! dropping that first waits for a grace period (`synchronize_rcu()`), so
//! no reader can still see the object when the count goes. Hence a
//! [`Retired`] must be dropped in process context, with no spinlock held.

use super::percpu::PerCpu;
use core::marker::PhantomData;
use core::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use kernel::bindings;
use kernel::ffi::c_void;
use kernel::prelude::*;
use kernel::sync::Arc;

/// Waits for a grace period: every RCU read-side section (of any flavor)
/// that began before the call has ended. Process context; sleeps.
pub fn synchronize_rcu() {
    // SAFETY: no precondition beyond a sleepable context, which is this
    // function's contract (a violation is a might_sleep splat, not a
    // memory error).
    unsafe { bindings::synchronize_rcu() };
}

/// Calls `f` inside an RCU read-side section (`rcu_read_lock()`): memory
/// that is freed only after a grace period (a task's, for instance) stays
/// valid for the call. `f` must not sleep. Any context.
pub fn read_section<R>(f: impl FnOnce() -> R) -> R {
    // SAFETY: no precondition; paired with the unlock below.
    unsafe { bindings::ghost_rcu_read_lock() };
    let r = f();
    // SAFETY: ends the section begun above, in the same context.
    unsafe { bindings::ghost_rcu_read_unlock() };
    r
}

/// Whether an [`RcuPerCpu`] owns `ghost_cpu_enclave` (set once, by the
/// first [`RcuPerCpu::init`]).
static CLAIMED: AtomicBool = AtomicBool::new(false);

/// `cpu`'s entry of `ghost_cpu_enclave`, or `None` for an id that is no
/// possible CPU. Static per-CPU storage: it lives for good.
fn slot(cpu: i32) -> Option<&'static AtomicPtr<c_void>> {
    // SAFETY: no precondition; the helper checks the id.
    let p = unsafe { bindings::ghost_cpu_enclave_slot(cpu) };
    if p.is_null() {
        return None;
    }
    // SAFETY: `p` is the address of a possible CPU's copy of a static
    // per-CPU pointer variable: aligned, valid for good, and accessed by
    // the kernel only through single-copy-atomic loads (`this_cpu_read`,
    // `rcu_dereference_sched`) and by us only through this atomic view.
    Some(unsafe { AtomicPtr::from_ptr(p) })
}

/// One RCU-protected `Arc<T>` pointer per CPU id: `ghost_cpu_enclave`
/// (there is one table: see the module documentation).
///
/// # Invariants
///
/// If `ready` is set, this instance claimed `ghost_cpu_enclave` ([`CLAIMED`]),
/// and each entry is NULL or `Arc::into_raw` of an `Arc<T>` whose count the
/// entry owns. An entry's count is given up only through a [`Retired`]
/// (after a grace period), so an object seen non-NULL by a reader inside an
/// RCU read-side section stays alive until that section ends. Unless
/// `ready` is set, this instance touches no entry.
pub struct RcuPerCpu<T: Send + Sync + 'static> {
    ready: AtomicBool,
    /// Each CPU's entry (its address, looked up once, at [`Self::init`]).
    slots: PerCpu<Option<&'static AtomicPtr<c_void>>>,
    _objs: PhantomData<Arc<T>>,
}

impl<T: Send + Sync + 'static> RcuPerCpu<T> {
    /// Not set up: reads nothing and publishes nothing until
    /// [`Self::init`].
    pub const fn new() -> Self {
        RcuPerCpu {
            ready: AtomicBool::new(false),
            slots: PerCpu::new(),
            _objs: PhantomData,
        }
    }

    /// Claims `ghost_cpu_enclave` for this instance, every entry NULL (as
    /// static per-CPU data starts, and nobody else writes it). Once, at
    /// boot; `EBUSY` if it is claimed already. May sleep.
    pub fn init(&self) -> Result {
        if CLAIMED
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(EBUSY);
        }
        self.slots.init(slot)?;
        // INVARIANT: claimed just above; every entry is NULL (zeroed
        // static data, written only through a claimed instance).
        self.ready.store(true, Ordering::Release);
        Ok(())
    }

    /// `cpu`'s entry, if this instance is set up and `cpu` is a possible
    /// CPU.
    fn entry(&self, cpu: i32) -> Option<&'static AtomicPtr<c_void>> {
        if !self.ready.load(Ordering::Acquire) {
            return None;
        }
        self.slots.get(cpu).copied().flatten()
    }

    /// Whether `obj` is `cpu`'s object now. Compares addresses only (no
    /// object is read), so it needs no read-side section; the caller holds
    /// `obj`, whose address no other object can have meanwhile. Lock-free;
    /// any context.
    pub fn is(&self, cpu: i32, obj: &T) -> bool {
        self.entry(cpu)
            .is_some_and(|e| core::ptr::eq(e.load(Ordering::Acquire).cast::<T>().cast_const(), obj))
    }

    /// Publishes `obj` as `cpu`'s object if the entry is NULL; otherwise
    /// (or for a CPU id out of range, or before [`Self::init`]) gives `obj`
    /// back unpublished. Any context.
    pub fn set(&self, cpu: i32, obj: Arc<T>) -> core::result::Result<(), Arc<T>> {
        let Some(slot) = self.entry(cpu) else {
            return Err(obj);
        };
        let p = Arc::into_raw(obj).cast_mut();
        // Release: a reader that sees the pointer sees the object.
        match slot.compare_exchange(
            core::ptr::null_mut(),
            p.cast(),
            Ordering::Release,
            Ordering::Relaxed,
        ) {
            // INVARIANT: the entry now owns the count `into_raw` gave.
            Ok(_) => Ok(()),
            // SAFETY: `p` came from `into_raw` just above and was not
            // published: its count is still ours to take back.
            Err(_) => Err(unsafe { Arc::from_raw(p) }),
        }
    }

    /// Unpublishes `cpu`'s object, if any: readers starting from now see
    /// NULL. Its count comes back as a [`Retired`], to drop in process
    /// context with no spinlock held. Any context.
    #[must_use = "dropping a Retired waits for a grace period"]
    pub fn clear(&self, cpu: i32) -> Option<Retired<T>> {
        let p = self
            .entry(cpu)?
            .swap(core::ptr::null_mut(), Ordering::AcqRel)
            .cast::<T>();
        if p.is_null() {
            return None;
        }
        // SAFETY: a non-NULL entry is `into_raw` of an `Arc<T>` whose count
        // the entry owned (type invariant; `ready` is set, or `entry` would
        // have given `None`); the swap moved it to us.
        let arc = unsafe { Arc::from_raw(p) };
        Some(Retired { arc: Some(arc) })
    }

    /// Calls `f` with this CPU's object and id, if one is published. The
    /// caller runs with interrupts off (the return-to-user hook, an
    /// irq_work), which is the RCU-sched read-side section `f` runs in: `f`
    /// must neither sleep nor enable interrupts. With interrupts on it
    /// reads nothing (`None`, after a lockdep splat). Lock-free: a per-CPU
    /// load and a branch when nothing is published.
    pub fn with_this_cpu<R>(&self, f: impl FnOnce(&T, i32) -> R) -> Option<R> {
        if !self.ready.load(Ordering::Relaxed) {
            return None;
        }
        let mut cpu = -1;
        // SAFETY: `cpu` is a valid place for the CPU id; NULL unless
        // interrupts are off (then `cpu` is the CPU of the entry read).
        let p = unsafe { bindings::ghost_this_cpu_enclave_irqs_off(&mut cpu) }.cast::<T>();
        if p.is_null() {
            return None;
        }
        // SAFETY: `ready` is set, so a non-NULL entry points to an `Arc<T>`'s
        // object (type invariant); its count is dropped only after a grace
        // period that began after it was unpublished, which waits for this
        // interrupts-off section (it lasts at least as long as `f`, which
        // may not enable interrupts); the reference does not leave `f`.
        Some(f(unsafe { &*p }, cpu))
    }
}

/// The count of an object unpublished by [`RcuPerCpu::clear`]: dropping it
/// waits for a grace period (sleeps: process context, no spinlock held),
/// then drops the count.
pub struct Retired<T: Send + Sync + 'static> {
    /// `None` only once folded into another by [`Retired::merge`].
    arc: Option<Arc<T>>,
}

impl<T: Send + Sync + 'static> Retired<T> {
    /// Folds `other` into `self` if both hold the same object (its count
    /// is dropped now: `self`'s keeps the object alive past the grace
    /// period); otherwise gives `other` back.
    pub fn merge(&mut self, mut other: Retired<T>) -> core::result::Result<(), Retired<T>> {
        let same = match (&self.arc, &other.arc) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (_, None) => true,
            (None, Some(_)) => false,
        };
        if !same {
            return Err(other);
        }
        // Not the last count: `self.arc` holds another. `other` holds
        // nothing now, so its drop does not wait.
        drop(other.arc.take());
        Ok(())
    }
}

impl<T: Send + Sync + 'static> Drop for Retired<T> {
    fn drop(&mut self) {
        if let Some(arc) = self.arc.take() {
            synchronize_rcu();
            // No reader can see the object any more.
            drop(arc);
        }
    }
}
