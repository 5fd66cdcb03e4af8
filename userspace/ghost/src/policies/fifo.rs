//! Per-CPU FIFO: every CPU of the enclave has an agent and a first-in,
//! first-out run queue.
//!
//! A new task gets a home CPU, round-robin among the CPUs it allows; its
//! messages then go to that CPU's agent. A task waiting for a CPU is at
//! the back of its home's run queue, or of a new home's if its affinity no
//! longer allows its home. Each agent runs the task at the front of its
//! own queue.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write;

use ghost_abi as abi;

use crate::policy::{Ctx, Policy, Task};

/// The per-CPU FIFO policy.
#[derive(Debug, Default)]
pub struct Fifo {
    /// Run queues by CPU: tasks waiting for that CPU, oldest first.
    rq: BTreeMap<usize, VecDeque<i64>>,
    /// Round-robin position for the next home.
    next: usize,
}

impl Fifo {
    /// An empty policy.
    pub fn new() -> Self {
        Self::default()
    }

    /// The run queue of `cpu`, front first.
    pub fn run_queue(&self, cpu: usize) -> Vec<i64> {
        self.rq
            .get(&cpu)
            .map_or_else(Vec::new, |q| q.iter().copied().collect())
    }

    /// Gives `task` the next home CPU, round-robin among the CPUs it
    /// allows. `None`: it allows none (its home stays).
    fn rehome(&mut self, ctx: &mut Ctx<'_>, task: &Task) -> Option<usize> {
        let cpus = ctx.cpus();
        let start = self.next % cpus.len().max(1);
        let (i, cpu) = cpus
            .iter()
            .copied()
            .enumerate()
            .cycle()
            .skip(start)
            .take(cpus.len())
            .find(|&(_, c)| task.allowed(c))?;
        self.next = i + 1;
        ctx.set_home(task.gtid, cpu);
        Some(cpu)
    }
}

impl Policy for Fifo {
    fn task_new(&mut self, ctx: &mut Ctx<'_>, task: &Task, _: &abi::GhostMsgPayloadTaskNew) {
        self.rehome(ctx, task);
    }

    fn enqueue(&mut self, ctx: &mut Ctx<'_>, task: &Task) {
        let home = match task.home {
            Some(h) if task.allowed(h) => Some(h),
            _ => self.rehome(ctx, task),
        };
        if let Some(cpu) = home {
            self.rq.entry(cpu).or_default().push_back(task.gtid);
            ctx.wake(cpu);
        }
    }

    fn dequeue(&mut self, _: &mut Ctx<'_>, task: &Task) {
        for q in self.rq.values_mut() {
            q.retain(|&g| g != task.gtid);
        }
    }

    fn pick(&mut self, ctx: &mut Ctx<'_>, cpu: usize) -> Option<i64> {
        let q = self.rq.get(&cpu)?;
        q.iter().copied().find(|&g| ctx.can_run(g, cpu))
    }

    fn affinity_changed(&mut self, ctx: &mut Ctx<'_>, task: &Task) {
        // A task keeps its place while its affinity allows its home.
        if !task.home.is_some_and(|h| task.allowed(h)) {
            self.dequeue(ctx, task);
            self.enqueue(ctx, task);
        }
    }

    fn dump(&self, out: &mut String) {
        for (cpu, q) in &self.rq {
            let _ = writeln!(out, "cpu {cpu}: {} runnable {:?}", q.len(), q);
        }
    }
}
