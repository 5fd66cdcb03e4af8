//! The agent runtime: one pinned agent thread per enclave CPU running a
//! [`Policy`].
//!
//! [`run`] does what a ghOSt agent process does:
//!
//! 1. If another process holds the enclave's `agent_online` (an agent is
//!    running), it waits until that drops: this is the in-place upgrade.
//! 2. It creates the queues (per-CPU model: one per CPU, waking that CPU's
//!    agent; centralized model: one, waking the global agent) and makes
//!    the first the default queue.
//! 3. One thread per CPU pins itself, writes `become agent <cpu> <qfd>`
//!    (retrying `EBUSY` while an old agent leaves) and looks up its status
//!    word.
//! 4. It adopts the enclave's tasks: every live task status word is
//!    associated with the default queue (`GHOST_IOC_ASSOC_QUEUE` at the
//!    word's barrier, retried while it moves; orphaned `CANFREE` words are
//!    freed), then `discover tasks` announces them (`TASK_NEW`) to the
//!    policy.
//! 5. It opens `agent_online` for writing and lets the agents run.
//!
//! Task affinities are read by thread id (`sched_getaffinity`, see
//! [`crate::policy`]): the agent process must live in the initial pid
//! namespace, where a gtid's thread id is its own. Otherwise a warning in
//! [`Report::warnings`] says so and every task counts as allowed anywhere.
//!
//! Agent loops. Per-CPU: read the agent barrier, drain the queue into the
//! policy, ask it for a plan, commit the local transaction (the agent
//! sleeps until woken) or yield with `ghost_run`. Centralized: the global
//! agent does the same for the other CPUs with remote commits (or one sync
//! group); while the runtime has a reason to look again without a message
//! (a time slice or a back-off ends while tasks wait, a task is finishing
//! its switch off a CPU) it polls, calling `sched_yield` between rounds, or
//! sleeping 200 µs between them while another class wants its CPU
//! (`BOOST_PRIO`); otherwise it sleeps until a message comes. The other
//! agents only yield.
//!
//! `SIGINT` and `SIGTERM` stop the agents: the main thread sets a flag and
//! sends `SIGUSR2` (a no-op handler) to each agent until it has left
//! `ghost_run` or its commit; the agent threads exit, which ends their
//! agency (the kernel waits for a new agent, or destroys an ephemeral
//! enclave when its creator exits). `SIGUSR1` prints the policy's run
//! queues to standard error. [`run`] blocks these four signals in the
//! calling thread while it runs (the agent threads inherit the mask) and
//! uses `SIGUSR2` itself: callers must not use it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ghost_abi as abi;

use crate::cpus::CpuSet;
use crate::enclave::{Enclave, Wait};
use crate::error::{Error, Result};
use crate::gtid::Layout;
use crate::policy::Policy;
use crate::queue::{Consumer, Queue, RingError};
use crate::scheduler::{Kernel, Model, Plan, Scheduler};
use crate::stats::Stats;
use crate::sw::StatusWord;
use crate::sys::{self, Errno, EventFd, SignalFd};
use crate::txn::{CpuMask, TxnRequest, TxnResult};

/// How long a polling global agent gives its CPU to another class that
/// wants it (`BOOST_PRIO`) before it looks again.
const BOOSTED_NAP: Duration = Duration::from_micros(200);

/// The signal the runtime sends agent threads to interrupt `ghost_run`.
pub const WAKE_SIGNAL: i32 = libc::SIGUSR2;

/// How transactions of one round are committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitMode {
    /// `GHOST_IOC_COMMIT_TXN`: each txn succeeds or fails on its own.
    Each,
    /// `GHOST_IOC_SYNC_GROUP_TXN`: all or nothing (centralized model).
    /// Falls back to [`CommitMode::Each`] if the kernel does not implement
    /// sync groups (`EOPNOTSUPP`).
    SyncGroup,
}

/// How to run the agents.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The CPUs to run agents on: every CPU of the enclave.
    pub cpus: CpuSet,
    /// Per-CPU or centralized.
    pub model: Model,
    /// Slots per queue (a power of two up to 65536).
    pub queue_elems: u32,
    /// How the global agent commits a round.
    pub commit: CommitMode,
    /// `mlockall` before starting (the agents then never wait for a page
    /// fault).
    pub mlock: bool,
    /// How long `become agent` is retried while the CPU still has an agent.
    pub become_timeout: Duration,
    /// How long to wait for another agent to release `agent_online`
    /// (`None`: until a signal stops the wait).
    pub upgrade_timeout: Option<Duration>,
}

impl AgentConfig {
    /// Defaults: 65536-slot queues, separate commits, `mlockall`, 10 s for
    /// `become agent`, no limit on the upgrade wait.
    pub fn new(cpus: CpuSet, model: Model) -> Self {
        Self {
            cpus,
            model,
            queue_elems: abi::GHOST_MAX_QUEUE_ELEMS,
            commit: CommitMode::Each,
            mlock: true,
            become_timeout: Duration::from_secs(10),
            upgrade_timeout: None,
        }
    }
}

