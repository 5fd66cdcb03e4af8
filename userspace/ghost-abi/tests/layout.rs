//! Checks the Rust mirror against the C uapi header
//! `linux/include/uapi/linux/ghost.h`.
//!
//! `c_header_matches_rust` generates a C program from the tables below, builds
//! it with `cc`, runs it and compares every size, alignment, field offset and
//! constant it prints with the Rust definitions. `tables_cover_the_header`
//! parses the header and fails if it defines a struct, field or constant the
//! tables do not list. `sizes_match_ghost_abi_md` checks the byte counts
//! quoted in ghost-abi.md.

use ghost_abi::*;
use std::collections::{BTreeMap, BTreeSet};
use std::mem::{align_of, offset_of, size_of};
use std::path::PathBuf;
use std::process::Command;

/// Layout of one C struct or union and its Rust mirror.
struct Layout {
    /// Name used in reports and in the header (`ghost_txn`, `ghost_txn.u`).
    name: &'static str,
    /// C type expression for `sizeof`/`offsetof`.
    c_type: &'static str,
    size: usize,
    align: usize,
    /// (C field name, Rust offset).
    fields: Vec<(&'static str, usize)>,
}

macro_rules! c_field_name {
    ($f:ident) => {
        stringify!($f)
    };
    ($f:ident, $c:literal) => {
        $c
    };
}

/// `layout!(RustType, "c_name", "c type expression", [field, rust_field => "c_field", ...])`
macro_rules! layout {
    (@full $rust:ty, $name:literal, $c_type:expr, [$($f:ident $(=> $cf:literal)?),* $(,)?]) => {
        Layout {
            name: $name,
            c_type: $c_type,
            size: size_of::<$rust>(),
            align: align_of::<$rust>(),
            fields: vec![$((c_field_name!($f $(, $cf)?), offset_of!($rust, $f))),*],
        }
    };
    ($rust:ty, $name:literal, $c_type:literal, [$($t:tt)*]) => {
        layout!(@full $rust, $name, $c_type, [$($t)*])
    };
    ($rust:ty, $name:literal, [$($t:tt)*]) => {
        layout!(@full $rust, $name, concat!("struct ", $name), [$($t)*])
    };
}

fn layouts() -> Vec<Layout> {
    vec![
        layout!(GhostMsgSrc, "ghost_msg_src", [type_ => "type", arg]),
        layout!(GhostAgentWakeup, "ghost_agent_wakeup", [cpu, prio]),
        layout!(GhostSwInfo, "ghost_sw_info", [id, index]),
        layout!(
            GhostQueueHeader,
            "ghost_queue_header",
            [version, start, nelems]
        ),
        layout!(GhostMsg, "ghost_msg", [type_ => "type", length, seqnum, payload]),
        layout!(GhostRing, "ghost_ring", [head, tail, overflow, msgs]),
        layout!(
            GhostMsgPayloadTaskNew,
            "ghost_msg_payload_task_new",
            [
                gtid,
                parent_gtid,
                runtime,
                runnable,
                nice,
                sw_info,
                agent_data
            ]
        ),
        layout!(
            GhostMsgPayloadTaskPreempt,
            "ghost_msg_payload_task_preempt",
            [
                gtid,
                runtime,
                cpu_seqnum,
                agent_data,
                cpu,
                from_switchto,
                was_latched
            ]
        ),
        layout!(
            GhostMsgPayloadTaskYield,
            "ghost_msg_payload_task_yield",
            [gtid, runtime, cpu_seqnum, agent_data, cpu, from_switchto]
        ),
        layout!(
            GhostMsgPayloadTaskBlocked,
            "ghost_msg_payload_task_blocked",
            [gtid, runtime, cpu_seqnum, cpu, from_switchto]
        ),
        layout!(
            GhostMsgPayloadTaskDead,
            "ghost_msg_payload_task_dead",
            [gtid, cpu]
        ),
        layout!(
            GhostMsgPayloadTaskDeparted,
            "ghost_msg_payload_task_departed",
            [gtid, cpu_seqnum, cpu, from_switchto, was_current]
        ),
        layout!(
            GhostMsgPayloadTaskWakeup,
            "ghost_msg_payload_task_wakeup",
            [
                gtid,
                agent_data,
                deferrable,
                last_ran_cpu,
                wake_up_cpu,
                waker_cpu
            ]
        ),
        layout!(
            GhostMsgPayloadTaskSwitchto,
            "ghost_msg_payload_task_switchto",
            [gtid, runtime, cpu_seqnum, cpu]
        ),
        layout!(
            GhostMsgPayloadTaskAffinityChanged,
            "ghost_msg_payload_task_affinity_changed",
            [gtid]
        ),
        layout!(
            GhostMsgPayloadTaskPriorityChanged,
            "ghost_msg_payload_task_priority_changed",
            [gtid, nice]
        ),
        layout!(
            GhostMsgPayloadTaskOnCpu,
            "ghost_msg_payload_task_on_cpu",
            [gtid, commit_time, cpu_seqnum, cpu]
        ),
        layout!(
            GhostMsgPayloadTaskLatchFailure,
            "ghost_msg_payload_task_latch_failure",
            [gtid, errno]
        ),
        layout!(
            GhostMsgPayloadCpuTick,
            "ghost_msg_payload_cpu_tick",
            [cpu, is_agent]
        ),
        layout!(
            GhostMsgPayloadTimer,
            "ghost_msg_payload_timer",
            [cpu, type_ => "type", cookie]
        ),
        layout!(
            GhostMsgPayloadCpuNotIdle,
            "ghost_msg_payload_cpu_not_idle",
            [cpu, next_gtid]
        ),
        layout!(
            GhostMsgPayloadCpuAvailable,
            "ghost_msg_payload_cpu_available",
            [cpu]
        ),
        layout!(GhostMsgPayloadCpuBusy, "ghost_msg_payload_cpu_busy", [cpu]),
        layout!(
            GhostMsgPayloadAgentBlocked,
            "ghost_msg_payload_agent_blocked",
            [cpu]
        ),
        layout!(
            GhostMsgPayloadAgentWakeup,
            "ghost_msg_payload_agent_wakeup",
            [cpu]
        ),
        layout!(
            BpfGhostMsg,
            "bpf_ghost_msg",
            [
                payload => "dead",
                payload => "blocked",
                payload => "wakeup",
                payload => "newt",
                payload => "preempt",
                payload => "yield",
                payload => "departed",
                payload => "switchto",
                payload => "affinity",
                payload => "priority",
                payload => "on_cpu",
                payload => "latch_failure",
                payload => "cpu_tick",
                payload => "timer",
                payload => "cpu_not_idle",
                payload => "cpu_available",
                payload => "cpu_busy",
                payload => "agent_blocked",
                payload => "agent_wakeup",
                type_ => "type",
                seqnum,
                pref_cpu
            ]
        ),
        layout!(
            BpfGhostSched,
            "bpf_ghost_sched",
            [
                agent_on_rq,
                agent_runnable,
                might_yield,
                dont_idle,
                must_resched,
                next_gtid
            ]
        ),
        layout!(
            BpfGhostSelectRq,
            "bpf_ghost_select_rq",
            [
                gtid,
                task_cpu,
                waker_cpu,
                sd_flag,
                wake_flags,
                skip_ttwu_queue
            ]
        ),
        layout!(BpfGhostHaltPoll, "bpf_ghost_halt_poll", [type_ => "type"]),
        layout!(
            BpfSyncCommitArgs,
            "bpf_sync_commit_args",
            [cpus, gtids, task_barriers, run_flags, commit_flags]
        ),
        layout!(
            GhostSwRegionHeader,
            "ghost_sw_region_header",
            [version, id, numa_node, start, capacity, available]
        ),
        layout!(
            GhostStatusWord,
            "ghost_status_word",
            [barrier, flags, gtid, switch_time, runtime]
        ),
        layout!(
            GhostTxn,
            "ghost_txn",
            [
                version,
                cpu,
                state,
                agent_barrier,
                task_barrier,
                run_flags,
                commit_flags,
                unused,
                gtid,
                commit_time,
                cpu_seqnum,
                u
            ]
        ),
        layout!(
            GhostTxnU,
            "ghost_txn.u",
            "__typeof__(((struct ghost_txn *)0)->u)",
            [sync_group_owner]
        ),
        layout!(GhostCpuData, "ghost_cpu_data", [txn]),
        layout!(TimerfdGhost, "timerfd_ghost", [cpu, flags, type_ => "type", cookie]),
        layout!(
            GhostIocSwGetInfo,
            "ghost_ioc_sw_get_info",
            [request, response]
        ),
        layout!(
            GhostIocCreateQueue,
            "ghost_ioc_create_queue",
            [elems, node, flags, mapsize]
        ),
        layout!(
            GhostIocAssocQueue,
            "ghost_ioc_assoc_queue",
            [fd, src, barrier, flags]
        ),
        layout!(GhostIocSetDefaultQueue, "ghost_ioc_set_default_queue", [fd]),
        layout!(
            GhostIocConfigQueueWakeup,
            "ghost_ioc_config_queue_wakeup",
            [qfd, w, ninfo, flags]
        ),
        layout!(
            GhostIocGetCpuTime,
            "ghost_ioc_get_cpu_time",
            [gtid, runtime]
        ),
        layout!(
            GhostIocCommitTxn,
            "ghost_ioc_commit_txn",
            [mask_ptr, mask_len, flags]
        ),
        layout!(
            GhostIocTimerfdSettime,
            "ghost_ioc_timerfd_settime",
            [timerfd, flags, in_tmr, out_tmr, timerfd_ghost]
        ),
        layout!(
            GhostIocRun,
            "ghost_ioc_run",
            [gtid, agent_barrier, task_barrier, run_cpu, run_flags]
        ),
    ]
}

/// `consts![NAME, RUST_NAME => "C_NAME", ...]`: (C name, Rust value).
macro_rules! consts {
    ($($r:ident $(=> $c:literal)?),* $(,)?) => {
        vec![$((c_field_name!($r $(, $c)?), $r as i128)),*]
    };
}

fn constants() -> Vec<(&'static str, i128)> {
    let mut v = consts![
        GHOST_VERSION,
        SCHED_GHOST,
        GHOST_SUPER_MAGIC,
        GHOST_AGENT,
        GHOST_TASK,
        GHOST_MAX_WINFO,
        GHOST_NULL_GTID,
        GHOST_AGENT_GTID,
        GHOST_IDLE_GTID,
        GHOST_QUEUE_VERSION,
        GHOST_SW_REGION_VERSION,
        GHOST_TXN_VERSION,
        GHOST_MAX_QUEUE_ELEMS,
        MSG_TASK_FIRST => "_MSG_TASK_FIRST",
        MSG_TASK_LAST => "_MSG_TASK_LAST",
        MSG_CPU_FIRST => "_MSG_CPU_FIRST",
        MSG_CPU_LAST => "_MSG_CPU_LAST",
        MSG_NOP,
        MSG_TASK_DEAD,
        MSG_TASK_BLOCKED,
        MSG_TASK_WAKEUP,
        MSG_TASK_NEW,
        MSG_TASK_PREEMPT,
        MSG_TASK_YIELD,
        MSG_TASK_DEPARTED,
        MSG_TASK_SWITCHTO,
        MSG_TASK_AFFINITY_CHANGED,
        MSG_TASK_ON_CPU,
        MSG_TASK_PRIORITY_CHANGED,
        MSG_TASK_LATCH_FAILURE,
        MSG_CPU_TICK,
        MSG_CPU_TIMER_EXPIRED,
        MSG_CPU_NOT_IDLE,
        MSG_CPU_AVAILABLE,
        MSG_CPU_BUSY,
        MSG_CPU_AGENT_BLOCKED,
        MSG_CPU_AGENT_WAKEUP,
        GHOST_SW_F_INUSE,
        GHOST_SW_F_CANFREE,
        GHOST_SW_F_ALLOCATED,
        GHOST_SW_CPU_AVAIL,
        GHOST_SW_BOOST_PRIO,
        GHOST_SW_TASK_ONCPU,
        GHOST_SW_TASK_RUNNABLE,
        GHOST_SW_TASK_IS_AGENT,
        GHOST_SW_TASK_MSG_GATED,
        GHOST_NO_SYNC_GROUP_OWNER,
        GHOST_TXN_READY,
        GHOST_TXN_COMPLETE,
        GHOST_TXN_ABORTED,
        GHOST_TXN_TARGET_ONCPU,
        GHOST_TXN_TARGET_STALE,
        GHOST_TXN_TARGET_NOT_FOUND,
        GHOST_TXN_TARGET_NOT_RUNNABLE,
        GHOST_TXN_AGENT_STALE,
        GHOST_TXN_CPU_OFFLINE,
        GHOST_TXN_CPU_UNAVAIL,
        GHOST_TXN_INVALID_FLAGS,
        GHOST_TXN_INVALID_TARGET,
        GHOST_TXN_NOT_PERMITTED,
        GHOST_TXN_INVALID_CPU,
        GHOST_TXN_NO_AGENT,
        GHOST_TXN_UNSUPPORTED_VERSION,
        GHOST_TXN_POISONED,
        COMMIT_AT_SCHEDULE,
        COMMIT_AT_TXN_COMMIT,
        ALLOW_TASK_ONCPU,
        ELIDE_AGENT_BARRIER_INC,
        INC_AGENT_BARRIER_ON_FAILURE,
        COMMIT_AT_FLAGS,
        BPF_GHOST_MSG_NO_WAKEUP_PREF,
        BPF_GHOST_MSG_SKIP_AGENT_WAKE,
        BPF_SYNC_COMMIT_MAX_CPUS,
        RESCHED_ANY_CLASS,
        RESCHED_GHOST_CLASS,
        RESCHED_IDLE_CLASS,
        RESCHED_OTHER_CLASS,
        SET_MUST_RESCHED,
        WAKE_AGENT,
        GHOST_RESCHED_CPU_MAX,
        GHOST_GTID_LOOKUP,
        GHOST_BASE_OP_FIRST => "_GHOST_BASE_OP_FIRST",
        GHOST_BASE_GET_GTID,
        GHOST_GTID_LOOKUP_TGID,
        RTLA_ON_PREEMPT,
        RTLA_ON_BLOCKED,
        RTLA_ON_YIELD,
        RTLA_ON_IDLE,
        NEED_L1D_FLUSH,
        NEED_CPU_NOT_IDLE,
        ELIDE_PREEMPT,
        SEND_TASK_ON_CPU,
        DEFER_LATCHED_PREEMPTION_BY_AGENT,
        DO_NOT_PREEMPT,
        GHOST_ASSOC_SF_ALREADY,
        GHOST_ASSOC_SF_BRAND_NEW,
        TIMERFD_GHOST_ENABLED,
        GHOST_IOC_NULL,
        GHOST_IOC_SW_GET_INFO,
        GHOST_IOC_SW_FREE,
        GHOST_IOC_CREATE_QUEUE,
        GHOST_IOC_ASSOC_QUEUE,
        GHOST_IOC_SET_DEFAULT_QUEUE,
        GHOST_IOC_CONFIG_QUEUE_WAKEUP,
        GHOST_IOC_GET_CPU_TIME,
        GHOST_IOC_COMMIT_TXN,
        GHOST_IOC_SYNC_GROUP_TXN,
        GHOST_IOC_TIMERFD_SETTIME,
        GHOST_IOC_RUN,
    ];
    #[cfg(target_arch = "x86_64")]
    v.extend(consts![NR_GHOST_RUN => "__NR_ghost_run"]);
    v
}

fn header_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../linux/include/uapi/linux/ghost.h")
        .canonicalize()
        .expect("linux/include/uapi/linux/ghost.h not found")
}

