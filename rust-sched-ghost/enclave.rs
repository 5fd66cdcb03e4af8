// SPDX-License-Identifier: GPL-2.0

//! The enclave object: a set of CPUs, the tasks an agent schedules on them,
//! and the state userspace controls through the ghostfs directory
//! `enclave_<id>` ([`crate::ghostfs`] has the files; [`crate::registry`] keeps
//! the live enclaves and which CPUs each owns).
//!
//! Owns: an enclave's tunables and timeouts, its orphaned state, its member
//! list ([`Member`] nodes, each a task's place and its task) and the count
//! of tasks pointing to it (an [`Anchor`]: each task's state holds an
//! [`Entered`] reference), its queues and default queue, its status-word
//! regions, its transaction pages, and the wait queue of `destroy` (whose
//! order is [`crate::destroy`]'s).
//!
//! Calls: [`crate::queue`], [`crate::cpu_data`], [`crate::swregion`],
//! [`crate::sw`], [`crate::parse`] (CPU sets) and [`crate::sys`]: nothing
//! above it. Task state ([`crate::gtask`]) points to the enclave, and
//! [`crate::members`] (joining, leaving, listing the enclave's tasks) works
//! on both from above. Never the registry, ghostfs or the watchdog: the
//! CPUs it owns are answered by the [`CpuOwners`] it is created with, the
//! watchdog is told of an orphaning through [`EnclaveInit::on_orphaned`].
//!
//! Memory: an enclave's `cpu_data` pages and status-word regions are freed
//! when the last reference to the enclave goes, right after `destroy` (or
//! when a file callback running at that moment returns). Processes that
//! still map them keep the pages until they unmap: removing the directory
//! unmaps every mapping of its files, so later accesses get `SIGBUS`.

use crate::cpu_data::CpuData;
use crate::parse::CpuSet;
use crate::queue::Queue;
use crate::sw::{Region, SwInfo, F_CANFREE};
use crate::swregion::SwRegion;
use crate::sys::anchor::{Anchor, Anchored, Backref, Entered};
use crate::sys::keep::KeepList;
use crate::sys::kernfs::Node;
use crate::sys::list::{Links, List};
use crate::sys::rawlock::RawSpinLock;
use crate::sys::task::TaskHandle;
use crate::sys::waitq::AnyCtxWaitQueue;
use core::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use kernel::prelude::*;
use kernel::sync::{Arc, Mutex};
use kernel::uapi::GHOST_SW_TASK_MSG_GATED as SW_MSG_GATED;

/// Which CPUs an enclave owns: the registry's answer ([`crate::registry`]),
/// given to each enclave when it is created so that the object need not
/// know the registry.
pub trait CpuOwners: Sync {
    /// Whether enclave `id` owns `cpu`. May sleep.
    fn owns(&self, id: u64, cpu: usize) -> bool;
    /// The CPUs of enclave `e`. Lock-free; any context.
    fn cpus_of(&self, e: &Enclave) -> CpuSet;
}

/// What an enclave is created with: the `create` command's arguments, its
/// ghostfs directory, and who to tell when it is orphaned.
pub struct EnclaveInit {
    /// The id.
    pub id: u64,
    /// The ABI.
    pub abi: u32,
    /// The group owning its files.
    pub gid: u32,
    /// Its directory (`enclave_<id>`), removed by `destroy`.
    pub dir: Node,
    /// Its `sw_regions` directory.
    pub sw_dir: Node,
    /// For an `ephemeral` enclave, the thread group that created it.
    pub ephemeral_tgid: Option<i32>,
    /// Called when the enclave becomes orphaned (any context, runqueue locks
    /// included): starts the watchdog's checks.
    pub on_orphaned: fn(),
}

