// SPDX-License-Identifier: GPL-2.0

//! Typed views of kernel memory that userspace maps ([`UserBuf`]): a
//! [`TypedBuf<T>`] is a buffer that holds one `T`, read and written by the
//! kernel through `&T` while processes map it.
//!
//! This module owns the claim that a type may be viewed so
//! ([`SharedView`]); the status-word region ([`crate::sw::Region`]) is the
//! one listed here.

use crate::sys::mm::UserBuf;
use core::marker::PhantomData;
use core::mem::{align_of, size_of};
use kernel::prelude::*;

/// A type that may live in memory userspace maps.
///
/// # Safety
///
/// Every bit pattern is a valid value, and every field is an atomic (or
/// made of atomics), so that concurrent writes by userspace (where it maps
/// the memory writable) or by other CPUs are never undefined behaviour.
pub unsafe trait SharedView: Sync {}

// SAFETY: `Region` is `#[repr(C)]` and made only of `AtomicU32`s and
// `AtomicU64`s (header and status words), valid for any bit pattern.
unsafe impl SharedView for crate::sw::Region {}

/// A [`UserBuf`] that holds a `T` at its start.
///
/// # Invariants
///
/// `buf` is at least `size_of::<T>()` bytes, aligned for `T`.
pub struct TypedBuf<T: SharedView> {
    buf: UserBuf,
    _t: PhantomData<T>,
}

impl<T: SharedView> TypedBuf<T> {
    /// Views `buf` as a `T`; `EINVAL` if it is too small or misaligned.
    pub fn new(buf: UserBuf) -> Result<Self> {
        if buf.len() < size_of::<T>() || (buf.as_ptr() as usize) % align_of::<T>() != 0 {
            return Err(EINVAL);
        }
        // INVARIANT: checked just above.
        Ok(TypedBuf {
            buf,
            _t: PhantomData,
        })
    }

    /// The `T`.
    pub fn get(&self) -> &T {
        // SAFETY: by the type invariant the buffer, which lives as long as
        // `self`, holds a properly aligned `T`; `T: SharedView` is valid for
        // any bit pattern and tolerates concurrent writers.
        unsafe { &*self.buf.as_ptr().cast::<T>() }
    }

    /// The underlying buffer (e.g. to map it).
    pub fn buf(&self) -> &UserBuf {
        &self.buf
    }
}
