//! Reading an enclave's state from ghostfs and `/proc` into
//! [`crate::model`].
//!
//! Text files go through the `ghost` library; `cpu_data` and the status-word
//! regions through read-only [`Mapping`]s. Unreadable memory (privileges) is
//! reported inside the result, not as a failure: `status` still shows what
//! plain files say.

use std::mem::{offset_of, size_of};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use ghost::cpus::CpuSet;
use ghost::ghostfs::EnclaveDir;
use ghost::Error;
use ghost_abi::{GhostStatusWord, GhostSwRegionHeader, GhostTxn, GHOST_SW_F_ALLOCATED};
use nix::sys::time::TimeSpec;
use nix::time::{clock_gettime, ClockId};

use crate::mapped::{Mapping, PAGE};
use crate::model::{
    CpuRow, EnclaveRow, Frame, ProcTask, Region, RegionEntry, Report, SwUse, TaskRow, Txn, Word,
    WordCounts,
};

/// `ghostctl list`'s line for `e`.
pub fn enclave_row(e: &EnclaveDir) -> ghost::Result<EnclaveRow> {
    Ok(EnclaveRow {
        id: e.id,
        cpus: e.cpus()?,
        status: e.status()?,
    })
}

/// `ghostctl status`'s report for `e`.
pub fn report(e: &EnclaveDir) -> ghost::Result<Report> {
    Ok(Report {
        id: e.id,
        path: e.path.display().to_string(),
        group: std::fs::metadata(&e.path).ok().map(|m| m.gid()),
        status: e.status()?,
        cpus: e.cpus()?,
        agent_online: e.agent_online()?,
        tasks: e.tasks()?,
        tunables: e.tunables()?,
        sw: sw_use(e),
    })
}

/// The error text of a failed read of `path`, with what it takes when the
/// kernel said EACCES or EPERM.
fn explain(err: &Error, path: &Path) -> String {
    if err.errno != libc::EACCES && err.errno != libc::EPERM {
        return err.to_string();
    }
    let who = match std::fs::metadata(path) {
        Ok(m) if m.gid() != 0 => format!("root or a member of group {}", m.gid()),
        _ => "root".to_string(),
    };
    format!("{err}; reading it needs {who}")
}

/// Scans one region's mapping: the header and the allocated words.
fn read_region(path: &Path) -> Result<Region, String> {
    let m = Mapping::open(path).map_err(|e| explain(&e, path))?;
    let bad = |what: String| format!("{}: {what}", path.display());
    let h: GhostSwRegionHeader = m.read(0).ok_or_else(|| bad("no header".into()))?;
    let size = size_of::<GhostStatusWord>();
    let (start, capacity) = (h.start as usize, h.capacity as usize);
    let fits = capacity
        .checked_mul(size)
        .and_then(|n| n.checked_add(start))
        .is_some_and(|end| end <= m.len());
    if !fits {
        return Err(bad(format!(
            "the header's {capacity} words from byte {start} exceed the {}-byte region",
            m.len()
        )));
    }
    let mut words = Vec::new();
    for off in (0..capacity).map(|i| start + i * size) {
        // `flags` first, with acquire order: the rest is then at least as
        // new as the flags say.
        let flags = m
            .load_acquire(off + offset_of!(GhostStatusWord, flags))
            .unwrap_or(0);
        if flags & GHOST_SW_F_ALLOCATED == 0 {
            continue;
        }
        if let Some(w) = m.read::<GhostStatusWord>(off) {
            words.push(Word {
                gtid: w.gtid,
                flags,
                barrier: w.barrier,
                runtime: w.runtime,
            });
        }
    }
    if m.revoked() {
        return Err(bad("revoked: the enclave was destroyed".into()));
    }
    Ok(Region {
        numa_node: h.numa_node,
        capacity: h.capacity,
        available: h.available,
        counts: WordCounts::of(&words),
        words,
    })
}

/// The enclave's status-word regions, each read or explained.
pub fn sw_use(e: &EnclaveDir) -> SwUse {
    let regions = e
        .sw_regions()
        .map_err(|err| explain(&err, &e.file("sw_regions")));
    SwUse {
        regions: regions.map(|list| {
            list.into_iter()
                .map(|(id, path)| RegionEntry {
                    id,
                    region: read_region(&path),
                })
                .collect()
        }),
    }
}

