//! Status words: the state of every task and agent of an enclave, which
//! the kernel publishes in read-only regions (`sw_regions/sw_<id>`).
//!
//! A region is a `struct ghost_sw_region_header` followed by `capacity`
//! `struct ghost_status_word`s. The kernel writes a word's fields, then its
//! `barrier` and `flags` with release order; readers load `barrier` and
//! `flags` with acquire order ([`StatusWord`]). A [`SwTable`] maps every
//! region of an enclave and finds a word by [`GhostSwInfo`] (region id and
//! index, as `TASK_NEW` and `GHOST_IOC_SW_GET_INFO` give it) or by gtid.

use std::mem::{offset_of, size_of};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};

use ghost_abi as abi;
use ghost_abi::{GhostStatusWord, GhostSwInfo, GhostSwRegionHeader};

use crate::error::{Error, Result};
use crate::ghostfs::EnclaveDir;
use crate::sys::{self, Mapping};

/// The size of a status-word region (2 MiB).
pub const REGION_SIZE: usize = 2 << 20;

/// One status word, read through atomics.
#[derive(Debug, Clone, Copy)]
pub struct StatusWord<'a> {
    barrier: &'a AtomicU32,
    flags: &'a AtomicU32,
    gtid: &'a AtomicU64,
    switch_time: &'a AtomicI64,
    runtime: &'a AtomicU64,
}

impl<'a> StatusWord<'a> {
    /// The word at byte `off` of `map`, if it is inside and aligned.
    fn at(map: &'a Mapping, off: usize) -> Option<Self> {
        Some(Self {
            barrier: map.atomic(off + offset_of!(GhostStatusWord, barrier))?,
            flags: map.atomic(off + offset_of!(GhostStatusWord, flags))?,
            gtid: map.atomic(off + offset_of!(GhostStatusWord, gtid))?,
            switch_time: map.atomic(off + offset_of!(GhostStatusWord, switch_time))?,
            runtime: map.atomic(off + offset_of!(GhostStatusWord, runtime))?,
        })
    }

    /// The barrier (acquire): the task's message count, or the agent
    /// barrier of an agent's CPU.
    pub fn barrier(&self) -> u32 {
        self.barrier.load(Ordering::Acquire)
    }

    /// The `GHOST_SW_*` flags (acquire).
    pub fn flags(&self) -> u32 {
        self.flags.load(Ordering::Acquire)
    }

    /// The owner's gtid.
    pub fn gtid(&self) -> i64 {
        self.gtid.load(Ordering::Relaxed) as i64
    }

    /// When the task last got on a CPU (ktime, ns).
    pub fn switch_time(&self) -> i64 {
        self.switch_time.load(Ordering::Relaxed)
    }

    /// The owner's CPU time, ns.
    pub fn runtime(&self) -> u64 {
        self.runtime.load(Ordering::Relaxed)
    }

    /// All fields, `barrier` and `flags` first (acquire).
    pub fn snapshot(&self) -> GhostStatusWord {
        let (barrier, flags) = (self.barrier(), self.flags());
        GhostStatusWord {
            barrier,
            flags,
            gtid: self.gtid() as u64,
            switch_time: self.switch_time(),
            runtime: self.runtime(),
        }
    }

    fn has(&self, f: u32) -> bool {
        self.flags() & f != 0
    }

    /// `GHOST_SW_F_INUSE`: the word belongs to a live task or agent.
    pub fn in_use(&self) -> bool {
        self.has(abi::GHOST_SW_F_INUSE)
    }

    /// `GHOST_SW_F_CANFREE`: its task died or departed; the agent frees it.
    pub fn can_free(&self) -> bool {
        self.has(abi::GHOST_SW_F_CANFREE)
    }

    /// `GHOST_SW_TASK_ONCPU`: the task is on a CPU.
    pub fn on_cpu(&self) -> bool {
        self.has(abi::GHOST_SW_TASK_ONCPU)
    }

    /// `GHOST_SW_TASK_RUNNABLE`: the task is runnable.
    pub fn runnable(&self) -> bool {
        self.has(abi::GHOST_SW_TASK_RUNNABLE)
    }

    /// `GHOST_SW_TASK_IS_AGENT`: the word is an agent's.
    pub fn is_agent(&self) -> bool {
        self.has(abi::GHOST_SW_TASK_IS_AGENT)
    }

    /// `GHOST_SW_CPU_AVAIL` (agent words): no higher-class work on the CPU.
    pub fn cpu_avail(&self) -> bool {
        self.has(abi::GHOST_SW_CPU_AVAIL)
    }

