// SPDX-License-Identifier: GPL-2.0

//! The message ring of a queue: the kernel side (producer).
//!
//! A queue's memory, mapped read-write by agents, is a 64-byte
//! `struct ghost_queue_header` followed, at offset `start` (64), by
//! `struct ghost_ring`: `head`, `tail` and `overflow` (`u32` each), then
//! `nelems` 8-byte slots. A message is an 8-byte header (`u16 type`, `u16
//! length` including the header, `u32 seqnum`) and its payload, and takes
//! `ceil(length / 8)` consecutive slots. `head` and `tail` are free-running
//! counters of slots; the slot of counter `c` is `c & (nelems - 1)`.
//!
//! The kernel writes messages and advances `head`; the agent reads them and
//! advances `tail`. A message never wraps: when it does not fit before the
//! end of the ring, the slots up to the end are covered by one `MSG_NOP`
//! and the message starts at slot 0. When the ring has no room, the message
//! is dropped and `overflow` incremented.
//!
//! Everything in the mapping is untrusted: the producer keeps its own
//! `head` and `nelems` ([`Producer`]) and only *reads* `tail`, treating a
//! value that cannot be right (more slots in use than exist) as a full
//! ring. Slots start at byte 76 of the mapping, so they are only 4-aligned:
//! the producer writes 32-bit words.
//!
//! This file is pure code (no `kernel` crate), also tested on the host.

use core::sync::atomic::{AtomicU32, Ordering};

/// Offset of `struct ghost_ring` in the mapping (`ghost_queue_header.start`).
pub const RING_START: usize = 64;
/// Bytes of `head`, `tail` and `overflow` before the slots.
pub const RING_HEADER: usize = 12;
/// Bytes per slot (one message header).
pub const SLOT: usize = 8;
/// The most slots a queue may have (`GHOST_MAX_QUEUE_ELEMS`).
pub const MAX_ELEMS: u32 = 65536;
/// `MSG_NOP`: padding up to the end of the ring.
pub const MSG_NOP: u16 = 0;

/// The size of the mapping of a queue of `nelems` slots, before rounding
/// up to whole pages.
pub const fn map_bytes(nelems: u32) -> usize {
    RING_START + RING_HEADER + nelems as usize * SLOT
}

/// Whether `nelems` is a valid number of slots: a power of two, at most
/// [`MAX_ELEMS`].
pub const fn valid_nelems(nelems: u32) -> bool {
    nelems.is_power_of_two() && nelems <= MAX_ELEMS
}

/// `head`, `tail` and `overflow` of a mapped ring.
#[repr(C)]
pub struct RingHeader {
    /// Slots produced (free-running); written by the kernel.
    pub head: AtomicU32,
    /// Slots consumed (free-running); written by the agent.
    pub tail: AtomicU32,
    /// Messages dropped because the ring was full.
    pub overflow: AtomicU32,
}

/// A mapped ring: its header and its slots, as 32-bit words (two per slot).
pub struct RingMem<'a> {
    /// `head`, `tail`, `overflow`.
    pub header: &'a RingHeader,
    /// `2 * nelems` words.
    pub words: &'a [AtomicU32],
}

/// Why a message was not produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingError {
    /// No room (or a `tail` that cannot be right): dropped, `overflow`
    /// incremented.
    Overflow,
    /// The payload is not a whole number of 32-bit words, or too long for
    /// a message, or the memory is smaller than the ring.
    Invalid,
}

/// The kernel's private state of one ring.
///
/// # Invariants
///
/// `nelems` is a power of two, at most [`MAX_ELEMS`] (so `nelems - 1` is a
/// mask and never underflows).
#[derive(Debug)]
pub struct Producer {
    head: u32,
    nelems: u32,
    dropped: u64,
}

impl Producer {
    /// A producer for an empty ring of `nelems` slots (see
    /// [`valid_nelems`]); `None` if `nelems` is not valid.
    pub fn new(nelems: u32) -> Option<Self> {
        valid_nelems(nelems).then_some(Producer {
            head: 0,
            nelems,
            dropped: 0,
        })
    }

    /// The number of slots.
    pub fn nelems(&self) -> u32 {
        self.nelems
    }

    /// Messages dropped so far for lack of room.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Stores `v` in word `word` (0 or 1) of the slot of counter `slot`.
    fn put(&self, mem: &RingMem<'_>, slot: u32, word: usize, v: u32) -> Result<(), RingError> {
        let mask = self.nelems - 1;
        let i = (slot & mask) as usize * 2 + word;
        mem.words
            .get(i)
            .ok_or(RingError::Invalid)?
            .store(v, Ordering::Relaxed);
        Ok(())
    }

