//! The command line, and the parsers of its values.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use ghost::cpus::CpuSet;
use ghost::ghostfs::Tunable;

/// Exit codes, for scripts: what a failure means.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// An operation failed; stderr names the file or call and the errno.
    pub const FAILED: u8 = 1;
    /// Bad command line (clap's code as well).
    pub const USAGE: u8 = 2;
    /// The enclave does not exist, or was destroyed while ghostctl worked
    /// on it.
    pub const NO_ENCLAVE: u8 = 3;
    /// ghostfs is not available: not mounted, and mounting it failed (not
    /// root, or not a ghost-rs kernel).
    pub const NO_GHOSTFS: u8 = 4;
}

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  an operation failed (the message names the file or call and the errno)
  2  bad command line
  3  no such enclave, or it was destroyed meanwhile
  4  ghostfs is not mounted at /sys/fs/ghost and cannot be mounted

A command that acts on several pids or enclaves tries every one and exits 1
if any failed.";

/// Inspect and control ghOSt enclaves (ghost-rs, ghOSt ABI 91).
#[derive(Debug, Parser)]
#[command(name = "ghostctl", version, after_help = EXIT_CODES)]
pub struct Cli {
    /// Print JSON (one object; `watch`: one object per line) for scripts.
    #[arg(long, global = true)]
    pub json: bool,

