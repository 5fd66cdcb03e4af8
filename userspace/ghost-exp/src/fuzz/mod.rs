//! A seeded, bounded random-operation fuzzer of the ghost-rs kernel
//! interface (`ghost-exp fuzz`, and the suite's `fuzz_fixed_seeds`).
//!
//! A run is a sequence of *batches*. Each batch sets up a *stage*: enclave
//! [`STAGE`] on the last CPU with a real agent process, [`THREADS`] real
//! ghost threads (spin, sleep, yield, leave and re-enter ghost) and a
//! sleeping CFS *bystander* the fuzzer may move into enclaves. Two forked
//! processes then fuzz:
//!
//! - the *fuzzer* (`F`, no agent): random, near-valid and valid writes to
//!   every ghostfs file (root `ctl`, each enclave's `ctl`, `cpulist`,
//!   `cpumask`, `tasks`, the tunables, `agent_online`, the read-only files),
//!   reads, every ioctl on every kind of fd (random command numbers around
//!   the `GHOST_IOC_*` range, random `_IOC` size bits; NULL, unmapped,
//!   misaligned, page-straddling and kernel-looking pointers; well-formed
//!   structs with random fields), `ghost_run` with random arguments, odd
//!   `mmap`s, garbage written into the stage's `cpu_data` and into queue
//!   headers, enclave create/destroy, and scheduler calls on the live tasks
//!   (policy, affinity, nice);
//! - the *agent* (`A`), the real agent of the stage: between its own
//!   scheduling rounds it fills its `cpu_data` transactions with garbage
//!   (gtid, cpu, state, flags, barriers, sync-group owner) and commits them
//!   (`COMMIT_TXN`, `SYNC_GROUP_TXN`, sometimes with a helper thread
//!   scribbling on the transaction meanwhile), calls `ghost_run` /
//!   `GHOST_IOC_RUN` with random arguments, writes garbage into the header of
//!   its own queue and of a second queue it drains too, and sends random
//!   `SW_FREE`, `ASSOC_QUEUE` and other ioctls, as an agent.
//!
//! The agent schedules from its status words (not from messages, which
//! garbage in a queue header may drop): every runnable task is committed in
//! turn with `RTLA_ON_{BLOCKED,YIELD,PREEMPT}`, and a helper thread signals
//! it when it made no progress for a while (a commit of garbage may leave it
//! asleep with nothing to wake it). The stage's `runnable_timeout` is 5 s,
//! so a dead agent cannot leave tasks waiting long enough to stall RCU.
//!
//! After each batch every enclave is destroyed and the kernel must be
//! healthy: no new splat in the kernel log, ghostfs answers (`version` reads
//! 91), an enclave can be created and a task can enter it and be destroyed
//! back to CFS, every thread of the batch is out of ghost and running, and
//! no thread of the system is left in the ghost class. Errnos are expected;
//! a splat, a hang (every wait is bounded) or a lost task is a failure. So
//! is a fuzz process killed by a signal (a garbage pointer dereferenced in
//! *userspace*: a fuzzer bug) or by `SIGBUS` on the mapping of an enclave
//! that still exists (a kernel bug).
//!
//! Each process's operations follow from the seed, the batch and its role;
//! the two processes run concurrently, so their interleaving is not
//! replayed. The last operations of both (a shared ring, [`RING`] entries)
//! are printed on a failure.
//!
//! Files: [`run`] (batches, health, runs) starts [`fuzzer`] and [`agent`],
//! which draw from [`gen`]; [`workload`] is the stage's tasks; [`shared`],
//! [`mapping`], [`syscalls`] and [`rng`] are their common ground.

mod agent;
mod fuzzer;
mod gen;
mod mapping;
mod rng;
mod run;
mod shared;
mod syscalls;
mod workload;

use crate::harness::figures;
use run::fuzz_fixed_seeds;
pub(crate) use run::main;
/// The kernel crate's ghostfs parsers (pure code), to model what a write
/// means to the kernel.
#[path = "../../../../rust-sched-ghost/parse.rs"]
#[allow(dead_code)]
mod kparse;
use crate::harness::sys::{self, errno_name, Exit, GHOSTFS};
use crate::harness::{create_enclave, destroy_all_enclaves, nr_cpu_ids, Test};
use crate::harness::{ioctl, path};
use ghost_abi as abi;
use std::collections::HashSet;
use std::fs::File;
use std::process::ExitCode;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

/// The fuzz tests, in the order they run.
pub const TESTS: &[Test] = &[Test {
    name: "fuzz_fixed_seeds",
    run: fuzz_fixed_seeds,
}];

/// The suite's seeds, each run for [`SUITE_OPS`] operations.
const SUITE_SEEDS: [u64; 4] = [
    0x6768_6f73_7401,
    0x6768_6f73_7402,
    0x6768_6f73_7403,
    20_251_122,
];
/// Operations per suite seed.
const SUITE_OPS: u64 = 400;
/// Operations per batch (then a health check).
const BATCH: u64 = 200;
/// The stage enclave, and the one the health check creates.
const STAGE: u64 = 70;
const HEALTH: u64 = 71;
/// Ghost threads of the stage's workload.
const THREADS: usize = 4;
/// Status words the agent scans for tasks.
const SCAN: usize = 512;
/// Operations kept for a failure report.
const RING: usize = 64;
const SLOT_BYTES: usize = 240;
/// The exit code of a fuzz process that got `SIGBUS` on the mapping of a
/// destroyed enclave (expected), and of a live one (a kernel bug).
const EXIT_REVOKED: i32 = 42;
const EXIT_SIGBUS_LIVE: i32 = 43;
/// A queue fd number no process of the fuzz has open.
const NO_FD: i32 = 987_654;

/// Operation kinds, for the summary (ok / errno counts).
const KINDS: [&str; 16] = [
    "write",
    "read",
    "ioctl",
    "ghost_run",
    "mmap",
    "scribble",
    "enclave",
    "sched",
    "txn",
    "a_run",
    "q_garbage",
    "sw_free",
    "assoc",
    "a_ioctl",
    "a_write",
    "queue2",
];
const K_WRITE: usize = 0;
const K_READ: usize = 1;
const K_IOCTL: usize = 2;
const K_RUN: usize = 3;
const K_MMAP: usize = 4;
const K_SCRIBBLE: usize = 5;
const K_ENCLAVE: usize = 6;
const K_SCHED: usize = 7;
const K_TXN: usize = 8;
const K_ARUN: usize = 9;
const K_QGARBAGE: usize = 10;
const K_SWFREE: usize = 11;
const K_ASSOC: usize = 12;
const K_AIOCTL: usize = 13;
const K_AWRITE: usize = 14;
const K_QUEUE2: usize = 15;
