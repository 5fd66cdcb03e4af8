//! Counters an agent keeps: messages by type, transactions by outcome,
//! errors, and time spent idle. Each agent thread counts in its own
//! [`Stats`]; the runtime merges them at the end.

use std::fmt::{self, Write};
use std::time::Duration;

use crate::queue::{message_index, MESSAGE_TYPES};
use crate::txn::TxnResult;

/// What one agent (or the whole runtime) counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Messages by type: [`MESSAGE_TYPES`] order, then other types.
    pub messages: [u64; MESSAGE_TYPES.len() + 1],
    /// Messages whose payload was shorter than the ABI's.
    pub malformed: u64,
    /// Task messages for a task the runtime did not know.
    pub unknown_task: u64,
    /// Messages the kernel dropped because a queue was full.
    pub ring_overflow: u64,
    /// Times a queue's content was corrupt (and skipped).
    pub ring_corrupt: u64,
    /// Transactions by outcome ([`TxnResult::index`]).
    pub commits: [u64; TxnResult::COUNT],
    /// `GHOST_IOC_COMMIT_TXN` / `SYNC_GROUP_TXN` calls that failed.
    pub commit_errors: u64,
    /// Sync-group commits, and how many of them failed as a group.
    pub sync_groups: u64,
    /// Sync-group commits that failed.
    pub sync_groups_failed: u64,
    /// Picks and homes refused (unknown task, task not queued or picked
    /// already this round, CPU its affinity excludes or not scheduled).
    pub plan_rejected: u64,
    /// Pings sent to other agents.
    pub pings: u64,
    /// `ghost_run` yields.
    pub yields: u64,
    /// Rounds the global agent polled (nothing to commit, something to
    /// look at again soon), each ending in `sched_yield`.
    pub polls: u64,
    /// Times the global agent lent its own CPU to a task that may run
    /// only there.
    pub lent: u64,
    /// Yields refused with `ESTALE` (new messages came first).
    pub estale: u64,
    /// Tasks moved to another agent's queue.
    pub assoc: u64,
    /// Queue moves retried because the task's barrier moved.
    pub assoc_stale: u64,
    /// Queue moves that failed otherwise.
    pub assoc_failed: u64,
    /// Status words freed after `TASK_DEAD`/`TASK_DEPARTED`.
    pub sw_freed: u64,
    /// Status words that could not be freed.
    pub sw_free_failed: u64,
    /// Task affinities that could not be read (the task was gone).
    pub affinity_unread: u64,
    /// Time the agent's CPU had nothing to run (the agent blocked with an
    /// empty plan).
    pub idle: Duration,
}

impl Stats {
    /// Counts a message of type `type_`.
    pub fn count_message(&mut self, type_: u16) {
        if let Some(c) = self.messages.get_mut(message_index(type_)) {
            *c += 1;
        }
    }

    /// Counts a transaction outcome.
    pub fn count_commit(&mut self, r: TxnResult) {
        if let Some(c) = self.commits.get_mut(r.index()) {
            *c += 1;
        }
    }

    /// The number of messages of type `type_`.
    pub fn message_count(&self, type_: u16) -> u64 {
        self.messages
            .get(message_index(type_))
            .copied()
            .unwrap_or(0)
    }

    /// The number of transactions with outcome `r`.
    pub fn commit_count(&self, r: TxnResult) -> u64 {
        self.commits.get(r.index()).copied().unwrap_or(0)
    }

    /// All messages.
    pub fn total_messages(&self) -> u64 {
        self.messages.iter().sum()
    }

    /// All transactions.
    pub fn total_commits(&self) -> u64 {
        self.commits.iter().sum()
    }

    /// Adds `o`'s counts to these.
    pub fn merge(&mut self, o: &Stats) {
        for (a, b) in self.messages.iter_mut().zip(&o.messages) {
            *a += b;
        }
        for (a, b) in self.commits.iter_mut().zip(&o.commits) {
            *a += b;
        }
        let pairs = [
            (&mut self.malformed, o.malformed),
            (&mut self.unknown_task, o.unknown_task),
            (&mut self.ring_overflow, o.ring_overflow),
            (&mut self.ring_corrupt, o.ring_corrupt),
            (&mut self.commit_errors, o.commit_errors),
            (&mut self.sync_groups, o.sync_groups),
            (&mut self.sync_groups_failed, o.sync_groups_failed),
            (&mut self.plan_rejected, o.plan_rejected),
            (&mut self.pings, o.pings),
            (&mut self.yields, o.yields),
            (&mut self.polls, o.polls),
            (&mut self.lent, o.lent),
            (&mut self.estale, o.estale),
            (&mut self.assoc, o.assoc),
            (&mut self.assoc_stale, o.assoc_stale),
            (&mut self.assoc_failed, o.assoc_failed),
            (&mut self.sw_freed, o.sw_freed),
            (&mut self.sw_free_failed, o.sw_free_failed),
            (&mut self.affinity_unread, o.affinity_unread),
        ];
        for (a, b) in pairs {
            *a += b;
        }
        self.idle += o.idle;
    }

