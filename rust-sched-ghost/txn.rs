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
//!
//! Validation follows ghOSt ABI 91 (`_ghost_commit_txn`): version, flags,
//! CPU online, an agent on it, the caller allowed, the target task (found,
//! not an agent, barrier current, runnable, off-CPU unless
//! `ALLOW_TASK_ONCPU`, allowed on the CPU), the agent barrier for a local
//! commit, `DO_NOT_PREEMPT`, and other classes' claim on the CPU.

use crate::enclave::Enclave;
use crate::gtask::GhostTask;
use crate::parse::CpuSet;
use crate::rq::{cpu_online, GhostRq, Rq, RqGuard, TaskPtr, TaskRqGuard};
use crate::sched::now;
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

/// Run flags this kernel knows.
const RUN_FLAGS: u32 = uapi::RTLA_ON_PREEMPT
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

/// Checks the flags of a request (pure).
pub fn flags_valid(gtid: i64, run_flags: u32, commit_flags: u32) -> bool {
    let at = commit_flags & (uapi::COMMIT_AT_SCHEDULE | uapi::COMMIT_AT_TXN_COMMIT);
    let barrier =
        commit_flags & (uapi::ELIDE_AGENT_BARRIER_INC | uapi::INC_AGENT_BARRIER_ON_FAILURE);
    commit_flags & !COMMIT_FLAGS == 0
        && run_flags & !RUN_FLAGS == 0
        && at.count_ones() <= 1
        && barrier.count_ones() <= 1
        && (run_flags & uapi::RTLA_ON_IDLE == 0 || gtid >= 0)
        && (gtid != i64::from(uapi::GHOST_AGENT_GTID) || run_flags == 0)
        && (run_flags & uapi::NEED_CPU_NOT_IDLE == 0 || gtid == i64::from(uapi::GHOST_IDLE_GTID))
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
}

/// Latches `p` (or nothing) on `rq`: the task the next pick runs. An older
/// latched task gets `TASK_PREEMPT(was_latched)`. Returns the new CPU
/// sequence number.
fn latch(rq: &Rq, g: &GhostRq, p: Option<TaskPtr>, run_flags: u32, effect: Effect) -> u64 {
    if let Some(old) = g.latched(rq) {
        if Some(old) != p {
            if let Some(ot) = GhostTask::of(rq, old) {
                let seq = g.cpu_seqnum(rq);
                ot.msg_preempt(rq, old, seq, true);
            }
        }
    }
    g.set_latched(rq, p, run_flags);
    let seq = g.next_cpu_seqnum(rq);
    match effect {
        Effect::Held => g.set_held(rq, true),
        Effect::AtSchedule if ghost_task_running(rq) => {}
        _ => take_effect(rq, g),
    }
    seq
}

/// Whether a ghost task (not the agent) runs on `rq`'s CPU.
fn ghost_task_running(rq: &Rq) -> bool {
    let curr = rq.curr();
    curr.in_ghost_class() && GhostTask::of(rq, curr).is_some_and(|gt| !gt.is_agent())
}

/// The latch of `rq` takes effect: the current task leaves the CPU unless
/// it is the latched one.
fn take_effect(rq: &Rq, g: &GhostRq) {
    let p = g.latched(rq);
    g.set_must_resched(rq, p.is_none());
    if p != Some(rq.curr()) {
        rq.resched_curr();
    }
}

/// Ends the hold of a sync group on `cpu`'s latch: with `go`, the latch
/// takes effect; else it is dropped (the group failed), and the task stays
/// runnable where it is, for the agent to decide again.
fn release(cpu: i32, go: bool) {
    let (Some(rq), Some(g)) = (RqGuard::lock(cpu), GhostRq::of(cpu)) else {
        return;
    };
    if !g.held(&rq) {
        // Replaced meanwhile (the agent died, or the task ran): nothing held.
        return;
    }
    if go {
        g.set_held(&rq, false);
        take_effect(&rq, g);
    } else {
        g.set_latched(&rq, None, 0);
    }
}

/// What a successful commit did.
pub struct Committed {
    /// The CPU sequence number of the latch.
    pub cpu_seqnum: u64,
    /// The committer's CPU got something to run (the committer yields).
    pub local_yield: bool,
}

