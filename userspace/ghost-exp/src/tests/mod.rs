//! The in-VM tests, grouped by ABI area. Each test is a
//! `fn() -> Result<(), String>` registered in `crate::suite` (which keeps
//! the order they run in); test modules use `crate::harness` and never
//! each other.
//!
//! - [`ghostfs`]: the filesystem: root, enclaves, tasks and gtids, the
//!   shared mappings (`cpu_data`, status words), ioctls and queues;
//! - [`scheduling`]: agents scheduling real tasks: the raw-ABI agent,
//!   transactions and CPU messages (the lab), the bundled binaries;
//! - [`conformance`]: ghOSt's own tests (`agent_test`, `api_test`,
//!   `enclave_test`, `capabilities_test`), the C program, ABI 91 semantics;
//! - [`faults`]: fault injection: agent deaths and destroys under load,
//!   races, hotplug, resource pressure.

pub(crate) mod conformance;
pub(crate) mod faults;
pub(crate) mod ghostfs;
pub(crate) mod scheduling;
