// SPDX-License-Identifier: GPL-2.0

//! [`PerCpu`]: one value per CPU id, allocated once at boot and never
//! freed, reachable from any CPU as `&'static`.

use core::sync::atomic::{AtomicPtr, Ordering};
use kernel::prelude::*;

/// One `T` per CPU id (`nr_cpu_ids` of them), in a `static`.
///
/// # Invariants
///
/// `base` is NULL, or points to `nr_cpu_ids` initialized `T`s leaked for
/// good (set once by [`Self::init`]).
pub struct PerCpu<T: Sync + 'static> {
    base: AtomicPtr<T>,
}

impl<T: Sync + 'static> PerCpu<T> {
    /// Not set up yet: [`Self::get`] gives `None` until [`Self::init`].
    pub const fn new() -> Self {
        PerCpu {
            base: AtomicPtr::new(core::ptr::null_mut()),
        }
    }

    /// Sets up the values, `make(cpu)` for each CPU id. Once, at boot
    /// (`EBUSY` if already done). May sleep.
    pub fn init(&self, mut make: impl FnMut(i32) -> T) -> Result {
        let n = crate::sys::cpu::nr_cpu_ids() as usize;
        let mut v = KVec::with_capacity(n, GFP_KERNEL)?;
        for cpu in 0..n {
            v.push(make(i32::try_from(cpu).map_err(|_| EINVAL)?), GFP_KERNEL)?;
        }
        let (ptr, len, cap) = v.into_raw_parts();
        if len != n
            || self
                .base
                .compare_exchange(
                    core::ptr::null_mut(),
                    ptr,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_err()
        {
            // SAFETY: the parts `into_raw_parts` just gave, not published.
            drop(unsafe { KVec::from_raw_parts(ptr, len, cap) });
            return Err(EBUSY);
        }
        // INVARIANT: `nr_cpu_ids` initialized entries, leaked for good.
        Ok(())
    }

    /// The value of `cpu`; `None` before [`Self::init`] or for a CPU id
    /// out of range.
    pub fn get(&self, cpu: i32) -> Option<&'static T> {
        if !crate::sys::cpu::cpu_valid(cpu) {
            return None;
        }
        let base = self.base.load(Ordering::Acquire);
        if base.is_null() {
            return None;
        }
        // SAFETY: a non-NULL `base` points to `nr_cpu_ids` entries leaked
        // for good (type invariant), and `cpu` is below `nr_cpu_ids`.
        Some(unsafe { &*base.add(cpu as usize) })
    }
}
