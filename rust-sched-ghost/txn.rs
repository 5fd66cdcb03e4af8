// SPDX-License-Identifier: GPL-2.0

//! Transactions: an agent asks for a task to run on a CPU by filling that
//! CPU's `struct ghost_txn` in `cpu_data` and committing it with
//! `GHOST_IOC_COMMIT_TXN`.
//!
//! A commit claims a `READY` transaction (compare-and-swap to the committing
//! CPU's id), validates it, latches the task on the target CPU (moving it
//! there if it is queued elsewhere), and publishes the outcome in `state`.
//! Every transaction of the mask is committed inline by the caller; the
//! agent's own CPU last. If the caller's own CPU got a task (or idle), the
//! caller then gives its CPU away, as `ghost_run` does, until it is woken.
//! A greedy transaction (no `COMMIT_AT_*` flag) is also committed by the
//! kernel at its CPU's commit points (return to user, `balance`, the tick
//! with `commit_at_tick`): see the section on greedy commits below (the
//! return-to-user one takes no lock to find nothing to commit: the CPU's
//! enclave is read through an RCU-protected per-CPU pointer).
//!
//! Validation follows ghOSt ABI 91 (`_ghost_commit_txn`): version, flags,
//! CPU online, an agent on it, the caller allowed, the target task (found,
//! not an agent, barrier current, runnable, off-CPU unless
//! `ALLOW_TASK_ONCPU`, allowed on the CPU), the agent barrier for a local
//! commit, `DO_NOT_PREEMPT`, and other classes' claim on the CPU.

use crate::agent::percpu::{GhostRq, LockedGhostRq};
use crate::cpu_data::{state, Txn};
use crate::enclave::Enclave;
use crate::gtask::GhostTask;
use crate::msgs;
use crate::parse::CpuSet;
use crate::sys::anchor::Entered;
use crate::sys::cpu::cpu_online;
use crate::sys::percpu::PerCpu;
use crate::sys::rq::{Rq, RqGuard, TaskPtr};
use crate::sys::sched_class::BalanceUnlock;
use crate::sys::task::TaskRqGuard;
use crate::sys::time::now;
use crate::sys::work::IrqWork;
use core::sync::atomic::Ordering;
use kernel::prelude::*;
use kernel::uaccess::UserSlice;
use kernel::uapi;

/// Commit flags this kernel knows.
const COMMIT_FLAGS: u32 = uapi::COMMIT_AT_SCHEDULE
    | uapi::COMMIT_AT_TXN_COMMIT
    | uapi::ALLOW_TASK_ONCPU
    | uapi::ELIDE_AGENT_BARRIER_INC
    | uapi::INC_AGENT_BARRIER_ON_FAILURE;

/// Run flags a transaction may carry.
const TXN_RUN_FLAGS: u32 = uapi::RTLA_ON_PREEMPT
    | uapi::RTLA_ON_BLOCKED
    | uapi::RTLA_ON_YIELD
    | uapi::RTLA_ON_IDLE
    | uapi::NEED_L1D_FLUSH
    | uapi::NEED_CPU_NOT_IDLE
    | uapi::ELIDE_PREEMPT
    | uapi::SEND_TASK_ON_CPU
    | uapi::DEFER_LATCHED_PREEMPTION_BY_AGENT
    | uapi::DO_NOT_PREEMPT;

/// Why a transaction failed: its final `state`.
type Failed = i32;

/// Checks run flags for target `gtid` (pure; ghOSt's `run_flags_valid`):
/// only flags in `supported`; `RTLA_ON_IDLE` not with a special negative
/// gtid; `NEED_CPU_NOT_IDLE` only with `GHOST_IDLE_GTID`; a ping
/// (`GHOST_AGENT_GTID`) takes no flags.
pub fn run_flags_valid(gtid: i64, run_flags: u32, supported: u32) -> bool {
    run_flags & !supported == 0
        && (run_flags & uapi::RTLA_ON_IDLE == 0 || gtid >= 0)
        && (run_flags & uapi::NEED_CPU_NOT_IDLE == 0 || gtid == i64::from(uapi::GHOST_IDLE_GTID))
        && (gtid != i64::from(uapi::GHOST_AGENT_GTID) || run_flags == 0)
}

