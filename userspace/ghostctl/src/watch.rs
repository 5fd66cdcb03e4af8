//! `ghostctl watch`: a frame every interval until q, Ctrl-C, `--count`
//! frames, or the enclave's end.
//!
//! On a terminal each frame replaces the last (drawn by `ratatui`, see
//! [`term::Screen`]); into a pipe or file (or a terminal of no size),
//! frames follow one another, separated by a blank line, or one JSON
//! object per line with `--json`.

use std::io::Write;

use ghost::ghostfs::EnclaveDir;

use crate::cli::{exit, WatchArgs};
use crate::collect;
use crate::commands::Failure;
use crate::format::{frame_human, frame_json};
use crate::model::{Frame, Rates};
use crate::term::{self, Screen, Wake};

/// Runs `watch` on `e`; returns the exit code.
pub fn run(e: &EnclaveDir, args: &WatchArgs, json: bool) -> Result<u8, Failure> {
    term::catch_stop_signals()?;
    // A terminal is restored when `screen` drops (also on error).
    let mut screen = if !json && term::stdout_is_tty() {
        Screen::enter().map_err(|e| ghost::sys::io_error("set up the terminal", &e))?
    } else {
        None
    };
    let keys = screen.as_ref().is_some_and(Screen::keys);
    let mut prev: Option<Frame> = None;
    let mut shown = 0u64;
    loop {
        let frame = collect::frame(e);
        // Gone before or while it was read: say so, not a stale frame.
        if !e.path.is_dir() {
            eprintln!("ghostctl: enclave_{} was destroyed", e.id);
            return Ok(exit::NO_ENCLAVE);
        }
        let frame = frame?;
        let rates = Rates::between(prev.as_ref(), &frame);
        let written = if let Some(screen) = screen.as_mut() {
            let hint = if keys {
                "q or Ctrl-C quits"
            } else {
                "Ctrl-C quits"
            };
            screen.draw(&format!("{}\n({hint})", frame_human(&frame, &rates)))
        } else {
            let text = if json {
                format!("{}\n", frame_json(&frame, &rates))
            } else {
                format!(
                    "{}{}",
                    if shown > 0 { "\n" } else { "" },
                    frame_human(&frame, &rates)
                )
            };
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes()).and_then(|()| out.flush())
        };
        if written.is_err() {
            // The reader went away (a closed pipe): nothing more to show.
            return Ok(exit::OK);
        }
        shown += 1;
        if args.count.is_some_and(|n| shown >= n) {
            return Ok(exit::OK);
        }
        prev = Some(frame);
        match term::wait(args.interval, keys) {
            Wake::Quit | Wake::Signal(_) => return Ok(exit::OK),
            Wake::Timeout | Wake::Key(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::fixtures::fake_enclave;
    use std::time::Duration;

    #[test]
    fn frames_until_count_then_until_gone() {
        // `run` takes stop signals: keep other tests' signals away.
        let _serial = term::TEST_SIGNALS.lock();
        let dir = std::env::temp_dir().join(format!("ghostctl-watch-{}", std::process::id()));
        let (e, _) = fake_enclave(&dir);
        let mut args = WatchArgs {
            id: 1,
            interval: Duration::from_millis(10),
            count: Some(3),
        };
        assert_eq!(run(&e, &args, true), Ok(exit::OK));
        assert_eq!(run(&e, &args, false), Ok(exit::OK));
        std::fs::remove_dir_all(&dir).unwrap();
        args.count = None;
        assert_eq!(run(&e, &args, false), Ok(exit::NO_ENCLAVE));
    }
}
