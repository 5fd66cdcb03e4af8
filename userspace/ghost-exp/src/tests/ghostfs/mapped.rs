//! In-VM tests of the memory ghostfs shares with agents: `cpu_data` (the
//! transaction pages) and the status-word regions `sw_regions/sw_<id>`.

use crate::harness::sys::{self, errno_name, Exit};
use crate::harness::{create_enclave, destroy_enclave, mode_of, nr_cpu_ids};
use crate::harness::{create_queue, ioctl, open_ro, open_rw, path};
use ghost_abi::{GhostStatusWord, GhostSwRegionHeader, GhostTxn};
use std::io::{Read, Write};
use std::mem::{offset_of, size_of};
use std::os::unix::fs::MetadataExt;

const PAGE: usize = 4096;
const REGION: usize = 2 << 20;
const CAPACITY: u32 = 65534;

/// An `mmap` that must fail: what it is, length, protection, flags,
/// offset, and the errnos it may fail with.
type Refusal<'a> = (&'a str, usize, i32, i32, i64, &'a [i32]);

/// Checks that each `mmap` of `cases` on `f` fails as listed.
fn mmaps_refused(f: &std::fs::File, cases: &[Refusal]) -> Result<(), String> {
    for &(what, len, prot, flags, off, want) in cases {
        match sys::mmap_fd(f, len, prot, flags, off) {
            Ok(_) => return Err(format!("mmap {what} succeeded")),
            Err(e) if want.contains(&e) => {}
            Err(e) => return Err(format!("mmap {what}: {}, want {want:?}", errno_name(e))),
        }
    }
    Ok(())
}

/// The transaction of `cpu` in a `cpu_data` mapping.
fn txn(m: &sys::Mapping, cpu: usize) -> GhostTxn {
    m.read::<GhostTxn>(cpu * PAGE)
}

/// What a CPU's transaction holds right after the CPU joined.
fn check_fresh_txn(m: &sys::Mapping, cpu: usize) -> Result<(), String> {
    let t = txn(m, cpu);
    let owner = m.read::<i32>(cpu * PAGE + offset_of!(GhostTxn, u));
    ensure!(
        t.cpu == cpu as i32
            && t.state == ghost_abi::GHOST_TXN_COMPLETE
            && owner == ghost_abi::GHOST_NO_SYNC_GROUP_OWNER
            && t.version == 0
            && t.gtid == 0
            && t.agent_barrier == 0
            && t.task_barrier == 0
            && t.run_flags == 0
            && t.commit_flags == 0
            && t.commit_time == 0
            && t.cpu_seqnum == 0,
        "txn of CPU {cpu} after joining: {t:?} (sync_group_owner {owner})"
    );
    Ok(())
}

/// True if bytes `from..to` of the mapping are all zero.
fn zeroed(m: &sys::Mapping, from: usize, to: usize) -> bool {
    (from..to).step_by(8).all(|off| m.read::<u64>(off) == 0)
}