/// Checks commit flags (pure; ghOSt's `commit_flags_valid`): known flags
/// only, at most one `COMMIT_AT_*`, not both `ELIDE_AGENT_BARRIER_INC` and
/// `INC_AGENT_BARRIER_ON_FAILURE`.
pub fn commit_flags_valid(commit_flags: u32) -> bool {
    let at = commit_flags & (uapi::COMMIT_AT_SCHEDULE | uapi::COMMIT_AT_TXN_COMMIT);
    let barrier =
        commit_flags & (uapi::ELIDE_AGENT_BARRIER_INC | uapi::INC_AGENT_BARRIER_ON_FAILURE);
    commit_flags & !COMMIT_FLAGS == 0 && at.count_ones() <= 1 && barrier.count_ones() <= 1
}

/// How a latch takes effect.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Effect {
    /// Now: the current task is told to leave the CPU.
    Now,
    /// `COMMIT_AT_SCHEDULE`: a ghost task running there keeps the CPU
    /// until it schedules (blocks, yields, is preempted); the next pick
    /// runs the latched task.
    AtSchedule,
    /// A sync group in progress: only at [`release`].
    Held,
    /// The task committed is the one running there (`ALLOW_TASK_ONCPU`): it
    /// keeps the CPU, nothing is latched (ghOSt), no reschedule.
    KeepRunning,
}

/// Latches `p` (or nothing) on `rq`: the task the next pick runs. An older
/// latched task gets `TASK_PREEMPT(was_latched)`. Returns the new CPU
/// sequence number.
fn latch(rq: &Rq, g: LockedGhostRq<'_>, p: Option<TaskPtr>, run_flags: u32, effect: Effect) -> u64 {
    if let Some(old) = g.latched() {
        if Some(old) != p {
            if let Some(ot) = GhostTask::of(rq, old) {
                let seq = g.cpu_seqnum();
                msgs::task::preempt(&ot, rq, old, seq, true);
            }
        }
    }
    g.set_latched(p, run_flags);
    let seq = g.next_cpu_seqnum();
    match effect {
        Effect::Held => g.set_held(true),
        Effect::AtSchedule if ghost_task_running(rq) => {}
        Effect::KeepRunning => {
            g.set_latched(None, run_flags);
            g.set_must_resched(false);
        }
        _ => take_effect(rq, g),
    }
    seq
}

/// Whether a ghost task (not the agent) runs on `rq`'s CPU.
fn ghost_task_running(rq: &Rq) -> bool {
    rq.curr().is_some_and(|curr| {
        curr.in_ghost_class() && GhostTask::of(rq, curr).is_some_and(|gt| !gt.is_agent())
    })
}

/// The latch of `rq` takes effect: the current task leaves the CPU unless
/// it is the latched one.
fn take_effect(rq: &Rq, g: LockedGhostRq<'_>) {
    let p = g.latched();
    g.set_must_resched(p.is_none());
    if p.is_none() || p != rq.curr() {
        rq.resched_curr();
    }
}

/// Ends the hold of a sync group on `cpu`'s latch: with `go`, the latch
/// takes effect; else it is dropped (the group failed), and the task stays
/// runnable where it is, for the agent to decide again.
fn release(cpu: i32, go: bool) {
    let Some(rq) = RqGuard::lock(cpu) else {
        return;
    };
    let Some(g) = rq.ghost() else {
        return;
    };
    if !g.held() {
        // Replaced meanwhile (the agent died, or the task ran): nothing held.
        return;
    }
    if go {
        g.set_held(false);
        take_effect(&rq, g);
    } else {
        g.set_latched(None, 0);
    }
}

/// What a successful commit did.
pub struct Committed {
    /// The CPU sequence number of the latch.
    pub cpu_seqnum: u64,
    /// The committer's CPU got something to run (the committer yields).
    pub local_yield: bool,
}

