//! Host tests of the kernel crate's queue ring producer
//! (`rust-sched-ghost/ring.rs`) against a consumer written from the ABI's
//! description (acquire `head`, read, release `tail`; NOPs consumed alike).

#[path = "../../ring.rs"]
#[allow(dead_code)]
mod ring;

use ring::*;
use std::sync::atomic::{AtomicU32, Ordering};

struct Ring {
    header: RingHeader,
    words: Vec<AtomicU32>,
}

impl Ring {
    fn new(nelems: u32) -> Self {
        Ring {
            header: RingHeader {
                head: AtomicU32::new(0),
                tail: AtomicU32::new(0),
                overflow: AtomicU32::new(0),
            },
            words: (0..nelems * 2).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    fn mem(&self) -> RingMem<'_> {
        RingMem {
            header: &self.header,
            words: &self.words,
        }
    }

    /// Consumes one message: `(type, seqnum, payload)`, NOPs included.
    fn consume(&self, nelems: u32) -> Option<(u16, u32, Vec<u8>)> {
        let tail = self.header.tail.load(Ordering::Acquire);
        let head = self.header.head.load(Ordering::Acquire);
        if tail == head {
            return None;
        }
        let mask = nelems - 1;
        let word = |slot: u32, w: usize| {
            self.words[(slot & mask) as usize * 2 + w].load(Ordering::Relaxed)
        };
        let w0 = word(tail, 0);
        let (ty, len) = ((w0 & 0xffff) as u16, (w0 >> 16) as usize);
        let seq = word(tail, 1);
        let mut payload = Vec::new();
        for k in 0..(len - 8) / 4 {
            let w = word(tail.wrapping_add(1 + (k / 2) as u32), k % 2);
            payload.extend_from_slice(&w.to_ne_bytes());
        }
        let slots = len.div_ceil(8) as u32;
        self.header
            .tail
            .store(tail.wrapping_add(slots), Ordering::Release);
        Some((ty, seq, payload))
    }
}

fn payload(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| seed.wrapping_add(i as u8)).collect()
}

#[test]
fn sizes_and_validation() {
    assert_eq!(map_bytes(1), 84);
    assert_eq!(map_bytes(65536), 76 + 65536 * 8);
    for n in [1, 2, 64, 65536] {
        assert!(valid_nelems(n) && Producer::new(n).is_some(), "{n}");
    }
    for n in [0, 3, 100, 131072] {
        assert!(!valid_nelems(n) && Producer::new(n).is_none(), "{n}");
    }
}

#[test]
fn messages_arrive_in_order() {
    let r = Ring::new(64);
    let mut p = Producer::new(64).unwrap();
    // 8 messages of 7 slots (48-byte payload) fill 56 of the 64 slots.
    for i in 0..8u32 {
        p.produce(&r.mem(), 64 + i as u16, i, &payload(48, i as u8))
            .unwrap();
    }
    for i in 0..8u32 {
        let (ty, seq, pl) = r.consume(64).unwrap();
        assert_eq!((ty, seq), (64 + i as u16, i));
        assert_eq!(pl, payload(48, i as u8));
    }
    assert!(r.consume(64).is_none());
}

#[test]
fn wrap_pads_with_a_nop() {
    let n = 16;
    let r = Ring::new(n);
    let mut p = Producer::new(n).unwrap();
    // 7 messages of 2 slots (8-byte payload): head at 14, 2 slots left.
    for i in 0..7 {
        p.produce(&r.mem(), 66, i, &payload(8, 0)).unwrap();
        r.consume(n).unwrap();
    }
    // A 6-slot message (40-byte payload) does not fit in 2: NOP, then slot 0.
    p.produce(&r.mem(), 68, 99, &payload(40, 7)).unwrap();
    assert_eq!(r.header.head.load(Ordering::Relaxed), 14 + 2 + 6);
    let (ty, _, pl) = r.consume(n).unwrap();
    assert_eq!(ty, MSG_NOP);
    assert!(pl.len() == 8, "a 2-slot NOP has 8 bytes of padding");
    let (ty, seq, pl) = r.consume(n).unwrap();
    assert_eq!((ty, seq), (68, 99));
    assert_eq!(pl, payload(40, 7));
    assert!(r.consume(n).is_none());
}

#[test]
fn full_ring_overflows_then_recovers() {
    let n = 8;
    let r = Ring::new(n);
    let mut p = Producer::new(n).unwrap();
    for i in 0..4 {
        p.produce(&r.mem(), 65, i, &payload(8, 0)).unwrap();
    }
    assert_eq!(
        p.produce(&r.mem(), 65, 4, &payload(8, 0)),
        Err(RingError::Overflow)
    );
    assert_eq!(r.header.overflow.load(Ordering::Relaxed), 1);
    assert_eq!(p.dropped(), 1);
    assert_eq!(r.consume(n).unwrap().1, 0);
    p.produce(&r.mem(), 65, 5, &payload(8, 0)).unwrap();
    let seqs: Vec<u32> = std::iter::from_fn(|| r.consume(n)).map(|m| m.1).collect();
    assert_eq!(seqs, [1, 2, 3, 5]);
}

