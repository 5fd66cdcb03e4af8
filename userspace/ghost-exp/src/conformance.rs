//! Conformance with ghOSt's own tests: the behaviours that ghost-userspace's
//! `agent_test` and `api_test` check, where the rest of the suite does not
//! assert them already (the mapping, test by test, is in
//! `Documentation/ghost-rs/conformance.rst`).
//!
//! Most tests use a *rig*: an enclave of CPUs `c0` (0) and `c1` (the last
//! CPU) and one agent process with two agent threads. The *commander* A,
//! agent of `c0`, owns the default queue (every task message), carries out
//! the test's commands (a commit, a ping, `SW_FREE`, ...) and, in *auto*
//! mode, runs the runnable tasks it knows on `c1`, one at a time, as a FIFO
//! agent would. The *sleeper* B, agent of `c1`, blocks in `ghost_run` and
//! counts what reaches its own queue: the CPU messages about `c1`. A only
//! ever commits to `c1`, so a ghost task never has a reason to run on `c0`.

use crate::figures;
use crate::mapped::{ioctl, open_rw, path};
use crate::scheduling::{attach, become_agent, current_cpu, hog, make_enclave, wait_for, Txn};
use crate::suite::{create_enclave, nr_cpu_ids, Test};
use crate::sys::{self, errno_name, Exit};
use ghost_abi as abi;
use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::mem::offset_of;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64};
use std::time::Duration;

/// The conformance tests, in the order they run.
pub const TESTS: &[Test] = &[
    Test {
        name: "conf_fail_to_become_agent",
        run: conf_fail_to_become_agent,
    },
    Test {
        name: "conf_agent_block_and_ping",
        run: conf_agent_block_and_ping,
    },
    Test {
        name: "conf_cpu_tick_on_off",
        run: conf_cpu_tick_on_off,
    },
    Test {
        name: "conf_cpu_not_idle",
        run: conf_cpu_not_idle,
    },
    Test {
        name: "conf_timer_expired_not_implemented",
        run: conf_timer_expired_not_implemented,
    },
    Test {
        name: "conf_run_dead_task",
        run: conf_run_dead_task,
    },
    Test {
        name: "conf_setscheduler_ghost_ebadf",
        run: conf_setscheduler_ghost_ebadf,
    },
    Test {
        name: "conf_affinity_race",
        run: conf_affinity_race,
    },
    Test {
        name: "conf_departed_race",
        run: conf_departed_race,
    },
    Test {
        name: "conf_priority_changed",
        run: conf_priority_changed,
    },
];

/// Shared by a test, its agents and its tasks (an anonymous shared page).
#[repr(C)]
pub(crate) struct Rig {
    /// Agents up: bit 0 the commander, bit 1 the sleeper; a setup error.
    up: AtomicU32,
    error: AtomicI32,
    /// The sleeper's thread id (for signals).
    pub(crate) b_tid: AtomicI32,
    /// A command to the commander: the test fills the arguments and bumps
    /// `seq`; the commander stores `result` (and `aux`) and sets `done`.
    seq: AtomicU32,
    done: AtomicU32,
    op: AtomicU32,
    pub(crate) cpu: AtomicI32,
    pub(crate) gtid: AtomicU64,
    run_flags: AtomicU32,
    /// Which task barrier a commit uses: [`FRESH`], [`FRESH_MINUS_1`] or
    /// [`GIVEN`] (`barrier`).
    mode: AtomicU32,
    pub(crate) barrier: AtomicU32,
    result: AtomicI32,
    pub(crate) aux: AtomicI32,
    /// Commander: bit 0 runs the runnable tasks on `c1`; bit 1 frees the
    /// status words of dead and departed tasks.
    pub(crate) auto: AtomicU32,
    /// Task messages the commander saw (`type - 64`).
    a_msgs: [AtomicU32; 16],
    /// Task (`type - 64`) and CPU (`type - 128`) messages the sleeper saw.
    b_task_msgs: [AtomicU32; 16],
    b_cpu_msgs: [AtomicU32; 8],
    /// The sleeper's returns from `ghost_run`: woken, `EINTR`, and the last
    /// other errno (not `ESTALE`).
    b_wakes: AtomicU32,
    b_eintr: AtomicU32,
    b_errno: AtomicI32,
    /// CPU_TICK: with a wrong `cpu` (or `is_agent` not 0/1); by `is_agent`.
    tick_bad: AtomicU32,
    tick_agent: [AtomicU32; 2],
    /// The last CPU_NOT_IDLE: `cpu`, `next_gtid`.
    not_idle_cpu: AtomicI32,
    not_idle_next: AtomicU64,
    /// The nice of the last TASK_PRIORITY_CHANGED and of the last TASK_NEW.
    nice_changed: AtomicI32,
    nice_new: AtomicI32,
    /// Outcomes of the commander's auto commits, by `state - INT_MIN`.
    outcomes: [AtomicU32; 16],
    /// Operations the agents tried (commits, ioctls, `ghost_run`).
    pub(crate) ops: AtomicU64,
    /// Task k: iterations, last CPU, stop; iterations a ghost task ran on
    /// `c0` (counted while `watch` is set); a nice value to set itself
    /// (100 + nice; 0: none).
    pub(crate) works: [AtomicU64; 2],
    pub(crate) cpus: [AtomicI32; 2],
    pub(crate) stop: [AtomicU32; 2],
    watch: AtomicU32,
    wrong_cpu: AtomicU32,
    pub(crate) renice: AtomicI32,
    /// Steps done by a child that flips or moves a task (races).
    steps: AtomicU32,
    /// Outcomes of standalone probes (see each test).
    pub(crate) out: [AtomicI32; 16],
    /// Commit flags of the commander's `OP_COMMIT` (0 by default).
    pub(crate) commit_flags: AtomicU32,
    /// The sleeper returns (its thread exits) when it wakes with this set.
    pub(crate) b_exit: AtomicU32,
    /// Task k renices itself with `sched_setattr(SCHED_GHOST)` instead of
    /// `setpriority` when this is set; the call's errno (0: success).
    pub(crate) renice_attr: AtomicU32,
    pub(crate) renice_result: AtomicI32,
    /// The commander's log of the messages about task `log_gtid`, a ring of
    /// the last ones: `log_n` messages were logged, message `i` at
    /// `log[i % 64]`, as `[type, seqnum, flags of its status word on
    /// receipt]`.
    pub(crate) log_gtid: AtomicU64,
    pub(crate) log_n: AtomicU32,
    pub(crate) log: [[AtomicU32; 3]; 64],
}

/// Commander commands (more in [`crate::abi91::command`], from 10 on).
const OP_COMMIT: u32 = 1;
pub(crate) const OP_PING: u32 = 2;
const OP_SW_FREE: u32 = 3;
const OP_DEFAULT_TO_B: u32 = 4;
const OP_TIMERFD: u32 = 5;
const OP_BARRIER: u32 = 6;

/// Task barriers of a commit.
pub(crate) const FRESH: u32 = 0;
const FRESH_MINUS_1: u32 = 1;
pub(crate) const GIVEN: u32 = 2;

/// The sleeper's queue (a descriptor of the agent process, shared by its
/// threads).
static B_QUEUE: AtomicI32 = AtomicI32::new(-1);

fn task_slot(ty: u16) -> Option<usize> {
    (64..80).contains(&ty).then(|| usize::from(ty - 64))
}

fn cpu_slot(ty: u16) -> Option<usize> {
    (128..136).contains(&ty).then(|| usize::from(ty - 128))
}

fn word_at(p: &[u8], at: usize) -> i32 {
    p.get(at..at + 4)
        .map_or(0, |b| i32::from_ne_bytes(b.try_into().unwrap_or_default()))
}

fn dword_at(p: &[u8], at: usize) -> u64 {
    p.get(at..at + 8)
        .map_or(0, |b| u64::from_ne_bytes(b.try_into().unwrap_or_default()))
}

/// The number of CPUs `pid` may use.
fn affinity_count(pid: i32) -> i32 {
    // SAFETY: a zeroed cpu_set_t filled in by the kernel.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(pid, std::mem::size_of_val(&set), &mut set) != 0 {
            return -1;
        }
        libc::CPU_COUNT(&set)
    }
}

/// `sched_setscheduler(pid, policy, 0)`: the errno on failure.
pub(crate) fn set_policy(pid: i32, policy: i32) -> Result<(), i32> {
    let p = libc::sched_param { sched_priority: 0 };
    // SAFETY: plain syscall with a valid parameter.
    if unsafe { libc::sched_setscheduler(pid, policy, &p) } == 0 {
        Ok(())
    } else {
        Err(sys::errno())
    }
}