/// One enclave.
///
/// # Invariants
///
/// The enclave is freed only once `anchor` counts no task (`destroy` waits
/// for it), and it keeps its status-word regions and queues until it is
/// freed: what [`Entered`] and [`Backref`] rely on.
#[pin_data]
pub struct Enclave {
    /// Counts the tasks and agents whose ghost state points to this
    /// enclave (see [`Self::enter`]).
    anchor: Anchor,
    /// The id: the directory is `enclave_<id>`.
    pub id: u64,
    /// The ABI the enclave was created for.
    pub abi: u32,
    /// The group owning the enclave's files (`gid=`; 0 by default).
    gid: u32,
    /// Who owns which CPU (the registry).
    owners: &'static dyn CpuOwners,
    /// Told when the enclave becomes orphaned (the watchdog).
    on_orphaned: fn(),
    /// The enclave's ghostfs directory; removed by [`destroy`].
    dir: Node,
    /// The 0/1 tunables, indexed like [`TUNABLES`]. Read lock-free.
    tunables: [AtomicBool; TUNABLES.len()],
    /// `runnable_timeout` in milliseconds; 0 turns the watchdog off.
    runnable_timeout_ms: AtomicU64,
    /// Whether the enclave is orphaned, since when, and for how long it may
    /// stay so.
    orphan: Orphan,
    /// Whether `agent_online` is open for writing (the agent says it is up).
    agent_online: AtomicBool,
    /// The thread group that created an `ephemeral` enclave: the enclave is
    /// destroyed when it exits.
    ephemeral_tgid: Option<i32>,
    /// The transaction pages (`cpu_data`).
    cpu_data: CpuData,
    /// The `sw_regions` directory.
    sw_dir: Node,
    /// The status-word regions, in creation order.
    ///
    /// Agents take this lock on their hot path (`SW_FREE`), and ghost tasks
    /// take it when they fork or join, so nothing under it may sleep: a
    /// ghost task that left its CPU holding it would wait for an agent
    /// blocked on it. Hence a raw spinlock (interrupts off while held; a
    /// task cannot leave its CPU in it). The vector has room for
    /// [`MAX_SW_REGIONS`] from the start (a push never allocates), regions
    /// are never removed, and the sleeping parts of creating and mapping one
    /// run outside the lock.
    sw_regions: RawSpinLock<KVec<Arc<SwRegion>>>,
    /// Serializes `create sw_region` (which sleeps, outside `sw_regions`).
    #[pin]
    sw_create: Mutex<()>,
    /// The queues created through `ctl`: the enclave keeps them (and their
    /// memory) until it is released, so that tasks may point to them. The
    /// one chosen is the default queue, where new tasks send their
    /// messages.
    #[pin]
    queues: KeepList<Queue>,
    /// The states of tasks and agents, on a list (also the exiting tasks no
    /// pid lookup finds). Taken inside runqueue locks (a task retired under
    /// its rq lock unlinks itself); no runqueue lock is taken while it is
    /// held.
    members: RawSpinLock<List<Member, MEMBER_LIST>>,
    /// Words of departed tasks that the agent has not freed yet
    /// (`MSG_GATED`): while 0, a join need not look for one.
    gated: AtomicUsize,
    /// Set once `destroy` starts: nothing may join any more.
    dying: AtomicBool,
    /// Members linked after `dying` was set (a fork that counted itself
    /// before): `destroy` moves them out in another round.
    late_links: AtomicUsize,
}

/// An enclave's orphaned state (see [`crate::fallback`]).
struct Orphan {
    /// `agentless_timeout` in milliseconds: how long the enclave may stay
    /// orphaned before it is destroyed; 0: for ever.
    timeout_ms: AtomicU64,
    /// Since when (monotonic ns) the enclave is orphaned: its last agent
    /// died or left while it lives, and none attached since; 0 if not.
    since: AtomicI64,
    /// The `since` the watchdog last kicked the CPUs for.
    kicked: AtomicI64,
    /// Agents attached now (each `agent_attached` until its
    /// `agent_gone`).
    agents: AtomicU32,
}

/// The most queues an enclave may create.
pub const MAX_QUEUES: usize = 4096;

