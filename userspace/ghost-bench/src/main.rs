//! `ghost-bench`: the benchmarks of ghost-rs (`make bench`).
//!
//! - `ghost-bench micro`: the ghOSt paper's microbenchmarks (SOSP'21,
//!   Table 3) and the CFS reference, on the running kernel (as root, with
//!   ghostfs); JSON on stdout or to `--json FILE`.
//! - `ghost-bench exec --enclave ID -- CMD...`: runs a command (and its
//!   children) in an enclave, for third-party workloads.
//! - `ghost-bench report DIR...`: turns what `scripts/bench` collected into
//!   `results.json`, SVG plots and the table with ratios to CFS.
//!
//! See `Documentation/ghost-rs/benchmarks.rst`.

mod micro;
mod report;
mod stats;
mod svg;
mod workloads;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "ghost-bench", version, about = "ghost-rs benchmarks")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// The paper's Table 3 microbenchmarks and the CFS reference, in
    /// interleaved rounds (needs root, the ghost kernel and CPUs 0-2 at
    /// least; CPU 0 stays out of the enclaves).
    Micro {
        /// Rounds; each runs every configuration once.
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// Measured iterations per configuration and round.
        #[arg(long, default_value_t = 200)]
        iters: usize,
        /// Unrecorded iterations before those.
        #[arg(long, default_value_t = 10)]
        warmup: usize,
        /// Group-commit sizes (one transaction per CPU: a size needs that
        /// many CPUs besides CPU 0 and the global agent's).
        #[arg(long, value_delimiter = ',', default_value = "1,10,32")]
        groups: Vec<usize>,
        /// Only the group commits of 2 transactions or more (of
        /// `--groups`), no other configuration: `make bench`'s second
        /// boot, which has the CPUs for them (34 for a group of 32).
        #[arg(long)]
        only_groups: bool,
        /// A label for the figures (the VM mode: icount, mttcg, ...).
        #[arg(long, default_value = "unlabelled")]
        mode: String,
        /// Write the JSON here instead of stdout.
        #[arg(long)]
        json: Option<PathBuf>,
        /// A short run that checks the program works (2 rounds of 20).
        #[arg(long)]
        smoke: bool,
    },
    /// Runs CMD in enclave ID: joins it (`tasks`), then executes CMD, whose
    /// children inherit the enclave.
    Exec {
        /// The enclave (`3`, `enclave_3` or its directory).
        #[arg(long)]
        enclave: String,
        /// The command and its arguments.
        #[arg(trailing_var_arg = true, required = true)]
        cmd: Vec<String>,
    },
    /// Checks a `ghost-bench micro` JSON file: it parses, has no error, and
    /// holds every figure its CPU count allows (`make test`'s smoke check;
    /// no timing is judged). Prints `PASS bench-smoke` or `FAIL
    /// bench-smoke: why`.
    Check {
        /// The JSON file.
        json: PathBuf,
    },
    /// Builds results.json, the plots and the table from the output
    /// directories of scripts/bench (one per mode).
    Report {
        /// Where to write results.json and the plots.
        #[arg(long)]
        out: PathBuf,
        /// The mode directories (micro.json, workloads.tsv, raw/).
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Micro {
            rounds,
            iters,
            warmup,
            groups,
            only_groups,
            mode,
            json,
            smoke,
        } => {
            let opts = if smoke {
                micro::Options {
                    rounds: 2,
                    iters: 20,
                    warmup: 2,
                    groups: vec![1, 2],
                    only_groups: false,
                    mode,
                }
            } else {
                micro::Options {
                    rounds: rounds.max(1),
                    iters: iters.max(1),
                    warmup,
                    groups,
                    only_groups,
                    mode,
                }
            };
            if let Err(e) = ghost::ghostfs::ensure_mounted() {
                eprintln!("ghost-bench: {e}");
                return ExitCode::FAILURE;
            }
            let out = micro::run(&opts);
            let text = match serde_json::to_string_pretty(&out) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("ghost-bench: JSON: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match json {
                Some(p) => {
                    if let Err(e) = std::fs::write(&p, text + "\n") {
                        eprintln!("ghost-bench: write {}: {e}", p.display());
                        return ExitCode::FAILURE;
                    }
                }
                None => println!("{text}"),
            }
            eprint!("{}", report::micro_table(&out));
            if out.errors.is_empty() {
                ExitCode::SUCCESS
            } else {
                for e in &out.errors {
                    eprintln!("ghost-bench: error: {e}");
                }
                ExitCode::FAILURE
            }
        }
        Cmd::Exec { enclave, cmd } => exec(&enclave, &cmd),
        Cmd::Check { json } => match micro::check(&json) {
            Ok(n) => {
                println!("PASS bench-smoke ({n} figures)");
                ExitCode::SUCCESS
            }
            Err(e) => {
                println!("FAIL bench-smoke: {e}");
                ExitCode::FAILURE
            }
        },
        Cmd::Report { out, dirs } => match report::report(&dirs, &out) {
            Ok(table) => {
                print!("{table}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("ghost-bench report: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

/// `ghost-bench exec`: joins the enclave, then replaces itself with `cmd`.
fn exec(enclave: &str, cmd: &[String]) -> ExitCode {
    use std::os::unix::process::CommandExt;
    let dir = match ghost::enclave::resolve(enclave) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("ghost-bench exec: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = dir.add_task(0) {
        eprintln!("ghost-bench exec: {e}");
        return ExitCode::FAILURE;
    }
    let Some((prog, args)) = cmd.split_first() else {
        return ExitCode::FAILURE;
    };
    let e = std::process::Command::new(prog).args(args).exec();
    eprintln!("ghost-bench exec: {prog}: {e}");
    ExitCode::from(127)
}
