//! The fuzz's agent process (`A`): the stage's real agent, which fuzzes
//! transactions, `ghost_run`, its queues and ioctls between its scheduling
//! rounds (see the module above).

use super::gen::{
    cpu_num, ioctl_cmd, mutate, run_args, tame_tasks, tame_timeout, valid_cmd, Arena, World,
    TXN_FIELDS,
};
use super::mapping::{mmap_raw, on_sigbus, Map};
use super::rng::Rng;
use super::shared::{show, Rec, Shared};
use super::syscalls::{ghost_run, open, raw_ioctl, sleep_us, write_fd};
use super::{
    abi, ioctl, nr_cpu_ids, path, sys, AtomicU32, Duration, File, Instant, Ordering, GHOSTFS,
    K_AIOCTL, K_ARUN, K_ASSOC, K_AWRITE, K_QGARBAGE, K_QUEUE2, K_SWFREE, K_TXN, SCAN, STAGE,
    THREADS,
};
use crate::harness::agent::{Agent as RawAgent, Next, Script};
use crate::harness::Enclave;
use std::os::fd::AsRawFd;
use std::sync::Arc;

/// A queue the agent drains: its file, mapping, slots.
pub(super) struct Queue {
    pub(super) file: File,
    /// Shared with the harness agent's view for the first queue.
    pub(super) map: Arc<Map>,
    pub(super) nelems: u32,
}

impl Queue {
    /// Reads every message; a `tail` that cannot be right (garbage) is
    /// set to `head`. Returns the messages read.
    pub(super) fn drain(&self) -> u32 {
        let mut n = 0;
        for _ in 0..4 * self.nelems {
            let head = self.map.atomic(64).load(Ordering::Acquire);
            let tail_a = self.map.atomic(68);
            let tail = tail_a.load(Ordering::Relaxed);
            if head == tail {
                break;
            }
            if head.wrapping_sub(tail) > self.nelems {
                tail_a.store(head, Ordering::Release);
                break;
            }
            let slot = (tail & (self.nelems - 1)) as usize;
            let word0 = self.map.atomic(76 + slot * 8).load(Ordering::Acquire);
            let len = (word0 >> 16) as usize;
            let slots = len.div_ceil(8).max(1) as u32;
            tail_a.store(tail.wrapping_add(slots), Ordering::Release);
            n += 1;
        }
        n
    }
}

/// A pending restore of a queue header after garbage: `(queue 0/1,
/// iteration, [(offset, garbage, saved)])`.
pub(super) type Restore = (usize, u64, Vec<(usize, u32, u32)>);

/// The fuzz agent's state: the [`Script`] of the harness's raw agent.
pub(super) struct Agent {
    /// Operations to do, done, and the scheduling rounds so far.
    pub(super) nops: u64,
    pub(super) done: u64,
    pub(super) iter: u64,
    pub(super) rng: Rng,
    pub(super) rec: Rec,
    pub(super) w: World,
    pub(super) cpu: usize,
    pub(super) ctl: File,
    /// Files opened before becoming an agent (an agent may not open them).
    pub(super) files: Vec<(String, File)>,
    pub(super) queues: Vec<Queue>,
    /// Shared with the helper thread, which scribbles on it.
    pub(super) cpu_data: Arc<Map>,
    pub(super) sw: Arc<Map>,
    /// The agent's status word; its own gtid.
    pub(super) me: u32,
    pub(super) my_gtid: i64,
    pub(super) arena: Arena,
    pub(super) restore: Option<Restore>,
    /// Runnable tasks seen by the last scan: `(gtid, barrier)`.
    pub(super) runnable: Vec<(i64, u32)>,
    /// Live tasks by status-word index.
    pub(super) live: Vec<(u32, i64, u32)>,
    pub(super) next: usize,
    pub(super) scribble: &'static AtomicU32,
}

