//! In-VM tests of task ids and enclave lifetime: gtids, the `tasks` file,
//! ephemeral enclaves, bad input on every writable file, and create/destroy
//! cycles that must give all memory back.

use crate::harness::sys::{self, errno_name, Exit, GHOSTFS};
use crate::harness::{create_enclave, destroy_enclave, expect_errnos, nr_cpu_ids, TUNABLES};
use std::io::{Read, Write};

const SEQNUM_BITS: u32 = 41;

fn path(id: u64, f: &str) -> String {
    format!("{GHOSTFS}/enclave_{id}/{f}")
}

fn read(p: &str) -> Result<String, String> {
    std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}"))
}

fn gtid_at(p: &str) -> Result<i64, String> {
    let s = read(p)?;
    s.trim()
        .parse::<i64>()
        .map_err(|e| format!("{p}: {s:?}: {e}"))
}

fn gettid() -> i64 {
    i64::from(sys::gettid())
}

pub fn gtid_assigned_at_fork() -> Result<(), String> {
    let max = read("/proc/sys/kernel/pid_max_max")?;
    ensure!(max == "4194304\n", "pid_max_max reads {max:?}");
    let me = gtid_at("/proc/self/ghost/gtid")?;
    ensure!(
        me > 0 && me >> SEQNUM_BITS == i64::from(std::process::id() as i32),
        "gtid {me:#x} does not encode pid {}",
        std::process::id()
    );
    ensure!(
        me & ((1 << SEQNUM_BITS) - 1) != 0,
        "gtid {me:#x} has no sequence number"
    );
    ensure!(
        gtid_at("/proc/self/ghost/gtid")? == me,
        "the gtid changed between two reads"
    );
    // Threads have their own, under task/<tid>.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let tid = gettid();
        let g = gtid_at(&format!("/proc/self/task/{tid}/ghost/gtid"));
        let _ = tx.send((tid, g));
    })
    .join()
    .map_err(|_| "thread panicked".to_string())?;
    let (tid, g) = rx.recv().map_err(|e| e.to_string())?;
    let g = g?;
    ensure!(
        g >> SEQNUM_BITS == tid && g != me,
        "thread {tid}: gtid {g:#x}"
    );
    // Each child gets a fresh one; the gtid is visible to others too.
    let mut seen = vec![me, g];
    for _ in 0..3 {
        let (mut r, mut w) = sys::pipe()?;
        let child = sys::fork_child(move || {
            let mut b = [0u8; 1];
            let _ = r.read(&mut b);
            0
        })?;
        let cg = gtid_at(&format!("/proc/{child}/ghost/gtid"));
        let _ = w.write_all(b"x");
        let exit = sys::wait_child(child)?;
        let cg = cg?;
        ensure!(exit == Exit::Code(0), "child {child} ended {exit:?}");
        ensure!(
            cg >> SEQNUM_BITS == i64::from(child) && !seen.contains(&cg),
            "child {child}: gtid {cg:#x} (seen {seen:x?})"
        );
        seen.push(cg);
    }
    let mode = crate::harness::mode_of("/proc/self/ghost/gtid")?;
    ensure!(mode == 0o444, "gtid mode {mode:o}");
    Ok(())
}

pub fn tasks_file() -> Result<(), String> {
    sys::ensure_ghostfs()?;
    create_enclave("create 35 91")?;
    let tasks = path(35, "tasks");
    let mode = crate::harness::mode_of(&tasks)?;
    ensure!(mode == 0o666, "tasks mode {mode:o}");
    ensure!(
        read(&tasks)?.is_empty(),
        "tasks of a new enclave: {:?}",
        read(&tasks)?
    );
    let me = gtid_at("/proc/self/ghost/gtid")?;
    let pid = std::process::id();
    // The task is found, but the enclave has no status-word region yet.
    let found: Vec<(Vec<u8>, i32)> = vec![
        (b"0\n".to_vec(), libc::ENOMEM),
        (format!("{pid}").into_bytes(), libc::ENOMEM),
        (format!("{me}\n").into_bytes(), libc::ENOMEM),
        // Kernel threads never join.
        (b"2\n".to_vec(), libc::EPERM),
    ];
    // No such task, or a gtid whose pid now belongs to another task.
    let stale = (me & !((1 << SEQNUM_BITS) - 1)) | ((me + 1) & ((1 << SEQNUM_BITS) - 1));
    let missing: Vec<(Vec<u8>, i32)> = vec![
        (b"4194303".to_vec(), libc::ESRCH),
        (format!("{stale}").into_bytes(), libc::ESRCH),
        (
            format!("{}", (4194303i64 << SEQNUM_BITS) | 1).into_bytes(),
            libc::ESRCH,
        ),
        // A gtid has a nonzero sequence number.
        (
            format!("{}", 5i64 << SEQNUM_BITS).into_bytes(),
            libc::EINVAL,
        ),
        // `kstrtoll`: a number too big for 64 bits.
        (b"9223372036854775808".to_vec(), libc::ERANGE),
    ];
    for (input, want) in found.iter().chain(&missing) {
        let cases: &[(&[u8], i32)] = &[(input.as_slice(), *want)];
        expect_errnos(&tasks, cases)?;
    }
    ensure!(
        read(&tasks)?.is_empty(),
        "tasks after refused joins: {:?}",
        read(&tasks)?
    );
    destroy_enclave(35)?;
    Ok(())
}

