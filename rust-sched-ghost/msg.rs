// SPDX-License-Identifier: GPL-2.0

//! Message payloads, laid out from the uapi structures
//! (`struct ghost_msg_payload_*`): a builder writes each field at the offset
//! the generated bindings give, so the bytes match the C layout exactly. It
//! writes them straight into the queue's ring slot
//! ([`crate::ring::InPlace`]), while the queue's producer holds the slot:
//! no copy of the payload is built first.

use crate::ring::InPlace;
use core::mem::size_of;
use kernel::uapi;

/// The payload of type `T` (a `ghost_msg_payload_*`) of a message being
/// produced, in its ring slot (zeroed before the builder runs).
pub struct Payload<'m, 's, T> {
    slot: &'s InPlace<'m>,
    _t: core::marker::PhantomData<T>,
}

// Every payload fits a message (at most 64 bytes, as ghOSt's).
const _: () = assert!(size_of::<uapi::ghost_msg_payload_task_new>() <= 64);
const _: () = assert!(size_of::<uapi::ghost_msg_payload_task_preempt>() <= 64);

impl<'m, 's, T> Payload<'m, 's, T> {
    /// The payload's length in the message: `sizeof(T)` rounded up to
    /// whole 32-bit words.
    pub const LEN: usize = size_of::<T>().next_multiple_of(4);

    /// The builder of the payload in `slot`.
    pub fn new(slot: &'s InPlace<'m>) -> Self {
        Payload {
            slot,
            _t: core::marker::PhantomData,
        }
    }

    fn put(&mut self, off: usize, b: &[u8]) -> &mut Self {
        if off.saturating_add(b.len()) <= Self::LEN {
            self.slot.set_bytes(off, b);
        }
        self
    }

    /// Writes an `s64`/`u64` field at `off`.
    pub fn u64(&mut self, off: usize, v: u64) -> &mut Self {
        self.put(off, &v.to_ne_bytes())
    }

    /// Writes an `int`/`u32` field at `off`.
    pub fn u32(&mut self, off: usize, v: u32) -> &mut Self {
        self.put(off, &v.to_ne_bytes())
    }

    /// Writes a `u16` field at `off`.
    pub fn u16(&mut self, off: usize, v: u16) -> &mut Self {
        self.put(off, &v.to_ne_bytes())
    }

    /// Writes a one-byte boolean at `off`.
    pub fn flag(&mut self, off: usize, v: bool) -> &mut Self {
        self.put(off, &[u8::from(v)])
    }
}

/// The byte offset of field `$f` of payload `$t` (a `uapi` type).
#[macro_export]
macro_rules! off {
    ($t:ident, $f:ident) => {
        core::mem::offset_of!(kernel::uapi::$t, $f)
    };
}