impl Enclave {
    /// Builds an enclave: no CPUs, no tasks, the tunables off, no
    /// `runnable_timeout`, the default `agentless_timeout`. May sleep.
    pub fn new(
        init: EnclaveInit,
        cpu_data: CpuData,
        owners: &'static dyn CpuOwners,
    ) -> Result<Arc<Enclave>> {
        let members = RawSpinLock::new(List::new())?;
        let sw_regions = RawSpinLock::new(KVec::with_capacity(MAX_SW_REGIONS, GFP_KERNEL)?)?;
        Arc::pin_init(
            pin_init!(Enclave {
                anchor: Anchor::new(left_wake_deferred),
                id: init.id,
                abi: init.abi,
                gid: init.gid,
                owners,
                on_orphaned: init.on_orphaned,
                dir: init.dir,
                tunables: [const { AtomicBool::new(false) }; TUNABLES.len()],
                runnable_timeout_ms: AtomicU64::new(0),
                orphan: Orphan {
                    timeout_ms: AtomicU64::new(DEFAULT_AGENTLESS_TIMEOUT_MS),
                    since: AtomicI64::new(0),
                    kicked: AtomicI64::new(0),
                    agents: AtomicU32::new(0),
                },
                agent_online: AtomicBool::new(false),
                ephemeral_tgid: init.ephemeral_tgid,
                cpu_data,
                sw_dir: init.sw_dir,
                sw_regions,
                sw_create <- kernel::new_mutex!(()),
                queues <- KeepList::new(),
                members,
                gated: AtomicUsize::new(0),
                dying: AtomicBool::new(false),
                late_links: AtomicUsize::new(0),
            }),
            GFP_KERNEL,
        )
    }

    /// The group owning the enclave's files.
    pub fn gid(&self) -> u32 {
        self.gid
    }

    /// The enclave's ghostfs directory.
    pub fn dir(&self) -> Node {
        self.dir
    }

    /// For an `ephemeral` enclave, the thread group that created it.
    pub fn ephemeral_tgid(&self) -> Option<i32> {
        self.ephemeral_tgid
    }

    /// Whether `destroy` has started.
    pub fn dying(&self) -> bool {
        self.dying.load(Ordering::SeqCst)
    }

    /// A counted reference for a task (or agent) about to point to this
    /// enclave; `EXDEV` if the enclave is being destroyed. Dropping it
    /// uncounts the task: the last one out wakes `destroy` (any context:
    /// the wakeup is deferred), without touching the enclave after the
    /// decrement.
    ///
    /// The count comes first and the check second, while `destroy` sets
    /// `dying` first and waits for the count second: either the entering
    /// task sees `dying`, or `destroy` sees the task.
    pub fn enter(&self) -> Result<Entered<Enclave>> {
        let entered = Entered::new(self);
        if self.dying() {
            return Err(EXDEV);
        }
        Ok(entered)
    }

    /// Tasks and agents in the enclave.
    pub fn nr_tasks(&self) -> usize {
        self.anchor.count()
    }

    /// Whether the enclave is orphaned (see [`Orphan`]).
    pub fn orphaned(&self) -> bool {
        self.orphan.since.load(Ordering::Acquire) != 0
    }

    /// Since when the enclave is orphaned (monotonic ns), if it is.
    pub fn orphaned_since(&self) -> Option<i64> {
        let t = self.orphan.since.load(Ordering::Acquire);
        (t != 0).then_some(t)
    }

