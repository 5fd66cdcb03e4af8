//! The bundled policies against recorded message sequences: each sequence
//! is written into a synthetic ring as the kernel writes it, read back by
//! the consumer, and delivered through the runtime's scheduler core.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ghost_abi as abi;

use super::edf::{Deadline, DeadlineTable, Edf, Unusable};
use super::fair::{self, Fair};
use super::fifo::Fifo;
use super::fifo_central::FifoCentral;
use super::shinjuku::{self, Shinjuku};
use super::sol::Sol;
use crate::ffi::Mapping;
use crate::gtid::Layout;
use crate::policy::Policy;
use crate::queue::testing::{ring, Producer};
use crate::queue::Message;
use crate::queue::{Received, Ring};
use crate::scheduler::testing::*;
use crate::scheduler::{Model, Plan, Scheduler};
use crate::sw::testing::{region, set};
use crate::sw::SwTable;
use crate::txn::TxnResult;

/// A policy in the scheduler core, fed through a ring.
struct Run<P> {
    s: Scheduler<P>,
    k: Recorder,
    ring: Ring,
    now: Instant,
}

impl<P: Policy> Run<P> {
    fn new(policy: P, model: Model, cpus: &[usize], sw: Option<Arc<SwTable>>) -> Self {
        Self {
            s: Scheduler::new(policy, &model, cpus, sw),
            k: Recorder::default(),
            ring: ring(4096),
            now: Instant::now(),
        }
    }

    /// The agent of `cpu` reads `msgs` from its queue.
    fn feed(&mut self, cpu: usize, msgs: &[Received]) {
        let mut p = Producer {
            ring: &self.ring,
            head: self.ring.head(),
        };
        for r in msgs {
            let (t, b) = encode(r);
            assert!(p.push_raw(t, (8 + b.len()) as u16, r.seqnum, &b));
        }
        let mut c = self.ring.consumer();
        while let Some(m) = c.pop() {
            self.s.deliver(&mut self.k, cpu, &m.unwrap(), self.now);
        }
    }

    fn plan(&mut self, cpu: usize) -> Vec<(usize, i64)> {
        let mut plan = Plan::new();
        self.s.schedule(&mut self.k, cpu, self.now, &mut plan);
        plan.entries().iter().map(|e| (e.cpu, e.gtid)).collect()
    }

    fn polls(&mut self, cpu: usize) -> bool {
        let mut plan = Plan::new();
        self.s.schedule(&mut self.k, cpu, self.now, &mut plan);
        plan.polls()
    }

    fn commit(&mut self, agent: usize, cpu: usize, gtid: i64, r: TxnResult) {
        self.s.committed(&mut self.k, agent, cpu, gtid, r, self.now);
    }
}

const A: i64 = 0x100;
const B: i64 = 0x200;
const C: i64 = 0x300;
const D: i64 = 0x400;

#[test]
fn fifo_spreads_new_tasks_and_runs_them_in_order() {
    let mut r = Run::new(Fifo::new(), Model::PerCpu, &[1, 2], None);
    // Every TASK_NEW arrives on the default queue, CPU 1's.
    r.feed(
        1,
        &[
            new(1, A, true),
            new(1, B, true),
            new(1, C, false),
            new(1, D, true),
        ],
    );
    // Round-robin homes; the ones away from CPU 1 move queues.
    assert_eq!(
        [A, B, C, D].map(|g| r.s.task(g).unwrap().home),
        [Some(1), Some(2), Some(1), Some(2)]
    );
    assert_eq!(r.k.assoc, vec![(B, 2, 1), (D, 2, 1)]);
    assert_eq!(r.s.take_pings(1).iter().collect::<Vec<_>>(), vec![2]);
    assert_eq!(r.s.policy().run_queue(1), vec![A]);
    assert_eq!(r.s.policy().run_queue(2), vec![B, D]);
    assert_eq!(r.plan(1), vec![(1, A)]);
    assert_eq!(r.plan(2), vec![(2, B)]);
    // A CPU runs only its own queue, never another's.
    r.commit(1, 1, A, TxnResult::Complete);
    assert_eq!(r.plan(1), vec![]);
    // C wakes up, A is preempted by the agent's wakeup: C then A.
    r.feed(1, &[wakeup(2, C), preempt(2, A, 1)]);
    assert_eq!(r.s.policy().run_queue(1), vec![C, A]);
    // A stale barrier keeps C at the front.
    r.commit(1, 1, C, TxnResult::TargetStale);
    assert_eq!(r.plan(1), vec![(1, C)]);
    r.commit(1, 1, C, TxnResult::Complete);
    // C is current (latched or running): nothing else is committed, or it
    // would replace C's latch before C ran.
    assert_eq!(r.s.policy().run_queue(1), vec![A]);
    assert_eq!(r.plan(1), vec![]);
    r.feed(1, &[wakeup(3, D)]);
    assert_eq!(r.plan(1), vec![]);
    // C yields: behind A, and A runs.
    r.feed(1, &[yielded(3, C, 1)]);
    assert_eq!(r.s.policy().run_queue(1), vec![A, C]);
    assert_eq!(r.plan(1), vec![(1, A)]);
}

#[test]
fn fifo_forgets_blocked_dead_and_departed_tasks() {
    let mut r = Run::new(Fifo::new(), Model::PerCpu, &[1], None);
    r.feed(1, &[new(1, A, true), new(1, B, true), new(1, C, true)]);
    assert_eq!(r.s.policy().run_queue(1), vec![A, B, C]);
    r.feed(1, &[blocked(2, A, 1), dead(2, B, 1), departed(2, C, 1)]);
    assert_eq!(r.s.policy().run_queue(1), vec![]);
    assert_eq!(r.s.nr_tasks(), 1);
    assert_eq!(r.k.freed.len(), 2);
    // A blocked one comes back when it wakes; messages of forgotten tasks
    // are counted and ignored.
    r.feed(1, &[wakeup(3, A), wakeup(3, B)]);
    assert_eq!(r.s.policy().run_queue(1), vec![A]);
    assert_eq!(r.s.stats.unknown_task, 1);
    // A commit that finds the task gone or blocked drops it.
    r.commit(1, 1, A, TxnResult::TargetNotRunnable);
    assert_eq!(r.plan(1), vec![]);
}