/// Runs `body` in a child process that first creates an enclave with
/// `cmd`; the parent checks `during` while the child lives, then lets it
/// exit and returns.
fn with_creator_child(
    cmd: &'static str,
    in_thread: bool,
    during: impl FnOnce(i32) -> Result<(), String>,
) -> Result<(), String> {
    let (mut to_child_r, mut to_child_w) = sys::pipe()?;
    let (mut to_parent_r, mut to_parent_w) = sys::pipe()?;
    let child = sys::fork_child(move || {
        let create = move || sys::write_once(&format!("{GHOSTFS}/ctl"), cmd.as_bytes()).is_ok();
        // From a thread that exits before the process does, or from the
        // main thread.
        let ok = if in_thread {
            std::thread::spawn(create).join().unwrap_or(false)
        } else {
            create()
        };
        if !ok || to_parent_w.write_all(b"c").is_err() {
            return 10;
        }
        let mut b = [0u8; 1];
        let _ = to_child_r.read_exact(&mut b);
        0
    })?;
    let mut b = [0u8; 1];
    let created = to_parent_r.read_exact(&mut b);
    let checked = created
        .map_err(|e| format!("child did not create the enclave ({cmd:?}): {e}"))
        .and_then(|()| during(child));
    let _ = to_child_w.write_all(b"x");
    let exit = sys::wait_child(child)?;
    checked?;
    ensure!(exit == Exit::Code(0), "creator child ended {exit:?}");
    Ok(())
}

pub fn ephemeral_enclave() -> Result<(), String> {
    sys::ensure_ghostfs()?;
    let gone = |id: u64| std::fs::metadata(path(id, "ctl")).is_err();
    with_creator_child("create 40 91 ephemeral", false, |child| {
        let status = read(&path(40, "status"))?;
        let want = format!("version 91\nactive no\nnr_tasks 0\nephemeral {child}\n");
        ensure!(status == want, "status {status:?}, want {want:?}");
        Ok(())
    })?;
    ensure!(gone(40), "enclave_40 outlived its ephemeral creator");

    // Created by a thread that exits first: the enclave lives until the
    // whole process exits.
    with_creator_child("create 41 91 gid=7 ephemeral", true, |_| {
        ensure!(!gone(41), "enclave_41 died with the creating thread");
        Ok(())
    })?;
    ensure!(
        gone(41),
        "enclave_41 outlived its ephemeral creator process"
    );

    // Not ephemeral: survives its creator.
    with_creator_child("create 42 91", false, |_| Ok(()))?;
    ensure!(!gone(42), "a plain enclave died with its creator");
    let status = read(&path(42, "status"))?;
    ensure!(
        !status.contains("ephemeral"),
        "plain enclave status {status:?}"
    );
    destroy_enclave(42)?;
    let log = sys::kernel_log().map_err(errno_name)?;
    ensure!(
        log.contains("enclave_40 destroyed: its ephemeral owner"),
        "no kernel log line for the ephemeral destroy"
    );
    Ok(())
}

/// The enclave files with a write operation, besides the tunables.
const WRITABLE: [&str; 6] = [
    "ctl",
    "tasks",
    "cpulist",
    "cpumask",
    "runnable_timeout",
    "agent_online",
];

/// Reads every readable file of enclave `id`, for before/after comparisons.
fn snapshot(id: u64) -> Result<Vec<(String, String)>, String> {
    let mut names: Vec<&str> = WRITABLE.into();
    names.extend(["status", "abi_version"]);
    names.extend(TUNABLES);
    names
        .into_iter()
        .map(|n| Ok((n.to_string(), read(&path(id, n))?)))
        .collect()
}