/// The nice value of `pid`.
pub(crate) fn nice_of(pid: i32) -> i32 {
    // SAFETY: plain syscall.
    unsafe { libc::getpriority(libc::PRIO_PROCESS, pid as u32) }
}

/// Writes the command `cmd` to `f`: the errno, or 0.
pub(crate) fn write_errno(mut f: &std::fs::File, cmd: &str) -> i32 {
    match f.write_all(cmd.as_bytes()) {
        Ok(_) => 0,
        Err(e) => e.raw_os_error().unwrap_or(-1),
    }
}

/// A name for a transaction outcome, for messages.
pub(crate) fn state_name(s: i32) -> String {
    ghost::txn::TxnResult::from_state(s).map_or_else(|| format!("{s:#x}"), |r| r.name().into())
}

/// Joins enclave `id` (itself), then counts its iterations as task `k`;
/// sets its own nice on request (with `setpriority`, or with
/// `sched_setattr(SCHED_GHOST)` while `renice_attr` is set).
pub(crate) fn spinner(id: u64, r: &Rig, k: usize, c0: usize) -> i32 {
    if sys::write_once(&path(id, "tasks"), b"0").is_err() {
        return 3;
    }
    while r.stop[k].load(SeqCst) == 0 {
        r.works[k].fetch_add(1, SeqCst);
        let cpu = current_cpu();
        r.cpus[k].store(cpu, SeqCst);
        if cpu == c0 as i32
            && r.watch.load(SeqCst) != 0
            && sys::sched_policy(0) == abi::SCHED_GHOST
            && current_cpu() == c0 as i32
        {
            r.wrong_cpu.fetch_add(1, SeqCst);
        }
        let n = r.renice.swap(0, SeqCst);
        if n != 0 && r.renice_attr.load(SeqCst) != 0 {
            let res = crate::capabilities::setattr(0, abi::SCHED_GHOST, n - 100, 0);
            r.renice_result.store(res, SeqCst);
        } else if n != 0 {
            // SAFETY: plain syscall on ourselves.
            unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, n - 100) };
        }
    }
    0
}

/// The commander's view of the tasks.
#[derive(Default)]
struct Known {
    /// gtid → last seqnum (task barrier), status-word index.
    barriers: HashMap<i64, u32>,
    words: HashMap<i64, u32>,
    /// Runnable tasks not on a CPU, in FIFO order.
    runq: VecDeque<i64>,
}

impl Known {
    fn barrier(&self, gtid: i64) -> u32 {
        self.barriers.get(&gtid).copied().unwrap_or(0)
    }

    /// Reads every queued message of the commander.
    fn drain(&mut self, e: &crate::scheduling::Enclave, r: &Rig) {
        while let Some((ty, seq, p)) = e.pop() {
            if let Some(i) = task_slot(ty) {
                r.a_msgs[i].fetch_add(1, SeqCst);
            }
            if !(64..128).contains(&ty) || p.len() < 8 {
                continue;
            }
            let gtid = dword_at(&p, 0) as i64;
            self.barriers.insert(gtid, seq);
            if gtid == r.log_gtid.load(SeqCst) as i64 {
                // The word's flags as the message arrives (TASK_NEW names it).
                let off = offset_of!(abi::GhostMsgPayloadTaskNew, sw_info) + 4;
                let index = match ty {
                    abi::MSG_TASK_NEW => Some(word_at(&p, off) as u32),
                    _ => self.words.get(&gtid).copied(),
                };
                let flags = index.map_or(0, |i| e.sw_word(i).1);
                // The last `log.len()` messages.
                let n = r.log_n.load(SeqCst);
                if let Some(entry) = r.log.get(n as usize % r.log.len()) {
                    for (slot, v) in entry.iter().zip([u32::from(ty), seq, flags]) {
                        slot.store(v, SeqCst);
                    }
                    r.log_n.store(n.wrapping_add(1), SeqCst);
                }
            }
            match ty {
                abi::MSG_TASK_NEW => {
                    let off = offset_of!(abi::GhostMsgPayloadTaskNew, sw_info) + 4;
                    self.words.insert(gtid, word_at(&p, off) as u32);
                    let nice = offset_of!(abi::GhostMsgPayloadTaskNew, nice);
                    r.nice_new.store(word_at(&p, nice), SeqCst);
                    let run = offset_of!(abi::GhostMsgPayloadTaskNew, runnable);
                    if p.get(run).is_some_and(|&b| b != 0) && !self.runq.contains(&gtid) {
                        self.runq.push_back(gtid);
                    }
                }
                // A latch failure: the latch is gone, the task waits for a
                // commit again.
                abi::MSG_TASK_WAKEUP
                | abi::MSG_TASK_PREEMPT
                | abi::MSG_TASK_YIELD
                | abi::MSG_TASK_LATCH_FAILURE
                    if !self.runq.contains(&gtid) =>
                {
                    self.runq.push_back(gtid)
                }
                abi::MSG_TASK_BLOCKED => self.runq.retain(|&g| g != gtid),
                abi::MSG_TASK_DEAD | abi::MSG_TASK_DEPARTED => {
                    self.runq.retain(|&g| g != gtid);
                    if r.auto.load(SeqCst) & 2 != 0 {
                        self.free(e, gtid, r);
                    }
                }
                abi::MSG_TASK_PRIORITY_CHANGED => {
                    let off = offset_of!(abi::GhostMsgPayloadTaskPriorityChanged, nice);
                    r.nice_changed.store(word_at(&p, off), SeqCst);
                }
                _ => {}
            }
        }
    }

    /// `SW_FREE` of `gtid`'s status word: 0 or the errno.
    fn free(&mut self, e: &crate::scheduling::Enclave, gtid: i64, r: &Rig) -> i32 {
        let Some(index) = self.words.remove(&gtid) else {
            return libc::ENOENT;
        };
        r.ops.fetch_add(1, SeqCst);
        let mut info = abi::GhostSwInfo { id: 0, index };
        ioctl(&e.ctl, abi::GHOST_IOC_SW_FREE, (&raw mut info).cast()).map_or_else(|x| x, |_| 0)
    }

    /// Commits `gtid` on `cpu` with `task_barrier` and `commit_flags`: the
    /// final state, or the negated errno of the ioctl.
    #[allow(clippy::too_many_arguments)]
    fn commit(
        &self,
        e: &crate::scheduling::Enclave,
        cpu: usize,
        gtid: i64,
        task_barrier: u32,
        run_flags: u16,
        commit_flags: u8,
        r: &Rig,
    ) -> i32 {
        r.ops.fetch_add(1, SeqCst);
        let t = Txn {
            gtid,
            run_flags,
            commit_flags,
            agent_barrier: 0,
            task_barrier,
            version: 0,
        };
        e.fill(cpu, &t);
        match e.commit(&[cpu], false) {
            Ok(_) => e.txn_state(cpu),
            Err(x) => -x,
        }
    }

    /// Auto mode: commits the first runnable task on `c1`.
    fn run_next(&mut self, e: &crate::scheduling::Enclave, c1: usize, r: &Rig) {
        let Some(gtid) = self.runq.front().copied() else {
            return;
        };
        let s = self.commit(e, c1, gtid, self.barrier(gtid), 0, 0, r);
        if let Some(o) = r.outcomes.get(s.wrapping_sub(i32::MIN) as usize) {
            o.fetch_add(1, SeqCst);
        }
        if s == abi::GHOST_TXN_COMPLETE
            || s == abi::GHOST_TXN_TARGET_NOT_FOUND
            || s == abi::GHOST_TXN_TARGET_NOT_RUNNABLE
            || s == abi::GHOST_TXN_INVALID_TARGET
        {
            self.runq.pop_front();
        }
    }

