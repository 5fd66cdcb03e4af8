// SPDX-License-Identifier: GPL-2.0

//! Anonymous-inode file descriptors that own an `Arc<T>`: the file's
//! `private_data` holds one reference from [`AnonFops::into_fd`] to the
//! last close, `mmap` goes to [`AnonFile::mmap`], and [`AnonFops::from_fd`]
//! finds the object behind a descriptor again (checking that the
//! descriptor is one of these files, by its operations table).

use crate::sys::mm::Vma;
use core::ffi::c_int;
use core::marker::PhantomData;
use kernel::bindings;
use kernel::prelude::*;
use kernel::str::CStr;
use kernel::sync::Arc;

/// An object behind an anonymous file descriptor.
pub trait AnonFile: Send + Sync + Sized + 'static {
    /// The inode's name (`[ghost_queue]`).
    const NAME: &'static CStr;

    /// `mmap(2)` of the descriptor.
    fn mmap(&self, vma: &mut Vma) -> Result;
}

/// The file operations of the descriptors of `T`s (a `static` per `T`).
///
/// # Invariants
///
/// `fops` was built by [`Self::new`] for this `T`: its `release` drops an
/// `Arc<T>` from `private_data`, and only [`Self::into_fd`] (of this
/// table) creates files with it, so a file whose `f_op` is `fops` holds an
/// `Arc<T>` in `private_data`.
pub struct AnonFops<T: AnonFile> {
    fops: bindings::file_operations,
    _t: PhantomData<T>,
}

// SAFETY: the table holds function pointers only and is never written
// after construction; C only reads it.
unsafe impl<T: AnonFile> Sync for AnonFops<T> {}

impl<T: AnonFile> AnonFops<T> {
    /// The operations table for `T` (in a `static`).
    pub const fn new() -> Self {
        // SAFETY: plain C data; all-zeroes means "no operation".
        let mut f: bindings::file_operations = unsafe { core::mem::zeroed() };
        f.mmap = Some(Self::mmap);
        f.release = Some(Self::release);
        // INVARIANT: built here, for `T`.
        AnonFops {
            fops: f,
            _t: PhantomData,
        }
    }

    /// The object of a file of this table.
    ///
    /// # Safety
    ///
    /// `file` is a live file created by [`Self::into_fd`], valid for `'a`.
    unsafe fn object<'a>(file: *mut bindings::file) -> &'a T {
        // SAFETY: `private_data` holds the reference `into_fd` gave the
        // file (type invariant), valid until `release`.
        unsafe { &*(*file).private_data.cast::<T>() }
    }

    unsafe extern "C" fn mmap(
        file: *mut bindings::file,
        vma: *mut bindings::vm_area_struct,
    ) -> c_int {
        // SAFETY: the VFS calls this on a live file of this table.
        let obj = unsafe { Self::object(file) };
        // SAFETY: `vma` is the mapping being set up, under `mmap_lock`.
        let vma = unsafe { Vma::from_raw(vma) };
        match obj.mmap(vma) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }

    unsafe extern "C" fn release(_inode: *mut bindings::inode, file: *mut bindings::file) -> c_int {
        // SAFETY: the last close of a file of this table: take back the
        // reference `into_fd` gave it (type invariant). Mappings keep
        // their pages on their own.
        drop(unsafe { Arc::from_raw((*file).private_data.cast::<T>().cast_const()) });
        0
    }

    /// A new descriptor (`O_RDWR | O_CLOEXEC`) that owns `obj`.
    pub fn into_fd(&'static self, obj: Arc<T>) -> Result<c_int> {
        let flags = c_int::try_from(bindings::O_RDWR | bindings::O_CLOEXEC).map_err(|_| EINVAL)?;
        let raw = Arc::into_raw(obj);
        // SAFETY: the name and the table are statics; `raw` is a counted
        // reference that the file owns from here on (dropped in `release`).
        let fd = unsafe {
            bindings::anon_inode_getfd(
                T::NAME.as_char_ptr(),
                &self.fops,
                raw.cast_mut().cast(),
                flags,
            )
        };
        if fd < 0 {
            // SAFETY: no file took the reference: give it back.
            drop(unsafe { Arc::from_raw(raw) });
            return Err(Error::from_errno(fd));
        }
        Ok(fd)
    }

    /// The object behind descriptor `fd`, if it is a file of this table;
    /// `EBADF` otherwise.
    pub fn from_fd(&'static self, fd: i32) -> Result<Arc<T>> {
        let fd = u32::try_from(fd).map_err(|_| EBADF)?;
        // SAFETY: takes a reference on the file behind `fd` (or NULL).
        let file = unsafe { bindings::fget(fd) };
        if file.is_null() {
            return Err(EBADF);
        }
        // SAFETY: `file` is live (we hold a reference).
        let ours = core::ptr::eq(unsafe { (*file).f_op }, &self.fops);
        let obj = if ours {
            // SAFETY: a file of this table holds an `Arc<T>` in
            // `private_data` (type invariant), alive while the file is;
            // take another reference and leave the file's.
            let o = unsafe { Arc::from_raw((*file).private_data.cast::<T>().cast_const()) };
            let copy = o.clone();
            core::mem::forget(o);
            Ok(copy)
        } else {
            Err(EBADF)
        };
        // SAFETY: drops the reference `fget` took.
        unsafe { bindings::fput(file) };
        obj
    }
}
