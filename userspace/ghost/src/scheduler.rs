//! The kernel-free core of the agent runtime: the task table, the
//! dispatch of messages to a [`Policy`], plan checking, and the outcome of
//! commits.
//!
//! It touches the kernel only through the small [`Kernel`] trait (queue
//! association, status-word frees, task affinities), so that policies can
//! be tested on the host against recorded message sequences.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;
use std::time::Instant;

use ghost_abi as abi;
use ghost_abi::GhostSwInfo;

use crate::policy::{Ctx, Plan, Policy, Requests, Task};
use crate::queue::{Message, Received};
use crate::stats::Stats;
use crate::sw::SwTable;
use crate::sys::Errno;
use crate::txn::{CpuMask, TxnResult};

/// The kernel operations message dispatch needs.
pub trait Kernel {
    /// Sends task `gtid`'s messages to the queue of `cpu`'s agent from now
    /// on, if `barrier` is still its barrier (`GHOST_IOC_ASSOC_QUEUE`).
    fn assoc_queue(&mut self, gtid: i64, cpu: usize, barrier: u32) -> Result<i32, Errno>;
    /// Frees a status word (`GHOST_IOC_SW_FREE`).
    fn sw_free(&mut self, sw: GhostSwInfo) -> Result<(), Errno>;
    /// The CPUs task `gtid` may run on (`sched_getaffinity` on the thread
    /// its gtid names); `ESRCH` if it is gone.
    fn task_affinity(&mut self, gtid: i64) -> Result<CpuMask, Errno>;
}

/// How the agents of an enclave are organised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Model {
    /// One agent per CPU schedules its own CPU from its own queue.
    PerCpu,
    /// One global agent on `global_cpu` schedules every other CPU from one
    /// queue; the other agents only give their CPU away.
    Centralized {
        /// The global agent's CPU.
        global_cpu: usize,
    },
}

/// A policy with the runtime's task table.
pub struct Scheduler<P> {
    policy: P,
    tasks: HashMap<i64, Task>,
    /// The CPUs tasks run on ([`Ctx::cpus`]).
    cpus: Vec<usize>,
    per_cpu: bool,
    sw: Option<Arc<SwTable>>,
    req: Requests,
    /// What dispatch counted (unknown tasks, queue moves, frees, ...).
    pub stats: Stats,
}

impl<P: Policy> Scheduler<P> {
    /// A scheduler for `policy` on the agent CPUs `agent_cpus` organised as
    /// `model`. `sw` gives policies status words ([`Ctx::status_word`]).
    pub fn new(policy: P, model: &Model, agent_cpus: &[usize], sw: Option<Arc<SwTable>>) -> Self {
        let mut cpus: Vec<usize> = agent_cpus.to_vec();
        cpus.sort_unstable();
        cpus.dedup();
        if let Model::Centralized { global_cpu } = model {
            cpus.retain(|c| c != global_cpu);
        }
        Self {
            policy,
            tasks: HashMap::new(),
            cpus,
            per_cpu: *model == Model::PerCpu,
            sw,
            req: Requests::default(),
            stats: Stats::default(),
        }
    }

    /// The policy.
    pub fn policy(&self) -> &P {
        &self.policy
    }

    /// The policy, mutably.
    pub fn policy_mut(&mut self) -> &mut P {
        &mut self.policy
    }

    /// The task `gtid`.
    pub fn task(&self, gtid: i64) -> Option<&Task> {
        self.tasks.get(&gtid)
    }

    /// The number of tasks known.
    pub fn nr_tasks(&self) -> usize {
        self.tasks.len()
    }

    /// The CPUs tasks run on.
    pub fn cpus(&self) -> &[usize] {
        &self.cpus
    }

