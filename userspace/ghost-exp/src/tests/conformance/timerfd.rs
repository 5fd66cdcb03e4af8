//! Ghost timerfds (`GHOST_IOC_TIMERFD_SETTIME`, `MSG_CPU_TIMER_EXPIRED`)
//! and the commit points of greedy transactions (return to user, `balance`,
//! the tick with `commit_at_tick`), as ghOSt ABI 91 defines them.
//!
//! Each test makes its own enclave with agents that only sleep in
//! `ghost_run` ([`start_agent`]); the test process reads the agents' queue
//! and writes the transactions itself.

use crate::harness::sys::{self, errno_name, Exit};
use crate::harness::{
    attach, cfs_hog, create_enclave, ioctl, nr_cpu_ids, observe, path, start_agent, two_cpus,
    wait_for, Enclave, Test, Txn,
};
use ghost_abi as abi;
use std::io::{Read, Write};
use std::mem::offset_of;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::AtomicI32;
use std::sync::atomic::Ordering::SeqCst;

/// The tests, in the order they run.
pub const TESTS: &[Test] = &[
    Test {
        name: "conf_timerfd_expired",
        run: conf_timerfd_expired,
    },
    Test {
        name: "conf_timerfd_periodic_and_disarm",
        run: conf_timerfd_periodic_and_disarm,
    },
    Test {
        name: "conf_timerfd_bad_args",
        run: conf_timerfd_bad_args,
    },
    Test {
        name: "conf_greedy_commit_return_to_user",
        run: conf_greedy_commit_return_to_user,
    },
    Test {
        name: "conf_greedy_commit_at_balance",
        run: conf_greedy_commit_at_balance,
    },
    Test {
        name: "conf_greedy_commit_at_tick",
        run: conf_greedy_commit_at_tick,
    },
];

/// The number of `ghost_run` (x86_64).
const NR_GHOST_RUN: &str = "463 ";

/// Enclave `id` on `cpus`, with a status-word region; an agent (sleeping in
/// `ghost_run`) on each of `cpus`, all on one queue that wakes the agent
/// of the last one; runs `f` and then destroys the enclave (which kills
/// the agents) and reaps them.
fn with_agents(
    id: u64,
    cpus: &[usize],
    f: impl FnOnce(&Enclave, &[i32]) -> Result<(), String>,
) -> Result<(), String> {
    sys::ensure_ghostfs()?;
    create_enclave(&format!("create {id} 91"))?;
    let list: Vec<String> = cpus.iter().map(usize::to_string).collect();
    let setup = (|| {
        sys::write_once(&path(id, "cpulist"), list.join(",").as_bytes())
            .map_err(|e| format!("cpulist: {}", errno_name(e)))?;
        sys::write_once(&path(id, "ctl"), b"create sw_region 0 0")
            .map_err(|e| format!("sw_region: {}", errno_name(e)))?;
        let last = *cpus.last().ok_or("no CPU")?;
        let e = attach(id, last)?;
        let mut agents = Vec::new();
        for &c in cpus {
            agents.push(start_agent(id, &e, c)?);
        }
        Ok((e, agents))
    })();
    let (r, agents) = match setup {
        Ok((e, agents)) => (f(&e, &agents), agents),
        Err(x) => (Err(x), Vec::new()),
    };
    let destroyed = sys::write_once(&path(id, "ctl"), b"destroy")
        .map_err(|x| format!("destroy enclave_{id}: {}", errno_name(x)));
    for pid in agents {
        let exit = sys::wait_child(pid)?;
        ensure!(
            exit == Exit::Signal(libc::SIGKILL),
            "agent {pid} ended {exit:?}"
        );
    }
    r?;
    destroyed.map(|_| ())
}

/// Waits until each agent of `agents` sleeps in `ghost_run` (its
/// `/proc/<pid>/syscall`).
fn agents_asleep(agents: &[i32]) -> Result<(), String> {
    for &pid in agents {
        let asleep = || {
            std::fs::read_to_string(format!("/proc/{pid}/syscall"))
                .is_ok_and(|s| s.starts_with(NR_GHOST_RUN))
        };
        ensure!(
            wait_for(5000, asleep),
            "agent {pid} never slept in ghost_run"
        );
    }
    Ok(())
}

