// SPDX-License-Identifier: GPL-2.0

//! The ghOSt state of one task or agent (`struct sched_ghost_entity`); the
//! task messages it is the subject of are produced in [`crate::msgs::task`].
//!
//! The state is allocated (in process context) before the task enters the
//! ghost class, hung on `task_struct::ghost` ([`SLOT`], a
//! [`TaskSlot`]), and freed when the task leaves the class or dies.
//! Lifetime rules:
//!
//! - `task_struct::ghost` is set by `TaskSlot::install` (a compare-and-swap
//!   from NULL, so two joins cannot both win) and cleared with the task's
//!   rq lock held; readers hold that lock ([`GhostTask::of`]).
//! - The state holds an [`Entered`] reference on its enclave: the task is
//!   counted in the enclave, which destroying it waits for. Its status
//!   word's region and its queue are [`Backref`]s read through that
//!   reference: the enclave keeps both until it is freed.
//! - From its allocation to its drop the state is linked on its enclave's
//!   member list ([`Member`]); while it is queued on a CPU, on that CPU's
//!   list of runnable ghost tasks ([`crate::fallback`]), unlinked before the
//!   state is taken off its task.
//!
//! Owns: the state's fields and its status word's contents. Calls:
//! [`crate::enclave`] (its enclave, below it), [`crate::gstate`],
//! [`crate::queue`], [`crate::sw`] and [`crate::sys`]; joining, leaving and
//! freeing are [`crate::members`]'s.

use crate::enclave::{Enclave, Member};
use crate::gstate::{Event, TaskState};
use crate::queue::Queue;
use crate::sw::{Region, StatusWord, SwInfo, F_INUSE};
use crate::sys::anchor::{Backref, Entered};
use crate::sys::list::Links;
use crate::sys::rq::{Rq, TaskPtr};
use crate::sys::slot::TaskSlot;
use crate::sys::task::TaskHandle;
use core::cell::Cell;
use core::sync::atomic::Ordering;
use kernel::prelude::*;
use kernel::uapi;

/// Status-word flags of a task (ABI).
pub const SW_ONCPU: u32 = uapi::GHOST_SW_TASK_ONCPU;
/// The task is runnable.
pub const SW_RUNNABLE: u32 = uapi::GHOST_SW_TASK_RUNNABLE;
/// The word is an agent's.
pub const SW_IS_AGENT: u32 = uapi::GHOST_SW_TASK_IS_AGENT;
/// Messages about the task are gated until the word is freed.
pub const SW_MSG_GATED: u32 = uapi::GHOST_SW_TASK_MSG_GATED;

/// ghOSt's state of one task.
///
/// # Invariants
///
/// - `region` and `dst_q` are kept by `enclave` (read through it);
///   `sw_info.index` is an allocated word of `region`.
/// - `member` is on the enclave's member list from allocation to drop.
/// - The cells are only accessed with the task's rq lock held.
/// - `state` changes only through [`TaskState::step`] (see
///   [`crate::gstate`]).
pub struct GhostTask {
    region: Backref<Region>,
    /// The status word's place.
    pub sw_info: SwInfo,
    /// The task's gtid (0 until a fork child gets one).
    gtid: Cell<i64>,
    /// For an agent: its CPU.
    pub agent_cpu: Option<i32>,
    dst_q: Cell<Option<Backref<Queue>>>,
    /// Where the task is in its stay: in the class or not yet, announced to
    /// the agent or not yet, gated, on a CPU, yielding, counted.
    state: Cell<TaskState>,
    /// When the task last became runnable without a CPU (monotonic ns),
    /// 0 while it runs or sleeps: what the watchdog checks.
    runnable_since: Cell<i64>,
    /// The place on the enclave's member list, with a reference on the
    /// task: a member's task stays valid while the state exists, whatever
    /// path frees the state.
    member: Member,
    /// Its place on its CPU's list of runnable ghost tasks (see
    /// [`crate::fallback`]).
    fb: Links<GhostTask, FALLBACK_LIST>,
    /// The counted reference on the enclave: the last field, so that it
    /// goes last (after the state is off the member list and the word,
    /// region and queue are no longer used).
    enclave: Entered<Enclave>,
}

/// The kind of list a [`GhostTask`]'s `fb` links are for (a CPU's runnable
/// ghost tasks, [`crate::fallback`]).
pub const FALLBACK_LIST: usize = 0;

crate::impl_has_links!(GhostTask, fb, FALLBACK_LIST);

