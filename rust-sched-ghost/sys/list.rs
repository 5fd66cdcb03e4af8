// SPDX-License-Identifier: GPL-2.0

//! [`List`]: the crate's one intrusive doubly linked list, serving both
//! lists of task state: an enclave's members ([`crate::enclave`]) and each
//! CPU's runnable ghost tasks ([`crate::fallback`], through [`RqList`], a
//! list only the holder of that CPU's runqueue lock touches).
//!
//! An item carries one [`Links`] per kind of list it can be on (the `ID`
//! parameter tells the kinds apart), named by [`crate::impl_has_links!`];
//! it is on at most one list of each kind at a time. The list does not own
//! its items and never allocates: linking and unlinking are O(1) and fit
//! under any lock, with interrupts off.
//!
//! # Invariants
//!
//! - Every item reachable from a list's `head` is alive and at the address
//!   it was linked at; its links' `owner` is that list's id; `prev`/`next`
//!   form a NULL-terminated chain from `head` to `tail` of `len` items.
//! - An item's `prev`/`next` are only read or written by the list it is on,
//!   through `&List` (reads) or `&mut List` (writes): the lock that guards
//!   the list guards its items' links.
//!
//! The first invariant rests on the promise [`crate::impl_has_links!`]
//! makes for the item type: an item is removed from its list before it is
//! freed or moved. [`Links`] checks it when dropped (a `WARN_ONCE` for a
//! still-linked item).

use crate::sys::rq::Rq;
use core::cell::{Cell, UnsafeCell};
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

/// An item's place on one kind (`ID`) of list.
///
/// The pointers are atomics only so that the type is `Sync`: every access
/// is made by the list the item is on, under the lock that guards it
/// (relaxed order is enough).
pub struct Links<T, const ID: usize> {
    prev: AtomicPtr<T>,
    next: AtomicPtr<T>,
    /// The id of the list the item is on; 0: on none.
    owner: AtomicU64,
}

impl<T, const ID: usize> Links<T, ID> {
    /// Not on any list.
    pub const fn new() -> Self {
        Links {
            prev: AtomicPtr::new(ptr::null_mut()),
            next: AtomicPtr::new(ptr::null_mut()),
            owner: AtomicU64::new(0),
        }
    }

    fn prev(&self) -> *const T {
        self.prev.load(Ordering::Relaxed)
    }

    fn next(&self) -> *const T {
        self.next.load(Ordering::Relaxed)
    }

    fn set_prev(&self, p: *const T) {
        self.prev.store(p.cast_mut(), Ordering::Relaxed);
    }

    fn set_next(&self, p: *const T) {
        self.next.store(p.cast_mut(), Ordering::Relaxed);
    }
}

impl<T, const ID: usize> Default for Links<T, ID> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, const ID: usize> Drop for Links<T, ID> {
    fn drop(&mut self) {
        if self.owner.load(Ordering::Relaxed) != 0 {
            crate::warn_once!("list: an item freed while still linked");
        }
    }
}

/// A type whose items carry [`Links`] for lists of kind `ID`.
///
/// # Safety
///
/// [`Self::links`] returns the same field of `self` every time, and an item
/// is removed from its list of this kind before it is freed or moved.
/// Implement it with [`crate::impl_has_links!`] only.
pub unsafe trait HasLinks<const ID: usize>: Sized {
    /// The item's links for lists of kind `ID`.
    fn links(&self) -> &Links<Self, ID>;
}

/// Declares that field `$field` of `$t` is its place on lists of kind
/// `$id` (a `usize` constant).
///
/// Invoking it is the item type's promise (see [`sys::list`](self)): an
/// item is removed from its list before it is freed or moved (boxed items
/// whose owner unlinks them on the way to their drop).
#[macro_export]
macro_rules! impl_has_links {
    ($t:ty, $field:ident, $id:expr) => {
        // SAFETY: `links` returns the same field every time; the invoker
        // promises that items are unlinked before they are freed or moved
        // (see `crate::sys::list`).
        unsafe impl $crate::sys::list::HasLinks<{ $id }> for $t {
            fn links(&self) -> &$crate::sys::list::Links<Self, { $id }> {
                &self.$field
            }
        }
    };
}

/// Ids of lists: nonzero, never reused (an item knows its list by id).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A list of items of type `T` on their links of kind `ID`.
///
/// # Invariants
///
/// See the module documentation.
pub struct List<T: HasLinks<ID>, const ID: usize> {
    id: u64,
    head: *const T,
    tail: *const T,
    len: usize,
}

// SAFETY: the list holds only pointers to its items, which are `Sync`; its
// lock (the owner's) serializes every change, from whichever CPU holds it.
unsafe impl<T: HasLinks<ID> + Sync, const ID: usize> Send for List<T, ID> {}

impl<T: HasLinks<ID>, const ID: usize> List<T, ID> {
    /// An empty list.
    pub fn new() -> Self {
        List {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            head: ptr::null(),
            tail: ptr::null(),
            len: 0,
        }
    }

    /// How many items are on the list.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `item` is on this list.
    pub fn contains(&self, item: &T) -> bool {
        item.links().owner.load(Ordering::Relaxed) == self.id
    }

