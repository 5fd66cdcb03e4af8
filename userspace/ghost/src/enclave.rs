//! An enclave as an agent holds it: the `ctl` descriptor for ioctls and
//! commands, the `cpu_data` mapping, the status-word regions, and the
//! `agent_online` claim.
//!
//! [`Enclave`] starts from a [`ghostfs::EnclaveDir`] (text-level paths).
//! Calls on the scheduling path (queue association, status-word frees,
//! commits) return a bare [`Errno`]; the rest return an [`Error`] naming
//! the file or ioctl.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ghost_abi as abi;
use ghost_abi::GhostSwInfo;

use crate::cpus::CpuSet;
use crate::error::{Error, Result};
use crate::ghostfs::{self, EnclaveDir, ABI_VERSION, GHOSTFS};
use crate::queue::Queue;
use crate::sw::{self, SwTable};
use crate::sys::{self, Errno, Mapping};
use crate::txn::{self, CpuData, CpuMask};

/// An open enclave.
#[derive(Debug)]
pub struct Enclave {
    dir: EnclaveDir,
    ctl: File,
    ctl_name: String,
    cpu_data: CpuData,
    sw: Arc<SwTable>,
}

impl Enclave {
    /// Opens the enclave of `dir`: its `ctl` (read-write), `cpu_data`
    /// (mapped read-write) and every status-word region (read-only). An
    /// enclave without a region gets region 0 on node 0 first: tasks cannot
    /// join without one.
    pub fn open(dir: EnclaveDir) -> Result<Self> {
        let ctl_path = dir.file("ctl");
        let ctl = sys::open_file(&ctl_path, true, true)?;
        let ctl_name = ctl_path.display().to_string();
        let cd_path = dir.file("cpu_data");
        let cd = sys::open_file(&cd_path, true, true)?;
        let len = cd
            .metadata()
            .map_err(|e| sys::io_error(format!("stat {}", cd_path.display()), &e))?;
        let map = Mapping::map_shared(
            cd.as_fd(),
            len.len() as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            &cd_path.display().to_string(),
        )?;
        let mut e = Self {
            ctl,
            ctl_name,
            cpu_data: CpuData::new(map)?,
            sw: Arc::new(SwTable::default()),
            dir,
        };
        if sw::region_ids(&e.dir)?.is_empty() {
            match e.create_sw_region(0, 0) {
                Err(err) if err.errno != libc::EEXIST => return Err(err),
                _ => {}
            }
        }
        e.sw = Arc::new(SwTable::open(&e.dir)?);
        Ok(e)
    }

    /// Its directory.
    pub fn dir(&self) -> &EnclaveDir {
        &self.dir
    }

    /// Its id.
    pub fn id(&self) -> u64 {
        self.dir.id
    }

