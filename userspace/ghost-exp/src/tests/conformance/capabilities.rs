//! Conformance with ghOSt's `enclave_test` (SetCpus, MmapTxn,
//! DestroyAndSetsched, the `deliver_*` tunables) and `capabilities_test`
//! (what needs `CAP_SYS_NICE` / `CAP_SYS_ADMIN`, what an unprivileged user
//! gets, BPF). `Documentation/ghost-rs/conformance.rst` maps each
//! ghOSt test to the tests here and to older tests that already cover it.
//!
//! Enclave ids 80-91 are used here.

use crate::harness::figures;
use crate::harness::sys::setattr;
use crate::harness::sys::{self, errno_name, Exit, GHOSTFS};
use crate::harness::sys::{become_nobody, bpf_prog_load, ghost_run_ping, setscheduler};
use crate::harness::two_cpus;
use crate::harness::{attach, cfs_hog, make_enclave, start_agent, wait_for, Enclave};
use crate::harness::{create_enclave, destroy_enclave, nr_cpu_ids, Test};
use crate::harness::{create_queue, ioctl, open_ro, open_rw, path};
use ghost_abi as abi;
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::mem::offset_of;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// The capabilities tests, in the order they run.
pub const TESTS: &[Test] = &[
    Test {
        name: "conf_setcpus",
        run: conf_setcpus,
    },
    Test {
        name: "conf_setcpus_agent_cpu",
        run: conf_setcpus_agent_cpu,
    },
    Test {
        name: "conf_mmap_txn",
        run: conf_mmap_txn,
    },
    Test {
        name: "conf_destroy_then_setsched",
        run: conf_destroy_then_setsched,
    },
    Test {
        name: "conf_destroy_join_race",
        run: conf_destroy_join_race,
    },
    Test {
        name: "conf_deliver_tunables",
        run: conf_deliver_tunables,
    },
    Test {
        name: "conf_capabilities",
        run: conf_capabilities,
    },
];

const PAGE: usize = 4096;
const RW: i32 = libc::PROT_READ | libc::PROT_WRITE;
use crate::harness::sys::{CAP_SYS_ADMIN, CAP_SYS_NICE};
/// A result slot no check wrote.
const NOT_RUN: i32 = -999;

/// After a failure: destroys the enclaves (a ghost task without an agent
/// does not even run to die), then kills and reaps the children.
fn reap(failed: bool) {
    if failed {
        let _ = crate::harness::destroy_all_enclaves();
        sys::kill_leftover_children();
    }
}

/// 0 for `Ok`, else the errno (-1 if there is none).
fn code<T>(r: std::io::Result<T>) -> i32 {
    match r {
        Ok(_) => 0,
        Err(e) => e.raw_os_error().unwrap_or(-1),
    }
}

/// 0 or the errno of a `Result<_, i32>`.
fn code_i<T>(r: Result<T, i32>) -> i32 {
    match r {
        Ok(_) => 0,
        Err(e) => e,
    }
}

/// Reads `p` whole: 0 or the errno.
fn read_code(p: &str) -> i32 {
    code(std::fs::read(p))
}

/// Opens `p` for writing only: 0 or the errno.
fn open_w_code(p: &str) -> i32 {
    code(std::fs::OpenOptions::new().write(true).open(p))
}

/// One `write(2)` of `v` to `p`: 0 or the errno.
fn write_code(p: &str, v: &str) -> i32 {
    figures::ops(1);
    code_i(sys::write_once(p, v.as_bytes()))
}

/// One `write(2)` of `v` through `f`: 0 or the errno.
fn write_fd(mut f: &File, v: &str) -> i32 {
    figures::ops(1);
    code(f.write(v.as_bytes()))
}

/// `sched_setattr(pid, policy 18, sched_runtime = fd)`: how ghOSt before
/// ABI 64 entered the class (the ctl fd in `sched_runtime`). 0 or the
/// errno.
fn setattr_ghost(pid: i32, fd: i32) -> i32 {
    figures::ops(1);
    setattr(pid, abi::SCHED_GHOST, 0, fd as u64)
}

/// Waits until `pid` sleeps (state `S` in `/proc/<pid>/stat`).
fn wait_asleep(pid: i32) -> bool {
    wait_for(5000, || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.split(' ').nth(2) == Some("S"))
    })
}

/// A child that sleeps until the test kills it.
fn sleeper() -> Result<i32, String> {
    let pid = sys::fork_child(sys::sleep_until_killed)?;
    ensure!(wait_asleep(pid), "child {pid} did not go to sleep");
    Ok(pid)
}

/// Kills and reaps `pid`.
fn kill(pid: i32) -> Result<Exit, String> {
    sys::kill(pid, libc::SIGKILL);
    sys::wait_child(pid)
}

/// In a child: `become agent <cpu> -1` on enclave `id`'s ctl. Returns the
/// errno (0: it became the agent, and exited).
fn try_become_agent(id: u64, cpu: usize) -> Result<i32, String> {
    figures::ops(1);
    let p = path(id, "ctl");
    let child = sys::fork_child(move || {
        let Ok(ctl) = open_rw(&p) else {
            return 200;
        };
        write_fd(&ctl, &format!("become agent {cpu} -1"))
    })?;
    match sys::wait_child(child)? {
        Exit::Code(c) => Ok(c),
        other => Err(format!("become-agent child ended {other:?}")),
    }
}

/// The hexadecimal `cpumask` of `cpus` (fewer than 64 CPUs).
fn mask(cpus: &[usize]) -> String {
    format!("{:x}", cpus.iter().fold(0u64, |m, &c| m | 1 << c))
}

/// The `cpulist` of two CPUs `a < b`.
fn list2(a: usize, b: usize) -> String {
    if b == a + 1 {
        format!("{a}-{b}")
    } else {
        format!("{a},{b}")
    }
}

fn read(id: u64, f: &str) -> Result<String, String> {
    std::fs::read_to_string(path(id, f)).map_err(|e| format!("enclave_{id}/{f}: {e}"))
}

/// The transaction of `cpu` in a `cpu_data` mapping.
fn txn(m: &sys::Mapping, cpu: usize) -> abi::GhostTxn {
    m.read::<abi::GhostTxn>(cpu * PAGE)
}

