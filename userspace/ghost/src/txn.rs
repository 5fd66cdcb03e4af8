//! Transactions: how an agent tells the kernel what to run.
//!
//! Every CPU of an enclave has one `struct ghost_txn` at the start of its
//! page of the `cpu_data` file ([`CpuData`]). An agent fills it, stores
//! `state = GHOST_TXN_READY` with release order ([`Txn::open`]), and commits
//! the CPUs of a mask with `GHOST_IOC_COMMIT_TXN` ([`commit`]) or, all or
//! nothing, with `GHOST_IOC_SYNC_GROUP_TXN` ([`sync_group`]). The kernel
//! claims each txn (`state` = the committing CPU), carries it out, and
//! stores its outcome in `state` with release order: a negative
//! `GHOST_TXN_*` code ([`TxnResult`]).
//!
//! The fields are written with relaxed atomic stores while the txn is not
//! `READY` (the kernel does not touch them then), and `state` last.

use std::fmt;
use std::mem::offset_of;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{
    AtomicI32, AtomicI64, AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering,
};

use ghost_abi as abi;
use ghost_abi::{GhostCpuData, GhostTxn};

use crate::error::{Error, Result};
use crate::sys::{self, Errno, Mapping};

/// The outcome of a transaction: `state` once it is negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnResult {
    /// `GHOST_TXN_COMPLETE`: committed.
    Complete,
    /// `GHOST_TXN_ABORTED`: aborted by the agent before a commit.
    Aborted,
    /// `GHOST_TXN_TARGET_ONCPU`: the task is still on a CPU.
    TargetOnCpu,
    /// `GHOST_TXN_TARGET_STALE`: the task barrier moved (a message the
    /// agent has not read), or the task is dead or gated.
    TargetStale,
    /// `GHOST_TXN_TARGET_NOT_FOUND`: no such task in the enclave.
    TargetNotFound,
    /// `GHOST_TXN_TARGET_NOT_RUNNABLE`: the task is not runnable.
    TargetNotRunnable,
    /// `GHOST_TXN_AGENT_STALE`: the agent barrier moved (local commits), or
    /// `DO_NOT_PREEMPT` refused.
    AgentStale,
    /// `GHOST_TXN_CPU_OFFLINE`: the CPU is offline.
    CpuOffline,
    /// `GHOST_TXN_CPU_UNAVAIL`: a task of a higher class has the CPU.
    CpuUnavail,
    /// `GHOST_TXN_INVALID_FLAGS`: bad run or commit flags.
    InvalidFlags,
    /// `GHOST_TXN_INVALID_TARGET`: the gtid is an agent's, or invalid.
    InvalidTarget,
    /// `GHOST_TXN_NOT_PERMITTED`: the caller may not commit this txn.
    NotPermitted,
    /// `GHOST_TXN_INVALID_CPU`: the task may not run on that CPU.
    InvalidCpu,
    /// `GHOST_TXN_NO_AGENT`: the CPU has no agent.
    NoAgent,
    /// `GHOST_TXN_UNSUPPORTED_VERSION`: the txn's version is not 0.
    UnsupportedVersion,
    /// `GHOST_TXN_POISONED`: another txn of the sync group failed.
    Poisoned,
    /// A negative state this library does not know.
    Unknown(i32),
}

/// The results in the order of their codes (`INT_MIN + i`).
const RESULTS: [(TxnResult, &str); 16] = [
    (TxnResult::Complete, "COMPLETE"),
    (TxnResult::Aborted, "ABORTED"),
    (TxnResult::TargetOnCpu, "TARGET_ONCPU"),
    (TxnResult::TargetStale, "TARGET_STALE"),
    (TxnResult::TargetNotFound, "TARGET_NOT_FOUND"),
    (TxnResult::TargetNotRunnable, "TARGET_NOT_RUNNABLE"),
    (TxnResult::AgentStale, "AGENT_STALE"),
    (TxnResult::CpuOffline, "CPU_OFFLINE"),
    (TxnResult::CpuUnavail, "CPU_UNAVAIL"),
    (TxnResult::InvalidFlags, "INVALID_FLAGS"),
    (TxnResult::InvalidTarget, "INVALID_TARGET"),
    (TxnResult::NotPermitted, "NOT_PERMITTED"),
    (TxnResult::InvalidCpu, "INVALID_CPU"),
    (TxnResult::NoAgent, "NO_AGENT"),
    (TxnResult::UnsupportedVersion, "UNSUPPORTED_VERSION"),
    (TxnResult::Poisoned, "POISONED"),
];

