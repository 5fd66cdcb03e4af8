//! `ghost-bench report`: `results.json`, the plots and the table, from the
//! mode directories `scripts/bench` filled (each: `mode.txt`, a one-line
//! description of the VM mode; `micro.json`, from `ghost-bench micro`;
//! `workloads.tsv` and `raw/`, from the third-party workloads; and, from
//! the mode's second boot with more vCPUs, `micro-groups.json` (`ghost-bench
//! micro --only-groups`) and `groups.txt`, a one-line description of that
//! boot, whose group commits join the mode's micro table).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::micro::{self, MicroOut};
use crate::stats;
use crate::svg;
use crate::workloads::{self, Run};

/// The CFS reference of the micro table's ratio column.
const CFS_REF: &str = "cfs_switch_1cpu";

/// The paper's CFS context switch, ns (Table 3).
const PAPER_CFS: f64 = 599.0;

/// The table of `ghost-bench micro`'s figures.
pub fn micro_table(m: &MicroOut) -> String {
    let mut s = String::new();
    let cfs = m
        .metrics
        .iter()
        .find(|x| x.name == CFS_REF)
        .map(|x| x.summary.median);
    let _ = writeln!(
        s,
        "  {:<26} {:>10} {:>10} {:>8} {:>9} {:>11}",
        "microbenchmark (ns)", "median", "p99", "n", "x CFS", "paper(xCFS)"
    );
    // Figures from another boot: a mark per source, explained below.
    let mut sources: Vec<&str> = Vec::new();
    for x in &m.metrics {
        let ratio = cfs.map_or("-".into(), |c| format!("{:.2}", x.summary.median / c));
        let paper = x
            .paper_ns
            .map_or("-".into(), |p| format!("{p:.0}({:.2})", p / PAPER_CFS));
        let mut name = x.name.clone();
        if let Some(src) = x.source.as_deref() {
            let i = sources.iter().position(|&s| s == src).unwrap_or_else(|| {
                sources.push(src);
                sources.len() - 1
            });
            name = format!("{name} {}", "*".repeat(i + 1));
        }
        let _ = writeln!(
            s,
            "  {:<26} {:>10.0} {:>10.0} {:>8} {:>9} {:>11}",
            name, x.summary.median, x.summary.p99, x.summary.n, ratio, paper
        );
    }
    for (i, src) in sources.iter().enumerate() {
        let _ = writeln!(
            s,
            "  {}: measured in {src}; its x CFS is over {CFS_REF} of this table (the main boot)",
            "*".repeat(i + 1)
        );
    }
    for k in &m.skipped {
        let _ = writeln!(s, "  skipped: {k}");
    }
    for (k, v) in &m.commit_failures {
        if *v > 0 {
            let _ = writeln!(s, "  {k}: {v} failed commits (retried)");
        }
    }
    for (k, v) in &m.partial_groups {
        let _ = writeln!(
            s,
            "  {k}: {v} iterations not measured (a task of the group stayed blocked elsewhere: the agent committed the part that was runnable)"
        );
    }
    for e in &m.errors {
        let _ = writeln!(s, "  error: {e}");
    }
    s
}

/// The figures of one workload metric under one configuration.
#[derive(Default)]
struct Cell {
    values: Vec<f64>,
    statuses: BTreeMap<String, usize>,
}

