// SPDX-License-Identifier: GPL-2.0

//! `enclave_<id>/cpulist` and `enclave_<id>/cpumask`: the enclave's CPUs as
//! a list (`0-2,5`) or a hexadecimal mask; a write (`CAP_SYS_ADMIN`)
//! replaces them, all or nothing (errors: [`registry::set_cpus`]).
//!
//! Calls: [`super::common`], [`crate::registry`] (CPU ownership),
//! [`crate::enclave`], [`crate::parse`], [`crate::sys`].

use super::common::{enclave_of, may_open, parse_errno};
use crate::parse::{
    format_cpulist, format_cpumask, parse_cpulist, parse_cpumask, CpuSet, ParseError,
};
use crate::registry::{self, nr_cpu_ids};
use crate::sys::cred::{capable, CAP_SYS_ADMIN};
use crate::sys::kernfs::{FileOps, OpenFile, SeqFile};
use kernel::prelude::*;

/// Reads or replaces an enclave's CPUs, all or nothing.
fn write_cpus(
    file: &OpenFile,
    input: &[u8],
    parse: fn(&[u8], usize) -> Result<CpuSet, ParseError>,
) -> Result<usize> {
    if !capable(CAP_SYS_ADMIN) {
        return Err(EPERM);
    }
    let want = parse(input, nr_cpu_ids()).map_err(parse_errno)?;
    let e = enclave_of(file.key())?;
    let added = registry::set_cpus(e.id, &want)?;
    // A CPU that joins starts with a fresh transaction. The registry lock is
    // not needed: the CPU is the enclave's now.
    for cpu in added.iter() {
        e.cpu_data().reset_txn(cpu);
    }
    Ok(input.len())
}

/// The CPUs of the enclave behind `key`.
fn cpus_of_key(key: usize) -> Result<CpuSet> {
    let e = enclave_of(key)?;
    registry::cpus_of(e.id)
}

/// `enclave_<id>/cpulist`: the enclave's CPUs as a list (`0-2,5`).
pub struct CpuListFile;

#[vtable]
impl FileOps for CpuListFile {
    fn show(key: usize, m: &mut SeqFile) -> Result {
        format_cpulist(&cpus_of_key(key)?, m).map_err(|_| EINVAL)
    }

    fn write(file: &OpenFile, input: &[u8]) -> Result<usize> {
        write_cpus(file, input, parse_cpulist)
    }

    fn open(file: &OpenFile) -> Result {
        may_open(file)
    }
}

/// `enclave_<id>/cpumask`: the enclave's CPUs as a hexadecimal mask.
pub struct CpuMaskFile;

#[vtable]
impl FileOps for CpuMaskFile {
    fn show(key: usize, m: &mut SeqFile) -> Result {
        format_cpumask(&cpus_of_key(key)?, nr_cpu_ids(), m).map_err(|_| EINVAL)
    }

    fn write(file: &OpenFile, input: &[u8]) -> Result<usize> {
        write_cpus(file, input, parse_cpumask)
    }

    fn open(file: &OpenFile) -> Result {
        may_open(file)
    }
}
