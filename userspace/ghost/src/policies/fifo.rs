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
//!
//! Affinity: a task's home is always a CPU it allows ([`Task::allowed`]),
//! so a run queue holds only tasks its CPU may run. A task that becomes
//! runnable away from an allowed home gets a new one, round-robin among
//! the CPUs it allows. When a queued task's affinity drops its CPU
//! (`TASK_AFFINITY_CHANGED`), it moves to the queue of an allowed CPU; a
//! running one is forced off its CPU by the kernel and moves when its
//! `TASK_PREEMPT` comes. A runnable task that allows none of the enclave's
//! CPUs waits, in no run queue, until its affinity changes ([`Fifo::dump`]
//! lists it).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write;

use ghost_abi as abi;

use crate::policy::{Ctx, Plan, Policy, Task};
use crate::txn::TxnResult;

/// The per-CPU FIFO policy.
#[derive(Debug, Default)]
pub struct Fifo {
    /// Run queues by CPU: runnable tasks that are not running and may run
    /// there, oldest first.
    rq: BTreeMap<usize, VecDeque<i64>>,
    /// The current task of each CPU (committed, not yet off the CPU).
    current: BTreeMap<usize, i64>,
    /// Runnable tasks whose affinity allows none of the enclave's CPUs.
    waiting: BTreeSet<i64>,
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

    /// The runnable tasks that wait for an affinity that allows one of the
    /// enclave's CPUs.
    pub fn waiting(&self) -> Vec<i64> {
        self.waiting.iter().copied().collect()
    }

    /// Gives `task` the next home CPU, round-robin among the CPUs it
    /// allows, `avoid` excepted. `None`: there is none (its home stays).
    fn rehome(&mut self, ctx: &mut Ctx<'_>, task: &Task, avoid: Option<usize>) -> Option<usize> {
        let cpus = ctx.cpus();
        let start = self.next % cpus.len().max(1);
        let (i, cpu) = cpus
            .iter()
            .copied()
            .enumerate()
            .cycle()
            .skip(start)
            .take(cpus.len())
            .find(|&(_, c)| task.allowed(c) && Some(c) != avoid)?;
        self.next = i + 1;
        ctx.set_home(task.gtid, cpu);
        Some(cpu)
    }

    /// A task that can run: at the back of its home's queue if it allows
    /// its home, else of a new home's; with no CPU it allows, it waits.
    fn make_runnable(&mut self, ctx: &mut Ctx<'_>, task: &Task) {
        let home = match task.home {
            Some(h) if task.allowed(h) => Some(h),
            _ => self.rehome(ctx, task, None),
        };
        self.enqueue(ctx, task.gtid, home);
    }

    /// Puts a runnable task at the back of `cpu`'s queue and wakes that
    /// CPU's agent; with no CPU, among the waiting.
    fn enqueue(&mut self, ctx: &mut Ctx<'_>, gtid: i64, cpu: Option<usize>) {
        let Some(cpu) = cpu else {
            self.waiting.insert(gtid);
            return;
        };
        let q = self.rq.entry(cpu).or_default();
        if !q.contains(&gtid) {
            q.push_back(gtid);
        }
        ctx.wake(cpu);
    }

    /// Takes a task off every run queue, off the CPU it was current on, and
    /// out of the waiting.
    fn remove(&mut self, gtid: i64) {
        for q in self.rq.values_mut() {
            q.retain(|&g| g != gtid);
        }
        self.current.retain(|_, &mut g| g != gtid);
        self.waiting.remove(&gtid);
    }

    /// A task left its CPU but stays runnable: back of a queue.
    fn requeue(&mut self, ctx: &mut Ctx<'_>, task: &Task) {
        self.remove(task.gtid);
        self.make_runnable(ctx, task);
    }

    /// The CPU whose run queue holds `gtid`, if any.
    fn queued_on(&self, gtid: i64) -> Option<usize> {
        self.rq
            .iter()
            .find(|(_, q)| q.contains(&gtid))
            .map(|(&c, _)| c)
    }
}

impl Policy for Fifo {
    fn task_new(&mut self, ctx: &mut Ctx<'_>, task: &Task, msg: &abi::GhostMsgPayloadTaskNew) {
        // Announced again after a takeover: start over.
        self.remove(task.gtid);
        let home = self.rehome(ctx, task, None);
        if msg.runnable != 0 {
            self.enqueue(ctx, task.gtid, home);
        }
    }

    fn task_wakeup(&mut self, ctx: &mut Ctx<'_>, task: &Task, _: &abi::GhostMsgPayloadTaskWakeup) {
        self.make_runnable(ctx, task);
    }

    fn task_affinity_changed(
        &mut self,
        ctx: &mut Ctx<'_>,
        task: &Task,
        _: &abi::GhostMsgPayloadTaskAffinityChanged,
    ) {
        // A running or blocked task moves when it next becomes runnable.
        let misplaced = self.queued_on(task.gtid).is_some_and(|c| !task.allowed(c));
        if misplaced || self.waiting.contains(&task.gtid) {
            self.requeue(ctx, task);
        }
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
        // The queue holds only tasks allowed here (the check costs a
        // lookup); one that is not would move on.
        while let Some(&gtid) = self.rq.get(&cpu).and_then(|q| q.front()) {
            match ctx.task(gtid).copied() {
                Some(t) if t.allowed(cpu) => return plan.run(cpu, gtid),
                Some(t) => self.requeue(ctx, &t),
                None => self.remove(gtid),
            }
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
            // An older kernel checked affinity at commit and says it
            // excludes this CPU (the runtime's view is behind: the
            // TASK_AFFINITY_CHANGED is on its way, or it could not be
            // read): try another CPU the task allows.
            TxnResult::InvalidCpu => {
                self.remove(gtid);
                if let Some(task) = ctx.task(gtid).copied() {
                    let home = self.rehome(ctx, &task, Some(cpu));
                    self.enqueue(ctx, gtid, home);
                }
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
        super::dump_waiting(out, &self.waiting);
    }
}
