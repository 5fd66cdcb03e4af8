//! SOL ("speed of light"): a centralized FIFO built for dispatch
//! throughput. One global agent fills every free CPU from a single queue
//! and commits each round as one sync group (`ghost-agent sol` sets
//! [`crate::agent::CommitMode::SyncGroup`]).
//!
//! A sync group succeeds or fails as a whole, so one transaction that
//! fails sends every CPU of the round back empty. SOL therefore offers a
//! CPU only a task whose commit can succeed: queued, allowed there, off
//! every CPU, and with no news on its way (its status word's barrier is the
//! `seqnum` of the last message read). It passes over the others for this
//! round, never stopping at the front, so a CPU stays idle only when no
//! waiting task could run on it.
//!
//! Order: a task that lost its CPU without being replaced by the agent
//! (another class took it, or its latch was dropped) goes to the front;
//! new, woken, yielding and sliced tasks go to the back. An optional time
//! slice preempts a task that has run that long while others wait.

use std::fmt::Write;
use std::time::Duration;

use ghost_abi as abi;

use super::owed::OwedQueue;
use crate::policy::{Ctx, Policy, Task};

/// The SOL policy.
#[derive(Debug, Default)]
pub struct Sol {
    /// Tasks waiting for a CPU; one that lost its CPU involuntarily goes
    /// to the front.
    rq: OwedQueue,
    slice: Option<Duration>,
}

impl Sol {
    /// A policy that preempts tasks after `slice` (`None`: never) when
    /// others wait.
    pub fn new(slice: Option<Duration>) -> Self {
        Self {
            slice,
            ..Self::default()
        }
    }

    /// The run queue, front first.
    pub fn run_queue(&self) -> Vec<i64> {
        self.rq.iter().collect()
    }

    /// Whether a commit of `gtid` would succeed as far as the agent can
    /// tell: off every CPU, and no message about it unread.
    fn committable(ctx: &mut Ctx<'_>, gtid: i64) -> bool {
        let seqnum = ctx.task(gtid).map(|t| t.seqnum);
        let fresh = match ctx.status_word(gtid) {
            Some(sw) => Some(sw.barrier()) == seqnum,
            None => true,
        };
        fresh && !ctx.still_on_cpu(gtid)
    }
}

impl Policy for Sol {
    fn task_preempt(
        &mut self,
        ctx: &mut Ctx<'_>,
        task: &Task,
        msg: &abi::GhostMsgPayloadTaskPreempt,
    ) {
        self.rq.preempted(ctx, task, msg);
    }

    fn enqueue(&mut self, _: &mut Ctx<'_>, task: &Task) {
        self.rq.push(task);
    }

    fn dequeue(&mut self, _: &mut Ctx<'_>, task: &Task) {
        self.rq.remove(task);
    }

    fn pick(&mut self, ctx: &mut Ctx<'_>, cpu: usize) -> Option<i64> {
        self.rq
            .iter()
            .find(|&g| ctx.can_run(g, cpu) && Self::committable(ctx, g))
    }

    /// Each CPU takes the oldest task it may run: a task keeps its place.
    fn affinity_changed(&mut self, _: &mut Ctx<'_>, _: &Task) {}

    fn slice(&self) -> Option<Duration> {
        self.slice
    }

    fn task_dead(&mut self, _: &mut Ctx<'_>, task: &Task, _: &abi::GhostMsgPayloadTaskDead) {
        self.rq.forget(task);
    }

    fn dump(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "run queue: {} runnable {:?}",
            self.rq.len(),
            self.rq.iter().collect::<Vec<_>>()
        );
    }
}