/// The C program: prints `size NAME N`, `align NAME N`, `offset NAME.FIELD N`
/// and `const NAME V` lines.
fn c_program(layouts: &[Layout], constants: &[(&str, i128)]) -> String {
    let mut c = String::new();
    c.push_str("#include <stddef.h>\n#include <stdio.h>\n");
    c.push_str(&format!("#include \"{}\"\n", header_path().display()));
    c.push_str("int main(void)\n{\n");
    for l in layouts {
        c.push_str(&format!(
            "\tprintf(\"size {n} %zu\\n\", sizeof({t}));\n\
             \tprintf(\"align {n} %zu\\n\", (size_t)_Alignof({t}));\n",
            n = l.name,
            t = l.c_type
        ));
        for (f, _) in &l.fields {
            c.push_str(&format!(
                "\tprintf(\"offset {n}.{f} %zu\\n\", offsetof({t}, {f}));\n",
                n = l.name,
                t = l.c_type
            ));
        }
    }
    for (name, _) in constants {
        c.push_str(&format!(
            "\tprintf(\"const {name} %lld\\n\", (long long)({name}));\n"
        ));
    }
    c.push_str("\treturn 0;\n}\n");
    c
}

/// What the Rust side expects the C program to print, keyed like its output.
fn expected(layouts: &[Layout], constants: &[(&str, i128)]) -> BTreeMap<String, i128> {
    let mut m = BTreeMap::new();
    for l in layouts {
        m.insert(format!("size {}", l.name), l.size as i128);
        m.insert(format!("align {}", l.name), l.align as i128);
        for (f, off) in &l.fields {
            m.insert(format!("offset {}.{}", l.name, f), *off as i128);
        }
    }
    for (name, v) in constants {
        assert!(
            m.insert(format!("const {name}"), *v).is_none(),
            "{name} listed twice"
        );
    }
    m
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("non-UTF-8 output")
}

