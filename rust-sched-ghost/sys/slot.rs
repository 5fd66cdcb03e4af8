// SPDX-License-Identifier: GPL-2.0

//! [`TaskSlot`]: ownership of the boxed per-task state hung on
//! `task_struct::ghost` (ghOSt's `struct sched_ghost_entity`).
//!
//! # Invariants
//!
//! - A non-NULL `task_struct::ghost` is a `KBox<T>` that [`TaskSlot::install`]
//!   leaked, of the crate's one slot (its `T`): only the first `TaskSlot`
//!   used claims the field ([`OWNER`]); another is refused.
//! - The box is taken back only with the task's rq lock held
//!   ([`TaskSlot::take`]), or by the only one who can see the task (a fork
//!   that failed, [`TaskSlot::take_unseen`]); readers hold that rq lock
//!   ([`TaskSlot::get`]), so a box is never freed under a reader.

use crate::sys::rq::{Rq, TaskPtr};
use core::marker::PhantomData;
use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};
use kernel::prelude::*;

/// The one [`TaskSlot`] of the crate (its address), once used.
static OWNER: AtomicPtr<u8> = AtomicPtr::new(ptr::null_mut());

/// The per-task state of type `T` on `task_struct::ghost` (one per crate,
/// in a `static`).
pub struct TaskSlot<T: Send> {
    /// Not zero-sized: each slot has its own address.
    _id: u8,
    _t: PhantomData<fn() -> T>,
}

impl<T: Send> TaskSlot<T> {
    /// The slot (for a `static`).
    pub const fn new() -> Self {
        TaskSlot {
            _id: 0,
            _t: PhantomData,
        }
    }

    /// Whether this is the crate's slot (the first one used).
    fn mine(&'static self) -> bool {
        let me = ptr::from_ref(&self._id).cast_mut();
        // A plain load on the hot path; the exchange only on first use.
        if OWNER.load(Ordering::Acquire) == me {
            return true;
        }
        match OWNER.compare_exchange(ptr::null_mut(), me, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => true,
            Err(owner) if owner == me => true,
            Err(_) => {
                crate::warn_once!("TaskSlot: a second slot");
                false
            }
        }
    }

    /// Hangs `b` on `p` (a compare-and-swap from NULL, so two installs
    /// cannot both win); gives it back if `p` already has a state.
    pub fn install(&'static self, p: TaskPtr, b: KBox<T>) -> core::result::Result<(), KBox<T>> {
        if !self.mine() {
            return Err(b);
        }
        let raw = KBox::into_raw(b);
        if p.claim_ghost_raw(raw.cast()) {
            // INVARIANT: a box of this slot's `T`, leaked.
            Ok(())
        } else {
            // SAFETY: not installed: `raw` is still ours, from `into_raw`.
            Err(unsafe { KBox::from_raw(raw) })
        }
    }

    /// The state of `p`, if it has one; `rq`, locked, is `p`'s runqueue
    /// (checked: `None`, with a `WARN_ONCE`, if it is another CPU's).
    pub fn get<'a>(&'static self, rq: &'a Rq, p: TaskPtr) -> Option<&'a T> {
        if p.cpu() != rq.cpu() {
            crate::warn_once!("TaskSlot::get: the rq is not the task's");
            return None;
        }
        if !self.mine() {
            return None;
        }
        let g = p.ghost_raw().cast::<T>();
        // SAFETY: NULL or a live box of this slot (type invariant), freed
        // only with `p`'s rq lock held, which the caller holds for `'a`.
        unsafe { g.as_ref() }
    }

    /// Takes `p`'s state off it; `rq`, locked, is `p`'s runqueue (checked
    /// as in [`Self::get`]).
    pub fn take(&'static self, rq: &Rq, p: TaskPtr) -> Option<KBox<T>> {
        if p.cpu() != rq.cpu() {
            crate::warn_once!("TaskSlot::take: the rq is not the task's");
            return None;
        }
        self.take_raw(p)
    }

    /// Takes the state off `p`, a task no one else can see yet (a fork
    /// that failed after `sched_fork()`).
    pub fn take_unseen(&'static self, p: TaskPtr) -> Option<KBox<T>> {
        self.take_raw(p)
    }

    fn take_raw(&'static self, p: TaskPtr) -> Option<KBox<T>> {
        if !self.mine() {
            return None;
        }
        let g = p.ghost_raw().cast::<T>();
        if g.is_null() {
            return None;
        }
        p.set_ghost_raw(ptr::null_mut());
        // SAFETY: a non-NULL field is a box `install` leaked (type
        // invariant); cleared just above, under the lock every taker holds
        // (or with the task seen by no one), so it is ours now.
        Some(unsafe { KBox::from_raw(g) })
    }

    /// Forgets the field of a new task `p` (a fork child's copy of its
    /// parent's pointer, which the parent still owns).
    pub fn forget_copied(&'static self, p: TaskPtr) {
        p.set_ghost_raw(ptr::null_mut());
    }
}