pub fn bad_input_every_file() -> Result<(), String> {
    sys::ensure_ghostfs()?;
    create_enclave("create 45 91")?;
    // Non-default values, so that a bad write resetting a file shows.
    for (f, v) in [
        ("cpulist", "0"),
        ("runnable_timeout", "77"),
        ("deliver_ticks", "1"),
    ] {
        sys::write_once(&path(45, f), v.as_bytes())
            .map_err(|e| format!("{f} {v}: {}", errno_name(e)))?;
    }
    let before = snapshot(45)?;

    let long_digits = vec![b'1'; 300];
    let longer_zeros = vec![b'0'; 5000];
    let inputs: Vec<(&str, &[u8])> = vec![
        ("empty", b""),
        ("newline", b"\n"),
        ("non-numeric", b"x\n"),
        ("negative", b"-1\n"),
        ("trailing garbage", b"1x\n"),
        ("two values", b"1 1\n"),
        ("leading space", b" 1\n"),
        ("embedded NUL", b"1\x00\n"),
        ("not UTF-8", b"\xff\xfe\n"),
        ("out of range", b"99999999999999999999999\n"),
        ("two newlines", b"1\n\n"),
        ("300 bytes", &long_digits),
        ("5000 bytes", &longer_zeros),
    ];
    let files: Vec<&str> = WRITABLE.iter().chain(&TUNABLES).copied().collect();
    let mut tried = 0;
    for f in &files {
        for (what, input) in &inputs {
            // Some of these are valid input for some files (the grammars are
            // ghOSt's: the kernel's kstrto* and bitmap parsers): skipped.
            let Some(want) = bad_input_errno(f, what) else {
                continue;
            };
            let cases: &[(&[u8], i32)] = &[(input, want)];
            expect_errnos(&path(45, f), cases).map_err(|e| format!("{f}, {what}: {e}"))?;
            tried += 1;
        }
    }
    for (what, input) in &inputs {
        let cases: &[(&[u8], i32)] = &[(input, libc::EINVAL)];
        expect_errnos(&format!("{GHOSTFS}/ctl"), cases)
            .map_err(|e| format!("root ctl, {what}: {e}"))?;
        tried += 1;
    }
    // Files without a write operation.
    sys::write_once(&path(45, "ctl"), b"create sw_region 0 0")
        .map_err(|e| format!("create sw_region: {}", errno_name(e)))?;
    for (f, want) in [
        (path(45, "status"), libc::EACCES),
        (path(45, "abi_version"), libc::EACCES),
        (path(45, "sw_regions/sw_0"), libc::EACCES),
        (path(45, "cpu_data"), libc::EINVAL),
        (format!("{GHOSTFS}/version"), libc::EACCES),
    ] {
        let cases: &[(&[u8], i32)] = &[(b"1\n", want)];
        expect_errnos(&f, cases).map_err(|e| format!("{f}: {e}"))?;
        tried += 1;
    }
    let after = snapshot(45)?;
    for ((name, a), (_, b)) in before.iter().zip(&after) {
        ensure!(a == b, "{name} changed under bad input: {a:?} -> {b:?}");
    }
    ensure!(tried >= 150, "only {tried} bad writes tried");
    destroy_enclave(45)?;
    println!("  bad_input_every_file: {tried} bad writes, all refused, nothing changed");
    Ok(())
}

/// The errno a write of the bad input `what` (one of
/// `bad_input_every_file`'s) to enclave file `f` gets, or `None` where the
/// input is valid for that file. The files parse as ghOSt's do: `ctl` and
/// `agent_online` refuse them all; `tasks` takes `kstrtoll` input,
/// `runnable_timeout` `kstrtoul`, the tunables `kstrtoint` (in all three a
/// NUL ends the text); `cpulist` and `cpumask` take the kernel's bitmap
/// grammars, where white space separates and a newline ends the text.
fn bad_input_errno(f: &str, what: &str) -> Option<i32> {
    let (inval, range, overflow) = (libc::EINVAL, libc::ERANGE, libc::EOVERFLOW);
    let tunable = TUNABLES.contains(&f);
    match (f, what) {
        ("ctl" | "agent_online", _) => Some(inval),
        // The text is "1": pid 1 joins, refused here for want of a status
        // word region.
        ("tasks", "embedded NUL") => Some(libc::ENOMEM),
        ("tasks", "out of range") => Some(range),
        ("runnable_timeout", "embedded NUL") => None,
        (_, "embedded NUL" | "negative") if tunable => None,
        (
            "cpulist" | "cpumask",
            "empty" | "newline" | "leading space" | "embedded NUL" | "two newlines",
        ) => None,
        ("cpulist", "two values") => None,
        ("cpumask", "two values") => Some(overflow),
        ("cpulist" | "cpumask", "out of range" | "300 bytes") => Some(overflow),
        _ => Some(inval),
    }
}