    /// Carries out the test's command.
    fn exec(&mut self, e: &crate::scheduling::Enclave, r: &Rig) -> i32 {
        let cpu = r.cpu.load(SeqCst);
        let gtid = r.gtid.load(SeqCst) as i64;
        match r.op.load(SeqCst) {
            OP_COMMIT => {
                let b = match r.mode.load(SeqCst) {
                    FRESH => self.barrier(gtid),
                    FRESH_MINUS_1 => self.barrier(gtid).wrapping_sub(1),
                    _ => r.barrier.load(SeqCst),
                };
                r.aux.store(b as i32, SeqCst);
                let flags = r.run_flags.load(SeqCst) as u16;
                let commit_flags = r.commit_flags.load(SeqCst) as u8;
                self.commit(e, cpu as usize, gtid, b, flags, commit_flags, r)
            }
            OP_PING => {
                r.ops.fetch_add(1, SeqCst);
                let mut run = abi::GhostIocRun {
                    gtid: abi::GHOST_AGENT_GTID,
                    run_cpu: cpu,
                    ..Default::default()
                };
                ioctl(&e.ctl, abi::GHOST_IOC_RUN, (&raw mut run).cast()).map_or_else(|x| x, |_| 0)
            }
            OP_SW_FREE => self.free(e, gtid, r),
            OP_DEFAULT_TO_B => {
                r.ops.fetch_add(1, SeqCst);
                let mut dq = abi::GhostIocSetDefaultQueue {
                    fd: B_QUEUE.load(SeqCst),
                };
                ioctl(
                    &e.ctl,
                    abi::GHOST_IOC_SET_DEFAULT_QUEUE,
                    (&raw mut dq).cast(),
                )
                .map_or_else(|x| x, |_| 0)
            }
            OP_TIMERFD => timerfd_settime(e, cpu, r),
            OP_BARRIER => self.barrier(gtid) as i32,
            op => crate::abi91::command(op, e, r),
        }
    }
}

/// `GHOST_IOC_TIMERFD_SETTIME` of a new timerfd (10 ms, a ghost timer for
/// the agent of `cpu`): the errno (0 if it worked); `aux` is 1 if the
/// timerfd is armed afterwards.
fn timerfd_settime(e: &crate::scheduling::Enclave, cpu: i32, r: &Rig) -> i32 {
    // SAFETY: plain syscall.
    let fd = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_CLOEXEC) };
    if fd < 0 {
        return -2;
    }
    let mut spec: libc::itimerspec = libc::itimerspec {
        it_interval: libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
        it_value: libc::timespec {
            tv_sec: 0,
            tv_nsec: 10_000_000,
        },
    };
    let mut a = abi::GhostIocTimerfdSettime {
        timerfd: fd,
        flags: 0,
        in_tmr: (&raw mut spec) as u64,
        out_tmr: 0,
        timerfd_ghost: abi::TimerfdGhost {
            cpu,
            flags: abi::TIMERFD_GHOST_ENABLED,
            type_: 1,
            cookie: 0x1234,
        },
    };
    r.ops.fetch_add(1, SeqCst);
    let res = ioctl(&e.ctl, abi::GHOST_IOC_TIMERFD_SETTIME, (&raw mut a).cast())
        .map_or_else(|x| x, |_| 0);
    // SAFETY: a zeroed itimerspec filled in by the kernel.
    let mut now: libc::itimerspec = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is our timerfd; `now` is writable.
    let armed = unsafe { libc::timerfd_gettime(fd, &mut now) } == 0
        && (now.it_value.tv_sec != 0 || now.it_value.tv_nsec != 0);
    r.aux.store(i32::from(armed), SeqCst);
    // SAFETY: closing our own descriptor.
    unsafe { libc::close(fd) };
    res
}

extern "C" fn on_signal(_: i32) {}

/// The agent process of a rig: the sleeper thread, then the commander.
fn agents_main(id: u64, c0: usize, c1: usize, r: &'static Rig) -> i32 {
    // A signal ends the sleeper's ghost_run (with success: ghOSt's library
    // accepts no EINTR) and is ignored.
    // SAFETY: installing a handler that does nothing; no SA_RESTART.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as extern "C" fn(i32) as usize;
        libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut());
    }
    // The sleeper first: the commander's queue becomes the default one.
    std::thread::spawn(move || sleeper(id, c1, r));
    if !wait_for(10_000, || {
        r.up.load(SeqCst) & 2 != 0 || r.error.load(SeqCst) != 0
    }) {
        r.error.store(-20, SeqCst);
    }
    if r.error.load(SeqCst) != 0 {
        return 1;
    }
    commander(id, c0, c1, r)
}

/// The sleeper: agent of `c1`; blocks in `ghost_run` and counts what its
/// queue gets.
fn sleeper(id: u64, c1: usize, r: &Rig) {
    let Ok(e) = attach(id, c1) else {
        r.error.store(-21, SeqCst);
        return;
    };
    B_QUEUE.store(e.queue.as_raw_fd(), SeqCst);
    let me = match become_agent(&e, c1) {
        Ok(me) => me,
        Err(x) => {
            r.error.store(-1000 - x, SeqCst);
            return;
        }
    };
    // SAFETY: plain syscall.
    r.b_tid.store(unsafe { libc::gettid() }, SeqCst);
    r.up.fetch_or(2, SeqCst);
    loop {
        if r.b_exit.load(SeqCst) != 0 {
            // The thread exits; the process goes on.
            return;
        }
        let b = e.sw_barrier(me);
        while let Some((ty, _, p)) = e.pop() {
            if let Some(i) = task_slot(ty) {
                r.b_task_msgs[i].fetch_add(1, SeqCst);
            }
            if let Some(i) = cpu_slot(ty) {
                r.b_cpu_msgs[i].fetch_add(1, SeqCst);
            }
            match ty {
                abi::MSG_CPU_TICK => {
                    let cpu = word_at(&p, offset_of!(abi::GhostMsgPayloadCpuTick, cpu));
                    let ag = word_at(&p, offset_of!(abi::GhostMsgPayloadCpuTick, is_agent));
                    match r.tick_agent.get(ag as usize) {
                        Some(n) if cpu == c1 as i32 => {
                            n.fetch_add(1, SeqCst);
                        }
                        _ => {
                            r.tick_bad.fetch_add(1, SeqCst);
                        }
                    }
                }
                abi::MSG_CPU_NOT_IDLE => {
                    let cpu = offset_of!(abi::GhostMsgPayloadCpuNotIdle, cpu);
                    let next = offset_of!(abi::GhostMsgPayloadCpuNotIdle, next_gtid);
                    r.not_idle_cpu.store(word_at(&p, cpu), SeqCst);
                    r.not_idle_next.store(dword_at(&p, next), SeqCst);
                }
                _ => {}
            }
        }
        r.ops.fetch_add(1, SeqCst);
        match e.block(b, c1) {
            Ok(()) => {
                r.b_wakes.fetch_add(1, SeqCst);
            }
            Err(libc::EINTR) => {
                r.b_eintr.fetch_add(1, SeqCst);
            }
            Err(libc::ESTALE) => {}
            Err(x) => r.b_errno.store(x, SeqCst),
        }
    }
}

