// SPDX-License-Identifier: GPL-2.0

//! ghostfs: the `ghost` filesystem, ghOSt's control plane.
//!
//! One kernfs hierarchy, created at boot and mounted by userspace with
//! `mount -t ghost ghost /sys/fs/ghost` (the mount point is created under
//! `/sys/fs` like the other kernel filesystems'). Mounting it again, anywhere,
//! shows the same hierarchy.
//!
//! Root files (ABI 91):
//!
//! | file      | mode | behaviour |
//! |-----------|------|-----------|
//! | `version` | 0444 | the ABI versions this kernel implements, one per line: `91` |
//! | `ctl`     | 0660 | `create <id> <abi>[ gid=<n>][ ephemeral]` |
//!
//! Errors of the root `ctl`: `EINVAL` for anything that does not parse,
//! `ENOENT` for an unknown `create` option, `ESRCH` for an ABI other than 91,
//! `EPERM` without `CAP_SYS_ADMIN`, `EEXIST` for an id in use. Enclave
//! directories are described in [`dir`]; each file type of theirs has its
//! module ([`ctl`] with [`ioctl`] and its arguments [`uarg`], [`info`],
//! [`tunables`], [`timeouts`], [`cpus`], [`agent_online`], [`sw_regions`],
//! [`cpu_data`], [`tasks`]).
//!
//! Owns: the filesystem type, the root files, and every enclave file's
//! behaviour. Calls: [`crate::registry`] (set up at boot; enclave lookup,
//! creation and destruction), [`crate::enclave`], [`crate::watchdog`],
//! [`crate::parse`], the scheduling core for the commands and ioctls
//! ([`crate::agent`], [`crate::sched`], [`crate::txn`], [`crate::queue`],
//! [`crate::gtask`]), and [`crate::sys`]. Nothing below calls it.

pub mod agent_online;
pub mod common;
pub mod cpu_data;
pub mod cpus;
pub mod ctl;
pub mod dir;
pub mod info;
pub mod ioctl;
pub mod sw_regions;
pub mod tasks;
pub mod timeouts;
pub mod tunables;
pub mod uarg;

use crate::parse::{parse_root_cmd, RootCmd};
use crate::sys::kernfs::{FileOps, FsType, OpenFile, Perm, Root, SeqFile};
use common::parse_errno;
use core::fmt::Write;
use kernel::prelude::*;
use kernel::uapi::GHOST_VERSION;

/// `/sys/fs/ghost/version`.
struct VersionFile;

#[vtable]
impl FileOps for VersionFile {
    fn show(_key: usize, m: &mut SeqFile) -> Result {
        writeln!(m, "{}", GHOST_VERSION).map_err(|_| EINVAL)
    }
}

/// `/sys/fs/ghost/ctl`.
struct RootCtlFile;

#[vtable]
impl FileOps for RootCtlFile {
    fn write(_file: &OpenFile, input: &[u8]) -> Result<usize> {
        let cmd = parse_root_cmd(input).map_err(parse_errno)?;
        match cmd {
            RootCmd::Create {
                id,
                abi,
                gid,
                ephemeral,
            } => {
                let root = GHOSTFS_TYPE.root_dir().ok_or(ENODEV)?;
                dir::create(root, id, abi, gid, ephemeral)?;
            }
        }
        Ok(input.len())
    }
}

/// The directory under `/sys/fs` that ghostfs is mounted on.
const MOUNT_POINT: &kernel::str::CStr = kernel::c_str!("ghost");

/// The filesystem type; every mount shows the hierarchy built at boot.
static GHOSTFS_TYPE: FsType = FsType::new(
    kernel::c_str!("ghost"),
    kernel::uapi::GHOST_SUPER_MAGIC as usize,
);

/// Builds the hierarchy, creates `/sys/fs/ghost`, and registers the
/// filesystem type. Runs once at boot.
pub fn init() -> Result {
    crate::registry::init()?;
    let root = Root::new()?;
    let top = root.node();
    top.create_file::<VersionFile>(kernel::c_str!("version"), Perm::root(0o444), 0, 0)?;
    top.create_file::<RootCtlFile>(kernel::c_str!("ctl"), Perm::root(0o660), 0, 0)?;
    top.activate();
    GHOSTFS_TYPE.register(root, MOUNT_POINT)
}
