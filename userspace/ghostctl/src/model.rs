//! What ghostctl reports, as plain data: filled from ghostfs by
//! [`crate::collect`], printed by [`crate::format`], and built by hand in
//! tests.

use std::collections::BTreeMap;

use ghost::cpus::CpuSet;
use ghost::ghostfs::{Status, Tunable};
use ghost_abi::{
    GHOST_SW_BOOST_PRIO, GHOST_SW_CPU_AVAIL, GHOST_SW_F_ALLOCATED, GHOST_SW_F_CANFREE,
    GHOST_SW_TASK_IS_AGENT, GHOST_SW_TASK_MSG_GATED, GHOST_SW_TASK_ONCPU, GHOST_SW_TASK_RUNNABLE,
};

/// Bits of a gtid below the pid: `gtid = pid << 41 | seqnum` (ghostfs.rst,
/// "Global task ids").
pub const GTID_SEQNUM_BITS: u32 = 41;

/// The pid (initial pid namespace) a gtid names.
pub fn gtid_pid(gtid: u64) -> i32 {
    // At most 22 bits remain: always fits.
    i32::try_from(gtid >> GTID_SEQNUM_BITS).unwrap_or(i32::MAX)
}

/// One line of `ghostctl list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnclaveRow {
    /// The enclave id.
    pub id: u64,
    /// Its CPUs.
    pub cpus: CpuSet,
    /// Its `status` file.
    pub status: Status,
}

/// One allocated status word, copied out of a region.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Word {
    /// The owner's gtid.
    pub gtid: u64,
    /// `GHOST_SW_*` flags.
    pub flags: u32,
    /// The task barrier, or for an agent the CPU's agent barrier.
    pub barrier: u32,
    /// CPU time, ns.
    pub runtime: u64,
}

impl Word {
    /// The owner is an agent.
    pub fn is_agent(&self) -> bool {
        self.flags & GHOST_SW_TASK_IS_AGENT != 0
    }

    /// The owner is on a CPU.
    pub fn oncpu(&self) -> bool {
        self.flags & GHOST_SW_TASK_ONCPU != 0
    }

    /// The owner is runnable.
    pub fn runnable(&self) -> bool {
        self.flags & GHOST_SW_TASK_RUNNABLE != 0
    }

    /// The owner died or departed; the agent must free the word.
    pub fn canfree(&self) -> bool {
        self.flags & GHOST_SW_F_CANFREE != 0
    }

    /// The owner's pid.
    pub fn pid(&self) -> i32 {
        gtid_pid(self.gtid)
    }

    /// A task's state in one word: `oncpu`, `runnable`, `blocked`, or
    /// `departed` (CANFREE); `agent` for an agent.
    pub fn state(&self) -> &'static str {
        if self.is_agent() {
            "agent"
        } else if self.canfree() {
            "departed"
        } else if self.oncpu() {
            "oncpu"
        } else if self.runnable() {
            "runnable"
        } else {
            "blocked"
        }
    }

    /// The flags by name, `|`-separated (`INUSE|ALLOCATED|TASK_ONCPU`).
    pub fn flag_names(&self) -> String {
        const NAMES: [(u32, &str); 9] = [
            (ghost_abi::GHOST_SW_F_INUSE, "INUSE"),
            (GHOST_SW_F_CANFREE, "CANFREE"),
            (GHOST_SW_F_ALLOCATED, "ALLOCATED"),
            (GHOST_SW_CPU_AVAIL, "CPU_AVAIL"),
            (GHOST_SW_BOOST_PRIO, "BOOST_PRIO"),
            (GHOST_SW_TASK_ONCPU, "TASK_ONCPU"),
            (GHOST_SW_TASK_RUNNABLE, "TASK_RUNNABLE"),
            (GHOST_SW_TASK_IS_AGENT, "TASK_IS_AGENT"),
            (GHOST_SW_TASK_MSG_GATED, "TASK_MSG_GATED"),
        ];
        let known = NAMES.iter().fold(0, |acc, (bit, _)| acc | bit);
        let mut parts: Vec<String> = NAMES
            .iter()
            .filter(|(bit, _)| self.flags & bit != 0)
            .map(|(_, name)| name.to_string())
            .collect();
        if self.flags & !known != 0 {
            parts.push(format!("{:#x}", self.flags & !known));
        }
        parts.join("|")
    }
}

