//! A seeded, bounded random-operation fuzzer of the ghost-rs kernel
//! interface (`ghost-exp fuzz`, and the suite's `fuzz_fixed_seeds`).
//!
//! A run is a sequence of *batches*. Each batch sets up a *stage*: enclave
//! [`STAGE`] on the last CPU with a real agent process, [`THREADS`] real
//! ghost threads (spin, sleep, yield, leave and re-enter ghost) and a
//! sleeping CFS *bystander* the fuzzer may move into enclaves. Two forked
//! processes then fuzz:
//!
//! - the *fuzzer* (`F`, no agent): random, near-valid and valid writes to
//!   every ghostfs file (root `ctl`, each enclave's `ctl`, `cpulist`,
//!   `cpumask`, `tasks`, the tunables, `agent_online`, the read-only files),
//!   reads, every ioctl on every kind of fd (random command numbers around
//!   the `GHOST_IOC_*` range, random `_IOC` size bits; NULL, unmapped,
//!   misaligned, page-straddling and kernel-looking pointers; well-formed
//!   structs with random fields), `ghost_run` with random arguments, odd
//!   `mmap`s, garbage written into the stage's `cpu_data` and into queue
//!   headers, enclave create/destroy, and scheduler calls on the live tasks
//!   (policy, affinity, nice);
//! - the *agent* (`A`), the real agent of the stage: between its own
//!   scheduling rounds it fills its `cpu_data` transactions with garbage
//!   (gtid, cpu, state, flags, barriers, sync-group owner) and commits them
//!   (`COMMIT_TXN`, `SYNC_GROUP_TXN`, sometimes with a helper thread
//!   scribbling on the transaction meanwhile), calls `ghost_run` /
//!   `GHOST_IOC_RUN` with random arguments, writes garbage into the header of
//!   its own queue and of a second queue it drains too, and sends random
//!   `SW_FREE`, `ASSOC_QUEUE` and other ioctls, as an agent.
//!
//! The agent schedules from its status words (not from messages, which
//! garbage in a queue header may drop): every runnable task is committed in
//! turn with `RTLA_ON_{BLOCKED,YIELD,PREEMPT}`, and a helper thread signals
//! it when it made no progress for a while (a commit of garbage may leave it
//! asleep with nothing to wake it). The stage's `runnable_timeout` is 5 s,
//! so a dead agent cannot leave tasks waiting long enough to stall RCU.
//!
//! After each batch every enclave is destroyed and the kernel must be
//! healthy: no new splat in the kernel log, ghostfs answers (`version` reads
//! 91), an enclave can be created and a task can enter it and be destroyed
//! back to CFS, every thread of the batch is out of ghost and running, and
//! no thread of the system is left in the ghost class. Errnos are expected;
//! a splat, a hang (every wait is bounded) or a lost task is a failure. So
//! is a fuzz process killed by a signal (a garbage pointer dereferenced in
//! *userspace*: a fuzzer bug) or by `SIGBUS` on the mapping of an enclave
//! that still exists (a kernel bug).
//!
//! Each process's operations follow from the seed, the batch and its role;
//! the two processes run concurrently, so their interleaving is not
//! replayed. The last operations of both (a shared ring, [`RING`] entries)
//! are printed on a failure.

use crate::harness::figures;
/// The kernel crate's ghostfs parsers (pure code), to model what a write
/// means to the kernel.
#[path = "../../../rust-sched-ghost/parse.rs"]
#[allow(dead_code)]
mod kparse;
use crate::harness::sys::{self, errno_name, Exit, GHOSTFS};
use crate::harness::{create_enclave, destroy_all_enclaves, nr_cpu_ids, Test};
use crate::harness::{ioctl, path};
use ghost_abi as abi;
use std::collections::HashSet;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd};
use std::process::ExitCode;
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

/// The fuzz tests, in the order they run.
pub const TESTS: &[Test] = &[Test {
    name: "fuzz_fixed_seeds",
    run: fuzz_fixed_seeds,
}];

/// The suite's seeds, each run for [`SUITE_OPS`] operations.
const SUITE_SEEDS: [u64; 4] = [
    0x6768_6f73_7401,
    0x6768_6f73_7402,
    0x6768_6f73_7403,
    20_251_122,
];
/// Operations per suite seed.
const SUITE_OPS: u64 = 400;
/// Operations per batch (then a health check).
const BATCH: u64 = 200;
/// The stage enclave, and the one the health check creates.
const STAGE: u64 = 70;
const HEALTH: u64 = 71;
/// Ghost threads of the stage's workload.
const THREADS: usize = 4;
/// Status words the agent scans for tasks.
const SCAN: usize = 512;
/// Operations kept for a failure report.
const RING: usize = 64;
const SLOT_BYTES: usize = 240;
/// The exit code of a fuzz process that got `SIGBUS` on the mapping of a
/// destroyed enclave (expected), and of a live one (a kernel bug).
const EXIT_REVOKED: i32 = 42;
const EXIT_SIGBUS_LIVE: i32 = 43;
/// A queue fd number no process of the fuzz has open.
const NO_FD: i32 = 987_654;

/// Operation kinds, for the summary (ok / errno counts).
const KINDS: [&str; 16] = [
    "write",
    "read",
    "ioctl",
    "ghost_run",
    "mmap",
    "scribble",
    "enclave",
    "sched",
    "txn",
    "a_run",
    "q_garbage",
    "sw_free",
    "assoc",
    "a_ioctl",
    "a_write",
    "queue2",
];
const K_WRITE: usize = 0;
const K_READ: usize = 1;
const K_IOCTL: usize = 2;
const K_RUN: usize = 3;
const K_MMAP: usize = 4;
const K_SCRIBBLE: usize = 5;
const K_ENCLAVE: usize = 6;
const K_SCHED: usize = 7;
const K_TXN: usize = 8;
const K_ARUN: usize = 9;
const K_QGARBAGE: usize = 10;
const K_SWFREE: usize = 11;
const K_ASSOC: usize = 12;
const K_AIOCTL: usize = 13;
const K_AWRITE: usize = 14;
const K_QUEUE2: usize = 15;

// ---------------------------------------------------------------------------
// Seeded randomness.
// ---------------------------------------------------------------------------

/// xorshift64*, seeded through splitmix64.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// True one time in `n`.
    fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    fn pick<T: Clone>(&mut self, v: &[T]) -> T {
        v[self.below(v.len() as u64) as usize].clone()
    }

    /// An index into `weights`, chosen by weight.
    fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        let mut r = self.below(total);
        for (i, &w) in weights.iter().enumerate() {
            if r < u64::from(w) {
                return i;
            }
            r -= u64::from(w);
        }
        0
    }

    /// An "interesting" integer: edges, small numbers, or anything.
    fn int(&mut self) -> i64 {
        match self.below(4) {
            0 => self.pick(&[
                0,
                1,
                -1,
                2,
                -2,
                3,
                7,
                8,
                63,
                64,
                65,
                127,
                128,
                255,
                256,
                1023,
                1024,
                4095,
                4096,
                4097,
                65534,
                65535,
                65536,
                i64::from(i32::MAX),
                i64::from(i32::MIN),
                i64::from(u32::MAX),
                1 << 32,
                i64::MAX,
                i64::MIN,
            ]),
            1 => self.below(8) as i64,
            2 => self.below(70_000) as i64 - 1000,
            _ => self.next() as i64,
        }
    }

    /// Random bytes of a random length, from 0 to more than a page.
    fn bytes(&mut self) -> Vec<u8> {
        let len = match self.below(6) {
            0 => self.pick(&[0usize, 1, 2, 4095, 4096, 4097, 8192, 65536]),
            1 => self.below(300) as usize,
            _ => self.below(24) as usize,
        };
        let printable = self.one_in(2);
        (0..len)
            .map(|_| {
                if printable {
                    self.pick(b"0123456789 -abcdeghinorstvwxyz\n,=\t")
                } else {
                    self.next() as u8
                }
            })
            .collect()
    }
}

/// Runs the body of a forked child: a panic (a fuzzer bug) ends the child
/// with exit code 99 instead of unwinding into the parent's code.
fn child(f: impl FnOnce() -> i32) -> i32 {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(99)
}

/// The seed of one process of one batch.
fn sub_seed(seed: u64, batch: u64, role: u64) -> u64 {
    Rng::new(seed ^ batch.wrapping_mul(0x1000_0001) ^ role.wrapping_mul(0x7777_0000_0001)).next()
}

// ---------------------------------------------------------------------------
// Memory shared by the fuzz processes.
// ---------------------------------------------------------------------------

/// One operation description of the ring.
#[repr(C)]
struct Slot {
    seq: AtomicU64,
    len: AtomicU32,
    text: [AtomicU8; SLOT_BYTES],
}

/// Shared by the parent, the agent, the fuzzer, the workload and the
/// bystander (an anonymous shared mapping, zeroed for each run).
#[repr(C)]
struct Shared {
    /// The workload and the bystander stop.
    stop: AtomicU32,
    /// The agent: up; setup error; done with its operations; thread id;
    /// loop iterations.
    agent_up: AtomicU32,
    agent_err: AtomicI32,
    agent_done: AtomicU32,
    agent_tid: AtomicI32,
    agent_iter: AtomicU64,
    /// Operations tried and faults (garbage) injected, by every process.
    ops: AtomicU64,
    faults: AtomicU64,
    /// The agent: nudges of its helper, its own commits that completed or
    /// not, status words it freed.
    nudges: AtomicU64,
    sched_ok: AtomicU64,
    sched_fail: AtomicU64,
    sw_freed: AtomicU64,
    /// The outcomes of the agent's own commits (`state - INT_MIN`; 16: the
    /// ioctl failed; 17: not done).
    outcomes: [AtomicU64; 18],
    /// The workload threads: tids, iterations, whether they entered ghost.
    tids: [AtomicI32; THREADS],
    work: [AtomicU64; THREADS],
    in_ghost: [AtomicU32; THREADS],
    /// The bystander: pid, iterations; the fuzzer's `tasks` writes that
    /// moved it (bit 0) or the fuzzer itself (bit 1) into ghost.
    bystander: AtomicI32,
    bystander_work: AtomicU64,
    moved: AtomicU32,
    /// Outcomes by operation kind: ok, errno.
    kinds: [[AtomicU64; 2]; KINDS.len()],
    /// The ring of the last operations.
    seq: AtomicU64,
    ring: [Slot; RING],
}

/// A zeroed anonymous shared mapping holding a `T` (atomics only), never
/// unmapped.
fn shared_mem<T>() -> Result<&'static T, String> {
    let len = std::mem::size_of::<T>().next_multiple_of(4096);
    // SAFETY: a fresh anonymous shared mapping; zeroed memory is a valid
    // `T` (atomics only); never unmapped.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            return Err(format!("mmap: {}", errno_name(sys::errno())));
        }
        Ok(&*p.cast::<T>())
    }
}

impl Shared {
    /// Back to zero, except the ring's sequence (it goes on across batches).
    fn reset(&self) {
        for a in [&self.stop, &self.agent_up, &self.agent_done, &self.moved] {
            a.store(0, Ordering::SeqCst);
        }
        for a in [&self.agent_err, &self.agent_tid, &self.bystander] {
            a.store(0, Ordering::SeqCst);
        }
        for a in [
            &self.agent_iter,
            &self.ops,
            &self.faults,
            &self.nudges,
            &self.sched_ok,
            &self.sched_fail,
            &self.sw_freed,
            &self.bystander_work,
        ] {
            a.store(0, Ordering::SeqCst);
        }
        for o in &self.outcomes {
            o.store(0, Ordering::SeqCst);
        }
        for i in 0..THREADS {
            self.tids[i].store(0, Ordering::SeqCst);
            self.work[i].store(0, Ordering::SeqCst);
            self.in_ghost[i].store(0, Ordering::SeqCst);
        }
    }

