//! Human and JSON renderings of [`crate::model`]: pure functions of the data,
//! so tests need no kernel.

use std::fmt::Write;

use ghost::ghostfs::Tunable;
use ghost_abi::{
    GHOST_AGENT_GTID, GHOST_IDLE_GTID, GHOST_NULL_GTID, GHOST_TXN_ABORTED, GHOST_TXN_AGENT_STALE,
    GHOST_TXN_COMPLETE, GHOST_TXN_CPU_OFFLINE, GHOST_TXN_CPU_UNAVAIL, GHOST_TXN_INVALID_CPU,
    GHOST_TXN_INVALID_FLAGS, GHOST_TXN_INVALID_TARGET, GHOST_TXN_NOT_PERMITTED, GHOST_TXN_NO_AGENT,
    GHOST_TXN_POISONED, GHOST_TXN_READY, GHOST_TXN_TARGET_NOT_FOUND, GHOST_TXN_TARGET_NOT_RUNNABLE,
    GHOST_TXN_TARGET_ONCPU, GHOST_TXN_TARGET_STALE, GHOST_TXN_UNSUPPORTED_VERSION,
};

use crate::model::{
    gtid_pid, CpuRow, EnclaveRow, Frame, Outcome, Rates, Region, Report, SwUse, TaskRow, Txn, Word,
    WordCounts,
};
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

/// Renders rows as columns: each as wide as its widest cell, two blanks
/// apart, no trailing blanks. The first row is the header.
pub fn table(rows: &[Vec<String>]) -> String {
    let ncols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..ncols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (cell, w) in row.iter().zip(&widths) {
            let _ = write!(line, "{cell:<w$}  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Owned cells from string slices, for table rows.
fn cells<const N: usize>(c: [&str; N]) -> Vec<String> {
    c.iter().map(|s| s.to_string()).collect()
}

/// A duration in ns as a short human figure: `850ns`, `12.5us`, `3.2ms`,
/// `1.5s`, `12m05s`.
pub fn human_ns(ns: u64) -> String {
    let f = ns as f64;
    match ns {
        0..=999 => format!("{ns}ns"),
        1_000..=999_999 => format!("{:.1}us", f / 1e3),
        1_000_000..=999_999_999 => format!("{:.1}ms", f / 1e6),
        1_000_000_000..=59_999_999_999 => format!("{:.1}s", f / 1e9),
        _ => format!("{}m{:02}s", ns / 60_000_000_000, ns / 1_000_000_000 % 60),
    }
}

/// A rate, one decimal.
fn human_rate(r: Option<f64>) -> String {
    r.map_or_else(|| "-".into(), |r| format!("{r:.1}/s"))
}

/// The name of a transaction state: `READY`, `claimed by CPU <n>`, or the
/// outcome without its `GHOST_TXN_` prefix.
pub fn txn_state(state: i32) -> String {
    let name = match state {
        GHOST_TXN_READY => "READY",
        GHOST_TXN_COMPLETE => "COMPLETE",
        GHOST_TXN_ABORTED => "ABORTED",
        GHOST_TXN_TARGET_ONCPU => "TARGET_ONCPU",
        GHOST_TXN_TARGET_STALE => "TARGET_STALE",
        GHOST_TXN_TARGET_NOT_FOUND => "TARGET_NOT_FOUND",
        GHOST_TXN_TARGET_NOT_RUNNABLE => "TARGET_NOT_RUNNABLE",
        GHOST_TXN_AGENT_STALE => "AGENT_STALE",
        GHOST_TXN_CPU_OFFLINE => "CPU_OFFLINE",
        GHOST_TXN_CPU_UNAVAIL => "CPU_UNAVAIL",
        GHOST_TXN_INVALID_FLAGS => "INVALID_FLAGS",
        GHOST_TXN_INVALID_TARGET => "INVALID_TARGET",
        GHOST_TXN_NOT_PERMITTED => "NOT_PERMITTED",
        GHOST_TXN_INVALID_CPU => "INVALID_CPU",
        GHOST_TXN_NO_AGENT => "NO_AGENT",
        GHOST_TXN_UNSUPPORTED_VERSION => "UNSUPPORTED_VERSION",
        GHOST_TXN_POISONED => "POISONED",
        s if s >= 0 => return format!("claimed by CPU {s}"),
        s => return format!("state {s}"),
    };
    name.to_string()
}

/// What a transaction's gtid names: `-` (nothing), `ping` (the agent),
/// `idle`, or `pid <n>`.
pub fn txn_target(gtid: i64) -> String {
    match gtid {
        GHOST_NULL_GTID => "-".into(),
        GHOST_AGENT_GTID => "ping".into(),
        GHOST_IDLE_GTID => "idle".into(),
        g if g > 0 => format!("pid {}", gtid_pid(g as u64)),
        g => format!("gtid {g}"),
    }
}

// ---- `--json`: borrowed views of the model, serialised by serde ----
//
// Each `--json` output is one compact object on one line. Field order is
// the declaration order below; maps keep the order of the model (`Pairs`).
// A non-finite float prints as `null` (serde_json's rule).

/// Compact JSON of `v`. Serialising these views cannot fail: every key
/// is a string and every value a number, string, bool, null, array or
/// object.
fn to_json(v: &impl Serialize) -> String {
    serde_json::to_string(v).unwrap_or_else(|e| format!("{{\"error\":\"json: {e}\"}}"))
}

/// A JSON object from `(key, value)` pairs, in their order.
struct Pairs<I>(I);

impl<K, V, I> Serialize for Pairs<I>
where
    I: IntoIterator<Item = (K, V)> + Clone,
    K: Serialize,
    V: Serialize,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.clone())
    }
}

