//! The ghost system calls whose arguments are ABI structs or point to
//! them: the ioctls on an enclave's `ctl` descriptor (declared with `nix`'s
//! `ioctl_readwrite_bad!`, each behind a safe typed wrapper) and
//! `ghost_run`. They return a bare [`Errno`]: they are on the scheduling
//! path (see [`crate::sys`]).

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use ghost_abi as abi;

use crate::sys::Errno;

/// The ghost ioctls as `nix` declares them: `unsafe fn(fd, *mut arg)`,
/// called only by the typed wrappers below.
mod raw {
    use ghost_abi as abi;

    nix::ioctl_none_bad!(null, abi::GHOST_IOC_NULL);
    nix::ioctl_readwrite_bad!(
        create_queue,
        abi::GHOST_IOC_CREATE_QUEUE,
        abi::GhostIocCreateQueue
    );
    nix::ioctl_readwrite_bad!(
        set_default_queue,
        abi::GHOST_IOC_SET_DEFAULT_QUEUE,
        abi::GhostIocSetDefaultQueue
    );
    nix::ioctl_readwrite_bad!(
        config_queue_wakeup,
        abi::GHOST_IOC_CONFIG_QUEUE_WAKEUP,
        abi::GhostIocConfigQueueWakeup
    );
    nix::ioctl_readwrite_bad!(
        assoc_queue,
        abi::GHOST_IOC_ASSOC_QUEUE,
        abi::GhostIocAssocQueue
    );
    nix::ioctl_readwrite_bad!(
        sw_get_info,
        abi::GHOST_IOC_SW_GET_INFO,
        abi::GhostIocSwGetInfo
    );
    nix::ioctl_readwrite_bad!(sw_free, abi::GHOST_IOC_SW_FREE, abi::GhostSwInfo);
    nix::ioctl_readwrite_bad!(
        get_cpu_time,
        abi::GHOST_IOC_GET_CPU_TIME,
        abi::GhostIocGetCpuTime
    );
    nix::ioctl_readwrite_bad!(
        commit_txn,
        abi::GHOST_IOC_COMMIT_TXN,
        abi::GhostIocCommitTxn
    );
    nix::ioctl_readwrite_bad!(
        sync_group_txn,
        abi::GHOST_IOC_SYNC_GROUP_TXN,
        abi::GhostIocCommitTxn
    );
}

/// A `nix` result as the call's non-negative result or a bare [`Errno`].
fn errno_of(r: nix::Result<i32>) -> std::result::Result<i32, Errno> {
    r.map_err(|e| Errno(e as i32))
}

