//! Generators shared by both fuzz processes: random, near-valid and valid
//! commands, ioctl numbers and arguments, transaction fields.

use super::mapping::{mmap_raw, Map};
use super::rng::Rng;
use super::shared::Shared;
use super::syscalls::fd_open;
use super::{abi, kparse, sys, Ordering, NO_FD, STAGE};

/// The 0/1 tunables and the other files of an enclave, by weight.
pub(super) const ENCLAVE_FILES: [(&str, u32); 17] = [
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
pub(super) fn num_text(rng: &mut Rng, v: i64) -> String {
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
pub(super) fn mutate(rng: &mut Rng, s: &str) -> Vec<u8> {
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
pub(super) struct World {
    pub(super) c1: usize,
    pub(super) ncpus: usize,
    /// The workload's tids and the bystander's pid.
    pub(super) tids: Vec<i32>,
    pub(super) bystander: i32,
}

impl World {
    pub(super) fn new(sh: &Shared, c1: usize, ncpus: usize) -> World {
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
    pub(super) fn task_gtid(&self, rng: &mut Rng) -> i64 {
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
pub(super) fn cpu_num(rng: &mut Rng, w: &World) -> i64 {
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
pub(super) fn valid_cmd(rng: &mut Rng, w: &World, f: &str, id: Option<u64>) -> String {
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
pub(super) fn pick_task(rng: &mut Rng, w: &World, stage: bool) -> i64 {
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
pub(super) fn kernel_number(data: &[u8]) -> Option<u64> {
    u64::try_from(kparse::parse_signed(data).ok()?).ok()
}

/// Keeps a `tasks` write away from tasks that are not the fuzz's (the
/// parent, init, other processes...) and, outside the stage, from the
/// writer itself: such a write becomes one of the bystander.
pub(super) fn tame_tasks(data: Vec<u8>, w: &World, stage: bool) -> Vec<u8> {
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
pub(super) fn tame_become(data: Vec<u8>) -> Vec<u8> {
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
pub(super) fn tame_timeout(rng: &mut Rng, data: Vec<u8>) -> Vec<u8> {
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
pub(super) fn ioctl_cmd(rng: &mut Rng) -> u64 {
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
pub(super) fn ioctl_struct(
    rng: &mut Rng,
    w: &World,
    nr: u64,
    fds: &[i32],
    buf_addr: usize,
) -> Vec<u8> {
    let mut b = vec![0u8; 64];
    pub(super) fn p32(b: &mut [u8], off: usize, v: i64) {
        b[off..off + 4].copy_from_slice(&(v as i32).to_ne_bytes());
    }
    pub(super) fn p64(b: &mut [u8], off: usize, v: i64) {
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
pub(super) struct Arena {
    pub(super) map: Map,
    pub(super) unmapped: usize,
}

impl Arena {
    pub(super) fn new() -> Result<Arena, i32> {
        let map = mmap_raw(
            -1,
            3 * 4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            0,
        )?;
        // The last page unreadable (a failure leaves it readable: a
        // straddling pointer then only reads zeroes, no harm).
        let _ = map.protect_range(2 * 4096, 4096, libc::PROT_NONE);
        let gone = mmap_raw(
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
    pub(super) fn arg(&self, rng: &mut Rng, w: &World, cmd: u64, fds: &[i32]) -> (String, usize) {
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
                    self.map
                        .write_bytes(2 * 4096 - back + i, &[rng.next() as u8]);
                }
                (format!("straddle-{back}"), at)
            }
            5 | 6 => {
                let mis = 1 + rng.below(7) as usize;
                let s = ioctl_struct(rng, w, cmd & 0xff, fds, base + mis);
                self.map.write_bytes(mis, &s);
                (format!("misaligned+{mis} {}", hex(&s[..24])), base + mis)
            }
            7 => {
                for i in 0..64 {
                    self.map.write_bytes(i, &[rng.next() as u8]);
                }
                ("random".into(), base)
            }
            _ => {
                let s = ioctl_struct(rng, w, cmd & 0xff, fds, base);
                self.map.write_bytes(0, &s);
                (format!("struct {}", hex(&s[..32])), base)
            }
        }
    }
}

pub(super) fn hex(b: &[u8]) -> String {
    b.chunks(4)
        .map(|c| c.iter().map(|x| format!("{x:02x}")).collect::<String>())
        .collect::<Vec<_>>()
        .join(".")
}

/// Random `ghost_run` arguments (gtid, agent barrier, task barrier, CPU,
/// flags), some of them plausible.
pub(super) fn run_args(rng: &mut Rng, w: &World, barrier: u32) -> [i64; 5] {
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

/// Fields of a transaction: `(offset, size)`.
pub(super) const TXN_FIELDS: [(usize, usize); 12] = [
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