pub(super) fn agent_main(sh: &'static Shared, seed: u64, batch: u64, nops: u64, c1: usize) -> i32 {
    let err = |e: i32| {
        sh.agent_err.store(e, Ordering::SeqCst);
        1
    };
    let ncpus = nr_cpu_ids().unwrap_or(c1 + 1);
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    let Ok(ctl) = open(&path(STAGE, "ctl"), libc::O_RDWR) else {
        return err(-1);
    };
    let Ok((qf, size)) = crate::harness::create_queue(&ctl, 256, -1, 0) else {
        return err(-2);
    };
    let Ok(qmap) = mmap_raw(qf.as_raw_fd(), size as usize, rw, libc::MAP_SHARED, 0) else {
        return err(-3);
    };
    let mut dq = abi::GhostIocSetDefaultQueue { fd: qf.as_raw_fd() };
    let mut wk = [abi::GhostAgentWakeup {
        cpu: c1 as i32,
        prio: 0,
    }];
    let mut cw = abi::GhostIocConfigQueueWakeup {
        qfd: qf.as_raw_fd(),
        w: wk.as_mut_ptr() as u64,
        ninfo: 1,
        flags: 0,
    };
    if ioctl(&ctl, abi::GHOST_IOC_SET_DEFAULT_QUEUE, (&raw mut dq).cast()).is_err()
        || ioctl(
            &ctl,
            abi::GHOST_IOC_CONFIG_QUEUE_WAKEUP,
            (&raw mut cw).cast(),
        )
        .is_err()
    {
        return err(-4);
    }
    let (Ok(cdf), Ok(swf)) = (
        open(&path(STAGE, "cpu_data"), libc::O_RDWR),
        open(&path(STAGE, "sw_regions/sw_0"), libc::O_RDONLY),
    ) else {
        return err(-5);
    };
    let (Ok(cpu_data), Ok(sw), Ok(arena)) = (
        mmap_raw(cdf.as_raw_fd(), 4096 * ncpus, rw, libc::MAP_SHARED, 0),
        mmap_raw(
            swf.as_raw_fd(),
            2 << 20,
            libc::PROT_READ,
            libc::MAP_SHARED,
            0,
        ),
        Arena::new(),
    ) else {
        return err(-6);
    };
    on_sigbus(vec![
        (cpu_data.addr(), cpu_data.len(), STAGE),
        (sw.addr(), sw.len(), STAGE),
    ]);
    let mut files = Vec::new();
    for f in [
        "ctl",
        "cpulist",
        "cpumask",
        "tasks",
        "deliver_ticks",
        "commit_at_tick",
        "live_dangerously",
        "wake_on_waker_cpu",
        "runnable_timeout",
    ] {
        if let Ok(fd) = open(&path(STAGE, f), libc::O_RDWR) {
            files.push((f.to_string(), fd));
        }
    }
    if let Ok(fd) = open(&format!("{GHOSTFS}/ctl"), libc::O_RDWR) {
        files.push(("root ctl".into(), fd));
    }
    files.push(("cpu_data".into(), cdf));
    let my_gtid = sys::gtid_of(ghost::sys::gettid());
    // The helper: nudges the agent (a signal ends its wait) when it made no
    // progress for 30 ms, and scribbles on transactions on request.
    let _ = ghost::sys::install_wake_handler(libc::SIGUSR1);
    static SCRIBBLE: AtomicU32 = AtomicU32::new(0);
    let (cpu_data, sw, qmap) = (Arc::new(cpu_data), Arc::new(sw), Arc::new(qmap));
    let cd = Arc::clone(&cpu_data);
    let hseed = seed ^ 0x5151;
    let helper = std::thread::Builder::new()
        .stack_size(128 << 10)
        .spawn(move || helper_main(sh, &SCRIBBLE, &cd, ncpus, hseed));
    if helper.is_err() {
        return err(-7);
    }
    // The harness's agent, on the same queue and mappings.
    let (Ok(ctl2), Ok(qf2)) = (ctl.try_clone(), qf.try_clone()) else {
        return err(-8);
    };
    let view = Enclave::from_parts(
        ctl2,
        qf2,
        Arc::clone(&qmap),
        256,
        Arc::clone(&cpu_data),
        Arc::clone(&sw),
    );
    // Become the agent of `c1` (bounded retries while the CPU is busy).
    let raw = match RawAgent::join_with_queue(view, c1, qf.as_raw_fd()) {
        Ok(raw) => raw,
        Err(e) => return err(e),
    };
    sh.agent_tid.store(ghost::sys::gettid(), Ordering::SeqCst);
    sh.agent_up.store(1, Ordering::SeqCst);
    let mut a = Agent {
        nops,
        done: 0,
        iter: 0,
        rng: Rng::new(seed),
        rec: Rec {
            sh,
            who: 'A',
            batch,
            n: 0,
        },
        w: World::new(sh, c1, ncpus),
        cpu: c1,
        ctl,
        files,
        queues: vec![Queue {
            file: qf,
            map: qmap,
            nelems: 256,
        }],
        cpu_data,
        sw,
        me: raw.me,
        my_gtid,
        arena,
        restore: None,
        runnable: Vec::new(),
        live: Vec::new(),
        next: 0,
        scribble: &SCRIBBLE,
    };
    raw.run(&mut a)
}