/// Where every task's [`GhostTask`] hangs (`task_struct::ghost`).
pub static SLOT: TaskSlot<GhostTask> = TaskSlot::new();

impl Drop for GhostTask {
    fn drop(&mut self) {
        self.enclave().unlink_member(&self.member);
    }
}

impl GhostTask {
    /// New state for `p`, a task (`agent_cpu` `None`) or an agent of the
    /// enclave `e` counts it in, with a fresh status word for gtid `gtid`,
    /// its messages going to `q` (a queue of that enclave), linked as a
    /// member of the enclave. Process context (may sleep).
    pub fn new(
        e: Entered<Enclave>,
        p: TaskPtr,
        gtid: i64,
        agent_cpu: Option<i32>,
        q: Option<&Queue>,
    ) -> Result<KBox<GhostTask>> {
        // The box first: once the word is allocated, nothing can fail.
        let slot = KBox::new_uninit(GFP_KERNEL)?;
        let (region, sw_info) = Enclave::alloc_sw(&e)?;
        let flags = if agent_cpu.is_some() { SW_IS_AGENT } else { 0 };
        if let Some(w) = region.get(&e).and_then(|r| r.word(sw_info.index)) {
            w.gtid.store(gtid as u64, Ordering::Relaxed);
            w.flags.fetch_or(flags, Ordering::Relaxed);
        }
        // INVARIANT: the region and the queue are the enclave's; the word
        // is allocated.
        let gt = GhostTask {
            region,
            sw_info,
            gtid: Cell::new(gtid),
            agent_cpu,
            dst_q: Cell::new(q.map(|q| e.backref(q))),
            state: Cell::new(TaskState::new()),
            runnable_since: Cell::new(0),
            member: Member::new(TaskHandle::get(p)),
            fb: Links::new(),
            enclave: e,
        };
        let b = KBox::write(slot, gt);
        // INVARIANT: boxed, the state keeps its address until its drop,
        // which unlinks it.
        b.enclave().link_member(&b.member);
        Ok(b)
    }

