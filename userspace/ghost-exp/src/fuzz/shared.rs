//! Memory shared by the fuzz processes: counters and the ring of the last
//! operations.

use super::{
    errno_name, AtomicI32, AtomicU32, AtomicU64, AtomicU8, Ordering, KINDS, RING, SLOT_BYTES,
    THREADS,
};

/// One operation description of the ring.
#[repr(C)]
pub(super) struct Slot {
    pub(super) seq: AtomicU64,
    pub(super) len: AtomicU32,
    pub(super) text: [AtomicU8; SLOT_BYTES],
}

/// Shared by the parent, the agent, the fuzzer, the workload and the
/// bystander (an anonymous shared mapping, zeroed for each run).
#[repr(C)]
pub(super) struct Shared {
    /// The workload and the bystander stop.
    pub(super) stop: AtomicU32,
    /// The agent: up; setup error; done with its operations; thread id;
    /// loop iterations.
    pub(super) agent_up: AtomicU32,
    pub(super) agent_err: AtomicI32,
    pub(super) agent_done: AtomicU32,
    pub(super) agent_tid: AtomicI32,
    pub(super) agent_iter: AtomicU64,
    /// Operations tried and faults (garbage) injected, by every process.
    pub(super) ops: AtomicU64,
    pub(super) faults: AtomicU64,
    /// The agent: nudges of its helper, its own commits that completed or
    /// not, status words it freed.
    pub(super) nudges: AtomicU64,
    pub(super) sched_ok: AtomicU64,
    pub(super) sched_fail: AtomicU64,
    pub(super) sw_freed: AtomicU64,
    /// The outcomes of the agent's own commits (`state - INT_MIN`; 16: the
    /// ioctl failed; 17: not done).
    pub(super) outcomes: [AtomicU64; 18],
    /// The workload threads: tids, iterations, whether they entered ghost.
    pub(super) tids: [AtomicI32; THREADS],
    pub(super) work: [AtomicU64; THREADS],
    pub(super) in_ghost: [AtomicU32; THREADS],
    /// The bystander: pid, iterations; the fuzzer's `tasks` writes that
    /// moved it (bit 0) or the fuzzer itself (bit 1) into ghost.
    pub(super) bystander: AtomicI32,
    pub(super) bystander_work: AtomicU64,
    pub(super) moved: AtomicU32,
    /// Outcomes by operation kind: ok, errno.
    pub(super) kinds: [[AtomicU64; 2]; KINDS.len()],
    /// The ring of the last operations.
    pub(super) seq: AtomicU64,
    pub(super) ring: [Slot; RING],
}

pub(super) use crate::harness::mapped::shared_mem;

impl Shared {
    /// Back to zero, except the ring's sequence (it goes on across batches).
    pub(super) fn reset(&self) {
        for a in [&self.stop, &self.agent_up, &self.agent_done, &self.moved] {
            a.store(0, Ordering::SeqCst);
        }
        for a in [&self.agent_err, &self.agent_tid, &self.bystander] {
            a.store(0, Ordering::SeqCst);
        }
        for a in [
            &self.agent_iter,
            &self.ops,
            &self.faults,
            &self.nudges,
            &self.sched_ok,
            &self.sched_fail,
            &self.sw_freed,
            &self.bystander_work,
        ] {
            a.store(0, Ordering::SeqCst);
        }
        for o in &self.outcomes {
            o.store(0, Ordering::SeqCst);
        }
        for i in 0..THREADS {
            self.tids[i].store(0, Ordering::SeqCst);
            self.work[i].store(0, Ordering::SeqCst);
            self.in_ghost[i].store(0, Ordering::SeqCst);
        }
    }

    /// The last `n` operations of the ring, oldest first.
    pub(super) fn last_ops(&self, n: usize) -> Vec<String> {
        let mut v: Vec<(u64, String)> = self
            .ring
            .iter()
            .filter_map(|s| {
                let seq = s.seq.load(Ordering::Acquire);
                let len = (s.len.load(Ordering::Acquire) as usize).min(SLOT_BYTES);
                let b: Vec<u8> = s.text[..len]
                    .iter()
                    .map(|c| c.load(Ordering::Relaxed))
                    .collect();
                (seq != 0).then(|| (seq, String::from_utf8_lossy(&b).into_owned()))
            })
            .collect();
        v.sort();
        let skip = v.len().saturating_sub(n);
        v.into_iter().skip(skip).map(|(_, s)| s).collect()
    }
}

/// Writes `text` into ring slot `seq`.
pub(super) fn put(sh: &Shared, seq: u64, text: &str) {
    let slot = &sh.ring[(seq % RING as u64) as usize];
    slot.seq.store(0, Ordering::Release);
    let b = text.as_bytes();
    let n = b.len().min(SLOT_BYTES);
    for (i, &c) in b[..n].iter().enumerate() {
        slot.text[i].store(c, Ordering::Relaxed);
    }
    slot.len.store(n as u32, Ordering::Release);
    slot.seq.store(seq, Ordering::Release);
}

/// Records the operations of one process: the ring, the counts.
pub(super) struct Rec {
    pub(super) sh: &'static Shared,
    pub(super) who: char,
    pub(super) batch: u64,
    pub(super) n: u64,
}

impl Rec {
    /// Runs operation `f`, described by `desc`, recording it and its outcome.
    pub(super) fn op(
        &mut self,
        kind: usize,
        desc: String,
        f: impl FnOnce() -> Result<i64, i32>,
    ) -> Option<i64> {
        let seq = self.sh.seq.fetch_add(1, Ordering::SeqCst) + 1;
        let text = format!("{}{}.{} {desc}", self.who, self.batch, self.n);
        put(self.sh, seq, &text);
        let r = f();
        let outcome = match r {
            Ok(v) => format!("{text} -> {v}"),
            Err(e) => format!("{text} -> {}", errno_name(e)),
        };
        put(self.sh, seq, &outcome);
        self.sh.ops.fetch_add(1, Ordering::Relaxed);
        self.sh.kinds[kind][usize::from(r.is_err())].fetch_add(1, Ordering::Relaxed);
        self.n += 1;
        r.ok()
    }

    /// Counts `n` faults (garbage written into shared memory).
    pub(super) fn fault(&self, n: u64) {
        self.sh.faults.fetch_add(n, Ordering::Relaxed);
    }
}

/// `data` for a description: escaped and cut.
pub(super) fn show(data: &[u8]) -> String {
    let s: String = data
        .iter()
        .take(48)
        .flat_map(|&b| std::ascii::escape_default(b))
        .map(char::from)
        .collect();
    if data.len() > 48 {
        format!("\"{s}\"..(len {})", data.len())
    } else {
        format!("\"{s}\"")
    }
}
