//! `ghost-exp dispersive`: the dispersive-request experiment of the ghOSt
//! and Shinjuku papers, as a server in one process.
//!
//! A load generator (the main thread, under CFS, pinned to
//! `--generator-cpu`) sends requests at a fixed mean rate, open loop
//! (Poisson arrivals decided in advance: a late send does not delay the
//! next ones), mostly short (`--short-us`, 4 µs) with a few long ones
//! (`--long-permille` per thousand of `--long-us`, 0.5% of 10 ms). It
//! puts each request into a queue and wakes a worker (a futex, through a
//! condition variable); `--workers` worker threads, pinned to
//! `--worker-cpus` and, with `--enclave`, each moved into that enclave
//! (ghost tasks, scheduled by its agent), take requests off the queue and
//! serve them, and block when it is empty: every request that finds a
//! worker idle costs a wakeup, which is what makes the scheduler matter.
//!
//! Service is a calibrated busy loop (`--loops-per-us`, else measured at
//! start), not a clock spin: a request needs a fixed amount of CPU work,
//! so a worker preempted in the middle of one finishes it later, and
//! under QEMU `-icount` (where the vCPUs share one instruction stream) it
//! is a fixed instruction count whatever the other vCPUs do.
//!
//! A request's latency is its completion time minus its *intended* send
//! time (no coordinated omission). Requests due in the first
//! `--warmup-ms` are served but not counted. After the last send the
//! generator waits at most `--drain-ms` for the outstanding requests; one
//! not completed then (or refused by a full queue) counts as an infinite
//! latency (`dropped`). The run then prints one JSON line (the parameters,
//! `count`, `dropped`, `p50_us`, `p99_us`, `p999_us`, `max_us`; a
//! percentile among the dropped is `null`; `ready_ms`, how long the
//! workers took to start) and exits, whatever state its
//! workers are in: its time is bounded by the duration, the drain and a
//! hang cap on the workers' start.

mod model;

use std::collections::VecDeque;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use ghost::cpus::CpuSet;
use ghost::ghostfs::EnclaveDir;
use model::{schedule, summarize, Mix, Request};

/// Requests the queue holds at most; the generator drops one beyond.
const QUEUE_CAP: usize = 1 << 16;
/// How long the workers may take to start and join the enclave (a hang
/// cap, never reached on a working system).
const START_CAP: Duration = Duration::from_secs(60);
/// How often the generator looks at the completions while it drains.
const POLL: Duration = Duration::from_millis(2);

const HELP: &str = "\
usage: ghost-exp dispersive [OPTIONS]
  The dispersive-request experiment (Shinjuku's, in the ghOSt paper): a
  load generator sends requests at a fixed rate (open loop, Poisson), mostly
  short with a few long ones, to worker threads that block when idle; prints
  one JSON line with the request latency p50/p99/p99.9 (us), count, dropped.
  --rate R            requests per second (default 1000)
  --duration-ms D     how long the generator sends (default 2000)
  --warmup-ms W       requests due before this are not counted (default 200)
  --drain-ms N        wait at most this long after the last send (default 1000)
  --workers W         worker threads (default 8)
  --short-us US       a short request's service time (default 4)
  --long-us US        a long request's service time (default 10000)
  --long-permille P   long requests per thousand (default 5)
  --seed S            arrivals and mix (default 1)
  --worker-cpus LIST  the workers' CPUs (default: all but the generator's)
  --generator-cpu N   the generator's CPU (default 0)
  --enclave ID        move each worker into enclave ID (ghost tasks)
  --loops-per-us X    service loop iterations per us (default: calibrate)
  --calibrate         only measure loops per us and print {\"loops_per_us\":X}
";

/// The options.
struct Opts {
    mix: Mix,
    warmup_ms: u64,
    drain_ms: u64,
    workers: usize,
    worker_cpus: Option<CpuSet>,
    generator_cpu: usize,
    enclave: Option<String>,
    loops_per_us: Option<f64>,
    calibrate: bool,
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        mix: Mix {
            rate: 1000.0,
            duration_ms: 2000,
            short_us: 4.0,
            long_us: 10_000.0,
            long_permille: 5,
            seed: 1,
        },
        warmup_ms: 200,
        drain_ms: 1000,
        workers: 8,
        worker_cpus: None,
        generator_cpu: 0,
        enclave: None,
        loops_per_us: None,
        calibrate: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--calibrate" {
            o.calibrate = true;
            continue;
        }
        let v = it.next().ok_or_else(|| format!("{a} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{a} {v}: {e}");
        let f = || v.parse::<f64>().map_err(|e| bad(&e));
        let n = || v.parse::<u64>().map_err(|e| bad(&e));
        match a.as_str() {
            "--rate" => o.mix.rate = f()?,
            "--duration-ms" => o.mix.duration_ms = n()?,
            "--warmup-ms" => o.warmup_ms = n()?,
            "--drain-ms" => o.drain_ms = n()?,
            "--workers" => o.workers = n()? as usize,
            "--short-us" => o.mix.short_us = f()?,
            "--long-us" => o.mix.long_us = f()?,
            "--long-permille" => o.mix.long_permille = n()?,
            "--seed" => o.mix.seed = n()?,
            "--worker-cpus" => o.worker_cpus = Some(CpuSet::parse(v).map_err(|e| bad(&e))?),
            "--generator-cpu" => o.generator_cpu = n()? as usize,
            "--enclave" => o.enclave = Some(v.clone()),
            "--loops-per-us" => o.loops_per_us = Some(f()?),
            _ => return Err(format!("unknown option {a}")),
        }
    }
    if !(o.mix.rate > 0.0 && o.mix.short_us >= 0.0 && o.mix.long_us >= 0.0) {
        return Err("--rate must be > 0 and the service times >= 0".into());
    }
    if o.workers == 0 || o.mix.long_permille > 1000 || o.loops_per_us.is_some_and(|x| x <= 0.0) {
        return Err("--workers must be > 0, --long-permille <= 1000, --loops-per-us > 0".into());
    }
    Ok(o)
}