/// What a CPU's transaction holds right after the CPU joined an enclave.
fn fresh_txn(m: &sys::Mapping, cpu: usize) -> Result<(), String> {
    let t = txn(m, cpu);
    let owner = m.read::<i32>(cpu * PAGE + offset_of!(abi::GhostTxn, u));
    ensure!(
        t.cpu == cpu as i32
            && t.state == abi::GHOST_TXN_COMPLETE
            && owner == abi::GHOST_NO_SYNC_GROUP_OWNER
            && t.gtid == 0
            && t.version == 0,
        "txn of CPU {cpu} after joining: {t:?} (sync_group_owner {owner})"
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// enclave_test SetCpus

/// ghOSt `EnclaveTest.SetCpus`: the CPUs of a live enclave (one with an
/// agent) grow and shrink through `cpulist` and `cpumask`; a CPU belongs to
/// one enclave (EBUSY, all or nothing); the files read back the set; a CPU
/// that joins gets a fresh transaction, one that stays or leaves keeps its
/// own; `become agent` needs a CPU of the enclave (ENODEV) without an agent
/// (EBUSY); destroy frees the CPUs.
pub fn conf_setcpus() -> Result<(), String> {
    let r = setcpus();
    reap(r.is_err());
    r
}

fn setcpus() -> Result<(), String> {
    sys::ensure_ghostfs()?;
    let (n, c0, c1) = two_cpus()?;
    let (a, b) = (80, 81);
    let write = |id: u64, f: &str, v: &str| write_code(&path(id, f), v);
    let both = list2(c0, c1);
    make_enclave(a, c1)?;
    let cd = open_rw(&path(a, "cpu_data"))?;
    let m = sys::mmap_fd(&cd, n * PAGE, RW, libc::MAP_SHARED, 0)
        .map_err(|e| format!("mmap cpu_data: {}", errno_name(e)))?;
    fresh_txn(&m, c1)?;
    let e = attach(a, c1)?;
    let agent = start_agent(a, &e, c1)?;

    // Growing the live enclave: the new CPU's transaction is reset, the
    // agent's CPU keeps what its transaction holds.
    m.write::<i64>(c1 * PAGE + offset_of!(abi::GhostTxn, gtid), 0x5a5a);
    let r = write(a, "cpulist", &both);
    ensure!(r == 0, "growing to {both}: {}", errno_name(r));
    ensure!(
        read(a, "cpulist")? == format!("{both}\n"),
        "cpulist after growing: {:?}",
        read(a, "cpulist")?
    );
    ensure!(
        read(a, "cpumask")? == format!("{}\n", mask(&[c0, c1])),
        "cpumask after growing: {:?}",
        read(a, "cpumask")?
    );
    fresh_txn(&m, c0)?;
    ensure!(
        txn(&m, c1).gtid == 0x5a5a && txn(&m, c1).state == abi::GHOST_TXN_COMPLETE,
        "the txn of CPU {c1}, which stayed, changed: {:?}",
        txn(&m, c1)
    );
    ensure!(
        sys::sched_policy(agent) == abi::SCHED_GHOST | libc::SCHED_RESET_ON_FORK,
        "the agent lost its policy when its enclave grew"
    );

    // Another enclave can take none of them; a refused write changes
    // nothing.
    create_enclave(&format!("create {b} 91"))?;
    for (f, v) in [
        ("cpulist", c0.to_string()),
        ("cpulist", c1.to_string()),
        ("cpulist", both.clone()),
        ("cpumask", mask(&[c0])),
        ("cpumask", mask(&[c0, c1])),
    ] {
        let r = write(b, f, &v);
        ensure!(
            r == libc::EBUSY,
            "enclave_{b} {f} {v} while enclave_{a} has them: {}, want EBUSY",
            errno_name(r)
        );
    }
    ensure!(
        read(b, "cpulist")? == "\n",
        "enclave_{b} cpulist after refusals: {:?}",
        read(b, "cpulist")?
    );
    ensure!(
        read(a, "cpulist")? == format!("{both}\n"),
        "enclave_{a} cpulist changed by another enclave's refusals"
    );

    // Shrinking through cpumask: the CPU without an agent leaves and keeps
    // its transaction.
    m.write::<i64>(c0 * PAGE + offset_of!(abi::GhostTxn, gtid), 0x6b6b);
    let r = write(a, "cpumask", &mask(&[c1]));
    ensure!(r == 0, "shrinking to CPU {c1}: {}", errno_name(r));
    ensure!(
        read(a, "cpulist")? == format!("{c1}\n"),
        "cpulist after shrinking: {:?}",
        read(a, "cpulist")?
    );
    ensure!(
        read(a, "cpumask")? == format!("{}\n", mask(&[c1])),
        "cpumask after shrinking: {:?}",
        read(a, "cpumask")?
    );
    ensure!(
        txn(&m, c0).gtid == 0x6b6b && txn(&m, c0).cpu == c0 as i32,
        "the txn of CPU {c0}, which left, changed: {:?}",
        txn(&m, c0)
    );
    // Writing the same set again is no change.
    let r = write(a, "cpulist", &c1.to_string());
    ensure!(r == 0, "writing the same set: {}", errno_name(r));

    // The freed CPU joins the other enclave, which then owns it.
    let r = write(b, "cpulist", &c0.to_string());
    ensure!(
        r == 0,
        "enclave_{b} taking the freed CPU: {}",
        errno_name(r)
    );
    let r = write(a, "cpulist", &both);
    ensure!(
        r == libc::EBUSY,
        "enclave_{a} taking back CPU {c0}: {}, want EBUSY",
        errno_name(r)
    );
    ensure!(
        read(a, "cpulist")? == format!("{c1}\n"),
        "enclave_{a} cpulist after a refused grow: {:?}",
        read(a, "cpulist")?
    );

    // An agent needs a CPU of its enclave, without an agent.
    let r = try_become_agent(a, c0)?;
    ensure!(
        r == libc::ENODEV,
        "become agent on another enclave's CPU: {}, want ENODEV",
        errno_name(r)
    );
    let r = try_become_agent(a, c1)?;
    ensure!(
        r == libc::EBUSY,
        "become agent on a CPU with an agent: {}, want EBUSY",
        errno_name(r)
    );

    // Destroy frees the CPUs (the agent dies with the enclave).
    destroy_enclave(a)?;
    let exit = sys::wait_child(agent)?;
    ensure!(exit == Exit::Signal(libc::SIGKILL), "agent ended {exit:?}");
    let r = write(b, "cpumask", &mask(&[c0, c1]));
    ensure!(
        r == 0,
        "taking the CPUs of a destroyed enclave: {}",
        errno_name(r)
    );
    ensure!(
        read(b, "cpulist")? == format!("{both}\n"),
        "cpulist {:?}",
        read(b, "cpulist")?
    );
    drop((m, e));
    destroy_enclave(b)?;
    Ok(())
}

/// SetCpus and a CPU that has an agent: ghOSt refuses to take such a CPU
/// out of its enclave (`EEXIST`, ghost-abi.md section 4), so an agent never
/// runs on a CPU its enclave does not own. Checks the refusal, that the
/// set is unchanged, that no other enclave can take the CPU, and that once
/// the agent is gone the CPU leaves normally.
pub fn conf_setcpus_agent_cpu() -> Result<(), String> {
    let r = setcpus_agent_cpu();
    reap(r.is_err());
    r
}

fn setcpus_agent_cpu() -> Result<(), String> {
    sys::ensure_ghostfs()?;
    let (_, c0, c1) = two_cpus()?;
    let (a, b) = (82, 83);
    let write = |id: u64, f: &str, v: &str| write_code(&path(id, f), v);
    let both = list2(c0, c1);
    make_enclave(a, c1)?;
    let r = write(a, "cpulist", &both);
    ensure!(r == 0, "cpulist {both}: {}", errno_name(r));
    let e = attach(a, c1)?;
    let agent = start_agent(a, &e, c1)?;
    create_enclave(&format!("create {b} 91"))?;
    // Enclave b has a default queue, so that `become agent <cpu> -1` there
    // gets as far as the CPU's agent.
    let b_ctl = open_rw(&path(b, "ctl"))?;
    let (b_queue, _) =
        create_queue(&b_ctl, 64, -1, 0).map_err(|x| format!("CREATE_QUEUE: {}", errno_name(x)))?;
    let mut dq = abi::GhostIocSetDefaultQueue {
        fd: b_queue.as_raw_fd(),
    };
    ioctl(
        &b_ctl,
        abi::GHOST_IOC_SET_DEFAULT_QUEUE,
        (&raw mut dq).cast(),
    )
    .map_err(|x| format!("SET_DEFAULT_QUEUE: {}", errno_name(x)))?;

    let removals = [
        ("cpulist", c0.to_string()),
        ("cpulist", "\n".to_string()),
        ("cpumask", mask(&[c0])),
    ];
    let mut wrong = Vec::new();
    for (f, v) in &removals {
        let r = write(a, f, v);
        let after = read(a, "cpulist")?;
        if r != libc::EEXIST || after != format!("{both}\n") {
            // Put it back for the next case and say what happened,
            // including whether another enclave could then take the CPU
            // the agent still runs on.
            let taken = write(b, "cpulist", &c1.to_string());
            let agent_of_b = if taken == 0 {
                try_become_agent(b, c1)?
            } else {
                -1
            };
            wrong.push(format!(
                "{f} {v:?} removing CPU {c1} (with an agent): {} (cpulist then {after:?}; \
                 enclave_{b} taking CPU {c1}: {}; become agent there: {})",
                errno_name(r),
                errno_name(taken),
                if agent_of_b < 0 {
                    "-".to_string()
                } else {
                    errno_name(agent_of_b)
                }
            ));
            write(b, "cpulist", "\n");
            write(a, "cpulist", &both);
        }
    }
    ensure!(
        sys::sched_policy(agent) == abi::SCHED_GHOST | libc::SCHED_RESET_ON_FORK,
        "agent policy {:#x}",
        sys::sched_policy(agent)
    );
    // Once the agent is gone the CPU leaves.
    kill(agent)?;
    let r = wait_for(5000, || write(a, "cpulist", &c0.to_string()) == 0);
    ensure!(r, "CPU {c1} could not leave once its agent died");
    ensure!(
        write(b, "cpulist", &c1.to_string()) == 0,
        "enclave_{b} could not take CPU {c1} after it left enclave_{a}"
    );
    drop((e, b_queue, b_ctl));
    destroy_enclave(a)?;
    destroy_enclave(b)?;
    ensure!(
        wrong.is_empty(),
        "want EEXIST and no change: {}",
        wrong.join("; ")
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// enclave_test MmapTxn

/// ghOSt `EnclaveTest.MmapTxn`: `cpu_data` is one page per possible CPU,
/// page i holding CPU i's transaction (`cpu` = i) once the CPU is in the
/// enclave; mappings share pages; a read-only descriptor maps read-only and
/// cannot be made writable; a mapping cannot be executable, per CPU (offset
/// or length of one page), inherited by a child, or used through
/// read(2)/write(2). (`cpu_data_mmap` covers the size, mode, zeroing and the
/// refused mmap flags.)
pub fn conf_mmap_txn() -> Result<(), String> {
    let r = mmap_txn();
    reap(r.is_err());
    r
}

fn mmap_txn() -> Result<(), String> {
    sys::ensure_ghostfs()?;
    let (n, c0, c1) = two_cpus()?;
    let len = n * PAGE;
    let id = 84;
    make_enclave(id, c1)?;
    let all = format!("0-{}", n - 1);
    let r = write_code(&path(id, "cpulist"), &all);
    ensure!(r == 0, "cpulist {all}: {}", errno_name(r));
    let p = path(id, "cpu_data");
    let size = std::fs::metadata(&p).map_err(|e| e.to_string())?.len();
    ensure!(size as usize == len, "cpu_data size {size}, want {len}");
    let f = open_rw(&p)?;
    let m = sys::mmap_fd(&f, len, RW, libc::MAP_SHARED, 0)
        .map_err(|e| format!("mmap cpu_data: {}", errno_name(e)))?;
    figures::ops(1);
    // One transaction per CPU, at the start of the CPU's page; the rest of
    // each page is zero.
    for cpu in 0..n {
        fresh_txn(&m, cpu)?;
        let rest = (cpu * PAGE + 64..(cpu + 1) * PAGE)
            .step_by(8)
            .all(|off| m.read::<u64>(off) == 0);
        ensure!(rest, "page {cpu} of cpu_data has data after its txn");
    }
    // A read-only descriptor maps read-only and sees the same pages.
    let ro = open_ro(&p)?;
    let mr = sys::mmap_fd(&ro, len, libc::PROT_READ, libc::MAP_SHARED, 0)
        .map_err(|e| format!("read-only mmap: {}", errno_name(e)))?;
    m.write::<i64>(c1 * PAGE + offset_of!(abi::GhostTxn, gtid), 0x77);
    ensure!(
        txn(&mr, c1).gtid == 0x77,
        "the read-only mapping does not share the txn pages"
    );
    figures::ops(4);
    let r = mr.protect(RW);
    ensure!(
        r == Err(libc::EACCES),
        "mprotect(PROT_WRITE) of a read-only fd's mapping: {r:?}, want EACCES"
    );
    let r = m.protect(libc::PROT_READ | libc::PROT_EXEC);
    ensure!(
        r == Err(libc::EACCES),
        "mprotect(PROT_EXEC): {r:?}, want EACCES"
    );
    // No per-CPU mapping: one page, at CPU 1's offset or at 0.
    for (what, l, off) in [
        ("CPU 1's page", PAGE, PAGE as i64),
        ("one page at 0", PAGE, 0),
    ] {
        let r = sys::mmap_fd(&f, l, RW, libc::MAP_SHARED, off).map(|_| ());
        ensure!(r == Err(libc::EINVAL), "mmap of {what}: {r:?}, want EINVAL");
    }
    // Only mmap: read(2) and write(2) fail.
    let mut buf = [0u8; 64];
    let r = code((&f).read(&mut buf));
    ensure!(r == libc::EINVAL, "read(cpu_data): {}", errno_name(r));
    let r = code((&f).write(&buf));
    ensure!(r == libc::EINVAL, "write(cpu_data): {}", errno_name(r));
    // Not inherited: the range is unmapped in a child.
    let child = sys::fork_child(|| {
        let _ = m.read::<u32>(0);
        0
    })?;
    let exit = sys::wait_child(child)?;
    ensure!(
        exit == Exit::Signal(libc::SIGSEGV),
        "a child touching the parent's cpu_data mapping: {exit:?}, want SIGSEGV"
    );
    // The size does not follow the enclave's CPUs; a CPU that leaves keeps
    // its transaction, and gets a fresh one when it joins again.
    let r = write_code(&path(id, "cpulist"), &c0.to_string());
    ensure!(r == 0, "cpulist {c0}: {}", errno_name(r));
    let size = std::fs::metadata(&p).map_err(|e| e.to_string())?.len();
    ensure!(size as usize == len, "cpu_data size {size} with one CPU");
    ensure!(
        txn(&m, c1).gtid == 0x77,
        "the txn of a CPU that left changed"
    );
    let r = write_code(&path(id, "cpulist"), &all);
    ensure!(r == 0, "cpulist {all} again: {}", errno_name(r));
    fresh_txn(&m, c1)?;
    drop((m, mr));
    destroy_enclave(id)?;
    Ok(())
}

// ---------------------------------------------------------------------------
// enclave_test DestroyAndSetsched

/// Shared with the workers of the destroy tests.
#[repr(C)]
struct Workers {
    works: [AtomicU64; 8],
    stop: AtomicU32,
}

/// A worker: counts, napping 1 ms between counts, until told to stop.
fn worker(w: &'static Workers, k: usize) -> Result<i32, String> {
    sys::fork_child(move || {
        while w.stop.load(Ordering::SeqCst) == 0 {
            w.works[k].fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(1));
        }
        0
    })
}

/// Worker `k` is in CFS and makes progress.
fn runs_in_cfs(w: &Workers, k: usize, pid: i32) -> Result<(), String> {
    ensure!(
        wait_for(5000, || sys::sched_policy(pid) == libc::SCHED_OTHER),
        "worker {k} policy {}, want SCHED_OTHER",
        sys::sched_policy(pid)
    );
    let at = w.works[k].load(Ordering::SeqCst);
    ensure!(
        wait_for(5000, || w.works[k].load(Ordering::SeqCst) > at + 20),
        "worker {k} does not run"
    );
    Ok(())
}

/// ghOSt `EnclaveTest.DestroyAndSetsched`: once an enclave is destroyed,
/// its tasks are back in CFS and running; entering the gone enclave fails
/// (ENODEV through a descriptor opened before, ENOENT by path; EBADF for
/// `sched_setscheduler`/`sched_setattr` to 18, with or without the ctl fd
/// as in ghOSt before ABI 64) and the task stays in CFS; a new enclave with
/// the same id is not reachable through the old descriptors.
pub fn conf_destroy_then_setsched() -> Result<(), String> {
    let w: &Workers = sys::shared_page()?;
    let r = destroy_then_setsched(w);
    w.stop.store(1, Ordering::SeqCst);
    reap(r.is_err());
    r
}

fn destroy_then_setsched(w: &'static Workers) -> Result<(), String> {
    sys::ensure_ghostfs()?;
    let (_, _, c1) = two_cpus()?;
    let id = 85;
    make_enclave(id, c1)?;
    let out = worker(w, 0)?;
    let inside = worker(w, 1)?;
    let tasks = open_rw(&path(id, "tasks"))?;
    let ctl = open_rw(&path(id, "ctl"))?;
    let r = write_fd(&tasks, &inside.to_string());
    ensure!(r == 0, "join: {}", errno_name(r));
    ensure!(
        sys::sched_policy(inside) == abi::SCHED_GHOST,
        "joined worker policy {}",
        sys::sched_policy(inside)
    );
    figures::entered(1);
    destroy_enclave(id)?;
    runs_in_cfs(w, 1, inside)?;
    figures::returned(1);

    // Entering the gone enclave.
    for (what, r, want) in [
        (
            "tasks write of a pid (held fd)",
            write_fd(&tasks, &out.to_string()),
            libc::ENODEV,
        ),
        (
            "tasks write of 0 (held fd)",
            write_fd(&tasks, "0"),
            libc::ENODEV,
        ),
        (
            "tasks write of the task that was inside (held fd)",
            write_fd(&tasks, &inside.to_string()),
            libc::ENODEV,
        ),
        (
            "tasks write by path",
            write_code(&path(id, "tasks"), &out.to_string()),
            libc::ENOENT,
        ),
        (
            "ioctl on the held ctl",
            code_i(ioctl(&ctl, abi::GHOST_IOC_NULL, std::ptr::null_mut())),
            libc::ENODEV,
        ),
        (
            "sched_setscheduler(18)",
            setscheduler(out, abi::SCHED_GHOST, 0),
            libc::EBADF,
        ),
        (
            "sched_setscheduler(18) of the task that was inside",
            setscheduler(inside, abi::SCHED_GHOST, 0),
            libc::EBADF,
        ),
        (
            "sched_setattr(18, runtime = the held ctl fd)",
            setattr_ghost(out, ctl.as_raw_fd()),
            libc::EBADF,
        ),
        (
            "sched_setattr(18, runtime = the held tasks fd) of the task that was inside",
            setattr_ghost(inside, tasks.as_raw_fd()),
            libc::EBADF,
        ),
    ] {
        ensure!(
            r == want,
            "{what}: {}, want {}",
            errno_name(r),
            errno_name(want)
        );
    }
    // become agent through the held ctl, in a child (if it worked, the
    // caller would be an agent).
    let p = ctl.as_raw_fd();
    let child = sys::fork_child(move || {
        let cmd = format!("become agent {c1} -1");
        let r = sys::write_raw(p, cmd.as_bytes());
        if r < 0 {
            sys::errno()
        } else {
            0
        }
    })?;
    let exit = sys::wait_child(child)?;
    ensure!(
        exit == Exit::Code(libc::ENODEV),
        "become agent through the held ctl: {exit:?}, want exit {} (ENODEV)",
        libc::ENODEV
    );
    runs_in_cfs(w, 0, out)?;
    runs_in_cfs(w, 1, inside)?;

    // A new enclave with the same id: the old descriptors still lead
    // nowhere; the new files work.
    make_enclave(id, c1)?;
    let r = write_fd(&tasks, &out.to_string());
    ensure!(
        r == libc::ENODEV,
        "held tasks fd of the old enclave_{id}, after a new one: {}",
        errno_name(r)
    );
    ensure!(
        sys::sched_policy(out) == libc::SCHED_OTHER,
        "the old fd moved the task"
    );
    let r = write_code(&path(id, "tasks"), &out.to_string());
    ensure!(r == 0, "join the new enclave_{id}: {}", errno_name(r));
    figures::entered(1);
    destroy_enclave(id)?;
    runs_in_cfs(w, 0, out)?;
    figures::returned(1);
    w.stop.store(1, Ordering::SeqCst);
    for (k, p) in [out, inside].into_iter().enumerate() {
        let exit = sys::wait_child(p)?;
        ensure!(exit == Exit::Code(0), "worker {k} ended {exit:?}");
    }
    Ok(())
}

/// DestroyAndSetsched as a race: a thread keeps writing the pids of three
/// workers to a held `tasks` fd while the enclave is destroyed. Every write
/// succeeds (before the destroy), or fails with EXDEV (during) or ENODEV
/// (after); no task is left in the ghost class; all run in CFS afterwards.
pub fn conf_destroy_join_race() -> Result<(), String> {
    let w: &Workers = sys::shared_page()?;
    let r = destroy_join_race(w);
    w.stop.store(1, Ordering::SeqCst);
    reap(r.is_err());
    r
}

fn destroy_join_race(w: &'static Workers) -> Result<(), String> {
    sys::ensure_ghostfs()?;
    let (_, _, c1) = two_cpus()?;
    let id = 86;
    let mut seen: HashMap<i32, u64> = HashMap::new();
    for round in 0..6u64 {
        w.stop.store(0, Ordering::SeqCst);
        make_enclave(id, c1)?;
        let pids: Vec<i32> = (0..3).map(|k| worker(w, k)).collect::<Result<_, _>>()?;
        let tasks = open_rw(&path(id, "tasks"))?;
        let pids2 = pids.clone();
        // The writer: until every pid got ENODEV (a few ms; at most the
        // hang cap).
        let writer = std::thread::spawn(move || {
            let mut results = Vec::new();
            let mut joined = [false; 3];
            let end =
                std::time::Instant::now() + Duration::from_millis(crate::harness::hang_cap(5000));
            let mut gone = [false; 3];
            while !gone.iter().all(|g| *g) && std::time::Instant::now() < end {
                for (k, p) in pids2.iter().enumerate() {
                    let r = write_fd(&tasks, &p.to_string());
                    joined[k] |= r == 0;
                    gone[k] |= r == libc::ENODEV;
                    results.push(r);
                }
            }
            (results, joined)
        });
        std::thread::sleep(Duration::from_millis(round * 4));
        destroy_enclave(id)?;
        let (results, joined) = writer.join().map_err(|_| "writer panicked")?;
        for &r in &results {
            *seen.entry(r).or_default() += 1;
        }
        let bad: Vec<String> = results
            .iter()
            .filter(|&&r| r != 0 && r != libc::ENODEV && r != libc::EXDEV)
            .map(|&r| errno_name(r))
            .collect();
        ensure!(bad.is_empty(), "round {round}: joins failed with {bad:?}");
        ensure!(
            results.last() == Some(&libc::ENODEV),
            "round {round}: the last join did not fail with ENODEV ({} writes)",
            results.len()
        );
        let entered = joined.iter().filter(|j| **j).count() as u64;
        figures::entered(entered);
        for (k, &p) in pids.iter().enumerate() {
            runs_in_cfs(w, k, p)?;
        }
        figures::returned(entered);
        w.stop.store(1, Ordering::SeqCst);
        for p in pids {
            let exit = sys::wait_child(p)?;
            ensure!(
                exit == Exit::Code(0),
                "round {round}: worker ended {exit:?}"
            );
        }
    }
    ensure!(
        seen.get(&0).copied().unwrap_or(0) > 0,
        "no join succeeded before a destroy: {seen:?}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// enclave_test deliver_* tunables

/// What the queue held, by message type.
type Counts = HashMap<u16, u32>;

/// Reads every message of `e`'s queue into `counts`; checks that each CPU
/// message is about `cpu`; returns the status-word index of the last
/// TASK_NEW, if any.
fn drain(e: &Enclave, cpu: usize, counts: &mut Counts) -> Result<Option<u32>, String> {
    let mut new_word = None;
    while let Some(m) = e.pop() {
        let (ty, p) = (m.ty, m.payload);
        if ty == abi::MSG_NOP {
            continue;
        }
        *counts.entry(ty).or_default() += 1;
        if (abi::MSG_CPU_FIRST..=abi::MSG_CPU_LAST).contains(&ty) {
            let about = p
                .get(..4)
                .map(|b| i32::from_ne_bytes(b.try_into().unwrap_or_default()));
            ensure!(
                about == Some(cpu as i32),
                "CPU message {ty} about CPU {about:?}, want {cpu}"
            );
        }
        if ty == abi::MSG_TASK_NEW {
            let off = offset_of!(abi::GhostMsgPayloadTaskNew, sw_info) + 4;
            new_word = p
                .get(off..off + 4)
                .map(|b| u32::from_ne_bytes(b.try_into().unwrap_or_default()));
        }
    }
    Ok(new_word)
}

/// Drains until `f(counts)` holds, at most `ms`.
fn drain_until(
    e: &Enclave,
    cpu: usize,
    counts: &mut Counts,
    ms: u64,
    f: impl Fn(&Counts) -> bool,
) -> Result<Option<u32>, String> {
    // `ms` is what a quiet machine needs; a loaded one gets the hang cap.
    let end = std::time::Instant::now() + Duration::from_millis(crate::harness::hang_cap(ms));
    let mut word = None;
    loop {
        if let Some(w) = drain(e, cpu, counts)? {
            word = Some(w);
        }
        if f(counts) || std::time::Instant::now() > end {
            return Ok(word);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// ghOSt's tunables tests: each `deliver_*` file on and off, with an agent
/// on CPU c1 whose queue the test reads. In each phase the CPU gets a CFS
/// hog (ticks, CPU busy and available again) and a task joins and leaves
/// (TASK_NEW wakes the agent: it wakes, naps outside ghost_run and blocks
/// in it again). A message type appears
/// only while its tunable is 1: `deliver_ticks` → CPU_TICK,
/// `deliver_cpu_availability` → CPU_BUSY and CPU_AVAILABLE,
/// `deliver_agent_runnability` → CPU_AGENT_WAKEUP and CPU_AGENT_BLOCKED.
/// These three are the only `deliver_*` files (ABI 91); task messages
/// (affinity changes included) are always delivered.
pub fn conf_deliver_tunables() -> Result<(), String> {
    let r = deliver_tunables();
    let all: Vec<usize> = (0..nr_cpu_ids().unwrap_or(1)).collect();
    let _ = sys::set_affinity(0, &all);
    reap(r.is_err());
    r
}

fn deliver_tunables() -> Result<(), String> {
    sys::ensure_ghostfs()?;
    let (_, c0, c1) = two_cpus()?;
    let id = 87;
    make_enclave(id, c1)?;
    let mut deliver: Vec<String> = std::fs::read_dir(format!("{GHOSTFS}/enclave_{id}"))
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|d| d.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("deliver_"))
        .collect();
    deliver.sort();
    ensure!(
        deliver
            == [
                "deliver_agent_runnability",
                "deliver_cpu_availability",
                "deliver_ticks"
            ],
        "deliver_* files: {deliver:?}"
    );
    let e = attach(id, c1)?;
    let agent = start_agent(id, &e, c1)?;
    let task = sleeper()?;
    // The test stays off c1 (the hog and the agent are pinned there).
    sys::set_affinity(0, &[c0]).map_err(|x| format!("affinity: {}", errno_name(x)))?;
    let ctl = &e.ctl;
    const TUNABLES: [&str; 3] = [
        "deliver_ticks",
        "deliver_cpu_availability",
        "deliver_agent_runnability",
    ];
    // (type, name, index of its tunable)
    let kinds: [(u16, &str, usize); 5] = [
        (abi::MSG_CPU_TICK, "CPU_TICK", 0),
        (abi::MSG_CPU_BUSY, "CPU_BUSY", 1),
        (abi::MSG_CPU_AVAILABLE, "CPU_AVAILABLE", 1),
        (abi::MSG_CPU_AGENT_BLOCKED, "CPU_AGENT_BLOCKED", 2),
        (abi::MSG_CPU_AGENT_WAKEUP, "CPU_AGENT_WAKEUP", 2),
    ];
    let phases: [[bool; 3]; 6] = [
        [false, false, false],
        [true, false, false],
        [false, true, false],
        [false, false, true],
        [true, true, true],
        [false, false, false],
    ];
    let mut report = Vec::new();
    for on in phases {
        for (t, &v) in TUNABLES.iter().zip(&on) {
            let r = write_code(&path(id, t), if v { "1" } else { "0" });
            ensure!(r == 0, "{t}: {}", errno_name(r));
            let back = read(id, t)?;
            // "0" or "1", no newline (ghOSt's format).
            ensure!(back == u8::from(v).to_string(), "{t} reads {back:?}");
        }
        // What the last phase left in flight, then a clean count.
        std::thread::sleep(Duration::from_millis(50));
        let mut junk = Counts::new();
        drain(&e, c1, &mut junk)?;
        let mut counts = Counts::new();
        // A task joins (TASK_NEW wakes the agent) ...
        let r = write_code(&path(id, "tasks"), &task.to_string());
        ensure!(r == 0, "join: {}", errno_name(r));
        figures::entered(1);
        let word = drain_until(&e, c1, &mut counts, 3000, |c| {
            c.contains_key(&abi::MSG_TASK_NEW)
        })?;
        let Some(word) = word else {
            return Err(format!("no TASK_NEW for the joining task: {counts:?}"));
        };
        // ... a CFS task has the CPU for a while ...
        let hog = cfs_hog(c1, 200)?;
        let exit = sys::wait_child(hog)?;
        ensure!(exit == Exit::Code(0), "hog ended {exit:?}");
        // ... and the task leaves (TASK_DEPARTED), its word freed.
        let r = setscheduler(task, libc::SCHED_OTHER, 0);
        ensure!(r == 0, "depart: {}", errno_name(r));
        figures::returned(1);
        drain_until(&e, c1, &mut counts, 3000, |c| {
            c.contains_key(&abi::MSG_TASK_DEPARTED)
        })?;
        let mut info = abi::GhostSwInfo { id: 0, index: word };
        ioctl(ctl, abi::GHOST_IOC_SW_FREE, (&raw mut info).cast())
            .map_err(|x| format!("SW_FREE: {}", errno_name(x)))?;
        // What comes late: at least 100 ms (for what must not come), and
        // until every type whose tunable is on came (a loaded machine may
        // not have sent it yet).
        std::thread::sleep(Duration::from_millis(100));
        drain_until(&e, c1, &mut counts, 100, |c| {
            kinds
                .iter()
                .all(|&(t, _, i)| !on[i] || c.get(&t).is_some_and(|&n| n > 0))
        })?;
        let n = |t: u16| counts.get(&t).copied().unwrap_or(0);
        for (t, want) in [(abi::MSG_TASK_NEW, 1), (abi::MSG_TASK_DEPARTED, 1)] {
            ensure!(
                n(t) == want,
                "phase {on:?}: {} of type {t}: {counts:?}",
                n(t)
            );
        }
        for (t, name, i) in kinds {
            if on[i] != (n(t) > 0) {
                report.push(format!(
                    "{}={} but {} {name}",
                    TUNABLES[i],
                    u8::from(on[i]),
                    n(t)
                ));
            }
        }
        for (t, name) in [
            (abi::MSG_CPU_NOT_IDLE, "CPU_NOT_IDLE"),
            (abi::MSG_CPU_TIMER_EXPIRED, "CPU_TIMER_EXPIRED"),
        ] {
            if n(t) > 0 {
                report.push(format!("phase {on:?}: {} {name}", n(t)));
            }
        }
    }
    ensure!(
        sys::sched_policy(task) == libc::SCHED_OTHER,
        "the task is not back in CFS"
    );
    kill(task)?;
    destroy_enclave(id)?;
    let exit = sys::wait_child(agent)?;
    ensure!(exit == Exit::Signal(libc::SIGKILL), "agent ended {exit:?}");
    drop(e);
    ensure!(report.is_empty(), "{}", report.join("; "));
    Ok(())
}

// ---------------------------------------------------------------------------
// capabilities_test

/// Results of the checks a child ran (`NOT_RUN` until it ran).
#[repr(C)]
struct Outcomes {
    r: [AtomicI32; 32],
    up: AtomicI32,
    works: AtomicU64,
    stop: AtomicU32,
}

impl Outcomes {
    fn reset(&self) {
        for r in &self.r {
            r.store(NOT_RUN, Ordering::SeqCst);
        }
        self.up.store(0, Ordering::SeqCst);
        self.works.store(0, Ordering::SeqCst);
        self.stop.store(0, Ordering::SeqCst);
    }

    fn set(&self, i: usize, v: i32) {
        self.r[i].store(v, Ordering::SeqCst);
    }
}

/// One check: its slot, what it does, the errnos it may end with (0:
/// allowed).
type Check = (usize, &'static str, &'static [i32]);

/// Compares what the child recorded with `checks`; one line per mismatch.
fn compare(who: &str, o: &Outcomes, checks: &[Check], wrong: &mut Vec<String>) {
    figures::ops(checks.len() as u64);
    for &(i, what, want) in checks {
        let got = o.r[i].load(Ordering::SeqCst);
        if !want.contains(&got) {
            let names: Vec<String> = want
                .iter()
                .map(|&w| {
                    if w == 0 {
                        "ok".to_string()
                    } else {
                        errno_name(w)
                    }
                })
                .collect();
            let got = match got {
                0 => "ok".to_string(),
                NOT_RUN => "not run".to_string(),
                g => errno_name(g),
            };
            wrong.push(format!("{who}: {what}: {got}, want {}", names.join(" or ")));
        }
    }
}

/// Runs `body` in a child after `shed` (the privileges to shed; exit 100
/// if that fails); returns how it ended.
fn run_child(
    o: &'static Outcomes,
    shed: fn() -> bool,
    body: impl FnOnce(&Outcomes),
) -> Result<Exit, String> {
    o.reset();
    let child = sys::fork_child(move || {
        if !shed() {
            return 100;
        }
        body(o);
        0
    })?;
    sys::wait_child(child)
}

/// ghOSt `capabilities_test` and the file modes of ghostfs: what an
/// unprivileged user (uid 65534, with and without the enclave's group) and
/// root without `CAP_SYS_ADMIN` or without `CAP_SYS_NICE` may do. Creating
/// and destroying enclaves and setting their CPUs need `CAP_SYS_ADMIN`;
/// becoming an agent, `ghost_run` and moving another process's task need
/// `CAP_SYS_NICE`; everything else follows the file modes. BPF: the kernel
/// has no `bpf(2)` (ghost-rs has no BPF).
pub fn conf_capabilities() -> Result<(), String> {
    let o: &Outcomes = sys::shared_page()?;
    let r = capabilities(o);
    o.stop.store(1, Ordering::SeqCst);
    reap(r.is_err());
    r
}

fn capabilities(o: &'static Outcomes) -> Result<(), String> {
    sys::ensure_ghostfs()?;
    let (_, _, c1) = two_cpus()?;
    let me = std::process::id() as i32;
    let (plain, noregion, grouped) = (88u64, 89u64, 90u64);
    make_enclave(plain, c1)?;
    create_enclave(&format!("create {noregion} 91"))?;
    create_enclave(&format!("create {grouped} 91 gid=4242"))?;
    sys::write_once(&path(grouped, "ctl"), b"create sw_region 0 0")
        .map_err(|e| format!("sw_region: {}", errno_name(e)))?;
    let mnt = "/tmp/conf-caps-mnt";
    std::fs::create_dir_all(mnt).map_err(|e| format!("{mnt}: {e}"))?;
    let mut wrong = Vec::new();
    let (ok, eacces, eperm) = (&[0][..], &[libc::EACCES][..], &[libc::EPERM][..]);
    // Without CONFIG_BPF_SYSCALL, bpf(2) is ENOSYS; with it (the bench
    // kernel variant), an unknown program type is EINVAL (root) or EPERM
    // (unprivileged), and this load of no instructions is E2BIG, which
    // the kernel checks first.
    let (bpf_root, bpf_user) = (
        &[libc::ENOSYS, libc::EINVAL, libc::E2BIG][..],
        &[libc::ENOSYS, libc::EPERM, libc::EINVAL, libc::E2BIG][..],
    );

    let r = bpf_prog_load();
    if !bpf_root.contains(&r) {
        wrong.push(format!("root: bpf(BPF_PROG_LOAD): {}", errno_name(r)));
    }

    // uid 65534, not in the enclave's group: the "other" bits.
    let exit = run_child(
        o,
        || become_nobody(65534),
        |o| {
            let f = |x: &str| format!("{GHOSTFS}/{x}");
            o.set(0, read_code(&f("version")));
            o.set(1, open_w_code(&f("ctl")));
            for (i, file) in [
                "status",
                "abi_version",
                "ctl",
                "cpulist",
                "cpumask",
                "deliver_ticks",
                "runnable_timeout",
                "tasks",
                "agent_online",
            ]
            .iter()
            .enumerate()
            {
                o.set(2 + i, read_code(&path(88, file)));
            }
            for (i, file) in [
                "ctl",
                "cpulist",
                "cpumask",
                "deliver_ticks",
                "runnable_timeout",
                "agent_online",
            ]
            .iter()
            .enumerate()
            {
                o.set(11 + i, open_w_code(&path(88, file)));
            }
            o.set(17, code(File::open(path(88, "cpu_data"))));
            o.set(18, code(File::open(path(88, "sw_regions/sw_0"))));
            o.set(19, code(std::fs::read_dir(path(88, "sw_regions"))));
            o.set(20, write_code(&path(89, "tasks"), "0"));
            o.set(21, write_code(&path(88, "tasks"), &me.to_string()));
            o.set(22, write_code(&path(88, "tasks"), "1"));
            o.set(23, code_i(sys::mount_ghostfs("/tmp/conf-caps-mnt")));
            o.set(24, setscheduler(0, abi::SCHED_GHOST, 0));
            o.set(25, ghost_run_ping(c1));
            o.set(26, bpf_prog_load());
        },
    )?;
    ensure!(exit == Exit::Code(0), "nobody child ended {exit:?}");
    let mut checks: Vec<Check> = vec![
        (0, "read version", ok),
        (1, "open the root ctl for writing (create)", eacces),
    ];
    let reads = [
        "read status",
        "read abi_version",
        "read ctl",
        "read cpulist",
        "read cpumask",
        "read deliver_ticks",
        "read runnable_timeout",
        "read tasks",
        "read agent_online",
    ];
    for (i, what) in reads.into_iter().enumerate() {
        checks.push((2 + i, what, ok));
    }
    let writes = [
        "open ctl for writing",
        "open cpulist for writing",
        "open cpumask for writing",
        "open deliver_ticks for writing",
        "open runnable_timeout for writing",
        "open agent_online for writing",
    ];
    for (i, what) in writes.into_iter().enumerate() {
        checks.push((11 + i, what, eacces));
    }
    checks.extend_from_slice(&[
        (17, "open cpu_data", eacces),
        (18, "open sw_0", eacces),
        (19, "list sw_regions", ok),
        (
            20,
            "join itself (tasks 0; no status-word region: past the permission checks)",
            &[libc::ENOMEM][..],
        ),
        (21, "join another process (root's)", eperm),
        (22, "join pid 1", eperm),
        (23, "mount ghostfs", eperm),
        (24, "sched_setscheduler(18)", &[libc::EBADF][..]),
        (25, "ghost_run", eperm),
        (26, "bpf(BPF_PROG_LOAD)", bpf_user),
    ]);
    compare("uid 65534", o, &checks, &mut wrong);

    // uid 65534 in the enclave's group (create ... gid=4242): the group
    // bits; what needs a capability still fails.
    let exit = run_child(
        o,
        || become_nobody(4242),
        |o| {
            let p = |f: &str| path(90, f);
            let ctl = match open_rw(&p("ctl")) {
                Ok(c) => c,
                Err(_) => {
                    o.set(0, sys::errno());
                    return;
                }
            };
            o.set(0, 0);
            o.set(1, read_code(&p("ctl")));
            o.set(2, write_fd(&ctl, "destroy"));
            o.set(3, write_code(&p("cpulist"), &c1.to_string()));
            o.set(4, write_code(&p("cpumask"), &mask(&[c1])));
            o.set(5, write_code(&p("deliver_ticks"), "1"));
            o.set(6, write_code(&p("runnable_timeout"), "1000"));
            o.set(7, write_fd(&ctl, "create sw_region 1 0"));
            o.set(8, write_fd(&ctl, "discover tasks"));
            o.set(9, write_fd(&ctl, "disable my bpf_prog_load"));
            o.set(
                10,
                code_i(ioctl(&ctl, abi::GHOST_IOC_NULL, std::ptr::null_mut())),
            );
            let q = create_queue(&ctl, 64, -1, 0);
            o.set(11, code_i(q.as_ref().map(|_| ()).map_err(|e| *e)));
            if let Ok((q, _)) = &q {
                o.set(
                    12,
                    write_fd(&ctl, &format!("become agent {c1} {}", q.as_raw_fd())),
                );
            }
            let mut run = abi::GhostIocRun {
                gtid: abi::GHOST_AGENT_GTID,
                run_cpu: c1 as i32,
                ..Default::default()
            };
            o.set(
                13,
                code_i(ioctl(&ctl, abi::GHOST_IOC_RUN, (&raw mut run).cast())),
            );
            let n = nr_cpu_ids().unwrap_or(1);
            o.set(
                14,
                match open_rw(&p("cpu_data")) {
                    Ok(f) => code_i(sys::mmap_fd(&f, n * PAGE, RW, libc::MAP_SHARED, 0)),
                    Err(_) => sys::errno(),
                },
            );
            o.set(
                15,
                match File::open(p("sw_regions/sw_0")) {
                    Ok(f) => code_i(sys::mmap_fd(
                        &f,
                        2 << 20,
                        libc::PROT_READ,
                        libc::MAP_SHARED,
                        0,
                    )),
                    Err(e) => e.raw_os_error().unwrap_or(-1),
                },
            );
            o.set(
                16,
                code(
                    std::fs::OpenOptions::new()
                        .read(true)
                        .write(true)
                        .open(p("sw_regions/sw_0")),
                ),
            );
            o.set(
                17,
                code(
                    std::fs::OpenOptions::new()
                        .read(true)
                        .write(true)
                        .open(p("agent_online")),
                ),
            );
            o.set(18, write_code(&p("tasks"), "1"));
            o.set(19, open_w_code(&format!("{GHOSTFS}/ctl")));
            o.set(20, read_code(&p("status")));
        },
    )?;
    ensure!(exit == Exit::Code(0), "group child ended {exit:?}");
    compare(
        "uid 65534 in the enclave's group",
        o,
        &[
            (0, "open ctl read-write", ok),
            (1, "read ctl", ok),
            (2, "destroy (CAP_SYS_ADMIN)", eperm),
            (3, "write cpulist (CAP_SYS_ADMIN)", eperm),
            (4, "write cpumask (CAP_SYS_ADMIN)", eperm),
            (5, "write deliver_ticks", ok),
            (6, "write runnable_timeout", ok),
            (7, "create sw_region", ok),
            (8, "discover tasks", ok),
            (9, "disable my bpf_prog_load", ok),
            (10, "GHOST_IOC_NULL", ok),
            (11, "GHOST_IOC_CREATE_QUEUE", ok),
            (12, "become agent (CAP_SYS_NICE)", eperm),
            (13, "GHOST_IOC_RUN (CAP_SYS_NICE)", eperm),
            (14, "open and mmap cpu_data read-write", ok),
            (15, "open and mmap sw_0 read-only", ok),
            (16, "open sw_0 read-write", eacces),
            (17, "open agent_online read-write", ok),
            (18, "join pid 1", eperm),
            (19, "open the root ctl for writing", eacces),
            (20, "read status", ok),
        ],
        &mut wrong,
    );
    // What the group member was allowed to do took effect.
    for (f, want) in [("deliver_ticks", "1"), ("runnable_timeout", "1000")] {
        let got = read(grouped, f)?;
        if got != want {
            wrong.push(format!("group member's write of {f}: reads {got:?}"));
        }
    }
    if std::fs::metadata(path(grouped, "sw_regions/sw_1")).is_err() {
        wrong.push("group member's create sw_region 1: no sw_1".into());
    }
    if std::fs::metadata(path(grouped, "ctl")).is_err() {
        wrong.push("the group member destroyed the enclave".into());
    }

    // Root without CAP_SYS_NICE.
    let exit = run_child(
        o,
        || sys::drop_caps(&[CAP_SYS_NICE]).is_ok(),
        |o| {
            let Ok(ctl) = open_rw(&path(88, "ctl")) else {
                return;
            };
            o.set(0, 0);
            match create_queue(&ctl, 64, -1, 0) {
                Ok((q, _)) => {
                    o.set(1, 0);
                    o.set(
                        2,
                        write_fd(&ctl, &format!("become agent {c1} {}", q.as_raw_fd())),
                    );
                }
                Err(e) => o.set(1, e),
            }
            o.set(3, ghost_run_ping(c1));
            o.set(4, write_code(&path(88, "tasks"), &me.to_string()));
            o.set(5, write_code(&path(89, "tasks"), "0"));
            o.set(6, write_code(&format!("{GHOSTFS}/ctl"), "create 91 91"));
            o.set(7, write_code(&path(91, "ctl"), "destroy"));
            o.set(8, write_code(&path(88, "cpulist"), &c1.to_string()));
            o.set(9, setscheduler(0, libc::SCHED_FIFO, 1));
        },
    )?;
    ensure!(
        exit == Exit::Code(0),
        "no-CAP_SYS_NICE child ended {exit:?}"
    );
    compare(
        "root without CAP_SYS_NICE",
        o,
        &[
            (0, "open ctl read-write", ok),
            (1, "GHOST_IOC_CREATE_QUEUE", ok),
            (2, "become agent", eperm),
            (3, "ghost_run", eperm),
            (4, "join another process", eperm),
            (5, "join itself (no region: ENOMEM)", &[libc::ENOMEM][..]),
            (6, "create an enclave", ok),
            (7, "destroy it", ok),
            (8, "write cpulist", ok),
            (
                9,
                "sched_setscheduler(SCHED_FIFO) (the capability is gone)",
                eperm,
            ),
        ],
        &mut wrong,
    );

    // Root without CAP_SYS_ADMIN: the last check makes it an agent (it
    // keeps CAP_SYS_NICE); the enclave's destroy then kills it.
    o.reset();
    let admin = sys::fork_child(move || {
        if sys::drop_caps(&[CAP_SYS_ADMIN]).is_err() {
            return 100;
        }
        o.set(0, write_code(&format!("{GHOSTFS}/ctl"), "create 91 91"));
        o.set(1, write_code(&path(88, "ctl"), "destroy"));
        o.set(2, write_code(&path(88, "cpulist"), &c1.to_string()));
        o.set(3, write_code(&path(88, "cpumask"), &mask(&[c1])));
        o.set(4, write_code(&path(88, "deliver_ticks"), "0"));
        o.set(5, code_i(sys::mount_ghostfs("/tmp/conf-caps-mnt")));
        let Ok(ctl) = open_rw(&path(88, "ctl")) else {
            return 101;
        };
        let Ok((q, _)) = create_queue(&ctl, 64, -1, 0) else {
            return 102;
        };
        let r = write_fd(&ctl, &format!("become agent {c1} {}", q.as_raw_fd()));
        o.set(6, r);
        if r != 0 {
            return 0;
        }
        o.up.store(1, Ordering::SeqCst);
        loop {
            sys::pause();
        }
    })?;
    ensure!(
        wait_for(5000, || o.r[6].load(Ordering::SeqCst) != NOT_RUN),
        "the no-CAP_SYS_ADMIN child did not finish its checks"
    );
    let policy = sys::sched_policy(admin);
    compare(
        "root without CAP_SYS_ADMIN",
        o,
        &[
            (0, "create an enclave", eperm),
            (1, "destroy", eperm),
            (2, "write cpulist", eperm),
            (3, "write cpumask", eperm),
            (4, "write deliver_ticks", ok),
            (5, "mount ghostfs", eperm),
            (6, "become agent (needs only CAP_SYS_NICE)", ok),
        ],
        &mut wrong,
    );
    if o.r[6].load(Ordering::SeqCst) == 0 && policy != abi::SCHED_GHOST | libc::SCHED_RESET_ON_FORK
    {
        wrong.push(format!("the no-CAP_SYS_ADMIN agent has policy {policy:#x}"));
    }

    // uid 65534 joins an enclave itself (tasks is 0666): it is a ghost
    // task, unscheduled without an agent, until the destroy.
    o.reset();
    let joiner = sys::fork_child(move || {
        if !become_nobody(65534) {
            return 100;
        }
        o.set(0, write_code(&path(88, "tasks"), "0"));
        while o.stop.load(Ordering::SeqCst) == 0 {
            o.works.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(1));
        }
        0
    })?;
    let joined = wait_for(5000, || {
        sys::sched_policy(joiner) == abi::SCHED_GHOST || o.r[0].load(Ordering::SeqCst) > 0
    });
    let in_ghost = sys::sched_policy(joiner) == abi::SCHED_GHOST;
    if joined && in_ghost {
        figures::entered(1);
        std::thread::sleep(Duration::from_millis(100));
        let at = o.works.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(200));
        let moved = o.works.load(Ordering::SeqCst) - at;
        if moved != 0 {
            wrong.push(format!(
                "the unprivileged ghost task ran {moved} times without an agent"
            ));
        }
    } else {
        wrong.push(format!(
            "uid 65534 joining itself: {} (policy {})",
            errno_name(o.r[0].load(Ordering::SeqCst)),
            sys::sched_policy(joiner)
        ));
    }

    // Destroying the plain enclave kills the agent and returns the joiner.
    destroy_enclave(plain)?;
    let exit = sys::wait_child(admin)?;
    if o.r[6].load(Ordering::SeqCst) == 0 && exit != Exit::Signal(libc::SIGKILL) {
        wrong.push(format!("the no-CAP_SYS_ADMIN agent ended {exit:?}"));
    }
    ensure!(
        wait_for(5000, || sys::sched_policy(joiner) == libc::SCHED_OTHER),
        "the unprivileged task is not back in CFS: policy {}",
        sys::sched_policy(joiner)
    );
    let at = o.works.load(Ordering::SeqCst);
    ensure!(
        wait_for(5000, || o.works.load(Ordering::SeqCst) > at + 20),
        "the unprivileged task does not run after the destroy"
    );
    if in_ghost {
        figures::returned(1);
    }
    o.stop.store(1, Ordering::SeqCst);
    let exit = sys::wait_child(joiner)?;
    ensure!(exit == Exit::Code(0), "joiner ended {exit:?}");
    compare(
        "uid 65534",
        o,
        &[(0, "join itself (tasks 0, mode 0666)", ok)],
        &mut wrong,
    );
    destroy_enclave(noregion)?;
    destroy_enclave(grouped)?;
    let _ = std::fs::remove_dir(mnt);
    ensure!(wrong.is_empty(), "{}", wrong.join("; "));
    Ok(())
}