fn tmp_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ghost-abi-layout");
    std::fs::create_dir_all(&d).expect("cannot create the temporary directory");
    d
}

#[test]
fn c_header_matches_rust() {
    let layouts = layouts();
    let constants = constants();
    let dir = tmp_dir();
    let src = dir.join("layout.c");
    let exe = dir.join("layout");
    std::fs::write(&src, c_program(&layouts, &constants)).expect("cannot write layout.c");
    run(Command::new("cc")
        .args(["-std=gnu11", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&exe)
        .arg(&src));
    let output = run(&mut Command::new(&exe));

    let mut got = BTreeMap::new();
    for line in output.lines() {
        let (key, value) = line.rsplit_once(' ').expect("malformed line");
        let value: i128 = value.parse().expect("malformed value");
        got.insert(key.to_string(), value);
    }
    let want = expected(&layouts, &constants);

    let mut errors = Vec::new();
    for (key, w) in &want {
        match got.get(key) {
            Some(g) if g == w => {}
            Some(g) => errors.push(format!("{key}: C {g}, Rust {w}")),
            None => errors.push(format!("{key}: not printed by the C program")),
        }
    }
    for key in got.keys().filter(|k| !want.contains_key(*k)) {
        errors.push(format!("{key}: unexpected C output"));
    }
    assert!(
        errors.is_empty(),
        "{} mismatches between ghost.h and ghost-abi:\n{}",
        errors.len(),
        errors.join("\n")
    );
    let n = |p: &str| want.keys().filter(|k| k.starts_with(p)).count();
    println!(
        "ghost-abi layout: {} checks passed ({} sizes, {} alignments, {} field offsets, {} constants)",
        want.len(),
        n("size "),
        n("align "),
        n("offset "),
        n("const ")
    );
}

/// What the header declares, from a small C tokenizer.
#[derive(Default)]
struct HeaderItems {
    /// Object-like macros with an integer value, and enumerators.
    constants: BTreeSet<String>,
    /// Struct (and nested member union, as `struct.member`) name -> member names.
    aggregates: BTreeMap<String, BTreeSet<String>>,
}

fn strip_comments(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("/*") {
        out.push_str(&rest[..i]);
        let j = rest[i..].find("*/").expect("unterminated comment");
        out.push(' ');
        rest = &rest[i + j + 2..];
    }
    out.push_str(rest);
    out
}

fn tokens(s: &str) -> Vec<String> {
    let mut v = Vec::new();
    let mut cur = String::new();
    for ch in s.chars() {
        if ch.is_ascii_alphanumeric() || ch == '_' {
            cur.push(ch);
        } else {
            if !cur.is_empty() {
                v.push(std::mem::take(&mut cur));
            }
            if !ch.is_whitespace() {
                v.push(ch.to_string());
            }
        }
    }
    if !cur.is_empty() {
        v.push(cur);
    }
    v
}

fn is_ident(t: &str) -> bool {
    t.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
}

fn parse_header(text: &str) -> HeaderItems {
    let text = strip_comments(text).replace("\\\n", " ");
    let mut items = HeaderItems::default();
    let mut code = String::new();
    // Preprocessor conditionals: the first branch is read, the `#else`
    // branches (the same names for another compiler or for the kernel) are
    // skipped. `skip` counts the nesting depth inside a skipped branch.
    let mut depth = 0usize;
    let mut skip: Option<usize> = None;
    for line in text.lines() {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix('#') {
            let rest = rest.trim_start();
            if rest.starts_with("if") {
                depth += 1;
                continue;
            }
            if rest.starts_with("else") || rest.starts_with("elif") {
                if skip.is_none() {
                    skip = Some(depth);
                }
                continue;
            }
            if rest.starts_with("endif") {
                if skip == Some(depth) {
                    skip = None;
                }
                depth = depth.saturating_sub(1);
                continue;
            }
            if skip.is_some() {
                continue;
            }
            if let Some(def) = rest.strip_prefix("define") {
                let def = def.trim_start();
                let name_len = def
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(def.len());
                let (name, body) = def.split_at(name_len);
                // Function-like macros, the include guard and attribute macros
                // are not constants.
                if !body.starts_with('(')
                    && !body.trim().is_empty()
                    && !body.contains("__attribute__")
                {
                    items.constants.insert(name.to_string());
                }
            }
            continue;
        }
        if skip.is_none() {
            code.push_str(line);
            code.push('\n');
        }
    }

    let toks = tokens(&code);
    let mut i = 0;
    while i < toks.len() {
        let kw = toks[i].as_str();
        if kw == "enum" && i + 1 < toks.len() && toks[i + 1] == "{" {
            // An anonymous enum: its enumerators are constants too.
            i += 2;
            let mut prev = "{".to_string();
            while toks[i] != "}" {
                if (prev == "{" || prev == ",") && is_ident(&toks[i]) {
                    items.constants.insert(toks[i].clone());
                }
                prev = toks[i].clone();
                i += 1;
            }
            continue;
        }
        if (kw == "struct" || kw == "enum")
            && i + 2 < toks.len()
            && is_ident(&toks[i + 1])
            && toks[i + 2] == "{"
        {
            let name = toks[i + 1].clone();
            i += 3;
            if kw == "enum" {
                // Enumerators: identifiers right after `{` or `,`.
                let mut prev = "{".to_string();
                while toks[i] != "}" {
                    if (prev == "{" || prev == ",") && is_ident(&toks[i]) {
                        items.constants.insert(toks[i].clone());
                    }
                    prev = toks[i].clone();
                    i += 1;
                }
                continue;
            }
            // Struct members: the last identifier of each top-level statement,
            // ignoring array bounds. A nested aggregate's members are recorded
            // under "<struct>.<member>".
            let mut depth = 1;
            let mut stmt: Vec<String> = Vec::new();
            let mut nested: BTreeSet<String> = BTreeSet::new();
            let mut members = BTreeSet::new();
            while depth > 0 {
                let t = toks[i].clone();
                i += 1;
                match t.as_str() {
                    "{" => {
                        depth += 1;
                        stmt.clear();
                    }
                    "}" => {
                        depth -= 1;
                        stmt.clear();
                    }
                    ";" => {
                        let mut in_brackets = false;
                        let mut last = None;
                        for s in &stmt {
                            match s.as_str() {
                                "[" => in_brackets = true,
                                "]" => in_brackets = false,
                                s if !in_brackets && is_ident(s) => last = Some(s.to_string()),
                                _ => {}
                            }
                        }
                        let Some(member) = last else {
                            // An anonymous nested aggregate: its members
                            // are the enclosing struct's (C11).
                            if depth == 1 {
                                members.append(&mut nested);
                            }
                            stmt.clear();
                            continue;
                        };
                        if depth == 1 {
                            if !nested.is_empty() {
                                items.aggregates.insert(
                                    format!("{name}.{member}"),
                                    std::mem::take(&mut nested),
                                );
                            }
                            members.insert(member);
                        } else {
                            nested.insert(member);
                        }
                        stmt.clear();
                    }
                    _ => stmt.push(t),
                }
            }
            items.aggregates.insert(name, members);
            continue;
        }
        i += 1;
    }
    items
}

#[test]
fn tables_cover_the_header() {
    let text = std::fs::read_to_string(header_path()).expect("cannot read ghost.h");
    let items = parse_header(&text);
    assert!(items.constants.contains("GHOST_VERSION"), "parser broken");
    assert!(items.aggregates.contains_key("ghost_txn"), "parser broken");

    let listed: BTreeSet<String> = constants().iter().map(|(n, _)| n.to_string()).collect();
    let missing: Vec<_> = items.constants.difference(&listed).collect();
    let stale: Vec<_> = listed.difference(&items.constants).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "constants in ghost.h but not checked: {missing:?}; checked but not in ghost.h: {stale:?}"
    );

    let layouts = layouts();
    let listed: BTreeMap<String, BTreeSet<String>> = layouts
        .iter()
        .map(|l| {
            let fields = l.fields.iter().map(|(f, _)| f.to_string()).collect();
            (l.name.to_string(), fields)
        })
        .collect();
    assert_eq!(
        items.aggregates, listed,
        "structs/fields of ghost.h (left) differ from the checked ones (right)"
    );
}