    /// The counters other than messages and transactions, named.
    fn others(&self) -> [(&'static str, u64); 19] {
        [
            ("malformed messages", self.malformed),
            ("messages of unknown tasks", self.unknown_task),
            ("messages dropped (queue full)", self.ring_overflow),
            ("corrupt queue content", self.ring_corrupt),
            ("commit ioctl errors", self.commit_errors),
            ("sync-group commits", self.sync_groups),
            ("sync-group commits failed", self.sync_groups_failed),
            ("plan entries dropped", self.plan_rejected),
            ("pings", self.pings),
            ("yields", self.yields),
            ("polling rounds", self.polls),
            ("global agent's CPU lent", self.lent),
            ("yields refused (ESTALE)", self.estale),
            ("tasks moved to a CPU's queue", self.assoc),
            ("queue moves retried", self.assoc_stale),
            ("queue moves failed", self.assoc_failed),
            ("status words freed", self.sw_freed),
            ("status words not freed", self.sw_free_failed),
            ("task affinities not read", self.affinity_unread),
        ]
    }
}

/// Writes one `name value` row.
fn row(out: &mut String, name: &str, value: impl fmt::Display) {
    let _ = writeln!(out, "  {name:<30} {value:>12}");
}

impl fmt::Display for Stats {
    /// A short table of the nonzero counters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        let _ = writeln!(out, "messages ({})", self.total_messages());
        for (i, &n) in self.messages.iter().enumerate().filter(|(_, &n)| n > 0) {
            row(
                &mut out,
                MESSAGE_TYPES
                    .get(i)
                    .map_or("other types", |&(_, name)| name),
                n,
            );
        }
        let _ = writeln!(out, "transactions ({})", self.total_commits());
        for (i, &n) in self.commits.iter().enumerate().filter(|(_, &n)| n > 0) {
            row(&mut out, TxnResult::from_index(i).name(), n);
        }
        let others: Vec<_> = self.others().into_iter().filter(|&(_, n)| n > 0).collect();
        if !others.is_empty() {
            let _ = writeln!(out, "other");
            for (name, n) in others {
                row(&mut out, name, n);
            }
        }
        let _ = writeln!(out, "idle");
        row(
            &mut out,
            "time idle (s)",
            format!("{:.3}", self.idle.as_secs_f64()),
        );
        f.write_str(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ghost_abi as abi;

    #[test]
    fn counts_merge_and_print() {
        let mut a = Stats::default();
        a.count_message(abi::MSG_TASK_NEW);
        a.count_message(abi::MSG_TASK_NEW);
        a.count_message(999);
        a.count_commit(TxnResult::Complete);
        a.count_commit(TxnResult::Unknown(-3));
        a.idle = Duration::from_millis(1500);
        let mut b = Stats::default();
        b.count_message(abi::MSG_TASK_DEAD);
        b.count_commit(TxnResult::TargetStale);
        b.pings = 4;
        b.idle = Duration::from_millis(250);
        a.merge(&b);
        assert_eq!(a.message_count(abi::MSG_TASK_NEW), 2);
        assert_eq!(a.message_count(abi::MSG_TASK_DEAD), 1);
        assert_eq!(a.total_messages(), 4);
        assert_eq!(a.commit_count(TxnResult::TargetStale), 1);
        assert_eq!(a.total_commits(), 3);
        assert_eq!(a.pings, 4);
        let s = a.to_string();
        for want in [
            "messages (4)",
            "TASK_NEW",
            "other types",
            "transactions (3)",
            "COMPLETE",
            "TARGET_STALE",
            "UNKNOWN",
            "pings",
            "1.750",
        ] {
            assert!(s.contains(want), "{want} missing from\n{s}");
        }
        assert!(!s.contains("TASK_WAKEUP"), "zero rows are left out:\n{s}");
    }
}