    /// The `ctl` descriptor.
    pub fn ctl(&self) -> BorrowedFd<'_> {
        self.ctl.as_fd()
    }

    /// The transactions.
    pub fn cpu_data(&self) -> &CpuData {
        &self.cpu_data
    }

    /// The status words.
    pub fn sw(&self) -> &Arc<SwTable> {
        &self.sw
    }

    /// The enclave's CPUs (`cpulist`).
    pub fn cpus(&self) -> Result<CpuSet> {
        self.dir.cpus()
    }

    /// An [`Error`] for `ioctl` failing with `e` on this enclave's `ctl`.
    pub fn ioctl_error(&self, ioctl: &str, e: Errno) -> Error {
        e.context(format!("{ioctl} on {}", self.ctl_name))
    }

    /// Writes one command to `ctl` (one `write(2)`, as ghostfs wants).
    pub fn command(&self, cmd: &str) -> Result<()> {
        let what = || format!("write `{cmd}` to {}", self.ctl_name);
        match (&self.ctl).write(cmd.as_bytes()) {
            Ok(n) if n == cmd.len() => Ok(()),
            Ok(n) => Err(Error::msg(what(), format!("short write: {n} bytes"))),
            Err(e) => Err(sys::io_error(what(), &e)),
        }
    }

    /// `create sw_region <id> <node>`.
    pub fn create_sw_region(&self, id: u32, node: u32) -> Result<()> {
        self.command(&format!("create sw_region {id} {node}"))
    }

    /// `become agent <cpu> <qfd>`: the calling thread becomes the agent of
    /// `cpu`, its CPU messages going to `queue` (`None`: the default
    /// queue). `EBUSY` while the CPU still has an agent (an old one on its
    /// way out), `ENODEV` for a CPU not in the enclave.
    pub fn become_agent(&self, cpu: usize, queue: Option<&Queue>) -> Result<()> {
        let qfd = queue.map_or(-1, Queue::raw_fd);
        self.command(&format!("become agent {cpu} {qfd}"))
    }

    /// `discover tasks`: a `TASK_NEW` for every task of the enclave, on its
    /// queue.
    pub fn discover_tasks(&self) -> Result<()> {
        self.command("discover tasks")
    }

    /// `destroy`: every task goes back to CFS, every agent is killed. An
    /// agent thread cannot do this (`EDEADLK`).
    pub fn destroy(&self) -> Result<()> {
        self.command("destroy")
    }

    /// Creates a queue of `elems` slots on NUMA node `node` (-1: any).
    pub fn create_queue(&self, elems: u32, node: i32) -> Result<Queue> {
        Queue::create(self.ctl(), &self.ctl_name, elems, node)
    }

    /// `GHOST_IOC_SET_DEFAULT_QUEUE`: tasks that join from now on send
    /// their messages to `q`.
    pub fn set_default_queue(&self, q: &Queue) -> Result<()> {
        let mut arg = abi::GhostIocSetDefaultQueue { fd: q.raw_fd() };
        sys::ioctl_set_default_queue(self.ctl(), &mut arg)
            .map(|_| ())
            .map_err(|e| self.ioctl_error("GHOST_IOC_SET_DEFAULT_QUEUE", e))
    }

    /// `GHOST_IOC_CONFIG_QUEUE_WAKEUP`: a message on `q` wakes the agent of
    /// the last of `cpus` (at most `GHOST_MAX_WINFO`; none: the agent
    /// polls).
    pub fn config_queue_wakeup(&self, q: &Queue, cpus: &[usize]) -> Result<()> {
        let what = "GHOST_IOC_CONFIG_QUEUE_WAKEUP";
        if cpus.len() > abi::GHOST_MAX_WINFO {
            return Err(self.ioctl_error(what, Errno(libc::EINVAL)));
        }
        let mut w = [abi::GhostAgentWakeup::default(); abi::GHOST_MAX_WINFO];
        for (slot, &cpu) in w.iter_mut().zip(cpus) {
            slot.cpu =
                i32::try_from(cpu).map_err(|_| self.ioctl_error(what, Errno(libc::EINVAL)))?;
        }
        sys::ioctl_config_queue_wakeup(self.ctl(), q.raw_fd(), &w[..cpus.len()])
            .map_err(|e| self.ioctl_error(what, e))
    }

    /// `GHOST_IOC_ASSOC_QUEUE`: the task `gtid` sends its messages to `q`
    /// from now on, if `barrier` is still its barrier (else `ESTALE`: a
    /// message is on its way to the old queue). `ENOENT`: no such task.
    /// Returns the `GHOST_ASSOC_SF_*` status.
    pub fn assoc_queue(
        &self,
        q: &Queue,
        gtid: i64,
        barrier: u32,
    ) -> std::result::Result<i32, Errno> {
        let mut arg = abi::GhostIocAssocQueue {
            fd: q.raw_fd(),
            src: abi::GhostMsgSrc {
                type_: abi::GHOST_TASK,
                arg: gtid as u64,
            },
            barrier,
            flags: 0,
        };
        sys::ioctl_assoc_queue(self.ctl(), &mut arg)
    }

    /// `GHOST_IOC_SW_GET_INFO` for a task (`GHOST_TASK`, a gtid) or an
    /// agent (`GHOST_AGENT`, a CPU).
    fn sw_info(&self, type_: u32, arg: u64) -> std::result::Result<GhostSwInfo, Errno> {
        let mut a = abi::GhostIocSwGetInfo {
            request: abi::GhostMsgSrc { type_, arg },
            response: GhostSwInfo::default(),
        };
        sys::ioctl_sw_get_info(self.ctl(), &mut a)?;
        Ok(a.response)
    }

    /// Where the status word of the agent of `cpu` is.
    pub fn agent_sw_info(&self, cpu: usize) -> Result<GhostSwInfo> {
        self.sw_info(abi::GHOST_AGENT, cpu as u64).map_err(|e| {
            self.ioctl_error(&format!("GHOST_IOC_SW_GET_INFO (agent of CPU {cpu})"), e)
        })
    }

    /// Where the status word of task `gtid` is.
    pub fn task_sw_info(&self, gtid: i64) -> Result<GhostSwInfo> {
        self.sw_info(abi::GHOST_TASK, gtid as u64)
            .map_err(|e| self.ioctl_error(&format!("GHOST_IOC_SW_GET_INFO (task {gtid})"), e))
    }

    /// `GHOST_IOC_SW_FREE`: frees a `CANFREE` status word (`EINVAL` if it
    /// is not, `ENOENT` if there is none).
    pub fn sw_free(&self, info: GhostSwInfo) -> std::result::Result<(), Errno> {
        let mut a = info;
        sys::ioctl_sw_free(self.ctl(), &mut a).map(|_| ())
    }

    /// `GHOST_IOC_GET_CPU_TIME`: the CPU time of task `gtid`, ns.
    pub fn cpu_time(&self, gtid: i64) -> Result<u64> {
        let mut a = abi::GhostIocGetCpuTime { gtid, runtime: 0 };
        sys::ioctl_get_cpu_time(self.ctl(), &mut a)
            .map_err(|e| self.ioctl_error(&format!("GHOST_IOC_GET_CPU_TIME (task {gtid})"), e))?;
        Ok(a.runtime)
    }

    /// `GHOST_IOC_COMMIT_TXN` for the CPUs of `mask`.
    pub fn commit(&self, mask: &CpuMask) -> std::result::Result<(), Errno> {
        txn::commit(self.ctl(), mask)
    }

    /// `GHOST_IOC_SYNC_GROUP_TXN` for the CPUs of `mask`.
    pub fn sync_group(&self, mask: &CpuMask) -> std::result::Result<bool, Errno> {
        txn::sync_group(self.ctl(), mask)
    }

    /// Whether an agent process holds `agent_online` open for writing.
    pub fn agent_online(&self) -> Result<bool> {
        self.dir.agent_online()
    }

    /// Opens `agent_online` for writing: the enclave reads "active" while
    /// the returned guard lives. `EBUSY` if another process holds it.
    pub fn claim_agent_online(&self) -> Result<AgentOnline> {
        let f = sys::open_file(&self.dir.file("agent_online"), false, true)?;
        Ok(AgentOnline { _file: f })
    }

    /// Waits until no process holds `agent_online` (the agent being
    /// replaced has gone), polling it for `EPOLLPRI` and re-reading it.
    /// `interrupt` is polled alongside (e.g. a signalfd): when it is
    /// readable the wait ends with [`Wait::Interrupted`]. `timeout` `None`
    /// waits for ever.
    pub fn wait_agent_offline(
        &self,
        interrupt: Option<BorrowedFd<'_>>,
        timeout: Option<Duration>,
    ) -> Result<Wait> {
        let path = self.dir.file("agent_online");
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let round = Instant::now();
            // A fresh open each round: kernfs reports a change made after
            // the open, so nothing between the read and the poll is missed.
            let mut f = sys::open_file(&path, true, false)?;
            let mut s = String::new();
            f.read_to_string(&mut s)
                .map_err(|e| sys::io_error(format!("read {}", path.display()), &e))?;
            if s.trim() == "0" {
                return Ok(Wait::Done);
            }
            let left = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) => left,
                    None => return Ok(Wait::TimedOut),
                },
                None => Duration::from_secs(1),
            };
            let ms = left.min(Duration::from_secs(1)).as_millis().max(1) as i32;
            let mut fds = vec![(f.as_fd(), libc::POLLPRI)];
            if let Some(i) = interrupt {
                fds.push((i, libc::POLLIN));
            }
            let rev = sys::poll(&fds, ms)?;
            if rev.get(1).is_some_and(|&r| r & libc::POLLIN != 0) {
                return Ok(Wait::Interrupted);
            }
            // At most one round per 10 ms, whatever poll says.
            if let Some(rest) = Duration::from_millis(10).checked_sub(round.elapsed()) {
                std::thread::sleep(rest);
            }
        }
    }
}