// The table follows the ABI's numbering.
const _: () = {
    assert!(abi::GHOST_TXN_COMPLETE == i32::MIN);
    assert!(abi::GHOST_TXN_POISONED == i32::MIN + 15);
};

impl TxnResult {
    /// The number of distinct results [`TxnResult::index`] returns.
    pub const COUNT: usize = RESULTS.len() + 1;

    /// The result of a final `state` (negative), `None` for `READY` or a
    /// claiming CPU.
    pub fn from_state(state: i32) -> Option<Self> {
        if state >= 0 {
            return None;
        }
        let i = state.wrapping_sub(i32::MIN) as usize;
        Some(RESULTS.get(i).map_or(Self::Unknown(state), |&(r, _)| r))
    }

    /// The `GHOST_TXN_*` code.
    pub fn code(self) -> i32 {
        match self {
            Self::Unknown(s) => s,
            r => i32::MIN + r.index() as i32,
        }
    }

    /// A dense index, `0..COUNT` (unknown codes share the last).
    pub fn index(self) -> usize {
        RESULTS
            .iter()
            .position(|&(r, _)| r == self)
            .unwrap_or(RESULTS.len())
    }

    /// The result of index `i` (the inverse of [`TxnResult::index`];
    /// `Unknown(0)` for the last).
    pub fn from_index(i: usize) -> Self {
        RESULTS.get(i).map_or(Self::Unknown(0), |&(r, _)| r)
    }

    /// The name without its `GHOST_TXN_` prefix (`TARGET_STALE`).
    pub fn name(self) -> &'static str {
        RESULTS.get(self.index()).map_or("UNKNOWN", |&(_, n)| n)
    }

    /// Whether the txn committed.
    pub fn is_ok(self) -> bool {
        self == Self::Complete
    }
}

impl fmt::Display for TxnResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unknown(s) => write!(f, "UNKNOWN({s:#x})"),
            r => f.write_str(r.name()),
        }
    }
}

/// Where a transaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnState {
    /// Opened by the agent, not claimed yet.
    Ready,
    /// Claimed by the kernel, committing on this CPU.
    Claimed(i32),
    /// Done.
    Done(TxnResult),
}

impl TxnState {
    /// The state of a raw `state` value.
    pub fn from_raw(state: i32) -> Self {
        match state {
            abi::GHOST_TXN_READY => Self::Ready,
            s if s >= 0 => Self::Claimed(s),
            s => Self::Done(TxnResult::from_state(s).unwrap_or(TxnResult::Unknown(s))),
        }
    }
}

/// What to commit on a CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TxnRequest {
    /// The task to run, or `GHOST_IDLE_GTID` (idle), `GHOST_AGENT_GTID`
    /// (ping the CPU's agent), `GHOST_NULL_GTID` (nothing).
    pub gtid: i64,
    /// The agent barrier the agent last saw (checked for local commits).
    pub agent_barrier: u32,
    /// The task's barrier: the `seqnum` of its last message.
    pub task_barrier: u32,
    /// Run flags (`RTLA_ON_*`, `SEND_TASK_ON_CPU`, ...).
    pub run_flags: u16,
    /// Commit flags (`COMMIT_AT_*`, `ALLOW_TASK_ONCPU`, ...).
    pub commit_flags: u8,
}

/// A txn cannot be opened: the previous one is still `READY` or claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnBusy(pub TxnState);

/// The `cpu_data` mapping: one transaction per CPU.
#[derive(Debug)]
pub struct CpuData {
    map: Mapping,
}

impl CpuData {
    /// Wraps a `cpu_data` mapping (a whole number of pages, one per CPU).
    pub fn new(map: Mapping) -> Result<Self> {
        let page = std::mem::size_of::<GhostCpuData>();
        if map.len() % page != 0 {
            return Err(Error::msg(
                "cpu_data mapping",
                format!(
                    "{} bytes is not a whole number of {page}-byte pages",
                    map.len()
                ),
            ));
        }
        Ok(Self { map })
    }

