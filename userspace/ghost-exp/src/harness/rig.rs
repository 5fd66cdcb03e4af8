//! The rig: the scriptable raw-ABI agent process of the conformance and
//! ABI 91 tests. An enclave of CPUs `c0` (0) and `c1` (the last CPU) and
//! one agent process with two agent threads. The *commander* A, agent of
//! `c0`, owns the default queue (every task message), carries out the
//! test's commands (a commit, a ping, `SW_FREE`, ...) and, in *auto* mode,
//! runs the runnable tasks it knows on `c1`, one at a time, as a FIFO agent
//! would. The *sleeper* B, agent of `c1`, blocks in `ghost_run` and counts
//! what reaches its own queue: the CPU messages about `c1`. A only ever
//! commits to `c1`, so a ghost task never has a reason to run on `c0`.

use super::agent::{script, Agent, Next, Script};
use super::figures;
use super::ghostfs::{ioctl, nr_cpu_ids, path, state_name};
use super::raw::{attach, current_cpu, make_enclave, Enclave, Msg, Txn};
use super::sys::{self, errno_name, set_policy, setattr, Exit};
use super::wait::wait_for;
use ghost_abi as abi;
use std::collections::{HashMap, VecDeque};
use std::mem::offset_of;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64};
use std::time::{Duration, Instant};