/// What a run did.
#[derive(Debug, Default)]
pub struct Report {
    /// Whether it waited for another agent to leave (an upgrade).
    pub waited_for_agent: bool,
    /// Whether the agents ran (false: stopped by a signal while waiting).
    pub started: bool,
    /// Tasks found in the enclave at start and associated with the queue.
    pub adopted: usize,
    /// Orphaned status words (dead or departed tasks) freed at start.
    pub orphans_freed: usize,
    /// Status words of this run's agents not freed at the end (the kernel
    /// had not marked them `CANFREE`: a thread that did not end).
    pub agent_words_left: usize,
    /// What each agent counted, by CPU.
    pub agents: Vec<(usize, Stats)>,
    /// What message dispatch counted.
    pub dispatch: Stats,
    /// Things the user should know (e.g. sync groups not supported).
    pub warnings: Vec<String>,
    /// Why the agents stopped if not by a signal.
    pub failure: Option<Error>,
}

impl Report {
    /// Everything counted, merged.
    pub fn total(&self) -> Stats {
        let mut t = self.dispatch.clone();
        for (_, s) in &self.agents {
            t.merge(s);
        }
        t
    }

    /// The statistics table printed at exit.
    pub fn table(&self) -> String {
        let mut s = self.total().to_string();
        for (cpu, st) in &self.agents {
            s.push_str(&format!(
                "  cpu {cpu:<26} {:>12.3}\n",
                st.idle.as_secs_f64()
            ));
        }
        s
    }
}

/// What an agent thread does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Per-CPU model: schedules its own CPU.
    PerCpu,
    /// Centralized model: schedules the other CPUs.
    Global,
    /// Centralized model: gives its CPU away.
    Satellite,
}

/// Whether the agents may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    Wait,
    Go,
    Abort,
}

/// What the main thread and the agent threads share.
struct Shared<P> {
    enclave: Arc<Enclave>,
    sched: Mutex<Scheduler<P>>,
    /// Queues by CPU: every agent CPU (per-CPU model), or the global CPU.
    queues: Vec<Option<Arc<Queue>>>,
    model: Model,
    commit: CommitMode,
    sync_unsupported: AtomicBool,
    stop: AtomicBool,
    gate: (Mutex<Gate>, Condvar),
    failed: EventFd,
    failure: Mutex<Option<Error>>,
    become_timeout: Duration,
    tids: Option<Layout>,
}

/// The [`Kernel`] of the scheduler core: the enclave's ioctls, and task
/// affinities.
struct EnclaveKernel<'a> {
    enclave: &'a Enclave,
    queues: &'a [Option<Arc<Queue>>],
    /// How a gtid names a thread, if it names threads as this process sees
    /// them.
    tids: Option<Layout>,
}

impl Kernel for EnclaveKernel<'_> {
    fn assoc_queue(
        &mut self,
        gtid: i64,
        cpu: usize,
        barrier: u32,
    ) -> std::result::Result<i32, Errno> {
        let q = self
            .queues
            .get(cpu)
            .and_then(Option::as_ref)
            .ok_or(Errno(libc::EINVAL))?;
        self.enclave.assoc_queue(q, gtid, barrier)
    }

    fn sw_free(&mut self, sw: abi::GhostSwInfo) -> std::result::Result<(), Errno> {
        self.enclave.sw_free(sw)
    }

    fn task_affinity(&mut self, gtid: i64) -> std::result::Result<CpuMask, Errno> {
        let tid = self
            .tids
            .and_then(|l| l.tid(gtid))
            .ok_or(Errno(libc::ESRCH))?;
        sys::sched_getaffinity(tid)
    }
}

/// How the runtime reads task affinities: the gtid layout, if gtids name
/// threads as this process sees them. Otherwise `None`, and a warning says
/// why (every task is then taken to allow every CPU).
fn affinity_reader(warnings: &mut Vec<String>) -> Option<Layout> {
    let why = match Layout::read() {
        Ok(l) if l.names_own_threads() => return Some(l),
        Ok(_) => "gtids do not name this process's threads (not in the initial pid namespace?)"
            .to_string(),
        Err(e) => e.to_string(),
    };
    warnings.push(format!(
        "task affinities cannot be read ({why}): every task was taken to allow every CPU"
    ));
    None
}

/// Locks `m`, even if a policy panicked while holding it.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How many times a commit's outcome is polled before giving up on it.
const FINISH_SPINS: u32 = 1 << 20;

impl<P: Policy> Shared<P> {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Records an agent's fatal error and wakes the main thread.
    fn fail(&self, e: Error) {
        lock(&self.failure).get_or_insert(e);
        self.stop.store(true, Ordering::Relaxed);
        self.failed.notify();
    }

    /// Blocks until the main thread opens or aborts the gate; `true` to run.
    fn wait_gate(&self) -> bool {
        let (m, cv) = &self.gate;
        let mut g = lock(m);
        while *g == Gate::Wait {
            g = cv.wait(g).unwrap_or_else(PoisonError::into_inner);
        }
        *g == Gate::Go
    }

