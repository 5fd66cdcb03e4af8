//! The bundled policies.
//!
//! - [`fifo::Fifo`]: per-CPU FIFO, one agent and run queue per CPU;
//! - [`fifo_central::FifoCentral`]: centralized FIFO, one global agent
//!   scheduling every other CPU, with an optional preemption time slice.

pub mod fifo;
pub mod fifo_central;

#[cfg(test)]
mod tests;