#[test]
fn fifo_starts_over_on_rediscovery_and_moves_on_after_invalid_cpu() {
    let mut r = Run::new(Fifo::new(), Model::PerCpu, &[1, 2, 3], None);
    r.k.allow(A, &[1, 3]);
    r.k.allow(B, &[2]);
    r.feed(1, &[new(1, A, true)]);
    assert_eq!(r.s.policy().run_queue(1), vec![A]);
    // `discover tasks` after a takeover: TASK_NEW again, a new home among
    // the CPUs A allows (not 2).
    r.feed(1, &[new(5, A, true)]);
    assert_eq!(r.s.policy().run_queue(1), vec![]);
    assert_eq!(r.s.policy().run_queue(3), vec![A]);
    assert_eq!(r.s.task(A).unwrap().seqnum, 5);
    // An older kernel refuses CPU 3 (INVALID_CPU): A moves on, queue and
    // all, to the other CPU it allows.
    r.commit(3, 3, A, TxnResult::InvalidCpu);
    assert_eq!(r.s.policy().run_queue(1), vec![A]);
    assert_eq!(r.s.policy().run_queue(3), vec![]);
    assert_eq!(r.s.task(A).unwrap().home, Some(1));
    assert_eq!(r.k.assoc.last(), Some(&(A, 1, 5)));
    // Refused on the only CPU it allows: it waits for the affinity change
    // that is on its way, and goes where that allows.
    r.feed(1, &[new(1, B, true)]);
    assert_eq!(r.s.policy().run_queue(2), vec![B]);
    r.commit(2, 2, B, TxnResult::InvalidCpu);
    assert_eq!(r.s.waiting(), vec![B]);
    assert_eq!(r.plan(2), vec![]);
    r.k.allow(B, &[3]);
    r.feed(2, &[affinity(2, B)]);
    assert_eq!(r.s.waiting(), vec![]);
    assert_eq!(r.s.policy().run_queue(3), vec![B]);
}

#[test]
fn fifo_commits_a_task_only_where_its_affinity_allows() {
    let mut r = Run::new(Fifo::new(), Model::PerCpu, &[1, 2, 3], None);
    r.k.allow(A, &[3]);
    r.k.allow(B, &[1, 2]);
    // C's affinity cannot be read (gone, or never readable): anywhere.
    r.feed(1, &[new(1, A, true), new(1, B, true), new(1, C, true)]);
    // Round-robin homes, skipping CPUs a task does not allow.
    assert_eq!(
        [A, B, C].map(|g| r.s.task(g).unwrap().home),
        [Some(3), Some(1), Some(2)]
    );
    assert_eq!(r.s.stats.affinity_unread, 1);
    assert_eq!(r.plan(1), vec![(1, B)]);
    assert_eq!(r.plan(2), vec![(2, C)]);
    assert_eq!(r.plan(3), vec![(3, A)]);
    // A runs, is preempted, yields, blocks and wakes: always back on 3.
    r.commit(3, 3, A, TxnResult::Complete);
    r.feed(3, &[preempt(2, A, 3)]);
    assert_eq!(r.s.policy().run_queue(3), vec![A]);
    r.commit(3, 3, A, TxnResult::Complete);
    r.feed(3, &[yielded(3, A, 3), blocked(4, A, 3), wakeup(5, A)]);
    assert_eq!(r.s.policy().run_queue(3), vec![A]);
    for cpu in [1, 2] {
        assert!(!r.s.policy().run_queue(cpu).contains(&A));
    }
    // B's affinity changes while it is blocked: it stays put, and goes to
    // a CPU it allows when it wakes (on its old home's queue).
    r.feed(1, &[blocked(2, B, 1)]);
    r.k.allow(B, &[3]);
    r.feed(1, &[affinity(3, B)]);
    assert_eq!(r.s.task(B).unwrap().home, Some(1));
    r.feed(1, &[wakeup(4, B)]);
    assert_eq!(r.s.task(B).unwrap().home, Some(3));
    assert_eq!(r.s.policy().run_queue(1), vec![]);
    assert_eq!(r.s.policy().run_queue(3), vec![A, B]);
    assert_eq!(r.plan(1), vec![]);
    assert_eq!(r.k.assoc.last(), Some(&(B, 3, 4)));
}

#[test]
fn fifo_moves_a_queued_task_whose_affinity_drops_its_cpu() {
    let mut r = Run::new(Fifo::new(), Model::PerCpu, &[1, 2], None);
    for g in [A, B, C] {
        r.k.allow(g, &[1, 2]);
    }
    r.feed(1, &[new(1, A, true), new(1, B, true), new(1, C, true)]);
    assert_eq!(r.s.policy().run_queue(1), vec![A, C]);
    assert_eq!(r.s.policy().run_queue(2), vec![B]);
    r.s.take_pings(1);
    // A may no longer use CPU 1: to CPU 2's queue (and its messages too).
    r.k.allow(A, &[2]);
    r.feed(1, &[affinity(2, A)]);
    assert_eq!(r.s.policy().run_queue(1), vec![C]);
    assert_eq!(r.s.policy().run_queue(2), vec![B, A]);
    assert_eq!(r.s.task(A).unwrap().home, Some(2));
    assert_eq!(r.k.assoc.last(), Some(&(A, 2, 2)));
    assert_eq!(r.s.take_pings(1).iter().collect::<Vec<_>>(), vec![2]);
    // A change that keeps the CPU keeps the task's place.
    r.k.allow(C, &[1]);
    r.feed(1, &[affinity(2, C)]);
    assert_eq!(r.s.policy().run_queue(1), vec![C]);
    // The current task: the kernel forces it off (TASK_PREEMPT after the
    // change), and it goes where it is allowed then.
    assert_eq!(r.plan(2), vec![(2, B)]);
    r.commit(2, 2, B, TxnResult::Complete);
    r.k.allow(B, &[1]);
    r.feed(2, &[affinity(2, B)]);
    assert_eq!(r.s.policy().run_queue(2), vec![A]);
    r.feed(2, &[preempt(3, B, 2)]);
    assert_eq!(r.s.policy().run_queue(1), vec![C, B]);
    assert_eq!(r.s.policy().run_queue(2), vec![A]);
    assert_eq!(r.plan(2), vec![(2, A)]);
}