/// The thread that commits, as ghOSt's permission checks see it.
#[derive(Clone, Copy)]
struct Committer {
    /// Its CPU, if it is an agent of the enclave whose transactions these
    /// are: it may commit on every CPU of that enclave, and a commit on its
    /// own CPU is a local one (it gives the CPU away).
    agent_cpu: Option<i32>,
    /// Its thread group: any thread of an agent's process may ping that
    /// agent (`GHOST_AGENT_GTID`), agent or not.
    tgid: i32,
    /// The kernel, at a commit point of greedy transactions (ghOSt's
    /// asynchronous commit): always allowed, never a local one.
    by_kernel: bool,
}

impl Committer {
    /// The calling thread, committing transactions of `e`, whose CPUs are
    /// `cpus`. An agent of another enclave is no agent here (ghOSt: the two
    /// CPUs must be in the same enclave): an agent's CPU belongs to its
    /// enclave for as long as it is there. Lock-free.
    fn current(cpus: &CpuSet) -> Committer {
        let agent_cpu = crate::agent::percpu::current_cpu()
            .filter(|&cpu| usize::try_from(cpu).is_ok_and(|c| cpus.contains(c)));
        Committer {
            agent_cpu,
            tgid: TaskPtr::current().map_or(0, TaskPtr::tgid),
            by_kernel: false,
        }
    }

    /// The kernel, committing at a commit point.
    fn kernel() -> Committer {
        Committer {
            agent_cpu: None,
            tgid: 0,
            by_kernel: true,
        }
    }

    /// The CPU whose transaction is committed last and whose failure
    /// poisons nothing: the agent's own, else the one the caller runs on.
    fn home_cpu(&self) -> i32 {
        self.agent_cpu.unwrap_or_else(crate::sys::cpu::this_cpu)
    }
}

/// Commits `cpu`'s transaction, already claimed, for `who`; `hold` for a
/// member of a sync group (see [`latch`]). The checks follow ghOSt ABI 91
/// (`_ghost_commit_txn`), in its order, so that a transaction that fails for
/// several reasons reports the same one.
fn commit(
    e: &Enclave,
    cpu: i32,
    who: Committer,
    hold: bool,
) -> core::result::Result<Committed, Failed> {
    let txn = e.cpu_data().txn(cpu).ok_or(state::INVALID_CPU)?;
    let req = txn.request();
    if req.version != uapi::GHOST_TXN_VERSION as i32 {
        return Err(state::UNSUPPORTED_VERSION);
    }
    if req.cpu != cpu {
        return Err(state::INVALID_CPU);
    }
    if !run_flags_valid(req.gtid, req.run_flags, TXN_RUN_FLAGS) {
        return Err(state::INVALID_FLAGS);
    }
    if !commit_flags_valid(req.commit_flags) {
        return Err(state::INVALID_FLAGS);
    }
    let g = GhostRq::of(cpu).ok_or(state::INVALID_CPU)?;
    // From here on, a failure bumps the agent barrier if the agent asked
    // for it (ghOSt: every failure once the flags are known).
    let r = commit_checked(e, cpu, g, &req, who, hold);
    if r.is_err() && req.commit_flags & uapi::INC_AGENT_BARRIER_ON_FAILURE != 0 {
        g.bump_agent_barrier();
    }
    r
}

