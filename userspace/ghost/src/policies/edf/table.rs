//! The deadline table: how a workload declares its threads' deadlines to
//! the `edf` policy.
//!
//! It is shared memory, native-endian, made by the agent: a 64-byte header
//! then `slots` 32-byte slots.
//!
//! ```text
//! header: u64 magic (TABLE_MAGIC), u32 version (1), u32 slots, 48 bytes zero
//! slot:   u32 seq, i32 tid, u64 deadline_ns, u64 period_ns, u64 zero
//! ```
//!
//! A thread claims a free slot (`tid` 0) by compare-and-swap of its thread
//! id (`gettid()`, in the initial pid namespace), and writes it under the
//! sequence count: `seq` odd while it writes, even when done.
//! `deadline_ns` is the relative deadline from each wakeup (0: use
//! `period_ns`); both from 1 µs to 10 s, `period_ns` 0 for none. Setting
//! `tid` back to 0 frees the slot.
//!
//! The agent makes the table a sealed memfd (it cannot shrink, so a
//! workload cannot make the agent's reads fault) and publishes it as a
//! symbolic link to `/proc/<agent pid>/fd/<fd>` that workloads open and
//! map. Everything read from it is checked: a slot being written, torn, or
//! out of range is no deadline.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, AtomicI32, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MemFdCreateFlag};

use crate::error::{Error, Result};
use crate::ffi::Mapping;

/// `"GHOSTEDF"` as a native-endian u64.
pub const TABLE_MAGIC: u64 = u64::from_ne_bytes(*b"GHOSTEDF");
/// The header's size.
pub const HEADER: usize = 64;
/// A slot's size.
pub const SLOT: usize = 32;
/// The most slots a table has.
pub const MAX_SLOTS: u32 = 65536;
/// The shortest deadline or period.
pub const MIN_TIME: Duration = Duration::from_micros(1);
/// The longest deadline or period.
pub const MAX_TIME: Duration = Duration::from_secs(10);

/// Why a slot is no deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unusable {
    /// Being written (odd `seq`), or rewritten while read.
    Writing,
    /// No deadline or period, or one out of range.
    OutOfRange,
}

/// A thread's declaration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    /// From each wakeup.
    pub relative: Duration,
    /// Its period, if any.
    pub period: Option<Duration>,
}

impl Deadline {
    /// Checks a slot's values: `Err` if out of range or none given.
    pub fn validate(deadline_ns: u64, period_ns: u64) -> std::result::Result<Self, Unusable> {
        let ok = |d: Duration| (MIN_TIME..=MAX_TIME).contains(&d);
        let period = (period_ns != 0).then(|| Duration::from_nanos(period_ns));
        let relative = match deadline_ns {
            0 => period.ok_or(Unusable::OutOfRange)?,
            d => Duration::from_nanos(d),
        };
        if !ok(relative) || period.is_some_and(|p| !ok(p)) {
            return Err(Unusable::OutOfRange);
        }
        Ok(Self { relative, period })
    }
}

/// A deadline table mapped into this process.
#[derive(Debug)]
pub struct DeadlineTable {
    map: Mapping,
    slots: usize,
    /// The agent's: the memfd and the link published.
    owner: Option<(OwnedFd, PathBuf)>,
}

impl DeadlineTable {
    /// Makes a table of `slots` slots and publishes it at `path` (a
    /// symbolic link; an existing one whose target is gone is replaced).
    pub fn create(path: &Path, slots: u32) -> Result<Self> {
        let what = |op: &str| format!("{op} deadline table {}", path.display());
        if !(1..=MAX_SLOTS).contains(&slots) {
            return Err(Error::msg(
                what("create"),
                format!("{slots} slots: 1 to {MAX_SLOTS}"),
            ));
        }
        let len = HEADER + slots as usize * SLOT;
        let flags = MemFdCreateFlag::MFD_CLOEXEC | MemFdCreateFlag::MFD_ALLOW_SEALING;
        let fd = memfd_create(c"ghost-edf", flags)
            .map_err(|e| Error::sys(what("memfd for"), e as i32))?;
        nix::unistd::ftruncate(&fd, len as i64).map_err(|e| Error::sys(what("size"), e as i32))?;
        let seals = SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_SEAL;
        fcntl(fd.as_raw_fd(), FcntlArg::F_ADD_SEALS(seals))
            .map_err(|e| Error::sys(what("seal"), e as i32))?;
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        let map = Mapping::map_shared(fd.as_fd(), len, prot, &what("map"))?;
        let mut t = Self::from_mapping(map, slots);
        t.header(slots);
        if path.symlink_metadata().is_ok() && !path.exists() {
            let _ = std::fs::remove_file(path);
        }
        let target = format!("/proc/{}/fd/{}", std::process::id(), fd.as_raw_fd());
        std::os::unix::fs::symlink(&target, path)
            .map_err(|e| Error::sys(what("publish"), e.raw_os_error().unwrap_or(libc::EIO)))?;
        t.owner = Some((fd, path.to_path_buf()));
        Ok(t)
    }