    /// The last `n` operations of the ring, oldest first.
    fn last_ops(&self, n: usize) -> Vec<String> {
        let mut v: Vec<(u64, String)> = self
            .ring
            .iter()
            .filter_map(|s| {
                let seq = s.seq.load(Ordering::Acquire);
                let len = (s.len.load(Ordering::Acquire) as usize).min(SLOT_BYTES);
                let b: Vec<u8> = s.text[..len]
                    .iter()
                    .map(|c| c.load(Ordering::Relaxed))
                    .collect();
                (seq != 0).then(|| (seq, String::from_utf8_lossy(&b).into_owned()))
            })
            .collect();
        v.sort();
        let skip = v.len().saturating_sub(n);
        v.into_iter().skip(skip).map(|(_, s)| s).collect()
    }
}

/// Writes `text` into ring slot `seq`.
fn put(sh: &Shared, seq: u64, text: &str) {
    let slot = &sh.ring[(seq % RING as u64) as usize];
    slot.seq.store(0, Ordering::Release);
    let b = text.as_bytes();
    let n = b.len().min(SLOT_BYTES);
    for (i, &c) in b[..n].iter().enumerate() {
        slot.text[i].store(c, Ordering::Relaxed);
    }
    slot.len.store(n as u32, Ordering::Release);
    slot.seq.store(seq, Ordering::Release);
}

/// Records the operations of one process: the ring, the counts.
struct Rec {
    sh: &'static Shared,
    who: char,
    batch: u64,
    n: u64,
}

impl Rec {
    /// Runs operation `f`, described by `desc`, recording it and its outcome.
    fn op(
        &mut self,
        kind: usize,
        desc: String,
        f: impl FnOnce() -> Result<i64, i32>,
    ) -> Option<i64> {
        let seq = self.sh.seq.fetch_add(1, Ordering::SeqCst) + 1;
        let text = format!("{}{}.{} {desc}", self.who, self.batch, self.n);
        put(self.sh, seq, &text);
        let r = f();
        let outcome = match r {
            Ok(v) => format!("{text} -> {v}"),
            Err(e) => format!("{text} -> {}", errno_name(e)),
        };
        put(self.sh, seq, &outcome);
        self.sh.ops.fetch_add(1, Ordering::Relaxed);
        self.sh.kinds[kind][usize::from(r.is_err())].fetch_add(1, Ordering::Relaxed);
        self.n += 1;
        r.ok()
    }

    /// Counts `n` faults (garbage written into shared memory).
    fn fault(&self, n: u64) {
        self.sh.faults.fetch_add(n, Ordering::Relaxed);
    }
}

/// `data` for a description: escaped and cut.
fn show(data: &[u8]) -> String {
    let s: String = data
        .iter()
        .take(48)
        .flat_map(|&b| std::ascii::escape_default(b))
        .map(char::from)
        .collect();
    if data.len() > 48 {
        format!("\"{s}\"..(len {})", data.len())
    } else {
        format!("\"{s}\"")
    }
}

// ---------------------------------------------------------------------------
// Mappings, and SIGBUS on a revoked one.
// ---------------------------------------------------------------------------

/// A mapping of our own (unmapped on drop).
struct Map {
    ptr: *mut u8,
    len: usize,
}

impl Map {
    fn new(fd: i32, len: usize, prot: i32, flags: i32, off: i64) -> Result<Map, i32> {
        // SAFETY: a new mapping chosen by the kernel (never MAP_FIXED).
        let p = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, fd, off) };
        if p == libc::MAP_FAILED {
            Err(sys::errno())
        } else {
            Ok(Map { ptr: p.cast(), len })
        }
    }

    fn addr(&self) -> usize {
        self.ptr as usize
    }

    /// The `u32` at byte `off` as an atomic (`off` in bounds, 4-aligned).
    fn u32(&self, off: usize) -> &AtomicU32 {
        assert!(
            off % 4 == 0 && off + 4 <= self.len,
            "u32 outside the mapping"
        );
        // SAFETY: in bounds and aligned (checked); lives as long as `self`.
        unsafe { AtomicU32::from_ptr(self.ptr.add(off).cast()) }
    }

    /// The `u64` at byte `off` (read as two words: 4-aligned only).
    fn u64(&self, off: usize) -> u64 {
        u64::from(self.u32(off).load(Ordering::Acquire))
            | (u64::from(self.u32(off + 4).load(Ordering::Acquire)) << 32)
    }

    /// Writes `bytes` (1, 2, 4 or 8 of them) at byte `off`.
    fn write(&self, off: usize, bytes: &[u8]) {
        assert!(off + bytes.len() <= self.len, "write outside the mapping");
        for (i, &b) in bytes.iter().enumerate() {
            // SAFETY: in bounds (checked); the mapping is writable.
            unsafe { std::ptr::write_volatile(self.ptr.add(off + i), b) };
        }
    }
}

impl Drop for Map {
    fn drop(&mut self) {
        // SAFETY: our own mapping, unmapped once.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// The mappings of enclave memory of a fuzz process, for its SIGBUS
/// handler: `(start, len, NUL-terminated enclave directory)`.
static REVOCABLE: AtomicPtr<Vec<(usize, usize, Vec<u8>)>> = AtomicPtr::new(std::ptr::null_mut());

/// Installs the SIGBUS handler, knowing the mappings in `maps`: a fault in
/// one of them exits [`EXIT_REVOKED`] if its enclave is gone (destroyed:
/// the mapping was revoked), else [`EXIT_SIGBUS_LIVE`]; any other SIGBUS
/// kills the process as usual.
fn on_sigbus(maps: Vec<(usize, usize, u64)>) {
    let v: Vec<(usize, usize, Vec<u8>)> = maps
        .into_iter()
        .map(|(a, l, id)| {
            let mut d = format!("{GHOSTFS}/enclave_{id}").into_bytes();
            d.push(0);
            (a, l, d)
        })
        .collect();
    REVOCABLE.store(Box::into_raw(Box::new(v)), Ordering::SeqCst);
    // SAFETY: `sigaction` is plain data, filled in below.
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction =
        sigbus as extern "C" fn(i32, *mut libc::siginfo_t, *mut libc::c_void) as libc::sighandler_t;
    sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESETHAND;
    // SAFETY: a valid sigset and sigaction; the handler is
    // async-signal-safe (atomics, access, nanosleep, _exit).
    unsafe {
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut());
    }
}

extern "C" fn sigbus(_sig: i32, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO.
    let addr = unsafe { (*info).si_addr() } as usize;
    let p = REVOCABLE.load(Ordering::SeqCst);
    if p.is_null() {
        return;
    }
    // SAFETY: set once before the handler was installed, never freed.
    let maps = unsafe { &*p };
    for (start, len, dir) in maps {
        if addr >= *start && addr < start + len {
            // The directory goes with the destroy that revoked the
            // mapping; give it a moment.
            for _ in 0..200 {
                // SAFETY: a NUL-terminated path.
                if unsafe { libc::access(dir.as_ptr().cast(), libc::F_OK) } != 0 {
                    // SAFETY: ends the process.
                    unsafe { libc::_exit(EXIT_REVOKED) };
                }
                let ts = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 10_000_000,
                };
                // SAFETY: a valid timespec.
                unsafe { libc::nanosleep(&ts, std::ptr::null_mut()) };
            }
            // SAFETY: ends the process.
            unsafe { libc::_exit(EXIT_SIGBUS_LIVE) };
        }
    }
    // Not ours: SA_RESETHAND restored the default, the fault repeats.
}

// ---------------------------------------------------------------------------
// Small system helpers.
// ---------------------------------------------------------------------------

fn open(p: &str, flags: i32) -> Result<File, i32> {
    let c = std::ffi::CString::new(p).map_err(|_| libc::EINVAL)?;
    // SAFETY: a valid path.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        Err(sys::errno())
    } else {
        // SAFETY: a new descriptor, owned here.
        Ok(unsafe { File::from_raw_fd(fd) })
    }
}

/// One `write(2)` (or `pwrite` at `off`) of `data` to a fresh open of `p`.
fn write_file(p: &str, data: &[u8], off: Option<i64>) -> Result<i64, i32> {
    let f = open(p, libc::O_WRONLY)?;
    write_fd(f.as_raw_fd(), data, off)
}

fn write_fd(fd: i32, data: &[u8], off: Option<i64>) -> Result<i64, i32> {
    // SAFETY: `data` is valid for its length.
    let r = unsafe {
        match off {
            Some(o) => libc::pwrite(fd, data.as_ptr().cast(), data.len(), o),
            None => libc::write(fd, data.as_ptr().cast(), data.len()),
        }
    };
    if r < 0 {
        Err(sys::errno())
    } else {
        Ok(r as i64)
    }
}

/// `ghost_run` (syscall 463) with raw arguments.
fn ghost_run(a: [i64; 5]) -> Result<i64, i32> {
    // SAFETY: integer arguments only.
    let r = unsafe { libc::syscall(abi::NR_GHOST_RUN, a[0], a[1], a[2], a[3], a[4]) };
    if r < 0 {
        Err(sys::errno())
    } else {
        Ok(r)
    }
}

fn raw_ioctl(fd: i32, cmd: u64, arg: usize) -> Result<i64, i32> {
    // SAFETY: the kernel validates the argument (bad pointers are the
    // point); `arg` never points at memory we need intact.
    let r = unsafe { libc::ioctl(fd, cmd as libc::c_ulong, arg) };
    if r < 0 {
        Err(sys::errno())
    } else {
        Ok(i64::from(r))
    }
}

fn set_affinity(tid: i32, cpus: &[usize]) -> Result<i64, i32> {
    sys::set_affinity(tid, cpus).map(|()| 0)
}

fn set_policy(tid: i32, policy: i32) -> Result<i64, i32> {
    let p = libc::sched_param { sched_priority: 0 };
    // SAFETY: a valid parameter.
    if unsafe { libc::sched_setscheduler(tid, policy, &p) } != 0 {
        Err(sys::errno())
    } else {
        Ok(0)
    }
}

fn sleep_us(us: u64) {
    std::thread::sleep(Duration::from_micros(us));
}

/// Whether `fd` is open in this process.
fn fd_open(fd: i64) -> bool {
    i32::try_from(fd)
        // SAFETY: F_GETFD on any number is harmless.
        .is_ok_and(|fd| fd >= 0 && unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0)
}

/// `waitid(WNOWAIT)`: whether child `pid` has ended (not reaped).
fn ended(pid: i32) -> bool {
    // SAFETY: siginfo_t is plain data.
    let mut si: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: a valid out-pointer; our own child.
    let r = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut si,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    // SAFETY: filled in by waitid (zero if the child is still running).
    r == 0 && unsafe { si.si_pid() } == pid
}

