//! The policy interface: what a scheduling policy implements, and what the
//! agent runtime gives it.
//!
//! A policy sees the kernel's messages one callback per message type
//! (`task_new`, `task_wakeup`, ..., `cpu_tick`, ...), each with the task as
//! the runtime tracks it ([`Task`]) and the message's payload (the uapi
//! structure). It decides in one step, [`Policy::schedule`], by filling a
//! [`Plan`]: which task to run on which CPU. The runtime turns the plan into
//! transactions, commits them, and reports each outcome to
//! [`Policy::committed`].
//!
//! The runtime does the bookkeeping every policy needs: it keeps each
//! task's barrier (the `seqnum` of its last message, which a transaction
//! must quote), its status word and its allowed CPUs ([`Task::allowed`]),
//! frees the status word when the task dies or departs, and, in the per-CPU
//! model, moves a task's messages to the queue of the CPU the policy chose
//! for it ([`Ctx::set_home`]).
//!
//! Affinity is the policy's to honour: as in ghOSt, the kernel carries out
//! a commit of a task to a CPU its affinity excludes, and the task runs
//! there. The runtime reads a task's affinity (`sched_getaffinity` on the
//! thread its gtid names) when the task is announced (`TASK_NEW`) and at
//! every `TASK_AFFINITY_CHANGED`, before the policy's callback; the policy
//! checks [`Task::allowed`] without a system call.
//!
//! Every callback runs with the runtime's scheduler lock held; it must not
//! block. Callbacks see the CPU of the agent running them in [`Ctx::cpu`].

use std::collections::HashMap;
use std::time::Instant;

use ghost_abi as abi;
use ghost_abi::GhostSwInfo;

use crate::sw::{StatusWord, SwTable};
use crate::txn::{CpuMask, TxnResult};

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
}

impl Task {
    /// The CPU whose agent queue receives this task's messages (per-CPU
    /// model), if known.
    pub fn queue(&self) -> Option<usize> {
        self.queue
    }

    /// Whether the task's affinity allows `cpu`: the policy must not commit
    /// it anywhere else (the kernel does not check).
    pub fn allowed(&self, cpu: usize) -> bool {
        self.affinity.contains(cpu)
    }

    /// The CPUs the task's affinity allows, as the runtime last read them
    /// (`sched_getaffinity` at `TASK_NEW` and `TASK_AFFINITY_CHANGED`; a
    /// failed read, the task being gone, keeps the set it had, or every
    /// CPU).
    pub fn affinity(&self) -> &CpuMask {
        &self.affinity
    }
}

/// What a callback asked the runtime to do after it returns.
#[derive(Debug, Default)]
pub(crate) struct Requests {
    /// Tasks given a home CPU.
    pub homes: Vec<(i64, usize)>,
    /// Agents to ping.
    pub pings: CpuMask,
}

/// What a policy callback can see and ask for.
pub struct Ctx<'a> {
    pub(crate) cpu: usize,
    pub(crate) now: Instant,
    pub(crate) cpus: &'a [usize],
    pub(crate) tasks: &'a HashMap<i64, Task>,
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

    /// The CPUs of [`Ctx::cpus`] that `task` may run on, in order. None:
    /// the task must wait (for an affinity change) wherever it is.
    pub fn allowed_cpus<'t>(&'t self, task: &'t Task) -> impl Iterator<Item = usize> + 't {
        self.cpus.iter().copied().filter(|&c| task.allowed(c))
    }

    /// The number of tasks the runtime knows.
    pub fn nr_tasks(&self) -> usize {
        self.tasks.len()
    }

    /// The status word of task `gtid` (e.g. to check that it is off its
    /// CPU before committing it elsewhere), if mapped.
    pub fn status_word(&self, gtid: i64) -> Option<StatusWord<'_>> {
        let t = self.tasks.get(&gtid)?;
        self.sw?.get(t.sw)
    }

    /// Makes `cpu` the task's home. In the per-CPU model the runtime then
    /// sends the task's messages to the queue of `cpu`'s agent
    /// (`GHOST_IOC_ASSOC_QUEUE`, retried while the task's barrier moves).
    /// `cpu` must be one of [`Ctx::cpus`].
    pub fn set_home(&mut self, gtid: i64, cpu: usize) {
        self.req.homes.push((gtid, cpu));
    }

    /// Pings the agent of `cpu` once the callbacks of this round are done,
    /// so that it runs [`Policy::schedule`] (per-CPU model: after giving it
    /// work). Pinging the calling agent's own CPU does nothing.
    pub fn wake(&mut self, cpu: usize) {
        if cpu != self.cpu {
            self.req.pings.set(cpu);
        }
    }
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

/// The decisions of one [`Policy::schedule`] step.
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

    /// Asks the runtime to call [`Policy::schedule`] again soon rather
    /// than wait for the next message (e.g. to end a time slice). Only a
    /// centralized agent polls; a per-CPU agent waits for a message.
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

/// A scheduling policy. Every callback but [`Policy::schedule`] has a
/// default that does nothing.
///
/// `task_new` is called again for a task the policy already knows when the
/// kernel announces it again (`discover tasks` after a takeover): forget
/// what you knew of it and start over.
#[allow(unused_variables)]
pub trait Policy: Send {
    /// `MSG_TASK_NEW`: a task entered the enclave (`msg.runnable`: whether
    /// it can run now). `task` has its allowed CPUs ([`Task::allowed`]).
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
    /// `MSG_TASK_DEAD`: the task exited. The runtime forgets it afterwards.
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
    /// `task` has the new set ([`Task::allowed`]). A task queued for a CPU
    /// it no longer allows must move. (The kernel forces a running task off
    /// its CPU and sends `TASK_PREEMPT` after this message.)
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

    /// The pick step: fills `plan` with what to run. A per-CPU agent
    /// schedules only its own CPU ([`Ctx::cpu`]); the global agent of the
    /// centralized model schedules any of [`Ctx::cpus`]. The runtime drops
    /// entries for other CPUs, a second entry for a CPU, and unknown tasks.
    /// It does not check affinity: a task run on a CPU it does not allow
    /// ([`Task::allowed`]) runs there.
    fn schedule(&mut self, ctx: &mut Ctx<'_>, plan: &mut Plan);

    /// The outcome of the transaction that ran `gtid` on `cpu`.
    fn committed(&mut self, ctx: &mut Ctx<'_>, cpu: usize, gtid: i64, result: TxnResult) {}

    /// A human-readable view of the run queues (printed on `SIGUSR1`).
    fn dump(&self, out: &mut String) {}
}
