//! The bundled policies.
//!
//! - [`fifo::Fifo`]: per-CPU FIFO, one agent and run queue per CPU;
//! - [`fifo_central::FifoCentral`]: centralized FIFO, one global agent
//!   scheduling every other CPU, with an optional preemption time slice;
//! - [`shinjuku::Shinjuku`]: centralized, preemptive FIFO of requests with a
//!   short time slice (30 µs by default), ghOSt's Shinjuku;
//! - [`sol::Sol`]: centralized FIFO committing each round as a sync group
//!   and offering a CPU only tasks whose commit can succeed, ghOSt's SOL;
//! - [`fair::Fair`]: per-CPU fair share by virtual runtime with nice
//!   weights, idle CPUs stealing work;
//! - [`edf::Edf`]: centralized earliest deadline first, deadlines declared
//!   in a shared-memory table ([`edf::DeadlineTable`]).

pub mod edf;
pub mod fair;
pub mod fifo;
pub mod fifo_central;
pub mod owed;
pub mod shinjuku;
pub mod sol;

#[cfg(test)]
mod tests;