/// Counts over the allocated words of one or more regions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WordCounts {
    /// Words with `ALLOCATED` set.
    pub allocated: u64,
    /// ... of which agents'.
    pub agents: u64,
    /// ... of which tasks'.
    pub tasks: u64,
    /// Tasks on a CPU.
    pub oncpu: u64,
    /// Tasks runnable (on a CPU or waiting).
    pub runnable: u64,
    /// Words waiting for the agent to free them (`CANFREE`).
    pub canfree: u64,
    /// The sum of the tasks' barriers: its growth is the number of task
    /// messages produced (while no task leaves).
    pub task_barriers: u64,
}

impl WordCounts {
    /// Counts `words` (the allocated words).
    pub fn of<'a>(words: impl IntoIterator<Item = &'a Word>) -> Self {
        let mut c = WordCounts::default();
        for w in words {
            c.allocated += 1;
            if w.is_agent() {
                c.agents += 1;
                continue;
            }
            c.tasks += 1;
            c.oncpu += u64::from(w.oncpu());
            c.runnable += u64::from(w.runnable());
            c.canfree += u64::from(w.canfree());
            c.task_barriers += u64::from(w.barrier);
        }
        c
    }

    /// The sum of two counts.
    pub fn add(self, o: Self) -> Self {
        Self {
            allocated: self.allocated + o.allocated,
            agents: self.agents + o.agents,
            tasks: self.tasks + o.tasks,
            oncpu: self.oncpu + o.oncpu,
            runnable: self.runnable + o.runnable,
            canfree: self.canfree + o.canfree,
            task_barriers: self.task_barriers + o.task_barriers,
        }
    }
}

/// One status-word region, as read from its mapping.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Region {
    /// The NUMA node it was created for.
    pub numa_node: u32,
    /// Status words in the region (65534).
    pub capacity: u32,
    /// Words not allocated, as the header says.
    pub available: u32,
    /// Counts from a scan of the words.
    pub counts: WordCounts,
    /// The allocated words.
    pub words: Vec<Word>,
}

impl Region {
    /// Words in use according to the header.
    pub fn used(&self) -> u32 {
        self.capacity.saturating_sub(self.available)
    }
}

/// `sw_regions/sw_<id>`: its region, or why it could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionEntry {
    /// The region id.
    pub id: u32,
    /// The region, or the error (naming the file and errno, with a hint
    /// when it is a matter of privileges).
    pub region: Result<Region, String>,
}

/// The status-word use of an enclave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwUse {
    /// The regions, or why `sw_regions/` could not be listed.
    pub regions: Result<Vec<RegionEntry>, String>,
}

impl SwUse {
    /// The words of every readable region.
    pub fn words(&self) -> impl Iterator<Item = &Word> {
        self.readable().flat_map(|r| r.words.iter())
    }

    /// The regions that could be read.
    pub fn readable(&self) -> impl Iterator<Item = &Region> {
        self.regions
            .iter()
            .flatten()
            .filter_map(|e| e.region.as_ref().ok())
    }

    /// Counts over the readable regions; `None` when none could be read
    /// (none exists, or none is readable).
    pub fn counts(&self) -> Option<WordCounts> {
        self.readable().map(|r| r.counts).reduce(WordCounts::add)
    }

    /// The status word of `gtid`, if a readable region has it.
    pub fn word_of(&self, gtid: u64) -> Option<Word> {
        self.words().find(|w| w.gtid == gtid).copied()
    }

    /// The first error reading the regions, if any.
    pub fn first_error(&self) -> Option<&str> {
        match &self.regions {
            Err(e) => Some(e),
            Ok(entries) => entries
                .iter()
                .find_map(|e| e.region.as_ref().err().map(String::as_str)),
        }
    }
}