pub fn cpu_data_mmap() -> Result<(), String> {
    sys::ensure_ghostfs()?;
    let ncpus = nr_cpu_ids()?;
    let len = ncpus * PAGE;
    create_enclave("create 30 91")?;
    let p = path(30, "cpu_data");
    let meta = std::fs::metadata(&p).map_err(|e| format!("{p}: {e}"))?;
    ensure!(
        meta.size() as usize == len,
        "cpu_data size {}, want {len} ({ncpus} CPUs)",
        meta.size()
    );
    ensure!(mode_of(&p)? == 0o660, "cpu_data mode {:o}", mode_of(&p)?);
    let f = open_rw(&p)?;
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    let m = sys::mmap_fd(&f, len, rw, libc::MAP_SHARED, 0)
        .map_err(|e| format!("mmap cpu_data: {}", errno_name(e)))?;
    ensure!(
        zeroed(&m, 0, len),
        "a new enclave's cpu_data is not all zero"
    );

    // Joining CPUs initialises their transactions, and only theirs.
    sys::write_once(&path(30, "cpulist"), b"0")
        .map_err(|e| format!("cpulist 0: {}", errno_name(e)))?;
    check_fresh_txn(&m, 0)?;
    ensure!(
        zeroed(&m, size_of::<GhostTxn>(), len),
        "joining CPU 0 wrote outside its transaction"
    );

    // Read-write: what the agent writes stays, and a CPU that joins again
    // gets a fresh transaction.
    m.write::<i64>(offset_of!(GhostTxn, gtid), 0x1234);
    m.write::<i32>(offset_of!(GhostTxn, state), i32::MAX);
    ensure!(
        txn(&m, 0).gtid == 0x1234,
        "a write to the mapping did not stick"
    );
    let m2 = sys::mmap_fd(&f, len, libc::PROT_READ, libc::MAP_SHARED, 0)
        .map_err(|e| format!("second mmap: {}", errno_name(e)))?;
    ensure!(
        txn(&m2, 0).gtid == 0x1234,
        "two mappings do not share memory"
    );
    sys::write_once(&path(30, "cpulist"), b"\n")
        .map_err(|e| format!("cpulist empty: {}", errno_name(e)))?;
    sys::write_once(&path(30, "cpulist"), b"0")
        .map_err(|e| format!("cpulist 0 again: {}", errno_name(e)))?;
    check_fresh_txn(&m, 0)?;
    if ncpus > 1 {
        sys::write_once(&path(30, "cpumask"), b"3")
            .map_err(|e| format!("cpumask 3: {}", errno_name(e)))?;
        check_fresh_txn(&m, 1)?;
    }
    drop(m2);

    // Wrong size, offset, sharing or protection.
    let (shared, inval) = (libc::MAP_SHARED, &[libc::EINVAL][..]);
    let rx = libc::PROT_READ | libc::PROT_EXEC;
    mmaps_refused(
        &f,
        &[
            ("one page short", len - PAGE, rw, shared, 0, inval),
            ("one page long", len + PAGE, rw, shared, 0, inval),
            ("at offset 4096", len - PAGE, rw, shared, 4096, inval),
            ("MAP_PRIVATE", len, rw, libc::MAP_PRIVATE, 0, inval),
            (
                "PROT_EXEC",
                len,
                rx,
                shared,
                0,
                &[libc::EINVAL, libc::EPERM],
            ),
        ],
    )?;
    let ro = open_ro(&p)?;
    mmaps_refused(
        &ro,
        &[(
            "read-write of an O_RDONLY fd",
            len,
            rw,
            shared,
            0,
            &[libc::EACCES],
        )],
    )?;
    drop(m);
    destroy_enclave(30)?;
    Ok(())
}

