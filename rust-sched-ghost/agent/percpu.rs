// SPDX-License-Identifier: GPL-2.0

//! ghOSt's state of each CPU (`struct ghost_rq` in ghOSt): the agent, the
//! latched task, the agent barrier, and the agent wake/block logic that
//! uses it ([`wake`], [`block`]; how they avoid lost wakeups: see
//! [`crate::agent`]).
//!
//! - [`GhostRq::of`] gives the lock-free part (atomics: the agent, its
//!   claim and barrier, `should_wake`, `blocked_in_run`) from any CPU.
//! - [`Rq::ghost`] gives [`LockedGhostRq`], the only way to the part the
//!   runqueue lock protects (the latch, run flags, sequence numbers,
//!   availability, the fallback's list), for that runqueue's own CPU.

use crate::sw::StatusWord;
use crate::sys::anchor::{AtomicBackref, Backref};
use crate::sys::cpu::{nr_cpu_ids, this_cpu};
use crate::sys::cred::estale;
use crate::sys::percpu::PerCpu;
use crate::sys::rq::{AtomicTask, Rq, RqCell, TaskPtr};
use crate::sys::task::sleep_until;
use crate::sys::work::IrqWork;
use core::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicUsize, Ordering};
use kernel::prelude::*;

/// ghOSt's state of one CPU (`struct ghost_rq`).
///
/// # Invariants
///
/// The [`RqCell`] fields are only accessed by the CPU holding this CPU's
/// rq lock (checked by the cells): methods that touch them are only
/// reachable through [`LockedGhostRq`], which only [`Rq::ghost`] makes, for
/// its own CPU. The atomics are accessed from anywhere.
pub struct GhostRq {
    cpu: i32,
    /// The agent of this CPU, published for lock-free readers (wakeups);
    /// written with the rq lock held. Task memory is RCU-freed, so a reader
    /// in an RCU read-side section (any IRQ handler) may use it.
    agent: AtomicTask,
    /// Set while an agent claims this CPU (`become agent` to its exit).
    agent_claimed: AtomicBool,
    /// The authoritative agent barrier (mirrored in the agent's status word).
    agent_barrier: AtomicU32,
    /// A message or a ping arrived for the agent since it last looked.
    should_wake: AtomicBool,
    /// The agent is blocked in `ghost_run` (or a local commit).
    blocked_in_run: AtomicBool,
    /// The agent's status word (in one of its enclave's regions, which the
    /// enclave keeps until the agent is gone); cleared (rq lock held)
    /// before the agent's state is freed.
    agent_sw: AtomicBackref<StatusWord>,
    /// Wakes this CPU's agent from any CPU (see [`crate::agent`]).
    wake_work: IrqWork,
    /// While this CPU's pick-next prologue runs: the address of its task
    /// (`prev`, the current task), which wakes the agent itself
    /// ([`Self::defer_local_wake`]); 0 otherwise.
    defer_owner: AtomicUsize,
    /// A wake was left to the prologue ([`Self::defer_local_wake`]).
    defer_wake: AtomicBool,
    /// The task an agent committed to run next here.
    latched: RqCell<Option<TaskPtr>>,
    /// The run flags of the latched (then running) task.
    run_flags: RqCell<u32>,
    /// The current task must leave the CPU at the next pick.
    must_resched: RqCell<bool>,
    /// Bumped for every latch and every CPU message.
    cpu_seqnum: RqCell<u64>,
    /// The latch belongs to a sync group still being committed: it is not
    /// picked until the group succeeds (or is dropped if it fails).
    held: RqCell<bool>,
    /// Whether the CPU was available to ghost (no other class's task) when
    /// last looked at; `CPU_AVAILABLE`/`CPU_BUSY` report changes.
    avail: RqCell<bool>,
    /// Ghost tasks and the agent counted in this CPU's `nr_running`.
    nr_running: RqCell<u32>,
}

/// The address of the current task (0 if there is none): what
/// [`GhostRq::defer_local_wake`] compares, never dereferenced.
fn current_addr() -> usize {
    TaskPtr::current().map_or(0, |t| t.as_raw() as usize)
}

/// All CPUs' [`GhostRq`]s, set up once by [`init`] and never freed.
static GHOST_RQS: PerCpu<GhostRq> = PerCpu::new();