/// `ghostctl status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The enclave id.
    pub id: u64,
    /// Its directory.
    pub path: String,
    /// The group of its directory (`gid=` at create; 0 otherwise).
    pub group: Option<u32>,
    /// Its `status` file.
    pub status: Status,
    /// Its CPUs.
    pub cpus: CpuSet,
    /// `agent_online`.
    pub agent_online: bool,
    /// Its tasks' pids (`tasks`).
    pub tasks: Vec<i32>,
    /// Its tunables.
    pub tunables: Vec<(Tunable, u64)>,
    /// Its status-word use.
    pub sw: SwUse,
}

/// What `/proc/<pid>/stat` says of a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcTask {
    /// `comm`.
    pub comm: String,
    /// The state letter (`R`, `S`, ...).
    pub state: char,
    /// The CPU it last ran on.
    pub cpu: u32,
}

/// One line of `ghostctl tasks list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRow {
    /// The pid, as `tasks` lists it.
    pub pid: i32,
    /// Its gtid (`/proc/<pid>/ghost/gtid`), if readable.
    pub gtid: Option<u64>,
    /// `/proc/<pid>/stat`, if the task still exists.
    pub proc_: Option<ProcTask>,
    /// Its status word, if the regions are readable.
    pub word: Option<Word>,
}

/// The outcome of one item of a command that acts on several (`destroy`,
/// `tasks add`, `tasks remove`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// What was acted on (`enclave_1`, `pid 812`).
    pub target: String,
    /// The id or pid, for JSON.
    pub key: i64,
    /// `Ok(note)` (the note may be empty) or the error text.
    pub result: Result<String, String>,
}

/// A CPU's transaction, as `cpu_data` holds it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Txn {
    /// `GHOST_TXN_*`, or the CPU that claimed it.
    pub state: i32,
    /// The target task or special gtid.
    pub gtid: i64,
    /// The agent barrier the agent gave.
    pub agent_barrier: u32,
    /// The task barrier the agent gave.
    pub task_barrier: u32,
    /// Run flags.
    pub run_flags: u16,
    /// Commit flags.
    pub commit_flags: u8,
    /// When it was committed (ktime ns), 0 if never.
    pub commit_time: i64,
    /// The CPU's sequence number at commit.
    pub cpu_seqnum: u64,
}

/// One CPU of a `watch` frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuRow {
    /// The CPU.
    pub cpu: usize,
    /// Its transaction, if `cpu_data` is readable.
    pub txn: Option<Txn>,
    /// Its agent's status word.
    pub agent: Option<Word>,
    /// The ghost tasks on it (status word ONCPU, `/proc` says this CPU),
    /// with their `comm`.
    pub running: Vec<(Word, String)>,
}

/// One `watch` frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The enclave id.
    pub id: u64,
    /// CLOCK_MONOTONIC (ktime) when it was taken, ns.
    pub now_ns: i64,
    /// Its `status` file.
    pub status: Status,
    /// Its CPUs.
    pub cpus: CpuSet,
    /// Counts over the readable status words.
    pub counts: Option<WordCounts>,
    /// Why status words could not be read, if so.
    pub sw_error: Option<String>,
    /// One row per enclave CPU.
    pub rows: Vec<CpuRow>,
    /// Why `cpu_data` could not be read, if so.
    pub txn_error: Option<String>,
}

/// Rates between two frames, per second.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rates {
    /// Seconds between the frames.
    pub seconds: f64,
    /// The `status` counters (numeric keys beyond the known ones): value and
    /// rate (none if the counter went down or is new).
    pub counters: Vec<(String, u64, Option<f64>)>,
    /// Task messages per second (growth of the task barriers), if the words
    /// were readable both times and the sum did not shrink.
    pub task_msgs: Option<f64>,
    /// Per CPU: agent barrier increments per second (messages and commits
    /// for that agent), when the same agent was there both times.
    pub agent_wakeups: BTreeMap<usize, f64>,
}

