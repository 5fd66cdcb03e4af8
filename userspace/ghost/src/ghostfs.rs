//! ghostfs: `/sys/fs/ghost`, and enclaves as directories of files.
//!
//! Everything here is text-level: paths, one command per `write(2)`, and
//! parsing of what the files read back. The fd-level objects an agent uses
//! (the `ctl` descriptor for ioctls, the `cpu_data` and status-word mappings,
//! queues) live in their own modules and start from an [`EnclaveDir`].

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::cpus::CpuSet;
use crate::error::{Error, Result};

/// Where ghostfs is mounted.
pub const GHOSTFS: &str = "/sys/fs/ghost";

/// The ghostfs magic number (`statfs(2)` `f_type`).
pub const GHOSTFS_MAGIC: i64 = 0xBAD1_DEA2;

/// The ABI this library speaks.
pub const ABI_VERSION: u32 = 91;

/// Writes `data` to `path` in one `write(2)`, as ghostfs files require.
pub fn write_file(path: &Path, data: &str) -> Result<()> {
    let what = || format!("write `{}` to {}", data.trim_end(), path.display());
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| io_error(what(), &e))?;
    match f.write(data.as_bytes()) {
        Ok(n) if n == data.len() => Ok(()),
        Ok(n) => Err(Error::msg(what(), format!("short write: {n} bytes"))),
        Err(e) => Err(io_error(what(), &e)),
    }
}

/// Reads a whole (small) ghostfs file.
pub fn read_file(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|e| io_error(format!("read {}", path.display()), &e))
}

/// An [`Error`] for a failed `std::io` call: its errno, or (for failures
/// that are not a system call's, such as a file that is not UTF-8) its text.
fn io_error(what: String, e: &std::io::Error) -> Error {
    match e.raw_os_error() {
        Some(errno) => Error::sys(what, errno),
        None => Error::msg(what, e.to_string()),
    }
}

/// Whether ghostfs is mounted at [`GHOSTFS`].
pub fn is_mounted() -> bool {
    nix::sys::statfs::statfs(GHOSTFS)
        .is_ok_and(|st| st.filesystem_type().0 == GHOSTFS_MAGIC as libc::__fsword_t)
}