/// The transactions of `cpus` from `cpu_data`, in the order of `cpus`
/// (`None` for a CPU beyond the file).
fn read_txns(e: &EnclaveDir, cpus: &CpuSet) -> Result<Vec<Option<Txn>>, String> {
    let path = e.file("cpu_data");
    let m = Mapping::open(&path).map_err(|err| explain(&err, &path))?;
    let txns = cpus
        .iter()
        .map(|cpu| {
            let base = cpu.checked_mul(PAGE)?;
            // `state` first, with acquire order, as the ABI asks.
            let state = m.load_acquire(base + offset_of!(GhostTxn, state))? as i32;
            let t: GhostTxn = m.read(base)?;
            Some(Txn {
                state,
                gtid: t.gtid,
                agent_barrier: t.agent_barrier,
                task_barrier: t.task_barrier,
                run_flags: t.run_flags,
                commit_flags: t.commit_flags,
                commit_time: t.commit_time,
                cpu_seqnum: t.cpu_seqnum,
            })
        })
        .collect();
    if m.revoked() {
        return Err(format!(
            "{}: revoked: the enclave was destroyed",
            path.display()
        ));
    }
    Ok(txns)
}

/// Parses `/proc/<pid>/stat`: `comm` is between the first `(` and the last
/// `)` (it may hold both), the state follows, and the CPU is field 39.
pub fn parse_proc_stat(text: &str) -> Option<ProcTask> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_string();
    let fields: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // `fields[0]` is field 3 (state), so field 39 (processor) is index 36.
    Some(ProcTask {
        comm,
        state: fields.first()?.chars().next()?,
        cpu: fields.get(36)?.parse().ok()?,
    })
}

/// What `/proc/<pid>/stat` says of `pid`, if it exists.
pub fn proc_task(pid: i32) -> Option<ProcTask> {
    let bytes = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    parse_proc_stat(&String::from_utf8_lossy(&bytes))
}

/// `pid`'s gtid (`/proc/<pid>/ghost/gtid`), if readable.
pub fn proc_gtid(pid: i32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/ghost/gtid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// `tasks list`'s rows for `pids`, with their status words from `sw`.
pub fn task_rows(pids: &[i32], sw: &SwUse) -> Vec<TaskRow> {
    pids.iter()
        .map(|&pid| {
            let gtid = proc_gtid(pid);
            TaskRow {
                pid,
                gtid,
                proc_: proc_task(pid),
                word: gtid.and_then(|g| sw.word_of(g)),
            }
        })
        .collect()
}

/// CLOCK_MONOTONIC in ns: the clock of `ktime_get()`, which stamps
/// `commit_time`.
pub fn monotonic_ns() -> i64 {
    // CLOCK_MONOTONIC always exists.
    let ts = clock_gettime(ClockId::CLOCK_MONOTONIC).unwrap_or(TimeSpec::new(0, 0));
    ts.tv_sec()
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec())
}

/// Builds the per-CPU rows: each CPU's transaction, the agent whose thread
/// `/proc` places on it, and the ONCPU tasks `/proc` places on it. `where_`
/// says where a pid is (`/proc` in real use).
pub fn cpu_rows(
    cpus: &CpuSet,
    txns: Option<&[Option<Txn>]>,
    words: &[Word],
    where_: impl Fn(i32) -> Option<ProcTask>,
) -> Vec<CpuRow> {
    let mut rows: Vec<CpuRow> = cpus
        .iter()
        .enumerate()
        .map(|(i, cpu)| CpuRow {
            cpu,
            txn: txns.and_then(|t| t.get(i).copied().flatten()),
            agent: None,
            running: Vec::new(),
        })
        .collect();
    for w in words.iter().filter(|w| w.is_agent() || w.oncpu()) {
        let Some(p) = where_(w.pid()) else { continue };
        let Some(row) = rows.iter_mut().find(|r| r.cpu == p.cpu as usize) else {
            continue;
        };
        if w.is_agent() {
            row.agent = Some(*w);
        } else {
            row.running.push((*w, p.comm));
        }
    }
    rows
}

/// One `watch` frame of `e`.
pub fn frame(e: &EnclaveDir) -> ghost::Result<Frame> {
    let status = e.status()?;
    let cpus = e.cpus()?;
    let sw = sw_use(e);
    let txns = read_txns(e, &cpus);
    let words: Vec<Word> = sw.words().copied().collect();
    let rows = cpu_rows(&cpus, txns.as_deref().ok(), &words, proc_task);
    Ok(Frame {
        id: e.id,
        now_ns: monotonic_ns(),
        status,
        cpus,
        counts: sw.counts(),
        sw_error: sw.first_error().map(str::to_string),
        rows,
        txn_error: txns.err(),
    })
}

