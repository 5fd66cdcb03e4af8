//! The policy interface: what a scheduling policy implements, and what the
//! agent runtime gives it. This is the guide to writing a policy.
//!
//! # What the runtime does
//!
//! The runtime ([`crate::scheduler`], driven by [`crate::agent`]) reads the
//! kernel's messages, keeps the state of every task and every CPU, and
//! turns the policy's choices into transactions. It owns *what runs
//! where*:
//!
//! - each task's state ([`TaskState`]): blocked, waiting for a CPU in the
//!   policy's run queue, parked (runnable, but its affinity allows none of
//!   the CPUs scheduled), or committed to a CPU;
//! - each CPU's *current* task (the one committed last, latched or
//!   running, until a message says it left) and when it got the CPU;
//! - the barrier every transaction quotes (the `seqnum` of the task's last
//!   message), the task's status word (freed when it dies or departs) and
//!   its allowed CPUs (`sched_getaffinity` at `TASK_NEW` and every
//!   `TASK_AFFINITY_CHANGED`);
//! - in the per-CPU model, which agent's queue gets a task's messages (the
//!   home the policy chose, [`Ctx::set_home`]).
//!
//! # What a policy does
//!
//! It keeps run queues. The runtime calls:
//!
//! - [`Policy::enqueue`] when a task starts waiting for a CPU (it is new
//!   and runnable, woke up, was preempted, yielded, its latch was dropped
//!   or replaced, it was announced again): exactly once per wait;
//! - [`Policy::dequeue`] when it stops waiting (it got a CPU, blocked,
//!   died, left, or lost every CPU it may use): exactly once per wait;
//! - [`Policy::pick`] for each CPU it may fill: which queued task runs
//!   there next, or none.
//!
//! A task stays queued until the commit that runs it completes (a stale
//! barrier leaves it where it was: the next round reads the news first).
//!
//! The runtime asks [`Policy::pick`] only for a CPU that has no current
//! task, so a commit never replaces the latch of a task that has not run
//! yet; in the centralized model a CPU whose current task has run a whole
//! [`Policy::slice`] is asked too (others waiting; after every free CPU),
//! and a CPU that another class holds is left alone. It refuses a pick of an unknown task, of one
//! not queued, of one picked for another CPU this round, and of one whose
//! affinity excludes the CPU (counted as "plan entries dropped").
//!
//! Everything else is optional: one callback per message type
//! (`task_new`, `task_wakeup`, ..., `cpu_tick`, ...; called before the
//! runtime's own enqueue/dequeue for that message), the outcome of each
//! commit ([`Policy::committed`]) and a text view of the run queues
//! ([`Policy::dump`]).
//!
//! # Rules
//!
//! Every callback runs with the runtime's scheduler lock held and on the
//! critical path of scheduling: it must not block, sleep or do I/O, should
//! allocate little and must not panic (treat a gtid or a CPU you do not
//! know as something to ignore). Callbacks see the CPU of the agent
//! running them in [`Ctx::cpu`]. The kernel does not check affinity at
//! commit (as in ghOSt); the runtime refuses a pick its last reading of the
//! task's affinity excludes, and parks a runnable task that may use none of
//! the CPUs scheduled until its affinity changes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ghost_abi as abi;
use ghost_abi::GhostSwInfo;

use crate::gtid::GtidMap;
use crate::scheduler::CpuState;
use crate::sw::{StatusWord, SwTable};
use crate::txn::{CpuMask, TxnResult};

/// Where a task is, as the runtime tracks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    /// Not runnable (blocked, or announced not runnable).
    Blocked,
    /// Runnable, waiting for a CPU: in the policy's run queue.
    Queued,
    /// Runnable, but its affinity allows none of the CPUs scheduled: held
    /// by the runtime (not in any run queue) until it changes.
    Parked,
    /// Committed to this CPU (latched or running).
    OnCpu(usize),
}

