//! Signals and the terminal, for the commands that run until stopped
//! (`watch`, `create --ephemeral`).
//!
//! SIGINT, SIGTERM and SIGHUP are caught by `signal-hook`: a thread reads
//! them, with their origin, and hands them to [`wait`] through a channel,
//! so a sleeping [`wait`] returns at once. A `watch` on a terminal draws
//! with `ratatui` and reads single keys through `crossterm`: the terminal
//! is in raw mode (so Ctrl-C arrives as a key, which quits like q) and is
//! restored on drop.

use std::io::{self, IsTerminal, Stdout};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::crossterm::{cursor, execute, terminal};
use ratatui::widgets::Paragraph;
use ratatui::Terminal;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::exfiltrator::WithOrigin;
use signal_hook::iterator::SignalsInfo;
use signal_hook::low_level::siginfo::Cause;

/// The signals that stop ghostctl's long-running commands.
pub const STOP_SIGNALS: [i32; 3] = [SIGINT, SIGTERM, SIGHUP];

/// The stop signals caught, once [`catch_stop_signals`] ran.
static STOPS: Mutex<Option<Receiver<Stop>>> = Mutex::new(None);

/// Catches [`STOP_SIGNALS`] (see the module documentation); the first call
/// installs the handlers, later ones do nothing.
pub fn catch_stop_signals() -> Result<(), ghost::Error> {
    let mut stops = STOPS.lock().unwrap_or_else(|e| e.into_inner());
    if stops.is_some() {
        return Ok(());
    }
    let mut signals = SignalsInfo::<WithOrigin>::new(STOP_SIGNALS)
        .map_err(|e| ghost::sys::io_error("catch SIGINT, SIGTERM and SIGHUP", &e))?;
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("ghostctl-signals".into())
        .spawn(move || {
            for origin in signals.forever() {
                let stop = Stop {
                    signal: origin.signal,
                    // kill(2), tgkill(2), sigqueue(3): a process; the
                    // terminal's Ctrl-C comes from the kernel.
                    by_process: matches!(origin.cause, Cause::Sent(_)),
                };
                if tx.send(stop).is_err() {
                    break;
                }
            }
        })
        .map_err(|e| ghost::sys::io_error("start the signal thread", &e))?;
    *stops = Some(rx);
    Ok(())
}

/// A caught stop signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stop {
    /// The signal number.
    pub signal: i32,
    /// Sent by a process rather than by the terminal.
    pub by_process: bool,
}

/// Takes a stop signal caught and not yet taken, if any.
pub fn take_stop() -> Option<Stop> {
    let stops = STOPS.lock().unwrap_or_else(|e| e.into_inner());
    stops.as_ref().and_then(|rx| rx.try_recv().ok())
}

/// Waits up to `left` for a stop signal (sleeps if none are caught).
fn wait_signal(left: Duration) -> Option<Stop> {
    let stops = STOPS.lock().unwrap_or_else(|e| e.into_inner());
    match stops.as_ref().map(|rx| rx.recv_timeout(left)) {
        Some(Ok(stop)) => Some(stop),
        Some(Err(RecvTimeoutError::Timeout)) => None,
        Some(Err(RecvTimeoutError::Disconnected)) | None => {
            drop(stops);
            std::thread::sleep(left);
            None
        }
    }
}

/// The longest single wait for a key before signals are checked again.
const SLICE: Duration = Duration::from_millis(50);

/// What ended a [`wait`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// The time passed.
    Timeout,
    /// A key was pressed (only with `keys`); Ctrl-C reads as `Quit`.
    Key(char),
    /// q, Q, Esc or Ctrl-C (only with `keys`).
    Quit,
    /// A stop signal arrived.
    Signal(Stop),
}