/// The tunables as a JSON object, name to value.
fn tunables_obj(
    tunables: &[(Tunable, u64)],
) -> Pairs<impl Iterator<Item = (&'static str, u64)> + Clone + '_> {
    Pairs(tunables.iter().map(|(t, v)| (t.name(), *v)))
}

#[derive(Serialize)]
struct ListJson {
    enclaves: Vec<EnclaveJson>,
}

#[derive(Serialize)]
struct EnclaveJson {
    id: u64,
    cpus: String,
    nr_cpus: usize,
    agent_online: bool,
    nr_tasks: u64,
    ephemeral_tgid: Option<i32>,
}

/// `--json` of `list`.
pub fn list_json(rows: &[EnclaveRow]) -> String {
    to_json(&ListJson {
        enclaves: rows
            .iter()
            .map(|r| EnclaveJson {
                id: r.id,
                cpus: r.cpus.to_string(),
                nr_cpus: r.cpus.len(),
                agent_online: r.status.active,
                nr_tasks: r.status.nr_tasks,
                ephemeral_tgid: r.status.ephemeral,
            })
            .collect(),
    })
}

/// `--json` of `get` (and of `set`, which prints the value set).
pub fn tunables_json(id: u64, tunables: &[(Tunable, u64)]) -> String {
    #[derive(Serialize)]
    struct TunablesJson<T: Serialize> {
        id: u64,
        tunables: T,
    }
    to_json(&TunablesJson {
        id,
        tunables: tunables_obj(tunables),
    })
}

/// The counts of some status words.
#[derive(Serialize)]
struct CountsJson {
    allocated: u64,
    agents: u64,
    tasks: u64,
    oncpu: u64,
    runnable: u64,
    canfree: u64,
}

impl From<&WordCounts> for CountsJson {
    fn from(c: &WordCounts) -> Self {
        CountsJson {
            allocated: c.allocated,
            agents: c.agents,
            tasks: c.tasks,
            oncpu: c.oncpu,
            runnable: c.runnable,
            canfree: c.canfree,
        }
    }
}

/// One status-word region, or why it could not be read.
#[derive(Serialize)]
#[serde(untagged)]
enum RegionJson<'a> {
    Ok {
        id: u32,
        numa_node: u32,
        capacity: u32,
        available: u32,
        used: u32,
        #[serde(flatten)]
        counts: CountsJson,
    },
    Err {
        id: u32,
        error: &'a str,
    },
}

impl<'a> RegionJson<'a> {
    fn new(id: u32, region: &'a Result<Region, String>) -> Self {
        match region {
            Ok(r) => RegionJson::Ok {
                id,
                numa_node: r.numa_node,
                capacity: r.capacity,
                available: r.available,
                used: r.used(),
                counts: (&r.counts).into(),
            },
            Err(e) => RegionJson::Err { id, error: e },
        }
    }
}

/// The status-word regions, or why they could not be listed.
#[derive(Serialize)]
#[serde(untagged)]
enum SwJson<'a> {
    Ok { regions: Vec<RegionJson<'a>> },
    Err { error: &'a str },
}

impl<'a> SwJson<'a> {
    fn new(sw: &'a SwUse) -> Self {
        match &sw.regions {
            Ok(entries) => SwJson::Ok {
                regions: entries
                    .iter()
                    .map(|e| RegionJson::new(e.id, &e.region))
                    .collect(),
            },
            Err(e) => SwJson::Err { error: e },
        }
    }
}

/// `list`.
pub fn list_human(rows: &[EnclaveRow]) -> String {
    if rows.is_empty() {
        return "no enclaves\n".into();
    }
    let mut t = vec![cells(["ID", "CPUS", "AGENT", "TASKS", "EPHEMERAL"])];
    for r in rows {
        t.push(vec![
            r.id.to_string(),
            or_dash(r.cpus.to_string()),
            online(r.status.active).into(),
            r.status.nr_tasks.to_string(),
            r.status
                .ephemeral
                .map_or_else(|| "-".into(), |t| format!("tgid {t}")),
        ]);
    }
    table(&t)
}

fn online(b: bool) -> &'static str {
    if b {
        "online"
    } else {
        "offline"
    }
}