impl GhostRq {
    /// The state of `cpu`, for its atomics; `None` before [`init`] or for a
    /// CPU out of range.
    pub fn of(cpu: i32) -> Option<&'static GhostRq> {
        GHOST_RQS.get(cpu)
    }

    /// The CPU.
    pub fn cpu(&self) -> i32 {
        self.cpu
    }

    /// The agent (lock-free read; see the field).
    pub fn agent(&self) -> Option<TaskPtr> {
        // See the field: valid under RCU (the caller's duty), or under the
        // rq lock.
        self.agent.load()
    }

    /// Claims the CPU for a new agent; `false` if it has one.
    pub fn claim_agent(&self) -> bool {
        self.agent_claimed
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Whether an agent claims the CPU (from `become agent` to its exit).
    pub fn agent_claimed(&self) -> bool {
        self.agent_claimed.load(Ordering::Acquire)
    }

    /// Releases the claim of [`Self::claim_agent`].
    pub fn release_agent(&self) {
        self.agent_claimed.store(false, Ordering::Release);
    }

    /// The agent barrier.
    pub fn agent_barrier(&self) -> u32 {
        self.agent_barrier.load(Ordering::Acquire)
    }

    /// Bumps the agent barrier and mirrors it in the agent's status word.
    /// Returns the new value (the sequence number of a CPU message).
    pub fn bump_agent_barrier(&self) -> u32 {
        let b = self
            .agent_barrier
            .fetch_add(1, Ordering::SeqCst)
            .wrapping_add(1);
        self.sync_agent_sw();
        b
    }

    /// Resets the agent barrier (a new agent starts from 0).
    pub fn reset_agent_barrier(&self) {
        self.agent_barrier.store(0, Ordering::SeqCst);
        self.sync_agent_sw();
    }

    /// Copies the barrier to the agent's status word.
    ///
    /// Messages for this CPU's agent are produced on any CPU, and a load of
    /// the barrier followed by a store is not atomic: a writer that loaded
    /// an older value could store it after a newer one, and the word would
    /// stay behind the barrier until the next message. An agent quoting it
    /// then gets `ESTALE` and `AGENT_STALE` in a loop, spinning on its CPU
    /// while its tasks wait (the churn stall, scheduling.rst). So a writer
    /// stores again until the barrier has not moved past its store, as a
    /// seqlock reader retries. The last store of all is then of the latest
    /// value: a bump after a writer's final check is followed by its own
    /// writer's store. All accesses are `SeqCst` (one order for bumps,
    /// stores and checks). Each retry means another bump happened meanwhile
    /// (a message produced): a writer retries at most as often as messages
    /// are produced for this agent during its few instructions.
    fn sync_agent_sw(&self) {
        self.agent_sw.with(|sw| {
            let mut b = self.agent_barrier.load(Ordering::SeqCst);
            loop {
                sw.barrier.store(b, Ordering::SeqCst);
                let now = self.agent_barrier.load(Ordering::SeqCst);
                if now == b {
                    return;
                }
                b = now;
            }
        });
    }

    /// Sets or clears flag bits in the agent's status word.
    pub fn agent_sw_flags(&self, set: u32, clear: u32) {
        self.agent_sw.with(|sw| {
            let _ = sw
                .flags
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |f| {
                    Some((f | set) & !clear)
                });
        });
    }

    /// The wake request flag.
    pub fn should_wake(&self) -> &AtomicBool {
        &self.should_wake
    }

    /// The blocked-in-run flag.
    pub fn blocked_in_run(&self) -> &AtomicBool {
        &self.blocked_in_run
    }

    /// The irq_work that wakes this CPU's agent.
    pub fn wake_work(&self) -> &IrqWork {
        &self.wake_work
    }

    /// The pick-next prologue of this CPU starts (`on`) or ends deferring
    /// the wakes of this CPU's agent that its own messages ask for: [`wake`]
    /// called by the prologue's task meanwhile leaves the wake to the
    /// prologue instead of the irq_work. Returns, at the end, whether a
    /// wake was left to it (the prologue then calls [`wake_deferred`]).
    /// This CPU's prologue only (`__schedule()`, interrupts off): a waker
    /// elsewhere has another current task, so it never takes the wake over,
    /// even if it reads a stale owner.
    pub fn defer_local_wake(&self, on: bool) -> bool {
        if on {
            self.defer_wake.store(false, Ordering::Relaxed);
            self.defer_owner.store(current_addr(), Ordering::Relaxed);
            false
        } else {
            self.defer_owner.store(0, Ordering::Relaxed);
            self.defer_wake.swap(false, Ordering::Relaxed)
        }
    }

    /// Whether the caller is this CPU's prologue, which then takes a wake
    /// of its agent over (see [`Self::defer_local_wake`]).
    fn take_local_wake(&self) -> bool {
        let me = current_addr();
        me != 0 && self.defer_owner.load(Ordering::Relaxed) == me && {
            self.defer_wake.store(true, Ordering::Relaxed);
            true
        }
    }
}