/// Mounts ghostfs at [`GHOSTFS`] unless it already is (needs CAP_SYS_ADMIN).
pub fn ensure_mounted() -> Result<()> {
    if is_mounted() {
        return Ok(());
    }
    nix::mount::mount(
        Some("ghost"),
        GHOSTFS,
        Some("ghost"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|e| Error::sys(format!("mount -t ghost ghost {GHOSTFS}"), e as i32))
}

/// The ids of the enclaves under [`GHOSTFS`], in increasing order.
pub fn list() -> Result<Vec<u64>> {
    list_in(Path::new(GHOSTFS))
}

/// The ids of the `enclave_<id>` directories under `root`, in increasing
/// order; other entries are ignored.
pub fn list_in(root: &Path) -> Result<Vec<u64>> {
    let what = || format!("read directory {}", root.display());
    let mut ids = Vec::new();
    for entry in fs::read_dir(root).map_err(|e| io_error(what(), &e))? {
        let entry = entry.map_err(|e| io_error(what(), &e))?;
        if let Some(id) = entry.file_name().to_str().and_then(parse_enclave_name) {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// The id of a directory named `enclave_<id>` (decimal digits only, as the
/// kernel prints them).
pub fn parse_enclave_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("enclave_")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The smallest id from 1 up that no enclave uses.
pub fn next_free_id() -> Result<u64> {
    Ok(first_free_id(&list()?))
}

/// The smallest id from 1 up that is not in `used` (sorted or not).
pub fn first_free_id(used: &[u64]) -> u64 {
    let mut id = 1;
    let mut sorted = used.to_vec();
    sorted.sort_unstable();
    for u in sorted {
        if u == id {
            id = id.saturating_add(1);
        } else if u > id {
            break;
        }
    }
    id
}

/// How many ids [`EnclaveDir::create_next`] tries before it gives up.
const CREATE_TRIES: u32 = 64;

/// How often [`EnclaveDir::create_with`] retries a `cpulist` write that got
/// `EBUSY`.
const CPUS_BUSY_TRIES: u32 = 10;

/// Options of `create <id> 91[ gid=<n>][ ephemeral]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateOptions {
    /// `gid=<n>`: the enclave's directory and files belong to this group,
    /// so its members can use them within the file modes.
    pub gid: Option<u32>,
    /// `ephemeral`: the kernel destroys the enclave when the last thread of
    /// the creating process exits.
    pub ephemeral: bool,
}

impl CreateOptions {
    /// The command for the root `ctl` that creates enclave `id`.
    pub fn command(&self, id: u64) -> String {
        let mut cmd = format!("create {id} {ABI_VERSION}");
        if let Some(gid) = self.gid {
            cmd.push_str(&format!(" gid={gid}"));
        }
        if self.ephemeral {
            cmd.push_str(" ephemeral");
        }
        cmd
    }
}

/// An enclave directory, `/sys/fs/ghost/enclave_<id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnclaveDir {
    /// The enclave id.
    pub id: u64,
    /// Its directory.
    pub path: PathBuf,
}

impl EnclaveDir {
    /// The enclave `id` (it must exist).
    pub fn open(id: u64) -> Result<Self> {
        let path = PathBuf::from(format!("{GHOSTFS}/enclave_{id}"));
        if !path.is_dir() {
            return Err(Error::sys(format!("open {}", path.display()), libc::ENOENT));
        }
        Ok(Self { id, path })
    }

    /// Creates the enclave `id` (`create <id> 91[ ephemeral]` to the root
    /// `ctl`) with `cpus` as its CPUs.
    pub fn create(id: u64, cpus: &CpuSet, ephemeral: bool) -> Result<Self> {
        let opts = CreateOptions {
            ephemeral,
            ..CreateOptions::default()
        };
        Self::create_with(id, cpus, &opts)
    }

    /// Creates the enclave `id` with `opts` and gives it `cpus`, all or
    /// nothing. A `cpulist` write that gets `EBUSY` is retried 10 times 50 ms
    /// apart (as ghOSt does, while another enclave lets go of the CPUs);
    /// when the CPUs cannot be set, the new enclave is destroyed again and
    /// the `cpulist` error returned.
    pub fn create_with(id: u64, cpus: &CpuSet, opts: &CreateOptions) -> Result<Self> {
        write_file(&Path::new(GHOSTFS).join("ctl"), &opts.command(id))?;
        let e = Self::open(id)?;
        let mut tries = 0;
        loop {
            match e.set_cpus(cpus) {
                Ok(()) => return Ok(e),
                Err(err) if err.errno == libc::EBUSY && tries < CPUS_BUSY_TRIES => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(err) => {
                    // Best effort: the caller hears about the cpulist
                    // failure, which is the one that matters.
                    let _ = e.destroy();
                    return Err(err);
                }
            }
        }
    }

    /// Creates an enclave with the first free id (as ghOSt's agents do):
    /// on `EEXIST` (another process took the id meanwhile) it tries the next.
    pub fn create_next(cpus: &CpuSet, opts: &CreateOptions) -> Result<Self> {
        let mut id = next_free_id()?;
        for _ in 0..CREATE_TRIES {
            match Self::create_with(id, cpus, opts) {
                Err(e) if e.errno == libc::EEXIST => id = id.saturating_add(1),
                r => return r,
            }
        }
        Err(Error::sys(
            format!("write `{}` to {GHOSTFS}/ctl", opts.command(id)),
            libc::EEXIST,
        )
        .with_detail(format!("{CREATE_TRIES} ids in a row were taken")))
    }

    /// The path of one of its files.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Replaces its CPUs (a `cpulist` write).
    pub fn set_cpus(&self, cpus: &CpuSet) -> Result<()> {
        write_file(&self.file("cpulist"), &format!("{cpus}\n"))
    }

    /// Its CPUs.
    pub fn cpus(&self) -> Result<CpuSet> {
        let s = read_file(&self.file("cpulist"))?;
        CpuSet::parse(s.trim())
            .map_err(|d| Error::msg(format!("parse {}", self.file("cpulist").display()), d))
    }

    /// Whether an agent process holds `agent_online` open.
    pub fn agent_online(&self) -> Result<bool> {
        Ok(read_file(&self.file("agent_online"))?.trim() == "1")
    }

    /// Moves the task `pid` (0: the caller) into the enclave.
    pub fn add_task(&self, pid: i64) -> Result<()> {
        write_file(&self.file("tasks"), &format!("{pid}\n"))
    }

    /// `echo destroy > ctl`: every task goes back to CFS, agents are killed.
    pub fn destroy(&self) -> Result<()> {
        write_file(&self.file("ctl"), "destroy\n")
    }

    /// Its `status` file, parsed.
    pub fn status(&self) -> Result<Status> {
        let path = self.file("status");
        Status::parse(&read_file(&path)?)
            .map_err(|d| Error::msg(format!("parse {}", path.display()), d))
    }

    /// The pids of its tasks (agents excluded), as `tasks` lists them.
    pub fn tasks(&self) -> Result<Vec<i32>> {
        let path = self.file("tasks");
        parse_numbers(&read_file(&path)?)
            .map_err(|d| Error::msg(format!("parse {}", path.display()), d))
    }

    /// The value of tunable `t` (`runnable_timeout` in milliseconds).
    pub fn tunable(&self, t: Tunable) -> Result<u64> {
        let path = self.file(t.name());
        let text = read_file(&path)?;
        text.trim().parse().map_err(|_| {
            Error::msg(
                format!("parse {}", path.display()),
                format!("`{}` is not a number", text.trim()),
            )
        })
    }

    /// Every tunable and its value, in [`Tunable::ALL`] order.
    pub fn tunables(&self) -> Result<Vec<(Tunable, u64)>> {
        Tunable::ALL
            .iter()
            .map(|&t| Ok((t, self.tunable(t)?)))
            .collect()
    }

    /// Sets tunable `t` to `value`, checked against [`Tunable::max`] first
    /// (the kernel would answer EINVAL).
    pub fn set_tunable(&self, t: Tunable, value: u64) -> Result<()> {
        let path = self.file(t.name());
        if value > t.max() {
            return Err(Error::sys(
                format!("write `{value}` to {}", path.display()),
                libc::EINVAL,
            )
            .with_detail(format!("{} takes 0 to {}", t.name(), t.max())));
        }
        write_file(&path, &format!("{value}\n"))
    }

    /// Its status-word regions: `(id, path of sw_regions/sw_<id>)`, by id.
    pub fn sw_regions(&self) -> Result<Vec<(u32, PathBuf)>> {
        let dir = self.file("sw_regions");
        let what = || format!("read directory {}", dir.display());
        let mut regions = Vec::new();
        for entry in fs::read_dir(&dir).map_err(|e| io_error(what(), &e))? {
            let entry = entry.map_err(|e| io_error(what(), &e))?;
            let name = entry.file_name();
            let id = name
                .to_str()
                .and_then(|n| n.strip_prefix("sw_"))
                .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|d| d.parse().ok());
            if let Some(id) = id {
                regions.push((id, entry.path()));
            }
        }
        regions.sort_unstable_by_key(|&(id, _)| id);
        Ok(regions)
    }
}

/// Moves the task `pid` out of ghost, back to CFS: `sched_setscheduler(pid,
/// SCHED_OTHER)`, as ghOSt's `pushtosched` does. The agent gets
/// `TASK_DEPARTED`; an agent itself gets EPERM. A task that is not a ghost
/// task is set to `SCHED_OTHER` too (nothing changes for a CFS task).
pub fn remove_task(pid: i32) -> Result<()> {
    crate::sys::sched_setscheduler_other(pid)
}

/// The scheduling policy of task `pid` (`SCHED_GHOST` is 18).
pub fn sched_policy(pid: i32) -> Result<i32> {
    crate::sys::sched_getscheduler(pid)
}

/// Parses one decimal number per line (blank lines skipped).
fn parse_numbers<T: std::str::FromStr>(text: &str) -> std::result::Result<Vec<T>, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| l.parse().map_err(|_| format!("`{l}` is not a number")))
        .collect()
}