impl Rates {
    /// The rates from `prev` to `cur`; with no `prev`, the counters' values
    /// and no rates.
    pub fn between(prev: Option<&Frame>, cur: &Frame) -> Self {
        let seconds = prev
            .map(|p| (cur.now_ns.saturating_sub(p.now_ns)) as f64 / 1e9)
            .filter(|&s| s > 0.0);
        let per_s =
            |old: u64, new: u64| -> Option<f64> { Some(new.checked_sub(old)? as f64 / seconds?) };
        let counters = cur
            .status
            .counters()
            .map(|(k, v)| {
                let old = prev.and_then(|p| p.status.counters().find(|(pk, _)| *pk == k));
                (k.to_string(), v, old.and_then(|(_, o)| per_s(o, v)))
            })
            .collect();
        let task_msgs = prev
            .and_then(|p| p.counts)
            .zip(cur.counts)
            .and_then(|(o, n)| per_s(o.task_barriers, n.task_barriers));
        let mut agent_wakeups = BTreeMap::new();
        for row in &cur.rows {
            let old = prev
                .and_then(|p| p.rows.iter().find(|r| r.cpu == row.cpu))
                .and_then(|r| r.agent);
            if let (Some(o), Some(n)) = (old, row.agent) {
                if o.gtid == n.gtid {
                    if let Some(r) = per_s(u64::from(o.barrier), u64::from(n.barrier)) {
                        agent_wakeups.insert(row.cpu, r);
                    }
                }
            }
        }
        Rates {
            seconds: seconds.unwrap_or(0.0),
            counters,
            task_msgs,
            agent_wakeups,
        }
    }
}

/// Test data shared by the model and format tests.
#[cfg(test)]
pub mod fixtures {
    use super::*;

    /// The allocated status word of task `pid` (sequence number 5).
    pub fn word(pid: i32, flags: u32, barrier: u32) -> Word {
        Word {
            gtid: (pid as u64) << GTID_SEQNUM_BITS | 5,
            flags: flags | GHOST_SW_F_ALLOCATED,
            barrier,
            runtime: 0,
        }
    }

    /// A `status` file's content, ABI 91.
    pub fn status(active: bool, nr_tasks: u64) -> Status {
        Status {
            version: 91,
            active,
            nr_tasks,
            ..Status::default()
        }
    }