    /// The command.
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// The commands.
#[derive(Debug, Subcommand, PartialEq)]
pub enum Cmd {
    /// List the enclaves: id, CPUs, agent, tasks, ephemeral owner.
    List,
    /// Create an enclave and give it CPUs.
    Create(CreateArgs),
    /// Destroy enclaves: their tasks go back to CFS, their agents die.
    Destroy {
        /// The enclave ids.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        ids: Vec<u64>,
        /// Destroy every enclave.
        #[arg(long)]
        all: bool,
    },
    /// Show an enclave: CPUs, agent, tasks, tunables, status-word use.
    Status {
        /// The enclave id.
        id: u64,
    },
    /// Move tasks into an enclave, back to CFS, or list them.
    #[command(subcommand)]
    Tasks(TasksCmd),
    /// Set a tunable (`runnable_timeout` takes a duration, default unit ms;
    /// the others 0/1, on/off, true/false or yes/no).
    Set {
        /// The enclave id.
        id: u64,
        /// The tunable's file name.
        tunable: Tunable,
        /// The value.
        value: String,
    },
    /// Print one tunable, or all of them.
    Get {
        /// The enclave id.
        id: u64,
        /// The tunable's file name (all when omitted).
        tunable: Option<Tunable>,
    },
    /// A live view: per-CPU agent, transaction and running task, and rates.
    Watch(WatchArgs),
    /// Run a command in an enclave (like chrt or taskset): it joins the
    /// enclave (SCHED_GHOST) before exec. With --create, in a new ephemeral
    /// enclave on --cpus with its own ghost-agent, destroyed (agent
    /// included) when the command exits. Exits with the command's exit
    /// code (127: not found, 126: not runnable).
    #[command(after_help = RUN_HELP)]
    Run(RunArgs),
}

const RUN_HELP: &str = "\
Examples:
  ghostctl run --enclave 1 -- ./server --threads 8
  ghostctl run --create --cpus 2-3 --policy shinjuku \\
      --agent-arg=--preemption-time-slice=1ms -- ./server

With --create, ghostctl creates the enclave ephemeral (the kernel destroys it
if ghostctl dies), starts `ghost-agent POLICY --enclave ID` from ghostctl's own
directory, waits for its agent to come online (giving up when the agent exits
or shows no progress), runs the command, then destroys the enclave, which
stops the agent. The command sees GHOST_ENCLAVE_ID and GHOST_ENCLAVE (the
enclave's directory) in its environment.";

/// The policies `ghost-agent` runs (its subcommands).
pub const POLICIES: [&str; 6] = ["fifo", "fifo-central", "shinjuku", "sol", "fair", "edf"];

/// `run`.
#[derive(Debug, Args, PartialEq)]
pub struct RunArgs {
    /// The enclave to run in; with --create, the id to create (default: the
    /// first free id from 1).
    #[arg(long, required_unless_present = "create", value_name = "ID")]
    pub enclave: Option<u64>,
    /// Create an ephemeral enclave on --cpus with its own agent for the
    /// command; destroy it when the command exits.
    #[arg(long, requires = "cpus")]
    pub create: bool,
    /// With --create: the enclave's CPUs, as a list (`1-3,5`).
    #[arg(long, requires = "create", value_name = "LIST")]
    pub cpus: Option<CpuSet>,
    /// With --create: the agent's policy (a `ghost-agent` command) [default:
    /// fifo].
    #[arg(long, requires = "create", value_parser = clap::builder::PossibleValuesParser::new(POLICIES))]
    pub policy: Option<String>,
    /// With --create: one more argument for `ghost-agent` (repeatable), e.g.
    /// `--agent-arg=--global-cpu=2`.
    #[arg(
        long,
        requires = "create",
        allow_hyphen_values = true,
        value_name = "ARG"
    )]
    pub agent_arg: Vec<String>,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// `create`.
#[derive(Debug, Args, PartialEq)]
pub struct CreateArgs {
    /// The CPUs, as a list (`1-3,5`).
    #[arg(long)]
    pub cpus: CpuSet,
    /// The enclave id (default: the first free id from 1).
    #[arg(long)]
    pub id: Option<u64>,
    /// Tie the enclave to ghostctl: it stays in the foreground (running
    /// COMMAND, if given) and the kernel destroys the enclave when it exits.
    #[arg(long)]
    pub ephemeral: bool,
    /// The group that owns the enclave's files (`gid=` of `create`).
    #[arg(long)]
    pub gid: Option<u32>,
    /// With --ephemeral: a command to run while the enclave lives; `{}` in
    /// it stands for the id. ghostctl exits with its exit code.
    #[arg(last = true, requires = "ephemeral", value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// `tasks`.
#[derive(Debug, Subcommand, PartialEq)]
pub enum TasksCmd {
    /// Move tasks into an enclave (pids, or gtids of 2^41 and above).
    Add {
        /// The enclave id.
        id: u64,
        /// The tasks.
        #[arg(required = true, value_parser = clap::value_parser!(i64).range(1..))]
        pids: Vec<i64>,
    },
    /// Move ghost tasks back to CFS (sched_setscheduler(SCHED_OTHER));
    /// tasks of other classes are left alone.
    Remove {
        /// The tasks.
        #[arg(required = true, value_parser = clap::value_parser!(i32).range(1..))]
        pids: Vec<i32>,
    },
    /// List an enclave's tasks.
    List {
        /// The enclave id.
        id: u64,
    },
}

/// `watch`.
#[derive(Debug, Args, PartialEq)]
pub struct WatchArgs {
    /// The enclave id.
    pub id: u64,
    /// Time between frames (`1s`, `500ms`; a plain number is seconds).
    #[arg(long, default_value = "1s", value_parser = parse_interval)]
    pub interval: Duration,
    /// Stop after N frames (default: until q, Ctrl-C or the enclave goes).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
}

/// Parses a duration in humantime's syntax (`500ms`, `2s`, `1.5s`,
/// `1m 30s`, ...); a plain number (digits with an optional fraction) is in
/// `default_unit_ns`, which must be one of `ns`, `us`, `ms`, `s`, `m`.
pub fn parse_duration(s: &str, default_unit_ns: u64) -> Result<Duration, String> {
    let plain = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    let with_unit;
    let text = if plain {
        let unit = match default_unit_ns {
            1 => "ns",
            1_000 => "us",
            1_000_000 => "ms",
            1_000_000_000 => "s",
            _ => "m",
        };
        with_unit = format!("{s}{unit}");
        &with_unit
    } else {
        s
    };
    humantime::parse_duration(text).map_err(|e| match e {
        humantime::DurationError::NumberOverflow => format!("`{s}` is too long"),
        e => format!("`{s}` is not a duration (like 500ms, 2s or 1.5s): {e}"),
    })
}

/// `--interval`: a duration from 10ms to 1 hour, default unit seconds.
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s, 1_000_000_000)?;
    if d < Duration::from_millis(10) || d > Duration::from_secs(3600) {
        return Err(format!("`{s}`: the interval must be from 10ms to 1 hour"));
    }
    Ok(d)
}

