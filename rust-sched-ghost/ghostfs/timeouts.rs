// SPDX-License-Identifier: GPL-2.0

//! `enclave_<id>/runnable_timeout` and `enclave_<id>/agentless_timeout`:
//! milliseconds, in what `kstrtoul` takes, up to what a `ktime_t` holds in
//! nanoseconds ([`MAX_RUNNABLE_TIMEOUT_MS`]).
//!
//! Calls: [`super::common`], [`crate::enclave`], [`crate::parse`],
//! [`crate::watchdog`] (armed by a `runnable_timeout`),
//! [`crate::sys::kernfs`].

use super::common::{enclave_of, may_open};
use crate::enclave::MAX_RUNNABLE_TIMEOUT_MS;
use crate::parse::parse_unsigned;
use crate::sys::kernfs::{FileOps, OpenFile, SeqFile};
use core::fmt::Write;
use kernel::prelude::*;

/// A timeout write: what `kstrtoul` takes (`0x` hexadecimal, leading-0
/// octal, one trailing newline); anything else, or a value above
/// [`MAX_RUNNABLE_TIMEOUT_MS`], `EINVAL`.
fn parse_timeout_ms(input: &[u8]) -> Result<u64> {
    let ms = parse_unsigned(input).map_err(|_| EINVAL)?;
    if ms > MAX_RUNNABLE_TIMEOUT_MS {
        return Err(EINVAL);
    }
    Ok(ms)
}

/// `enclave_<id>/runnable_timeout`: milliseconds; 0 = watchdog off.
pub struct RunnableTimeoutFile;

#[vtable]
impl FileOps for RunnableTimeoutFile {
    fn show(key: usize, m: &mut SeqFile) -> Result {
        let e = enclave_of(key)?;
        // No newline, as ghOSt prints it.
        write!(m, "{}", e.runnable_timeout_ms()).map_err(|_| EINVAL)
    }

    fn write(file: &OpenFile, input: &[u8]) -> Result<usize> {
        let ms = parse_timeout_ms(input)?;
        let e = enclave_of(file.key())?;
        e.set_runnable_timeout_ms(ms);
        if ms > 0 {
            crate::watchdog::arm();
        }
        Ok(input.len())
    }

    fn open(file: &OpenFile) -> Result {
        may_open(file)
    }
}

/// `enclave_<id>/agentless_timeout`: milliseconds an orphaned enclave (its
/// agents died or left, none attached since) lives on, its tasks run by
/// the fallback, before it is destroyed; 0 = for ever. A ghost-rs file
/// (ghOSt has no fallback); same grammar as `runnable_timeout`.
pub struct AgentlessTimeoutFile;

#[vtable]
impl FileOps for AgentlessTimeoutFile {
    fn show(key: usize, m: &mut SeqFile) -> Result {
        let e = enclave_of(key)?;
        write!(m, "{}", e.agentless_timeout_ms()).map_err(|_| EINVAL)
    }

    fn write(file: &OpenFile, input: &[u8]) -> Result<usize> {
        let ms = parse_timeout_ms(input)?;
        let e = enclave_of(file.key())?;
        e.set_agentless_timeout_ms(ms);
        Ok(input.len())
    }

    fn open(file: &OpenFile) -> Result {
        may_open(file)
    }
}
