//! The library's foreign-function boundary: the only module with `unsafe`
//! (`lib.rs` denies `unsafe_code` everywhere else).
//!
//! - [`mapping`]: memory shared with the kernel ([`Mapping`]: the ghostfs
//!   mappings of ABI 91's structs: queue rings, status words, `cpu_data`),
//!   accessed through bounds-checked atomics and volatile reads, and the
//!   decoding of message payloads copied out of a ring;
//! - [`ghost`]: the ghost system calls whose arguments are ABI structs or
//!   point to them: the ioctls on an enclave's `ctl` and `ghost_run`;
//! - [`os`]: the few calls `nix` has no safe wrapper for (`tgkill`,
//!   `sched_getscheduler`/`sched_setscheduler`, `sigaction`, `fork`,
//!   `_exit`), each behind a wrapper whose contract makes it sound.
//!
//! Everything else in the library calls these through [`crate::sys`],
//! which re-exports them beside its safe wrappers over `nix`.

pub mod ghost;
pub mod mapping;
pub mod os;

pub(crate) use mapping::{read_plain, Plain};
pub use mapping::{AtomicCell, Mapping};
