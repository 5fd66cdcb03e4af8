//! The ghost-rs kernel and the ghostfs root: the kernel is a ghost-rs build,
//! the classes are registered, ghostfs mounts (twice harmlessly), the root's
//! files, `version`, the root `ctl`, and `sched_setscheduler(SCHED_GHOST)`
//! outside an enclave.

use crate::harness::expect_errnos;
use crate::harness::sys::{self, errno_name, GHOSTFS};
use std::os::unix::fs::PermissionsExt;

pub(crate) fn kernel_is_ghost() -> Result<(), String> {
    let release =
        std::fs::read_to_string("/proc/sys/kernel/osrelease").map_err(|e| e.to_string())?;
    ensure!(
        release.trim().ends_with("-ghost-rs"),
        "kernel release {:?} is not a ghost-rs build",
        release.trim()
    );
    ensure!(
        release.starts_with("6.12."),
        "kernel release {:?} is not 6.12",
        release.trim()
    );
    let log = sys::kernel_log().map_err(|e| format!("klogctl: {}", errno_name(e)))?;
    ensure!(
        log.contains("ghost: ABI 91 ready"),
        "no \"ghost: ABI 91 ready\" line in the kernel log"
    );
    Ok(())
}

pub(crate) fn sched_classes_registered() -> Result<(), String> {
    let log = sys::kernel_log().map_err(|e| format!("klogctl: {}", errno_name(e)))?;
    // A kernel with sched_ext (the bench variant) has ext above ghost.
    let want = if std::path::Path::new("/sys/kernel/sched_ext").exists() {
        "ghost: sched classes: stop > ghost_agent > dl > rt > fair > ext > ghost > idle (ghost classes OK)"
    } else {
        "ghost: sched classes: stop > ghost_agent > dl > rt > fair > ghost > idle (ghost classes OK)"
    };
    ensure!(log.contains(want), "kernel log lacks {want:?}");
    Ok(())
}

pub(crate) fn ghostfs_mount_point_exists() -> Result<(), String> {
    let md = std::fs::metadata(GHOSTFS).map_err(|e| format!("{GHOSTFS}: {e}"))?;
    ensure!(md.is_dir(), "{GHOSTFS} is not a directory");
    Ok(())
}

pub(crate) fn ghostfs_mount() -> Result<(), String> {
    sys::ensure_ghostfs()?;
    let magic =
        sys::fs_magic(GHOSTFS).map_err(|e| format!("statfs {GHOSTFS}: {}", errno_name(e)))?;
    ensure!(
        magic == 0xBAD1_DEA2,
        "statfs({GHOSTFS}).f_type = {magic:#x}, want 0xbad1dea2"
    );
    Ok(())
}

pub(crate) fn ghostfs_second_mount_harmless() -> Result<(), String> {
    sys::ensure_ghostfs()?;
    // Mounting again on the same point stacks the same hierarchy; userspace
    // that gets EBUSY treats it as "already mounted". Either is fine.
    match sys::mount_ghostfs(GHOSTFS) {
        Ok(()) => sys::umount(GHOSTFS)
            .map_err(|e| format!("umount of the second mount: {}", errno_name(e)))?,
        Err(libc::EBUSY) => {}
        Err(e) => return Err(format!("second mount: {}", errno_name(e))),
    }
    // A mount elsewhere shows the same files.
    let other = "/tmp/ghostfs-second";
    std::fs::create_dir_all(other).map_err(|e| format!("mkdir {other}: {e}"))?;
    sys::mount_ghostfs(other).map_err(|e| format!("mount at {other}: {}", errno_name(e)))?;
    let v = std::fs::read_to_string(format!("{other}/version"));
    sys::umount(other).map_err(|e| format!("umount {other}: {}", errno_name(e)))?;
    ensure!(
        v.as_deref().ok() == Some("91\n"),
        "version via the second mount: {v:?}"
    );
    let v = std::fs::read_to_string(format!("{GHOSTFS}/version")).map_err(|e| e.to_string())?;
    ensure!(v == "91\n", "version after the second mount: {v:?}");
    Ok(())
}