#[test]
fn fifo_task_with_no_allowed_cpu_waits() {
    let mut r = Run::new(Fifo::new(), Model::PerCpu, &[1, 2], None);
    // A may only run on CPU 5, which is not the enclave's.
    r.k.allow(A, &[5]);
    r.k.allow(B, &[1, 2]);
    r.feed(1, &[new(1, A, true), new(1, B, true)]);
    assert_eq!(r.s.task(A).unwrap().home, None);
    assert_eq!(r.s.waiting(), vec![A]);
    assert_eq!(r.s.policy().run_queue(1), vec![B]);
    assert_eq!(r.plan(1), vec![(1, B)]);
    assert_eq!(r.plan(2), vec![]);
    let dump = r.s.dump();
    assert!(
        dump.contains("waiting, no CPU of the enclave in their affinity: 1 {256}"),
        "{dump}"
    );
    // A queued task whose affinity leaves the enclave joins it; a blocked
    // one that wakes with no CPU too.
    r.k.allow(B, &[7]);
    r.feed(1, &[affinity(2, B)]);
    assert_eq!(r.s.waiting(), vec![A, B]);
    assert_eq!(r.s.policy().run_queue(1), vec![]);
    assert_eq!(r.plan(1), vec![]);
    r.feed(1, &[blocked(3, B, 1)]);
    assert_eq!(r.s.waiting(), vec![A]);
    r.feed(1, &[wakeup(4, B)]);
    assert_eq!(r.s.waiting(), vec![A, B]);
    // An affinity that allows an enclave CPU again: off they go.
    r.k.allow(A, &[2, 5]);
    r.feed(1, &[affinity(2, A)]);
    assert_eq!(r.s.waiting(), vec![B]);
    assert_eq!(r.s.policy().run_queue(2), vec![A]);
    assert_eq!(r.s.task(A).unwrap().home, Some(2));
    assert_eq!(r.plan(2), vec![(2, A)]);
    // A waiting task that dies is forgotten.
    r.feed(1, &[dead(5, B, 1)]);
    assert_eq!(r.s.waiting(), vec![]);
    assert!(!r.s.dump().contains("waiting"));
}

#[test]
fn central_fills_free_cpus_and_never_its_own() {
    let mut r = Run::new(
        FifoCentral::new(None),
        Model::Centralized { global_cpu: 0 },
        &[0, 1, 2],
        None,
    );
    r.feed(0, &[new(1, A, true), new(1, B, true), new(1, C, true)]);
    assert_eq!(r.plan(0), vec![(1, A), (2, B)]);
    assert!(!r.polls(0), "no time slice: wait for a message");
    r.commit(0, 1, A, TxnResult::Complete);
    r.commit(0, 2, B, TxnResult::Complete);
    assert_eq!((r.s.current(1), r.s.current(2)), (Some(A), Some(B)));
    assert_eq!(r.plan(0), vec![]);
    // A blocks: CPU 1 is free for C.
    r.feed(0, &[blocked(2, A, 1)]);
    assert_eq!(r.plan(0), vec![(1, C)]);
    r.commit(0, 1, C, TxnResult::Complete);
    // B dies, A wakes: A on CPU 2.
    r.feed(0, &[dead(2, B, 2), wakeup(3, A)]);
    assert_eq!(r.plan(0), vec![(2, A)]);
    // A stale barrier: A stays first in line.
    r.commit(0, 2, A, TxnResult::TargetStale);
    assert_eq!(r.s.policy().run_queue(), vec![A]);
    assert_eq!(r.s.take_pings(0).iter().count(), 0);
}

#[test]
fn central_preempts_after_the_time_slice() {
    let slice = Duration::from_micros(50);
    let mut r = Run::new(
        FifoCentral::new(Some(slice)),
        Model::Centralized { global_cpu: 0 },
        &[0, 1],
        None,
    );
    r.feed(0, &[new(1, A, true), new(1, B, true)]);
    assert_eq!(r.plan(0), vec![(1, A)]);
    r.commit(0, 1, A, TxnResult::Complete);
    // Within the slice: nothing, but look again soon.
    r.now += Duration::from_micros(10);
    assert_eq!(r.plan(0), vec![]);
    assert!(r.polls(0));
    // Past it: B replaces A, which goes to the back when it is preempted.
    r.now += slice;
    assert_eq!(r.plan(0), vec![(1, B)]);
    r.commit(0, 1, B, TxnResult::Complete);
    r.feed(0, &[preempt(2, A, 1)]);
    assert_eq!(r.s.current(1), Some(B));
    assert_eq!(r.s.policy().run_queue(), vec![A]);
    // Alone, a task is never preempted.
    r.feed(0, &[dead(2, A, 1)]);
    r.now += slice * 10;
    assert_eq!(r.plan(0), vec![]);
    assert!(!r.polls(0));
}

#[test]
fn central_backs_off_busy_cpus() {
    let mut r = Run::new(
        FifoCentral::new(None),
        Model::Centralized { global_cpu: 0 },
        &[0, 1, 2],
        None,
    );
    r.feed(0, &[new(1, A, true)]);
    assert_eq!(r.plan(0), vec![(1, A)]);
    r.commit(0, 1, A, TxnResult::CpuUnavail);
    // CPU 1 is left alone for a while: A goes to CPU 2 meanwhile.
    assert_eq!(r.plan(0), vec![(2, A)]);
    // CPU_BUSY on 2: nothing free, but the back-off ends by itself.
    r.feed(0, &[cpu_busy(2, true)]);
    assert_eq!(r.plan(0), vec![]);
    assert!(r.polls(0));
    r.now += Duration::from_millis(2);
    assert_eq!(r.plan(0), vec![(1, A)]);
    r.feed(0, &[cpu_busy(2, false)]);
    r.now += Duration::from_millis(2);
    assert_eq!(r.plan(0), vec![(1, A)]);
}

#[test]
fn central_commits_a_task_only_where_its_affinity_allows() {
    let slice = Duration::from_micros(50);
    let mut r = Run::new(
        FifoCentral::new(Some(slice)),
        Model::Centralized { global_cpu: 0 },
        &[0, 1, 2, 3],
        None,
    );
    r.k.allow(A, &[3]);
    r.k.allow(B, &[0, 1, 2]);
    // C and D: every CPU.
    r.feed(0, &[new(1, A, true), new(1, B, true), new(1, C, true)]);
    // Each free CPU takes the oldest task it may run.
    assert_eq!(r.plan(0), vec![(1, B), (2, C), (3, A)]);
    for (cpu, g) in [(1, B), (2, C), (3, A)] {
        r.commit(0, cpu, g, TxnResult::Complete);
    }
    // D may only run on CPU 1: when the slices end, it takes CPU 1's, and
    // the tasks of CPUs 2 and 3 keep theirs.
    r.k.allow(D, &[1]);
    r.feed(0, &[new(1, D, true)]);
    r.now += slice;
    assert_eq!(r.plan(0), vec![(1, D)]);
    r.commit(0, 1, D, TxnResult::Complete);
    // B (preempted) may not use CPU 3, which A leaves free: A gets CPU 3
    // back (free CPUs are filled first), and B takes CPU 2, whose slice is
    // over.
    r.feed(0, &[preempt(2, B, 1), yielded(2, A, 3)]);
    assert_eq!(r.s.policy().run_queue(), vec![B, A]);
    assert_eq!(r.plan(0), vec![(3, A), (2, B)]);
    // With A gone, CPU 3 stays free rather than take B.
    r.feed(0, &[dead(3, A, 3)]);
    assert_eq!(r.plan(0), vec![(2, B)]);
}