/// How a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// What was waited for happened.
    Done,
    /// The interrupt descriptor became readable.
    Interrupted,
    /// The timeout passed.
    TimedOut,
}

/// The writable open of `agent_online`: the enclave is "active" while this
/// lives; dropping it (or the process dying) tells waiters the agent is
/// gone.
#[derive(Debug)]
pub struct AgentOnline {
    _file: File,
}

/// Resolves an enclave given as an id (`3`), a name (`enclave_3`) or a
/// directory (`/sys/fs/ghost/enclave_3`).
pub fn resolve(spec: &str) -> Result<EnclaveDir> {
    if let Ok(id) = spec.parse::<u64>() {
        return EnclaveDir::open(id);
    }
    if let Some(id) = spec
        .strip_prefix("enclave_")
        .and_then(|s| s.parse::<u64>().ok())
    {
        return EnclaveDir::open(id);
    }
    let path = Path::new(spec);
    let ctl = path.join("ctl");
    let id = ghostfs::read_file(&ctl)?;
    let id = id.trim().parse::<u64>().map_err(|_| {
        Error::msg(
            format!("read {}", ctl.display()),
            format!("`{}` is not an enclave id", id.trim()),
        )
    })?;
    Ok(EnclaveDir {
        id,
        path: path.to_path_buf(),
    })
}

