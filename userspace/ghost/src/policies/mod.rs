//! The bundled policies.
//!
//! - [`fifo::Fifo`]: per-CPU FIFO, one agent and run queue per CPU;
//! - [`fifo_central::FifoCentral`]: centralized FIFO, one global agent
//!   scheduling every other CPU, with an optional preemption time slice.

use std::collections::BTreeSet;
use std::fmt::Write;

pub mod fifo;
pub mod fifo_central;

/// The dump line of the runnable tasks that wait because their affinity
/// allows none of the CPUs scheduled; nothing if there are none.
fn dump_waiting(out: &mut String, waiting: &BTreeSet<i64>) {
    if !waiting.is_empty() {
        let _ = writeln!(
            out,
            "waiting, no CPU of the enclave in their affinity: {} {waiting:?}",
            waiting.len()
        );
    }
}

#[cfg(test)]
mod tests;