/// The voluntary context switches of `pid` (it sleeps and is woken).
fn wakeups(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// A new timerfd (`CLOCK_MONOTONIC`).
fn timerfd() -> Result<OwnedFd, String> {
    sys::timerfd_fd().map_err(|x| format!("timerfd_create: {}", errno_name(x)))
}

/// `GHOST_IOC_TIMERFD_SETTIME` of `fd` on `ctl` with setting `in_tmr` (a
/// user address: tests pass bad ones) and ghost part `g`: the errno on
/// failure.
fn ghost_settime(
    ctl: &std::fs::File,
    fd: i32,
    in_tmr: u64,
    g: abi::TimerfdGhost,
) -> Result<(), i32> {
    let mut old = sys::itimerspec_ms(0, 0);
    let mut a = abi::GhostIocTimerfdSettime {
        timerfd: fd,
        flags: 0,
        in_tmr,
        out_tmr: (&raw mut old) as u64,
        timerfd_ghost: g,
    };
    ioctl(ctl, abi::GHOST_IOC_TIMERFD_SETTIME, (&raw mut a).cast()).map(|_| ())
}

/// Arms `fd` with `s` and a ghost part for the agent of `cpu`.
fn arm(
    e: &Enclave,
    fd: &OwnedFd,
    s: &libc::itimerspec,
    cpu: usize,
    cookie: u64,
) -> Result<(), String> {
    let g = abi::TimerfdGhost {
        cpu: cpu as i32,
        flags: abi::TIMERFD_GHOST_ENABLED,
        type_: 7,
        cookie,
    };
    ghost_settime(&e.ctl, fd.as_raw_fd(), s as *const _ as u64, g)
        .map_err(|x| format!("TIMERFD_SETTIME: {}", errno_name(x)))
}

/// A `CPU_TIMER_EXPIRED` read from the queue: `(cpu, type, cookie)`.
type Expiry = (i32, u64, u64);

/// Reads every message queued on `e`, keeping the `CPU_TIMER_EXPIRED`s.
fn drain(e: &Enclave, got: &mut Vec<Expiry>) {
    while let Some(m) = e.pop() {
        if m.ty != abi::MSG_CPU_TIMER_EXPIRED {
            continue;
        }
        got.push((
            m.i32_at(offset_of!(abi::GhostMsgPayloadTimer, cpu)),
            m.u64_at(offset_of!(abi::GhostMsgPayloadTimer, type_)),
            m.u64_at(offset_of!(abi::GhostMsgPayloadTimer, cookie)),
        ));
    }
}

/// Waits until `got` holds `n` expiries (reading the queue).
fn expiries(e: &Enclave, got: &mut Vec<Expiry>, n: usize) -> bool {
    wait_for(5000, || {
        drain(e, got);
        got.len() >= n
    })
}

/// Blocks until `fd` expired (at most the hang cap); its `read()` count.
fn read_count(fd: &OwnedFd) -> Result<u64, String> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut pfd = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    let r = poll(
        &mut pfd,
        PollTimeout::try_from(300_000).unwrap_or(PollTimeout::MAX),
    );
    ensure!(r == Ok(1), "the timerfd never expired (poll {r:?})");
    let mut n = [0u8; 8];
    let got = nix::unistd::read(fd.as_raw_fd(), &mut n);
    ensure!(got == Ok(8), "read of the timerfd: {got:?}");
    Ok(u64::from_ne_bytes(n))
}

/// agent_test MsgTimerExpired: a ghost timerfd of the agent's CPU expires
/// once: exactly one `CPU_TIMER_EXPIRED` with that CPU, type and cookie,
/// the agent (asleep in `ghost_run`) is woken, and the timerfd's own
/// `read()` still counts the expiry.
fn conf_timerfd_expired() -> Result<(), String> {
    let (_, _, c1) = two_cpus()?;
    with_agents(240, &[c1], |e, agents| {
        agents_asleep(agents)?;
        let woken = wakeups(agents[0]);
        let fd = timerfd()?;
        arm(e, &fd, &sys::itimerspec_ms(20, 0), c1, 0xfeed)?;
        ensure!(read_count(&fd)? == 1, "the timerfd's count is not 1");
        let mut got = Vec::new();
        ensure!(expiries(e, &mut got, 1), "no CPU_TIMER_EXPIRED");
        ensure!(
            got == [(c1 as i32, 7, 0xfeed)],
            "CPU_TIMER_EXPIRED {got:x?}, want [(cpu {c1}, type 7, cookie 0xfeed)]"
        );
        ensure!(
            wait_for(5000, || wakeups(agents[0]) > woken),
            "the agent was not woken by CPU_TIMER_EXPIRED"
        );
        Ok(())
    })
}

