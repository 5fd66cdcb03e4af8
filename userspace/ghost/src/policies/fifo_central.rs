//! Centralized FIFO: one global agent schedules every other CPU of the
//! enclave from a single first-in, first-out run queue.
//!
//! The global agent sits on a CPU of its own and commits transactions for
//! the others (remote commits); their agents only give their CPU away. A
//! free CPU gets the oldest runnable task that is off every CPU (its status
//! word says so). With a preemption time slice, a CPU whose task has run a
//! whole slice while others wait gets the next task, and the preempted one
//! goes to the back of the queue. A CPU taken by a higher class (a failed
//! commit with `CPU_UNAVAIL`, or `CPU_BUSY`) is left alone until
//! `CPU_AVAILABLE` or for a short back-off.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write;
use std::time::{Duration, Instant};

use ghost_abi as abi;

use crate::policy::{Ctx, Plan, Policy, Task};
use crate::txn::TxnResult;

/// How long a CPU that refused a task with `CPU_UNAVAIL` is left alone.
const UNAVAIL_BACKOFF: Duration = Duration::from_millis(1);

/// What the global agent knows of one CPU.
#[derive(Debug, Default, Clone, Copy)]
struct CpuState {
    /// The task committed there, until a message says it left.
    current: Option<i64>,
    /// When it was committed.
    since: Option<Instant>,
    /// `CPU_BUSY` without `CPU_AVAILABLE` since.
    busy: bool,
    /// Left alone until then (after `CPU_UNAVAIL`).
    backoff: Option<Instant>,
}

/// The centralized FIFO policy.
#[derive(Debug, Default)]
pub struct FifoCentral {
    /// Runnable tasks that are not running, oldest first.
    rq: VecDeque<i64>,
    cpus: BTreeMap<usize, CpuState>,
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

    /// The task committed on `cpu`, if any.
    pub fn current(&self, cpu: usize) -> Option<i64> {
        self.cpus.get(&cpu).and_then(|s| s.current)
    }

    fn enqueue(&mut self, gtid: i64) {
        if !self.rq.contains(&gtid) {
            self.rq.push_back(gtid);
        }
    }

    /// The task left its CPU.
    fn off_cpu(&mut self, gtid: i64) {
        for s in self.cpus.values_mut().filter(|s| s.current == Some(gtid)) {
            s.current = None;
            s.since = None;
        }
    }

    fn forget(&mut self, gtid: i64) {
        self.off_cpu(gtid);
        self.rq.retain(|&g| g != gtid);
    }

    fn set_busy(&mut self, cpu: i32, busy: bool) {
        if let Ok(cpu) = usize::try_from(cpu) {
            self.cpus.entry(cpu).or_default().busy = busy;
        }
    }
}

impl Policy for FifoCentral {
    fn task_new(&mut self, _: &mut Ctx<'_>, task: &Task, msg: &abi::GhostMsgPayloadTaskNew) {
        self.forget(task.gtid);
        if msg.runnable != 0 {
            self.enqueue(task.gtid);
        }
    }

    fn task_wakeup(&mut self, _: &mut Ctx<'_>, task: &Task, _: &abi::GhostMsgPayloadTaskWakeup) {
        self.enqueue(task.gtid);
    }

    fn task_preempt(&mut self, _: &mut Ctx<'_>, task: &Task, _: &abi::GhostMsgPayloadTaskPreempt) {
        self.off_cpu(task.gtid);
        self.enqueue(task.gtid);
    }

    fn task_yield(&mut self, _: &mut Ctx<'_>, task: &Task, _: &abi::GhostMsgPayloadTaskYield) {
        self.off_cpu(task.gtid);
        self.enqueue(task.gtid);
    }

    fn task_blocked(&mut self, _: &mut Ctx<'_>, task: &Task, _: &abi::GhostMsgPayloadTaskBlocked) {
        self.forget(task.gtid);
    }