/// `ghost-exp dispersive ARGS`.
pub(crate) fn main(args: &[String]) -> ExitCode {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{HELP}");
        return ExitCode::SUCCESS;
    }
    let o = match parse(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("ghost-exp dispersive: {e}\n{HELP}");
            return ExitCode::from(2);
        }
    };
    match run(&o) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ghost-exp dispersive: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `loops` iterations of a loop the compiler cannot remove.
fn spin(loops: u64) {
    let mut x = 0u64;
    for i in 0..loops {
        x = std::hint::black_box(x.wrapping_add(i));
    }
    std::hint::black_box(x);
}

/// Loop iterations per µs on this CPU: the best of 10 runs of at least
/// 20 ms each (the best: anything else that runs, and under `-icount` any
/// other busy vCPU, only makes a run look slower).
fn calibrate() -> f64 {
    let mut n = 10_000u64;
    let time = |n| {
        let t = Instant::now();
        spin(n);
        t.elapsed()
    };
    while time(n) < Duration::from_millis(20) {
        n *= 2;
    }
    (0..10)
        .map(|_| n as f64 / time(n).as_secs_f64() / 1e6)
        .fold(0.0, f64::max)
}

/// Pins the calling thread to `cpus`.
fn pin(cpus: &CpuSet) -> Result<(), String> {
    let mut set = nix::sched::CpuSet::new();
    for c in cpus.iter() {
        set.set(c).map_err(|e| format!("CPU {c}: {e}"))?;
    }
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
        .map_err(|e| format!("sched_setaffinity({cpus}): {e}"))
}