    /// The number of CPU pages (the kernel's `nr_cpu_ids`).
    pub fn ncpus(&self) -> usize {
        self.map.len() / std::mem::size_of::<GhostCpuData>()
    }

    /// The transaction of `cpu`.
    pub fn txn(&self, cpu: usize) -> Option<Txn<'_>> {
        if cpu >= self.ncpus() {
            return None;
        }
        Txn::at(&self.map, cpu * std::mem::size_of::<GhostCpuData>())
    }
}

/// One CPU's transaction, accessed through atomics.
#[derive(Debug, Clone, Copy)]
pub struct Txn<'a> {
    version: &'a AtomicI32,
    cpu: &'a AtomicI32,
    state: &'a AtomicI32,
    agent_barrier: &'a AtomicU32,
    task_barrier: &'a AtomicU32,
    run_flags: &'a AtomicU16,
    commit_flags: &'a AtomicU8,
    gtid: &'a AtomicI64,
    commit_time: &'a AtomicI64,
    cpu_seqnum: &'a AtomicU64,
    sync_group_owner: &'a AtomicI32,
}

impl<'a> Txn<'a> {
    fn at(m: &'a Mapping, base: usize) -> Option<Self> {
        Some(Self {
            version: m.atomic(base + offset_of!(GhostTxn, version))?,
            cpu: m.atomic(base + offset_of!(GhostTxn, cpu))?,
            state: m.atomic(base + offset_of!(GhostTxn, state))?,
            agent_barrier: m.atomic(base + offset_of!(GhostTxn, agent_barrier))?,
            task_barrier: m.atomic(base + offset_of!(GhostTxn, task_barrier))?,
            run_flags: m.atomic(base + offset_of!(GhostTxn, run_flags))?,
            commit_flags: m.atomic(base + offset_of!(GhostTxn, commit_flags))?,
            gtid: m.atomic(base + offset_of!(GhostTxn, gtid))?,
            commit_time: m.atomic(base + offset_of!(GhostTxn, commit_time))?,
            cpu_seqnum: m.atomic(base + offset_of!(GhostTxn, cpu_seqnum))?,
            sync_group_owner: m.atomic(base + offset_of!(GhostTxn, u))?,
        })
    }

    /// The CPU the kernel says this txn is for.
    pub fn cpu(&self) -> i32 {
        self.cpu.load(Ordering::Relaxed)
    }

    /// The raw `state` (acquire).
    pub fn raw_state(&self) -> i32 {
        self.state.load(Ordering::Acquire)
    }

    /// The state.
    pub fn state(&self) -> TxnState {
        TxnState::from_raw(self.raw_state())
    }

    /// The outcome, once the txn is done.
    pub fn result(&self) -> Option<TxnResult> {
        TxnResult::from_state(self.raw_state())
    }

    /// Fills the txn with `req` (version 0) and release-stores `READY`.
    /// Refused while the previous txn is `READY` or being committed.
    pub fn open(&self, req: &TxnRequest) -> std::result::Result<(), TxnBusy> {
        match self.state() {
            TxnState::Done(_) => {}
            s => return Err(TxnBusy(s)),
        }
        self.version
            .store(abi::GHOST_TXN_VERSION, Ordering::Relaxed);
        self.gtid.store(req.gtid, Ordering::Relaxed);
        self.agent_barrier
            .store(req.agent_barrier, Ordering::Relaxed);
        self.task_barrier.store(req.task_barrier, Ordering::Relaxed);
        self.run_flags.store(req.run_flags, Ordering::Relaxed);
        self.commit_flags.store(req.commit_flags, Ordering::Relaxed);
        self.state.store(abi::GHOST_TXN_READY, Ordering::Release);
        Ok(())
    }

