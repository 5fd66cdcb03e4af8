//! Signals and the terminal, for the commands that run until stopped
//! (`watch`, `create --ephemeral`).
//!
//! SIGINT, SIGTERM and SIGHUP only set a flag (no `SA_RESTART`, so a
//! sleeping [`wait`] returns at once); the loops check it. A `watch` on a
//! terminal reads single keys: stdin goes to non-canonical mode without echo
//! (signals stay on, so Ctrl-C still works) and is restored on drop.

use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// The last stop signal caught, 0 for none.
static STOP_SIGNAL: AtomicI32 = AtomicI32::new(0);
/// Whether that signal was sent by a process (`kill(2)`), rather than by the
/// kernel (the terminal's Ctrl-C, which reaches the whole foreground group).
static SENT_BY_PROCESS: AtomicBool = AtomicBool::new(false);

/// The signals that stop ghostctl's long-running commands.
pub const STOP_SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

extern "C" fn on_stop(sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut c_void) {
    // SAFETY: an `SA_SIGINFO` handler gets a valid `siginfo_t`.
    let code = unsafe { (*info).si_code };
    // SI_USER (0), SI_QUEUE (-1), SI_TKILL (-6): sent by a process;
    // SI_KERNEL (0x80): the terminal driver.
    SENT_BY_PROCESS.store(code <= 0, Ordering::Relaxed);
    STOP_SIGNAL.store(sig, Ordering::Release);
}

/// Catches [`STOP_SIGNALS`] (see the module documentation).
pub fn catch_stop_signals() -> Result<(), ghost::Error> {
    for sig in STOP_SIGNALS {
        // SAFETY: `sigaction` is plain old data, valid when zeroed.
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = on_stop as *const () as libc::sighandler_t;
        sa.sa_flags = libc::SA_SIGINFO;
        // SAFETY: `sa` is initialised (empty mask, an `SA_SIGINFO`
        // handler); no old action is asked for.
        if unsafe { libc::sigaction(sig, &sa, std::ptr::null_mut()) } != 0 {
            return Err(ghost::Error::last(format!("sigaction({sig})")));
        }
    }
    Ok(())
}

/// A caught stop signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stop {
    /// The signal number.
    pub signal: libc::c_int,
    /// Sent by a process rather than by the terminal.
    pub by_process: bool,
}

/// Takes the stop signal caught since the last call, if any.
pub fn take_stop() -> Option<Stop> {
    match STOP_SIGNAL.swap(0, Ordering::Acquire) {
        0 => None,
        signal => Some(Stop {
            signal,
            by_process: SENT_BY_PROCESS.load(Ordering::Relaxed),
        }),
    }
}

/// The longest single sleep of [`wait`], in milliseconds.
const SLICE_MS: u128 = 100;

/// What ended a [`wait`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// The time passed.
    Timeout,
    /// A key was pressed (only with `keys`).
    Key(u8),
    /// A stop signal arrived.
    Signal(Stop),
}

/// Sleeps for `timeout`, or less when a stop signal arrives or (with `keys`,
/// which needs a [`RawTerminal`]) a key is pressed.
pub fn wait(timeout: Duration, keys: bool) -> Wake {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(stop) = take_stop() {
            return Wake::Signal(stop);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Wake::Timeout;
        }
        // Short slices: a signal that lands just before `poll`, or on
        // another thread, is seen within one slice.
        let ms = left.as_millis().clamp(1, SLICE_MS) as libc::c_int;
        let mut pfd = libc::pollfd {
            fd: libc::STDIN_FILENO,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `pfd` is one valid `pollfd` (none when `keys` is off).
        let n = unsafe { libc::poll(&mut pfd, libc::nfds_t::from(keys), ms) };
        if n > 0 && pfd.revents & libc::POLLIN != 0 {
            let mut b = 0u8;
            // SAFETY: reads at most one byte into `b`.
            let r = unsafe { libc::read(libc::STDIN_FILENO, (&mut b as *mut u8).cast(), 1) };
            if r == 1 {
                return Wake::Key(b);
            }
            // End of input or an error: stop listening, keep the timing.
            return wait(deadline.saturating_duration_since(Instant::now()), false);
        }
    }
}

/// Whether file descriptor `fd` is a terminal.
pub fn is_tty(fd: libc::c_int) -> bool {
    // SAFETY: no pointers; any fd number is allowed.
    unsafe { libc::isatty(fd) == 1 }
}

/// Stdin in non-canonical mode without echo, restored on drop.
pub struct RawTerminal {
    saved: libc::termios,
}

impl RawTerminal {
    /// Switches stdin, if it is a terminal; `None` otherwise.
    pub fn enter() -> Option<Self> {
        if !is_tty(libc::STDIN_FILENO) {
            return None;
        }
        // SAFETY: `termios` is plain old data, valid when zeroed.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: `saved` is a valid out-pointer.
        if unsafe { libc::tcgetattr(libc::STDIN_FILENO, &mut saved) } != 0 {
            return None;
        }
        let mut raw = saved;
        raw.c_lflag &= !(libc::ICANON | libc::ECHO);
        raw.c_cc[libc::VMIN] = 1;
        raw.c_cc[libc::VTIME] = 0;
        // SAFETY: `raw` is a valid `termios` derived from the current one.
        if unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &raw) } != 0 {
            return None;
        }
        Some(Self { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        // SAFETY: restores the settings read in `enter`.
        unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &self.saved) };
    }
}

/// Serialises the tests that send themselves stop signals: the flag is
/// process-wide.
#[cfg(test)]
pub static TEST_SIGNALS: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_times_out_and_sees_signals() {
        let _serial = TEST_SIGNALS.lock();
        let t = Instant::now();
        assert_eq!(wait(Duration::from_millis(20), false), Wake::Timeout);
        assert!(t.elapsed() >= Duration::from_millis(20));

        catch_stop_signals().unwrap();
        // SAFETY: sends SIGHUP to this process, whose handler only stores
        // atomics.
        unsafe { libc::kill(libc::getpid(), libc::SIGHUP) };
        assert_eq!(
            wait(Duration::from_secs(5), false),
            Wake::Signal(Stop {
                signal: libc::SIGHUP,
                by_process: true
            })
        );
        assert_eq!(take_stop(), None);
    }
}