    fn task_dead(&mut self, _: &mut Ctx<'_>, task: &Task, _: &abi::GhostMsgPayloadTaskDead) {
        self.forget(task.gtid);
    }

    fn task_departed(
        &mut self,
        _: &mut Ctx<'_>,
        task: &Task,
        _: &abi::GhostMsgPayloadTaskDeparted,
    ) {
        self.forget(task.gtid);
    }

    fn cpu_busy(&mut self, _: &mut Ctx<'_>, msg: &abi::GhostMsgPayloadCpuBusy) {
        self.set_busy(msg.cpu, true);
    }

    fn cpu_available(&mut self, _: &mut Ctx<'_>, msg: &abi::GhostMsgPayloadCpuAvailable) {
        self.set_busy(msg.cpu, false);
    }

    fn schedule(&mut self, ctx: &mut Ctx<'_>, plan: &mut Plan) {
        let now = ctx.now();
        let Self { rq, cpus, slice } = self;
        // Candidates in FIFO order, skipping tasks still on a CPU.
        let mut skipped = false;
        let mut candidates = rq.iter().copied().filter(|&g| {
            let on_cpu = ctx.status_word(g).is_some_and(|sw| sw.on_cpu());
            skipped |= on_cpu;
            !on_cpu
        });
        let (mut waiting_on_cpus, mut unfilled) = (false, false);
        for &cpu in ctx.cpus() {
            let s = cpus.entry(cpu).or_default();
            if s.busy || s.backoff.is_some_and(|t| t > now) {
                waiting_on_cpus |= !s.busy;
                continue;
            }
            let expired = match (s.since, *slice) {
                (Some(since), Some(slice)) => now.saturating_duration_since(since) >= slice,
                _ => false,
            };
            if s.current.is_some() && !expired {
                // Check again when its slice ends.
                waiting_on_cpus |= slice.is_some();
                continue;
            }
            let Some(gtid) = candidates.next() else {
                unfilled = true;
                break;
            };
            plan.run(cpu, gtid);
        }
        let tasks_wait = candidates.next().is_some();
        drop(candidates);
        // Nothing tells the agent when a slice or a back-off ends, or when a
        // task skipped above leaves its CPU: look again soon.
        if (tasks_wait && waiting_on_cpus) || (skipped && unfilled) {
            plan.poll();
        }
    }

    fn committed(&mut self, ctx: &mut Ctx<'_>, cpu: usize, gtid: i64, result: TxnResult) {
        match result {
            TxnResult::Complete => {
                self.rq.retain(|&g| g != gtid);
                let s = self.cpus.entry(cpu).or_default();
                // A task preempted here says so in its TASK_PREEMPT.
                s.current = Some(gtid);
                s.since = Some(ctx.now());
            }
            TxnResult::CpuUnavail => {
                self.cpus.entry(cpu).or_default().backoff = Some(ctx.now() + UNAVAIL_BACKOFF);
            }
            TxnResult::TargetNotFound | TxnResult::TargetNotRunnable | TxnResult::InvalidTarget => {
                self.rq.retain(|&g| g != gtid);
            }
            // Its affinity excludes this CPU: let the others go first.
            TxnResult::InvalidCpu => {
                self.rq.retain(|&g| g != gtid);
                self.rq.push_back(gtid);
            }
            _ => {}
        }
    }

    fn dump(&self, out: &mut String) {
        let _ = writeln!(out, "run queue: {} runnable {:?}", self.rq.len(), self.rq);
        for (cpu, s) in &self.cpus {
            let _ = write!(out, "cpu {cpu}: ");
            match s.current {
                Some(g) => {
                    let ran = s.since.map_or(0, |t| t.elapsed().as_micros());
                    let _ = write!(out, "running {g} for {ran} us");
                }
                None => {
                    let _ = write!(out, "free");
                }
            }
            let _ = writeln!(
                out,
                "{}",
                if s.busy { " (busy: another class)" } else { "" }
            );
        }
    }
}
