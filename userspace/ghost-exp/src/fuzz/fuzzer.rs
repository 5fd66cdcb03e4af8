//! The fuzzer process (`F`, no agent): writes, reads, ioctls, `ghost_run`,
//! mmaps and scheduler calls on every ghostfs file and live task.

use super::gen::{
    ioctl_cmd, kernel_number, mutate, run_args, tame_become, tame_tasks, tame_timeout, valid_cmd,
    Arena, World, ENCLAVE_FILES, TXN_FIELDS,
};
use super::mapping::{mmap_raw, on_sigbus, Map};
use super::rng::Rng;
use super::shared::{show, Rec, Shared};
use super::syscalls::{
    enclave_ids, exists, ghost_run, open, raw_ioctl, set_affinity, set_policy, sleep_us, write_file,
};
use super::{
    abi, nr_cpu_ids, path, sys, File, Ordering, GHOSTFS, K_ENCLAVE, K_IOCTL, K_MMAP, K_READ, K_RUN,
    K_SCHED, K_SCRIBBLE, K_WRITE, STAGE,
};
use std::os::fd::AsRawFd;

/// The fuzzer's view: open files, mappings, what it created.
pub(super) struct Fuzzer {
    pub(super) rng: Rng,
    pub(super) rec: Rec,
    pub(super) w: World,
    pub(super) stage_ctl: File,
    pub(super) stage_ro: File,
    pub(super) other_fds: Vec<File>,
    pub(super) cpu_data: Option<Map>,
    pub(super) _sw: Option<Map>,
    pub(super) arena: Arena,
    /// Queues it made, mapped; how many of them were big.
    pub(super) queues: Vec<(File, Option<Map>)>,
    /// Enclaves it (or its writes) made.
    pub(super) enclaves: Vec<u64>,
    /// Files it holds open (`agent_online` claims among them).
    pub(super) held: Vec<File>,
    pub(super) sw_regions: u32,
}

pub(super) fn fuzzer_main(sh: &'static Shared, seed: u64, batch: u64, nops: u64, c1: usize) -> i32 {
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
    let cpu_data = mmap_raw(cd.as_raw_fd(), 4096 * ncpus, rw, libc::MAP_SHARED, 0).ok();
    let sw = mmap_raw(
        swf.as_raw_fd(),
        2 << 20,
        libc::PROT_READ,
        libc::MAP_SHARED,
        0,
    )
    .ok();
    let mut maps = Vec::new();
    for m in [&cpu_data, &sw].into_iter().flatten() {
        maps.push((m.addr(), m.len(), STAGE));
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
    pub(super) fn target(&mut self) -> (String, &'static str, Option<u64>) {
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
    pub(super) fn learn_enclaves(&mut self) {
        for id in enclave_ids() {
            if id != STAGE && !self.enclaves.contains(&id) {
                self.enclaves.push(id);
                let _ = write_file(&path(id, "runnable_timeout"), b"5000", None);
            }
        }
        self.enclaves.retain(|&id| exists(id));
    }

    pub(super) fn op_write(&mut self) {
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

    pub(super) fn op_read(&mut self) {
        let (p, _, _) = self.target();
        let len = self.rng.pick(&[0usize, 1, 16, 4096, 8192]);
        let off = self.rng.pick(&[0i64, 0, 1, 4096, 1 << 30]);
        self.rec.op(K_READ, format!("pread {p} {len}@{off}"), || {
            let f = open(&p, libc::O_RDONLY)?;
            let mut buf = vec![0u8; len];
            sys::pread(f.as_raw_fd(), &mut buf, off)
        });
    }

    /// The fds an ioctl may go to: `(name, fd)`.
    pub(super) fn ioctl_fds(&mut self) -> Vec<(String, i32)> {
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

    pub(super) fn op_ioctl(&mut self) {
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
                    let q = sys::adopt_fd(qfd);
                    let size = self.arena.map.u64(16) as usize;
                    let m = (size > 0 && size <= 1 << 20 && arg == self.arena.map.addr())
                        .then(|| {
                            mmap_raw(
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

    pub(super) fn op_run(&mut self) {
        let b = self.rng.next() as u32;
        let a = run_args(&mut self.rng, &self.w, b);
        self.rec
            .op(K_RUN, format!("ghost_run {a:?} (no agent)"), || {
                ghost_run(a)
            });
    }

    pub(super) fn op_mmap(&mut self) {
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
                let m = mmap_raw(fd, len, prot, flags, off)?;
                if mprotect {
                    m.protect(libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC)?;
                }
                Ok(m.len() as i64)
            },
        );
    }

    /// Garbage into the stage's transactions (while its agent uses them) or
    /// into the header of a queue of ours.
    pub(super) fn op_scribble(&mut self) {
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
                    m.atomic(off).store(v, Ordering::Release);
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
                m.write_bytes(cpu * 4096 + off, &v.to_ne_bytes()[..size]);
                Ok(0)
            },
        );
    }

    /// Create a fuzz enclave (valid), set it up a little, or destroy one;
    /// take and drop an `agent_online` claim.
    pub(super) fn op_enclave(&mut self) {
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
    pub(super) fn op_sched(&mut self) {
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
                        if sys::setpriority(tid, nice) != 0 {
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
