// SPDX-License-Identifier: GPL-2.0

//! Enclaves: a set of CPUs, the tasks an agent schedules on them, and the
//! ghostfs directory `enclave_<id>` through which userspace controls them.
//!
//! Every enclave lives in a global registry, keyed by id. ghostfs files carry
//! the enclave id as their key and look the enclave up on each call, so a
//! file of a destroyed enclave can never reach freed memory: the lookup just
//! fails (and kernfs refuses calls on removed nodes anyway).
//!
//! Implemented so far: `create` (also `ephemeral`), `destroy`, and the files
//! `ctl` (read: the id; write: `destroy`, `create sw_region`, `become
//! agent`, `discover tasks`; `disable my bpf_prog_load` is accepted),
//! `tasks` (write: a task joins; read: the pids of its tasks),
//! `cpulist`/`cpumask`, `cpu_data`, `sw_regions/sw_<id>`, `agent_online`,
//! `abi_version`, `status`, `runnable_timeout` and the 0/1 tunables (stored;
//! the scheduling core will act on them).
//!
//! Memory: an enclave's `cpu_data` pages and status-word regions are freed
//! when the last reference to the enclave goes, right after `destroy` (or
//! when a file callback running at that moment returns). Processes that
//! still map them keep the pages until they unmap: removing the directory
//! unmaps every mapping of its files, so later accesses get `SIGBUS`.

use crate::agent::percpu::GhostRq;
use crate::cpu_data::CpuData;
use crate::ghostfs::parse_errno;
use crate::gtask::{GhostTask, SW_MSG_GATED};
use crate::members::{self, Members};
use crate::parse::{
    format_cpulist, format_cpumask, parse_cpulist, parse_cpumask, parse_enclave_cmd, parse_int,
    parse_signed, parse_u32, parse_unsigned, CpuSet, EnclaveCmd, KstrtoError, ParseError, MAX_CPUS,
};
use crate::queue::Queue;
use crate::sw::{Region, SwInfo, F_CANFREE};
use crate::swregion::SwRegion;
use crate::sys::cred::{capable, errno};
use crate::sys::kernfs::{FileOps, Node, OpenFile, Perm, SeqFile};
use crate::sys::mm::Vma;
use crate::sys::rawlock::RawSpinLock;
use crate::sys::rq::{RqGuard, TaskRqGuard};
use crate::sys::task::TaskHandle;
use crate::sys::waitq::AnyCtxWaitQueue;
use crate::GHOST_VERSION;
use core::fmt::Write;
use core::ptr::NonNull;
use core::sync::atomic::{
    AtomicBool, AtomicI64, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};
use kernel::bindings;
use kernel::prelude::*;
use kernel::str::CString;
use kernel::sync::{Arc, Mutex, SpinLock};

/// One enclave.
#[pin_data]
pub struct Enclave {
    /// The id: the directory is `enclave_<id>`.
    pub id: u64,
    /// The ABI the enclave was created for.
    pub abi: u32,
    /// The group owning the enclave's files (`gid=`; 0 by default).
    gid: u32,
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
    sw_regions: RawSpinLock<KVec<SwRegion>>,
    /// Serializes `create sw_region` (which sleeps, outside `sw_regions`).
    #[pin]
    sw_create: Mutex<()>,
    /// The queues created through `ctl`: the enclave keeps them (and their
    /// memory) until it is released, so that tasks may point to them.
    #[pin]
    queues: Mutex<KVec<Arc<Queue>>>,
    /// The queue new tasks send their messages to (one of `queues`).
    def_q: AtomicPtr<Queue>,
    /// Tasks and agents whose ghost state points to this enclave.
    nr_tasks: AtomicUsize,
    /// Their states, on a list (also the exiting tasks no pid lookup finds).
    members: RawSpinLock<Members>,
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
    /// Whether `destroy` has started.
    pub fn dying(&self) -> bool {
        self.dying.load(Ordering::SeqCst)
    }

    /// Counts a task (or agent) about to point to this enclave; `EXDEV` if
    /// the enclave is being destroyed. Pairs with [`Self::leave`].
    ///
    /// The count comes first and the check second, while `destroy` sets
    /// `dying` first and waits for the count second: either the entering
    /// task sees `dying`, or `destroy` sees the task.
    pub fn enter(&self) -> Result {
        self.nr_tasks.fetch_add(1, Ordering::SeqCst);
        if self.dying() {
            self.leave();
            return Err(errno(bindings::EXDEV));
        }
        Ok(())
    }

    /// Uncounts a task. After this the caller must not touch the enclave
    /// unless it holds a reference.
    ///
    /// The last one out wakes `destroy` (any context: the wakeup is
    /// deferred), without touching the enclave after the decrement.
    pub fn leave(&self) {
        if self.nr_tasks.fetch_sub(1, Ordering::SeqCst) == 1 {
            LEFT.wake();
        }
    }