#[test]
fn central_follows_affinity_changes_and_waits_without_a_cpu() {
    let mut r = Run::new(
        FifoCentral::new(None),
        Model::Centralized { global_cpu: 0 },
        &[0, 1, 2],
        None,
    );
    // A allows only the global agent's CPU, which runs no task.
    r.k.allow(A, &[0]);
    r.k.allow(B, &[1, 2]);
    r.feed(0, &[new(1, A, true), new(1, B, true)]);
    assert_eq!(r.s.waiting(), vec![A]);
    assert_eq!(r.s.policy().run_queue(), vec![B]);
    assert_eq!(r.plan(0), vec![(1, B)]);
    assert!(!r.polls(0), "a waiting task waits for a message");
    let dump = r.s.dump();
    assert!(
        dump.contains("waiting, no CPU of the enclave in their affinity: 1 {256}"),
        "{dump}"
    );
    // B's affinity drops CPU 1 before its commit (which the barrier makes
    // stale): it goes to CPU 2 instead.
    r.k.allow(B, &[2]);
    r.feed(0, &[affinity(2, B)]);
    r.commit(0, 1, B, TxnResult::TargetStale);
    assert_eq!(r.plan(0), vec![(2, B)]);
    // A may use CPU 1 now; B leaves the enclave's CPUs and waits.
    r.k.allow(A, &[0, 1]);
    r.k.allow(B, &[5]);
    r.feed(0, &[affinity(2, A), affinity(3, B)]);
    assert_eq!(r.s.waiting(), vec![B]);
    assert_eq!(r.plan(0), vec![(1, A)]);
    // A task woken with no CPU it allows waits too.
    r.commit(0, 1, A, TxnResult::Complete);
    r.feed(0, &[blocked(3, A, 1)]);
    r.k.allow(A, &[0]);
    r.feed(0, &[affinity(4, A), wakeup(5, A)]);
    assert_eq!(r.s.waiting(), vec![A, B]);
    assert_eq!(r.plan(0), vec![]);
    r.feed(0, &[departed(6, A, 1), dead(4, B, 1)]);
    assert_eq!(r.s.waiting(), vec![]);
}

#[test]
fn central_skips_tasks_still_on_a_cpu() {
    let sw = Arc::new(SwTable::new(vec![region(0, 4096)]));
    let mut r = Run::new(
        FifoCentral::new(None),
        Model::Centralized { global_cpu: 0 },
        &[0, 1, 2],
        Some(sw.clone()),
    );
    // Status word index = gtid (see `new`).
    let reg = &sw.regions()[0];
    set(
        reg,
        A as u32,
        A,
        1,
        abi::GHOST_SW_F_INUSE | abi::GHOST_SW_TASK_ONCPU,
    );
    set(reg, B as u32, B, 1, abi::GHOST_SW_F_INUSE);
    r.feed(0, &[new(1, A, true), new(1, B, true)]);
    // A is still on its old CPU: B goes first, and the agent polls until A
    // is off.
    assert_eq!(r.plan(0), vec![(1, B)]);
    assert!(r.polls(0));
    set(reg, A as u32, A, 1, abi::GHOST_SW_F_INUSE);
    assert_eq!(r.plan(0), vec![(1, A), (2, B)]);
}

#[test]
fn central_runs_pinned_tasks_on_their_cpu_only() {
    // Issue 19: a pipe across two CPUs under `fifo-central`, each end
    // pinned. A task pinned to CPU 3 is never offered to CPU 2 (or 1), and
    // runs as soon as CPU 3 is free; the agent never polls for nothing.
    let mut r = Run::new(
        FifoCentral::new(None),
        Model::Centralized { global_cpu: 0 },
        &[0, 1, 2, 3],
        None,
    );
    r.k.allow(A, &[3]);
    r.k.allow(B, &[2]);
    r.k.allow(C, &[3]);
    r.feed(0, &[new(1, C, true)]);
    assert_eq!(r.plan(0), vec![(3, C)]);
    r.commit(0, 3, C, TxnResult::Complete);
    // A arrives first, B second: CPUs 1 and 2 are free, CPU 3 is C's. A
    // waits for CPU 3 while B, behind it, takes CPU 2.
    r.feed(0, &[new(1, A, true), new(1, B, true)]);
    assert_eq!(r.plan(0), vec![(2, B)]);
    r.commit(0, 2, B, TxnResult::Complete);
    assert_eq!(r.plan(0), vec![]);
    assert!(!r.polls(0), "A waits for a message about CPU 3");
    // Ping-pong: C blocks, A runs on 3; B blocks, A wakes B... many rounds,
    // and every commit is one the kernel takes (no refused pairing).
    for round in 0..50u32 {
        let seq = 2 + 2 * round;
        r.feed(0, &[blocked(seq, C, 3)]);
        assert_eq!(r.plan(0), vec![(3, A)], "round {round}");
        r.commit(0, 3, A, TxnResult::Complete);
        r.feed(0, &[blocked(seq, B, 2), wakeup(seq + 1, C)]);
        assert_eq!(r.plan(0), vec![], "round {round}: C waits for CPU 3");
        r.feed(0, &[blocked(seq + 1, A, 3), wakeup(seq + 1, B)]);
        assert_eq!(r.plan(0), vec![(2, B), (3, C)], "round {round}");
        r.commit(0, 2, B, TxnResult::Complete);
        r.commit(0, 3, C, TxnResult::Complete);
        r.feed(0, &[wakeup(seq + 2, A)]);
        assert_eq!(r.plan(0), vec![], "round {round}: A waits for CPU 3");
    }
    assert_eq!(r.s.stats.plan_rejected, 0);
    assert_eq!(r.s.policy().run_queue(), vec![A]);
}

/// `TASK_NEW` for `gtid` with a nice value and a cumulative runtime.
fn new_nice(seq: u32, gtid: i64, nice: i32, runtime: u64) -> Received {
    let mut r = new(seq, gtid, true);
    if let Message::TaskNew(m) = &mut r.msg {
        m.nice = nice;
        m.runtime = runtime;
    }
    r
}