    /// Aborts a `READY` txn (compare-and-swap to `ABORTED`); `false` if the
    /// kernel claimed it first or it was not open.
    pub fn abort(&self) -> bool {
        self.state
            .compare_exchange(
                abi::GHOST_TXN_READY,
                abi::GHOST_TXN_ABORTED,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }

    /// Waits for the outcome of a committed txn: spins while the kernel
    /// holds it, up to `spins` reads; a txn still `READY` then (nobody
    /// claimed it) is aborted. `None` if it is still claimed after that.
    pub fn finish(&self, spins: u32) -> Option<TxnResult> {
        for _ in 0..spins {
            match self.state() {
                TxnState::Done(r) => return Some(r),
                TxnState::Ready if self.abort() => return Some(TxnResult::Aborted),
                _ => std::hint::spin_loop(),
            }
        }
        match self.state() {
            TxnState::Done(r) => Some(r),
            TxnState::Ready if self.abort() => Some(TxnResult::Aborted),
            _ => self.result(),
        }
    }

    /// The CPU's sequence number at the commit.
    pub fn cpu_seqnum(&self) -> u64 {
        self.cpu_seqnum.load(Ordering::Relaxed)
    }

    /// When the commit succeeded or failed (ktime, ns).
    pub fn commit_time(&self) -> i64 {
        self.commit_time.load(Ordering::Relaxed)
    }

    /// The CPU owning the sync group this txn was committed in, or
    /// `GHOST_NO_SYNC_GROUP_OWNER`.
    pub fn sync_group_owner(&self) -> i32 {
        self.sync_group_owner.load(Ordering::Acquire)
    }

    /// Gives up the ownership a sync-group commit left on this txn, so that
    /// it can be opened again (ghOSt's agents do this after the group).
    pub fn release_sync_group(&self) {
        if self.sync_group_owner() != abi::GHOST_NO_SYNC_GROUP_OWNER {
            self.sync_group_owner
                .store(abi::GHOST_NO_SYNC_GROUP_OWNER, Ordering::Release);
        }
    }

    /// A copy of every field.
    pub fn snapshot(&self) -> GhostTxn {
        GhostTxn {
            version: self.version.load(Ordering::Relaxed),
            cpu: self.cpu(),
            state: self.raw_state(),
            agent_barrier: self.agent_barrier.load(Ordering::Relaxed),
            task_barrier: self.task_barrier.load(Ordering::Relaxed),
            run_flags: self.run_flags.load(Ordering::Relaxed),
            commit_flags: self.commit_flags.load(Ordering::Relaxed),
            unused: 0,
            gtid: self.gtid.load(Ordering::Relaxed),
            commit_time: self.commit_time(),
            cpu_seqnum: self.cpu_seqnum(),
            u: abi::GhostTxnU {
                sync_group_owner: self.sync_group_owner(),
            },
        }
    }
}

/// A CPU mask as the commit ioctls take it (a `cpu_set_t` of 1024 CPUs).
/// Also a task's allowed CPUs ([`crate::policy::Task::allowed`]).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CpuMask {
    bits: [u8; Self::BYTES],
}

impl CpuMask {
    /// Bytes of the mask.
    pub const BYTES: usize = 128;
    /// CPUs a mask can hold.
    pub const CPUS: usize = Self::BYTES * 8;

    /// The empty mask.
    pub const fn new() -> Self {
        Self {
            bits: [0; Self::BYTES],
        }
    }

    /// Every CPU a mask can hold.
    pub const fn full() -> Self {
        Self {
            bits: [u8::MAX; Self::BYTES],
        }
    }

    /// Adds `cpu`; `false` if it is beyond [`CpuMask::CPUS`].
    pub fn set(&mut self, cpu: usize) -> bool {
        match self.bits.get_mut(cpu / 8) {
            Some(b) => {
                *b |= 1 << (cpu % 8);
                true
            }
            None => false,
        }
    }

    /// Whether `cpu` is in the mask.
    pub fn contains(&self, cpu: usize) -> bool {
        self.bits
            .get(cpu / 8)
            .is_some_and(|b| b & (1 << (cpu % 8)) != 0)
    }

    /// Empties the mask.
    pub fn clear(&mut self) {
        self.bits = [0; Self::BYTES];
    }

    /// Whether the mask is empty.
    pub fn is_empty(&self) -> bool {
        self.bits.iter().all(|&b| b == 0)
    }

    /// How many CPUs the mask holds.
    pub fn count(&self) -> usize {
        self.bits.iter().map(|b| b.count_ones() as usize).sum()
    }