/// A fake enclave directory for tests.
#[cfg(test)]
pub mod fixtures {
    use super::*;
    use crate::model::fixtures::word;
    use ghost_abi::{GHOST_SW_TASK_IS_AGENT, GHOST_SW_TASK_ONCPU};

    /// Writes `v` at byte `off` of `buf`.
    pub fn put(buf: &mut [u8], off: usize, v: &[u8]) {
        buf[off..off + v.len()].copy_from_slice(v);
    }

    /// A fake enclave directory: files as ghostfs has them, a region with
    /// three allocated words, and `cpu_data` for CPUs 0-1.
    pub fn fake_enclave(dir: &Path) -> (EnclaveDir, [Word; 3]) {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir.join("sw_regions")).unwrap();
        for (f, text) in [
            ("status", "version 91\nactive yes\nnr_tasks 3\nmsgs 5\n"),
            ("cpulist", "1\n"),
            ("agent_online", "1\n"),
            ("tasks", "101\n102\n"),
        ] {
            std::fs::write(dir.join(f), text).unwrap();
        }
        for t in ghost::ghostfs::Tunable::ALL {
            std::fs::write(dir.join(t.name()), "0\n").unwrap();
        }
        let words = [
            word(10, GHOST_SW_TASK_IS_AGENT, 4),
            word(
                101,
                GHOST_SW_TASK_ONCPU | ghost_abi::GHOST_SW_TASK_RUNNABLE,
                2,
            ),
            word(102, 0, 3),
        ];
        let mut region = vec![0u8; 2 << 20];
        for (off, v) in [
            (offset_of!(GhostSwRegionHeader, start), 64u32),
            (offset_of!(GhostSwRegionHeader, capacity), 65534),
            (offset_of!(GhostSwRegionHeader, available), 65531),
            (offset_of!(GhostSwRegionHeader, numa_node), 1),
        ] {
            put(&mut region, off, &v.to_ne_bytes());
        }
        // Scattered, as the allocator leaves them.
        for (slot, w) in [0usize, 7, 65533].iter().zip(&words) {
            let off = 64 + slot * size_of::<GhostStatusWord>();
            put(
                &mut region,
                off + offset_of!(GhostStatusWord, barrier),
                &w.barrier.to_ne_bytes(),
            );
            put(
                &mut region,
                off + offset_of!(GhostStatusWord, flags),
                &w.flags.to_ne_bytes(),
            );
            put(
                &mut region,
                off + offset_of!(GhostStatusWord, gtid),
                &w.gtid.to_ne_bytes(),
            );
        }
        std::fs::write(dir.join("sw_regions/sw_0"), &region).unwrap();
        let mut cpu_data = vec![0u8; 2 * PAGE];
        let t1 = PAGE; // CPU 1's page
        put(
            &mut cpu_data,
            t1 + offset_of!(GhostTxn, state),
            &ghost_abi::GHOST_TXN_READY.to_ne_bytes(),
        );
        put(
            &mut cpu_data,
            t1 + offset_of!(GhostTxn, gtid),
            &(words[1].gtid as i64).to_ne_bytes(),
        );
        put(
            &mut cpu_data,
            t1 + offset_of!(GhostTxn, cpu_seqnum),
            &9u64.to_ne_bytes(),
        );
        std::fs::write(dir.join("cpu_data"), &cpu_data).unwrap();
        let e = EnclaveDir {
            id: 1,
            path: dir.to_path_buf(),
        };
        (e, words)
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{fake_enclave, put};
    use super::*;
    use crate::model::fixtures::word;
    use ghost_abi::{GHOST_SW_TASK_IS_AGENT, GHOST_SW_TASK_ONCPU};