fn or_dash(s: String) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s
    }
}

/// A tunable's value with its unit.
fn tunable_value(t: Tunable, v: u64) -> String {
    if t.is_flag() {
        v.to_string()
    } else {
        format!("{v} ms")
    }
}
/// `get`: one `name value` line per tunable.
pub fn tunables_human(tunables: &[(Tunable, u64)]) -> String {
    let rows: Vec<Vec<String>> = tunables
        .iter()
        .map(|&(t, v)| vec![t.name().to_string(), tunable_value(t, v)])
        .collect();
    table(&rows)
}

/// The counts of some status words in words.
fn counts_human(c: &WordCounts) -> String {
    format!(
        "{} agents, {} tasks ({} on a CPU, {} runnable, {} departed)",
        c.agents, c.tasks, c.oncpu, c.runnable, c.canfree
    )
}

fn sw_human(sw: &SwUse, out: &mut String) {
    match &sw.regions {
        Err(e) => {
            let _ = writeln!(out, "  status words   not readable: {e}");
        }
        Ok(entries) if entries.is_empty() => {
            let _ = writeln!(out, "  status words   no region (tasks cannot join yet)");
        }
        Ok(entries) => {
            let _ = writeln!(out, "  status words");
            for e in entries {
                let _ = match &e.region {
                    Ok(r) => writeln!(
                        out,
                        "    sw_{:<4} node {}  {}/{} used: {}",
                        e.id,
                        r.numa_node,
                        r.used(),
                        r.capacity,
                        counts_human(&r.counts)
                    ),
                    Err(err) => writeln!(out, "    sw_{:<4} not readable: {err}", e.id),
                };
            }
        }
    }
}

/// `--json` of `status`.
pub fn status_json(r: &Report) -> String {
    #[derive(Serialize)]
    struct StatusJson<'a, T: Serialize, X: Serialize> {
        id: u64,
        path: &'a str,
        group: Option<u32>,
        version: u32,
        cpus: String,
        nr_cpus: usize,
        agent_online: bool,
        nr_tasks: u64,
        ephemeral_tgid: Option<i32>,
        tasks: &'a [i32],
        tunables: T,
        status_extra: X,
        status_words: SwJson<'a>,
    }
    to_json(&StatusJson {
        id: r.id,
        path: &r.path,
        group: r.group,
        version: r.status.version,
        cpus: r.cpus.to_string(),
        nr_cpus: r.cpus.len(),
        agent_online: r.agent_online,
        nr_tasks: r.status.nr_tasks,
        ephemeral_tgid: r.status.ephemeral,
        tasks: &r.tasks,
        tunables: tunables_obj(&r.tunables),
        status_extra: &r.status.extra,
        status_words: SwJson::new(&r.sw),
    })
}

/// How many pids `status` lists before it refers to `tasks list`.
const MAX_PIDS: usize = 16;

/// `status`.
pub fn status_human(r: &Report) -> String {
    let mut out = format!("enclave_{} ({})\n", r.id, r.path);
    let mut line = |k: &str, v: String| {
        let _ = writeln!(out, "  {k:<14} {v}");
    };
    line("abi", r.status.version.to_string());
    line(
        "cpus",
        if r.cpus.is_empty() {
            "none".into()
        } else {
            format!("{} ({})", r.cpus, r.cpus.len())
        },
    );
    line("agent", online(r.agent_online).into());
    let mut pids: Vec<String> = r.tasks.iter().take(MAX_PIDS).map(i32::to_string).collect();
    if r.tasks.len() > MAX_PIDS {
        pids.push(format!(
            "... ({} more: tasks list)",
            r.tasks.len() - MAX_PIDS
        ));
    }
    line(
        "tasks",
        format!(
            "{}{}{} (nr_tasks {} with the agents)",
            r.tasks.len(),
            if pids.is_empty() { "" } else { ": " },
            pids.join(" "),
            r.status.nr_tasks,
        ),
    );
    line(
        "ephemeral",
        r.status.ephemeral.map_or_else(
            || "no".into(),
            |t| format!("yes, destroyed when tgid {t} exits"),
        ),
    );
    if let Some(g) = r.group.filter(|&g| g != 0) {
        line("group", g.to_string());
    }
    for (k, v) in &r.status.extra {
        line(k, v.clone());
    }
    let _ = writeln!(out, "  tunables");
    for (t, v) in &r.tunables {
        let _ = writeln!(out, "    {:<26} {}", t.name(), tunable_value(*t, *v));
    }
    sw_human(&r.sw, &mut out);
    out
}