#[test]
fn garbage_from_the_agent_is_contained() {
    let n = 8;
    let r = Ring::new(n);
    let mut p = Producer::new(n).unwrap();
    p.produce(&r.mem(), 65, 1, &payload(8, 0)).unwrap();
    // A tail ahead of head, or far behind it: more in use than exists.
    for bad_tail in [5, u32::MAX - 100, 1 << 31] {
        r.header.tail.store(bad_tail, Ordering::Relaxed);
        assert_eq!(
            p.produce(&r.mem(), 65, 2, &payload(8, 0)),
            Err(RingError::Overflow)
        );
    }
    // A scribbled head is ignored: the producer keeps its own.
    r.header.tail.store(2, Ordering::Relaxed);
    r.header.head.store(12345, Ordering::Relaxed);
    p.produce(&r.mem(), 65, 3, &payload(8, 0)).unwrap();
    assert_eq!(r.header.head.load(Ordering::Relaxed), 4);
    // Payloads that are not whole words, or too long for a message.
    assert_eq!(
        p.produce(&r.mem(), 65, 4, &[1, 2, 3]),
        Err(RingError::Invalid)
    );
    assert_eq!(
        p.produce(&r.mem(), 65, 4, &vec![0; 70000]),
        Err(RingError::Invalid)
    );
    // Larger than the whole ring.
    assert_eq!(
        p.produce(&r.mem(), 65, 4, &payload(64, 0)),
        Err(RingError::Overflow)
    );
    // Memory smaller than the ring.
    let small = Ring::new(4);
    assert_eq!(
        p.produce(&small.mem(), 65, 4, &payload(8, 0)),
        Err(RingError::Invalid)
    );
}

#[test]
fn concurrent_consumer_sees_every_message_once() {
    let n = 64;
    let r = std::sync::Arc::new(Ring::new(n));
    let consumer = {
        let r = r.clone();
        std::thread::spawn(move || {
            let mut got = Vec::new();
            while got.len() < 20_000 {
                if let Some((ty, seq, pl)) = r.consume(n) {
                    if ty != MSG_NOP {
                        assert_eq!(pl, payload(pl.len(), seq as u8));
                        got.push(seq);
                    }
                }
            }
            got
        })
    };
    let mut p = Producer::new(n).unwrap();
    let mut seq = 0u32;
    while seq < 20_000 {
        let len = [4, 8, 24, 40, 48][seq as usize % 5];
        match p.produce(&r.mem(), 67, seq, &payload(len, seq as u8)) {
            Ok(()) => seq += 1,
            Err(RingError::Overflow) => std::thread::yield_now(),
            Err(e) => panic!("{e:?}"),
        }
    }
    let got = consumer.join().unwrap();
    assert!(
        got.iter().copied().eq(0..20_000),
        "messages lost or reordered"
    );
}

#[test]
fn in_place_payload_is_zeroed_then_written() {
    let r = Ring::new(8);
    let mut p = Producer::new(8).unwrap();
    // Dirty the slots first: the in-place payload must not show old bytes.
    p.produce(&r.mem(), 70, 1, &payload(56, 0xa0)).unwrap();
    assert!(r.consume(8).is_some());
    p.produce_in_place(&r.mem(), 71, 2, 24, |m| {
        m.set_bytes(0, &0x1122_3344_5566_7788u64.to_ne_bytes());
        m.set_bytes(8, &7u32.to_ne_bytes());
        m.set_bytes(13, &[1]);
        m.set_bytes(18, &0xbeefu16.to_ne_bytes());
        m.set_word(99, 5); // past the payload: ignored
    })
    .unwrap();
    let mut want = vec![0u8; 24];
    want[..8].copy_from_slice(&0x1122_3344_5566_7788u64.to_ne_bytes());
    want[8..12].copy_from_slice(&7u32.to_ne_bytes());
    want[13] = 1;
    want[18..20].copy_from_slice(&0xbeefu16.to_ne_bytes());
    assert_eq!(r.consume(8), Some((71, 2, want)));
    // A message that does not fit is dropped and `fill` never runs.
    let mut ran = false;
    assert_eq!(
        p.produce_in_place(&r.mem(), 72, 3, 80, |_| ran = true),
        Err(RingError::Overflow)
    );
    assert!(!ran);
}