/// Sleeps for `timeout`, or less when a stop signal arrives or (with `keys`,
/// which needs a [`Screen`] with keys) a key is pressed.
pub fn wait(timeout: Duration, mut keys: bool) -> Wake {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if !keys {
            return wait_signal(left).map_or(Wake::Timeout, Wake::Signal);
        }
        if let Some(stop) = take_stop() {
            return Wake::Signal(stop);
        }
        if left.is_zero() {
            return Wake::Timeout;
        }
        match event::poll(left.min(SLICE)).and_then(|ready| {
            if ready {
                event::read().map(Some)
            } else {
                Ok(None)
            }
        }) {
            Ok(Some(Event::Key(k))) if k.kind != KeyEventKind::Release => {
                let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
                match k.code {
                    KeyCode::Char('c') if ctrl => return Wake::Quit,
                    KeyCode::Char('q' | 'Q') | KeyCode::Esc => return Wake::Quit,
                    KeyCode::Char(c) => return Wake::Key(c),
                    _ => {}
                }
            }
            Ok(_) => {}
            // The terminal went away: stop listening, keep the timing.
            Err(_) => keys = false,
        }
    }
}

/// Whether stdout is a terminal.
pub fn stdout_is_tty() -> bool {
    io::stdout().is_terminal()
}

/// The terminal a `watch` draws on: raw mode for single keys (when stdin is
/// a terminal), hidden cursor; both restored on drop, the last frame left
/// on the screen.
pub struct Screen {
    term: Terminal<CrosstermBackend<Stdout>>,
    keys: bool,
}

impl Screen {
    /// Takes over stdout, which must be a terminal; `None` if the terminal
    /// has no size to draw in (a pseudo-terminal nobody sized), where the
    /// frames are better printed one after another.
    pub fn enter() -> io::Result<Option<Self>> {
        if terminal::size().map_or(true, |(cols, rows)| cols == 0 || rows == 0) {
            return Ok(None);
        }
        let keys = io::stdin().is_terminal() && terminal::enable_raw_mode().is_ok();
        let mut term = match Terminal::new(CrosstermBackend::new(io::stdout())) {
            Ok(t) => t,
            Err(e) => {
                if keys {
                    let _ = terminal::disable_raw_mode();
                }
                return Err(e);
            }
        };
        // From here on `Drop` restores the terminal. Clear what the screen
        // showed: ratatui then only draws what changes between frames.
        let _ = term.hide_cursor();
        let _ = term.clear();
        Ok(Some(Self { term, keys }))
    }

    /// Whether keys can be read.
    pub fn keys(&self) -> bool {
        self.keys
    }

    /// Draws `text` over the whole screen.
    pub fn draw(&mut self, text: &str) -> io::Result<()> {
        let p = Paragraph::new(text.to_string());
        self.term.draw(|f| f.render_widget(p, f.area())).map(|_| ())
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let _ = self.term.show_cursor();
        // Below the last frame, which stays on the screen.
        let rows = self.term.size().map_or(0, |s| s.height);
        let _ = execute!(
            io::stdout(),
            cursor::MoveTo(0, rows.saturating_sub(1)),
            cursor::Show
        );
        if self.keys {
            let _ = terminal::disable_raw_mode();
        }
        println!();
    }
}

/// Serialises the tests that send themselves stop signals: the channel is
/// process-wide.
#[cfg(test)]
pub static TEST_SIGNALS: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::getpid;

    #[test]
    fn wait_times_out_and_sees_signals() {
        let _serial = TEST_SIGNALS.lock();
        let t = Instant::now();
        assert_eq!(wait(Duration::from_millis(20), false), Wake::Timeout);
        assert!(t.elapsed() >= Duration::from_millis(20));

        catch_stop_signals().unwrap();
        kill(getpid(), Signal::SIGHUP).unwrap();
        assert_eq!(
            wait(Duration::from_secs(5), false),
            Wake::Signal(Stop {
                signal: SIGHUP,
                by_process: true
            })
        );
        assert_eq!(take_stop(), None);
    }
}
