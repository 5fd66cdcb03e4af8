// SPDX-License-Identifier: GPL-2.0

//! Counted references on an object that waits for them (an enclave and
//! the tasks in it), and back-references to what that object keeps.
//!
//! - [`Anchor`]: a count of holders, embedded in the object
//!   ([`Anchored`]); its owner frees the object only once the count is
//!   zero (an enclave's `destroy` waits for it).
//! - [`Entered`]: one counted reference, "a task holds a reference on its
//!   enclave": made by [`Entered::new`] (count up), given back by its drop
//!   (count down; the last one out calls the anchor's `on_last`, without
//!   touching the object after the decrement).
//! - [`Backref`]: a pointer to something the anchored object keeps for as
//!   long as it lives (a status-word region, a queue), read through the
//!   [`Entered`] that keeps the object alive.
//! - [`AtomicBackref`]: a [`Backref`] published for lock-free readers (a
//!   CPU's agent status word).
//!
//! # Invariants
//!
//! An object whose [`Anchor`] counts a holder is alive. This rests on the
//! anchored type's owner: it frees the object only after the count fell to
//! zero ([`Anchor`]'s drop checks it with a `WARN_ONCE`), and the object
//! keeps whatever a [`Backref`] points to until it is freed itself.

use core::marker::PhantomData;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

/// The count of [`Entered`] references on the object it is embedded in.
pub struct Anchor {
    count: AtomicUsize,
    /// Called when the count falls to zero (any context, runqueue locks
    /// included); must not touch the object (it may be freed by then).
    on_last: fn(),
}

impl Anchor {
    /// No holder yet; `on_last` runs each time the last one goes.
    pub const fn new(on_last: fn()) -> Self {
        Anchor {
            count: AtomicUsize::new(0),
            on_last,
        }
    }

    /// How many references are held.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }
}

impl Drop for Anchor {
    fn drop(&mut self) {
        if self.count.load(Ordering::SeqCst) != 0 {
            crate::warn_once!("anchor: an object freed while it is entered");
        }
    }
}

/// A type with an [`Anchor`]: its owner frees an object only once the
/// anchor's count is zero (the module's invariant).
pub trait Anchored: Sync {
    /// The object's anchor (the same field every time).
    fn anchor(&self) -> &Anchor;
}

/// A counted reference on `T` (see [`Anchor`]).
///
/// # Invariants
///
/// `ptr` points to a live `T` whose anchor counts this reference.
pub struct Entered<T: Anchored> {
    ptr: NonNull<T>,
}

// SAFETY: a shared reference to a `Sync` object, usable from any CPU; the
// count is atomic.
unsafe impl<T: Anchored> Send for Entered<T> {}
// SAFETY: as above: `&Entered` only gives `&T`.
unsafe impl<T: Anchored> Sync for Entered<T> {}

impl<T: Anchored> Entered<T> {
    /// Counts a new reference on `t`. The count comes first, so that an
    /// owner that closes the object and then waits for the count sees this
    /// holder, or the holder sees it closed (the caller checks after).
    pub fn new(t: &T) -> Self {
        t.anchor().count.fetch_add(1, Ordering::SeqCst);
        // INVARIANT: counted just above: `t` lives as long as the count
        // holds it (the module's invariant).
        Entered {
            ptr: NonNull::from(t),
        }
    }

    /// The object.
    pub fn get(&self) -> &T {
        // SAFETY: alive while counted (type invariant).
        unsafe { self.ptr.as_ref() }
    }

    /// A back-reference to `u`, which the object keeps for as long as it
    /// lives (one of its regions or queues: the module's invariant).
    pub fn backref<U>(&self, u: &U) -> Backref<U> {
        Backref {
            ptr: NonNull::from(u),
            anchor: NonNull::from(self.get().anchor()),
        }
    }
}

impl<T: Anchored> Drop for Entered<T> {
    fn drop(&mut self) {
        let a = self.get().anchor();
        let on_last = a.on_last;
        // The last one out tells the owner, without touching the object
        // after the decrement (it may be freed at once).
        if a.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            on_last();
        }
    }
}

/// A pointer to a `U` that an anchored object keeps for as long as it
/// lives; read only through an [`Entered`] on that object.
///
/// # Invariants
///
/// `ptr` points to a `U` that the object whose anchor is `anchor` keeps
/// until it is freed.
pub struct Backref<U> {
    ptr: NonNull<U>,
    anchor: NonNull<Anchor>,
}

impl<U> Clone for Backref<U> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<U> Copy for Backref<U> {}

// SAFETY: only an address; reads go through `get`, which gives a shared
// reference to a `Sync` value.
unsafe impl<U: Sync> Send for Backref<U> {}
// SAFETY: as above.
unsafe impl<U: Sync> Sync for Backref<U> {}

impl<U> Backref<U> {
    /// The target, for as long as `by` (a reference on the object that
    /// keeps it) is borrowed. `None` (with a `WARN_ONCE`) if `by` is on
    /// another object.
    pub fn get<'a, T: Anchored>(self, by: &'a Entered<T>) -> Option<&'a U> {
        if !ptr::eq(self.anchor.as_ptr(), by.get().anchor()) {
            crate::warn_once!("backref: read through another object");
            return None;
        }
        // SAFETY: the object that keeps the target (type invariant) is
        // alive while `by` is (its invariant).
        Some(unsafe { self.ptr.as_ref() })
    }

    /// A back-reference to a part of the target that the target keeps as
    /// long as it lives (a status word in its region), if `f` finds one.
    pub fn map<T: Anchored, V>(
        self,
        by: &Entered<T>,
        f: impl FnOnce(&U) -> Option<&V>,
    ) -> Option<Backref<V>> {
        let v = f(self.get(by)?)?;
        // INVARIANT: part of a target the object keeps, kept as long.
        Some(Backref {
            ptr: NonNull::from(v),
            anchor: self.anchor,
        })
    }
}

/// A [`Backref`], or none, published for lock-free readers.
///
/// # Invariants
///
/// A non-NULL `ptr` is the target of a [`Backref`] whose object is alive:
/// the publisher clears it before the reference that keeps the object
/// alive goes, and readers run where that clear cannot complete meanwhile
/// (the publisher's lock, or an RCU-like grace the publisher waits for).
pub struct AtomicBackref<U> {
    ptr: AtomicPtr<U>,
    _t: PhantomData<U>,
}

impl<U> AtomicBackref<U> {
    /// Nothing published.
    pub const fn new() -> Self {
        AtomicBackref {
            ptr: AtomicPtr::new(ptr::null_mut()),
            _t: PhantomData,
        }
    }

    /// Publishes `r` (or clears). The caller clears it before the
    /// reference that keeps `r`'s object alive goes (type invariant).
    pub fn store(&self, r: Option<Backref<U>>) {
        let p = r.map_or(ptr::null_mut(), |r| r.ptr.as_ptr());
        self.ptr.store(p, Ordering::Release);
    }

    /// Runs `f` on the published target, if there is one.
    pub fn with<R>(&self, f: impl FnOnce(&U) -> R) -> Option<R> {
        let p = self.ptr.load(Ordering::Acquire);
        // SAFETY: NULL or a live target (type invariant).
        unsafe { p.as_ref() }.map(f)
    }
}

impl<U> Default for AtomicBackref<U> {
    fn default() -> Self {
        Self::new()
    }
}