    fn open_gate(&self, to: Gate) {
        let (m, cv) = &self.gate;
        *lock(m) = to;
        cv.notify_all();
    }

    /// Each CPU's transaction as the kernel left it (for the SIGUSR1 dump):
    /// `cpu: state gtid cpu_seqnum` for the CPUs with a queue.
    fn txn_dump(&self) -> String {
        let cd = self.enclave.cpu_data();
        let mut s = String::from("txns (cpu: state gtid cpu_seqnum):");
        for cpu in (0..self.queues.len()).filter(|&c| self.queue(c).is_some()) {
            if let Some(t) = cd.txn(cpu) {
                let x = t.snapshot();
                let state = match t.state() {
                    crate::txn::TxnState::Ready => "READY".to_string(),
                    crate::txn::TxnState::Claimed(by) => format!("CLAIMED({by})"),
                    crate::txn::TxnState::Done(r) => r.to_string(),
                };
                s.push_str(&format!(
                    " {cpu}: {state} {} {};",
                    { x.gtid },
                    t.cpu_seqnum()
                ));
            }
        }
        s.push('\n');
        s
    }

    /// The queue of `cpu`'s agent.
    fn queue(&self, cpu: usize) -> Option<&Arc<Queue>> {
        let at = match self.model {
            Model::PerCpu => cpu,
            Model::Centralized { global_cpu } => global_cpu,
        };
        self.queues.get(at).and_then(Option::as_ref)
    }

    /// `become agent`, retrying `EBUSY` (an old agent still on the CPU)
    /// and `EINTR` until the timeout or a stop.
    fn become_agent(&self, cpu: usize) -> Result<()> {
        let q = self.queue(cpu).map(Arc::as_ref);
        let deadline = Instant::now() + self.become_timeout;
        loop {
            match self.enclave.become_agent(cpu, q) {
                Ok(()) => return Ok(()),
                Err(e) if (e.errno == libc::EBUSY || e.errno == libc::EINTR) && Instant::now() < deadline => {
                    if self.stopping() {
                        return Err(e);
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) if e.errno == libc::EBUSY => {
                    return Err(e.with_detail(format!(
                        "CPU {cpu} still has an agent after {:?} (another ghost-agent on this enclave?)",
                        self.become_timeout
                    )))
                }
                Err(e) if e.errno == libc::EPERM => return Err(e.with_detail("agents need CAP_SYS_NICE")),
                Err(e) => return Err(e),
            }
        }
    }

    /// The scheduler core's view of the kernel.
    fn kernel(&self) -> EnclaveKernel<'_> {
        EnclaveKernel {
            enclave: &self.enclave,
            queues: &self.queues,
            tids: self.tids,
        }
    }

    /// Reads every message waiting in `c` into the policy, then asks it
    /// for a plan.
    fn drain_and_schedule(
        &self,
        s: &mut Scheduler<P>,
        c: &mut Consumer<'_>,
        cpu: usize,
        plan: &mut Plan,
        st: &mut Stats,
    ) {
        let now = Instant::now();
        let mut k = self.kernel();
        let mut lost = false;
        while let Some(r) = c.pop() {
            match r {
                Ok(r) => {
                    st.count_message(r.msg.type_());
                    s.deliver(&mut k, cpu, &r, now);
                }
                Err(RingError::Overflow { dropped }) => {
                    st.ring_overflow += u64::from(dropped);
                    lost = true;
                }
                Err(RingError::Corrupt { .. }) => {
                    st.ring_corrupt += 1;
                    lost = true;
                }
            }
        }
        // Messages were lost: have every task announced again. The policy
        // starts over with each (TASK_NEW), which is how it recovers state.
        if lost {
            let _ = self.enclave.discover_tasks();
        }
        s.schedule(&mut k, cpu, now, plan);
    }

    /// Pings the agents in `pings`.
    fn ping(&self, pings: &CpuMask, st: &mut Stats) {
        for cpu in pings.iter() {
            if sys::ghost_run(abi::GHOST_AGENT_GTID, 0, 0, cpu as i32, 0).is_ok() {
                st.pings += 1;
            }
        }
    }

    /// Gives `cpu` away until the agent is woken: a message, a ping, a
    /// signal, or (with `RTLA_ON_IDLE`) the CPU going idle. `ESTALE` (the
    /// barrier moved) and `EINTR` return at once.
    fn yield_cpu(
        &self,
        cpu: usize,
        barrier: u32,
        flags: u16,
        idle: bool,
        st: &mut Stats,
    ) -> Result<()> {
        let t0 = Instant::now();
        match sys::ghost_run(0, barrier, 0, cpu as i32, i32::from(flags)) {
            Ok(()) => st.yields += 1,
            Err(Errno(libc::ESTALE)) => st.estale += 1,
            Err(Errno(libc::EINTR)) => {}
            Err(e) => return Err(e.context(format!("ghost_run (yield of CPU {cpu})"))),
        }
        if idle {
            st.idle += t0.elapsed();
        }
        Ok(())
    }