#[test]
fn header_compiles_cleanly_as_userspace_c() {
    let dir = tmp_dir();
    let src = dir.join("syntax.c");
    std::fs::write(
        &src,
        format!(
            "#include <errno.h>\n#include <sys/ioctl.h>\n#include \"{}\"\n\
             int main(void) {{ return 0; }}\n",
            header_path().display()
        ),
    )
    .expect("cannot write syntax.c");
    for std in ["-std=c90", "-std=c99", "-std=gnu11"] {
        run(Command::new("cc")
            .args([std, "-Wall", "-Wextra", "-Werror", "-fsyntax-only"])
            .arg(&src));
    }
}

/// Byte counts and offsets quoted in ghost-abi.md (sections 2, 3.2).
#[test]
fn sizes_match_ghost_abi_md() {
    assert_eq!(size_of::<GhostMsgSrc>(), 16);
    assert_eq!(size_of::<GhostSwInfo>(), 8);
    assert_eq!(size_of::<GhostAgentWakeup>(), 8);
    assert_eq!(size_of::<GhostMsg>(), 8);
    assert_eq!(align_of::<GhostMsg>(), 4);
    assert_eq!(size_of::<GhostQueueHeader>(), 64);
    assert_eq!(size_of::<GhostRing>(), 12);
    assert_eq!(offset_of!(GhostRing, msgs), 12);
    assert_eq!(size_of::<GhostSwRegionHeader>(), 64);
    assert_eq!(size_of::<GhostStatusWord>(), 32);
    assert_eq!(align_of::<GhostStatusWord>(), 32);
    assert_eq!(size_of::<GhostTxn>(), 64);
    assert_eq!(align_of::<GhostTxn>(), 64);
    assert_eq!(offset_of!(GhostTxn, run_flags), 20);
    assert_eq!(offset_of!(GhostTxn, commit_flags), 22);
    assert_eq!(offset_of!(GhostTxn, gtid), 24);
    assert_eq!(offset_of!(GhostTxn, commit_time), 32);
    assert_eq!(offset_of!(GhostTxn, cpu_seqnum), 40);
    assert_eq!(offset_of!(GhostTxn, u), 48);
    assert_eq!(size_of::<GhostCpuData>(), 4096);
    assert_eq!(align_of::<GhostCpuData>(), 4096);

    // Payloads (v91 column of the table in section 2.4).
    assert_eq!(size_of::<GhostMsgPayloadTaskNew>(), 48);
    assert_eq!(offset_of!(GhostMsgPayloadTaskNew, parent_gtid), 8);
    assert_eq!(offset_of!(GhostMsgPayloadTaskNew, runtime), 16);
    assert_eq!(offset_of!(GhostMsgPayloadTaskNew, runnable), 24);
    assert_eq!(offset_of!(GhostMsgPayloadTaskNew, nice), 28);
    assert_eq!(offset_of!(GhostMsgPayloadTaskNew, sw_info), 32);
    assert_eq!(offset_of!(GhostMsgPayloadTaskNew, agent_data), 40);
    assert_eq!(size_of::<GhostMsgPayloadTaskPreempt>(), 40);
    assert_eq!(offset_of!(GhostMsgPayloadTaskPreempt, cpu_seqnum), 16);
    assert_eq!(offset_of!(GhostMsgPayloadTaskPreempt, agent_data), 24);
    assert_eq!(offset_of!(GhostMsgPayloadTaskPreempt, cpu), 32);
    assert_eq!(offset_of!(GhostMsgPayloadTaskPreempt, from_switchto), 36);
    assert_eq!(offset_of!(GhostMsgPayloadTaskPreempt, was_latched), 37);
    assert_eq!(size_of::<GhostMsgPayloadTaskYield>(), 40);
    assert_eq!(offset_of!(GhostMsgPayloadTaskYield, cpu), 32);
    assert_eq!(offset_of!(GhostMsgPayloadTaskYield, from_switchto), 36);
    assert_eq!(size_of::<GhostMsgPayloadTaskBlocked>(), 32);
    assert_eq!(offset_of!(GhostMsgPayloadTaskBlocked, cpu), 24);
    assert_eq!(offset_of!(GhostMsgPayloadTaskBlocked, from_switchto), 28);
    assert_eq!(size_of::<GhostMsgPayloadTaskDead>(), 16);
    assert_eq!(offset_of!(GhostMsgPayloadTaskDead, cpu), 8);
    assert_eq!(size_of::<GhostMsgPayloadTaskDeparted>(), 24);
    assert_eq!(offset_of!(GhostMsgPayloadTaskDeparted, cpu), 16);
    assert_eq!(offset_of!(GhostMsgPayloadTaskDeparted, from_switchto), 20);
    assert_eq!(offset_of!(GhostMsgPayloadTaskDeparted, was_current), 21);
    assert_eq!(size_of::<GhostMsgPayloadTaskWakeup>(), 32);
    assert_eq!(offset_of!(GhostMsgPayloadTaskWakeup, agent_data), 8);
    assert_eq!(offset_of!(GhostMsgPayloadTaskWakeup, deferrable), 16);
    assert_eq!(offset_of!(GhostMsgPayloadTaskWakeup, last_ran_cpu), 20);
    assert_eq!(offset_of!(GhostMsgPayloadTaskWakeup, wake_up_cpu), 24);
    assert_eq!(offset_of!(GhostMsgPayloadTaskWakeup, waker_cpu), 28);
    assert_eq!(size_of::<GhostMsgPayloadTaskSwitchto>(), 32);
    assert_eq!(offset_of!(GhostMsgPayloadTaskSwitchto, cpu), 24);
    assert_eq!(size_of::<GhostMsgPayloadTaskAffinityChanged>(), 8);
    assert_eq!(size_of::<GhostMsgPayloadTaskPriorityChanged>(), 16);
    assert_eq!(offset_of!(GhostMsgPayloadTaskPriorityChanged, nice), 8);
    assert_eq!(size_of::<GhostMsgPayloadTaskOnCpu>(), 32);
    assert_eq!(offset_of!(GhostMsgPayloadTaskOnCpu, commit_time), 8);
    assert_eq!(offset_of!(GhostMsgPayloadTaskOnCpu, cpu_seqnum), 16);
    assert_eq!(offset_of!(GhostMsgPayloadTaskOnCpu, cpu), 24);
    assert_eq!(size_of::<GhostMsgPayloadTaskLatchFailure>(), 16);
    assert_eq!(offset_of!(GhostMsgPayloadTaskLatchFailure, errno), 8);
    assert_eq!(size_of::<GhostMsgPayloadCpuTick>(), 8);
    assert_eq!(offset_of!(GhostMsgPayloadCpuTick, is_agent), 4);
    assert_eq!(size_of::<GhostMsgPayloadTimer>(), 24);
    assert_eq!(offset_of!(GhostMsgPayloadTimer, type_), 8);
    assert_eq!(offset_of!(GhostMsgPayloadTimer, cookie), 16);
    assert_eq!(size_of::<GhostMsgPayloadCpuNotIdle>(), 16);
    assert_eq!(offset_of!(GhostMsgPayloadCpuNotIdle, next_gtid), 8);
    assert_eq!(size_of::<GhostMsgPayloadCpuAvailable>(), 4);
    assert_eq!(size_of::<GhostMsgPayloadCpuBusy>(), 4);
    assert_eq!(size_of::<GhostMsgPayloadAgentBlocked>(), 4);
    assert_eq!(size_of::<GhostMsgPayloadAgentWakeup>(), 4);

    // ioctl arguments (section 3.2).
    assert_eq!(size_of::<GhostIocSwGetInfo>(), 24);
    assert_eq!(offset_of!(GhostIocSwGetInfo, response), 16);
    assert_eq!(size_of::<GhostIocCreateQueue>(), 24);
    assert_eq!(size_of::<GhostIocAssocQueue>(), 32);
    assert_eq!(offset_of!(GhostIocAssocQueue, src), 8);
    assert_eq!(offset_of!(GhostIocAssocQueue, barrier), 24);
    assert_eq!(size_of::<GhostIocSetDefaultQueue>(), 4);
    assert_eq!(size_of::<GhostIocConfigQueueWakeup>(), 24);
    assert_eq!(offset_of!(GhostIocConfigQueueWakeup, w), 8);
    assert_eq!(size_of::<GhostIocGetCpuTime>(), 16);
    assert_eq!(size_of::<GhostIocCommitTxn>(), 16);
    assert_eq!(size_of::<TimerfdGhost>(), 24);
    assert_eq!(size_of::<GhostIocTimerfdSettime>(), 48);
    assert_eq!(size_of::<GhostIocRun>(), 24);

    // ioctl numbers (section 3.2).
    assert_eq!(GHOST_IOC_NULL, 0x0000_6700);
    assert_eq!(GHOST_IOC_SW_GET_INFO, 0xc018_6701);
    assert_eq!(GHOST_IOC_SW_FREE, 0x4008_6702);
    assert_eq!(GHOST_IOC_CREATE_QUEUE, 0xc018_6703);
    assert_eq!(GHOST_IOC_ASSOC_QUEUE, 0x4020_6704);
    assert_eq!(GHOST_IOC_SET_DEFAULT_QUEUE, 0x4004_6705);
    assert_eq!(GHOST_IOC_CONFIG_QUEUE_WAKEUP, 0x4018_6706);
    assert_eq!(GHOST_IOC_GET_CPU_TIME, 0xc010_6707);
    assert_eq!(GHOST_IOC_COMMIT_TXN, 0x4010_6708);
    assert_eq!(GHOST_IOC_SYNC_GROUP_TXN, 0x4010_6709);
    assert_eq!(GHOST_IOC_TIMERFD_SETTIME, 0xc030_670a);
    assert_eq!(GHOST_IOC_RUN, 0x4018_670b);

    // Constants quoted in sections 1.2, 2.2, 2.6, 2.7 and 4.
    assert_eq!(GHOST_VERSION, 91);
    assert_eq!(SCHED_GHOST, 18);
    assert_eq!(GHOST_SUPER_MAGIC, 0xBAD1_DEA2);
    assert_eq!(GHOST_MAX_QUEUE_ELEMS, 65536);
    assert_eq!(GHOST_TXN_READY, 0x7fff_ffff);
    assert_eq!(GHOST_TXN_POISONED, i32::MIN + 15);
}