    /// Runs `f` on the policy with a context for the agent of `cpu`.
    fn call<R>(
        &mut self,
        cpu: usize,
        now: Instant,
        f: impl FnOnce(&mut P, &mut Ctx<'_>) -> R,
    ) -> R {
        let Self {
            policy,
            tasks,
            cpus,
            sw,
            req,
            ..
        } = self;
        let mut ctx = Ctx {
            cpu,
            now,
            cpus,
            tasks,
            sw: sw.as_deref(),
            req,
        };
        f(policy, &mut ctx)
    }

    /// Hands a message read by the agent of `cpu` (from its queue) to the
    /// policy.
    pub fn deliver(&mut self, k: &mut dyn Kernel, cpu: usize, r: &Received, now: Instant) {
        let msg = &r.msg;
        if let Message::Malformed { .. } = msg {
            self.stats.malformed += 1;
            return;
        }
        match msg.gtid() {
            Some(gtid) => self.task_message(k, cpu, r.seqnum, gtid, msg, now),
            None => self.call(cpu, now, |p, ctx| match msg {
                Message::CpuTick(m) => p.cpu_tick(ctx, m),
                Message::CpuTimerExpired(m) => p.cpu_timer_expired(ctx, m),
                Message::CpuNotIdle(m) => p.cpu_not_idle(ctx, m),
                Message::CpuAvailable(m) => p.cpu_available(ctx, m),
                Message::CpuBusy(m) => p.cpu_busy(ctx, m),
                Message::CpuAgentBlocked(m) => p.cpu_agent_blocked(ctx, m),
                Message::CpuAgentWakeup(m) => p.cpu_agent_wakeup(ctx, m),
                _ => {}
            }),
        }
        self.apply_homes(k);
    }

    fn task_message(
        &mut self,
        k: &mut dyn Kernel,
        cpu: usize,
        seqnum: u32,
        gtid: i64,
        msg: &Message,
        now: Instant,
    ) {
        // Per-CPU model: the message came from `cpu`'s queue, so that is
        // where the task's messages go now.
        let queue = self.per_cpu.then_some(cpu);
        let task = if let Message::TaskNew(m) = msg {
            // Announced again (`discover tasks`): a failed read keeps what
            // was known.
            let known = self.tasks.get(&gtid).map(|t| t.affinity);
            let affinity = self
                .read_affinity(k, gtid)
                .or(known)
                .unwrap_or_else(CpuMask::full);
            let t = Task {
                gtid,
                seqnum,
                sw: m.sw_info,
                home: None,
                queue,
                affinity,
            };
            self.tasks.insert(gtid, t);
            t
        } else {
            let affinity = match msg {
                Message::TaskAffinityChanged(_) if self.tasks.contains_key(&gtid) => {
                    self.read_affinity(k, gtid)
                }
                _ => None,
            };
            let Some(t) = self.tasks.get_mut(&gtid) else {
                self.stats.unknown_task += 1;
                return;
            };
            t.seqnum = seqnum;
            t.queue = queue.or(t.queue);
            if let Some(a) = affinity {
                t.affinity = a;
            }
            *t
        };
        self.call(cpu, now, |p, ctx| match msg {
            Message::TaskNew(m) => p.task_new(ctx, &task, m),
            Message::TaskWakeup(m) => p.task_wakeup(ctx, &task, m),
            Message::TaskBlocked(m) => p.task_blocked(ctx, &task, m),
            Message::TaskPreempt(m) => p.task_preempt(ctx, &task, m),
            Message::TaskYield(m) => p.task_yield(ctx, &task, m),
            Message::TaskDead(m) => p.task_dead(ctx, &task, m),
            Message::TaskDeparted(m) => p.task_departed(ctx, &task, m),
            Message::TaskSwitchto(m) => p.task_switchto(ctx, &task, m),
            Message::TaskAffinityChanged(m) => p.task_affinity_changed(ctx, &task, m),
            Message::TaskPriorityChanged(m) => p.task_priority_changed(ctx, &task, m),
            Message::TaskOnCpu(m) => p.task_on_cpu(ctx, &task, m),
            Message::TaskLatchFailure(m) => p.task_latch_failure(ctx, &task, m),
            _ => {}
        });
        if matches!(msg, Message::TaskDead(_) | Message::TaskDeparted(_)) {
            // The kernel set CANFREE before it sent the message.
            self.tasks.remove(&gtid);
            match k.sw_free(task.sw) {
                Ok(()) => self.stats.sw_freed += 1,
                Err(_) => self.stats.sw_free_failed += 1,
            }
        } else {
            // A move refused earlier because of this very message can go
            // through now.
            self.route(k, gtid);
        }
    }

    /// Task `gtid`'s allowed CPUs as the kernel has them now; `None` (and
    /// counted) if they cannot be read: the task is gone, its `TASK_DEAD`
    /// on the way.
    fn read_affinity(&mut self, k: &mut dyn Kernel, gtid: i64) -> Option<CpuMask> {
        let r = k.task_affinity(gtid).ok();
        self.stats.affinity_unread += u64::from(r.is_none());
        r
    }

    /// Applies the homes the callbacks set, and moves those tasks' queues.
    fn apply_homes(&mut self, k: &mut dyn Kernel) {
        let homes = std::mem::take(&mut self.req.homes);
        for &(gtid, cpu) in &homes {
            match self.tasks.get_mut(&gtid) {
                Some(t) if self.cpus.contains(&cpu) => t.home = Some(cpu),
                _ => {
                    self.stats.plan_rejected += 1;
                    continue;
                }
            }
            self.route(k, gtid);
        }
        // Keep the vector's memory for the next round.
        self.req.homes = homes;
        self.req.homes.clear();
    }

    /// Per-CPU model: moves `gtid`'s messages to its home CPU's queue if
    /// they go elsewhere. A refusal because the barrier moved is retried
    /// when the message that moved it is delivered.
    fn route(&mut self, k: &mut dyn Kernel, gtid: i64) {
        if !self.per_cpu {
            return;
        }
        let Some(t) = self.tasks.get_mut(&gtid) else {
            return;
        };
        let Some(home) = t.home else {
            return;
        };
        if t.queue == Some(home) {
            return;
        }
        match k.assoc_queue(gtid, home, t.seqnum) {
            Ok(_) => {
                t.queue = Some(home);
                self.stats.assoc += 1;
            }
            Err(Errno(libc::ESTALE)) => self.stats.assoc_stale += 1,
            // Gone: its TASK_DEAD is on the way.
            Err(Errno(libc::ENOENT)) => {}
            Err(_) => self.stats.assoc_failed += 1,
        }
    }

    /// The pick step for the agent of `cpu`: asks the policy, then keeps
    /// only entries this agent may commit (its own CPU in the per-CPU
    /// model, any task CPU for the global agent; one per CPU; known tasks
    /// or idle) and fills in their task barriers.
    pub fn schedule(&mut self, k: &mut dyn Kernel, cpu: usize, now: Instant, plan: &mut Plan) {
        plan.clear();
        self.call(cpu, now, |p, ctx| p.schedule(ctx, plan));
        self.apply_homes(k);
        let mut seen = CpuMask::new();
        let (per_cpu, cpus, tasks) = (self.per_cpu, &self.cpus, &self.tasks);
        let before = plan.entries().len();
        plan.entries_mut().retain_mut(|e| {
            let cpu_ok = if per_cpu {
                e.cpu == cpu
            } else {
                cpus.contains(&e.cpu)
            };
            let barrier = if e.gtid == abi::GHOST_IDLE_GTID {
                Some(0)
            } else {
                tasks.get(&e.gtid).map(|t| t.seqnum)
            };
            match barrier {
                Some(b) if cpu_ok && !seen.contains(e.cpu) && seen.set(e.cpu) => {
                    e.task_barrier = b;
                    true
                }
                _ => false,
            }
        });
        self.stats.plan_rejected += (before - plan.entries().len()) as u64;
    }

    /// Reports the outcome of the transaction that ran `gtid` on `target`
    /// to the policy (called by the agent of `cpu`).
    pub fn committed(
        &mut self,
        k: &mut dyn Kernel,
        cpu: usize,
        target: usize,
        gtid: i64,
        result: TxnResult,
        now: Instant,
    ) {
        self.call(cpu, now, |p, ctx| p.committed(ctx, target, gtid, result));
        self.apply_homes(k);
    }

    /// The agents the callbacks asked to ping, minus `cpu` (the caller);
    /// the request list is emptied.
    pub fn take_pings(&mut self, cpu: usize) -> CpuMask {
        let pings = std::mem::take(&mut self.req.pings);
        let mut out = CpuMask::new();
        for c in pings.iter().filter(|&c| c != cpu) {
            out.set(c);
        }
        out
    }

    /// The policy's view of its run queues, and the task count.
    pub fn dump(&self) -> String {
        let mut s = format!("{} tasks\n", self.tasks.len());
        self.policy.dump(&mut s);
        // What the kernel says of each task (its status word), to compare
        // with the policy's view: `seq` is the last message's seqnum,
        // `barrier` the word's; flags are GHOST_SW_* (0x1 INUSE, 0x2
        // CANFREE, 0x4 ALLOCATED, 0x10000 TASK_ONCPU, 0x20000
        // TASK_RUNNABLE).
        if let Some(sw) = &self.sw {
            let mut gtids: Vec<&i64> = self.tasks.keys().collect();
            gtids.sort_unstable();
            s.push_str("status words (gtid seq/barrier flags):");
            for g in gtids {
                let t = &self.tasks[g];
                match sw.get(t.sw) {
                    Some(w) => {
                        let _ = write!(s, " {g} {}/{} {:#x};", t.seqnum, w.barrier(), w.flags());
                    }
                    None => {
                        let _ = write!(s, " {g} {} unmapped;", t.seqnum);
                    }
                }
            }
            s.push('\n');
        }
        s
    }
}

/// Test helpers: a recording [`Kernel`] and message builders.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// A [`Kernel`] that records what it was asked and answers from a
    /// script (`stale`: gtids whose next association is refused;
    /// `affinity`: the allowed CPUs of tasks, `ESRCH` for the others).
    #[derive(Default)]
    pub struct Recorder {
        pub assoc: Vec<(i64, usize, u32)>,
        pub freed: Vec<GhostSwInfo>,
        pub stale: Vec<i64>,
        pub affinity: HashMap<i64, Vec<usize>>,
        pub affinity_reads: Vec<i64>,
    }