pub fn sw_region_mmap() -> Result<(), String> {
    sys::ensure_ghostfs()?;
    create_enclave("create 31 91")?;
    let ctl = path(31, "ctl");
    ensure!(
        mode_of(&path(31, "sw_regions"))? == 0o555,
        "sw_regions mode {:o}",
        mode_of(&path(31, "sw_regions"))?
    );
    sys::write_once(&ctl, b"create sw_region 0 0\n")
        .map_err(|e| format!("create sw_region 0 0: {}", errno_name(e)))?;
    let p = path(31, "sw_regions/sw_0");
    let meta = std::fs::metadata(&p).map_err(|e| format!("{p}: {e}"))?;
    ensure!(meta.size() as usize == REGION, "sw_0 size {}", meta.size());
    ensure!(mode_of(&p)? == 0o440, "sw_0 mode {:o}", mode_of(&p)?);
    let again = sys::write_once(&ctl, b"create sw_region 0 0");
    ensure!(
        again == Err(libc::EEXIST),
        "second sw_region 0: {again:?}, want EEXIST"
    );
    let bad_node = sys::write_once(&ctl, b"create sw_region 1 4000");
    ensure!(
        bad_node == Err(libc::EINVAL),
        "sw_region on node 4000: {bad_node:?}, want EINVAL"
    );
    ensure!(
        std::fs::metadata(path(31, "sw_regions/sw_1")).is_err(),
        "a refused sw_region left a file"
    );
    let rw = std::fs::OpenOptions::new().read(true).write(true).open(&p);
    ensure!(
        rw.as_ref().err().and_then(|e| e.raw_os_error()) == Some(libc::EACCES),
        "opening sw_0 read-write: {rw:?}, want EACCES"
    );

    let f = open_ro(&p)?;
    let m = sys::mmap_fd(&f, REGION, libc::PROT_READ, libc::MAP_SHARED, 0)
        .map_err(|e| format!("mmap sw_0: {}", errno_name(e)))?;
    let h = m.read::<GhostSwRegionHeader>(0);
    let want = GhostSwRegionHeader {
        version: 0,
        id: 0,
        numa_node: 0,
        start: 64,
        capacity: CAPACITY,
        available: CAPACITY,
    };
    ensure!(h == want, "sw_0 header {h:?}, want {want:?}");
    ensure!(
        64 + CAPACITY as usize * size_of::<GhostStatusWord>() == REGION,
        "header plus status words is not 2 MiB"
    );
    ensure!(
        zeroed(&m, 64, REGION),
        "status words of a new region are not zero"
    );
    let pw = m.protect(libc::PROT_READ | libc::PROT_WRITE);
    ensure!(
        pw == Err(libc::EACCES),
        "mprotect(PROT_WRITE) on sw_0: {pw:?}, want EACCES"
    );
    let (shared, inval) = (libc::MAP_SHARED, &[libc::EINVAL][..]);
    let (r, w) = (libc::PROT_READ, libc::PROT_READ | libc::PROT_WRITE);
    mmaps_refused(
        &f,
        &[
            ("PROT_WRITE", REGION, w, shared, 0, &[libc::EACCES]),
            (
                "PROT_WRITE, MAP_PRIVATE",
                REGION,
                w,
                libc::MAP_PRIVATE,
                0,
                inval,
            ),
            ("MAP_PRIVATE", REGION, r, libc::MAP_PRIVATE, 0, inval),
            ("1 MiB", REGION / 2, r, shared, 0, inval),
            ("4 MiB", REGION * 2, r, shared, 0, inval),
            ("at offset 4096", REGION - PAGE, r, shared, 4096, inval),
        ],
    )?;
    drop(m);

    // Regions are capped per enclave.
    for id in 1..64 {
        sys::write_once(&ctl, format!("create sw_region {id} 0").as_bytes())
            .map_err(|e| format!("create sw_region {id}: {}", errno_name(e)))?;
    }
    let over = sys::write_once(&ctl, b"create sw_region 64 0");
    ensure!(
        over == Err(libc::ENOSPC),
        "65th sw_region: {over:?}, want ENOSPC"
    );
    let n = std::fs::read_dir(path(31, "sw_regions"))
        .map_err(|e| e.to_string())?
        .count();
    ensure!(n == 64, "{n} files in sw_regions, want 64");
    destroy_enclave(31)?;
    Ok(())
}

/// Destroying an enclave while a process maps its memory: the kernel stays
/// healthy and the mapping is revoked (the next access gets `SIGBUS`).
pub fn mappings_revoked_at_destroy() -> Result<(), String> {
    sys::ensure_ghostfs()?;
    let ncpus = nr_cpu_ids()?;
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    for (id, file, len, prot) in [
        (32, "cpu_data", ncpus * PAGE, rw),
        (33, "sw_regions/sw_3", REGION, libc::PROT_READ),
    ] {
        create_enclave(&format!("create {id} 91"))?;
        sys::write_once(&path(id, "ctl"), b"create sw_region 3 0")
            .map_err(|e| format!("create sw_region: {}", errno_name(e)))?;
        let exit = map_then_destroy(id, file, len, prot)?;
        ensure!(
            exit == Exit::Signal(libc::SIGBUS),
            "touching {file} after destroy: child {exit:?}, want SIGBUS"
        );
        ensure!(
            std::fs::metadata(path(id, "ctl")).is_err(),
            "enclave_{id} still exists"
        );
    }
    Ok(())
}