/// `TASK_PREEMPT` on `cpu` after the task ran up to `runtime` ns in all.
fn preempt_at(seq: u32, gtid: i64, cpu: i32, runtime: u64) -> Received {
    let mut r = preempt(seq, gtid, cpu);
    if let Message::TaskPreempt(m) = &mut r.msg {
        m.runtime = runtime;
    }
    r
}

/// `TASK_BLOCKED` on `cpu` after the task ran up to `runtime` ns in all.
fn blocked_at(seq: u32, gtid: i64, cpu: i32, runtime: u64) -> Received {
    let mut r = blocked(seq, gtid, cpu);
    if let Message::TaskBlocked(m) = &mut r.msg {
        m.runtime = runtime;
    }
    r
}

/// `TASK_PRIORITY_CHANGED` to `nice`.
fn renice(seq: u32, gtid: i64, nice: i32) -> Received {
    let gtid = gtid as u64;
    let m = abi::GhostMsgPayloadTaskPriorityChanged { gtid, nice };
    Received {
        seqnum: seq,
        msg: Message::TaskPriorityChanged(m),
    }
}

const MS: u64 = 1_000_000;

#[test]
fn shinjuku_preempts_after_its_slice_and_sends_the_task_to_the_back() {
    let slice = shinjuku::DEFAULT_SLICE;
    assert_eq!(Shinjuku::default().slice(), Some(Duration::from_micros(30)));
    let central = Model::Centralized { global_cpu: 0 };
    let mut r = Run::new(Shinjuku::default(), central, &[0, 1, 2], None);
    r.feed(0, &[new(1, A, true), new(1, B, true), new(1, C, true)]);
    assert_eq!(r.plan(0), vec![(1, A), (2, B)]);
    r.commit(0, 1, A, TxnResult::Complete);
    r.commit(0, 2, B, TxnResult::Complete);
    // Within the slice: nothing, but the agent looks again soon.
    r.now += Duration::from_micros(10);
    assert_eq!(r.plan(0), vec![]);
    assert!(r.polls(0));
    // Both slices are over, one task waits: it replaces A (CPU 1 first).
    r.now += slice;
    assert_eq!(r.plan(0), vec![(1, C)]);
    r.commit(0, 1, C, TxnResult::Complete);
    // A, replaced, goes behind D, which arrived first.
    r.feed(0, &[new(1, D, true), preempt(2, A, 1)]);
    assert_eq!(r.s.policy().run_queue(), vec![D, A]);
    assert_eq!(r.plan(0), vec![(2, D)]);
    r.commit(0, 2, D, TxnResult::Complete);
    r.feed(0, &[preempt(2, B, 2)]);
    assert_eq!(r.s.policy().run_queue(), vec![A, B]);
    // Alone on the CPUs with nobody waiting, tasks keep running.
    r.feed(0, &[dead(3, A, 1), dead(3, B, 1)]);
    r.now += slice * 10;
    assert_eq!(r.plan(0), vec![]);
    assert!(!r.polls(0));
}

/// The VM test's load (`policy_shinjuku_preempts_by_slice`): three
/// spinners that never block on one task CPU. Nothing but the clock tells
/// the global agent that a slice is over: while one runs and others wait it
/// keeps polling, and each time a slice ends it commits the oldest waiter,
/// which takes the CPU from the spinner (one `TASK_PREEMPT` per slice). A
/// spinner left alone is never replaced, and the agent stops polling.
#[test]
fn shinjuku_rotates_spinners_on_one_cpu_by_the_clock_alone() {
    let slice = Duration::from_millis(1);
    let central = Model::Centralized { global_cpu: 0 };
    let mut r = Run::new(Shinjuku::new(slice), central, &[0, 1], None);
    r.feed(0, &[new(1, A, true), new(1, B, true), new(1, C, true)]);
    assert_eq!(r.plan(0), vec![(1, A)]);
    r.commit(0, 1, A, TxnResult::Complete);
    let mut on = A;
    let mut seq = 2;
    for want in [B, C, A, B, C, A] {
        // Within the slice: nobody is replaced, but the agent polls.
        r.now += slice / 2;
        assert_eq!(r.plan(0), vec![], "{on:#x} within its slice");
        assert!(r.polls(0), "tasks wait while {on:#x} runs: look again");
        // The slice is over: the oldest waiter replaces the spinner.
        r.now += slice / 2;
        assert_eq!(r.plan(0), vec![(1, want)], "{on:#x}'s slice is over");
        r.commit(0, 1, want, TxnResult::Complete);
        r.feed(0, &[preempt(seq, on, 1)]);
        // Replaced at the end of its slice, it goes to the back.
        assert_eq!(r.s.policy().run_queue().last(), Some(&on));
        on = want;
        seq += 1;
    }
    // The other two exit: the one left keeps its CPU however long it runs.
    let others: Vec<i64> = r.s.policy().run_queue();
    assert_eq!(others.len(), 2);
    for g in others {
        r.feed(0, &[dead(seq, g, 1)]);
    }
    r.now += slice * 100;
    assert_eq!(r.plan(0), vec![]);
    assert!(!r.polls(0), "{on:#x} alone: nothing to look again for");
    assert_eq!(r.s.current(1), Some(on));
}

#[test]
fn shinjuku_puts_a_task_preempted_before_its_slice_first() {
    let central = Model::Centralized { global_cpu: 0 };
    let slice = Duration::from_micros(50);
    let mut r = Run::new(Shinjuku::new(slice), central, &[0, 1], None);
    r.feed(0, &[new(1, A, true), new(1, B, true)]);
    assert_eq!(r.plan(0), vec![(1, A)]);
    r.commit(0, 1, A, TxnResult::Complete);
    // Another class takes CPU 1 from A (A is still its current task): A
    // is owed the rest of its slice, and goes before B.
    r.feed(0, &[preempt(2, A, 1)]);
    assert_eq!(r.s.policy().run_queue(), vec![A, B]);
    assert_eq!(r.plan(0), vec![(1, A)]);
    r.commit(0, 1, A, TxnResult::Complete);
    // Its slice over, B replaces it before A ran (TASK_PREEMPT with
    // `was_latched`): A never ran, first again.
    r.now += slice;
    assert_eq!(r.plan(0), vec![(1, B)]);
    r.commit(0, 1, B, TxnResult::Complete);
    r.feed(0, &[new(1, C, true), latch_dropped(3, A, 1)]);
    assert_eq!(r.s.policy().run_queue(), vec![A, C]);
    // A stale commit keeps the order; a dead task leaves no trace.
    r.now += slice;
    assert_eq!(r.plan(0), vec![(1, A)]);
    r.commit(0, 1, A, TxnResult::TargetStale);
    r.feed(0, &[dead(4, A, 1)]);
    assert_eq!(r.s.policy().run_queue(), vec![C]);
}