/// Waits up to `ms` for child `pid`; `None` if it did not end.
fn wait_for_exit(pid: i32, ms: u64) -> Result<Option<Exit>, String> {
    let end = Instant::now() + Duration::from_millis(ms);
    loop {
        if ended(pid) {
            return sys::wait_child(pid).map(Some);
        }
        if Instant::now() > end {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits up to `ms` for child `pid`, else kills it; how it ended, and
/// whether it had to be killed. A child that does not die of `SIGKILL`
/// within 10 s is stuck in the kernel: an error naming where.
fn reap(pid: i32, ms: u64) -> Result<(Exit, bool), String> {
    if let Some(e) = wait_for_exit(pid, ms)? {
        return Ok((e, false));
    }
    // SAFETY: our own child.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    match wait_for_exit(pid, 10_000)? {
        Some(e) => Ok((e, true)),
        None => Err(format!(
            "process {pid} did not die of SIGKILL within 10 s: stuck in the kernel{}",
            where_stuck(pid)
        )),
    }
}

/// Where the threads of process `pid` are in the kernel (state, wchan,
/// stack), for a hang report.
fn where_stuck(pid: i32) -> String {
    let mut out = String::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let p = t.path();
        let read = |f: &str| std::fs::read_to_string(p.join(f)).unwrap_or_default();
        let state = read("status")
            .lines()
            .find(|l| l.starts_with("State:"))
            .unwrap_or("")
            .to_string();
        out += &format!(
            "\n      thread {}: {state}, wchan {}, stack:\n        {}",
            t.file_name().to_string_lossy(),
            read("wchan"),
            read("stack").trim().replace('\n', "\n        ")
        );
    }
    out
}

/// [`destroy_all_enclaves`] in a child, bounded: a destroy that does not
/// return within 30 s is a hang.
fn destroy_all_bounded() -> Result<(), String> {
    let pid = sys::fork_child(|| {
        child(|| match destroy_all_enclaves() {
            Ok(_) => 0,
            Err(e) => {
                eprintln!("fuzz: {e}");
                1
            }
        })
    })?;
    match wait_for_exit(pid, 30_000)? {
        Some(Exit::Code(0)) => Ok(()),
        Some(e) => Err(format!("destroying the enclaves failed ({e:?})")),
        None => Err(format!(
            "destroying the enclaves did not return within 30 s{}",
            where_stuck(pid)
        )),
    }
}

fn exists(id: u64) -> bool {
    std::path::Path::new(&format!("{GHOSTFS}/enclave_{id}")).exists()
}

/// The enclaves there are.
fn enclave_ids() -> Vec<u64> {
    std::fs::read_dir(GHOSTFS)
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_prefix("enclave_"))
                        .and_then(|n| n.parse().ok())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Threads of the system in the ghost class, as `tid (comm)`.
fn ghost_threads() -> Vec<String> {
    let mut v = Vec::new();
    for p in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        for t in std::fs::read_dir(p.path().join("task"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let Some(tid) = t.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            if sys::sched_policy(tid) == abi::SCHED_GHOST {
                let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
                v.push(format!("{tid} ({})", comm.trim()));
            }
        }
    }
    v
}

/// The kernel log's lines that look like a splat.
fn splats(log: &str) -> Vec<String> {
    const PATTERNS: [&str; 19] = [
        "WARNING:",
        "BUG:",
        "Oops",
        "Kernel panic",
        "general protection fault",
        "sleeping function called from invalid context",
        "possible recursive locking",
        "possible circular locking",
        "inconsistent lock state",
        "lock held when returning to user space",
        "suspicious RCU usage",
        "UBSAN:",
        "KASAN:",
        "list_add corruption",
        "list_del corruption",
        "rust_panic",
        "panicked at",
        "blocked for more than",
        "detected stalls",
    ];
    log.lines()
        .filter(|l| PATTERNS.iter().any(|p| l.contains(p)))
        .map(str::to_string)
        .collect()
}

// ---------------------------------------------------------------------------
// The workload and the bystander.
// ---------------------------------------------------------------------------

/// `THREADS` threads that join the stage and spin, sleep, yield, and now
/// and then leave ghost; a thread out of ghost joins again (at most every
/// 20 ms) until told to stop.
fn workload_main(sh: &'static Shared, seed: u64) -> i32 {
    let tasks = path(STAGE, "tasks");
    let threads: Vec<_> = (0..THREADS)
        .filter_map(|i| {
            let tasks = tasks.clone();
            std::thread::Builder::new()
                .stack_size(128 << 10)
                .spawn(move || {
                    let mut rng = Rng::new(seed ^ i as u64);
                    sh.tids[i].store(ghost::sys::gettid(), Ordering::SeqCst);
                    let mut last_join: Option<Instant> = None;
                    while sh.stop.load(Ordering::SeqCst) == 0 {
                        if sys::sched_policy(0) != abi::SCHED_GHOST
                            && last_join.map_or(true, |t| t.elapsed() > Duration::from_millis(20))
                        {
                            last_join = Some(Instant::now());
                            if sys::write_once(&tasks, b"0").is_ok() {
                                sh.in_ghost[i].store(1, Ordering::SeqCst);
                            }
                        }
                        let end = Instant::now() + Duration::from_micros(100 + rng.below(1400));
                        while Instant::now() < end {
                            std::hint::spin_loop();
                        }
                        sh.work[i].fetch_add(1, Ordering::SeqCst);
                        match rng.below(20) {
                            0..=11 => sleep_us(200 + rng.below(1300)),
                            12..=15 => std::thread::yield_now(),
                            16 => {
                                let _ = set_policy(0, libc::SCHED_OTHER);
                            }
                            _ => {}
                        }
                    }
                })
                .ok()
        })
        .collect();
    let n = threads.len();
    for t in threads {
        let _ = t.join();
    }
    i32::from(n != THREADS)
}

/// A CFS process that naps until told to stop (the fuzzer moves it into
/// enclaves).
fn bystander_main(sh: &'static Shared) -> i32 {
    while sh.stop.load(Ordering::SeqCst) == 0 {
        sh.bystander_work.fetch_add(1, Ordering::SeqCst);
        sleep_us(3000);
    }
    0
}

// ---------------------------------------------------------------------------
// Generators shared by both fuzz processes.
// ---------------------------------------------------------------------------

/// The 0/1 tunables and the other files of an enclave, by weight.
const ENCLAVE_FILES: [(&str, u32); 17] = [
    ("ctl", 8),
    ("tasks", 6),
    ("cpulist", 3),
    ("cpumask", 3),
    ("runnable_timeout", 2),
    ("agent_online", 2),
    ("status", 1),
    ("abi_version", 1),
    ("cpu_data", 1),
    ("commit_at_tick", 1),
    ("deliver_ticks", 1),
    ("deliver_cpu_availability", 1),
    ("deliver_agent_runnability", 1),
    ("wake_on_waker_cpu", 1),
    ("switchto_disabled", 1),
    ("live_dangerously", 1),
    ("sw_regions/sw_0", 1),
];

/// A number as text, sometimes in a form the parsers must refuse.
fn num_text(rng: &mut Rng, v: i64) -> String {
    match rng.below(12) {
        0 => format!("0{v}"),
        1 => format!("+{v}"),
        2 => format!("{v:#x}"),
        3 => format!(" {v}"),
        4 => format!("{v}0000000000000000000"),
        _ => v.to_string(),
    }
}

/// Mutates a command: numbers replaced, characters inserted, dropped or
/// changed, the newline dropped or doubled, a NUL, junk at the end.
fn mutate(rng: &mut Rng, s: &str) -> Vec<u8> {
    let mut out = s.to_string();
    for _ in 0..1 + rng.below(3) {
        match rng.below(8) {
            0..=2 => {
                // Replace one number.
                let toks: Vec<String> = out.split(' ').map(str::to_string).collect();
                let nums: Vec<usize> = toks
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| t.trim().chars().any(|c| c.is_ascii_digit()))
                    .map(|(i, _)| i)
                    .collect();
                if nums.is_empty() {
                    continue;
                }
                let i = rng.pick(&nums);
                let mut toks = toks;
                let nl = toks[i].ends_with('\n');
                let v = rng.int();
                toks[i] = num_text(rng, v) + if nl { "\n" } else { "" };
                out = toks.join(" ");
            }
            3 => {
                let at = rng.below(out.len() as u64 + 1) as usize;
                if out.is_char_boundary(at) {
                    out.insert(at, rng.pick(&[' ', 'x', '0', '-', '\n', '9', '\t', ',']));
                }
            }
            4 => {
                if !out.is_empty() {
                    let at = rng.below(out.len() as u64) as usize;
                    if out.is_char_boundary(at) && out.is_char_boundary(at + 1) {
                        out.remove(at);
                    }
                }
            }
            5 => {
                if out.ends_with('\n') {
                    out.pop();
                } else {
                    out.push('\n');
                    if rng.one_in(2) {
                        out.push('\n');
                    }
                }
            }
            6 => out.push_str(rng.pick(&[" x", " 1", "\0", " ephemeral", " gid=7", "\0junk"])),
            _ => out = out.to_uppercase(),
        }
    }
    out.into_bytes()
}

/// What the generators know of the world.
struct World {
    c1: usize,
    ncpus: usize,
    /// The workload's tids and the bystander's pid.
    tids: Vec<i32>,
    bystander: i32,
}

impl World {
    fn new(sh: &Shared, c1: usize, ncpus: usize) -> World {
        World {
            c1,
            ncpus,
            tids: sh
                .tids
                .iter()
                .map(|t| t.load(Ordering::SeqCst))
                .filter(|&t| t > 0)
                .collect(),
            bystander: sh.bystander.load(Ordering::SeqCst),
        }
    }

    /// A task id or gtid for `tasks`, `ASSOC_QUEUE`, transactions...: a
    /// live one, ours, or garbage.
    fn task_gtid(&self, rng: &mut Rng) -> i64 {
        match rng.below(10) {
            0..=4 if !self.tids.is_empty() => sys::gtid_of(rng.pick(&self.tids)),
            5 => sys::gtid_of(self.bystander),
            6 => sys::gtid_of(ghost::sys::gettid()),
            7 => rng.pick(&[0, -1, -2, -3, i64::MIN, i64::MAX]),
            8 if !self.tids.is_empty() => sys::gtid_of(rng.pick(&self.tids)) ^ (1 << rng.below(41)),
            _ => rng.int(),
        }
    }
}

/// A CPU number: ours, the other one, or garbage.
fn cpu_num(rng: &mut Rng, w: &World) -> i64 {
    match rng.below(8) {
        0..=2 => w.c1 as i64,
        3 | 4 => 0,
        5 => w.ncpus as i64,
        6 => rng.pick(&[-1, 63, 64, 1023, 1024, 4096, i64::from(i32::MAX)]),
        _ => rng.int(),
    }
}

/// A valid command for file `f` of enclave `id` (`None`: the root), as the
/// fuzzer would write it.
fn valid_cmd(rng: &mut Rng, w: &World, f: &str, id: Option<u64>) -> String {
    let nl = if rng.one_in(2) { "\n" } else { "" };
    let s = match (id, f) {
        (None, "ctl") => {
            let mut s = format!("create {} 91", 100 + rng.below(12));
            if rng.one_in(4) {
                s.push_str(" ephemeral");
            }
            if rng.one_in(4) {
                s.push_str(&format!(" gid={}", rng.below(5000)));
            }
            s
        }
        (_, "ctl") => match rng.below(10) {
            0 => "destroy".into(),
            1..=3 => "discover tasks".into(),
            4 => "disable my bpf_prog_load".into(),
            5..=7 => format!("create sw_region {} 0", rng.below(4)),
            _ => format!("become agent {} {NO_FD}", cpu_num(rng, w)),
        },
        // The stage keeps its agent's CPU but now and then: removing it
        // leaves the agent on a CPU of no enclave (see the module doc).
        (Some(STAGE), "cpulist") if !rng.one_in(10) => rng.pick(&[
            w.c1.to_string(),
            format!("0-{}", w.c1),
            format!("0,{}", w.c1),
        ]),
        (Some(STAGE), "cpumask") if !rng.one_in(10) => {
            rng.pick(&[format!("{:x}", 1 << w.c1), format!("{:x}", (2 << w.c1) - 1)])
        }
        (_, "cpulist") => rng
            .pick(&["", "0", "1", "0-1", "0,1", "1-1", "0-0"])
            .to_string(),
        (_, "cpumask") => rng.pick(&["0", "1", "2", "3"]).to_string(),
        (_, "tasks") => pick_task(rng, w, id == Some(STAGE)).to_string(),
        (_, "runnable_timeout") => rng.pick(&["5000", "3000", "0", "1", "200"]).to_string(),
        _ => rng.pick(&["0", "1"]).to_string(),
    };
    s + nl
}

/// A task for a `tasks` write: for the stage a workload thread, the
/// bystander, or (rarely) the writer itself; elsewhere the bystander; or
/// an id no task has.
fn pick_task(rng: &mut Rng, w: &World, stage: bool) -> i64 {
    match rng.below(12) {
        0..=3 if stage && !w.tids.is_empty() => i64::from(rng.pick(&w.tids)),
        4 | 5 => i64::from(w.bystander),
        6 if stage => 0,
        7 if stage && !w.tids.is_empty() => sys::gtid_of(rng.pick(&w.tids)),
        8 => sys::gtid_of(w.bystander),
        9 => 4_194_304 + rng.below(1 << 20) as i64,
        10 => (rng.below(1 << 22) as i64) << 41 | (1 + rng.below(1000) as i64),
        _ => i64::from(w.bystander),
    }
}

