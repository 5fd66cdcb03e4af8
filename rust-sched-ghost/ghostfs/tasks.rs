// SPDX-License-Identifier: GPL-2.0

//! `enclave_<id>/tasks`: a task joins by a write of its pid or gtid (`0`:
//! the writer); a read lists the pids of the enclave's tasks.
//!
//! Calls: [`super::common`], [`crate::enclave`], [`crate::sched`] (the join),
//! [`crate::parse`], [`crate::sys`].

use super::common::{enclave_of, kstrto_errno, may_open};
use crate::parse::parse_signed;
use crate::sys::kernfs::{FileOps, OpenFile, SeqFile};
use core::fmt::Write;
use kernel::prelude::*;

/// `enclave_<id>/tasks`: a write of a pid, a gtid or `0` (the writer) moves
/// that task into the enclave; a read lists the pids of its tasks.
pub struct TasksFile;

#[vtable]
impl FileOps for TasksFile {
    fn show(key: usize, m: &mut SeqFile) -> Result {
        let e = enclave_of(key)?;
        for t in e.tasks() {
            writeln!(m, "{}", t.as_ptr().pid()).map_err(|_| EINVAL)?;
        }
        Ok(())
    }

    fn write(file: &OpenFile, input: &[u8]) -> Result<usize> {
        // What `kstrtoll` takes; `EINVAL` if it does not parse, `ERANGE` if
        // it does not fit, `EINVAL` for a negative id.
        let v = parse_signed(input).map_err(kstrto_errno)?;
        let v = u64::try_from(v).map_err(|_| EINVAL)?;
        let e = enclave_of(file.key())?;
        let task = crate::sys::task::lookup(v)?;
        crate::sched::join(&e, &task)?;
        Ok(input.len())
    }

    fn open(file: &OpenFile) -> Result {
        may_open(file)
    }
}
