//! The pure parts of the dispersive-request experiment, host-tested: the
//! request mix (when each request is due and how long it needs) and the
//! latency summary with its JSON line.

use crate::harness::Rng;
use ghost::quantile::quantile;

/// What the load generator sends.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Mix {
    /// Requests per second (mean of a Poisson process: open loop).
    pub(crate) rate: f64,
    /// How long it sends, ms.
    pub(crate) duration_ms: u64,
    /// A short request's service time, µs.
    pub(crate) short_us: f64,
    /// A long request's service time, µs.
    pub(crate) long_us: f64,
    /// Long requests per thousand.
    pub(crate) long_permille: u64,
    /// The seed of the arrivals and the mix (the same seed, the same
    /// requests).
    pub(crate) seed: u64,
}

impl Mix {
    /// The mean service time, µs.
    pub(crate) fn mean_service_us(&self) -> f64 {
        let p = self.long_permille as f64 / 1000.0;
        (1.0 - p) * self.short_us + p * self.long_us
    }
}

/// One request: when it is due (its intended send time, ns from the start)
/// and how long it needs (µs of service).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Request {
    pub(crate) at_ns: u64,
    pub(crate) service_us: f64,
}

/// The requests of `mix`, in send order: exponential gaps of mean
/// `1 / rate` (a Poisson process), each long with probability
/// `long_permille / 1000`.
pub(crate) fn schedule(mix: &Mix) -> Vec<Request> {
    let mut rng = Rng(mix.seed.max(1));
    let end_ns = mix.duration_ms.saturating_mul(1_000_000) as f64;
    let gap_ns = 1e9 / mix.rate.max(1e-3);
    let mut out = Vec::with_capacity((end_ns / gap_ns * 1.1) as usize + 16);
    let mut t = 0.0;
    loop {
        // Uniform in (0, 1]: 53 random bits, + 1.
        let u = ((rng.next() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        t += -u.ln() * gap_ns;
        if t >= end_ns {
            return out;
        }
        let long = rng.range(0, 1000) < mix.long_permille;
        out.push(Request {
            at_ns: t as u64,
            service_us: if long { mix.long_us } else { mix.short_us },
        });
    }
}

/// The latency figures of a run, µs. A request that never completed (its
/// queue was full, or it was not done by the end of the drain) counts as
/// an infinite latency: a percentile that falls among those is `None`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Latencies {
    /// Requests measured (sent after the warm-up).
    pub(crate) count: usize,
    /// Of those, how many never completed.
    pub(crate) dropped: usize,
    pub(crate) p50_us: Option<f64>,
    pub(crate) p99_us: Option<f64>,
    pub(crate) p999_us: Option<f64>,
    /// The largest completed latency.
    pub(crate) max_us: Option<f64>,
}

/// The summary of `latencies_us` (`None`: never completed).
pub(crate) fn summarize(latencies_us: &[Option<f64>]) -> Latencies {
    let mut v: Vec<f64> = latencies_us
        .iter()
        .map(|l| l.unwrap_or(f64::INFINITY))
        .collect();
    v.sort_by(f64::total_cmp);
    let finite = |x: Option<f64>| x.filter(|x| x.is_finite());
    Latencies {
        count: v.len(),
        dropped: latencies_us.iter().filter(|l| l.is_none()).count(),
        p50_us: finite(quantile(&v, 0.5)),
        p99_us: finite(quantile(&v, 0.99)),
        p999_us: finite(quantile(&v, 0.999)),
        max_us: v.iter().rev().copied().find(|x| x.is_finite()),
    }
}

/// A JSON number, or `null`.
fn num(x: Option<f64>) -> String {
    x.filter(|x| x.is_finite())
        .map_or("null".into(), |x| format!("{x:.1}"))
}

/// What a run did besides its latencies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Run<'a> {
    pub(crate) workers: usize,
    pub(crate) warmup_ms: u64,
    pub(crate) loops_per_us: f64,
    /// The enclave the workers joined, if any.
    pub(crate) enclave: Option<&'a str>,
    /// How long the workers took to be ready (pinned, in the enclave), ms.
    pub(crate) ready_ms: f64,
    /// Requests put into the queue (the others found it full).
    pub(crate) sent: usize,
}