    /// The state of `p`, if it has one. `rq` is `p`'s runqueue, locked:
    /// checked (`None`, with a `WARN_ONCE`, if it is another CPU's).
    pub fn of<'a>(rq: &'a Rq, p: TaskPtr) -> Option<&'a GhostTask> {
        SLOT.get(rq, p)
    }

    /// The task.
    pub fn task(&self) -> TaskPtr {
        self.member.task()
    }

    /// The enclave.
    pub fn enclave(&self) -> &Enclave {
        self.enclave.get()
    }

    /// The counted reference on the enclave (for another reference, or to
    /// read what it keeps).
    pub fn entered(&self) -> &Entered<Enclave> {
        &self.enclave
    }

    /// The task's gtid.
    pub fn gtid(&self) -> i64 {
        self.gtid.get()
    }

    /// Sets the gtid (a fork child's, once assigned), also in the word.
    pub fn set_gtid(&self, gtid: i64) {
        self.gtid.set(gtid);
        if let Some(w) = self.sw() {
            w.gtid.store(gtid as u64, Ordering::Release);
        }
    }

    /// Whether this is an agent's state.
    pub fn is_agent(&self) -> bool {
        self.agent_cpu.is_some()
    }

    /// The status word.
    pub fn sw(&self) -> Option<&StatusWord> {
        self.region.get(&self.enclave)?.word(self.sw_info.index)
    }

    /// A back-reference to the status word (for the per-CPU agent mirror,
    /// which clears it before the agent's state goes).
    pub fn sw_ptr(&self) -> Option<Backref<StatusWord>> {
        let index = self.sw_info.index;
        self.region.map(&self.enclave, |r| r.word(index))
    }

    /// Frees the status word (no one else will: the task is gone and no
    /// message told an agent about it). Consumes the state's word.
    pub fn free_sw(&self) {
        if let Some(r) = self.region.get(&self.enclave) {
            r.free(self.sw_info.index);
        }
    }

    /// Publishes the word: `F_INUSE` last, with release order.
    pub fn publish_sw(&self) {
        if let Some(w) = self.sw() {
            w.flags.fetch_or(F_INUSE, Ordering::Release);
        }
    }

    /// Sets and clears status-word flags (release order).
    pub fn sw_flags(&self, set: u32, clear: u32) {
        if let Some(w) = self.sw() {
            let _ = w
                .flags
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |f| {
                    Some((f | set) & !clear)
                });
        }
    }

    /// The task barrier.
    pub fn barrier(&self) -> u32 {
        self.sw().map_or(0, |w| w.barrier.load(Ordering::Acquire))
    }

    /// The queue messages go to.
    pub fn queue(&self) -> Option<&Queue> {
        self.dst_q.get()?.get(&self.enclave)
    }

    /// Sends messages to `q` from now on (a queue of the same enclave,
    /// which keeps it).
    pub fn set_queue(&self, q: Option<&Queue>) {
        self.dst_q.set(q.map(|q| self.enclave.backref(q)));
    }

    /// The state of the task's stay (see [`crate::gstate`]).
    pub fn state(&self) -> TaskState {
        self.state.get()
    }

    /// Applies `ev` to the state; whether it changed.
    fn step(&self, ev: Event) -> bool {
        let (next, changed) = self.state.get().step(ev);
        self.state.set(next);
        changed
    }

    /// Whether the task is in the class (`switched_to` ran).
    pub fn active(&self) -> bool {
        self.state.get().active()
    }

    /// The task enters the class (`switched_to`); `running`: a task (not an
    /// agent) that is its CPU's current task, whose TASK_NEW waits for the
    /// switch. Nothing changes for a task already in the class.
    pub fn enter(&self, running: bool) {
        self.step(Event::Enter { running });
    }

    /// A fork child joined: in the class from birth, TASK_NEW at its first
    /// wakeup.
    pub fn fork_joined(&self) {
        self.step(Event::ForkJoin);
    }

    /// Whether the task is in the class and the agent was told about it
    /// (TASK_NEW went out): its events are messages.
    pub fn announced(&self) -> bool {
        self.state.get().announced()
    }

    /// Whether its messages are held back: it re-entered before the agent
    /// freed the word of its earlier stay (`MSG_GATED`); TASK_NEW goes out
    /// when that word is freed.
    pub fn gated(&self) -> bool {
        self.state.get().gated
    }

    /// Sets [`Self::gated`].
    pub fn set_gated(&self, v: bool) {
        self.step(Event::Gate(v));
    }

    /// TASK_NEW still to be sent (the task was running when it joined, or
    /// is a fork child before its first wakeup).
    pub fn new_pending(&self) -> bool {
        self.state.get().new_pending()
    }

    /// See the field: when the task started to wait for a CPU, or 0.
    pub fn runnable_since(&self) -> i64 {
        self.runnable_since.get()
    }

    /// The task waits for a CPU from `now` on (unless it already does).
    pub fn set_waiting(&self, now: i64) {
        if self.runnable_since.get() == 0 {
            self.runnable_since.set(now.max(1));
        }
    }

    /// The task got a CPU or blocked: it no longer waits.
    pub fn clear_waiting(&self) {
        self.runnable_since.set(0);
    }

    /// Takes the yield request (whether there was one).
    pub fn take_yield(&self) -> bool {
        self.step(Event::TakeYield)
    }

    /// The task called `sched_yield()`; TASK_YIELD goes out off the CPU.
    pub fn set_yield(&self) {
        self.step(Event::Yield);
    }

    /// Whether a yield is pending.
    pub fn yield_pending(&self) -> bool {
        self.state.get().yield_pending
    }

    /// Whether ONCPU is set.
    pub fn oncpu(&self) -> bool {
        self.state.get().oncpu()
    }

    /// The task goes on a CPU: `switch_time` first, then ONCPU.
    pub fn set_oncpu(&self, now: i64) {
        if let Some(w) = self.sw() {
            w.switch_time.store(now, Ordering::Relaxed);
        }
        self.step(Event::OnCpu);
        self.sw_flags(SW_ONCPU, 0);
    }

    /// The task is off its CPU (after its state message went out).
    pub fn clear_oncpu(&self) {
        self.step(Event::OffCpu);
        self.sw_flags(0, SW_ONCPU);
    }

    /// Counts or uncounts the task in `nr_running` (by our enqueue);
    /// `false` if it already was in that state.
    pub fn set_counted(&self, v: bool) -> bool {
        self.step(Event::Count(v))
    }

    /// Copies the runtime of `p` to the status word.
    pub fn sync_runtime(&self, p: TaskPtr) {
        if let Some(w) = self.sw() {
            w.runtime.store(p.runtime(), Ordering::Relaxed);
        }
    }

    /// TASK_NEW goes out now: the agent hears of the task (see
    /// [`crate::msgs::task::new`]).
    pub fn announce(&self) {
        self.step(Event::Announce);
    }
}
