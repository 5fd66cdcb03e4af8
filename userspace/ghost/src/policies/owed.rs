//! A first-in, first-out run queue in which a task that lost its CPU
//! without the agent replacing it goes to the front: shared by
//! [`super::shinjuku`] and [`super::sol`].
//!
//! A task that is still its CPU's current task when it is preempted (the
//! agent did not replace it: another scheduling class took the CPU), or
//! whose latch was dropped before it ran, is owed the rest of its turn;
//! every other task (new, woken, yielding, replaced at the end of a time
//! slice) joins the back.

use std::collections::{HashSet, VecDeque};

use ghost_abi as abi;

use crate::policy::{Ctx, Task, TaskState};

/// The queue.
#[derive(Debug, Default)]
pub struct OwedQueue {
    /// Tasks waiting for a CPU, next first.
    rq: VecDeque<i64>,
    /// Tasks owed the rest of their turn: they go to the front.
    owed: HashSet<i64>,
}

impl OwedQueue {
    /// `MSG_TASK_PREEMPT` of `task`: remembers whether it is owed its turn.
    pub fn preempted(&mut self, ctx: &Ctx<'_>, task: &Task, msg: &abi::GhostMsgPayloadTaskPreempt) {
        if let TaskState::OnCpu(c) = task.state() {
            if ctx.current(c) == Some(task.gtid) || msg.was_latched != 0 {
                self.owed.insert(task.gtid);
            }
        }
    }

    /// Queues `task`: at the front if it is owed its turn, else at the back.
    pub fn push(&mut self, task: &Task) {
        if self.owed.remove(&task.gtid) {
            self.rq.push_front(task.gtid);
        } else {
            self.rq.push_back(task.gtid);
        }
    }

    /// Takes `task` out (and forgets what it was owed).
    pub fn remove(&mut self, task: &Task) {
        self.rq.retain(|&g| g != task.gtid);
        self.owed.remove(&task.gtid);
    }

    /// Forgets a dead task.
    pub fn forget(&mut self, task: &Task) {
        self.owed.remove(&task.gtid);
    }

    /// The queued tasks, next first.
    pub fn iter(&self) -> impl Iterator<Item = i64> + '_ {
        self.rq.iter().copied()
    }

    /// How many tasks wait.
    pub fn len(&self) -> usize {
        self.rq.len()
    }

    /// Whether no task waits.
    pub fn is_empty(&self) -> bool {
        self.rq.is_empty()
    }
}
