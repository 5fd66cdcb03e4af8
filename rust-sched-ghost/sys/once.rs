// SPDX-License-Identifier: GPL-2.0

//! [`OnceBox`]: a value built once at boot (pinned: it may hold kernel
//! locks), published through a `static` and never freed.

use core::pin::Pin;
use core::sync::atomic::{AtomicPtr, Ordering};
use kernel::prelude::*;

/// A pointer, in a `static`, to a value set once and kept for good.
///
/// # Invariants
///
/// `self.0` is NULL or comes from `KBox::into_raw` of a pinned box that is
/// never freed, moved or mutably borrowed again.
pub struct OnceBox<T>(AtomicPtr<T>);

impl<T: Sync> OnceBox<T> {
    /// An empty slot, for a `static`.
    pub const fn new() -> Self {
        OnceBox(AtomicPtr::new(core::ptr::null_mut()))
    }

    /// Publishes `v` for good; `EBUSY` (and `v` dropped) if a value was
    /// published already.
    pub fn set(&self, v: Pin<KBox<T>>) -> Result {
        // SAFETY: the value is never moved out of its allocation: the box is
        // leaked here and only shared references to it are handed out.
        let raw = KBox::into_raw(unsafe { Pin::into_inner_unchecked(v) });
        if self
            .0
            .compare_exchange(
                core::ptr::null_mut(),
                raw,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_err()
        {
            // SAFETY: `raw` came from `KBox::into_raw` just above and was
            // not published: dropping it in place is what the box would do.
            drop(unsafe { KBox::from_raw(raw) });
            return Err(EBUSY);
        }
        // INVARIANT: published once, never freed.
        Ok(())
    }

    /// The value, once published.
    pub fn get(&self) -> Option<&T> {
        let p = self.0.load(Ordering::Acquire);
        // SAFETY: by the type invariant a non-NULL pointer is a live value
        // that is never freed or mutably borrowed; `T: Sync`.
        unsafe { p.as_ref() }
    }
}