/// `--json` of `tasks list`.
pub fn tasks_json(id: u64, rows: &[TaskRow]) -> String {
    #[derive(Serialize)]
    struct TaskJson<'a> {
        pid: i32,
        gtid: Option<u64>,
        comm: Option<&'a str>,
        cpu: Option<u32>,
        state: Option<&'static str>,
        flags: Option<String>,
        barrier: Option<u32>,
        runtime_ns: Option<u64>,
    }
    #[derive(Serialize)]
    struct TasksJson<'a> {
        id: u64,
        tasks: Vec<TaskJson<'a>>,
    }
    to_json(&TasksJson {
        id,
        tasks: rows
            .iter()
            .map(|t| TaskJson {
                pid: t.pid,
                gtid: t.gtid,
                comm: t.proc_.as_ref().map(|p| p.comm.as_str()),
                cpu: t.proc_.as_ref().map(|p| p.cpu),
                state: t.word.map(|w| w.state()),
                flags: t.word.map(|w| w.flag_names()),
                barrier: t.word.map(|w| w.barrier),
                runtime_ns: t.word.map(|w| w.runtime),
            })
            .collect(),
    })
}

/// `tasks list`; `sw_error` explains missing status words.
pub fn tasks_human(id: u64, rows: &[TaskRow], sw_error: Option<&str>) -> String {
    if rows.is_empty() {
        return format!("enclave_{id} has no tasks\n");
    }
    let mut t = vec![cells(["PID", "COMM", "CPU", "STATE", "RUNTIME", "GTID"])];
    for r in rows {
        let p = r.proc_.as_ref();
        t.push(vec![
            r.pid.to_string(),
            p.map_or_else(|| "(gone)".into(), |p| p.comm.clone()),
            p.map_or_else(|| "-".into(), |p| p.cpu.to_string()),
            r.word.map_or("-", |w| w.state()).into(),
            r.word.map_or_else(|| "-".into(), |w| human_ns(w.runtime)),
            r.gtid.map_or_else(|| "-".into(), |g| g.to_string()),
        ]);
    }
    let mut out = table(&t);
    if let Some(e) = sw_error {
        let _ = writeln!(out, "(no STATE or RUNTIME: {e})");
    }
    out
}

/// `--json` of the commands that act on several items: `key` names the
/// field that identifies each (`pid`, `id`).
pub fn outcomes_json(key: &str, outcomes: &[Outcome]) -> String {
    /// One result; its first field is named by the command.
    struct OutcomeJson<'a> {
        key: &'a str,
        o: &'a Outcome,
    }
    impl Serialize for OutcomeJson<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let (ok, note, error) = match &self.o.result {
                Ok(n) => (true, Some(n.as_str()).filter(|n| !n.is_empty()), None),
                Err(e) => (false, None, Some(e.as_str())),
            };
            let mut m = s.serialize_map(Some(4))?;
            m.serialize_entry(self.key, &self.o.key)?;
            m.serialize_entry("ok", &ok)?;
            m.serialize_entry("note", &note)?;
            m.serialize_entry("error", &error)?;
            m.end()
        }
    }
    #[derive(Serialize)]
    struct Results<'a> {
        results: Vec<OutcomeJson<'a>>,
    }
    to_json(&Results {
        results: outcomes.iter().map(|o| OutcomeJson { key, o }).collect(),
    })
}

/// The commands that act on several items: one line each for successes
/// (`verb target[: note]`), and the failures, which go to stderr.
pub fn outcomes_human(verb: &str, outcomes: &[Outcome]) -> (String, String) {
    let (mut out, mut err) = (String::new(), String::new());
    for o in outcomes {
        let _ = match &o.result {
            Ok(n) if n.is_empty() => writeln!(out, "{verb} {}", o.target),
            Ok(n) => writeln!(out, "{verb} {}: {n}", o.target),
            Err(e) => writeln!(err, "ghostctl: {}: {e}", o.target),
        };
    }
    (out, err)
}

#[derive(Serialize)]
struct WordJson {
    pid: i32,
    gtid: u64,
    flags: String,
    barrier: u32,
}

impl From<&Word> for WordJson {
    fn from(w: &Word) -> Self {
        WordJson {
            pid: w.pid(),
            gtid: w.gtid,
            flags: w.flag_names(),
            barrier: w.barrier,
        }
    }
}

#[derive(Serialize)]
struct TxnJson {
    state: String,
    state_raw: i32,
    gtid: i64,
    target: String,
    agent_barrier: u32,
    task_barrier: u32,
    run_flags: u16,
    commit_flags: u8,
    commit_time_ns: i64,
    cpu_seqnum: u64,
}

impl From<&Txn> for TxnJson {
    fn from(t: &Txn) -> Self {
        TxnJson {
            state: txn_state(t.state),
            state_raw: t.state,
            gtid: t.gtid,
            target: txn_target(t.gtid),
            agent_barrier: t.agent_barrier,
            task_barrier: t.task_barrier,
            run_flags: t.run_flags,
            commit_flags: t.commit_flags,
            commit_time_ns: t.commit_time,
            cpu_seqnum: t.cpu_seqnum,
        }
    }
}