/// ghOSt ABI 91's names (its `abi/latest/kernel/ghost.h`): the integer
/// macros and enumerators, the enum and typedef names, and every struct
/// with its members. Names only: the values and layouts are checked above.
mod abi91 {
    pub const CONSTANTS: &[&str] = &[
        "GHOST_VERSION",
        "SCHED_GHOST",
        "GHOST_MAX_WINFO",
        "TIMERFD_GHOST_ENABLED",
        "GHOST_IOC_NULL",
        "GHOST_IOC_SW_GET_INFO",
        "GHOST_IOC_SW_FREE",
        "GHOST_IOC_CREATE_QUEUE",
        "GHOST_IOC_ASSOC_QUEUE",
        "GHOST_IOC_SET_DEFAULT_QUEUE",
        "GHOST_IOC_CONFIG_QUEUE_WAKEUP",
        "GHOST_IOC_GET_CPU_TIME",
        "GHOST_IOC_COMMIT_TXN",
        "GHOST_IOC_SYNC_GROUP_TXN",
        "GHOST_IOC_TIMERFD_SETTIME",
        "GHOST_IOC_RUN",
        "GHOST_SW_REGION_VERSION",
        "GHOST_SW_F_INUSE",
        "GHOST_SW_F_CANFREE",
        "GHOST_SW_F_ALLOCATED",
        "GHOST_SW_CPU_AVAIL",
        "GHOST_SW_BOOST_PRIO",
        "GHOST_SW_TASK_ONCPU",
        "GHOST_SW_TASK_RUNNABLE",
        "GHOST_SW_TASK_IS_AGENT",
        "GHOST_SW_TASK_MSG_GATED",
        "GHOST_QUEUE_VERSION",
        "_MSG_TASK_FIRST",
        "_MSG_TASK_LAST",
        "_MSG_CPU_FIRST",
        "_MSG_CPU_LAST",
        "BPF_GHOST_MSG_NO_WAKEUP_PREF",
        "BPF_GHOST_MSG_SKIP_AGENT_WAKE",
        "BPF_SYNC_COMMIT_MAX_CPUS",
        "GHOST_MAX_QUEUE_ELEMS",
        "GHOST_ASSOC_SF_ALREADY",
        "GHOST_ASSOC_SF_BRAND_NEW",
        "RTLA_ON_PREEMPT",
        "RTLA_ON_BLOCKED",
        "RTLA_ON_YIELD",
        "RTLA_ON_IDLE",
        "NEED_L1D_FLUSH",
        "NEED_CPU_NOT_IDLE",
        "ELIDE_PREEMPT",
        "SEND_TASK_ON_CPU",
        "DEFER_LATCHED_PREEMPTION_BY_AGENT",
        "DO_NOT_PREEMPT",
        "COMMIT_AT_SCHEDULE",
        "COMMIT_AT_TXN_COMMIT",
        "ALLOW_TASK_ONCPU",
        "ELIDE_AGENT_BARRIER_INC",
        "INC_AGENT_BARRIER_ON_FAILURE",
        "COMMIT_AT_FLAGS",
        "RESCHED_ANY_CLASS",
        "RESCHED_GHOST_CLASS",
        "RESCHED_IDLE_CLASS",
        "RESCHED_OTHER_CLASS",
        "SET_MUST_RESCHED",
        "WAKE_AGENT",
        "GHOST_RESCHED_CPU_MAX",
        "GHOST_NULL_GTID",
        "GHOST_AGENT_GTID",
        "GHOST_IDLE_GTID",
        "GHOST_TXN_VERSION",
        // enum ghost_type
        "GHOST_AGENT",
        "GHOST_TASK",
        // message types
        "MSG_NOP",
        "MSG_TASK_DEAD",
        "MSG_TASK_BLOCKED",
        "MSG_TASK_WAKEUP",
        "MSG_TASK_NEW",
        "MSG_TASK_PREEMPT",
        "MSG_TASK_YIELD",
        "MSG_TASK_DEPARTED",
        "MSG_TASK_SWITCHTO",
        "MSG_TASK_AFFINITY_CHANGED",
        "MSG_TASK_ON_CPU",
        "MSG_TASK_PRIORITY_CHANGED",
        "MSG_TASK_LATCH_FAILURE",
        "MSG_CPU_TICK",
        "MSG_CPU_TIMER_EXPIRED",
        "MSG_CPU_NOT_IDLE",
        "MSG_CPU_AVAILABLE",
        "MSG_CPU_BUSY",
        "MSG_CPU_AGENT_BLOCKED",
        "MSG_CPU_AGENT_WAKEUP",
        // enum ghost_ops, ghost_base_ops, the GTID_LOOKUP enum
        "GHOST_GTID_LOOKUP",
        "_GHOST_BASE_OP_FIRST",
        "GHOST_BASE_GET_GTID",
        "GHOST_GTID_LOOKUP_TGID",
        // enum ghost_txn_state
        "GHOST_TXN_COMPLETE",
        "GHOST_TXN_ABORTED",
        "GHOST_TXN_TARGET_ONCPU",
        "GHOST_TXN_TARGET_STALE",
        "GHOST_TXN_TARGET_NOT_FOUND",
        "GHOST_TXN_TARGET_NOT_RUNNABLE",
        "GHOST_TXN_AGENT_STALE",
        "GHOST_TXN_CPU_OFFLINE",
        "GHOST_TXN_CPU_UNAVAIL",
        "GHOST_TXN_INVALID_FLAGS",
        "GHOST_TXN_INVALID_TARGET",
        "GHOST_TXN_NOT_PERMITTED",
        "GHOST_TXN_INVALID_CPU",
        "GHOST_TXN_NO_AGENT",
        "GHOST_TXN_UNSUPPORTED_VERSION",
        "GHOST_TXN_POISONED",
        "GHOST_TXN_READY",
    ];