/// The value `set` writes for `t`: 0/1 (also on/off, true/false, yes/no)
/// for a flag; for `runnable_timeout` a duration in whole milliseconds
/// (default unit ms; `0` or `off` for none).
pub fn parse_tunable_value(t: Tunable, s: &str) -> Result<u64, String> {
    let v = if t.is_flag() {
        match s {
            "0" | "off" | "false" | "no" => 0,
            "1" | "on" | "true" | "yes" => 1,
            _ => return Err(format!("{t} takes 0 or 1 (or on/off), not `{s}`")),
        }
    } else if s == "off" {
        0
    } else {
        let d = parse_duration(s, 1_000_000)?;
        if d.subsec_nanos() % 1_000_000 != 0 {
            return Err(format!("{t} is in whole milliseconds, not `{s}`"));
        }
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
    };
    if v > t.max() {
        return Err(format!("{t} takes at most {} ms, not `{s}`", t.max()));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;

    fn parse(args: &str) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("ghostctl").chain(args.split_whitespace()))
    }

    fn cmd(args: &str) -> Cmd {
        parse(args).unwrap_or_else(|e| panic!("{args}: {e}")).cmd
    }

    fn kind(args: &str) -> ErrorKind {
        parse(args).map(|c| c.cmd).expect_err(args).kind()
    }

    #[test]
    fn run_parses() {
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            cmd("run --enclave 3 -- sh -c true"),
            Cmd::Run(RunArgs {
                enclave: Some(3),
                create: false,
                cpus: None,
                policy: None,
                agent_arg: vec![],
                command: words(&["sh", "-c", "true"]),
            })
        );
        assert_eq!(
            cmd("run --create --cpus 1-2 --policy sol --agent-arg=--global-cpu=1 -- ./x -v"),
            Cmd::Run(RunArgs {
                enclave: None,
                create: true,
                cpus: Some("1-2".parse().unwrap()),
                policy: Some("sol".into()),
                agent_arg: words(&["--global-cpu=1"]),
                command: words(&["./x", "-v"]),
            })
        );
        // No enclave and no --create; --create without CPUs; --cpus
        // without --create; an unknown policy; no command.
        assert_eq!(kind("run -- true"), ErrorKind::MissingRequiredArgument);
        assert_eq!(
            kind("run --create -- true"),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            kind("run --enclave 1 --cpus 1 -- true"),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            kind("run --create --cpus 1 --policy cfs -- true"),
            ErrorKind::InvalidValue
        );
        assert_eq!(kind("run --enclave 1"), ErrorKind::MissingRequiredArgument);
    }

    #[test]
    fn commands_parse() {
        assert_eq!(cmd("list"), Cmd::List);
        assert_eq!(
            cmd("create --cpus 1-3"),
            Cmd::Create(CreateArgs {
                cpus: "1-3".parse().unwrap(),
                id: None,
                ephemeral: false,
                gid: None,
                command: vec![],
            })
        );
        assert_eq!(
            cmd("create --cpus 2,4 --id 7 --ephemeral --gid 100 -- ghost-agent fifo --enclave {}"),
            Cmd::Create(CreateArgs {
                cpus: "2,4".parse().unwrap(),
                id: Some(7),
                ephemeral: true,
                gid: Some(100),
                command: ["ghost-agent", "fifo", "--enclave", "{}"]
                    .map(String::from)
                    .to_vec(),
            })
        );
        assert_eq!(
            cmd("destroy 1 2"),
            Cmd::Destroy {
                ids: vec![1, 2],
                all: false
            }
        );
        assert_eq!(
            cmd("destroy --all"),
            Cmd::Destroy {
                ids: vec![],
                all: true
            }
        );
        assert_eq!(cmd("status 3"), Cmd::Status { id: 3 });
        assert_eq!(
            cmd("tasks add 1 10 11"),
            Cmd::Tasks(TasksCmd::Add {
                id: 1,
                pids: vec![10, 11]
            })
        );
        assert_eq!(
            cmd("tasks add 1 534362651099387"),
            Cmd::Tasks(TasksCmd::Add {
                id: 1,
                pids: vec![534_362_651_099_387]
            })
        );
        assert_eq!(
            cmd("tasks remove 10"),
            Cmd::Tasks(TasksCmd::Remove { pids: vec![10] })
        );
        assert_eq!(cmd("tasks list 1"), Cmd::Tasks(TasksCmd::List { id: 1 }));
        assert_eq!(
            cmd("set 1 deliver_ticks on"),
            Cmd::Set {
                id: 1,
                tunable: Tunable::DeliverTicks,
                value: "on".into()
            }
        );
        assert_eq!(
            cmd("get 1"),
            Cmd::Get {
                id: 1,
                tunable: None
            }
        );
        assert_eq!(
            cmd("get 1 runnable_timeout"),
            Cmd::Get {
                id: 1,
                tunable: Some(Tunable::RunnableTimeout)
            }
        );
        assert_eq!(
            cmd("watch 1"),
            Cmd::Watch(WatchArgs {
                id: 1,
                interval: Duration::from_secs(1),
                count: None
            })
        );
        assert_eq!(
            cmd("watch 1 --interval 250ms --count 3"),
            Cmd::Watch(WatchArgs {
                id: 1,
                interval: Duration::from_millis(250),
                count: Some(3)
            })
        );
    }

    #[test]
    fn json_is_global() {
        assert!(parse("--json list").unwrap().json);
        assert!(parse("status 1 --json").unwrap().json);
        assert!(parse("tasks list 1 --json").unwrap().json);
        assert!(!parse("list").unwrap().json);
    }

    #[test]
    fn bad_command_lines() {
        for (args, k) in [
            ("", ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand),
            ("frobnicate", ErrorKind::InvalidSubcommand),
            ("create", ErrorKind::MissingRequiredArgument),
            ("create --cpus 3-1", ErrorKind::ValueValidation),
            (
                "create --cpus 1 -- sleep 1",
                ErrorKind::MissingRequiredArgument,
            ),
            ("create --cpus 1 --id -1", ErrorKind::UnknownArgument),
            ("destroy", ErrorKind::MissingRequiredArgument),
            ("destroy 1 --all", ErrorKind::ArgumentConflict),
            ("destroy x", ErrorKind::ValueValidation),
            ("status", ErrorKind::MissingRequiredArgument),
            ("tasks add 1", ErrorKind::MissingRequiredArgument),
            ("tasks add 1 0", ErrorKind::ValueValidation),
            ("tasks remove", ErrorKind::MissingRequiredArgument),
            ("tasks remove 0", ErrorKind::ValueValidation),
            ("tasks remove 4294967296", ErrorKind::ValueValidation),
            ("set 1 tasks 5", ErrorKind::ValueValidation),
            ("set 1 deliver_ticks", ErrorKind::MissingRequiredArgument),
            ("get 1 ctl", ErrorKind::ValueValidation),
            ("watch 1 --interval 1ms", ErrorKind::ValueValidation),
            ("watch 1 --interval 2h", ErrorKind::ValueValidation),
            ("watch 1 --count 0", ErrorKind::ValueValidation),
        ] {
            assert_eq!(kind(args), k, "{args}");
        }
        // clap exits 2 for all of these; --help and --version exit 0.
        assert_eq!(
            parse("destroy").unwrap_err().exit_code(),
            i32::from(exit::USAGE)
        );
        assert_eq!(parse("--help").unwrap_err().exit_code(), 0);
    }

    #[test]
    fn unknown_tunable_lists_the_names() {
        let e = parse("set 1 nosuch 1").unwrap_err().to_string();
        assert!(
            e.contains("no tunable `nosuch` (tunables: runnable_timeout, commit_at_tick"),
            "{e}"
        );
    }

    #[test]
    fn durations() {
        let d = |s| parse_duration(s, 1_000_000);
        assert_eq!(d("0"), Ok(Duration::ZERO));
        assert_eq!(d("250"), Ok(Duration::from_millis(250)));
        assert_eq!(d("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(d("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(d("0.000000001s"), Ok(Duration::from_nanos(1)));
        assert_eq!(d("50us"), Ok(Duration::from_micros(50)));
        assert_eq!(d("7ns"), Ok(Duration::from_nanos(7)));
        assert_eq!(d("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(d("1m 30s"), Ok(Duration::from_secs(90)));
        assert_eq!(d("1.5"), Ok(Duration::from_micros(1500)));
        for bad in [
            "",
            "s",
            ".5s",
            "1.s",
            "1..2s",
            "1.5.s",
            "-1s",
            "+1",
            "1 parsec",
            "0x10",
            "1.0000000001s",
        ] {
            assert!(d(bad).is_err(), "`{bad}` parsed");
        }
        assert_eq!(
            d("99999999999999999999s").unwrap_err(),
            "`99999999999999999999s` is too long"
        );
        assert_eq!(parse_interval("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_interval("10ms"), Ok(Duration::from_millis(10)));
        assert!(parse_interval("9ms").is_err());
    }

    #[test]
    fn tunable_values() {
        let flag = Tunable::DeliverTicks;
        for (s, v) in [
            ("0", 0),
            ("off", 0),
            ("no", 0),
            ("false", 0),
            ("1", 1),
            ("on", 1),
            ("yes", 1),
            ("true", 1),
        ] {
            assert_eq!(parse_tunable_value(flag, s), Ok(v), "{s}");
        }
        assert_eq!(
            parse_tunable_value(flag, "2").unwrap_err(),
            "deliver_ticks takes 0 or 1 (or on/off), not `2`"
        );
        let rt = Tunable::RunnableTimeout;
        assert_eq!(parse_tunable_value(rt, "250"), Ok(250));
        assert_eq!(parse_tunable_value(rt, "2s"), Ok(2000));
        assert_eq!(parse_tunable_value(rt, "off"), Ok(0));
        assert_eq!(
            parse_tunable_value(rt, "9223372036854"),
            Ok(9_223_372_036_854)
        );
        assert_eq!(
            parse_tunable_value(rt, "9223372036855").unwrap_err(),
            "runnable_timeout takes at most 9223372036854 ms, not `9223372036855`"
        );
        assert_eq!(
            parse_tunable_value(rt, "1500us").unwrap_err(),
            "runnable_timeout is in whole milliseconds, not `1500us`"
        );
        assert!(parse_tunable_value(rt, "on").is_err());
    }
}