/// [`commit`] once the transaction's version and flags are valid.
fn commit_checked(
    e: &Enclave,
    cpu: i32,
    g: &GhostRq,
    req: &crate::cpu_data::TxnRequest,
    who: Committer,
    hold: bool,
) -> core::result::Result<Committed, Failed> {
    if !cpu_online(cpu) {
        return Err(state::CPU_OFFLINE);
    }
    let ping = req.gtid == i64::from(uapi::GHOST_AGENT_GTID);
    // A task to run, or the idle task; `None` for the other special gtids
    // (0: nothing, "unschedule"; -1: ping the agent).
    let mut next: Option<TaskPtr> = None;
    let idle = req.gtid == i64::from(uapi::GHOST_IDLE_GTID);
    let mut tg: Option<TaskRqGuard> = None;
    let mut cg: Option<RqGuard> = None;
    if req.gtid > 0 {
        let t = e.task_by_gtid(req.gtid).ok_or(state::TARGET_NOT_FOUND)?;
        let mut guard = TaskRqGuard::lock(t);
        let p = guard.task();
        if GhostTask::of(&guard, p).is_none() {
            // Found, but not in ghost. Dead (the agent has not seen
            // TASK_DEAD yet), or departed with its TASK_DEPARTED possibly
            // unread: a stale view. Else it is no ghost task at all.
            let dead = p.dead();
            drop(guard);
            return Err(if dead || e.departed_unfreed(req.gtid) {
                state::TARGET_STALE
            } else {
                state::INVALID_TARGET
            });
        }
        validate_task(e, &guard, p, req)?;
        if req.commit_flags & uapi::ALLOW_TASK_ONCPU == 0 || p.cpu() != cpu {
            // It must be off every CPU (an agent may have preempted it and
            // it has not left yet).
            if p.on_cpu() {
                return Err(state::TARGET_ONCPU);
            }
        } else if guard.is_curr(p) && guard.ghost().is_some_and(|g| g.must_resched()) {
            // Running here, but on its way off (a failed sync group forced
            // it): fail until it is off.
            return Err(state::TARGET_STALE);
        }
        if p.cpu() != cpu {
            // Placement is the agent's: the task moves to the CPU it runs
            // on. As in ghOSt, the kernel does not check the task's
            // affinity here: honouring it is the policy's job (it learns of
            // changes from TASK_AFFINITY_CHANGED), and ghOSt's agent library
            // treats INVALID_CPU as fatal. A task that may not migrate at
            // all right now is only a stale view: the agent retries.
            if p.migration_disabled() {
                return Err(state::TARGET_STALE);
            }
            guard.move_to(cpu);
        }
        next = Some(p);
        tg = Some(guard);
    } else {
        if req.gtid < i64::from(uapi::GHOST_IDLE_GTID) {
            return Err(state::INVALID_TARGET);
        }
        cg = Some(RqGuard::lock(cpu).ok_or(state::INVALID_CPU)?);
    }
    // One of the two guards holds `cpu`'s runqueue lock.
    let rq: &Rq = match (&tg, &cg) {
        (Some(t), _) => t,
        (None, Some(c)) => c,
        (None, None) => return Err(state::INVALID_CPU),
    };
    // `cpu`'s state, with its rq-locked part.
    let Some(g) = rq.ghost().filter(|lg| core::ptr::eq(&**lg, g)) else {
        return Err(state::INVALID_CPU);
    };
    let Some(agent) = g.agent() else {
        return Err(state::NO_AGENT);
    };
    let allowed = who.by_kernel || who.agent_cpu.is_some() || (ping && agent.tgid() == who.tgid);
    if !allowed {
        return Err(state::NOT_PERMITTED);
    }
    let runs_something = next.is_some() || idle;
    if runs_something && req.run_flags & uapi::DO_NOT_PREEMPT != 0 && ghost_busy(rq, g) {
        return Err(state::AGENT_STALE);
    }
    if runs_something && other_class_busy(rq) {
        return Err(state::CPU_UNAVAIL);
    }
    // A commit on the committing agent's own CPU (not a ping of itself)
    // gives the CPU away: the agent must have seen every message first.
    let local = who.agent_cpu == Some(cpu) && !ping;
    if local {
        // Wakes that come after this are for messages the agent has not
        // seen: they must wake it again (see `agent::block`).
        g.should_wake().store(false, Ordering::SeqCst);
        if g.agent_barrier() != req.agent_barrier {
            return Err(state::AGENT_STALE);
        }
    }
    let bump = || {
        if req.commit_flags & uapi::ELIDE_AGENT_BARRIER_INC == 0 {
            g.bump_agent_barrier();
        }
    };
    if ping {
        // The agent runs (a ping of itself only bumps its barrier); a latch
        // stays as it is.
        bump();
        crate::agent::percpu::wake(cpu);
        return Ok(Committed {
            cpu_seqnum: g.next_cpu_seqnum(),
            local_yield: false,
        });
    }
    let effect = match hold {
        _ if next.is_some_and(|p| rq.is_curr(p)) => Effect::KeepRunning,
        true => Effect::Held,
        false if req.commit_flags & uapi::COMMIT_AT_SCHEDULE != 0 => Effect::AtSchedule,
        false => Effect::Now,
    };
    // gtid 0 latches nothing: the CPU's ghost task, if any, leaves it
    // ("unschedule"); on the agent's own CPU it only gives the CPU away.
    let seq = latch(rq, g, next, req.run_flags, effect);
    bump();
    Ok(Committed {
        cpu_seqnum: seq,
        local_yield: local,
    })
}

