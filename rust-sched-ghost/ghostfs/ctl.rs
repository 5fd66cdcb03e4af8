// SPDX-License-Identifier: GPL-2.0

//! `enclave_<id>/ctl`: reads the enclave id; a write is a command
//! (`destroy`, `discover tasks`, `disable my bpf_prog_load`, `create
//! sw_region <id> <node>`, `become agent <cpu> <qfd>`); its ioctls are in
//! [`super::ioctl`].
//!
//! Calls: [`super::common`], [`super::sw_regions`], [`super::ioctl`],
//! [`crate::registry`] (`destroy`),
//! [`crate::parse`], [`crate::agent`] and [`crate::sched`] (the commands'
//! scheduling side), [`crate::sys::kernfs`].

use super::common::{enclave_of, may_open, parse_errno};
use super::sw_regions::create_sw_region;
use crate::enclave::Enclave;
use crate::parse::{parse_enclave_cmd, EnclaveCmd};
use crate::registry;
use crate::sys::cred::{capable, errno, CAP_SYS_ADMIN, EDEADLK};
use crate::sys::kernfs::{FileOps, OpenFile, SeqFile};
use core::fmt::Write;
use kernel::prelude::*;
use kernel::sync::Arc;

/// `enclave_<id>/ctl`: read the id; write a command.
pub struct CtlFile;

#[vtable]
impl FileOps for CtlFile {
    fn show(key: usize, m: &mut SeqFile) -> Result {
        let e = enclave_of(key)?;
        // No newline, as ghOSt prints it.
        write!(m, "{}", e.id).map_err(|_| EINVAL)
    }

    fn write(file: &OpenFile, input: &[u8]) -> Result<usize> {
        let cmd = parse_enclave_cmd(input).map_err(parse_errno)?;
        let e = enclave_of(file.key())?;
        match cmd {
            EnclaveCmd::Destroy => destroy(file, e.id)?,
            EnclaveCmd::DiscoverTasks => crate::sched::discover_tasks(&e),
            // No BPF program can be loaded: nothing to disable.
            EnclaveCmd::DisableMyBpfProgLoad => {}
            EnclaveCmd::CreateSwRegion { id, node } => create_sw_region(&e, id, node)?,
            EnclaveCmd::BecomeAgent { cpu, qfd } => crate::agent::become_agent(&e, cpu, qfd)?,
        }
        Ok(input.len())
    }

    fn ioctl(file: &OpenFile, cmd: u32, arg: usize) -> Result<isize> {
        // The enclave this open holds (no registry lock per call, commits
        // included); one being destroyed is gone, as a lookup would say.
        let e = match file.held::<Arc<Enclave>>() {
            Some(e) if !e.dying() => e,
            Some(_) => return Err(ENODEV),
            None => enclave_of(file.key())?,
        };
        super::ioctl::ctl_ioctl(&e, file, cmd, arg)
    }

    fn open(file: &OpenFile) -> Result {
        may_open(file)?;
        // Held until the release: the last close, or the directory's
        // removal (which waits for running ioctls first).
        if let Ok(e) = enclave_of(file.key()) {
            file.hold(e)?;
        }
        Ok(())
    }
}

/// Destroys the enclave `id` from a callback of `file` (its `ctl`).
pub fn destroy(file: &OpenFile, id: u64) -> Result {
    if !capable(CAP_SYS_ADMIN) {
        return Err(EPERM);
    }
    // An agent would wait for its own death.
    if crate::sched::current_agent().is_some() {
        return Err(errno(EDEADLK));
    }
    // Out of the registry, new lookups fail and its CPUs are free again.
    let enclave = registry::take(id).ok_or(ENODEV)?;
    crate::destroy::shutdown(&enclave);
    // Remove the directory (waiting for other running callbacks of its
    // files) without holding the registry lock, which those callbacks may be
    // waiting for.
    file.remove_while_active(enclave.dir());
    pr_debug!("enclave_{} destroyed\n", id);
    Ok(())
}