    /// Tasks and agents in the enclave.
    pub fn nr_tasks(&self) -> usize {
        self.nr_tasks.load(Ordering::SeqCst)
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
        crate::watchdog::orphaned();
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

    /// The transaction pages.
    pub fn cpu_data(&self) -> &CpuData {
        &self.cpu_data
    }

    /// Whether `cpu` belongs to this enclave. May sleep.
    pub fn owns_cpu(&self, cpu: i32) -> bool {
        let Ok(cpu) = usize::try_from(cpu) else {
            return false;
        };
        registry().is_ok_and(|r| r.lock().cpu_owner.get(cpu) == Some(&Some(self.id)))
    }

    /// The CPUs of this enclave. May sleep.
    pub fn cpus(&self) -> CpuSet {
        registry().map_or(CpuSet::new(), |r| r.lock().cpus_of(self.id))
    }

    /// Allocates a status word from the first region with room. `ENOMEM`
    /// if every region is full (or there is none). Never sleeps.
    pub fn alloc_sw(&self) -> Result<(NonNull<Region>, SwInfo)> {
        let regions = self.sw_regions.lock();
        for r in regions.iter() {
            if let Some(info) = r.alloc() {
                return Ok((NonNull::from(r.region()), info));
            }
        }
        Err(ENOMEM)
    }

    /// `SW_FREE`: frees a status word the kernel gave up (`F_CANFREE`).
    /// `ENOENT` for no such region or word, `EINVAL` for a word that is
    /// not `CANFREE`. May sleep.
    pub fn free_sw(&self, info: SwInfo) -> Result {
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
        if gated {
            // The task may have come back meanwhile: now the agent hears.
            crate::sched::ungate(self, gtid);
        }
        Ok(())
    }

    /// Counts a word that a departure gated (`MSG_GATED`).
    pub fn note_gated(&self) {
        self.gated.fetch_add(1, Ordering::SeqCst);
    }

    /// A task `gtid` enters: if the word of its earlier stay is still
    /// gated (the agent has not freed it), runs `gate`, which holds the
    /// task's messages back until that word is freed. Atomic with
    /// [`Self::free_sw`]: a word is either found here or ungated there.
    /// May sleep.
    pub fn gate_reentry(&self, gtid: i64, gate: impl FnOnce()) {
        if self.departed_unfreed(gtid) {
            gate();
        }
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
        let mut queues = self.queues.lock();
        if queues.len() >= MAX_QUEUES {
            return Err(ENOSPC);
        }
        queues.push(q, GFP_KERNEL)?;
        Ok(())
    }

    /// Whether `q` is one of this enclave's queues.
    pub fn owns_queue(&self, q: &Queue) -> bool {
        q.enclave_id == self.id
    }

    /// The default queue: where new tasks send their messages.
    pub fn default_queue(&self) -> Option<&Queue> {
        // SAFETY: NULL or a queue in `self.queues`, kept until `self` goes.
        unsafe { self.def_q.load(Ordering::Acquire).as_ref() }
    }

    /// `SET_DEFAULT_QUEUE`; `EINVAL` for a queue of another enclave.
    pub fn set_default_queue(&self, q: &Queue) -> Result {
        if !self.owns_queue(q) {
            return Err(EINVAL);
        }
        // Kept by `self.queues` (every queue of this enclave is).
        self.def_q
            .store(core::ptr::from_ref(q).cast_mut(), Ordering::Release);
        Ok(())
    }

    /// Links `gt` as a member (see [`crate::members`]). Never sleeps.
    ///
    /// # Safety
    ///
    /// `gt`, a state of this enclave, is not linked yet and stays at its
    /// address until its drop, which unlinks it.
    pub unsafe fn link_member(&self, gt: &GhostTask) {
        // SAFETY: the caller's guarantee.
        unsafe { self.members.lock().link(gt) };
        // `destroy` sets `dying` before it lists the members (under the
        // members lock): a member it did not list sees `dying` here.
        if self.dying() {
            self.late_links.fetch_add(1, Ordering::SeqCst);
            LEFT.wake();
        }
    }

    /// Unlinks `gt` (if linked). Never sleeps.
    pub fn unlink_member(&self, gt: &GhostTask) {
        self.members.lock().unlink(gt)
    }

    /// The member task with gtid `gtid`, even one no pid lookup finds any
    /// more (exiting). Never sleeps; O(members).
    pub fn find_member(&self, gtid: i64) -> Option<TaskHandle> {
        self.members.lock().find(gtid)
    }

    /// The task `gtid` (`gtid` > 0): by pid, else among the members.
    pub fn task_by_gtid(&self, gtid: i64) -> Option<TaskHandle> {
        crate::sys::task::by_gtid(gtid).or_else(|| self.find_member(gtid))
    }

    /// The tasks (not agents) in this enclave, with a reference each.
    /// May sleep.
    pub fn tasks(&self) -> KVec<TaskHandle> {
        let mut out = KVec::new();
        for t in members::snapshot(&self.members) {
            let g = TaskRqGuard::lock(t);
            let mine = GhostTask::of(&g, g.task())
                .is_some_and(|gt| !gt.is_agent() && core::ptr::eq(gt.enclave(), self));
            let t = g.unlock();
            if mine {
                // Out of memory: the list is short by one; callers retry or
                // report what they have.
                let _ = out.push(t, GFP_KERNEL);
            }
        }
        out
    }

    /// Destroys the scheduling side: no task may join any more, agents are
    /// killed, every task goes back to `SCHED_NORMAL`; returns once no
    /// task or agent points to the enclave. Process context (sleeps).
    fn shutdown(self: &Arc<Self>) {
        {
            // Under the creators' lock: a `create sw_region` in progress
            // has activated its file before the directory is removed, and
            // a later one sees `dying` and creates none (a file created in
            // the directory while it is removed would be freed before its
            // creator activates it).
            let _creating = self.sw_create.lock();
            self.dying.store(true, Ordering::SeqCst);
        }
        // A task of this enclave that destroys it leaves first: once the
        // agents are killed, nothing would run it again if it slept or were
        // preempted below (an allocation, the wait), and it would wait for
        // its own destroy for good. So does an agent of it (the last thread
        // of an ephemeral enclave's owner may be one): it cannot wait for
        // its own exit; it is killed all the same, as every agent is.
        if let Ok(me) = crate::sys::task::TaskHandle::current() {
            let g = TaskRqGuard::lock(me);
            let mine = GhostTask::of(&g, g.task())
                .filter(|gt| core::ptr::eq(gt.enclave(), &**self))
                .map(|gt| gt.agent_cpu);
            let me = g.unlock();
            if let Some(agent_cpu) = mine {
                crate::sched::leave_ghost(&me);
                if let Some(cpu) = agent_cpu {
                    crate::agent::kill(&me, cpu);
                }
            }
        }
        // Agents first: once they are gone, nothing commits.
        for cpu in 0..crate::sys::rq::nr_cpu_ids() as i32 {
            let agent = {
                let Some(rq) = RqGuard::lock(cpu) else {
                    continue;
                };
                let Some(g) = GhostRq::of(cpu) else {
                    continue;
                };
                g.agent()
                    .filter(|a| {
                        GhostTask::of(&rq, *a)
                            .is_some_and(|gt| core::ptr::eq(gt.enclave(), &**self))
                    })
                    .map(TaskHandle::get)
            };
            if let Some(a) = agent {
                crate::agent::kill(&a, cpu);
            }
        }
        // Then tasks; a task forking meanwhile adds a child that the next
        // round moves. Each round waits until the last task is out (`leave`
        // wakes `LEFT`) or a late member needs moving (`link_member` does).
        // Without either for `SHUTDOWN_RECHECK_MS` (a task that could not
        // be moved yet, e.g. one still being forked), the round repeats.
        // Nothing is ever leaked: a task pointing to the enclave keeps
        // `destroy` waiting, and one that does so for long is reported.
        let mut stalled_ms: u32 = 0;
        let mut reported = false;
        loop {
            let links = self.late_links.load(Ordering::SeqCst);
            let before = self.nr_tasks();
            for t in self.tasks() {
                crate::sched::leave_ghost(&t);
            }
            let woken = LEFT.wait_until(SHUTDOWN_RECHECK_MS, || {
                self.nr_tasks() == 0 || self.late_links.load(Ordering::SeqCst) != links
            });
            let left = self.nr_tasks();
            if left == 0 {
                if reported {
                    pr_info!("enclave_{}: the last task left\n", self.id);
                }
                return;
            }
            if woken || left < before {
                stalled_ms = 0;
                continue;
            }
            stalled_ms = stalled_ms.saturating_add(SHUTDOWN_RECHECK_MS);
            if stalled_ms >= SHUTDOWN_REPORT_MS && !reported {
                reported = true;
                pr_warn!(
                    "enclave_{}: destroy still waits for {} tasks or agents to leave\n",
                    self.id,
                    left
                );
                for t in members::snapshot(&self.members) {
                    pr_warn!("enclave_{}: left: pid {}\n", self.id, t.as_ptr().pid());
                }
            }
        }
    }
}

/// Wakes a `destroy` waiting for its enclave's tasks to leave.
static LEFT: AnyCtxWaitQueue = AnyCtxWaitQueue::uninit();

/// `LEFT`'s irq_work handler.
///
/// # Safety
///
/// Called by the irq_work core (hard interrupt, no runqueue lock).
unsafe extern "C" fn left_wake(_w: *mut bindings::irq_work) {
    LEFT.wake_now();
}

/// How long a `destroy` round waits for news before it moves the tasks
/// out again (ms).
const SHUTDOWN_RECHECK_MS: u32 = 100;

/// After how long without progress a `destroy` reports who is left (ms).
const SHUTDOWN_REPORT_MS: u32 = 10_000;

/// The most status-word regions (2 MiB each) an enclave may have.
pub const MAX_SW_REGIONS: usize = 64;

/// Live ephemeral enclaves: while 0, a process exit costs one atomic load.
static NR_EPHEMERAL: AtomicUsize = AtomicUsize::new(0);

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
const MAX_RUNNABLE_TIMEOUT_MS: u64 = i64::MAX as u64 / 1_000_000;

/// Live enclaves at most (creating one more fails with `ENOSPC`).
pub const MAX_ENCLAVES: usize = 1024;

/// The registry of live enclaves.
struct Registry {
    /// [`MAX_ENCLAVES`] slots, allocated at boot (so that nothing allocates
    /// under the registry's spinlock); a destroyed enclave's slot is reused.
    slots: KVec<Option<Arc<Enclave>>>,
    /// The enclave owning each CPU (`nr_cpu_ids` entries): a CPU belongs to
    /// at most one enclave.
    cpu_owner: KVec<Option<u64>>,
}

impl Registry {
    fn find(&self, id: u64) -> Option<&Arc<Enclave>> {
        self.slots.iter().flatten().find(|e| e.id == id)
    }