/// ghOSt's `validate_next_task`: the target of a commit, locked and in
/// ghost, must be a task of `e` (not an agent), not gated, with the
/// barrier the agent saw, and runnable.
fn validate_task(
    e: &Enclave,
    rq: &Rq,
    p: TaskPtr,
    req: &crate::cpu_data::TxnRequest,
) -> core::result::Result<(), Failed> {
    let Some(gt) = GhostTask::of(rq, p) else {
        return Err(state::INVALID_TARGET);
    };
    if gt.is_agent() {
        return Err(state::INVALID_TARGET);
    }
    if !core::ptr::eq(gt.enclave(), e) {
        // ghOSt looks tasks up system-wide; a task of another enclave is
        // none of this agent's business.
        return Err(state::TARGET_NOT_FOUND);
    }
    if gt.gated() || gt.new_pending() || gt.barrier() != req.task_barrier {
        return Err(state::TARGET_STALE);
    }
    if !p.queued() {
        return Err(state::TARGET_NOT_RUNNABLE);
    }
    Ok(())
}

/// Whether a ghost task runs on, or is latched to, `rq`'s CPU.
fn ghost_busy(rq: &Rq, g: LockedGhostRq<'_>) -> bool {
    g.latched().is_some() || ghost_task_running(rq)
}

/// Whether a task of another class (not the agent, not idle) has `rq`'s
/// CPU: a ghost task latched there would not get it.
fn other_class_busy(rq: &Rq) -> bool {
    rq.curr()
        .is_some_and(|curr| !curr.in_ghost_class() && !curr.is_idle())
}

/// The CPUs of a commit call: the caller's mask, restricted to the
/// enclave's CPUs, in commit order (the committer's home CPU last: an agent
/// may give its own CPU away).
struct Mask {
    bits: [u8; MASK_BYTES],
    cpus: CpuSet,
    who: Committer,
}

/// The largest mask a commit call reads (bytes): a bit for every CPU a
/// [`CpuSet`] holds; a longer one is cut, as ghOSt cuts it to the kernel's
/// cpumask size (userspace passes a whole 128-byte `cpu_set_t`).
const MASK_BYTES: usize = crate::parse::MAX_CPUS / 8;

impl Mask {
    /// Reads the `{mask, len, flags}` arguments of a commit call on `e`.
    /// `EINVAL` for nonzero `flags`, `EFAULT` for a bad mask pointer. The
    /// caller need not be an agent: a transaction it may not commit fails
    /// on its own (`NOT_PERMITTED`).
    fn read(e: &Enclave, mask: u64, len: u32, flags: i32) -> Result<Mask> {
        if flags != 0 {
            return Err(EINVAL);
        }
        let len = (len as usize).min(MASK_BYTES);
        let mut bits = [0u8; MASK_BYTES];
        let dst = bits.get_mut(..len).ok_or(EINVAL)?;
        UserSlice::new(mask as usize, len)
            .reader()
            .read_slice(dst)?;
        let cpus = e.cpus();
        Ok(Mask {
            bits,
            who: Committer::current(&cpus),
            cpus,
        })
    }