/// How the kernel parses a `tasks` write: the kernel crate's own parser
/// (`kstrtoll` grammar: hexadecimal, octal, a sign, a NUL ends the text),
/// then negative values are refused.
fn kernel_number(data: &[u8]) -> Option<u64> {
    u64::try_from(kparse::parse_signed(data).ok()?).ok()
}

/// Keeps a `tasks` write away from tasks that are not the fuzz's (the
/// parent, init, other processes...) and, outside the stage, from the
/// writer itself: such a write becomes one of the bystander.
fn tame_tasks(data: Vec<u8>, w: &World, stage: bool) -> Vec<u8> {
    let Some(v) = kernel_number(&data) else {
        return data;
    };
    let pid_like = v < (1 << 41) || v & ((1 << 41) - 1) == 0;
    let ours = v == u64::from(w.bystander as u32)
        || (stage && (v == 0 || w.tids.iter().any(|&t| v == u64::from(t as u32))));
    let pid = if v < (1 << 41) { v } else { v >> 41 };
    let alive = pid == 0 || std::path::Path::new(&format!("/proc/{pid}")).exists();
    if pid_like && !ours && alive {
        format!("{}\n", w.bystander).into_bytes()
    } else {
        data
    }
}

/// Keeps a `become agent` of the fuzzer from succeeding: a queue fd that
/// is -1 (the default queue) or open here becomes [`NO_FD`].
fn tame_become(data: Vec<u8>) -> Vec<u8> {
    let body = data.strip_suffix(b"\n").unwrap_or(&data);
    let Ok(s) = std::str::from_utf8(body) else {
        return data;
    };
    let Some(rest) = s.strip_prefix("become agent ") else {
        return data;
    };
    let toks: Vec<&str> = rest.split(' ').collect();
    let Some(&qfd) = toks.last() else {
        return data;
    };
    let neg = qfd.strip_prefix('-');
    let digits = neg.unwrap_or(qfd);
    let Ok(v) = digits.parse::<i64>() else {
        return data;
    };
    let v = if neg.is_some() { -v } else { v };
    if !digits.bytes().all(|b| b.is_ascii_digit()) || (v != -1 && !fd_open(v)) {
        return data;
    }
    format!(
        "become agent {} {NO_FD}\n",
        toks[..toks.len() - 1].join(" ")
    )
    .into_bytes()
}

/// The stage's `runnable_timeout` keeps its watchdog armed (5 s): only
/// values the file refuses, or large ones.
fn tame_timeout(rng: &mut Rng, data: Vec<u8>) -> Vec<u8> {
    match kernel_number(&data) {
        Some(v) if v < 3000 => rng
            .pick(&[
                &b"5000"[..],
                b"3000\n",
                b"-1",
                b"1.5",
                b"0x10",
                b"99999999999999999999",
            ])
            .to_vec(),
        _ => data,
    }
}

/// An ioctl command: a real one, one with its size or direction bits
/// changed, another number of type 'g', or anything.
fn ioctl_cmd(rng: &mut Rng) -> u64 {
    const REAL: [u64; 12] = [
        abi::GHOST_IOC_NULL,
        abi::GHOST_IOC_SW_GET_INFO,
        abi::GHOST_IOC_SW_FREE,
        abi::GHOST_IOC_CREATE_QUEUE,
        abi::GHOST_IOC_ASSOC_QUEUE,
        abi::GHOST_IOC_SET_DEFAULT_QUEUE,
        abi::GHOST_IOC_CONFIG_QUEUE_WAKEUP,
        abi::GHOST_IOC_GET_CPU_TIME,
        abi::GHOST_IOC_COMMIT_TXN,
        abi::GHOST_IOC_SYNC_GROUP_TXN,
        abi::GHOST_IOC_TIMERFD_SETTIME,
        abi::GHOST_IOC_RUN,
    ];
    let real = rng.pick(&REAL);
    match rng.below(10) {
        0..=4 => real,
        5 => (real & !(0x3fff << 16)) | (rng.below(1 << 14) << 16),
        6 => (real & !(3 << 30)) | (rng.below(4) << 30),
        7 => (rng.below(4) << 30) | (rng.below(64) << 16) | (u64::from(b'g') << 8) | rng.below(32),
        8 => real | (rng.next() << 32),
        _ => rng.next() & 0xffff_ffff,
    }
}

/// Bytes for a well-formed argument of ioctl `nr` with random fields.
fn ioctl_struct(rng: &mut Rng, w: &World, nr: u64, fds: &[i32], buf_addr: usize) -> Vec<u8> {
    let mut b = vec![0u8; 64];
    fn p32(b: &mut [u8], off: usize, v: i64) {
        b[off..off + 4].copy_from_slice(&(v as i32).to_ne_bytes());
    }
    fn p64(b: &mut [u8], off: usize, v: i64) {
        b[off..off + 8].copy_from_slice(&v.to_ne_bytes());
    }
    let fd = |rng: &mut Rng| -> i64 {
        if !fds.is_empty() && rng.below(3) != 0 {
            i64::from(rng.pick(fds))
        } else {
            rng.pick(&[-1, 0, 1, 2, 1000, i64::from(i32::MAX), i64::from(i32::MIN)])
        }
    };
    match nr {
        1 => {
            p32(&mut b, 0, rng.pick(&[0, 1, 2, -1]));
            let arg = if rng.one_in(2) {
                cpu_num(rng, w)
            } else {
                w.task_gtid(rng)
            };
            p64(&mut b, 8, arg);
        }
        2 => {
            p32(&mut b, 0, rng.pick(&[0, 0, 1, 63, 64, -1]));
            p32(
                &mut b,
                4,
                rng.pick(&[0, 1, 2, 5, 100, 65533, 65534, 65535, -1]),
            );
        }
        3 => {
            // Big queues only now and then: the enclave keeps them all.
            let elems = if rng.one_in(16) {
                rng.pick(&[1, 2, 4, 64, 4096, 65536])
            } else {
                rng.pick(&[0, 3, -1, 131_072, i64::from(i32::MIN), 65537, 100])
            };
            p32(&mut b, 0, elems);
            p32(&mut b, 4, rng.pick(&[-1, 0, 1, -2, 4000]));
            p32(&mut b, 8, rng.pick(&[0, 0, 1, -1]));
            p64(&mut b, 16, rng.int());
        }
        4 => {
            p32(&mut b, 0, fd(rng));
            p32(&mut b, 8, rng.pick(&[1, 1, 0, 2, -1]));
            p64(&mut b, 16, w.task_gtid(rng));
            p32(&mut b, 24, rng.int());
            p32(&mut b, 28, rng.pick(&[0, 0, 1, -1]));
        }
        5 => p32(&mut b, 0, fd(rng)),
        6 => {
            p32(&mut b, 0, fd(rng));
            // The wakeup array: in the buffer itself (at byte 32), or not.
            let wp = if rng.below(3) != 0 {
                (buf_addr + 32) as i64
            } else {
                rng.pick(&[0, 1, -1, 0x1000, 0xffff_8880_0000_0000u64 as i64])
            };
            p64(&mut b, 8, wp);
            p32(&mut b, 16, rng.pick(&[0, 1, 2, 3, -1, 1000]));
            p32(&mut b, 20, rng.pick(&[0, 0, 1]));
            for k in 0..3 {
                p32(&mut b, 32 + 8 * k, cpu_num(rng, w));
                p32(&mut b, 36 + 8 * k, rng.pick(&[0, 0, 1, -1]));
            }
        }
        7 => p64(&mut b, 0, w.task_gtid(rng)),
        8 | 9 => {
            // The mask: in the buffer (at byte 32), or not.
            let mp = if rng.below(3) != 0 {
                (buf_addr + 32) as i64
            } else {
                rng.pick(&[0, 1, -1, 0x1000, 0xffff_ffff_ffff_f000u64 as i64])
            };
            p64(&mut b, 0, mp);
            p32(&mut b, 8, rng.pick(&[0, 1, 8, 128, 1024, 1025, 4096, -1]));
            p32(&mut b, 12, rng.pick(&[0, 0, 0, 1, -1]));
            b[32] = rng.next() as u8;
        }
        11 => {
            p64(&mut b, 0, rng.pick(&[0, 0, -1, -2, 5]));
            p32(&mut b, 8, rng.int());
            p32(&mut b, 12, rng.int());
            p32(&mut b, 16, cpu_num(rng, w));
            p32(&mut b, 20, rng.pick(&[0, 0, 32, 1, -1]));
        }
        _ => {
            for x in &mut b {
                *x = rng.next() as u8;
            }
        }
    }
    b
}

/// A scratch area for ioctl arguments: two pages, then a `PROT_NONE` page
/// (an argument can straddle into it), and the address of a page that is
/// not mapped.
struct Arena {
    map: Map,
    unmapped: usize,
}

impl Arena {
    fn new() -> Result<Arena, i32> {
        let map = Map::new(
            -1,
            3 * 4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            0,
        )?;
        // SAFETY: the last page of our own mapping.
        unsafe { libc::mprotect(map.ptr.add(2 * 4096).cast(), 4096, libc::PROT_NONE) };
        let gone = Map::new(
            -1,
            4096,
            libc::PROT_READ,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            0,
        )?;
        let unmapped = gone.addr();
        drop(gone);
        Ok(Arena { map, unmapped })
    }

