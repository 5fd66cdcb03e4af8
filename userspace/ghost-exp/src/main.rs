//! `ghost-exp`: experiments and the in-VM test suite of ghost-rs.
//!
//! `ghost-exp suite [FILTER]` runs the integration tests against the running
//! kernel (which must be the ghost-rs kernel, as root, in a throwaway VM: the
//! tests mount ghostfs and poke at the scheduler). Each test prints one line,
//! `PASS <name> (<ms> ms)` or `FAIL <name>: <reason>`; the exit code is 0 only
//! when every selected test passed.
//!
//! `ghost-exp dispersive` is the dispersive-request experiment (short and
//! long requests served by worker threads, under CFS or in an enclave);
//! `make bench` runs it (see `Documentation/ghost-rs/benchmarks.rst`).

/// Fails the enclosing test with a formatted reason unless `$cond` holds.
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

mod dispersive;
mod fuzz;
mod harness;
mod simple;
mod suite;
mod tests;

use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!("usage: ghost-exp suite [FILTER]   run the in-VM tests whose name contains FILTER");
    eprintln!("       ghost-exp list             list the in-VM tests");
    eprintln!("       ghost-exp simple --enclave <id|path> [--verify] [--scale N] [SCENARIO ...]");
    eprintln!(
        "                                  ghOSt's simple_exp scenarios in a running enclave"
    );
    eprintln!(
        "       ghost-exp dispersive [--rate R] [--duration-ms D] [--workers W] [--enclave ID] ..."
    );
    eprintln!(
        "                                  the dispersive-request experiment (--help: options)"
    );
    eprintln!("       ghost-exp fuzz [--seed S] [--seconds N | --ops N]");
    eprintln!("                                  the seeded random-operation fuzzer (in the VM)");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("suite") => {
            let filter = args.get(1).map(String::as_str).unwrap_or("");
            if suite::run(filter) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Some("simple") => simple::main(&args[1..]),
        Some("fuzz") => fuzz::main(&args[1..]),
        Some("dispersive") => dispersive::main(&args[1..]),
        Some("list") => {
            for t in suite::all() {
                println!("{}", t.name);
            }
            ExitCode::SUCCESS
        }
        _ => usage(),
    }
}