/// A task of the enclave, as the runtime tracks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Task {
    /// Its global task id.
    pub gtid: i64,
    /// The `seqnum` of its last message: the barrier a transaction for it
    /// quotes.
    pub seqnum: u32,
    /// Its status word.
    pub sw: GhostSwInfo,
    /// The CPU the policy gave it ([`Ctx::set_home`]), if any.
    pub home: Option<usize>,
    /// Per-CPU model: the CPU whose queue gets its messages now.
    pub(crate) queue: Option<usize>,
    /// The CPUs its affinity allows, as last read (every CPU if it could
    /// never be read).
    pub(crate) affinity: CpuMask,
    /// Where it is.
    pub(crate) state: TaskState,
}

impl Task {
    /// The CPU whose agent queue receives this task's messages (per-CPU
    /// model), if known.
    pub fn queue(&self) -> Option<usize> {
        self.queue
    }

    /// Whether the task's affinity allows `cpu`.
    pub fn allowed(&self, cpu: usize) -> bool {
        self.affinity.contains(cpu)
    }

    /// The CPUs the task's affinity allows, as the runtime last read them
    /// (`sched_getaffinity` at `TASK_NEW` and `TASK_AFFINITY_CHANGED`; a
    /// failed read, the task being gone, keeps the set it had, or every
    /// CPU; a CPU an older kernel refused with `INVALID_CPU` is taken out
    /// until the next read).
    pub fn affinity(&self) -> &CpuMask {
        &self.affinity
    }

    /// Where the task is.
    pub fn state(&self) -> TaskState {
        self.state
    }
}

/// What callbacks asked the runtime for, and what the current pick step
/// saw.
#[derive(Debug, Default)]
pub(crate) struct Requests {
    /// Tasks given a new home (their queue may have to move).
    pub homes: Vec<i64>,
    /// Homes refused (not a CPU scheduled, unknown task).
    pub homes_refused: u64,
    /// Agents to ping.
    pub pings: CpuMask,
    /// Tasks picked this round.
    pub picked: Vec<i64>,
    /// A pick passed over a task still on a CPU.
    pub skipped_on_cpu: bool,
    /// Tasks picked by an agent whose commit has not been reported yet, and
    /// that agent's CPU: no other agent may pick them meanwhile.
    pub inflight: GtidMap<usize>,
}

impl Requests {
    /// Whether `gtid` is picked this round, or by another agent than
    /// `agent` and not yet committed.
    pub fn taken(&self, gtid: i64, agent: usize) -> bool {
        self.picked.contains(&gtid) || self.inflight.get(&gtid).is_some_and(|&a| a != agent)
    }
}

/// What a policy callback can see and ask for.
pub struct Ctx<'a> {
    pub(crate) cpu: usize,
    pub(crate) now: Instant,
    pub(crate) cpus: &'a [usize],
    pub(crate) on: &'a BTreeMap<usize, CpuState>,
    pub(crate) tasks: &'a mut GtidMap<Task>,
    pub(crate) sw: Option<&'a SwTable>,
    pub(crate) req: &'a mut Requests,
}