    /// `GHOST_SW_BOOST_PRIO` (agent words): another class wants the CPU.
    pub fn boost_prio(&self) -> bool {
        self.has(abi::GHOST_SW_BOOST_PRIO)
    }
}

/// One mapped region.
#[derive(Debug)]
pub struct SwRegion {
    id: u32,
    map: Mapping,
    start: usize,
    capacity: u32,
}

impl SwRegion {
    /// Checks the header of a region mapping: version 0, a 32-aligned
    /// `start` past the header; `capacity` is cut to what fits the mapping.
    pub fn new(map: Mapping) -> Result<Self> {
        let word = |f: usize| {
            map.read_u32(f)
                .ok_or_else(|| Error::msg("status-word region", "shorter than its header"))
        };
        let version = word(offset_of!(GhostSwRegionHeader, version))?;
        let id = word(offset_of!(GhostSwRegionHeader, id))?;
        let start = word(offset_of!(GhostSwRegionHeader, start))? as usize;
        let capacity = word(offset_of!(GhostSwRegionHeader, capacity))?;
        let what = || format!("status-word region {id}");
        if version != abi::GHOST_SW_REGION_VERSION {
            return Err(Error::msg(what(), format!("version {version}")));
        }
        let sw = size_of::<GhostStatusWord>();
        if start < size_of::<GhostSwRegionHeader>() || start % sw != 0 || start > map.len() {
            return Err(Error::msg(what(), format!("status words at {start}")));
        }
        let fits = ((map.len() - start) / sw).min(u32::MAX as usize) as u32;
        Ok(Self {
            id,
            map,
            start,
            capacity: capacity.min(fits),
        })
    }

    /// Maps `sw_regions/sw_<id>` of `dir` (read-only).
    pub fn open(dir: &EnclaveDir, id: u32) -> Result<Self> {
        let path = dir.file(&format!("sw_regions/sw_{id}"));
        let f = sys::open_file(&path, true, false)?;
        let map = Mapping::map_shared(
            f.as_fd(),
            REGION_SIZE,
            libc::PROT_READ,
            &path.display().to_string(),
        )?;
        Self::new(map)
    }

    /// The region id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The number of status words.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Status words not allocated, as the header says.
    pub fn available(&self) -> u32 {
        self.map
            .atomic::<AtomicU32>(offset_of!(GhostSwRegionHeader, available))
            .map_or(0, |a| a.load(Ordering::Relaxed))
    }

    /// The word at `index`.
    pub fn get(&self, index: u32) -> Option<StatusWord<'_>> {
        if index >= self.capacity {
            return None;
        }
        StatusWord::at(
            &self.map,
            self.start + index as usize * size_of::<GhostStatusWord>(),
        )
    }
}

/// Every status-word region of an enclave.
#[derive(Debug, Default)]
pub struct SwTable {
    regions: Vec<SwRegion>,
}

impl SwTable {
    /// A table of `regions`.
    pub fn new(mut regions: Vec<SwRegion>) -> Self {
        regions.sort_by_key(|r| r.id);
        Self { regions }
    }

    /// Maps every region of `dir` (`sw_regions/sw_<id>`).
    pub fn open(dir: &EnclaveDir) -> Result<Self> {
        let ids = region_ids(dir)?;
        let regions = ids
            .into_iter()
            .map(|id| SwRegion::open(dir, id))
            .collect::<Result<_>>()?;
        Ok(Self::new(regions))
    }

    /// The regions, by id.
    pub fn regions(&self) -> &[SwRegion] {
        &self.regions
    }

    /// The word `info` names.
    pub fn get(&self, info: GhostSwInfo) -> Option<StatusWord<'_>> {
        let i = self.regions.binary_search_by_key(&info.id, |r| r.id).ok()?;
        self.regions.get(i)?.get(info.index)
    }

    /// Every word in use, with where it is.
    pub fn in_use(&self) -> impl Iterator<Item = (GhostSwInfo, StatusWord<'_>)> + '_ {
        self.regions.iter().flat_map(|r| {
            (0..r.capacity).filter_map(move |index| {
                let sw = r.get(index)?;
                sw.in_use().then_some((GhostSwInfo { id: r.id, index }, sw))
            })
        })
    }

    /// The word of the task or agent `gtid` (a scan of every region).
    pub fn find_gtid(&self, gtid: i64) -> Option<(GhostSwInfo, StatusWord<'_>)> {
        self.in_use().find(|(_, sw)| sw.gtid() == gtid)
    }
}