    /// The CPUs of enclave `id`.
    fn cpus_of(&self, id: u64) -> CpuSet {
        let mut set = CpuSet::new();
        for (cpu, owner) in self.cpu_owner.iter().enumerate() {
            if *owner == Some(id) {
                set.insert(cpu);
            }
        }
        set
    }

    /// Gives enclave `id` exactly the CPUs of `want`, or changes nothing.
    /// Returns the CPUs it did not have before.
    ///
    /// With `keep_agents`, a CPU that has an agent cannot leave (`EEXIST`):
    /// its agent would go on running on a CPU the enclave no longer owns.
    /// Destroy passes `false` (it kills the agents). `become agent` claims
    /// the CPU and then checks the owner under this lock, so either it sees
    /// the CPU gone or this sees the claim.
    fn set_cpus(&mut self, id: u64, want: &CpuSet, keep_agents: bool) -> Result<CpuSet> {
        // ghOSt's order of checks: leaving CPUs with an agent, then joining
        // CPUs that are offline, then joining CPUs of another enclave.
        if keep_agents {
            let leaving = self
                .cpu_owner
                .iter()
                .enumerate()
                .filter(|(cpu, owner)| **owner == Some(id) && !want.contains(*cpu));
            for (cpu, _) in leaving {
                let claimed = i32::try_from(cpu)
                    .ok()
                    .and_then(GhostRq::of)
                    .is_some_and(|g| g.agent_claimed());
                if claimed {
                    return Err(EEXIST);
                }
            }
        }
        for cpu in want.iter() {
            match self.cpu_owner.get(cpu) {
                None => return Err(EINVAL),
                Some(Some(owner)) if *owner == id => {}
                Some(_) if !cpu_usable(cpu) => return Err(ENODEV),
                Some(_) => {}
            }
        }
        for cpu in want.iter() {
            if let Some(Some(owner)) = self.cpu_owner.get(cpu) {
                if *owner != id {
                    return Err(EBUSY);
                }
            }
        }
        let mut added = CpuSet::new();
        for (cpu, owner) in self.cpu_owner.iter_mut().enumerate() {
            if want.contains(cpu) {
                if *owner != Some(id) {
                    added.insert(cpu);
                }
                *owner = Some(id);
            } else if *owner == Some(id) {
                *owner = None;
            }
        }
        Ok(added)
    }

