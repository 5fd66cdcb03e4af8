//! Runs: batches, the kernel's health after each, the suite's fixed seeds
//! (`fuzz_fixed_seeds`) and `ghost-exp fuzz`.

use super::agent::agent_main;
use super::fuzzer::fuzzer_main;
use super::rng::{child, sub_seed};
use super::shared::{shared_mem, Shared};
use super::syscalls::{destroy_all_bounded, ended, exists, ghost_threads, reap, sleep_us, splats};
use super::workload::{bystander_main, workload_main};
use super::{
    abi, create_enclave, errno_name, figures, nr_cpu_ids, path, sys, AtomicU64, Duration, Exit,
    ExitCode, HashSet, Instant, Ordering, BATCH, EXIT_REVOKED, EXIT_SIGBUS_LIVE, GHOSTFS, HEALTH,
    KINDS, STAGE, SUITE_OPS, SUITE_SEEDS, THREADS,
};

/// What stops a run.
#[derive(Clone, Copy)]
pub struct Limits {
    pub ops: Option<u64>,
    pub seconds: Option<u64>,
}

/// A run's totals.
#[derive(Default)]
pub(super) struct Totals {
    pub(super) batches: u64,
    pub(super) ops: u64,
    pub(super) faults: u64,
    pub(super) entered: u64,
    pub(super) returned: u64,
    pub(super) nudges: u64,
    pub(super) sched_ok: u64,
    pub(super) sched_fail: u64,
    pub(super) stage_gone: u64,
}

/// A failure: what, and the last operations.
pub(super) fn failure(sh: &Shared, seed: u64, batch: u64, what: String) -> String {
    let ops = sh.last_ops(50);
    format!(
        "seed {seed} batch {batch}: {what}\n  last operations (oldest first):\n    {}",
        ops.join("\n    ")
    )
}

