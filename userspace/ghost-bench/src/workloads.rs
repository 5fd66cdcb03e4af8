//! The third-party workloads of `make bench`: reading what each printed.
//!
//! `scripts/vm/guest-bench` runs them and keeps each run's output in
//! `raw/`; `workloads.tsv` lists the runs, one a line:
//! `config workload round status file seconds` (tab-separated; status
//! `ok`, `timeout`, `failed` or `skipped`). Every figure here is "lower
//! is better".

use std::path::Path;

/// One run of a workload, as `workloads.tsv` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// `cfs`, `fifo`, `fifo-central`.
    pub config: String,
    /// The workload's name (`perf-pipe`, `hackbench`, ...).
    pub workload: String,
    /// The round, from 1.
    pub round: usize,
    /// `ok`, `timeout`, `failed`, `skipped`.
    pub status: String,
    /// Its output, relative to the mode directory.
    pub file: String,
    /// Wall time of the run in the guest, s.
    pub seconds: f64,
}

/// Parses `workloads.tsv`; malformed lines are skipped.
pub fn parse_tsv(text: &str) -> Vec<Run> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            if f.len() < 5 {
                return None;
            }
            Some(Run {
                config: f[0].to_string(),
                workload: f[1].to_string(),
                round: f[2].parse().ok()?,
                status: f[3].to_string(),
                file: f[4].to_string(),
                seconds: f.get(5).and_then(|s| s.parse().ok()).unwrap_or(0.0),
            })
        })
        .collect()
}

/// The figures of one run's output: (metric, value). Empty when the output
/// has none (the run failed).
pub fn figures(workload: &str, out: &str) -> Vec<(String, f64)> {
    let kind = workload.split(':').next().unwrap_or(workload);
    if kind.starts_with("perf-pipe") {
        perf_pipe(out)
            .map(|v| vec![("usecs_per_op".into(), v)])
            .unwrap_or_default()
    } else if kind.starts_with("hackbench") {
        hackbench(out)
            .map(|v| vec![("seconds".into(), v)])
            .unwrap_or_default()
    } else if kind.starts_with("cyclictest") {
        cyclictest(out)
            .map(|(p50, p99, max)| {
                vec![
                    ("p50_us".into(), p50),
                    ("p99_us".into(), p99),
                    ("max_us".into(), max),
                ]
            })
            .unwrap_or_default()
    } else if kind == "dispersive" {
        dispersive(out)
    } else if kind.starts_with("stress-switch") {
        stress_switch(out)
            .map(|v| vec![("ns_per_switch".into(), v)])
            .unwrap_or_default()
    } else {
        Vec::new()
    }
}

/// The unit of a metric, for the table.
pub fn unit(metric: &str) -> &'static str {
    match metric {
        "usecs_per_op" => "us/op",
        "seconds" => "s",
        "p50_us" | "p99_us" | "p999_us" | "max_us" => "us",
        "dropped" => "requests",
        "ns_per_switch" => "ns/switch",
        _ => "",
    }
}

/// `perf bench sched pipe`: `   12.345678 usecs/op`.
fn perf_pipe(out: &str) -> Option<f64> {
    out.lines().find_map(|l| {
        let l = l.trim();
        l.strip_suffix("usecs/op")
            .and_then(|v| v.trim().parse::<f64>().ok())
    })
}

/// `hackbench`: `Time: 1.234`.
fn hackbench(out: &str) -> Option<f64> {
    out.lines()
        .filter_map(|l| l.trim().strip_prefix("Time:"))
        .filter_map(|v| v.trim().parse::<f64>().ok())
        .next_back()
}

/// `stress-ng --switch ... --metrics-brief`: `... 9127.99 nanosecs per
/// context switch ...`.
fn stress_switch(out: &str) -> Option<f64> {
    out.lines().find_map(|l| {
        let i = l.find("nanosecs per context switch")?;
        l[..i].split_whitespace().last()?.parse::<f64>().ok()
    })
}