/// A CPU's [`GhostRq`] with the CPU's runqueue locked: the rq-locked
/// cells are reached only through it.
///
/// # Invariants
///
/// `rq` is locked (a `&Rq`) and is the runqueue of `g`'s CPU.
#[derive(Clone, Copy)]
pub struct LockedGhostRq<'rq> {
    rq: &'rq Rq,
    g: &'static GhostRq,
}

impl<'rq> core::ops::Deref for LockedGhostRq<'rq> {
    type Target = GhostRq;

    /// The lock-free part (atomics).
    fn deref(&self) -> &GhostRq {
        self.g
    }
}

impl<'rq> LockedGhostRq<'rq> {
    /// The locked runqueue.
    pub fn rq(&self) -> &'rq Rq {
        self.rq
    }

    /// Publishes (or clears) the agent.
    pub fn set_agent(&self, agent: Option<TaskPtr>, sw: Option<Backref<StatusWord>>) {
        self.g.agent_sw.store(sw);
        self.g.agent.store(agent);
    }

    /// The latched task.
    pub fn latched(&self) -> Option<TaskPtr> {
        self.g.latched.get(self.rq)
    }

    /// Latches `p` (or clears the latch) with `run_flags`.
    /// A new latch is never held by a sync group (see [`Self::held`]).
    pub fn set_latched(&self, p: Option<TaskPtr>, run_flags: u32) {
        self.g.latched.set(self.rq, p);
        self.g.run_flags.set(self.rq, run_flags);
        self.g.held.set(self.rq, false);
    }

    /// Whether the latch is held back by a sync group in progress.
    pub fn held(&self) -> bool {
        self.g.held.get(self.rq)
    }

    /// Sets [`Self::held`].
    pub fn set_held(&self, v: bool) {
        self.g.held.set(self.rq, v);
    }

    /// Whether the CPU was available to ghost at the last task switch.
    pub fn avail(&self) -> bool {
        self.g.avail.get(self.rq)
    }

    /// Records the CPU's availability; returns whether it changed.
    pub fn set_avail(&self, v: bool) -> bool {
        self.g.avail.replace(self.rq, v) != v
    }

    /// Adds `flags` to the run flags of the latch (or of the task running
    /// from it); the latch itself, held or not, stays.
    pub fn add_run_flags(&self, flags: u32) {
        self.g
            .run_flags
            .set(self.rq, self.g.run_flags.get(self.rq) | flags);
    }

    /// The run flags of the last latch.
    pub fn run_flags(&self) -> u32 {
        self.g.run_flags.get(self.rq)
    }

    /// Whether the current task must leave the CPU.
    pub fn must_resched(&self) -> bool {
        self.g.must_resched.get(self.rq)
    }

    /// Sets [`Self::must_resched`].
    pub fn set_must_resched(&self, v: bool) {
        self.g.must_resched.set(self.rq, v);
    }

    /// Bumps and returns the CPU sequence number.
    pub fn next_cpu_seqnum(&self) -> u64 {
        let s = self.g.cpu_seqnum.get(self.rq).wrapping_add(1);
        self.g.cpu_seqnum.set(self.rq, s);
        s
    }

    /// The CPU sequence number.
    pub fn cpu_seqnum(&self) -> u64 {
        self.g.cpu_seqnum.get(self.rq)
    }
}

