// SPDX-License-Identifier: GPL-2.0

//! `enclave_<id>/sw_regions/sw_<id>`: the status-word regions, created by
//! the `ctl` command `create sw_region <id> <node>` and mapped read-only.
//!
//! Calls: [`super::common`], [`crate::enclave`] (the regions),
//! [`crate::parse`], [`crate::sys`].

use super::common::{enclave_of, key_of, may_open};
use crate::enclave::Enclave;
use crate::parse::parse_u32;
use crate::sys::cpu::node_online;
use crate::sys::kernfs::{FileOps, OpenFile, Perm};
use crate::sys::mm::Vma;
use kernel::prelude::*;
use kernel::str::CString;

/// Creates the status-word region `id` (`sw_regions/sw_<id>`) on NUMA
/// node `node`. `EEXIST` if the id is taken, `EINVAL` for a node that does
/// not exist or is offline, `ENOSPC` beyond [`crate::enclave::MAX_SW_REGIONS`].
pub fn create_sw_region(e: &Enclave, id: u32, node: u32) -> Result {
    if !i32::try_from(node).is_ok_and(node_online) {
        return Err(EINVAL);
    }
    let name = CString::try_from_fmt(core::format_args!("{}{}", SW_PREFIX, id))?;
    let size = i64::try_from(crate::sw::REGION_SIZE).map_err(|_| EINVAL)?;
    let key = key_of(e.id)?;
    e.create_sw_region(id, node, |sw_dir, gid| {
        let perm = Perm {
            mode: 0o440,
            uid: 0,
            gid,
        };
        sw_dir.create_file::<SwRegionFile>(&name, perm, size, key)
    })
}

/// Region files are named `sw_<id>`.
const SW_PREFIX: &str = "sw_";

/// `enclave_<id>/sw_regions/sw_<n>`: a status-word region, mapped
/// read-only.
struct SwRegionFile;

#[vtable]
impl FileOps for SwRegionFile {
    fn mmap(file: &OpenFile, vma: &mut Vma) -> Result {
        // The file's name says which region it is.
        let id = file
            .name()
            .to_str()
            .ok()
            .and_then(|n| n.strip_prefix(SW_PREFIX))
            .and_then(parse_u32)
            .ok_or(ENODEV)?;
        let region = enclave_of(file.key())?.sw_region(id).ok_or(ENODEV)?;
        // Mapping sleeps: it runs outside the regions' lock, on a reference
        // of its own.
        region.mmap(vma)
    }

    fn open(file: &OpenFile) -> Result {
        may_open(file)
    }
}