    /// Opens the txns of `plan` and commits them; returns the outcome of
    /// each entry, in order. `agent_barrier` is quoted by a local txn.
    fn commit(
        &self,
        plan: &Plan,
        agent_barrier: u32,
        out: &mut Vec<TxnResult>,
        st: &mut Stats,
    ) -> Result<()> {
        out.clear();
        let cd = self.enclave.cpu_data();
        // The CPUs whose txn was opened (a txn still busy from before is
        // not: it is reported as aborted).
        let mut mask = CpuMask::new();
        for e in plan.entries() {
            let req = TxnRequest {
                gtid: e.gtid,
                agent_barrier,
                task_barrier: e.task_barrier,
                run_flags: e.run_flags,
                commit_flags: abi::COMMIT_AT_TXN_COMMIT,
            };
            if cd.txn(e.cpu).is_some_and(|t| t.open(&req).is_ok()) {
                mask.set(e.cpu);
            }
        }
        if !mask.is_empty() {
            match self.commit_mask(&mask, st) {
                Ok(()) => {}
                // The enclave is gone, or this thread is no agent of it.
                Err(e @ (Errno(libc::ENODEV) | Errno(libc::EINVAL))) => {
                    return Err(self.enclave.ioctl_error("GHOST_IOC_COMMIT_TXN", e))
                }
                Err(_) => st.commit_errors += 1,
            }
        }
        for e in plan.entries() {
            let txn = cd.txn(e.cpu).filter(|_| mask.contains(e.cpu));
            let r = match txn {
                Some(t) => {
                    let r = t.finish(FINISH_SPINS);
                    t.release_sync_group();
                    r.unwrap_or(TxnResult::Unknown(0))
                }
                None => TxnResult::Aborted,
            };
            st.count_commit(r);
            out.push(r);
        }
        Ok(())
    }

    /// Commits the open txns of `mask`: as a sync group if so configured
    /// and supported, else each on its own.
    fn commit_mask(&self, mask: &CpuMask, st: &mut Stats) -> std::result::Result<(), Errno> {
        // A group of one is that one commit (and may be the global
        // agent's local commit, see `Scheduler::lend`).
        if self.commit == CommitMode::Each
            || mask.count() == 1
            || self.sync_unsupported.load(Ordering::Relaxed)
        {
            return self.enclave.commit(mask);
        }
        match self.enclave.sync_group(mask) {
            Ok(all) => {
                st.sync_groups += 1;
                st.sync_groups_failed += u64::from(!all);
                Ok(())
            }
            Err(Errno(libc::EOPNOTSUPP)) => {
                self.sync_unsupported.store(true, Ordering::Relaxed);
                self.enclave.commit(mask)
            }
            Err(e) => Err(e),
        }
    }

    /// The start of a round of an agent loop: reads the agent barrier
    /// (first: a message after it makes a commit or yield quoting it
    /// stale), every message, and the plan; sends the pings the policy
    /// asked for. Returns the barrier.
    fn start_round(
        &self,
        me: &StatusWord<'_>,
        c: &mut Consumer<'_>,
        cpu: usize,
        plan: &mut Plan,
        st: &mut Stats,
    ) -> u32 {
        let barrier = me.barrier();
        let pings = {
            let mut s = lock(&self.sched);
            self.drain_and_schedule(&mut s, c, cpu, plan, st);
            s.take_pings(cpu)
        };
        self.ping(&pings, st);
        barrier
    }

    /// The per-CPU agent loop.
    fn per_cpu_loop(&self, cpu: usize, me: StatusWord<'_>, st: &mut Stats) -> Result<()> {
        let q = self
            .queue(cpu)
            .ok_or_else(|| Error::msg("agent", format!("no queue for CPU {cpu}")))?;
        let mut c = q.ring().consumer();
        let (mut plan, mut results) = (Plan::new(), Vec::with_capacity(1));
        while !self.stopping() {
            let barrier = self.start_round(&me, &mut c, cpu, &mut plan, st);
            let Some(e) = plan.entries().first().copied() else {
                self.yield_cpu(cpu, barrier, 0, true, st)?;
                continue;
            };
            // A successful local commit returns once the agent is woken.
            self.commit(&plan, barrier, &mut results, st)?;
            let r = results.first().copied().unwrap_or(TxnResult::Aborted);
            lock(&self.sched).committed(&mut self.kernel(), cpu, cpu, e.gtid, r, Instant::now());
            if r == TxnResult::CpuUnavail {
                // Another class has the CPU: let it run, and come back when
                // the CPU would go idle.
                self.yield_cpu(cpu, me.barrier(), abi::RTLA_ON_IDLE, false, st)?;
            }
        }
        Ok(())
    }