// How an agent is woken. A waker bumps the agent barrier and sets
// `should_wake`; only an agent blocked in `ghost_run` (or a local commit)
// then needs `try_to_wake_up()`. The rule:
//
// - The agent does not sleep (`blocked_in_run` clear): nothing more. It
//   sets `blocked_in_run` before it looks at `should_wake` in its sleep loop,
//   and the waker sets `should_wake` before it looks at `blocked_in_run`
//   (all `SeqCst`): either the agent sees the flag and does not sleep, or
//   the waker sees it blocked.
// - It sleeps, and the waker holds no runqueue lock ([`wake_unlocked`]: a
//   ping by `ghost_run`, `CONFIG_QUEUE_WAKEUP`, a destroy's kill): the
//   waker wakes it directly.
// - It sleeps, and the waker may hold a runqueue lock ([`wake`]: messages,
//   produced under the lock of the task's or the CPU's runqueue, and a
//   commit's ping): `try_to_wake_up()` takes the agent's `pi_lock`, then
//   its runqueue's lock, which nests outside any runqueue lock, so the wake
//   is deferred to the agent CPU's irq_work ([`wake_work`]), which runs
//   with no lock held (on the agent's CPU, right after the lock is dropped
//   there, or after an IPI).
//
// - A message produced by the pick-next prologue of the agent's own CPU
//   while a ghost task leaves it (that task's TASK_BLOCKED, TASK_YIELD, ...,
//   and the CPU_AVAILABLE/CPU_BUSY of the same prologue) is not left to the
//   irq_work: the prologue wakes the agent itself with the runqueue
//   unlocked, before the pick ([`GhostRq::defer_local_wake`],
//   [`crate::sched::pnt_prologue`]), so that this pick runs the agent rather
//   than idle until the irq_work fires. When the task leaving is not a
//   ghost task (the idle task, a CFS task) the irq_work stays: the agent
//   must not run before the task that comes next (`NEED_CPU_NOT_IDLE`).
//
// Either way the wake happens only if it is still wanted when it is made
// (`blocked_in_run` and `should_wake`, see [`wake_now`]); none is made for an
// agent that is woken already (see [`request_wake`]).

/// Asks for a wake of `cpu`'s agent: bumps its barrier, sets
/// `should_wake`; its state if the agent sleeps in `ghost_run` and so
/// needs a wake (see above).
///
/// An agent that is `blocked_in_run` but whose task state is
/// `TASK_RUNNING` needs none: it was woken (or has not gone to sleep yet)
/// and looks at `should_wake` before it sleeps again. This is the agent
/// picked to preempt its CPU's task: the `TASK_PREEMPT` of that switch
/// would otherwise queue the irq_work for an agent already on its way.
/// The agent sets its state before it reads `should_wake`, and the waker
/// sets `should_wake` before it reads the state (a full fence between):
/// one of them sees the other's store.
fn request_wake(cpu: i32) -> Option<&'static GhostRq> {
    let g = GhostRq::of(cpu)?;
    g.bump_agent_barrier();
    g.should_wake().store(true, Ordering::SeqCst);
    // Pairs with `block`: `blocked_in_run` is set before `should_wake` is
    // read there.
    if !g.blocked_in_run().load(Ordering::SeqCst) {
        return None;
    }
    fence(Ordering::SeqCst);
    // The agent's memory is RCU-freed (see `GhostRq::agent`).
    let woken = crate::sys::rcu::read_section(|| g.agent().is_some_and(|a| a.state_running()));
    (!woken).then_some(g)
}

/// Wakes the agent of `cpu`: bumps its barrier and, if it sleeps, has its
/// CPU wake it from the irq_work (or, for a message of `cpu`'s own
/// pick-next prologue, has the prologue wake it: [`GhostRq::defer_local_wake`]).
/// Any context (runqueue locks may be held); never sleeps.
pub fn wake(cpu: i32) {
    if let Some(g) = request_wake(cpu) {
        if g.take_local_wake() {
            return;
        }
        // Queueing an already pending work is a no-op; an offline CPU is
        // skipped.
        g.wake_work().queue_on(cpu);
    }
}

/// The wake of `g`'s agent that its CPU's pick-next prologue took over
/// ([`GhostRq::defer_local_wake`]): made now, with no runqueue lock held
/// (the prologue dropped it), interrupts off.
pub fn wake_deferred(g: &GhostRq) {
    // The agent's memory is RCU-freed (see `GhostRq::agent`).
    crate::sys::rcu::read_section(|| wake_now(g));
}

/// [`wake`] for a caller that holds no runqueue lock (process context or
/// an interrupt that did not interrupt one): a sleeping agent is woken
/// directly, without the irq_work.
pub fn wake_unlocked(cpu: i32) {
    if let Some(g) = request_wake(cpu) {
        // The agent's memory is RCU-freed (see `GhostRq::agent`).
        crate::sys::rcu::read_section(|| wake_now(g));
    }
}

/// Wakes `g`'s agent if it sleeps in `ghost_run` and a wake is still wanted:
/// a commit since the request has seen its messages and cleared
/// `should_wake`, and waking the agent anyway would preempt the task it
/// just gave its CPU to, whose TASK_PREEMPT would wake it again, for ever.
/// No runqueue lock held, inside an RCU read-side section.
fn wake_now(g: &GhostRq) {
    if let Some(a) = g.agent() {
        if g.blocked_in_run().load(Ordering::SeqCst) && g.should_wake().load(Ordering::SeqCst) {
            // `a` is valid under RCU (see `GhostRq::agent`).
            a.wake_up();
        }
    }
}

