// SPDX-License-Identifier: GPL-2.0

//! `enclave_<id>/cpu_data`: the enclave's transaction pages
//! ([`crate::cpu_data`]), mapped read-write by agents.
//!
//! Calls: [`super::common`], [`crate::enclave`], [`crate::sys`].

use super::common::{enclave_of, may_open};
use crate::sys::kernfs::{FileOps, OpenFile};
use crate::sys::mm::Vma;
use kernel::prelude::*;

/// `enclave_<id>/cpu_data`: the transaction pages, mapped read-write.
pub struct CpuDataFile;

#[vtable]
impl FileOps for CpuDataFile {
    fn mmap(file: &OpenFile, vma: &mut Vma) -> Result {
        enclave_of(file.key())?.cpu_data().mmap(vma)
    }

    fn open(file: &OpenFile) -> Result {
        may_open(file)
    }
}