/// Sets up the stage, runs one batch of `nops` operations, tears it down
/// and checks the kernel's health.
pub(super) fn batch(
    sh: &'static Shared,
    seed: u64,
    b: u64,
    nops: u64,
    baseline: &HashSet<String>,
    t: &mut Totals,
) -> Result<(), String> {
    let ncpus = nr_cpu_ids()?;
    let c1 = ncpus - 1;
    sh.reset();
    destroy_all_bounded()?;
    create_enclave(&format!("create {STAGE} 91"))?;
    for (f, v) in [
        ("cpulist", c1.to_string()),
        ("ctl", "create sw_region 0 0".into()),
        ("runnable_timeout", "5000".into()),
    ] {
        sys::write_once(&path(STAGE, f), v.as_bytes())
            .map_err(|e| format!("stage {f}: {}", errno_name(e)))?;
    }
    if std::env::var_os("GHOST_FUZZ_TRACE").is_some() {
        println!("  batch {b} starts");
    }
    let wseed = sub_seed(seed, b, 3);
    let work = sys::fork_child(move || child(|| workload_main(sh, wseed)))?;
    let bys = sys::fork_child(move || child(|| bystander_main(sh)))?;
    sh.bystander.store(bys, Ordering::SeqCst);
    let (aseed, fseed) = (sub_seed(seed, b, 1), sub_seed(seed, b, 2));
    let (na, nf) = (nops / 2, nops - nops / 2);
    let agent = sys::fork_child(move || child(|| agent_main(sh, aseed, b, na, c1)))?;
    let up = crate::harness::wait_for(20_000, || {
        sh.agent_up.load(Ordering::SeqCst) != 0 || sh.agent_err.load(Ordering::SeqCst) != 0
    });
    let aerr = sh.agent_err.load(Ordering::SeqCst);
    if !up || aerr != 0 {
        return Err(format!("the stage's agent did not come up (error {aerr})"));
    }
    let joined = crate::harness::wait_for(20_000, || {
        sh.tids.iter().all(|t| t.load(Ordering::SeqCst) != 0)
            && sh.in_ghost.iter().all(|g| g.load(Ordering::SeqCst) != 0)
    });
    if !joined {
        return Err("the workload's threads did not all enter the stage".into());
    }
    let fuzzer = sys::fork_child(move || child(|| fuzzer_main(sh, fseed, b, nf, c1)))?;
    // The batch: both fuzz processes finish their operations (seconds on a
    // quiet machine; bounded by the hang cap).
    let deadline = Instant::now() + Duration::from_millis(crate::harness::hang_cap(60_000));
    while Instant::now() < deadline {
        let f_end = ended(fuzzer);
        let a_end = sh.agent_done.load(Ordering::SeqCst) != 0 || ended(agent);
        if f_end && a_end {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let stage_alive = exists(STAGE);
    if !stage_alive {
        t.stage_gone += 1;
    }
    // Teardown: every enclave goes; every thread of the batch must be back
    // in CFS and running.
    let fail = |what: String| failure(sh, seed, b, what);
    destroy_all_bounded().map_err(&fail)?;
    let (fexit, fkilled) = reap(fuzzer, 20_000).map_err(&fail)?;
    if fkilled {
        return Err(fail(
            "the fuzzer did not finish within the hang cap + 20 s after the destroy (hung in the kernel?)"
                .into(),
        ));
    }
    match fexit {
        Exit::Code(0) | Exit::Code(EXIT_REVOKED) => {}
        // The stage went (the watchdog) before the fuzzer started.
        Exit::Code(10) if !stage_alive => {}
        Exit::Code(EXIT_SIGBUS_LIVE) => {
            return Err(fail(
                "the fuzzer got SIGBUS on the mapping of an enclave that still existed".into(),
            ))
        }
        other => {
            return Err(fail(format!(
                "the fuzzer ended {other:?} (a signal or 99, a panic: a fuzzer bug, in userspace)"
            )))
        }
    }
    let (aexit, akilled) = reap(agent, 20_000).map_err(&fail)?;
    if akilled {
        return Err(fail(
            "the agent outlived its enclave's destroy by 20 s".into(),
        ));
    }
    // Enclaves made meanwhile by a late fuzzer.
    destroy_all_bounded().map_err(&fail)?;
    match aexit {
        Exit::Signal(libc::SIGKILL) | Exit::Code(EXIT_REVOKED) => {}
        Exit::Code(EXIT_SIGBUS_LIVE) => {
            return Err(fail(
                "the agent got SIGBUS on the mapping of an enclave that still existed".into(),
            ))
        }
        other => return Err(fail(format!("the agent ended {other:?}"))),
    }
    for i in 0..THREADS {
        let tid = sh.tids[i].load(Ordering::SeqCst);
        let pol = sys::sched_policy(tid);
        if pol == abi::SCHED_GHOST {
            return Err(fail(format!(
                "workload thread {tid} still in ghost after destroy"
            )));
        }
        let w = sh.work[i].load(Ordering::SeqCst);
        if !crate::harness::wait_for(5000, || sh.work[i].load(Ordering::SeqCst) > w) {
            return Err(fail(format!(
                "workload thread {tid} (policy {pol}) stopped: not running after the destroy"
            )));
        }
    }
    let bw = sh.bystander_work.load(Ordering::SeqCst);
    if !crate::harness::wait_for(5000, || sh.bystander_work.load(Ordering::SeqCst) > bw) {
        return Err(fail(
            "the bystander stopped: not running after the destroy".into(),
        ));
    }
    sh.stop.store(1, Ordering::SeqCst);
    for (what, pid) in [("workload", work), ("bystander", bys)] {
        let (exit, killed) = reap(pid, 20_000).map_err(&fail)?;
        if killed || exit != Exit::Code(0) {
            return Err(fail(format!(
                "the {what} ended {exit:?} (killed after 20 s: {killed})"
            )));
        }
    }
    let moved = sh.moved.load(Ordering::SeqCst);
    let entered = THREADS as u64 + u64::from(moved & 1) + u64::from(moved >> 1 & 1);
    t.entered += entered;
    t.returned += entered;
    if std::env::var_os("GHOST_FUZZ_TRACE").is_some() {
        let o: Vec<String> = sh
            .outcomes
            .iter()
            .enumerate()
            .filter(|(_, v)| v.load(Ordering::SeqCst) != 0)
            .map(|(i, v)| format!("{i}:{}", v.load(Ordering::SeqCst)))
            .collect();
        let roles = format!(
            "workload {:?} bystander {bys} agent {agent} fuzzer {fuzzer}",
            sh.tids
                .iter()
                .map(|t| t.load(Ordering::SeqCst))
                .collect::<Vec<_>>()
        );
        println!(
            "  batch {b}: {} ops, stage alive at the end: {stage_alive}, agent commit outcomes {}, fuzzer {fexit:?}, agent {aexit:?}; {roles}",
            sh.ops.load(Ordering::SeqCst),
            o.join(" ")
        );
    }
    health(sh, seed, b, baseline, t)?;
    t.batches += 1;
    t.ops += sh.ops.load(Ordering::SeqCst);
    t.faults += sh.faults.load(Ordering::SeqCst);
    t.nudges += sh.nudges.load(Ordering::SeqCst);
    t.sched_ok += sh.sched_ok.load(Ordering::SeqCst);
    t.sched_fail += sh.sched_fail.load(Ordering::SeqCst);
    Ok(())
}

/// The kernel is healthy: no new splat, ghostfs answers, an enclave can be
/// created, a task enters it and is destroyed back to CFS, and no thread is
/// left in the ghost class.
pub(super) fn health(
    sh: &'static Shared,
    seed: u64,
    b: u64,
    baseline: &HashSet<String>,
    t: &mut Totals,
) -> Result<(), String> {
    let fail = |what: String| failure(sh, seed, b, what);
    let log = sys::kernel_log().map_err(|e| format!("klogctl: {}", errno_name(e)))?;
    let new: Vec<String> = splats(&log)
        .into_iter()
        .filter(|l| !baseline.contains(l))
        .collect();
    if !new.is_empty() {
        let first = log.find(new[0].as_str()).unwrap_or(0);
        let ctx: Vec<&str> = log[first..].lines().take(40).collect();
        return Err(fail(format!(
            "kernel splat:\n      {}",
            ctx.join("\n      ")
        )));
    }
    let v = std::fs::read_to_string(format!("{GHOSTFS}/version"));
    if v.as_deref().ok() != Some("91\n") {
        return Err(fail(format!("ghostfs version reads {v:?}")));
    }
    let lost = ghost_threads();
    if !lost.is_empty() {
        return Err(fail(format!(
            "threads left in the ghost class with every enclave destroyed: {}",
            lost.join(" ")
        )));
    }
    create_enclave(&format!("create {HEALTH} 91")).map_err(&fail)?;
    sys::write_once(&path(HEALTH, "ctl"), b"create sw_region 0 0")
        .map_err(|e| fail(format!("health: sw_region: {}", errno_name(e))))?;
    let counter: &'static AtomicU64 = &sh.agent_iter;
    counter.store(0, Ordering::SeqCst);
    let child = sys::fork_child(move || {
        for _ in 0..20_000 {
            counter.fetch_add(1, Ordering::SeqCst);
            sleep_us(1000);
        }
        0
    })?;
    let joined = sys::write_once(&path(HEALTH, "tasks"), child.to_string().as_bytes());
    let in_ghost = sys::sched_policy(child) == abi::SCHED_GHOST;
    let destroyed = sys::write_once(&path(HEALTH, "ctl"), b"destroy");
    let back = sys::sched_policy(child);
    let at = counter.load(Ordering::SeqCst);
    let runs = crate::harness::wait_for(5000, || counter.load(Ordering::SeqCst) > at + 2);
    sys::kill(child, libc::SIGKILL);
    let _ = reap(child, 5000).map_err(&fail)?;
    if joined.is_err() || !in_ghost {
        return Err(fail(format!(
            "health: a task could not enter a new enclave: {joined:?}"
        )));
    }
    if destroyed.is_err() || back != libc::SCHED_OTHER || !runs {
        return Err(fail(format!(
            "health: destroy {destroyed:?}, the task's policy {back}, running again: {runs}"
        )));
    }
    t.entered += 1;
    t.returned += 1;
    Ok(())
}

/// Runs the fuzzer with `seed` until `limits`; prints progress. The
/// operation and fault counts go to the figures.
pub fn run(seed: u64, limits: Limits) -> Result<String, String> {
    sys::ensure_ghostfs()?;
    let ncpus = nr_cpu_ids()?;
    if ncpus < 2 {
        return Err(format!("the fuzzer needs 2 CPUs, have {ncpus}"));
    }
    let sh: &'static Shared = shared_mem()?;
    for k in &sh.kinds {
        k[0].store(0, Ordering::SeqCst);
        k[1].store(0, Ordering::SeqCst);
    }
    let log = sys::kernel_log().map_err(|e| format!("klogctl: {}", errno_name(e)))?;
    let baseline: HashSet<String> = splats(&log).into_iter().collect();
    let start = Instant::now();
    let mut t = Totals::default();
    let mut b = 0;
    let result = loop {
        let left = limits.ops.map(|n| n.saturating_sub(t.ops));
        let over = limits
            .seconds
            .is_some_and(|s| start.elapsed() >= Duration::from_secs(s));
        if left == Some(0) || over {
            break Ok(());
        }
        let n = left.map_or(BATCH, |l| l.min(BATCH));
        let before = (t.ops, t.faults, t.entered, t.returned);
        let r = batch(sh, seed, b, n, &baseline, &mut t);
        figures::ops(t.ops - before.0);
        figures::faults(t.faults - before.1);
        figures::entered(t.entered - before.2);
        figures::returned(t.returned - before.3);
        if let Err(e) = r {
            break Err(e);
        }
        if limits.seconds.is_some() && b % 10 == 9 {
            println!(
                "  fuzz: seed {seed}: {} batches, {} ops, {:.0} s",
                t.batches,
                t.ops,
                start.elapsed().as_secs_f64()
            );
        }
        b += 1;
    };
    let kinds: Vec<String> = KINDS
        .iter()
        .enumerate()
        .map(|(i, k)| {
            format!(
                "{k} {}/{}",
                sh.kinds[i][0].load(Ordering::SeqCst),
                sh.kinds[i][1].load(Ordering::SeqCst)
            )
        })
        .collect();
    let summary = format!(
        "seed {seed}: {} batches, {} ops, {} faults, {} tasks in and out of ghost, agent commits {} ok / {} not, {} nudges, stage destroyed by the fuzz {} times, {:.1} s; ok/errno by kind: {}",
        t.batches,
        t.ops,
        t.faults,
        t.returned,
        t.sched_ok,
        t.sched_fail,
        t.nudges,
        t.stage_gone,
        start.elapsed().as_secs_f64(),
        kinds.join(", ")
    );
    match result {
        Ok(()) => Ok(summary),
        Err(e) => Err(format!("{e}\n  ({summary})")),
    }
}

/// The suite's fuzz: fixed seeds, a bounded number of operations each.
pub(super) fn fuzz_fixed_seeds() -> Result<(), String> {
    for seed in SUITE_SEEDS {
        let s = run(
            seed,
            Limits {
                ops: Some(SUITE_OPS),
                seconds: None,
            },
        )?;
        println!("  fuzz_fixed_seeds: {s}");
    }
    Ok(())
}

/// `ghost-exp fuzz [--seed S] [--seconds N | --ops N]`.
pub fn main(args: &[String]) -> ExitCode {
    let mut seed = None;
    let mut limits = Limits {
        ops: None,
        seconds: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let v = it.next().and_then(|v| v.parse::<u64>().ok());
        match (a.as_str(), v) {
            ("--seed", Some(v)) => seed = Some(v),
            ("--seconds", Some(v)) => limits.seconds = Some(v),
            ("--ops", Some(v)) => limits.ops = Some(v),
            _ => {
                eprintln!("usage: ghost-exp fuzz [--seed S] [--seconds N | --ops N]");
                return ExitCode::from(2);
            }
        }
    }
    if limits.ops.is_none() && limits.seconds.is_none() {
        limits.seconds = Some(60);
    }
    let seed = seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64 % 1_000_000_000_000)
    });
    println!(
        "fuzz: seed {seed} (replay: ghost-exp fuzz --seed {seed} {})",
        match (limits.ops, limits.seconds) {
            (Some(n), _) => format!("--ops {n}"),
            (_, Some(s)) => format!("--seconds {s}"),
            _ => String::new(),
        }
    );
    // The verdict first: cleaning up after a kernel hang may hang too.
    let code = match run(seed, limits) {
        Ok(s) => {
            println!("fuzz: PASS {s}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("fuzz: FAIL {e}");
            ExitCode::FAILURE
        }
    };
    use std::io::Write;
    let _ = std::io::stdout().flush();
    if let Err(e) = destroy_all_bounded() {
        println!("fuzz: cleanup: {e}");
        return ExitCode::FAILURE;
    }
    sys::kill_leftover_children();
    code
}
