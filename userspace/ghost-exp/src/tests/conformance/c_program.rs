//! The C conformance program, `c/abi_conformance.c` (built by `build.rs`
//! against `linux/include/uapi/linux/ghost.h` and libc only): what ghOSt's
//! userspace library does when it runs an agent, checked the way that
//! library CHECKs it, from outside the Rust crates. Each scenario is one
//! test; the program prints `FAIL: [who] scenario: reason` (one line) on
//! failure and bounds its own waits by lack of progress (120 s), so the cap
//! here only catches a program that cannot end itself.

use crate::harness::sys::{self, Exit};
use crate::harness::Proc;
use crate::harness::Test;
use std::path::Path;

/// `c_<scenario>` tests running `ghost-abi-conformance <scenario>`.
macro_rules! c_tests {
    ($($scenario:ident),* $(,)?) => {
        &[$(Test {
            name: concat!("c_", stringify!($scenario)),
            run: || run(stringify!($scenario)),
        }),*]
    };
}

/// The `c_*` tests, in the order they run.
pub const TESTS: &[Test] = c_tests!(
    enclave_files,
    agent_start_stop,
    schedule_tasks,
    ping_and_rpc_wake,
    priority_changed,
    latched_affinity,
);

/// Seconds before a program that did not end itself is killed.
const HANG_CAP_S: u64 = 900;

/// Runs `ghost-abi-conformance <scenario>`; its `info:` lines are shown.
fn run(scenario: &str) -> Result<(), String> {
    sys::ensure_ghostfs()?;
    let exe = Path::new(env!("GHOST_ABI_CONFORMANCE_BIN"));
    let mut p = Proc::start_exe(exe, "ghost-abi-conformance", &[scenario])?;
    let exit = p.wait(HANG_CAP_S)?;
    let out = p.output();
    for line in out.lines().filter(|l| l.starts_with("info: ")) {
        println!("  {line}");
    }
    if exit == Exit::Code(0) && out.lines().any(|l| l.starts_with("PASS ")) {
        return Ok(());
    }
    Err(match out.lines().find_map(|l| l.strip_prefix("FAIL: ")) {
        Some(reason) => reason.to_string(),
        None => format!(
            "ended {exit:?} without a FAIL line; its last line: {:?}",
            out.lines().last().unwrap_or("")
        ),
    })
}
