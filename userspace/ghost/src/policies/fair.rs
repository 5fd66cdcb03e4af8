//! Fair share by virtual runtime, per CPU: each agent runs the waiting
//! task of its CPU with the least virtual runtime, the CPU time a task used
//! (the `runtime` of its messages) times `1024 / weight`, weighted by nice
//! value as Linux's `sched_prio_to_weight`. Each CPU keeps a floor, the
//! virtual runtime of the last task it picked: a new task starts there, a
//! woken one at most 3 ms below it, a moving one keeps its distance to it.
//! A waiting task goes to an idle CPU it may use if its home is busy; a
//! CPU with nothing of its own steals the task with the least lag.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

use ghost_abi as abi;

use crate::policy::{Ctx, Policy, Task};

/// Linux's `sched_prio_to_weight`, nice -20 to 19.
pub const WEIGHTS: [u64; 40] = [
    88761, 71755, 56483, 46273, 36291, 29154, 23254, 18705, 14949, 11916, 9548, 7620, 6100, 4904,
    3906, 3121, 2501, 1991, 1586, 1277, 1024, 820, 655, 526, 423, 335, 272, 215, 172, 137, 110, 87,
    70, 56, 45, 36, 29, 23, 18, 15,
];

/// The most virtual time a woken task is credited for its sleep, ns.
const WAKEUP_CREDIT: u64 = 3_000_000;

/// The weight of nice value `nice` (clamped to -20..19).
pub fn weight(nice: i32) -> u64 {
    WEIGHTS[(nice.clamp(-20, 19) + 20) as usize]
}

/// What the policy knows of a task.
#[derive(Debug, Clone, Copy)]
struct Entity {
    weight: u64,
    /// Virtual runtime (ns), on the clock of `cpu`.
    vruntime: u64,
    /// Cumulative CPU time last reported (ns).
    runtime: u64,
    /// The CPU whose floor `vruntime` is measured against; `None` for a
    /// task never queued.
    cpu: Option<usize>,
}

/// The fair-share policy.
#[derive(Debug, Default)]
pub struct Fair {
    tasks: HashMap<i64, Entity>,
    /// Run queues by CPU (unordered: picks take the least vruntime).
    rq: BTreeMap<usize, Vec<i64>>,
    /// Each CPU's floor: the vruntime of the last task it picked.
    floor: BTreeMap<usize, u64>,
}

impl Fair {
    /// An empty policy.
    pub fn new() -> Self {
        Self::default()
    }

    /// The run queue of `cpu` as `(gtid, vruntime)`, least first.
    pub fn run_queue(&self, cpu: usize) -> Vec<(i64, u64)> {
        let q = self.rq.get(&cpu).into_iter().flatten();
        let mut q: Vec<(i64, u64)> = q.map(|&g| (g, self.vruntime(g))).collect();
        q.sort_by_key(|&(g, v)| (v, g));
        q
    }

    /// The virtual runtime of `gtid` (0 if unknown).
    pub fn vruntime(&self, gtid: i64) -> u64 {
        self.tasks.get(&gtid).map_or(0, |e| e.vruntime)
    }

    fn floor(&self, cpu: usize) -> u64 {
        self.floor.get(&cpu).copied().unwrap_or(0)
    }

    /// Charges `gtid` the CPU time up to the cumulative `runtime`.
    fn charge(&mut self, gtid: i64, runtime: u64) {
        if let Some(e) = self.tasks.get_mut(&gtid) {
            let used = runtime.saturating_sub(e.runtime);
            e.runtime = e.runtime.max(runtime);
            e.vruntime = e
                .vruntime
                .saturating_add(used.saturating_mul(1024) / e.weight);
        }
    }

    /// Gives `gtid` weight `w`, and scales its distance to its CPU's floor
    /// by the old weight over the new one (as CFS's `reweight_entity`
    /// scales lag): the virtual time it is ahead or behind stands for the
    /// same CPU time at the new weight. Without it, a task reniced from 10
    /// to 0 would keep a lead of up to 9.3 times the CPU time it took,
    /// and wait that long for the others to catch up. None goes more than
    /// [`WAKEUP_CREDIT`] below the floor, as when placed.
    fn reweight(&mut self, gtid: i64, w: u64) {
        let f = self
            .tasks
            .get(&gtid)
            .and_then(|e| e.cpu)
            .map(|c| self.floor(c));
        let Some(e) = self.tasks.get_mut(&gtid) else {
            return;
        };
        if let Some(f) = f {
            let scale =
                |d: u64| u64::try_from(u128::from(d) * u128::from(e.weight) / u128::from(w));
            e.vruntime = if e.vruntime >= f {
                f.saturating_add(scale(e.vruntime - f).unwrap_or(u64::MAX))
            } else {
                let behind = scale(f - e.vruntime).unwrap_or(u64::MAX);
                f.saturating_sub(behind.min(WAKEUP_CREDIT))
            };
        }
        e.weight = w;
    }

    /// Puts `gtid` on `cpu`'s clock: a task moving keeps its distance to
    /// the floor, a new task starts at the floor, and none starts more than
    /// [`WAKEUP_CREDIT`] below it.
    fn place(&mut self, gtid: i64, cpu: usize) {
        let to = self.floor(cpu);
        let from = self.tasks.get(&gtid).and_then(|e| e.cpu);
        let from_floor = from.map(|c| self.floor(c));
        if let Some(e) = self.tasks.get_mut(&gtid) {
            let v = match (from, from_floor) {
                (Some(c), _) if c == cpu => e.vruntime,
                (Some(_), Some(f)) => e.vruntime.saturating_sub(f).saturating_add(to),
                _ => to,
            };
            e.vruntime = v.max(to.saturating_sub(WAKEUP_CREDIT));
            e.cpu = Some(cpu);
        }
    }

