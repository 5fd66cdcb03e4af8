//! `ghostctl create --ephemeral`: keeping an ephemeral enclave alive.
//!
//! The kernel destroys an ephemeral enclave when the last thread of the
//! process that created it exits. ghostctl is that process, so instead of
//! returning it stays in the foreground:
//!
//! - without a command, until SIGINT (Ctrl-C), SIGTERM or SIGHUP, then exits
//!   0, which destroys the enclave; if the enclave is destroyed by someone
//!   else first, it exits 3;
//! - with a command (after `--`), it runs it, with `{}` in its arguments
//!   replaced by the enclave id and `GHOST_ENCLAVE_ID` and `GHOST_ENCLAVE`
//!   (the directory) in its environment, and exits with the command's exit
//!   code (128 + N if signal N killed it). SIGTERM, SIGHUP and SIGINT sent to
//!   ghostctl by a process are passed on to the command; a Ctrl-C from the
//!   terminal reaches the command directly (same foreground process group),
//!   and ghostctl waits for it to exit.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus};
use std::time::Duration;

use ghost::ghostfs::EnclaveDir;

use crate::cli::exit;
use crate::commands::Failure;
use crate::term::{self, Wake};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// How often the enclave's existence (or the command's exit) is checked.
const POLL: Duration = Duration::from_millis(200);

/// `command` with every `{}` in its words replaced by `id`.
pub fn substitute(command: &[String], id: u64) -> Vec<String> {
    let id = id.to_string();
    command.iter().map(|a| a.replace("{}", &id)).collect()
}

/// The exit code a shell would report for `status`.
pub fn shell_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(c), _) => (c & 0xff) as u8,
        (None, Some(sig)) => (128 + sig).clamp(0, 255) as u8,
        (None, None) => exit::FAILED,
    }
}

/// Holds the ephemeral enclave `e` as described in the module
/// documentation; returns the exit code.
pub fn hold(e: &EnclaveDir, command: &[String]) -> Result<u8, Failure> {
    term::catch_stop_signals()?;
    let words = substitute(command, e.id);
    match words.split_first() {
        None => Ok(until_stopped(e)),
        Some((prog, args)) => run_command(e, prog, args),
    }
}

/// Waits for a stop signal ([`exit::OK`]) or the enclave's end
/// ([`exit::NO_ENCLAVE`]).
fn until_stopped(e: &EnclaveDir) -> u8 {
    eprintln!(
        "ghostctl: holding ephemeral enclave_{}; Ctrl-C or SIGTERM destroys it",
        e.id
    );
    loop {
        if let Wake::Signal(_) = term::wait(POLL, false) {
            return exit::OK;
        }
        if !e.path.is_dir() {
            eprintln!("ghostctl: enclave_{} was destroyed", e.id);
            return exit::NO_ENCLAVE;
        }
    }
}

/// Runs `prog args` until it exits, passing on stop signals sent to
/// ghostctl by a process; returns its exit code.
pub(crate) fn run_command(e: &EnclaveDir, prog: &str, args: &[String]) -> Result<u8, Failure> {
    let what = || {
        format!(
            "run `{prog}{}{}`",
            if args.is_empty() { "" } else { " " },
            args.join(" ")
        )
    };
    let mut child = Command::new(prog)
        .args(args)
        .env("GHOST_ENCLAVE_ID", e.id.to_string())
        .env("GHOST_ENCLAVE", &e.path)
        .spawn()
        .map_err(|err| ghost::Error::sys(what(), err.raw_os_error().unwrap_or(0)))?;
    let pid = i32::try_from(child.id()).unwrap_or(0);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(shell_code(status)),
            Ok(None) => {}
            Err(err) => {
                let what = format!("waitpid({pid}) for {}", what());
                return Err(ghost::Error::sys(what, err.raw_os_error().unwrap_or(0)).into());
            }
        }
        if let Wake::Signal(stop) = term::wait(POLL, false) {
            if stop.by_process && pid > 0 {
                // Our own child, not reaped (`try_wait` returned `None`
                // above), so `pid` is still it.
                if let Ok(sig) = Signal::try_from(stop.signal) {
                    let _ = kill(Pid::from_raw(pid), sig);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitution() {
        let cmd: Vec<String> = [
            "agent",
            "--enclave",
            "{}",
            "/sys/fs/ghost/enclave_{}/x",
            "{",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            substitute(&cmd, 7),
            ["agent", "--enclave", "7", "/sys/fs/ghost/enclave_7/x", "{"]
        );
    }

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn runs_the_command_and_passes_signals_on() {
        let _serial = term::TEST_SIGNALS.lock();
        let e = EnclaveDir {
            id: 42,
            path: "/tmp/enclave_42".into(),
        };
        let check = r#"test "$GHOST_ENCLAVE_ID" = 42 && test "$GHOST_ENCLAVE" = /tmp/enclave_42 && test "$0" = 42 && exit 5"#;
        assert_eq!(hold(&e, &words(&["/bin/sh", "-c", check, "{}"])), Ok(5));

        // A SIGTERM sent to ghostctl goes on to the command.
        let killer = std::thread::spawn(|| {
            std::thread::sleep(Duration::from_millis(300));
            kill(nix::unistd::getpid(), Signal::SIGTERM).unwrap();
        });
        assert_eq!(hold(&e, &words(&["/bin/sleep", "10"])), Ok(128 + 15));
        killer.join().unwrap();

        let err = hold(&e, &words(&["/nonexistent/prog", "a"])).unwrap_err();
        assert_eq!(err.code, exit::FAILED);
        assert!(
            err.message.starts_with("run `/nonexistent/prog a`: ENOENT"),
            "{err}"
        );
    }

    #[test]
    fn exit_codes_like_a_shell() {
        let run = |script: &str| {
            let st = Command::new("/bin/sh")
                .args(["-c", script])
                .status()
                .unwrap();
            shell_code(st)
        };
        assert_eq!(run("exit 0"), 0);
        assert_eq!(run("exit 7"), 7);
        assert_eq!(run("kill -TERM $$"), 128 + 15);
    }
}