/// The one JSON line a run prints: its parameters and its figures.
pub(crate) fn json_line(mix: &Mix, r: &Run<'_>, l: &Latencies) -> String {
    format!(
        concat!(
            "{{\"experiment\":\"dispersive\",\"rate\":{},\"duration_ms\":{},\"warmup_ms\":{},",
            "\"workers\":{},\"short_us\":{},\"long_us\":{},\"long_permille\":{},\"seed\":{},",
            "\"mean_service_us\":{:.2},\"loops_per_us\":{:.3},\"enclave\":{},\"ready_ms\":{:.1},\"sent\":{},",
            "\"count\":{},\"dropped\":{},\"p50_us\":{},\"p99_us\":{},\"p999_us\":{},\"max_us\":{}}}"
        ),
        mix.rate,
        mix.duration_ms,
        r.warmup_ms,
        r.workers,
        mix.short_us,
        mix.long_us,
        mix.long_permille,
        mix.seed,
        mix.mean_service_us(),
        r.loops_per_us,
        r.enclave.map_or("null".into(), |e| format!("\"{e}\"")),
        r.ready_ms,
        r.sent,
        l.count,
        l.dropped,
        num(l.p50_us),
        num(l.p99_us),
        num(l.p999_us),
        num(l.max_us),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mix(seed: u64) -> Mix {
        Mix {
            rate: 20_000.0,
            duration_ms: 10_000,
            short_us: 4.0,
            long_us: 10_000.0,
            long_permille: 5,
            seed,
        }
    }

    #[test]
    fn the_mix_has_the_rate_and_the_share_of_long_requests() {
        let m = mix(7);
        let r = schedule(&m);
        // 200 000 requests expected; a Poisson count is within 1%.
        let n = r.len() as f64;
        assert!((n - 200_000.0).abs() < 2_000.0, "{n}");
        assert!(r.windows(2).all(|w| w[0].at_ns <= w[1].at_ns));
        assert!(r.last().unwrap().at_ns < 10_000_000_000);
        let long = r.iter().filter(|q| q.service_us == 10_000.0).count() as f64;
        assert!((long / n - 0.005).abs() < 0.0007, "{}", long / n);
        assert!(r
            .iter()
            .all(|q| q.service_us == 4.0 || q.service_us == 10_000.0));
        assert!((m.mean_service_us() - 53.98).abs() < 1e-9);
        // The same seed, the same requests; another seed, others.
        assert_eq!(schedule(&m), r);
        assert_ne!(schedule(&mix(8))[..10], r[..10]);
        // Exponential gaps: about 63% are shorter than the mean (50 µs).
        let short_gaps = r.windows(2).filter(|w| w[1].at_ns - w[0].at_ns < 50_000);
        let share = short_gaps.count() as f64 / n;
        assert!((share - 0.632).abs() < 0.01, "{share}");
    }

    #[test]
    fn latencies_count_what_never_completed_as_infinite() {
        let mut l: Vec<Option<f64>> = (1..=1000).map(|x| Some(f64::from(x))).collect();
        let s = summarize(&l);
        assert_eq!((s.count, s.dropped), (1000, 0));
        assert_eq!(
            (s.p50_us, s.p99_us, s.p999_us, s.max_us),
            (Some(500.0), Some(990.0), Some(999.0), Some(1000.0))
        );
        // 2 of 1000 never completed: the p99.9 falls among them.
        l[0] = None;
        l[1] = None;
        let s = summarize(&l);
        assert_eq!(s.dropped, 2);
        assert_eq!(s.p99_us, Some(992.0));
        assert_eq!(s.p999_us, None);
        assert_eq!(s.max_us, Some(1000.0));
        let run = Run {
            workers: 8,
            warmup_ms: 100,
            loops_per_us: 12.5,
            enclave: Some("3"),
            ready_ms: 3.25,
            sent: 1003,
        };
        let j = json_line(&mix(1), &run, &s);
        assert!(j.starts_with("{\"experiment\":\"dispersive\""), "{j}");
        assert!(j.contains("\"p99_us\":992.0,\"p999_us\":null"), "{j}");
        assert!(
            j.contains("\"enclave\":\"3\",\"ready_ms\":3.2") && j.contains("\"dropped\":2"),
            "{j}"
        );
        let e = summarize(&[]);
        assert_eq!((e.count, e.p50_us), (0, None));
    }
}
