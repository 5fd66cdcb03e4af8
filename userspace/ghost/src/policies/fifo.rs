//! Per-CPU FIFO: every CPU of the enclave has an agent and a first-in,
//! first-out run queue.
//!
//! A new task gets a home CPU, round-robin; the runtime then sends its
//! messages to that CPU's agent. A task that becomes runnable (it is new,
//! woke up, was preempted or yielded) goes to the back of its home's run
//! queue; one that blocks, dies or leaves comes off it. Each agent runs
//! the task at the front of its own queue and keeps it there until the
//! commit succeeds: a stale barrier means news about the task is in the
//! queue, and the next round reads it first.
//!
//! A CPU's *current* task is the one its agent committed last, until a
//! message says it left the CPU; while there is one, the agent commits
//! nothing (it would replace the latch of a task that has not run yet,
//! whose TASK_PREEMPT would wake the agent to do it again). A running task
//! is not in any run queue. When its agent wakes up (for a message, a
//! ping), the kernel preempts it and sends `TASK_PREEMPT`, so it goes to
//! the back of the queue: tasks of a CPU take turns at every wakeup of its
//! agent.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write;

use ghost_abi as abi;

use crate::policy::{Ctx, Plan, Policy, Task};
use crate::txn::TxnResult;

/// The per-CPU FIFO policy.
#[derive(Debug, Default)]
pub struct Fifo {
    /// Run queues by CPU: runnable tasks that are not running, oldest first.
    rq: BTreeMap<usize, VecDeque<i64>>,
    /// The current task of each CPU (committed, not yet off the CPU).
    current: BTreeMap<usize, i64>,
    /// Round-robin position for the next new task.
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

    /// Gives `gtid` the next home CPU, round-robin.
    fn rehome(&mut self, ctx: &mut Ctx<'_>, gtid: i64) -> Option<usize> {
        let cpus = ctx.cpus();
        let cpu = *cpus.get(self.next % cpus.len().max(1))?;
        self.next = self.next.wrapping_add(1);
        ctx.set_home(gtid, cpu);
        Some(cpu)
    }

    /// Puts a runnable task at the back of `cpu`'s queue and wakes that
    /// CPU's agent.
    fn enqueue(&mut self, ctx: &mut Ctx<'_>, gtid: i64, cpu: Option<usize>) {
        let Some(cpu) = cpu else { return };
        let q = self.rq.entry(cpu).or_default();
        if !q.contains(&gtid) {
            q.push_back(gtid);
        }
        ctx.wake(cpu);
    }

    /// Takes a task off every run queue, and off the CPU it was current on.
    fn remove(&mut self, gtid: i64) {
        for q in self.rq.values_mut() {
            q.retain(|&g| g != gtid);
        }
        self.current.retain(|_, &mut g| g != gtid);
    }

    /// A task left its CPU but stays runnable: back of its home's queue.
    fn requeue(&mut self, ctx: &mut Ctx<'_>, task: &Task) {
        self.remove(task.gtid);
        self.enqueue(ctx, task.gtid, task.home);
    }
}

impl Policy for Fifo {
    fn task_new(&mut self, ctx: &mut Ctx<'_>, task: &Task, msg: &abi::GhostMsgPayloadTaskNew) {
        // Announced again after a takeover: start over.
        self.remove(task.gtid);
        let home = self.rehome(ctx, task.gtid);
        if msg.runnable != 0 {
            self.enqueue(ctx, task.gtid, home);
        }
    }

    fn task_wakeup(&mut self, ctx: &mut Ctx<'_>, task: &Task, _: &abi::GhostMsgPayloadTaskWakeup) {
        self.enqueue(ctx, task.gtid, task.home);
    }

    fn task_preempt(
        &mut self,
        ctx: &mut Ctx<'_>,
        task: &Task,
        _: &abi::GhostMsgPayloadTaskPreempt,
    ) {
        self.requeue(ctx, task);
    }

    fn task_yield(&mut self, ctx: &mut Ctx<'_>, task: &Task, _: &abi::GhostMsgPayloadTaskYield) {
        self.requeue(ctx, task);
    }

    fn task_latch_failure(
        &mut self,
        ctx: &mut Ctx<'_>,
        task: &Task,
        _: &abi::GhostMsgPayloadTaskLatchFailure,
    ) {
        self.requeue(ctx, task);
    }

    fn task_blocked(&mut self, _: &mut Ctx<'_>, task: &Task, _: &abi::GhostMsgPayloadTaskBlocked) {
        self.remove(task.gtid);
    }

    fn task_dead(&mut self, _: &mut Ctx<'_>, task: &Task, _: &abi::GhostMsgPayloadTaskDead) {
        self.remove(task.gtid);
    }

    fn task_departed(
        &mut self,
        _: &mut Ctx<'_>,
        task: &Task,
        _: &abi::GhostMsgPayloadTaskDeparted,
    ) {
        self.remove(task.gtid);
    }

    fn schedule(&mut self, ctx: &mut Ctx<'_>, plan: &mut Plan) {
        let cpu = ctx.cpu();
        if self.current.contains_key(&cpu) {
            return;
        }
        if let Some(&gtid) = self.rq.get(&cpu).and_then(|q| q.front()) {
            plan.run(cpu, gtid);
        }
    }

    fn committed(&mut self, ctx: &mut Ctx<'_>, cpu: usize, gtid: i64, result: TxnResult) {
        match result {
            // It runs now (or is about to).
            TxnResult::Complete => {
                self.remove(gtid);
                self.current.insert(cpu, gtid);
            }
            // It is gone or blocked, as a message says or will say.
            TxnResult::TargetNotFound | TxnResult::TargetNotRunnable | TxnResult::InvalidTarget => {
                self.remove(gtid)
            }
            // Its affinity excludes this CPU: try the next one.
            TxnResult::InvalidCpu => {
                self.remove(gtid);
                let home = self.rehome(ctx, gtid);
                self.enqueue(ctx, gtid, home);
            }
            // Stale barriers, a busy CPU: try again next round.
            _ => {}
        }
    }

    fn dump(&self, out: &mut String) {
        for (cpu, q) in &self.rq {
            let _ = writeln!(
                out,
                "cpu {cpu}: current {:?}, {} runnable {:?}",
                self.current.get(cpu),
                q.len(),
                q
            );
        }
    }
}
