//! Host tests of the kernel crate's status-word allocator
//! (`rust-sched-ghost/sw.rs`), on a region in ordinary memory.

#[path = "../../sw.rs"]
#[allow(dead_code)]
mod sw;

use std::sync::atomic::{AtomicU32, Ordering};
use sw::*;

/// A zeroed region on the heap, as `vmalloc_user` gives the kernel.
fn new_region(id: u32) -> Box<Region> {
    let layout = std::alloc::Layout::new::<Region>();
    // SAFETY: `Region` is made of atomics, for which all-zero is valid; the
    // allocation has `Region`'s layout.
    let r = unsafe { Box::from_raw(std::alloc::alloc_zeroed(layout).cast::<Region>()) };
    r.init(id, 0);
    r
}

#[test]
fn layout_is_2_mib() {
    assert_eq!(std::mem::size_of::<Region>(), 2 << 20);
    assert_eq!(SW_CAPACITY, 65534);
    assert_eq!(std::mem::offset_of!(Region, words), 64);
    let r = new_region(3);
    assert_eq!(r.header.id.load(Ordering::Relaxed), 3);
    assert_eq!(r.header.start.load(Ordering::Relaxed), 64);
    assert_eq!(r.header.capacity.load(Ordering::Relaxed), 65534);
    assert_eq!(r.available(), 65534);
}

#[test]
fn alloc_until_full_then_free() {
    let r = new_region(0);
    let hint = AtomicU32::new(0);
    let mut got = Vec::new();
    while let Some(i) = r.alloc(&hint) {
        assert_eq!(
            r.word(i).unwrap().flags.load(Ordering::Relaxed),
            F_ALLOCATED
        );
        got.push(i);
    }
    assert_eq!(got.len(), SW_CAPACITY);
    assert_eq!(r.available(), 0);
    got.sort();
    got.dedup();
    assert_eq!(got.len(), SW_CAPACITY, "a word was handed out twice");
    // Free one in the middle: the next allocation finds it.
    let w = r.word(1000).unwrap();
    w.barrier.store(9, Ordering::Relaxed);
    w.gtid.store(99, Ordering::Relaxed);
    w.flags.fetch_or(F_INUSE, Ordering::Release);
    assert!(r.free(1000));
    assert_eq!(r.available(), 1);
    assert_eq!(r.alloc(&hint), Some(1000));
    let w = r.word(1000).unwrap();
    assert_eq!(
        w.barrier.load(Ordering::Relaxed),
        0,
        "a freed word is zeroed"
    );
    assert_eq!(w.gtid.load(Ordering::Relaxed), 0);
    assert_eq!(r.alloc(&hint), None);
}

#[test]
fn free_rejects_bad_indices() {
    let r = new_region(0);
    let hint = AtomicU32::new(0);
    assert!(!r.free(5), "freeing a word never allocated");
    assert!(!r.free(SW_CAPACITY as u32), "index past the end");
    assert!(!r.free(u32::MAX));
    let i = r.alloc(&hint).unwrap();
    assert!(r.free(i));
    assert!(!r.free(i), "double free");
    assert_eq!(r.available(), SW_CAPACITY as u32);
}

#[test]
fn concurrent_alloc_and_free_keep_available_true() {
    let r: std::sync::Arc<Region> = new_region(0).into();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let r = r.clone();
            std::thread::spawn(move || {
                let hint = AtomicU32::new(t * 1000);
                let mut mine = Vec::new();
                for round in 0..20_000u32 {
                    if round % 3 == 2 {
                        if let Some(i) = mine.pop() {
                            assert!(r.free(i));
                        }
                    } else if let Some(i) = r.alloc(&hint) {
                        mine.push(i);
                    }
                }
                mine
            })
        })
        .collect();
    let held: Vec<u32> = threads
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let mut uniq = held.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), held.len(), "two threads own the same word");
    assert_eq!(r.available() as usize, SW_CAPACITY - held.len());
    let allocated = r
        .words
        .iter()
        .filter(|w| w.flags.load(Ordering::Relaxed) & F_ALLOCATED != 0)
        .count();
    assert_eq!(allocated, held.len());
}

#[test]
fn has_word_finds_only_allocated_words_with_every_flag() {
    let r = new_region(0);
    let hint = AtomicU32::new(0);
    let gated = 1 << 9;
    let a = r.alloc(&hint).unwrap();
    let b = r.alloc(&hint).unwrap();
    r.word(a).unwrap().gtid.store(77, Ordering::Relaxed);
    r.word(b).unwrap().gtid.store(78, Ordering::Relaxed);
    assert!(!r.has_word(F_CANFREE | gated, 77));
    r.word(a)
        .unwrap()
        .flags
        .fetch_or(F_CANFREE | gated, Ordering::Relaxed);
    assert!(r.has_word(F_CANFREE | gated, 77));
    assert!(!r.has_word(F_CANFREE | gated, 78));
    // Freed: gone, even though the gtid matched.
    assert!(r.free(a));
    assert!(!r.has_word(F_CANFREE | gated, 77));
    assert!(!r.has_word(0, 77));
}
