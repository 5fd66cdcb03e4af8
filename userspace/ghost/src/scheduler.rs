//! The kernel-free core of the agent runtime: the task table, what runs
//! where, the dispatch of messages to a [`Policy`], the pick step, and the
//! outcome of commits.
//!
//! It owns the bookkeeping every policy would otherwise repeat:
//!
//! - Each task's state ([`TaskState`]). A task waits for a CPU (queued in
//!   the policy: [`Policy::enqueue`] once, [`Policy::dequeue`] once) from
//!   the message that makes it runnable off a CPU (`TASK_NEW` runnable,
//!   `TASK_WAKEUP`, `TASK_PREEMPT`, `TASK_YIELD`, `TASK_LATCH_FAILURE`)
//!   until the commit that runs it completes, or it blocks, dies or leaves.
//!   A runnable task whose affinity allows none of the CPUs scheduled is
//!   parked here instead, and enqueued when `TASK_AFFINITY_CHANGED` lets it
//!   run somewhere. In the centralized model the global agent lends its own
//!   CPU to a parked task that may run there when it has nothing else to
//!   do ([`Scheduler::lend`]).
//! - Each CPU's current task: the one committed last, latched or running,
//!   until a message says it left the CPU. A commit *latches* a task to its
//!   CPU; it runs once the CPU's agent gives the CPU away. A second commit
//!   before that would replace the latch: the kernel reports the replaced
//!   task with `TASK_PREEMPT` (`was_latched`), which wakes the agent, which
//!   would commit again, and no task would ever run. So a CPU with a
//!   current task is not picked for, except when the policy's time slice
//!   ([`Policy::slice`], centralized model) is over; the replaced task is
//!   then enqueued once, when its `TASK_PREEMPT` comes. When a per-CPU
//!   agent is woken (a message, a ping), the kernel preempts the task it
//!   gave its CPU to (`TASK_PREEMPT`): the task goes back to the policy,
//!   and the tasks of a CPU take turns at every wakeup of its agent. A
//!   task's affinity change forces it off its CPU (`TASK_PREEMPT` after
//!   `TASK_AFFINITY_CHANGED`), and a latch on a CPU it may no longer use is
//!   dropped the same way.
//! - Re-announcements: `discover tasks` (after a takeover, or when messages
//!   were lost) announces every task again with `TASK_NEW`. The runtime
//!   withdraws what it knew (dequeues the task, clears the CPU it was
//!   current on) and starts over; a `TASK_PREEMPT` that follows for a task
//!   that was running under the previous agent finds it queued already and
//!   changes nothing.
//! - CPUs another class holds (centralized model): a commit refused with
//!   `CPU_UNAVAIL` leaves the CPU alone for a short back-off, `CPU_BUSY`
//!   until `CPU_AVAILABLE`.
//! - When the global agent must look again without a message: a time slice
//!   or a back-off ends while tasks wait, or a picked-over task is still
//!   finishing its switch off a CPU ([`Plan::poll`]).
//!
//! It touches the kernel only through the small [`Kernel`] trait (queue
//! association, status-word frees, task affinities), so that policies can
//! be tested on the host against recorded message sequences.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ghost_abi as abi;
use ghost_abi::GhostSwInfo;

use crate::gtid::GtidMap;
use crate::policy::{Ctx, Policy, Requests, Task, TaskState};
use crate::queue::{Message, Received};
use crate::stats::Stats;
use crate::sw::SwTable;
use crate::sys::Errno;
use crate::txn::{CpuMask, TxnResult};

/// How long a CPU that refused a task with `CPU_UNAVAIL` is left alone
/// (centralized model).
const UNAVAIL_BACKOFF: Duration = Duration::from_millis(1);

/// The kernel operations message dispatch needs.
pub trait Kernel {
    /// Sends task `gtid`'s messages to the queue of `cpu`'s agent from now
    /// on, if `barrier` is still its barrier (`GHOST_IOC_ASSOC_QUEUE`).
    fn assoc_queue(&mut self, gtid: i64, cpu: usize, barrier: u32) -> Result<i32, Errno>;
    /// Frees a status word (`GHOST_IOC_SW_FREE`).
    fn sw_free(&mut self, sw: GhostSwInfo) -> Result<(), Errno>;
    /// The CPUs task `gtid` may run on (`sched_getaffinity` on the thread
    /// its gtid names); `ESRCH` if it is gone.
    fn task_affinity(&mut self, gtid: i64) -> Result<CpuMask, Errno>;
}

/// How the agents of an enclave are organised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Model {
    /// One agent per CPU schedules its own CPU from its own queue.
    PerCpu,
    /// One global agent on `global_cpu` schedules every other CPU from one
    /// queue; the other agents only give their CPU away.
    Centralized {
        /// The global agent's CPU.
        global_cpu: usize,
    },
}

/// One decision: run `gtid` on `cpu`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanEntry {
    /// The CPU.
    pub cpu: usize,
    /// The task, or `GHOST_IDLE_GTID` to make the CPU idle.
    pub gtid: i64,
    /// Run flags (`RTLA_ON_*`, `SEND_TASK_ON_CPU`, ...).
    pub run_flags: u16,
    /// The task barrier the transaction quotes (set by the runtime).
    pub task_barrier: u32,
}

/// The decisions of one pick step ([`Scheduler::schedule`]).
#[derive(Debug, Default)]
pub struct Plan {
    entries: Vec<PlanEntry>,
    poll: bool,
}

impl Plan {
    /// An empty plan.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `gtid` on `cpu`. If `cpu` runs a ghost task, that task is
    /// preempted (`TASK_PREEMPT`).
    pub fn run(&mut self, cpu: usize, gtid: i64) {
        self.run_with_flags(cpu, gtid, 0);
    }

    /// Runs `gtid` on `cpu` with `run_flags`.
    pub fn run_with_flags(&mut self, cpu: usize, gtid: i64, run_flags: u16) {
        self.entries.push(PlanEntry {
            cpu,
            gtid,
            run_flags,
            task_barrier: 0,
        });
    }

    /// Makes `cpu` idle: its ghost task leaves it.
    pub fn idle(&mut self, cpu: usize) {
        self.run(cpu, abi::GHOST_IDLE_GTID);
    }

    /// Asks the agent to plan again soon rather than wait for the next
    /// message (e.g. to end a time slice). Only a centralized agent polls;
    /// a per-CPU agent waits for a message.
    pub fn poll(&mut self) {
        self.poll = true;
    }

    /// The decisions.
    pub fn entries(&self) -> &[PlanEntry] {
        &self.entries
    }

    /// Whether the plan runs `gtid` on a CPU already.
    pub fn runs(&self, gtid: i64) -> bool {
        self.entries.iter().any(|e| e.gtid == gtid)
    }

    /// Whether there is no decision.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether [`Plan::poll`] was called.
    pub fn polls(&self) -> bool {
        self.poll
    }

    /// Empties the plan (keeping its memory).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.poll = false;
    }

    pub(crate) fn entries_mut(&mut self) -> &mut Vec<PlanEntry> {
        &mut self.entries
    }
}

/// What the runtime knows of one CPU.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct CpuState {
    /// The task committed there, until a message says it left.
    pub(crate) current: Option<i64>,
    /// When it was committed.
    pub(crate) since: Option<Instant>,
    /// `CPU_BUSY` without `CPU_AVAILABLE` since.
    busy: bool,
    /// Left alone until then (after `CPU_UNAVAIL`).
    backoff: Option<Instant>,
}

/// A policy with the runtime's task and CPU tables.
pub struct Scheduler<P> {
    policy: P,
    tasks: GtidMap<Task>,
    /// The CPUs tasks run on ([`Ctx::cpus`]).
    cpus: Vec<usize>,
    /// What runs where, by CPU of `cpus`.
    on: BTreeMap<usize, CpuState>,
    /// Runnable tasks whose affinity allows none of `cpus`.
    parked: BTreeSet<i64>,
    /// Tasks in the policy's run queues.
    queued: usize,
    per_cpu: bool,
    sw: Option<Arc<SwTable>>,
    req: Requests,
    /// The pick step's CPUs to ask (free, slice over), kept for their
    /// memory.
    ask: (Vec<usize>, Vec<usize>),
    /// What dispatch counted (unknown tasks, queue moves, frees, ...).
    pub stats: Stats,
}

