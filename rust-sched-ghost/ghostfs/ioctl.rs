// SPDX-License-Identifier: GPL-2.0

//! The `GHOST_IOC_*` ioctls of an enclave's `ctl` file (ABI 91 numbering).
//!
//! Every ioctl needs the file open for writing (`EACCES` otherwise); an
//! unknown command gets `ENOTTY`. `TIMERFD_SETTIME` is
//! [`crate::timerfd`]'s.
//!
//! Owns: the ioctl numbers and each ioctl's checks and argument handling.
//! Calls: [`super::uarg`] (arguments in and out), [`crate::enclave`] (the
//! queues, status words, CPUs), the scheduling core ([`crate::agent`],
//! [`crate::txn`], [`crate::gtask`], [`crate::queue`]) and [`crate::sys`].

use super::uarg;
use crate::enclave::Enclave;
use crate::gtask::GhostTask;
use crate::queue::Queue;
use crate::sw::SwInfo;
use crate::sys::cred::{errno, ESTALE};
use crate::sys::kernfs::OpenFile;
use core::mem::{offset_of, size_of};
use kernel::prelude::*;
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

/// Handles an ioctl on the `ctl` file of enclave `e`.
pub fn ctl_ioctl(e: &Enclave, file: &OpenFile, cmd: u32, arg: usize) -> Result<isize> {
    if !file.is_writer() {
        return Err(EACCES);
    }
    match cmd {
        IOC_NULL => Ok(0),
        IOC_CREATE_QUEUE => create_queue(e, arg),
        IOC_SET_DEFAULT_QUEUE => {
            let a: uapi::ghost_ioc_set_default_queue = uarg::read(arg)?;
            let q = Queue::from_fd(a.fd)?;
            e.set_default_queue(&q)?;
            Ok(0)
        }
        IOC_CONFIG_QUEUE_WAKEUP => config_queue_wakeup(e, arg),
        IOC_ASSOC_QUEUE => assoc_queue(e, arg),
        IOC_SW_GET_INFO => sw_get_info(e, arg),
        IOC_SW_FREE => {
            let a: uapi::ghost_sw_info = uarg::read(arg)?;
            let gated = e.free_sw(SwInfo {
                id: a.id,
                index: a.index,
            })?;
            if let Some(gtid) = gated {
                // The task may have come back meanwhile: now the agent
                // hears.
                crate::sched::ungate(e, gtid);
            }
            Ok(0)
        }
        IOC_GET_CPU_TIME => {
            // Any task by gtid (0: the caller), as ghOSt: the CPU time it
            // has used, up to now if it is running.
            type T = uapi::ghost_ioc_get_cpu_time;
            let a: T = uarg::read(arg)?;
            let t = match a.gtid {
                0 => crate::sys::task::TaskHandle::current()?,
                g => crate::sys::task::by_gtid(g).ok_or(ESRCH)?,
            };
            let runtime: u64 = t.as_ptr().sched_runtime();
            uarg::write_field(arg, offset_of!(T, runtime), &runtime)?;
            Ok(0)
        }
        IOC_COMMIT_TXN | IOC_SYNC_GROUP_TXN => {
            let a: uapi::ghost_ioc_commit_txn = uarg::read(arg)?;
            let commit = if cmd == IOC_COMMIT_TXN {
                crate::txn::commit_ioctl
            } else {
                crate::txn::sync_group_ioctl
            };
            commit(e, a.mask_ptr as usize as u64, a.mask_len, a.flags)
        }
        IOC_RUN => {
            let a: uapi::ghost_ioc_run = uarg::read(arg)?;
            crate::agent::run(
                a.gtid,
                a.agent_barrier,
                a.task_barrier,
                a.run_cpu,
                a.run_flags,
            )?;
            Ok(0)
        }
        IOC_TIMERFD_SETTIME => crate::timerfd::settime_ioctl(e, arg),
        _ => Err(ENOTTY),
    }
}