/// An enclave's `status` file: `version 91`, `active yes|no`, `nr_tasks N`
/// and, for an ephemeral enclave, `ephemeral <tgid>`, one `key value` per
/// line. Keys this library does not know (counters a later kernel may add)
/// are kept in [`Status::extra`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// `version`: the enclave's ABI.
    pub version: u32,
    /// `active`: an agent holds `agent_online` open.
    pub active: bool,
    /// `nr_tasks`: tasks and agents in the enclave.
    pub nr_tasks: u64,
    /// `ephemeral`: the thread group id (initial pid namespace) whose exit
    /// destroys the enclave.
    pub ephemeral: Option<i32>,
    /// Every other `key value` line, by key (value as written, trimmed).
    pub extra: BTreeMap<String, String>,
}

impl Status {
    /// Parses the text of a `status` file. Lines are `key value` (the value
    /// is the rest of the line, trimmed); blank lines are skipped; a key
    /// without a value keeps an empty value in `extra`. `version`, `active`
    /// and `nr_tasks` must be present and well formed.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let mut st = Status::default();
        let (mut version, mut active, mut nr_tasks) = (false, false, false);
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let (key, value) = match line.split_once(char::is_whitespace) {
                Some((k, v)) => (k, v.trim()),
                None => (line, ""),
            };
            let bad = || format!("bad `{key}` value `{value}`");
            match key {
                "version" => {
                    st.version = value.parse().map_err(|_| bad())?;
                    version = true;
                }
                "active" => {
                    st.active = match value {
                        "yes" => true,
                        "no" => false,
                        _ => return Err(bad()),
                    };
                    active = true;
                }
                "nr_tasks" => {
                    st.nr_tasks = value.parse().map_err(|_| bad())?;
                    nr_tasks = true;
                }
                "ephemeral" => st.ephemeral = Some(value.parse().map_err(|_| bad())?),
                _ => {
                    st.extra.insert(key.to_string(), value.to_string());
                }
            }
        }
        for (seen, key) in [
            (version, "version"),
            (active, "active"),
            (nr_tasks, "nr_tasks"),
        ] {
            if !seen {
                return Err(format!("no `{key}` line"));
            }
        }
        Ok(st)
    }

    /// The `extra` keys whose value is a plain unsigned number: counters
    /// (or gauges) a later kernel adds, which a watcher can turn into rates.
    pub fn counters(&self) -> impl Iterator<Item = (&str, u64)> + '_ {
        self.extra
            .iter()
            .filter_map(|(k, v)| Some((k.as_str(), v.parse().ok()?)))
    }
}