/// `/proc/meminfo` fields, in KiB.
fn meminfo(keys: &[&str]) -> Result<Vec<i64>, String> {
    let s = read("/proc/meminfo")?;
    keys.iter()
        .map(|k| {
            s.lines()
                .find_map(|l| l.strip_prefix(k)?.strip_prefix(':'))
                .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
                .ok_or_else(|| format!("no {k} in /proc/meminfo"))
        })
        .collect()
}

/// Settles the kernel's caches before a memory reading.
fn settle() -> Result<(), String> {
    std::thread::sleep(std::time::Duration::from_millis(300));
    sys::write_once("/proc/sys/vm/drop_caches", b"3")
        .map_err(|e| format!("drop_caches: {}", errno_name(e)))?;
    std::thread::sleep(std::time::Duration::from_millis(300));
    Ok(())
}

/// One create/use/destroy cycle of enclave `id`, with files open and memory
/// mapped across the destroy.
fn cycle(id: u64, i: u64, ncpus: usize) -> Result<(), String> {
    create_enclave(&format!("create {id} 91"))?;
    let status = std::fs::File::open(path(id, "status")).map_err(|e| e.to_string())?;
    let cpu_data = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path(id, "cpu_data"))
        .map_err(|e| e.to_string())?;
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    let txns = sys::mmap_fd(&cpu_data, ncpus * 4096, rw, libc::MAP_SHARED, 0)
        .map_err(|e| format!("mmap cpu_data: {}", errno_name(e)))?;
    txns.write::<u64>(24, i);
    let cpus = if i % 2 == 0 { "0" } else { "" };
    sys::write_once(&path(id, "cpulist"), cpus.as_bytes())
        .map_err(|e| format!("cpulist: {}", errno_name(e)))?;
    let region = if i % 4 == 0 {
        sys::write_once(&path(id, "ctl"), b"create sw_region 0 0")
            .map_err(|e| format!("create sw_region: {}", errno_name(e)))?;
        let f = std::fs::File::open(path(id, "sw_regions/sw_0")).map_err(|e| e.to_string())?;
        let m = sys::mmap_fd(&f, 2 << 20, libc::PROT_READ, libc::MAP_SHARED, 0)
            .map_err(|e| format!("mmap sw_0: {}", errno_name(e)))?;
        Some((f, m))
    } else {
        None
    };
    destroy_enclave(id)?;
    // Unmap and close only after the destroy.
    drop((status, txns, cpu_data, region));
    Ok(())
}

pub fn create_destroy_cycles_memory() -> Result<(), String> {
    sys::ensure_ghostfs()?;
    const WARMUP: u64 = 200;
    const CYCLES: u64 = 10_000;
    let ncpus = nr_cpu_ids()?;
    for i in 0..WARMUP {
        cycle(100 + i % 7, i, ncpus)?;
    }
    settle()?;
    let keys = ["MemFree", "SUnreclaim", "VmallocUsed"];
    let start = meminfo(&keys)?;
    let t = std::time::Instant::now();
    for i in 0..CYCLES {
        cycle(100 + i % 7, i, ncpus).map_err(|e| format!("cycle {i}: {e}"))?;
    }
    let secs = t.elapsed().as_secs_f64();
    crate::harness::figures::ops(WARMUP + CYCLES);
    settle()?;
    let end = meminfo(&keys)?;
    let n = std::fs::read_dir(GHOSTFS)
        .map_err(|e| e.to_string())?
        .count();
    ensure!(n == 2, "{n} entries in {GHOSTFS} after the cycles, want 2");
    let (free_drop, slab_growth, vmalloc_growth) =
        (start[0] - end[0], end[1] - start[1], end[2] - start[2]);
    println!(
        "  {CYCLES} cycles in {secs:.1} s: MemFree {:+} KiB, SUnreclaim {slab_growth:+} KiB, VmallocUsed {vmalloc_growth:+} KiB",
        -free_drop
    );
    // A leak of one page per cycle would be 40000 KiB; of 256 bytes, 2500.
    ensure!(free_drop < 8192, "MemFree dropped by {free_drop} KiB");
    ensure!(
        slab_growth < 2048,
        "unreclaimable slab grew by {slab_growth} KiB"
    );
    ensure!(
        vmalloc_growth < 512,
        "vmalloc use grew by {vmalloc_growth} KiB"
    );
    Ok(())
}