/// `GHOST_IOC_CONFIG_QUEUE_WAKEUP {qfd, w, ninfo, flags}`: which agents a
/// message on the queue wakes: `ninfo` 0 (none: the agent polls) to 2
/// entries `{cpu, prio}`. A task's message wakes the agent of the task's CPU
/// if it is listed, else the first listed. The agent of the last listed CPU
/// is woken now, in case the queue already holds messages. `EINVAL` for
/// nonzero `flags`, more than 2 entries, a nonzero `prio`, a CPU that is not
/// online, or a queue of another enclave; `EBADF` for an fd that is no
/// queue; `EFAULT` for a bad `w`.
fn config_queue_wakeup(e: &Enclave, arg: usize) -> Result<isize> {
    let a: uapi::ghost_ioc_config_queue_wakeup = uarg::read(arg)?;
    let ninfo = usize::try_from(a.ninfo).map_err(|_| EINVAL)?;
    if ninfo > uapi::GHOST_MAX_WINFO as usize || a.flags != 0 {
        return Err(EINVAL);
    }
    let q = Queue::from_fd(a.qfd)?;
    if !e.owns_queue(&q) {
        return Err(EINVAL);
    }
    let mut cpus = [-1i32; crate::queue::MAX_WAKE];
    uarg::read_each(a.w as usize, ninfo, |i, info: uapi::ghost_agent_wakeup| {
        if info.prio != 0 || !crate::sys::cpu::cpu_online(info.cpu) {
            return Err(EINVAL);
        }
        *cpus.get_mut(i).ok_or(EINVAL)? = info.cpu;
        Ok(())
    })?;
    let listed = cpus.get(..ninfo).unwrap_or(&[]);
    q.set_wake_cpus(listed);
    if let Some(&last) = listed.last() {
        // Process context, no runqueue lock held.
        crate::agent::wake_unlocked(last);
    }
    Ok(0)
}

/// `GHOST_IOC_SW_GET_INFO {src, sw_info out}`: where a status word is.
/// `GHOST_AGENT` (by CPU): `EINVAL` for a CPU that is not online or has no
/// agent, `ENODEV` for a CPU of another enclave. `GHOST_TASK` (by gtid; 0 is
/// the caller): a task or agent of this enclave, `ENOENT` if there is none.
/// `EINVAL` for another source type.
fn sw_get_info(e: &Enclave, arg: usize) -> Result<isize> {
    type T = uapi::ghost_ioc_sw_get_info;
    let a: T = uarg::read(arg)?;
    let src = a.request.arg as i64;
    let info = match a.request.type_ {
        uapi::ghost_type_GHOST_AGENT => {
            let cpu = i32::try_from(src).map_err(|_| EINVAL)?;
            if !crate::sys::cpu::cpu_online(cpu) {
                return Err(EINVAL);
            }
            if !e.owns_cpu(cpu) {
                return Err(ENODEV);
            }
            let rq = crate::sys::rq::RqGuard::lock(cpu).ok_or(EINVAL)?;
            let agent = crate::agent::percpu::GhostRq::of(cpu)
                .and_then(|g| g.agent())
                .ok_or(EINVAL)?;
            let gt = GhostTask::of(&rq, agent).ok_or(EINVAL)?;
            if !core::ptr::eq(gt.enclave(), e) {
                return Err(ENODEV);
            }
            gt.sw_info
        }
        uapi::ghost_type_GHOST_TASK => task_state(e, src, |_, gt| Ok(gt.sw_info))?,
        _ => return Err(EINVAL),
    };
    let out = uarg::User(uapi::ghost_sw_info {
        id: info.id,
        index: info.index,
    });
    uarg::write_field(arg, offset_of!(T, response), &out)?;
    Ok(0)
}

/// The task (or agent) `gtid` of `e` (0: the caller), by pid or among the
/// members; `ENOENT` if there is none.
fn task_of(e: &Enclave, gtid: i64) -> Result<crate::sys::task::TaskHandle> {
    if gtid == 0 {
        return crate::sys::task::TaskHandle::current();
    }
    e.task_by_gtid(gtid).ok_or(ENOENT)
}

