//! `ghost-agent`: runs a bundled scheduling policy as the agent of an
//! enclave.
//!
//! ```text
//! ghost-agent fifo --cpus 1-3
//! ghost-agent fifo-central --cpus 1-3 [--global-cpu N] [--preemption-time-slice 50us] [--sync-group]
//! ghost-agent shinjuku --cpus 1-3 [--global-cpu N] [--preemption-time-slice 30us]
//! ghost-agent sol --cpus 1-3 [--global-cpu N] [--preemption-time-slice TIME]
//! ghost-agent fair --cpus 1-3 [--no-ticks]
//! ghost-agent edf --cpus 1-3 [--global-cpu N] [--preemption-granularity 100us] [--table PATH]
//! ghost-agent fifo --enclave 1          # attach (take over from a running agent)
//! ```
//!
//! Without `--enclave` it creates an enclave with the first free id and
//! destroys it when it stops (unless `--keep-enclave`), so that its tasks go
//! back to CFS. With `--enclave` it leaves the enclave in place for the next
//! agent. `SIGINT`/`SIGTERM` stop it and print statistics; `SIGUSR1` prints
//! the run queues.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use ghost::agent::{self, AgentConfig, CommitMode, Report};
use ghost::cpus::CpuSet;
use ghost::enclave::{self, Enclave};
use ghost::ghostfs::{self, EnclaveDir, Tunable};
use ghost::gtid::Layout;
use ghost::policies::edf::{self, DeadlineTable, Edf};
use ghost::policies::fair::Fair;
use ghost::policies::fifo::Fifo;
use ghost::policies::fifo_central::FifoCentral;
use ghost::policies::shinjuku::Shinjuku;
use ghost::policies::sol::Sol;
use ghost::scheduler::Model;
use ghost::{sys, Error, Result};

/// Run a bundled ghOSt scheduling policy as the agent of an enclave.
///
/// Stop it with Ctrl-C (SIGINT) or SIGTERM: it prints statistics. SIGUSR1
/// prints the run queues.
#[derive(Parser, Debug)]
#[command(name = "ghost-agent", version)]
struct Cli {
    #[command(subcommand)]
    policy: PolicyCmd,
}

#[derive(Subcommand, Debug)]
enum PolicyCmd {
    /// Per-CPU FIFO: every CPU has an agent and a FIFO run queue; new tasks
    /// are spread round-robin.
    Fifo(Common),
    /// Centralized FIFO: one global agent on a CPU of its own runs a single
    /// FIFO queue on the other CPUs.
    FifoCentral(Central),
    /// Shinjuku: centralized FIFO of requests, preempting a task that has
    /// run a time slice (30 µs by default) while others wait; for
    /// µs-scale tail latency with dispersive request times.
    Shinjuku(ShinjukuArgs),
    /// SOL ("speed of light"): centralized FIFO committing each round as
    /// one sync group, offering a CPU only tasks whose commit can succeed.
    Sol(SolArgs),
    /// Fair share: per-CPU run queues ordered by virtual runtime with nice
    /// weights; idle CPUs steal work; preemption at every tick.
    Fair(FairArgs),
    /// Earliest deadline first: centralized; tasks declare relative
    /// deadlines in a shared-memory table (--table); tasks without one run
    /// after them, first come first served.
    Edf(EdfArgs),
}

/// Options of every policy.
#[derive(Args, Debug)]
struct Common {
    /// The enclave's CPUs, as a cpulist (`1-3`, `1,3-5`). Required to
    /// create an enclave; with --enclave, the enclave's CPUs by default.
    #[arg(long, value_parser = parse_cpus, value_name = "CPULIST")]
    cpus: Option<CpuSet>,

    /// Attach to an existing enclave (`3`, `enclave_3` or its directory)
    /// instead of creating one. If it has an agent, wait for that agent to
    /// go and take over its tasks (in-place upgrade).
    #[arg(long, value_name = "DIR|ID", conflicts_with_all = ["ephemeral", "keep_enclave"])]
    enclave: Option<String>,

    /// Create the enclave ephemeral: the kernel destroys it when this
    /// process exits, however it exits.
    #[arg(long, conflicts_with = "keep_enclave")]
    ephemeral: bool,

    /// Do not destroy the enclave this agent created when it stops: its
    /// tasks wait for the next agent (`ghost-agent ... --enclave ID`).
    #[arg(long)]
    keep_enclave: bool,