    /// Takes enclave `id` out of the registry and frees its CPUs.
    fn take(&mut self, id: u64) -> Option<Arc<Enclave>> {
        let slot = self
            .slots
            .iter_mut()
            .find(|s| s.as_ref().is_some_and(|e| e.id == id))?;
        let enclave = slot.take()?;
        // An empty set cannot be refused.
        let _ = self.set_cpus(id, &CpuSet::new(), false);
        if enclave.ephemeral_tgid.is_some() {
            NR_EPHEMERAL.fetch_sub(1, Ordering::Relaxed);
        }
        Some(enclave)
    }
}

/// The number of CPU ids (`nr_cpu_ids`), capped at what a [`CpuSet`] holds.
fn nr_cpu_ids() -> usize {
    // SAFETY: `nr_cpu_ids` is set during early boot and read-only afterwards.
    let n = unsafe { bindings::nr_cpu_ids };
    usize::try_from(n).map_or(MAX_CPUS, |n| n.min(MAX_CPUS))
}

/// Whether `cpu` is online and active: not on its way down. Checked under
/// the registry lock, which the hotplug teardown takes after the CPU is
/// deactivated (see [`crate::hotplug`]): either the teardown sees the CPU
/// in an enclave and refuses, or this sees it inactive.
fn cpu_usable(cpu: usize) -> bool {
    let Ok(c) = u32::try_from(cpu) else {
        return false;
    };
    // SAFETY: `cpu_online`/`cpu_active` only test a bit of a CPU mask; `cpu`
    // is below `nr_cpu_ids`, checked by the callers.
    unsafe { bindings::ghost_cpu_online(c) && bindings::ghost_cpu_active(c) }
}

/// The registry and the lock that serializes enclave creation.
///
/// Why a spinlock: agents look their enclave up on every ctl call (commits
/// included), and so does the watchdog. A sleeping lock here could be held
/// by a ghost task that left its CPU inside the critical section (it slept
/// in an allocation, or was preempted at a `cond_resched()`); such a task
/// runs again only when its agent commits it, and an agent blocked on the
/// lock never would: every enclave's agents, the watchdog and `destroy`
/// would hang (found by the fuzzer). Under a spinlock a task cannot leave
/// its CPU. Nothing under it sleeps or allocates with `GFP_KERNEL`.
///
/// Creating an enclave builds kernfs nodes, which sleeps: it runs under the
/// `create` mutex instead (which only creators take) and takes the spinlock
/// just to insert the finished enclave.
#[pin_data]
struct Registries {
    #[pin]
    data: SpinLock<Registry>,
    #[pin]
    create: Mutex<()>,
}

/// The registries, set up once by [`init`] and never freed.
static REGISTRY: AtomicPtr<Registries> = AtomicPtr::new(core::ptr::null_mut());

/// Sets up the registry. Called once at boot, before ghostfs is registered.
pub fn init() -> Result {
    // SAFETY: boot, once, before any enclave exists; `left_wake` wakes
    // `LEFT`.
    unsafe { LEFT.init(kernel::c_str!("ghost_destroy"), left_wake) };
    let mut cpu_owner = KVec::with_capacity(nr_cpu_ids(), GFP_KERNEL)?;
    for _ in 0..nr_cpu_ids() {
        cpu_owner.push(None, GFP_KERNEL)?;
    }
    let mut slots = KVec::with_capacity(MAX_ENCLAVES, GFP_KERNEL)?;
    for _ in 0..MAX_ENCLAVES {
        slots.push(None, GFP_KERNEL)?;
    }
    let registry = Registry { slots, cpu_owner };
    let reg = KBox::pin_init(
        pin_init!(Registries {
            data <- kernel::new_spinlock!(registry),
            create <- kernel::new_mutex!(()),
        }),
        GFP_KERNEL,
    )?;
    // SAFETY: the locks are never moved out of their allocation: the box is
    // leaked below and only ever used through a shared reference.
    let raw = KBox::into_raw(unsafe { Pin::into_inner_unchecked(reg) });
    REGISTRY.store(raw, Ordering::Release);
    Ok(())
}

fn registries() -> Result<&'static Registries> {
    let p = REGISTRY.load(Ordering::Acquire);
    // SAFETY: a non-NULL `REGISTRY` points to the leaked, pinned registries
    // that `init` created; they live forever.
    unsafe { p.as_ref() }.ok_or(ENODEV)
}

/// The registry (a spinlock: nothing under it may sleep).
fn registry() -> Result<&'static SpinLock<Registry>> {
    Ok(&registries()?.data)
}

/// The enclave with this id, if it is alive.
pub fn find(id: u64) -> Option<Arc<Enclave>> {
    registry().ok()?.lock().find(id).cloned()
}

/// The id of an enclave from a file key.
fn key_of(id: u64) -> Result<usize> {
    usize::try_from(id).map_err(|_| EINVAL)
}

