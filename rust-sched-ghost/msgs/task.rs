// SPDX-License-Identifier: GPL-2.0

//! Task messages: each goes through [`send`], which bumps the task
//! barrier, writes the message to the task's queue (the payload in place,
//! in the ring slot) and wakes the agent the queue names. All run with the task's
//! runqueue locked (or the task not yet visible to anyone).

use crate::gtask::{GhostTask, SW_MSG_GATED, SW_ONCPU, SW_RUNNABLE};
use crate::msg::Payload;
use crate::off;
use crate::sw::F_CANFREE;
use crate::sys::rq::{Rq, TaskPtr};
use core::sync::atomic::Ordering;
use kernel::uapi;

/// Produces a task message: bumps the task barrier (even when there is
/// no queue: the message is then dropped), writes the message with the
/// new barrier as its seqnum (`fill` writes its payload, of type `T`, in
/// place), and wakes the queue's agent. Agents never
/// get task messages; a gated task's are dropped (TASK_NEW tells all
/// once it is ungated).
///
/// `rq` is the task's runqueue, locked (`None` only where the task is
/// not yet visible to anyone else).
///
/// Returns whether the message went into a queue.
fn send<T>(
    gt: &GhostTask,
    rq: Option<&Rq>,
    ty: u32,
    fill: impl FnOnce(&mut Payload<'_, '_, T>),
) -> bool {
    if gt.is_agent() || gt.gated() {
        return false;
    }
    let Some(w) = gt.sw() else {
        return false;
    };
    let seq = w.barrier.fetch_add(1, Ordering::AcqRel).wrapping_add(1);
    let Some(q) = gt.queue() else {
        return false;
    };
    if !q.produce(ty as u16, seq, Payload::<T>::LEN, |slot| {
        fill(&mut Payload::new(slot))
    }) {
        return false;
    }
    // The agent of the task's CPU if the queue wakes it, else the
    // queue's first wakeup CPU (ghOSt's `task_target_cpu`).
    let preferred = rq.map_or(-1, |rq| rq.cpu());
    if let Some(cpu) = q.wake_target(preferred) {
        crate::agent::percpu::wake(cpu);
    }
    true
}

/// `TASK_NEW`.
pub fn new(gt: &GhostTask, rq: Option<&Rq>, p: TaskPtr, runnable: bool) {
    gt.announce();
    send::<uapi::ghost_msg_payload_task_new>(gt, rq, uapi::MSG_TASK_NEW, |m| {
        m.u64(off!(ghost_msg_payload_task_new, gtid), gt.gtid() as u64)
            .u64(
                off!(ghost_msg_payload_task_new, parent_gtid),
                p.parent_gtid() as u64,
            )
            .u64(off!(ghost_msg_payload_task_new, runtime), p.runtime())
            .u16(
                off!(ghost_msg_payload_task_new, runnable),
                u16::from(runnable),
            )
            .u32(off!(ghost_msg_payload_task_new, nice), p.nice() as u32)
            .u32(off!(ghost_msg_payload_task_new, sw_info), gt.sw_info.id)
            .u32(
                off!(ghost_msg_payload_task_new, sw_info) + 4,
                gt.sw_info.index,
            );
    });
}

/// `TASK_WAKEUP`.
pub fn wakeup(gt: &GhostTask, rq: Option<&Rq>, last_ran_cpu: i32, wake_up_cpu: i32, waker: i32) {
    send::<uapi::ghost_msg_payload_task_wakeup>(gt, rq, uapi::MSG_TASK_WAKEUP, |m| {
        m.u64(off!(ghost_msg_payload_task_wakeup, gtid), gt.gtid() as u64)
            .flag(off!(ghost_msg_payload_task_wakeup, deferrable), false)
            .u32(
                off!(ghost_msg_payload_task_wakeup, last_ran_cpu),
                last_ran_cpu as u32,
            )
            .u32(
                off!(ghost_msg_payload_task_wakeup, wake_up_cpu),
                wake_up_cpu as u32,
            )
            .u32(off!(ghost_msg_payload_task_wakeup, waker_cpu), waker as u32);
    });
}

/// `TASK_BLOCKED`.
pub fn blocked(gt: &GhostTask, rq: &Rq, p: TaskPtr, cpu_seqnum: u64) {
    send::<uapi::ghost_msg_payload_task_blocked>(gt, Some(rq), uapi::MSG_TASK_BLOCKED, |m| {
        m.u64(off!(ghost_msg_payload_task_blocked, gtid), gt.gtid() as u64)
            .u64(off!(ghost_msg_payload_task_blocked, runtime), p.runtime())
            .u64(off!(ghost_msg_payload_task_blocked, cpu_seqnum), cpu_seqnum)
            .u32(off!(ghost_msg_payload_task_blocked, cpu), rq.cpu() as u32);
    });
}

