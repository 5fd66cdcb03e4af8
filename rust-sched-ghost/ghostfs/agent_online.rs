// SPDX-License-Identifier: GPL-2.0

//! `enclave_<id>/agent_online`: whether an agent says it is up (it holds
//! the file open for writing); pollers are notified as agents come and go.
//!
//! Calls: [`super::common`], [`crate::enclave`], [`crate::sys::kernfs`].

use super::common::{enclave_of, may_open};
use crate::sys::kernfs::{FileOps, OpenFile, SeqFile};
use core::fmt::Write;
use kernel::prelude::*;

/// `enclave_<id>/agent_online`: reads `1` while some process holds it open
/// for writing (ghOSt agents do once they are ready), else `0`. Only one
/// writable open at a time (`EBUSY`); writes fail with `EINVAL`. Opening and
/// closing for writing notify pollers (`EPOLLPRI`), so a watcher sees an
/// agent come and go.
pub struct AgentOnlineFile;

/// The private word of the open that holds the write claim.
const AGENT_ONLINE_WRITER: usize = 1;

#[vtable]
impl FileOps for AgentOnlineFile {
    fn show(key: usize, m: &mut SeqFile) -> Result {
        let e = enclave_of(key)?;
        // No newline, as ghOSt prints it.
        write!(m, "{}", u8::from(e.agent_online())).map_err(|_| EINVAL)
    }

    fn write(_file: &OpenFile, _input: &[u8]) -> Result<usize> {
        Err(EINVAL)
    }

    fn open(file: &OpenFile) -> Result {
        may_open(file)?;
        if !file.is_writer() {
            return Ok(());
        }
        let e = enclave_of(file.key())?;
        if !e.claim_agent_online() {
            return Err(EBUSY);
        }
        file.set_word(AGENT_ONLINE_WRITER);
        file.node().notify();
        Ok(())
    }

    fn release(file: &OpenFile) {
        if file.word() != AGENT_ONLINE_WRITER {
            return;
        }
        file.set_word(0);
        // A destroyed enclave is gone from the registry: nothing to clear.
        if let Ok(e) = enclave_of(file.key()) {
            e.release_agent_online();
            file.node().notify();
        }
    }
}
