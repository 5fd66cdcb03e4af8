// SPDX-License-Identifier: GPL-2.0

//! [`AnyCtxWaitQueue`]: a wait queue, in a `static`, that any context may
//! wake, runqueue locks held and interrupts off included.
//!
//! A direct `wake_up()` under a runqueue lock can deadlock (waking the
//! sleeper takes its runqueue's lock, possibly the one held), so
//! [`AnyCtxWaitQueue::wake`] queues a hard irq_work whose handler does the
//! `wake_up()`. Sleepers wait for a condition, re-checked after every
//! wakeup, as `wait_event_timeout()` does.

use crate::sys::work::IrqWork;
use core::sync::atomic::{AtomicU8, Ordering};
use kernel::bindings;
use kernel::ffi::c_long;
use kernel::types::Opaque;

/// [`AnyCtxWaitQueue::init`] has not run.
const UNINIT: u8 = 0;
/// [`AnyCtxWaitQueue::init`] is running.
const INITIALIZING: u8 = 1;
/// The queue is initialized.
const READY: u8 = 2;

/// A wait queue head, its lockdep class and the irq_work that wakes it.
///
/// # Invariants
///
/// `wq` and `key` are initialized before `state` becomes `READY`; all live
/// in a `static` and never move.
pub struct AnyCtxWaitQueue {
    wq: Opaque<bindings::wait_queue_head>,
    key: Opaque<bindings::lock_class_key>,
    irq: IrqWork,
    state: AtomicU8,
}

// SAFETY: the wait queue head and the lockdep key are only handed to the
// wait and lockdep cores, which synchronize every access to them; `irq` and
// `state` are `Sync`.
unsafe impl Sync for AnyCtxWaitQueue {}

impl AnyCtxWaitQueue {
    /// A queue for a `static`, woken by `wake_now`, a function that calls
    /// [`Self::wake_now`] on that `static`; [`Self::init`] it at boot.
    pub const fn new(wake_now: fn()) -> Self {
        AnyCtxWaitQueue {
            wq: Opaque::uninit(),
            key: Opaque::uninit(),
            irq: IrqWork::new(wake_now),
            state: AtomicU8::new(UNINIT),
        }
    }

    /// Initializes the queue (once; later calls do nothing). Before it,
    /// wakes do nothing and a wait only checks its condition.
    pub fn init(&'static self, name: &'static kernel::str::CStr) {
        if self
            .state
            .compare_exchange(UNINIT, INITIALIZING, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        // SAFETY: `wq` and `key` live in `self`, a `static` (lockdep wants
        // a static key; it expects it uninitialized); only this caller won
        // the right to initialize them, and nobody uses them before `READY`;
        // `name` is static.
        unsafe {
            bindings::__init_waitqueue_head(self.wq.get(), name.as_char_ptr(), self.key.get())
        };
        self.irq.init();
        self.state.store(READY, Ordering::Release);
    }

    /// Whether [`Self::init`] ran.
    fn ready(&self) -> bool {
        self.state.load(Ordering::Acquire) == READY
    }

    /// Wakes every waiter, soon (from the irq_work). Any context; never
    /// sleeps. A wake while one is pending is merged with it.
    pub fn wake(&self) {
        self.irq.queue();
    }

    /// Wakes every waiter now: the irq_work handler's body (no runqueue
    /// lock may be held).
    pub fn wake_now(&self) {
        if !self.ready() {
            return;
        }
        // SAFETY: initialized (checked); `__wake_up` may be called
        // from any context that holds no runqueue lock.
        unsafe {
            bindings::__wake_up(
                self.wq.get(),
                bindings::TASK_NORMAL,
                0,
                core::ptr::null_mut(),
            )
        };
    }

    /// Sleeps (uninterruptibly) until `cond` holds or `timeout_ms` passed;
    /// returns whether `cond` held. `cond` is evaluated with the task state
    /// already set, so it must not sleep. Process context.
    pub fn wait_until(&self, timeout_ms: u32, mut cond: impl FnMut() -> bool) -> bool {
        if !self.ready() {
            return cond();
        }
        // SAFETY: pure conversion.
        let mut left = unsafe { bindings::__msecs_to_jiffies(timeout_ms) } as c_long;
        let entry = Opaque::<bindings::wait_queue_entry>::uninit();
        // SAFETY: `entry` is valid memory that lives until `finish_wait`.
        unsafe { bindings::init_wait_entry(entry.get(), 0) };
        let held = loop {
            // SAFETY: the queue is initialized (checked), `entry`
            // was initialized above; an uninterruptible wait never reports
            // a signal.
            unsafe {
                bindings::prepare_to_wait_event(
                    self.wq.get(),
                    entry.get(),
                    bindings::TASK_UNINTERRUPTIBLE as _,
                )
            };
            if cond() {
                break true;
            }
            if left <= 0 {
                break false;
            }
            // SAFETY: process context (the caller's contract).
            left = unsafe { bindings::schedule_timeout(left) };
        };
        // SAFETY: as for `prepare_to_wait_event`; removes `entry` before it
        // goes out of scope.
        unsafe { bindings::finish_wait(self.wq.get(), entry.get()) };
        held
    }
}