    /// An argument for ioctl `cmd`: a description and the address.
    fn arg(&self, rng: &mut Rng, w: &World, cmd: u64, fds: &[i32]) -> (String, usize) {
        let base = self.map.addr();
        match rng.below(16) {
            0 => ("NULL".into(), 0),
            1 => ("unmapped".into(), self.unmapped + rng.below(64) as usize),
            2 => {
                let a = rng.pick(&[
                    0xffff_8880_0000_0000usize,
                    0xffff_ffff_8100_0000,
                    0xffff_ffff_ffff_f000,
                    usize::MAX - 7,
                    0x8000_0000_0000_0000,
                    0x0000_7fff_ffff_f000,
                    1,
                    0x1000,
                ]);
                (format!("{a:#x}"), a)
            }
            3 | 4 => {
                // Straddling into the PROT_NONE page.
                let size = (((cmd >> 16) & 0x3fff) as usize).clamp(1, 4096);
                let back = 1 + rng.below(size as u64) as usize;
                let at = base + 2 * 4096 - back;
                for i in 0..back {
                    self.map.write(2 * 4096 - back + i, &[rng.next() as u8]);
                }
                (format!("straddle-{back}"), at)
            }
            5 | 6 => {
                let mis = 1 + rng.below(7) as usize;
                let s = ioctl_struct(rng, w, cmd & 0xff, fds, base + mis);
                self.map.write(mis, &s);
                (format!("misaligned+{mis} {}", hex(&s[..24])), base + mis)
            }
            7 => {
                for i in 0..64 {
                    self.map.write(i, &[rng.next() as u8]);
                }
                ("random".into(), base)
            }
            _ => {
                let s = ioctl_struct(rng, w, cmd & 0xff, fds, base);
                self.map.write(0, &s);
                (format!("struct {}", hex(&s[..32])), base)
            }
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.chunks(4)
        .map(|c| c.iter().map(|x| format!("{x:02x}")).collect::<String>())
        .collect::<Vec<_>>()
        .join(".")
}

/// Random `ghost_run` arguments (gtid, agent barrier, task barrier, CPU,
/// flags), some of them plausible.
fn run_args(rng: &mut Rng, w: &World, barrier: u32) -> [i64; 5] {
    let b = match rng.below(4) {
        0 | 1 => i64::from(barrier),
        2 => i64::from(barrier.wrapping_sub(1)),
        _ => rng.int(),
    };
    let gtid = if rng.one_in(5) {
        rng.int()
    } else {
        rng.pick(&[0, 0, 0, -1, -1, -2, 1, i64::MIN])
    };
    [
        gtid,
        b,
        rng.int(),
        cpu_num(rng, w),
        rng.pick(&[0, 0, 0, 32, 1, 2, 4, 0x1000, -1, 1 << 31]),
    ]
}

// ---------------------------------------------------------------------------
// The fuzzer (no agent).
// ---------------------------------------------------------------------------

/// The fuzzer's view: open files, mappings, what it created.
struct Fuzzer {
    rng: Rng,
    rec: Rec,
    w: World,
    stage_ctl: File,
    stage_ro: File,
    other_fds: Vec<File>,
    cpu_data: Option<Map>,
    _sw: Option<Map>,
    arena: Arena,
    /// Queues it made, mapped; how many of them were big.
    queues: Vec<(File, Option<Map>)>,
    /// Enclaves it (or its writes) made.
    enclaves: Vec<u64>,
    /// Files it holds open (`agent_online` claims among them).
    held: Vec<File>,
    sw_regions: u32,
}

fn fuzzer_main(sh: &'static Shared, seed: u64, batch: u64, nops: u64, c1: usize) -> i32 {
    let ncpus = nr_cpu_ids().unwrap_or(c1 + 1);
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    let (Ok(stage_ctl), Ok(stage_ro), Ok(cd), Ok(swf), Ok(arena)) = (
        open(&path(STAGE, "ctl"), libc::O_RDWR),
        open(&path(STAGE, "ctl"), libc::O_RDONLY),
        open(&path(STAGE, "cpu_data"), libc::O_RDWR),
        open(&path(STAGE, "sw_regions/sw_0"), libc::O_RDONLY),
        Arena::new(),
    ) else {
        return 10;
    };
    let cpu_data = Map::new(cd.as_raw_fd(), 4096 * ncpus, rw, libc::MAP_SHARED, 0).ok();
    let sw = Map::new(
        swf.as_raw_fd(),
        2 << 20,
        libc::PROT_READ,
        libc::MAP_SHARED,
        0,
    )
    .ok();
    let mut maps = Vec::new();
    for m in [&cpu_data, &sw].into_iter().flatten() {
        maps.push((m.addr(), m.len, STAGE));
    }
    on_sigbus(maps);
    let mut other_fds = vec![cd, swf];
    for f in ["status", "tasks", "cpulist"] {
        if let Ok(fd) = open(&path(STAGE, f), libc::O_RDONLY) {
            other_fds.push(fd);
        }
    }
    if let Ok(fd) = open(&format!("{GHOSTFS}/ctl"), libc::O_RDWR) {
        other_fds.push(fd);
    }
    let mut f = Fuzzer {
        rng: Rng::new(seed),
        rec: Rec {
            sh,
            who: 'F',
            batch,
            n: 0,
        },
        w: World::new(sh, c1, ncpus),
        stage_ctl,
        stage_ro,
        other_fds,
        cpu_data,
        _sw: sw,
        arena,
        queues: Vec::new(),
        enclaves: Vec::new(),
        held: Vec::new(),
        sw_regions: 0,
    };
    const WEIGHTS: [u32; 8] = [40, 4, 22, 5, 5, 8, 8, 8];
    for _ in 0..nops {
        match f.rng.weighted(&WEIGHTS) {
            0 => f.op_write(),
            1 => f.op_read(),
            2 => f.op_ioctl(),
            3 => f.op_run(),
            4 => f.op_mmap(),
            5 => f.op_scribble(),
            6 => f.op_enclave(),
            _ => f.op_sched(),
        }
    }
    // Out of ghost again, if a write put the fuzzer there.
    if sys::sched_policy(0) == abi::SCHED_GHOST {
        let _ = set_policy(0, libc::SCHED_OTHER);
    }
    0
}

impl Fuzzer {
    /// A target file: `(path, file name, enclave)` (`None`: the root).
    fn target(&mut self) -> (String, &'static str, Option<u64>) {
        let r = self.rng.below(20);
        if r < 2 {
            let f = if self.rng.one_in(8) { "version" } else { "ctl" };
            return (format!("{GHOSTFS}/{f}"), f, None);
        }
        let id = if r < 8 && !self.enclaves.is_empty() {
            self.rng.pick(&self.enclaves)
        } else if r == 8 {
            self.rng.pick(&[STAGE, 99, 0, 1000])
        } else {
            STAGE
        };
        let weights: Vec<u32> = ENCLAVE_FILES.iter().map(|f| f.1).collect();
        let f = ENCLAVE_FILES[self.rng.weighted(&weights)].0;
        (path(id, f), f, Some(id))
    }

    /// Newly seen enclaves get a watchdog (5 s), so that a task stuck in
    /// one without an agent cannot stall RCU.
    fn learn_enclaves(&mut self) {
        for id in enclave_ids() {
            if id != STAGE && !self.enclaves.contains(&id) {
                self.enclaves.push(id);
                let _ = write_file(&path(id, "runnable_timeout"), b"5000", None);
            }
        }
        self.enclaves.retain(|&id| exists(id));
    }

    fn op_write(&mut self) {
        let (p, f, id) = self.target();
        let mode = self.rng.below(100);
        let mut data = if mode < 25 {
            self.rng.bytes()
        } else {
            let v = valid_cmd(&mut self.rng, &self.w, f, id);
            if mode < 60 {
                mutate(&mut self.rng, &v)
            } else {
                v.into_bytes()
            }
        };
        let stage = id == Some(STAGE);
        match f {
            "tasks" => data = tame_tasks(data, &self.w, stage),
            "ctl" => {
                data = tame_become(data);
                // The stage is destroyed only now and then: that ends the
                // batch's scheduling.
                if stage && data.starts_with(b"destroy") && !self.rng.one_in(10) {
                    data = b"discover tasks".to_vec();
                }
                if id.is_some() && data.starts_with(b"create sw_region") {
                    self.sw_regions += 1;
                    if self.sw_regions > 12 {
                        data = b"create sw_region 0 0".to_vec();
                    }
                }
            }
            "runnable_timeout" if stage => data = tame_timeout(&mut self.rng, data),
            _ => {}
        }
        let off = if self.rng.one_in(10) {
            Some(self.rng.pick(&[0, 1, 7, 4096, -1, 1 << 40]))
        } else {
            None
        };
        let desc = format!(
            "write {p} {}{}",
            show(&data),
            off.map_or(String::new(), |o| format!(" @{o}"))
        );
        let r = self.rec.op(K_WRITE, desc, || write_file(&p, &data, off));
        if r.is_some() && f == "tasks" {
            if kernel_number(&data) == Some(0) {
                self.rec.sh.moved.fetch_or(2, Ordering::SeqCst);
            } else {
                self.rec.sh.moved.fetch_or(1, Ordering::SeqCst);
            }
        }
        if r.is_some() && f == "ctl" {
            self.learn_enclaves();
        }
    }

    fn op_read(&mut self) {
        let (p, _, _) = self.target();
        let len = self.rng.pick(&[0usize, 1, 16, 4096, 8192]);
        let off = self.rng.pick(&[0i64, 0, 1, 4096, 1 << 30]);
        self.rec.op(K_READ, format!("pread {p} {len}@{off}"), || {
            let f = open(&p, libc::O_RDONLY)?;
            let mut buf = vec![0u8; len];
            // SAFETY: `buf` is valid for `len` bytes.
            let r = unsafe { libc::pread(f.as_raw_fd(), buf.as_mut_ptr().cast(), len, off) };
            if r < 0 {
                Err(sys::errno())
            } else {
                Ok(r as i64)
            }
        });
    }

    /// The fds an ioctl may go to: `(name, fd)`.
    fn ioctl_fds(&mut self) -> Vec<(String, i32)> {
        let mut v = vec![
            ("stage ctl".to_string(), self.stage_ctl.as_raw_fd()),
            ("stage ctl ro".to_string(), self.stage_ro.as_raw_fd()),
        ];
        for (i, f) in self.other_fds.iter().enumerate() {
            v.push((format!("fd{i}"), f.as_raw_fd()));
        }
        for (i, q) in self.queues.iter().enumerate() {
            v.push((format!("queue{i}"), q.0.as_raw_fd()));
        }
        v.push(("bad fd".into(), 999));
        v
    }

    fn op_ioctl(&mut self) {
        // Sometimes the ctl of another enclave.
        let other = if !self.enclaves.is_empty() && self.rng.one_in(5) {
            let id = self.rng.pick(&self.enclaves);
            open(&path(id, "ctl"), libc::O_RDWR).ok().map(|f| (id, f))
        } else {
            None
        };
        let fds = self.ioctl_fds();
        let (name, fd) = match &other {
            Some((id, f)) if self.rng.one_in(2) => (format!("enclave_{id} ctl"), f.as_raw_fd()),
            _ => {
                // The stage's ctl most of the time.
                let i = if self.rng.one_in(2) {
                    0
                } else {
                    self.rng.below(fds.len() as u64) as usize
                };
                fds[i].clone()
            }
        };
        let qfds: Vec<i32> = self
            .queues
            .iter()
            .map(|q| q.0.as_raw_fd())
            .chain([self.stage_ctl.as_raw_fd()])
            .collect();
        let cmd = ioctl_cmd(&mut self.rng);
        let (adesc, arg) = self.arena.arg(&mut self.rng, &self.w, cmd, &qfds);
        let creates = cmd == abi::GHOST_IOC_CREATE_QUEUE;
        let r = self
            .rec
            .op(K_IOCTL, format!("ioctl {name} {cmd:#x} {adesc}"), || {
                raw_ioctl(fd, cmd, arg)
            });
        if let (true, Some(qfd)) = (creates, r) {
            // A new queue: keep it (mapped, for garbage) if it is ours.
            if let Ok(qfd) = i32::try_from(qfd) {
                if qfd > 2 {
                    // SAFETY: the kernel returned a new descriptor.
                    let q = unsafe { File::from_raw_fd(qfd) };
                    let size = self.arena.map.u64(16) as usize;
                    let m = (size > 0 && size <= 1 << 20 && arg == self.arena.map.addr())
                        .then(|| {
                            Map::new(
                                qfd,
                                size,
                                libc::PROT_READ | libc::PROT_WRITE,
                                libc::MAP_SHARED,
                                0,
                            )
                            .ok()
                        })
                        .flatten();
                    self.queues.push((q, m));
                }
            }
        }
    }

    fn op_run(&mut self) {
        let b = self.rng.next() as u32;
        let a = run_args(&mut self.rng, &self.w, b);
        self.rec
            .op(K_RUN, format!("ghost_run {a:?} (no agent)"), || {
                ghost_run(a)
            });
    }

    fn op_mmap(&mut self) {
        let fds = self.ioctl_fds();
        let (name, fd) = fds[self.rng.below(fds.len() as u64) as usize].clone();
        let len = self.rng.pick(&[
            0usize,
            4096,
            8192,
            4096 * self.w.ncpus,
            2 << 20,
            1 << 30,
            4097,
        ]);
        let prot = self.rng.pick(&[
            libc::PROT_READ,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::PROT_READ | libc::PROT_EXEC,
            libc::PROT_NONE,
            libc::PROT_WRITE,
        ]);
        let flags = self.rng.pick(&[
            libc::MAP_SHARED,
            libc::MAP_PRIVATE,
            libc::MAP_SHARED_VALIDATE,
            libc::MAP_SHARED | libc::MAP_POPULATE,
            libc::MAP_PRIVATE | libc::MAP_POPULATE,
        ]);
        let off = self.rng.pick(&[0i64, 0, 4096, 8192, -4096, 1 << 40]);
        let mprotect = self.rng.one_in(3);
        self.rec.op(
            K_MMAP,
            format!("mmap {name} len {len} prot {prot} flags {flags:#x} off {off} then mprotect {mprotect}"),
            || {
                let m = Map::new(fd, len, prot, flags, off)?;
                if mprotect {
                    // SAFETY: our own fresh mapping.
                    let r = unsafe {
                        libc::mprotect(
                            m.ptr.cast(),
                            m.len,
                            libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
                        )
                    };
                    if r != 0 {
                        return Err(sys::errno());
                    }
                }
                Ok(m.len as i64)
            },
        );
    }

    /// Garbage into the stage's transactions (while its agent uses them) or
    /// into the header of a queue of ours.
    fn op_scribble(&mut self) {
        if self.rng.one_in(3) && !self.queues.is_empty() {
            let i = self.rng.below(self.queues.len() as u64) as usize;
            let Some(m) = &self.queues[i].1 else {
                return;
            };
            let off = self.rng.pick(&[0usize, 4, 8, 12, 64, 68, 72]);
            let v = self.rng.int() as u32;
            self.rec.fault(1);
            self.rec.op(
                K_SCRIBBLE,
                format!("queue{i} header +{off} = {v:#x}"),
                || {
                    m.u32(off).store(v, Ordering::Release);
                    Ok(0)
                },
            );
            return;
        }
        let Some(m) = &self.cpu_data else {
            return;
        };
        let cpu = self.rng.below(self.w.ncpus as u64) as usize;
        let (off, size) = self.rng.pick(&TXN_FIELDS);
        let v = if off == 8 && self.rng.one_in(2) {
            i64::from(abi::GHOST_TXN_READY)
        } else {
            self.rng.int()
        };
        self.rec.fault(1);
        self.rec.op(
            K_SCRIBBLE,
            format!("cpu_data txn{cpu} +{off} = {v:#x}"),
            || {
                m.write(cpu * 4096 + off, &v.to_ne_bytes()[..size]);
                Ok(0)
            },
        );
    }

    /// Create a fuzz enclave (valid), set it up a little, or destroy one;
    /// take and drop an `agent_online` claim.
    fn op_enclave(&mut self) {
        match self.rng.below(6) {
            0 | 1 if self.enclaves.len() < 6 => {
                let id = 100 + self.rng.below(12);
                let eph = if self.rng.one_in(3) { " ephemeral" } else { "" };
                let cmd = format!("create {id} 91{eph}");
                let r = self.rec.op(K_ENCLAVE, cmd.clone(), || {
                    write_file(&format!("{GHOSTFS}/ctl"), cmd.as_bytes(), None)
                });
                if r.is_some() {
                    self.learn_enclaves();
                }
            }
            2 if !self.enclaves.is_empty() => {
                let id = self.rng.pick(&self.enclaves);
                let cmd = self
                    .rng
                    .pick(&["create sw_region 0 0", "cpulist 0", "tunables"]);
                self.rec
                    .op(K_ENCLAVE, format!("enclave_{id} {cmd}"), || match cmd {
                        "cpulist 0" => write_file(&path(id, "cpulist"), b"0", None),
                        "tunables" => write_file(&path(id, "deliver_ticks"), b"1", None),
                        _ => write_file(&path(id, "ctl"), cmd.as_bytes(), None),
                    });
            }
            3 if !self.enclaves.is_empty() => {
                let id = self.rng.pick(&self.enclaves);
                self.rec.op(K_ENCLAVE, format!("destroy enclave_{id}"), || {
                    write_file(&path(id, "ctl"), b"destroy", None)
                });
                self.learn_enclaves();
            }
            4 => {
                let id = if self.enclaves.is_empty() || self.rng.one_in(2) {
                    STAGE
                } else {
                    self.rng.pick(&self.enclaves)
                };
                let p = path(id, "agent_online");
                let r = self.rec.op(K_ENCLAVE, format!("claim {p}"), || {
                    open(&p, libc::O_RDWR).map(|f| {
                        let fd = f.as_raw_fd();
                        self.held.push(f);
                        i64::from(fd)
                    })
                });
                if r.is_none() && !self.held.is_empty() {
                    self.held.remove(0);
                }
            }
            _ => {
                let n = self.held.len();
                self.rec.op(K_ENCLAVE, format!("close {n} held files"), || {
                    self.held.clear();
                    Ok(n as i64)
                });
            }
        }
    }

    /// Scheduler calls on the live tasks: policy, affinity (restored after a
    /// moment), nice.
    fn op_sched(&mut self) {
        let mut pool = self.w.tids.clone();
        pool.push(self.w.bystander);
        if self.rec.sh.moved.load(Ordering::SeqCst) & 2 != 0 {
            pool.push(0);
        }
        let tid = self.rng.pick(&pool);
        let all: Vec<usize> = (0..self.w.ncpus).collect();
        match self.rng.below(5) {
            0 => {
                let pol = self.rng.pick(&[
                    libc::SCHED_OTHER,
                    libc::SCHED_BATCH,
                    libc::SCHED_IDLE,
                    abi::SCHED_GHOST,
                    abi::SCHED_GHOST | libc::SCHED_RESET_ON_FORK,
                    77,
                ]);
                self.rec
                    .op(K_SCHED, format!("setscheduler {tid} {pol}"), || {
                        set_policy(tid, pol)
                    });
            }
            1 | 2 => {
                let cpus: Vec<usize> = match self.rng.below(3) {
                    0 => vec![0],
                    1 => vec![self.w.c1],
                    _ => all.clone(),
                };
                let us = self.rng.below(5000);
                self.rec.op(
                    K_SCHED,
                    format!("setaffinity {tid} {cpus:?} for {us} us"),
                    || {
                        let r = set_affinity(tid, &cpus);
                        sleep_us(us);
                        let _ = set_affinity(tid, &all);
                        r
                    },
                );
            }
            3 => {
                let nice = self.rng.below(30) as i32 - 10;
                self.rec
                    .op(K_SCHED, format!("setpriority {tid} {nice}"), || {
                        // SAFETY: plain syscall.
                        if unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as u32, nice) } != 0 {
                            Err(sys::errno())
                        } else {
                            Ok(0)
                        }
                    });
            }
            _ => {
                let gtid = self.w.task_gtid(&mut self.rng);
                let mut a = abi::GhostIocGetCpuTime { gtid, runtime: 0 };
                let fd = self.stage_ctl.as_raw_fd();
                self.rec.op(K_SCHED, format!("GET_CPU_TIME {gtid:#x}"), || {
                    raw_ioctl(fd, abi::GHOST_IOC_GET_CPU_TIME, (&raw mut a) as usize)
                });
            }
        }
    }
}