    /// Whether `cpu` has no current task and nothing queued.
    fn idle(&self, ctx: &Ctx<'_>, cpu: usize) -> bool {
        ctx.current(cpu).is_none() && self.rq.get(&cpu).map_or(true, |q| q.is_empty())
    }

    /// The least-vruntime task of `cpu`'s queue that `to` may take.
    fn least(&self, ctx: &Ctx<'_>, cpu: usize, to: usize) -> Option<(u64, i64)> {
        let q = self.rq.get(&cpu)?;
        let f = self.floor(cpu);
        q.iter()
            .filter(|&&g| ctx.can_run(g, to))
            .map(|&g| (self.vruntime(g).saturating_sub(f), g))
            .min()
    }
}

impl Policy for Fair {
    fn task_new(&mut self, _: &mut Ctx<'_>, task: &Task, msg: &abi::GhostMsgPayloadTaskNew) {
        let (weight, runtime) = (weight(msg.nice), msg.runtime);
        let e = Entity {
            weight,
            vruntime: 0,
            runtime,
            cpu: None,
        };
        self.tasks.insert(task.gtid, e);
    }

    fn task_priority_changed(
        &mut self,
        ctx: &mut Ctx<'_>,
        task: &Task,
        msg: &abi::GhostMsgPayloadTaskPriorityChanged,
    ) {
        // The CPU time it used so far counts at the old weight (a running
        // task's TASK_PREEMPT comes after this message).
        if let Some(rt) = ctx.status_word(task.gtid).map(|w| w.runtime()) {
            self.charge(task.gtid, rt);
        }
        self.reweight(task.gtid, weight(msg.nice));
    }

    fn task_preempt(&mut self, _: &mut Ctx<'_>, t: &Task, m: &abi::GhostMsgPayloadTaskPreempt) {
        self.charge(t.gtid, m.runtime);
    }

    fn task_yield(&mut self, _: &mut Ctx<'_>, t: &Task, m: &abi::GhostMsgPayloadTaskYield) {
        self.charge(t.gtid, m.runtime);
    }

    fn task_blocked(&mut self, _: &mut Ctx<'_>, t: &Task, m: &abi::GhostMsgPayloadTaskBlocked) {
        self.charge(t.gtid, m.runtime);
    }

    fn task_switchto(&mut self, _: &mut Ctx<'_>, t: &Task, m: &abi::GhostMsgPayloadTaskSwitchto) {
        self.charge(t.gtid, m.runtime);
    }

    fn task_dead(&mut self, _: &mut Ctx<'_>, task: &Task, _: &abi::GhostMsgPayloadTaskDead) {
        self.tasks.remove(&task.gtid);
    }

    fn task_departed(&mut self, _: &mut Ctx<'_>, t: &Task, _: &abi::GhostMsgPayloadTaskDeparted) {
        self.tasks.remove(&t.gtid);
    }

    fn enqueue(&mut self, ctx: &mut Ctx<'_>, task: &Task) {
        let home = task.home.filter(|&h| task.allowed(h));
        let idle = ctx.allowed_cpus(task).find(|&c| self.idle(ctx, c));
        let shortest = |c: &usize| self.rq.get(c).map_or(0, Vec::len);
        let cpu = match (home, idle) {
            (Some(h), _) if self.idle(ctx, h) => h,
            (_, Some(c)) | (Some(c), None) => c,
            (None, None) => match ctx.allowed_cpus(task).min_by_key(shortest) {
                Some(c) => c,
                None => return,
            },
        };
        if task.home != Some(cpu) {
            ctx.set_home(task.gtid, cpu);
        }
        self.place(task.gtid, cpu);
        self.rq.entry(cpu).or_default().push(task.gtid);
        ctx.wake(cpu);
    }

    fn dequeue(&mut self, _: &mut Ctx<'_>, task: &Task) {
        for q in self.rq.values_mut() {
            q.retain(|&g| g != task.gtid);
        }
    }

    fn pick(&mut self, ctx: &mut Ctx<'_>, cpu: usize) -> Option<i64> {
        let (_, g) = match self.least(ctx, cpu, cpu) {
            Some(own) => own,
            None => {
                // Steal: the least lag among the other queues.
                let others = self.rq.keys().filter(|&&c| c != cpu);
                let (lag, g, from) = others
                    .filter_map(|&c| self.least(ctx, c, cpu).map(|(l, g)| (l, g, c)))
                    .min()?;
                if let Some(q) = self.rq.get_mut(&from) {
                    q.retain(|&x| x != g);
                }
                self.rq.entry(cpu).or_default().push(g);
                ctx.set_home(g, cpu);
                self.place(g, cpu);
                (lag, g)
            }
        };
        let v = self.vruntime(g);
        let f = self.floor.entry(cpu).or_default();
        *f = (*f).max(v);
        Some(g)
    }

    fn affinity_changed(&mut self, ctx: &mut Ctx<'_>, task: &Task) {
        // A task keeps its place while its affinity allows its home.
        if !task.home.is_some_and(|h| task.allowed(h)) {
            self.dequeue(ctx, task);
            self.enqueue(ctx, task);
        }
    }

    fn dump(&self, out: &mut String) {
        for &cpu in self.rq.keys() {
            let q = self.run_queue(cpu);
            let f = self.floor(cpu);
            let _ = writeln!(
                out,
                "cpu {cpu}: floor {f}, {} runnable (gtid, vruntime) {q:?}",
                q.len()
            );
        }
    }
}
