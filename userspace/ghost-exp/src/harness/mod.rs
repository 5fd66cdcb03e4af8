//! The test harness of ghost-exp: everything the in-VM tests and the fuzzer
//! share, and nothing that is a test. Test modules depend on the harness and
//! never on each other; the harness depends on no test module.
//!
//! - [`sys`]: thin, checked wrappers over the system calls (mount, fork,
//!   wait, affinity, `sched_setattr`, capabilities, and the raw-integer
//!   `ioctl`/`ghost_run`/`write` the fuzzer feeds garbage) and the thread
//!   reports of a stall;
//! - [`mapped`]: memory mappings (the ABI's queues, `cpu_data` and status
//!   words; shared pages; memory pressure) and the `SIGBUS` of a revoked
//!   one. `sys` and `mapped` are the only modules of ghost-exp that
//!   step outside safe Rust: everything else calls them;
//! - [`ghostfs`]: ghostfs paths and files, ioctls, queues, enclaves;
//! - [`raw`]: the raw-ABI view of an enclave that an agent has (queue,
//!   transactions, status words) and the hogs the tests schedule;
//! - [`agent`]: the one raw-ABI agent: its loop (barrier, drain, block or
//!   commit), scripted by each test ([`agent::Script`]);
//! - [`rig`]: the agent process of the conformance and ABI 91 tests (two
//!   [`agent::Agent`]s: a commander the test sends commands and a sleeper);
//! - [`wait`]: bounded waits (a cap that only catches a hang, reported
//!   with the FILE:LINE of the wait);
//! - [`proc`]: child processes (the bundled binaries), agent restarts;
//! - [`rng`]: the seeded randomness of the fault tests and the fuzzer;
//! - [`figures`]: the reliability counters of a suite run.

pub(crate) mod agent;
pub(crate) mod figures;
pub(crate) mod ghostfs;
pub(crate) mod mapped;
pub(crate) mod proc;
pub(crate) mod raw;
pub(crate) mod rig;
pub(crate) mod rng;
pub(crate) mod sys;
pub(crate) mod wait;

pub(crate) use agent::*;
pub(crate) use ghostfs::*;
pub(crate) use proc::*;
pub(crate) use raw::*;
pub(crate) use rig::*;
pub(crate) use rng::*;
pub(crate) use sys::{getattr, ghost_states, nice_of, set_policy, setattr};
pub(crate) use wait::*;

/// One integration test.
pub struct Test {
    /// Unique name, printed on the result line.
    pub name: &'static str,
    /// The test body.
    pub run: fn() -> Result<(), String>,
}