    /// The CPUs, in increasing order: 64 at a time, set bits only (every
    /// agent round walks a mask or two; bit by bit, 1024 CPUs cost about a
    /// thousand instructions each time).
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.bits.chunks_exact(8).enumerate().flat_map(|(i, c)| {
            let mut word = [0u8; 8];
            word.copy_from_slice(c);
            kparse::SetBits::new(u64::from_le_bytes(word), i * 64)
        })
    }
}

/// The kernel crate's CPU-set code (pure, shared with the kernel): its walk
/// of a word's set bits.
#[path = "../../../rust-sched-ghost/parse.rs"]
#[allow(dead_code)]
mod kparse;

impl Default for CpuMask {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for CpuMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// `GHOST_IOC_COMMIT_TXN` on `ctl` (an enclave's `ctl`, open for
/// writing): commits the `READY` txns of the CPUs in `mask`, the caller's
/// own CPU last. Each txn's outcome is in its `state`. A successful local
/// commit returns once the calling agent is woken again.
pub fn commit(ctl: BorrowedFd<'_>, mask: &CpuMask) -> std::result::Result<(), Errno> {
    sys::ioctl_commit(ctl, &mask.bits, false).map(|_| ())
}

/// `GHOST_IOC_SYNC_GROUP_TXN` on `ctl`: commits the txns of `mask` all or
/// nothing. `Ok(true)` if all committed; `Ok(false)` if the group failed
/// (the failing txn has its code, the others `POISONED`). Afterwards call
/// [`Txn::release_sync_group`] on each.
pub fn sync_group(ctl: BorrowedFd<'_>, mask: &CpuMask) -> std::result::Result<bool, Errno> {
    sys::ioctl_commit(ctl, &mask.bits, true).map(|r| r == 1)
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// A `cpu_data` for `ncpus` CPUs as the kernel leaves it when the CPUs
    /// join: `cpu` set, no sync-group owner, `COMPLETE`.
    pub fn cpu_data(ncpus: usize) -> CpuData {
        let cd = CpuData::new(Mapping::anonymous(ncpus * 4096).unwrap()).unwrap();
        for c in 0..ncpus {
            let t = cd.txn(c).unwrap();
            t.cpu.store(c as i32, Ordering::Relaxed);
            t.sync_group_owner
                .store(abi::GHOST_NO_SYNC_GROUP_OWNER, Ordering::Relaxed);
            t.state.store(abi::GHOST_TXN_COMPLETE, Ordering::Release);
        }
        cd
    }

    /// Plays the kernel: claims `t` for CPU `by` (from `READY`).
    pub fn claim(t: &Txn<'_>, by: i32) -> bool {
        t.state
            .compare_exchange(
                abi::GHOST_TXN_READY,
                by,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }

    /// Plays the kernel: publishes the outcome of a claimed txn.
    pub fn complete(t: &Txn<'_>, state: i32, seq: u64) {
        t.cpu_seqnum.store(seq, Ordering::Relaxed);
        t.commit_time.store(1234, Ordering::Relaxed);
        t.state.store(state, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use abi::*;

    #[test]
    fn every_code_has_a_result_and_back() {
        for i in 0..RESULTS.len() {
            let code = i32::MIN + i as i32;
            let r = TxnResult::from_state(code).unwrap();
            assert_eq!(r.code(), code);
            assert_eq!(r.index(), i);
            assert_eq!(TxnResult::from_index(i), r);
            assert_ne!(r.name(), "UNKNOWN");
        }
        assert_eq!(
            TxnResult::from_state(GHOST_TXN_TARGET_STALE),
            Some(TxnResult::TargetStale)
        );
        assert_eq!(
            TxnResult::from_state(GHOST_TXN_POISONED),
            Some(TxnResult::Poisoned)
        );
        assert_eq!(TxnResult::from_state(-1), Some(TxnResult::Unknown(-1)));
        assert_eq!(TxnResult::Unknown(-1).index(), TxnResult::COUNT - 1);
        assert_eq!(TxnResult::from_state(0), None);
        assert_eq!(TxnResult::from_state(GHOST_TXN_READY), None);
        assert_eq!(TxnState::from_raw(GHOST_TXN_READY), TxnState::Ready);
        assert_eq!(TxnState::from_raw(3), TxnState::Claimed(3));
        assert!(TxnResult::Complete.is_ok() && !TxnResult::AgentStale.is_ok());
        assert_eq!(TxnResult::Unknown(-7).to_string(), "UNKNOWN(0xfffffff9)");
    }

    #[test]
    fn open_commit_and_read_the_outcome() {
        let cd = cpu_data(4);
        assert_eq!(cd.ncpus(), 4);
        assert!(cd.txn(4).is_none());
        let t = cd.txn(2).unwrap();
        assert_eq!(t.cpu(), 2);
        assert_eq!(t.state(), TxnState::Done(TxnResult::Complete));
        let req = TxnRequest {
            gtid: 0x55,
            agent_barrier: 7,
            task_barrier: 9,
            run_flags: RTLA_ON_IDLE,
            commit_flags: COMMIT_AT_TXN_COMMIT,
        };
        t.open(&req).unwrap();
        let s = t.snapshot();
        assert_eq!(s.state, GHOST_TXN_READY);
        assert_eq!((s.gtid, s.agent_barrier, s.task_barrier), (0x55, 7, 9));
        assert_eq!(
            (s.run_flags, s.commit_flags, s.version),
            (RTLA_ON_IDLE, COMMIT_AT_TXN_COMMIT, 0)
        );
        // Only this CPU's page was written.
        assert_eq!(cd.txn(1).unwrap().snapshot().gtid, 0);
        // Open twice: refused until the kernel is done with it.
        assert_eq!(t.open(&req), Err(TxnBusy(TxnState::Ready)));
        assert!(claim(&t, 1));
        assert_eq!(t.open(&req), Err(TxnBusy(TxnState::Claimed(1))));
        assert!(!t.abort(), "aborted a claimed txn");
        assert_eq!(t.result(), None);
        complete(&t, GHOST_TXN_TARGET_STALE, 42);
        assert_eq!(t.finish(10), Some(TxnResult::TargetStale));
        assert_eq!(t.cpu_seqnum(), 42);
        assert_eq!(t.commit_time(), 1234);
        t.open(&req).unwrap();
    }

    #[test]
    fn unclaimed_txns_are_aborted() {
        let cd = cpu_data(1);
        let t = cd.txn(0).unwrap();
        t.open(&TxnRequest::default()).unwrap();
        assert_eq!(t.finish(3), Some(TxnResult::Aborted));
        assert!(!t.abort());
        // A claim that never completes is reported as pending.
        t.open(&TxnRequest::default()).unwrap();
        assert!(claim(&t, 0));
        assert_eq!(t.finish(3), None);
    }

    #[test]
    fn sync_group_ownership_is_released() {
        let cd = cpu_data(2);
        let t = cd.txn(1).unwrap();
        assert_eq!(t.sync_group_owner(), GHOST_NO_SYNC_GROUP_OWNER);
        t.sync_group_owner.store(0, Ordering::Relaxed);
        t.release_sync_group();
        assert_eq!(t.sync_group_owner(), GHOST_NO_SYNC_GROUP_OWNER);
    }

    #[test]
    fn cpu_mask_bits() {
        let mut m = CpuMask::new();
        assert!(m.is_empty());
        assert!(m.set(0) && m.set(9) && m.set(1023));
        assert!(!m.set(1024));
        assert_eq!(m.iter().collect::<Vec<_>>(), vec![0, 9, 1023]);
        assert!(m.contains(9) && !m.contains(8));
        assert_eq!(m.bits.len(), 128);
        m.clear();
        assert!(m.is_empty());
        let f = CpuMask::full();
        assert!(f.contains(0) && f.contains(1023) && !f.contains(1024));
        assert_eq!(f.iter().count(), CpuMask::CPUS);
        assert!(f.iter().eq(0..CpuMask::CPUS));
        let mut w = CpuMask::new();
        for c in [7, 8, 63, 64, 65, 127, 128, 512] {
            w.set(c);
        }
        assert_eq!(
            w.iter().collect::<Vec<_>>(),
            vec![7, 8, 63, 64, 65, 127, 128, 512]
        );
    }

    #[test]
    fn cpu_data_must_be_whole_pages() {
        assert!(CpuData::new(Mapping::anonymous(4096 + 64).unwrap()).is_err());
    }
}