impl Ctx<'_> {
    /// The CPU of the agent running this callback.
    pub fn cpu(&self) -> usize {
        self.cpu
    }

    /// The time the runtime took when it started this round.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The CPUs tasks run on: every agent's CPU in the per-CPU model; every
    /// CPU but the global agent's in the centralized model. Sorted.
    pub fn cpus(&self) -> &[usize] {
        self.cpus
    }

    /// The task `gtid`, if the runtime knows it.
    pub fn task(&self, gtid: i64) -> Option<&Task> {
        self.tasks.get(&gtid)
    }

    /// Whether task `gtid` may run on `cpu` ([`Task::allowed`]); false for
    /// a task the runtime does not know.
    pub fn allowed(&self, gtid: i64, cpu: usize) -> bool {
        self.tasks.get(&gtid).is_some_and(|t| t.allowed(cpu))
    }

    /// The CPUs of [`Ctx::cpus`] that `task` may run on, in order (never
    /// none for a task given to [`Policy::enqueue`]).
    pub fn allowed_cpus<'t>(&'t self, task: &'t Task) -> impl Iterator<Item = usize> + 't {
        self.cpus.iter().copied().filter(|&c| task.allowed(c))
    }

    /// The number of tasks the runtime knows.
    pub fn nr_tasks(&self) -> usize {
        self.tasks.len()
    }

    /// Whether the runtime would take `gtid` as the pick for `cpu` now: a
    /// queued task whose affinity allows `cpu`, not picked for another CPU
    /// this round, nor by another agent whose commit is not over.
    pub fn can_run(&self, gtid: i64, cpu: usize) -> bool {
        self.tasks
            .get(&gtid)
            .is_some_and(|t| t.state == TaskState::Queued && t.allowed(cpu))
            && !self.req.taken(gtid, self.cpu)
    }

    /// The current task of `cpu` (one of [`Ctx::cpus`]): the one committed
    /// there last, latched or running, until a message says it left.
    /// `None` for a free CPU. In the per-CPU model a task becomes current
    /// when its agent's local commit returns, once the agent is woken.
    pub fn current(&self, cpu: usize) -> Option<i64> {
        self.on.get(&cpu).and_then(|s| s.current)
    }

    /// How long the current task of `cpu` has had it (since its commit).
    pub fn current_for(&self, cpu: usize) -> Option<Duration> {
        let s = self.on.get(&cpu)?;
        s.current?;
        Some(self.now.saturating_duration_since(s.since?))
    }

    /// Whether task `gtid`'s status word says it is still on a CPU (it left
    /// it a moment ago and the switch is not over: a commit elsewhere would
    /// fail with `TARGET_ON_CPU`). A `true` tells the centralized runtime
    /// to look again soon instead of waiting for a message.
    pub fn still_on_cpu(&mut self, gtid: i64) -> bool {
        let on = self.status_word(gtid).is_some_and(|sw| sw.on_cpu());
        self.req.skipped_on_cpu |= on;
        on
    }

    /// The status word of task `gtid`, if mapped.
    pub fn status_word(&self, gtid: i64) -> Option<StatusWord<'_>> {
        let t = self.tasks.get(&gtid)?;
        self.sw?.get(t.sw)
    }

    /// Makes `cpu` the task's home ([`Task::home`] from now on). In the
    /// per-CPU model the runtime then sends the task's messages to the
    /// queue of `cpu`'s agent (`GHOST_IOC_ASSOC_QUEUE`, retried while the
    /// task's barrier moves). `cpu` must be one of [`Ctx::cpus`].
    pub fn set_home(&mut self, gtid: i64, cpu: usize) {
        match self.tasks.get_mut(&gtid) {
            Some(t) if self.cpus.contains(&cpu) => {
                t.home = Some(cpu);
                self.req.homes.push(gtid);
            }
            _ => self.req.homes_refused += 1,
        }
    }

    /// Pings the agent of `cpu` once the callbacks of this round are done,
    /// so that it picks (per-CPU model: after giving it work). Pinging the
    /// calling agent's own CPU does nothing.
    pub fn wake(&mut self, cpu: usize) {
        if cpu != self.cpu {
            self.req.pings.set(cpu);
        }
    }
}