/// A child maps `file` of enclave `id` and touches it; the parent destroys
/// the enclave; the child touches the mapping again. Returns how the child
/// ended.
fn map_then_destroy(id: u64, file: &str, len: usize, prot: i32) -> Result<Exit, String> {
    let (mut to_child_r, mut to_child_w) = sys::pipe()?;
    let (mut to_parent_r, mut to_parent_w) = sys::pipe()?;
    let p = path(id, file);
    let child = sys::fork_child(move || {
        let f = if prot & libc::PROT_WRITE != 0 {
            open_rw(&p)
        } else {
            open_ro(&p)
        };
        let Ok(f) = f else { return 10 };
        let Ok(m) = sys::mmap_fd(&f, len, prot, libc::MAP_SHARED, 0) else {
            return 11;
        };
        let _ = m.read::<u32>(0);
        if to_parent_w.write_all(b"m").is_err() {
            return 12;
        }
        let mut b = [0u8; 1];
        if to_child_r.read_exact(&mut b).is_err() {
            return 13;
        }
        // The enclave is gone now: this access must fault.
        let _ = m.read::<u32>(len - 4);
        0
    })?;
    let mut b = [0u8; 1];
    let mapped = to_parent_r.read_exact(&mut b);
    let destroyed = destroy_enclave(id);
    let _ = to_child_w.write_all(b"g");
    let exit = sys::wait_child(child)?;
    mapped.map_err(|e| format!("child did not map {file}: {e} (it ended {exit:?})"))?;
    destroyed?;
    Ok(exit)
}