/// Creates an enclave with the first free id from 1 (`create <id> 91[
/// ephemeral]`, trying the next id on `EEXIST`) and gives it `cpus`
/// (retrying `EBUSY` for half a second, as ghOSt does while another
/// enclave lets go of them). If the CPUs cannot be set the new enclave is
/// destroyed again.
pub fn create(cpus: &CpuSet, ephemeral: bool) -> Result<EnclaveDir> {
    ghostfs::ensure_mounted()?;
    let root_ctl = Path::new(GHOSTFS).join("ctl");
    let opt = if ephemeral { " ephemeral" } else { "" };
    let mut last = None;
    for id in 1..=1024u64 {
        match ghostfs::write_file(&root_ctl, &format!("create {id} {ABI_VERSION}{opt}")) {
            Ok(()) => {
                let dir = EnclaveDir::open(id)?;
                return match set_cpus_retrying(&dir, cpus) {
                    Ok(()) => Ok(dir),
                    Err(e) => {
                        let _ = dir.destroy();
                        Err(e)
                    }
                };
            }
            Err(e) if e.errno == libc::EEXIST => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| Error::msg("create an enclave", "no free id")))
}

/// Writes `cpus` to the enclave's `cpulist`, retrying `EBUSY` 10 times
/// 50 ms apart.
fn set_cpus_retrying(dir: &EnclaveDir, cpus: &CpuSet) -> Result<()> {
    let mut tries = 0;
    loop {
        match dir.set_cpus(cpus) {
            Err(e) if e.errno == libc::EBUSY && tries < 10 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            r => return r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_reports_a_missing_enclave() {
        // No ghostfs on the build host: every form fails with an error that
        // names the path.
        let e = resolve("4242").unwrap_err();
        assert_eq!(e.errno, libc::ENOENT);
        assert!(e.to_string().contains("enclave_4242"), "{e}");
        let e = resolve("enclave_4243").unwrap_err();
        assert!(e.to_string().contains("enclave_4243"), "{e}");
        let e = resolve("/nonexistent/enclave_dir").unwrap_err();
        assert!(
            e.to_string().contains("/nonexistent/enclave_dir/ctl"),
            "{e}"
        );
    }
}