    /// Opens the table published at `path` to declare deadlines (a
    /// workload's side); its header is checked.
    pub fn open(path: &Path) -> Result<Self> {
        let what = format!("deadline table {}", path.display());
        let io = |op: &str, e: std::io::Error| {
            Error::sys(
                format!("{op} {what}"),
                e.raw_os_error().unwrap_or(libc::EIO),
            )
        };
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| io("open", e))?;
        let len = f.metadata().map_err(|e| io("stat", e))?.len();
        let len = usize::try_from(len)
            .unwrap_or(usize::MAX)
            .min(HEADER + MAX_SLOTS as usize * SLOT);
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        Self::parse(Mapping::map_shared(f.as_fd(), len, prot, &what)?)
            .map_err(|e| Error::msg(what, e))
    }

    /// A table in `map`, whose header is checked: magic, version 1, and
    /// slots that fit.
    pub fn parse(map: Mapping) -> std::result::Result<Self, String> {
        let magic = map
            .atomic::<AtomicU64>(0)
            .map(|a| a.load(Ordering::Relaxed));
        let version = map.read_u32(8);
        let slots = map.read_u32(12).unwrap_or(0);
        if magic != Some(TABLE_MAGIC) {
            return Err("not a deadline table (bad magic)".into());
        }
        if version != Some(1) {
            return Err(format!("version {version:?}, not 1"));
        }
        let need = HEADER + slots as usize * SLOT;
        if slots == 0 || slots > MAX_SLOTS || need > map.len() {
            return Err(format!("{slots} slots do not fit in {} bytes", map.len()));
        }
        Ok(Self::from_mapping(map, slots))
    }

    /// A table of `slots` slots in `map` (as many as fit), header unchecked.
    pub fn from_mapping(map: Mapping, slots: u32) -> Self {
        let fit = map.len().saturating_sub(HEADER) / SLOT;
        let slots = (slots as usize).min(fit);
        Self {
            map,
            slots,
            owner: None,
        }
    }

    /// Writes the header (the table's maker does).
    pub fn header(&self, slots: u32) {
        let set64 = |off, v| {
            self.map
                .atomic::<AtomicU64>(off)
                .map(|a| a.store(v, Ordering::Relaxed))
        };
        let set32 = |off, v| {
            self.map
                .atomic::<AtomicU32>(off)
                .map(|a| a.store(v, Ordering::Relaxed))
        };
        set64(0, TABLE_MAGIC);
        set32(8, 1);
        set32(12, slots);
    }

    /// The memory of the table.
    pub fn mapping(&self) -> &Mapping {
        &self.map
    }

    /// The number of slots.
    pub fn slots(&self) -> usize {
        self.slots
    }

    fn slot(&self, i: usize) -> Option<(&AtomicU32, &AtomicI32, &AtomicU64, &AtomicU64)> {
        let off = HEADER + i * SLOT;
        Some((
            self.map.atomic(off)?,
            self.map.atomic(off + 4)?,
            self.map.atomic(off + 8)?,
            self.map.atomic(off + 16)?,
        ))
    }

    /// The declaration of thread `tid`: `None` if it has no slot, `Err` if
    /// its slot is being written or out of range.
    pub fn lookup(&self, tid: i32) -> Option<std::result::Result<Deadline, Unusable>> {
        if tid <= 0 {
            return None;
        }
        for i in 0..self.slots {
            let (seq, t, d, p) = self.slot(i)?;
            if t.load(Ordering::Relaxed) != tid {
                continue;
            }
            let s1 = seq.load(Ordering::Acquire);
            let (dl, pd) = (d.load(Ordering::Relaxed), p.load(Ordering::Relaxed));
            fence(Ordering::Acquire);
            let same = seq.load(Ordering::Relaxed) == s1 && t.load(Ordering::Relaxed) == tid;
            if s1 % 2 == 1 || !same {
                return Some(Err(Unusable::Writing));
            }
            return Some(Deadline::validate(dl, pd));
        }
        None
    }

    /// Declares (or, with `None`, withdraws) thread `tid`'s deadline: the
    /// workload's side. `false` if the table is full.
    pub fn declare(&self, tid: i32, d: Option<(Duration, Duration)>) -> bool {
        let ns = |x: Duration| u64::try_from(x.as_nanos()).unwrap_or(u64::MAX);
        let mine = (0..self.slots).find(|&i| {
            self.slot(i)
                .is_some_and(|s| s.1.load(Ordering::Relaxed) == tid)
        });
        let claimed = mine.or_else(|| {
            (0..self.slots).find(|&i| {
                self.slot(i).is_some_and(|s| {
                    s.1.compare_exchange(0, tid, Ordering::AcqRel, Ordering::Relaxed)
                        .is_ok()
                })
            })
        });
        let Some((seq, t, dl, pd)) = claimed.and_then(|i| self.slot(i)) else {
            return d.is_none();
        };
        let s = seq.fetch_add(1, Ordering::AcqRel);
        if let Some((deadline, period)) = d {
            dl.store(ns(deadline), Ordering::Relaxed);
            pd.store(ns(period), Ordering::Relaxed);
        } else {
            t.store(0, Ordering::Relaxed);
        }
        seq.store(s.wrapping_add(2) & !1, Ordering::Release);
        true
    }
}

impl Drop for DeadlineTable {
    fn drop(&mut self) {
        if let Some((fd, path)) = &self.owner {
            let ours = format!("/proc/{}/fd/{}", std::process::id(), fd.as_raw_fd());
            if std::fs::read_link(path).is_ok_and(|t| t == Path::new(&ours)) {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}
