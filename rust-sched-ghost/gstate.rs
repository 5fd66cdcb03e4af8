// SPDX-License-Identifier: GPL-2.0

//! The state machine of a ghost task's stay in the class: what the agent
//! knows of it ([`Stage`]), whether its messages are held back (`gated`),
//! whether it is on a CPU as the agent sees it ([`Cpu`]), and whether our
//! enqueue counted it in `nr_running`.
//!
//! Pure code (no kernel types): [`TaskState::step`] is the one transition
//! function, also unit-tested on the host (the full table). The kernel keeps
//! a [`TaskState`] in each `GhostTask`, under the task's runqueue lock, and
//! sends the messages the transitions call for; nothing here allocates,
//! sleeps or panics.

/// What the agent knows of the task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Staged by a join or `become agent`: the state exists, but the task
    /// has not entered the class yet (`switched_to` has not run).
    Staged,
    /// In the class, and TASK_NEW is still to be sent: the task joined
    /// while running (it goes out at the switch), or a fork child waits for
    /// its first wakeup (its gtid exists only then).
    Announcing,
    /// In the class, and TASK_NEW went out (or was dropped while gated:
    /// ungating sends it again): the agent hears every further event.
    Announced,
}

/// The task and its CPU, as the agent sees it (`GHOST_SW_TASK_ONCPU`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cpu {
    /// Not on a CPU (or on one without the agent knowing: ONCPU is clear).
    Off,
    /// On a CPU, ONCPU set.
    On,
}

/// One ghost task's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskState {
    /// See [`Stage`].
    pub stage: Stage,
    /// See [`Cpu`].
    pub cpu: Cpu,
    /// The task called `sched_yield()`; TASK_YIELD goes out when it leaves
    /// its CPU.
    pub yield_pending: bool,
    /// Its messages are held back: it re-entered before the agent freed the
    /// word of its earlier stay (`MSG_GATED`).
    pub gated: bool,
    /// Counted in the runqueue's `nr_running` by our enqueue.
    pub counted: bool,
}

/// An event of a task's stay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// `switched_to`: the task enters the class; `running` if it is a task
    /// (not an agent) that is its CPU's current task: TASK_NEW then waits
    /// for the switch (the caller sets ONCPU and forces the switch). A
    /// no-op for a task already in the class (back from a priority boost).
    Enter {
        /// The task is running.
        running: bool,
    },
    /// A fork child joins its parent's enclave: in the class from birth,
    /// TASK_NEW at its first wakeup.
    ForkJoin,
    /// TASK_NEW was produced (sent, or dropped while gated).
    Announce,
    /// Its messages are held back / flow again.
    Gate(bool),
    /// ONCPU set (the task goes on a CPU as far as the agent knows).
    OnCpu,
    /// ONCPU cleared (its off-CPU message went out).
    OffCpu,
    /// The task called `sched_yield()`.
    Yield,
    /// The yield request was consumed (TASK_YIELD goes out).
    TakeYield,
    /// Our enqueue counts it in `nr_running` (`true`), or the dequeue
    /// uncounts it (`false`).
    Count(bool),
}

impl TaskState {
    /// A freshly staged task.
    pub const fn new() -> Self {
        TaskState {
            stage: Stage::Staged,
            cpu: Cpu::Off,
            yield_pending: false,
            gated: false,
            counted: false,
        }
    }

    /// `switched_to` has run: the task is in the class.
    pub fn active(&self) -> bool {
        self.stage != Stage::Staged
    }

    /// TASK_NEW is still to be sent.
    pub fn new_pending(&self) -> bool {
        self.stage == Stage::Announcing
    }

    /// The agent was told about the task (it is in the class and TASK_NEW
    /// went out): the task's events are messages.
    pub fn announced(&self) -> bool {
        self.stage == Stage::Announced
    }

    /// Whether ONCPU is set.
    pub fn oncpu(&self) -> bool {
        self.cpu == Cpu::On
    }

    /// The state after `ev`, and whether the event changed it.
    pub fn step(self, ev: Event) -> (TaskState, bool) {
        let mut s = self;
        match ev {
            Event::Enter { running } => {
                if s.stage == Stage::Staged {
                    s.stage = if running {
                        Stage::Announcing
                    } else {
                        Stage::Announced
                    };
                }
            }
            Event::ForkJoin => {
                if s.stage == Stage::Staged {
                    s.stage = Stage::Announcing;
                }
            }
            Event::Announce => {
                if s.stage == Stage::Announcing {
                    s.stage = Stage::Announced;
                }
            }
            Event::Gate(g) => s.gated = g,
            Event::OnCpu => s.cpu = Cpu::On,
            Event::OffCpu => s.cpu = Cpu::Off,
            Event::Yield => s.yield_pending = true,
            Event::TakeYield => s.yield_pending = false,
            Event::Count(c) => s.counted = c,
        }
        (s, s != self)
    }
}

impl Default for TaskState {
    fn default() -> Self {
        Self::new()
    }
}
