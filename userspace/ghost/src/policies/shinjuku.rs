//! Shinjuku: one global agent runs a single first-in, first-out queue of
//! requests on every other CPU, and preempts a request that has run a whole
//! time slice (30 µs by default) while others wait.
//!
//! A new or woken task joins the back of the queue. A task replaced at the
//! end of its slice goes to the back too, so long requests share the CPUs
//! while short ones get through. A task that lost its CPU before its slice
//! was over (to another scheduling class, or a latch that never ran) goes
//! to the front: it is owed the rest. A free CPU gets the oldest waiting
//! task that may run there and is off every CPU.

use std::fmt::Write;
use std::time::Duration;

use ghost_abi as abi;

use super::owed::OwedQueue;
use crate::policy::{Ctx, Policy, Task};

/// The time slice when none is given.
pub const DEFAULT_SLICE: Duration = Duration::from_micros(30);

/// The Shinjuku policy.
#[derive(Debug)]
pub struct Shinjuku {
    /// Tasks waiting for a CPU; one preempted before its slice was over
    /// goes to the front.
    rq: OwedQueue,
    slice: Duration,
}

impl Default for Shinjuku {
    fn default() -> Self {
        Self::new(DEFAULT_SLICE)
    }
}

impl Shinjuku {
    /// A policy that preempts a task after `slice` when others wait.
    pub fn new(slice: Duration) -> Self {
        Self {
            rq: OwedQueue::default(),
            slice,
        }
    }

    /// The run queue, front first.
    pub fn run_queue(&self) -> Vec<i64> {
        self.rq.iter().collect()
    }
}

impl Policy for Shinjuku {
    fn task_preempt(
        &mut self,
        ctx: &mut Ctx<'_>,
        task: &Task,
        msg: &abi::GhostMsgPayloadTaskPreempt,
    ) {
        // Still its CPU's current task: the global agent did not replace
        // it, so its slice was not over. A latch never ran.
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
            .find(|&g| ctx.can_run(g, cpu) && !ctx.still_on_cpu(g))
    }

    /// Each CPU takes the oldest task it may run: a task keeps its place.
    fn affinity_changed(&mut self, _: &mut Ctx<'_>, _: &Task) {}

    fn slice(&self) -> Option<Duration> {
        Some(self.slice)
    }

    fn task_dead(&mut self, _: &mut Ctx<'_>, task: &Task, _: &abi::GhostMsgPayloadTaskDead) {
        self.rq.forget(task);
    }

    fn dump(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "run queue (slice {:?}): {} runnable {:?}",
            self.slice,
            self.rq.len(),
            self.rq.iter().collect::<Vec<_>>()
        );
    }
}