    /// Slots per message queue (a power of two, at most 65536).
    #[arg(long, default_value_t = 65536, value_parser = parse_elems, value_name = "N")]
    queue_elems: u32,

    /// Do not lock the agent's memory (mlockall).
    #[arg(long)]
    no_mlock: bool,
}

/// Options of the centralized policy.
#[derive(Args, Debug)]
struct Central {
    #[command(flatten)]
    common: Common,

    /// The global agent's CPU (default: the first CPU).
    #[arg(long, value_name = "CPU")]
    global_cpu: Option<usize>,

    /// Preempt a task that has run this long while others wait (`50us`,
    /// `2ms`, `1.5ms`). Default: never.
    #[arg(long, value_parser = parse_duration, value_name = "TIME")]
    preemption_time_slice: Option<Duration>,

    /// Commit each round's transactions as one sync group (all or nothing).
    #[arg(long)]
    sync_group: bool,
}

/// Options of Shinjuku.
#[derive(Args, Debug)]
struct ShinjukuArgs {
    #[command(flatten)]
    common: Common,

    /// The global agent's CPU (default: the first CPU).
    #[arg(long, value_name = "CPU")]
    global_cpu: Option<usize>,

    /// Preempt a task that has run this long while others wait.
    #[arg(long, value_parser = parse_duration, value_name = "TIME", default_value = "30us")]
    preemption_time_slice: Duration,
}

/// Options of SOL.
#[derive(Args, Debug)]
struct SolArgs {
    #[command(flatten)]
    common: Common,

    /// The global agent's CPU (default: the first CPU).
    #[arg(long, value_name = "CPU")]
    global_cpu: Option<usize>,

    /// Preempt a task that has run this long while others wait. Default:
    /// never.
    #[arg(long, value_parser = parse_duration, value_name = "TIME")]
    preemption_time_slice: Option<Duration>,
}

/// Options of the fair-share policy.
#[derive(Args, Debug)]
struct FairArgs {
    #[command(flatten)]
    common: Common,

    /// Leave the enclave's `deliver_ticks` as it is. By default the agent
    /// turns it on: each tick wakes the CPU's agent, which then runs the
    /// least-served task; without ticks a task runs until it blocks,
    /// yields or a message comes for its CPU.
    #[arg(long)]
    no_ticks: bool,
}

/// Options of EDF.
#[derive(Args, Debug)]
struct EdfArgs {
    #[command(flatten)]
    common: Common,

    /// The global agent's CPU (default: the first CPU).
    #[arg(long, value_name = "CPU")]
    global_cpu: Option<usize>,

    /// A waiting task with an earlier deadline replaces a running one once
    /// that has run this long.
    #[arg(long, value_parser = parse_duration, value_name = "TIME", default_value = "100us")]
    preemption_granularity: Duration,

    /// Where to publish the deadline table workloads write (a symbolic
    /// link to the agent's memfd). Default: /dev/shm/ghost-edf-<enclave
    /// id>.
    #[arg(long, value_name = "PATH")]
    table: Option<PathBuf>,

    /// Slots of the deadline table: the most threads with a deadline.
    #[arg(long, value_name = "N", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(edf::table::MAX_SLOTS)))]
    table_slots: u32,
}

fn parse_cpus(s: &str) -> std::result::Result<CpuSet, String> {
    let set = CpuSet::parse(s)?;
    if set.is_empty() {
        return Err("no CPUs".into());
    }
    Ok(set)
}

fn parse_elems(s: &str) -> std::result::Result<u32, String> {
    let n: u32 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    if !n.is_power_of_two() || n > ghost_abi::GHOST_MAX_QUEUE_ELEMS {
        return Err(format!("{n} is not a power of two from 1 to 65536"));
    }
    Ok(n)
}

