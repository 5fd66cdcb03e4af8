//! `ghost-exp simple`: the six scenarios of ghOSt's `tests/simple_exp.cc`,
//! run against an enclave that already has an agent (the scenarios never
//! become agents; their threads write `0` to the enclave's `tasks` file).
//!
//! - `SimpleExp`: one thread enters ghost, sleeps 10 ms, yields, sleeps
//!   10 ms and exits: the agent runs a task that blocks, wakes and yields.
//! - `SimpleExpMany`: the same with 1000 threads, 3 rounds each: many
//!   tasks arriving, blocking and dying at once.
//! - `BusyExp`: 100 threads each spin on the monotonic clock for 10 ms: the
//!   agent shares its CPUs among runnable tasks that never block.
//! - `TaskDeparted`: one thread enters, sleeps, moves itself back to CFS
//!   (`sched_setscheduler(0, SCHED_OTHER)`), checks its policy, sleeps
//!   again: the agent sees `TASK_DEPARTED` from the task itself.
//! - `TaskDepartedMany`: the same with 1000 threads.
//! - `TaskDepartedManyRace`: 1000 threads spin on `sched_yield`; once all
//!   have entered, the main thread moves each one to CFS from outside while
//!   it runs (racing the agent), then stops them; each checks its policy.
//!
//! Always checked: every thread entered ghost (else the errno is named),
//! finished in time, passed its own checks, and did its work (a shared
//! counter). ghOSt also checks the policy is SCHED_GHOST; with `--verify` each
//! thread checks that right after entering, and after the scenario the
//! enclave's `tasks` must list none of its threads, the work counters must
//! match and `status` must parse. Every wait is bounded by lack of progress
//! ([`STALL`]: no thread entered or finished for that long) or by a cap that
//! only catches a hang ([`CAP`], and [`GRACE`] for `tasks`), never by how
//! long a scenario takes on a busy machine: a stuck scheduler gives a FAIL
//! line naming how many threads finished, and the stuck threads are left
//! detached.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::harness::sys;
use ghost::ghostfs::{self, EnclaveDir};
use ghost::sys::Errno;
use ghost_abi::SCHED_GHOST;

/// A scenario fails when no thread entered or finished, and the threads'
/// work counter did not move, for this long...
const STALL: Duration = Duration::from_secs(60);
/// ... or when it is not over after this long: a cap that only catches a
/// hang (a scenario takes seconds on a quiet machine).
const CAP: Duration = Duration::from_secs(900);
/// How long an exited thread may stay listed in `tasks` (`--verify`): a
/// hang cap too (it is gone within milliseconds on a quiet machine).
const GRACE: Duration = Duration::from_secs(60);
/// How often the main thread polls.
const POLL: Duration = Duration::from_millis(2);
/// The sleeps and spins of the scenarios.
const NAP: Duration = Duration::from_millis(10);
/// Stack size of the scenario threads (1000 of them must be cheap).
const STACK: usize = 64 * 1024;

/// The body a scenario thread runs once it is in ghost.
type Body = fn(&Shared) -> Result<(), String>;

/// One scenario of ghOSt's `simple_exp`.
struct Scenario {
    /// Its name, as ghOSt's test prints it.
    name: &'static str,
    /// Its thread count at scale 1.
    threads: usize,
    /// What each thread does in ghost.
    body: Body,
    /// The work units each thread adds to [`Shared::work`].
    rounds: u64,
    /// Whether the main thread moves the threads out of ghost.
    remote_depart: bool,
}

/// The scenarios, in ghOSt's order (the default selection).
const SCENARIOS: [Scenario; 6] = [
    scenario("SimpleExp", 1, nap_yield, 1, false),
    scenario("SimpleExpMany", 1000, nap_yield, 3, false),
    scenario("BusyExp", 100, busy, 1, false),
    scenario("TaskDeparted", 1, depart, 1, false),
    scenario("TaskDepartedMany", 1000, depart, 1, false),
    scenario("TaskDepartedManyRace", 1000, spin_yield, 1, true),
];

