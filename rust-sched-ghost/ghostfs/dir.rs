// SPDX-License-Identifier: GPL-2.0

//! The `enclave_<id>` directory: creating it with its files (the root
//! `ctl`'s `create`). Its `destroy` is a command of [`super::ctl`].
//!
//! Implemented so far: `create` (also `ephemeral`), `destroy`, and the files
//! `ctl` (read: the id; write: `destroy`, `create sw_region`, `become
//! agent`, `discover tasks`; `disable my bpf_prog_load` is accepted),
//! `tasks` (write: a task joins; read: the pids of its tasks),
//! `cpulist`/`cpumask`, `cpu_data`, `sw_regions/sw_<id>`, `agent_online`,
//! `abi_version`, `status`, `runnable_timeout` and the 0/1 tunables (stored;
//! the scheduling core will act on them). Each file type has its module
//! beside this one.
//!
//! Calls: the file modules beside it, [`super::common`],
//! [`crate::registry`] (creation), [`crate::enclave`] (the object),
//! [`crate::watchdog`] (told of orphaned enclaves), [`crate::sys`].

use super::agent_online::AgentOnlineFile;
use super::common::key_of;
use super::cpu_data::CpuDataFile;
use super::cpus::{CpuListFile, CpuMaskFile};
use super::ctl::CtlFile;
use super::info::{AbiVersionFile, StatusFile};
use super::tasks::TasksFile;
use super::timeouts::{AgentlessTimeoutFile, RunnableTimeoutFile};
use super::tunables::TunableFile;
use crate::enclave::{Enclave, EnclaveInit, TUNABLES};
use crate::registry;
use crate::sys::cred::{capable, CAP_SYS_ADMIN};
use crate::sys::kernfs::{Node, Perm};
use kernel::prelude::*;
use kernel::str::CString;
use kernel::sync::Arc;
use kernel::uapi::GHOST_VERSION;

/// Creates `enclave_<id>` under `parent` (the ghostfs root).
pub fn create(parent: Node, id: u64, abi: u32, gid: Option<u32>, ephemeral: bool) -> Result {
    if abi != GHOST_VERSION {
        return Err(ESRCH);
    }
    if !capable(CAP_SYS_ADMIN) {
        return Err(EPERM);
    }
    let ephemeral_tgid = match ephemeral {
        true => Some(crate::sys::task::TaskHandle::current()?.tgid()),
        false => None,
    };
    let key = key_of(id)?;
    let gid = gid.unwrap_or(0);
    let name = CString::try_from_fmt(core::format_args!("enclave_{}", id))?;

    // Creators are serialized; the id stays free (and a slot free) until
    // the insert below.
    let creating = registry::begin_create(id)?;
    let perm = |mode| Perm { mode, uid: 0, gid };
    let dir = parent.create_dir(&name, perm(0o555))?;
    let built = (|| -> Result<Arc<Enclave>> {
        dir.create_file::<CtlFile>(kernel::c_str!("ctl"), perm(0o664), 0, key)?;
        dir.create_file::<AbiVersionFile>(kernel::c_str!("abi_version"), perm(0o444), 0, key)?;
        dir.create_file::<StatusFile>(kernel::c_str!("status"), perm(0o444), 0, key)?;
        dir.create_file::<AgentOnlineFile>(kernel::c_str!("agent_online"), perm(0o664), 0, key)?;
        dir.create_file::<CpuListFile>(kernel::c_str!("cpulist"), perm(0o664), 0, key)?;
        dir.create_file::<CpuMaskFile>(kernel::c_str!("cpumask"), perm(0o664), 0, key)?;
        dir.create_file::<RunnableTimeoutFile>(
            kernel::c_str!("runnable_timeout"),
            perm(0o664),
            0,
            key,
        )?;
        dir.create_file::<AgentlessTimeoutFile>(
            kernel::c_str!("agentless_timeout"),
            perm(0o664),
            0,
            key,
        )?;
        dir.create_file::<TunableFile<0>>(TUNABLES[0], perm(0o664), 0, key)?;
        dir.create_file::<TunableFile<1>>(TUNABLES[1], perm(0o664), 0, key)?;
        dir.create_file::<TunableFile<2>>(TUNABLES[2], perm(0o664), 0, key)?;
        dir.create_file::<TunableFile<3>>(TUNABLES[3], perm(0o664), 0, key)?;
        dir.create_file::<TunableFile<4>>(TUNABLES[4], perm(0o664), 0, key)?;
        dir.create_file::<TunableFile<5>>(TUNABLES[5], perm(0o664), 0, key)?;
        dir.create_file::<TunableFile<6>>(TUNABLES[6], perm(0o664), 0, key)?;
        let sw_dir = dir.create_dir(kernel::c_str!("sw_regions"), perm(0o555))?;
        let enclave = creating.build(EnclaveInit {
            id,
            abi,
            gid,
            dir,
            sw_dir,
            ephemeral_tgid,
            on_orphaned: crate::watchdog::orphaned,
        })?;
        let size = i64::try_from(enclave.cpu_data().len()).map_err(|_| EINVAL)?;
        dir.create_file::<CpuDataFile>(kernel::c_str!("cpu_data"), perm(0o660), size, key)?;
        dir.create_file::<TasksFile>(kernel::c_str!("tasks"), perm(0o666), 0, key)?;
        Ok(enclave)
    })();
    let enclave = match built {
        Ok(e) => e,
        Err(err) => {
            // Not activated yet: no callback can be running on these nodes.
            dir.remove();
            return Err(err);
        }
    };
    if let Err(err) = creating.insert(enclave) {
        dir.remove();
        return Err(err);
    }
    dir.activate();
    Ok(())
}