/// Fields of a transaction: `(offset, size)`.
const TXN_FIELDS: [(usize, usize); 12] = [
    (0, 4),  // version
    (4, 4),  // cpu
    (8, 4),  // state
    (12, 4), // agent_barrier
    (16, 4), // task_barrier
    (20, 2), // run_flags
    (22, 1), // commit_flags
    (23, 1), // unused
    (24, 8), // gtid
    (32, 8), // commit_time
    (40, 8), // cpu_seqnum
    (48, 4), // sync_group_owner
];

// ---------------------------------------------------------------------------
// The agent.
// ---------------------------------------------------------------------------

/// A queue the agent drains: its file, mapping, slots.
struct Queue {
    file: File,
    map: Map,
    nelems: u32,
}

impl Queue {
    /// Reads every message; a `tail` that cannot be right (garbage) is
    /// set to `head`. Returns the messages read.
    fn drain(&self) -> u32 {
        let mut n = 0;
        for _ in 0..4 * self.nelems {
            let head = self.map.u32(64).load(Ordering::Acquire);
            let tail_a = self.map.u32(68);
            let tail = tail_a.load(Ordering::Relaxed);
            if head == tail {
                break;
            }
            if head.wrapping_sub(tail) > self.nelems {
                tail_a.store(head, Ordering::Release);
                break;
            }
            let slot = (tail & (self.nelems - 1)) as usize;
            let word0 = self.map.u32(76 + slot * 8).load(Ordering::Acquire);
            let len = (word0 >> 16) as usize;
            let slots = len.div_ceil(8).max(1) as u32;
            tail_a.store(tail.wrapping_add(slots), Ordering::Release);
            n += 1;
        }
        n
    }
}

/// A pending restore of a queue header after garbage: `(queue 0/1,
/// iteration, [(offset, garbage, saved)])`.
type Restore = (usize, u64, Vec<(usize, u32, u32)>);

struct Agent {
    rng: Rng,
    rec: Rec,
    w: World,
    cpu: usize,
    ctl: File,
    /// Files opened before becoming an agent (an agent may not open them).
    files: Vec<(String, File)>,
    queues: Vec<Queue>,
    cpu_data: Map,
    sw: Map,
    /// The agent's status word; its own gtid.
    me: u32,
    my_gtid: i64,
    arena: Arena,
    restore: Option<Restore>,
    /// Runnable tasks seen by the last scan: `(gtid, barrier)`.
    runnable: Vec<(i64, u32)>,
    /// Live tasks by status-word index.
    live: Vec<(u32, i64, u32)>,
    next: usize,
    scribble: &'static AtomicU32,
}

fn agent_main(sh: &'static Shared, seed: u64, batch: u64, nops: u64, c1: usize) -> i32 {
    let err = |e: i32| {
        sh.agent_err.store(e, Ordering::SeqCst);
        1
    };
    let ncpus = nr_cpu_ids().unwrap_or(c1 + 1);
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    let Ok(ctl) = open(&path(STAGE, "ctl"), libc::O_RDWR) else {
        return err(-1);
    };
    let Ok((qf, size)) = crate::harness::create_queue(&ctl, 256, -1, 0) else {
        return err(-2);
    };
    let Ok(qmap) = Map::new(qf.as_raw_fd(), size as usize, rw, libc::MAP_SHARED, 0) else {
        return err(-3);
    };
    let mut dq = abi::GhostIocSetDefaultQueue { fd: qf.as_raw_fd() };
    let mut wk = [abi::GhostAgentWakeup {
        cpu: c1 as i32,
        prio: 0,
    }];
    let mut cw = abi::GhostIocConfigQueueWakeup {
        qfd: qf.as_raw_fd(),
        w: wk.as_mut_ptr() as u64,
        ninfo: 1,
        flags: 0,
    };
    if ioctl(&ctl, abi::GHOST_IOC_SET_DEFAULT_QUEUE, (&raw mut dq).cast()).is_err()
        || ioctl(
            &ctl,
            abi::GHOST_IOC_CONFIG_QUEUE_WAKEUP,
            (&raw mut cw).cast(),
        )
        .is_err()
    {
        return err(-4);
    }
    let (Ok(cdf), Ok(swf)) = (
        open(&path(STAGE, "cpu_data"), libc::O_RDWR),
        open(&path(STAGE, "sw_regions/sw_0"), libc::O_RDONLY),
    ) else {
        return err(-5);
    };
    let (Ok(cpu_data), Ok(sw), Ok(arena)) = (
        Map::new(cdf.as_raw_fd(), 4096 * ncpus, rw, libc::MAP_SHARED, 0),
        Map::new(
            swf.as_raw_fd(),
            2 << 20,
            libc::PROT_READ,
            libc::MAP_SHARED,
            0,
        ),
        Arena::new(),
    ) else {
        return err(-6);
    };
    on_sigbus(vec![
        (cpu_data.addr(), cpu_data.len, STAGE),
        (sw.addr(), sw.len, STAGE),
    ]);
    let mut files = Vec::new();
    for f in [
        "ctl",
        "cpulist",
        "cpumask",
        "tasks",
        "deliver_ticks",
        "commit_at_tick",
        "live_dangerously",
        "wake_on_waker_cpu",
        "runnable_timeout",
    ] {
        if let Ok(fd) = open(&path(STAGE, f), libc::O_RDWR) {
            files.push((f.to_string(), fd));
        }
    }
    if let Ok(fd) = open(&format!("{GHOSTFS}/ctl"), libc::O_RDWR) {
        files.push(("root ctl".into(), fd));
    }
    files.push(("cpu_data".into(), cdf));
    let my_gtid = sys::gtid_of(ghost::sys::gettid());
    // The helper: nudges the agent (a signal ends its wait) when it made no
    // progress for 30 ms, and scribbles on transactions on request.
    let _ = ghost::sys::install_wake_handler(libc::SIGUSR1);
    static SCRIBBLE: AtomicU32 = AtomicU32::new(0);
    let cd_addr = cpu_data.addr();
    let hseed = seed ^ 0x5151;
    let helper = std::thread::Builder::new()
        .stack_size(128 << 10)
        .spawn(move || helper_main(sh, &SCRIBBLE, cd_addr, ncpus, hseed));
    if helper.is_err() {
        return err(-7);
    }
    // Become the agent of `c1` (bounded retries while the CPU is busy).
    let cmd = format!("become agent {c1} {}", qf.as_raw_fd());
    let deadline = Instant::now() + Duration::from_millis(crate::harness::hang_cap(5000));
    loop {
        match write_fd(ctl.as_raw_fd(), cmd.as_bytes(), None) {
            Ok(_) => break,
            Err(libc::EBUSY) if Instant::now() < deadline => sleep_us(5000),
            Err(e) => return err(e),
        }
    }
    let mut info = abi::GhostIocSwGetInfo {
        request: abi::GhostMsgSrc {
            type_: abi::GHOST_AGENT,
            arg: c1 as u64,
        },
        response: abi::GhostSwInfo::default(),
    };
    if ioctl(&ctl, abi::GHOST_IOC_SW_GET_INFO, (&raw mut info).cast()).is_err() {
        return err(-8);
    }
    sh.agent_tid.store(ghost::sys::gettid(), Ordering::SeqCst);
    sh.agent_up.store(1, Ordering::SeqCst);
    let mut a = Agent {
        rng: Rng::new(seed),
        rec: Rec {
            sh,
            who: 'A',
            batch,
            n: 0,
        },
        w: World::new(sh, c1, ncpus),
        cpu: c1,
        ctl,
        files,
        queues: vec![Queue {
            file: qf,
            map: qmap,
            nelems: 256,
        }],
        cpu_data,
        sw,
        me: info.response.index,
        my_gtid,
        arena,
        restore: None,
        runnable: Vec::new(),
        live: Vec::new(),
        next: 0,
        scribble: &SCRIBBLE,
    };
    a.run(nops)
}