/// The agent process's helper thread (CFS).
pub(super) fn helper_main(
    sh: &'static Shared,
    scribble: &AtomicU32,
    cd: &Map,
    ncpus: usize,
    seed: u64,
) {
    let mut rng = Rng::new(seed);
    let mut last = (0, Instant::now());
    loop {
        if scribble.load(Ordering::SeqCst) != 0 {
            for _ in 0..64 {
                let cpu = rng.below(ncpus as u64) as usize;
                let (off, size) = rng.pick(&TXN_FIELDS);
                let v = rng.int().to_ne_bytes();
                cd.write_bytes(cpu * 4096 + off, &v[..size]);
            }
            sh.faults.fetch_add(1, Ordering::Relaxed);
        } else {
            sleep_us(2000);
        }
        let it = sh.agent_iter.load(Ordering::SeqCst);
        if it != last.0 {
            last = (it, Instant::now());
        } else if last.1.elapsed() > Duration::from_millis(30) {
            let tid = sh.agent_tid.load(Ordering::SeqCst);
            if tid > 0 && ghost::sys::tgkill(tid, libc::SIGUSR1).is_ok() {
                sh.nudges.fetch_add(1, Ordering::Relaxed);
            }
            last.1 = Instant::now();
        }
    }
}

/// A round: restores a queue header due back, reads every queue (the
/// harness agent reads the first one), scans the status words, perhaps
/// fuzzes, and schedules; with nothing to run it leaves the CPU to other
/// classes for a moment.
impl Script for Agent {
    fn begin(&mut self, _raw: &RawAgent) {
        self.iter += 1;
        self.rec.sh.agent_iter.store(self.iter, Ordering::SeqCst);
        self.maybe_restore(self.iter);
    }

    fn step(&mut self, _raw: &RawAgent, _barrier: u32) -> Next {
        let sh = self.rec.sh;
        for q in self.queues.iter().skip(1) {
            q.drain();
        }
        self.scan();
        if self.done < self.nops && self.rng.one_in(2) {
            self.fuzz_op(self.iter);
            self.done += 1;
            if self.done == self.nops {
                sh.agent_done.store(1, Ordering::SeqCst);
            }
        }
        if self.schedule() {
            Next::Again
        } else {
            // Nothing ran: leave the CPU to other classes for a moment.
            Next::Sleep(Duration::from_micros(200 + self.rng.below(300)))
        }
    }
}

impl Agent {
    pub(super) fn barrier(&self) -> u32 {
        self.sw
            .atomic(64 + 32 * self.me as usize)
            .load(Ordering::Acquire)
    }