/// A periodic ghost timerfd sends one `CPU_TIMER_EXPIRED` per expiry (the
/// timerfd re-arms when read); a later `TIMERFD_SETTIME` without
/// `TIMERFD_GHOST_ENABLED` (ghOSt's disarm: `cpu` -1, flags 0), and a plain
/// `timerfd_settime()`, stop the messages while the timer keeps expiring.
fn conf_timerfd_periodic_and_disarm() -> Result<(), String> {
    let (_, _, c1) = two_cpus()?;
    with_agents(241, &[c1], |e, agents| {
        agents_asleep(agents)?;
        let fd = timerfd()?;
        let every = sys::itimerspec_ms(5, 5);
        let mut got = Vec::new();
        arm(e, &fd, &every, c1, 1)?;
        for i in 1..=3 {
            read_count(&fd)?;
            ensure!(
                expiries(e, &mut got, i),
                "{} CPU_TIMER_EXPIRED, want {i}",
                got.len()
            );
        }
        let silent = |e: &Enclave, what: &str| -> Result<(), String> {
            let mut late = Vec::new();
            drain(e, &mut late);
            for _ in 0..3 {
                read_count(&fd)?;
            }
            drain(e, &mut late);
            ensure!(late.is_empty(), "{what}: CPU_TIMER_EXPIRED {late:x?}");
            Ok(())
        };
        let off = abi::TimerfdGhost {
            cpu: -1,
            ..Default::default()
        };
        ghost_settime(&e.ctl, fd.as_raw_fd(), &every as *const _ as u64, off)
            .map_err(|x| format!("TIMERFD_SETTIME off: {}", errno_name(x)))?;
        silent(e, "after TIMERFD_SETTIME without TIMERFD_GHOST_ENABLED")?;
        // On again (another cookie), then off by a plain timerfd_settime().
        arm(e, &fd, &every, c1, 2)?;
        read_count(&fd)?;
        let mut again = Vec::new();
        ensure!(
            expiries(e, &mut again, 1),
            "no CPU_TIMER_EXPIRED after re-arming"
        );
        ensure!(
            again.iter().all(|x| *x == (c1 as i32, 7, 2)),
            "after re-arming: {again:x?}"
        );
        sys::timerfd_settime(fd.as_raw_fd(), &every)
            .map_err(|x| format!("timerfd_settime: {}", errno_name(x)))?;
        silent(e, "after a plain timerfd_settime()")?;
        ensure!(
            got.iter().all(|x| *x == (c1 as i32, 7, 1)),
            "periodic: {got:x?}"
        );
        Ok(())
    })
}