/// Shared by a test, its agents and its tasks (an anonymous shared page).
#[repr(C)]
pub(crate) struct Rig {
    /// Agents up: bit 0 the commander, bit 1 the sleeper; a setup error.
    pub(crate) up: AtomicU32,
    pub(crate) error: AtomicI32,
    /// The sleeper's thread id (for signals).
    pub(crate) b_tid: AtomicI32,
    /// A command to the commander: the test fills the arguments and bumps
    /// `seq`; the commander stores `result` (and `aux`) and sets `done`.
    pub(crate) seq: AtomicU32,
    pub(crate) done: AtomicU32,
    pub(crate) op: AtomicU32,
    pub(crate) cpu: AtomicI32,
    pub(crate) gtid: AtomicU64,
    pub(crate) run_flags: AtomicU32,
    /// Which task barrier a commit uses: [`FRESH`], [`FRESH_MINUS_1`] or
    /// [`GIVEN`] (`barrier`).
    pub(crate) mode: AtomicU32,
    pub(crate) barrier: AtomicU32,
    pub(crate) result: AtomicI32,
    pub(crate) aux: AtomicI32,
    /// Commander: bit 0 runs the runnable tasks on `c1`; bit 1 frees the
    /// status words of dead and departed tasks.
    pub(crate) auto: AtomicU32,
    /// Task messages the commander saw (`type - 64`).
    pub(crate) a_msgs: [AtomicU32; 16],
    /// Task (`type - 64`) and CPU (`type - 128`) messages the sleeper saw.
    pub(crate) b_task_msgs: [AtomicU32; 16],
    pub(crate) b_cpu_msgs: [AtomicU32; 8],
    /// The sleeper's returns from `ghost_run`: woken, `EINTR`, and the last
    /// other errno (not `ESTALE`).
    pub(crate) b_wakes: AtomicU32,
    pub(crate) b_eintr: AtomicU32,
    pub(crate) b_errno: AtomicI32,
    /// CPU_TICK: with a wrong `cpu` (or `is_agent` not 0/1); by `is_agent`.
    pub(crate) tick_bad: AtomicU32,
    pub(crate) tick_agent: [AtomicU32; 2],
    /// The last CPU_NOT_IDLE: `cpu`, `next_gtid`.
    pub(crate) not_idle_cpu: AtomicI32,
    pub(crate) not_idle_next: AtomicU64,
    /// The nice of the last TASK_PRIORITY_CHANGED and of the last TASK_NEW.
    pub(crate) nice_changed: AtomicI32,
    pub(crate) nice_new: AtomicI32,
    /// Outcomes of the commander's auto commits, by `state - INT_MIN`.
    pub(crate) outcomes: [AtomicU32; 16],
    /// Operations the agents tried (commits, ioctls, `ghost_run`).
    pub(crate) ops: AtomicU64,
    /// Task k: iterations, last CPU, stop; iterations a ghost task ran on
    /// `c0` (counted while `watch` is set); a nice value to set itself
    /// (100 + nice; 0: none).
    pub(crate) works: [AtomicU64; 2],
    pub(crate) cpus: [AtomicI32; 2],
    pub(crate) stop: [AtomicU32; 2],
    pub(crate) watch: AtomicU32,
    pub(crate) wrong_cpu: AtomicU32,
    pub(crate) renice: AtomicI32,
    /// Steps done by a child that flips or moves a task (races).
    pub(crate) steps: AtomicU32,
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

/// Commander commands (more in [`command`], from 10 on).
const OP_COMMIT: u32 = 1;

pub(crate) const OP_PING: u32 = 2;

pub(crate) const OP_SW_FREE: u32 = 3;

pub(crate) const OP_DEFAULT_TO_B: u32 = 4;

pub(crate) const OP_TIMERFD: u32 = 5;

pub(crate) const OP_BARRIER: u32 = 6;

/// Task barriers of a commit.
pub(crate) const FRESH: u32 = 0;

pub(crate) const FRESH_MINUS_1: u32 = 1;

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
            let res = super::sys::setattr(0, abi::SCHED_GHOST, n - 100, 0);
            r.renice_result.store(res, SeqCst);
        } else if n != 0 {
            sys::setpriority(0, n - 100);
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

    /// One message of the commander's queue.
    fn on_msg(&mut self, e: &Enclave, r: &Rig, m: &Msg) {
        if let Some(i) = task_slot(m.ty) {
            r.a_msgs[i].fetch_add(1, SeqCst);
        }
        let ty = m.ty;
        let Some(gtid) = m.gtid() else {
            return;
        };
        let seq = m.seq;
        self.barriers.insert(gtid, seq);
        if gtid == r.log_gtid.load(SeqCst) as i64 {
            // The word's flags as the message arrives (TASK_NEW names it).
            let index = match ty {
                abi::MSG_TASK_NEW => Some(m.new_word()),
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
                self.words.insert(gtid, m.new_word());
                let nice = offset_of!(abi::GhostMsgPayloadTaskNew, nice);
                r.nice_new.store(m.i32_at(nice), SeqCst);
                let run = offset_of!(abi::GhostMsgPayloadTaskNew, runnable);
                if m.u8_at(run) != 0 && !self.runq.contains(&gtid) {
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
                r.nice_changed.store(m.i32_at(off), SeqCst);
            }
            _ => {}
        }
    }

    /// `SW_FREE` of `gtid`'s status word: 0 or the errno.
    fn free(&mut self, e: &Enclave, gtid: i64, r: &Rig) -> i32 {
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
        e: &Enclave,
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
            // The target CPU may still be committing it (claimed: the
            // state is its CPU number), e.g. when its own commit point
            // took the greedy txn first; ghOSt's library waits too.
            Ok(_) => final_state(e, cpu),
            Err(x) => -x,
        }
    }

    /// Auto mode: commits the first runnable task on `c1`.
    fn run_next(&mut self, e: &Enclave, c1: usize, r: &Rig) {
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
    fn exec(&mut self, e: &Enclave, r: &Rig) -> i32 {
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
            op => command(op, e, r),
        }
    }
}

/// `GHOST_IOC_TIMERFD_SETTIME` of a new timerfd (10 ms, a ghost timer for
/// the agent of `cpu`): the errno (0 if it worked); `aux` is 1 if the
/// timerfd is armed afterwards.
fn timerfd_settime(e: &Enclave, cpu: i32, r: &Rig) -> i32 {
    let Ok(tfd) = sys::timerfd() else {
        return -2;
    };
    let fd = std::os::fd::AsFd::as_fd(&tfd).as_raw_fd();
    let mut spec = sys::itimerspec_ms(10, 0);
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
    r.aux.store(i32::from(sys::timerfd_armed(&tfd)), SeqCst);
    res
}