    /// A frame of enclave 1 with CPU 1 at `now_s` seconds, status counters
    /// `extra`, task barriers summing to `barriers`, and CPU 1's `agent`.
    pub fn frame(now_s: i64, extra: &[(&str, &str)], barriers: u64, agent: Option<Word>) -> Frame {
        let mut status = status(true, 2);
        for (k, v) in extra {
            status.extra.insert(k.to_string(), v.to_string());
        }
        Frame {
            id: 1,
            now_ns: now_s * 1_000_000_000,
            status,
            cpus: "1".parse().unwrap(),
            counts: Some(WordCounts {
                task_barriers: barriers,
                ..WordCounts::default()
            }),
            sw_error: None,
            rows: vec![CpuRow {
                cpu: 1,
                txn: None,
                agent,
                running: vec![],
            }],
            txn_error: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{frame, word};
    use super::*;

    #[test]
    fn gtid_to_pid() {
        // ghostfs.rst's example: 243 << 41 | 251.
        assert_eq!(gtid_pid(534_362_651_099_387), 243);
        assert_eq!(gtid_pid(u64::MAX), (u64::MAX >> 41) as i32);
    }

    #[test]
    fn word_states_and_counts() {
        let agent = word(10, GHOST_SW_TASK_IS_AGENT | GHOST_SW_TASK_ONCPU, 7);
        let on = word(11, GHOST_SW_TASK_ONCPU | GHOST_SW_TASK_RUNNABLE, 3);
        let run = word(12, GHOST_SW_TASK_RUNNABLE, 4);
        let blocked = word(13, 0, 5);
        let gone = word(14, GHOST_SW_F_CANFREE | GHOST_SW_TASK_MSG_GATED, 6);
        let states: Vec<_> = [agent, on, run, blocked, gone]
            .iter()
            .map(Word::state)
            .collect();
        assert_eq!(
            states,
            ["agent", "oncpu", "runnable", "blocked", "departed"]
        );
        assert_eq!(on.pid(), 11);
        let c = WordCounts::of(&[agent, on, run, blocked, gone]);
        assert_eq!(
            c,
            WordCounts {
                allocated: 5,
                agents: 1,
                tasks: 4,
                oncpu: 1,
                runnable: 2,
                canfree: 1,
                task_barriers: 18,
            }
        );
        assert_eq!(c.add(c).task_barriers, 36);
        assert_eq!(gone.flag_names(), "CANFREE|ALLOCATED|TASK_MSG_GATED");
        let odd = Word {
            flags: 1 << 30 | 1,
            ..Word::default()
        };
        assert_eq!(odd.flag_names(), "INUSE|0x40000000");
    }

    #[test]
    fn sw_use_merges_readable_regions() {
        let region = |words: Vec<Word>| Region {
            numa_node: 0,
            capacity: 65534,
            available: 65534 - words.len() as u32,
            counts: WordCounts::of(&words),
            words,
        };
        let sw = SwUse {
            regions: Ok(vec![
                RegionEntry {
                    id: 0,
                    region: Ok(region(vec![word(1, 0, 1)])),
                },
                RegionEntry {
                    id: 1,
                    region: Err("open sw_1: EACCES".into()),
                },
                RegionEntry {
                    id: 2,
                    region: Ok(region(vec![word(2, 0, 2), word(3, 0, 3)])),
                },
            ]),
        };
        assert_eq!(sw.counts().map(|c| c.tasks), Some(3));
        assert_eq!(sw.word_of(word(3, 0, 3).gtid).map(|w| w.barrier), Some(3));
        assert_eq!(sw.word_of(1), None);
        assert_eq!(sw.first_error(), Some("open sw_1: EACCES"));
        let none = SwUse {
            regions: Ok(vec![]),
        };
        assert_eq!((none.counts(), none.first_error()), (None, None));
        let bad = SwUse {
            regions: Err("read directory: EACCES".into()),
        };
        assert_eq!(bad.first_error(), Some("read directory: EACCES"));
    }

    #[test]
    fn rates_between_frames() {
        let a = word(10, GHOST_SW_TASK_IS_AGENT, 100);
        let p = frame(
            10,
            &[("commits", "100"), ("resets", "9"), ("name", "x")],
            50,
            Some(a),
        );
        let c = frame(
            12,
            &[("commits", "160"), ("resets", "3"), ("new", "1")],
            70,
            Some(Word { barrier: 140, ..a }),
        );
        let r = Rates::between(Some(&p), &c);
        assert_eq!(r.seconds, 2.0);
        assert_eq!(
            r.counters,
            [
                ("commits".to_string(), 160, Some(30.0)),
                ("new".to_string(), 1, None),
                ("resets".to_string(), 3, None),
            ]
        );
        assert_eq!(r.task_msgs, Some(10.0));
        assert_eq!(r.agent_wakeups.get(&1), Some(&20.0));

        // A new agent on the CPU: no rate from another agent's barrier.
        let other = word(11, GHOST_SW_TASK_IS_AGENT, 5);
        let c2 = frame(12, &[], 40, Some(other));
        let r = Rates::between(Some(&p), &c2);
        assert!(r.agent_wakeups.is_empty());
        assert_eq!(r.task_msgs, None, "the barrier sum shrank");

        // The first frame: values, no rates.
        let r = Rates::between(None, &p);
        assert_eq!(r.seconds, 0.0);
        assert_eq!(r.counters[0], ("commits".to_string(), 100, None));
        assert_eq!(r.task_msgs, None);
        // Frames at the same instant give no rates either.
        assert_eq!(Rates::between(Some(&p), &p).task_msgs, None);
    }
}