const fn scenario(
    name: &'static str,
    threads: usize,
    body: Body,
    rounds: u64,
    remote_depart: bool,
) -> Scenario {
    Scenario {
        name,
        threads,
        body,
        rounds,
        remote_depart,
    }
}

impl Scenario {
    /// Its thread count with the counts divided by `scale` (at least 1).
    fn threads_at(&self, scale: usize) -> usize {
        (self.threads / scale.max(1)).max(1)
    }
}

/// The enclave given to `--enclave`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum EnclaveArg {
    /// `N`: `/sys/fs/ghost/enclave_N`.
    Id(u64),
    /// Any other text: an enclave directory.
    Path(PathBuf),
}

/// The parsed command line.
struct Opts {
    enclave: EnclaveArg,
    verify: bool,
    scale: usize,
    scenarios: Vec<&'static Scenario>,
}

/// Parses the arguments after `simple`; the error is a usage error.
fn parse(args: &[String]) -> Result<Opts, String> {
    let (mut enclave, mut verify, mut scale, mut scenarios) = (None, false, 1, Vec::new());
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or(format!("{flag} needs a value"))
        };
        match flag {
            "--enclave" => enclave = Some(parse_enclave(&value()?)?),
            "--scale" => {
                let v = value()?;
                scale = v
                    .parse()
                    .ok()
                    .filter(|&s| s >= 1)
                    .ok_or(format!("bad --scale `{v}`"))?;
            }
            "--verify" if inline.is_none() => verify = true,
            f if f.starts_with('-') => return Err(format!("unknown option `{arg}`")),
            name => scenarios.push(
                SCENARIOS
                    .iter()
                    .find(|s| s.name == name)
                    .ok_or(format!("unknown scenario `{name}`"))?,
            ),
        }
    }
    if scenarios.is_empty() {
        scenarios = SCENARIOS.iter().collect();
    }
    let enclave = enclave.ok_or("--enclave is required")?;
    Ok(Opts {
        enclave,
        verify,
        scale,
        scenarios,
    })
}

/// `N` (decimal digits) is an enclave id; anything else non-empty a path.
fn parse_enclave(s: &str) -> Result<EnclaveArg, String> {
    if s.is_empty() {
        Err("--enclave needs a value".into())
    } else if s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse()
            .map(EnclaveArg::Id)
            .map_err(|_| format!("bad enclave id `{s}`"))
    } else {
        Ok(EnclaveArg::Path(PathBuf::from(s)))
    }
}

/// The enclave directory `arg` names (it must exist).
fn resolve(arg: &EnclaveArg) -> Result<EnclaveDir, String> {
    match arg {
        EnclaveArg::Id(id) => EnclaveDir::open(*id).map_err(|e| e.to_string()),
        EnclaveArg::Path(p) if p.is_dir() => {
            let id = p
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(ghostfs::parse_enclave_name);
            Ok(EnclaveDir {
                id: id.unwrap_or(0),
                path: p.clone(),
            })
        }
        EnclaveArg::Path(p) => Err(format!("{} is not a directory", p.display())),
    }
}

