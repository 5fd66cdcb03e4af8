// SPDX-License-Identifier: GPL-2.0

//! Message payloads, laid out from the uapi structures
//! (`struct ghost_msg_payload_*`): a builder writes each field at the offset
//! the generated bindings give, so the bytes match the C layout exactly.

use core::mem::size_of;
use kernel::uapi;

/// The bytes of one payload of type `T` (a `ghost_msg_payload_*`).
pub struct Payload<T> {
    bytes: [u8; 64],
    _t: core::marker::PhantomData<T>,
}

// Every payload fits the builder's buffer.
const _: () = assert!(size_of::<uapi::ghost_msg_payload_task_new>() <= 64);
const _: () = assert!(size_of::<uapi::ghost_msg_payload_task_preempt>() <= 64);

impl<T> Payload<T> {
    /// A zeroed payload.
    pub fn new() -> Self {
        Payload {
            bytes: [0; 64],
            _t: core::marker::PhantomData,
        }
    }

    fn put(&mut self, off: usize, b: &[u8]) -> &mut Self {
        if let Some(dst) = self.bytes.get_mut(off..off.saturating_add(b.len())) {
            dst.copy_from_slice(b);
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

    /// The payload, `sizeof(T)` rounded up to whole 32-bit words.
    pub fn bytes(&self) -> &[u8] {
        let n = size_of::<T>().next_multiple_of(4).min(self.bytes.len());
        self.bytes.get(..n).unwrap_or(&[])
    }
}

/// The byte offset of field `$f` of payload `$t` (a `uapi` type).
#[macro_export]
macro_rules! off {
    ($t:ident, $f:ident) => {
        core::mem::offset_of!(kernel::uapi::$t, $f)
    };
}
