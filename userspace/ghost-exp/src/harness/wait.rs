//! Bounded waits: every wait of a test gives up only after a cap that
//! catches a hang, and says where it waited (FILE:LINE) when it does.

use std::time::{Duration, Instant};

/// The least a wait for something that should happen gives it before the
/// test fails (ms): a cap that only catches a hang. On a quiet machine
/// what the suite waits for takes milliseconds to seconds; on a loaded one
/// (other VMs, a kernel build, `make test-stress`) TCG can stop the VM's
/// vCPUs for many seconds at a time.
pub(crate) const HANG_FLOOR_MS: u64 = 300_000;

/// How long a wait nominally of `ms` may last before it fails: `ms`, but at
/// least [`HANG_FLOOR_MS`].
pub(crate) fn hang_cap(ms: u64) -> u64 {
    ms.max(HANG_FLOOR_MS)
}

/// Waits for `f` to hold. `ms` is how long it should take at most on a
/// quiet machine; the wait gives up only after [`hang_cap`]`(ms)` (a hang),
/// printing where it waited and the ghost threads' states and kernel
/// stacks (the caller's failure message says what it waited for).
/// Not for waits whose expected outcome is that `f` never holds.
#[track_caller]
pub(crate) fn wait_for(ms: u64, mut f: impl FnMut() -> bool) -> bool {
    let at = std::panic::Location::caller();
    let cap = hang_cap(ms);
    let start = Instant::now();
    let end = start + Duration::from_millis(cap);
    let mut late = false;
    while Instant::now() < end {
        if f() {
            if late {
                println!(
                    "  (slow: the wait at {at} took {:.1} s, nominally {ms} ms)",
                    start.elapsed().as_secs_f64()
                );
            }
            return true;
        }
        late = start.elapsed() > Duration::from_millis(ms.max(1000) * 2);
        std::thread::sleep(Duration::from_millis(2));
    }
    let held = f();
    if !held {
        println!(
            "  TIMEOUT: the wait at {at} gave up after {} s (nominally {ms} ms); {}",
            cap / 1000,
            super::sys::ghost_states()
        );
    }
    held
}

/// Waits until `done()` holds, for as long as `progress()` keeps changing:
/// fails (returns false) only when it has not changed for `stall_ms`, or
/// after `cap_ms` in all (a cap that only catches a hang). A slow or busy
/// machine makes progress slowly, not never. Every [`HEARTBEAT`] it says
/// where it waits, the progress so far and the ghost tasks' states, so that
/// a slow wait is not a silent one.
#[track_caller]
pub(crate) fn wait_while_progressing(
    stall_ms: u64,
    cap_ms: u64,
    mut progress: impl FnMut() -> u64,
    mut done: impl FnMut() -> bool,
) -> bool {
    let at = std::panic::Location::caller();
    let start = Instant::now();
    let mut last = progress();
    let mut last_change = Instant::now();
    let mut said = Instant::now();
    loop {
        if done() {
            return true;
        }
        let now = progress();
        if now != last {
            last = now;
            last_change = Instant::now();
        }
        if last_change.elapsed() > Duration::from_millis(stall_ms)
            || start.elapsed() > Duration::from_millis(cap_ms)
        {
            return done();
        }
        if said.elapsed() > HEARTBEAT {
            said = Instant::now();
            println!(
                "  still waiting at {at} after {} s: progress {now}, last change {} s ago; {}",
                start.elapsed().as_secs(),
                last_change.elapsed().as_secs(),
                super::sys::ghost_states()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// How often [`wait_while_progressing`] says it still waits.
const HEARTBEAT: Duration = Duration::from_secs(60);
