// SPDX-License-Identifier: GPL-2.0

//! `enclave_<id>/<tunable>` (0664), one file per entry of
//! [`TUNABLES`]: reads `0` or `1`; a write of any integer `kstrtoint`
//! takes sets it (nonzero: on).
//!
//! Calls: [`super::common`], [`crate::enclave`], [`crate::parse`],
//! [`crate::sys::kernfs`].

use super::common::{enclave_of, may_open};
use crate::enclave::TUNABLES;
use crate::parse::parse_int;
use crate::sys::kernfs::{FileOps, OpenFile, SeqFile};
use core::fmt::Write;
use kernel::prelude::*;

/// `enclave_<id>/<tunable>`: `0` or `1`; `I` indexes [`TUNABLES`].
pub struct TunableFile<const I: usize>;

#[vtable]
impl<const I: usize> FileOps for TunableFile<I> {
    fn show(key: usize, m: &mut SeqFile) -> Result {
        let e = enclave_of(key)?;
        if I >= TUNABLES.len() {
            return Err(EINVAL);
        }
        let v = e.tunable(I);
        // `0` or `1`, no newline, as ghOSt prints it.
        write!(m, "{}", u8::from(v)).map_err(|_| EINVAL)
    }

    fn write(file: &OpenFile, input: &[u8]) -> Result<usize> {
        // Any integer `kstrtoint` takes (`0x10`, `-1`, a trailing newline);
        // nonzero is on (ghOSt). Anything else: `EINVAL`.
        let v = parse_int(input).map_err(|_| EINVAL)? != 0;
        let e = enclave_of(file.key())?;
        e.set_tunable(I, v)?;
        Ok(input.len())
    }

    fn open(file: &OpenFile) -> Result {
        may_open(file)
    }
}