impl<P: Policy> Scheduler<P> {
    /// A scheduler for `policy` on the agent CPUs `agent_cpus` organised as
    /// `model`. `sw` gives policies status words ([`Ctx::status_word`]).
    pub fn new(policy: P, model: &Model, agent_cpus: &[usize], sw: Option<Arc<SwTable>>) -> Self {
        let mut cpus: Vec<usize> = agent_cpus.to_vec();
        cpus.sort_unstable();
        cpus.dedup();
        if let Model::Centralized { global_cpu } = model {
            cpus.retain(|c| c != global_cpu);
        }
        let on = cpus.iter().map(|&c| (c, CpuState::default())).collect();
        Self {
            policy,
            tasks: GtidMap::default(),
            cpus,
            on,
            parked: BTreeSet::new(),
            queued: 0,
            per_cpu: *model == Model::PerCpu,
            sw,
            req: Requests::default(),
            ask: (Vec::new(), Vec::new()),
            stats: Stats::default(),
        }
    }

    /// The policy.
    pub fn policy(&self) -> &P {
        &self.policy
    }

    /// The policy, mutably.
    pub fn policy_mut(&mut self) -> &mut P {
        &mut self.policy
    }

    /// The task `gtid`.
    pub fn task(&self, gtid: i64) -> Option<&Task> {
        self.tasks.get(&gtid)
    }

    /// The number of tasks known.
    pub fn nr_tasks(&self) -> usize {
        self.tasks.len()
    }

    /// The CPUs tasks run on.
    pub fn cpus(&self) -> &[usize] {
        &self.cpus
    }

    /// The current task of `cpu`: committed there, not yet off the CPU.
    pub fn current(&self, cpu: usize) -> Option<i64> {
        self.on.get(&cpu).and_then(|s| s.current)
    }

    /// The runnable tasks parked because their affinity allows none of
    /// the CPUs scheduled.
    pub fn waiting(&self) -> Vec<i64> {
        self.parked.iter().copied().collect()
    }

    /// Centralized model, for the global agent of `cpu` that has nothing
    /// else to do (its plan is empty and it does not poll): lends its own
    /// CPU to a parked task that may run there, i.e. one whose affinity
    /// allows the global agent's CPU and no CPU scheduled (`cyclictest`
    /// pins a thread to each CPU of its affinity). Without this such a task
    /// never runs while the global agent has its CPU. The commit is a
    /// local one: the agent gives its CPU to the task until a message
    /// wakes it (any message of the global queue, the task's `TASK_BLOCKED`
    /// or `TASK_PREEMPT` among them). Adds the entry to `plan`; if the only
    /// such task is still finishing its switch off a CPU (no message says
    /// when that is over), asks the agent to look again instead
    /// ([`Plan::poll`]). Returns whether the plan changed.
    pub fn lend(&mut self, cpu: usize, plan: &mut Plan) -> bool {
        if self.per_cpu || !plan.is_empty() || plan.polls() {
            return false;
        }
        let sw = self.sw.as_deref();
        let mut switching = false;
        let pick = self.parked_on(cpu).map(|t| t.gtid).find(|g| {
            let Some(t) = self.tasks.get(g) else {
                return false;
            };
            match sw.and_then(|s| s.get(t.sw)) {
                Some(w) if w.on_cpu() => {
                    switching = true;
                    false
                }
                // A message about it is unread: it wakes the agent.
                Some(w) => w.barrier() == t.seqnum,
                None => true,
            }
        });
        match pick {
            Some(gtid) => {
                plan.run(cpu, gtid);
                let barrier = self.tasks.get(&gtid).map_or(0, |t| t.seqnum);
                if let Some(e) = plan.entries_mut().last_mut() {
                    e.task_barrier = barrier;
                }
                self.req.picked.push(gtid);
                self.req.inflight.insert(gtid, cpu);
                self.stats.lent += 1;
                true
            }
            None if switching => {
                plan.poll();
                true
            }
            None => false,
        }
    }

