//! Host tests of the kernel crate's task state machine
//! (`rust-sched-ghost/gstate.rs`): the full transition table, and the
//! equivalence with the six boolean cells it replaced.

#[path = "../../gstate.rs"]
mod gstate;

use gstate::{Cpu, Event, Stage, TaskState};

const STAGES: [Stage; 3] = [Stage::Staged, Stage::Announcing, Stage::Announced];

const EVENTS: [Event; 12] = [
    Event::Enter { running: false },
    Event::Enter { running: true },
    Event::ForkJoin,
    Event::Announce,
    Event::Gate(false),
    Event::Gate(true),
    Event::OnCpu,
    Event::OffCpu,
    Event::Yield,
    Event::TakeYield,
    Event::Count(false),
    Event::Count(true),
];

/// Every state: 3 stages x ONCPU x yield x gated x counted.
fn all_states() -> Vec<TaskState> {
    let mut out = Vec::new();
    for stage in STAGES {
        for bits in 0..16u8 {
            out.push(TaskState {
                stage,
                cpu: if bits & 1 != 0 { Cpu::On } else { Cpu::Off },
                yield_pending: bits & 2 != 0,
                gated: bits & 4 != 0,
                counted: bits & 8 != 0,
            });
        }
    }
    out
}

/// The stage after a stage event (the table the kernel follows).
fn expected_stage(from: Stage, ev: Event) -> Stage {
    use Stage::*;
    match (from, ev) {
        (Staged, Event::Enter { running: false }) => Announced,
        (Staged, Event::Enter { running: true }) => Announcing,
        (Staged, Event::ForkJoin) => Announcing,
        (Staged, Event::Announce) => Staged,
        (Announcing, Event::Announce) => Announced,
        // Entering again (back from a priority boost) or a second fork
        // join changes nothing; neither does announcing twice.
        (s, _) => s,
    }
}

fn is_stage_event(ev: Event) -> bool {
    matches!(ev, Event::Enter { .. } | Event::ForkJoin | Event::Announce)
}

#[test]
fn a_new_state_is_staged_and_idle() {
    let s = TaskState::new();
    assert_eq!(s.stage, Stage::Staged);
    assert!(!s.active() && !s.new_pending() && !s.announced() && !s.oncpu());
    assert!(!s.yield_pending && !s.gated && !s.counted);
    assert_eq!(s, TaskState::default());
}

#[test]
fn full_transition_table() {
    let mut checked = 0;
    for s in all_states() {
        for ev in EVENTS {
            let (n, changed) = s.step(ev);
            assert_eq!(changed, n != s, "{s:?} {ev:?}");
            if is_stage_event(ev) {
                assert_eq!(n.stage, expected_stage(s.stage, ev), "{s:?} {ev:?}");
                // Stage events touch nothing else.
                assert_eq!(
                    TaskState {
                        stage: s.stage,
                        ..n
                    },
                    s,
                    "{s:?} {ev:?}"
                );
            } else {
                // Flag events never move the stage, and set exactly their
                // own fact.
                assert_eq!(n.stage, s.stage, "{s:?} {ev:?}");
                let want = match ev {
                    Event::Gate(g) => TaskState { gated: g, ..s },
                    Event::OnCpu => TaskState { cpu: Cpu::On, ..s },
                    Event::OffCpu => TaskState { cpu: Cpu::Off, ..s },
                    Event::Yield => TaskState {
                        yield_pending: true,
                        ..s
                    },
                    Event::TakeYield => TaskState {
                        yield_pending: false,
                        ..s
                    },
                    Event::Count(c) => TaskState { counted: c, ..s },
                    _ => unreachable!(),
                };
                assert_eq!(n, want, "{s:?} {ev:?}");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 48 * 12);
}

#[test]
fn queries_follow_the_stage() {
    for s in all_states() {
        assert_eq!(s.active(), s.stage != Stage::Staged);
        assert_eq!(s.new_pending(), s.stage == Stage::Announcing);
        assert_eq!(s.announced(), s.active() && !s.new_pending());
        // TASK_NEW pending implies in the class (the cells allowed the
        // contrary; the enum does not).
        assert!(!s.new_pending() || s.active());
        assert_eq!(s.oncpu(), s.cpu == Cpu::On);
    }
}

/// The six cells the enum replaced, with the operations the kernel did on
/// them (`switched_to`, the fork join, `msg_new`, ...).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Cells {
    active: bool,
    new_pending: bool,
    yield_pending: bool,
    oncpu: bool,
    counted: bool,
    gated: bool,
}

impl Cells {
    /// The old code's effect of `ev`, and what its setter returned (where
    /// one did: `take_yield`, `set_counted`).
    fn apply(mut self, ev: Event) -> (Cells, Option<bool>) {
        let mut ret = None;
        match ev {
            Event::Enter { running } => {
                if !self.active {
                    self.active = true;
                    if running {
                        self.new_pending = true;
                    }
                }
            }
            Event::ForkJoin => {
                self.active = true;
                self.new_pending = true;
            }
            Event::Announce => self.new_pending = false,
            Event::Gate(g) => self.gated = g,
            Event::OnCpu => self.oncpu = true,
            Event::OffCpu => self.oncpu = false,
            Event::Yield => self.yield_pending = true,
            Event::TakeYield => {
                ret = Some(self.yield_pending);
                self.yield_pending = false;
            }
            Event::Count(c) => {
                ret = Some(self.counted != c);
                self.counted = c;
            }
        }
        (self, ret)
    }

    fn of(s: TaskState) -> Cells {
        Cells {
            active: s.active(),
            new_pending: s.new_pending(),
            yield_pending: s.yield_pending,
            oncpu: s.oncpu(),
            counted: s.counted,
            gated: s.gated,
        }
    }
}

#[test]
fn same_behaviour_as_the_boolean_cells() {
    for s in all_states() {
        for ev in EVENTS {
            // The fork join only ever ran on a fresh state.
            if ev == Event::ForkJoin && s.stage != Stage::Staged {
                continue;
            }
            let (n, changed) = s.step(ev);
            let (c, ret) = Cells::of(s).apply(ev);
            assert_eq!(Cells::of(n), c, "{s:?} {ev:?}");
            if let Some(r) = ret {
                assert_eq!(changed, r, "{s:?} {ev:?}");
            }
        }
    }
}

#[test]
fn every_state_is_reachable_from_new() {
    let mut seen = vec![TaskState::new()];
    let mut i = 0;
    while let Some(&s) = seen.get(i) {
        for ev in EVENTS {
            let (n, _) = s.step(ev);
            if !seen.contains(&n) {
                seen.push(n);
            }
        }
        i += 1;
    }
    assert_eq!(seen.len(), all_states().len());
}