    impl Recorder {
        /// Task `gtid` may run on `cpus` from now on.
        pub fn allow(&mut self, gtid: i64, cpus: &[usize]) {
            self.affinity.insert(gtid, cpus.to_vec());
        }
    }

    impl Kernel for Recorder {
        fn assoc_queue(&mut self, gtid: i64, cpu: usize, barrier: u32) -> Result<i32, Errno> {
            if let Some(i) = self.stale.iter().position(|&g| g == gtid) {
                self.stale.remove(i);
                return Err(Errno(libc::ESTALE));
            }
            self.assoc.push((gtid, cpu, barrier));
            Ok(0)
        }

        fn sw_free(&mut self, sw: GhostSwInfo) -> Result<(), Errno> {
            self.freed.push(sw);
            Ok(())
        }

        fn task_affinity(&mut self, gtid: i64) -> Result<CpuMask, Errno> {
            self.affinity_reads.push(gtid);
            let cpus = self.affinity.get(&gtid).ok_or(Errno(libc::ESRCH))?;
            let mut m = CpuMask::new();
            for &c in cpus {
                m.set(c);
            }
            Ok(m)
        }
    }

    fn rcv(seqnum: u32, msg: Message) -> Received {
        Received { seqnum, msg }
    }

    /// `TASK_NEW` for `gtid` (status word index = gtid).
    pub fn new(seq: u32, gtid: i64, runnable: bool) -> Received {
        let sw_info = GhostSwInfo {
            id: 0,
            index: gtid as u32,
        };
        let (gtid, runnable) = (gtid as u64, u16::from(runnable));
        let m = abi::GhostMsgPayloadTaskNew {
            gtid,
            runnable,
            sw_info,
            ..Default::default()
        };
        rcv(seq, Message::TaskNew(m))
    }