    /// Appends a message of type `ty` with sequence number `seqnum` and
    /// `payload` (a whole number of 32-bit words, in the ABI's byte order).
    /// The message is visible to a consumer that load-acquires `head`.
    pub fn produce(
        &mut self,
        mem: &RingMem<'_>,
        ty: u16,
        seqnum: u32,
        payload: &[u8],
    ) -> Result<(), RingError> {
        if payload.len() % 4 != 0 {
            return Err(RingError::Invalid);
        }
        self.produce_in_place(mem, ty, seqnum, payload.len(), |m| {
            for (k, chunk) in payload.chunks_exact(4).enumerate() {
                if let Ok(bytes) = <[u8; 4]>::try_from(chunk) {
                    m.set_word(k, u32::from_ne_bytes(bytes));
                }
            }
        })
    }

    /// Appends a message of type `ty` with sequence number `seqnum` and a
    /// payload of `len` bytes (a whole number of 32-bit words) that `fill`
    /// writes straight into the ring's slots: no copy of it is built
    /// first. The payload reads all zeroes until `fill` writes it. The
    /// message is visible to a consumer that load-acquires `head` once
    /// `fill` returns; `fill` does not run if the message is dropped.
    pub fn produce_in_place(
        &mut self,
        mem: &RingMem<'_>,
        ty: u16,
        seqnum: u32,
        len: usize,
        fill: impl FnOnce(&InPlace<'_>),
    ) -> Result<(), RingError> {
        if len % 4 != 0 || mem.words.len() < self.nelems as usize * 2 {
            return Err(RingError::Invalid);
        }
        let length = u16::try_from(SLOT + len).map_err(|_| RingError::Invalid)?;
        let needed = (u32::from(length)).div_ceil(SLOT as u32);
        let tail = mem.header.tail.load(Ordering::Acquire);
        let used = self.head.wrapping_sub(tail);
        let free = self.nelems.checked_sub(used);
        let to_end = self.nelems - (self.head & (self.nelems - 1));
        // Slots skipped with a NOP so that the message does not wrap.
        let skip = if needed > to_end { to_end } else { 0 };
        let fits = free.is_some_and(|free| skip + needed <= free);
        if !fits || needed > self.nelems {
            self.dropped = self.dropped.saturating_add(1);
            mem.header.overflow.fetch_add(1, Ordering::Relaxed);
            return Err(RingError::Overflow);
        }
        let mut slot = self.head;
        if skip > 0 {
            // `skip < needed <= 8191`: the NOP's length fits its `u16`.
            let nop_len = skip * SLOT as u32;
            self.put(mem, slot, 0, u32::from(MSG_NOP) | (nop_len << 16))?;
            self.put(mem, slot, 1, 0)?;
            slot = slot.wrapping_add(skip);
        }
        self.put(mem, slot, 0, u32::from(ty) | (u32::from(length) << 16))?;
        self.put(mem, slot, 1, seqnum)?;
        // The message does not wrap, so its words are consecutive: the
        // header's two, then the payload's, from word `first`.
        let first = ((slot & (self.nelems - 1)) as usize + 1) * 2;
        let words = first
            .checked_add(len / 4)
            .and_then(|end| mem.words.get(first..end))
            .ok_or(RingError::Invalid)?;
        for w in words {
            w.store(0, Ordering::Relaxed);
        }
        fill(&InPlace { words });
        self.head = self.head.wrapping_add(skip + needed);
        // Publishes the message: a consumer that acquires `head` sees it.
        mem.header.head.store(self.head, Ordering::Release);
        Ok(())
    }
}

/// The payload of a message being produced, in the ring: written in
/// place by [`Producer::produce_in_place`]'s `fill`, in the ABI's byte
/// order (native), as 32-bit words (the slots are only 4-aligned). Writes
/// past the payload are ignored.
pub struct InPlace<'m> {
    words: &'m [AtomicU32],
}

impl InPlace<'_> {
    /// Stores payload word `k` (bytes `4k..4k + 4`).
    pub fn set_word(&self, k: usize, v: u32) {
        if let Some(w) = self.words.get(k) {
            w.store(v, Ordering::Relaxed);
        }
    }

    /// Stores `b` at byte `off` of the payload: whole words directly, other
    /// bytes into their word (read, changed, written: nobody else writes
    /// the payload before it is published).
    pub fn set_bytes(&self, off: usize, b: &[u8]) {
        if off % 4 == 0 && b.len() % 4 == 0 {
            for (i, chunk) in b.chunks_exact(4).enumerate() {
                if let Ok(bytes) = <[u8; 4]>::try_from(chunk) {
                    self.set_word(off / 4 + i, u32::from_ne_bytes(bytes));
                }
            }
            return;
        }
        for (i, &byte) in b.iter().enumerate() {
            let at = off.saturating_add(i);
            if let Some(w) = self.words.get(at / 4) {
                let mut bytes = w.load(Ordering::Relaxed).to_ne_bytes();
                if let Some(x) = bytes.get_mut(at % 4) {
                    *x = byte;
                }
                w.store(u32::from_ne_bytes(bytes), Ordering::Relaxed);
            }
        }
    }
}
