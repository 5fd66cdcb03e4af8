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
//! directories are described in [`crate::enclave`].

use crate::enclave;
use crate::parse::{parse_root_cmd, ParseError, RootCmd};
use crate::sys::cred::{errno, EOVERFLOW};
use crate::sys::kernfs::{FileOps, Node, OpenFile, Perm, Root, SeqFile};
use crate::{OpsTable, GHOST_VERSION};
use core::fmt::Write;
use core::ptr::{addr_of_mut, null_mut, NonNull};
use core::sync::atomic::{AtomicPtr, Ordering};
use kernel::bindings;
use kernel::ffi::c_int;
use kernel::prelude::*;
use kernel::types::Opaque;

/// The errno for a parse failure.
pub fn parse_errno(e: ParseError) -> Error {
    match e {
        ParseError::Invalid => EINVAL,
        ParseError::UnknownOption => ENOENT,
        ParseError::Range => ERANGE,
        ParseError::Overflow => errno(EOVERFLOW),
    }
}

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
                let root = NonNull::new(ROOT_NODE.load(Ordering::Acquire)).ok_or(ENODEV)?;
                // SAFETY: `ROOT_NODE` is the root directory of the hierarchy
                // created at boot, which is never removed.
                let root = unsafe { Node::from_raw(root) };
                enclave::create(root, id, abi, gid, ephemeral)?;
            }
        }
        Ok(input.len())
    }
}

/// The directory under `/sys/fs` that ghostfs is mounted on.
const MOUNT_POINT: &kernel::str::CStr = kernel::c_str!("ghost");

/// The hierarchy every ghostfs mount shows; set once at boot.
static ROOT: AtomicPtr<bindings::kernfs_root> = AtomicPtr::new(null_mut());

/// The root directory of [`ROOT`], where enclave directories are created.
static ROOT_NODE: AtomicPtr<bindings::kernfs_node> = AtomicPtr::new(null_mut());

/// A `static` that C writes to (`register_filesystem` links it into a list).
#[repr(transparent)]
struct FsType(Opaque<bindings::file_system_type>);

// SAFETY: after registration only the VFS touches the type, under its locks.
unsafe impl Sync for FsType {}

const fn fs_type() -> bindings::file_system_type {
    // SAFETY: plain C data; all-zeroes is the usual starting point for a
    // `struct file_system_type`.
    let mut t: bindings::file_system_type = unsafe { core::mem::zeroed() };
    t.name = kernel::c_str!("ghost").as_char_ptr();
    t.init_fs_context = Some(init_fs_context);
    t.kill_sb = Some(bindings::kernfs_kill_sb);
    t
}

static GHOSTFS_TYPE: FsType = FsType(Opaque::new(fs_type()));

/// The mount context operations: kernfs does the work.
static GHOSTFS_CTX_OPS: OpsTable<bindings::fs_context_operations> = {
    // SAFETY: plain C data; all-zeroes means "no operation".
    let mut o: bindings::fs_context_operations = unsafe { core::mem::zeroed() };
    o.free = Some(free_fs_context);
    o.get_tree = Some(bindings::kernfs_get_tree);
    // SAFETY: function pointers only; C only reads the table.
    unsafe { OpsTable::new(o) }
};

/// `init_fs_context` of ghostfs: a kernfs mount of [`ROOT`].
unsafe extern "C" fn init_fs_context(fc: *mut bindings::fs_context) -> c_int {
    let root = ROOT.load(Ordering::Acquire);
    if root.is_null() {
        return ENODEV.to_errno();
    }
    let kfc = bindings::kernfs_fs_context {
        root,
        ns_tag: null_mut(),
        magic: kernel::uapi::GHOST_SUPER_MAGIC as usize,
        new_sb_created: false,
    };
    let kfc = match KBox::new(kfc, GFP_KERNEL) {
        Ok(b) => KBox::into_raw(b),
        Err(_) => return ENOMEM.to_errno(),
    };
    // SAFETY: the VFS passes a valid, freshly allocated `fc` that this
    // function initialises; `init_user_ns` is a static that lives forever.
    unsafe {
        (*fc).fs_private = kfc.cast();
        (*fc).ops = GHOSTFS_CTX_OPS.get();
        bindings::put_user_ns((*fc).user_ns);
        (*fc).user_ns = bindings::get_user_ns(addr_of_mut!(bindings::init_user_ns));
        (*fc).set_global(true);
    }
    0
}

/// `free` of the mount context.
unsafe extern "C" fn free_fs_context(fc: *mut bindings::fs_context) {
    // SAFETY: `fc` is the context `init_fs_context` set up.
    let kfc = unsafe { (*fc).fs_private }.cast::<bindings::kernfs_fs_context>();
    // SAFETY: as above.
    unsafe { bindings::kernfs_free_fs_context(fc) };
    if !kfc.is_null() {
        // SAFETY: `fs_private` came from `KBox::into_raw` in `init_fs_context`
        // and is freed only here.
        drop(unsafe { KBox::from_raw(kfc) });
    }
}

/// Creates (`true`) or removes (`false`) `/sys/fs/ghost`; returns 0 or a
/// negative errno.
fn mount_point(create: bool) -> c_int {
    let name = MOUNT_POINT.as_char_ptr();
    // SAFETY: `fs_kobj` is set up by the VFS long before device initcalls and
    // never freed; the name is a static string. Removal happens only right
    // after a successful creation, with nothing mounted there yet.
    unsafe {
        if create {
            bindings::sysfs_create_mount_point(bindings::fs_kobj, name)
        } else {
            bindings::sysfs_remove_mount_point(bindings::fs_kobj, name);
            0
        }
    }
}

/// Builds the hierarchy, creates `/sys/fs/ghost`, and registers the
/// filesystem type. Runs once at boot.
pub fn init() -> Result {
    enclave::init()?;
    let root = Root::new()?;
    let top = root.node();
    top.create_file::<VersionFile>(kernel::c_str!("version"), Perm::root(0o444), 0, 0)?;
    top.create_file::<RootCtlFile>(kernel::c_str!("ctl"), Perm::root(0o660), 0, 0)?;
    top.activate();
    ROOT_NODE.store(top.as_raw(), Ordering::Release);

    let ret = mount_point(true);
    if ret != 0 {
        return Err(Error::from_errno(ret));
    }
    ROOT.store(root.leak(), Ordering::Release);

    // SAFETY: `GHOSTFS_TYPE` is a static that lives forever and is registered once.
    let ret = unsafe { bindings::register_filesystem(GHOSTFS_TYPE.0.get()) };
    if ret != 0 {
        mount_point(false);
        return Err(Error::from_errno(ret));
    }
    Ok(())
}