    /// `TASK_WAKEUP`.
    pub fn wakeup(seq: u32, gtid: i64) -> Received {
        let gtid = gtid as u64;
        let m = abi::GhostMsgPayloadTaskWakeup {
            gtid,
            ..Default::default()
        };
        rcv(seq, Message::TaskWakeup(m))
    }

    /// `TASK_BLOCKED` on `cpu`.
    pub fn blocked(seq: u32, gtid: i64, cpu: i32) -> Received {
        let gtid = gtid as u64;
        let m = abi::GhostMsgPayloadTaskBlocked {
            gtid,
            cpu,
            ..Default::default()
        };
        rcv(seq, Message::TaskBlocked(m))
    }

    /// `TASK_PREEMPT` on `cpu`.
    pub fn preempt(seq: u32, gtid: i64, cpu: i32) -> Received {
        let gtid = gtid as u64;
        let m = abi::GhostMsgPayloadTaskPreempt {
            gtid,
            cpu,
            ..Default::default()
        };
        rcv(seq, Message::TaskPreempt(m))
    }

    /// `TASK_YIELD` on `cpu`.
    pub fn yielded(seq: u32, gtid: i64, cpu: i32) -> Received {
        let gtid = gtid as u64;
        let m = abi::GhostMsgPayloadTaskYield {
            gtid,
            cpu,
            ..Default::default()
        };
        rcv(seq, Message::TaskYield(m))
    }