impl std::str::FromStr for Status {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Self::parse(s)
    }
}

/// The largest `runnable_timeout`, in milliseconds: above it the
/// nanoseconds do not fit a `ktime_t` and the kernel answers EINVAL.
pub const RUNNABLE_TIMEOUT_MAX_MS: u64 = 9_223_372_036_854;

/// An enclave tunable: one file of the enclave directory holding a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tunable {
    /// `runnable_timeout`: the watchdog timeout in ms, 0 for none.
    RunnableTimeout,
    /// `commit_at_tick` (0 or 1).
    CommitAtTick,
    /// `deliver_ticks` (0 or 1).
    DeliverTicks,
    /// `deliver_cpu_availability` (0 or 1).
    DeliverCpuAvailability,
    /// `deliver_agent_runnability` (0 or 1).
    DeliverAgentRunnability,
    /// `wake_on_waker_cpu` (0 or 1).
    WakeOnWakerCpu,
    /// `switchto_disabled` (0 or 1).
    SwitchtoDisabled,
    /// `live_dangerously` (0 or 1).
    LiveDangerously,
}

impl Tunable {
    /// Every tunable, `runnable_timeout` first, then the flags as
    /// ghostfs.rst lists them.
    pub const ALL: [Tunable; 8] = [
        Tunable::RunnableTimeout,
        Tunable::CommitAtTick,
        Tunable::DeliverTicks,
        Tunable::DeliverCpuAvailability,
        Tunable::DeliverAgentRunnability,
        Tunable::WakeOnWakerCpu,
        Tunable::SwitchtoDisabled,
        Tunable::LiveDangerously,
    ];

