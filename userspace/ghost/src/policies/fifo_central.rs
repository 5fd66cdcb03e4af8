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
//!
//! Affinity: a free CPU gets the oldest such task that allows it
//! ([`Task::allowed`]), so a task waits for a CPU it allows while younger
//! ones take the others. A runnable task that allows none of the CPUs the
//! agent schedules waits outside the run queue until its affinity changes
//! (`TASK_AFFINITY_CHANGED`); [`FifoCentral::dump`] lists it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
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
    /// Runnable tasks whose affinity allows none of the CPUs scheduled.
    waiting: BTreeSet<i64>,
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

    /// The runnable tasks that wait for an affinity that allows one of the
    /// CPUs scheduled.
    pub fn waiting(&self) -> Vec<i64> {
        self.waiting.iter().copied().collect()
    }

    /// A runnable task: at the back of the run queue, or among the waiting
    /// if it allows none of the CPUs.
    fn enqueue(&mut self, ctx: &Ctx<'_>, task: &Task) {
        if ctx.allowed_cpus(task).next().is_none() {
            self.rq.retain(|&g| g != task.gtid);
            self.waiting.insert(task.gtid);
        } else if !self.rq.contains(&task.gtid) {
            self.waiting.remove(&task.gtid);
            self.rq.push_back(task.gtid);
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
        self.waiting.remove(&gtid);
    }

    fn set_busy(&mut self, cpu: i32, busy: bool) {
        if let Ok(cpu) = usize::try_from(cpu) {
            self.cpus.entry(cpu).or_default().busy = busy;
        }
    }
}

impl Policy for FifoCentral {
    fn task_new(&mut self, ctx: &mut Ctx<'_>, task: &Task, msg: &abi::GhostMsgPayloadTaskNew) {
        self.forget(task.gtid);
        if msg.runnable != 0 {
            self.enqueue(ctx, task);
        }
    }

    fn task_wakeup(&mut self, ctx: &mut Ctx<'_>, task: &Task, _: &abi::GhostMsgPayloadTaskWakeup) {
        self.enqueue(ctx, task);
    }

    fn task_preempt(
        &mut self,
        ctx: &mut Ctx<'_>,
        task: &Task,
        _: &abi::GhostMsgPayloadTaskPreempt,
    ) {
        self.off_cpu(task.gtid);
        self.enqueue(ctx, task);
    }

    fn task_yield(&mut self, ctx: &mut Ctx<'_>, task: &Task, _: &abi::GhostMsgPayloadTaskYield) {
        self.off_cpu(task.gtid);
        self.enqueue(ctx, task);
    }

    fn task_affinity_changed(
        &mut self,
        ctx: &mut Ctx<'_>,
        task: &Task,
        _: &abi::GhostMsgPayloadTaskAffinityChanged,
    ) {
        // A queued task keeps its place (each CPU takes the oldest task it
        // may run); a running one comes back with its TASK_PREEMPT.
        if self.rq.contains(&task.gtid) || self.waiting.contains(&task.gtid) {
            self.enqueue(ctx, task);
        }
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
        let Self {
            rq, cpus, slice, ..
        } = self;
        let on_cpu = |g| ctx.status_word(g).is_some_and(|sw| sw.on_cpu());
        // Whether a task was passed over because it is still on a CPU, a
        // CPU found no task, a CPU will be free again by itself.
        let (mut skipped, mut unfilled, mut waiting_on_cpus) = (false, false, false);
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
            // The oldest task that may run here, not planned yet, and off
            // every CPU.
            let pick = rq
                .iter()
                .copied()
                .filter(|&g| ctx.allowed(g, cpu) && !plan.runs(g))
                .find(|&g| {
                    let busy = on_cpu(g);
                    skipped |= busy;
                    !busy
                });
            match pick {
                Some(gtid) => plan.run(cpu, gtid),
                None => unfilled = true,
            }
        }
        let tasks_wait = rq.iter().any(|&g| !plan.runs(g) && !on_cpu(g));
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
            // An older kernel checked affinity at commit and says it
            // excludes this CPU (the runtime's view is behind): let the
            // others go first.
            TxnResult::InvalidCpu => {
                self.rq.retain(|&g| g != gtid);
                self.rq.push_back(gtid);
            }
            _ => {}
        }
    }

    fn dump(&self, out: &mut String) {
        let _ = writeln!(out, "run queue: {} runnable {:?}", self.rq.len(), self.rq);
        super::dump_waiting(out, &self.waiting);
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
