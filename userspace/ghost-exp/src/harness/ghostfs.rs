//! ghostfs from a test's side: paths, opening, ioctls, queues, enclaves
//! created and destroyed by writes to `ctl`, the CPU count.

use super::sys::{self, errno_name, GHOSTFS};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;

pub(crate) fn path(id: u64, f: &str) -> String {
    format!("{GHOSTFS}/enclave_{id}/{f}")
}

pub(crate) fn open_rw(p: &str) -> Result<std::fs::File, String> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(p)
        .map_err(|e| format!("{p}: {e}"))
}

pub(crate) fn open_ro(p: &str) -> Result<std::fs::File, String> {
    std::fs::File::open(p).map_err(|e| format!("{p}: {e}"))
}

/// `ioctl(fd, cmd, arg)`: the result or the errno.
pub(crate) fn ioctl(
    fd: &impl std::os::fd::AsRawFd,
    cmd: u64,
    arg: *mut libc::c_void,
) -> Result<i32, i32> {
    // The kernel validates `arg` for the command (the tests pass bad
    // pointers on purpose; the kernel must refuse them).
    sys::ioctl_raw(fd.as_raw_fd(), cmd, arg as usize).map(|r| r as i32)
}

/// `GHOST_IOC_CREATE_QUEUE` with `elems`, `node`, `flags`; returns the
/// queue file and the `mapsize` the kernel reported.
pub(crate) fn create_queue(
    ctl: &std::fs::File,
    elems: i32,
    node: i32,
    flags: i32,
) -> Result<(std::fs::File, u64), i32> {
    let mut args = ghost_abi::GhostIocCreateQueue {
        elems,
        node,
        flags,
        mapsize: 0,
    };
    let fd = ioctl(
        ctl,
        ghost_abi::GHOST_IOC_CREATE_QUEUE,
        (&raw mut args).cast(),
    )?;
    Ok((sys::adopt_fd(fd), args.mapsize))
}

/// Destroys every enclave; returns the names of those there were.
pub(crate) fn destroy_all_enclaves() -> Result<Vec<String>, String> {
    let Ok(dir) = std::fs::read_dir(GHOSTFS) else {
        return Ok(Vec::new());
    };
    let mut left = Vec::new();
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(id) = name.strip_prefix("enclave_") {
            match sys::write_once(&format!("{GHOSTFS}/{name}/ctl"), b"destroy") {
                Ok(_) => left.push(name),
                // Gone meanwhile (an ephemeral enclave whose owner exited,
                // another destroyer): nothing left to do.
                Err(e) if e == libc::ENOENT || e == libc::ENODEV => {}
                Err(e) => return Err(format!("cleanup: destroy enclave_{id}: {}", errno_name(e))),
            }
        }
    }
    Ok(left)
}

/// Writes each input of `cases` to `path` (one `write(2)` each) and checks
/// that it fails with the paired errno.
pub(crate) fn expect_errnos(path: &str, cases: &[(&[u8], i32)]) -> Result<(), String> {
    for (input, want) in cases {
        super::figures::ops(1);
        match sys::write_once(path, input) {
            Ok(n) => {
                return Err(format!(
                    "write {:?} succeeded ({n} bytes)",
                    String::from_utf8_lossy(input)
                ))
            }
            Err(e) if e == *want => {}
            Err(e) => {
                return Err(format!(
                    "write {:?}: {}, want {}",
                    String::from_utf8_lossy(input),
                    errno_name(e),
                    errno_name(*want)
                ))
            }
        }
    }
    Ok(())
}

/// The 0/1 tunables of an enclave.
pub(crate) const TUNABLES: [&str; 7] = [
    "commit_at_tick",
    "deliver_ticks",
    "deliver_cpu_availability",
    "deliver_agent_runnability",
    "wake_on_waker_cpu",
    "switchto_disabled",
    "live_dangerously",
];

pub(crate) fn ctl_path(id: u64) -> String {
    format!("{GHOSTFS}/enclave_{id}/ctl")
}

pub(crate) fn create_enclave(cmd: &str) -> Result<(), String> {
    sys::write_once(&format!("{GHOSTFS}/ctl"), cmd.as_bytes())
        .map(|_| ())
        .map_err(|e| format!("write {cmd:?} to the root ctl: {}", errno_name(e)))
}

pub(crate) fn destroy_enclave(id: u64) -> Result<(), String> {
    sys::write_once(&ctl_path(id), b"destroy\n")
        .map(|_| ())
        .map_err(|e| format!("destroy enclave_{id}: {}", errno_name(e)))
}

/// `nr_cpu_ids`: one more than the highest possible CPU.
pub(crate) fn nr_cpu_ids() -> Result<usize, String> {
    let p = "/sys/devices/system/cpu/possible";
    let s = std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}"))?;
    let last = s.trim().rsplit([',', '-']).next().unwrap_or("");
    last.parse::<usize>()
        .map(|n| n + 1)
        .map_err(|e| format!("{p}: {s:?}: {e}"))
}

pub(crate) fn mode_of(path: &str) -> Result<u32, String> {
    Ok(std::fs::metadata(path)
        .map_err(|e| format!("{path}: {e}"))?
        .permissions()
        .mode()
        & 0o7777)
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