/// Commits `cpu`'s transaction, already claimed, for the agent of
/// `my_cpu`; `hold` for a member of a sync group (see [`latch`]).
fn commit(
    e: &Enclave,
    cpu: i32,
    my_cpu: i32,
    hold: bool,
) -> core::result::Result<Committed, Failed> {
    let txn = e.cpu_data().txn(cpu).ok_or(uapi::GHOST_TXN_INVALID_CPU)?;
    let req = txn.request();
    let local = cpu == my_cpu;
    if req.version != uapi::GHOST_TXN_VERSION as i32 {
        return Err(uapi::GHOST_TXN_UNSUPPORTED_VERSION);
    }
    if !flags_valid(req.gtid, req.run_flags, req.commit_flags) {
        return Err(uapi::GHOST_TXN_INVALID_FLAGS);
    }
    if !cpu_online(cpu) {
        return Err(uapi::GHOST_TXN_CPU_OFFLINE);
    }
    let g = GhostRq::of(cpu).ok_or(uapi::GHOST_TXN_INVALID_CPU)?;
    if g.agent().is_none() {
        return Err(uapi::GHOST_TXN_NO_AGENT);
    }
    let stale_agent = || {
        if req.commit_flags & uapi::INC_AGENT_BARRIER_ON_FAILURE != 0 {
            g.bump_agent_barrier();
        }
        uapi::GHOST_TXN_AGENT_STALE
    };
    if local {
        // Wakes that come after this are for messages the agent has not
        // seen: they must wake it again (see `agent::block`).
        g.should_wake().store(false, Ordering::SeqCst);
        if g.agent_barrier() != req.agent_barrier {
            return Err(stale_agent());
        }
    }
    let effect = |hold: bool| match hold {
        true => Effect::Held,
        false if req.commit_flags & uapi::COMMIT_AT_SCHEDULE != 0 => Effect::AtSchedule,
        false => Effect::Now,
    };
    let bump = |g: &GhostRq| {
        if req.commit_flags & uapi::ELIDE_AGENT_BARRIER_INC == 0 {
            g.bump_agent_barrier();
        }
    };
    match req.gtid {
        0 => {
            // Nothing: a local commit only gives the CPU away.
            let rq = RqGuard::lock(cpu).ok_or(uapi::GHOST_TXN_INVALID_CPU)?;
            let seq = g.next_cpu_seqnum(&rq);
            bump(g);
            Ok(Committed {
                cpu_seqnum: seq,
                local_yield: local,
            })
        }
        gtid if gtid == i64::from(uapi::GHOST_IDLE_GTID) => {
            let rq = RqGuard::lock(cpu).ok_or(uapi::GHOST_TXN_INVALID_CPU)?;
            if req.run_flags & uapi::DO_NOT_PREEMPT != 0 && ghost_busy(&rq, g) {
                return Err(stale_agent());
            }
            let seq = latch(&rq, g, None, req.run_flags, effect(hold));
            bump(g);
            Ok(Committed {
                cpu_seqnum: seq,
                local_yield: local,
            })
        }
        gtid if gtid == i64::from(uapi::GHOST_AGENT_GTID) => {
            // A ping: only of an agent of the caller's own process.
            let same_process = {
                let _rq = RqGuard::lock(cpu).ok_or(uapi::GHOST_TXN_INVALID_CPU)?;
                g.agent()
                    .is_some_and(|a| a.tgid() == TaskPtr::current().tgid())
            };
            if !same_process {
                return Err(uapi::GHOST_TXN_NOT_PERMITTED);
            }
            crate::agent::wake(cpu);
            Ok(Committed {
                cpu_seqnum: 0,
                local_yield: false,
            })
        }
        gtid if gtid > 0 => {
            let t = e
                .task_by_gtid(gtid)
                .ok_or(uapi::GHOST_TXN_TARGET_NOT_FOUND)?;
            let mut tg = TaskRqGuard::lock(t);
            let p = tg.task();
            {
                let gt = GhostTask::of(&tg, p).ok_or(uapi::GHOST_TXN_TARGET_NOT_FOUND)?;
                if !core::ptr::eq(gt.enclave(), e) {
                    return Err(uapi::GHOST_TXN_TARGET_NOT_FOUND);
                }
                if gt.is_agent() {
                    return Err(uapi::GHOST_TXN_INVALID_TARGET);
                }
                if gt.barrier() != req.task_barrier || gt.new_pending() {
                    return Err(uapi::GHOST_TXN_TARGET_STALE);
                }
            }
            if !p.queued() {
                return Err(uapi::GHOST_TXN_TARGET_NOT_RUNNABLE);
            }
            let running_here = p.cpu() == cpu && tg.curr() == p;
            if p.on_cpu() && !running_here {
                if req.commit_flags & uapi::ALLOW_TASK_ONCPU == 0 || p.cpu() != cpu {
                    return Err(uapi::GHOST_TXN_TARGET_ONCPU);
                }
            }
            if !p.allowed_on(cpu) {
                return Err(uapi::GHOST_TXN_INVALID_CPU);
            }
            if p.cpu() != cpu {
                tg.move_to(cpu);
            }
            let rq: &Rq = &tg;
            if req.run_flags & uapi::DO_NOT_PREEMPT != 0 && ghost_busy(rq, g) {
                return Err(stale_agent());
            }
            if other_class_busy(rq) {
                return Err(uapi::GHOST_TXN_CPU_UNAVAIL);
            }
            let seq = latch(rq, g, Some(p), req.run_flags, effect(hold));
            bump(g);
            Ok(Committed {
                cpu_seqnum: seq,
                local_yield: local,
            })
        }
        _ => Err(uapi::GHOST_TXN_INVALID_TARGET),
    }
}

/// Whether a ghost task runs on, or is latched to, `rq`'s CPU.
fn ghost_busy(rq: &Rq, g: &GhostRq) -> bool {
    g.latched(rq).is_some() || ghost_task_running(rq)
}