/// Builds everything from `dirs` into `out`; returns the table.
pub fn report(dirs: &[PathBuf], out: &Path) -> Result<String, String> {
    std::fs::create_dir_all(out).map_err(|e| format!("mkdir {}: {e}", out.display()))?;
    let mut table = String::new();
    let mut modes = Vec::new();
    for dir in dirs {
        let mode = dir
            .file_name()
            .map_or("mode".into(), |n| n.to_string_lossy().into_owned());
        let desc = std::fs::read_to_string(dir.join("mode.txt"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let _ = writeln!(table, "\n== {mode}: {desc} ==");
        let mut m = json!({ "mode": mode, "description": desc });
        // The group commits of the mode's second boot, if it ran.
        let groups = read_groups(dir, &mut table, &mut m);
        // The microbenchmarks.
        match std::fs::read_to_string(dir.join("micro.json")) {
            Ok(t) => match serde_json::from_str::<MicroOut>(&t) {
                Ok(mut micro) => {
                    if let Some((g, label)) = &groups {
                        merge_groups(&mut micro, g, label);
                    }
                    table.push_str(&micro_table(&micro));
                    let rows: Vec<svg::BoxRow> = micro
                        .metrics
                        .iter()
                        .map(|x| svg::BoxRow {
                            label: match x.source {
                                Some(_) => format!("{} (groups boot)", x.name),
                                None => x.name.clone(),
                            },
                            samples: x.samples.clone(),
                        })
                        .collect();
                    let plot = svg::boxplot(
                        &format!(
                            "ghost-rs microbenchmarks, {mode} ({desc}): p1-p25-median-p75-p99"
                        ),
                        "ns",
                        &rows,
                    );
                    write_file(&out.join(format!("micro-{mode}.svg")), &plot)?;
                    let cfs = micro
                        .metrics
                        .iter()
                        .find(|x| x.name == CFS_REF)
                        .map(|x| x.summary.median);
                    let ratios: BTreeMap<String, f64> = micro
                        .metrics
                        .iter()
                        .filter_map(|x| Some((x.name.clone(), x.summary.median / cfs?)))
                        .collect();
                    m["micro"] = serde_json::to_value(&micro).map_err(|e| e.to_string())?;
                    m["micro_ratio_to_cfs_switch"] = json!(ratios);
                }
                Err(e) => {
                    let _ = writeln!(table, "  micro.json does not parse: {e}");
                    m["micro_error"] = json!(format!("micro.json does not parse: {e}"));
                }
            },
            Err(_) => {
                let _ = writeln!(table, "  no micro.json (ghost-bench micro did not finish)");
                m["micro_error"] = json!("no micro.json");
            }
        }
        // The workloads.
        let runs = std::fs::read_to_string(dir.join("workloads.tsv"))
            .map(|t| workloads::parse_tsv(&t))
            .unwrap_or_default();
        let (wl_json, wl_table, groups) = workload_section(dir, &runs);
        table.push_str(&wl_table);
        if !groups.is_empty() {
            let plot = svg::bars(
                &format!(
                    "Third-party workloads, {mode}: median / median under CFS (lower is better)"
                ),
                "x CFS",
                &groups,
            );
            write_file(&out.join(format!("workloads-{mode}.svg")), &plot)?;
        }
        m["workloads"] = wl_json;
        let (disp_json, curves) = dispersive_curves(dir, &runs);
        if !curves.is_empty() {
            let plot = svg::lines(
                &format!("Dispersive requests, {mode}: latency against load (median of rounds)"),
                "%",
                "us",
                &curves,
            );
            write_file(&out.join(format!("dispersive-{mode}.svg")), &plot)?;
            let _ = writeln!(
                table,
                "  dispersive:LOAD = the dispersive-request experiment at LOAD% (plot: dispersive-{mode}.svg)"
            );
        }
        m["dispersive"] = disp_json;
        modes.push(m);
    }
    let results = json!({
        "about": "make bench: ghost-rs against CFS in the same boot (Documentation/ghost-rs/benchmarks.rst). Times in ns unless a unit says otherwise; ratios are medians over the CFS median of the same boot.",
        "modes": modes,
    });
    let text = serde_json::to_string_pretty(&results).map_err(|e| e.to_string())?;
    write_file(&out.join("results.json"), &(text + "\n"))?;
    Ok(table)
}

/// The mode's groups boot (`groups.txt`, `micro-groups.json` in `dir`):
/// its figures and the label their rows get, or None when it did not run
/// or gave nothing (which the table and `m` then say).
fn read_groups(dir: &Path, table: &mut String, m: &mut Value) -> Option<(MicroOut, String)> {
    let desc = std::fs::read_to_string(dir.join("groups.txt"))
        .ok()
        .map(|s| s.trim().to_string())?;
    let mut boot = json!({ "description": desc });
    let r = std::fs::read_to_string(dir.join("micro-groups.json"))
        .map_err(|_| {
            "no micro-groups.json (ghost-bench micro --only-groups did not finish)".to_string()
        })
        .and_then(|t| {
            serde_json::from_str::<MicroOut>(&t)
                .map_err(|e| format!("micro-groups.json does not parse: {e}"))
        });
    let out = match r {
        Ok(g) => {
            let label = format!(
                "the {}-vCPU groups boot ({} round{} of {} iterations; {desc})",
                g.cpus,
                g.rounds,
                if g.rounds == 1 { "" } else { "s" },
                g.iters
            );
            boot["cpus"] = json!(g.cpus);
            boot["rounds"] = json!(g.rounds);
            boot["iters"] = json!(g.iters);
            boot["kernel"] = json!(g.kernel);
            Some((g, label))
        }
        Err(e) => {
            let _ = writeln!(table, "  groups boot ({desc}): {e}");
            boot["error"] = json!(e);
            None
        }
    };
    m["micro_groups_boot"] = boot;
    out
}

/// Merges the group commits of the groups boot `g` into the main boot's
/// figures `main`, each marked as from `label` (a size the main boot
/// measured keeps the main boot's figure); what the groups boot measured
/// is no longer "skipped"; its own skips, errors and failed commits are
/// added, prefixed with "groups boot".
pub fn merge_groups(main: &mut MicroOut, g: &MicroOut, label: &str) {
    let mut added = Vec::new();
    for x in &g.metrics {
        let n = micro::group_n(&x.name);
        if n < 2 || main.metrics.iter().any(|y| y.name == x.name) {
            continue;
        }
        let mut x = x.clone();
        x.source = Some(label.to_string());
        main.metrics.push(x);
        added.push(n);
    }
    main.metrics.sort_by_key(|x| micro::report_order(&x.name));
    // The sizes the groups boot measured or says why it skipped.
    let covered: Vec<String> = added
        .iter()
        .map(|n| format!("group_commit_{n}:"))
        .chain(
            g.skipped
                .iter()
                .filter_map(|k| Some(format!("{}:", k.split_once(':')?.0))),
        )
        .collect();
    main.skipped
        .retain(|k| !covered.iter().any(|c| k.starts_with(c.as_str())));
    main.skipped
        .extend(g.skipped.iter().map(|k| format!("groups boot: {k}")));
    main.errors
        .extend(g.errors.iter().map(|e| format!("groups boot: {e}")));
    for (k, v) in &g.commit_failures {
        *main
            .commit_failures
            .entry(format!("groups boot {k}"))
            .or_default() += v;
    }
    for (k, v) in &g.partial_groups {
        *main
            .partial_groups
            .entry(format!("groups boot {k}"))
            .or_default() += v;
    }
}

fn write_file(p: &Path, s: &str) -> Result<(), String> {
    std::fs::write(p, s).map_err(|e| format!("write {}: {e}", p.display()))
}

/// The workloads of one mode: JSON, table and plot groups.
fn workload_section(dir: &Path, runs: &[Run]) -> (Value, String, Vec<svg::BarGroup>) {
    let mut configs: Vec<String> = Vec::new();
    let mut order: Vec<String> = Vec::new();
    // workload -> config -> statuses; (workload, metric) -> config -> cell.
    let mut status: BTreeMap<(String, String), BTreeMap<String, usize>> = BTreeMap::new();
    let mut cells: BTreeMap<(String, String), BTreeMap<String, Cell>> = BTreeMap::new();
    let mut metrics_of: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in runs {
        if !configs.contains(&r.config) {
            configs.push(r.config.clone());
        }
        if !order.contains(&r.workload) {
            order.push(r.workload.clone());
        }
        let mut st = r.status.clone();
        let mut figs = Vec::new();
        if st == "ok" {
            figs = workloads::figures(&r.workload, &workloads::read_output(dir, r));
            if figs.is_empty() {
                st = "no-figure".into();
            }
        }
        *status
            .entry((r.workload.clone(), r.config.clone()))
            .or_default()
            .entry(st.clone())
            .or_default() += 1;
        for (metric, v) in figs {
            let ms = metrics_of.entry(r.workload.clone()).or_default();
            if !ms.contains(&metric) {
                ms.push(metric.clone());
            }
            cells
                .entry((r.workload.clone(), metric))
                .or_default()
                .entry(r.config.clone())
                .or_default()
                .values
                .push(v);
        }
    }
    for ((w, c), s) in &status {
        for ms in metrics_of.get(w).into_iter().flatten() {
            let cell = cells
                .entry((w.clone(), ms.clone()))
                .or_default()
                .entry(c.clone())
                .or_default();
            cell.statuses = s.clone();
        }
    }
    let mut t = String::new();
    let mut js = Vec::new();
    let mut groups = Vec::new();
    if runs.is_empty() {
        let _ = writeln!(t, "  (no third-party workload ran)");
        return (json!([]), t, groups);
    }
    let _ = write!(t, "\n  {:<28} {:>10}", "workload / metric", "unit");
    for c in &configs {
        let _ = write!(t, " {:>22}", c);
    }
    t.push('\n');
    for w in &order {
        let Some(ms) = metrics_of.get(w) else {
            // No run of this workload gave a figure: say why.
            let _ = write!(t, "  {:<28} {:>10}", w, "");
            for c in &configs {
                let s = status
                    .get(&(w.clone(), c.clone()))
                    .map(status_text)
                    .unwrap_or_default();
                let _ = write!(t, " {:>22}", s);
            }
            t.push('\n');
            js.push(json!({ "workload": w, "status": status
                .iter()
                .filter(|((ww, _), _)| ww == w)
                .map(|((_, c), s)| (c.clone(), json!(s)))
                .collect::<BTreeMap<_, _>>() }));
            continue;
        };
        for metric in ms {
            let row = &cells[&(w.clone(), metric.clone())];
            let cfs_med = row.get("cfs").and_then(|c| stats::median(&c.values));
            let _ = write!(
                t,
                "  {:<28} {:>10}",
                format!("{w} {metric}"),
                workloads::unit(metric)
            );
            let mut cj = BTreeMap::new();
            let mut bars = Vec::new();
            for c in &configs {
                let cell = row.get(c);
                let sum = cell.and_then(|x| stats::summarize(&x.values));
                let ratio = match (sum, cfs_med) {
                    // (An infinite median: runs whose requests never
                    // completed; no ratio to it.)
                    (Some(s), Some(b)) if b > 0.0 && b.is_finite() && s.median.is_finite() => {
                        Some(s.median / b)
                    }
                    _ => None,
                };
                let stat = cell.map(|x| status_text(&x.statuses)).unwrap_or_default();
                let text = match (sum, ratio) {
                    (Some(s), Some(r)) if c != "cfs" => format!("{} ({r:.2}x)", fmt_v(s.median)),
                    (Some(s), _) => fmt_v(s.median),
                    (None, _) => stat.clone(),
                };
                let _ = write!(t, " {:>22}", text);
                if c != "cfs" {
                    bars.push((c.clone(), ratio));
                }
                cj.insert(
                    c.clone(),
                    json!({
                        "rounds": cell.map(|x| x.values.clone()).unwrap_or_default(),
                        "median": sum.map(|s| s.median),
                        "p99": sum.map(|s| s.p99),
                        "max": sum.map(|s| s.max),
                        "ratio_to_cfs": ratio,
                        "runs": cell.map(|x| x.statuses.clone()).unwrap_or_default(),
                    }),
                );
            }
            t.push('\n');
            if !bars.is_empty() {
                groups.push(svg::BarGroup {
                    label: format!("{w} {metric}"),
                    bars,
                });
            }
            js.push(json!({
                "workload": w,
                "metric": metric,
                "unit": workloads::unit(metric),
                "configs": cj,
            }));
        }
    }
    let mut notes = String::new();
    for ((w, c), s) in &status {
        if s.keys().any(|k| k != "ok") {
            let _ = writeln!(notes, "  {w} under {c}: {}", status_text(s));
        }
    }
    if !notes.is_empty() {
        let _ = writeln!(t, "  runs that gave no figure:\n{notes}");
    }
    (json!(js), t, groups)
}

/// The latency percentiles the dispersive plot draws, with their dash.
const DISP_METRICS: [(&str, &str, usize); 3] = [
    ("p99_us", "p99", 0),
    ("p50_us", "p50", 2),
    ("p999_us", "p99.9", 1),
];

/// Per-round values at each load (percent).
type ByLoad = BTreeMap<u64, Vec<f64>>;

/// The dispersive-request experiment's curves: for each configuration
/// and percentile, the median over the rounds at each load. JSON
/// `{config: {metric: {load: median}}}` and the plot's series.
fn dispersive_curves(dir: &Path, runs: &[Run]) -> (Value, Vec<svg::Series>) {
    // (config, metric) -> load -> per-round values, in the runs' order.
    let mut cells: Vec<((String, String), ByLoad)> = Vec::new();
    for r in runs.iter().filter(|r| r.status == "ok") {
        let Some(load) = workloads::dispersive_load(&r.workload) else {
            continue;
        };
        for (metric, v) in workloads::figures(&r.workload, &workloads::read_output(dir, r)) {
            let key = (r.config.clone(), metric);
            let i = match cells.iter().position(|c| c.0 == key) {
                Some(i) => i,
                None => {
                    cells.push((key, BTreeMap::new()));
                    cells.len() - 1
                }
            };
            cells[i].1.entry(load as u64).or_default().push(v);
        }
    }
    let mut js: BTreeMap<String, BTreeMap<String, BTreeMap<String, f64>>> = BTreeMap::new();
    let mut series = Vec::new();
    let mut configs: Vec<String> = Vec::new();
    for ((config, metric), loads) in &cells {
        let med: BTreeMap<u64, f64> = loads
            .iter()
            .filter_map(|(l, v)| Some((*l, stats::median(v)?)))
            .collect();
        js.entry(config.clone()).or_default().insert(
            metric.clone(),
            med.iter().map(|(l, v)| (l.to_string(), *v)).collect(),
        );
        let Some(&(_, label, dash)) = DISP_METRICS.iter().find(|m| m.0 == metric) else {
            continue;
        };
        if !configs.contains(config) {
            configs.push(config.clone());
        }
        let color = configs.iter().position(|c| c == config).unwrap_or(0);
        series.push(svg::Series {
            label: format!("{config} {label}"),
            color,
            dash,
            points: med.iter().map(|(l, v)| (*l as f64, *v)).collect(),
        });
    }
    series.sort_by_key(|s| (s.dash, s.color));
    (json!(js), series)
}

/// `5 ok`, `3 ok, 2 timeout`.
fn status_text(s: &BTreeMap<String, usize>) -> String {
    s.iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn fmt_v(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::micro::MetricOut;

    fn micro_out(cpus: usize, names: &[(&str, f64)], skipped: &[&str]) -> MicroOut {
        MicroOut {
            mode: "icount".into(),
            only_groups: cpus > 4,
            kernel: String::new(),
            cpus,
            rounds: 2,
            iters: 4,
            metrics: names
                .iter()
                .map(|&(name, v)| MetricOut {
                    name: name.into(),
                    desc: String::new(),
                    unit: "ns".into(),
                    paper_ns: None,
                    summary: stats::summarize(&[v, v]).unwrap(),
                    round_medians: vec![v],
                    samples: vec![v, v],
                    source: None,
                })
                .collect(),
            skipped: skipped.iter().map(|s| s.to_string()).collect(),
            commit_failures: BTreeMap::new(),
            partial_groups: BTreeMap::new(),
            errors: vec![],
        }
    }

    #[test]
    fn groups_boot_joins_the_micro_table() {
        let base = std::env::temp_dir().join(format!("ghost-bench-groups-{}", std::process::id()));
        let dir = base.join("icount");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("mode.txt"), "TCG -icount; 4 vCPUs\n").unwrap();
        let main = micro_out(
            4,
            &[
                ("cfs_switch_1cpu", 1000.0),
                ("group_commit_1_agent", 500.0),
                ("group_commit_2_agent", 700.0),
            ],
            &[
                "group_commit_10: needs 12 CPUs (...); this system has 4",
                "group_commit_32: needs 34 CPUs (...); this system has 4",
            ],
        );
        let write = |f: &str, m: &MicroOut| {
            std::fs::write(dir.join(f), serde_json::to_string(m).unwrap()).unwrap()
        };
        write("micro.json", &main);
        // The groups boot had 12 vCPUs: N = 10 only.
        let mut g = micro_out(
            12,
            &[
                ("group_commit_10_agent", 3000.0),
                ("group_commit_10_target", 2000.0),
            ],
            &["group_commit_32: needs 34 CPUs (...); this system has 12"],
        );
        g.partial_groups.insert("global-agent-10".into(), 2);
        write("micro-groups.json", &g);
        std::fs::write(dir.join("groups.txt"), "12 vCPUs, QUICK=1\n").unwrap();
        let out = base.join("out");
        let t = report(std::slice::from_ref(&dir), &out).unwrap();
        // Sorted by N, marked, the ratio over the main boot's CFS switch.
        let a = t.find("group_commit_2_agent").unwrap();
        let b = t.find("group_commit_10_agent *").unwrap();
        assert!(a < b, "{t}");
        assert!(t.contains("group_commit_10_target *"), "{t}");
        assert!(
            t.lines()
                .any(|l| l.contains("group_commit_10_agent *") && l.contains(" 3.00 ")),
            "{t}"
        );
        assert!(t.contains("*: measured in the 12-vCPU groups boot (2 rounds of 4 iterations; 12 vCPUs, QUICK=1)"), "{t}");
        assert!(!t.contains("group_commit_10: needs"), "{t}");
        assert!(
            t.contains("groups boot global-agent-10: 2 iterations not measured"),
            "{t}"
        );
        assert_eq!(t.matches("group_commit_32: needs").count(), 1, "{t}");
        assert!(
            t.contains("groups boot: group_commit_32: needs 34 CPUs"),
            "{t}"
        );
        let r: Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap())
                .unwrap();
        let mo = &r["modes"][0];
        assert_eq!(
            mo["micro_ratio_to_cfs_switch"]["group_commit_10_agent"],
            json!(3.0)
        );
        assert_eq!(mo["micro_groups_boot"]["cpus"], json!(12));
        let ms = mo["micro"]["metrics"].as_array().unwrap();
        let m10 = ms
            .iter()
            .find(|x| x["name"] == "group_commit_10_agent")
            .unwrap();
        assert!(m10["source"].as_str().unwrap().contains("12-vCPU"));
        assert!(ms
            .iter()
            .find(|x| x["name"] == "group_commit_2_agent")
            .unwrap()["source"]
            .is_null());
        // A groups boot that gave nothing is said, and the rest stands.
        std::fs::remove_file(dir.join("micro-groups.json")).unwrap();
        let t = report(std::slice::from_ref(&dir), &out).unwrap();
        assert!(
            t.contains("groups boot (12 vCPUs, QUICK=1): no micro-groups.json"),
            "{t}"
        );
        assert!(t.contains("group_commit_10: needs 12 CPUs"), "{t}");
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn report_from_a_mode_directory() {
        let base = std::env::temp_dir().join(format!("ghost-bench-report-{}", std::process::id()));
        let dir = base.join("icount");
        std::fs::create_dir_all(dir.join("raw")).unwrap();
        std::fs::write(dir.join("mode.txt"), "TCG -icount\n").unwrap();
        let mut tsv = String::new();
        for (c, us) in [("cfs", "10.0"), ("fifo", "25.0")] {
            for r in 1..=2 {
                let f = format!("raw/{c}-perf-pipe-{r}.txt");
                std::fs::write(dir.join(&f), format!("  {us} usecs/op\n")).unwrap();
                tsv.push_str(&format!("{c}\tperf-pipe\t{r}\tok\t{f}\t1.0\n"));
            }
        }
        tsv.push_str("fifo-central\tperf-pipe\t1\ttimeout\traw/none.txt\t20\n");
        tsv.push_str("cfs\tcyclictest\t1\tskipped\traw/none.txt\t0\n");
        for (c, p99) in [("cfs", "900.0"), ("shinjuku", "300.0")] {
            for l in [30, 60] {
                let f = format!("raw/{c}-dispersive-{l}.txt");
                let line = format!("{{\"experiment\":\"dispersive\",\"count\":100,\"p50_us\":100.0,\"p99_us\":{p99},\"p999_us\":null,\"dropped\":0}}\n");
                std::fs::write(dir.join(&f), line).unwrap();
                tsv.push_str(&format!("{c}\tdispersive:{l}\t1\tok\t{f}\t3.0\n"));
            }
        }
        std::fs::write(dir.join("workloads.tsv"), tsv).unwrap();
        let out = base.join("out");
        let t = report(std::slice::from_ref(&dir), &out).unwrap();
        assert!(t.contains("(2.50x)"), "{t}");
        assert!(t.contains("1 timeout"), "{t}");
        assert!(t.contains("no micro.json"), "{t}");
        assert!(t.contains("cyclictest"), "{t}");
        let r: Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap())
                .unwrap();
        let w = &r["modes"][0]["workloads"][0];
        assert_eq!(w["configs"]["fifo"]["ratio_to_cfs"], json!(2.5));
        assert!(out.join("workloads-icount.svg").exists());
        assert!(t.contains("dispersive:60 p99_us"), "{t}");
        assert!(t.contains("300 (0.33x)"), "{t}");
        let d = &r["modes"][0]["dispersive"];
        assert_eq!(d["shinjuku"]["p99_us"]["60"], json!(300.0));
        assert_eq!(d["cfs"]["p50_us"]["30"], json!(100.0));
        let plot = std::fs::read_to_string(out.join("dispersive-icount.svg")).unwrap();
        assert!(plot.contains("shinjuku p99") && plot.contains("cfs p50"));
        std::fs::remove_dir_all(&base).unwrap();
    }
}
