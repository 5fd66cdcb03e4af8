// SPDX-License-Identifier: GPL-2.0

//! What every enclave file does: find its enclave from the file's key
//! ([`enclave_of`]), refuse agents ([`may_open`]), and map parse failures
//! to errnos.
//!
//! Calls: [`crate::registry`] (lookup), [`crate::enclave`], [`crate::sched`]
//! (whether the caller is an agent), [`crate::parse`], [`crate::sys`].

use crate::enclave::{Enclave, LIVE_DANGEROUSLY};
use crate::parse::{KstrtoError, ParseError};
use crate::registry;
use crate::sys::cred::{errno, EDEADLK, EOVERFLOW};
use crate::sys::kernfs::OpenFile;
use kernel::prelude::*;
use kernel::sync::Arc;

/// The key of an enclave's files: its id.
pub fn key_of(id: u64) -> Result<usize> {
    usize::try_from(id).map_err(|_| EINVAL)
}

/// The errno for a parse failure.
pub fn parse_errno(e: ParseError) -> Error {
    match e {
        ParseError::Invalid => EINVAL,
        ParseError::UnknownOption => ENOENT,
        ParseError::Range => ERANGE,
        ParseError::Overflow => errno(EOVERFLOW),
    }
}

/// The errno of a `kstrto*`-style parse failure.
pub fn kstrto_errno(e: KstrtoError) -> Error {
    match e {
        KstrtoError::Invalid => EINVAL,
        KstrtoError::Range => ERANGE,
    }
}

/// Looks up the enclave of a file key.
pub fn enclave_of(key: usize) -> Result<Arc<Enclave>> {
    registry::find(u64::try_from(key).map_err(|_| ENODEV)?).ok_or(ENODEV)
}

/// Every open of an enclave file: an agent thread gets `EDEADLK` unless
/// the enclave is `live_dangerously` (ghOSt ABI >= 68). An agent is to
/// open what it needs before it becomes one: an agent that sleeps in a
/// file operation holds the CPU's scheduling hostage.
pub fn may_open(file: &OpenFile) -> Result {
    if crate::sched::current_agent().is_none() {
        return Ok(());
    }
    if enclave_of(file.key())?.tunable(LIVE_DANGEROUSLY) {
        Ok(())
    } else {
        Err(errno(EDEADLK))
    }
}