    /// The CPUs, in commit order.
    fn order(&self) -> impl Iterator<Item = i32> + '_ {
        let in_mask = |cpu: i32| {
            let (byte, bit) = ((cpu / 8) as usize, cpu % 8);
            self.bits.get(byte).is_some_and(|b| b & (1 << bit) != 0)
        };
        let home = self.who.home_cpu();
        let others = self
            .cpus
            .iter()
            .filter_map(|c| i32::try_from(c).ok())
            .filter(move |&c| c != home);
        let mine = self.cpus.contains(home as usize).then_some(home);
        Iterator::chain(others, mine).filter(move |&c| in_mask(c))
    }
}

/// Publishes the outcome of a claimed transaction's commit in its `state`;
/// the commit, if it succeeded.
fn publish(txn: &Txn<'_>, r: core::result::Result<Committed, Failed>) -> Option<Committed> {
    match r {
        Ok(c) => {
            txn.complete(state::COMPLETE, c.cpu_seqnum, now());
            Some(c)
        }
        Err(state) => {
            txn.complete(state, 0, now());
            None
        }
    }
}

/// The committing agent gave its own CPU away: it blocks until woken.
fn yield_local(my_cpu: i32) -> Result {
    let g = GhostRq::of(my_cpu).ok_or(EINVAL)?;
    // The barrier was checked at the commit.
    crate::agent::percpu::block(g, None)
}

/// `GHOST_IOC_COMMIT_TXN {mask, len, flags}`: commits every `READY`
/// transaction of the enclave's CPUs in the mask, each on its own (see
/// [`Mask::read`] for the errors), the caller's home CPU last. If an
/// earlier one failed, the home CPU's transaction ends `POISONED` instead
/// of being committed, so that the agent returns at once to react (ghOSt).
/// May block (an agent's own CPU): returns when the agent is woken.
pub fn commit_ioctl(e: &Enclave, mask: u64, len: u32, flags: i32) -> Result<isize> {
    let mask = Mask::read(e, mask, len, flags)?;
    let home = mask.who.home_cpu();
    let mut local_yield = false;
    let mut failed = 0u32;
    for cpu in mask.order() {
        let Some(txn) = e.cpu_data().txn(cpu) else {
            continue;
        };
        if !txn.cas_state(state::READY, crate::sys::cpu::this_cpu()) {
            continue;
        }
        if cpu == home && failed > 0 {
            txn.complete(state::POISONED, 0, now());
            continue;
        }
        match publish(&txn, commit(e, cpu, mask.who, false)) {
            Some(c) => local_yield |= c.local_yield,
            None => failed = failed.saturating_add(1),
        }
    }
    if let (true, Some(cpu)) = (local_yield, mask.who.agent_cpu) {
        yield_local(cpu)?;
    }
    Ok(0)
}