#[derive(Serialize)]
struct RunningJson<'a> {
    pid: i32,
    gtid: u64,
    comm: &'a str,
}

#[derive(Serialize)]
struct CpuRowJson<'a> {
    cpu: usize,
    agent: Option<WordJson>,
    agent_wakeups_per_s: Option<f64>,
    txn: Option<TxnJson>,
    running: Vec<RunningJson<'a>>,
}

impl<'a> CpuRowJson<'a> {
    fn new(row: &'a CpuRow, rates: &Rates) -> Self {
        CpuRowJson {
            cpu: row.cpu,
            agent: row.agent.as_ref().map(WordJson::from),
            agent_wakeups_per_s: rates.agent_wakeups.get(&row.cpu).copied(),
            txn: row.txn.as_ref().map(TxnJson::from),
            running: row
                .running
                .iter()
                .map(|(w, comm)| RunningJson {
                    pid: w.pid(),
                    gtid: w.gtid,
                    comm,
                })
                .collect(),
        }
    }
}

/// A `status` counter: its value and its rate.
#[derive(Serialize)]
struct CounterJson {
    value: u64,
    per_s: Option<f64>,
}

/// One `watch` frame as one JSON object (printed one per line).
pub fn frame_json(f: &Frame, rates: &Rates) -> String {
    #[derive(Serialize)]
    struct FrameJson<'a, C: Serialize> {
        id: u64,
        time_ns: i64,
        interval_s: f64,
        agent_online: bool,
        nr_tasks: u64,
        cpus: String,
        status_words: Option<CountsJson>,
        status_words_error: Option<&'a str>,
        task_msgs_per_s: Option<f64>,
        counters: C,
        cpu_data_error: Option<&'a str>,
        per_cpu: Vec<CpuRowJson<'a>>,
    }
    to_json(&FrameJson {
        id: f.id,
        time_ns: f.now_ns,
        interval_s: rates.seconds,
        agent_online: f.status.active,
        nr_tasks: f.status.nr_tasks,
        cpus: f.cpus.to_string(),
        status_words: f.counts.as_ref().map(CountsJson::from),
        status_words_error: f.sw_error.as_deref(),
        task_msgs_per_s: rates.task_msgs,
        counters: Pairs(rates.counters.iter().map(|(k, v, r)| {
            (
                k.as_str(),
                CounterJson {
                    value: *v,
                    per_s: *r,
                },
            )
        })),
        cpu_data_error: f.txn_error.as_deref(),
        per_cpu: f.rows.iter().map(|r| CpuRowJson::new(r, rates)).collect(),
    })
}