#[test]
fn sol_offers_a_cpu_only_tasks_whose_commit_can_succeed() {
    let sw = Arc::new(SwTable::new(vec![region(0, 4096)]));
    let central = Model::Centralized { global_cpu: 0 };
    let mut r = Run::new(Sol::new(None), central, &[0, 1, 2, 3], Some(sw.clone()));
    let reg = &sw.regions()[0];
    let inuse = abi::GHOST_SW_F_INUSE;
    // A has news on the way (barrier 2, last message read 1); B is still
    // on its old CPU; C is fine.
    set(reg, A as u32, A, 2, inuse);
    set(reg, B as u32, B, 1, inuse | abi::GHOST_SW_TASK_ONCPU);
    set(reg, C as u32, C, 1, inuse);
    r.feed(0, &[new(1, A, true), new(1, B, true), new(1, C, true)]);
    // Every CPU that can be filled is: C, past the two that would fail.
    assert_eq!(r.plan(0), vec![(1, C)]);
    assert!(r.polls(0), "B's switch off its CPU ends without a message");
    // The news is read, B is off: both go.
    r.feed(0, &[wakeup(2, D)]);
    r.feed(0, &[yielded(2, A, 1)]);
    set(reg, B as u32, B, 1, inuse);
    assert_eq!(r.plan(0), vec![(1, A), (2, B), (3, C)]);
    assert_eq!(r.s.stats.plan_rejected, 0);
    assert_eq!(Sol::new(None).slice(), None);
}

#[test]
fn sol_puts_an_involuntarily_preempted_task_first() {
    let central = Model::Centralized { global_cpu: 0 };
    let slice = Duration::from_millis(1);
    let mut r = Run::new(Sol::new(Some(slice)), central, &[0, 1], None);
    r.feed(0, &[new(1, A, true), new(1, B, true)]);
    assert_eq!(r.plan(0), vec![(1, A)]);
    r.commit(0, 1, A, TxnResult::Complete);
    // Another class preempts A: it goes before B.
    r.feed(0, &[preempt(2, A, 1)]);
    assert_eq!(r.s.policy().run_queue(), vec![A, B]);
    assert_eq!(r.plan(0), vec![(1, A)]);
    r.commit(0, 1, A, TxnResult::Complete);
    // Its slice over, B replaces it: A, replaced, goes to the back.
    r.now += slice;
    assert_eq!(r.plan(0), vec![(1, B)]);
    r.commit(0, 1, B, TxnResult::Complete);
    r.feed(0, &[new(1, C, true), preempt(3, A, 1)]);
    assert_eq!(r.s.policy().run_queue(), vec![C, A]);
}

#[test]
fn fair_runs_the_least_virtual_runtime_weighted_by_nice() {
    assert_eq!(
        (fair::weight(0), fair::weight(-20), fair::weight(19)),
        (1024, 88761, 15)
    );
    assert_eq!((fair::weight(-99), fair::weight(99)), (88761, 15));
    let mut r = Run::new(Fair::new(), Model::PerCpu, &[1], None);
    // A at nice 0, B at nice 5 (weight 335), having run 7 ms before.
    r.feed(1, &[new_nice(1, A, 0, 0), new_nice(1, B, 5, 7 * MS)]);
    assert_eq!(r.s.policy().run_queue(1), vec![(A, 0), (B, 0)]);
    assert_eq!(r.plan(1), vec![(1, A)]);
    r.commit(1, 1, A, TxnResult::Complete);
    // A runs 3 ms: 3 ms of virtual time. B runs 1 ms: 1024/335 as much.
    r.feed(1, &[preempt_at(2, A, 1, 3 * MS)]);
    assert_eq!(r.s.policy().vruntime(A), 3 * MS);
    assert_eq!(r.plan(1), vec![(1, B)]);
    r.commit(1, 1, B, TxnResult::Complete);
    r.feed(1, &[preempt_at(2, B, 1, 8 * MS)]);
    assert_eq!(r.s.policy().vruntime(B), MS * 1024 / 335);
    assert_eq!(r.plan(1), vec![(1, A)]);
    r.commit(1, 1, A, TxnResult::Complete);
    // B reniced to -5 (weight 3121): its lead over the floor (A's 3 ms,
    // picked last) shrinks by 335/3121, and its next 10 ms count for
    // 3.28 ms.
    r.feed(1, &[renice(3, B, -5), preempt_at(3, A, 1, 4 * MS)]);
    assert_eq!(r.s.policy().vruntime(A), 4 * MS);
    assert_eq!(r.plan(1), vec![(1, B)]);
    r.commit(1, 1, B, TxnResult::Complete);
    r.feed(1, &[preempt_at(4, B, 1, 18 * MS)]);
    let vb = 3 * MS + (MS * 1024 / 335 - 3 * MS) * 335 / 3121 + 10 * MS * 1024 / 3121;
    assert_eq!(r.s.policy().vruntime(B), vb);
    assert_eq!(r.s.policy().run_queue(1), vec![(A, 4 * MS), (B, vb)]);
}

#[test]
fn fair_credits_sleepers_little_and_starts_new_tasks_at_the_floor() {
    let mut r = Run::new(Fair::new(), Model::PerCpu, &[1], None);
    r.feed(1, &[new_nice(1, A, 0, 0), new_nice(1, B, 0, 0)]);
    assert_eq!(r.plan(1), vec![(1, A)]);
    r.commit(1, 1, A, TxnResult::Complete);
    r.feed(1, &[blocked_at(2, A, 1, MS)]);
    // B runs alone for 100 ms; the floor follows it.
    for i in 1..=10u32 {
        assert_eq!(r.plan(1), vec![(1, B)]);
        r.commit(1, 1, B, TxnResult::Complete);
        r.feed(1, &[preempt_at(1 + i, B, 1, u64::from(i) * 10 * MS)]);
    }
    assert_eq!(r.plan(1), vec![(1, B)]);
    // A wakes: 3 ms of credit below the floor (B's 100 ms), not 99 ms; C,
    // new, starts at the floor.
    r.feed(1, &[wakeup(3, A), new(1, C, true)]);
    assert_eq!(r.s.policy().vruntime(A), 97 * MS);
    assert_eq!(r.s.policy().vruntime(C), 100 * MS);
}