    /// Scans the status words: frees those of dead or departed tasks,
    /// records live and runnable tasks.
    pub(super) fn scan(&mut self) {
        self.runnable.clear();
        self.live.clear();
        for idx in 0..SCAN {
            let at = 64 + 32 * idx;
            let flags = self.sw.atomic(at + 4).load(Ordering::Acquire);
            if flags & abi::GHOST_SW_F_INUSE == 0 || flags & abi::GHOST_SW_TASK_IS_AGENT != 0 {
                continue;
            }
            if flags & abi::GHOST_SW_F_CANFREE != 0 {
                let mut info = abi::GhostSwInfo {
                    id: 0,
                    index: idx as u32,
                };
                if ioctl(&self.ctl, abi::GHOST_IOC_SW_FREE, (&raw mut info).cast()).is_ok() {
                    self.rec.sh.sw_freed.fetch_add(1, Ordering::Relaxed);
                }
                continue;
            }
            let barrier = self.sw.atomic(at).load(Ordering::Acquire);
            let gtid = self.sw.u64(at + 8) as i64;
            self.live.push((idx as u32, gtid, barrier));
            if flags & abi::GHOST_SW_TASK_RUNNABLE != 0 && flags & abi::GHOST_SW_TASK_ONCPU == 0 {
                self.runnable.push((gtid, barrier));
            }
        }
    }

