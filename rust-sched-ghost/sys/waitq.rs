// SPDX-License-Identifier: GPL-2.0

//! [`AnyCtxWaitQueue`]: a wait queue, in a `static`, that any context may
//! wake, runqueue locks held and interrupts off included.
//!
//! A direct `wake_up()` under a runqueue lock can deadlock (waking the
//! sleeper takes its runqueue's lock, possibly the one held), so
//! [`AnyCtxWaitQueue::wake`] queues a hard irq_work whose handler does the
//! `wake_up()`. Sleepers wait for a condition, re-checked after every
//! wakeup, as `wait_event_timeout()` does.

use kernel::bindings;
use kernel::ffi::c_long;
use kernel::types::Opaque;

/// A wait queue head, its lockdep class and the irq_work that wakes it.
///
/// # Invariants
///
/// Once [`Self::init`] returned, `wq` and `irq` are initialized; all three
/// live in a `static` and never move.
pub struct AnyCtxWaitQueue {
    wq: Opaque<bindings::wait_queue_head>,
    key: Opaque<bindings::lock_class_key>,
    irq: Opaque<bindings::irq_work>,
}

// SAFETY: the wait queue head, the lockdep key and the irq_work are only
// handed to the wait, lockdep and irq_work cores, which synchronize every
// access to them.
unsafe impl Sync for AnyCtxWaitQueue {}

impl AnyCtxWaitQueue {
    /// An uninitialized queue, for a `static`; [`Self::init`] it at boot.
    pub const fn uninit() -> Self {
        AnyCtxWaitQueue {
            wq: Opaque::uninit(),
            key: Opaque::uninit(),
            irq: Opaque::uninit(),
        }
    }

    /// Initializes the queue (boot, before anyone waits or wakes).
    ///
    /// # Safety
    ///
    /// Called once, before any other method, with no concurrent use;
    /// `handler` calls [`Self::wake_now`] on this queue.
    pub unsafe fn init(
        &'static self,
        name: &'static kernel::str::CStr,
        handler: unsafe extern "C" fn(*mut bindings::irq_work),
    ) {
        // SAFETY: all three live in `self`, a `static` (lockdep wants a
        // static key; it expects it uninitialized); the caller guarantees no
        // concurrent use; `name` is static.
        unsafe {
            bindings::__init_waitqueue_head(self.wq.get(), name.as_char_ptr(), self.key.get());
            bindings::ghost_init_irq_work(self.irq.get(), Some(handler));
        }
    }

    /// Wakes every waiter, soon (from the irq_work). Any context; never
    /// sleeps. A wake while one is pending is merged with it.
    pub fn wake(&self) {
        // SAFETY: initialized (type invariant); queueing a pending irq_work
        // is a no-op; any context.
        unsafe { bindings::irq_work_queue(self.irq.get()) };
    }

    /// Wakes every waiter now: the irq_work handler's body (no runqueue
    /// lock may be held).
    pub fn wake_now(&self) {
        // SAFETY: initialized (type invariant); `__wake_up` may be called
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
        // SAFETY: pure conversion.
        let mut left = unsafe { bindings::__msecs_to_jiffies(timeout_ms) } as c_long;
        let entry = Opaque::<bindings::wait_queue_entry>::uninit();
        // SAFETY: `entry` is valid memory that lives until `finish_wait`.
        unsafe { bindings::init_wait_entry(entry.get(), 0) };
        let held = loop {
            // SAFETY: the queue is initialized (type invariant), `entry`
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