#[test]
fn fair_places_tasks_on_idle_cpus_and_idle_cpus_steal() {
    let mut r = Run::new(Fair::new(), Model::PerCpu, &[1, 2], None);
    // A takes idle CPU 1; B finds CPU 1 busy (A waits there) and takes
    // idle CPU 2; C finds neither idle and joins the shorter queue.
    r.feed(1, &[new(1, A, true), new(1, B, true), new(1, C, true)]);
    assert_eq!(
        [A, B, C].map(|g| r.s.task(g).unwrap().home),
        [Some(1), Some(2), Some(1)]
    );
    assert_eq!(r.k.assoc, vec![(B, 2, 1)]);
    assert_eq!(r.plan(1), vec![(1, A)]);
    assert_eq!(r.plan(2), vec![(2, B)]);
    // CPU 2's agent cannot take A or C while agent 1 commits A.
    r.commit(2, 2, B, TxnResult::Complete);
    r.commit(1, 1, A, TxnResult::Complete);
    // B blocks: CPU 2 has nothing of its own and steals C, with its
    // messages.
    r.feed(2, &[blocked(2, B, 2)]);
    assert_eq!(r.plan(2), vec![(2, C)]);
    assert_eq!(r.k.assoc.last(), Some(&(C, 2, 1)));
    assert_eq!(r.s.policy().run_queue(2), vec![(C, 0)]);
    assert_eq!(r.s.policy().run_queue(1), vec![]);
    r.commit(2, 2, C, TxnResult::Complete);
    // B wakes: its home (2) is busy, CPU 1 too: it waits at home.
    r.feed(2, &[wakeup(3, B)]);
    assert_eq!(r.s.task(B).unwrap().home, Some(2));
    // A blocks: CPU 1 is idle, and steals B.
    r.feed(1, &[blocked(2, A, 1)]);
    assert_eq!(r.plan(1), vec![(1, B)]);
    // A pinned task is never stolen.
    r.k.allow(D, &[2]);
    r.feed(2, &[new(1, D, true)]);
    r.commit(1, 1, B, TxnResult::Complete);
    r.feed(1, &[blocked(4, B, 1)]);
    assert_eq!(r.plan(1), vec![]);
    assert_eq!(r.s.policy().run_queue(2), vec![(D, 0)]);
}

/// A gtid for thread `tid` under a 41-bit seqnum layout (pid_max_max
/// 4194304).
fn gtid_of(tid: i64) -> i64 {
    (tid << 41) | 1
}

fn table(slots: u32) -> DeadlineTable {
    let t = DeadlineTable::from_mapping(Mapping::anonymous(4096).unwrap(), slots);
    t.header(slots);
    t
}

#[test]
fn edf_table_declarations_are_validated() {
    let us = Duration::from_micros;
    let ok = |d, p| Deadline::validate(d, p);
    assert_eq!(
        ok(5_000, 0),
        Ok(Deadline {
            relative: us(5),
            period: None
        })
    );
    // No deadline: the period is the deadline.
    assert_eq!(
        ok(0, 2_000_000),
        Ok(Deadline {
            relative: us(2000),
            period: Some(us(2000))
        })
    );
    for (d, p) in [
        (0, 0),
        (999, 0),
        (10_000_000_001, 0),
        (5_000, 11_000_000_000),
        (0, 500),
    ] {
        assert_eq!(ok(d, p), Err(Unusable::OutOfRange), "{d} {p}");
    }
    let t = table(4);
    assert_eq!(t.lookup(7), None);
    assert!(t.declare(7, Some((us(300), Duration::ZERO))));
    assert!(t.declare(8, Some((us(1), us(50)))));
    assert_eq!(
        t.lookup(7),
        Some(Ok(Deadline {
            relative: us(300),
            period: None
        }))
    );
    assert_eq!(t.lookup(8).unwrap().unwrap().period, Some(us(50)));
    // A second declaration replaces the first; withdrawing frees the slot.
    assert!(t.declare(7, Some((us(40), Duration::ZERO))));
    assert_eq!(t.lookup(7).unwrap().unwrap().relative, us(40));
    assert!(t.declare(7, None));
    assert_eq!(t.lookup(7), None);
    // Out of range, or caught mid-write (odd sequence count): unusable.
    assert!(t.declare(9, Some((Duration::from_secs(60), Duration::ZERO))));
    assert_eq!(t.lookup(9), Some(Err(Unusable::OutOfRange)));
    // Slot 1 is 8's: an odd count is a write in progress.
    let seq_of_8 = 64 + 32;
    let seq = t.mapping().read_u32(seq_of_8).unwrap();
    assert!(t.mapping().write_u32(seq_of_8, seq + 1));
    assert_eq!(t.lookup(8), Some(Err(Unusable::Writing)));
    assert!(t.mapping().write_u32(seq_of_8, seq + 2));
    assert!(t.lookup(8).unwrap().is_ok());
    // A full table refuses a new thread.
    let one = table(1);
    assert!(one.declare(8, Some((us(10), Duration::ZERO))));
    assert!(!one.declare(9, Some((us(10), Duration::ZERO))), "full");
    assert!(one.declare(9, None), "nothing to withdraw");
    // Special and negative thread ids have no slot.
    assert_eq!(t.lookup(0), None);
    assert_eq!(t.lookup(-3), None);
}

#[test]
fn edf_table_headers_are_checked() {
    let map = || Mapping::anonymous(4096).unwrap();
    assert!(DeadlineTable::parse(map()).unwrap_err().contains("magic"));
    let t = table(4);
    let m = map();
    // Copy a good header, then spoil it field by field.
    let put = |m: &Mapping, magic: u64, version: u32, slots: u32| {
        m.write_u32(0, magic as u32);
        m.write_u32(4, (magic >> 32) as u32);
        m.write_u32(8, version);
        m.write_u32(12, slots);
    };
    let magic = super::edf::table::TABLE_MAGIC;
    put(&m, magic, 1, 4);
    let ok = DeadlineTable::parse(m).unwrap();
    assert_eq!(ok.slots(), 4);
    for (v, slots, what) in [
        (2, 4, "version"),
        (1, 0, "fit"),
        (1, 200, "fit"),
        (1, 70000, "fit"),
    ] {
        let m = map();
        put(&m, magic, v, slots);
        let e = DeadlineTable::parse(m).err().unwrap();
        assert!(e.contains(what), "{v} {slots}: {e}");
    }
    drop(t);
}

