//! The harness's one raw-ABI agent. Every agent of the tests is an
//! [`Agent`] running a [`Script`]: the agent owns the loop of a ghOSt agent
//! (read its barrier, drain its queue, then block in `ghost_run`, commit,
//! nap, ...), the test's script says what each message means to it and
//! what to do once the queue is empty. A script is a type implementing
//! [`Script`] (an agent with state, e.g. a FIFO) or three closures
//! ([`script`]); a linear script (the lab's) calls [`Agent::drain`]
//! between its steps and then [`Agent::run`]s.
//!
//! Its users: the rig's commander and sleeper ([`super::rig`]),
//! [`start_agent`]'s sleeping agent, the FIFO agent and the lab's agents of
//! `tests::scheduling`, the agents of `tests::faults::races`, the ABI 91
//! flag sampler, and the fuzzer's agent.

use super::raw::{become_agent, observe, Enclave, Msg};
use super::sys;
use super::wait::wait_for;
use ghost_abi as abi;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

/// What the agent does once its queue is drained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// `ghost_run` with the barrier read before the drain: blocks until
    /// woken (a new message, a ping, a signal); its outcome goes to
    /// [`Script::woke`].
    Block,
    /// Sleeps outside `ghost_run` (so the kernel sees the agent block and
    /// wake, CPU_AGENT_BLOCKED / CPU_AGENT_WAKEUP), then blocks in
    /// `ghost_run` with a barrier read after the nap (for an agent whose
    /// queue another process reads); the outcome goes to [`Script::woke`].
    NapThenBlock(Duration),
    /// Sleeps outside `ghost_run`, then loops.
    Sleep(Duration),
    /// A spin-loop hint, then loops.
    Spin,
    /// Loops at once (the step did its own waiting).
    Again,
}

/// A test's agent behaviour.
pub(crate) trait Script {
    /// At the start of each round, before the barrier is read.
    fn begin(&mut self, _a: &Agent) {}

    /// Each message of the agent's queue, in order.
    fn on_msg(&mut self, _a: &Agent, _m: &Msg) {}

    /// Once the queue is empty, with the agent barrier read before the
    /// drain: what next (the step may commit, carry out commands, ...).
    fn step(&mut self, _a: &Agent, _barrier: u32) -> Next {
        Next::Block
    }

    /// What a [`Next::Block`] (or [`Next::NapThenBlock`]) returned:
    /// `Ok` when woken, else the errno (`ESTALE`, `EINTR`, ...).
    fn woke(&mut self, _a: &Agent, _r: Result<(), i32>) {}
}

/// A [`Script`] of three closures: per message, once drained, after
/// blocking.
pub(crate) struct Fns<M, S, W> {
    msg: M,
    step: S,
    woke: W,
}

/// A [`Script`] from closures: `msg` for each message, `step` once the
/// queue is empty (given the barrier), `woke` with what blocking returned.
pub(crate) fn script<M, S, W>(msg: M, step: S, woke: W) -> Fns<M, S, W>
where
    M: FnMut(&Msg),
    S: FnMut(&Agent, u32) -> Next,
    W: FnMut(Result<(), i32>),
{
    Fns { msg, step, woke }
}

impl<M, S, W> Script for Fns<M, S, W>
where
    M: FnMut(&Msg),
    S: FnMut(&Agent, u32) -> Next,
    W: FnMut(Result<(), i32>),
{
    fn on_msg(&mut self, _a: &Agent, m: &Msg) {
        (self.msg)(m)
    }

    fn step(&mut self, a: &Agent, barrier: u32) -> Next {
        (self.step)(a, barrier)
    }

    fn woke(&mut self, _a: &Agent, r: Result<(), i32>) {
        (self.woke)(r)
    }
}

/// The agent of one CPU: its enclave view, CPU and status word.
pub(crate) struct Agent {
    pub(crate) e: Enclave,
    pub(crate) cpu: usize,
    /// The agent's status-word index (region 0).
    pub(crate) me: u32,
}

impl Agent {
    /// Becomes the agent of `cpu` with `e`'s queue (retrying while the
    /// CPU's old agent is on its way out); the errno on failure (-2: the
    /// thread is not on `cpu` afterwards).
    pub(crate) fn join(e: Enclave, cpu: usize) -> Result<Agent, i32> {
        let me = become_agent(&e, cpu, e.queue.as_raw_fd())?;
        Ok(Agent { e, cpu, me })
    }