    /// The global agent loop (centralized model).
    ///
    /// A polling global agent whose CPU another class wants sleeps
    /// [`BOOSTED_NAP`] between rounds. One with nothing to do lends its
    /// CPU to a task that may run only there ([`Scheduler::lend`]).
    fn global_loop(&self, cpu: usize, me: StatusWord<'_>, st: &mut Stats) -> Result<()> {
        let q = self
            .queue(cpu)
            .ok_or_else(|| Error::msg("agent", "no global queue"))?;
        let mut c = q.ring().consumer();
        let (mut plan, mut results) = (Plan::new(), Vec::new());
        while !self.stopping() {
            let barrier = self.start_round(&me, &mut c, cpu, &mut plan, st);
            // How the agent sleeps if it has nothing to do.
            let mut sleep_flags = 0;
            if plan.is_empty() && !plan.polls() {
                let mut s = lock(&self.sched);
                if !me.boost_prio() {
                    // Its own CPU for a task that may run only there (a
                    // local commit: back at the next message).
                    s.lend(cpu, &mut plan);
                } else if s.lendable(cpu) {
                    // Another class has the CPU: lend it once that class
                    // leaves it idle.
                    sleep_flags = abi::RTLA_ON_IDLE;
                }
            }
            if !plan.is_empty() {
                self.commit(&plan, barrier, &mut results, st)?;
                let (mut s, mut k, now) = (lock(&self.sched), self.kernel(), Instant::now());
                for (e, &r) in plan.entries().iter().zip(&results) {
                    s.committed(&mut k, cpu, e.cpu, e.gtid, r, now);
                }
            } else if plan.polls() {
                if me.boost_prio() {
                    // Another class wants this CPU: let it run, for a
                    // bounded time. Not "until the next message or the CPU
                    // goes idle" (RTLA_ON_IDLE): the reason to look again
                    // is a time, not a message, and a CFS task that keeps
                    // the CPU busy while it waits for a ghost task (a
                    // parent reaping an exiting thread in `wait4`) would
                    // then wait for ever: seen in policy_sol's VM test.
                    std::thread::sleep(BOOSTED_NAP);
                    st.polls += 1;
                } else {
                    // Not a bare spin: the kernel sets BOOST_PRIO when it
                    // picks the agent ahead of another class's task, and a
                    // spinning agent is never picked again. `sched_yield`
                    // goes through the pick, so a kthread that became
                    // runnable here is seen in the next round.
                    std::thread::yield_now();
                    st.polls += 1;
                }
            } else {
                // Nothing to do until a message comes (the queue wakes us),
                // or the CPU goes idle with a task to lend it to.
                self.yield_cpu(cpu, barrier, sleep_flags, true, st)?;
            }
        }
        Ok(())
    }

    /// A satellite agent (centralized model): gives its CPU away.
    fn satellite_loop(&self, cpu: usize, me: StatusWord<'_>, st: &mut Stats) -> Result<()> {
        while !self.stopping() {
            self.yield_cpu(cpu, me.barrier(), 0, false, st)?;
        }
        Ok(())
    }

    /// An agent thread: setup, report readiness, wait for the gate, loop.
    fn agent(
        &self,
        cpu: usize,
        role: Role,
        ready: &mpsc::Sender<(usize, Result<(i32, abi::GhostSwInfo)>)>,
        st: &mut Stats,
    ) -> Result<()> {
        let setup = (|| {
            sys::sigmask(libc::SIG_UNBLOCK, &[WAKE_SIGNAL])?;
            sys::pin_to_cpu(cpu)?;
            self.become_agent(cpu)?;
            let on = sys::current_cpu()?;
            if on != cpu {
                return Err(Error::msg(
                    format!("agent of CPU {cpu}"),
                    format!("runs on CPU {on}"),
                ));
            }
            self.enclave.agent_sw_info(cpu)
        })();
        let info = match setup {
            Ok(i) => {
                let _ = ready.send((cpu, Ok((sys::gettid(), i))));
                i
            }
            Err(e) => {
                let _ = ready.send((cpu, Err(e)));
                return Ok(());
            }
        };
        if !self.wait_gate() {
            return Ok(());
        }
        let table = Arc::clone(self.enclave.sw());
        let me = table.get(info).ok_or_else(|| {
            Error::msg(
                format!("agent of CPU {cpu}"),
                format!("status word {info:?} is not mapped"),
            )
        })?;
        match role {
            Role::PerCpu => self.per_cpu_loop(cpu, me, st),
            Role::Global => self.global_loop(cpu, me, st),
            Role::Satellite => self.satellite_loop(cpu, me, st),
        }
    }
}

/// An agent thread as the main thread sees it.
struct AgentThread {
    cpu: usize,
    tid: i32,
    /// The agent's status word, once it is an agent: the kernel marks it
    /// `CANFREE` when the thread is gone, and this process frees it.
    sw: Option<abi::GhostSwInfo>,
    done: Arc<AtomicBool>,
    handle: Option<JoinHandle<Stats>>,
}

/// Sets `done` when the thread ends, normally or by a panic.
struct DoneGuard<'a> {
    done: Arc<AtomicBool>,
    failed: &'a EventFd,
}