    /// Its file name in the enclave directory.
    pub const fn name(self) -> &'static str {
        match self {
            Tunable::RunnableTimeout => "runnable_timeout",
            Tunable::CommitAtTick => "commit_at_tick",
            Tunable::DeliverTicks => "deliver_ticks",
            Tunable::DeliverCpuAvailability => "deliver_cpu_availability",
            Tunable::DeliverAgentRunnability => "deliver_agent_runnability",
            Tunable::WakeOnWakerCpu => "wake_on_waker_cpu",
            Tunable::SwitchtoDisabled => "switchto_disabled",
            Tunable::LiveDangerously => "live_dangerously",
        }
    }

    /// The tunable whose file is `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Whether it is a 0/1 flag (all but `runnable_timeout`).
    pub const fn is_flag(self) -> bool {
        !matches!(self, Tunable::RunnableTimeout)
    }

    /// The largest value the kernel accepts.
    pub const fn max(self) -> u64 {
        if self.is_flag() {
            1
        } else {
            RUNNABLE_TIMEOUT_MAX_MS
        }
    }
}

impl fmt::Display for Tunable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Tunable {
    type Err = String;

    /// Parses a tunable's file name; the error lists the valid names.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Self::from_name(s).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|t| t.name()).collect();
            format!("no tunable `{s}` (tunables: {})", names.join(", "))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch directory under the system temp dir, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Self {
            let p =
                std::env::temp_dir().join(format!("ghostfs-test-{}-{name}", std::process::id()));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).unwrap();
            Self(p)
        }

        fn put(&self, name: &str, text: &str) {
            fs::write(self.0.join(name), text).unwrap();
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn status_parses_the_kernel_format() {
        let st = Status::parse("version 91\nactive yes\nnr_tasks 4\n").unwrap();
        assert_eq!(
            st,
            Status {
                version: 91,
                active: true,
                nr_tasks: 4,
                ephemeral: None,
                extra: BTreeMap::new(),
            }
        );
        let st: Status = "version 91\nactive no\nnr_tasks 0\nephemeral 812\n"
            .parse()
            .unwrap();
        assert_eq!((st.active, st.ephemeral), (false, Some(812)));
    }

    #[test]
    fn status_keeps_unknown_keys() {
        let text = "version 91\nmsgs_produced 1200\nactive no\n\nnr_tasks 2\n\
                    commits 77\nnote two words\nflagonly\n";
        let st = Status::parse(text).unwrap();
        assert_eq!(st.nr_tasks, 2);
        assert_eq!(st.extra.len(), 4);
        assert_eq!(st.extra["note"], "two words");
        assert_eq!(st.extra["flagonly"], "");
        let counters: Vec<_> = st.counters().collect();
        assert_eq!(counters, [("commits", 77), ("msgs_produced", 1200)]);
    }

    #[test]
    fn status_rejects_what_it_cannot_trust() {
        for (text, why) in [
            ("active yes\nnr_tasks 1\n", "no `version` line"),
            ("version 91\nnr_tasks 1\n", "no `active` line"),
            ("version 91\nactive yes\n", "no `nr_tasks` line"),
            (
                "version 91\nactive maybe\nnr_tasks 1\n",
                "bad `active` value `maybe`",
            ),
            (
                "version x\nactive no\nnr_tasks 1\n",
                "bad `version` value `x`",
            ),
            (
                "version 91\nactive no\nnr_tasks -1\n",
                "bad `nr_tasks` value `-1`",
            ),
            (
                "version 91\nactive no\nnr_tasks 1\nephemeral\n",
                "bad `ephemeral` value ``",
            ),
            ("", "no `version` line"),
        ] {
            assert_eq!(Status::parse(text).unwrap_err(), why, "{text:?}");
        }
    }

    #[test]
    fn enclave_names_and_free_ids() {
        assert_eq!(parse_enclave_name("enclave_1"), Some(1));
        assert_eq!(
            parse_enclave_name("enclave_18446744073709551615"),
            Some(u64::MAX)
        );
        for bad in [
            "enclave_",
            "enclave_x",
            "enclave_+1",
            "enclave_1a",
            "ctl",
            "enclave_18446744073709551616",
        ] {
            assert_eq!(parse_enclave_name(bad), None, "{bad}");
        }
        assert_eq!(first_free_id(&[]), 1);
        assert_eq!(first_free_id(&[2, 3]), 1);
        assert_eq!(first_free_id(&[3, 1, 2, 5]), 4);
        assert_eq!(first_free_id(&[0, 1, 1]), 2);
    }

    #[test]
    fn list_in_reads_enclave_directories_only() {
        let root = Scratch::new("list");
        for d in ["enclave_10", "enclave_2", "enclave_x", "other"] {
            fs::create_dir(root.0.join(d)).unwrap();
        }
        root.put("ctl", "");
        assert_eq!(list_in(&root.0).unwrap(), [2, 10]);
        let e = list_in(&root.0.join("missing")).unwrap_err();
        assert_eq!(e.errno, libc::ENOENT);
        assert!(e.what.starts_with("read directory "), "{e}");
    }

    #[test]
    fn create_commands() {
        let mut o = CreateOptions::default();
        assert_eq!(o.command(1), "create 1 91");
        o.ephemeral = true;
        assert_eq!(o.command(2), "create 2 91 ephemeral");
        o.gid = Some(100);
        assert_eq!(o.command(3), "create 3 91 gid=100 ephemeral");
    }

    #[test]
    fn tunable_names() {
        for t in Tunable::ALL {
            assert_eq!(t.name().parse::<Tunable>(), Ok(t));
            assert_eq!(t.to_string(), t.name());
            assert_eq!(
                t.max(),
                if t.is_flag() {
                    1
                } else {
                    RUNNABLE_TIMEOUT_MAX_MS
                }
            );
        }
        let err = "tasks".parse::<Tunable>().unwrap_err();
        assert!(
            err.starts_with("no tunable `tasks` (tunables: runnable_timeout, commit_at_tick,"),
            "{err}"
        );
    }

    #[test]
    fn enclave_files_through_a_fake_directory() {
        let dir = Scratch::new("enclave");
        let e = EnclaveDir {
            id: 7,
            path: dir.0.clone(),
        };
        dir.put("status", "version 91\nactive yes\nnr_tasks 3\n");
        dir.put("tasks", "101\n102\n");
        dir.put("cpulist", "1-3\n");
        dir.put("agent_online", "1\n");
        for t in Tunable::ALL {
            dir.put(t.name(), "0\n");
        }
        fs::create_dir(dir.0.join("sw_regions")).unwrap();
        for f in ["sw_10", "sw_2", "sw_x", "other"] {
            dir.put(&format!("sw_regions/{f}"), "");
        }
        assert_eq!(e.status().unwrap().nr_tasks, 3);
        assert_eq!(e.tasks().unwrap(), [101, 102]);
        assert_eq!(e.cpus().unwrap().to_string(), "1-3");
        assert!(e.agent_online().unwrap());
        let ids: Vec<u32> = e
            .sw_regions()
            .unwrap()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(ids, [2, 10]);

        e.set_tunable(Tunable::DeliverTicks, 1).unwrap();
        assert_eq!(e.tunable(Tunable::DeliverTicks).unwrap(), 1);
        e.set_tunable(Tunable::RunnableTimeout, 2500).unwrap();
        let all = e.tunables().unwrap();
        assert_eq!(all.len(), Tunable::ALL.len());
        assert_eq!(all[0], (Tunable::RunnableTimeout, 2500));

        let err = e.set_tunable(Tunable::CommitAtTick, 2).unwrap_err();
        assert_eq!(err.errno, libc::EINVAL);
        assert!(
            err.to_string().contains("commit_at_tick takes 0 to 1"),
            "{err}"
        );
        let err = e
            .set_tunable(Tunable::RunnableTimeout, RUNNABLE_TIMEOUT_MAX_MS + 1)
            .unwrap_err();
        assert_eq!(err.errno, libc::EINVAL);

        dir.put("tasks", "101\nzz\n");
        let err = e.tasks().unwrap_err();
        assert!(
            err.to_string().ends_with("tasks: `zz` is not a number"),
            "{err}"
        );
        dir.put("status", "active yes\n");
        let err = e.status().unwrap_err();
        assert!(
            err.to_string().ends_with("status: no `version` line"),
            "{err}"
        );
        fs::remove_file(dir.0.join("status")).unwrap();
        assert_eq!(e.status().unwrap_err().errno, libc::ENOENT);
    }
}