    /// An agent of the enclave died or left: if it was the last one and
    /// the enclave is not being destroyed, the enclave is orphaned from now
    /// on, and the watchdog starts the fallback on every CPU. Any context.
    pub fn agent_gone(&self, now: i64) {
        let before = self
            .orphan
            .agents
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_sub(1))
            })
            .unwrap_or(0);
        if self.dying() || before > 1 {
            // Agents remain: they schedule the enclave's tasks.
            return;
        }
        // `now` is never 0 after boot; keep the first orphaning's time.
        let _ =
            self.orphan
                .since
                .compare_exchange(0, now.max(1), Ordering::AcqRel, Ordering::Acquire);
        (self.on_orphaned)();
    }

    /// An agent attached: the enclave is no longer orphaned.
    pub fn agent_attached(&self) {
        self.orphan.agents.fetch_add(1, Ordering::AcqRel);
        self.orphan.since.store(0, Ordering::Release);
    }

    /// Whether the CPUs still have to be kicked for the orphaning at
    /// `since` (true once per orphaning).
    pub fn take_orphan_kick(&self, since: i64) -> bool {
        self.orphan.kicked.swap(since, Ordering::AcqRel) != since
    }

    /// `agentless_timeout` in ns (0: never).
    pub fn agentless_timeout_ns(&self) -> i64 {
        // At most `MAX_RUNNABLE_TIMEOUT_MS`: the product fits.
        (self.orphan.timeout_ms.load(Ordering::Relaxed) as i64).saturating_mul(1_000_000)
    }

    /// `runnable_timeout` in ns (0: no watchdog).
    pub fn runnable_timeout_ns(&self) -> i64 {
        // At most `MAX_RUNNABLE_TIMEOUT_MS`: the product fits.
        (self.runnable_timeout_ms.load(Ordering::Relaxed) as i64).saturating_mul(1_000_000)
    }

    /// A tunable (an index into [`TUNABLES`]).
    pub fn tunable(&self, i: usize) -> bool {
        self.tunables
            .get(i)
            .is_some_and(|t| t.load(Ordering::Relaxed))
    }

    /// Sets tunable `i` (an index into [`TUNABLES`]); `EINVAL` past them.
    pub fn set_tunable(&self, i: usize, on: bool) -> Result {
        self.tunables
            .get(i)
            .ok_or(EINVAL)?
            .store(on, Ordering::Relaxed);
        Ok(())
    }

    /// `runnable_timeout` in milliseconds.
    pub fn runnable_timeout_ms(&self) -> u64 {
        self.runnable_timeout_ms.load(Ordering::Relaxed)
    }

    /// Sets `runnable_timeout` (at most [`MAX_RUNNABLE_TIMEOUT_MS`]: the
    /// caller checks).
    pub fn set_runnable_timeout_ms(&self, ms: u64) {
        self.runnable_timeout_ms.store(ms, Ordering::Relaxed);
    }

    /// `agentless_timeout` in milliseconds.
    pub fn agentless_timeout_ms(&self) -> u64 {
        self.orphan.timeout_ms.load(Ordering::Relaxed)
    }

    /// Sets `agentless_timeout` (at most [`MAX_RUNNABLE_TIMEOUT_MS`]: the
    /// caller checks).
    pub fn set_agentless_timeout_ms(&self, ms: u64) {
        self.orphan.timeout_ms.store(ms, Ordering::Relaxed);
    }

    /// Whether some process holds `agent_online` open for writing.
    pub fn agent_online(&self) -> bool {
        self.agent_online.load(Ordering::Acquire)
    }

    /// Claims `agent_online` for a writer; `false` if another holds it.
    pub fn claim_agent_online(&self) -> bool {
        self.agent_online
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The writer of `agent_online` closed it.
    pub fn release_agent_online(&self) {
        self.agent_online.store(false, Ordering::Release);
    }

    /// Creates the status-word region `id` on NUMA node `node` (online:
    /// the caller checks) and its file, which `make_file` creates (not
    /// activated) in the `sw_regions` directory given to it, with the
    /// enclave's group; the file is activated once the region is in place.
    /// `EEXIST` if the id is taken, `ENOSPC` beyond [`MAX_SW_REGIONS`],
    /// `ENODEV` once `destroy` started. May sleep.
    pub fn create_sw_region(
        &self,
        id: u32,
        node: u32,
        make_file: impl FnOnce(Node, u32) -> Result<Node>,
    ) -> Result {
        // Creators are serialized: what is checked here still holds at the
        // push. A destroy marks the enclave dying under the same lock before
        // it removes the directory (see `destroy::shutdown`).
        let _creating = self.sw_create.lock();
        if self.dying() {
            return Err(ENODEV);
        }
        {
            let regions = self.sw_regions.lock();
            if regions.iter().any(|r| r.id == id) {
                return Err(EEXIST);
            }
            if regions.len() >= MAX_SW_REGIONS {
                return Err(ENOSPC);
            }
        }
        let file = make_file(self.sw_dir, self.gid)?;
        // Within the capacity reserved at creation: the push does not
        // allocate.
        let added = SwRegion::new(id, node)
            .and_then(|r| Arc::new(r, GFP_KERNEL).map_err(Error::from))
            .and_then(|r| {
                self.sw_regions
                    .lock()
                    .push(r, GFP_ATOMIC)
                    .map_err(Error::from)
            });
        if let Err(err) = added {
            // Not activated: no callback can be running on it.
            file.remove();
            return Err(err);
        }
        file.activate();
        Ok(())
    }

    /// The status-word region `id`, if there is one.
    pub fn sw_region(&self, id: u32) -> Option<Arc<SwRegion>> {
        let regions = self.sw_regions.lock();
        regions.iter().find(|r| r.id == id).cloned()
    }

    /// The transaction pages.
    pub fn cpu_data(&self) -> &CpuData {
        &self.cpu_data
    }

    /// Whether `cpu` belongs to this enclave. May sleep.
    pub fn owns_cpu(&self, cpu: i32) -> bool {
        let Ok(cpu) = usize::try_from(cpu) else {
            return false;
        };
        self.owners.owns(self.id, cpu)
    }

    /// The CPUs of this enclave. Lock-free; any context.
    pub fn cpus(&self) -> CpuSet {
        self.owners.cpus_of(self)
    }

    /// Allocates a status word from the first region with room, for a task
    /// that holds `me` on this enclave. `ENOMEM` if every region is full
    /// (or there is none). Never sleeps.
    pub fn alloc_sw(me: &Entered<Enclave>) -> Result<(Backref<Region>, SwInfo)> {
        let regions = me.get().sw_regions.lock();
        for r in regions.iter() {
            if let Some(info) = r.alloc() {
                // The enclave keeps its regions until it is freed.
                return Ok((me.backref(r.region()), info));
            }
        }
        Err(ENOMEM)
    }

    /// `SW_FREE`: frees a status word the kernel gave up (`F_CANFREE`).
    /// `ENOENT` for no such region or word, `EINVAL` for a word that is
    /// not `CANFREE`. Returns the gtid of the task whose messages the word
    /// gated (`MSG_GATED`), for the caller to ungate: the task may have
    /// come back meanwhile, and now its agent hears. May sleep.
    pub fn free_sw(&self, info: SwInfo) -> Result<Option<i64>> {
        let regions = self.sw_regions.lock();
        let r = regions.iter().find(|r| r.id == info.id).ok_or(ENOENT)?;
        let w = r.region().word(info.index).ok_or(ENOENT)?;
        let flags = w.flags.load(Ordering::Acquire);
        if flags & F_CANFREE == 0 {
            return Err(EINVAL);
        }
        let gtid = w.gtid.load(Ordering::Relaxed) as i64;
        if !r.free(info.index) {
            return Err(ENOENT);
        }
        let gated = flags & SW_MSG_GATED != 0;
        if gated {
            self.gated.fetch_sub(1, Ordering::SeqCst);
        }
        drop(regions);
        Ok(gated.then_some(gtid))
    }

    /// Counts a word that a departure gated (`MSG_GATED`).
    pub fn note_gated(&self) {
        self.gated.fetch_add(1, Ordering::SeqCst);
    }

    /// Whether task `gtid` left this enclave and the agent has not freed
    /// the word of that stay yet (its TASK_DEPARTED may still be unread).
    /// Never sleeps.
    pub fn departed_unfreed(&self, gtid: i64) -> bool {
        if self.gated.load(Ordering::SeqCst) == 0 {
            return false;
        }
        let regions = self.sw_regions.lock();
        regions
            .iter()
            .any(|r| r.region().has_word(F_CANFREE | SW_MSG_GATED, gtid as u64))
    }

    /// Keeps `q` (made by this enclave's `ctl`) until the enclave goes.
    /// `ENOSPC` beyond [`MAX_QUEUES`]. May sleep.
    pub fn add_queue(&self, q: Arc<Queue>) -> Result {
        self.queues.add(q, MAX_QUEUES)
    }

    /// Whether `q` is one of this enclave's queues.
    pub fn owns_queue(&self, q: &Queue) -> bool {
        q.enclave_id == self.id
    }

    /// The default queue: where new tasks send their messages.
    pub fn default_queue(&self) -> Option<&Queue> {
        self.queues.chosen()
    }

    /// `SET_DEFAULT_QUEUE`; `EINVAL` for a queue of another enclave. May
    /// sleep.
    pub fn set_default_queue(&self, q: &Queue) -> Result {
        if !self.owns_queue(q) {
            return Err(EINVAL);
        }
        // Every queue of this enclave is on `self.queues`.
        self.queues.choose(q)
    }

    /// Links `m`, the place of a task state of this enclave, as a member
    /// (see [`crate::members`]): boxed, it is linked until its drop, which
    /// unlinks it ([`Self::unlink_member`]). Never sleeps.
    pub fn link_member(&self, m: &Member) {
        self.members.lock().push_front(m);
        // `destroy` sets `dying` before it lists the members (under the
        // members lock): a member it did not list sees `dying` here.
        if self.dying() {
            self.late_links.fetch_add(1, Ordering::SeqCst);
            LEFT.wake();
        }
    }

    /// Unlinks `m` (if linked). Never sleeps.
    pub fn unlink_member(&self, m: &Member) {
        self.members.lock().remove(m);
    }

    /// The member task with gtid `gtid`, even one no pid lookup finds any
    /// more (exiting), with a reference. Never sleeps; O(members).
    pub fn find_member(&self, gtid: i64) -> Option<TaskHandle> {
        let members = self.members.lock();
        let m = members.iter().find(|m| m.task().gtid() == gtid)?;
        Some(TaskHandle::get(m.task()))
    }

    /// The task `gtid` (`gtid` > 0): by pid, else among the members.
    pub fn task_by_gtid(&self, gtid: i64) -> Option<TaskHandle> {
        crate::sys::task::by_gtid(gtid).or_else(|| self.find_member(gtid))
    }

    /// Marks the enclave dying, under the creators' lock: a `create
    /// sw_region` in progress has activated its file before the directory
    /// is removed, and a later one sees `dying` and creates none (a file
    /// created in the directory while it is removed would be freed before
    /// its creator activates it). Then no task may join.
    pub fn mark_dying(&self) {
        let _creating = self.sw_create.lock();
        self.dying.store(true, Ordering::SeqCst);
    }

    /// How many members were linked after [`Self::mark_dying`] (a destroy
    /// round that listed the members before moves them next).
    pub fn late_links(&self) -> usize {
        self.late_links.load(Ordering::SeqCst)
    }

    /// Sleeps until `cond` holds or `ms` passed, woken when the last task
    /// leaves or a member is linked late; whether `cond` held. Process
    /// context.
    pub fn wait_for_leavers(&self, ms: u32, cond: impl FnMut() -> bool) -> bool {
        LEFT.wait_until(ms, cond)
    }

    /// Every member's task (tasks and agents still pointing here), with a
    /// reference each. May sleep.
    pub fn members_snapshot(&self) -> KVec<TaskHandle> {
        let mut out = KVec::new();
        // Members joining between the count and the copy are left for the
        // caller's next round (destroy goes round until none is left).
        let n = self.members.lock().len();
        if out.reserve(n.saturating_add(16), GFP_KERNEL).is_err() {
            return out;
        }
        let members = self.members.lock();
        for m in members.iter() {
            if out.len() >= out.capacity() {
                break;
            }
            // Within capacity: `push` does not allocate (the lock is held).
            let _ = out.push(TaskHandle::get(m.task()), GFP_NOWAIT);
        }
        out
    }
}