/// `cyclictest -h LIMIT -q`: the histogram (one line per microsecond, a
/// count per thread; zero lines may be left out) gives p50 and p99 over
/// every thread; `# Max Latencies:` the max. A percentile that falls in
/// the overflow (beyond LIMIT) is reported as the max.
fn cyclictest(out: &str) -> Option<(f64, f64, f64)> {
    let mut buckets: Vec<(u64, u64)> = Vec::new();
    let mut overflow = 0u64;
    let mut max: Option<f64> = None;
    for l in out.lines() {
        let l = l.trim();
        if let Some(rest) = l.strip_prefix("# Histogram Overflows:") {
            overflow = rest
                .split_whitespace()
                .filter_map(|v| v.parse::<u64>().ok())
                .sum();
        } else if let Some(rest) = l.strip_prefix("# Max Latencies:") {
            max = rest
                .split_whitespace()
                .filter_map(|v| v.parse::<f64>().ok())
                .reduce(f64::max);
        } else if l.starts_with(|c: char| c.is_ascii_digit()) {
            let mut f = l.split_whitespace().filter_map(|v| v.parse::<u64>().ok());
            if let Some(us) = f.next() {
                let n: u64 = f.sum();
                if n > 0 {
                    buckets.push((us, n));
                }
            }
        }
    }
    let max = max?;
    buckets.sort_unstable();
    let total: u64 = buckets.iter().map(|b| b.1).sum::<u64>() + overflow;
    if total == 0 {
        return None;
    }
    let pct = |q: f64| {
        let rank = ((q * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for &(us, n) in &buckets {
            seen += n;
            if seen >= rank {
                return us as f64;
            }
        }
        max
    };
    Some((pct(0.5), pct(0.99), max))
}

/// The figures of `ghost-exp dispersive`'s JSON line: the latency
/// percentiles (one that falls among the dropped requests, `null`, is an
/// infinity) and the dropped requests. None when nothing was measured.
fn dispersive(out: &str) -> Vec<(String, f64)> {
    let Some(v) = out.lines().find_map(|l| {
        let v: serde_json::Value = serde_json::from_str(l.trim()).ok()?;
        (v["experiment"] == "dispersive").then_some(v)
    }) else {
        return Vec::new();
    };
    if v["count"].as_u64().unwrap_or(0) == 0 {
        return Vec::new();
    }
    let mut f: Vec<(String, f64)> = ["p50_us", "p99_us", "p999_us"]
        .iter()
        .map(|k| (k.to_string(), v[*k].as_f64().unwrap_or(f64::INFINITY)))
        .collect();
    f.extend(v["dropped"].as_f64().map(|d| ("dropped".to_string(), d)));
    f
}

/// The load of a `dispersive:LOAD` workload, percent.
pub fn dispersive_load(workload: &str) -> Option<f64> {
    workload.strip_prefix("dispersive:")?.parse().ok()
}

/// Reads a run's output file; empty if it cannot be read.
pub fn read_output(dir: &Path, run: &Run) -> String {
    std::fs::read_to_string(dir.join(&run.file)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_tools_outputs() {
        let perf = "# Running 'sched/pipe' benchmark:\n# Executed 2000 pipe operations between two processes\n\n     Total time: 0.005 [sec]\n\n       2.572500 usecs/op\n         388726 ops/sec\n";
        assert_eq!(
            figures("perf-pipe", perf),
            vec![("usecs_per_op".into(), 2.5725)]
        );
        let hb = "Running in process mode with 2 groups\nTime: 0.016\n";
        assert_eq!(figures("hackbench", hb), vec![("seconds".into(), 0.016)]);
        let sng = "stress-ng: metrc: [427] switch              9127.99 nanosecs per context switch (pipe method) (geometic mean of 2 instances)\n";
        assert_eq!(
            figures("stress-switch", sng),
            vec![("ns_per_switch".into(), 9127.99)]
        );
        let ct = "# /dev/cpu_dma_latency set to 0us\n000010 000050 000040\n000011 000049 000010\n000200 000001 000000\n# Total: 000000100 000000050\n# Min Latencies: 00010 00010\n# Max Latencies: 00200 00011\n# Histogram Overflows: 00000 00000\n";
        let f = figures("cyclictest", ct);
        assert_eq!(
            f,
            vec![
                ("p50_us".into(), 10.0),
                ("p99_us".into(), 11.0),
                ("max_us".into(), 200.0)
            ]
        );
        assert!(figures("perf-pipe", "Killed\n").is_empty());
        assert!(figures("unknown", perf).is_empty());
    }

    #[test]
    fn dispersive_json_line() {
        let out = "ghost-exp: something\n{\"experiment\":\"dispersive\",\"rate\":444,\"count\":1000,\"dropped\":2,\"p50_us\":210.5,\"p99_us\":4000.0,\"p999_us\":null,\"max_us\":260000.0}\n";
        assert_eq!(
            figures("dispersive:60", out),
            vec![
                ("p50_us".into(), 210.5),
                ("p99_us".into(), 4000.0),
                ("p999_us".into(), f64::INFINITY),
                ("dropped".into(), 2.0)
            ]
        );
        assert!(figures("dispersive:60", "{\"loops_per_us\":3}\n").is_empty());
        let none = "{\"experiment\":\"dispersive\",\"count\":0,\"p50_us\":null}";
        assert!(figures("dispersive:60", none).is_empty());
        assert_eq!(dispersive_load("dispersive:85"), Some(85.0));
        assert_eq!(dispersive_load("perf-pipe"), None);
    }

    #[test]
    fn cyclictest_overflow_reports_the_max() {
        let ct = "000010 000001\n# Max Latencies: 05000\n# Histogram Overflows: 00003\n";
        assert_eq!(cyclictest(ct), Some((5000.0, 5000.0, 5000.0)));
    }

    #[test]
    fn tsv_lines() {
        let t = "cfs\tperf-pipe\t1\tok\traw/cfs-perf-pipe-1.txt\t2.5\nbad line\nfifo\thackbench\t2\ttimeout\traw/x.txt\n";
        let r = parse_tsv(t);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].seconds, 2.5);
        assert_eq!(r[1].status, "timeout");
        assert_eq!(r[1].round, 2);
    }
}