/// Creates `enclave_<id>` under `parent` (the ghostfs root).
pub fn create(parent: Node, id: u64, abi: u32, gid: Option<u32>, ephemeral: bool) -> Result {
    if abi != GHOST_VERSION {
        return Err(ESRCH);
    }
    if !capable(bindings::CAP_SYS_ADMIN) {
        return Err(EPERM);
    }
    let ephemeral_tgid = match ephemeral {
        true => Some(crate::sys::task::TaskHandle::current()?.tgid()),
        false => None,
    };
    let key = key_of(id)?;
    let gid = gid.unwrap_or(0);
    let name = CString::try_from_fmt(core::format_args!("enclave_{}", id))?;

    // Creators are serialized; the id stays free until the insert below.
    let _creating = registries()?.create.lock();
    if find(id).is_some() {
        return Err(EEXIST);
    }
    // A free slot must exist (they are all allocated at boot).
    if registry()?.lock().slots.iter().all(|s| s.is_some()) {
        return Err(ENOSPC);
    }
    let perm = |mode| Perm { mode, uid: 0, gid };
    let dir = parent.create_dir(&name, perm(0o555))?;
    let built = (|| -> Result<Arc<Enclave>> {
        dir.create_file::<CtlFile>(kernel::c_str!("ctl"), perm(0o664), 0, key)?;
        dir.create_file::<AbiVersionFile>(kernel::c_str!("abi_version"), perm(0o444), 0, key)?;
        dir.create_file::<StatusFile>(kernel::c_str!("status"), perm(0o444), 0, key)?;
        dir.create_file::<AgentOnlineFile>(kernel::c_str!("agent_online"), perm(0o664), 0, key)?;
        dir.create_file::<CpuListFile>(kernel::c_str!("cpulist"), perm(0o664), 0, key)?;
        dir.create_file::<CpuMaskFile>(kernel::c_str!("cpumask"), perm(0o664), 0, key)?;
        dir.create_file::<RunnableTimeoutFile>(
            kernel::c_str!("runnable_timeout"),
            perm(0o664),
            0,
            key,
        )?;
        dir.create_file::<AgentlessTimeoutFile>(
            kernel::c_str!("agentless_timeout"),
            perm(0o664),
            0,
            key,
        )?;
        dir.create_file::<TunableFile<0>>(TUNABLES[0], perm(0o664), 0, key)?;
        dir.create_file::<TunableFile<1>>(TUNABLES[1], perm(0o664), 0, key)?;
        dir.create_file::<TunableFile<2>>(TUNABLES[2], perm(0o664), 0, key)?;
        dir.create_file::<TunableFile<3>>(TUNABLES[3], perm(0o664), 0, key)?;
        dir.create_file::<TunableFile<4>>(TUNABLES[4], perm(0o664), 0, key)?;
        dir.create_file::<TunableFile<5>>(TUNABLES[5], perm(0o664), 0, key)?;
        dir.create_file::<TunableFile<6>>(TUNABLES[6], perm(0o664), 0, key)?;
        let cpu_data = CpuData::new(nr_cpu_ids())?;
        let members = Members::new_locked()?;
        let size = i64::try_from(cpu_data.len()).map_err(|_| EINVAL)?;
        dir.create_file::<CpuDataFile>(kernel::c_str!("cpu_data"), perm(0o660), size, key)?;
        dir.create_file::<TasksFile>(kernel::c_str!("tasks"), perm(0o666), 0, key)?;
        let sw_dir = dir.create_dir(kernel::c_str!("sw_regions"), perm(0o555))?;
        let sw_regions = RawSpinLock::new(KVec::with_capacity(MAX_SW_REGIONS, GFP_KERNEL)?)?;
        Arc::pin_init(
            pin_init!(Enclave {
                id,
                abi,
                gid,
                dir,
                tunables: [const { AtomicBool::new(false) }; TUNABLES.len()],
                runnable_timeout_ms: AtomicU64::new(0),
                orphan: Orphan {
                    timeout_ms: AtomicU64::new(DEFAULT_AGENTLESS_TIMEOUT_MS),
                    since: AtomicI64::new(0),
                    kicked: AtomicI64::new(0),
                    agents: AtomicU32::new(0),
                },
                agent_online: AtomicBool::new(false),
                ephemeral_tgid,
                cpu_data,
                sw_dir,
                sw_regions,
                sw_create <- kernel::new_mutex!(()),
                queues <- kernel::new_mutex!(KVec::new()),
                def_q: AtomicPtr::new(core::ptr::null_mut()),
                nr_tasks: AtomicUsize::new(0),
                members,
                gated: AtomicUsize::new(0),
                dying: AtomicBool::new(false),
                late_links: AtomicUsize::new(0),
            }),
            GFP_KERNEL,
        )
    })();
    let enclave = match built {
        Ok(e) => e,
        Err(err) => {
            // Not activated yet: no callback can be running on these nodes.
            dir.remove();
            return Err(err);
        }
    };
    // Only creators fill slots, and they are serialized: the free slot
    // seen above is still free.
    let stored = match registry()?.lock().slots.iter_mut().find(|s| s.is_none()) {
        Some(free) => {
            *free = Some(enclave);
            Ok(())
        }
        None => Err(ENOSPC),
    };
    if let Err(err) = stored {
        dir.remove();
        return Err(err);
    }
    if ephemeral_tgid.is_some() {
        NR_EPHEMERAL.fetch_add(1, Ordering::Relaxed);
    }
    dir.activate();
    Ok(())
}

/// Destroys the enclave `id` from a callback of `file` (its `ctl`).
fn destroy(file: &OpenFile, id: u64) -> Result {
    if !capable(bindings::CAP_SYS_ADMIN) {
        return Err(EPERM);
    }
    // An agent would wait for its own death.
    if crate::sched::current_agent().is_some() {
        return Err(errno(bindings::EDEADLK));
    }
    // Out of the registry, new lookups fail and its CPUs are free again.
    let enclave = registry()?.lock().take(id).ok_or(ENODEV)?;
    enclave.shutdown();
    // Remove the directory (waiting for other running callbacks of its
    // files) without holding the registry lock, which those callbacks may be
    // waiting for.
    file.remove_while_active(enclave.dir);
    pr_debug!("enclave_{} destroyed\n", id);
    Ok(())
}

/// Whether `cpu` belongs to an enclave. May sleep.
pub fn cpu_in_enclave(cpu: usize) -> bool {
    registry().is_ok_and(|r| r.lock().cpu_owner.get(cpu).is_some_and(|o| o.is_some()))
}