impl Anchored for Enclave {
    fn anchor(&self) -> &Anchor {
        &self.anchor
    }
}

/// The kind of list [`Member`]s are on (an enclave's member list).
pub const MEMBER_LIST: usize = 0;

/// A task state's place on its enclave's member list, and its task: what
/// the list answers ([`Enclave::find_member`], [`Enclave::members_snapshot`]).
///
/// A member holds a reference on its task, so a member's task is valid
/// while it is linked, whichever path frees the state.
pub struct Member {
    links: Links<Member, MEMBER_LIST>,
    task: TaskHandle,
}

crate::impl_has_links!(Member, links, MEMBER_LIST);

impl Member {
    /// The place of task `task`, not linked yet.
    pub fn new(task: TaskHandle) -> Self {
        Member {
            links: Links::new(),
            task,
        }
    }

    /// The task.
    pub fn task(&self) -> crate::sys::rq::TaskPtr {
        self.task.as_ptr()
    }
}

/// Wakes a `destroy` waiting for its enclave's tasks to leave.
static LEFT: AnyCtxWaitQueue = AnyCtxWaitQueue::new(left_wake);

/// `LEFT`'s wake (its irq_work: hard interrupt, no runqueue lock).
fn left_wake() {
    LEFT.wake_now();
}

/// The last task of an enclave left (any context): wakes `destroy`.
fn left_wake_deferred() {
    LEFT.wake();
}

