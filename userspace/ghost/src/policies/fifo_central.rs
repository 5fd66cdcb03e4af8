//! Centralized FIFO: one global agent schedules every other CPU of the
//! enclave from a single first-in, first-out run queue.
//!
//! A CPU the runtime asks for gets the oldest waiting task that may run
//! there and is off every CPU; so a task waits for a CPU it allows while
//! younger ones take the others. With a time slice, a CPU whose task has
//! run a whole slice while others wait gets the next task.

use std::collections::VecDeque;
use std::fmt::Write;
use std::time::Duration;

use crate::policy::{Ctx, Policy, Task};

/// The centralized FIFO policy.
#[derive(Debug, Default)]
pub struct FifoCentral {
    /// Tasks waiting for a CPU, oldest first.
    rq: VecDeque<i64>,
    slice: Option<Duration>,
}

impl FifoCentral {
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
        self.rq.iter().copied().collect()
    }
}

impl Policy for FifoCentral {
    fn enqueue(&mut self, _: &mut Ctx<'_>, task: &Task) {
        self.rq.push_back(task.gtid);
    }

    fn dequeue(&mut self, _: &mut Ctx<'_>, task: &Task) {
        self.rq.retain(|&g| g != task.gtid);
    }

    fn pick(&mut self, ctx: &mut Ctx<'_>, cpu: usize) -> Option<i64> {
        let rq = &self.rq;
        rq.iter()
            .copied()
            .find(|&g| ctx.can_run(g, cpu) && !ctx.still_on_cpu(g))
    }

    /// Each CPU takes the oldest task it may run: a task keeps its place.
    fn affinity_changed(&mut self, _: &mut Ctx<'_>, _: &Task) {}

    fn slice(&self) -> Option<Duration> {
        self.slice
    }

    fn dump(&self, out: &mut String) {
        let _ = writeln!(out, "run queue: {} runnable {:?}", self.rq.len(), self.rq);
    }
}
