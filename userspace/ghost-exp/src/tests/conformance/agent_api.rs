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

use crate::harness::figures;
use crate::harness::sys::affinity_count;
use crate::harness::sys::set_policy;
use crate::harness::sys::{self, errno_name, Exit};
use crate::harness::{attach, become_agent, hog, make_enclave, wait_for};
use crate::harness::{create_enclave, nr_cpu_ids, Test};
use crate::harness::{ioctl, open_rw, path};
use crate::harness::{
    mismatches, nice_of, rig, spinner, state_name, write_errno, Rig, RigUp, FRESH, FRESH_MINUS_1,
    GIVEN, OP_BARRIER, OP_DEFAULT_TO_B, OP_PING, OP_SW_FREE, OP_TIMERFD,
};
use ghost_abi as abi;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering::SeqCst;
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
        name: "conf_timer_settime_from_agent",
        run: conf_timer_settime_from_agent,
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
        let Ok((oq, _)) = crate::harness::create_queue(&octl, 64, -1, 0) else {
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
        out(7, become_agent(&e, c1, q).map_or_else(|x| x, |_| 0));
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
            sys::pause();
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
        // Blocked again after the last wake: a ping before it blocks only
        // moves the barrier it is about to read.
        ensure!(
            wait_for(2000, || sys::asleep(r.b_tid.load(SeqCst))),
            "ping {i}: the agent of CPU {} did not block in ghost_run",
            rig.c1
        );
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
    let task = sys::fork_child(sys::sleep_until_killed)?;
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
    let sent = sys::tgkill(rig.agents, r.b_tid.load(SeqCst), libc::SIGUSR1);
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
    sys::kill(task, libc::SIGKILL);
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
        // (A window of at least 500 ms for the ticks; the task's run is
        // waited for, as a loaded machine may not have run it yet.)
        ensure!(
            wait_for(500, || r.works[0].load(SeqCst) > at),
            "the task did not run {what}"
        );
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

/// agent_test MsgTimerExpired, the setup part (the expiry itself is
/// `conf_timerfd_expired`, timerfd.rs): `GHOST_IOC_TIMERFD_SETTIME` of a
/// real timerfd with a ghost part for `c1` works from an agent and arms the
/// timerfd; closing the timerfd before it expires cancels it, so no
/// CPU_TIMER_EXPIRED comes; from a non-agent, an fd that is no timerfd
/// (descriptor 0) gets EBADF.
fn conf_timer_settime_from_agent() -> Result<(), String> {
    let rig = rig(75)?;
    let r = rig.r;
    let res = rig.command(OP_TIMERFD, rig.c1, 0, 0, 0)?;
    ensure!(
        res == 0,
        "TIMERFD_SETTIME from an agent: {}, want success",
        errno_name(res)
    );
    ensure!(
        r.aux.load(SeqCst) == 1,
        "TIMERFD_SETTIME did not arm the timerfd"
    );
    // Not an agent, and no timerfd.
    let ctl = open_rw(&path(rig.id, "ctl"))?;
    let mut its = sys::itimerspec_ms(0, 0);
    let mut a = abi::GhostIocTimerfdSettime {
        in_tmr: (&raw mut its) as u64,
        ..Default::default()
    };
    let x = ioctl(&ctl, abi::GHOST_IOC_TIMERFD_SETTIME, (&raw mut a).cast());
    ensure!(
        x == Err(libc::EBADF),
        "TIMERFD_SETTIME of fd 0 from a non-agent: {x:?}"
    );
    figures::ops(1);
    std::thread::sleep(Duration::from_millis(200));
    let n = r.b_cpu_msgs[usize::from(abi::MSG_CPU_TIMER_EXPIRED - 128)].load(SeqCst);
    ensure!(n == 0, "{n} CPU_TIMER_EXPIRED of a closed timerfd");
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
    let child = sys::fork_child(sys::sleep_until_killed)?;
    let res = setsched_probes(id, child, &ctl);
    sys::write_once(&path(id, "ctl"), b"destroy")
        .map_err(|x| format!("destroy: {}", errno_name(x)))?;
    if res.is_ok() {
        let p = sys::sched_policy(child);
        ensure!(p == libc::SCHED_OTHER, "task policy {p} after destroy");
        figures::returned(1);
    }
    sys::kill(child, libc::SIGKILL);
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
    let e = sys::setattr_ver0(child, abi::SCHED_GHOST, ctl.as_raw_fd() as u64);
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
        sys::setpriority(0, 7);
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
        let x = sys::setpriority(t, nice);
        ensure!(x == 0, "setpriority {nice}: {}", errno_name(sys::errno()));
        figures::ops(1);
        rig.one_priority_change(p0, nice, &format!("setpriority {nice}"))?;
        ensure!(nice_of(t) == nice, "nice of the task {}", nice_of(t));
    }
    let p0 = prio();
    sys::setpriority(t, 3);
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