/// The agent process's helper thread (CFS).
fn helper_main(sh: &'static Shared, scribble: &AtomicU32, cd: usize, ncpus: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut last = (0, Instant::now());
    loop {
        if scribble.load(Ordering::SeqCst) != 0 {
            for _ in 0..64 {
                let cpu = rng.below(ncpus as u64) as usize;
                let (off, size) = rng.pick(&TXN_FIELDS);
                let v = rng.int().to_ne_bytes();
                for (i, &b) in v[..size].iter().enumerate() {
                    // SAFETY: inside the agent's `cpu_data` mapping, which
                    // lives as long as the process.
                    unsafe { std::ptr::write_volatile((cd + cpu * 4096 + off + i) as *mut u8, b) };
                }
            }
            sh.faults.fetch_add(1, Ordering::Relaxed);
        } else {
            sleep_us(2000);
        }
        let it = sh.agent_iter.load(Ordering::SeqCst);
        if it != last.0 {
            last = (it, Instant::now());
        } else if last.1.elapsed() > Duration::from_millis(30) {
            let tid = sh.agent_tid.load(Ordering::SeqCst);
            if tid > 0 && ghost::sys::tgkill(tid, libc::SIGUSR1).is_ok() {
                sh.nudges.fetch_add(1, Ordering::Relaxed);
            }
            last.1 = Instant::now();
        }
    }
}

impl Agent {
    fn run(&mut self, nops: u64) -> i32 {
        let sh = self.rec.sh;
        let mut done = 0;
        let mut iter = 0u64;
        loop {
            iter += 1;
            sh.agent_iter.store(iter, Ordering::SeqCst);
            self.maybe_restore(iter);
            for q in &self.queues {
                q.drain();
            }
            self.scan();
            if done < nops && self.rng.one_in(2) {
                self.fuzz_op(iter);
                done += 1;
                if done == nops {
                    sh.agent_done.store(1, Ordering::SeqCst);
                }
            }
            if !self.schedule() {
                // Nothing ran: leave the CPU to other classes for a moment.
                sleep_us(200 + self.rng.below(300));
            }
        }
    }

    fn barrier(&self) -> u32 {
        self.sw
            .u32(64 + 32 * self.me as usize)
            .load(Ordering::Acquire)
    }

    /// Scans the status words: frees those of dead or departed tasks,
    /// records live and runnable tasks.
    fn scan(&mut self) {
        self.runnable.clear();
        self.live.clear();
        for idx in 0..SCAN {
            let at = 64 + 32 * idx;
            let flags = self.sw.u32(at + 4).load(Ordering::Acquire);
            if flags & abi::GHOST_SW_F_INUSE == 0 || flags & abi::GHOST_SW_TASK_IS_AGENT != 0 {
                continue;
            }
            if flags & abi::GHOST_SW_F_CANFREE != 0 {
                let mut info = abi::GhostSwInfo {
                    id: 0,
                    index: idx as u32,
                };
                if ioctl(&self.ctl, abi::GHOST_IOC_SW_FREE, (&raw mut info).cast()).is_ok() {
                    self.rec.sh.sw_freed.fetch_add(1, Ordering::Relaxed);
                }
                continue;
            }
            let barrier = self.sw.u32(at).load(Ordering::Acquire);
            let gtid = self.sw.u64(at + 8) as i64;
            self.live.push((idx as u32, gtid, barrier));
            if flags & abi::GHOST_SW_TASK_RUNNABLE != 0 && flags & abi::GHOST_SW_TASK_ONCPU == 0 {
                self.runnable.push((gtid, barrier));
            }
        }
    }

    /// Fills the transaction of `cpu`.
    #[allow(clippy::too_many_arguments)]
    fn fill(&self, cpu: usize, gtid: i64, ab: u32, tb: u32, run_flags: u16, commit_flags: u8) {
        let base = cpu * 4096;
        let m = &self.cpu_data;
        m.write(base, &0i32.to_ne_bytes());
        m.write(base + 12, &ab.to_ne_bytes());
        m.write(base + 16, &tb.to_ne_bytes());
        m.write(base + 20, &run_flags.to_ne_bytes());
        m.write(base + 22, &[commit_flags]);
        m.write(base + 24, &gtid.to_ne_bytes());
        m.u32(base + 8)
            .store(abi::GHOST_TXN_READY as u32, Ordering::Release);
    }

    fn state(&self, cpu: usize) -> i32 {
        self.cpu_data.u32(cpu * 4096 + 8).load(Ordering::Acquire) as i32
    }

    /// `COMMIT_TXN` or `SYNC_GROUP_TXN` with a mask of `cpus`.
    fn commit(&self, cpus: &[usize], sync: bool) -> Result<i64, i32> {
        crate::harness::commit_txns(&self.ctl, cpus, sync).map(i64::from)
    }

