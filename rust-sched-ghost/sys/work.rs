// SPDX-License-Identifier: GPL-2.0

//! Deferred work: an [`IrqWork`] (`struct irq_work`, queued from any
//! context, rq locks included, run in hard interrupt context) and a
//! [`Work`] (`struct work_struct`, run by an unbound worker in process
//! context). Both call a plain Rust `fn()` given at construction, through
//! one C trampoline per kind, and live for good (statics or memory leaked
//! at boot): nothing is ever cancelled or freed.

use core::sync::atomic::{AtomicU8, Ordering};
use kernel::bindings;
use kernel::types::Opaque;

/// Not initialized; being initialized; ready to be queued.
const UNINIT: u8 = 0;
const INITIALIZING: u8 = 1;
const READY: u8 = 2;

/// An irq_work that calls `f` on the CPU it was queued on, in hard
/// interrupt context (an RCU read-side section).
///
/// # Invariants
///
/// `work` is the first field (`repr(C)`): the trampoline finds the
/// `IrqWork` from the `irq_work` pointer C passes. `work` is initialized
/// before `state` becomes `READY` and is queued only then.
#[repr(C)]
pub struct IrqWork {
    work: Opaque<bindings::irq_work>,
    f: fn(),
    state: AtomicU8,
}

// SAFETY: the irq_work core synchronizes the C object; `f` is immutable;
// `state` is atomic.
unsafe impl Sync for IrqWork {}
// SAFETY: as above; nothing in it is tied to a thread.
unsafe impl Send for IrqWork {}

/// The handler of every [`IrqWork`].
///
/// # Safety
///
/// Called by the irq_work core with the `work` of an initialized
/// [`IrqWork`] that lives for good.
unsafe extern "C" fn irq_work_trampoline(w: *mut bindings::irq_work) {
    // SAFETY: `w` is the first field of a `repr(C)` `IrqWork` (type
    // invariant) that lives for good (`init` takes `&'static self`).
    let this = unsafe { &*w.cast::<IrqWork>() };
    (this.f)();
}

impl IrqWork {
    /// An irq_work that will call `f`; [`Self::init`] it before use.
    pub const fn new(f: fn()) -> Self {
        IrqWork {
            work: Opaque::uninit(),
            f,
            state: AtomicU8::new(UNINIT),
        }
    }

    /// Initializes the C object (once; later calls do nothing).
    pub fn init(&'static self) {
        if self
            .state
            .compare_exchange(UNINIT, INITIALIZING, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        // SAFETY: `self` lives for good; no one queues it before `READY`,
        // and only this caller won the right to initialize it.
        unsafe { bindings::ghost_init_irq_work(self.work.get(), Some(irq_work_trampoline)) };
        self.state.store(READY, Ordering::Release);
    }

    /// Whether [`Self::init`] ran.
    fn ready(&self) -> bool {
        self.state.load(Ordering::Acquire) == READY
    }

    /// Queues the work on this CPU (a pending work is not queued twice).
    /// Any context. Does nothing before [`Self::init`].
    pub fn queue(&self) {
        if self.ready() {
            // SAFETY: initialized (checked); lives for good; any context.
            unsafe { bindings::irq_work_queue(self.work.get()) };
        }
    }

    /// Queues the work on `cpu`, if it is online. Any context. Does
    /// nothing before [`Self::init`].
    pub fn queue_on(&self, cpu: i32) {
        if self.ready() && crate::sys::cpu::cpu_online(cpu) {
            // SAFETY: initialized (checked); lives for good; `cpu` is an
            // online CPU id; any context.
            unsafe { bindings::irq_work_queue_on(self.work.get(), cpu) };
        }
    }
}

/// A work item that calls `f` in an unbound worker (process context, may
/// sleep).
///
/// # Invariants
///
/// As for [`IrqWork`]: `work` first (`repr(C)`), initialized before
/// `state` is `READY`, queued only then.
#[repr(C)]
pub struct Work {
    work: Opaque<bindings::work_struct>,
    f: fn(),
    state: AtomicU8,
}

// SAFETY: the workqueue core synchronizes the C object; `f` is
// immutable; `state` is atomic.
unsafe impl Sync for Work {}
// SAFETY: as above.
unsafe impl Send for Work {}

/// The handler of every [`Work`].
///
/// # Safety
///
/// Called by the workqueue core with the `work` of an initialized [`Work`]
/// that lives for good.
unsafe extern "C" fn work_trampoline(w: *mut bindings::work_struct) {
    // SAFETY: `w` is the first field of a `repr(C)` `Work` (type
    // invariant) that lives for good.
    let this = unsafe { &*w.cast::<Work>() };
    (this.f)();
}

impl Work {
    /// A work item that will call `f`; [`Self::init`] it before use.
    pub const fn new(f: fn()) -> Self {
        Work {
            work: Opaque::uninit(),
            f,
            state: AtomicU8::new(UNINIT),
        }
    }

    /// Initializes the C object (once; later calls do nothing).
    pub fn init(&'static self) {
        if self
            .state
            .compare_exchange(UNINIT, INITIALIZING, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        // SAFETY: `self` lives for good; no one queues it before `READY`.
        unsafe { bindings::ghost_init_work(self.work.get(), Some(work_trampoline)) };
        self.state.store(READY, Ordering::Release);
    }

    /// Queues the work on an unbound worker (a pending work is not queued
    /// twice). Any context, hard interrupts included (but not with an rq
    /// lock held: queueing wakes a worker). Does nothing before
    /// [`Self::init`].
    pub fn queue_unbound(&self) {
        if self.state.load(Ordering::Acquire) == READY {
            // SAFETY: initialized (checked); lives for good.
            unsafe { bindings::ghost_queue_unbound_work(self.work.get()) };
        }
    }
}
