//! Host tests of the kernel crate's gtid code (`rust-sched-ghost/gtid.rs`).

#[path = "../../gtid.rs"]
mod gtid;

use gtid::*;

const PID_MAX_LIMIT: u32 = 4 * 1024 * 1024;

#[test]
fn layout_matches_ghost_userspace() {
    // ghOSt: XX = 32 - clz(pid_max_max - 1), SEQNUM_BITS = 63 - XX.
    assert_eq!(Layout::new(PID_MAX_LIMIT).unwrap().seqnum_bits(), 41);
    assert_eq!(Layout::new(32768).unwrap().seqnum_bits(), 48);
    assert_eq!(Layout::new(32769).unwrap().seqnum_bits(), 47);
    assert!(Layout::new(0).is_none());
    assert!(Layout::new(1).is_none());
}

#[test]
fn encode_and_decode() {
    let l = Layout::new(PID_MAX_LIMIT).unwrap();
    let g = l.encode(1234, 5);
    assert_eq!(g, (1234 << 41) | 5);
    assert_eq!(l.pid_of(g), 1234);
    // The largest pid still gives a positive gtid.
    let g = l.encode(PID_MAX_LIMIT as i32 - 1, u64::MAX);
    assert!(g > 0);
    assert_eq!(l.pid_of(g), PID_MAX_LIMIT as i32 - 1);
}

#[test]
fn allocator_never_gives_seqnum_zero() {
    let l = Layout::new(PID_MAX_LIMIT).unwrap();
    let a = GtidAllocator::new();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..10_000 {
        let g = a.alloc(&l, 42);
        assert_eq!(l.pid_of(g), 42);
        assert_ne!(g & ((1 << 41) - 1), 0);
        assert!(seen.insert(g), "gtid {g:#x} handed out twice");
    }
    // Across threads, still unique.
    let a = std::sync::Arc::new(GtidAllocator::new());
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let a = a.clone();
            std::thread::spawn(move || (0..1000).map(|_| a.alloc(&l, 7)).collect::<Vec<_>>())
        })
        .collect();
    let mut all: Vec<i64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 4000);
}

#[test]
fn tasks_write_classification() {
    let l = Layout::new(PID_MAX_LIMIT).unwrap();
    assert_eq!(l.task_ref(0), Some(TaskRef::Current));
    assert_eq!(l.task_ref(1), Some(TaskRef::Pid(1)));
    assert_eq!(l.task_ref(4194303), Some(TaskRef::Pid(4194303)));
    let g = (77u64 << 41) | 3;
    assert_eq!(
        l.task_ref(g),
        Some(TaskRef::Gtid {
            gtid: g as i64,
            pid: 77
        })
    );
    // Pid bits but no sequence number: neither a pid nor a gtid.
    assert_eq!(l.task_ref(77 << 41), None);
    // Does not fit a positive i64.
    assert_eq!(l.task_ref(1 << 63), None);
    assert_eq!(l.task_ref(u64::MAX), None);
    // Below 2^41 but not an i32 pid.
    assert_eq!(l.task_ref(1 << 40), None);
}

#[test]
fn fallback_is_the_usual_layout() {
    assert_eq!(Layout::new(PID_MAX_LIMIT), Some(Layout::FALLBACK));
}