/// The agent process of a rig: the sleeper thread, then the commander.
fn agents_main(id: u64, c0: usize, c1: usize, r: &'static Rig) -> i32 {
    // A signal ends the sleeper's ghost_run (with success: ghOSt's library
    // accepts no EINTR) and is ignored.
    // (A handler that does nothing, without SA_RESTART.)
    if ghost::sys::install_wake_handler(libc::SIGUSR1).is_err() {
        r.error.store(-19, SeqCst);
        return 1;
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
    let a = match Agent::join(e, c1) {
        Ok(a) => a,
        Err(x) => {
            r.error.store(-1000 - x, SeqCst);
            return;
        }
    };
    r.b_tid.store(sys::gettid(), SeqCst);
    r.up.fetch_or(2, SeqCst);
    let on_msg = |m: &Msg| {
        if let Some(i) = task_slot(m.ty) {
            r.b_task_msgs[i].fetch_add(1, SeqCst);
        }
        if let Some(i) = cpu_slot(m.ty) {
            r.b_cpu_msgs[i].fetch_add(1, SeqCst);
        }
        match m.ty {
            abi::MSG_CPU_TICK => {
                let cpu = m.i32_at(offset_of!(abi::GhostMsgPayloadCpuTick, cpu));
                let ag = m.i32_at(offset_of!(abi::GhostMsgPayloadCpuTick, is_agent));
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
                r.not_idle_cpu.store(m.i32_at(cpu), SeqCst);
                r.not_idle_next.store(m.u64_at(next), SeqCst);
            }
            _ => {}
        }
    };
    let step = |_: &Agent, _| {
        r.ops.fetch_add(1, SeqCst);
        Next::Block
    };
    let woke = |res| match res {
        Ok(()) => {
            r.b_wakes.fetch_add(1, SeqCst);
        }
        Err(libc::EINTR) => {
            r.b_eintr.fetch_add(1, SeqCst);
        }
        Err(libc::ESTALE) => {}
        Err(x) => r.b_errno.store(x, SeqCst),
    };
    // With `b_exit` the thread exits; the process goes on.
    a.run_while(&mut script(on_msg, step, woke), || {
        r.b_exit.load(SeqCst) == 0
    });
}

/// The commander's script: the task messages into [`Known`], then the
/// test's command and, in auto mode, a commit of the next task on `c1`.
struct Commander<'r> {
    k: Known,
    r: &'r Rig,
    c1: usize,
    seen: u32,
}

impl Script for Commander<'_> {
    fn on_msg(&mut self, a: &Agent, m: &Msg) {
        self.k.on_msg(&a.e, self.r, m);
    }

    fn step(&mut self, a: &Agent, _barrier: u32) -> Next {
        let r = self.r;
        let s = r.seq.load(SeqCst);
        if s != self.seen {
            let res = self.k.exec(&a.e, r);
            r.result.store(res, SeqCst);
            self.seen = s;
            r.done.store(s, SeqCst);
        }
        if r.auto.load(SeqCst) & 1 != 0 {
            self.k.run_next(&a.e, self.c1, r);
        }
        Next::Sleep(Duration::from_micros(500))
    }
}