/// Whether a task of another class (not the agent, not idle) has `rq`'s
/// CPU: a ghost task latched there would not get it.
fn other_class_busy(rq: &Rq) -> bool {
    let curr = rq.curr();
    !curr.in_ghost_class() && !curr.is_idle()
}

/// The CPUs of a commit call: the caller's mask, restricted to the
/// enclave's CPUs, in commit order (the caller's own CPU last: it may give
/// its CPU away).
struct Mask {
    bits: [u8; MASK_BYTES],
    cpus: CpuSet,
    my_cpu: i32,
}

/// The largest mask a commit call takes (bytes).
const MASK_BYTES: usize = 1024;

impl Mask {
    /// Reads the `{mask, len, flags}` arguments of the caller, which must be
    /// an agent of `e`. `EINVAL` for nonzero `flags`, a `len` beyond
    /// [`MASK_BYTES`], or a caller that is not an agent of `e`; `EFAULT`
    /// for a bad mask pointer.
    fn read(e: &Enclave, mask: u64, len: u32, flags: i32) -> Result<Mask> {
        if flags != 0 || len as usize > MASK_BYTES {
            return Err(EINVAL);
        }
        let (my_cpu, my_enclave) = crate::sched::current_agent().ok_or(EINVAL)?;
        if !core::ptr::eq(my_enclave, e) {
            return Err(EINVAL);
        }
        let mut bits = [0u8; MASK_BYTES];
        let dst = bits.get_mut(..len as usize).ok_or(EINVAL)?;
        UserSlice::new(mask as usize, len as usize)
            .reader()
            .read_slice(dst)?;
        Ok(Mask {
            bits,
            cpus: e.cpus(),
            my_cpu,
        })
    }

    /// The CPUs, in commit order.
    fn order(&self) -> impl Iterator<Item = i32> + '_ {
        let in_mask = |cpu: i32| {
            let (byte, bit) = ((cpu / 8) as usize, cpu % 8);
            self.bits.get(byte).is_some_and(|b| b & (1 << bit) != 0)
        };
        let my_cpu = self.my_cpu;
        let others = self
            .cpus
            .iter()
            .filter_map(|c| i32::try_from(c).ok())
            .filter(move |&c| c != my_cpu);
        let mine = self.cpus.contains(my_cpu as usize).then_some(my_cpu);
        Iterator::chain(others, mine).filter(move |&c| in_mask(c))
    }
}

/// The committing agent gave its own CPU away: it blocks until woken.
fn yield_local(my_cpu: i32) -> Result {
    let g = GhostRq::of(my_cpu).ok_or(EINVAL)?;
    // The barrier was checked at the commit; a signal ends the wait early
    // and is no error of the commit.
    let _ = crate::agent::block(g, None);
    Ok(())
}

/// `GHOST_IOC_COMMIT_TXN {mask, len, flags}`: commits every `READY`
/// transaction of the enclave's CPUs in the mask, each on its own (see
/// [`Mask::read`] for the errors). May block (the caller's own CPU):
/// returns when the agent is woken.
pub fn commit_ioctl(e: &Enclave, mask: u64, len: u32, flags: i32) -> Result<isize> {
    let mask = Mask::read(e, mask, len, flags)?;
    let mut local_yield = false;
    for cpu in mask.order() {
        let Some(txn) = e.cpu_data().txn(cpu) else {
            continue;
        };
        if !txn.cas_state(uapi::GHOST_TXN_READY as i32, crate::rq::this_cpu()) {
            continue;
        }
        match commit(e, cpu, mask.my_cpu, false) {
            Ok(c) => {
                local_yield |= c.local_yield;
                txn.complete(uapi::GHOST_TXN_COMPLETE, c.cpu_seqnum, now());
            }
            Err(state) => txn.complete(state, 0, now()),
        }
    }
    if local_yield {
        yield_local(mask.my_cpu)?;
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
/// every other transaction of the group ends `POISONED`. If all commit, the
/// latches take effect together, every transaction ends `COMPLETE` with
/// `u.sync_group_owner` reset to -1, and if the caller's own CPU is in the
/// group, the caller gives it away (blocks) as for a local commit.
pub fn sync_group_ioctl(e: &Enclave, mask: u64, len: u32, flags: i32) -> Result<isize> {
    let mask = Mask::read(e, mask, len, flags)?;
    let me = crate::rq::this_cpu();
    // The group, privately (the states are the agent's to scribble on).
    let mut group = CpuSet::new();
    let mut all_ready = true;
    for cpu in mask.order() {
        match e.cpu_data().txn(cpu) {
            Some(txn) if txn.cas_state(uapi::GHOST_TXN_READY as i32, me) => {
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
            match commit(e, cpu, mask.my_cpu, true) {
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
                t.set_state(uapi::GHOST_TXN_COMPLETE);
            }
            Some((f, state)) if f == cpu => {
                undo = false;
                t.complete(state, 0, now());
            }
            _ => {
                if undo && all_ready {
                    release(cpu, false);
                }
                t.complete(uapi::GHOST_TXN_POISONED, 0, now());
            }
        }
    }
    if ok && local_yield {
        yield_local(mask.my_cpu)?;
    }
    Ok(isize::from(ok))
}
