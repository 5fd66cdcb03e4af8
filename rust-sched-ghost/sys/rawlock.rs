// SPDX-License-Identifier: GPL-2.0

//! A raw spinlock protecting a value, for data that the scheduler touches
//! with runqueue locks held (where `kernel::sync::SpinLock`, a sleeping lock
//! on PREEMPT_RT, must not be used). Lock order: rq lock, then these.

use core::cell::UnsafeCell;
use kernel::bindings;
use kernel::prelude::*;
use kernel::types::Opaque;

/// A `raw_spinlock_t` and the value it protects.
///
/// # Invariants
///
/// `lock` is initialized and never moves (it is boxed); `data` is only
/// accessed through a [`RawGuard`], which holds `lock`.
pub struct RawSpinLock<T> {
    lock: KBox<Opaque<bindings::raw_spinlock_t>>,
    data: UnsafeCell<T>,
}

// SAFETY: the lock serializes every access to `data` (type invariant).
unsafe impl<T: Send> Sync for RawSpinLock<T> {}
// SAFETY: moving the owner moves `data`; the lock itself is boxed.
unsafe impl<T: Send> Send for RawSpinLock<T> {}

impl<T> RawSpinLock<T> {
    /// A new, unlocked lock around `data`. May sleep (allocates).
    pub fn new(data: T) -> Result<Self> {
        let lock = KBox::new(Opaque::uninit(), GFP_KERNEL)?;
        // SAFETY: `lock` points to boxed memory that never moves.
        unsafe { bindings::ghost_raw_spin_lock_init(lock.get()) };
        // INVARIANT: initialized just above, and boxed.
        Ok(RawSpinLock {
            lock,
            data: UnsafeCell::new(data),
        })
    }

    /// Takes the lock (interrupts off until the guard drops). Never sleeps.
    pub fn lock(&self) -> RawGuard<'_, T> {
        // SAFETY: the lock is initialized (type invariant).
        let flags = unsafe { bindings::ghost_raw_spin_lock_irqsave(self.lock.get()) };
        RawGuard { lock: self, flags }
    }
}

/// The lock of a [`RawSpinLock`], held.
pub struct RawGuard<'a, T> {
    lock: &'a RawSpinLock<T>,
    flags: usize,
}

impl<T> core::ops::Deref for RawGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock: no other access to `data`.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> core::ops::DerefMut for RawGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard holds the lock: no other access to `data`.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T> Drop for RawGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: this guard took the lock with these flags.
        unsafe { bindings::ghost_raw_spin_unlock_irqrestore(self.lock.lock.get(), self.flags as _) }
    }
}