    /// `TASK_DEAD` on `cpu`.
    pub fn dead(seq: u32, gtid: i64, cpu: i32) -> Received {
        let gtid = gtid as u64;
        rcv(
            seq,
            Message::TaskDead(abi::GhostMsgPayloadTaskDead { gtid, cpu }),
        )
    }

    /// `TASK_DEPARTED` on `cpu`.
    pub fn departed(seq: u32, gtid: i64, cpu: i32) -> Received {
        let gtid = gtid as u64;
        let m = abi::GhostMsgPayloadTaskDeparted {
            gtid,
            cpu,
            ..Default::default()
        };
        rcv(seq, Message::TaskDeparted(m))
    }

    /// `TASK_AFFINITY_CHANGED`.
    pub fn affinity(seq: u32, gtid: i64) -> Received {
        let gtid = gtid as u64;
        let m = abi::GhostMsgPayloadTaskAffinityChanged { gtid };
        rcv(seq, Message::TaskAffinityChanged(m))
    }

    /// `CPU_BUSY` or `CPU_AVAILABLE` for `cpu`.
    pub fn cpu_busy(cpu: i32, busy: bool) -> Received {
        let msg = if busy {
            Message::CpuBusy(abi::GhostMsgPayloadCpuBusy { cpu })
        } else {
            Message::CpuAvailable(abi::GhostMsgPayloadCpuAvailable { cpu })
        };
        rcv(1, msg)
    }

    /// The type and payload bytes of a message built by these helpers, as
    /// the kernel would write them into a ring.
    pub fn encode(r: &Received) -> (u16, Vec<u8>) {
        use crate::queue::testing::Wire;
        let b = match &r.msg {
            Message::TaskNew(m) => m.wire(),
            Message::TaskWakeup(m) => m.wire(),
            Message::TaskBlocked(m) => m.wire(),
            Message::TaskPreempt(m) => m.wire(),
            Message::TaskYield(m) => m.wire(),
            Message::TaskDead(m) => m.wire(),
            Message::TaskDeparted(m) => m.wire(),
            Message::TaskAffinityChanged(m) => m.wire(),
            Message::CpuBusy(m) => m.wire(),
            Message::CpuAvailable(m) => m.wire(),
            other => unimplemented!("encode {other:?}"),
        };
        (r.msg.type_(), b)
    }

