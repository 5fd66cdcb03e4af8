// SPDX-License-Identifier: GPL-2.0

//! The read-only files of an enclave: `enclave_<id>/abi_version` (the ABI
//! it was created for) and `enclave_<id>/status` (`version`, `active`:
//! whether an agent holds `agent_online` open, `nr_tasks`, and `ephemeral
//! <tgid>` for an ephemeral enclave).
//!
//! Calls: [`super::common`], [`crate::enclave`], [`crate::sys::kernfs`].

use super::common::{enclave_of, may_open};
use crate::sys::kernfs::{FileOps, OpenFile, SeqFile};
use core::fmt::Write;
use kernel::prelude::*;

/// `enclave_<id>/abi_version`.
pub struct AbiVersionFile;

#[vtable]
impl FileOps for AbiVersionFile {
    fn show(key: usize, m: &mut SeqFile) -> Result {
        let e = enclave_of(key)?;
        writeln!(m, "{}", e.abi).map_err(|_| EINVAL)
    }

    fn open(file: &OpenFile) -> Result {
        may_open(file)
    }
}

/// `enclave_<id>/status`.
pub struct StatusFile;

#[vtable]
impl FileOps for StatusFile {
    fn show(key: usize, m: &mut SeqFile) -> Result {
        let e = enclave_of(key)?;
        // `active`: an agent holds `agent_online` open. `nr_tasks` counts
        // tasks and agents.
        let active = if e.agent_online() { "yes" } else { "no" };
        write!(
            m,
            "version {}\nactive {}\nnr_tasks {}\n",
            e.abi,
            active,
            e.nr_tasks()
        )
        .map_err(|_| EINVAL)?;
        if let Some(tgid) = e.ephemeral_tgid() {
            writeln!(m, "ephemeral {}", tgid).map_err(|_| EINVAL)?;
        }
        Ok(())
    }

    fn open(file: &OpenFile) -> Result {
        may_open(file)
    }
}