    #[test]
    fn reads_a_fake_enclave() {
        let dir = std::env::temp_dir().join(format!("ghostctl-collect-{}", std::process::id()));
        let (e, words) = fake_enclave(&dir);

        let r = report(&e).unwrap();
        assert_eq!(
            (r.tasks.clone(), r.agent_online, r.cpus.to_string()),
            (vec![101, 102], true, "1".into())
        );
        let regions = r.sw.regions.clone().unwrap();
        let region = regions[0].region.clone().unwrap();
        assert_eq!(
            (region.numa_node, region.used(), region.words.len()),
            (1, 3, 3)
        );
        assert_eq!(region.words, words);
        assert_eq!(
            r.sw.counts().map(|c| (c.agents, c.tasks, c.oncpu)),
            Some((1, 2, 1))
        );

        let f = frame(&e).unwrap();
        assert_eq!(f.rows.len(), 1);
        let txn = f.rows[0].txn.unwrap();
        assert_eq!(
            (txn.state, txn.gtid, txn.cpu_seqnum),
            (ghost_abi::GHOST_TXN_READY, words[1].gtid as i64, 9)
        );
        assert_eq!((f.sw_error.clone(), f.txn_error.clone()), (None, None));
        assert_eq!(f.status.counters().collect::<Vec<_>>(), [("msgs", 5)]);

        // A header that does not fit the region is refused, not trusted.
        let mut region = std::fs::read(dir.join("sw_regions/sw_0")).unwrap();
        put(
            &mut region,
            offset_of!(GhostSwRegionHeader, capacity),
            &65535u32.to_ne_bytes(),
        );
        std::fs::write(dir.join("sw_regions/sw_0"), &region).unwrap();
        let err = sw_use(&e).regions.unwrap()[0].region.clone().unwrap_err();
        assert!(
            err.ends_with("the header's 65535 words from byte 64 exceed the 2097152-byte region"),
            "{err}"
        );

        // No cpu_data: the rows stay, without transactions, and say why.
        std::fs::remove_file(dir.join("cpu_data")).unwrap();
        let f = frame(&e).unwrap();
        assert_eq!(f.rows[0].txn, None);
        assert!(f.txn_error.unwrap().contains("cpu_data read-only: ENOENT"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn proc_stat_parsing() {
        // Field 39 (processor) is 3; comm holds blanks and parentheses.
        let tail = (4..=38)
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(" ");
        let text = format!("812 (a (b) c) R {tail} 3 0 0 0\n");
        assert_eq!(
            parse_proc_stat(&text),
            Some(ProcTask {
                comm: "a (b) c".into(),
                state: 'R',
                cpu: 3
            })
        );
        assert_eq!(parse_proc_stat("812 (x) S 1 2"), None, "too few fields");
        assert_eq!(parse_proc_stat(""), None);
        assert_eq!(parse_proc_stat(") ("), None);
    }

    #[test]
    fn proc_of_this_process() {
        let pid = nix::unistd::getpid().as_raw();
        let p = proc_task(pid).expect("/proc/self/stat");
        assert!(!p.comm.is_empty());
        assert_eq!(proc_task(-1), None);
        assert!(monotonic_ns() > 0);
    }

    #[test]
    fn rows_place_agents_and_running_tasks() {
        let cpus: CpuSet = "1-2".parse().unwrap();
        let agent1 = word(10, GHOST_SW_TASK_IS_AGENT, 1);
        let agent9 = word(19, GHOST_SW_TASK_IS_AGENT, 1); // on a CPU outside the enclave
        let on2 = word(20, GHOST_SW_TASK_ONCPU, 1);
        let off = word(21, 0, 1);
        let gone = word(22, GHOST_SW_TASK_ONCPU, 1); // no /proc entry
        let where_ = |pid: i32| {
            let cpu = match pid {
                10 => 1,
                19 => 9,
                20 | 21 => 2,
                _ => return None,
            };
            Some(ProcTask {
                comm: format!("t{pid}"),
                state: 'R',
                cpu,
            })
        };
        let txns = [
            Some(Txn {
                state: 5,
                ..Txn::default()
            }),
            None,
        ];
        let rows = cpu_rows(
            &cpus,
            Some(&txns),
            &[agent1, agent9, on2, off, gone],
            where_,
        );
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].cpu, rows[0].agent, rows[0].txn.map(|t| t.state)),
            (1, Some(agent1), Some(5))
        );
        assert!(rows[0].running.is_empty());
        assert_eq!((rows[1].cpu, rows[1].agent, rows[1].txn), (2, None, None));
        assert_eq!(rows[1].running, [(on2, "t20".to_string())]);
        let rows = cpu_rows(&cpus, None, &[], where_);
        assert!(rows.iter().all(|r| r.txn.is_none() && r.agent.is_none()));
    }
}
