// SPDX-License-Identifier: GPL-2.0

//! The ghOSt state of one task or agent (`struct sched_ghost_entity`); the
//! task messages it is the subject of are produced in [`crate::msgs::task`].
//!
//! The state is allocated (in process context) before the task enters the
//! ghost class, hung on `task_struct::ghost`, and freed when the task leaves
//! the class or dies. Lifetime rules:
//!
//! - `task_struct::ghost` is set by [`install`] (a compare-and-swap from
//!   NULL, so two joins cannot both win) and cleared with the task's rq lock
//!   held; readers hold that lock.
//! - The state points to its enclave, its status word and its queue without
//!   counting references: a task in an enclave is counted in the enclave's
//!   `nr_tasks`, and destroying an enclave waits for that count to drop to
//!   zero before anything is freed.

use crate::enclave::Enclave;
use crate::gstate::{Event, TaskState};
use crate::queue::Queue;
use crate::sw::{Region, StatusWord, SwInfo, F_INUSE};
use crate::sys::rq::{Rq, TaskPtr};
use crate::sys::task::TaskHandle;
use core::cell::Cell;
use core::ptr::NonNull;
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
/// - `enclave` and `region` stay valid while the state exists (the task is
///   counted in the enclave's `nr_tasks`); `index` is an allocated word of
///   `region`.
/// - `dst_q` is NULL or a queue of `enclave` (which holds a reference).
/// - The cells are only accessed with the task's rq lock held.
/// - `state` changes only through [`TaskState::step`] (see
///   [`crate::gstate`]).
pub struct GhostTask {
    enclave: NonNull<Enclave>,
    region: NonNull<Region>,
    /// The status word's place.
    pub sw_info: SwInfo,
    /// The task's gtid (0 until a fork child gets one).
    gtid: Cell<i64>,
    /// For an agent: its CPU.
    pub agent_cpu: Option<i32>,
    dst_q: Cell<*const Queue>,
    /// Where the task is in its stay: in the class or not yet, announced to
    /// the agent or not yet, gated, on a CPU, yielding, counted.
    state: Cell<TaskState>,
    /// When the task last became runnable without a CPU (monotonic ns),
    /// 0 while it runs or sleeps: what the watchdog checks.
    runnable_since: Cell<i64>,
    /// A reference on the task: a member's task stays valid while the
    /// state exists, whatever path frees the state.
    task: TaskHandle,
    /// The place on the enclave's member list (linked from allocation to
    /// drop).
    link: Link,
    /// Its place on its CPU's list of runnable ghost tasks (see
    /// [`crate::fallback`]).
    fb: FbLink,
}

impl Drop for GhostTask {
    fn drop(&mut self) {
        self.enclave().unlink_member(self);
    }
}

// SAFETY: the cells are only touched under the task's rq lock (type
// invariant), which serializes every CPU, and `link` under the enclave's
// member lock; the pointers are to memory that outlives the state.
unsafe impl Send for GhostTask {}
// SAFETY: as above.
unsafe impl Sync for GhostTask {}

impl GhostTask {
    /// New state for `p`, a task (`agent_cpu` `None`) or an agent of `e`,
    /// with a fresh status word for gtid `gtid`, linked as a member of `e`.
    /// Process context (may sleep).
    pub fn new(
        e: &Enclave,
        p: TaskPtr,
        gtid: i64,
        agent_cpu: Option<i32>,
        q: Option<&Queue>,
    ) -> Result<KBox<GhostTask>> {
        let (region, sw_info) = e.alloc_sw()?;
        let flags = if agent_cpu.is_some() { SW_IS_AGENT } else { 0 };
        // SAFETY: `alloc_sw` returns a region of `e`, alive while `e` is.
        let r = unsafe { region.as_ref() };
        if let Some(w) = r.word(sw_info.index) {
            w.gtid.store(gtid as u64, Ordering::Relaxed);
            w.flags.fetch_or(flags, Ordering::Relaxed);
        }
        // INVARIANT: the enclave outlives the state (the caller counts the
        // task in `nr_tasks` before it can be used); the word is allocated.
        let gt = GhostTask {
            enclave: NonNull::from(e),
            region,
            sw_info,
            gtid: Cell::new(gtid),
            agent_cpu,
            dst_q: Cell::new(q.map_or(core::ptr::null(), |q| q as *const Queue)),
            state: Cell::new(TaskState::new()),
            runnable_since: Cell::new(0),
            task: TaskHandle::get(p),
            link: Link::new(),
            fb: FbLink::new(),
        };
        match KBox::new(gt, GFP_KERNEL) {
            Ok(b) => {
                // SAFETY: boxed, the state keeps its address until its drop,
                // which unlinks it.
                unsafe { e.link_member(&b) };
                Ok(b)
            }
            Err(e) => {
                r.free(sw_info.index);
                Err(e.into())
            }
        }
    }