/// `GHOST_IOC_SYNC_GROUP_TXN {mask, len, flags}`: commits the transactions
/// of the enclave's CPUs in the mask all or nothing. Returns 1 if every
/// one committed, 0 if none did.
///
/// Every transaction of the group must be `READY`: the call claims them
/// all first, and if one is not, the claimed ones end `POISONED`. Then it
/// commits them in order, each latch *held* (not picked, no IPI). If one
/// fails, it ends with its own result, the held latches are dropped (their
/// tasks stay runnable where they are, for the agent to decide again), and
/// every other transaction of the group ends `POISONED`
/// (`INC_AGENT_BARRIER_ON_FAILURE` bumps its CPU's agent barrier); the
/// agent keeps ownership of the group's transactions
/// (`u.sync_group_owner` stays). If all commit, the latches take effect
/// together, every transaction ends `COMPLETE` with `u.sync_group_owner`
/// reset to -1, and if the caller's own CPU is in the group, the caller
/// gives it away (blocks) as for a local commit.
pub fn sync_group_ioctl(e: &Enclave, mask: u64, len: u32, flags: i32) -> Result<isize> {
    let mask = Mask::read(e, mask, len, flags)?;
    let me = crate::sys::cpu::this_cpu();
    // The group, privately (the states are the agent's to scribble on).
    let mut group = CpuSet::new();
    let mut all_ready = true;
    for cpu in mask.order() {
        match e.cpu_data().txn(cpu) {
            Some(txn) if txn.cas_state(state::READY, me) => {
                group.insert(cpu as usize);
            }
            _ => all_ready = false,
        }
    }
    let txn = |cpu: i32| e.cpu_data().txn(cpu);
    let members = || mask.order().filter(|&c| group.contains(c as usize));
    let mut failed: Option<(i32, Failed)> = None;
    let mut local_yield = false;
    if all_ready {
        for cpu in members() {
            match commit(e, cpu, mask.who, true) {
                Ok(c) => {
                    local_yield |= c.local_yield;
                    if let Some(t) = txn(cpu) {
                        t.set_result(c.cpu_seqnum, now());
                    }
                }
                Err(state) => {
                    failed = Some((cpu, state));
                    break;
                }
            }
        }
    }
    let ok = all_ready && failed.is_none();
    // The commits before a failure are undone; after it, never made.
    let mut undo = true;
    for cpu in members() {
        let Some(t) = txn(cpu) else {
            continue;
        };
        match failed {
            _ if ok => {
                release(cpu, true);
                t.set_sync_group_owner(-1);
                t.set_state(state::COMPLETE);
            }
            Some((f, state)) if f == cpu => {
                undo = false;
                t.complete(state, 0, now());
            }
            _ => {
                if undo && all_ready {
                    release(cpu, false);
                }
                if !undo || !all_ready {
                    // Never committed: poisoned, and the agent asked for a
                    // barrier bump on failure.
                    if t.request().commit_flags & uapi::INC_AGENT_BARRIER_ON_FAILURE != 0 {
                        if let Some(g) = GhostRq::of(cpu) {
                            g.bump_agent_barrier();
                        }
                    }
                }
                t.complete(state::POISONED, 0, now());
            }
        }
    }
    if let (true, true, Some(cpu)) = (ok, local_yield, mask.who.agent_cpu) {
        yield_local(cpu)?;
    }
    Ok(isize::from(ok))
}

// Greedy transactions: a `READY` transaction without a `COMMIT_AT_*` flag
// may be committed at any commit point of its CPU, not only by
// `GHOST_IOC_COMMIT_TXN`: on return to user mode on that CPU
// ([`commit_greedy`], from the entry code), in the ghost class's `balance`
// ([`commit_greedy_at_balance`]), and at the tick when the enclave's
// `commit_at_tick` is set ([`commit_greedy_at_tick`]). The kernel commits it
// as ghOSt's asynchronous commit does: every check of a commit, the
// committer always allowed, never a local commit (the agent is not made to
// give its CPU away, its barrier is not checked), the outcome in `state`.
//
// The return-to-user point runs on every system call return on a CPU an
// enclave owns, so it takes no lock unless it commits: the entry code calls
// it only when the registry's RCU-protected per-CPU enclave pointer is set
// (one per-CPU load elsewhere), and it reads that pointer
// ([`crate::cpu_enclave::with_this_cpu_enclave`]) and checks the
// transaction lock-free, with interrupts off, which is an RCU-sched
// read-side section; writers clear the pointer and wait for a grace period
// before the enclave (and its `cpu_data`) may go, and before a destroy
// starts. The balance and tick points hold the runqueue lock anyway and
// find the enclave through the agent (counted where the lock is dropped
// for the commit).

/// Whether `cpu`'s transaction in `e` is `READY` and greedy.
fn greedy_ready(e: &Enclave, cpu: i32) -> bool {
    e.cpu_data().txn(cpu).is_some_and(|t| {
        t.state() == state::READY
            && t.request().commit_flags & (uapi::COMMIT_AT_SCHEDULE | uapi::COMMIT_AT_TXN_COMMIT)
                == 0
    })
}

/// The enclave of `rq`'s agent, counted (it stays after the unlock), if
/// `rq`'s CPU has a greedy transaction ready there.
fn greedy_enclave(rq: &Rq) -> Option<Entered<Enclave>> {
    let g = rq.ghost()?;
    let e = GhostTask::of(rq, g.agent()?)?.enclave();
    if !greedy_ready(e, rq.cpu()) {
        return None;
    }
    e.enter().ok()
}