/// The enclaves the watchdog looks at: with a `runnable_timeout`, or
/// orphaned. May sleep.
pub fn watched() -> KVec<Arc<Enclave>> {
    let mut out = KVec::new();
    let Ok(r) = registry() else {
        return out;
    };
    // Room for every live enclave, allocated before the spinlock.
    let live = r.lock().slots.iter().flatten().count();
    if out.reserve(live, GFP_KERNEL).is_err() {
        // Out of memory: the next check sees them.
        return out;
    }
    for e in r.lock().slots.iter().flatten() {
        if e.runnable_timeout_ns() > 0 || e.orphaned() {
            // Enclaves created since the count may not fit: the next check
            // sees them. Within capacity, `push` does not allocate.
            if out.len() < out.capacity() {
                let _ = out.push(e.clone(), GFP_ATOMIC);
            }
        }
    }
    out
}

/// Takes the enclave `id` out of the registry: new lookups fail and its
/// CPUs are free again. Finish with [`destroy_taken`].
pub fn take(id: u64) -> Option<Arc<Enclave>> {
    registry().ok()?.lock().take(id)
}

/// Destroys an enclave [`take`] returned, outside any callback of its
/// files: every task back to CFS, agents killed, directory removed.
/// Process context; sleeps.
pub fn destroy_taken(e: Arc<Enclave>) {
    e.shutdown();
    e.dir.remove();
}

/// The last thread of thread group `tgid` is exiting: destroy the ephemeral
/// enclaves it created. Process context; may sleep.
pub fn owner_exited(tgid: i32) {
    if NR_EPHEMERAL.load(Ordering::Relaxed) == 0 {
        return;
    }
    let Ok(reg) = registry() else {
        return;
    };
    loop {
        let enclave = {
            let mut reg = reg.lock();
            let id = reg
                .slots
                .iter()
                .flatten()
                .find(|e| e.ephemeral_tgid == Some(tgid))
                .map(|e| e.id);
            match id.and_then(|id| reg.take(id)) {
                Some(e) => e,
                None => return,
            }
        };
        let id = enclave.id;
        destroy_taken(enclave);
        pr_info!(
            "enclave_{} destroyed: its ephemeral owner (tgid {}) exited\n",
            id,
            tgid
        );
    }
}

/// The errno of a `kstrto*`-style parse failure.
fn kstrto_errno(e: KstrtoError) -> Error {
    match e {
        KstrtoError::Invalid => EINVAL,
        KstrtoError::Range => ERANGE,
    }
}

/// Looks up the enclave of a file key.
fn enclave_of(key: usize) -> Result<Arc<Enclave>> {
    find(u64::try_from(key).map_err(|_| ENODEV)?).ok_or(ENODEV)
}

/// Every open of an enclave file: an agent thread gets `EDEADLK` unless
/// the enclave is `live_dangerously` (ghOSt ABI >= 68). An agent is to
/// open what it needs before it becomes one: an agent that sleeps in a
/// file operation holds the CPU's scheduling hostage.
fn may_open(file: &OpenFile) -> Result {
    if crate::sched::current_agent().is_none() {
        return Ok(());
    }
    if enclave_of(file.key())?.tunable(LIVE_DANGEROUSLY) {
        Ok(())
    } else {
        Err(errno(bindings::EDEADLK))
    }
}

/// `enclave_<id>/ctl`: read the id; write a command.
struct CtlFile;

#[vtable]
impl FileOps for CtlFile {
    fn show(key: usize, m: &mut SeqFile) -> Result {
        let e = enclave_of(key)?;
        // No newline, as ghOSt prints it.
        write!(m, "{}", e.id).map_err(|_| EINVAL)
    }

    fn write(file: &OpenFile, input: &[u8]) -> Result<usize> {
        let cmd = parse_enclave_cmd(input).map_err(parse_errno)?;
        let e = enclave_of(file.key())?;
        match cmd {
            EnclaveCmd::Destroy => destroy(file, e.id)?,
            EnclaveCmd::DiscoverTasks => crate::sched::discover_tasks(&e),
            // No BPF program can be loaded: nothing to disable.
            EnclaveCmd::DisableMyBpfProgLoad => {}
            EnclaveCmd::CreateSwRegion { id, node } => create_sw_region(&e, id, node)?,
            EnclaveCmd::BecomeAgent { cpu, qfd } => crate::agent::become_agent(&e, cpu, qfd)?,
        }
        Ok(input.len())
    }

    fn ioctl(file: &OpenFile, cmd: u32, arg: usize) -> Result<isize> {
        let e = enclave_of(file.key())?;
        crate::ioctl::ctl_ioctl(&e, file, cmd, arg)
    }

    fn open(file: &OpenFile) -> Result {
        may_open(file)
    }
}

/// `enclave_<id>/abi_version`.
struct AbiVersionFile;

#[vtable]
impl FileOps for AbiVersionFile {
    fn show(key: usize, m: &mut SeqFile) -> Result {
        let e = enclave_of(key)?;
        writeln!(m, "{}", e.abi).map_err(|_| EINVAL)
    }

    fn open(file: &OpenFile) -> Result {
        may_open(file)
    }
}

/// `enclave_<id>/status`.
struct StatusFile;

#[vtable]
impl FileOps for StatusFile {
    fn show(key: usize, m: &mut SeqFile) -> Result {
        let e = enclave_of(key)?;
        // `active`: an agent holds `agent_online` open. `nr_tasks` counts
        // tasks and agents.
        let active = if e.agent_online.load(Ordering::Acquire) {
            "yes"
        } else {
            "no"
        };
        write!(
            m,
            "version {}\nactive {}\nnr_tasks {}\n",
            e.abi,
            active,
            e.nr_tasks()
        )
        .map_err(|_| EINVAL)?;
        if let Some(tgid) = e.ephemeral_tgid {
            writeln!(m, "ephemeral {}", tgid).map_err(|_| EINVAL)?;
        }
        Ok(())
    }

    fn open(file: &OpenFile) -> Result {
        may_open(file)
    }
}

/// `enclave_<id>/<tunable>`: `0` or `1`; `I` indexes [`TUNABLES`].
struct TunableFile<const I: usize>;