impl Drop for DoneGuard<'_> {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Release);
        if std::thread::panicking() {
            self.failed.notify();
        }
    }
}

/// Restores the signal mask when `run` returns.
struct MaskGuard(nix::sys::signal::SigSet);

impl Drop for MaskGuard {
    fn drop(&mut self) {
        sys::restore_sigmask(&self.0);
    }
}

/// Runs `policy` on `enclave` until `SIGINT` or `SIGTERM` (see the module
/// documentation). Setup failures are errors; a failure of a running agent
/// is in [`Report::failure`], with the statistics gathered until then.
pub fn run<P: Policy + 'static>(
    enclave: Arc<Enclave>,
    cfg: AgentConfig,
    policy: P,
) -> Result<Report> {
    let cpus: Vec<usize> = cfg.cpus.iter().collect();
    check_config(&enclave, &cfg, &cpus)?;
    if cfg.mlock {
        sys::mlockall()?;
    }
    let old = sys::sigmask(
        libc::SIG_BLOCK,
        &[libc::SIGINT, libc::SIGTERM, libc::SIGUSR1, WAKE_SIGNAL],
    )?;
    let _mask = MaskGuard(old);
    sys::install_wake_handler(WAKE_SIGNAL)?;
    let sigfd = SignalFd::new(&[libc::SIGINT, libc::SIGTERM, libc::SIGUSR1])?;
    let mut report = Report::default();

    // 1. An upgrade: wait for the running agent to go.
    if enclave.agent_online()? {
        report.waited_for_agent = true;
        loop {
            match enclave.wait_agent_offline(Some(sigfd.fd()), cfg.upgrade_timeout)? {
                Wait::Done => break,
                Wait::TimedOut => {
                    return Err(Error::msg(
                        format!("wait for {}", enclave.dir().file("agent_online").display()),
                        "another agent still holds it",
                    ))
                }
                Wait::Interrupted => match sigfd.read() {
                    Some(libc::SIGUSR1) | None => {
                        eprintln!("waiting for the agent of enclave_{} to leave", enclave.id())
                    }
                    Some(_) => return Ok(report),
                },
            }
        }
    }

    // 2. Queues.
    let max_cpu = cpus.iter().copied().max().unwrap_or(0);
    let mut queues: Vec<Option<Arc<Queue>>> = vec![None; max_cpu + 1];
    let queue_cpus: Vec<usize> = match cfg.model {
        Model::PerCpu => cpus.clone(),
        Model::Centralized { global_cpu } => vec![global_cpu],
    };
    for &cpu in &queue_cpus {
        let q = enclave.create_queue(cfg.queue_elems, -1)?;
        enclave.config_queue_wakeup(&q, &[cpu])?;
        if let Some(slot) = queues.get_mut(cpu) {
            *slot = Some(Arc::new(q));
        }
    }
    let default_q = queue_cpus
        .first()
        .and_then(|&c| queues.get(c).cloned().flatten())
        .ok_or_else(|| Error::msg("agent", "no queue"))?;
    enclave.set_default_queue(&default_q)?;

    // 3. Agent threads.
    let tids = affinity_reader(&mut report.warnings);
    let sched = Scheduler::new(policy, &cfg.model, &cpus, Some(Arc::clone(enclave.sw())));
    let shared = Arc::new(Shared {
        enclave: Arc::clone(&enclave),
        sched: Mutex::new(sched),
        queues,
        model: cfg.model.clone(),
        commit: cfg.commit,
        sync_unsupported: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        gate: (Mutex::new(Gate::Wait), Condvar::new()),
        failed: EventFd::new()?,
        failure: Mutex::new(None),
        become_timeout: cfg.become_timeout,
        tids,
    });
    let (tx, rx) = mpsc::channel();
    let mut threads = Vec::with_capacity(cpus.len());
    let mut spawned = Ok(());
    for &cpu in &cpus {
        let role = match cfg.model {
            Model::PerCpu => Role::PerCpu,
            Model::Centralized { global_cpu } if global_cpu == cpu => Role::Global,
            Model::Centralized { .. } => Role::Satellite,
        };
        let (sh, tx) = (Arc::clone(&shared), tx.clone());
        let done = Arc::new(AtomicBool::new(false));
        let d = Arc::clone(&done);
        let handle = match std::thread::Builder::new()
            .name(format!("ghost-agent/{cpu}"))
            .stack_size(512 << 10)
            .spawn(move || {
                let _g = DoneGuard {
                    done: d,
                    failed: &sh.failed,
                };
                let mut st = Stats::default();
                if let Err(e) = sh.agent(cpu, role, &tx, &mut st) {
                    sh.fail(e);
                }
                st
            }) {
            Ok(h) => h,
            Err(e) => {
                spawned = Err(sys::io_error(
                    format!("spawn the agent thread of CPU {cpu}"),
                    &e,
                ));
                break;
            }
        };
        threads.push(AgentThread {
            cpu,
            tid: 0,
            sw: None,
            done,
            handle: Some(handle),
        });
    }
    drop(tx);
    let setup = spawned
        .and_then(|()| {
            wait_ready(
                &rx,
                &mut threads,
                &sigfd,
                cfg.become_timeout + Duration::from_secs(5),
            )
        })
        .and_then(|up| {
            if !up {
                return Ok(None);
            }
            // 4. Adopt the enclave's tasks, 5. go online.
            let (adopted, freed, discover) = adopt(&enclave, &default_q)?;
            report.adopted = adopted;
            report.orphans_freed = freed;
            if discover {
                enclave.discover_tasks()?;
            }
            enclave.claim_agent_online().map(Some)
        });
    let online = match setup {
        Ok(Some(online)) => online,
        r => {
            shared.open_gate(Gate::Abort);
            stop_agents(&shared, &mut threads);
            free_agent_words(&enclave, &threads);
            return r.map(|_| report);
        }
    };
    report.started = true;
    shared.open_gate(Gate::Go);

    // The main thread waits for signals, or for an agent to fail.
    loop {
        let rev = match sys::poll(
            &[
                (sigfd.fd(), libc::POLLIN),
                (shared.failed.fd(), libc::POLLIN),
            ],
            -1,
        ) {
            Ok(rev) => rev,
            Err(e) => {
                shared.fail(e);
                break;
            }
        };
        if rev.get(1).is_some_and(|&r| r != 0) || shared.stopping() {
            break;
        }
        match sigfd.read() {
            Some(libc::SIGUSR1) => {
                let dump = lock(&shared.sched).dump();
                eprintln!(
                    "--- enclave_{} run queues ---\n{dump}{}",
                    enclave.id(),
                    shared.txn_dump()
                );
            }
            Some(_) => break,
            None => {}
        }
    }
    let stats = stop_agents(&shared, &mut threads);
    drop(online);
    report.agent_words_left = free_agent_words(&enclave, &threads);
    report.agents = stats;
    report.dispatch = lock(&shared.sched).stats.clone();
    report.failure = lock(&shared.failure).take();
    if shared.sync_unsupported.load(Ordering::Relaxed) {
        report
            .warnings
            .push("the kernel has no sync-group commits (EOPNOTSUPP): committed each transaction on its own".into());
    }
    Ok(report)
}

