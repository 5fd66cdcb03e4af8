// SPDX-License-Identifier: GPL-2.0

//! [`Counted`]: a reference that a count, not a borrow, keeps valid, so it
//! may outlive the lock under which it was found (an enclave found through
//! a CPU's agent under that CPU's runqueue lock, used after the unlock).
//! Taking and dropping one never sleeps: any context.

use core::ptr::NonNull;
use kernel::prelude::*;

/// Objects whose own count keeps them alive.
///
/// # Safety
///
/// While a [`Self::get`] that succeeded is not matched by a
/// [`Self::put`], the object is not freed.
pub unsafe trait Count {
    /// Takes a count; fails if the object is going away.
    fn get(&self) -> Result;
    /// Drops a count taken by [`Self::get`].
    fn put(&self);
}

// SAFETY: an enclave is freed only after `destroy` saw its task count
// (`Enclave::enter`/`leave`) drop to zero, and `enter` fails once `destroy`
// has started.
unsafe impl Count for crate::enclave::Enclave {
    fn get(&self) -> Result {
        self.enter()
    }
    fn put(&self) {
        self.leave()
    }
}

/// A counted reference to a `T`.
///
/// # Invariants
///
/// `p` points to a `T` on which this holds one count.
pub struct Counted<T: Count> {
    p: NonNull<T>,
}

impl<T: Count> Counted<T> {
    /// Counts `t`; fails as [`Count::get`] does.
    pub fn new(t: &T) -> Result<Self> {
        t.get()?;
        // INVARIANT: the count was just taken.
        Ok(Counted {
            p: NonNull::from(t),
        })
    }
}

impl<T: Count> core::ops::Deref for Counted<T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: counted (type invariant), hence alive (`Count`'s contract).
        unsafe { self.p.as_ref() }
    }
}

impl<T: Count> Drop for Counted<T> {
    fn drop(&mut self) {
        // The count is dropped last: nothing touches `T` after it.
        let t: &T = self;
        t.put();
    }
}
