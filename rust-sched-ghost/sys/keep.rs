// SPDX-License-Identifier: GPL-2.0

//! [`KeepList`]: objects kept alive as long as their owner, one of which may
//! be chosen and read from any context, runqueue locks included, without a
//! lock (an enclave's queues and its default queue).

use core::sync::atomic::{AtomicPtr, Ordering};
use kernel::prelude::*;
use kernel::sync::{Arc, Mutex};

/// A list of `Arc<T>` that only grows, and the one chosen.
///
/// # Invariants
///
/// `chosen` is NULL or points to an item of `items`; items are never
/// removed until the list is dropped.
#[pin_data]
pub struct KeepList<T> {
    #[pin]
    items: Mutex<KVec<Arc<T>>>,
    chosen: AtomicPtr<T>,
}

impl<T: Send + Sync> KeepList<T> {
    /// An empty list, nothing chosen.
    pub fn new() -> impl PinInit<Self> {
        pin_init!(KeepList {
            items <- kernel::new_mutex!(KVec::new()),
            chosen: AtomicPtr::new(core::ptr::null_mut()),
        })
    }

    /// Keeps `item` until the list goes; `ENOSPC` if `max` are kept
    /// already. May sleep.
    pub fn add(&self, item: Arc<T>, max: usize) -> Result {
        let mut items = self.items.lock();
        if items.len() >= max {
            return Err(ENOSPC);
        }
        items.push(item, GFP_KERNEL)?;
        Ok(())
    }

    /// Chooses `item`; `EINVAL` if it is not on the list. May sleep.
    pub fn choose(&self, item: &T) -> Result {
        let items = self.items.lock();
        let kept = items
            .iter()
            .find(|a| core::ptr::eq(&***a, item))
            .ok_or(EINVAL)?;
        // INVARIANT: an item of the list.
        self.chosen
            .store(core::ptr::from_ref::<T>(kept).cast_mut(), Ordering::Release);
        Ok(())
    }

    /// The chosen item, if any. Any context; never sleeps.
    pub fn chosen(&self) -> Option<&T> {
        // SAFETY: by the type invariant, NULL or an item that the list keeps
        // (its `Arc`) for at least as long as `self`.
        unsafe { self.chosen.load(Ordering::Acquire).as_ref() }
    }
}
