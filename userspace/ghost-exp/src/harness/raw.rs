//! The raw-ABI instrument of the tests: an enclave as an agent sees it
//! (queue, `cpu_data` transactions, status words) through the bare ioctls
//! and mappings, with no library in between, plus the tasks (hogs) the
//! tests schedule.

use super::ghostfs::{create_enclave, create_queue, ioctl, nr_cpu_ids, open_rw, path};
use super::sys::{self, errno_name};
use super::wait::HANG_FLOOR_MS;
use ghost_abi as abi;
use std::fs::File;
use std::io::Write;
use std::mem::offset_of;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Everything an agent needs of its enclave. The mappings are shared
/// (`Arc`): the fuzzer's agent also writes garbage into them.
pub(crate) struct Enclave {
    pub(crate) ctl: std::fs::File,
    pub(crate) queue: std::fs::File,
    ring: Arc<sys::Mapping>,
    nelems: u32,
    cpu_data: Arc<sys::Mapping>,
    pub(crate) sw: Arc<sys::Mapping>,
}

/// Creates enclave `id` on CPU `cpu` with a status-word region.
pub(crate) fn make_enclave(id: u64, cpu: usize) -> Result<(), String> {
    create_enclave(&format!("create {id} 91"))?;
    sys::write_once(&path(id, "cpulist"), format!("{cpu}").as_bytes())
        .map_err(|e| format!("cpulist: {}", errno_name(e)))?;
    sys::write_once(&path(id, "ctl"), b"create sw_region 0 0")
        .map_err(|e| format!("sw_region: {}", errno_name(e)))?;
    Ok(())
}

/// Opens enclave `id` for an agent of `cpu`: a queue that wakes the agent,
/// made the default queue, and the mappings (queues are not inherited by
/// children, so the agent process does this itself).
pub(crate) fn attach(id: u64, cpu: usize) -> Result<Enclave, String> {
    let e = observe(id)?;
    let mut dq = abi::GhostIocSetDefaultQueue {
        fd: e.queue.as_raw_fd(),
    };
    ioctl(
        &e.ctl,
        abi::GHOST_IOC_SET_DEFAULT_QUEUE,
        (&raw mut dq).cast(),
    )
    .map_err(|x| format!("SET_DEFAULT_QUEUE: {}", errno_name(x)))?;
    let mut w = [abi::GhostAgentWakeup {
        cpu: cpu as i32,
        prio: 0,
    }];
    let mut cw = abi::GhostIocConfigQueueWakeup {
        qfd: e.queue.as_raw_fd(),
        w: w.as_mut_ptr() as u64,
        ninfo: 1,
        flags: 0,
    };
    ioctl(
        &e.ctl,
        abi::GHOST_IOC_CONFIG_QUEUE_WAKEUP,
        (&raw mut cw).cast(),
    )
    .map_err(|x| format!("CONFIG_QUEUE_WAKEUP: {}", errno_name(x)))?;
    Ok(e)
}

/// Opens enclave `id` without taking part in it: its `ctl`, the
/// transactions and status words mapped, and a queue of its own that is
/// nobody's default and wakes nobody (an observer, or a thread that commits
/// without being an agent, leaves the agents' message flow as it is).
pub(crate) fn observe(id: u64) -> Result<Enclave, String> {
    let ctl = open_rw(&path(id, "ctl"))?;
    let nelems = 1024;
    let (queue, mapsize) = create_queue(&ctl, nelems as i32, -1, 0)
        .map_err(|e| format!("CREATE_QUEUE: {}", errno_name(e)))?;
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    let ring = sys::mmap_fd(&queue, mapsize as usize, rw, libc::MAP_SHARED, 0)
        .map_err(|e| format!("mmap queue: {}", errno_name(e)))?;
    let n = nr_cpu_ids()?;
    let cd = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path(id, "cpu_data"))
        .map_err(|e| e.to_string())?;
    let cpu_data = sys::mmap_fd(&cd, 4096 * n, rw, libc::MAP_SHARED, 0)
        .map_err(|e| format!("mmap cpu_data: {}", errno_name(e)))?;
    let swf = std::fs::File::open(path(id, "sw_regions/sw_0")).map_err(|e| e.to_string())?;
    let sw = sys::mmap_fd(&swf, 2 << 20, libc::PROT_READ, libc::MAP_SHARED, 0)
        .map_err(|e| format!("mmap sw_0: {}", errno_name(e)))?;
    Ok(Enclave::from_parts(
        ctl,
        queue,
        Arc::new(ring),
        nelems,
        Arc::new(cpu_data),
        Arc::new(sw),
    ))
}