/// Parses `50us`, `2ms`, `1.5ms`, `100ns`, `1s` (a positive number and a
/// unit).
fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let scale = match unit {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "" => return Err(format!("`{s}` needs a unit: ns, us, ms or s")),
        _ => return Err(format!("unknown unit `{unit}`: use ns, us, ms or s")),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{num}` is not a number"))?;
    let d = Duration::try_from_secs_f64(n * scale).map_err(|e| format!("`{s}`: {e}"))?;
    if d.is_zero() {
        return Err("the time slice must be longer than 0".into());
    }
    Ok(d)
}

/// The policy to run, with its settings.
#[derive(Debug)]
enum Choice {
    Fifo,
    FifoCentral {
        slice: Option<Duration>,
    },
    Shinjuku {
        slice: Duration,
    },
    Sol {
        slice: Option<Duration>,
    },
    Fair {
        ticks: bool,
    },
    Edf {
        granularity: Duration,
        table: Option<PathBuf>,
        slots: u32,
    },
}

/// The centralized model on `cpus` with the global agent on `global_cpu`
/// (default: the first CPU), for policy `name`.
fn centralized(cpus: &CpuSet, global_cpu: Option<usize>, name: &str) -> Result<Model> {
    let first = cpus
        .iter()
        .next()
        .ok_or_else(|| Error::msg("--cpus", "the enclave has no CPUs"))?;
    let global_cpu = global_cpu.unwrap_or(first);
    if !cpus.contains(global_cpu) {
        return Err(Error::msg(
            "--global-cpu",
            format!("CPU {global_cpu} is not one of {cpus}"),
        ));
    }
    if cpus.len() < 2 {
        return Err(Error::msg(
            name,
            "needs two CPUs or more: one for the global agent, the others for tasks",
        ));
    }
    Ok(Model::Centralized { global_cpu })
}

impl Cli {
    fn common(&self) -> &Common {
        match &self.policy {
            PolicyCmd::Fifo(c) => c,
            PolicyCmd::FifoCentral(c) => &c.common,
            PolicyCmd::Shinjuku(c) => &c.common,
            PolicyCmd::Sol(c) => &c.common,
            PolicyCmd::Fair(c) => &c.common,
            PolicyCmd::Edf(c) => &c.common,
        }
    }

    fn name(&self) -> &'static str {
        match &self.policy {
            PolicyCmd::Fifo(_) => "fifo",
            PolicyCmd::FifoCentral(_) => "fifo-central",
            PolicyCmd::Shinjuku(_) => "shinjuku",
            PolicyCmd::Sol(_) => "sol",
            PolicyCmd::Fair(_) => "fair",
            PolicyCmd::Edf(_) => "edf",
        }
    }

    /// The runtime settings for an enclave with CPUs `enclave_cpus`.
    fn config(&self, enclave_cpus: &CpuSet) -> Result<(AgentConfig, Choice)> {
        let c = self.common();
        let cpus = match &c.cpus {
            Some(want) if want != enclave_cpus => {
                return Err(Error::msg(
                    "--cpus",
                    format!("the enclave's CPUs are {enclave_cpus}, not {want}"),
                ))
            }
            _ => enclave_cpus.clone(),
        };
        let name = self.name();
        let (model, commit, policy) = match &self.policy {
            PolicyCmd::Fifo(_) => (Model::PerCpu, CommitMode::Each, Choice::Fifo),
            PolicyCmd::FifoCentral(f) => {
                let commit = if f.sync_group {
                    CommitMode::SyncGroup
                } else {
                    CommitMode::Each
                };
                let slice = f.preemption_time_slice;
                (
                    centralized(&cpus, f.global_cpu, name)?,
                    commit,
                    Choice::FifoCentral { slice },
                )
            }
            PolicyCmd::Shinjuku(f) => (
                centralized(&cpus, f.global_cpu, name)?,
                CommitMode::Each,
                Choice::Shinjuku {
                    slice: f.preemption_time_slice,
                },
            ),
            PolicyCmd::Sol(f) => (
                centralized(&cpus, f.global_cpu, name)?,
                CommitMode::SyncGroup,
                Choice::Sol {
                    slice: f.preemption_time_slice,
                },
            ),
            PolicyCmd::Fair(f) => (
                Model::PerCpu,
                CommitMode::Each,
                Choice::Fair { ticks: !f.no_ticks },
            ),
            PolicyCmd::Edf(f) => (
                centralized(&cpus, f.global_cpu, name)?,
                CommitMode::Each,
                Choice::Edf {
                    granularity: f.preemption_granularity,
                    table: f.table.clone(),
                    slots: f.table_slots,
                },
            ),
        };
        let mut cfg = AgentConfig::new(cpus, model);
        cfg.queue_elems = c.queue_elems;
        cfg.commit = commit;
        cfg.mlock = !c.no_mlock;
        Ok((cfg, policy))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Until the runtime takes over the signals, a Ctrl-C must not kill the
    // process between creating an enclave and running (it would stay
    // behind): keep it pending for the runtime.
    let _ = sys::sigmask(
        libc::SIG_BLOCK,
        &[libc::SIGINT, libc::SIGTERM, libc::SIGUSR1],
    );
    match main_with(&cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ghost-agent: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main_with(cli: &Cli) -> Result<ExitCode> {
    let c = cli.common();
    ghostfs::ensure_mounted()?;
    let (dir, created) = match &c.enclave {
        Some(spec) => (enclave::resolve(spec)?, false),
        None => {
            let cpus = c.cpus.as_ref().ok_or_else(|| {
                Error::msg(
                    "ghost-agent",
                    "give --cpus to create an enclave, or --enclave to use one",
                )
            })?;
            (enclave::create(cpus, c.ephemeral)?, true)
        }
    };
    let result = run_on(cli, &dir, created);
    // Statistics first: should destroying go wrong, they are out.
    let code = match &result {
        Ok(report) => print_report(report),
        Err(e) => {
            eprintln!("ghost-agent: {e}");
            ExitCode::FAILURE
        }
    };
    if created && !c.keep_enclave {
        // Tasks go back to CFS rather than wait for an agent.
        match dir.destroy() {
            Ok(()) => eprintln!(
                "ghost-agent: destroyed enclave_{}: its tasks are back in CFS",
                dir.id
            ),
            Err(e) => eprintln!("ghost-agent: {e}"),
        }
    }
    Ok(code)
}

/// Prints what a run did; its exit code.
fn print_report(report: &Report) -> ExitCode {
    if report.started {
        println!("{}", report.table());
    } else {
        eprintln!("ghost-agent: stopped before the agents started");
    }
    for w in &report.warnings {
        eprintln!("ghost-agent: warning: {w}");
    }
    match &report.failure {
        Some(e) => {
            eprintln!("ghost-agent: {e}");
            ExitCode::FAILURE
        }
        None => ExitCode::SUCCESS,
    }
}

/// Runs the policy on the enclave of `dir` until a signal stops it.
fn run_on(cli: &Cli, dir: &EnclaveDir, created: bool) -> Result<Report> {
    let enclave = Arc::new(Enclave::open(dir.clone())?);
    let (cfg, policy) = cli.config(&enclave.cpus()?)?;
    let id = enclave.id();
    if !created && enclave.agent_online()? {
        eprintln!("ghost-agent: enclave_{id} has an agent; waiting for it to leave");
    }
    eprintln!(
        "ghost-agent: {} on enclave_{id} (CPUs {}), pid {}; Ctrl-C stops, SIGUSR1 prints the run queues",
        cli.name(),
        cfg.cpus,
        std::process::id()
    );
    let report = match policy {
        Choice::Fifo => agent::run(enclave, cfg, Fifo::new())?,
        Choice::FifoCentral { slice } => agent::run(enclave, cfg, FifoCentral::new(slice))?,
        Choice::Shinjuku { slice } => agent::run(enclave, cfg, Shinjuku::new(slice))?,
        Choice::Sol { slice } => agent::run(enclave, cfg, Sol::new(slice))?,
        Choice::Fair { ticks } => {
            if ticks {
                dir.set_tunable(Tunable::DeliverTicks, 1)?;
            }
            agent::run(enclave, cfg, Fair::new())?
        }
        Choice::Edf {
            granularity,
            table,
            slots,
        } => {
            let path = table.unwrap_or_else(|| format!("/dev/shm/ghost-edf-{id}").into());
            let table = DeadlineTable::create(&path, slots)?;
            eprintln!(
                "ghost-agent: deadline table at {} ({slots} slots)",
                path.display()
            );
            // Without the gtid layout no thread is found in the table: every
            // task is first come, first served.
            let layout = Layout::read().ok();
            agent::run(enclave, cfg, Edf::new(Some(table), layout, granularity))?
        }
    };
    if report.waited_for_agent && report.started {
        eprintln!(
            "ghost-agent: took over enclave_{id}: {} tasks adopted, {} orphaned status words freed",
            report.adopted, report.orphans_freed
        );
    }
    if report.agent_words_left > 0 {
        eprintln!(
            "ghost-agent: {} agent status words were not released by the kernel (agent threads that did not end); they go with the enclave",
            report.agent_words_left
        );
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> std::result::Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("ghost-agent").chain(args.iter().copied()))
    }

    fn cpus(s: &str) -> CpuSet {
        CpuSet::parse(s).unwrap()
    }

    #[test]
    fn the_command_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn fifo_with_cpus() {
        let cli = parse(&["fifo", "--cpus", "1-3"]).unwrap();
        let c = cli.common();
        assert_eq!(c.cpus, Some(cpus("1-3")));
        assert_eq!(
            (c.enclave.as_deref(), c.ephemeral, c.queue_elems),
            (None, false, 65536)
        );
        let (cfg, policy) = cli.config(&cpus("1-3")).unwrap();
        assert_eq!(cfg.model, Model::PerCpu);
        assert!(cfg.mlock);
        assert!(matches!(policy, Choice::Fifo));
    }

    #[test]
    fn fifo_central_with_every_option() {
        let cli = parse(&[
            "fifo-central",
            "--cpus",
            "1-3",
            "--global-cpu",
            "2",
            "--preemption-time-slice",
            "50us",
            "--sync-group",
            "--ephemeral",
        ])
        .unwrap();
        let (cfg, policy) = cli.config(&cpus("1-3")).unwrap();
        assert_eq!(cfg.model, Model::Centralized { global_cpu: 2 });
        assert_eq!(cfg.commit, CommitMode::SyncGroup);
        assert!(cli.common().ephemeral);
        assert!(
            matches!(policy, Choice::FifoCentral { slice: Some(d) } if d == Duration::from_micros(50))
        );
        // Defaults: the first CPU, no slice, separate commits.
        let cli = parse(&["fifo-central", "--cpus", "4,6"]).unwrap();
        let (cfg, policy) = cli.config(&cpus("4,6")).unwrap();
        assert_eq!(cfg.model, Model::Centralized { global_cpu: 4 });
        assert_eq!(cfg.commit, CommitMode::Each);
        assert!(matches!(policy, Choice::FifoCentral { slice: None }));
    }

    #[test]
    fn shinjuku_defaults_to_a_30us_slice() {
        let cli = parse(&["shinjuku", "--cpus", "1-3"]).unwrap();
        let (cfg, policy) = cli.config(&cpus("1-3")).unwrap();
        assert_eq!(cfg.model, Model::Centralized { global_cpu: 1 });
        assert_eq!(cfg.commit, CommitMode::Each);
        let d = ghost::policies::shinjuku::DEFAULT_SLICE;
        assert!(matches!(policy, Choice::Shinjuku { slice } if slice == d));
        let cli = parse(&[
            "shinjuku",
            "--cpus",
            "1-3",
            "--global-cpu",
            "3",
            "--preemption-time-slice",
            "2ms",
        ])
        .unwrap();
        let (cfg, policy) = cli.config(&cpus("1-3")).unwrap();
        assert_eq!(cfg.model, Model::Centralized { global_cpu: 3 });
        assert!(matches!(policy, Choice::Shinjuku { slice } if slice == Duration::from_millis(2)));
    }

    #[test]
    fn sol_always_commits_sync_groups() {
        let cli = parse(&["sol", "--cpus", "0-3", "--ephemeral"]).unwrap();
        let (cfg, policy) = cli.config(&cpus("0-3")).unwrap();
        assert_eq!(cfg.model, Model::Centralized { global_cpu: 0 });
        assert_eq!(cfg.commit, CommitMode::SyncGroup);
        assert!(matches!(policy, Choice::Sol { slice: None }));
        let cli = parse(&["sol", "--cpus", "0-3", "--preemption-time-slice", "1ms"]).unwrap();
        let (_, policy) = cli.config(&cpus("0-3")).unwrap();
        assert!(matches!(policy, Choice::Sol { slice: Some(d) } if d == Duration::from_millis(1)));
    }

    #[test]
    fn fair_is_per_cpu_with_ticks_unless_told() {
        let cli = parse(&["fair", "--cpus", "1"]).unwrap();
        let (cfg, policy) = cli.config(&cpus("1")).unwrap();
        assert_eq!(cfg.model, Model::PerCpu);
        assert!(matches!(policy, Choice::Fair { ticks: true }));
        let cli = parse(&["fair", "--enclave", "2", "--no-ticks"]).unwrap();
        let (_, policy) = cli.config(&cpus("1-2")).unwrap();
        assert!(matches!(policy, Choice::Fair { ticks: false }));
    }

    #[test]
    fn edf_options() {
        let cli = parse(&["edf", "--cpus", "1-2"]).unwrap();
        let (cfg, policy) = cli.config(&cpus("1-2")).unwrap();
        assert_eq!(cfg.model, Model::Centralized { global_cpu: 1 });
        assert!(matches!(
            policy,
            Choice::Edf { granularity, table: None, slots: 256 } if granularity == Duration::from_micros(100)
        ));
        let cli = parse(&[
            "edf",
            "--cpus",
            "1-2",
            "--table",
            "/dev/shm/my-table",
            "--table-slots",
            "8",
            "--preemption-granularity",
            "1ms",
        ])
        .unwrap();
        let (_, policy) = cli.config(&cpus("1-2")).unwrap();
        match policy {
            Choice::Edf {
                granularity,
                table,
                slots,
            } => {
                assert_eq!(granularity, Duration::from_millis(1));
                assert_eq!(table, Some(PathBuf::from("/dev/shm/my-table")));
                assert_eq!(slots, 8);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn attaching_takes_the_enclave_cpus() {
        for spec in ["3", "enclave_3", "/sys/fs/ghost/enclave_3"] {
            let cli = parse(&["fifo", "--enclave", spec]).unwrap();
            assert_eq!(cli.common().enclave.as_deref(), Some(spec));
            let (cfg, _) = cli.config(&cpus("0-1")).unwrap();
            assert_eq!(cfg.cpus, cpus("0-1"));
        }
        // --cpus must then match the enclave's.
        let cli = parse(&["fifo", "--enclave", "3", "--cpus", "1"]).unwrap();
        let e = cli.config(&cpus("0-1")).unwrap_err();
        assert!(
            e.to_string().contains("the enclave's CPUs are 0-1, not 1"),
            "{e}"
        );
    }

    #[test]
    fn bad_combinations_are_refused() {
        for args in [
            &["fifo", "--enclave", "3", "--ephemeral"][..],
            &["fifo", "--enclave", "3", "--keep-enclave"],
            &["fifo", "--ephemeral", "--keep-enclave", "--cpus", "1"],
            &["fifo", "--cpus", "3-1"],
            &["fifo", "--cpus", ""],
            &["fifo", "--queue-elems", "1000"],
            &["fifo", "--queue-elems", "131072"],
            &[
                "fifo-central",
                "--cpus",
                "1-2",
                "--preemption-time-slice",
                "50",
            ],
            &[
                "fifo-central",
                "--cpus",
                "1-2",
                "--preemption-time-slice",
                "0us",
            ],
            &[
                "fifo-central",
                "--cpus",
                "1-2",
                "--preemption-time-slice",
                "5min",
            ],
            &["fifo", "--global-cpu", "1"],
            &["fair", "--global-cpu", "1"],
            &["fair", "--preemption-time-slice", "1ms"],
            &["shinjuku", "--sync-group"],
            &["shinjuku", "--preemption-time-slice", "0us"],
            &["sol", "--sync-group"],
            &["edf", "--table-slots", "0"],
            &["edf", "--table-slots", "65537"],
            &["edf", "--preemption-granularity", "5"],
            &["fifo", "--no-ticks"],
            &["round-robin"],
            &[],
        ] {
            assert!(parse(args).is_err(), "{args:?} was accepted");
        }
        // Parsed, but not runnable on that enclave.
        let cli = parse(&["fifo-central", "--cpus", "1-3", "--global-cpu", "7"]).unwrap();
        assert!(cli.config(&cpus("1-3")).is_err());
        for p in ["fifo-central", "shinjuku", "sol", "edf"] {
            let cli = parse(&[p, "--cpus", "1"]).unwrap();
            let e = cli.config(&cpus("1")).unwrap_err();
            assert!(e.to_string().contains("needs two CPUs"), "{p}: {e}");
            let cli = parse(&[p, "--cpus", "1-3", "--global-cpu", "7"]).unwrap();
            assert!(cli.config(&cpus("1-3")).is_err(), "{p}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("50us"), Ok(Duration::from_micros(50)));
        assert_eq!(parse_duration("1.5ms"), Ok(Duration::from_micros(1500)));
        assert_eq!(parse_duration("100ns"), Ok(Duration::from_nanos(100)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("-1ms").is_err());
        assert!(parse_duration("ms").is_err());
        assert!(parse_duration("1e9999s").is_err());
    }
}