    /// The state of `p`, if it has one. `rq` is `p`'s runqueue, locked:
    /// checked (`None`, with a `WARN_ONCE`, if it is another CPU's).
    pub fn of<'a>(rq: &'a Rq, p: TaskPtr) -> Option<&'a GhostTask> {
        if p.cpu() != rq.cpu() {
            crate::warn_once!("GhostTask::of: the rq is not the task's");
            return None;
        }
        let g = p.ghost_raw().cast::<GhostTask>();
        // SAFETY: a non-NULL `task_struct::ghost` is a live `GhostTask`; it
        // is only freed with `p`'s rq lock held, which the caller holds for
        // `'a`.
        unsafe { g.as_ref() }
    }

    /// The task.
    pub fn task(&self) -> TaskPtr {
        self.task.as_ptr()
    }

    /// The place on the enclave's member list.
    pub fn link(&self) -> &Link {
        &self.link
    }

    /// The place on its CPU's list of runnable ghost tasks (only
    /// [`crate::fallback`] uses it).
    pub fn fb_link(&self) -> &FbLink {
        &self.fb
    }

    /// The enclave.
    pub fn enclave(&self) -> &Enclave {
        // SAFETY: valid while `self` exists (type invariant).
        unsafe { self.enclave.as_ref() }
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
        // SAFETY: valid while `self` exists (type invariant).
        unsafe { self.region.as_ref() }.word(self.sw_info.index)
    }

    /// A raw pointer to the status word (for the per-CPU agent mirror).
    pub fn sw_ptr(&self) -> *const StatusWord {
        self.sw()
            .map_or(core::ptr::null(), |w| w as *const StatusWord)
    }

    /// Frees the status word (no one else will: the task is gone and no
    /// message told an agent about it). Consumes the state's word.
    pub fn free_sw(&self) {
        // SAFETY: valid while `self` exists (type invariant).
        unsafe { self.region.as_ref() }.free(self.sw_info.index);
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
        // SAFETY: NULL or a queue of the enclave, which holds a reference
        // while `self` exists (type invariant).
        unsafe { self.dst_q.get().as_ref() }
    }

    /// Sends messages to `q` from now on (a queue of the same enclave).
    pub fn set_queue(&self, q: Option<&Queue>) {
        self.dst_q
            .set(q.map_or(core::ptr::null(), |q| q as *const Queue));
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

/// A member's place on its enclave's member list
/// ([`crate::members::Members`]).
///
/// # Invariants
///
/// The cells are only accessed with the enclave's member lock held.
pub struct Link {
    pub(crate) prev: Cell<*const GhostTask>,
    pub(crate) next: Cell<*const GhostTask>,
    pub(crate) linked: Cell<bool>,
}

impl Link {
    /// An unlinked place.
    pub const fn new() -> Self {
        Link {
            prev: Cell::new(core::ptr::null()),
            next: Cell::new(core::ptr::null()),
            linked: Cell::new(false),
        }
    }
}

/// A task's place on its CPU's list of runnable ghost tasks
/// ([`crate::fallback`], which alone touches it, under that rq lock).
pub struct FbLink {
    pub(crate) prev: Cell<*const GhostTask>,
    pub(crate) next: Cell<*const GhostTask>,
    pub(crate) linked: Cell<bool>,
}

impl FbLink {
    /// Not on any list.
    pub const fn new() -> Self {
        FbLink {
            prev: Cell::new(core::ptr::null()),
            next: Cell::new(core::ptr::null()),
            linked: Cell::new(false),
        }
    }

    /// Whether the task is on a list.
    pub fn linked(&self) -> bool {
        self.linked.get()
    }
}