/// What the generator and the workers share.
struct Shared {
    reqs: Vec<Request>,
    /// Indices of the requests waiting for a worker.
    queue: Mutex<VecDeque<usize>>,
    wake: Condvar,
    stop: AtomicBool,
    /// Per request: its completion, ns from `start`, + 1 (0: not done).
    done: Vec<AtomicU64>,
    completed: AtomicUsize,
    loops_per_us: f64,
    start: OnceLock<Instant>,
    /// Workers ready (pinned, in the enclave), and the first error.
    ready: AtomicUsize,
    error: Mutex<Option<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A worker: pinned, into the enclave, then serves requests until told to
/// stop.
fn worker(sh: &Shared, cpus: &CpuSet, enclave: Option<&EnclaveDir>) {
    let joined = pin(cpus).and_then(|()| match enclave {
        Some(d) => d
            .add_task(i64::from(ghost::sys::gettid()))
            .map_err(|e| e.to_string()),
        None => Ok(()),
    });
    if let Err(e) = joined {
        lock(&sh.error).get_or_insert(e);
        return;
    }
    sh.ready.fetch_add(1, SeqCst);
    loop {
        let i = {
            let mut q = lock(&sh.queue);
            loop {
                if let Some(i) = q.pop_front() {
                    break i;
                }
                if sh.stop.load(SeqCst) {
                    return;
                }
                q = sh.wake.wait(q).unwrap_or_else(|e| e.into_inner());
            }
        };
        let Some(r) = sh.reqs.get(i) else { continue };
        spin((r.service_us * sh.loops_per_us).round() as u64);
        if let (Some(start), Some(d)) = (sh.start.get(), sh.done.get(i)) {
            d.store(start.elapsed().as_nanos() as u64 + 1, SeqCst);
        }
        sh.completed.fetch_add(1, SeqCst);
    }
}

/// One run; returns its JSON line.
fn run(o: &Opts) -> Result<String, String> {
    pin(&CpuSet::parse(&o.generator_cpu.to_string())?)?;
    let loops_per_us = o.loops_per_us.unwrap_or_else(calibrate);
    if o.calibrate {
        return Ok(format!("{{\"loops_per_us\":{loops_per_us:.3}}}"));
    }
    let worker_cpus = match &o.worker_cpus {
        Some(c) => c.clone(),
        None => {
            let n = thread::available_parallelism().map_or(1, |n| n.get());
            let mut c = CpuSet::new();
            (0..n)
                .filter(|&c| c != o.generator_cpu)
                .for_each(|x| c.insert(x));
            if c.is_empty() {
                c.insert(o.generator_cpu);
            }
            c
        }
    };
    let enclave = match &o.enclave {
        Some(e) => Some(ghost::enclave::resolve(e).map_err(|e| e.to_string())?),
        None => None,
    };
    let reqs = schedule(&o.mix);
    let sh = Arc::new(Shared {
        done: reqs.iter().map(|_| AtomicU64::new(0)).collect(),
        reqs,
        queue: Mutex::new(VecDeque::with_capacity(1024)),
        wake: Condvar::new(),
        stop: AtomicBool::new(false),
        completed: AtomicUsize::new(0),
        loops_per_us,
        start: OnceLock::new(),
        ready: AtomicUsize::new(0),
        error: Mutex::new(None),
    });
    for k in 0..o.workers {
        let (sh, cpus, enc) = (sh.clone(), worker_cpus.clone(), enclave.clone());
        thread::Builder::new()
            .name(format!("disp-worker-{k}"))
            .spawn(move || worker(&sh, &cpus, enc.as_ref()))
            .map_err(|e| format!("spawn worker {k}: {e}"))?;
    }
    let t0 = Instant::now();
    while sh.ready.load(SeqCst) < o.workers {
        if let Some(e) = lock(&sh.error).clone() {
            return Err(format!("a worker could not start: {e}"));
        }
        if t0.elapsed() > START_CAP {
            return Err(format!(
                "{} of {} workers ready after {START_CAP:?} (a hang cap)",
                sh.ready.load(SeqCst),
                o.workers
            ));
        }
        thread::sleep(POLL);
    }
    let ready_ms = t0.elapsed().as_secs_f64() * 1e3;
    // Send every request at its time, open loop.
    let start = *sh.start.get_or_init(Instant::now);
    let mut sent = 0;
    for (i, r) in sh.reqs.iter().enumerate() {
        let due = start + Duration::from_nanos(r.at_ns);
        let now = Instant::now();
        if due > now {
            thread::sleep(due - now);
        }
        let mut q = lock(&sh.queue);
        if q.len() < QUEUE_CAP {
            q.push_back(i);
            sent += 1;
        }
        drop(q);
        sh.wake.notify_one();
    }
    // Drain: wait for the outstanding requests, at most drain_ms.
    let end = start + Duration::from_millis(o.mix.duration_ms + o.drain_ms);
    while sh.completed.load(SeqCst) < sent && Instant::now() < end {
        thread::sleep(POLL);
    }
    sh.stop.store(true, SeqCst);
    sh.wake.notify_all();
    let warmup_ns = o.warmup_ms.saturating_mul(1_000_000);
    let lat: Vec<Option<f64>> = sh
        .reqs
        .iter()
        .zip(&sh.done)
        .filter(|(r, _)| r.at_ns >= warmup_ns)
        .map(|(r, d)| match d.load(SeqCst) {
            0 => None,
            t => Some((t - 1).saturating_sub(r.at_ns) as f64 / 1000.0),
        })
        .collect();
    let run = model::Run {
        workers: o.workers,
        warmup_ms: o.warmup_ms,
        loops_per_us,
        enclave: o.enclave.as_deref(),
        ready_ms,
        sent,
    };
    Ok(model::json_line(&o.mix, &run, &summarize(&lat)))
}