pub fn ctl_ioctls_and_queues() -> Result<(), String> {
    use std::os::fd::AsRawFd;
    sys::ensure_ghostfs()?;
    create_enclave("create 34 91")?;
    let ctl = open_rw(&path(34, "ctl"))?;
    let null = ghost_abi::GHOST_IOC_NULL;
    ensure!(
        ioctl(&ctl, null, std::ptr::null_mut()) == Ok(0),
        "GHOST_IOC_NULL failed"
    );
    let ro = open_ro(&path(34, "ctl"))?;
    let r = ioctl(&ro, null, std::ptr::null_mut());
    ensure!(r == Err(libc::EACCES), "ioctl on a read-only ctl: {r:?}");
    let r = ioctl(&ctl, 0x6799, std::ptr::null_mut());
    ensure!(r == Err(libc::ENOTTY), "unknown ioctl: {r:?}");
    let status = open_ro(&path(34, "status"))?;
    let r = ioctl(&status, null, std::ptr::null_mut());
    ensure!(r == Err(libc::ENOTTY), "ioctl on status: {r:?}");

    // A queue: an O_CLOEXEC anon-inode fd, mapped as the ring of the ABI.
    let (q, mapsize) =
        create_queue(&ctl, 64, 0, 0).map_err(|e| format!("CREATE_QUEUE 64: {}", errno_name(e)))?;
    ensure!(mapsize == 4096, "mapsize {mapsize} for 64 slots");
    let link = std::fs::read_link(format!("/proc/self/fd/{}", q.as_raw_fd()))
        .map_err(|e| e.to_string())?;
    ensure!(
        link.to_string_lossy() == "anon_inode:[ghost_queue]",
        "queue fd is {link:?}"
    );
    let fdflags = sys::fd_flags(q.as_raw_fd());
    ensure!(fdflags & libc::FD_CLOEXEC != 0, "queue fd is not O_CLOEXEC");
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    let m = sys::mmap_fd(&q, 4096, rw, libc::MAP_SHARED, 0)
        .map_err(|e| format!("mmap queue: {}", errno_name(e)))?;
    let header: [u32; 3] = m.read(0);
    ensure!(header == [0, 64, 64], "queue header {header:?}");
    ensure!(zeroed(&m, 64, 4096), "a new ring is not zero");
    let (shared, inval) = (libc::MAP_SHARED, &[libc::EINVAL][..]);
    mmaps_refused(
        &q,
        &[
            ("8 KiB", 8192, rw, shared, 0, inval),
            ("MAP_PRIVATE", 4096, rw, libc::MAP_PRIVATE, 0, inval),
            ("at offset 4096", 4096, rw, shared, 4096, inval),
        ],
    )?;
    // The largest queue.
    let (big, mapsize) = create_queue(&ctl, 65536, -1, 0)
        .map_err(|e| format!("CREATE_QUEUE 65536: {}", errno_name(e)))?;
    ensure!(
        mapsize == (76 + 65536 * 8u64).next_multiple_of(4096),
        "mapsize {mapsize} for 65536 slots"
    );
    drop(big);

    // Bad arguments.
    for (elems, node, flags) in [
        (0, 0, 0),
        (3, 0, 0),
        (131072, 0, 0),
        (-1, 0, 0),
        (i32::MIN, 0, 0),
        (64, 0, 1),
        (64, 4000, 0),
        (64, -2, 0),
    ] {
        let r = create_queue(&ctl, elems, node, flags).map(|_| ());
        ensure!(
            r == Err(libc::EINVAL),
            "CREATE_QUEUE elems {elems} node {node} flags {flags}: {r:?}, want EINVAL"
        );
    }
    for bad in [1usize, 0xffff_ffff_ffff_f000] {
        let r = ioctl(&ctl, ghost_abi::GHOST_IOC_CREATE_QUEUE, bad as *mut _);
        ensure!(r == Err(libc::EFAULT), "CREATE_QUEUE at {bad:#x}: {r:?}");
    }
    // Many queues come and go.
    for i in 0..1000 {
        create_queue(&ctl, 256, -1, 0).map_err(|e| format!("queue {i}: {}", errno_name(e)))?;
    }
    // Sync groups: a bad pointer, then a caller that is no agent.
    let r = ioctl(
        &ctl,
        ghost_abi::GHOST_IOC_SYNC_GROUP_TXN,
        std::ptr::null_mut(),
    );
    ensure!(r == Err(libc::EFAULT), "SYNC_GROUP_TXN at NULL: {r:?}");
    let mut c = ghost_abi::GhostIocCommitTxn::default();
    let r = ioctl(
        &ctl,
        ghost_abi::GHOST_IOC_SYNC_GROUP_TXN,
        (&raw mut c).cast(),
    );
    // A caller that is no agent may commit (ghOSt): each transaction it may
    // not commit fails on its own (NOT_PERMITTED, see the lab test), and an
    // empty group commits all of nothing.
    ensure!(r == Ok(1), "empty SYNC_GROUP_TXN from a non-agent: {r:?}");
    // Ghost timerfds (conformance/timerfd.rs): a bad pointer.
    let r = ioctl(
        &ctl,
        ghost_abi::GHOST_IOC_TIMERFD_SETTIME,
        std::ptr::null_mut(),
    );
    ensure!(
        r == Err(libc::EFAULT),
        "GHOST_IOC_TIMERFD_SETTIME at NULL: {r:?}"
    );
    // RUN: a bad pointer, then a caller that is no agent.
    let r = ioctl(&ctl, ghost_abi::GHOST_IOC_RUN, std::ptr::null_mut());
    ensure!(r == Err(libc::EFAULT), "GHOST_IOC_RUN at NULL: {r:?}");
    let mut run = ghost_abi::GhostIocRun::default();
    let r = ioctl(&ctl, ghost_abi::GHOST_IOC_RUN, (&raw mut run).cast());
    ensure!(
        r == Err(libc::EINVAL),
        "GHOST_IOC_RUN from a non-agent: {r:?}"
    );

    // Queues outlive the enclave; their memory goes with the last user.
    destroy_enclave(34)?;
    m.write::<u32>(64 + 4, 1);
    ensure!(m.read::<u32>(68) == 1, "queue mapping broken by destroy");
    let r = ioctl(&ctl, null, std::ptr::null_mut());
    ensure!(r == Err(libc::ENODEV), "ioctl after destroy: {r:?}");
    drop((m, q));
    Ok(())
}
