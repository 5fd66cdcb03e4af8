//! The commands: each reads or changes ghostfs through the `ghost` library
//! and prints through [`crate::format`].

use std::fmt;

use ghost::ghostfs::{self, CreateOptions, EnclaveDir, Tunable};
use ghost_abi::SCHED_GHOST;

use crate::cli::{exit, parse_tunable_value, Cli, Cmd, CreateArgs, TasksCmd};
use crate::format;
use crate::model::{Outcome, GTID_SEQNUM_BITS};
use crate::{collect, hold, run, watch};

/// A failed command: the exit code and the message (which names the file or
/// call and the errno).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// One of [`exit`].
    pub code: u8,
    /// What went wrong.
    pub message: String,
}

impl Failure {
    pub(crate) fn new(code: u8, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl From<ghost::Error> for Failure {
    fn from(e: ghost::Error) -> Self {
        Self::new(exit::FAILED, e.to_string())
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Runs the command line; returns the exit code.
pub fn run(cli: &Cli) -> Result<u8, Failure> {
    let json = cli.json;
    match &cli.cmd {
        Cmd::List => list(json),
        Cmd::Create(args) => create(args, json),
        Cmd::Destroy { ids, all } => destroy(ids, *all, json),
        Cmd::Status { id } => {
            let e = open(*id)?;
            let r = collect::report(&e).map_err(|err| lost(&e, err))?;
            emit(json, format::status_human(&r), format::status_json(&r));
            Ok(exit::OK)
        }
        Cmd::Tasks(TasksCmd::Add { id, pids }) => {
            let e = open(*id)?;
            let outcomes: Vec<Outcome> = pids
                .iter()
                .map(|&pid| Outcome {
                    target: task_name(pid),
                    key: pid,
                    result: e
                        .add_task(pid)
                        .map(|()| String::new())
                        .map_err(|err| err.to_string()),
                })
                .collect();
            Ok(exit_of(
                &e,
                report_outcomes(json, &format!("enclave_{id} <-"), "pid", &outcomes),
            ))
        }
        Cmd::Tasks(TasksCmd::List { id }) => {
            let e = open(*id)?;
            let pids = e.tasks().map_err(|err| lost(&e, err))?;
            let sw = collect::sw_use(&e);
            let rows = collect::task_rows(&pids, &sw);
            emit(
                json,
                format::tasks_human(*id, &rows, sw.first_error()),
                format::tasks_json(*id, &rows),
            );
            Ok(exit::OK)
        }
        Cmd::Tasks(TasksCmd::Remove { pids }) => {
            // A scheduler call: no ghostfs needed.
            Ok(report_outcomes(json, "removed", "pid", &remove_tasks(pids)))
        }
        Cmd::Set { id, tunable, value } => {
            // A bad value is a usage error, found before anything is touched.
            let v =
                parse_tunable_value(*tunable, value).map_err(|m| Failure::new(exit::USAGE, m))?;
            let e = open(*id)?;
            e.set_tunable(*tunable, v).map_err(|err| lost(&e, err))?;
            show_tunables(&e, &[*tunable], json)
        }
        Cmd::Get { id, tunable } => {
            let e = open(*id)?;
            match tunable {
                Some(t) => show_tunables(&e, &[*t], json),
                None => show_tunables(&e, &Tunable::ALL, json),
            }
        }
        Cmd::Watch(args) => {
            let e = open(args.id)?;
            watch::run(&e, args, json)
        }
        Cmd::Run(args) => run::run(args),
    }
}

/// Prints `human` or `json` on stdout.
fn emit(json: bool, human: String, j: String) {
    if json {
        println!("{j}");
    } else {
        print!("{human}");
    }
}

/// Mounts ghostfs if needed.
pub(crate) fn mounted() -> Result<(), Failure> {
    ghostfs::ensure_mounted().map_err(|e| {
        Failure::new(
            exit::NO_GHOSTFS,
            format!(
                "ghostfs is not mounted and cannot be: {e} (a ghost-rs kernel and root are needed)"
            ),
        )
    })
}

/// The existing enclave `id` (ghostfs mounted first if need be).
pub(crate) fn open(id: u64) -> Result<EnclaveDir, Failure> {
    mounted()?;
    EnclaveDir::open(id).map_err(|_| {
        Failure::new(
            exit::NO_ENCLAVE,
            format!("no enclave_{id} in {}", ghostfs::GHOSTFS),
        )
    })
}

/// A failure on `e`: [`exit::NO_ENCLAVE`] if `e` is gone by now (destroyed
/// meanwhile), else [`exit::FAILED`].
fn lost(e: &EnclaveDir, err: ghost::Error) -> Failure {
    Failure::new(exit_of(e, exit::FAILED), err.to_string())
}

/// The exit code after acting on `e`: [`exit::NO_ENCLAVE`] instead of a
/// failure when `e` went away meanwhile.
fn exit_of(e: &EnclaveDir, code: u8) -> u8 {
    if code == exit::FAILED && !e.path.is_dir() {
        exit::NO_ENCLAVE
    } else {
        code
    }
}

/// Prints per-item outcomes: successes on stdout (or all of them as JSON),
/// failures on stderr; [`exit::FAILED`] if any failed.
fn report_outcomes(json: bool, verb: &str, key: &str, outcomes: &[Outcome]) -> u8 {
    let (out, err) = format::outcomes_human(verb, outcomes);
    if json {
        println!("{}", format::outcomes_json(key, outcomes));
    } else {
        print!("{out}");
    }
    eprint!("{err}");
    if outcomes.iter().all(|o| o.result.is_ok()) {
        exit::OK
    } else {
        exit::FAILED
    }
}

/// How a task number reads: `pid N`, or `gtid N` from 2^41 up.
fn task_name(n: i64) -> String {
    if n >= 1 << GTID_SEQNUM_BITS {
        format!("gtid {n}")
    } else {
        format!("pid {n}")
    }
}

fn list(json: bool) -> Result<u8, Failure> {
    mounted()?;
    let mut rows = Vec::new();
    for id in ghostfs::list()? {
        // An enclave destroyed since the listing is skipped.
        let Ok(e) = EnclaveDir::open(id) else {
            continue;
        };
        match collect::enclave_row(&e) {
            Ok(r) => rows.push(r),
            Err(_) if !e.path.is_dir() => {}
            Err(err) => return Err(err.into()),
        }
    }
    emit(json, format::list_human(&rows), format::list_json(&rows));
    Ok(exit::OK)
}

fn create(args: &CreateArgs, json: bool) -> Result<u8, Failure> {
    mounted()?;
    let opts = CreateOptions {
        gid: args.gid,
        ephemeral: args.ephemeral,
    };
    let e = match args.id {
        Some(id) => EnclaveDir::create_with(id, &args.cpus, &opts)?,
        None => EnclaveDir::create_next(&args.cpus, &opts)?,
    };
    let cpus = args.cpus.to_string();
    let human = format!(
        "created enclave_{} ({}) with CPUs {}{}\n",
        e.id,
        e.path.display(),
        if cpus.is_empty() { "none" } else { &cpus },
        if args.ephemeral {
            ", ephemeral: destroyed when ghostctl exits"
        } else {
            ""
        }
    );
    #[derive(serde::Serialize)]
    struct Created<'a> {
        id: u64,
        path: String,
        cpus: &'a str,
        ephemeral: bool,
        gid: Option<u32>,
    }
    let j = serde_json::to_string(&Created {
        id: e.id,
        path: e.path.display().to_string(),
        cpus: &cpus,
        ephemeral: args.ephemeral,
        gid: args.gid,
    })
    .unwrap_or_default();
    emit(json, human, j);
    if !args.ephemeral {
        return Ok(exit::OK);
    }
    // Whoever waits on our output (a script reading the id) gets it now.
    use std::io::Write;
    let _ = std::io::stdout().flush();
    hold::hold(&e, &args.command)
}

fn destroy(ids: &[u64], all: bool, json: bool) -> Result<u8, Failure> {
    mounted()?;
    let ids = if all { ghostfs::list()? } else { ids.to_vec() };
    if ids.is_empty() && !json {
        println!("no enclaves");
        return Ok(exit::OK);
    }
    let mut missing = 0;
    let outcomes: Vec<Outcome> = ids
        .iter()
        .map(|&id| Outcome {
            target: format!("enclave_{id}"),
            key: i64::try_from(id).unwrap_or(i64::MAX),
            result: match EnclaveDir::open(id) {
                Err(_) => {
                    missing += 1;
                    Err(format!("no enclave_{id} in {}", ghostfs::GHOSTFS))
                }
                Ok(e) => match e.destroy() {
                    Ok(()) => Ok(String::new()),
                    // Someone else destroyed it meanwhile: done all the same.
                    Err(_) if !e.path.is_dir() => Ok("already destroyed".into()),
                    Err(err) => Err(err.to_string()),
                },
            },
        })
        .collect();
    let code = report_outcomes(json, "destroyed", "id", &outcomes);
    let failed = outcomes.iter().filter(|o| o.result.is_err()).count();
    // Only missing enclaves failed: say so with the more precise code.
    Ok(if failed > 0 && failed == missing {
        exit::NO_ENCLAVE
    } else {
        code
    })
}

/// The name of a scheduling policy.
fn policy_name(p: i32) -> String {
    match p {
        libc::SCHED_OTHER => "SCHED_OTHER".into(),
        libc::SCHED_FIFO => "SCHED_FIFO".into(),
        libc::SCHED_RR => "SCHED_RR".into(),
        libc::SCHED_BATCH => "SCHED_BATCH".into(),
        libc::SCHED_IDLE => "SCHED_IDLE".into(),
        6 => "SCHED_DEADLINE".into(),
        7 => "SCHED_EXT".into(),
        SCHED_GHOST => "SCHED_GHOST".into(),
        p => format!("policy {p}"),
    }
}

/// `tasks remove`: each ghost task back to CFS; others are left alone (so an
/// RT task is never demoted by mistake).
fn remove_tasks(pids: &[i32]) -> Vec<Outcome> {
    pids.iter()
        .map(|&pid| {
            let result = ghostfs::sched_policy(pid)
                .and_then(|p| match p & !libc::SCHED_RESET_ON_FORK {
                    SCHED_GHOST => {
                        ghostfs::remove_task(pid).map(|()| "back in CFS (SCHED_OTHER)".to_string())
                    }
                    p => Ok(format!("not a ghost task ({}), left alone", policy_name(p))),
                })
                .map_err(|e| e.to_string());
            Outcome {
                target: format!("pid {pid}"),
                key: i64::from(pid),
                result,
            }
        })
        .collect()
}

/// Prints `which` tunables of `e`.
fn show_tunables(e: &EnclaveDir, which: &[Tunable], json: bool) -> Result<u8, Failure> {
    let values = which
        .iter()
        .map(|&t| Ok((t, e.tunable(t)?)))
        .collect::<ghost::Result<Vec<_>>>()
        .map_err(|err| lost(e, err))?;
    emit(
        json,
        format::tunables_human(&values),
        format::tunables_json(e.id, &values),
    );
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(task_name(812), "pid 812");
        assert_eq!(task_name(534_362_651_099_387), "gtid 534362651099387");
        assert_eq!(policy_name(0), "SCHED_OTHER");
        assert_eq!(policy_name(18), "SCHED_GHOST");
        assert_eq!(policy_name(99), "policy 99");
    }

    #[test]
    fn remove_leaves_other_classes_alone() {
        let me = nix::unistd::getpid().as_raw();
        let o = remove_tasks(&[me]);
        assert_eq!(
            o[0].result,
            Ok("not a ghost task (SCHED_OTHER), left alone".to_string())
        );
        // No such pid (above pid_max_max): the errno is named.
        let o = remove_tasks(&[i32::MAX]);
        let err = o[0].result.clone().unwrap_err();
        assert!(
            err.starts_with("sched_getscheduler(2147483647): ESRCH"),
            "{err}"
        );
    }

    #[test]
    fn failures_display_their_message() {
        let f = Failure::from(ghost::Error::sys("write `1` to /x/tasks", libc::EBUSY));
        assert_eq!(f.code, exit::FAILED);
        assert!(
            f.to_string().starts_with("write `1` to /x/tasks: EBUSY"),
            "{f}"
        );
    }
}
