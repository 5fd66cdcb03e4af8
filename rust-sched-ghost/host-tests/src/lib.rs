//! Host tests of the kernel crate's pure files.
//!
//! `parse.rs`, `gtid.rs`, `sw.rs`, `ring.rs` and `gstate.rs` in
//! `rust-sched-ghost/` use only `core`, so the very source the kernel
//! compiles is compiled on the host by the tests in `tests/` (each
//! `#[path]`-includes its file) and exercised without a kernel. So is
//! `sys/list.rs` (the intrusive list), with its two kernel names (`Rq`,
//! `warn_once!`) stubbed in `tests/list.rs`:
//! `cargo test -p ghost-kernel-host-tests` (in `userspace/`, as part of
//! `cargo test --workspace`).
//!
//! This directory is not part of the kernel tree: `scripts/prepare-kernel`
//! leaves it out when it copies `rust-sched-ghost/` into the kernel tree.
//! The library itself is empty (Cargo needs a target besides the tests).
