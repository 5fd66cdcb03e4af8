// SPDX-License-Identifier: GPL-2.0

//! The watchdog: an enclave whose runnable task waits longer than the
//! enclave's `runnable_timeout` is destroyed, so that a stuck or dead agent
//! cannot starve its tasks for good (they go back to CFS).
//!
//! Every ghost task records when it last became runnable without a CPU
//! (`runnable_since`: set when it is enqueued or switched out while still
//! runnable, cleared when it gets a CPU or blocks). A check looks at every
//! ghost task; a task of an enclave with a timeout that has waited longer
//! makes the check log
//!
//! ```text
//! ghost: enclave violation: enclave_<id> failed to run pid <pid> for over <ms>ms
//! ```
//!
//! and destroy that enclave.
//!
//! It also looks after orphaned enclaves (their agents died or left; see
//! [`crate::fallback`]): once per orphaning it kicks every CPU, so that an
//! idle CPU with tasks of the enclave queued picks them in the fallback,
//! and an enclave orphaned for longer than its `agentless_timeout` is
//! destroyed, with
//!
//! ```text
//! ghost: enclave_<id> had no agent for over <ms>ms (agentless_timeout): destroyed
//! ```
//!
//! Checks run every [`PERIOD_NS`] while some enclave ever set a timeout, so
//! the watchdog fires between `runnable_timeout` and `runnable_timeout` +
//! [`PERIOD_NS`] + a tick after the task became runnable. The scheduler
//! tick (runqueue lock held) only decides that a check is due: it cannot
//! scan tasks or sleep, and it cannot even queue a work item (that wakes a
//! worker, which takes a runqueue lock). It queues an irq_work, whose
//! handler queues the work item that checks, in process context.

use crate::gtask::GhostTask;
use crate::sys::task::TaskRqGuard;
use crate::sys::time::now;
use crate::sys::work::{IrqWork, Work};
use core::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use kernel::prelude::*;

/// How often the watchdog checks (ns).
pub const PERIOD_NS: i64 = 20_000_000;

/// Set once an enclave sets a `runnable_timeout`: until then the tick
/// costs one load.
static ARMED: AtomicBool = AtomicBool::new(false);

/// When the next check is due (monotonic ns).
static NEXT: AtomicI64 = AtomicI64::new(0);

/// The irq_work that the tick queues (no work item may be queued with an
/// rq lock held) and the work item it queues, which checks.
static KICK: IrqWork = IrqWork::new(kick);
static CHECK: Work = Work::new(check);

/// Sets up the irq_work and the work item (boot, before any enclave).
pub fn init() {
    KICK.init();
    CHECK.init();
}

/// An enclave set a timeout: the tick starts checking.
pub fn arm() {
    ARMED.store(true, Ordering::Release);
}

/// An enclave was orphaned: the checks start, and one runs now (any
/// context, runqueue locks included).
pub fn orphaned() {
    arm();
    // Queueing a pending irq_work is a no-op; any context.
    KICK.queue();
}

/// The scheduler tick (runqueue lock held): queues a check if one is due.
pub fn tick() {
    if !ARMED.load(Ordering::Acquire) {
        return;
    }
    let t = now();
    let next = NEXT.load(Ordering::Relaxed);
    if t < next {
        return;
    }
    // One CPU wins the period.
    if NEXT
        .compare_exchange(next, t + PERIOD_NS, Ordering::AcqRel, Ordering::Relaxed)
        .is_ok()
    {
        KICK.queue();
    }
}

/// The irq_work handler (hard interrupt, no runqueue lock): queues the
/// check (a pending work is not queued twice).
fn kick() {
    CHECK.queue_unbound();
}

/// A violation found by a check.
struct Violation {
    id: u64,
    /// The task that waited too long; 0 for an enclave orphaned too long.
    pid: i32,
    waited_ms: i64,
}

/// The check (a work item: process context, may sleep).
fn check() {
    let t = now();
    let mut found: KVec<Violation> = KVec::new();
    let mut kick = false;
    for e in crate::registry::watched() {
        if let Some(since) = e.orphaned_since() {
            kick |= e.take_orphan_kick(since);
            let limit = e.agentless_timeout_ns();
            let waited = t.saturating_sub(since);
            if limit > 0 && waited > limit {
                // Out of memory: the next check finds it again.
                let _ = found.push(
                    Violation {
                        id: e.id,
                        pid: 0,
                        waited_ms: waited / 1_000_000,
                    },
                    GFP_KERNEL,
                );
                continue;
            }
        }
        let timeout = e.runnable_timeout_ns();
        if timeout == 0 {
            continue;
        }
        for task in e.tasks() {
            let g = TaskRqGuard::lock(task);
            let p = g.task();
            let since = GhostTask::of(&g, p).map_or(0, |gt| gt.runnable_since());
            let pid = p.pid();
            drop(g.unlock());
            let waited = t.saturating_sub(since);
            if since != 0 && waited > timeout {
                // Out of memory: the next check finds it again.
                let _ = found.push(
                    Violation {
                        id: e.id,
                        pid,
                        waited_ms: waited / 1_000_000,
                    },
                    GFP_KERNEL,
                );
                break;
            }
        }
    }
    if kick {
        // An idle CPU with tasks of a newly orphaned enclave queued picks
        // again (in the fallback).
        for cpu in 0..crate::sys::cpu::nr_cpu_ids() as i32 {
            // Process context, no lock held; offline CPUs are skipped.
            crate::sys::cpu::resched_cpu(cpu);
        }
    }
    for v in &found {
        // Destroyed meanwhile: nothing to do.
        if let Some(e) = crate::registry::take(v.id) {
            if v.pid == 0 {
                pr_err!(
                    "enclave_{} had no agent for over {}ms (agentless_timeout): destroyed\n",
                    v.id,
                    v.waited_ms
                );
            } else {
                pr_err!(
                    "enclave violation: enclave_{} failed to run pid {} for over {}ms\n",
                    v.id,
                    v.pid,
                    v.waited_ms
                );
            }
            crate::registry::destroy_taken(e);
        }
    }
}