    /// Runs the next runnable task on the agent's CPU (the agent sleeps
    /// until it leaves the CPU); false if nothing ran.
    fn schedule(&mut self) -> bool {
        if self.runnable.is_empty() {
            return false;
        }
        self.next = (self.next + 1) % self.runnable.len();
        let (gtid, tb) = self.runnable[self.next];
        let flags = abi::RTLA_ON_BLOCKED | abi::RTLA_ON_YIELD | abi::RTLA_ON_PREEMPT;
        let sh = self.rec.sh;
        let mut ok = false;
        // A message between reading the barrier and committing makes it
        // stale: try again at once, a few times.
        for _ in 0..4 {
            self.fill(self.cpu, gtid, self.barrier(), tb, flags, 0);
            let r = self.commit(&[self.cpu], false);
            let st = self.state(self.cpu);
            let k = match r {
                Err(_) => 16,
                Ok(_) if st < 0 && st.wrapping_sub(i32::MIN) < 16 => {
                    st.wrapping_sub(i32::MIN) as usize
                }
                Ok(_) => 17,
            };
            sh.outcomes[k].fetch_add(1, Ordering::Relaxed);
            ok = k == 0;
            if st != abi::GHOST_TXN_AGENT_STALE {
                break;
            }
        }
        if ok {
            sh.sched_ok.fetch_add(1, Ordering::Relaxed);
        } else {
            sh.sched_fail.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    fn maybe_restore(&mut self, iter: u64) {
        let Some((qi, at, words)) = &self.restore else {
            return;
        };
        if iter < *at {
            return;
        }
        if let Some(q) = self.queues.get(*qi) {
            for &(off, garbage, saved) in words {
                // Only where the garbage is still there (the kernel's next
                // message rewrites `head`; the drain resyncs `tail`).
                let _ = q.map.u32(off).compare_exchange(
                    garbage,
                    saved,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                );
            }
        }
        self.restore = None;
    }

    fn fuzz_op(&mut self, iter: u64) {
        const WEIGHTS: [u32; 8] = [35, 15, 10, 8, 8, 14, 6, 4];
        if self.w.tids.len() < THREADS {
            self.w = World::new(self.rec.sh, self.cpu, self.w.ncpus);
        }
        match self.rng.weighted(&WEIGHTS) {
            0 => self.op_txn(),
            1 => self.op_run(),
            2 => self.op_queue_garbage(iter),
            3 => self.op_sw_free(),
            4 => self.op_assoc(),
            5 => self.op_ioctl(),
            6 => self.op_write(),
            _ => self.op_queue2(),
        }
    }

    /// A gtid for a transaction: a live task, ourselves, a special one, or
    /// garbage.
    fn txn_gtid(&mut self) -> (i64, u32) {
        match self.rng.below(10) {
            0..=4 if !self.live.is_empty() => {
                let (_, g, b) = self.rng.pick(&self.live);
                (g, b)
            }
            5 => (self.my_gtid, 0),
            6 => (self.rng.pick(&[0, -1, -2, -3]), 0),
            _ => (self.w.task_gtid(&mut self.rng), self.rng.int() as u32),
        }
    }

    /// Garbage transactions, committed.
    fn op_txn(&mut self) {
        let ncpus = self.w.ncpus;
        let cpus: Vec<usize> = match self.rng.below(4) {
            0 | 1 => vec![self.cpu],
            2 => vec![0],
            _ => (0..ncpus).collect(),
        };
        let mut desc = String::from("txn");
        for &c in &cpus {
            let (gtid, tb) = self.txn_gtid();
            let tb = if self.rng.one_in(4) {
                tb.wrapping_add(self.rng.pick(&[1, u32::MAX, 2]))
            } else {
                tb
            };
            let ab = if self.rng.one_in(4) {
                self.rng.int() as u32
            } else {
                self.barrier()
            };
            let run_flags = match self.rng.below(4) {
                0 => 0,
                1 => abi::RTLA_ON_BLOCKED | abi::RTLA_ON_YIELD | abi::RTLA_ON_PREEMPT,
                2 => 1 << self.rng.below(16),
                _ => self.rng.next() as u16,
            };
            let commit_flags = match self.rng.below(3) {
                0 => 0,
                1 => 1 << self.rng.below(8),
                _ => self.rng.next() as u8,
            };
            self.fill(c, gtid, ab, tb, run_flags, commit_flags);
            desc += &format!(
                " [cpu{c} gtid {gtid:#x} ab {ab} tb {tb} rf {run_flags:#x} cf {commit_flags:#x}"
            );
            // Garbage in the other fields, the state among them.
            for _ in 0..self.rng.below(3) {
                let (off, size) = self.rng.pick(&TXN_FIELDS);
                let v = if off == 8 {
                    let any = self.rng.int();
                    self.rng.pick(&[0, 1, -1, i64::from(i32::MIN), any])
                } else {
                    self.rng.int()
                };
                self.cpu_data
                    .write(c * 4096 + off, &v.to_ne_bytes()[..size]);
                desc += &format!(" +{off}={v:#x}");
                self.rec.fault(1);
            }
            desc += "]";
        }
        self.rec.fault(1);
        let how = self.rng.below(10);
        let scribble = self.rng.one_in(10);
        if scribble {
            desc += " scribbled";
            self.scribble.store(1, Ordering::SeqCst);
        }
        let fd = self.ctl.as_raw_fd();
        let r = match how {
            0..=5 => {
                // The mask: right, random, huge, or a bad pointer.
                let mut mask = [0u8; 1100];
                for &c in &cpus {
                    mask[c / 8] |= 1 << (c % 8);
                }
                let (ptr, len, flags) = match self.rng.below(8) {
                    0 => (
                        mask.as_ptr() as u64,
                        self.rng.pick(&[0, 1, 1024, 1025, u32::MAX]),
                        0,
                    ),
                    1 => (self.rng.pick(&[0, 1, 0xffff_8880_0000_0000]), 128, 0),
                    2 => (mask.as_ptr() as u64, 128, self.rng.pick(&[1, -1])),
                    3 => {
                        mask[0] = self.rng.next() as u8;
                        (mask.as_ptr() as u64, 1, 0)
                    }
                    _ => (mask.as_ptr() as u64, 128, 0),
                };
                let sync = self.rng.one_in(3);
                let mut c = abi::GhostIocCommitTxn {
                    mask_ptr: ptr,
                    mask_len: len,
                    flags,
                };
                let cmd = if sync {
                    abi::GHOST_IOC_SYNC_GROUP_TXN
                } else {
                    abi::GHOST_IOC_COMMIT_TXN
                };
                desc += &format!(
                    " {} mask {ptr:#x} len {len} flags {flags}",
                    if sync { "SYNC" } else { "COMMIT" }
                );
                self.rec
                    .op(K_TXN, desc, || raw_ioctl(fd, cmd, (&raw mut c) as usize))
            }
            6 | 7 => {
                let a = [0, i64::from(self.barrier()), 0, self.cpu as i64, 0];
                desc += &format!(" ghost_run {a:?}");
                self.rec.op(K_TXN, desc, || ghost_run(a))
            }
            _ => {
                desc += " not committed";
                self.rec.op(K_TXN, desc, || Ok(0))
            }
        };
        let _ = r;
        self.scribble.store(0, Ordering::SeqCst);
    }

    fn op_run(&mut self) {
        let b = self.barrier();
        let mut a = run_args(&mut self.rng, &self.w, b);
        if self.rng.one_in(3) {
            // A plausible local yield.
            a = [
                0,
                i64::from(self.barrier()),
                0,
                self.cpu as i64,
                self.rng.pick(&[0, 32]),
            ];
        }
        if self.rng.one_in(2) {
            self.rec
                .op(K_ARUN, format!("ghost_run {a:?}"), || ghost_run(a));
        } else {
            let mut r = abi::GhostIocRun {
                gtid: a[0],
                agent_barrier: a[1] as u32,
                task_barrier: a[2] as u32,
                run_cpu: a[3] as i32,
                run_flags: a[4] as i32,
            };
            let fd = self.ctl.as_raw_fd();
            let (what, arg) = match self.rng.below(6) {
                0 => ("NULL", 0),
                1 => ("unmapped", self.arena.unmapped),
                _ => ("struct", (&raw mut r) as usize),
            };
            self.rec.op(K_ARUN, format!("IOC_RUN {what} {a:?}"), || {
                raw_ioctl(fd, abi::GHOST_IOC_RUN, arg)
            });
        }
    }

    /// Garbage into a queue header, restored (where it is still there) a
    /// few iterations later.
    fn op_queue_garbage(&mut self, iter: u64) {
        if self.restore.is_some() {
            return;
        }
        let qi = self.rng.below(self.queues.len() as u64) as usize;
        let q = &self.queues[qi];
        let mut words = Vec::new();
        let mut desc = format!("queue{qi} header");
        for _ in 0..1 + self.rng.below(3) {
            let off = self.rng.pick(&[0usize, 4, 8, 12, 60, 64, 64, 68, 68, 72]);
            let saved = q.map.u32(off).load(Ordering::Acquire);
            let v = match self.rng.below(4) {
                0 => saved.wrapping_add(self.rng.pick(&[1, q.nelems, q.nelems + 1, u32::MAX])),
                1 => self.rng.pick(&[0, u32::MAX, 1 << 31, q.nelems]),
                _ => self.rng.next() as u32,
            };
            words.push((off, v, saved));
            desc += &format!(" +{off}={v:#x} (was {saved:#x})");
        }
        let later = self.rng.below(30);
        desc += &format!(", restored in {later}");
        self.rec.fault(words.len() as u64);
        self.rec.op(K_QGARBAGE, desc, || {
            for &(off, v, _) in &words {
                q.map.u32(off).store(v, Ordering::Release);
            }
            Ok(0)
        });
        self.restore = Some((qi, iter + later, words));
    }

    fn op_sw_free(&mut self) {
        let index = match self.rng.below(6) {
            0 | 1 if !self.live.is_empty() => self.rng.pick(&self.live).0,
            2 => self.me,
            _ => {
                let any = self.rng.next() as u32;
                self.rng.pick(&[0, 1, 65533, 65534, u32::MAX, any])
            }
        };
        let id = self.rng.pick(&[0, 0, 0, 1, 63, u32::MAX]);
        let mut info = abi::GhostSwInfo { id, index };
        let fd = self.ctl.as_raw_fd();
        self.rec.op(K_SWFREE, format!("SW_FREE {id}/{index}"), || {
            raw_ioctl(fd, abi::GHOST_IOC_SW_FREE, (&raw mut info) as usize)
        });
    }

    fn op_assoc(&mut self) {
        let (gtid, barrier) = if !self.live.is_empty() && self.rng.below(3) != 0 {
            let (_, g, b) = self.rng.pick(&self.live);
            (
                g,
                if self.rng.one_in(4) {
                    b.wrapping_add(1)
                } else {
                    b
                },
            )
        } else {
            (self.w.task_gtid(&mut self.rng), self.rng.int() as u32)
        };
        let qfd = match self.rng.below(6) {
            0..=3 => self.queues[self.rng.below(self.queues.len() as u64) as usize]
                .file
                .as_raw_fd(),
            4 => self.ctl.as_raw_fd(),
            _ => self.rng.int() as i32,
        };
        let mut a = abi::GhostIocAssocQueue {
            fd: qfd,
            src: abi::GhostMsgSrc {
                type_: self
                    .rng
                    .pick(&[abi::GHOST_TASK, abi::GHOST_TASK, abi::GHOST_AGENT, 7]),
                arg: gtid as u64,
            },
            barrier,
            flags: self.rng.pick(&[0, 0, 0, 1]),
        };
        let desc = format!(
            "ASSOC_QUEUE fd {qfd} type {} gtid {gtid:#x} barrier {barrier} flags {}",
            a.src.type_, a.flags
        );
        let fd = self.ctl.as_raw_fd();
        self.rec.op(K_ASSOC, desc, || {
            raw_ioctl(fd, abi::GHOST_IOC_ASSOC_QUEUE, (&raw mut a) as usize)
        });
    }

    fn op_ioctl(&mut self) {
        let mut fds: Vec<i32> = vec![self.ctl.as_raw_fd(); 3];
        fds.extend(self.queues.iter().map(|q| q.file.as_raw_fd()));
        fds.extend(self.files.iter().map(|f| f.1.as_raw_fd()));
        let fd = self.rng.pick(&fds);
        let cmd = ioctl_cmd(&mut self.rng);
        // No queues of random size from the agent (they add up).
        if cmd == abi::GHOST_IOC_CREATE_QUEUE {
            return;
        }
        let qfds: Vec<i32> = self.queues.iter().map(|q| q.file.as_raw_fd()).collect();
        let (adesc, arg) = self.arena.arg(&mut self.rng, &self.w, cmd, &qfds);
        self.rec
            .op(K_AIOCTL, format!("ioctl fd{fd} {cmd:#x} {adesc}"), || {
                raw_ioctl(fd, cmd, arg)
            });
    }

    /// Writes through the files opened before becoming an agent.
    fn op_write(&mut self) {
        let i = self.rng.below(self.files.len() as u64) as usize;
        let name = self.files[i].0.clone();
        let fname = if name == "root ctl" {
            "ctl"
        } else {
            name.as_str()
        };
        let id = if name == "root ctl" {
            None
        } else {
            Some(STAGE)
        };
        let v = valid_cmd(&mut self.rng, &self.w, fname, id);
        let mut data = if self.rng.one_in(2) {
            mutate(&mut self.rng, &v)
        } else {
            v.into_bytes()
        };
        if name == "tasks" {
            data = tame_tasks(data, &self.w, true);
        }
        if name == "runnable_timeout" {
            data = tame_timeout(&mut self.rng, data);
        }
        if name == "ctl" && self.rng.one_in(3) {
            data = format!(
                "become agent {} {}",
                self.cpu,
                self.queues[0].file.as_raw_fd()
            )
            .into_bytes();
        }
        let fd = self.files[i].1.as_raw_fd();
        self.rec
            .op(K_AWRITE, format!("write {name} {}", show(&data)), || {
                write_fd(fd, &data, None)
            });
    }

    /// A second queue: created (mapped, drained, waking this agent), its
    /// wakeup changed, or dropped.
    fn op_queue2(&mut self) {
        let fd = self.ctl.as_raw_fd();
        if self.queues.len() == 1 {
            let elems = self.rng.pick(&[1, 2, 8, 64]);
            let mut args = abi::GhostIocCreateQueue {
                elems,
                node: -1,
                flags: 0,
                mapsize: 0,
            };
            let r = self.rec.op(K_QUEUE2, format!("CREATE_QUEUE {elems}"), || {
                raw_ioctl(fd, abi::GHOST_IOC_CREATE_QUEUE, (&raw mut args) as usize)
            });
            if let Some(q) = r {
                // SAFETY: a new descriptor, owned here.
                let file = unsafe { File::from_raw_fd(q as i32) };
                let rw = libc::PROT_READ | libc::PROT_WRITE;
                if let Ok(map) = Map::new(q as i32, args.mapsize as usize, rw, libc::MAP_SHARED, 0)
                {
                    self.queues.push(Queue {
                        file,
                        map,
                        nelems: elems as u32,
                    });
                }
            }
            return;
        }
        if self.rng.one_in(3) {
            if self.restore.as_ref().is_some_and(|r| r.0 == 1) {
                self.restore = None;
            }
            self.rec.op(K_QUEUE2, "close queue1".into(), || Ok(0));
            self.queues.truncate(1);
            return;
        }
        let qi = self.rng.below(2) as usize;
        let mut wk = [
            abi::GhostAgentWakeup {
                cpu: cpu_num(&mut self.rng, &self.w) as i32,
                prio: self.rng.pick(&[0, 0, 1]),
            },
            abi::GhostAgentWakeup {
                cpu: self.cpu as i32,
                prio: 0,
            },
        ];
        let mut cw = abi::GhostIocConfigQueueWakeup {
            qfd: self.queues[qi].file.as_raw_fd(),
            w: wk.as_mut_ptr() as u64,
            ninfo: self.rng.pick(&[0, 1, 2, 3]),
            flags: 0,
        };
        let desc = format!(
            "CONFIG_QUEUE_WAKEUP queue{qi} {:?} n {}",
            wk[0].cpu, cw.ninfo
        );
        self.rec.op(K_QUEUE2, desc, || {
            raw_ioctl(
                fd,
                abi::GHOST_IOC_CONFIG_QUEUE_WAKEUP,
                (&raw mut cw) as usize,
            )
        });
    }
}

// ---------------------------------------------------------------------------
// Batches, health, runs.
// ---------------------------------------------------------------------------

/// What stops a run.
#[derive(Clone, Copy)]
pub struct Limits {
    pub ops: Option<u64>,
    pub seconds: Option<u64>,
}

/// A run's totals.
#[derive(Default)]
struct Totals {
    batches: u64,
    ops: u64,
    faults: u64,
    entered: u64,
    returned: u64,
    nudges: u64,
    sched_ok: u64,
    sched_fail: u64,
    stage_gone: u64,
}

/// A failure: what, and the last operations.
fn failure(sh: &Shared, seed: u64, batch: u64, what: String) -> String {
    let ops = sh.last_ops(50);
    format!(
        "seed {seed} batch {batch}: {what}\n  last operations (oldest first):\n    {}",
        ops.join("\n    ")
    )
}

/// Sets up the stage, runs one batch of `nops` operations, tears it down
/// and checks the kernel's health.
fn batch(
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
fn health(
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
    // SAFETY: our own child.
    unsafe { libc::kill(child, libc::SIGKILL) };
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
fn fuzz_fixed_seeds() -> Result<(), String> {
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
