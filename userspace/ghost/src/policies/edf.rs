//! Earliest deadline first, centralized: one global agent runs, on every
//! other CPU, the waiting task with the earliest deadline; tasks without
//! one run after every task with one, first come first served.
//!
//! Tasks declare a relative deadline in a [`DeadlineTable`], shared memory
//! the workload writes and the agent reads (as ghOSt's EDF reads its
//! workload's table). A task's absolute deadline is set when it enters the
//! enclave runnable and at every wakeup: the time of that message plus the
//! relative deadline of its thread's entry (or its period, if the deadline
//! is 0). It keeps it when preempted or yielding. An entry that is being
//! written, or out of range, counts as no deadline.
//!
//! A waiting task with an earlier deadline than a running one takes its CPU
//! once that task has run the preemption granularity ([`Policy::slice`]):
//! the CPU running the latest deadline among those the task may use.

use std::collections::HashMap;
use std::fmt::Write;
use std::time::{Duration, Instant};

use ghost_abi as abi;

use crate::gtid::Layout;
use crate::policy::{Ctx, Policy, Task};

pub mod table;
pub use table::{Deadline, DeadlineTable, Unusable};

/// The preemption granularity when none is given.
pub const DEFAULT_GRANULARITY: Duration = Duration::from_micros(100);

/// The EDF policy.
pub struct Edf {
    table: Option<DeadlineTable>,
    layout: Option<Layout>,
    /// Absolute deadlines of the tasks that declared one.
    deadline: HashMap<i64, Instant>,
    /// Tasks waiting for a CPU, in arrival order.
    rq: Vec<i64>,
    granularity: Duration,
    /// Lookups that found an entry being written or out of range.
    invalid: u64,
}

impl Edf {
    /// A policy reading deadlines from `table` for the threads `layout`
    /// names (no table: every task is first come, first served).
    pub fn new(
        table: Option<DeadlineTable>,
        layout: Option<Layout>,
        granularity: Duration,
    ) -> Self {
        Self {
            table,
            layout,
            deadline: HashMap::new(),
            rq: Vec::new(),
            granularity,
            invalid: 0,
        }
    }

    /// The run queue in arrival order, with each task's deadline.
    pub fn run_queue(&self) -> Vec<(i64, Option<Instant>)> {
        self.rq.iter().map(|&g| (g, self.deadline(g))).collect()
    }

    /// The absolute deadline of `gtid`, if it has one.
    pub fn deadline(&self, gtid: i64) -> Option<Instant> {
        self.deadline.get(&gtid).copied()
    }

    /// Sorts before: an earlier deadline, any deadline before none.
    fn key(&self, gtid: i64) -> (bool, Option<Instant>) {
        let d = self.deadline(gtid);
        (d.is_none(), d)
    }

    /// Reads `gtid`'s entry: its deadline from `now` on, or none.
    fn refresh(&mut self, gtid: i64, now: Instant) {
        let tid = self.layout.as_ref().and_then(|l| l.tid(gtid));
        let found = match (&self.table, tid) {
            (Some(t), Some(tid)) => t.lookup(tid),
            _ => None,
        };
        match found {
            Some(Ok(d)) => {
                self.deadline.insert(gtid, now + d.relative);
            }
            Some(Err(_)) => {
                self.invalid += 1;
                self.deadline.remove(&gtid);
            }
            None => {
                self.deadline.remove(&gtid);
            }
        }
    }
}

impl Policy for Edf {
    fn task_new(&mut self, ctx: &mut Ctx<'_>, task: &Task, msg: &abi::GhostMsgPayloadTaskNew) {
        self.deadline.remove(&task.gtid);
        if msg.runnable != 0 {
            self.refresh(task.gtid, ctx.now());
        }
    }

    fn task_wakeup(&mut self, ctx: &mut Ctx<'_>, t: &Task, _: &abi::GhostMsgPayloadTaskWakeup) {
        self.refresh(t.gtid, ctx.now());
    }

    fn task_dead(&mut self, _: &mut Ctx<'_>, task: &Task, _: &abi::GhostMsgPayloadTaskDead) {
        self.deadline.remove(&task.gtid);
    }

    fn task_departed(&mut self, _: &mut Ctx<'_>, t: &Task, _: &abi::GhostMsgPayloadTaskDeparted) {
        self.deadline.remove(&t.gtid);
    }

    fn enqueue(&mut self, _: &mut Ctx<'_>, task: &Task) {
        self.rq.push(task.gtid);
    }

    fn dequeue(&mut self, _: &mut Ctx<'_>, task: &Task) {
        self.rq.retain(|&g| g != task.gtid);
    }

    fn pick(&mut self, ctx: &mut Ctx<'_>, cpu: usize) -> Option<i64> {
        let best = self
            .rq
            .iter()
            .copied()
            .filter(|&g| ctx.can_run(g, cpu) && !ctx.still_on_cpu(g))
            .min_by_key(|&g| self.key(g))?;
        let Some(cur) = ctx.current(cpu) else {
            return Some(best);
        };
        // Replace a running task only for an earlier deadline, and only
        // the latest deadline running where `best` may go.
        let worst = ctx
            .cpus()
            .iter()
            .filter(|&&c| ctx.allowed(best, c))
            .filter_map(|&c| ctx.current(c))
            .map(|g| self.key(g))
            .max()?;
        let (k, kc) = (self.key(best), self.key(cur));
        (k.1.is_some() && k < kc && kc == worst).then_some(best)
    }

    /// Each CPU takes the earliest task it may run: a task keeps its place.
    fn affinity_changed(&mut self, _: &mut Ctx<'_>, _: &Task) {}

    fn slice(&self) -> Option<Duration> {
        Some(self.granularity)
    }

    fn dump(&self, out: &mut String) {
        let now = Instant::now();
        let _ = write!(out, "run queue: {} runnable", self.rq.len());
        for &g in &self.rq {
            match self.deadline(g) {
                Some(d) if d >= now => {
                    let _ = write!(out, " {g} (due in {} us)", (d - now).as_micros());
                }
                Some(d) => {
                    let _ = write!(out, " {g} (late by {} us)", (now - d).as_micros());
                }
                None => {
                    let _ = write!(out, " {g}");
                }
            }
        }
        let _ = writeln!(out, "; table entries unusable: {}", self.invalid);
    }
}