    /// Claims `item` for this list; `false` if it is on one already.
    fn claim(&self, item: &T) -> bool {
        item.links()
            .owner
            .compare_exchange(0, self.id, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }

    /// Links `item` first; `false` (nothing done) if it is on a list of
    /// this kind already.
    pub fn push_front(&mut self, item: &T) -> bool {
        if !self.claim(item) {
            return false;
        }
        let l = item.links();
        l.set_prev(ptr::null());
        l.set_next(self.head);
        // SAFETY: a non-NULL head is an item of this list: alive (type
        // invariant); `&mut self` guards its links.
        match unsafe { self.head.as_ref() } {
            Some(first) => first.links().set_prev(item),
            None => self.tail = item,
        }
        // INVARIANT: `item` stays alive and in place until it is removed
        // (the `HasLinks` promise) and is now first.
        self.head = item;
        self.len = self.len.saturating_add(1);
        true
    }

    /// Links `item` last; `false` (nothing done) if it is on a list of this
    /// kind already.
    pub fn push_back(&mut self, item: &T) -> bool {
        if !self.claim(item) {
            return false;
        }
        let l = item.links();
        l.set_prev(self.tail);
        l.set_next(ptr::null());
        // SAFETY: a non-NULL tail is an item of this list: alive (type
        // invariant); `&mut self` guards its links.
        match unsafe { self.tail.as_ref() } {
            Some(last) => last.links().set_next(item),
            None => self.head = item,
        }
        // INVARIANT: as in `push_front`; `item` is now last.
        self.tail = item;
        self.len = self.len.saturating_add(1);
        true
    }

    /// Unlinks `item` if it is on this list (whether it was).
    pub fn remove(&mut self, item: &T) -> bool {
        if !self.contains(item) {
            return false;
        }
        let l = item.links();
        let (prev, next) = (l.prev(), l.next());
        // SAFETY: the neighbours of an item of this list are items of this
        // list: alive (type invariant); `&mut self` guards their links.
        match unsafe { prev.as_ref() } {
            Some(p) => p.links().set_next(next),
            None => self.head = next,
        }
        // SAFETY: as above.
        match unsafe { next.as_ref() } {
            Some(n) => n.links().set_prev(prev),
            None => self.tail = prev,
        }
        l.set_prev(ptr::null());
        l.set_next(ptr::null());
        l.owner.store(0, Ordering::Relaxed);
        self.len = self.len.saturating_sub(1);
        true
    }

    /// The items, first to last.
    pub fn iter(&self) -> Iter<'_, T, ID> {
        Iter {
            at: self.head,
            _list: self,
        }
    }

    /// Moves the first item for which `pred` holds to the back of the list
    /// and returns it.
    pub fn rotate_first(&mut self, mut pred: impl FnMut(&T) -> bool) -> Option<&T> {
        let found: *const T = self.iter().find(|t| pred(*t))?;
        // SAFETY: an item of this list: alive (type invariant), and it
        // stays so while `self` is borrowed (only a removal, which needs
        // `&mut self`, may let it go).
        let item = unsafe { &*found };
        self.remove(item);
        self.push_back(item);
        Some(item)
    }
}

impl<T: HasLinks<ID>, const ID: usize> Default for List<T, ID> {
    fn default() -> Self {
        Self::new()
    }
}

/// The items of a [`List`], first to last.
pub struct Iter<'a, T: HasLinks<ID>, const ID: usize> {
    at: *const T,
    _list: &'a List<T, ID>,
}

impl<'a, T: HasLinks<ID>, const ID: usize> Iterator for Iter<'a, T, ID> {
    type Item = &'a T;

    fn next(&mut self) -> Option<&'a T> {
        // SAFETY: NULL or an item of the list, alive while the list is
        // borrowed (type invariant: removing it needs `&mut List`).
        let t = unsafe { self.at.as_ref() }?;
        self.at = t.links().next();
        Some(t)
    }
}

/// A [`List`] that only the holder of CPU `cpu`'s runqueue lock touches
/// (checked, as [`crate::sys::rq::RqCell`] checks).
///
/// # Invariants
///
/// `list` is only accessed by [`Self::with`], on the CPU holding the rq
/// lock of `cpu`, and never by two nested calls (`busy`).
pub struct RqList<T: HasLinks<ID>, const ID: usize> {
    cpu: i32,
    busy: Cell<bool>,
    list: UnsafeCell<List<T, ID>>,
}

// SAFETY: every access is made under CPU `cpu`'s rq lock (type invariant,
// checked by `with`), which serializes all CPUs, as the task state on the
// list requires.
unsafe impl<T: HasLinks<ID>, const ID: usize> Sync for RqList<T, ID> {}

impl<T: HasLinks<ID>, const ID: usize> RqList<T, ID> {
    /// An empty list of CPU `cpu`.
    pub fn new(cpu: i32) -> Self {
        RqList {
            cpu,
            busy: Cell::new(false),
            list: UnsafeCell::new(List::new()),
        }
    }

    /// Runs `f` on the list; `rq`, locked, is CPU `cpu`'s runqueue. `None`
    /// (with a `WARN_ONCE`) for another CPU's runqueue or a nested call.
    pub fn with<R>(&self, rq: &Rq, f: impl FnOnce(&mut List<T, ID>) -> R) -> Option<R> {
        if rq.cpu() != self.cpu {
            crate::warn_once!("RqList: another CPU's runqueue");
            return None;
        }
        if self.busy.replace(true) {
            crate::warn_once!("RqList: nested access");
            return None;
        }
        // SAFETY: the caller holds this CPU's rq lock (`&Rq`), and `busy`
        // rules out another borrow on this CPU: this is the only access.
        let r = f(unsafe { &mut *self.list.get() });
        self.busy.set(false);
        Some(r)
    }
}
