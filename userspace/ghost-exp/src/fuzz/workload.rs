//! The stage's workload (ghost threads) and the CFS bystander.

use super::rng::Rng;
use super::shared::Shared;
use super::syscalls::{set_policy, sleep_us};
use super::{abi, path, sys, Duration, Instant, Ordering, STAGE, THREADS};

/// `THREADS` threads that join the stage and spin, sleep, yield, and now
/// and then leave ghost; a thread out of ghost joins again (at most every
/// 20 ms) until told to stop.
pub(super) fn workload_main(sh: &'static Shared, seed: u64) -> i32 {
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
pub(super) fn bystander_main(sh: &'static Shared) -> i32 {
    while sh.stop.load(Ordering::SeqCst) == 0 {
        sh.bystander_work.fetch_add(1, Ordering::SeqCst);
        sleep_us(3000);
    }
    0
}
