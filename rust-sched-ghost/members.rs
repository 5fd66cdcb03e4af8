// SPDX-License-Identifier: GPL-2.0

//! The members of an enclave: every task and agent that has ghost state in
//! it, on an intrusive list the enclave owns.
//!
//! A pid lookup does not find every member. A task that exits is released
//! by its parent (`release_task()` unhashes its pid) before its last
//! switch, and in ghost only an agent's commit gives it that switch. So
//! the enclave keeps its own list, as ghOSt does: a gtid that the pid hash
//! no longer knows is looked for here ([`Members::find`]), and destroying
//! an enclave moves exactly its members back to CFS.
//!
//! Every [`GhostTask`] is linked from its allocation to its drop (see
//! `GhostTask::new`) and holds a reference on its task, so a member's task
//! is valid while it is linked, whichever path frees the state.
//!
//! Locking: the list sits in a [`RawSpinLock`] of the enclave, taken inside
//! runqueue locks (a task retired under its rq lock unlinks itself); no
//! runqueue lock is ever taken while it is held.

use crate::gtask::GhostTask;
use crate::sys::rawlock::RawSpinLock;
use crate::sys::rq::TaskPtr;
use crate::sys::task::TaskHandle;
use core::cell::Cell;
use core::ptr;
use kernel::prelude::*;

/// A member's place on the list (in its [`GhostTask`]).
///
/// # Invariants
///
/// The cells are only accessed with the enclave's member lock held.
pub struct Link {
    prev: Cell<*const GhostTask>,
    next: Cell<*const GhostTask>,
    linked: Cell<bool>,
}

impl Link {
    /// An unlinked place.
    pub const fn new() -> Self {
        Link {
            prev: Cell::new(ptr::null()),
            next: Cell::new(ptr::null()),
            linked: Cell::new(false),
        }
    }
}

/// The list: its first member and its length.
///
/// # Invariants
///
/// Every member reachable from `head` is a live [`GhostTask`] at a stable
/// address, with `Link::linked` set; `prev`/`next` form a NULL-terminated
/// doubly linked list of `len` members.
pub struct Members {
    head: *const GhostTask,
    len: usize,
}

// SAFETY: the pointers are to members that the enclave's lock protects;
// they may be used from any CPU holding it.
unsafe impl Send for Members {}

impl Members {
    /// An empty list, in its lock. May sleep (allocates the lock).
    pub fn new_locked() -> Result<RawSpinLock<Members>> {
        RawSpinLock::new(Members {
            head: ptr::null(),
            len: 0,
        })
    }

    /// Links `gt`.
    ///
    /// # Safety
    ///
    /// `gt` stays at its address until [`Members::unlink`] of `gt` (which
    /// the state's drop does); `gt` is not linked yet.
    pub unsafe fn link(&mut self, gt: &GhostTask) {
        let l = gt.link();
        l.prev.set(ptr::null());
        l.next.set(self.head);
        l.linked.set(true);
        // SAFETY: a member (type invariant): live, at its address.
        if let Some(first) = unsafe { self.head.as_ref() } {
            first.link().prev.set(gt);
        }
        // INVARIANT: `gt` is live at its address (the caller's guarantee)
        // and now first on the list.
        self.head = gt;
        self.len = self.len.saturating_add(1);
    }

    /// Unlinks `gt`, if it is linked.
    pub fn unlink(&mut self, gt: &GhostTask) {
        let l = gt.link();
        if !l.linked.get() {
            return;
        }
        let (prev, next) = (l.prev.get(), l.next.get());
        // SAFETY: neighbours are members (type invariant): live.
        match unsafe { prev.as_ref() } {
            Some(p) => p.link().next.set(next),
            None => self.head = next,
        }
        // SAFETY: as above.
        if let Some(n) = unsafe { next.as_ref() } {
            n.link().prev.set(prev);
        }
        l.prev.set(ptr::null());
        l.next.set(ptr::null());
        l.linked.set(false);
        self.len = self.len.saturating_sub(1);
    }

    /// How many members there are.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The members' tasks, first to last.
    fn tasks(&self) -> impl Iterator<Item = TaskPtr> + '_ {
        let mut at = self.head;
        core::iter::from_fn(move || {
            // SAFETY: a member (type invariant): live, at its address.
            let gt = unsafe { at.as_ref() }?;
            at = gt.link().next.get();
            Some(gt.task())
        })
    }

    /// The member whose task has gtid `gtid`, with a reference.
    pub fn find(&self, gtid: i64) -> Option<TaskHandle> {
        self.tasks().find(|p| p.gtid() == gtid).map(TaskHandle::get)
    }

    /// Takes a reference on each member's task, up to `out`'s spare
    /// capacity (no allocation: the lock is held).
    pub fn collect(&self, out: &mut KVec<TaskHandle>) {
        for p in self.tasks() {
            if out.len() >= out.capacity() {
                return;
            }
            // Within capacity: `push` does not allocate.
            let _ = out.push(TaskHandle::get(p), GFP_NOWAIT);
        }
    }
}

/// Every member of the list in `lock`, with a reference each. May sleep.
pub fn snapshot(lock: &RawSpinLock<Members>) -> KVec<TaskHandle> {
    let mut out = KVec::new();
    // Members joining between the count and the copy are left for the
    // caller's next round (destroy goes round until none is left).
    let n = lock.lock().len();
    if out.reserve(n.saturating_add(16), GFP_KERNEL).is_err() {
        return out;
    }
    lock.lock().collect(&mut out);
    out
}