    /// Fills the transaction of `cpu`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn fill(
        &self,
        cpu: usize,
        gtid: i64,
        ab: u32,
        tb: u32,
        run_flags: u16,
        commit_flags: u8,
    ) {
        let base = cpu * 4096;
        let m = &self.cpu_data;
        m.write_bytes(base, &0i32.to_ne_bytes());
        m.write_bytes(base + 12, &ab.to_ne_bytes());
        m.write_bytes(base + 16, &tb.to_ne_bytes());
        m.write_bytes(base + 20, &run_flags.to_ne_bytes());
        m.write_bytes(base + 22, &[commit_flags]);
        m.write_bytes(base + 24, &gtid.to_ne_bytes());
        m.atomic(base + 8)
            .store(abi::GHOST_TXN_READY as u32, Ordering::Release);
    }

    pub(super) fn state(&self, cpu: usize) -> i32 {
        self.cpu_data.atomic(cpu * 4096 + 8).load(Ordering::Acquire) as i32
    }

    /// `COMMIT_TXN` or `SYNC_GROUP_TXN` with a mask of `cpus`.
    pub(super) fn commit(&self, cpus: &[usize], sync: bool) -> Result<i64, i32> {
        crate::harness::commit_txns(&self.ctl, cpus, sync).map(i64::from)
    }

    /// Runs the next runnable task on the agent's CPU (the agent sleeps
    /// until it leaves the CPU); false if nothing ran.
    pub(super) fn schedule(&mut self) -> bool {
        if self.runnable.is_empty() {
            return false;
        }
        self.next = (self.next + 1) % self.runnable.len();
        let (gtid, tb) = self.runnable[self.next];
        let flags = abi::RTLA_ON_BLOCKED | abi::RTLA_ON_YIELD | abi::RTLA_ON_PREEMPT;
        let sh = self.rec.sh;
        let mut ok = false;
        // A message between reading the barrier and committing makes it
        // stale: try again at once, a few times.
        for _ in 0..4 {
            self.fill(self.cpu, gtid, self.barrier(), tb, flags, 0);
            let r = self.commit(&[self.cpu], false);
            let st = self.state(self.cpu);
            let k = match r {
                Err(_) => 16,
                Ok(_) if st < 0 && st.wrapping_sub(i32::MIN) < 16 => {
                    st.wrapping_sub(i32::MIN) as usize
                }
                Ok(_) => 17,
            };
            sh.outcomes[k].fetch_add(1, Ordering::Relaxed);
            ok = k == 0;
            if st != abi::GHOST_TXN_AGENT_STALE {
                break;
            }
        }
        if ok {
            sh.sched_ok.fetch_add(1, Ordering::Relaxed);
        } else {
            sh.sched_fail.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    pub(super) fn maybe_restore(&mut self, iter: u64) {
        let Some((qi, at, words)) = &self.restore else {
            return;
        };
        if iter < *at {
            return;
        }
        if let Some(q) = self.queues.get(*qi) {
            for &(off, garbage, saved) in words {
                // Only where the garbage is still there (the kernel's next
                // message rewrites `head`; the drain resyncs `tail`).
                let _ = q.map.atomic(off).compare_exchange(
                    garbage,
                    saved,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                );
            }
        }
        self.restore = None;
    }

    pub(super) fn fuzz_op(&mut self, iter: u64) {
        const WEIGHTS: [u32; 8] = [35, 15, 10, 8, 8, 14, 6, 4];
        if self.w.tids.len() < THREADS {
            self.w = World::new(self.rec.sh, self.cpu, self.w.ncpus);
        }
        match self.rng.weighted(&WEIGHTS) {
            0 => self.op_txn(),
            1 => self.op_run(),
            2 => self.op_queue_garbage(iter),
            3 => self.op_sw_free(),
            4 => self.op_assoc(),
            5 => self.op_ioctl(),
            6 => self.op_write(),
            _ => self.op_queue2(),
        }
    }

    /// A gtid for a transaction: a live task, ourselves, a special one, or
    /// garbage.
    pub(super) fn txn_gtid(&mut self) -> (i64, u32) {
        match self.rng.below(10) {
            0..=4 if !self.live.is_empty() => {
                let (_, g, b) = self.rng.pick(&self.live);
                (g, b)
            }
            5 => (self.my_gtid, 0),
            6 => (self.rng.pick(&[0, -1, -2, -3]), 0),
            _ => (self.w.task_gtid(&mut self.rng), self.rng.int() as u32),
        }
    }

    /// Garbage transactions, committed.
    pub(super) fn op_txn(&mut self) {
        let ncpus = self.w.ncpus;
        let cpus: Vec<usize> = match self.rng.below(4) {
            0 | 1 => vec![self.cpu],
            2 => vec![0],
            _ => (0..ncpus).collect(),
        };
        let mut desc = String::from("txn");
        for &c in &cpus {
            let (gtid, tb) = self.txn_gtid();
            let tb = if self.rng.one_in(4) {
                tb.wrapping_add(self.rng.pick(&[1, u32::MAX, 2]))
            } else {
                tb
            };
            let ab = if self.rng.one_in(4) {
                self.rng.int() as u32
            } else {
                self.barrier()
            };
            let run_flags = match self.rng.below(4) {
                0 => 0,
                1 => abi::RTLA_ON_BLOCKED | abi::RTLA_ON_YIELD | abi::RTLA_ON_PREEMPT,
                2 => 1 << self.rng.below(16),
                _ => self.rng.next() as u16,
            };
            let commit_flags = match self.rng.below(3) {
                0 => 0,
                1 => 1 << self.rng.below(8),
                _ => self.rng.next() as u8,
            };
            self.fill(c, gtid, ab, tb, run_flags, commit_flags);
            desc += &format!(
                " [cpu{c} gtid {gtid:#x} ab {ab} tb {tb} rf {run_flags:#x} cf {commit_flags:#x}"
            );
            // Garbage in the other fields, the state among them.
            for _ in 0..self.rng.below(3) {
                let (off, size) = self.rng.pick(&TXN_FIELDS);
                let v = if off == 8 {
                    let any = self.rng.int();
                    self.rng.pick(&[0, 1, -1, i64::from(i32::MIN), any])
                } else {
                    self.rng.int()
                };
                self.cpu_data
                    .write_bytes(c * 4096 + off, &v.to_ne_bytes()[..size]);
                desc += &format!(" +{off}={v:#x}");
                self.rec.fault(1);
            }
            desc += "]";
        }
        self.rec.fault(1);
        let how = self.rng.below(10);
        let scribble = self.rng.one_in(10);
        if scribble {
            desc += " scribbled";
            self.scribble.store(1, Ordering::SeqCst);
        }
        let fd = self.ctl.as_raw_fd();
        let r = match how {
            0..=5 => {
                // The mask: right, random, huge, or a bad pointer.
                let mut mask = [0u8; 1100];
                for &c in &cpus {
                    mask[c / 8] |= 1 << (c % 8);
                }
                let (ptr, len, flags) = match self.rng.below(8) {
                    0 => (
                        mask.as_ptr() as u64,
                        self.rng.pick(&[0, 1, 1024, 1025, u32::MAX]),
                        0,
                    ),
                    1 => (self.rng.pick(&[0, 1, 0xffff_8880_0000_0000]), 128, 0),
                    2 => (mask.as_ptr() as u64, 128, self.rng.pick(&[1, -1])),
                    3 => {
                        mask[0] = self.rng.next() as u8;
                        (mask.as_ptr() as u64, 1, 0)
                    }
                    _ => (mask.as_ptr() as u64, 128, 0),
                };
                let sync = self.rng.one_in(3);
                let mut c = abi::GhostIocCommitTxn {
                    mask_ptr: ptr,
                    mask_len: len,
                    flags,
                };
                let cmd = if sync {
                    abi::GHOST_IOC_SYNC_GROUP_TXN
                } else {
                    abi::GHOST_IOC_COMMIT_TXN
                };
                desc += &format!(
                    " {} mask {ptr:#x} len {len} flags {flags}",
                    if sync { "SYNC" } else { "COMMIT" }
                );
                self.rec
                    .op(K_TXN, desc, || raw_ioctl(fd, cmd, (&raw mut c) as usize))
            }
            6 | 7 => {
                let a = [0, i64::from(self.barrier()), 0, self.cpu as i64, 0];
                desc += &format!(" ghost_run {a:?}");
                self.rec.op(K_TXN, desc, || ghost_run(a))
            }
            _ => {
                desc += " not committed";
                self.rec.op(K_TXN, desc, || Ok(0))
            }
        };
        let _ = r;
        self.scribble.store(0, Ordering::SeqCst);
    }

    pub(super) fn op_run(&mut self) {
        let b = self.barrier();
        let mut a = run_args(&mut self.rng, &self.w, b);
        if self.rng.one_in(3) {
            // A plausible local yield.
            a = [
                0,
                i64::from(self.barrier()),
                0,
                self.cpu as i64,
                self.rng.pick(&[0, 32]),
            ];
        }
        if self.rng.one_in(2) {
            self.rec
                .op(K_ARUN, format!("ghost_run {a:?}"), || ghost_run(a));
        } else {
            let mut r = abi::GhostIocRun {
                gtid: a[0],
                agent_barrier: a[1] as u32,
                task_barrier: a[2] as u32,
                run_cpu: a[3] as i32,
                run_flags: a[4] as i32,
            };
            let fd = self.ctl.as_raw_fd();
            let (what, arg) = match self.rng.below(6) {
                0 => ("NULL", 0),
                1 => ("unmapped", self.arena.unmapped),
                _ => ("struct", (&raw mut r) as usize),
            };
            self.rec.op(K_ARUN, format!("IOC_RUN {what} {a:?}"), || {
                raw_ioctl(fd, abi::GHOST_IOC_RUN, arg)
            });
        }
    }

    /// Garbage into a queue header, restored (where it is still there) a
    /// few iterations later.
    pub(super) fn op_queue_garbage(&mut self, iter: u64) {
        if self.restore.is_some() {
            return;
        }
        let qi = self.rng.below(self.queues.len() as u64) as usize;
        let q = &self.queues[qi];
        let mut words = Vec::new();
        let mut desc = format!("queue{qi} header");
        for _ in 0..1 + self.rng.below(3) {
            let off = self.rng.pick(&[0usize, 4, 8, 12, 60, 64, 64, 68, 68, 72]);
            let saved = q.map.atomic(off).load(Ordering::Acquire);
            let v = match self.rng.below(4) {
                0 => saved.wrapping_add(self.rng.pick(&[1, q.nelems, q.nelems + 1, u32::MAX])),
                1 => self.rng.pick(&[0, u32::MAX, 1 << 31, q.nelems]),
                _ => self.rng.next() as u32,
            };
            words.push((off, v, saved));
            desc += &format!(" +{off}={v:#x} (was {saved:#x})");
        }
        let later = self.rng.below(30);
        desc += &format!(", restored in {later}");
        self.rec.fault(words.len() as u64);
        self.rec.op(K_QGARBAGE, desc, || {
            for &(off, v, _) in &words {
                q.map.atomic(off).store(v, Ordering::Release);
            }
            Ok(0)
        });
        self.restore = Some((qi, iter + later, words));
    }

    pub(super) fn op_sw_free(&mut self) {
        let index = match self.rng.below(6) {
            0 | 1 if !self.live.is_empty() => self.rng.pick(&self.live).0,
            2 => self.me,
            _ => {
                let any = self.rng.next() as u32;
                self.rng.pick(&[0, 1, 65533, 65534, u32::MAX, any])
            }
        };
        let id = self.rng.pick(&[0, 0, 0, 1, 63, u32::MAX]);
        let mut info = abi::GhostSwInfo { id, index };
        let fd = self.ctl.as_raw_fd();
        self.rec.op(K_SWFREE, format!("SW_FREE {id}/{index}"), || {
            raw_ioctl(fd, abi::GHOST_IOC_SW_FREE, (&raw mut info) as usize)
        });
    }

    pub(super) fn op_assoc(&mut self) {
        let (gtid, barrier) = if !self.live.is_empty() && self.rng.below(3) != 0 {
            let (_, g, b) = self.rng.pick(&self.live);
            (
                g,
                if self.rng.one_in(4) {
                    b.wrapping_add(1)
                } else {
                    b
                },
            )
        } else {
            (self.w.task_gtid(&mut self.rng), self.rng.int() as u32)
        };
        let qfd = match self.rng.below(6) {
            0..=3 => self.queues[self.rng.below(self.queues.len() as u64) as usize]
                .file
                .as_raw_fd(),
            4 => self.ctl.as_raw_fd(),
            _ => self.rng.int() as i32,
        };
        let mut a = abi::GhostIocAssocQueue {
            fd: qfd,
            src: abi::GhostMsgSrc {
                type_: self
                    .rng
                    .pick(&[abi::GHOST_TASK, abi::GHOST_TASK, abi::GHOST_AGENT, 7]),
                arg: gtid as u64,
            },
            barrier,
            flags: self.rng.pick(&[0, 0, 0, 1]),
        };
        let desc = format!(
            "ASSOC_QUEUE fd {qfd} type {} gtid {gtid:#x} barrier {barrier} flags {}",
            a.src.type_, a.flags
        );
        let fd = self.ctl.as_raw_fd();
        self.rec.op(K_ASSOC, desc, || {
            raw_ioctl(fd, abi::GHOST_IOC_ASSOC_QUEUE, (&raw mut a) as usize)
        });
    }

    pub(super) fn op_ioctl(&mut self) {
        let mut fds: Vec<i32> = vec![self.ctl.as_raw_fd(); 3];
        fds.extend(self.queues.iter().map(|q| q.file.as_raw_fd()));
        fds.extend(self.files.iter().map(|f| f.1.as_raw_fd()));
        let fd = self.rng.pick(&fds);
        let cmd = ioctl_cmd(&mut self.rng);
        // No queues of random size from the agent (they add up).
        if cmd == abi::GHOST_IOC_CREATE_QUEUE {
            return;
        }
        let qfds: Vec<i32> = self.queues.iter().map(|q| q.file.as_raw_fd()).collect();
        let (adesc, arg) = self.arena.arg(&mut self.rng, &self.w, cmd, &qfds);
        self.rec
            .op(K_AIOCTL, format!("ioctl fd{fd} {cmd:#x} {adesc}"), || {
                raw_ioctl(fd, cmd, arg)
            });
    }

    /// Writes through the files opened before becoming an agent.
    pub(super) fn op_write(&mut self) {
        let i = self.rng.below(self.files.len() as u64) as usize;
        let name = self.files[i].0.clone();
        let fname = if name == "root ctl" {
            "ctl"
        } else {
            name.as_str()
        };
        let id = if name == "root ctl" {
            None
        } else {
            Some(STAGE)
        };
        let v = valid_cmd(&mut self.rng, &self.w, fname, id);
        let mut data = if self.rng.one_in(2) {
            mutate(&mut self.rng, &v)
        } else {
            v.into_bytes()
        };
        if name == "tasks" {
            data = tame_tasks(data, &self.w, true);
        }
        if name == "runnable_timeout" {
            data = tame_timeout(&mut self.rng, data);
        }
        if name == "ctl" && self.rng.one_in(3) {
            data = format!(
                "become agent {} {}",
                self.cpu,
                self.queues[0].file.as_raw_fd()
            )
            .into_bytes();
        }
        let fd = self.files[i].1.as_raw_fd();
        self.rec
            .op(K_AWRITE, format!("write {name} {}", show(&data)), || {
                write_fd(fd, &data, None)
            });
    }

    /// A second queue: created (mapped, drained, waking this agent), its
    /// wakeup changed, or dropped.
    pub(super) fn op_queue2(&mut self) {
        let fd = self.ctl.as_raw_fd();
        if self.queues.len() == 1 {
            let elems = self.rng.pick(&[1, 2, 8, 64]);
            let mut args = abi::GhostIocCreateQueue {
                elems,
                node: -1,
                flags: 0,
                mapsize: 0,
            };
            let r = self.rec.op(K_QUEUE2, format!("CREATE_QUEUE {elems}"), || {
                raw_ioctl(fd, abi::GHOST_IOC_CREATE_QUEUE, (&raw mut args) as usize)
            });
            if let Some(q) = r {
                let file = sys::adopt_fd(q as i32);
                let rw = libc::PROT_READ | libc::PROT_WRITE;
                if let Ok(map) = mmap_raw(q as i32, args.mapsize as usize, rw, libc::MAP_SHARED, 0)
                {
                    self.queues.push(Queue {
                        file,
                        map: Arc::new(map),
                        nelems: elems as u32,
                    });
                }
            }
            return;
        }
        if self.rng.one_in(3) {
            if self.restore.as_ref().is_some_and(|r| r.0 == 1) {
                self.restore = None;
            }
            self.rec.op(K_QUEUE2, "close queue1".into(), || Ok(0));
            self.queues.truncate(1);
            return;
        }
        let qi = self.rng.below(2) as usize;
        let mut wk = [
            abi::GhostAgentWakeup {
                cpu: cpu_num(&mut self.rng, &self.w) as i32,
                prio: self.rng.pick(&[0, 0, 1]),
            },
            abi::GhostAgentWakeup {
                cpu: self.cpu as i32,
                prio: 0,
            },
        ];
        let mut cw = abi::GhostIocConfigQueueWakeup {
            qfd: self.queues[qi].file.as_raw_fd(),
            w: wk.as_mut_ptr() as u64,
            ninfo: self.rng.pick(&[0, 1, 2, 3]),
            flags: 0,
        };
        let desc = format!(
            "CONFIG_QUEUE_WAKEUP queue{qi} {:?} n {}",
            wk[0].cpu, cw.ninfo
        );
        self.rec.op(K_QUEUE2, desc, || {
            raw_ioctl(
                fd,
                abi::GHOST_IOC_CONFIG_QUEUE_WAKEUP,
                (&raw mut cw) as usize,
            )
        });
    }
}