    /// Becomes the agent of `cpu` with the queue `qfd` (one another process
    /// reads: this agent's own drain then finds nothing).
    pub(crate) fn join_with_queue(e: Enclave, cpu: usize, qfd: i32) -> Result<Agent, i32> {
        let me = become_agent(&e, cpu, qfd)?;
        Ok(Agent { e, cpu, me })
    }

    /// The agent barrier (the sequence number of its status word).
    pub(crate) fn barrier(&self) -> u32 {
        self.e.sw_barrier(self.me)
    }

    /// Reads every queued message into `f`; how many there were.
    pub(crate) fn drain(&self, mut f: impl FnMut(&Msg)) -> usize {
        let mut n = 0;
        while let Some(m) = self.e.pop() {
            f(&m);
            n += 1;
        }
        n
    }

    /// `ghost_run(0, barrier, 0, cpu, 0)`: blocks until woken; the errno
    /// on failure.
    pub(crate) fn block(&self, barrier: u32) -> Result<(), i32> {
        self.e.block(barrier, self.cpu)
    }

    /// The agent's loop, scripted by `s`, for good (until the process is
    /// killed or its enclave destroyed).
    pub(crate) fn run(&self, s: &mut impl Script) -> ! {
        self.run_while(s, || true);
        loop {
            sys::pause();
        }
    }

    /// [`Agent::run`] while `go_on` holds at the top of each round (before
    /// the barrier is read and the queue drained).
    pub(crate) fn run_while(&self, s: &mut impl Script, mut go_on: impl FnMut() -> bool) {
        while go_on() {
            s.begin(self);
            let b = self.barrier();
            while let Some(m) = self.e.pop() {
                s.on_msg(self, &m);
            }
            match s.step(self, b) {
                Next::Block => {
                    let r = self.block(b);
                    s.woke(self, r);
                }
                Next::NapThenBlock(d) => {
                    std::thread::sleep(d);
                    let r = self.block(self.barrier());
                    s.woke(self, r);
                }
                Next::Sleep(d) => std::thread::sleep(d),
                Next::Spin => std::hint::spin_loop(),
                Next::Again => {}
            }
        }
    }

    /// Sleeps in `ghost_run`, discarding its messages, until killed.
    pub(crate) fn sleep_forever(&self) -> ! {
        self.run(&mut script(|_| {}, |_, _| Next::Block, |_| {}))
    }
}

/// The agent of `cpu` in enclave `id`, in a child process: it becomes the
/// agent with the queue `qfd` (the parent's, inherited across fork; the
/// parent reads it) and then only sleeps in `ghost_run`, woken by what
/// concerns it, until it is killed. Sets `up` to 1 once it is the agent, or
/// to a negative step on failure.
fn sleeping_agent(id: u64, qfd: i32, cpu: usize, up: &AtomicI32) -> i32 {
    let fail = |step: i32| {
        up.store(step, Ordering::SeqCst);
        1
    };
    // Opened first: an agent thread may not open enclave files.
    let Ok(e) = observe(id) else {
        return fail(-1);
    };
    let a = match Agent::join_with_queue(e, cpu, qfd) {
        Ok(a) => a,
        Err(x) => return fail(-1000 - x),
    };
    up.store(1, Ordering::SeqCst);
    // A nap outside ghost_run each time it wakes: with
    // deliver_agent_runnability, CPU_AGENT_BLOCKED and CPU_AGENT_WAKEUP
    // (ghOSt sends them only for an agent that blocks outside RUN).
    let nap = Next::NapThenBlock(Duration::from_millis(1));
    a.run(&mut script(|_| {}, |_, _| nap, |_| {}))
}

/// Starts [`sleeping_agent`] for `cpu` with `e`'s queue; returns its pid.
pub(crate) fn start_agent(id: u64, e: &Enclave, cpu: usize) -> Result<i32, String> {
    let up: &AtomicI32 = sys::shared_page()?;
    let qfd = e.queue.as_raw_fd();
    let agent = sys::fork_child(|| sleeping_agent(id, qfd, cpu, up))?;
    ensure!(
        wait_for(5000, || up.load(Ordering::SeqCst) != 0),
        "the agent of CPU {cpu} did not come up"
    );
    let step = up.load(Ordering::SeqCst);
    ensure!(step == 1, "the agent of CPU {cpu} failed at step {step}");
    let policy = sys::sched_policy(agent);
    ensure!(
        policy == abi::SCHED_GHOST | libc::SCHED_RESET_ON_FORK,
        "agent policy {policy:#x}"
    );
    Ok(agent)
}