/// `TASK_PREEMPT`.
pub fn preempt(gt: &GhostTask, rq: &Rq, p: TaskPtr, cpu_seqnum: u64, was_latched: bool) {
    send::<uapi::ghost_msg_payload_task_preempt>(gt, Some(rq), uapi::MSG_TASK_PREEMPT, |m| {
        m.u64(off!(ghost_msg_payload_task_preempt, gtid), gt.gtid() as u64)
            .u64(off!(ghost_msg_payload_task_preempt, runtime), p.runtime())
            .u64(off!(ghost_msg_payload_task_preempt, cpu_seqnum), cpu_seqnum)
            .u32(off!(ghost_msg_payload_task_preempt, cpu), rq.cpu() as u32)
            .flag(
                off!(ghost_msg_payload_task_preempt, was_latched),
                was_latched,
            );
    });
}

/// `TASK_YIELD`.
pub fn yielded(gt: &GhostTask, rq: &Rq, p: TaskPtr, cpu_seqnum: u64) {
    send::<uapi::ghost_msg_payload_task_yield>(gt, Some(rq), uapi::MSG_TASK_YIELD, |m| {
        m.u64(off!(ghost_msg_payload_task_yield, gtid), gt.gtid() as u64)
            .u64(off!(ghost_msg_payload_task_yield, runtime), p.runtime())
            .u64(off!(ghost_msg_payload_task_yield, cpu_seqnum), cpu_seqnum)
            .u32(off!(ghost_msg_payload_task_yield, cpu), rq.cpu() as u32);
    });
}

/// `TASK_DEAD`. Marks the word `CANFREE` (before the message is
/// visible). Returns whether the message went out: if not (no queue),
/// the caller frees the word, since no agent will.
pub fn dead(gt: &GhostTask, rq: &Rq) -> bool {
    gt.sw_flags(F_CANFREE, SW_ONCPU | SW_RUNNABLE);
    send::<uapi::ghost_msg_payload_task_dead>(gt, Some(rq), uapi::MSG_TASK_DEAD, |m| {
        m.u64(off!(ghost_msg_payload_task_dead, gtid), gt.gtid() as u64)
            .u32(off!(ghost_msg_payload_task_dead, cpu), rq.cpu() as u32);
    })
}

/// `TASK_DEPARTED`: the task left ghost. Marks the word
/// `CANFREE | MSG_GATED`.
pub fn departed(gt: &GhostTask, rq: &Rq, cpu_seqnum: u64, was_current: bool) {
    gt.sw_flags(F_CANFREE | SW_MSG_GATED, SW_ONCPU | SW_RUNNABLE);
    gt.enclave().note_gated();
    send::<uapi::ghost_msg_payload_task_departed>(gt, Some(rq), uapi::MSG_TASK_DEPARTED, |m| {
        m.u64(
            off!(ghost_msg_payload_task_departed, gtid),
            gt.gtid() as u64,
        )
        .u64(
            off!(ghost_msg_payload_task_departed, cpu_seqnum),
            cpu_seqnum,
        )
        .u32(off!(ghost_msg_payload_task_departed, cpu), rq.cpu() as u32)
        .flag(
            off!(ghost_msg_payload_task_departed, was_current),
            was_current,
        );
    });
}

/// TASK_AFFINITY_CHANGED: the task's allowed CPUs changed.
pub fn affinity_changed(gt: &GhostTask, rq: &Rq) {
    send::<uapi::ghost_msg_payload_task_affinity_changed>(
        gt,
        Some(rq),
        uapi::MSG_TASK_AFFINITY_CHANGED,
        |m| {
            m.u64(
                off!(ghost_msg_payload_task_affinity_changed, gtid),
                gt.gtid() as u64,
            );
        },
    );
}

/// TASK_PRIORITY_CHANGED: the task's nice value is now `nice`.
pub fn priority_changed(gt: &GhostTask, rq: &Rq, nice: i32) {
    send::<uapi::ghost_msg_payload_task_priority_changed>(
        gt,
        Some(rq),
        uapi::MSG_TASK_PRIORITY_CHANGED,
        |m| {
            m.u64(
                off!(ghost_msg_payload_task_priority_changed, gtid),
                gt.gtid() as u64,
            )
            .u32(
                off!(ghost_msg_payload_task_priority_changed, nice),
                nice as u32,
            );
        },
    );
}

/// `TASK_ON_CPU`.
pub fn on_cpu(gt: &GhostTask, rq: &Rq, commit_time: i64, cpu_seqnum: u64) {
    send::<uapi::ghost_msg_payload_task_on_cpu>(gt, Some(rq), uapi::MSG_TASK_ON_CPU, |m| {
        m.u64(off!(ghost_msg_payload_task_on_cpu, gtid), gt.gtid() as u64)
            .u64(
                off!(ghost_msg_payload_task_on_cpu, commit_time),
                commit_time as u64,
            )
            .u64(off!(ghost_msg_payload_task_on_cpu, cpu_seqnum), cpu_seqnum)
            .u32(off!(ghost_msg_payload_task_on_cpu, cpu), rq.cpu() as u32);
    });
}