    /// The plan of one schedule step, as `(cpu, gtid)` pairs.
    pub fn plan_of<P: Policy>(s: &mut Scheduler<P>, cpu: usize, now: Instant) -> Vec<(usize, i64)> {
        let mut plan = Plan::new();
        s.schedule(&mut Recorder::default(), cpu, now, &mut plan);
        plan.entries().iter().map(|e| (e.cpu, e.gtid)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    /// A policy that records what it was told and plans what it is told.
    #[derive(Default)]
    struct Probe {
        seen: Vec<(&'static str, i64)>,
        plan: Vec<(usize, i64)>,
        home: Option<usize>,
    }

    impl Policy for Probe {
        fn task_new(&mut self, ctx: &mut Ctx<'_>, t: &Task, _: &abi::GhostMsgPayloadTaskNew) {
            self.seen.push(("new", t.gtid));
            if let Some(h) = self.home {
                ctx.set_home(t.gtid, h);
                ctx.wake(h);
            }
        }
        fn task_wakeup(&mut self, _: &mut Ctx<'_>, t: &Task, _: &abi::GhostMsgPayloadTaskWakeup) {
            self.seen.push(("wakeup", t.gtid));
        }
        fn task_dead(&mut self, _: &mut Ctx<'_>, t: &Task, _: &abi::GhostMsgPayloadTaskDead) {
            self.seen.push(("dead", t.gtid));
        }
        fn cpu_busy(&mut self, _: &mut Ctx<'_>, m: &abi::GhostMsgPayloadCpuBusy) {
            self.seen.push(("busy", i64::from(m.cpu)));
        }
        fn schedule(&mut self, _: &mut Ctx<'_>, plan: &mut Plan) {
            for &(c, g) in &self.plan {
                plan.run(c, g);
            }
        }
    }

    #[test]
    fn barriers_follow_messages_and_dead_tasks_are_freed() {
        let mut s = Scheduler::new(Probe::default(), &Model::PerCpu, &[1, 2], None);
        let mut k = Recorder::default();
        let now = Instant::now();
        s.deliver(&mut k, 1, &new(1, 10, true), now);
        s.deliver(&mut k, 1, &wakeup(2, 10), now);
        s.deliver(&mut k, 1, &wakeup(1, 11), now);
        s.deliver(&mut k, 1, &cpu_busy(2, true), now);
        assert_eq!(s.task(10).unwrap().seqnum, 2);
        assert_eq!(s.stats.unknown_task, 1);
        s.policy_mut().plan = vec![(1, 10)];
        let mut plan = Plan::new();
        s.schedule(&mut k, 1, now, &mut plan);
        assert_eq!(plan.entries()[0].task_barrier, 2);
        s.deliver(&mut k, 1, &dead(3, 10, 1), now);
        assert!(s.task(10).is_none());
        assert_eq!(k.freed, vec![GhostSwInfo { id: 0, index: 10 }]);
        assert_eq!(
            s.policy().seen,
            vec![("new", 10), ("wakeup", 10), ("busy", 2), ("dead", 10)]
        );
    }

    #[test]
    fn plans_are_checked() {
        let now = Instant::now();
        let mut k = Recorder::default();
        let mut s = Scheduler::new(Probe::default(), &Model::PerCpu, &[1, 2], None);
        s.deliver(&mut k, 1, &new(1, 10, true), now);
        s.deliver(&mut k, 1, &new(1, 11, true), now);
        // Per-CPU: only the agent's own CPU, once, known tasks or idle.
        s.policy_mut().plan = vec![(2, 10), (1, 99), (1, 10), (1, 11)];
        assert_eq!(plan_of(&mut s, 1, now), vec![(1, 10)]);
        s.policy_mut().plan = vec![(1, abi::GHOST_IDLE_GTID)];
        assert_eq!(plan_of(&mut s, 1, now), vec![(1, -2)]);
        assert_eq!(s.stats.plan_rejected, 3);
        // Centralized: any CPU but the global agent's.
        let mut s = Scheduler::new(
            Probe::default(),
            &Model::Centralized { global_cpu: 0 },
            &[0, 1, 2],
            None,
        );
        assert_eq!(s.cpus(), &[1, 2]);
        s.deliver(&mut k, 0, &new(1, 10, true), now);
        s.deliver(&mut k, 0, &new(1, 11, true), now);
        s.policy_mut().plan = vec![(0, 10), (1, 10), (2, 11)];
        assert_eq!(plan_of(&mut s, 0, now), vec![(1, 10), (2, 11)]);
    }

    #[test]
    fn homes_move_queues_and_stale_moves_are_retried() {
        let now = Instant::now();
        let mut k = Recorder {
            stale: vec![10],
            ..Default::default()
        };
        let mut s = Scheduler::new(Probe::default(), &Model::PerCpu, &[1, 2], None);
        s.policy_mut().home = Some(2);
        // TASK_NEW on CPU 1's queue; the move to CPU 2 is refused (a newer
        // message is on its way), then retried with that message's barrier.
        s.deliver(&mut k, 1, &new(1, 10, true), now);
        assert_eq!(s.task(10).unwrap().queue(), Some(1));
        assert_eq!(s.stats.assoc_stale, 1);
        s.deliver(&mut k, 1, &wakeup(2, 10), now);
        assert_eq!(k.assoc, vec![(10, 2, 2)]);
        assert_eq!(s.task(10).unwrap().queue(), Some(2));
        assert_eq!(s.task(10).unwrap().home, Some(2));
        // Pings: to CPU 2, not to the caller.
        let p = s.take_pings(1);
        assert_eq!(p.iter().collect::<Vec<_>>(), vec![2]);
        assert!(s.take_pings(1).is_empty());
        // A home outside the task CPUs is refused.
        s.policy_mut().home = Some(7);
        s.deliver(&mut k, 1, &new(1, 11, true), now);
        assert_eq!(s.task(11).unwrap().home, None);
        // The centralized model never moves queues.
        let mut s = Scheduler::new(
            Probe::default(),
            &Model::Centralized { global_cpu: 0 },
            &[0, 1, 2],
            None,
        );
        s.policy_mut().home = Some(2);
        let mut k = Recorder::default();
        s.deliver(&mut k, 0, &new(1, 10, true), now);
        assert!(k.assoc.is_empty());
    }

    #[test]
    fn affinity_is_read_at_task_new_and_affinity_changes() {
        let now = Instant::now();
        let mut k = Recorder::default();
        k.allow(10, &[2]);
        let mut s = Scheduler::new(Probe::default(), &Model::PerCpu, &[1, 2, 3], None);
        let allowed = |s: &Scheduler<Probe>, g| {
            let t = s.task(g).unwrap();
            [1, 2, 3].map(|c| t.allowed(c))
        };
        s.deliver(&mut k, 1, &new(1, 10, true), now);
        assert_eq!(allowed(&s, 10), [false, true, false]);
        // Only TASK_NEW and TASK_AFFINITY_CHANGED read it.
        s.deliver(&mut k, 1, &wakeup(2, 10), now);
        assert_eq!(k.affinity_reads, vec![10]);
        k.allow(10, &[1, 3]);
        assert_eq!(allowed(&s, 10), [false, true, false]);
        s.deliver(&mut k, 1, &affinity(3, 10), now);
        assert_eq!(allowed(&s, 10), [true, false, true]);
        assert_eq!(
            s.task(10).unwrap().affinity().iter().collect::<Vec<_>>(),
            [1, 3]
        );
        // The task is gone (ESRCH): the set it had stays, through a change
        // and a new announcement alike.
        k.affinity.clear();
        s.deliver(&mut k, 1, &affinity(4, 10), now);
        s.deliver(&mut k, 1, &new(5, 10, true), now);
        assert_eq!(allowed(&s, 10), [true, false, true]);
        assert_eq!(s.stats.affinity_unread, 2);
        // Never read: every CPU. Unknown tasks are not read at all.
        s.deliver(&mut k, 1, &new(1, 11, true), now);
        assert_eq!(allowed(&s, 11), [true, true, true]);
        assert_eq!(s.task(11).unwrap().affinity(), &CpuMask::full());
        s.deliver(&mut k, 1, &affinity(1, 12), now);
        assert_eq!(k.affinity_reads, vec![10, 10, 10, 10, 11]);
        assert_eq!(s.stats.unknown_task, 1);
    }

    #[test]
    fn malformed_messages_are_counted_not_delivered() {
        let mut s = Scheduler::new(Probe::default(), &Model::PerCpu, &[1], None);
        let r = Received {
            seqnum: 1,
            msg: Message::Malformed {
                type_: abi::MSG_TASK_NEW,
                len: 3,
            },
        };
        s.deliver(&mut Recorder::default(), 1, &r, Instant::now());
        assert_eq!(s.stats.malformed, 1);
        assert!(s.policy().seen.is_empty());
    }
}