#[test]
fn edf_table_is_published_sealed_and_opened_by_workloads() {
    let dir = std::env::temp_dir().join(format!("ghost-edf-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    let path = dir.join("table");
    assert!(DeadlineTable::create(&path, 0).is_err());
    let agent = DeadlineTable::create(&path, 8).unwrap();
    assert!(
        DeadlineTable::create(&path, 8).is_err(),
        "published already"
    );
    let workload = DeadlineTable::open(&path).unwrap();
    assert_eq!(workload.slots(), 8);
    let us = Duration::from_micros;
    assert!(workload.declare(42, Some((us(250), Duration::ZERO))));
    assert_eq!(agent.lookup(42).unwrap().unwrap().relative, us(250));
    // The memfd cannot shrink: a workload cannot make the agent fault.
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    assert!(f.set_len(16).is_err());
    drop(workload);
    drop(agent);
    assert!(
        path.symlink_metadata().is_err(),
        "the link goes with the agent"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn edf_runs_the_earliest_deadline_and_preempts_for_an_earlier_one() {
    let us = Duration::from_micros;
    let t = table(8);
    let (n, t1, t2, t3) = (gtid_of(100), gtid_of(101), gtid_of(102), gtid_of(103));
    assert!(t.declare(101, Some((us(5000), Duration::ZERO))));
    assert!(t.declare(102, Some((us(1000), Duration::ZERO))));
    assert!(t.declare(103, Some((us(200), Duration::ZERO))));
    let layout = Layout::parse("4194304");
    let g = us(100);
    let central = Model::Centralized { global_cpu: 0 };
    let mut r = Run::new(Edf::new(Some(t), layout, g), central, &[0, 1, 2], None);
    // N (no deadline) came first; T2's deadline is the earliest.
    r.feed(0, &[new(1, n, true), new(1, t1, true), new(1, t2, true)]);
    assert_eq!(r.s.policy().deadline(t2), Some(r.now + us(1000)));
    assert_eq!(r.s.policy().deadline(n), None);
    assert_eq!(r.plan(0), vec![(1, t2), (2, t1)]);
    r.commit(0, 1, t2, TxnResult::Complete);
    r.commit(0, 2, t1, TxnResult::Complete);
    // N never preempts a task with a deadline.
    r.now += g;
    assert_eq!(r.plan(0), vec![]);
    // T3 (due in 200 us) takes the CPU of the latest deadline, T1's, once
    // T1 has run the granularity.
    r.feed(0, &[new(1, t3, true)]);
    assert_eq!(r.plan(0), vec![(2, t3)]);
    r.commit(0, 2, t3, TxnResult::Complete);
    r.feed(0, &[preempt(2, t1, 2)]);
    // T2 blocks: T1 (deadline kept) goes before N.
    r.feed(0, &[blocked(2, t2, 1)]);
    assert_eq!(r.plan(0), vec![(1, t1)]);
    r.commit(0, 1, t1, TxnResult::Complete);
    // T2 wakes 10 ms later: a new deadline, from the wakeup.
    r.now += Duration::from_millis(10);
    r.feed(0, &[wakeup(3, t2)]);
    assert_eq!(r.s.policy().deadline(t2), Some(r.now + us(1000)));
    // A withdrawn deadline: FIFO behind the others from the next wakeup.
    r.feed(0, &[dead(3, t3, 2)]);
    assert_eq!(r.plan(0), vec![(2, t2)]);
}

#[test]
fn edf_without_a_table_is_first_come_first_served() {
    let central = Model::Centralized { global_cpu: 0 };
    let mut r = Run::new(
        Edf::new(None, None, Duration::from_micros(100)),
        central,
        &[0, 1],
        None,
    );
    r.feed(0, &[new(1, A, true), new(1, B, true)]);
    assert_eq!(r.plan(0), vec![(1, A)]);
    r.commit(0, 1, A, TxnResult::Complete);
    r.now += Duration::from_millis(1);
    assert_eq!(r.plan(0), vec![]);
    r.feed(0, &[blocked(2, A, 1)]);
    assert_eq!(r.plan(0), vec![(1, B)]);
}

/// The VM load of `policy_fair_divides_by_nice`: two spinners on one CPU,
/// the agent woken at every 4 ms tick (the running one preempted:
/// `TASK_PREEMPT` with its runtime). At nice 0 and 10 the CPU divides by
/// weight; one of B's runs takes 200 ms (under TCG a stalled vCPU counts
/// as the running task's CPU time), a lead of 1.86 s of virtual time at
/// weight 110. Then B goes back to nice 0: its lead must shrink with its
/// weight (110/1024, as CFS reweights), or A alone would run for 1.86 s
/// (the VM test saw 2014 ms vs 0 ms).
#[test]
fn fair_divides_one_cpu_by_weight_across_a_renice() {
    let tick = 4 * MS;
    let mut r = Run::new(Fair::new(), Model::PerCpu, &[1], None);
    r.feed(1, &[new_nice(1, A, 0, 0), new_nice(1, B, 0, 0)]);
    let mut seq = 2;
    r.feed(1, &[renice(seq, B, 10)]);
    let mut total = [0u64; 2];
    // Runs `ticks` rounds of a tick each; then, with `long`, more until
    // B has run once more for `long` ns. Returns the CPU time of A and B.
    let mut run = |r: &mut Run<Fair>, ticks: u32, long: Option<u64>| {
        let mut got = [0u64; 2];
        let mut n = 0;
        loop {
            let p = r.plan(1);
            assert_eq!(p.len(), 1, "one spinner runs");
            let g = p[0].1;
            let i = usize::from(g == B);
            r.commit(1, 1, g, TxnResult::Complete);
            let ran = match long.filter(|_| g == B && n >= ticks) {
                Some(l) => l,
                None => tick,
            };
            r.now += Duration::from_nanos(ran);
            total[i] += ran;
            got[i] += ran;
            r.feed(1, &[preempt_at(seq, g, 1, total[i])]);
            seq += 1;
            n += 1;
            if n >= ticks && (long.is_none() || ran != tick) {
                return (got[0], got[1]);
            }
        }
    };
    let (a, b) = run(&mut r, 500, Some(200 * MS));
    assert!(b > 0 && a >= 3 * b, "nice 0 vs 10: {a} vs {b} ns");
    r.feed(1, &[renice(1000, B, 0)]);
    let (a, b) = run(&mut r, 500, None);
    assert!(
        b > 0 && a <= 2 * b && b <= 2 * a,
        "both at nice 0: {} ms vs {} ms",
        a / MS,
        b / MS
    );
}
