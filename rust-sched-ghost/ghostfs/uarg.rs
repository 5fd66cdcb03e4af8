// SPDX-License-Identifier: GPL-2.0

//! ioctl argument structs of the uapi (`include/uapi/linux/ghost.h`, as
//! bindgen'd into `kernel::uapi`), copied from and to user memory whole.
//!
//! The ioctls read named fields, never byte offsets. Which structs may be
//! filled from arbitrary user bytes, or copied out byte for byte, is
//! [`crate::sys::uapi`]'s claim.
//!
//! Calls: [`crate::sys::uapi`] only.

pub use crate::sys::uapi::User;
use core::mem::size_of;
use kernel::prelude::*;
use kernel::types::{AsBytes, FromBytes};
use kernel::uaccess::UserSlice;

/// Copies a whole `T` in from the user address `at` (`EFAULT` if it is not
/// readable).
pub fn read<T>(at: usize) -> Result<T>
where
    User<T>: FromBytes,
{
    Ok(UserSlice::new(at, size_of::<T>())
        .reader()
        .read::<User<T>>()?
        .0)
}

/// Reads `n` consecutive `T`s at the user address `at`, one at a time,
/// calling `f` on each in order; stops at the first error (`EFAULT` for an
/// unreadable one, or `f`'s).
pub fn read_each<T>(at: usize, n: usize, mut f: impl FnMut(usize, T) -> Result) -> Result
where
    User<T>: FromBytes,
{
    let len = n.checked_mul(size_of::<T>()).ok_or(EFAULT)?;
    let mut r = UserSlice::new(at, len).reader();
    for i in 0..n {
        f(i, r.read::<User<T>>()?.0)?;
    }
    Ok(())
}

/// Writes `v` to field `off` (an `offset_of!` into the argument struct) of
/// the argument at user address `arg` (`EFAULT` if not writable).
pub fn write_field<V>(arg: usize, off: usize, v: &V) -> Result
where
    V: AsBytes,
{
    let at = arg.checked_add(off).ok_or(EFAULT)?;
    UserSlice::new(at, size_of::<V>()).writer().write(v)
}