/// `ghost-exp simple ...`: runs the scenarios, one PASS/FAIL line each.
pub fn main(args: &[String]) -> ExitCode {
    let opts = match parse(args) {
        Ok(o) => o,
        Err(why) => {
            eprintln!("ghost-exp simple: {why}");
            return crate::usage();
        }
    };
    let dir = resolve(&opts.enclave);
    let mut ok = true;
    for sc in &opts.scenarios {
        let n = sc.threads_at(opts.scale);
        match dir.clone().and_then(|d| run(sc, &d, n, opts.verify)) {
            Ok(t) => println!("PASS {} ({} ms)", sc.name, t.as_millis()),
            Err(why) => {
                ok = false;
                println!("FAIL {}: {why}", sc.name);
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// What a scenario's threads share with each other and the main thread.
#[derive(Default)]
struct Shared {
    tasks: PathBuf,
    verify: bool,
    rounds: u64,
    /// Each thread's tid, 0 until it has started.
    tids: Vec<AtomicI32>,
    entered: AtomicUsize,
    entry_failed: AtomicUsize,
    work: AtomicU64,
    spins: AtomicU64,
    stop: AtomicBool,
    failures: AtomicUsize,
    first_failure: Mutex<Option<String>>,
}

impl Shared {
    /// Records a failure; the first one is reported.
    fn fail(&self, why: String) {
        self.failures.fetch_add(1, SeqCst);
        let mut first = self.first_failure.lock().unwrap_or_else(|p| p.into_inner());
        first.get_or_insert(why);
    }

    /// `N failure(s), first: ...`, if anything failed.
    fn failure(&self) -> Option<String> {
        let first = self
            .first_failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()?;
        Some(format!(
            "{} failure(s), first: {first}",
            self.failures.load(SeqCst)
        ))
    }

    fn tids(&self) -> impl Iterator<Item = i32> + '_ {
        self.tids.iter().map(|t| t.load(SeqCst)).filter(|&t| t != 0)
    }
}

/// The policy of thread `tid` (0: the caller), `SCHED_RESET_ON_FORK` masked.
fn policy(tid: i32) -> Result<i32, String> {
    let p = ghostfs::sched_policy(tid).map_err(|e| e.to_string())?;
    Ok(p & !libc::SCHED_RESET_ON_FORK)
}

/// Checks that the caller's policy is `want`, called `name`.
fn expect_policy(want: i32, name: &str, when: &str) -> Result<(), String> {
    match policy(0)? {
        p if p == want => Ok(()),
        p => Err(format!("policy {p} {when}, not {name}")),
    }
}

/// A scenario thread: enter ghost, run `body`.
fn thread_main(sh: &Shared, i: usize, body: Body) {
    sh.tids[i].store(ghost::sys::gettid(), SeqCst);
    if let Err(e) = ghostfs::write_file(&sh.tasks, "0\n") {
        sh.entry_failed.fetch_add(1, SeqCst);
        return sh.fail(format!("enter ghost: {e}"));
    }
    if sh.verify {
        if let Err(why) = expect_policy(SCHED_GHOST, "SCHED_GHOST", "after entering") {
            sh.fail(why);
        }
    }
    sh.entered.fetch_add(1, SeqCst);
    if let Err(why) = body(sh) {
        sh.fail(why);
    }
}

/// SimpleExp(Many): sleep, yield, sleep, `rounds` times.
fn nap_yield(sh: &Shared) -> Result<(), String> {
    for _ in 0..sh.rounds {
        thread::sleep(NAP);
        sys::sched_yield();
        thread::sleep(NAP);
        sh.work.fetch_add(1, SeqCst);
    }
    Ok(())
}

/// BusyExp: spin on the monotonic clock for 10 ms of wall time.
fn busy(sh: &Shared) -> Result<(), String> {
    let start = Instant::now();
    while start.elapsed() < NAP {
        std::hint::spin_loop();
    }
    sh.work.fetch_add(1, SeqCst);
    Ok(())
}

/// TaskDeparted(Many): sleep, leave ghost, check, sleep.
fn depart(sh: &Shared) -> Result<(), String> {
    thread::sleep(NAP);
    ghostfs::remove_task(0).map_err(|e| e.to_string())?;
    expect_policy(libc::SCHED_OTHER, "SCHED_OTHER", "after departing")?;
    thread::sleep(NAP);
    sh.work.fetch_add(1, SeqCst);
    Ok(())
}

/// TaskDepartedManyRace: yield until stopped (at least once), then check
/// that the main thread moved us to CFS.
fn spin_yield(sh: &Shared) -> Result<(), String> {
    loop {
        sys::sched_yield();
        sh.spins.fetch_add(1, SeqCst);
        if sh.stop.load(SeqCst) {
            break;
        }
    }
    expect_policy(libc::SCHED_OTHER, "SCHED_OTHER", "after being moved")?;
    sh.work.fetch_add(1, SeqCst);
    Ok(())
}

/// Waits for `f` while `progress` changes: whether it held before
/// `progress` stood still for [`STALL`] or [`CAP`] passed since `start`.
fn wait_until(
    start: Instant,
    mut progress: impl FnMut() -> u64,
    mut f: impl FnMut() -> bool,
) -> bool {
    let (mut last, mut since) = (progress(), Instant::now());
    loop {
        if f() {
            return true;
        }
        let now = progress();
        if now != last {
            (last, since) = (now, Instant::now());
        }
        if since.elapsed() >= STALL || start.elapsed() >= CAP {
            return f();
        }
        thread::sleep(POLL);
    }
}

/// Whether thread `tid` of this process is gone (exited and released).
fn gone(tid: i32) -> bool {
    ghost::sys::tgkill(tid, 0) == Err(Errno(libc::ESRCH))
}

/// Runs scenario `sc` with `n` threads in `dir`; the time to the last exit.
fn run(sc: &Scenario, dir: &EnclaveDir, n: usize, verify: bool) -> Result<Duration, String> {
    let start = Instant::now();
    let sh = Arc::new(Shared {
        tasks: dir.file("tasks"),
        verify,
        rounds: sc.rounds,
        tids: (0..n).map(|_| AtomicI32::new(0)).collect(),
        ..Shared::default()
    });
    let mut handles: Vec<JoinHandle<()>> = Vec::with_capacity(n);
    for i in 0..n {
        let (sh2, body) = (Arc::clone(&sh), sc.body);
        match thread::Builder::new()
            .stack_size(STACK)
            .spawn(move || thread_main(&sh2, i, body))
        {
            Ok(h) => handles.push(h),
            Err(e) => {
                sh.fail(format!("spawn thread {i} of {n}: {e}"));
                break;
            }
        }
    }
    let spawned = handles.len();
    if sc.remote_depart {
        let settled = || sh.entered.load(SeqCst) + sh.entry_failed.load(SeqCst) >= spawned;
        let entered = || (sh.entered.load(SeqCst) + sh.entry_failed.load(SeqCst)) as u64;
        if wait_until(start, entered, settled) {
            for tid in sh.tids() {
                match ghostfs::remove_task(tid) {
                    // Exited early: it has recorded why.
                    Err(e) if e.errno == libc::ESRCH => {}
                    Err(e) => sh.fail(e.to_string()),
                    Ok(()) => {}
                }
            }
        } else {
            sh.fail(format!(
                "only {} of {n} threads entered ghost",
                sh.entered.load(SeqCst)
            ));
        }
        sh.stop.store(true, SeqCst);
    }
    // A thread is done when its closure returned and the kernel released it,
    // so that joining it cannot block.
    let finished = || {
        let tids = sh.tids.iter().map(|t| t.load(SeqCst));
        handles
            .iter()
            .zip(tids)
            .filter(|(h, t)| h.is_finished() && gone(*t))
            .count()
    };
    let progress = || {
        (finished() as u64)
            .wrapping_mul(1_000_003)
            .wrapping_add(sh.work.load(SeqCst))
            .wrapping_add(sh.spins.load(SeqCst))
    };
    if !wait_until(start, progress, || finished() == spawned) {
        let mut why = format!(
            "timed out: no progress for {} s (or {} s in all), after {:.1} s: {} of {n} threads finished",
            STALL.as_secs(),
            CAP.as_secs(),
            start.elapsed().as_secs_f64(),
            finished()
        );
        if verify {
            let stuck = sh.tids().filter(|&t| policy(t) == Ok(SCHED_GHOST)).count();
            why.push_str(&format!(", {stuck} still in ghost"));
        }
        if let Some(f) = sh.failure() {
            why.push_str(&format!("; {f}"));
        }
        return Err(why); // the stuck threads stay detached
    }
    let elapsed = start.elapsed();
    for h in handles {
        if h.join().is_err() {
            sh.fail("a thread panicked".into());
        }
    }
    if let Some(f) = sh.failure() {
        return Err(f);
    }
    let (work, want) = (sh.work.load(SeqCst), n as u64 * sc.rounds);
    ensure!(work == want, "work count {work} != {want}");
    if verify {
        verify_after(sc, dir, &sh, n)?;
    }
    Ok(elapsed)
}

/// The `--verify` checks once every thread of the scenario has exited.
fn verify_after(sc: &Scenario, dir: &EnclaveDir, sh: &Shared, n: usize) -> Result<(), String> {
    let ours: HashSet<i32> = sh.tids().collect();
    let listed = || -> Result<usize, String> {
        let tasks = dir.tasks().map_err(|e| e.to_string())?;
        Ok(tasks.iter().filter(|t| ours.contains(t)).count())
    };
    let grace = Instant::now() + GRACE;
    let mut left = listed()?;
    while left > 0 && Instant::now() < grace {
        thread::sleep(POLL);
        left = listed()?;
    }
    ensure!(
        left == 0,
        "{left} exited thread(s) still listed in {}",
        dir.file("tasks").display()
    );
    if sc.remote_depart {
        let spins = sh.spins.load(SeqCst);
        ensure!(
            spins >= n as u64,
            "{spins} yields by {n} threads (each yields at least once)"
        );
    }
    dir.status().map_err(|e| format!("status: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn names(o: &Opts) -> Vec<&str> {
        o.scenarios.iter().map(|s| s.name).collect()
    }

    #[test]
    fn defaults_to_all_six_in_order() {
        let o = parse(&args("--enclave 3")).unwrap();
        assert_eq!(o.enclave, EnclaveArg::Id(3));
        assert!(!o.verify);
        assert_eq!(o.scale, 1);
        assert_eq!(
            names(&o),
            [
                "SimpleExp",
                "SimpleExpMany",
                "BusyExp",
                "TaskDeparted",
                "TaskDepartedMany",
                "TaskDepartedManyRace"
            ]
        );
    }

    #[test]
    fn options_and_scenarios() {
        let o = parse(&args(
            "BusyExp --verify --enclave /sys/fs/ghost/enclave_2 --scale 10 TaskDeparted",
        ))
        .unwrap();
        assert_eq!(
            o.enclave,
            EnclaveArg::Path("/sys/fs/ghost/enclave_2".into())
        );
        assert!(o.verify);
        assert_eq!(o.scale, 10);
        assert_eq!(names(&o), ["BusyExp", "TaskDeparted"]);
        let o = parse(&args("--enclave=enclave_4 --scale=2")).unwrap();
        assert_eq!(o.enclave, EnclaveArg::Path("enclave_4".into()));
        assert_eq!(o.scale, 2);
    }

    #[test]
    fn bad_input_is_a_usage_error() {
        for bad in [
            "",
            "--verify",
            "--enclave",
            "--enclave=",
            "--enclave 99999999999999999999999",
            "--enclave 1 --scale",
            "--enclave 1 --scale 0",
            "--enclave 1 --scale -2",
            "--enclave 1 --scale x",
            "--enclave 1 simpleexp",
            "--enclave 1 SimpleExp Nope",
            "--enclave 1 --bogus",
            "--enclave 1 --verify=1",
            "--enclave 1 -h",
        ] {
            assert!(parse(&args(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn scaling() {
        let at = |scale| {
            SCENARIOS
                .iter()
                .map(|s| s.threads_at(scale))
                .collect::<Vec<_>>()
        };
        assert_eq!(at(1), [1, 1000, 100, 1, 1000, 1000]);
        assert_eq!(at(10), [1, 100, 10, 1, 100, 100]);
        assert_eq!(at(300), [1, 3, 1, 1, 3, 3]);
        assert_eq!(at(usize::MAX), [1; 6]);
    }
}
