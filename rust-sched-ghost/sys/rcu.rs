// SPDX-License-Identifier: GPL-2.0

//! [`RcuPerCpu`]: one RCU-protected pointer per CPU to an [`Arc`]-counted
//! object, read lock-free from any context and retired only after a grace
//! period.
//!
//! A set pointer holds one count of its object (`Arc::into_raw`). Readers
//! ([`RcuPerCpu::with`]) load it inside an RCU-sched read-side section
//! (preemption off; interrupts off is one too) and may use the object only
//! within it. Writers swap it out with [`RcuPerCpu::clear`], which hands the
//! count back as a [`Retired`]: dropping that first waits for a grace period
//! (`synchronize_rcu()`, which since the RCU flavors were merged also waits
//! for every preemption- or interrupt-disabled section), so no reader can
//! still see the object when the count goes. Hence a [`Retired`] must be
//! dropped in process context, with no spinlock held.

use super::percpu::PerCpu;
use core::sync::atomic::{AtomicPtr, Ordering};
use kernel::bindings;
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

/// One RCU-protected `Arc<T>` pointer per CPU id.
///
/// # Invariants
///
/// Each entry is NULL or `Arc::into_raw` of an `Arc<T>` whose count the
/// entry owns. An entry's count is given up only through a [`Retired`]
/// (after a grace period), so an object seen non-NULL by a reader inside an
/// RCU read-side section stays alive until that section ends.
pub struct RcuPerCpu<T: Send + Sync + 'static> {
    ptrs: PerCpu<AtomicPtr<T>>,
}

impl<T: Send + Sync + 'static> RcuPerCpu<T> {
    /// Not set up: every entry reads NULL until [`Self::init`].
    pub const fn new() -> Self {
        RcuPerCpu {
            ptrs: PerCpu::new(),
        }
    }

    /// Sets up the entries, all NULL. Once, at boot. May sleep.
    pub fn init(&self) -> Result {
        // INVARIANT: every entry starts NULL.
        self.ptrs.init(|_| AtomicPtr::new(core::ptr::null_mut()))
    }

    /// Publishes `obj` as `cpu`'s object if the entry is NULL; otherwise
    /// (or for a CPU id out of range, or before [`Self::init`]) gives `obj`
    /// back unpublished. Any context.
    pub fn set(&self, cpu: i32, obj: Arc<T>) -> core::result::Result<(), Arc<T>> {
        let Some(slot) = self.ptrs.get(cpu) else {
            return Err(obj);
        };
        let p = Arc::into_raw(obj).cast_mut();
        match slot.compare_exchange(
            core::ptr::null_mut(),
            p,
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
            .ptrs
            .get(cpu)?
            .swap(core::ptr::null_mut(), Ordering::AcqRel);
        if p.is_null() {
            return None;
        }
        // SAFETY: a non-NULL entry is `into_raw` of an `Arc` whose count
        // the entry owned (type invariant); the swap moved it to us.
        let arc = unsafe { Arc::from_raw(p) };
        Some(Retired { arc: Some(arc) })
    }

    /// Calls `f` with `cpu`'s object, if one is published, inside an
    /// RCU-sched read-side section (`f` must not sleep). Lock-free; any
    /// context.
    pub fn with<R>(&self, cpu: i32, f: impl FnOnce(&T) -> R) -> Option<R> {
        let slot = self.ptrs.get(cpu)?;
        // SAFETY: no precondition; paired with the unlock below.
        unsafe { bindings::ghost_rcu_read_lock_sched() };
        let p = slot.load(Ordering::Acquire);
        let r = if p.is_null() {
            None
        } else {
            // SAFETY: a non-NULL entry points to an `Arc`'s object (type
            // invariant); its count is dropped only after a grace period
            // that began after it was unpublished, which waits for this
            // read-side section; the reference does not leave `f`.
            Some(f(unsafe { &*p }))
        };
        // SAFETY: ends the section begun above, on this CPU (preemption
        // was off meanwhile).
        unsafe { bindings::ghost_rcu_read_unlock_sched() };
        r
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