/// Declares a safe wrapper of an ioctl whose argument is plain data (no
/// user pointers inside), read and written in place.
macro_rules! plain_ioctls {
    ($($(#[$doc:meta])* $name:ident => $raw:ident($t:ty);)*) => {$(
        $(#[$doc])*
        pub fn $name(fd: BorrowedFd<'_>, arg: &mut $t) -> std::result::Result<i32, Errno> {
            // SAFETY: `arg` is the command's argument type (the uapi
            // struct `nix` declared it with), live and writable for the
            // call, and holds no pointers the kernel would follow.
            errno_of(unsafe { raw::$raw(fd.as_raw_fd(), arg) })
        }
    )*};
}

plain_ioctls! {
    /// `GHOST_IOC_CREATE_QUEUE`: the new queue's descriptor (see
    /// [`ioctl_create_queue`]).
    ioctl_create_queue_raw => create_queue(abi::GhostIocCreateQueue);
    /// `GHOST_IOC_SET_DEFAULT_QUEUE`.
    ioctl_set_default_queue => set_default_queue(abi::GhostIocSetDefaultQueue);
    /// `GHOST_IOC_ASSOC_QUEUE`: the `GHOST_ASSOC_SF_*` status.
    ioctl_assoc_queue => assoc_queue(abi::GhostIocAssocQueue);
    /// `GHOST_IOC_SW_GET_INFO`: fills in `arg.response`.
    ioctl_sw_get_info => sw_get_info(abi::GhostIocSwGetInfo);
    /// `GHOST_IOC_SW_FREE`.
    ioctl_sw_free => sw_free(abi::GhostSwInfo);
    /// `GHOST_IOC_GET_CPU_TIME`: fills in `arg.runtime`.
    ioctl_get_cpu_time => get_cpu_time(abi::GhostIocGetCpuTime);
}

/// `GHOST_IOC_NULL` on `ctl`: does nothing (the cost of an ioctl, for
/// benchmarks).
pub fn ioctl_null(ctl: BorrowedFd<'_>) -> std::result::Result<(), Errno> {
    // SAFETY: the command takes no argument.
    errno_of(unsafe { raw::null(ctl.as_raw_fd()) }).map(|_| ())
}

/// `GHOST_IOC_CREATE_QUEUE` on `ctl`: the new queue's descriptor, owned;
/// the kernel fills in `arg.mapsize`.
pub fn ioctl_create_queue(
    ctl: BorrowedFd<'_>,
    arg: &mut abi::GhostIocCreateQueue,
) -> std::result::Result<OwnedFd, Errno> {
    let fd = ioctl_create_queue_raw(ctl, arg)?;
    // SAFETY: the kernel returned a new descriptor, owned from here on.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `GHOST_IOC_CONFIG_QUEUE_WAKEUP` on `ctl` for queue `qfd`: a message
/// wakes the agents of `w` (none: the agent polls).
pub fn ioctl_config_queue_wakeup(
    ctl: BorrowedFd<'_>,
    qfd: i32,
    w: &[abi::GhostAgentWakeup],
) -> std::result::Result<(), Errno> {
    let mut arg = abi::GhostIocConfigQueueWakeup {
        qfd,
        w: w.as_ptr() as u64,
        ninfo: i32::try_from(w.len()).map_err(|_| Errno(libc::EINVAL))?,
        flags: 0,
    };
    // SAFETY: the command's argument type; `w` points to `ninfo` live
    // `GhostAgentWakeup`s for the duration of the call, which only reads
    // them.
    errno_of(unsafe { raw::config_queue_wakeup(ctl.as_raw_fd(), &mut arg) }).map(|_| ())
}

/// `GHOST_IOC_COMMIT_TXN` (`group` false) or `GHOST_IOC_SYNC_GROUP_TXN`
/// (`group` true) on `ctl` for the CPU bitmask `mask` (`cpu_set_t`
/// layout): the call's result.
pub fn ioctl_commit(
    ctl: BorrowedFd<'_>,
    mask: &[u8],
    group: bool,
) -> std::result::Result<i32, Errno> {
    let mut arg = abi::GhostIocCommitTxn {
        mask_ptr: mask.as_ptr() as u64,
        mask_len: u32::try_from(mask.len()).map_err(|_| Errno(libc::EINVAL))?,
        flags: 0,
    };
    let fd = ctl.as_raw_fd();
    // SAFETY: the command's argument type; `mask_ptr` points to the
    // `mask_len` readable bytes of `mask`, alive for the call, which only
    // reads them.
    errno_of(unsafe {
        if group {
            raw::sync_group_txn(fd, &mut arg)
        } else {
            raw::commit_txn(fd, &mut arg)
        }
    })
}

/// `ghost_run(gtid, agent_barrier, task_barrier, run_cpu, run_flags)`, the
/// ghost-rs system call with the arguments and semantics of
/// `GHOST_IOC_RUN`: a local yield (`gtid` 0) or a ping
/// (`GHOST_AGENT_GTID`).
///
/// Errors: `ESTALE` (a yield whose `agent_barrier` is stale: read the
/// messages and retry), `EINTR` (a signal), `EINVAL`, `EPERM`.
#[cfg(target_arch = "x86_64")]
pub fn ghost_run(
    gtid: i64,
    agent_barrier: u32,
    task_barrier: u32,
    run_cpu: i32,
    run_flags: i32,
) -> std::result::Result<(), Errno> {
    // SAFETY: a system call with integer arguments only.
    let r = unsafe {
        libc::syscall(
            ghost_abi::NR_GHOST_RUN,
            gtid,
            agent_barrier,
            task_barrier,
            run_cpu,
            run_flags,
        )
    };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// `ghost_run` exists on x86_64 only: `ENOSYS` elsewhere.
#[cfg(not(target_arch = "x86_64"))]
pub fn ghost_run(
    _gtid: i64,
    _agent_barrier: u32,
    _task_barrier: u32,
    _run_cpu: i32,
    _run_flags: i32,
) -> std::result::Result<(), Errno> {
    Err(Errno(libc::ENOSYS))
}