/// A scheduling policy: run queues. See the [module documentation](self)
/// for what the runtime does around it.
///
/// Three methods are required: [`Policy::enqueue`], [`Policy::dequeue`]
/// and [`Policy::pick`]. Every other one has a default.
#[allow(unused_variables)]
pub trait Policy: Send {
    /// `task` waits for a CPU: put it in a run queue. Its affinity allows
    /// at least one of [`Ctx::cpus`]; in the per-CPU model, give it a home
    /// it allows ([`Ctx::set_home`]) and queue it there (and
    /// [`Ctx::wake`] that CPU's agent if it is not the caller's). Called
    /// once per wait: the runtime never enqueues a queued task.
    fn enqueue(&mut self, ctx: &mut Ctx<'_>, task: &Task);

    /// `task` no longer waits (it got a CPU, blocked, died, left, lost
    /// every CPU it may use, or is announced again): take it out of your
    /// run queues. Called only for a task you were given by
    /// [`Policy::enqueue`] and not dequeued since.
    fn dequeue(&mut self, ctx: &mut Ctx<'_>, task: &Task);

    /// The queued task `cpu` runs next, or `None` (the CPU stays as it
    /// is). Leave the task in your run queue: the runtime dequeues it once
    /// its commit completes. [`Ctx::can_run`] says what the runtime takes.
    /// A per-CPU agent is asked for its own CPU ([`Ctx::cpu`]); the global
    /// agent of the centralized model for each CPU it may fill, in order.
    fn pick(&mut self, ctx: &mut Ctx<'_>, cpu: usize) -> Option<i64>;

    /// A queued task's allowed CPUs changed and still include one of
    /// [`Ctx::cpus`]: make sure it is queued where it may run. The default
    /// dequeues and enqueues it (to the back).
    fn affinity_changed(&mut self, ctx: &mut Ctx<'_>, task: &Task) {
        self.dequeue(ctx, task);
        self.enqueue(ctx, task);
    }

    /// The time slice (centralized model): once a CPU's current task has
    /// run this long, [`Policy::pick`] is asked for that CPU again, and a
    /// task it picks replaces the current one (which comes back through
    /// [`Policy::enqueue`] when the kernel reports it preempted). `None`
    /// (the default): a task runs until it leaves its CPU.
    fn slice(&self) -> Option<Duration> {
        None
    }

    /// `MSG_TASK_NEW`: a task entered the enclave, or was announced again
    /// (`msg.runnable`: whether it can run now). `task` has its allowed CPUs
    /// ([`Task::allowed`]). Called before the runtime enqueues a runnable
    /// one: the place to give it a home ([`Ctx::set_home`]).
    fn task_new(&mut self, ctx: &mut Ctx<'_>, task: &Task, msg: &abi::GhostMsgPayloadTaskNew) {}
    /// `MSG_TASK_WAKEUP`: the task became runnable.
    fn task_wakeup(
        &mut self,
        ctx: &mut Ctx<'_>,
        task: &Task,
        msg: &abi::GhostMsgPayloadTaskWakeup,
    ) {
    }
    /// `MSG_TASK_BLOCKED`: the task blocked.
    fn task_blocked(
        &mut self,
        ctx: &mut Ctx<'_>,
        task: &Task,
        msg: &abi::GhostMsgPayloadTaskBlocked,
    ) {
    }
    /// `MSG_TASK_PREEMPT`: the task lost its CPU (it is still runnable).
    fn task_preempt(
        &mut self,
        ctx: &mut Ctx<'_>,
        task: &Task,
        msg: &abi::GhostMsgPayloadTaskPreempt,
    ) {
    }
    /// `MSG_TASK_YIELD`: the task yielded (it is still runnable).
    fn task_yield(&mut self, ctx: &mut Ctx<'_>, task: &Task, msg: &abi::GhostMsgPayloadTaskYield) {}
    /// `MSG_TASK_DEAD`: the task exited. The runtime dequeues it (if it
    /// was queued) and forgets it afterwards.
    fn task_dead(&mut self, ctx: &mut Ctx<'_>, task: &Task, msg: &abi::GhostMsgPayloadTaskDead) {}
    /// `MSG_TASK_DEPARTED`: the task left ghost. The runtime forgets it
    /// afterwards.
    fn task_departed(
        &mut self,
        ctx: &mut Ctx<'_>,
        task: &Task,
        msg: &abi::GhostMsgPayloadTaskDeparted,
    ) {
    }
    /// `MSG_TASK_SWITCHTO`: the task switched to another directly.
    fn task_switchto(
        &mut self,
        ctx: &mut Ctx<'_>,
        task: &Task,
        msg: &abi::GhostMsgPayloadTaskSwitchto,
    ) {
    }
    /// `MSG_TASK_AFFINITY_CHANGED`: the task's allowed CPUs changed;
    /// `task` has the new set ([`Task::allowed`]). The runtime then calls
    /// [`Policy::affinity_changed`] for a queued task.
    fn task_affinity_changed(
        &mut self,
        ctx: &mut Ctx<'_>,
        task: &Task,
        msg: &abi::GhostMsgPayloadTaskAffinityChanged,
    ) {
    }
    /// `MSG_TASK_PRIORITY_CHANGED`: the task's nice value changed.
    fn task_priority_changed(
        &mut self,
        ctx: &mut Ctx<'_>,
        task: &Task,
        msg: &abi::GhostMsgPayloadTaskPriorityChanged,
    ) {
    }
    /// `MSG_TASK_ON_CPU`: the task got its CPU (commits with
    /// `SEND_TASK_ON_CPU`).
    fn task_on_cpu(&mut self, ctx: &mut Ctx<'_>, task: &Task, msg: &abi::GhostMsgPayloadTaskOnCpu) {
    }
    /// `MSG_TASK_LATCH_FAILURE`: the committed task could not run.
    fn task_latch_failure(
        &mut self,
        ctx: &mut Ctx<'_>,
        task: &Task,
        msg: &abi::GhostMsgPayloadTaskLatchFailure,
    ) {
    }
    /// `MSG_CPU_TICK`: a tick (with `deliver_ticks`).
    fn cpu_tick(&mut self, ctx: &mut Ctx<'_>, msg: &abi::GhostMsgPayloadCpuTick) {}
    /// `MSG_CPU_TIMER_EXPIRED`: a ghost timerfd expired.
    fn cpu_timer_expired(&mut self, ctx: &mut Ctx<'_>, msg: &abi::GhostMsgPayloadTimer) {}
    /// `MSG_CPU_NOT_IDLE`: a CPU committed idle with `NEED_CPU_NOT_IDLE`
    /// got a task of another class.
    fn cpu_not_idle(&mut self, ctx: &mut Ctx<'_>, msg: &abi::GhostMsgPayloadCpuNotIdle) {}
    /// `MSG_CPU_AVAILABLE`: no higher-class work on the CPU any more.
    fn cpu_available(&mut self, ctx: &mut Ctx<'_>, msg: &abi::GhostMsgPayloadCpuAvailable) {}
    /// `MSG_CPU_BUSY`: a higher class took the CPU.
    fn cpu_busy(&mut self, ctx: &mut Ctx<'_>, msg: &abi::GhostMsgPayloadCpuBusy) {}
    /// `MSG_CPU_AGENT_BLOCKED`: the CPU's agent blocked.
    fn cpu_agent_blocked(&mut self, ctx: &mut Ctx<'_>, msg: &abi::GhostMsgPayloadAgentBlocked) {}
    /// `MSG_CPU_AGENT_WAKEUP`: the CPU's agent woke up.
    fn cpu_agent_wakeup(&mut self, ctx: &mut Ctx<'_>, msg: &abi::GhostMsgPayloadAgentWakeup) {}

    /// The outcome of the transaction that ran `gtid` on `cpu`, after the
    /// runtime acted on it (`Complete`: the task got the CPU and was
    /// dequeued; `CpuUnavail`: the CPU is left alone for a moment; a task
    /// gone or blocked is dequeued; anything else leaves it queued).
    fn committed(&mut self, ctx: &mut Ctx<'_>, cpu: usize, gtid: i64, result: TxnResult) {}

    /// A human-readable view of the run queues (printed on `SIGUSR1`).
    fn dump(&self, out: &mut String) {}
}
