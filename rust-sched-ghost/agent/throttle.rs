// SPDX-License-Identifier: GPL-2.0

//! Agent throttling: what an agent may take from its CPU's other classes.
//!
//! `ghost_agent_sched_class` sits above `dl`, so a runnable agent runs ahead
//! of every deadline, realtime, fair and ext task on its CPU, kernel threads
//! included. A well-behaved agent gives the CPU back soon: it sleeps in
//! `ghost_run` when it has nothing to do, and a global agent that sees
//! `GHOST_SW_BOOST_PRIO` in its status word (set while tasks of other
//! classes wait on its CPU) moves to another CPU or yields, as ghOSt's
//! centralized agents do. An agent with a bug, or a policy that ignores the
//! flag, would otherwise spin there for ever: the kernel's `rcu_sched`
//! kthread starved for seconds behind one in issue 19's measurements.
//!
//! So, as the kernel's RT throttling bounds what realtime tasks take from
//! the classes below them, an agent that has run ahead of waiting tasks of
//! other classes for `kernel.ghost_agent_throttle_ms` (default 100 ms: long
//! enough that an agent between two checks of `BOOST_PRIO` never meets it,
//! short enough that kernel threads behind a spinning agent are delayed, not
//! starved; the RCU stall detector waits 21 s) is *throttled*: `ghost_agent_sched_class`
//! does not pick it while they wait, until the next tick on its CPU, and the
//! CPU runs them meanwhile. The agent stays runnable, keeps its CPU and its
//! enclave, and runs again at that tick (or as soon as nothing else wants the
//! CPU). An agent that honours `BOOST_PRIO` never meets the limit. The
//! sysctl at 0 turns throttling off: a spinning agent then keeps its CPU, as
//! under ghOSt (conformance.rst).
//!
//! Everything here runs under the CPU's runqueue lock, on the tick and at
//! the agent class's pick: one per-CPU timestamp and one flag.

use crate::sys::percpu::PerCpu;
use crate::sys::rq::{Rq, RqCell};
use crate::sys::sysctl::agent_throttle_ns;
use crate::sys::time::now;
use kernel::prelude::*;

/// The throttling state of one CPU's agent.
///
/// # Invariants
///
/// Both cells are the CPU's (accessed under its runqueue lock only).
struct Throttle {
    /// When the agent was first seen running ahead of waiting tasks of
    /// other classes since it last let them run (0: not so seen).
    since: RqCell<i64>,
    /// The agent is not picked while other classes' tasks wait, until the
    /// next tick.
    throttled: RqCell<bool>,
}

/// Every CPU's [`Throttle`], set up once by [`init`].
static THROTTLE: PerCpu<Throttle> = PerCpu::new();

/// Sets up every CPU's state. Once, at boot, before any agent exists.
pub fn init() -> Result {
    THROTTLE.init(|cpu| Throttle {
        since: RqCell::new(cpu, 0),
        throttled: RqCell::new(cpu, false),
    })
}

/// The tick on `rq`'s CPU (`rq` locked), which has an agent; `agent_runs`
/// if the agent is the current task. Throttles an agent that has run ahead
/// of waiting tasks for the sysctl's time; lifts the throttle at the next
/// tick.
pub fn tick(rq: &Rq, agent_runs: bool) {
    let Some(t) = THROTTLE.get(rq.cpu()) else {
        return;
    };
    if !agent_runs {
        // Another task has the CPU: whoever waited got it. The agent, if
        // throttled, may run again (at the pick this asks for).
        t.since.set(rq, 0);
        if t.throttled.replace(rq, false) {
            rq.resched_curr();
        }
        return;
    }
    let limit = agent_throttle_ns();
    if limit == 0 || !rq.others_runnable() {
        t.since.set(rq, 0);
        return;
    }
    let now = now();
    let since = t.since.get(rq);
    if since == 0 {
        t.since.set(rq, now);
    } else if now.saturating_sub(since) >= limit {
        t.since.set(rq, 0);
        t.throttled.set(rq, true);
        rq.resched_curr();
    }
}

/// Whether the agent class must pass over `rq`'s agent at this pick (`rq`
/// locked): it is throttled and tasks of other classes wait. With none
/// waiting, the throttle is lifted at once.
pub fn holds_back(rq: &Rq) -> bool {
    let Some(t) = THROTTLE.get(rq.cpu()) else {
        return false;
    };
    if !t.throttled.get(rq) {
        return false;
    }
    if rq.others_runnable() && agent_throttle_ns() != 0 {
        return true;
    }
    t.throttled.set(rq, false);
    false
}

/// Forgets `rq`'s CPU's state (`rq` locked): its agent is gone or new.
pub fn reset(rq: &Rq) {
    if let Some(t) = THROTTLE.get(rq.cpu()) {
        t.since.set(rq, 0);
        t.throttled.set(rq, false);
    }
}