    pub const ENUMS: &[&str] = &[
        "ghost_type",
        "ghost_ops",
        "ghost_base_ops",
        "ghost_txn_state",
    ];

    pub const TYPEDEFS: &[&str] = &[
        "_ghost_ring_index_t",
        "_ghost_txn_state_t",
        "_ghost_txn_owner_t",
    ];

    pub const STRUCTS: &[(&str, &[&str])] = &[
        ("ghost_agent_wakeup", &["cpu", "prio"]),
        ("ghost_msg_src", &["type", "arg"]),
        ("timerfd_ghost", &["cpu", "flags", "type", "cookie"]),
        ("ghost_sw_info", &["id", "index"]),
        ("ghost_ioc_sw_get_info", &["request", "response"]),
        (
            "ghost_ioc_create_queue",
            &["elems", "node", "flags", "mapsize"],
        ),
        ("ghost_ioc_assoc_queue", &["fd", "src", "barrier", "flags"]),
        ("ghost_ioc_set_default_queue", &["fd"]),
        (
            "ghost_ioc_config_queue_wakeup",
            &["qfd", "w", "ninfo", "flags"],
        ),
        ("ghost_ioc_get_cpu_time", &["gtid", "runtime"]),
        ("ghost_ioc_commit_txn", &["mask_ptr", "mask_len", "flags"]),
        (
            "ghost_ioc_timerfd_settime",
            &["timerfd", "flags", "in_tmr", "out_tmr", "timerfd_ghost"],
        ),
        (
            "ghost_ioc_run",
            &[
                "gtid",
                "agent_barrier",
                "task_barrier",
                "run_cpu",
                "run_flags",
            ],
        ),
        (
            "ghost_sw_region_header",
            &[
                "version",
                "id",
                "numa_node",
                "start",
                "capacity",
                "available",
            ],
        ),
        (
            "ghost_status_word",
            &["barrier", "flags", "gtid", "switch_time", "runtime"],
        ),
        ("ghost_queue_header", &["version", "start", "nelems"]),
        ("ghost_msg", &["type", "length", "seqnum", "payload"]),
        (
            "ghost_msg_payload_task_new",
            &[
                "gtid",
                "parent_gtid",
                "runtime",
                "runnable",
                "nice",
                "sw_info",
                "agent_data",
            ],
        ),
        (
            "ghost_msg_payload_task_preempt",
            &[
                "gtid",
                "runtime",
                "cpu_seqnum",
                "agent_data",
                "cpu",
                "from_switchto",
                "was_latched",
            ],
        ),
        (
            "ghost_msg_payload_task_yield",
            &[
                "gtid",
                "runtime",
                "cpu_seqnum",
                "agent_data",
                "cpu",
                "from_switchto",
            ],
        ),
        (
            "ghost_msg_payload_task_blocked",
            &["gtid", "runtime", "cpu_seqnum", "cpu", "from_switchto"],
        ),
        ("ghost_msg_payload_task_dead", &["gtid", "cpu"]),
        (
            "ghost_msg_payload_task_departed",
            &["gtid", "cpu_seqnum", "cpu", "from_switchto", "was_current"],
        ),
        ("ghost_msg_payload_task_affinity_changed", &["gtid"]),
        ("ghost_msg_payload_task_priority_changed", &["gtid", "nice"]),
        (
            "ghost_msg_payload_task_wakeup",
            &[
                "gtid",
                "agent_data",
                "deferrable",
                "last_ran_cpu",
                "wake_up_cpu",
                "waker_cpu",
            ],
        ),
        (
            "ghost_msg_payload_task_switchto",
            &["gtid", "runtime", "cpu_seqnum", "cpu"],
        ),
        (
            "ghost_msg_payload_task_on_cpu",
            &["gtid", "commit_time", "cpu_seqnum", "cpu"],
        ),
        ("ghost_msg_payload_task_latch_failure", &["gtid", "errno"]),
        ("ghost_msg_payload_cpu_not_idle", &["cpu", "next_gtid"]),
        ("ghost_msg_payload_cpu_tick", &["cpu", "is_agent"]),
        ("ghost_msg_payload_timer", &["cpu", "type", "cookie"]),
        ("ghost_msg_payload_cpu_available", &["cpu"]),
        ("ghost_msg_payload_cpu_busy", &["cpu"]),
        ("ghost_msg_payload_agent_blocked", &["cpu"]),
        ("ghost_msg_payload_agent_wakeup", &["cpu"]),
        (
            "bpf_ghost_msg",
            &[
                "dead",
                "blocked",
                "wakeup",
                "newt",
                "preempt",
                "yield",
                "departed",
                "switchto",
                "affinity",
                "priority",
                "on_cpu",
                "latch_failure",
                "cpu_tick",
                "timer",
                "cpu_not_idle",
                "cpu_available",
                "cpu_busy",
                "agent_blocked",
                "agent_wakeup",
                "type",
                "seqnum",
                "pref_cpu",
            ],
        ),
        (
            "bpf_ghost_sched",
            &[
                "agent_on_rq",
                "agent_runnable",
                "might_yield",
                "dont_idle",
                "must_resched",
                "next_gtid",
            ],
        ),
        (
            "bpf_ghost_select_rq",
            &[
                "gtid",
                "task_cpu",
                "waker_cpu",
                "sd_flag",
                "wake_flags",
                "skip_ttwu_queue",
            ],
        ),
        ("bpf_ghost_halt_poll", &["type"]),
        (
            "bpf_sync_commit_args",
            &[
                "cpus",
                "gtids",
                "task_barriers",
                "run_flags",
                "commit_flags",
            ],
        ),
        ("ghost_ring", &["head", "tail", "overflow", "msgs"]),
        (
            "ghost_txn",
            &[
                "version",
                "cpu",
                "state",
                "agent_barrier",
                "task_barrier",
                "run_flags",
                "commit_flags",
                "unused",
                "gtid",
                "commit_time",
                "cpu_seqnum",
                "u",
            ],
        ),
        ("ghost_txn.u", &["sync_group_owner"]),
        ("ghost_cpu_data", &["txn"]),
    ];
}