/// Checks the CPUs against the enclave's and the model.
fn check_config(enclave: &Enclave, cfg: &AgentConfig, cpus: &[usize]) -> Result<()> {
    let what = || format!("agents for enclave_{}", enclave.id());
    if cpus.is_empty() {
        return Err(Error::msg(what(), "no CPUs"));
    }
    let ecpus = enclave.cpus()?;
    if let Some(c) = cpus.iter().find(|&&c| !ecpus.contains(c)) {
        return Err(Error::msg(
            what(),
            format!("CPU {c} is not in the enclave (its CPUs: {ecpus})"),
        ));
    }
    if let Some(c) = cpus.iter().find(|&&c| c >= CpuMask::CPUS) {
        return Err(Error::msg(
            what(),
            format!("CPU {c} is beyond {}", CpuMask::CPUS),
        ));
    }
    if let Model::Centralized { global_cpu } = cfg.model {
        if !cpus.contains(&global_cpu) {
            return Err(Error::msg(
                what(),
                format!("the global CPU {global_cpu} is not one of {}", cfg.cpus),
            ));
        }
        if cpus.len() < 2 {
            return Err(Error::msg(
                what(),
                "the centralized model needs a CPU to schedule besides the global agent's",
            ));
        }
    }
    Ok(())
}

/// Waits until every agent thread became an agent (`Ok(true)`), a stop
/// signal came (`Ok(false)`), one failed (its error), or `timeout` passed.
fn wait_ready(
    rx: &mpsc::Receiver<(usize, Result<(i32, abi::GhostSwInfo)>)>,
    threads: &mut [AgentThread],
    sigfd: &SignalFd,
    timeout: Duration,
) -> Result<bool> {
    let deadline = Instant::now() + timeout;
    let mut left = threads.len();
    while left > 0 {
        if let Some(s) = sigfd.read() {
            if s != libc::SIGUSR1 {
                return Ok(false);
            }
        }
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok((cpu, Ok((tid, sw)))) => {
                if let Some(t) = threads.iter_mut().find(|t| t.cpu == cpu) {
                    t.tid = tid;
                    t.sw = Some(sw);
                }
                left -= 1;
            }
            Ok((_, Err(e))) => return Err(e),
            Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
            Err(_) => {
                return Err(Error::msg(
                    "start the agents",
                    "they did not become agents in time",
                ))
            }
        }
    }
    Ok(true)
}