/// The commander: agent of `c0`; carries out commands and, in auto mode,
/// runs the tasks on `c1`.
fn commander(id: u64, c0: usize, c1: usize, r: &Rig) -> i32 {
    let Ok(e) = attach(id, c0) else {
        r.error.store(-23, SeqCst);
        return 1;
    };
    if let Err(x) = become_agent(&e, c0) {
        r.error.store(-2000 - x, SeqCst);
        return 1;
    }
    r.up.fetch_or(1, SeqCst);
    let mut k = Known::default();
    let mut seen = 0;
    loop {
        k.drain(&e, r);
        let s = r.seq.load(SeqCst);
        if s != seen {
            let res = k.exec(&e, r);
            r.result.store(res, SeqCst);
            seen = s;
            r.done.store(s, SeqCst);
        }
        if r.auto.load(SeqCst) & 1 != 0 {
            k.run_next(&e, c1, r);
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

/// A running rig.
pub(crate) struct RigUp {
    pub(crate) r: &'static Rig,
    pub(crate) id: u64,
    pub(crate) c0: usize,
    pub(crate) c1: usize,
    pub(crate) agents: i32,
}

/// Starts a rig on enclave `id`.
pub(crate) fn rig(id: u64) -> Result<RigUp, String> {
    sys::ensure_ghostfs()?;
    let ncpus = nr_cpu_ids()?;
    ensure!(ncpus >= 2, "needs 2 CPUs, have {ncpus}");
    let (c0, c1) = (0, ncpus - 1);
    let r: &'static Rig = sys::shared_page()?;
    make_enclave(id, c1)?;
    sys::write_once(&path(id, "cpulist"), format!("{c0},{c1}").as_bytes())
        .map_err(|e| format!("cpulist: {}", errno_name(e)))?;
    let agents = sys::fork_child(move || agents_main(id, c0, c1, r))?;
    let up = wait_for(10_000, || {
        r.up.load(SeqCst) == 3 || r.error.load(SeqCst) != 0
    });
    let err = r.error.load(SeqCst);
    ensure!(up && err == 0, "agents did not come up (error {err})");
    Ok(RigUp {
        r,
        id,
        c0,
        c1,
        agents,
    })
}

impl RigUp {
    /// Sends a command to the commander and waits for its result.
    pub(crate) fn command(
        &self,
        op: u32,
        cpu: usize,
        gtid: i64,
        run_flags: u16,
        mode: u32,
    ) -> Result<i32, String> {
        let r = self.r;
        r.op.store(op, SeqCst);
        r.cpu.store(cpu as i32, SeqCst);
        r.gtid.store(gtid as u64, SeqCst);
        r.run_flags.store(u32::from(run_flags), SeqCst);
        r.mode.store(mode, SeqCst);
        let s = r.seq.fetch_add(1, SeqCst) + 1;
        ensure!(
            wait_for(5000, || r.done.load(SeqCst) == s),
            "the commander did not carry out command {op}"
        );
        Ok(r.result.load(SeqCst))
    }

    /// A commit by the commander on `c1` of `gtid` with a barrier of `mode`.
    pub(crate) fn commit(&self, gtid: i64, run_flags: u16, mode: u32) -> Result<i32, String> {
        self.command(OP_COMMIT, self.c1, gtid, run_flags, mode)
    }

    /// Commits `gtid` with the freshest barrier until the outcome is not
    /// `TARGET_STALE` (a message the commander had not read yet) or
    /// `CPU_UNAVAIL` (another class had c1 for a moment), at most 200 times.
    pub(crate) fn commit_settled(&self, gtid: i64) -> Result<i32, String> {
        let mut s = self.commit(gtid, 0, FRESH)?;
        for _ in 0..200 {
            if s != abi::GHOST_TXN_TARGET_STALE && s != abi::GHOST_TXN_CPU_UNAVAIL {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
            s = self.commit(gtid, 0, FRESH)?;
        }
        Ok(s)
    }

    /// Commits `gtid` on `c1` with `run_flags` and a fresh barrier until
    /// the outcome is not `CPU_UNAVAIL` (a kernel thread or another CFS
    /// task had c1 for a moment), at most 200 times.
    fn commit_when_free(&self, gtid: i64, run_flags: u16) -> Result<i32, String> {
        let mut s = self.commit(gtid, run_flags, FRESH)?;
        for _ in 0..200 {
            if s != abi::GHOST_TXN_CPU_UNAVAIL {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
            s = self.commit(gtid, run_flags, FRESH)?;
        }
        Ok(s)
    }

    pub(crate) fn a_count(&self, ty: u16) -> u32 {
        self.r.a_msgs[usize::from(ty - 64)].load(SeqCst)
    }

    /// After `how` changed a task's nice to `nice` (when the commander had
    /// counted `p0` TASK_PRIORITY_CHANGED): exactly one more comes, with
    /// that nice.
    pub(crate) fn one_priority_change(&self, p0: u32, nice: i32, how: &str) -> Result<(), String> {
        let prio = || self.a_count(abi::MSG_TASK_PRIORITY_CHANGED);
        ensure!(
            wait_for(10_000, || prio() > p0),
            "no TASK_PRIORITY_CHANGED after {how}"
        );
        std::thread::sleep(Duration::from_millis(100));
        ensure!(
            prio() == p0 + 1,
            "{} TASK_PRIORITY_CHANGED after {how}",
            prio() - p0
        );
        let seen = self.r.nice_changed.load(SeqCst);
        ensure!(
            seen == nice,
            "TASK_PRIORITY_CHANGED nice {seen} after {how}, want {nice}"
        );
        Ok(())
    }

    /// Task `k` makes progress (more than 200 iterations within 10 s).
    pub(crate) fn progresses(&self, k: usize) -> bool {
        let at = self.r.works[k].load(SeqCst);
        wait_for(10_000, || self.r.works[k].load(SeqCst) > at + 200)
    }

    /// Outcomes of the auto commits that are not in `allowed`, by name.
    pub(crate) fn unexpected_outcomes(&self, allowed: &[i32]) -> Vec<String> {
        (0..16)
            .filter_map(|i| {
                let n = self.r.outcomes[i].load(SeqCst);
                let s = i32::MIN.wrapping_add(i as i32);
                (n != 0 && !allowed.contains(&s)).then(|| format!("{} x{n}", state_name(s)))
            })
            .collect()
    }

    /// Destroys the enclave: the agents die (SIGKILL), the live `tasks` go
    /// back to CFS and keep running; then they stop and exit.
    pub(crate) fn finish(self, tasks: &[(usize, i32)]) -> Result<(), String> {
        let r = self.r;
        figures::ops(r.ops.swap(0, SeqCst));
        sys::write_once(&path(self.id, "ctl"), b"destroy")
            .map_err(|x| format!("destroy: {}", errno_name(x)))?;
        let exit = sys::wait_child(self.agents)?;
        ensure!(exit == Exit::Signal(libc::SIGKILL), "agents ended {exit:?}");
        for &(k, pid) in tasks {
            let policy = sys::sched_policy(pid);
            ensure!(
                policy == libc::SCHED_OTHER,
                "task {k} policy after destroy: {policy}"
            );
            ensure!(self.progresses(k), "task {k} stuck after destroy");
            r.stop[k].store(1, SeqCst);
            let exit = sys::wait_child(pid)?;
            ensure!(exit == Exit::Code(0), "task {k} ended {exit:?}");
            figures::returned(1);
        }
        Ok(())
    }
}

/// The outcomes `o` that differ from `want` (`(index, value, what it
/// is)`), one line each.
pub(crate) fn mismatches(o: &[i32], want: &[(usize, i32, &str)]) -> Vec<String> {
    want.iter()
        .filter(|(i, v, _)| o.get(*i) != Some(v))
        .map(|(i, v, what)| {
            let got = o
                .get(*i)
                .map_or_else(|| "nothing".into(), |g| g.to_string());
            format!("{what}: {got}, want {v}")
        })
        .collect()
}

/// agent_test FailToBecomeAgent: `become agent` refused with the ABI's
/// errno for a CPU outside the enclave (ENODEV), no default queue (ENXIO),
/// a queue of another enclave (ENXIO), an fd that is no queue (EBADF), a
/// thread without CAP_SYS_NICE (EPERM), and a CPU that has an agent
/// (EBUSY: another thread, the agent itself, another process); a refused
/// thread keeps its policy and CPUs.
fn conf_fail_to_become_agent() -> Result<(), String> {
    sys::ensure_ghostfs()?;
    let ncpus = nr_cpu_ids()?;
    ensure!(ncpus >= 2, "needs 2 CPUs, have {ncpus}");
    let (c0, c1) = (0, ncpus - 1);
    let (id, other) = (73, 74);
    let r: &'static Rig = sys::shared_page()?;
    for o in &r.out {
        o.store(-1, SeqCst);
    }
    create_enclave(&format!("create {id} 91"))?;
    sys::write_once(&path(id, "cpulist"), format!("{c1}").as_bytes())
        .map_err(|e| format!("cpulist: {}", errno_name(e)))?;
    sys::write_once(&path(id, "ctl"), b"create sw_region 0 0")
        .map_err(|e| format!("sw_region: {}", errno_name(e)))?;
    create_enclave(&format!("create {other} 91"))?;
    let agent = sys::fork_child(move || {
        let out = |i: usize, v: i32| r.out[i].store(v, SeqCst);
        let Ok(ctl) = open_rw(&path(id, "ctl")) else {
            return 1;
        };
        // No queue at all yet.
        out(0, write_errno(&ctl, &format!("become agent {c1} -1")));
        let Ok(e) = attach(id, c1) else {
            return 2;
        };
        let q = e.queue.as_raw_fd();
        out(1, write_errno(&ctl, &format!("become agent {c0} {q}")));
        out(
            2,
            write_errno(&ctl, &format!("become agent {c1} {}", ctl.as_raw_fd())),
        );
        let Ok(octl) = open_rw(&path(other, "ctl")) else {
            return 3;
        };
        let Ok((oq, _)) = crate::mapped::create_queue(&octl, 64, -1, 0) else {
            return 4;
        };
        out(
            3,
            write_errno(&ctl, &format!("become agent {c1} {}", oq.as_raw_fd())),
        );
        out(4, sys::sched_policy(0));
        out(5, affinity_count(0));
        // A thread without CAP_SYS_NICE (capabilities are per thread).
        let cmd = format!("become agent {c1} {q}");
        let ctl2 = &ctl;
        let eperm = std::thread::scope(|s| {
            s.spawn(|| {
                if sys::drop_caps(&[sys::CAP_SYS_NICE]).is_err() {
                    return -2;
                }
                write_errno(ctl2, &cmd)
            })
            .join()
            .unwrap_or(-3)
        });
        out(6, eperm);
        // Now a real agent.
        out(7, become_agent(&e, c1).map_or_else(|x| x, |_| 0));
        let (busy, policy) = std::thread::scope(|s| {
            s.spawn(|| (write_errno(ctl2, &cmd), sys::sched_policy(0)))
                .join()
                .unwrap_or((-3, -3))
        });
        out(8, busy);
        out(9, policy);
        out(10, write_errno(&ctl, &cmd));
        r.up.store(1, SeqCst);
        loop {
            // SAFETY: plain syscall; the test's destroy kills us.
            unsafe { libc::pause() };
        }
    })?;
    ensure!(
        wait_for(10_000, || r.up.load(SeqCst) != 0),
        "the agent process did not finish its probes: {:?}",
        r.out.iter().map(|o| o.load(SeqCst)).collect::<Vec<_>>()
    );
    // Another process, while the CPU has an agent.
    let second = sys::fork_child(move || {
        let Ok(e) = attach(id, c1) else {
            return 200;
        };
        write_errno(
            &e.ctl,
            &format!("become agent {c1} {}", e.queue.as_raw_fd()),
        )
    })?;
    let second = sys::wait_child(second)?;
    figures::ops(13);
    let o: Vec<i32> = r.out.iter().map(|o| o.load(SeqCst)).collect();
    sys::write_once(&path(id, "ctl"), b"destroy")
        .map_err(|x| format!("destroy: {}", errno_name(x)))?;
    sys::write_once(&path(other, "ctl"), b"destroy")
        .map_err(|x| format!("destroy enclave_{other}: {}", errno_name(x)))?;
    let exit = sys::wait_child(agent)?;
    let want = [
        (0, libc::ENXIO, "no queue"),
        (1, libc::ENODEV, "a CPU outside the enclave"),
        (2, libc::EBADF, "an fd that is no queue"),
        (3, libc::ENXIO, "a queue of another enclave"),
        (4, libc::SCHED_OTHER, "policy after the refusals"),
        (5, ncpus as i32, "CPUs allowed after the refusals"),
        (6, libc::EPERM, "a thread without CAP_SYS_NICE"),
        (7, 0, "becoming the agent"),
        (8, libc::EBUSY, "another thread, CPU with an agent"),
        (9, libc::SCHED_OTHER, "policy of the refused thread"),
        (10, libc::EBUSY, "the agent again"),
    ];
    let wrong = mismatches(&o, &want);
    ensure!(wrong.is_empty(), "{}", wrong.join("; "));
    ensure!(
        second == Exit::Code(libc::EBUSY),
        "another process, CPU with an agent: {second:?}, want exit {} (EBUSY)",
        libc::EBUSY
    );
    ensure!(exit == Exit::Signal(libc::SIGKILL), "agent ended {exit:?}");
    Ok(())
}

/// agent_test AgentBlock and Ping: an agent blocked in `ghost_run` stays
/// blocked while nothing concerns it; a ping (`GHOST_IOC_RUN` with
/// `GHOST_AGENT_GTID`, from an agent of the same process) wakes it, every
/// time; a message on its queue (TASK_NEW) wakes it; a signal wakes it
/// too, with success (ghOSt: never `EINTR`, which its library treats as
/// fatal); then it blocks again.
fn conf_agent_block_and_ping() -> Result<(), String> {
    let rig = rig(72)?;
    let r = rig.r;
    let wakes = || r.b_wakes.load(SeqCst);
    let quiet = |what: &str| -> Result<(), String> {
        std::thread::sleep(Duration::from_millis(100));
        let w = wakes();
        std::thread::sleep(Duration::from_millis(400));
        ensure!(
            wakes() == w,
            "the blocked agent woke {} times {what} with nothing to wake it",
            wakes() - w
        );
        Ok(())
    };
    quiet("at first")?;
    for i in 0..5 {
        let w = wakes();
        let res = rig.command(OP_PING, rig.c1, 0, 0, 0)?;
        ensure!(res == 0, "ping {i}: {}", errno_name(res));
        ensure!(
            wait_for(2000, || wakes() > w),
            "ping {i} did not wake the blocked agent"
        );
    }
    // Task messages now go to the sleeper's queue: a task joining wakes it.
    let res = rig.command(OP_DEFAULT_TO_B, 0, 0, 0, 0)?;
    ensure!(res == 0, "SET_DEFAULT_QUEUE: {}", errno_name(res));
    quiet("after the pings")?;
    let w = wakes();
    let task = sys::fork_child(|| {
        std::thread::sleep(Duration::from_secs(60));
        0
    })?;
    sys::write_once(&path(rig.id, "tasks"), task.to_string().as_bytes())
        .map_err(|x| format!("join: {}", errno_name(x)))?;
    figures::entered(1);
    let new = || r.b_task_msgs[usize::from(abi::MSG_TASK_NEW - 64)].load(SeqCst);
    ensure!(
        wait_for(2000, || new() == 1 && wakes() > w),
        "a TASK_NEW on its queue did not wake the blocked agent ({} TASK_NEW, {} wakes)",
        new(),
        wakes() - w
    );
    // A signal: ghost_run returns 0 (the handler runs), never EINTR.
    let w = wakes();
    // SAFETY: a signal to a thread of our own child.
    let sent = unsafe {
        libc::syscall(
            libc::SYS_tgkill,
            rig.agents,
            r.b_tid.load(SeqCst),
            libc::SIGUSR1,
        )
    };
    ensure!(sent == 0, "tgkill: {}", errno_name(sys::errno()));
    ensure!(
        wait_for(2000, || wakes() > w),
        "a signal did not end the blocked ghost_run"
    );
    quiet("after the signal")?;
    let eintr = r.b_eintr.load(SeqCst);
    ensure!(eintr == 0, "ghost_run failed with EINTR {eintr} times");
    let err = r.b_errno.load(SeqCst);
    ensure!(err == 0, "ghost_run failed with {}", errno_name(err));
    rig.finish(&[])?;
    // The sleeping task is back in CFS: it can be killed.
    let policy = sys::sched_policy(task);
    ensure!(
        policy == libc::SCHED_OTHER,
        "task policy after destroy: {policy}"
    );
    // SAFETY: plain syscall on our own child.
    unsafe { libc::kill(task, libc::SIGKILL) };
    sys::wait_child(task)?;
    figures::returned(1);
    Ok(())
}

/// agent_test CpuTick: with `deliver_ticks` set, the agent of a busy CPU
/// gets CPU_TICK about its CPU (`is_agent` 0 while a task ran); with it
/// clear (the default, and again after), none.
fn conf_cpu_tick_on_off() -> Result<(), String> {
    let rig = rig(70)?;
    let r = rig.r;
    let (id, c0) = (rig.id, rig.c0);
    r.auto.store(3, SeqCst);
    let t = sys::fork_child(move || spinner(id, r, 0, c0))?;
    figures::entered(1);
    ensure!(rig.progresses(0), "the task did not run");
    let ticks = || r.b_cpu_msgs[usize::from(abi::MSG_CPU_TICK - 128)].load(SeqCst);
    let off = |what: &str| -> Result<(), String> {
        std::thread::sleep(Duration::from_millis(100));
        let n = ticks();
        let at = r.works[0].load(SeqCst);
        std::thread::sleep(Duration::from_millis(500));
        ensure!(r.works[0].load(SeqCst) > at, "the task did not run {what}");
        ensure!(
            ticks() == n,
            "{} CPU_TICK {what}, with deliver_ticks 0",
            ticks() - n
        );
        Ok(())
    };
    off("before deliver_ticks")?;
    ensure!(ticks() == 0, "{} CPU_TICK before deliver_ticks", ticks());
    let set = |v: &[u8]| {
        sys::write_once(&path(id, "deliver_ticks"), v)
            .map_err(|x| format!("deliver_ticks: {}", errno_name(x)))
    };
    set(b"1")?;
    ensure!(
        wait_for(10_000, || ticks() >= 25),
        "{} CPU_TICK in 10 s with deliver_ticks 1",
        ticks()
    );
    set(b"0")?;
    off("after deliver_ticks was cleared")?;
    let bad = r.tick_bad.load(SeqCst);
    ensure!(bad == 0, "{bad} CPU_TICK with a wrong cpu or is_agent");
    let with_task = r.tick_agent[0].load(SeqCst);
    ensure!(
        with_task >= 1,
        "no CPU_TICK with is_agent 0 (the task had the CPU)"
    );
    rig.finish(&[(0, t)])
}

/// agent_test MsgCpuNotIdle and api_test NeedCpuNotIdle: a CPU committed
/// idle with NEED_CPU_NOT_IDLE reports, once, the first task of another
/// class that takes it (CPU_NOT_IDLE with the CPU and that task's gtid);
/// without the flag, nothing.
fn conf_cpu_not_idle() -> Result<(), String> {
    let rig = rig(71)?;
    // The test's own process stays off c1 (it is a task of another class).
    sys::set_affinity(0, &[rig.c0]).map_err(|x| format!("affinity: {}", errno_name(x)))?;
    let res = cpu_not_idle(&rig);
    let all: Vec<usize> = (0..=rig.c1).collect();
    let _ = sys::set_affinity(0, &all);
    res?;
    rig.finish(&[])
}

fn cpu_not_idle(rig: &RigUp) -> Result<(), String> {
    let r = rig.r;
    let c1 = rig.c1;
    let count = || r.b_cpu_msgs[usize::from(abi::MSG_CPU_NOT_IDLE - 128)].load(SeqCst);
    let cfs = || -> Result<i64, String> {
        let h = hog(c1, 30, false)?;
        let gtid = sys::gtid_of(h);
        let exit = sys::wait_child(h)?;
        ensure!(exit == Exit::Code(0), "CFS task ended {exit:?}");
        Ok(gtid)
    };
    for round in 0..3 {
        let s = rig.commit_when_free(abi::GHOST_IDLE_GTID, 0)?;
        ensure!(
            s == abi::GHOST_TXN_COMPLETE,
            "idle commit {round}: {}",
            state_name(s)
        );
        std::thread::sleep(Duration::from_millis(20));
        cfs()?;
    }
    std::thread::sleep(Duration::from_millis(200));
    ensure!(
        count() == 0,
        "{} CPU_NOT_IDLE without NEED_CPU_NOT_IDLE",
        count()
    );
    let mut matched = 0;
    for round in 0..5 {
        let before = count();
        let s = rig.commit_when_free(abi::GHOST_IDLE_GTID, abi::NEED_CPU_NOT_IDLE)?;
        ensure!(
            s == abi::GHOST_TXN_COMPLETE,
            "idle commit with NEED_CPU_NOT_IDLE {round}: {}",
            state_name(s)
        );
        std::thread::sleep(Duration::from_millis(20));
        let gtid = cfs()?;
        ensure!(
            wait_for(2000, || count() > before),
            "round {round}: no CPU_NOT_IDLE once a CFS task took the CPU"
        );
        // Another CFS task: the request was for one report.
        cfs()?;
        std::thread::sleep(Duration::from_millis(100));
        ensure!(
            count() == before + 1,
            "round {round}: {} CPU_NOT_IDLE for one request",
            count() - before
        );
        let cpu = r.not_idle_cpu.load(SeqCst);
        ensure!(cpu == c1 as i32, "CPU_NOT_IDLE for CPU {cpu}, want {c1}");
        let next = r.not_idle_next.load(SeqCst) as i64;
        ensure!(next > 0, "CPU_NOT_IDLE next_gtid {next}");
        // (A kernel thread may take the CPU first.)
        if next == gtid {
            matched += 1;
        }
    }
    ensure!(
        matched >= 1,
        "CPU_NOT_IDLE never named the CFS task that took the CPU"
    );
    Ok(())
}

/// agent_test MsgTimerExpired, as ghost-rs documents it: ghost timerfds are
/// not implemented: `GHOST_IOC_TIMERFD_SETTIME` with a real timerfd and a
/// ghost part fails with EOPNOTSUPP (from an agent and from any process),
/// arms nothing, and no CPU_TIMER_EXPIRED comes.
fn conf_timer_expired_not_implemented() -> Result<(), String> {
    let rig = rig(75)?;
    let r = rig.r;
    let res = rig.command(OP_TIMERFD, rig.c1, 0, 0, 0)?;
    ensure!(
        res == libc::EOPNOTSUPP,
        "TIMERFD_SETTIME from an agent: {}, want EOPNOTSUPP",
        errno_name(res)
    );
    ensure!(
        r.aux.load(SeqCst) == 0,
        "the refused TIMERFD_SETTIME armed the timerfd"
    );
    // Not an agent: the same.
    let ctl = open_rw(&path(rig.id, "ctl"))?;
    let mut a = abi::GhostIocTimerfdSettime::default();
    let x = ioctl(&ctl, abi::GHOST_IOC_TIMERFD_SETTIME, (&raw mut a).cast());
    ensure!(
        x == Err(libc::EOPNOTSUPP),
        "TIMERFD_SETTIME from a non-agent: {x:?}"
    );
    figures::ops(1);
    std::thread::sleep(Duration::from_millis(200));
    let n = r.b_cpu_msgs[usize::from(abi::MSG_CPU_TIMER_EXPIRED - 128)].load(SeqCst);
    ensure!(n == 0, "{n} CPU_TIMER_EXPIRED");
    drop(ctl);
    rig.finish(&[])
}

/// api_test RunDeadTask: once a task is dead (TASK_DEAD), a commit of it
/// fails (TARGET_NOT_FOUND or TARGET_STALE), with its last barrier or an
/// older one, before and after it is reaped and its status word freed; the
/// CPU still runs other tasks.
fn conf_run_dead_task() -> Result<(), String> {
    let rig = rig(76)?;
    let r = rig.r;
    let (id, c0) = (rig.id, rig.c0);
    r.auto.store(1, SeqCst);
    let t = sys::fork_child(move || spinner(id, r, 0, c0))?;
    figures::entered(1);
    ensure!(rig.progresses(0), "the task did not run");
    let gtid = sys::gtid_of(t);
    ensure!(gtid > 0, "no gtid for the task");
    r.stop[0].store(1, SeqCst);
    ensure!(
        wait_for(5000, || rig.a_count(abi::MSG_TASK_DEAD) == 1),
        "no TASK_DEAD when the task exited"
    );
    let dead = [abi::GHOST_TXN_TARGET_NOT_FOUND, abi::GHOST_TXN_TARGET_STALE];
    let mut got = Vec::new();
    got.push(("a zombie, its last barrier", rig.commit(gtid, 0, FRESH)?));
    got.push((
        "a zombie, an older barrier",
        rig.commit(gtid, 0, FRESH_MINUS_1)?,
    ));
    let exit = sys::wait_child(t)?;
    ensure!(exit == Exit::Code(0), "task ended {exit:?}");
    figures::returned(1);
    got.push(("reaped, its last barrier", rig.commit(gtid, 0, FRESH)?));
    let freed = rig.command(OP_SW_FREE, 0, gtid, 0, 0)?;
    ensure!(
        freed == 0,
        "SW_FREE of the dead task: {}",
        errno_name(freed)
    );
    got.push(("reaped and freed", rig.commit(gtid, 0, FRESH)?));
    let wrong: Vec<String> = got
        .iter()
        .filter(|(_, s)| !dead.contains(s))
        .map(|(what, s)| format!("{what}: {}", state_name(*s)))
        .collect();
    ensure!(
        wrong.is_empty(),
        "commits of a dead task: {} (want TARGET_NOT_FOUND or TARGET_STALE)",
        wrong.join("; ")
    );
    // The CPU is fine: another task runs there.
    let t2 = sys::fork_child(move || spinner(id, r, 1, c0))?;
    figures::entered(1);
    ensure!(rig.progresses(1), "a task after the dead one did not run");
    ensure!(
        r.cpus[1].load(SeqCst) == rig.c1 as i32,
        "the second task ran on CPU {}",
        r.cpus[1].load(SeqCst)
    );
    rig.finish(&[(1, t2)])
}

/// api_test EnteringGhostViaSetSchedulerReturnsBadFdError, with an enclave
/// live: `sched_setscheduler(SCHED_GHOST)` of another task, and
/// `sched_setattr(SCHED_GHOST)` with `sched_runtime` set to the enclave's
/// ctl fd (the pre-ghostfs way in), fail with EBADF and change nothing; for
/// a ghost task it succeeds (no change) and the task stays.
fn conf_setscheduler_ghost_ebadf() -> Result<(), String> {
    sys::ensure_ghostfs()?;
    let cpu = nr_cpu_ids()? - 1;
    let id = 80;
    make_enclave(id, cpu)?;
    let ctl = open_rw(&path(id, "ctl"))?;
    let child = sys::fork_child(|| {
        std::thread::sleep(Duration::from_secs(60));
        0
    })?;
    let res = setsched_probes(id, child, &ctl);
    sys::write_once(&path(id, "ctl"), b"destroy")
        .map_err(|x| format!("destroy: {}", errno_name(x)))?;
    if res.is_ok() {
        let p = sys::sched_policy(child);
        ensure!(p == libc::SCHED_OTHER, "task policy {p} after destroy");
        figures::returned(1);
    }
    // SAFETY: plain syscall on our own child.
    unsafe { libc::kill(child, libc::SIGKILL) };
    sys::wait_child(child)?;
    res
}

fn setsched_probes(id: u64, child: i32, ctl: &std::fs::File) -> Result<(), String> {
    figures::ops(4);
    let r = set_policy(child, abi::SCHED_GHOST);
    ensure!(
        r == Err(libc::EBADF),
        "sched_setscheduler(child, SCHED_GHOST): {r:?}, want EBADF"
    );
    #[repr(C)]
    #[derive(Default)]
    struct SchedAttr {
        size: u32,
        policy: u32,
        flags: u64,
        nice: i32,
        priority: u32,
        runtime: u64,
        deadline: u64,
        period: u64,
    }
    let mut a = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy: abi::SCHED_GHOST as u32,
        runtime: ctl.as_raw_fd() as u64,
        ..Default::default()
    };
    // SAFETY: sched_setattr with a valid VER0 (48-byte) attribute struct.
    let x = unsafe { libc::syscall(libc::SYS_sched_setattr, child, &raw mut a, 0) };
    let e = if x == 0 { 0 } else { sys::errno() };
    ensure!(
        e == libc::EBADF,
        "sched_setattr(child, SCHED_GHOST, runtime = ctl fd): {}, want EBADF",
        errno_name(e)
    );
    let p = sys::sched_policy(child);
    ensure!(
        p == libc::SCHED_OTHER,
        "child policy {p} after the refusals"
    );
    sys::write_once(&path(id, "tasks"), child.to_string().as_bytes())
        .map_err(|x| format!("join: {}", errno_name(x)))?;
    figures::entered(1);
    // For a task already in ghost, SCHED_GHOST again is a (here empty)
    // change of its parameters, as in ghOSt (where it changes its nice).
    let r = set_policy(child, abi::SCHED_GHOST);
    ensure!(
        r == Ok(()),
        "sched_setscheduler(ghost task, SCHED_GHOST): {r:?}, want Ok"
    );
    let p = sys::sched_policy(child);
    ensure!(
        p == abi::SCHED_GHOST,
        "ghost task policy {p} after the refusal"
    );
    Ok(())
}

/// api_test's affinity race: a task whose affinity loses the CPU its agent
/// commits to: TASK_AFFINITY_CHANGED; a commit with the barrier from before
/// the change fails TARGET_STALE, one with the new barrier completes and
/// the task runs there (ghOSt does not check affinity at commit). Then a CFS task flips the affinity 300 times
/// while the agent keeps committing the task: every outcome is one the ABI
/// gives for that race, one TASK_AFFINITY_CHANGED per change, the task
/// never runs where it was not committed, and it runs on afterwards.
fn conf_affinity_race() -> Result<(), String> {
    let rig = rig(77)?;
    let r = rig.r;
    let (id, c0, c1) = (rig.id, rig.c0, rig.c1);
    r.auto.store(3, SeqCst);
    r.watch.store(1, SeqCst);
    let t = sys::fork_child(move || spinner(id, r, 0, c0))?;
    figures::entered(1);
    ensure!(rig.progresses(0), "the task did not run");
    let gtid = sys::gtid_of(t);
    let aff = || rig.a_count(abi::MSG_TASK_AFFINITY_CHANGED);

    // Step by step, the commander not running the task by itself.
    r.auto.store(2, SeqCst);
    std::thread::sleep(Duration::from_millis(50));
    let a0 = aff();
    let old = rig.command(OP_BARRIER, 0, gtid, 0, 0)? as u32;
    sys::set_affinity(t, &[c0]).map_err(|x| format!("affinity: {}", errno_name(x)))?;
    ensure!(
        wait_for(2000, || aff() == a0 + 1),
        "no TASK_AFFINITY_CHANGED"
    );
    r.barrier.store(old, SeqCst);
    let s = rig.commit(gtid, 0, GIVEN)?;
    ensure!(
        s == abi::GHOST_TXN_TARGET_STALE,
        "commit with the barrier from before the change: {}, want TARGET_STALE",
        state_name(s)
    );
    // With the new barrier the commit completes although the task may no
    // longer use the CPU: as in ghOSt, the kernel leaves affinity to the
    // policy (its agent library treats INVALID_CPU as fatal), and the task
    // runs where it was committed.
    let s = rig.commit_settled(gtid)?;
    ensure!(
        s == abi::GHOST_TXN_COMPLETE,
        "commit to a CPU outside the task's affinity: {}, want COMPLETE",
        state_name(s)
    );
    // It runs there, and keeps running there when the commander runs it
    // again after a preemption (a CFS task may take c1 for a moment).
    r.auto.store(3, SeqCst);
    ensure!(rig.progresses(0), "the committed task did not run");
    ensure!(
        r.cpus[0].load(SeqCst) == c1 as i32,
        "the committed task runs on CPU {}, not the one it was committed to",
        r.cpus[0].load(SeqCst)
    );
    sys::set_affinity(t, &[c0, c1]).map_err(|x| format!("affinity: {}", errno_name(x)))?;
    ensure!(
        wait_for(2000, || aff() == a0 + 2),
        "no TASK_AFFINITY_CHANGED when c1 came back"
    );
    ensure!(rig.progresses(0), "the task did not run again");

    // The race.
    let a1 = aff();
    const FLIPS: u32 = 300;
    let flipper = sys::fork_child(move || {
        if sys::set_affinity(0, &[c1]).is_err() {
            return 1;
        }
        for i in 0..FLIPS {
            let cpus: &[usize] = if i % 2 == 0 { &[c0] } else { &[c0, c1] };
            if sys::set_affinity(t, cpus).is_err() {
                return 2;
            }
            r.steps.fetch_add(1, SeqCst);
            std::thread::sleep(Duration::from_micros(u64::from(i * 397 % 2000)));
        }
        0
    })?;
    let done = wait_for(120_000, || r.steps.load(SeqCst) == FLIPS);
    let exit = sys::wait_child(flipper)?;
    ensure!(
        done && exit == Exit::Code(0),
        "the flipper ended {exit:?} after {} changes",
        r.steps.load(SeqCst)
    );
    figures::ops(u64::from(FLIPS));
    ensure!(
        wait_for(5000, || aff() >= a1 + FLIPS),
        "{} TASK_AFFINITY_CHANGED for {FLIPS} changes",
        aff() - a1
    );
    std::thread::sleep(Duration::from_millis(100));
    ensure!(
        aff() == a1 + FLIPS,
        "{} TASK_AFFINITY_CHANGED for {FLIPS} changes",
        aff() - a1
    );
    let allowed = [
        abi::GHOST_TXN_COMPLETE,
        abi::GHOST_TXN_TARGET_STALE,
        abi::GHOST_TXN_TARGET_ONCPU,
        abi::GHOST_TXN_CPU_UNAVAIL,
    ];
    let odd = rig.unexpected_outcomes(&allowed);
    ensure!(
        odd.is_empty(),
        "commits in the race ended {}",
        odd.join(", ")
    );
    let out = |s: i32| r.outcomes[s.wrapping_sub(i32::MIN) as usize].load(SeqCst);
    ensure!(
        out(abi::GHOST_TXN_TARGET_STALE) >= 1,
        "no commit met an affinity change (the race did not happen)"
    );
    ensure!(rig.progresses(0), "the task did not run after the race");
    ensure!(
        r.cpus[0].load(SeqCst) == c1 as i32,
        "the task runs on CPU {}",
        r.cpus[0].load(SeqCst)
    );
    let wrong = r.wrong_cpu.load(SeqCst);
    ensure!(
        wrong == 0,
        "the ghost task ran {wrong} iterations on CPU {c0}, where nothing committed it"
    );
    r.watch.store(0, SeqCst);
    rig.finish(&[(0, t)])
}

/// api_test's departed race: a task that leaves ghost gets TASK_DEPARTED;
/// a commit of it then fails (TARGET_NOT_FOUND or TARGET_STALE) and it
/// runs in CFS; back in before its agent freed its word, a commit fails
/// TARGET_STALE (not announced yet), and after the free it is announced
/// (TASK_NEW) and runs under its agent again. Then a CFS task moves it out
/// and back in 100 times while the agent keeps committing it: every
/// outcome is one the ABI gives, one TASK_DEPARTED and one TASK_NEW per
/// round trip, and it runs on afterwards.
fn conf_departed_race() -> Result<(), String> {
    let rig = rig(78)?;
    let r = rig.r;
    let (id, c0, c1) = (rig.id, rig.c0, rig.c1);
    r.auto.store(3, SeqCst);
    let t = sys::fork_child(move || spinner(id, r, 0, c0))?;
    figures::entered(1);
    ensure!(rig.progresses(0), "the task did not run");
    let gtid = sys::gtid_of(t);
    let dep = || rig.a_count(abi::MSG_TASK_DEPARTED);
    let new = || rig.a_count(abi::MSG_TASK_NEW);

    // Step by step; the commander does not free words by itself.
    r.auto.store(1, SeqCst);
    let (d0, n0) = (dep(), new());
    set_policy(t, libc::SCHED_OTHER).map_err(|x| format!("depart: {}", errno_name(x)))?;
    ensure!(wait_for(2000, || dep() == d0 + 1), "no TASK_DEPARTED");
    let s = rig.commit(gtid, 0, FRESH)?;
    ensure!(
        s == abi::GHOST_TXN_TARGET_NOT_FOUND || s == abi::GHOST_TXN_TARGET_STALE,
        "commit of a departed task: {}",
        state_name(s)
    );
    ensure!(rig.progresses(0), "the departed task did not run in CFS");
    sys::write_once(&path(id, "tasks"), t.to_string().as_bytes())
        .map_err(|x| format!("re-join: {}", errno_name(x)))?;
    std::thread::sleep(Duration::from_millis(100));
    ensure!(new() == n0, "a re-entry before the free was announced");
    let s = rig.commit(gtid, 0, FRESH)?;
    ensure!(
        s == abi::GHOST_TXN_TARGET_STALE,
        "commit of a re-entered task not announced yet: {}, want TARGET_STALE",
        state_name(s)
    );
    let freed = rig.command(OP_SW_FREE, 0, gtid, 0, 0)?;
    ensure!(
        freed == 0,
        "SW_FREE of the departed word: {}",
        errno_name(freed)
    );
    ensure!(
        wait_for(2000, || new() == n0 + 1),
        "no TASK_NEW once the departed word was freed"
    );
    r.auto.store(3, SeqCst);
    ensure!(rig.progresses(0), "the task did not run after re-entering");
    ensure!(
        sys::sched_policy(t) == abi::SCHED_GHOST,
        "task policy {}",
        sys::sched_policy(t)
    );

    // The race.
    let (d1, n1) = (dep(), new());
    const TRIPS: u32 = 100;
    let mover = sys::fork_child(move || {
        if sys::set_affinity(0, &[c1]).is_err() {
            return 1;
        }
        for i in 0..TRIPS {
            std::thread::sleep(Duration::from_micros(u64::from(i * 397 % 3000)));
            if set_policy(t, libc::SCHED_OTHER).is_err() {
                return 2;
            }
            std::thread::sleep(Duration::from_micros(u64::from(i * 211 % 2000)));
            if sys::write_once(&path(id, "tasks"), t.to_string().as_bytes()).is_err() {
                return 3;
            }
            r.steps.fetch_add(1, SeqCst);
        }
        0
    })?;
    let done = wait_for(120_000, || r.steps.load(SeqCst) == TRIPS);
    let exit = sys::wait_child(mover)?;
    ensure!(
        done && exit == Exit::Code(0),
        "the mover ended {exit:?} after {} round trips",
        r.steps.load(SeqCst)
    );
    figures::ops(u64::from(2 * TRIPS));
    figures::entered(u64::from(TRIPS));
    figures::returned(u64::from(TRIPS));
    // Every announced stay that ends is reported (TASK_DEPARTED); a stay
    // that ends before it was announced (it came back before the agent
    // freed the last word, and left again) is not, and neither is its
    // TASK_NEW: so as many TASK_DEPARTED as TASK_NEW, once the last stay is
    // announced (the task runs under its agent).
    ensure!(rig.progresses(0), "the task did not run after the race");
    let balanced = wait_for(5000, || dep() - d1 == new() - n1);
    let (d, n) = (dep() - d1, new() - n1);
    ensure!(
        balanced && (1..=TRIPS).contains(&d),
        "{d} TASK_DEPARTED and {n} TASK_NEW for {TRIPS} round trips"
    );
    let allowed = [
        abi::GHOST_TXN_COMPLETE,
        abi::GHOST_TXN_TARGET_STALE,
        abi::GHOST_TXN_TARGET_NOT_FOUND,
        abi::GHOST_TXN_TARGET_ONCPU,
        abi::GHOST_TXN_CPU_UNAVAIL,
    ];
    let odd = rig.unexpected_outcomes(&allowed);
    ensure!(
        odd.is_empty(),
        "commits in the race ended {}",
        odd.join(", ")
    );
    ensure!(
        sys::sched_policy(t) == abi::SCHED_GHOST,
        "task policy {} after the race",
        sys::sched_policy(t)
    );
    ensure!(rig.progresses(0), "the task did not run after the race");
    ensure!(
        r.cpus[0].load(SeqCst) == c1 as i32,
        "the task runs on CPU {}",
        r.cpus[0].load(SeqCst)
    );
    rig.finish(&[(0, t)])
}

/// api_test's priority tests: TASK_NEW carries the nice a task joins with;
/// each nice change of a ghost task (`setpriority` by another process, or
/// by the task itself) gives one TASK_PRIORITY_CHANGED with the new nice;
/// setting the same nice again gives none; the task keeps running.
fn conf_priority_changed() -> Result<(), String> {
    let rig = rig(79)?;
    let r = rig.r;
    let (id, c0) = (rig.id, rig.c0);
    r.auto.store(3, SeqCst);
    let t = sys::fork_child(move || {
        // SAFETY: plain syscall on ourselves.
        unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 7) };
        spinner(id, r, 0, c0)
    })?;
    figures::entered(1);
    ensure!(
        wait_for(5000, || rig.a_count(abi::MSG_TASK_NEW) == 1),
        "no TASK_NEW"
    );
    // The commander counts a message before it records its payload.
    wait_for(5000, || r.nice_new.load(SeqCst) == 7);
    let n = r.nice_new.load(SeqCst);
    ensure!(n == 7, "TASK_NEW nice {n}, want 7");
    ensure!(rig.progresses(0), "the task did not run");
    let prio = || rig.a_count(abi::MSG_TASK_PRIORITY_CHANGED);
    for nice in [12, 0, -5, 19, -20, 3] {
        let p0 = prio();
        // SAFETY: plain syscall on our own child.
        let x = unsafe { libc::setpriority(libc::PRIO_PROCESS, t as u32, nice) };
        ensure!(x == 0, "setpriority {nice}: {}", errno_name(sys::errno()));
        figures::ops(1);
        rig.one_priority_change(p0, nice, &format!("setpriority {nice}"))?;
        ensure!(nice_of(t) == nice, "nice of the task {}", nice_of(t));
    }
    let p0 = prio();
    // SAFETY: plain syscall on our own child.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, t as u32, 3) };
    std::thread::sleep(Duration::from_millis(200));
    ensure!(prio() == p0, "setting the same nice again sent a message");
    r.renice.store(100 + 9, SeqCst);
    ensure!(
        wait_for(5000, || prio() > p0),
        "no TASK_PRIORITY_CHANGED when the task reniced itself"
    );
    let seen = r.nice_changed.load(SeqCst);
    ensure!(
        seen == 9,
        "TASK_PRIORITY_CHANGED nice {seen} after renicing itself to 9"
    );
    ensure!(rig.progresses(0), "the task did not keep running");
    rig.finish(&[(0, t)])
}