#[vtable]
impl<const I: usize> FileOps for TunableFile<I> {
    fn show(key: usize, m: &mut SeqFile) -> Result {
        let e = enclave_of(key)?;
        let v = e.tunables.get(I).ok_or(EINVAL)?.load(Ordering::Relaxed);
        // `0` or `1`, no newline, as ghOSt prints it.
        write!(m, "{}", u8::from(v)).map_err(|_| EINVAL)
    }

    fn write(file: &OpenFile, input: &[u8]) -> Result<usize> {
        // Any integer `kstrtoint` takes (`0x10`, `-1`, a trailing newline);
        // nonzero is on (ghOSt). Anything else: `EINVAL`.
        let v = parse_int(input).map_err(|_| EINVAL)? != 0;
        let e = enclave_of(file.key())?;
        e.tunables.get(I).ok_or(EINVAL)?.store(v, Ordering::Relaxed);
        Ok(input.len())
    }

    fn open(file: &OpenFile) -> Result {
        may_open(file)
    }
}

/// `enclave_<id>/runnable_timeout`: milliseconds; 0 = watchdog off.
struct RunnableTimeoutFile;

#[vtable]
impl FileOps for RunnableTimeoutFile {
    fn show(key: usize, m: &mut SeqFile) -> Result {
        let e = enclave_of(key)?;
        // No newline, as ghOSt prints it.
        write!(m, "{}", e.runnable_timeout_ms.load(Ordering::Relaxed)).map_err(|_| EINVAL)
    }

    fn write(file: &OpenFile, input: &[u8]) -> Result<usize> {
        // What `kstrtoul` takes (`0x` hexadecimal, leading-0 octal, one
        // trailing newline); anything else, or a value too big, `EINVAL`.
        let ms = parse_unsigned(input).map_err(|_| EINVAL)?;
        if ms > MAX_RUNNABLE_TIMEOUT_MS {
            return Err(EINVAL);
        }
        let e = enclave_of(file.key())?;
        e.runnable_timeout_ms.store(ms, Ordering::Relaxed);
        if ms > 0 {
            crate::watchdog::arm();
        }
        Ok(input.len())
    }

    fn open(file: &OpenFile) -> Result {
        may_open(file)
    }
}

/// The default `agentless_timeout` (ms): long enough for a restarted
/// agent to come up on a busy machine, short enough that a crashed one
/// does not leave its tasks in the fallback for long.
pub const DEFAULT_AGENTLESS_TIMEOUT_MS: u64 = 60_000;

/// `enclave_<id>/agentless_timeout`: milliseconds an orphaned enclave (its
/// agents died or left, none attached since) lives on, its tasks run by
/// the fallback, before it is destroyed; 0 = for ever. A ghost-rs file
/// (ghOSt has no fallback); same grammar as `runnable_timeout`.
struct AgentlessTimeoutFile;

#[vtable]
impl FileOps for AgentlessTimeoutFile {
    fn show(key: usize, m: &mut SeqFile) -> Result {
        let e = enclave_of(key)?;
        write!(m, "{}", e.orphan.timeout_ms.load(Ordering::Relaxed)).map_err(|_| EINVAL)
    }

    fn write(file: &OpenFile, input: &[u8]) -> Result<usize> {
        let ms = parse_unsigned(input).map_err(|_| EINVAL)?;
        if ms > MAX_RUNNABLE_TIMEOUT_MS {
            return Err(EINVAL);
        }
        let e = enclave_of(file.key())?;
        e.orphan.timeout_ms.store(ms, Ordering::Relaxed);
        Ok(input.len())
    }

    fn open(file: &OpenFile) -> Result {
        may_open(file)
    }
}

/// Reads or replaces an enclave's CPUs, all or nothing.
fn write_cpus(
    file: &OpenFile,
    input: &[u8],
    parse: fn(&[u8], usize) -> Result<CpuSet, ParseError>,
) -> Result<usize> {
    if !capable(bindings::CAP_SYS_ADMIN) {
        return Err(EPERM);
    }
    let want = parse(input, nr_cpu_ids()).map_err(parse_errno)?;
    let e = enclave_of(file.key())?;
    let added = registry()?.lock().set_cpus(e.id, &want, true)?;
    // A CPU that joins starts with a fresh transaction. The registry lock is
    // not needed: the CPU is the enclave's now.
    for cpu in added.iter() {
        e.cpu_data.reset_txn(cpu);
    }
    Ok(input.len())
}

/// The CPUs of the enclave behind `key`.
fn cpus_of_key(key: usize) -> Result<CpuSet> {
    let e = enclave_of(key)?;
    Ok(registry()?.lock().cpus_of(e.id))
}

/// `enclave_<id>/cpulist`: the enclave's CPUs as a list (`0-2,5`).
struct CpuListFile;

#[vtable]
impl FileOps for CpuListFile {
    fn show(key: usize, m: &mut SeqFile) -> Result {
        format_cpulist(&cpus_of_key(key)?, m).map_err(|_| EINVAL)
    }

    fn write(file: &OpenFile, input: &[u8]) -> Result<usize> {
        write_cpus(file, input, parse_cpulist)
    }

    fn open(file: &OpenFile) -> Result {
        may_open(file)
    }
}

/// `enclave_<id>/cpumask`: the enclave's CPUs as a hexadecimal mask.
struct CpuMaskFile;

#[vtable]
impl FileOps for CpuMaskFile {
    fn show(key: usize, m: &mut SeqFile) -> Result {
        format_cpumask(&cpus_of_key(key)?, nr_cpu_ids(), m).map_err(|_| EINVAL)
    }

    fn write(file: &OpenFile, input: &[u8]) -> Result<usize> {
        write_cpus(file, input, parse_cpumask)
    }

    fn open(file: &OpenFile) -> Result {
        may_open(file)
    }
}

/// `enclave_<id>/agent_online`: reads `1` while some process holds it open
/// for writing (ghOSt agents do once they are ready), else `0`. Only one
/// writable open at a time (`EBUSY`); writes fail with `EINVAL`. Opening and
/// closing for writing notify pollers (`EPOLLPRI`), so a watcher sees an
/// agent come and go.
struct AgentOnlineFile;