/// The handler of a CPU's wake irq_work: runs on the agent's CPU, in hard
/// interrupt context (an RCU read-side section: the agent's memory stays
/// valid even if it exits meanwhile), and wakes the agent if it sleeps and
/// a wake is still wanted.
pub fn wake_work() {
    if let Some(g) = GhostRq::of(this_cpu()) {
        wake_now(g);
    }
}

/// The calling agent gives its CPU away until it is woken. With
/// `barrier`, fails with `ESTALE` if the CPU's agent barrier moved past it
/// (a message the agent has not seen).
///
/// A pending signal also ends the wait, with success: the agent returns to
/// user mode to handle it, as ghOSt's agents do (ghOSt picks an agent with a
/// pending signal; its library accepts only `ESTALE` and `ENODEV` as errors
/// of a local yield).
pub fn block(g: &GhostRq, barrier: Option<u32>) -> Result {
    if let Some(b) = barrier {
        g.should_wake().store(false, Ordering::SeqCst);
        if g.agent_barrier() != b {
            return Err(estale());
        }
    }
    let me = TaskPtr::current().ok_or(EINVAL)?;
    g.blocked_in_run().store(true, Ordering::SeqCst);
    sleep_until(|| g.should_wake().swap(false, Ordering::SeqCst) || me.signal_pending());
    g.blocked_in_run().store(false, Ordering::SeqCst);
    Ok(())
}

/// The CPU whose agent the calling thread is, if it is one; without a
/// lock (every commit and `ghost_run` asks). Each CPU publishes its agent
/// ([`GhostRq::agent`], set when it enters the class, cleared when it
/// leaves) and an agent is pinned to its CPU, so the caller is an agent
/// exactly when it is the published agent of the CPU it runs on. A thread
/// that is not one may migrate meanwhile, but then it is no CPU's agent.
pub fn current_cpu() -> Option<i32> {
    let me = TaskPtr::current()?;
    let cpu = this_cpu();
    (GhostRq::of(cpu)?.agent() == Some(me)).then_some(cpu)
}

/// Sets up every CPU's [`GhostRq`], with `wake` the handler of their
/// agent-wake irq_works. Once, at boot, before any task can be in a ghost
/// class.
pub fn init(wake: fn()) -> Result {
    GHOST_RQS.init(|cpu| GhostRq {
        cpu,
        agent: AtomicTask::new(),
        agent_claimed: AtomicBool::new(false),
        agent_barrier: AtomicU32::new(0),
        should_wake: AtomicBool::new(false),
        blocked_in_run: AtomicBool::new(false),
        agent_sw: AtomicBackref::new(),
        wake_work: IrqWork::new(wake),
        defer_owner: AtomicUsize::new(0),
        defer_wake: AtomicBool::new(false),
        latched: RqCell::new(cpu, None),
        run_flags: RqCell::new(cpu, 0),
        must_resched: RqCell::new(cpu, false),
        held: RqCell::new(cpu, false),
        avail: RqCell::new(cpu, true),
        nr_running: RqCell::new(cpu, 0),
        cpu_seqnum: RqCell::new(cpu, 0),
    })?;
    for cpu in 0..nr_cpu_ids() as i32 {
        if let Some(g) = GhostRq::of(cpu) {
            g.wake_work.init();
        }
    }
    Ok(())
}

/// The parts of a runqueue that ghOSt's per-CPU state adds.
impl Rq {
    /// Counts one more (`true`) or one fewer runnable ghost task (or agent)
    /// on this CPU, in `nr_running` and in ghOSt's own count.
    pub fn count_running(&self, more: bool) {
        if let Some(g) = self.ghost() {
            let n = g.g.nr_running.get(self);
            g.g.nr_running.set(
                self,
                if more {
                    n.saturating_add(1)
                } else {
                    n.saturating_sub(1)
                },
            );
        }
        self.add_nr_running(more);
    }

    /// Whether a task of another class than ghost (not idle) is runnable on
    /// this CPU: the CPU is not available to ghost tasks (ghOSt's
    /// `cpu_is_available`, negated).
    pub fn others_runnable(&self) -> bool {
        self.ghost()
            .is_some_and(|g| self.nr_running() > g.g.nr_running.get(self))
    }

    /// ghOSt's state of this CPU, with its rq-locked part: the only way to
    /// reach that part.
    pub fn ghost(&self) -> Option<LockedGhostRq<'_>> {
        // INVARIANT: `self` is locked and this CPU's runqueue.
        Some(LockedGhostRq {
            rq: self,
            g: GhostRq::of(self.cpu())?,
        })
    }
}
