// SPDX-License-Identifier: GPL-2.0

//! CPU messages: what the kernel tells a CPU's agent about the CPU itself.
//!
//! They go to the agent's queue (the `<qfd>` of `become agent`), and their
//! `seqnum` is the CPU's agent barrier after its increment (task messages
//! use the task's barrier instead). A CPU without an agent gets none.
//!
//! | Message              | Edge                                          | When                        |
//! |----------------------|-----------------------------------------------|-----------------------------|
//! | `CPU_TICK`           | the scheduler tick                            | `deliver_ticks`             |
//! | `CPU_NOT_IDLE`       | the idle CPU switches to a non-ghost task     | `NEED_CPU_NOT_IDLE` commit  |
//! | `CPU_AVAILABLE/BUSY` | a task switch changes whether a task of       | `deliver_cpu_availability`  |
//! |                      | another class has the CPU                     |                             |
//! | `CPU_AGENT_BLOCKED`  | the agent blocks outside `ghost_run`          | `deliver_agent_runnability` |
//! | `CPU_AGENT_WAKEUP`   | the agent is woken from such a block          | `deliver_agent_runnability` |
//! | `CPU_TIMER_EXPIRED`  | a ghost timerfd of the CPU expired            | always (`crate::timerfd`)   |
//!
//! All run under the CPU's runqueue lock: they only write a payload into a
//! preallocated ring, in place.

use crate::agent::percpu::LockedGhostRq;
use crate::enclave::Enclave;
use crate::gtask::GhostTask;
use crate::msg::Payload;
use crate::off;
use crate::sys::rq::{Rq, TaskPtr};
use kernel::uapi;

/// The enclave of `rq`'s agent, if the CPU has one.
fn enclave<'a>(rq: &'a Rq, g: LockedGhostRq<'_>) -> Option<&'a Enclave> {
    // The agent is pinned to this CPU: its state is on `rq`.
    Some(GhostTask::of(rq, g.agent()?)?.enclave())
}

/// Whether the tunable `t` of the enclave of `rq`'s agent is set.
pub fn enabled(rq: &Rq, g: LockedGhostRq<'_>, t: usize) -> bool {
    enclave(rq, g).is_some_and(|e| e.tunable(t))
}

/// Produces a CPU message of type `ty` for `rq`'s agent, its payload (of
/// type `T`) written in place by `fill`. With `wake`, the agent of the
/// queue's wakeup CPU is woken, as for task messages.
fn send<T>(
    rq: &Rq,
    g: LockedGhostRq<'_>,
    ty: u32,
    wake: bool,
    fill: impl FnOnce(&mut Payload<'_, '_, T>),
) {
    let Some(a) = g.agent() else {
        return;
    };
    let Some(q) = GhostTask::of(rq, a).and_then(|gt| gt.queue()) else {
        return;
    };
    let seq = g.bump_agent_barrier();
    let produced = q.produce(ty as u16, seq, Payload::<T>::LEN, |slot| {
        fill(&mut Payload::new(slot))
    });
    if produced && wake {
        // The agent's own CPU if its queue wakes it (ghOSt's
        // `agent_target_cpu`).
        if let Some(cpu) = q.wake_target(rq.cpu()) {
            crate::agent::percpu::wake(cpu);
        }
    }
}

/// `CPU_TICK` (when `deliver_ticks`); `is_agent` if the agent had the CPU.
pub fn tick(rq: &Rq, g: LockedGhostRq<'_>, is_agent: bool) {
    if !enabled(rq, g, crate::enclave::DELIVER_TICKS) {
        return;
    }
    send::<uapi::ghost_msg_payload_cpu_tick>(rq, g, uapi::MSG_CPU_TICK, true, |m| {
        m.u32(off!(ghost_msg_payload_cpu_tick, cpu), rq.cpu() as u32)
            .u32(
                off!(ghost_msg_payload_cpu_tick, is_agent),
                u32::from(is_agent),
            );
    });
}

/// `CPU_NOT_IDLE`: the CPU an agent left idle with `NEED_CPU_NOT_IDLE` now
/// runs `next`, a task of another class.
pub fn not_idle(rq: &Rq, g: LockedGhostRq<'_>, next: TaskPtr) {
    send::<uapi::ghost_msg_payload_cpu_not_idle>(rq, g, uapi::MSG_CPU_NOT_IDLE, true, |m| {
        m.u32(off!(ghost_msg_payload_cpu_not_idle, cpu), rq.cpu() as u32)
            .u64(
                off!(ghost_msg_payload_cpu_not_idle, next_gtid),
                next.gtid() as u64,
            );
    });
}

/// The CPU became available to ghost (`avail`) or busy with another
/// class: flips `CPU_AVAIL` in the agent's status word, and sends
/// `CPU_AVAILABLE` or `CPU_BUSY` when `deliver_cpu_availability`.
/// (`BOOST_PRIO` is set when the agent is picked ahead of another class's
/// task, see `classes.rs`.)
pub fn availability(rq: &Rq, g: LockedGhostRq<'_>, avail: bool) {
    if avail {
        g.agent_sw_flags(uapi::GHOST_SW_CPU_AVAIL, 0);
    } else {
        g.agent_sw_flags(0, uapi::GHOST_SW_CPU_AVAIL);
    }
    if !enabled(rq, g, crate::enclave::DELIVER_CPU_AVAILABILITY) {
        return;
    }
    // `cpu_available` and `cpu_busy` have the same layout.
    let ty = if avail {
        uapi::MSG_CPU_AVAILABLE
    } else {
        uapi::MSG_CPU_BUSY
    };
    send::<uapi::ghost_msg_payload_cpu_available>(rq, g, ty, true, |m| {
        m.u32(off!(ghost_msg_payload_cpu_available, cpu), rq.cpu() as u32);
    });
}

/// `CPU_AGENT_BLOCKED` (`blocked`) or `CPU_AGENT_WAKEUP`, when
/// `deliver_agent_runnability`. Neither wakes an agent: one is about an
/// agent going to sleep (waking it would undo that), the other about an
/// agent already waking; they are meant for a global agent that polls.
pub fn agent_runnability(rq: &Rq, g: LockedGhostRq<'_>, blocked: bool) {
    if !enabled(rq, g, crate::enclave::DELIVER_AGENT_RUNNABILITY) {
        return;
    }
    let ty = if blocked {
        uapi::MSG_CPU_AGENT_BLOCKED
    } else {
        uapi::MSG_CPU_AGENT_WAKEUP
    };
    send::<uapi::ghost_msg_payload_agent_blocked>(rq, g, ty, false, |m| {
        m.u32(off!(ghost_msg_payload_agent_blocked, cpu), rq.cpu() as u32);
    });
}

/// `CPU_TIMER_EXPIRED`: a ghost timerfd whose ghost part names this CPU
/// expired (from its timer callback, `rq` locked); wakes the agent as the
/// queue's wakeup configuration says.
pub fn timer_expired(rq: &Rq, g: LockedGhostRq<'_>, type_: u64, cookie: u64) {
    send::<uapi::ghost_msg_payload_timer>(rq, g, uapi::MSG_CPU_TIMER_EXPIRED, true, |m| {
        m.u32(off!(ghost_msg_payload_timer, cpu), rq.cpu() as u32)
            .u64(off!(ghost_msg_payload_timer, type_), type_)
            .u64(off!(ghost_msg_payload_timer, cookie), cookie);
    });
}
