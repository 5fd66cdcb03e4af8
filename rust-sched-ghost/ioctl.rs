// SPDX-License-Identifier: GPL-2.0

//! The `GHOST_IOC_*` ioctls of an enclave's `ctl` file (ABI 91 numbering).
//!
//! Every ioctl needs the file open for writing (`EACCES` otherwise); an
//! unknown command gets `ENOTTY`. Implemented so far: `NULL` (returns 0)
//! and `CREATE_QUEUE`. The others belong to the scheduling core and return
//! `EOPNOTSUPP` until it lands.

use crate::enclave::Enclave;
use crate::ghostfs::errno;
use crate::kernfs::OpenFile;
use crate::queue::Queue;
use core::mem::{offset_of, size_of};
use kernel::bindings;
use kernel::prelude::*;
use kernel::uaccess::UserSlice;
use kernel::uapi;

/// `_IOC(dir, 'g', nr, size)`.
const fn ioc(dir: u32, nr: u32, size: usize) -> u32 {
    (dir << 30) | ((size as u32) << 16) | ((b'g' as u32) << 8) | nr
}

const NONE: u32 = 0;
const WRITE: u32 = 1;
const READ: u32 = 2;

/// `GHOST_IOC_NULL`.
pub const IOC_NULL: u32 = ioc(NONE, 0, 0);
/// `GHOST_IOC_SW_GET_INFO`.
pub const IOC_SW_GET_INFO: u32 = ioc(READ | WRITE, 1, size_of::<uapi::ghost_ioc_sw_get_info>());
/// `GHOST_IOC_SW_FREE`.
pub const IOC_SW_FREE: u32 = ioc(WRITE, 2, size_of::<uapi::ghost_sw_info>());
/// `GHOST_IOC_CREATE_QUEUE`.
pub const IOC_CREATE_QUEUE: u32 = ioc(READ | WRITE, 3, size_of::<uapi::ghost_ioc_create_queue>());
/// `GHOST_IOC_ASSOC_QUEUE`.
pub const IOC_ASSOC_QUEUE: u32 = ioc(WRITE, 4, size_of::<uapi::ghost_ioc_assoc_queue>());
/// `GHOST_IOC_SET_DEFAULT_QUEUE`.
pub const IOC_SET_DEFAULT_QUEUE: u32 =
    ioc(WRITE, 5, size_of::<uapi::ghost_ioc_set_default_queue>());
/// `GHOST_IOC_CONFIG_QUEUE_WAKEUP`.
pub const IOC_CONFIG_QUEUE_WAKEUP: u32 =
    ioc(WRITE, 6, size_of::<uapi::ghost_ioc_config_queue_wakeup>());
/// `GHOST_IOC_GET_CPU_TIME`.
pub const IOC_GET_CPU_TIME: u32 = ioc(READ | WRITE, 7, size_of::<uapi::ghost_ioc_get_cpu_time>());
/// `GHOST_IOC_COMMIT_TXN`.
pub const IOC_COMMIT_TXN: u32 = ioc(WRITE, 8, size_of::<uapi::ghost_ioc_commit_txn>());
/// `GHOST_IOC_SYNC_GROUP_TXN`.
pub const IOC_SYNC_GROUP_TXN: u32 = ioc(WRITE, 9, size_of::<uapi::ghost_ioc_commit_txn>());
/// `GHOST_IOC_TIMERFD_SETTIME`.
pub const IOC_TIMERFD_SETTIME: u32 = ioc(
    READ | WRITE,
    10,
    size_of::<uapi::ghost_ioc_timerfd_settime>(),
);
/// `GHOST_IOC_RUN`.
pub const IOC_RUN: u32 = ioc(WRITE, 11, size_of::<uapi::ghost_ioc_run>());

// The values the ABI documents.
const _: () = assert!(IOC_NULL == 0x6700);
const _: () = assert!(IOC_SW_GET_INFO == 0xc0186701);
const _: () = assert!(IOC_SW_FREE == 0x40086702);
const _: () = assert!(IOC_CREATE_QUEUE == 0xc0186703);
const _: () = assert!(IOC_ASSOC_QUEUE == 0x40206704);
const _: () = assert!(IOC_SET_DEFAULT_QUEUE == 0x40046705);
const _: () = assert!(IOC_CONFIG_QUEUE_WAKEUP == 0x40186706);
const _: () = assert!(IOC_GET_CPU_TIME == 0xc0106707);
const _: () = assert!(IOC_COMMIT_TXN == 0x40106708);
const _: () = assert!(IOC_SYNC_GROUP_TXN == 0x40106709);
const _: () = assert!(IOC_TIMERFD_SETTIME == 0xc030670a);
const _: () = assert!(IOC_RUN == 0x4018670b);

/// Handles an ioctl on the `ctl` file of enclave `_e`.
pub fn ctl_ioctl(_e: &Enclave, file: &OpenFile, cmd: u32, arg: usize) -> Result<isize> {
    if !file.is_writer() {
        return Err(EACCES);
    }
    match cmd {
        IOC_NULL => Ok(0),
        IOC_CREATE_QUEUE => create_queue(arg),
        IOC_SW_GET_INFO
        | IOC_SW_FREE
        | IOC_ASSOC_QUEUE
        | IOC_SET_DEFAULT_QUEUE
        | IOC_CONFIG_QUEUE_WAKEUP
        | IOC_GET_CPU_TIME
        | IOC_COMMIT_TXN
        | IOC_SYNC_GROUP_TXN
        | IOC_TIMERFD_SETTIME
        | IOC_RUN => Err(errno(bindings::EOPNOTSUPP)),
        _ => Err(ENOTTY),
    }
}

/// Reads the `i32` at byte `off` of `buf`.
fn i32_at(buf: &[u8], off: usize) -> Result<i32> {
    let b = buf.get(off..off + 4).ok_or(EINVAL)?;
    Ok(i32::from_ne_bytes(b.try_into().map_err(|_| EINVAL)?))
}

/// `GHOST_IOC_CREATE_QUEUE`: `{int elems, node, flags; u64 mapsize}`.
/// `elems` must be a power of two up to 65536, `node` -1 or an online
/// NUMA node, `flags` 0 (`EINVAL` otherwise). Writes `mapsize` back and
/// returns the queue's file descriptor.
fn create_queue(arg: usize) -> Result<isize> {
    type Args = uapi::ghost_ioc_create_queue;
    let mut buf = [0u8; size_of::<Args>()];
    UserSlice::new(arg, buf.len())
        .reader()
        .read_slice(&mut buf)?;
    let elems = i32_at(&buf, offset_of!(Args, elems))?;
    let node = i32_at(&buf, offset_of!(Args, node))?;
    let flags = i32_at(&buf, offset_of!(Args, flags))?;
    let elems = u32::try_from(elems).map_err(|_| EINVAL)?;
    // SAFETY: only tests a bit of the online-node mask, range-checked.
    if flags != 0 || (node != -1 && !unsafe { bindings::ghost_node_online(node) }) {
        return Err(EINVAL);
    }
    let q = Queue::new(elems, node)?;
    let mapsize = u64::try_from(q.map_size()).map_err(|_| EINVAL)?;
    // Report the size before the fd exists: once it does, userspace may
    // close it from another thread, and a failed copy could not undo it.
    let at = arg.checked_add(offset_of!(Args, mapsize)).ok_or(EFAULT)?;
    UserSlice::new(at, 8)
        .writer()
        .write_slice(&mapsize.to_ne_bytes())?;
    let fd = Queue::into_fd(q)?;
    Ok(fd as isize)
}
