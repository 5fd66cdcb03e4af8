//! `ghostctl`: inspect and control ghOSt enclaves from a shell.
//!
//! `list`, `create`, `destroy`, `status`, `tasks add|remove|list`,
//! `set`/`get` of tunables, `watch` (a live per-CPU view) and `run` (a
//! command inside an enclave, optionally a new one with its own agent), with human
//! output by default and `--json` for scripts. Documentation/ghost-rs/
//! ghostctl.rst is the manual; `ghostctl --help` lists the exit codes.
//!
//! Layout: [`cli`] parses, [`commands`] acts through the `ghost` library,
//! [`collect`] reads the kernel's state into [`model`], which [`format`]
//! prints (pure, tested without a kernel); [`mapped`] maps `cpu_data` and
//! the status-word regions read-only, [`term`] handles signals and the
//! terminal, [`watch`], [`hold`] and [`run`] are the commands that keep
//! running.

mod cli;
mod collect;
mod commands;
mod format;
mod hold;
mod mapped;
mod model;
mod run;
mod term;
mod watch;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Usage errors exit 2 (clap's code, also `cli::exit::USAGE`); --help
    // and --version exit 0.
    let cli = cli::Cli::parse();
    match commands::run(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("ghostctl: {f}");
            ExitCode::from(f.code)
        }
    }
}