/// Runs `f` on the ghost state of the task or agent `gtid` of `e` (0: the
/// caller), with its rq locked. `ENOENT` if there is no such task in `e`.
fn task_state<R>(
    e: &Enclave,
    gtid: i64,
    f: impl FnOnce(&crate::sys::rq::Rq, &GhostTask) -> Result<R>,
) -> Result<R> {
    let t = task_of(e, gtid)?;
    let g = crate::sys::task::TaskRqGuard::lock(t);
    let gt = GhostTask::of(&g, g.task()).ok_or(ENOENT)?;
    if !core::ptr::eq(gt.enclave(), e) {
        return Err(ENOENT);
    }
    f(&g, gt)
}

/// `GHOST_IOC_ASSOC_QUEUE {fd, src, barrier, flags}`: the task or agent
/// `src` (a `GHOST_TASK` source: a gtid) sends its messages to queue `fd`
/// from now on; for an agent, those are its CPU's messages. `barrier` must
/// be the task's barrier (an agent's: its CPU's agent barrier), else
/// `ESTALE`: the caller has not seen every message. `EINVAL` for another
/// source type or nonzero flags; `EBADF` for an fd that is no queue;
/// `ENOENT` for no such task in this enclave. Returns the status flags:
/// `GHOST_ASSOC_SF_ALREADY` if the queue was already the task's,
/// `GHOST_ASSOC_SF_BRAND_NEW` if the agent has not been told about the task
/// yet (its TASK_NEW is pending, or its messages are gated).
fn assoc_queue(e: &Enclave, arg: usize) -> Result<isize> {
    let a: uapi::ghost_ioc_assoc_queue = uarg::read(arg)?;
    let gtid = a.src.arg as i64;
    if a.flags != 0 || a.src.type_ != uapi::ghost_type_GHOST_TASK {
        return Err(EINVAL);
    }
    let q = Queue::from_fd(a.fd)?;
    if !e.owns_queue(&q) {
        return Err(EINVAL);
    }
    let barrier = a.barrier;
    task_state(e, gtid, |_, gt| {
        let current = match gt.agent_cpu {
            // The agent's word mirrors its CPU's agent barrier.
            Some(cpu) => crate::agent::percpu::GhostRq::of(cpu).map_or(0, |g| g.agent_barrier()),
            None => gt.barrier(),
        };
        if current != barrier {
            return Err(errno(ESTALE));
        }
        let mut status = 0;
        if gt.queue().is_some_and(|cur| core::ptr::eq(cur, &*q)) {
            status |= uapi::GHOST_ASSOC_SF_ALREADY;
        }
        if gt.new_pending() || gt.gated() {
            status |= uapi::GHOST_ASSOC_SF_BRAND_NEW;
        }
        // The enclave keeps the queue (it made it): a plain pointer will do.
        gt.set_queue(Some(&q));
        Ok(status as isize)
    })
}

/// `GHOST_IOC_CREATE_QUEUE`: `{int elems, node, flags; u64 mapsize}`.
/// `elems` must be a power of two up to 65536, `node` -1 or an online
/// NUMA node, `flags` 0 (`EINVAL` otherwise). Writes `mapsize` back and
/// returns the queue's file descriptor.
fn create_queue(e: &Enclave, arg: usize) -> Result<isize> {
    type T = uapi::ghost_ioc_create_queue;
    let a: T = uarg::read(arg)?;
    let (node, flags) = (a.node, a.flags);
    let elems = u32::try_from(a.elems).map_err(|_| EINVAL)?;
    if flags != 0 || (node != -1 && !crate::sys::cpu::node_online(node)) {
        return Err(EINVAL);
    }
    let q = Queue::new(elems, node, e.id)?;
    e.add_queue(q.clone())?;
    let mapsize = u64::try_from(q.map_size()).map_err(|_| EINVAL)?;
    // Report the size before the fd exists: once it does, userspace may
    // close it from another thread, and a failed copy could not undo it.
    uarg::write_field(arg, offset_of!(T, mapsize), &mapsize)?;
    let fd = Queue::into_fd(q)?;
    Ok(fd as isize)
}