/// Claims and commits `cpu`'s greedy transaction in `e`, if it is still
/// ready (the agent may have aborted it, or a commit call claimed it).
/// Never sleeps; no runqueue lock held.
fn commit_greedy_in(e: &Enclave, cpu: i32) {
    if !greedy_ready(e, cpu) {
        return;
    }
    let Some(txn) = e.cpu_data().txn(cpu) else {
        return;
    };
    if !txn.cas_state(state::READY, crate::sys::cpu::this_cpu()) {
        return;
    }
    publish(&txn, commit(e, cpu, Committer::kernel(), false));
}

/// The return-to-user commit point of the calling CPU (interrupts off, no
/// lock held): commits its greedy transaction, if any and if the CPU has an
/// agent. Takes no lock unless there is one to commit: the CPU's enclave,
/// read lock-free under RCU (see
/// [`crate::cpu_enclave::with_this_cpu_enclave`]; the entry code calls this
/// only when it is set), then its transaction's `state` (untrusted shared
/// memory, as any commit reads it): not `READY` is the common case, and
/// the end.
pub fn commit_greedy() {
    crate::cpu_enclave::with_this_cpu_enclave(|e, cpu| {
        if greedy_ready(e, cpu) && GhostRq::of(cpu).and_then(GhostRq::agent).is_some() {
            commit_greedy_in(e, cpu);
        }
    });
}

/// The `balance` commit point (ghOSt's `balance_ghost`), `rq` locked: with
/// nothing latched and no task of another class runnable, commits the
/// CPU's greedy transaction with `rq` unlocked meanwhile. Returns whether a
/// task is latched now.
pub fn commit_greedy_at_balance(rq: &Rq, unlock: &BalanceUnlock) -> bool {
    let idle = rq.ghost().is_some_and(|g| g.latched().is_none()) && !rq.others_runnable();
    if idle {
        if let Some(e) = greedy_enclave(rq) {
            let cpu = rq.cpu();
            unlock.unlocked(|| commit_greedy_in(e.get(), cpu));
        }
    }
    rq.ghost().is_some_and(|g| g.latched().is_some())
}

/// Per CPU, the irq_work that commits its greedy transaction, queued by
/// [`commit_greedy_at_tick`].
static GREEDY_WORK: PerCpu<IrqWork> = PerCpu::new();

/// [`GREEDY_WORK`]'s handler: on its CPU, in hard interrupt context, no
/// runqueue lock held.
fn greedy_work() {
    commit_greedy();
}

/// Sets up [`GREEDY_WORK`]. Once, at boot.
pub fn init() -> Result {
    GREEDY_WORK.init(|_| IrqWork::new(greedy_work))?;
    for cpu in 0..crate::sys::cpu::nr_cpu_ids() {
        if let Some(w) = GREEDY_WORK.get(cpu as i32) {
            w.init();
        }
    }
    Ok(())
}

/// The tick commit point, `rq` locked: when the enclave of `rq`'s agent
/// has `commit_at_tick` set, every CPU with a greedy transaction ready in
/// it commits it, from an irq_work on that CPU (ghOSt commits the ticking
/// CPU's and sends the others a reschedule IPI, whose way back to user mode
/// or through `balance` commits theirs).
pub fn commit_greedy_at_tick(rq: &Rq) {
    let Some(g) = rq.ghost() else {
        return;
    };
    let Some(e) = g
        .agent()
        .and_then(|a| GhostTask::of(rq, a))
        .map(GhostTask::enclave)
    else {
        return;
    };
    if !e.tunable(crate::enclave::COMMIT_AT_TICK) {
        return;
    }
    for cpu in 0..crate::sys::cpu::nr_cpu_ids() {
        let cpu = cpu as i32;
        if greedy_ready(e, cpu) {
            if let Some(w) = GREEDY_WORK.get(cpu) {
                w.queue_on(cpu);
            }
        }
    }
}