/// One `watch` frame for a terminal.
pub fn frame_human(f: &Frame, rates: &Rates) -> String {
    let mut out = format!(
        "enclave_{}  agent {}  tasks {}  cpus {}\n",
        f.id,
        online(f.status.active),
        f.status.nr_tasks,
        or_dash(f.cpus.to_string())
    );
    match (&f.counts, &f.sw_error) {
        (Some(c), _) => {
            let _ = writeln!(
                out,
                "status words: {}; task messages {}",
                counts_human(c),
                human_rate(rates.task_msgs)
            );
        }
        (None, Some(e)) => {
            let _ = writeln!(out, "status words: not readable: {e}");
        }
        (None, None) => {
            let _ = writeln!(out, "status words: no region");
        }
    }
    if !rates.counters.is_empty() {
        let parts: Vec<String> = rates
            .counters
            .iter()
            .map(|(k, v, r)| match r {
                Some(r) => format!("{k} {v} ({r:.1}/s)"),
                None => format!("{k} {v}"),
            })
            .collect();
        let _ = writeln!(out, "counters: {}", parts.join(", "));
    }
    if let Some(e) = &f.txn_error {
        let _ = writeln!(out, "transactions: not readable: {e}");
    }
    out.push('\n');
    let mut t = vec![cells([
        "CPU",
        "AGENT",
        "WAKEUPS",
        "TXN",
        "TARGET",
        "COMMITTED",
        "RUNNING",
    ])];
    for row in &f.rows {
        let committed = row.txn.filter(|t| t.commit_time > 0).map_or_else(
            || "-".into(),
            |t| {
                format!(
                    "{} ago",
                    human_ns(f.now_ns.saturating_sub(t.commit_time).max(0) as u64)
                )
            },
        );
        let running: Vec<String> = row
            .running
            .iter()
            .map(|(w, comm)| format!("{} {comm}", w.pid()))
            .collect();
        t.push(vec![
            row.cpu.to_string(),
            row.agent
                .map_or_else(|| "-".into(), |a| a.pid().to_string()),
            human_rate(rates.agent_wakeups.get(&row.cpu).copied()),
            row.txn.map_or_else(|| "-".into(), |t| txn_state(t.state)),
            row.txn.map_or_else(|| "-".into(), |t| txn_target(t.gtid)),
            committed,
            or_dash(running.join(", ")),
        ]);
    }
    out.push_str(&table(&t));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::fixtures::{frame, status, word};
    use crate::model::{ProcTask, RegionEntry};
    use ghost_abi::{GHOST_SW_TASK_IS_AGENT, GHOST_SW_TASK_ONCPU, GHOST_SW_TASK_RUNNABLE};

    #[test]
    fn table_aligns_columns() {
        let t = table(&[cells(["A", "LONGER", "C"]), cells(["wide cell", "x", ""])]);
        assert_eq!(t, "A          LONGER  C\nwide cell  x\n");
        assert_eq!(table(&[]), "");
    }

    #[test]
    fn durations_and_txn_names() {
        assert_eq!(human_ns(0), "0ns");
        assert_eq!(human_ns(12_500), "12.5us");
        assert_eq!(human_ns(3_200_000), "3.2ms");
        assert_eq!(human_ns(1_500_000_000), "1.5s");
        assert_eq!(human_ns(725_000_000_000), "12m05s");
        assert_eq!(human_ns(u64::MAX), "307445734m33s");
        assert_eq!(txn_state(GHOST_TXN_READY), "READY");
        assert_eq!(txn_state(GHOST_TXN_COMPLETE), "COMPLETE");
        assert_eq!(txn_state(GHOST_TXN_POISONED), "POISONED");
        assert_eq!(txn_state(3), "claimed by CPU 3");
        assert_eq!(txn_state(i32::MIN + 99), "state -2147483549");
        assert_eq!(txn_target(0), "-");
        assert_eq!(txn_target(-1), "ping");
        assert_eq!(txn_target(-2), "idle");
        assert_eq!(txn_target(534_362_651_099_387), "pid 243");
        assert_eq!(txn_target(-7), "gtid -7");
    }

    fn rows() -> Vec<EnclaveRow> {
        let mut eph = status(false, 0);
        eph.ephemeral = Some(812);
        vec![
            EnclaveRow {
                id: 1,
                cpus: "1-3".parse().unwrap(),
                status: status(true, 4),
            },
            EnclaveRow {
                id: 12,
                cpus: "".parse().unwrap(),
                status: eph,
            },
        ]
    }

    #[test]
    fn list_outputs() {
        assert_eq!(
            list_human(&rows()),
            "ID  CPUS  AGENT    TASKS  EPHEMERAL\n\
             1   1-3   online   4      -\n\
             12  -     offline  0      tgid 812\n"
        );
        assert_eq!(list_human(&[]), "no enclaves\n");
        assert_eq!(
            list_json(&rows()).to_string(),
            r#"{"enclaves":[{"id":1,"cpus":"1-3","nr_cpus":3,"agent_online":true,"nr_tasks":4,"ephemeral_tgid":null},{"id":12,"cpus":"","nr_cpus":0,"agent_online":false,"nr_tasks":0,"ephemeral_tgid":812}]}"#
        );
        assert_eq!(list_json(&[]).to_string(), r#"{"enclaves":[]}"#);
    }

    fn report() -> Report {
        let words = vec![
            word(10, GHOST_SW_TASK_IS_AGENT, 9),
            word(101, GHOST_SW_TASK_ONCPU | GHOST_SW_TASK_RUNNABLE, 3),
            word(102, 0, 2),
        ];
        let mut st = status(true, 3);
        st.extra.insert("commits".into(), "42".into());
        Report {
            id: 1,
            path: "/sys/fs/ghost/enclave_1".into(),
            group: Some(0),
            status: st,
            cpus: "1-2".parse().unwrap(),
            agent_online: true,
            tasks: vec![101, 102],
            tunables: vec![(Tunable::RunnableTimeout, 250), (Tunable::DeliverTicks, 1)],
            sw: SwUse {
                regions: Ok(vec![
                    RegionEntry {
                        id: 0,
                        region: Ok(Region {
                            numa_node: 0,
                            capacity: 65534,
                            available: 65531,
                            counts: WordCounts::of(&words),
                            words,
                        }),
                    },
                    RegionEntry {
                        id: 1,
                        region: Err("open /x/sw_1 read-only: EACCES (Permission denied)".into()),
                    },
                ]),
            },
        }
    }

    #[test]
    fn status_human_output() {
        assert_eq!(
            status_human(&report()),
            "enclave_1 (/sys/fs/ghost/enclave_1)\n\
            \x20 abi            91\n\
            \x20 cpus           1-2 (2)\n\
            \x20 agent          online\n\
            \x20 tasks          2: 101 102 (nr_tasks 3 with the agents)\n\
            \x20 ephemeral      no\n\
            \x20 commits        42\n\
            \x20 tunables\n\
            \x20   runnable_timeout           250 ms\n\
            \x20   deliver_ticks              1\n\
            \x20 status words\n\
            \x20   sw_0    node 0  3/65534 used: 1 agents, 2 tasks (1 on a CPU, 1 runnable, 0 departed)\n\
            \x20   sw_1    not readable: open /x/sw_1 read-only: EACCES (Permission denied)\n"
        );
        let mut r = report();
        r.tasks = (1..=20).collect();
        assert!(status_human(&r).contains(
            "  tasks          20: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 ... (4 more: tasks list) (nr_tasks 3 with the agents)\n"
        ));
        r.tasks.clear();
        assert!(status_human(&r).contains("  tasks          0 (nr_tasks 3 with the agents)\n"));
        r.sw.regions = Ok(vec![]);
        assert!(status_human(&r).ends_with("  status words   no region (tasks cannot join yet)\n"));
        r.sw.regions = Err("read directory x: EACCES".into());
        assert!(
            status_human(&r).ends_with("  status words   not readable: read directory x: EACCES\n")
        );
    }

    #[test]
    fn status_json_output() {
        assert_eq!(
            status_json(&report()).to_string(),
            concat!(
                r#"{"id":1,"path":"/sys/fs/ghost/enclave_1","group":0,"version":91,"cpus":"1-2","nr_cpus":2,"#,
                r#""agent_online":true,"nr_tasks":3,"ephemeral_tgid":null,"tasks":[101,102],"#,
                r#""tunables":{"runnable_timeout":250,"deliver_ticks":1},"status_extra":{"commits":"42"},"#,
                r#""status_words":{"regions":[{"id":0,"numa_node":0,"capacity":65534,"available":65531,"used":3,"#,
                r#""allocated":3,"agents":1,"tasks":2,"oncpu":1,"runnable":1,"canfree":0},"#,
                r#"{"id":1,"error":"open /x/sw_1 read-only: EACCES (Permission denied)"}]}}"#
            )
        );
    }

    #[test]
    fn tunables_outputs() {
        let t = [(Tunable::RunnableTimeout, 0), (Tunable::LiveDangerously, 1)];
        assert_eq!(
            tunables_human(&t),
            "runnable_timeout  0 ms\nlive_dangerously  1\n"
        );
        assert_eq!(
            tunables_json(3, &t).to_string(),
            r#"{"id":3,"tunables":{"runnable_timeout":0,"live_dangerously":1}}"#
        );
    }

    #[test]
    fn tasks_outputs() {
        let w = Word {
            runtime: 1_500_000,
            ..word(101, GHOST_SW_TASK_RUNNABLE, 4)
        };
        let rows = vec![
            TaskRow {
                pid: 101,
                gtid: Some(w.gtid),
                proc_: Some(ProcTask {
                    comm: "my \"app\"".into(),
                    state: 'R',
                    cpu: 2,
                }),
                word: Some(w),
            },
            TaskRow {
                pid: 102,
                gtid: None,
                proc_: None,
                word: None,
            },
        ];
        assert_eq!(
            tasks_human(1, &rows, Some("sw_0: EACCES")),
            format!(
                "PID  COMM      CPU  STATE     RUNTIME  GTID\n\
                 101  my \"app\"  2    runnable  1.5ms    {}\n\
                 102  (gone)    -    -         -        -\n\
                 (no STATE or RUNTIME: sw_0: EACCES)\n",
                w.gtid
            )
        );
        assert_eq!(tasks_human(4, &[], None), "enclave_4 has no tasks\n");
        assert_eq!(
            tasks_json(1, &rows).to_string(),
            format!(
                concat!(
                    r#"{{"id":1,"tasks":[{{"pid":101,"gtid":{},"comm":"my \"app\"","cpu":2,"state":"runnable","#,
                    r#""flags":"ALLOCATED|TASK_RUNNABLE","barrier":4,"runtime_ns":1500000}},"#,
                    r#"{{"pid":102,"gtid":null,"comm":null,"cpu":null,"state":null,"flags":null,"barrier":null,"runtime_ns":null}}]}}"#
                ),
                w.gtid
            )
        );
    }

    #[test]
    fn outcome_outputs() {
        let o = vec![
            Outcome {
                target: "pid 5".into(),
                key: 5,
                result: Ok(String::new()),
            },
            Outcome {
                target: "pid 6".into(),
                key: 6,
                result: Ok("not a ghost task, left alone".into()),
            },
            Outcome {
                target: "pid 7".into(),
                key: 7,
                result: Err("sched_setscheduler(7, SCHED_OTHER): EPERM".into()),
            },
        ];
        let (out, err) = outcomes_human("removed", &o);
        assert_eq!(
            out,
            "removed pid 5\nremoved pid 6: not a ghost task, left alone\n"
        );
        assert_eq!(
            err,
            "ghostctl: pid 7: sched_setscheduler(7, SCHED_OTHER): EPERM\n"
        );
        assert_eq!(
            outcomes_json("pid", &o).to_string(),
            concat!(
                r#"{"results":[{"pid":5,"ok":true,"note":null,"error":null},"#,
                r#"{"pid":6,"ok":true,"note":"not a ghost task, left alone","error":null},"#,
                r#"{"pid":7,"ok":false,"note":null,"error":"sched_setscheduler(7, SCHED_OTHER): EPERM"}]}"#
            )
        );
    }

    fn watch_frames() -> (Frame, Frame) {
        let agent = word(10, GHOST_SW_TASK_IS_AGENT, 100);
        let task = word(101, GHOST_SW_TASK_ONCPU | GHOST_SW_TASK_RUNNABLE, 7);
        let mut prev = frame(10, &[("commits", "10")], 50, Some(agent));
        prev.rows.push(CpuRow {
            cpu: 2,
            txn: None,
            agent: None,
            running: vec![],
        });
        let mut cur = frame(
            12,
            &[("commits", "30")],
            58,
            Some(Word {
                barrier: 104,
                ..agent
            }),
        );
        cur.rows[0].txn = Some(Txn {
            state: GHOST_TXN_COMPLETE,
            gtid: task.gtid as i64,
            commit_time: cur.now_ns - 2_500_000,
            cpu_seqnum: 9,
            ..Txn::default()
        });
        cur.rows[0].running = vec![(task, "busy".into())];
        cur.rows.push(CpuRow {
            cpu: 2,
            txn: Some(Txn {
                state: GHOST_TXN_READY,
                gtid: -2,
                ..Txn::default()
            }),
            agent: None,
            running: vec![],
        });
        cur.txn_error = None;
        (prev, cur)
    }

    #[test]
    fn watch_human_frame() {
        let (prev, cur) = watch_frames();
        let rates = Rates::between(Some(&prev), &cur);
        assert_eq!(
            frame_human(&cur, &rates),
            "enclave_1  agent online  tasks 2  cpus 1\n\
             status words: 0 agents, 0 tasks (0 on a CPU, 0 runnable, 0 departed); task messages 4.0/s\n\
             counters: commits 30 (10.0/s)\n\
             \n\
             CPU  AGENT  WAKEUPS  TXN       TARGET   COMMITTED  RUNNING\n\
             1    10     2.0/s    COMPLETE  pid 101  2.5ms ago  101 busy\n\
             2    -      -        READY     idle     -          -\n"
        );
        let mut unreadable = cur.clone();
        unreadable.counts = None;
        unreadable.sw_error = Some("sw_0: EACCES".into());
        unreadable.txn_error = Some("cpu_data: EACCES".into());
        let text = frame_human(&unreadable, &Rates::between(None, &unreadable));
        assert!(
            text.contains("status words: not readable: sw_0: EACCES\n"),
            "{text}"
        );
        assert!(
            text.contains("transactions: not readable: cpu_data: EACCES\n"),
            "{text}"
        );
    }

    #[test]
    fn watch_json_frame() {
        let (prev, cur) = watch_frames();
        let rates = Rates::between(Some(&prev), &cur);
        let j = frame_json(&cur, &rates).to_string();
        let task_gtid = word(101, 0, 0).gtid;
        for part in [
            r#"{"id":1,"time_ns":12000000000,"interval_s":2.0,"agent_online":true,"nr_tasks":2,"cpus":"1","#.to_string(),
            r#""task_msgs_per_s":4.0,"counters":{"commits":{"value":30,"per_s":10.0}},"cpu_data_error":null,"#.into(),
            r#""per_cpu":[{"cpu":1,"agent":{"pid":10,"#.into(),
            r#""agent_wakeups_per_s":2.0,"txn":{"state":"COMPLETE","state_raw":-2147483648,"#.into(),
            format!(r#""running":[{{"pid":101,"gtid":{task_gtid},"comm":"busy"}}]}}"#),
            r#"{"cpu":2,"agent":null,"agent_wakeups_per_s":null,"txn":{"state":"READY","state_raw":2147483647,"gtid":-2,"target":"idle","#.into(),
        ] {
            assert!(j.contains(&part), "{part}\nnot in\n{j}");
        }
    }

    #[test]
    fn json_escapes_strings_and_nulls_non_finite_floats() {
        let o = [Outcome {
            target: "pid 9".into(),
            key: 9,
            result: Err("a\"b\\c\nd\te\u{1}f/é".into()),
        }];
        assert_eq!(
            outcomes_json("pid", &o),
            r#"{"results":[{"pid":9,"ok":false,"note":null,"error":"a\"b\\c\nd\te\u0001f/é"}]}"#
        );
        let (_, cur) = watch_frames();
        let rates = Rates {
            seconds: f64::NAN,
            task_msgs: Some(f64::INFINITY),
            ..Rates::default()
        };
        let j = frame_json(&cur, &rates);
        assert!(j.contains(r#""interval_s":null"#), "{j}");
        assert!(j.contains(r#""task_msgs_per_s":null"#), "{j}");
    }
}
