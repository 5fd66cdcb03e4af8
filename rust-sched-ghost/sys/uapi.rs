// SPDX-License-Identifier: GPL-2.0

//! The uapi's ioctl argument structs (`include/uapi/linux/ghost.h`, as
//! bindgen'd into `kernel::uapi`) as user memory carries them.
//!
//! This module owns the claim that each listed struct may be filled from
//! arbitrary user bytes ([`FromBytes`]) or copied out byte for byte
//! ([`AsBytes`]), and pins the layouts the ABI documents;
//! [`crate::ghostfs::uarg`] copies them in and out.

use core::mem::{offset_of, size_of};
use kernel::types::{AsBytes, FromBytes};
use kernel::uapi;

/// A uapi struct as user memory carries it.
#[repr(transparent)]
pub struct User<T>(pub T);

macro_rules! from_user {
    ($($t:ident),* $(,)?) => {
        $(
            // SAFETY: a bindgen'd `#[repr(C)]` struct of integers, integer
            // typedefs (C enums are `c_uint`) and raw pointers (never
            // dereferenced: they are user addresses): every bit pattern is a
            // valid value, and there is no interior mutability.
            unsafe impl FromBytes for User<uapi::$t> {}
        )*
    };
}

from_user!(
    ghost_ioc_sw_get_info,
    ghost_sw_info,
    ghost_ioc_create_queue,
    ghost_ioc_assoc_queue,
    ghost_ioc_set_default_queue,
    ghost_ioc_config_queue_wakeup,
    ghost_agent_wakeup,
    ghost_ioc_get_cpu_time,
    ghost_ioc_commit_txn,
    ghost_ioc_run,
    ghost_ioc_timerfd_settime,
);

// SAFETY: two `u32`s, no padding (asserted below), no interior mutability.
unsafe impl AsBytes for User<uapi::ghost_sw_info> {}

// The layouts the ABI documents (ghost-abi.md, x86_64). The ioctl numbers in
// `ghostfs/ioctl.rs` pin the sizes of the top-level structs; these pin the rest.
const _: () = assert!(size_of::<uapi::ghost_sw_info>() == 8);
const _: () = assert!(offset_of!(uapi::ghost_sw_info, index) == 4);
const _: () = assert!(size_of::<uapi::ghost_agent_wakeup>() == 8);
const _: () = assert!(offset_of!(uapi::ghost_agent_wakeup, prio) == 4);
const _: () = assert!(size_of::<uapi::ghost_msg_src>() == 16);
const _: () = assert!(offset_of!(uapi::ghost_msg_src, arg) == 8);
const _: () = assert!(offset_of!(uapi::ghost_ioc_sw_get_info, response) == 16);
const _: () = assert!(offset_of!(uapi::ghost_ioc_create_queue, mapsize) == 16);
const _: () = assert!(offset_of!(uapi::ghost_ioc_assoc_queue, src) == 8);
const _: () = assert!(offset_of!(uapi::ghost_ioc_assoc_queue, barrier) == 24);
const _: () = assert!(offset_of!(uapi::ghost_ioc_config_queue_wakeup, w) == 8);
const _: () = assert!(offset_of!(uapi::ghost_ioc_config_queue_wakeup, ninfo) == 16);
const _: () = assert!(offset_of!(uapi::ghost_ioc_get_cpu_time, runtime) == 8);
const _: () = assert!(offset_of!(uapi::ghost_ioc_commit_txn, mask_len) == 8);
const _: () = assert!(offset_of!(uapi::ghost_ioc_run, run_cpu) == 16);