pub(crate) fn ghostfs_root_files() -> Result<(), String> {
    sys::ensure_ghostfs()?;
    let mut names: Vec<String> = std::fs::read_dir(GHOSTFS)
        .map_err(|e| e.to_string())?
        .map(|d| d.map(|d| d.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    names.sort();
    ensure!(
        names == ["ctl", "version"],
        "root files {names:?}, want [ctl, version]"
    );
    for (f, mode) in [("ctl", 0o660), ("version", 0o444)] {
        let md = std::fs::metadata(format!("{GHOSTFS}/{f}")).map_err(|e| e.to_string())?;
        let got = md.permissions().mode() & 0o7777;
        ensure!(got == mode, "{f}: mode {got:o}, want {mode:o}");
    }
    Ok(())
}

pub(crate) fn version_reads_91() -> Result<(), String> {
    sys::ensure_ghostfs()?;
    let v = std::fs::read_to_string(format!("{GHOSTFS}/version")).map_err(|e| e.to_string())?;
    ensure!(v == "91\n", "version reads {v:?}, want \"91\\n\"");
    let r = sys::write_once(&format!("{GHOSTFS}/version"), b"92\n");
    ensure!(r.is_err(), "writing version succeeded");
    Ok(())
}

pub(crate) fn root_ctl_rejects_bad_input() -> Result<(), String> {
    sys::ensure_ghostfs()?;
    let ctl = format!("{GHOSTFS}/ctl");
    let long = vec![b'a'; 5000];
    let long_create = format!("create {} 91\n", "9".repeat(300));
    let cases: &[(&[u8], i32)] = &[
        (b"", libc::EINVAL),
        (b"\n", libc::EINVAL),
        (b"garbage\n", libc::EINVAL),
        (b"create\n", libc::EINVAL),
        (b"create 1\n", libc::EINVAL),
        (b"create x 91\n", libc::EINVAL),
        (b"create -1 91\n", libc::EINVAL),
        (b"create 1 -91\n", libc::EINVAL),
        (b"create 0x1 91\n", libc::EINVAL),
        (b"create 18446744073709551616 91\n", libc::EINVAL),
        (b"create 1 4294967296\n", libc::EINVAL),
        (b"create  1 91\n", libc::EINVAL),
        (b" create 1 91\n", libc::EINVAL),
        (b"create 1 91 \n", libc::EINVAL),
        (b"create 1 91\n\n", libc::EINVAL),
        (b"create 1 91\0junk", libc::EINVAL),
        (b"create 1 91 gid=\n", libc::EINVAL),
        (b"create 1 91 gid=x\n", libc::EINVAL),
        (b"create 1 91 gid=1 gid=2\n", libc::EINVAL),
        (b"create 1 91 ephemeral ephemeral\n", libc::EINVAL),
        (b"create\t1\t91\n", libc::EINVAL),
        (b"CREATE 1 91\n", libc::EINVAL),
        (b"destroy\n", libc::EINVAL),
        (b"\xff\xfe\n", libc::EINVAL),
        (&long, libc::EINVAL),
        (long_create.as_bytes(), libc::EINVAL),
        (b"create 1 91 frobnicate\n", libc::ENOENT),
        (b"create 1 90\n", libc::ESRCH),
        (b"create 1 0\n", libc::ESRCH),
    ];
    expect_errnos(&ctl, cases)?;
    // Still healthy: the files answer, nothing was created.
    let v = std::fs::read_to_string(format!("{GHOSTFS}/version")).map_err(|e| e.to_string())?;
    ensure!(v == "91\n", "version after bad input: {v:?}");
    let n = std::fs::read_dir(GHOSTFS)
        .map_err(|e| e.to_string())?
        .count();
    ensure!(n == 2, "{n} entries in {GHOSTFS} after bad input, want 2");
    Ok(())
}

pub(crate) fn setscheduler_ghost_refused() -> Result<(), String> {
    // Entering SCHED_GHOST (18) through sched_setscheduler is refused with an
    // errno, and the caller stays where it was.
    let before = sys::sched_policy(0);
    let r = sys::set_policy(0, ghost_abi::SCHED_GHOST);
    ensure!(r.is_err(), "sched_setscheduler(SCHED_GHOST) succeeded");
    let e = r.err().unwrap_or(0);
    ensure!(
        e == libc::EBADF,
        "sched_setscheduler(SCHED_GHOST): {}, want EBADF",
        errno_name(e)
    );
    let after = sys::sched_policy(0);
    ensure!(after == before, "policy changed from {before} to {after}");
    Ok(())
}