    /// The parked tasks that may run on `cpu`.
    fn parked_on(&self, cpu: usize) -> impl Iterator<Item = &Task> + '_ {
        self.parked
            .iter()
            .filter_map(move |g| self.tasks.get(g).filter(|t| t.allowed(cpu)))
    }

    /// Whether [`Scheduler::lend`] would have a task for the global agent
    /// of `cpu` (now or once it is off its CPU): one that another class
    /// keeps off the CPU waits for the CPU to go idle (`RTLA_ON_IDLE`).
    pub fn lendable(&self, cpu: usize) -> bool {
        !self.per_cpu && self.parked_on(cpu).next().is_some()
    }

    /// Runs `f` on the policy with a context for the agent of `cpu`.
    fn call<R>(
        &mut self,
        cpu: usize,
        now: Instant,
        f: impl FnOnce(&mut P, &mut Ctx<'_>) -> R,
    ) -> R {
        let Self {
            policy,
            tasks,
            cpus,
            on,
            sw,
            req,
            ..
        } = self;
        let mut ctx = Ctx {
            cpu,
            now,
            cpus,
            on,
            tasks,
            sw: sw.as_deref(),
            req,
        };
        f(policy, &mut ctx)
    }

    /// Calls `f` with task `gtid` as the table has it now, if known.
    fn with_task(
        &mut self,
        cpu: usize,
        now: Instant,
        gtid: i64,
        f: impl FnOnce(&mut P, &mut Ctx<'_>, &Task),
    ) {
        if let Some(t) = self.tasks.get(&gtid).copied() {
            self.call(cpu, now, |p, ctx| f(p, ctx, &t));
        }
    }

    fn set_state(&mut self, gtid: i64, state: TaskState) {
        if let Some(t) = self.tasks.get_mut(&gtid) {
            t.state = state;
        }
    }

    /// Task `gtid` waits for a CPU: to the policy, or parked if it may use
    /// none of the CPUs. Nothing if it waits already.
    fn make_runnable(&mut self, cpu: usize, now: Instant, gtid: i64) {
        let Some(t) = self.tasks.get(&gtid) else {
            return;
        };
        if matches!(t.state, TaskState::Queued | TaskState::Parked) {
            return;
        }
        if self.cpus.iter().any(|&c| t.allowed(c)) {
            self.set_state(gtid, TaskState::Queued);
            self.queued += 1;
            self.with_task(cpu, now, gtid, |p, ctx, t| p.enqueue(ctx, t));
        } else {
            self.set_state(gtid, TaskState::Parked);
            self.parked.insert(gtid);
        }
    }

    /// Task `gtid` stops waiting (its state is then `to`).
    fn stop_waiting(&mut self, cpu: usize, now: Instant, gtid: i64, to: TaskState) {
        match self.tasks.get(&gtid).map(|t| t.state) {
            Some(TaskState::Queued) => {
                self.queued = self.queued.saturating_sub(1);
                self.with_task(cpu, now, gtid, |p, ctx, t| p.dequeue(ctx, t));
            }
            Some(TaskState::Parked) => {
                self.parked.remove(&gtid);
            }
            _ => {}
        }
        self.set_state(gtid, to);
    }

    /// Task `gtid` left the CPU it was committed to (if any): that CPU has
    /// no current task any more, unless another was committed since.
    fn left_cpu(&mut self, gtid: i64) {
        if let Some(TaskState::OnCpu(c)) = self.tasks.get(&gtid).map(|t| t.state) {
            if let Some(s) = self.on.get_mut(&c).filter(|s| s.current == Some(gtid)) {
                s.current = None;
                s.since = None;
            }
            self.set_state(gtid, TaskState::Blocked);
        }
    }

    /// Hands a message read by the agent of `cpu` (from its queue) to the
    /// policy.
    pub fn deliver(&mut self, k: &mut dyn Kernel, cpu: usize, r: &Received, now: Instant) {
        let msg = &r.msg;
        if let Message::Malformed { .. } = msg {
            self.stats.malformed += 1;
            return;
        }
        match msg.gtid() {
            Some(gtid) => self.task_message(k, cpu, r.seqnum, gtid, msg, now),
            None => {
                let busy = match msg {
                    Message::CpuBusy(m) => Some((m.cpu, true)),
                    Message::CpuAvailable(m) => Some((m.cpu, false)),
                    _ => None,
                };
                if let Some((c, b)) = busy {
                    let s = usize::try_from(c).ok().and_then(|c| self.on.get_mut(&c));
                    if let Some(s) = s {
                        s.busy = b;
                    }
                }
                self.call(cpu, now, |p, ctx| match msg {
                    Message::CpuTick(m) => p.cpu_tick(ctx, m),
                    Message::CpuTimerExpired(m) => p.cpu_timer_expired(ctx, m),
                    Message::CpuNotIdle(m) => p.cpu_not_idle(ctx, m),
                    Message::CpuAvailable(m) => p.cpu_available(ctx, m),
                    Message::CpuBusy(m) => p.cpu_busy(ctx, m),
                    Message::CpuAgentBlocked(m) => p.cpu_agent_blocked(ctx, m),
                    Message::CpuAgentWakeup(m) => p.cpu_agent_wakeup(ctx, m),
                    _ => {}
                })
            }
        }
        self.apply_homes(k);
    }

    fn task_message(
        &mut self,
        k: &mut dyn Kernel,
        cpu: usize,
        seqnum: u32,
        gtid: i64,
        msg: &Message,
        now: Instant,
    ) {
        // Per-CPU model: the message came from `cpu`'s queue, so that is
        // where the task's messages go now.
        let queue = self.per_cpu.then_some(cpu);
        if let Message::TaskNew(m) = msg {
            // Announced again (`discover tasks`): withdraw what was known,
            // and start over. A failed read keeps the affinity it had.
            self.left_cpu(gtid);
            self.stop_waiting(cpu, now, gtid, TaskState::Blocked);
            let known = self.tasks.get(&gtid).map(|t| t.affinity);
            let affinity = self
                .read_affinity(k, gtid)
                .or(known)
                .unwrap_or_else(CpuMask::full);
            let t = Task {
                gtid,
                seqnum,
                sw: m.sw_info,
                home: None,
                queue: queue.or(self.tasks.get(&gtid).and_then(|t| t.queue)),
                affinity,
                state: TaskState::Blocked,
            };
            self.tasks.insert(gtid, t);
            self.call(cpu, now, |p, ctx| p.task_new(ctx, &t, m));
            if m.runnable != 0 {
                self.make_runnable(cpu, now, gtid);
            }
            self.route_unless_rehomed(k, gtid);
            return;
        }
        let affinity = match msg {
            Message::TaskAffinityChanged(_) if self.tasks.contains_key(&gtid) => {
                self.read_affinity(k, gtid)
            }
            _ => None,
        };
        let Some(t) = self.tasks.get_mut(&gtid) else {
            self.stats.unknown_task += 1;
            return;
        };
        t.seqnum = seqnum;
        t.queue = queue.or(t.queue);
        if let Some(a) = affinity {
            t.affinity = a;
        }
        let task = *t;
        self.call(cpu, now, |p, ctx| match msg {
            Message::TaskWakeup(m) => p.task_wakeup(ctx, &task, m),
            Message::TaskBlocked(m) => p.task_blocked(ctx, &task, m),
            Message::TaskPreempt(m) => p.task_preempt(ctx, &task, m),
            Message::TaskYield(m) => p.task_yield(ctx, &task, m),
            Message::TaskDead(m) => p.task_dead(ctx, &task, m),
            Message::TaskDeparted(m) => p.task_departed(ctx, &task, m),
            Message::TaskSwitchto(m) => p.task_switchto(ctx, &task, m),
            Message::TaskAffinityChanged(m) => p.task_affinity_changed(ctx, &task, m),
            Message::TaskPriorityChanged(m) => p.task_priority_changed(ctx, &task, m),
            Message::TaskOnCpu(m) => p.task_on_cpu(ctx, &task, m),
            Message::TaskLatchFailure(m) => p.task_latch_failure(ctx, &task, m),
            _ => {}
        });
        match msg {
            Message::TaskWakeup(_) if task.state == TaskState::Blocked => {
                self.make_runnable(cpu, now, gtid)
            }
            // Off its CPU (or its latch dropped or replaced), still
            // runnable: it waits again (once: a task that waits already
            // stays where it is).
            Message::TaskPreempt(_) | Message::TaskYield(_) | Message::TaskLatchFailure(_) => {
                self.left_cpu(gtid);
                self.make_runnable(cpu, now, gtid);
            }
            Message::TaskBlocked(_) | Message::TaskSwitchto(_) => {
                self.left_cpu(gtid);
                self.stop_waiting(cpu, now, gtid, TaskState::Blocked);
            }
            Message::TaskDead(_) | Message::TaskDeparted(_) => {
                self.left_cpu(gtid);
                self.stop_waiting(cpu, now, gtid, TaskState::Blocked);
                // The kernel set CANFREE before it sent the message.
                self.tasks.remove(&gtid);
                match k.sw_free(task.sw) {
                    Ok(()) => self.stats.sw_freed += 1,
                    Err(_) => self.stats.sw_free_failed += 1,
                }
                return;
            }
            Message::TaskAffinityChanged(_) => self.affinity_changed(cpu, now, gtid),
            _ => {}
        }
        self.route_unless_rehomed(k, gtid);
    }

    /// A move refused earlier because of the message just delivered can go
    /// through now; a task given a new home meanwhile moves once the
    /// callbacks are done ([`Self::apply_homes`]).
    fn route_unless_rehomed(&mut self, k: &mut dyn Kernel, gtid: i64) {
        if !self.req.homes.contains(&gtid) {
            self.route(k, gtid);
        }
    }

    /// A task's allowed CPUs changed. A queued one that may still run on a
    /// CPU scheduled is the policy's to move; one that may not is parked;
    /// a parked one that may now is enqueued. A running one is forced off
    /// its CPU by the kernel (its `TASK_PREEMPT` comes next); a blocked one
    /// is placed when it wakes.
    fn affinity_changed(&mut self, cpu: usize, now: Instant, gtid: i64) {
        let Some(t) = self.tasks.get(&gtid) else {
            return;
        };
        let fits = self.cpus.iter().any(|&c| t.allowed(c));
        match (t.state, fits) {
            (TaskState::Queued, true) => {
                self.with_task(cpu, now, gtid, |p, ctx, t| p.affinity_changed(ctx, t))
            }
            (TaskState::Queued, false) | (TaskState::Parked, true) => {
                self.stop_waiting(cpu, now, gtid, TaskState::Blocked);
                self.make_runnable(cpu, now, gtid);
            }
            _ => {}
        }
    }

    /// Task `gtid`'s allowed CPUs as the kernel has them now; `None` (and
    /// counted) if they cannot be read: the task is gone, its `TASK_DEAD`
    /// on the way.
    fn read_affinity(&mut self, k: &mut dyn Kernel, gtid: i64) -> Option<CpuMask> {
        let r = k.task_affinity(gtid).ok();
        self.stats.affinity_unread += u64::from(r.is_none());
        r
    }

    /// Moves the queues of the tasks the callbacks gave a home.
    fn apply_homes(&mut self, k: &mut dyn Kernel) {
        self.stats.plan_rejected += std::mem::take(&mut self.req.homes_refused);
        let homes = std::mem::take(&mut self.req.homes);
        for &gtid in &homes {
            self.route(k, gtid);
        }
        // Keep the vector's memory for the next round.
        self.req.homes = homes;
        self.req.homes.clear();
    }

    /// Per-CPU model: moves `gtid`'s messages to its home CPU's queue if
    /// they go elsewhere. A refusal because the barrier moved is retried
    /// when the message that moved it is delivered.
    fn route(&mut self, k: &mut dyn Kernel, gtid: i64) {
        if !self.per_cpu {
            return;
        }
        let Some(t) = self.tasks.get_mut(&gtid) else {
            return;
        };
        let Some(home) = t.home else {
            return;
        };
        if t.queue == Some(home) {
            return;
        }
        match k.assoc_queue(gtid, home, t.seqnum) {
            Ok(_) => {
                t.queue = Some(home);
                self.stats.assoc += 1;
            }
            Err(Errno(libc::ESTALE)) => self.stats.assoc_stale += 1,
            // Gone: its TASK_DEAD is on the way.
            Err(Errno(libc::ENOENT)) => {}
            Err(_) => self.stats.assoc_failed += 1,
        }
    }

    /// The pick step for the agent of `cpu`: asks the policy for each CPU
    /// this agent may fill (its own in the per-CPU model, every task CPU
    /// for the global agent) that is free, then for each whose current
    /// task's slice is over (so that a waiting task takes a free CPU before
    /// it replaces a running one); keeps the picks it may commit and fills
    /// in their barriers; and tells a global agent whether to look again
    /// soon. A pick stays reserved to this agent until its outcome is
    /// reported ([`Scheduler::committed`]) or the agent plans again.
    pub fn schedule(&mut self, k: &mut dyn Kernel, cpu: usize, now: Instant, plan: &mut Plan) {
        plan.clear();
        self.req.picked.clear();
        self.req.skipped_on_cpu = false;
        self.req.inflight.retain(|_, a| *a != cpu);
        let slice = self.policy.slice();
        let targets: &[usize] = if self.per_cpu {
            std::slice::from_ref(&cpu)
        } else {
            &self.cpus
        };
        // CPUs to ask: free ones first, then those whose slice is over
        // (the vectors are kept from round to round: no allocation).
        let (mut free, mut over) = std::mem::take(&mut self.ask);
        free.clear();
        over.clear();
        // A CPU will be free again by itself.
        let mut frees_itself = false;
        for &c in targets {
            let Some(s) = self.on.get(&c).copied() else {
                continue;
            };
            if !self.per_cpu && (s.busy || s.backoff.is_some_and(|t| t > now)) {
                frees_itself |= !s.busy;
                continue;
            }
            if s.current.is_none() {
                free.push(c);
                continue;
            }
            match (s.since, slice) {
                (Some(since), Some(slice)) if !self.per_cpu => {
                    if now.saturating_duration_since(since) >= slice {
                        over.push(c);
                    } else {
                        // Look again when the slice ends.
                        frees_itself = true;
                    }
                }
                _ => {}
            }
        }
        // A CPU found no task.
        let mut unfilled = false;
        for &c in free.iter().chain(&over) {
            match self.call(cpu, now, |p, ctx| p.pick(ctx, c)) {
                Some(gtid) if self.pickable(gtid, c, cpu) => {
                    plan.run(c, gtid);
                    self.req.picked.push(gtid);
                    self.req.inflight.insert(gtid, cpu);
                }
                Some(_) => {
                    self.stats.plan_rejected += 1;
                    unfilled = true;
                }
                None => unfilled = true,
            }
        }
        self.ask = (free, over);
        self.apply_homes(k);
        if !self.per_cpu && self.should_poll(unfilled, frees_itself) {
            plan.poll();
        }
        let tasks = &self.tasks;
        for e in plan.entries_mut() {
            e.task_barrier = tasks.get(&e.gtid).map_or(0, |t| t.seqnum);
        }
    }

    /// Whether the runtime takes `gtid` as the pick for `cpu` by the agent
    /// of `agent` (as [`Ctx::can_run`]).
    fn pickable(&self, gtid: i64, cpu: usize, agent: usize) -> bool {
        self.tasks
            .get(&gtid)
            .is_some_and(|t| t.state == TaskState::Queued && t.allowed(cpu))
            && !self.req.taken(gtid, agent)
    }

    /// Whether the global agent must look again without a message: tasks
    /// wait while a CPU will be free by itself (a slice or a back-off
    /// ends), or a pick passed over a task still finishing its switch off
    /// a CPU while a CPU found nothing (no message says when the switch is
    /// over: a task that entered ghost while running leaves its CPU
    /// without one).
    fn should_poll(&self, unfilled: bool, frees_itself: bool) -> bool {
        if self.req.skipped_on_cpu && unfilled {
            return true;
        }
        if !frees_itself || self.queued <= self.req.picked.len() {
            return false;
        }
        let sw = self.sw.as_deref();
        let picked = &self.req.picked;
        self.tasks.values().any(|t| {
            t.state == TaskState::Queued
                && !picked.contains(&t.gtid)
                && !sw.and_then(|s| s.get(t.sw)).is_some_and(|w| w.on_cpu())
        })
    }

    /// Reports the outcome of the transaction that ran `gtid` on `target`
    /// (called by the agent of `cpu`): the runtime's bookkeeping, then the
    /// policy's [`Policy::committed`].
    pub fn committed(
        &mut self,
        k: &mut dyn Kernel,
        cpu: usize,
        target: usize,
        gtid: i64,
        result: TxnResult,
        now: Instant,
    ) {
        self.req.inflight.remove(&gtid);
        match result {
            TxnResult::Complete if self.tasks.contains_key(&gtid) => {
                // It runs there now (or is about to). A task it replaces
                // stays committed to the CPU until its TASK_PREEMPT.
                self.stop_waiting(cpu, now, gtid, TaskState::OnCpu(target));
                if let Some(s) = self.on.get_mut(&target) {
                    s.current = Some(gtid);
                    s.since = Some(now);
                }
            }
            TxnResult::CpuUnavail if !self.per_cpu => {
                if let Some(s) = self.on.get_mut(&target) {
                    s.backoff = Some(now + UNAVAIL_BACKOFF);
                }
            }
            // It is gone or blocked, as a message says or will say.
            TxnResult::TargetNotFound | TxnResult::TargetNotRunnable | TxnResult::InvalidTarget => {
                self.stop_waiting(cpu, now, gtid, TaskState::Blocked);
            }
            // An older kernel checked affinity at commit and says it
            // excludes this CPU: the runtime's view is behind (the
            // TASK_AFFINITY_CHANGED is on its way, or it could not be
            // read). Take the CPU out until the next read, and let the
            // policy place the task again.
            TxnResult::InvalidCpu => {
                if let Some(t) = self.tasks.get_mut(&gtid) {
                    let mut a = CpuMask::new();
                    for c in t.affinity.iter().filter(|&c| c != target) {
                        a.set(c);
                    }
                    t.affinity = a;
                    if t.state == TaskState::Queued {
                        self.stop_waiting(cpu, now, gtid, TaskState::Blocked);
                        self.make_runnable(cpu, now, gtid);
                    }
                }
            }
            // Stale barriers, a busy CPU: the task stays queued.
            _ => {}
        }
        self.call(cpu, now, |p, ctx| p.committed(ctx, target, gtid, result));
        self.apply_homes(k);
    }

    /// The agents the callbacks asked to ping, minus `cpu` (the caller);
    /// the request list is emptied.
    pub fn take_pings(&mut self, cpu: usize) -> CpuMask {
        if self.req.pings.is_empty() {
            return CpuMask::new();
        }
        let pings = std::mem::take(&mut self.req.pings);
        let mut out = CpuMask::new();
        for c in pings.iter().filter(|&c| c != cpu) {
            out.set(c);
        }
        out
    }

    /// What runs where, the policy's view of its run queues, the parked
    /// tasks and the status words.
    pub fn dump(&self) -> String {
        let mut s = format!("{} tasks, {} queued\n", self.tasks.len(), self.queued);
        for (cpu, c) in &self.on {
            let _ = write!(s, "cpu {cpu}: ");
            match (c.current, c.since) {
                (Some(g), Some(t)) => {
                    let ran = t.elapsed().as_micros();
                    let _ = write!(s, "current {g} for {ran} us");
                }
                _ => s.push_str("free"),
            }
            s.push_str(if c.busy {
                " (busy: another class)\n"
            } else {
                "\n"
            });
        }
        self.policy.dump(&mut s);
        if !self.parked.is_empty() {
            let _ = writeln!(
                s,
                "waiting, no CPU of the enclave in their affinity: {} {:?}",
                self.parked.len(),
                self.parked
            );
        }
        // What the kernel says of each task (its status word), to compare
        // with the policy's view: `seq` is the last message's seqnum,
        // `barrier` the word's; flags are GHOST_SW_* (0x1 INUSE, 0x2
        // CANFREE, 0x4 ALLOCATED, 0x10000 TASK_ONCPU, 0x20000
        // TASK_RUNNABLE).
        if let Some(sw) = &self.sw {
            let mut gtids: Vec<&i64> = self.tasks.keys().collect();
            gtids.sort_unstable();
            s.push_str("status words (gtid seq/barrier flags):");
            for g in gtids {
                let t = &self.tasks[g];
                match sw.get(t.sw) {
                    Some(w) => {
                        let _ = write!(s, " {g} {}/{} {:#x};", t.seqnum, w.barrier(), w.flags());
                    }
                    None => {
                        let _ = write!(s, " {g} {} unmapped;", t.seqnum);
                    }
                }
            }
            s.push('\n');
        }
        s
    }
}

/// Test helpers: a recording [`Kernel`] and message builders.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use std::collections::HashMap;

    /// A [`Kernel`] that records what it was asked and answers from a
    /// script (`stale`: gtids whose next association is refused;
    /// `affinity`: the allowed CPUs of tasks, `ESRCH` for the others).
    #[derive(Default)]
    pub struct Recorder {
        pub assoc: Vec<(i64, usize, u32)>,
        pub freed: Vec<GhostSwInfo>,
        pub stale: Vec<i64>,
        pub affinity: HashMap<i64, Vec<usize>>,
        pub affinity_reads: Vec<i64>,
    }

    impl Recorder {
        /// Task `gtid` may run on `cpus` from now on.
        pub fn allow(&mut self, gtid: i64, cpus: &[usize]) {
            self.affinity.insert(gtid, cpus.to_vec());
        }
    }

    impl Kernel for Recorder {
        fn assoc_queue(&mut self, gtid: i64, cpu: usize, barrier: u32) -> Result<i32, Errno> {
            if let Some(i) = self.stale.iter().position(|&g| g == gtid) {
                self.stale.remove(i);
                return Err(Errno(libc::ESTALE));
            }
            self.assoc.push((gtid, cpu, barrier));
            Ok(0)
        }

        fn sw_free(&mut self, sw: GhostSwInfo) -> Result<(), Errno> {
            self.freed.push(sw);
            Ok(())
        }

        fn task_affinity(&mut self, gtid: i64) -> Result<CpuMask, Errno> {
            self.affinity_reads.push(gtid);
            let cpus = self.affinity.get(&gtid).ok_or(Errno(libc::ESRCH))?;
            let mut m = CpuMask::new();
            for &c in cpus {
                m.set(c);
            }
            Ok(m)
        }
    }

    fn rcv(seqnum: u32, msg: Message) -> Received {
        Received { seqnum, msg }
    }

    /// `TASK_NEW` for `gtid` (status word index = gtid).
    pub fn new(seq: u32, gtid: i64, runnable: bool) -> Received {
        let sw_info = GhostSwInfo {
            id: 0,
            index: gtid as u32,
        };
        let (gtid, runnable) = (gtid as u64, u16::from(runnable));
        let m = abi::GhostMsgPayloadTaskNew {
            gtid,
            runnable,
            sw_info,
            ..Default::default()
        };
        rcv(seq, Message::TaskNew(m))
    }

    /// `TASK_WAKEUP`.
    pub fn wakeup(seq: u32, gtid: i64) -> Received {
        let gtid = gtid as u64;
        let m = abi::GhostMsgPayloadTaskWakeup {
            gtid,
            ..Default::default()
        };
        rcv(seq, Message::TaskWakeup(m))
    }

    /// `TASK_BLOCKED` on `cpu`.
    pub fn blocked(seq: u32, gtid: i64, cpu: i32) -> Received {
        let gtid = gtid as u64;
        let m = abi::GhostMsgPayloadTaskBlocked {
            gtid,
            cpu,
            ..Default::default()
        };
        rcv(seq, Message::TaskBlocked(m))
    }

    /// `TASK_PREEMPT` on `cpu`.
    pub fn preempt(seq: u32, gtid: i64, cpu: i32) -> Received {
        let gtid = gtid as u64;
        let m = abi::GhostMsgPayloadTaskPreempt {
            gtid,
            cpu,
            ..Default::default()
        };
        rcv(seq, Message::TaskPreempt(m))
    }

    /// `TASK_YIELD` on `cpu`.
    pub fn yielded(seq: u32, gtid: i64, cpu: i32) -> Received {
        let gtid = gtid as u64;
        let m = abi::GhostMsgPayloadTaskYield {
            gtid,
            cpu,
            ..Default::default()
        };
        rcv(seq, Message::TaskYield(m))
    }

    /// `TASK_DEAD` on `cpu`.
    pub fn dead(seq: u32, gtid: i64, cpu: i32) -> Received {
        let gtid = gtid as u64;
        rcv(
            seq,
            Message::TaskDead(abi::GhostMsgPayloadTaskDead { gtid, cpu }),
        )
    }

    /// `TASK_DEPARTED` on `cpu`.
    pub fn departed(seq: u32, gtid: i64, cpu: i32) -> Received {
        let gtid = gtid as u64;
        let m = abi::GhostMsgPayloadTaskDeparted {
            gtid,
            cpu,
            ..Default::default()
        };
        rcv(seq, Message::TaskDeparted(m))
    }

    /// `TASK_AFFINITY_CHANGED`.
    pub fn affinity(seq: u32, gtid: i64) -> Received {
        let gtid = gtid as u64;
        let m = abi::GhostMsgPayloadTaskAffinityChanged { gtid };
        rcv(seq, Message::TaskAffinityChanged(m))
    }

    /// `CPU_BUSY` or `CPU_AVAILABLE` for `cpu`.
    pub fn cpu_busy(cpu: i32, busy: bool) -> Received {
        let msg = if busy {
            Message::CpuBusy(abi::GhostMsgPayloadCpuBusy { cpu })
        } else {
            Message::CpuAvailable(abi::GhostMsgPayloadCpuAvailable { cpu })
        };
        rcv(1, msg)
    }

    /// `TASK_PREEMPT` on `cpu` of a task that was latched there, not
    /// running (its latch was dropped or replaced).
    pub fn latch_dropped(seq: u32, gtid: i64, cpu: i32) -> Received {
        let gtid = gtid as u64;
        let m = abi::GhostMsgPayloadTaskPreempt {
            gtid,
            cpu,
            was_latched: 1,
            ..Default::default()
        };
        rcv(seq, Message::TaskPreempt(m))
    }

    /// The type and payload bytes of a message built by these helpers, as
    /// the kernel would write them into a ring.
    pub fn encode(r: &Received) -> (u16, Vec<u8>) {
        use crate::queue::testing::Wire;
        let b = match &r.msg {
            Message::TaskNew(m) => m.wire(),
            Message::TaskWakeup(m) => m.wire(),
            Message::TaskBlocked(m) => m.wire(),
            Message::TaskPreempt(m) => m.wire(),
            Message::TaskYield(m) => m.wire(),
            Message::TaskDead(m) => m.wire(),
            Message::TaskDeparted(m) => m.wire(),
            Message::TaskAffinityChanged(m) => m.wire(),
            Message::TaskPriorityChanged(m) => m.wire(),
            Message::CpuBusy(m) => m.wire(),
            Message::CpuAvailable(m) => m.wire(),
            other => unimplemented!("encode {other:?}"),
        };
        (r.msg.type_(), b)
    }

    /// The plan of one schedule step, as `(cpu, gtid)` pairs.
    pub fn plan_of<P: Policy>(s: &mut Scheduler<P>, cpu: usize, now: Instant) -> Vec<(usize, i64)> {
        let mut plan = Plan::new();
        s.schedule(&mut Recorder::default(), cpu, now, &mut plan);
        plan.entries().iter().map(|e| (e.cpu, e.gtid)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use crate::sw::testing::set;
    use std::collections::HashMap;

    /// A policy that records what it was told and picks what it is told.
    #[derive(Default)]
    struct Probe {
        seen: Vec<(&'static str, i64)>,
        /// Its run queue, in enqueue order.
        queue: Vec<i64>,
        /// Fixed answers to `pick`, by CPU; otherwise the first task of the
        /// queue the runtime takes.
        picks: HashMap<usize, i64>,
        home: Option<usize>,
        slice: Option<Duration>,
    }

    impl Probe {
        fn count(&self, what: &str, gtid: i64) -> usize {
            self.seen.iter().filter(|&&s| s == (what, gtid)).count()
        }
    }

    impl Policy for Probe {
        fn enqueue(&mut self, _: &mut Ctx<'_>, t: &Task) {
            self.seen.push(("enqueue", t.gtid));
            self.queue.push(t.gtid);
        }
        fn dequeue(&mut self, _: &mut Ctx<'_>, t: &Task) {
            self.seen.push(("dequeue", t.gtid));
            self.queue.retain(|&g| g != t.gtid);
        }
        fn pick(&mut self, ctx: &mut Ctx<'_>, cpu: usize) -> Option<i64> {
            if let Some(&g) = self.picks.get(&cpu) {
                return Some(g);
            }
            let q = &self.queue;
            q.iter()
                .copied()
                .find(|&g| ctx.can_run(g, cpu) && !ctx.still_on_cpu(g))
        }
        fn slice(&self) -> Option<Duration> {
            self.slice
        }
        fn task_new(&mut self, ctx: &mut Ctx<'_>, t: &Task, _: &abi::GhostMsgPayloadTaskNew) {
            self.seen.push(("new", t.gtid));
            if let Some(h) = self.home {
                ctx.set_home(t.gtid, h);
                ctx.wake(h);
            }
        }
        fn task_wakeup(&mut self, _: &mut Ctx<'_>, t: &Task, _: &abi::GhostMsgPayloadTaskWakeup) {
            self.seen.push(("wakeup", t.gtid));
        }
        fn task_dead(&mut self, _: &mut Ctx<'_>, t: &Task, _: &abi::GhostMsgPayloadTaskDead) {
            self.seen.push(("dead", t.gtid));
        }
        fn cpu_busy(&mut self, _: &mut Ctx<'_>, m: &abi::GhostMsgPayloadCpuBusy) {
            self.seen.push(("busy", i64::from(m.cpu)));
        }
    }

    fn central(cpus: &[usize]) -> Scheduler<Probe> {
        Scheduler::new(
            Probe::default(),
            &Model::Centralized { global_cpu: 0 },
            cpus,
            None,
        )
    }

    #[test]
    fn barriers_follow_messages_and_dead_tasks_are_freed() {
        let mut s = Scheduler::new(Probe::default(), &Model::PerCpu, &[1, 2], None);
        let mut k = Recorder::default();
        let now = Instant::now();
        s.deliver(&mut k, 1, &new(1, 10, true), now);
        s.deliver(&mut k, 1, &wakeup(2, 10), now);
        s.deliver(&mut k, 1, &wakeup(1, 11), now);
        s.deliver(&mut k, 1, &cpu_busy(2, true), now);
        assert_eq!(s.task(10).unwrap().seqnum, 2);
        assert_eq!(s.stats.unknown_task, 1);
        let mut plan = Plan::new();
        s.schedule(&mut k, 1, now, &mut plan);
        assert_eq!(plan.entries()[0].gtid, 10);
        assert_eq!(plan.entries()[0].task_barrier, 2);
        s.deliver(&mut k, 1, &dead(3, 10, 1), now);
        assert!(s.task(10).is_none());
        assert_eq!(k.freed, vec![GhostSwInfo { id: 0, index: 10 }]);
        assert_eq!(
            s.policy().seen,
            vec![
                ("new", 10),
                ("enqueue", 10),
                ("wakeup", 10),
                ("busy", 2),
                ("dead", 10),
                ("dequeue", 10)
            ]
        );
    }

    #[test]
    fn picks_are_checked() {
        let now = Instant::now();
        let mut k = Recorder::default();
        let mut s = Scheduler::new(Probe::default(), &Model::PerCpu, &[1, 2], None);
        k.allow(12, &[2]);
        for g in [10, 11, 12] {
            s.deliver(&mut k, 1, &new(1, g, true), now);
        }
        s.deliver(&mut k, 1, &new(1, 13, false), now);
        // Per-CPU: only the agent's own CPU is asked; unknown tasks, tasks
        // not queued and tasks whose affinity excludes the CPU are refused.
        for bad in [99, 13, 12] {
            s.policy_mut().picks = HashMap::from([(1, bad)]);
            assert_eq!(plan_of(&mut s, 1, now), vec![]);
        }
        s.policy_mut().picks = HashMap::from([(1, 10), (2, 11)]);
        assert_eq!(plan_of(&mut s, 1, now), vec![(1, 10)]);
        // An agent of a CPU that is not scheduled plans nothing.
        assert_eq!(plan_of(&mut s, 7, now), vec![]);
        assert_eq!(s.stats.plan_rejected, 3);
        // Centralized: any CPU but the global agent's; a task once.
        let mut s = central(&[0, 1, 2]);
        assert_eq!(s.cpus(), &[1, 2]);
        s.deliver(&mut k, 0, &new(1, 10, true), now);
        s.deliver(&mut k, 0, &new(1, 11, true), now);
        s.policy_mut().picks = HashMap::from([(1, 10), (2, 10)]);
        assert_eq!(plan_of(&mut s, 0, now), vec![(1, 10)]);
        assert_eq!(s.stats.plan_rejected, 1);
        s.policy_mut().picks.clear();
        assert_eq!(plan_of(&mut s, 0, now), vec![(1, 10), (2, 11)]);
    }

    #[test]
    fn homes_move_queues_and_stale_moves_are_retried() {
        let now = Instant::now();
        let mut k = Recorder {
            stale: vec![10],
            ..Default::default()
        };
        let mut s = Scheduler::new(Probe::default(), &Model::PerCpu, &[1, 2], None);
        s.policy_mut().home = Some(2);
        // TASK_NEW on CPU 1's queue; the move to CPU 2 is refused (a newer
        // message is on its way), then retried with that message's barrier.
        s.deliver(&mut k, 1, &new(1, 10, true), now);
        assert_eq!(s.task(10).unwrap().queue(), Some(1));
        assert_eq!(s.stats.assoc_stale, 1);
        s.deliver(&mut k, 1, &wakeup(2, 10), now);
        assert_eq!(k.assoc, vec![(10, 2, 2)]);
        assert_eq!(s.task(10).unwrap().queue(), Some(2));
        assert_eq!(s.task(10).unwrap().home, Some(2));
        // Pings: to CPU 2, not to the caller.
        let p = s.take_pings(1);
        assert_eq!(p.iter().collect::<Vec<_>>(), vec![2]);
        assert!(s.take_pings(1).is_empty());
        // A home outside the task CPUs is refused.
        s.policy_mut().home = Some(7);
        s.deliver(&mut k, 1, &new(1, 11, true), now);
        assert_eq!(s.task(11).unwrap().home, None);
        // The centralized model never moves queues.
        let mut s = central(&[0, 1, 2]);
        s.policy_mut().home = Some(2);
        let mut k = Recorder::default();
        s.deliver(&mut k, 0, &new(1, 10, true), now);
        assert!(k.assoc.is_empty());
    }

    #[test]
    fn affinity_is_read_at_task_new_and_affinity_changes() {
        let now = Instant::now();
        let mut k = Recorder::default();
        k.allow(10, &[2]);
        let mut s = Scheduler::new(Probe::default(), &Model::PerCpu, &[1, 2, 3], None);
        let allowed = |s: &Scheduler<Probe>, g| {
            let t = s.task(g).unwrap();
            [1, 2, 3].map(|c| t.allowed(c))
        };
        s.deliver(&mut k, 1, &new(1, 10, true), now);
        assert_eq!(allowed(&s, 10), [false, true, false]);
        // Only TASK_NEW and TASK_AFFINITY_CHANGED read it.
        s.deliver(&mut k, 1, &wakeup(2, 10), now);
        assert_eq!(k.affinity_reads, vec![10]);
        k.allow(10, &[1, 3]);
        assert_eq!(allowed(&s, 10), [false, true, false]);
        s.deliver(&mut k, 1, &affinity(3, 10), now);
        assert_eq!(allowed(&s, 10), [true, false, true]);
        assert_eq!(
            s.task(10).unwrap().affinity().iter().collect::<Vec<_>>(),
            [1, 3]
        );
        // The task is gone (ESRCH): the set it had stays, through a change
        // and a new announcement alike.
        k.affinity.clear();
        s.deliver(&mut k, 1, &affinity(4, 10), now);
        s.deliver(&mut k, 1, &new(5, 10, true), now);
        assert_eq!(allowed(&s, 10), [true, false, true]);
        assert_eq!(s.stats.affinity_unread, 2);
        // Never read: every CPU. Unknown tasks are not read at all.
        s.deliver(&mut k, 1, &new(1, 11, true), now);
        assert_eq!(allowed(&s, 11), [true, true, true]);
        assert_eq!(s.task(11).unwrap().affinity(), &CpuMask::full());
        s.deliver(&mut k, 1, &affinity(1, 12), now);
        assert_eq!(k.affinity_reads, vec![10, 10, 10, 10, 11]);
        assert_eq!(s.stats.unknown_task, 1);
    }

    #[test]
    fn malformed_messages_are_counted_not_delivered() {
        let mut s = Scheduler::new(Probe::default(), &Model::PerCpu, &[1], None);
        let r = Received {
            seqnum: 1,
            msg: Message::Malformed {
                type_: abi::MSG_TASK_NEW,
                len: 3,
            },
        };
        s.deliver(&mut Recorder::default(), 1, &r, Instant::now());
        assert_eq!(s.stats.malformed, 1);
        assert!(s.policy().seen.is_empty());
    }

    #[test]
    fn a_task_waits_once_and_leaves_the_queue_when_it_runs() {
        let now = Instant::now();
        let mut k = Recorder::default();
        let mut s = Scheduler::new(Probe::default(), &Model::PerCpu, &[1], None);
        s.deliver(&mut k, 1, &new(1, 10, false), now);
        assert_eq!(s.task(10).unwrap().state(), TaskState::Blocked);
        // Woken twice (a stray wakeup): enqueued once.
        s.deliver(&mut k, 1, &wakeup(2, 10), now);
        s.deliver(&mut k, 1, &wakeup(3, 10), now);
        assert_eq!(s.policy().count("enqueue", 10), 1);
        assert_eq!(s.task(10).unwrap().state(), TaskState::Queued);
        // A stale commit leaves it queued; a complete one dequeues it and
        // makes it the CPU's current task.
        s.committed(&mut k, 1, 1, 10, TxnResult::TargetStale, now);
        assert_eq!(s.policy().queue, vec![10]);
        s.committed(&mut k, 1, 1, 10, TxnResult::Complete, now);
        assert_eq!(s.policy().queue, vec![]);
        assert_eq!(s.task(10).unwrap().state(), TaskState::OnCpu(1));
        assert_eq!(s.current(1), Some(10));
        // Yield: back in the queue, the CPU free.
        s.deliver(&mut k, 1, &yielded(4, 10, 1), now);
        assert_eq!((s.policy().queue.clone(), s.current(1)), (vec![10], None));
        // Blocked while queued: dequeued; a commit that finds it blocked
        // does the same, once.
        s.deliver(&mut k, 1, &blocked(5, 10, 1), now);
        s.committed(&mut k, 1, 1, 10, TxnResult::TargetNotRunnable, now);
        assert_eq!(s.policy().count("dequeue", 10), 2);
        assert_eq!(s.policy().count("enqueue", 10), 2);
    }

    #[test]
    fn a_cpu_with_a_latched_task_is_not_picked_for() {
        let now = Instant::now();
        let mut k = Recorder::default();
        let mut s = Scheduler::new(Probe::default(), &Model::PerCpu, &[1], None);
        s.deliver(&mut k, 1, &new(1, 10, true), now);
        s.deliver(&mut k, 1, &new(1, 11, true), now);
        assert_eq!(plan_of(&mut s, 1, now), vec![(1, 10)]);
        s.committed(&mut k, 1, 1, 10, TxnResult::Complete, now);
        // 10 is latched (it runs when the agent gives the CPU away): the
        // agent, woken by a message, commits nothing, or it would replace
        // the latch.
        s.deliver(&mut k, 1, &wakeup(2, 11), now);
        assert_eq!(plan_of(&mut s, 1, now), vec![]);
        // The kernel drops the latch (the agent woke before 10 ran):
        // TASK_PREEMPT with `was_latched`. 10 waits again, once, behind
        // 11, and the CPU is picked for.
        s.deliver(&mut k, 1, &latch_dropped(2, 10, 1), now);
        assert_eq!(s.current(1), None);
        assert_eq!(s.policy().queue, vec![11, 10]);
        assert_eq!(s.policy().count("enqueue", 10), 2);
        assert_eq!(plan_of(&mut s, 1, now), vec![(1, 11)]);
    }

    #[test]
    fn a_task_picked_by_one_agent_is_not_offered_to_another_until_committed() {
        // Per-CPU model: agent 1's local commit returns only once the agent
        // is woken again, and the task stays queued until then. Agent 2
        // (a policy stealing work) must not get it meanwhile.
        let now = Instant::now();
        let mut k = Recorder::default();
        let mut s = Scheduler::new(Probe::default(), &Model::PerCpu, &[1, 2], None);
        s.deliver(&mut k, 1, &new(1, 10, true), now);
        assert_eq!(plan_of(&mut s, 1, now), vec![(1, 10)]);
        assert_eq!(plan_of(&mut s, 2, now), vec![]);
        s.policy_mut().picks.insert(2, 10);
        assert_eq!(plan_of(&mut s, 2, now), vec![]);
        assert_eq!(s.stats.plan_rejected, 1);
        // A failed commit releases it; agent 1 planning again too.
        s.committed(&mut k, 1, 1, 10, TxnResult::TargetStale, now);
        assert_eq!(plan_of(&mut s, 2, now), vec![(2, 10)]);
        assert_eq!(plan_of(&mut s, 1, now), vec![]);
        assert_eq!(plan_of(&mut s, 2, now), vec![(2, 10)]);
        s.policy_mut().picks.clear();
        assert_eq!(plan_of(&mut s, 1, now), vec![]);
        assert_eq!(plan_of(&mut s, 2, now), vec![(2, 10)]);
    }

    #[test]
    fn free_cpus_are_filled_before_a_slice_ends() {
        let slice = Duration::from_micros(50);
        let now = Instant::now();
        let mut k = Recorder::default();
        let mut s = central(&[0, 1, 2]);
        s.policy_mut().slice = Some(slice);
        s.deliver(&mut k, 0, &new(1, 10, true), now);
        assert_eq!(plan_of(&mut s, 0, now), vec![(1, 10)]);
        s.committed(&mut k, 0, 1, 10, TxnResult::Complete, now);
        // 11 waits; CPU 1's slice is over and CPU 2 is free: CPU 2 first,
        // and 10 keeps its CPU.
        s.deliver(&mut k, 0, &new(1, 11, true), now);
        let later = now + slice;
        assert_eq!(plan_of(&mut s, 0, later), vec![(2, 11)]);
        s.committed(&mut k, 0, 2, 11, TxnResult::Complete, later);
        // A third task takes the CPU whose slice is over.
        s.deliver(&mut k, 0, &new(1, 12, true), later);
        assert_eq!(plan_of(&mut s, 0, later), vec![(1, 12)]);
    }

    #[test]
    fn a_replaced_latch_requeues_the_replaced_task_exactly_once() {
        let slice = Duration::from_micros(50);
        let now = Instant::now();
        let mut k = Recorder::default();
        let mut s = central(&[0, 1]);
        s.policy_mut().slice = Some(slice);
        s.deliver(&mut k, 0, &new(1, 10, true), now);
        s.deliver(&mut k, 0, &new(1, 11, true), now);
        assert_eq!(plan_of(&mut s, 0, now), vec![(1, 10)]);
        s.committed(&mut k, 0, 1, 10, TxnResult::Complete, now);
        // Its slice is over with 11 waiting: 11 replaces it (the latch, if
        // 10 has not run yet). 10 stays committed to CPU 1 until the
        // kernel reports it preempted.
        let later = now + slice;
        assert_eq!(plan_of(&mut s, 0, later), vec![(1, 11)]);
        s.committed(&mut k, 0, 1, 11, TxnResult::Complete, later);
        assert_eq!(s.current(1), Some(11));
        assert_eq!(s.task(10).unwrap().state(), TaskState::OnCpu(1));
        assert_eq!(s.policy().queue, vec![]);
        // Its TASK_PREEMPT (`was_latched`) requeues it once and leaves 11
        // the current task; a second report changes nothing.
        s.deliver(&mut k, 0, &latch_dropped(2, 10, 1), later);
        s.deliver(&mut k, 0, &preempt(3, 10, 1), later);
        assert_eq!(s.policy().count("enqueue", 10), 2);
        assert_eq!(s.policy().queue, vec![10]);
        assert_eq!(s.current(1), Some(11));
        // The replaced task's commit outcome arriving late does not clear
        // the new current task either.
        s.deliver(&mut k, 0, &blocked(4, 10, 1), later);
        assert_eq!(s.current(1), Some(11));
    }

    #[test]
    fn takeover_announcements_start_over_without_duplicates() {
        let now = Instant::now();
        let mut k = Recorder::default();
        let mut s = central(&[0, 1, 2]);
        for g in [10, 11] {
            s.deliver(&mut k, 0, &new(1, g, true), now);
        }
        assert_eq!(plan_of(&mut s, 0, now), vec![(1, 10), (2, 11)]);
        s.committed(&mut k, 0, 1, 10, TxnResult::Complete, now);
        // Messages were lost: `discover tasks` announces both again. 10
        // (running on CPU 1) and 11 (queued) start over: dequeued where
        // they were, enqueued once, CPU 1 free.
        s.deliver(&mut k, 0, &new(5, 10, true), now);
        s.deliver(&mut k, 0, &new(5, 11, true), now);
        assert_eq!(s.current(1), None);
        assert_eq!(s.policy().queue, vec![10, 11]);
        assert_eq!(s.policy().count("dequeue", 11), 1);
        assert_eq!(s.task(10).unwrap().seqnum, 5);
        // 10 was still running: its TASK_PREEMPT (when the new plan takes
        // its CPU) finds it queued and changes nothing.
        assert_eq!(plan_of(&mut s, 0, now), vec![(1, 10), (2, 11)]);
        s.deliver(&mut k, 0, &preempt(6, 10, 1), now);
        assert_eq!(s.policy().count("enqueue", 10), 2);
        assert_eq!(s.policy().queue, vec![10, 11]);
        // Announced not runnable: out of the queue, nothing to run.
        s.deliver(&mut k, 0, &new(7, 11, false), now);
        assert_eq!(s.policy().queue, vec![10]);
        assert_eq!(s.task(11).unwrap().state(), TaskState::Blocked);
    }

    #[test]
    fn pinned_tasks_go_only_to_their_cpu_and_nothing_spins() {
        let now = Instant::now();
        let mut k = Recorder::default();
        let mut s = central(&[0, 1, 2, 3]);
        // A pipe across two CPUs: 10 pinned to CPU 3, 11 to CPU 2, and 12
        // holding CPU 3.
        k.allow(10, &[3]);
        k.allow(11, &[2]);
        k.allow(12, &[3]);
        s.deliver(&mut k, 0, &new(1, 12, true), now);
        assert_eq!(plan_of(&mut s, 0, now), vec![(3, 12)]);
        s.committed(&mut k, 0, 3, 12, TxnResult::Complete, now);
        s.deliver(&mut k, 0, &new(1, 10, true), now);
        // CPUs 1 and 2 are free, CPU 3 is not: 10 waits for CPU 3, and the
        // agent waits for a message (no slice, nothing frees by itself).
        let mut plan = Plan::new();
        s.schedule(&mut k, 0, now, &mut plan);
        assert!(plan.is_empty() && !plan.polls());
        // A policy that offers it elsewhere is refused.
        s.policy_mut().picks = HashMap::from([(2, 10)]);
        assert_eq!(plan_of(&mut s, 0, now), vec![]);
        assert_eq!(s.stats.plan_rejected, 1);
        s.policy_mut().picks.clear();
        // CPU 3 frees: 10 runs there; 11 gets CPU 2, never CPU 1.
        s.deliver(&mut k, 0, &blocked(2, 12, 3), now);
        s.deliver(&mut k, 0, &new(1, 11, true), now);
        assert_eq!(plan_of(&mut s, 0, now), vec![(2, 11), (3, 10)]);
        // CPU 3 is taken by another class: the refused commit backs off
        // CPU 3 only; 10 is not offered to a free CPU meanwhile, and the
        // agent looks again when the back-off ends.
        s.committed(&mut k, 0, 3, 10, TxnResult::CpuUnavail, now);
        s.committed(&mut k, 0, 2, 11, TxnResult::Complete, now);
        let mut plan = Plan::new();
        s.schedule(&mut k, 0, now, &mut plan);
        assert!(plan.is_empty() && plan.polls());
        let later = now + Duration::from_millis(2);
        assert_eq!(plan_of(&mut s, 0, later), vec![(3, 10)]);
        // CPU_BUSY: no polling until CPU_AVAILABLE (its message wakes us).
        s.deliver(&mut k, 0, &cpu_busy(3, true), later);
        s.schedule(&mut k, 0, later, &mut plan);
        assert!(plan.is_empty() && !plan.polls());
        s.deliver(&mut k, 0, &cpu_busy(3, false), later);
        assert_eq!(plan_of(&mut s, 0, later), vec![(3, 10)]);
    }

    /// A centralized scheduler (global agent on CPU 0, tasks on CPU 1)
    /// with a status-word table (word `i` is task `i`'s), to which task 10,
    /// allowed on `allowed` (all CPUs if `None`), was announced runnable
    /// while its word still says it is on a CPU.
    fn switching_task(
        allowed: Option<&[usize]>,
    ) -> (Arc<SwTable>, Scheduler<Probe>, Recorder, Instant) {
        let sw = Arc::new(SwTable::new(vec![crate::sw::testing::region(0, 4096)]));
        let mut s = Scheduler::new(
            Probe::default(),
            &Model::Centralized { global_cpu: 0 },
            &[0, 1],
            Some(sw.clone()),
        );
        let (now, mut k) = (Instant::now(), Recorder::default());
        set(
            &sw.regions()[0],
            10,
            10,
            1,
            abi::GHOST_SW_F_INUSE | abi::GHOST_SW_TASK_ONCPU,
        );
        if let Some(cpus) = allowed {
            k.allow(10, cpus);
        }
        s.deliver(&mut k, 0, &new(1, 10, true), now);
        (sw, s, k, now)
    }

    #[test]
    fn a_task_finishing_its_switch_off_a_cpu_is_polled_for() {
        let (sw, mut s, mut k, now) = switching_task(None);
        let reg = &sw.regions()[0];
        // Still on a CPU (it entered ghost running): nothing tells the
        // agent when it is off, so it looks again, however long it takes.
        let mut plan = Plan::new();
        for later in [now, now + Duration::from_secs(1)] {
            s.schedule(&mut k, 0, later, &mut plan);
            assert!(plan.is_empty() && plan.polls());
        }
        set(reg, 10, 10, 1, abi::GHOST_SW_F_INUSE);
        s.schedule(&mut k, 0, now, &mut plan);
        assert_eq!(plan.entries().len(), 1);
        assert!(!plan.polls());
    }

    #[test]
    fn invalid_cpu_takes_the_cpu_out_until_the_affinity_is_read_again() {
        let now = Instant::now();
        let mut k = Recorder::default();
        let mut s = central(&[0, 1, 2]);
        s.deliver(&mut k, 0, &new(1, 10, true), now);
        assert_eq!(plan_of(&mut s, 0, now), vec![(1, 10)]);
        s.committed(&mut k, 0, 1, 10, TxnResult::InvalidCpu, now);
        assert!(!s.task(10).unwrap().allowed(1));
        assert_eq!(plan_of(&mut s, 0, now), vec![(2, 10)]);
        s.committed(&mut k, 0, 2, 10, TxnResult::InvalidCpu, now);
        // No CPU left: parked until TASK_AFFINITY_CHANGED.
        assert_eq!(s.waiting(), vec![10]);
        assert_eq!(plan_of(&mut s, 0, now), vec![]);
        k.allow(10, &[1]);
        s.deliver(&mut k, 0, &affinity(2, 10), now);
        assert_eq!(s.waiting(), vec![]);
        assert_eq!(plan_of(&mut s, 0, now), vec![(1, 10)]);
    }

    #[test]
    fn the_global_agent_lends_its_cpu_to_a_task_that_may_run_only_there() {
        let now = Instant::now();
        let mut k = Recorder::default();
        let mut s = central(&[0, 1, 2]);
        // Pinned to the global agent's CPU (cyclictest pins a thread to
        // each CPU of its affinity), and one that may run anywhere.
        k.allow(10, &[0]);
        s.deliver(&mut k, 0, &new(1, 10, true), now);
        assert_eq!(s.waiting(), vec![10]);
        let mut plan = Plan::new();
        s.schedule(&mut k, 0, now, &mut plan);
        assert!(plan.is_empty() && !plan.polls());
        assert!(s.lendable(0) && !s.lendable(1));
        assert!(s.lend(0, &mut plan));
        let e = plan.entries()[0];
        assert_eq!((e.cpu, e.gtid, e.task_barrier), (0, 10, 1));
        s.committed(&mut k, 0, 0, 10, TxnResult::Complete, now);
        assert_eq!(s.task(10).unwrap().state, TaskState::OnCpu(0));
        assert_eq!(s.waiting(), vec![]);
        // The agent is back (a message): the task waits again, and the
        // CPUs scheduled go first.
        s.deliver(&mut k, 0, &preempt(2, 10, 0), now);
        s.deliver(&mut k, 0, &new(1, 11, true), now);
        assert_eq!(s.waiting(), vec![10]);
        s.schedule(&mut k, 0, now, &mut plan);
        assert_eq!(plan.entries().len(), 1);
        assert!(!s.lend(0, &mut plan), "lends only with an empty plan");
        s.committed(&mut k, 0, 1, 11, TxnResult::Complete, now);
        s.schedule(&mut k, 0, now, &mut plan);
        assert!(s.lend(0, &mut plan));
        assert_eq!(plan.entries()[0].task_barrier, 2);
        // Per-CPU agents never lend (their CPU is scheduled).
        let mut p = Scheduler::new(Probe::default(), &Model::PerCpu, &[1], None);
        k.allow(12, &[0]);
        p.deliver(&mut k, 1, &new(1, 12, true), now);
        plan.clear();
        assert!(!p.lend(1, &mut plan) && plan.is_empty());
    }

    #[test]
    fn a_lendable_task_still_switching_off_a_cpu_is_polled_for() {
        let (sw, mut s, mut k, now) = switching_task(Some(&[0]));
        let reg = &sw.regions()[0];
        let mut plan = Plan::new();
        s.schedule(&mut k, 0, now, &mut plan);
        assert!(s.lend(0, &mut plan));
        assert!(plan.is_empty() && plan.polls());
        // A message about it is unread: its message wakes the agent.
        set(reg, 10, 10, 2, abi::GHOST_SW_F_INUSE);
        s.schedule(&mut k, 0, now, &mut plan);
        assert!(!s.lend(0, &mut plan) && plan.is_empty() && !plan.polls());
        set(reg, 10, 10, 1, abi::GHOST_SW_F_INUSE);
        s.schedule(&mut k, 0, now, &mut plan);
        assert!(s.lend(0, &mut plan));
        assert_eq!(plan.entries().len(), 1);
    }
}