impl Enclave {
    /// An enclave view of files and mappings opened by the caller: `ctl`,
    /// a queue of `nelems` (a power of two) mapped at `ring`, `cpu_data`
    /// and status-word region 0.
    pub(crate) fn from_parts(
        ctl: File,
        queue: File,
        ring: Arc<sys::Mapping>,
        nelems: u32,
        cpu_data: Arc<sys::Mapping>,
        sw: Arc<sys::Mapping>,
    ) -> Enclave {
        Enclave {
            ctl,
            queue,
            ring,
            nelems,
            cpu_data,
            sw,
        }
    }

    /// The `u32` at byte `off` of a mapping, as an atomic.
    pub(crate) fn atomic_u32(m: &sys::Mapping, off: usize) -> &AtomicU32 {
        m.atomic(off)
    }

    /// The barrier of the status word `index` of region 0.
    pub(crate) fn sw_barrier(&self, index: u32) -> u32 {
        Self::atomic_u32(&self.sw, 64 + 32 * index as usize).load(Ordering::Acquire)
    }

    /// The status word `index` of region 0: `(barrier, flags, gtid)`.
    pub(crate) fn sw_word(&self, index: u32) -> (u32, u32, i64) {
        let at = 64 + 32 * index as usize;
        (
            self.sw_barrier(index),
            Self::atomic_u32(&self.sw, at + 4).load(Ordering::Acquire),
            self.sw.read::<i64>(at + 8),
        )
    }

    /// The `available` count of region 0's header (words not allocated).
    pub(crate) fn sw_available(&self) -> u32 {
        Self::atomic_u32(&self.sw, offset_of!(abi::GhostSwRegionHeader, available))
            .load(Ordering::Acquire)
    }

    /// Where a status word is.
    pub(crate) fn sw_info(&self, type_: u32, arg: u64) -> Result<abi::GhostSwInfo, i32> {
        sw_get_info(&self.ctl, type_, arg)
    }

    /// Pops the next message. The queue header is shared memory others
    /// may have scribbled on (the fuzzer does): a `head` more than the
    /// queue's size ahead of `tail` resyncs `tail` to it (the messages in
    /// between are lost), and a message running past the mapping ends at
    /// its end.
    pub(crate) fn pop(&self) -> Option<Msg> {
        let head = Self::atomic_u32(&self.ring, 64).load(Ordering::Acquire);
        let tail_a = Self::atomic_u32(&self.ring, 68);
        let tail = tail_a.load(Ordering::Relaxed);
        if head == tail {
            return None;
        }
        if head.wrapping_sub(tail) > self.nelems {
            tail_a.store(head, Ordering::Release);
            return None;
        }
        let slot = (tail & (self.nelems - 1)) as usize;
        let at = 76 + slot * 8;
        let word0: u32 = self.ring.read(at);
        let seq: u32 = self.ring.read(at + 4);
        let (ty, len) = ((word0 & 0xffff) as u16, (word0 >> 16) as usize);
        let slots = len.div_ceil(8).max(1);
        let end = (at + len).min(self.ring.len());
        let payload: Vec<u8> = (at + 8..end).map(|i| self.ring.read::<u8>(i)).collect();
        tail_a.store(tail.wrapping_add(slots as u32), Ordering::Release);
        Some(Msg { ty, seq, payload })
    }

    /// `ghost_run(0, barrier, 0, cpu, 0)`: blocks until woken; the errno on
    /// failure.
    pub(crate) fn block(&self, barrier: u32, cpu: usize) -> Result<(), i32> {
        match sys::ghost_run(0, barrier, cpu as i32) {
            0 => Ok(()),
            e => Err(e),
        }
    }

    /// Commits `gtid` on `cpu` (the caller's CPU), returning the txn state.
    pub(crate) fn run_local(
        &self,
        cpu: usize,
        gtid: i64,
        agent_barrier: u32,
        task_barrier: u32,
    ) -> i32 {
        self.commit_raw(cpu, gtid, 0, agent_barrier, task_barrier, 0)
    }