/// Takes over the enclave's tasks: associates every live task status word
/// with `q` at its barrier (retrying while the barrier moves) and frees
/// orphaned ones. Returns (tasks adopted, words freed, whether `discover
/// tasks` is needed: a task was announced on another queue).
fn adopt(enclave: &Enclave, q: &Queue) -> Result<(usize, usize, bool)> {
    let (mut adopted, mut freed, mut discover) = (0, 0, false);
    for (info, sw) in enclave.sw().in_use() {
        if sw.is_agent() {
            continue;
        }
        let gtid = sw.gtid();
        for _ in 0..1000 {
            if sw.can_free() {
                freed += usize::from(enclave.sw_free(info).is_ok());
                break;
            }
            match enclave.assoc_queue(q, gtid, sw.barrier()) {
                Ok(status) => {
                    adopted += 1;
                    discover |=
                        status & (abi::GHOST_ASSOC_SF_ALREADY | abi::GHOST_ASSOC_SF_BRAND_NEW) == 0;
                    break;
                }
                Err(Errno(libc::ESTALE)) => continue,
                // Gone meanwhile.
                Err(Errno(libc::ENOENT)) => break,
                Err(e) => {
                    return Err(
                        enclave.ioctl_error(&format!("GHOST_IOC_ASSOC_QUEUE (task {gtid})"), e)
                    )
                }
            }
        }
    }
    Ok((adopted, freed, discover))
}

/// Frees the status words of the agent threads that ended (as ghOSt's
/// library does): the kernel marks an agent's word `CANFREE` once the
/// thread is really gone (a little after `join`), and leaves freeing it to
/// the agent's process. Waits for that flag while words keep turning
/// `CANFREE` (up to 5 s without one); returns how many words were left
/// (they go with the enclave).
fn free_agent_words(enclave: &Enclave, threads: &[AgentThread]) -> usize {
    let mut left: Vec<abi::GhostSwInfo> = threads.iter().filter_map(|t| t.sw).collect();
    let mut last_progress = Instant::now();
    while !left.is_empty() && last_progress.elapsed() < Duration::from_secs(5) {
        let before = left.len();
        // By ioctl only, never through the mapping: a destroy that races
        // with the stop revokes the mapping (a read would be SIGBUS) and
        // fails the ioctl (the word went with the enclave). EINVAL: not
        // CANFREE yet (the thread is still leaving).
        left.retain(|&info| matches!(enclave.sw_free(info), Err(sys::Errno(libc::EINVAL))));
        if left.len() < before {
            last_progress = Instant::now();
        } else {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    left.len()
}

/// Stops the agent threads: sets the flag, sends [`WAKE_SIGNAL`] until
/// each has left `ghost_run` or its commit (at most 5 s), joins them.
/// Returns their statistics.
fn stop_agents<P: Policy>(shared: &Shared<P>, threads: &mut [AgentThread]) -> Vec<(usize, Stats)> {
    shared.stop.store(true, Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let mut running = 0;
        for t in threads.iter().filter(|t| !t.done.load(Ordering::Acquire)) {
            running += 1;
            if t.tid != 0 {
                let _ = sys::tgkill(t.tid, WAKE_SIGNAL);
            }
        }
        if running == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut out = Vec::new();
    for t in threads.iter_mut() {
        // A thread that did not stop is left behind (the process exit ends
        // it) rather than waited for forever.
        if !t.done.load(Ordering::Acquire) {
            continue;
        }
        match t.handle.take().map(JoinHandle::join) {
            Some(Ok(st)) => out.push((t.cpu, st)),
            Some(Err(_)) => {
                let e = Error::msg(format!("the agent of CPU {}", t.cpu), "panicked");
                lock(&shared.failure).get_or_insert(e);
            }
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_merges_agents_and_lists_idle_time_by_cpu() {
        let mut a = Stats::default();
        a.count_message(abi::MSG_TASK_NEW);
        a.count_commit(TxnResult::Complete);
        a.idle = Duration::from_millis(1250);
        let mut b = Stats::default();
        b.count_commit(TxnResult::TargetStale);
        b.idle = Duration::from_millis(500);
        let dispatch = Stats {
            sw_freed: 3,
            ..Default::default()
        };
        let r = Report {
            started: true,
            agents: vec![(1, a), (2, b)],
            dispatch,
            ..Default::default()
        };
        let t = r.total();
        assert_eq!(
            (t.total_messages(), t.total_commits(), t.sw_freed),
            (1, 2, 3)
        );
        assert_eq!(t.idle, Duration::from_millis(1750));
        let table = r.table();
        for want in [
            "TASK_NEW",
            "COMPLETE",
            "TARGET_STALE",
            "status words freed",
            "1.750",
            "cpu 1",
            "1.250",
            "cpu 2",
            "0.500",
        ] {
            assert!(table.contains(want), "{want} missing from\n{table}");
        }
    }

    #[test]
    fn config_defaults() {
        let c = AgentConfig::new(CpuSet::parse("1-2").unwrap(), Model::PerCpu);
        assert_eq!(c.queue_elems, abi::GHOST_MAX_QUEUE_ELEMS);
        assert_eq!(c.commit, CommitMode::Each);
        assert!(c.mlock);
        assert_eq!(c.upgrade_timeout, None);
    }
}