/// The private word of the open that holds the write claim.
const AGENT_ONLINE_WRITER: usize = 1;

#[vtable]
impl FileOps for AgentOnlineFile {
    fn show(key: usize, m: &mut SeqFile) -> Result {
        let e = enclave_of(key)?;
        // No newline, as ghOSt prints it.
        write!(m, "{}", u8::from(e.agent_online.load(Ordering::Acquire))).map_err(|_| EINVAL)
    }

    fn write(_file: &OpenFile, _input: &[u8]) -> Result<usize> {
        Err(EINVAL)
    }

    fn open(file: &OpenFile) -> Result {
        may_open(file)?;
        if !file.is_writer() {
            return Ok(());
        }
        let e = enclave_of(file.key())?;
        if e.agent_online
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(EBUSY);
        }
        file.set_word(AGENT_ONLINE_WRITER);
        file.node().notify();
        Ok(())
    }

    fn release(file: &OpenFile) {
        if file.word() != AGENT_ONLINE_WRITER {
            return;
        }
        file.set_word(0);
        // A destroyed enclave is gone from the registry: nothing to clear.
        if let Ok(e) = enclave_of(file.key()) {
            e.agent_online.store(false, Ordering::Release);
            file.node().notify();
        }
    }
}

/// Creates the status-word region `id` (`sw_regions/sw_<id>`) on NUMA
/// node `node`. `EEXIST` if the id is taken, `EINVAL` for a node that does
/// not exist or is offline, `ENOSPC` beyond [`MAX_SW_REGIONS`].
fn create_sw_region(e: &Enclave, id: u32, node: u32) -> Result {
    let online = i32::try_from(node).is_ok_and(|n| {
        // SAFETY: only tests a bit of the online-node mask, range-checked.
        unsafe { bindings::ghost_node_online(n) }
    });
    if !online {
        return Err(EINVAL);
    }
    // Creators are serialized: what is checked here still holds at the push.
    // A destroy marks the enclave dying under the same lock before it
    // removes the directory (see `shutdown`).
    let _creating = e.sw_create.lock();
    if e.dying() {
        return Err(ENODEV);
    }
    {
        let regions = e.sw_regions.lock();
        if regions.iter().any(|r| r.id == id) {
            return Err(EEXIST);
        }
        if regions.len() >= MAX_SW_REGIONS {
            return Err(ENOSPC);
        }
    }
    let name = CString::try_from_fmt(core::format_args!("{}{}", SW_PREFIX, id))?;
    let size = i64::try_from(crate::sw::REGION_SIZE).map_err(|_| EINVAL)?;
    let perm = Perm {
        mode: 0o440,
        uid: 0,
        gid: e.gid,
    };
    let file = e
        .sw_dir
        .create_file::<SwRegionFile>(&name, perm, size, key_of(e.id)?)?;
    // Within the capacity reserved at creation: the push does not allocate.
    let added = SwRegion::new(id, node)
        .and_then(|r| e.sw_regions.lock().push(r, GFP_ATOMIC).map_err(Error::from));
    if let Err(err) = added {
        // Not activated: no callback can be running on it.
        file.remove();
        return Err(err);
    }
    file.activate();
    Ok(())
}

/// Region files are named `sw_<id>`.
const SW_PREFIX: &str = "sw_";

/// `enclave_<id>/sw_regions/sw_<n>`: a status-word region, mapped
/// read-only.
struct SwRegionFile;

#[vtable]
impl FileOps for SwRegionFile {
    fn mmap(file: &OpenFile, vma: &mut Vma) -> Result {
        // The file's name says which region it is.
        let id = file
            .name()
            .to_str()
            .ok()
            .and_then(|n| n.strip_prefix(SW_PREFIX))
            .and_then(parse_u32)
            .ok_or(ENODEV)?;
        let e = enclave_of(file.key())?;
        let region: *const SwRegion = {
            let regions = e.sw_regions.lock();
            regions.iter().find(|r| r.id == id).ok_or(ENODEV)?
        };
        // SAFETY: regions are never removed from `e.sw_regions` and never
        // move (the vector never grows past the capacity it was created
        // with), and `e` is kept alive until the end of this call; mapping
        // sleeps, so it runs outside the lock.
        unsafe { &*region }.mmap(vma)
    }

    fn open(file: &OpenFile) -> Result {
        may_open(file)
    }
}

/// `enclave_<id>/cpu_data`: the transaction pages, mapped read-write.
struct CpuDataFile;

#[vtable]
impl FileOps for CpuDataFile {
    fn mmap(file: &OpenFile, vma: &mut Vma) -> Result {
        enclave_of(file.key())?.cpu_data.mmap(vma)
    }

    fn open(file: &OpenFile) -> Result {
        may_open(file)
    }
}

/// `enclave_<id>/tasks`: a write of a pid, a gtid or `0` (the writer) moves
/// that task into the enclave; a read lists the pids of its tasks.
struct TasksFile;

#[vtable]
impl FileOps for TasksFile {
    fn show(key: usize, m: &mut SeqFile) -> Result {
        let e = enclave_of(key)?;
        for t in e.tasks() {
            writeln!(m, "{}", t.as_ptr().pid()).map_err(|_| EINVAL)?;
        }
        Ok(())
    }

    fn write(file: &OpenFile, input: &[u8]) -> Result<usize> {
        // What `kstrtoll` takes; `EINVAL` if it does not parse, `ERANGE` if
        // it does not fit, `EINVAL` for a negative id.
        let v = parse_signed(input).map_err(kstrto_errno)?;
        let v = u64::try_from(v).map_err(|_| EINVAL)?;
        let e = enclave_of(file.key())?;
        let task = crate::sys::task::lookup(v)?;
        crate::sched::join(&e, &task)?;
        Ok(input.len())
    }

    fn open(file: &OpenFile) -> Result {
        may_open(file)
    }
}