/// Names ghost-rs adds to ABI 91's header (listed at its top), each for a
/// documented reason: the ghostfs magic (ghOSt puts it in `magic.h`, which
/// ghost-rs does not patch), the `ghost_run` system call, and the value
/// `u.sync_group_owner` holds outside a sync group (ghOSt writes a bare -1).
const GHOST_RS_ADDITIONS: &[&str] = &[
    "GHOST_SUPER_MAGIC",
    "__NR_ghost_run",
    "GHOST_NO_SYNC_GROUP_OWNER",
];

#[test]
fn names_are_abi_91() {
    let text = std::fs::read_to_string(header_path()).expect("cannot read ghost.h");
    let items = parse_header(&text);

    let want: BTreeSet<String> = abi91::CONSTANTS.iter().map(|s| s.to_string()).collect();
    let extra: Vec<_> = items
        .constants
        .difference(&want)
        .filter(|n| !GHOST_RS_ADDITIONS.contains(&n.as_str()))
        .collect();
    let missing: Vec<_> = want.difference(&items.constants).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "constants not in ABI 91: {extra:?}; ABI 91 constants missing: {missing:?}"
    );

    let want: BTreeMap<String, BTreeSet<String>> = abi91::STRUCTS
        .iter()
        .map(|(s, m)| (s.to_string(), m.iter().map(|f| f.to_string()).collect()))
        .collect();
    for (name, members) in &want {
        assert_eq!(
            items.aggregates.get(name),
            Some(members),
            "members of struct {name}"
        );
    }
    let extra: Vec<_> = items
        .aggregates
        .keys()
        .filter(|k| !want.contains_key(*k))
        .collect();
    assert!(extra.is_empty(), "structs not in ABI 91: {extra:?}");

    let code = strip_comments(&text);
    let toks = tokens(&code);
    let declared = |kw: &str, name: &str| {
        toks.windows(3)
            .any(|w| w[0] == kw && w[1] == name && w[2] == "{")
    };
    for e in abi91::ENUMS {
        assert!(declared("enum", e), "enum {e} is not declared");
    }
    for t in abi91::TYPEDEFS {
        assert!(
            toks.windows(2).any(|w| w[0] == *t && w[1] == ";") && code.contains("typedef"),
            "typedef {t} is not declared"
        );
    }
}