    /// Fills `cpu`'s transaction and commits it; returns its final state
    /// (or the negated errno of the ioctl).
    pub(crate) fn commit_raw(
        &self,
        cpu: usize,
        gtid: i64,
        commit_flags: u8,
        agent_barrier: u32,
        task_barrier: u32,
        version: i32,
    ) -> i32 {
        let t = Txn {
            gtid,
            commit_flags,
            agent_barrier,
            task_barrier,
            version,
            run_flags: 0,
        };
        self.fill(cpu, &t);
        if let Err(e) = self.commit(&[cpu], false) {
            return -e;
        }
        self.txn_state(cpu)
    }

    /// Fills `cpu`'s transaction with `t` and marks it READY.
    pub(crate) fn fill(&self, cpu: usize, t: &Txn) {
        let base = 4096 * cpu;
        let m = &self.cpu_data;
        m.write::<i32>(base + offset_of!(abi::GhostTxn, version), t.version);
        m.write::<i64>(base + offset_of!(abi::GhostTxn, gtid), t.gtid);
        m.write::<u32>(
            base + offset_of!(abi::GhostTxn, agent_barrier),
            t.agent_barrier,
        );
        m.write::<u32>(
            base + offset_of!(abi::GhostTxn, task_barrier),
            t.task_barrier,
        );
        m.write::<u16>(base + offset_of!(abi::GhostTxn, run_flags), t.run_flags);
        m.write::<u8>(
            base + offset_of!(abi::GhostTxn, commit_flags),
            t.commit_flags,
        );
        Self::atomic_u32(m, base + offset_of!(abi::GhostTxn, state))
            .store(abi::GHOST_TXN_READY as u32, Ordering::Release);
    }

    /// `COMMIT_TXN` (or, with `sync`, `SYNC_GROUP_TXN`) of the transactions
    /// of `cpus`: the ioctl's return value, or its errno.
    pub(crate) fn commit(&self, cpus: &[usize], sync: bool) -> Result<i32, i32> {
        commit_txns(&self.ctl, cpus, sync)
    }

    /// The state of `cpu`'s transaction.
    pub(crate) fn txn_state(&self, cpu: usize) -> i32 {
        Self::atomic_u32(
            &self.cpu_data,
            4096 * cpu + offset_of!(abi::GhostTxn, state),
        )
        .load(Ordering::Acquire) as i32
    }
}

/// `GHOST_IOC_SW_GET_INFO` of `{type_, arg}` on an enclave's `ctl`: where
/// the status word is, or the errno.
pub(crate) fn sw_get_info(
    ctl: &std::fs::File,
    type_: u32,
    arg: u64,
) -> Result<abi::GhostSwInfo, i32> {
    let mut a = abi::GhostIocSwGetInfo {
        request: abi::GhostMsgSrc { type_, arg },
        response: abi::GhostSwInfo::default(),
    };
    ioctl(ctl, abi::GHOST_IOC_SW_GET_INFO, (&raw mut a).cast())?;
    Ok(a.response)
}

/// What to put in a transaction (see [`Enclave::fill`]).
pub(crate) struct Txn {
    pub(crate) gtid: i64,
    pub(crate) run_flags: u16,
    pub(crate) commit_flags: u8,
    pub(crate) agent_barrier: u32,
    pub(crate) task_barrier: u32,
    pub(crate) version: i32,
}

/// `become agent <cpu> <qfd>` on `e`'s `ctl`, retrying while the CPU is
/// busy; the agent's status-word index.
pub(crate) fn become_agent(e: &Enclave, cpu: usize, qfd: i32) -> Result<u32, i32> {
    let cmd = format!("become agent {cpu} {qfd}");
    // The old agent of the CPU may still be on its way out: a hang cap.
    let deadline = Instant::now() + Duration::from_millis(HANG_FLOOR_MS);
    loop {
        match (&e.ctl).write_all(cmd.as_bytes()) {
            Ok(()) => break,
            Err(err) if err.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(err) => return Err(err.raw_os_error().unwrap_or(-1)),
        }
    }
    if current_cpu() != cpu as i32 {
        return Err(-2);
    }
    Ok(e.sw_info(abi::GHOST_AGENT, cpu as u64)?.index)
}

