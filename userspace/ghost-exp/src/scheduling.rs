//! Scheduling tests: real tasks scheduled by a real agent on the real
//! kernel.
//!
//! The agent here is deliberately minimal (a per-CPU FIFO for one CPU,
//! written against the raw ABI): it is the test's instrument, and counts
//! every message it sees in shared memory so that the test can assert on
//! the kernel's behaviour.

use crate::mapped::{create_queue, ioctl, open_rw, path};
use crate::suite::{create_enclave, nr_cpu_ids};
use crate::sys::{self, errno_name, Exit};
use ghost_abi as abi;
use std::collections::VecDeque;
use std::io::Write;
use std::mem::offset_of;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Memory shared by the test, its agent and its workload (an anonymous
/// `MAP_SHARED` page, set up before the forks).
#[repr(C)]
struct Shared {
    /// The agent does not commit while this is nonzero.
    hold: AtomicU32,
    /// Messages the agent saw, by type (index `type - 64`, task messages).
    msgs: [AtomicU32; 16],
    /// Transaction outcomes the agent saw: COMPLETE, and anything else.
    commits_ok: AtomicU32,
    commits_failed: AtomicU32,
    /// The last failed state.
    last_failure: AtomicI32,
    /// The agent is up (it became the agent).
    agent_up: AtomicU32,
    /// The agent's setup failed at this step (nonzero: an errno).
    agent_error: AtomicI32,
    /// Workload: iterations done, the CPU it last ran on, its phase.
    work: AtomicU64,
    work_cpu: AtomicI32,
    /// Workload: 0 spin; 1 spin and sleep; 2 stop.
    phase: AtomicU32,
    /// Workload: it is about to join.
    joining: AtomicU32,
    /// Probes of a starting agent (see [`probe`]): outcomes, in order.
    probes: [AtomicI32; 12],
}

/// Everything an agent needs of its enclave.
pub(crate) struct Enclave {
    pub(crate) ctl: std::fs::File,
    pub(crate) queue: std::fs::File,
    ring: sys::Mapping,
    nelems: u32,
    cpu_data: sys::Mapping,
    sw: sys::Mapping,
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
    Ok(Enclave {
        ctl,
        queue,
        ring,
        nelems,
        cpu_data,
        sw,
    })
}

impl Enclave {
    /// The `u32` at byte `off` of a mapping, as an atomic.
    fn atomic_u32(m: &sys::Mapping, off: usize) -> &AtomicU32 {
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

    /// Pops the next message: `(type, seqnum, payload bytes)`.
    pub(crate) fn pop(&self) -> Option<(u16, u32, Vec<u8>)> {
        let head = Self::atomic_u32(&self.ring, 64).load(Ordering::Acquire);
        let tail_a = Self::atomic_u32(&self.ring, 68);
        let tail = tail_a.load(Ordering::Relaxed);
        if head == tail {
            return None;
        }
        let slot = (tail & (self.nelems - 1)) as usize;
        let at = 76 + slot * 8;
        let word0: u32 = self.ring.read(at);
        let seq: u32 = self.ring.read(at + 4);
        let (ty, len) = ((word0 & 0xffff) as u16, (word0 >> 16) as usize);
        let slots = len.div_ceil(8).max(1);
        let payload: Vec<u8> = (8..len).map(|i| self.ring.read::<u8>(at + i)).collect();
        tail_a.store(tail.wrapping_add(slots as u32), Ordering::Release);
        Some((ty, seq, payload))
    }

    /// `ghost_run(0, barrier, 0, cpu, 0)`: blocks until woken; the errno on
    /// failure.
    pub(crate) fn block(&self, barrier: u32, cpu: usize) -> Result<(), i32> {
        // SAFETY: the ghost_run syscall with plain integer arguments.
        let r = unsafe { libc::syscall(abi::NR_GHOST_RUN, 0i64, barrier, 0u32, cpu as i32, 0) };
        if r < 0 {
            Err(sys::errno())
        } else {
            Ok(())
        }
    }

    /// Commits `gtid` on `cpu` (the caller's CPU), returning the txn state.
    fn run_local(&self, cpu: usize, gtid: i64, agent_barrier: u32, task_barrier: u32) -> i32 {
        self.commit_raw(cpu, gtid, 0, agent_barrier, task_barrier, 0)
    }

    /// Fills `cpu`'s transaction and commits it; returns its final state
    /// (or the negated errno of the ioctl).
    fn commit_raw(
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

/// `become agent <cpu>` with `e`'s queue, retrying while the CPU is busy;
/// the agent's status-word index.
pub(crate) fn become_agent(e: &Enclave, cpu: usize) -> Result<u32, i32> {
    let cmd = format!("become agent {cpu} {}", e.queue.as_raw_fd());
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

/// The test agent: becomes the agent of `cpu` and runs a FIFO of runnable
/// tasks, one at a time, until it is killed. Runs in its own process; the
/// return value is its exit code.
fn agent_main(id: u64, cpu: usize, sh: &Shared, takeover: bool) -> i32 {
    let e = match attach(id, cpu) {
        Ok(e) => e,
        Err(_) => {
            sh.agent_error.store(-3, Ordering::SeqCst);
            return 1;
        }
    };
    // Taking over: the old agent may still be on its way out (EBUSY).
    let me = match become_agent(&e, cpu) {
        Ok(index) => abi::GhostSwInfo { id: 0, index },
        Err(err) => {
            sh.agent_error.store(err, Ordering::SeqCst);
            return 1;
        }
    };
    if takeover {
        probe(&e, cpu, me.index, sh);
        sh.probes[10].store(adopt_tasks(&e), Ordering::SeqCst);
        // Learn the tasks the old agent knew.
        if (&e.ctl).write_all(b"discover tasks").is_err() {
            sh.agent_error.store(-4, Ordering::SeqCst);
            return 1;
        }
    }
    sh.agent_up.store(1, Ordering::SeqCst);
    let mut runq: VecDeque<i64> = VecDeque::new();
    let mut barriers: std::collections::HashMap<i64, (u32, u32)> = Default::default();
    loop {
        let agent_barrier = e.sw_barrier(me.index);
        while let Some((ty, seq, p)) = e.pop() {
            let i = ty.wrapping_sub(64) as usize;
            if let Some(c) = sh.msgs.get(i) {
                c.fetch_add(1, Ordering::SeqCst);
            }
            if p.len() < 8 {
                continue;
            }
            let gtid = i64::from_ne_bytes(p[..8].try_into().unwrap_or_default());
            match ty {
                abi::MSG_TASK_NEW => {
                    let off = offset_of!(abi::GhostMsgPayloadTaskNew, sw_info);
                    let idx =
                        u32::from_ne_bytes(p[off + 4..off + 8].try_into().unwrap_or_default());
                    barriers.insert(gtid, (seq, idx));
                    let r = offset_of!(abi::GhostMsgPayloadTaskNew, runnable);
                    if p[r] != 0 {
                        runq.push_back(gtid);
                    }
                }
                abi::MSG_TASK_WAKEUP | abi::MSG_TASK_PREEMPT | abi::MSG_TASK_YIELD => {
                    if let Some(b) = barriers.get_mut(&gtid) {
                        b.0 = seq;
                    }
                    if !runq.contains(&gtid) {
                        runq.push_back(gtid);
                    }
                }
                abi::MSG_TASK_BLOCKED => {
                    if let Some(b) = barriers.get_mut(&gtid) {
                        b.0 = seq;
                    }
                    runq.retain(|&g| g != gtid);
                }
                abi::MSG_TASK_DEAD | abi::MSG_TASK_DEPARTED => {
                    runq.retain(|&g| g != gtid);
                    if let Some((_, idx)) = barriers.remove(&gtid) {
                        let mut info = abi::GhostSwInfo { id: 0, index: idx };
                        let _ = ioctl(&e.ctl, abi::GHOST_IOC_SW_FREE, (&raw mut info).cast());
                    }
                }
                _ => {}
            }
        }
        if sh.hold.load(Ordering::SeqCst) != 0 {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        let Some(gtid) = runq.front().copied() else {
            let _ = e.block(agent_barrier, cpu);
            continue;
        };
        let task_barrier = barriers.get(&gtid).map_or(0, |b| b.0);
        let state = e.run_local(cpu, gtid, agent_barrier, task_barrier);
        if state == abi::GHOST_TXN_COMPLETE {
            sh.commits_ok.fetch_add(1, Ordering::SeqCst);
            runq.pop_front();
        } else {
            sh.commits_failed.fetch_add(1, Ordering::SeqCst);
            sh.last_failure.store(state, Ordering::SeqCst);
            // The task is gone: forget it. Otherwise try again.
            if state == abi::GHOST_TXN_TARGET_NOT_FOUND
                || state == abi::GHOST_TXN_TARGET_NOT_RUNNABLE
                || state == abi::GHOST_TXN_INVALID_TARGET
            {
                runq.pop_front();
            } else if state == abi::GHOST_TXN_CPU_UNAVAIL {
                std::thread::sleep(Duration::from_micros(100));
            }
        }
    }
}

/// Provokes error outcomes as a new agent of `cpu` (whose status word is
/// `me`), recording them in `sh.probes`: transactions with an unknown gtid,
/// a bad version, bad flags, the agent's own gtid, a stale agent barrier, a
/// CPU without an agent; then `ghost_run` with a stale barrier, a ping of
/// itself, and `ghost_run` with the barrier the ping moved.
fn probe(e: &Enclave, cpu: usize, me: u32, sh: &Shared) {
    let my_gtid: i64 = std::fs::read_to_string("/proc/self/ghost/gtid")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let set = |i: usize, v: i32| sh.probes[i].store(v, Ordering::SeqCst);
    let b = || e.sw_barrier(me);
    set(0, e.run_local(cpu, 0x7fff_ffff_0000_0001, b(), 0));
    set(1, e.commit_raw(cpu, 5, 0, b(), 0, 1));
    set(2, e.commit_raw(cpu, 5, 0xff, b(), 0, 0));
    set(3, e.run_local(cpu, my_gtid, b(), 0));
    // A local commit with a stale agent barrier (of nothing: a task commit
    // fails on the task first, as ghOSt checks the target before the
    // barrier).
    set(4, e.run_local(cpu, 0, b().wrapping_sub(1), 0));
    // CPU 0 is the enclave's but has no agent.
    set(5, e.commit_raw(0, 0, 0, 0, 0, 0));
    set(6, e.block(b().wrapping_sub(1), cpu).err().unwrap_or(0));
    let b = b();
    // SAFETY: the ghost_run syscall with plain integer arguments.
    let ping = unsafe {
        libc::syscall(
            abi::NR_GHOST_RUN,
            abi::GHOST_AGENT_GTID,
            0u32,
            0u32,
            cpu as i32,
            0,
        )
    };
    set(7, ping as i32);
    set(8, e.block(b, cpu).err().unwrap_or(0));
    set(9, e.sw_barrier(me).wrapping_sub(b) as i32);
}

/// In-place upgrade: sends every task of the enclave (a live status word
/// that is not an agent's) to this agent's queue; returns how many.
fn adopt_tasks(e: &Enclave) -> i32 {
    let mut n = 0;
    for index in 0..65534u32 {
        let at = 64 + 32 * index as usize;
        let flags = Enclave::atomic_u32(&e.sw, at + 4).load(Ordering::Acquire);
        let live = flags & abi::GHOST_SW_F_INUSE != 0;
        let skip = abi::GHOST_SW_TASK_IS_AGENT | abi::GHOST_SW_F_CANFREE;
        if !live || flags & skip != 0 {
            continue;
        }
        let gtid: i64 = e.sw.read(at + 8);
        let barrier = e.sw_barrier(index);
        let mut a = abi::GhostIocAssocQueue {
            fd: e.queue.as_raw_fd(),
            src: abi::GhostMsgSrc {
                type_: abi::GHOST_TASK,
                arg: gtid as u64,
            },
            barrier,
            flags: 0,
        };
        if ioctl(&e.ctl, abi::GHOST_IOC_ASSOC_QUEUE, (&raw mut a).cast()).is_ok() {
            n += 1;
        }
    }
    n
}

/// The workload: joins enclave `id` (itself), then counts and records its
/// CPU; in phase 1 it also sleeps and yields; in phase 2 it exits.
fn workload_main(id: u64, sh: &Shared) -> i32 {
    sh.joining.store(1, Ordering::SeqCst);
    if sys::write_once(&path(id, "tasks"), b"0").is_err() {
        return 3;
    }
    loop {
        let n = sh.work.fetch_add(1, Ordering::SeqCst);
        sh.work_cpu.store(current_cpu(), Ordering::SeqCst);
        match sh.phase.load(Ordering::SeqCst) {
            0 => std::hint::spin_loop(),
            1 => {
                if n % 64 == 0 {
                    std::thread::sleep(Duration::from_micros(200));
                } else if n % 64 == 32 {
                    // SAFETY: plain syscall.
                    unsafe { libc::sched_yield() };
                }
            }
            _ => return 0,
        }
    }
}

/// The CPU the caller runs on.
pub(crate) fn current_cpu() -> i32 {
    // SAFETY: plain syscall.
    unsafe { libc::sched_getcpu() }
}

/// The least a wait for something that should happen gives it before the
/// test fails (ms): a cap that only catches a hang. On a quiet machine
/// what the suite waits for takes milliseconds to seconds; on a loaded one
/// (other VMs, a kernel build, `make test-stress`) TCG can stop the VM's
/// vCPUs for many seconds at a time.
pub(crate) const HANG_FLOOR_MS: u64 = 300_000;

/// How long a wait nominally of `ms` may last before it fails: `ms`, but at
/// least [`HANG_FLOOR_MS`].
pub(crate) fn hang_cap(ms: u64) -> u64 {
    ms.max(HANG_FLOOR_MS)
}

/// Waits for `f` to hold. `ms` is how long it should take at most on a
/// quiet machine; the wait gives up only after [`hang_cap`]`(ms)` (a hang),
/// printing where it waited and the ghost threads' states and kernel
/// stacks (the caller's failure message says what it waited for).
/// Not for waits whose expected outcome is that `f` never holds.
#[track_caller]
pub(crate) fn wait_for(ms: u64, mut f: impl FnMut() -> bool) -> bool {
    let at = std::panic::Location::caller();
    let cap = hang_cap(ms);
    let start = Instant::now();
    let end = start + Duration::from_millis(cap);
    let mut late = false;
    while Instant::now() < end {
        if f() {
            if late {
                println!(
                    "  (slow: the wait at {at} took {:.1} s, nominally {ms} ms)",
                    start.elapsed().as_secs_f64()
                );
            }
            return true;
        }
        late = start.elapsed() > Duration::from_millis(ms.max(1000) * 2);
        std::thread::sleep(Duration::from_millis(2));
    }
    let held = f();
    if !held {
        println!(
            "  TIMEOUT: the wait at {at} gave up after {} s (nominally {ms} ms); {}",
            cap / 1000,
            crate::faults::ghost_states()
        );
    }
    held
}

/// Waits until `done()` holds, for as long as `progress()` keeps changing:
/// fails (returns false) only when it has not changed for `stall_ms`, or
/// after `cap_ms` in all (a cap that only catches a hang). A slow or busy
/// machine makes progress slowly, not never.
pub(crate) fn wait_while_progressing(
    stall_ms: u64,
    cap_ms: u64,
    mut progress: impl FnMut() -> u64,
    mut done: impl FnMut() -> bool,
) -> bool {
    let start = Instant::now();
    let mut last = progress();
    let mut last_change = Instant::now();
    loop {
        if done() {
            return true;
        }
        let now = progress();
        if now != last {
            last = now;
            last_change = Instant::now();
        }
        if last_change.elapsed() > Duration::from_millis(stall_ms)
            || start.elapsed() > Duration::from_millis(cap_ms)
        {
            return done();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A task in an enclave runs only when its agent commits it, on the CPU the
/// agent chose; the messages of its life reach the agent; destroying the
/// enclave under load kills the agent and returns the task to CFS, where
/// it keeps running.
pub fn agent_schedules_tasks() -> Result<(), String> {
    sys::ensure_ghostfs()?;
    let ncpus = nr_cpu_ids()?;
    ensure!(ncpus >= 2, "needs 2 CPUs, have {ncpus}");
    let cpu = ncpus - 1;
    let sh: &Shared = sys::shared_page()?;
    sh.hold.store(1, Ordering::SeqCst);
    let id = 41;
    make_enclave(id, cpu)?;
    let agent = sys::fork_child(|| agent_main(id, cpu, sh, false))?;
    let up = wait_for(5000, || {
        sh.agent_up.load(Ordering::SeqCst) != 0 || sh.agent_error.load(Ordering::SeqCst) != 0
    });
    let err = sh.agent_error.load(Ordering::SeqCst);
    ensure!(up && err == 0, "agent did not come up (error {err})");
    // Agents run SCHED_GHOST with RESET_ON_FORK (their children are CFS).
    let policy = sys::sched_policy(agent);
    ensure!(
        policy == abi::SCHED_GHOST | libc::SCHED_RESET_ON_FORK,
        "agent policy {policy:#x}"
    );
    let status = std::fs::read_to_string(path(id, "status")).map_err(|x| x.to_string())?;
    ensure!(
        status.contains("nr_tasks 1\n"),
        "status with an agent: {status:?}"
    );

    // The workload joins; while the agent holds, it must not run.
    let work = sys::fork_child(|| workload_main(41, sh))?;
    ensure!(
        wait_for(5000, || sh.joining.load(Ordering::SeqCst) != 0
            && sys::sched_policy(work) == abi::SCHED_GHOST),
        "workload did not join (policy {})",
        sys::sched_policy(work)
    );
    std::thread::sleep(Duration::from_millis(300));
    let before = sh.work.load(Ordering::SeqCst);
    ensure!(before == 0, "uncommitted task ran {before} iterations");
    ensure!(
        sh.msgs[(abi::MSG_TASK_NEW - 64) as usize].load(Ordering::SeqCst) == 1,
        "TASK_NEW count {}",
        sh.msgs[3].load(Ordering::SeqCst)
    );
    let tasks = std::fs::read_to_string(path(id, "tasks")).map_err(|x| x.to_string())?;
    ensure!(
        tasks == format!("{work}\n"),
        "tasks file {tasks:?}, want {work}"
    );

    // Released: the agent commits it, and it runs on the agent's CPU.
    sh.hold.store(0, Ordering::SeqCst);
    ensure!(
        wait_for(5000, || sh.work.load(Ordering::SeqCst) > 1000),
        "committed task did not run: {} iterations, {} commits ok, {} failed (last {:#x})",
        sh.work.load(Ordering::SeqCst),
        sh.commits_ok.load(Ordering::SeqCst),
        sh.commits_failed.load(Ordering::SeqCst),
        sh.last_failure.load(Ordering::SeqCst)
    );
    let ran_on = sh.work_cpu.load(Ordering::SeqCst);
    ensure!(
        ran_on == cpu as i32,
        "task ran on CPU {ran_on}, agent chose {cpu}"
    );

    // Sleeping and yielding: BLOCKED, WAKEUP and YIELD reach the agent,
    // and the task keeps making progress.
    sh.phase.store(1, Ordering::SeqCst);
    let count = |t: u16| sh.msgs[(t - 64) as usize].load(Ordering::SeqCst);
    ensure!(
        wait_for(10000, || count(abi::MSG_TASK_BLOCKED) >= 20
            && count(abi::MSG_TASK_WAKEUP) >= 20
            && count(abi::MSG_TASK_YIELD) >= 5),
        "after sleeping and yielding: {} BLOCKED, {} WAKEUP, {} YIELD, {} iterations",
        count(abi::MSG_TASK_BLOCKED),
        count(abi::MSG_TASK_WAKEUP),
        count(abi::MSG_TASK_YIELD),
        sh.work.load(Ordering::SeqCst)
    );
    ensure!(
        sh.work_cpu.load(Ordering::SeqCst) == cpu as i32,
        "task ran on CPU {}",
        sh.work_cpu.load(Ordering::SeqCst)
    );

    // Destroy under load: the agent dies, the task goes back to CFS and
    // keeps running.
    sh.phase.store(0, Ordering::SeqCst);
    sys::write_once(&path(id, "ctl"), b"destroy")
        .map_err(|x| format!("destroy: {}", errno_name(x)))?;
    let exit = sys::wait_child(agent)?;
    ensure!(exit == Exit::Signal(libc::SIGKILL), "agent ended {exit:?}");
    ensure!(
        sys::sched_policy(work) == libc::SCHED_OTHER,
        "task policy after destroy: {}",
        sys::sched_policy(work)
    );
    let at = sh.work.load(Ordering::SeqCst);
    ensure!(
        wait_for(5000, || sh.work.load(Ordering::SeqCst) > at + 1000),
        "task stuck after destroy at {at} iterations"
    );
    sh.phase.store(2, Ordering::SeqCst);
    let exit = sys::wait_child(work)?;
    ensure!(exit == Exit::Code(0), "workload ended {exit:?}");
    Ok(())
}

/// Spins on `cpu` as a CFS task for `ms` milliseconds (a child process).
pub(crate) fn cfs_hog(cpu: usize, ms: u64) -> Result<i32, String> {
    hog(cpu, ms, false)
}

/// A child that spins on `cpu` for `ms` milliseconds, in CFS or (`rt`)
/// as a `SCHED_FIFO` task of priority 1; exits 1 if it cannot.
pub(crate) fn hog(cpu: usize, ms: u64, rt: bool) -> Result<i32, String> {
    sys::fork_child(move || {
        if rt {
            let p = libc::sched_param { sched_priority: 1 };
            // SAFETY: plain syscall on ourselves with a valid parameter.
            if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &p) } != 0 {
                return 1;
            }
        }
        // SAFETY: a zeroed cpu_set_t with one bit set, for ourselves.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            if libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) != 0 {
                return 1;
            }
        }
        let end = Instant::now() + Duration::from_millis(ms);
        while Instant::now() < end {
            std::hint::spin_loop();
        }
        0
    })
}

/// CFS and RT preempt a running ghost task (TASK_PREEMPT); a killed agent loses
/// no task: the enclave stays (its task runs in the kernel's agentless
/// fallback meanwhile), a new agent takes over (in-place upgrade:
/// `ASSOC_QUEUE` of every live status word, then `discover tasks`) and runs
/// the task again. The new agent first provokes error outcomes of
/// transactions and `ghost_run`.
pub fn agent_takeover_and_errors() -> Result<(), String> {
    sys::ensure_ghostfs()?;
    let ncpus = nr_cpu_ids()?;
    ensure!(ncpus >= 2, "needs 2 CPUs, have {ncpus}");
    let cpu = ncpus - 1;
    let sh: &Shared = sys::shared_page()?;
    let id = 42;
    make_enclave(id, cpu)?;
    // CPU 0 too, without an agent (for NO_AGENT).
    sys::write_once(&path(id, "cpulist"), format!("0,{cpu}").as_bytes())
        .map_err(|e| format!("cpulist: {}", errno_name(e)))?;
    let a = sys::fork_child(|| agent_main(id, cpu, sh, false))?;
    ensure!(
        wait_for(5000, || sh.agent_up.load(Ordering::SeqCst) != 0),
        "first agent did not come up ({})",
        sh.agent_error.load(Ordering::SeqCst)
    );
    let work = sys::fork_child(|| workload_main(id, sh))?;
    ensure!(
        wait_for(5000, || sh.work.load(Ordering::SeqCst) > 1000),
        "task did not run under the first agent"
    );

    // A CFS task on the same CPU preempts the ghost task.
    let count = |t: u16| sh.msgs[(t - 64) as usize].load(Ordering::SeqCst);
    // So does an RT task.
    for (rt, class) in [(false, "CFS"), (true, "RT")] {
        let p0 = count(abi::MSG_TASK_PREEMPT);
        let h = hog(cpu, 300, rt)?;
        let hog_exit = sys::wait_child(h)?;
        ensure!(hog_exit == Exit::Code(0), "{class} hog ended {hog_exit:?}");
        // The agent counts the message when it next runs.
        ensure!(
            wait_for(2000, || count(abi::MSG_TASK_PREEMPT) > p0),
            "no TASK_PREEMPT when {class} took the CPU"
        );
        let at = sh.work.load(Ordering::SeqCst);
        ensure!(
            wait_for(5000, || sh.work.load(Ordering::SeqCst) > at + 1000),
            "task did not resume after the {class} task left"
        );
    }

    // The agent dies; the task stays in the enclave.
    sh.phase.store(1, Ordering::SeqCst);
    // SAFETY: killing our own child.
    unsafe { libc::kill(a, libc::SIGKILL) };
    let exit = sys::wait_child(a)?;
    ensure!(
        exit == Exit::Signal(libc::SIGKILL),
        "first agent ended {exit:?}"
    );
    ensure!(
        sys::sched_policy(work) == abi::SCHED_GHOST,
        "task policy {} after its agent died",
        sys::sched_policy(work)
    );
    ensure!(
        wait_for(5000, || std::fs::read_to_string(path(id, "status"))
            .unwrap_or_default()
            .contains("nr_tasks 1\n")),
        "status after the agent died: {:?}",
        std::fs::read_to_string(path(id, "status"))
    );
    // ghost-rs runs the tasks of an enclave whose agent died itself until
    // a new agent attaches (the agentless fallback; ghOSt leaves them
    // waiting: conformance.rst, kept differences).
    let at = sh.work.load(Ordering::SeqCst);
    ensure!(
        wait_for(60_000, || sh.work.load(Ordering::SeqCst) > at + 1000),
        "the task did not run in the agentless fallback (waited 60 s)"
    );

    // A new agent takes over.
    for m in &sh.msgs {
        m.store(0, Ordering::SeqCst);
    }
    sh.agent_up.store(0, Ordering::SeqCst);
    let b = sys::fork_child(|| agent_main(id, cpu, sh, true))?;
    ensure!(
        wait_for(5000, || sh.agent_up.load(Ordering::SeqCst) != 0
            || sh.agent_error.load(Ordering::SeqCst) != 0),
        "second agent did not come up"
    );
    ensure!(
        sh.agent_error.load(Ordering::SeqCst) == 0,
        "second agent: error {}",
        sh.agent_error.load(Ordering::SeqCst)
    );
    let probes: Vec<i32> = sh.probes.iter().map(|p| p.load(Ordering::SeqCst)).collect();
    let want = [
        abi::GHOST_TXN_TARGET_NOT_FOUND,
        abi::GHOST_TXN_UNSUPPORTED_VERSION,
        abi::GHOST_TXN_INVALID_FLAGS,
        abi::GHOST_TXN_INVALID_TARGET,
        abi::GHOST_TXN_AGENT_STALE,
        abi::GHOST_TXN_NO_AGENT,
        libc::ESTALE,
        0,
        libc::ESTALE,
    ];
    ensure!(
        probes[..want.len()] == want,
        "probe outcomes {probes:x?}, want {want:x?}"
    );
    ensure!(probes[9] >= 1, "a ping did not move the agent barrier");
    ensure!(probes[10] == 1, "adopted {} tasks, want 1", probes[10]);
    // The new agent counts the message when its loop reads it.
    ensure!(
        wait_for(2000, || count(abi::MSG_TASK_NEW) >= 1),
        "discover tasks sent no TASK_NEW"
    );
    let at = sh.work.load(Ordering::SeqCst);
    ensure!(
        wait_for(5000, || sh.work.load(Ordering::SeqCst) > at + 1000),
        "task did not run under the new agent"
    );

    sh.phase.store(2, Ordering::SeqCst);
    let exit = sys::wait_child(work)?;
    ensure!(exit == Exit::Code(0), "workload ended {exit:?}");
    ensure!(
        wait_for(5000, || count(abi::MSG_TASK_DEAD) == 1),
        "no TASK_DEAD for the workload"
    );
    sys::write_once(&path(id, "ctl"), b"destroy")
        .map_err(|x| format!("destroy: {}", errno_name(x)))?;
    let exit = sys::wait_child(b)?;
    ensure!(
        exit == Exit::Signal(libc::SIGKILL),
        "second agent ended {exit:?}"
    );
    Ok(())
}

/// `COMMIT_TXN` (or, with `sync`, `SYNC_GROUP_TXN`) on the enclave `ctl` of
/// the transactions of `cpus` (below 1024): the ioctl's return value, or its
/// errno.
pub fn commit_txns(ctl: &std::fs::File, cpus: &[usize], sync: bool) -> Result<i32, i32> {
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