/// Sets up what enclaves share (the wait queue of `destroy`). Called once
/// at boot, before any enclave exists.
pub fn init() {
    LEFT.init(kernel::c_str!("ghost_destroy"));
}

/// The most status-word regions (2 MiB each) an enclave may have.
pub const MAX_SW_REGIONS: usize = 64;

/// The 0/1 tunables of an enclave, each a file `enclave_<id>/<name>` (0664):
/// commit greedy transactions on the tick; send `CPU_TICK`; send
/// `CPU_AVAILABLE`/`CPU_BUSY`; send `CPU_AGENT_BLOCKED`/`CPU_AGENT_WAKEUP`;
/// wake tasks on the waker's CPU; refuse switchto; let agent threads open
/// enclave files.
pub const TUNABLES: [&kernel::str::CStr; 7] = [
    kernel::c_str!("commit_at_tick"),
    kernel::c_str!("deliver_ticks"),
    kernel::c_str!("deliver_cpu_availability"),
    kernel::c_str!("deliver_agent_runnability"),
    kernel::c_str!("wake_on_waker_cpu"),
    kernel::c_str!("switchto_disabled"),
    kernel::c_str!("live_dangerously"),
];

/// Index of `commit_at_tick` in [`TUNABLES`].
pub const COMMIT_AT_TICK: usize = 0;
/// Index of `deliver_ticks` in [`TUNABLES`].
pub const DELIVER_TICKS: usize = 1;
/// Index of `deliver_cpu_availability` in [`TUNABLES`].
pub const DELIVER_CPU_AVAILABILITY: usize = 2;
/// Index of `deliver_agent_runnability` in [`TUNABLES`].
pub const DELIVER_AGENT_RUNNABILITY: usize = 3;
/// Index of `live_dangerously` in [`TUNABLES`].
pub const LIVE_DANGEROUSLY: usize = 6;

/// The largest `runnable_timeout` (ms) whose nanoseconds fit a `ktime_t`.
pub const MAX_RUNNABLE_TIMEOUT_MS: u64 = i64::MAX as u64 / 1_000_000;

/// The default `agentless_timeout` (ms): long enough for a restarted
/// agent to come up on a busy machine, short enough that a crashed one
/// does not leave its tasks in the fallback for long.
pub const DEFAULT_AGENTLESS_TIMEOUT_MS: u64 = 60_000;