/// The CPU the caller runs on.
pub(crate) fn current_cpu() -> i32 {
    sys::current_cpu()
}

/// Spins on `cpu` as a CFS task for `ms` milliseconds (a child process).
pub(crate) fn cfs_hog(cpu: usize, ms: u64) -> Result<i32, String> {
    hog(cpu, ms, false)
}

/// A child that spins on `cpu` for `ms` milliseconds, in CFS or (`rt`)
/// as a `SCHED_FIFO` task of priority 1; exits 1 if it cannot.
pub(crate) fn hog(cpu: usize, ms: u64, rt: bool) -> Result<i32, String> {
    sys::fork_child(move || {
        if rt && sys::set_fifo(0, 1).is_err() {
            return 1;
        }
        if !sys::pin(cpu) {
            return 1;
        }
        let end = Instant::now() + Duration::from_millis(ms);
        while Instant::now() < end {
            std::hint::spin_loop();
        }
        0
    })
}

/// `COMMIT_TXN` (or, with `sync`, `SYNC_GROUP_TXN`) on the enclave `ctl` of
/// the transactions of `cpus` (below 1024): the ioctl's return value, or its
/// errno.
pub(crate) fn commit_txns(ctl: &std::fs::File, cpus: &[usize], sync: bool) -> Result<i32, i32> {
    let mut mask = [0u8; 128];
    for &cpu in cpus {
        if let Some(byte) = mask.get_mut(cpu / 8) {
            *byte |= 1 << (cpu % 8);
        }
    }
    let mut c = abi::GhostIocCommitTxn {
        mask_ptr: mask.as_ptr() as u64,
        mask_len: mask.len() as u32,
        flags: 0,
    };
    let cmd = if sync {
        abi::GHOST_IOC_SYNC_GROUP_TXN
    } else {
        abi::GHOST_IOC_COMMIT_TXN
    };
    ioctl(ctl, cmd, (&raw mut c).cast())
}

/// The two CPUs the tests use: 0 and the last one.
pub(crate) fn two_cpus() -> Result<(usize, usize, usize), String> {
    let n = nr_cpu_ids()?;
    ensure!(n >= 2, "needs 2 CPUs, have {n}");
    ensure!(n <= 64, "the masks here hold 64 CPUs, have {n}");
    Ok((n, 0, n - 1))
}

/// A message of a queue: its type, sequence number and payload.
#[derive(Debug, Clone)]
pub(crate) struct Msg {
    pub(crate) ty: u16,
    pub(crate) seq: u32,
    pub(crate) payload: Vec<u8>,
}

impl Msg {
    /// The `u8` at byte `at` of the payload (0 past its end).
    pub(crate) fn u8_at(&self, at: usize) -> u8 {
        self.payload.get(at).copied().unwrap_or(0)
    }

    /// The `i32` at byte `at` of the payload (0 past its end).
    pub(crate) fn i32_at(&self, at: usize) -> i32 {
        self.payload
            .get(at..at + 4)
            .map_or(0, |b| i32::from_ne_bytes(b.try_into().unwrap_or_default()))
    }

    /// The `u32` at byte `at` of the payload (0 past its end).
    pub(crate) fn u32_at(&self, at: usize) -> u32 {
        self.i32_at(at) as u32
    }

    /// The `u64` at byte `at` of the payload (0 past its end).
    pub(crate) fn u64_at(&self, at: usize) -> u64 {
        self.payload
            .get(at..at + 8)
            .map_or(0, |b| u64::from_ne_bytes(b.try_into().unwrap_or_default()))
    }

    /// The task of a task message (its first 8 payload bytes); `None` for
    /// other messages and short payloads.
    pub(crate) fn gtid(&self) -> Option<i64> {
        ((64..128).contains(&self.ty) && self.payload.len() >= 8).then(|| self.u64_at(0) as i64)
    }

    /// The status-word index a TASK_NEW names (0 for other messages).
    pub(crate) fn new_word(&self) -> u32 {
        if self.ty != abi::MSG_TASK_NEW {
            return 0;
        }
        self.u32_at(offset_of!(abi::GhostMsgPayloadTaskNew, sw_info) + 4)
    }
}