/// Bad arguments get ghOSt's errnos and leave everything as it was: an fd
/// that is no timerfd or none at all (EBADF), unknown ghost flags, a CPU
/// that is not online or not the enclave's, bad timerfd flags (EINVAL), an
/// unreadable setting (EFAULT); then a good call works and its timer sends
/// its message.
fn conf_timerfd_bad_args() -> Result<(), String> {
    let (nr, c0, c1) = two_cpus()?;
    with_agents(242, &[c1], |e, agents| {
        agents_asleep(agents)?;
        let fd = timerfd()?;
        let s = sys::itimerspec_ms(20, 0);
        let good = abi::TimerfdGhost {
            cpu: c1 as i32,
            flags: abi::TIMERFD_GHOST_ENABLED,
            type_: 3,
            cookie: 9,
        };
        let sp = &s as *const _ as u64;
        let tfd = fd.as_raw_fd();
        let cases: [(&str, i32, u64, abi::TimerfdGhost, i32); 8] = [
            ("the ctl fd", e.ctl.as_raw_fd(), sp, good, libc::EBADF),
            ("fd -1", -1, sp, good, libc::EBADF),
            (
                "ghost flags 3",
                tfd,
                sp,
                abi::TimerfdGhost { flags: 3, ..good },
                libc::EINVAL,
            ),
            (
                "CPU -1",
                tfd,
                sp,
                abi::TimerfdGhost { cpu: -1, ..good },
                libc::EINVAL,
            ),
            (
                "CPU nr_cpu_ids",
                tfd,
                sp,
                abi::TimerfdGhost {
                    cpu: nr as i32,
                    ..good
                },
                libc::EINVAL,
            ),
            (
                "a CPU not the enclave's",
                tfd,
                sp,
                abi::TimerfdGhost {
                    cpu: c0 as i32,
                    ..good
                },
                libc::EINVAL,
            ),
            ("in_tmr NULL", tfd, 0, good, libc::EFAULT),
            ("in_tmr unmapped", tfd, 8, good, libc::EFAULT),
        ];
        let mut wrong = Vec::new();
        for (what, f, at, g, want) in cases {
            match ghost_settime(&e.ctl, f, at, g) {
                Err(x) if x == want => {}
                r => wrong.push(format!("{what}: {r:?}, want {}", errno_name(want))),
            }
        }
        // Bad timerfd_settime() flags.
        let mut a = abi::GhostIocTimerfdSettime {
            timerfd: tfd,
            flags: 0x100,
            in_tmr: sp,
            out_tmr: 0,
            timerfd_ghost: good,
        };
        match ioctl(&e.ctl, abi::GHOST_IOC_TIMERFD_SETTIME, (&raw mut a).cast()) {
            Err(libc::EINVAL) => {}
            r => wrong.push(format!("timerfd flags 0x100: {r:?}, want EINVAL")),
        }
        ensure!(wrong.is_empty(), "{}", wrong.join("; "));
        // Nothing was armed.
        let now =
            sys::timerfd_gettime(tfd).map_err(|x| format!("timerfd_gettime: {}", errno_name(x)))?;
        ensure!(
            now.it_value.tv_sec == 0 && now.it_value.tv_nsec == 0,
            "a refused call armed the timerfd"
        );
        // A good call works.
        ghost_settime(&e.ctl, tfd, sp, good)
            .map_err(|x| format!("good TIMERFD_SETTIME: {}", errno_name(x)))?;
        read_count(&fd)?;
        let mut got = Vec::new();
        ensure!(
            expiries(e, &mut got, 1),
            "no CPU_TIMER_EXPIRED after the refusals"
        );
        ensure!(got == [(c1 as i32, 3, 9)], "after the refusals: {got:x?}");
        Ok(())
    })
}

/// A ping of `cpu`'s agent as a greedy transaction (no `COMMIT_AT_*`
/// flag), marked READY in `e`'s `cpu_data` and not committed.
fn ready_ping(e: &Enclave, cpu: usize) {
    e.fill(
        cpu,
        &Txn {
            gtid: abi::GHOST_AGENT_GTID,
            run_flags: 0,
            commit_flags: 0,
            agent_barrier: 0,
            task_barrier: 0,
            version: 0,
        },
    );
}

/// Sets the caller's CPUs back to every CPU.
fn unpin() {
    let n = nr_cpu_ids().unwrap_or(1);
    let all: Vec<usize> = (0..n).collect();
    let _ = sys::set_affinity(0, &all);
}

/// Shared with a child: its step and the state it saw.
#[repr(C)]
struct Probe {
    step: AtomicI32,
    state: AtomicI32,
}