/// The ids of the regions of `dir`, from the names in `sw_regions/`.
pub fn region_ids(dir: &EnclaveDir) -> Result<Vec<u32>> {
    let path = dir.file("sw_regions");
    let rd = std::fs::read_dir(&path)
        .map_err(|e| sys::io_error(format!("read {}", path.display()), &e))?;
    let mut ids: Vec<u32> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("sw_")?.parse().ok())
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// A zeroed region `id` of `capacity` words in anonymous memory, with
    /// its header filled in.
    pub fn region(id: u32, capacity: u32) -> SwRegion {
        let len = (64 + capacity as usize * 32).next_multiple_of(4096);
        let m = Mapping::anonymous(len).unwrap();
        m.write_u32(offset_of!(GhostSwRegionHeader, id), id);
        m.write_u32(offset_of!(GhostSwRegionHeader, start), 64);
        m.write_u32(offset_of!(GhostSwRegionHeader, capacity), capacity);
        SwRegion::new(m).unwrap()
    }

    /// Plays the kernel: fills word `index` of `r`, flags last.
    pub fn set(r: &SwRegion, index: u32, gtid: i64, barrier: u32, flags: u32) {
        let off = r.start + index as usize * 32;
        let m = &r.map;
        m.atomic::<AtomicU64>(off + offset_of!(GhostStatusWord, gtid))
            .unwrap()
            .store(gtid as u64, Ordering::Relaxed);
        m.atomic::<AtomicU32>(off + offset_of!(GhostStatusWord, barrier))
            .unwrap()
            .store(barrier, Ordering::Release);
        m.atomic::<AtomicU32>(off + offset_of!(GhostStatusWord, flags))
            .unwrap()
            .store(flags, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use abi::*;

    #[test]
    fn lookup_by_info_and_gtid() {
        let t = SwTable::new(vec![region(3, 100), region(0, 10)]);
        set(
            &t.regions()[0],
            4,
            77,
            9,
            GHOST_SW_F_INUSE | GHOST_SW_TASK_RUNNABLE,
        );
        set(
            &t.regions()[1],
            99,
            88,
            2,
            GHOST_SW_F_INUSE | GHOST_SW_TASK_IS_AGENT | GHOST_SW_CPU_AVAIL,
        );
        set(&t.regions()[1], 50, 55, 1, GHOST_SW_F_ALLOCATED);
        let sw = t.get(GhostSwInfo { id: 0, index: 4 }).unwrap();
        assert_eq!((sw.gtid(), sw.barrier()), (77, 9));
        assert!(sw.runnable() && !sw.on_cpu() && !sw.is_agent());
        let (info, sw) = t.find_gtid(88).unwrap();
        assert_eq!(info, GhostSwInfo { id: 3, index: 99 });
        assert!(sw.is_agent() && sw.cpu_avail() && !sw.boost_prio());
        assert_eq!(sw.snapshot().barrier, 2);
        // Not in use: not found by gtid, but still addressable.
        assert!(t.find_gtid(55).is_none());
        assert_eq!(t.in_use().count(), 2);
        // Outside the regions.
        assert!(t.get(GhostSwInfo { id: 3, index: 100 }).is_none());
        assert!(t.get(GhostSwInfo { id: 1, index: 0 }).is_none());
        assert!(t
            .get(GhostSwInfo {
                id: 0,
                index: u32::MAX
            })
            .is_none());
    }

    #[test]
    fn header_is_checked_and_capacity_cut_to_the_mapping() {
        let m = Mapping::anonymous(4096).unwrap();
        m.write_u32(offset_of!(GhostSwRegionHeader, start), 64);
        m.write_u32(offset_of!(GhostSwRegionHeader, capacity), 65534);
        let r = SwRegion::new(m).unwrap();
        assert_eq!(r.capacity(), (4096 - 64) / 32);
        for (field, v) in [
            (offset_of!(GhostSwRegionHeader, version), 1),
            (offset_of!(GhostSwRegionHeader, start), 48),
            (offset_of!(GhostSwRegionHeader, start), 80),
            (offset_of!(GhostSwRegionHeader, start), 8192),
        ] {
            let m = Mapping::anonymous(4096).unwrap();
            m.write_u32(offset_of!(GhostSwRegionHeader, start), 64);
            m.write_u32(field, v);
            assert!(SwRegion::new(m).is_err(), "field {field} = {v}");
        }
    }
}