/// The commander: agent of `c0`; carries out commands and, in auto mode,
/// runs the tasks on `c1`.
fn commander(id: u64, c0: usize, c1: usize, r: &Rig) -> i32 {
    let Ok(e) = attach(id, c0) else {
        r.error.store(-23, SeqCst);
        return 1;
    };
    let a = match Agent::join(e, c0) {
        Ok(a) => a,
        Err(x) => {
            r.error.store(-2000 - x, SeqCst);
            return 1;
        }
    };
    r.up.fetch_or(1, SeqCst);
    a.run(&mut Commander {
        k: Known::default(),
        r,
        c1,
        seen: 0,
    })
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
    /// `CPU_UNAVAIL` (another class had c1 for a moment).
    #[track_caller]
    pub(crate) fn commit_settled(&self, gtid: i64) -> Result<i32, String> {
        self.commit_until(gtid, 0, |s| {
            s == abi::GHOST_TXN_TARGET_STALE || s == abi::GHOST_TXN_CPU_UNAVAIL
        })
    }

    /// Commits `gtid` on `c1` with `run_flags` and a fresh barrier until
    /// the outcome is not `CPU_UNAVAIL` (a kernel thread or another CFS
    /// task had c1 for a moment).
    #[track_caller]
    pub(crate) fn commit_when_free(&self, gtid: i64, run_flags: u16) -> Result<i32, String> {
        self.commit_until(gtid, run_flags, |s| s == abi::GHOST_TXN_CPU_UNAVAIL)
    }

    /// Commits `gtid` on `c1` with a fresh barrier, again while `transient`
    /// says the outcome is one that passes (the other class's moment on
    /// c1 lasts as long as the host lets that vCPU run): a hang cap, not a
    /// count of tries, ends it. The last outcome.
    #[track_caller]
    fn commit_until(
        &self,
        gtid: i64,
        run_flags: u16,
        transient: impl Fn(i32) -> bool,
    ) -> Result<i32, String> {
        let mut s = self.commit(gtid, run_flags, FRESH)?;
        let mut err = None;
        wait_for(1000, || {
            if !transient(s) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
            match self.commit(gtid, run_flags, FRESH) {
                Ok(x) => s = x,
                Err(e) => err = Some(e),
            }
            err.is_some()
        });
        err.map_or(Ok(s), Err)
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

/// Commander commands of the ABI 91 tests (see [`command`]).
pub(crate) const OP_SW_FREE_INDEX: u32 = 10;

pub(crate) const OP_SETSCHED_SELF: u32 = 11;

pub(crate) const OP_COMMIT_WITH_HOME: u32 = 12;

pub(crate) const OP_COMMIT_MASK_LEN: u32 = 13;

pub(crate) const OP_SELF_INFO: u32 = 14;

/// Carries out commander command `op` (the rig's commander, an agent, runs
/// this in its loop), with the rig's `cpu` and `gtid` as arguments; the
/// result goes to `result` (the return value) and `aux`:
///
/// - `OP_SW_FREE_INDEX`: `SW_FREE` of word `gtid` of region 0: 0 or the
///   errno.
/// - `OP_SETSCHED_SELF`: `sched_setattr(0, SCHED_GHOST, nice gtid)` (the
///   errno, 0 for success) and, in `aux`, `sched_setscheduler(0,
///   SCHED_GHOST)`.
/// - `OP_COMMIT_WITH_HOME`: one `COMMIT_TXN` of two transactions: the
///   commander's own CPU pings itself, `cpu` runs `gtid` (with the rig's
///   `commit_flags`); the home state, and the state of `cpu` in `aux` (or
///   the negated errno of the call).
/// - `OP_COMMIT_MASK_LEN`: a ping of `cpu`'s agent committed with a
///   4096-byte mask buffer and `mask_len` `gtid`: the call's return value
///   (or its negated errno), and the transaction's state in `aux`.
/// - `OP_SELF_INFO`: the index of `SW_GET_INFO(GHOST_TASK, 0)`, and of
///   `SW_GET_INFO(GHOST_AGENT, its CPU)` in `aux` (negated errnos on
///   failure).
pub(crate) fn command(op: u32, e: &Enclave, r: &Rig) -> i32 {
    let cpu = r.cpu.load(SeqCst) as usize;
    let arg = r.gtid.load(SeqCst) as i64;
    r.ops.fetch_add(1, SeqCst);
    let index = |x: Result<abi::GhostSwInfo, i32>| x.map_or_else(|x| -x, |i| i.index as i32);
    match op {
        OP_SW_FREE_INDEX => sw_free(&e.ctl, arg as u32),
        OP_SETSCHED_SELF => {
            r.aux
                .store(set_policy(0, abi::SCHED_GHOST).err().unwrap_or(0), SeqCst);
            setattr(0, abi::SCHED_GHOST, arg as i32, 0)
        }
        OP_COMMIT_WITH_HOME => {
            let home = current_cpu() as usize;
            e.fill(home, &txn(abi::GHOST_AGENT_GTID, 0, 0));
            let flags = r.commit_flags.load(SeqCst) as u8;
            e.fill(cpu, &txn(arg, flags, 0));
            if let Err(x) = e.commit(&[home, cpu], false) {
                return -x;
            }
            r.aux.store(final_state(e, cpu), SeqCst);
            final_state(e, home)
        }
        OP_COMMIT_MASK_LEN => {
            e.fill(cpu, &txn(abi::GHOST_AGENT_GTID, 0, 0));
            let mut mask = vec![0u8; 4096];
            mask[cpu / 8] |= 1 << (cpu % 8);
            let mut c = abi::GhostIocCommitTxn {
                mask_ptr: mask.as_ptr() as u64,
                mask_len: arg as u32,
                flags: 0,
            };
            let res = ioctl(&e.ctl, abi::GHOST_IOC_COMMIT_TXN, (&raw mut c).cast());
            // Refused: the transaction was not even claimed.
            let s = if res.is_ok() {
                final_state(e, cpu)
            } else {
                e.txn_state(cpu)
            };
            r.aux.store(s, SeqCst);
            res.unwrap_or_else(|x| -x)
        }
        OP_SELF_INFO => {
            let mine = e.sw_info(abi::GHOST_AGENT, current_cpu() as u64);
            r.aux.store(index(mine), SeqCst);
            index(e.sw_info(abi::GHOST_TASK, 0))
        }
        _ => -1,
    }
}

/// A transaction for `gtid` with `commit_flags` and `task_barrier`.
pub(crate) fn txn(gtid: i64, commit_flags: u8, task_barrier: u32) -> Txn {
    Txn {
        gtid,
        run_flags: 0,
        commit_flags,
        agent_barrier: 0,
        task_barrier,
        version: 0,
    }
}

/// The final state of `cpu`'s transaction (committed: negative), waiting
/// while it is still `READY` or claimed (a kernel that commits a remote
/// transaction later, as ghOSt does for greedy ones, at the target CPU's
/// next commit point: as late as the host lets that vCPU run). The wait
/// ends at [`FINAL_STATE_CAP_MS`], a cap that only catches a hang, below
/// the hang cap of the test's wait for the command ([`wait_for`]), so that
/// the test sees the state that was left.
pub(crate) fn final_state(e: &Enclave, cpu: usize) -> i32 {
    let start = Instant::now();
    let mut s = e.txn_state(cpu);
    while s >= 0 && start.elapsed() < Duration::from_millis(FINAL_STATE_CAP_MS) {
        std::thread::sleep(Duration::from_millis(2));
        s = e.txn_state(cpu);
    }
    s
}

/// How long [`final_state`] waits for a transaction to end (ms).
const FINAL_STATE_CAP_MS: u64 = crate::harness::wait::HANG_FLOOR_MS / 3;

/// `GHOST_IOC_SW_FREE` of word `index` of region 0: 0 or the errno.
pub(crate) fn sw_free(ctl: &std::fs::File, index: u32) -> i32 {
    let mut info = abi::GhostSwInfo { id: 0, index };
    ioctl(ctl, abi::GHOST_IOC_SW_FREE, (&raw mut info).cast()).map_or_else(|x| x, |_| 0)
}