/// Return to user is a commit point: a task on the agent's CPU marks the
/// CPU's greedy transaction READY and makes a system call; when the call
/// returns, the transaction is committed (COMPLETE), without COMMIT_TXN.
fn conf_greedy_commit_return_to_user() -> Result<(), String> {
    let (_, _, c1) = two_cpus()?;
    with_agents(243, &[c1], |_e, agents| {
        agents_asleep(agents)?;
        let sh: &'static Probe = sys::shared_page()?;
        let child = sys::fork_child(|| {
            // `cpu_data` mappings are not inherited: map it again.
            let Ok(e) = observe(243) else {
                return 3;
            };
            if !sys::pin(c1) {
                return 2;
            }
            ready_ping(&e, c1);
            nix::unistd::getppid();
            sh.state.store(e.txn_state(c1), SeqCst);
            0
        })?;
        let exit = sys::wait_child(child)?;
        ensure!(exit == Exit::Code(0), "the task ended {exit:?}");
        let s = sh.state.load(SeqCst);
        ensure!(
            s == abi::GHOST_TXN_COMPLETE,
            "after the system call returned: {}, want COMPLETE",
            crate::harness::state_name(s)
        );
        Ok(())
    })
}

/// `balance` is a commit point: a real-time task on the agent's CPU marks
/// the CPU's greedy transaction READY and blocks (on a pipe): the
/// scheduler's `balance` on that CPU commits it while the task is still
/// blocked (it has not returned to user mode).
fn conf_greedy_commit_at_balance() -> Result<(), String> {
    let (_, c0, c1) = two_cpus()?;
    with_agents(244, &[c1], |e, agents| {
        agents_asleep(agents)?;
        ensure!(sys::pin(c0), "pin to CPU {c0}");
        let r = (|| {
            let sh: &'static Probe = sys::shared_page()?;
            let (rd, wr) = sys::pipe()?;
            let child = sys::fork_child(|| {
                // `cpu_data` mappings are not inherited: map it again.
                let Ok(e) = observe(244) else {
                    return 3;
                };
                if !sys::pin(c1) || sys::set_fifo_self(1).is_err() {
                    return 2;
                }
                ready_ping(&e, c1);
                let mut b = [0u8; 1];
                let _ = (&rd).read(&mut b);
                sh.step.store(1, SeqCst);
                0
            })?;
            let committed = wait_for(5000, || e.txn_state(c1) != abi::GHOST_TXN_READY);
            let blocked = sh.step.load(SeqCst) == 0;
            let _ = (&wr).write(&[1u8]);
            let exit = sys::wait_child(child)?;
            ensure!(exit == Exit::Code(0), "the task ended {exit:?}");
            ensure!(committed, "the READY transaction was never committed");
            ensure!(blocked, "committed only after the task returned to user");
            let s = e.txn_state(c1);
            ensure!(
                s == abi::GHOST_TXN_COMPLETE,
                "committed at balance: {}, want COMPLETE",
                crate::harness::state_name(s)
            );
            Ok(())
        })();
        unpin();
        r
    })
}

/// The tick is a commit point when the enclave's `commit_at_tick` is set:
/// while another CPU of the enclave ticks (a CFS task spins there), the
/// greedy transaction of an idle CPU of the enclave (its agent asleep in
/// `ghost_run`, nothing else of the test there) is committed. (Other
/// processes of the machine may pass the CPU's other commit points first:
/// whether it stays `READY` without `commit_at_tick` is not asserted.)
fn conf_greedy_commit_at_tick() -> Result<(), String> {
    let (_, c0, c1) = two_cpus()?;
    with_agents(245, &[c0, c1], |e, agents| {
        ensure!(sys::pin(c0), "pin to CPU {c0}");
        let r = (|| {
            sys::write_once(&path(245, "commit_at_tick"), b"1")
                .map_err(|x| format!("commit_at_tick: {}", errno_name(x)))?;
            agents_asleep(agents)?;
            // Ticks on c0: a CFS task spins there (the test sleeps there).
            let hog = cfs_hog(c0, 600_000)?;
            let r = (|| {
                ready_ping(e, c1);
                ensure!(
                    wait_for(5000, || e.txn_state(c1) != abi::GHOST_TXN_READY),
                    "commit_at_tick set: the transaction stayed READY"
                );
                let s = e.txn_state(c1);
                ensure!(
                    s == abi::GHOST_TXN_COMPLETE,
                    "committed at the tick: {}, want COMPLETE",
                    crate::harness::state_name(s)
                );
                Ok(())
            })();
            sys::kill(hog, libc::SIGKILL);
            let _ = sys::wait_child(hog);
            r
        })();
        unpin();
        r
    })
}
