// SPDX-License-Identifier: GPL-2.0

//! A small safe wrapper over kernfs, the in-memory filesystem core under
//! sysfs and cgroupfs, for ghostfs.
//!
//! - [`Root`]: a kernfs hierarchy (`kernfs_create_root`);
//! - [`Node`]: a directory or file in it;
//! - [`FileOps`]: what a file does on read (`show`, through a [`SeqFile`]),
//!   write, open, release and mmap, as a `#[vtable]` trait;
//!   [`Node::create_file`] builds the `struct kernfs_ops` for an
//!   implementation at compile time;
//! - [`FsType`]: a filesystem type every mount of which shows one hierarchy,
//!   and its mount point under `/sys/fs`.
//!
//! Calls: [`crate::sys::mm`] (the mapping of an `mmap`), [`crate::sys`]'s
//! `OpsTable`, and C.
//!
//! All `unsafe` code of ghostfs lives here. A file carries an integer *key*
//! (in `kn->priv`) rather than a pointer: callbacks look their object up by
//! key, so no node can outlive the memory it refers to. kernfs guarantees
//! that a file's callbacks run only while the node is active: once
//! [`Node::remove`] returns, no callback of that node runs again. An *open*
//! may also hold a reference to the object ([`OpenFile::hold`], taken by
//! `open` and dropped at release), for a hot callback to skip the lookup.

use crate::sys::mm::Vma;
use crate::sys::OpsTable;
use core::any::TypeId;
use core::marker::PhantomData;
use core::ptr::{addr_of_mut, null_mut, NonNull};
use core::sync::atomic::{AtomicPtr, Ordering};
use kernel::bindings;
use kernel::ffi::{c_char, c_int, c_void};
use kernel::prelude::*;
use kernel::str::CStr;
use kernel::types::Opaque;

/// Converts a pointer that may carry an errno (`ERR_PTR`) into a `Result`.
fn from_err_ptr<T>(ptr: *mut T) -> Result<NonNull<T>> {
    const MAX_ERRNO: usize = 4095;
    let v = ptr as usize;
    if v >= usize::MAX - MAX_ERRNO + 1 {
        // The low bits are a negative errno in `-MAX_ERRNO..0`; `v as isize`
        // is that errno.
        return Err(Error::from_errno(v as isize as c_int));
    }
    NonNull::new(ptr).ok_or(ENOMEM)
}

/// A kernfs hierarchy.
///
/// # Invariants
///
/// `self.0` was returned by `kernfs_create_root` and has not been destroyed.
pub struct Root(NonNull<bindings::kernfs_root>);

// SAFETY: kernfs roots are protected by kernfs's own locks; the pointer may
// be used from any thread.
unsafe impl Send for Root {}
// SAFETY: as above; `&Root` only offers operations kernfs serialises.
unsafe impl Sync for Root {}

impl Root {
    /// Creates an empty hierarchy. Its nodes stay invisible until
    /// [`Node::activate`] is called on them (or on an ancestor). As in
    /// sysfs, opening a file for writing fails with `EACCES`, even for
    /// root, unless its mode has a write bit and it can be written (a write
    /// or mmap callback); opening it for reading, unless it can be read.
    pub fn new() -> Result<Self> {
        // SAFETY: no syscall ops and no private data; the flags are valid.
        let root = unsafe {
            bindings::kernfs_create_root(
                core::ptr::null_mut(),
                bindings::kernfs_root_flag_KERNFS_ROOT_CREATE_DEACTIVATED
                    | bindings::kernfs_root_flag_KERNFS_ROOT_EXTRA_OPEN_PERM_CHECK,
                core::ptr::null_mut(),
            )
        };
        Ok(Root(from_err_ptr(root)?))
    }

    /// The root directory.
    pub fn node(&self) -> Node {
        // SAFETY: by the type invariant the root is valid.
        let kn = unsafe { bindings::kernfs_root_to_node(self.0.as_ptr()) };
        // INVARIANT: the root node lives as long as the root.
        Node(kn)
    }

    /// Keeps the hierarchy for the lifetime of the kernel.
    fn leak(self) -> *mut bindings::kernfs_root {
        let p = self.0.as_ptr();
        core::mem::forget(self);
        p
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        // SAFETY: by the type invariant the root is valid and not yet
        // destroyed; it is not used after this.
        unsafe { bindings::kernfs_destroy_root(self.0.as_ptr()) }
    }
}

/// A directory or file of a kernfs hierarchy.
///
/// # Invariants
///
/// `self.0` is a node of a live hierarchy that has not been removed. `Node`
/// is a plain handle (it holds no reference): the creator of a node decides
/// when it is removed.
#[derive(Clone, Copy)]
pub struct Node(*mut bindings::kernfs_node);

// SAFETY: kernfs nodes are reference counted and protected by kernfs's own
// locks; the handle may move between threads.
unsafe impl Send for Node {}
// SAFETY: as above; every operation on `&Node` is serialised by kernfs.
unsafe impl Sync for Node {}

/// Ownership and mode of a new node.
#[derive(Clone, Copy)]
pub struct Perm {
    /// Permission bits (e.g. `0o660`).
    pub mode: u16,
    /// Owning user (in the initial user namespace).
    pub uid: u32,
    /// Owning group (in the initial user namespace).
    pub gid: u32,
}

impl Perm {
    /// `mode`, owned by root:root.
    pub const fn root(mode: u16) -> Self {
        Perm {
            mode,
            uid: 0,
            gid: 0,
        }
    }
}

impl Node {
    /// Creates a file named `name` whose callbacks are those of `T`. Each
    /// callback receives `key`, an integer the creator chooses (ghostfs uses
    /// the enclave id), so a node never points at memory it could outlive.
    /// `size` is what `stat` reports.
    pub fn create_file<T: FileOps>(
        &self,
        name: &CStr,
        perm: Perm,
        size: i64,
        key: usize,
    ) -> Result<Node> {
        // SAFETY: `self.0` is a live directory (type invariant); `name` is a
        // NUL-terminated string that kernfs copies; the ops table is
        // `'static`; `priv` holds a plain integer, never dereferenced.
        let kn = unsafe {
            bindings::__kernfs_create_file(
                self.0,
                name.as_char_ptr(),
                perm.mode,
                bindings::kuid_t { val: perm.uid },
                bindings::kgid_t { val: perm.gid },
                size,
                FileAdapter::<T>::OPS,
                key as *mut c_void,
                core::ptr::null(),
                core::ptr::null_mut(),
            )
        };
        Ok(Node(from_err_ptr(kn)?.as_ptr()))
    }

    /// Creates a subdirectory.
    pub fn create_dir(&self, name: &CStr, perm: Perm) -> Result<Node> {
        // SAFETY: `self.0` is a live directory; `name` is copied by kernfs.
        let kn = unsafe {
            bindings::kernfs_create_dir_ns(
                self.0,
                name.as_char_ptr(),
                perm.mode,
                bindings::kuid_t { val: perm.uid },
                bindings::kgid_t { val: perm.gid },
                core::ptr::null_mut(),
                core::ptr::null(),
            )
        };
        Ok(Node(from_err_ptr(kn)?.as_ptr()))
    }

    /// Makes the node and everything below it visible.
    pub fn activate(&self) {
        // SAFETY: `self.0` is a live node.
        unsafe { bindings::kernfs_activate(self.0) }
    }

    /// Wakes up pollers of the file and notifies inotify/fsnotify watchers.
    pub fn notify(&self) {
        // SAFETY: `self.0` is a live node.
        unsafe { bindings::kernfs_notify(self.0) }
    }

    /// Removes the node and everything below it. Waits until no callback of
    /// any removed node is running; none runs afterwards.
    pub fn remove(self) {
        // SAFETY: `self.0` is a live node; consuming `self` ends this handle.
        unsafe { bindings::kernfs_remove(self.0) }
    }
}

/// A `seq_file` being filled by [`FileOps::show`].
#[repr(transparent)]
pub struct SeqFile(Opaque<bindings::seq_file>);

impl SeqFile {
    /// Wraps a seq_file being filled by a `show` callback.
    ///
    /// # Safety
    ///
    /// `m` must be the live seq_file of the running `show`, valid for `'a`.
    pub unsafe fn from_raw<'a>(m: *mut bindings::seq_file) -> &'a mut SeqFile {
        // SAFETY: guaranteed by the caller; `SeqFile` is transparent.
        unsafe { &mut *m.cast::<SeqFile>() }
    }

    /// Appends raw bytes. If they do not fit, seq_file retries the whole
    /// `show` with a larger buffer.
    pub fn write_bytes(&mut self, b: &[u8]) {
        // SAFETY: `self` wraps the live seq_file passed to `show`; `b` is
        // valid for `b.len()` bytes.
        unsafe { bindings::seq_write(self.0.get(), b.as_ptr().cast(), b.len()) };
    }
}

impl core::fmt::Write for SeqFile {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.write_bytes(s.as_bytes());
        Ok(())
    }
}

/// An open kernfs file, as seen by a [`FileOps::write`] call.
///
/// # Invariants
///
/// Wraps the live `kernfs_open_file` of the running callback, whose node is
/// active (kernfs holds an active reference for the callback's duration).
#[repr(transparent)]
pub struct OpenFile(Opaque<bindings::kernfs_open_file>);

impl OpenFile {
    /// Whether this open is for writing.
    pub fn is_writer(&self) -> bool {
        // SAFETY: by the type invariant `of` and `of->file` are valid.
        let mode = unsafe { (*(*self.0.get()).file).f_mode };
        mode & bindings::GHOST_FMODE_WRITE != 0
    }

    /// `of->priv`: 0, a word of [`Self::set_word`] (shifted left by one),
    /// or a value of [`Self::hold`] (a `KBox<Held<T>>` pointer, tagged
    /// with [`HELD_TAG`]).
    fn raw_priv(&self) -> usize {
        // SAFETY: by the type invariant `of` is valid; `of->priv` belongs to
        // the file's implementation (this wrapper), kzalloc'ed by kernfs.
        unsafe { (*self.0.get()).priv_ as usize }
    }

    fn set_raw_priv(&self, v: usize) {
        // SAFETY: as in `raw_priv`; kernfs serialises open, callbacks and
        // release of one open file as far as `priv` is concerned: `open`
        // and `release` write it, with no callback of this open running.
        unsafe { (*self.0.get()).priv_ = v as *mut c_void }
    }

    /// This open's private word (0 until [`OpenFile::set_word`]; 0 for an
    /// open that [holds](Self::hold) a value).
    pub fn word(&self) -> usize {
        let w = self.raw_priv();
        if w & HELD_TAG != 0 {
            0
        } else {
            w >> 1
        }
    }

    /// Stores a private word for this open (e.g. "holds the write claim");
    /// its top bit is lost. Ignored on an open that holds a value.
    pub fn set_word(&self, w: usize) {
        if self.raw_priv() & HELD_TAG == 0 {
            self.set_raw_priv(w << 1);
        }
    }

    /// Makes this open hold `value` until its release, so that its
    /// callbacks get it with [`Self::held`] instead of a lookup (e.g. the
    /// object the file belongs to). From `open` only; `EBUSY` if the open
    /// already has a word or a value. Allocates (may sleep).
    pub fn hold<T: Clone + Send + Sync + 'static>(&self, value: T) -> Result {
        if self.raw_priv() != 0 {
            return Err(EBUSY);
        }
        let held = KBox::new(
            Held {
                id: TypeId::of::<T>(),
                drop: drop_held::<T>,
                value,
            },
            GFP_KERNEL,
        )?;
        let p = KBox::into_raw(held) as usize;
        // A box is at least 8-aligned: the tag bit is free.
        self.set_raw_priv(p | HELD_TAG);
        Ok(())
    }

    /// A clone of the value of type `T` this open [holds](Self::hold), if
    /// it holds one of that type. A clone, not a reference: a callback may
    /// end the hold (e.g. [`Self::remove_while_active`] releases the open).
    pub fn held<T: Clone + 'static>(&self) -> Option<T> {
        let w = self.raw_priv();
        if w & HELD_TAG == 0 {
            return None;
        }
        let p = (w & !HELD_TAG) as *const Held<T>;
        // SAFETY: a tagged `priv` was stored by `hold`: a live
        // `KBox<Held<U>>` for some `U`, freed only at release, which does
        // not run during a callback of this open (the last close cannot,
        // and a removal first waits for running callbacks). `Held` is
        // `repr(C)` with `id` first, at offset 0 whatever `U` is.
        let id = unsafe { p.cast::<TypeId>().read() };
        if id != TypeId::of::<T>() {
            return None;
        }
        // SAFETY: as above, and `U` is `T` (same `TypeId`).
        Some(unsafe { (*p).value.clone() })
    }

    /// Drops the value this open holds, if any (its release).
    fn drop_held(&self) {
        let w = self.raw_priv();
        if w & HELD_TAG == 0 {
            return;
        }
        self.set_raw_priv(0);
        let p = (w & !HELD_TAG) as *mut Held<()>;
        // SAFETY: as in `held`: a live `KBox<Held<U>>`; its header (`id`,
        // `drop`) is laid out alike for every `U` (`repr(C)`, the value
        // last). `drop` is `drop_held::<U>`, called once: `priv` is cleared.
        unsafe { ((*p).drop)(p.cast()) };
    }

    /// The file's node, e.g. to [`Node::notify`] its pollers.
    pub fn node(&self) -> Node {
        // SAFETY: by the type invariant `of->kn` is valid.
        // INVARIANT: the node is active during the callback (open and the
        // callbacks) or still allocated (release, which holds a reference).
        Node(unsafe { (*self.0.get()).kn })
    }

    /// The file's name.
    pub fn name(&self) -> &CStr {
        // SAFETY: by the type invariant `of->kn` is valid; its name is a
        // NUL-terminated string that lives as long as the node, which this
        // open file holds (ghostfs never renames nodes).
        unsafe { CStr::from_char_ptr((*(*self.0.get()).kn).name) }
    }

    /// The key the file was created with.
    pub fn key(&self) -> usize {
        // SAFETY: by the type invariant `of` and `of->kn` are valid.
        unsafe { (*(*self.0.get()).kn).priv_ as usize }
    }

    /// Removes `node` (typically the directory holding this very file) from
    /// inside this file's callback.
    ///
    /// A plain [`Node::remove`] would wait for this callback to finish, which
    /// never happens; this drops the callback's active reference around the
    /// removal, as cgroupfs does for `rmdir`. After it returns, the callback
    /// must not touch anything the removal may have freed.
    pub fn remove_while_active(&self, node: Node) {
        // SAFETY: by the type invariant `kn` is this callback's active node;
        // breaking and then unbreaking its protection is the documented way
        // to remove it from its own callback (the node stays allocated
        // because the open file holds a reference).
        unsafe {
            let kn = (*self.0.get()).kn;
            bindings::kernfs_break_active_protection(kn);
            bindings::kernfs_remove(node.0);
            bindings::kernfs_unbreak_active_protection(kn);
        }
    }
}

/// Tags a `priv` that holds a value ([`OpenFile::hold`]).
const HELD_TAG: usize = 1;

/// A value an open file holds, behind a header that says its type and how
/// to drop it (`repr(C)`: the header is laid out alike for every `T`).
#[repr(C)]
struct Held<T> {
    id: TypeId,
    drop: unsafe fn(*mut c_void),
    value: T,
}

/// Frees a held value.
///
/// # Safety
///
/// `p` came from `KBox::into_raw` of a `KBox<Held<T>>` and is not used
/// afterwards.
unsafe fn drop_held<T>(p: *mut c_void) {
    // SAFETY: the caller's contract.
    drop(unsafe { KBox::from_raw(p.cast::<Held<T>>()) });
}

/// The behaviour of a kernfs file.
#[vtable]
pub trait FileOps {
    /// Produces the file's content for a read; `key` is the file's key.
    fn show(_key: usize, _m: &mut SeqFile) -> Result {
        kernel::build_error(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Handles one `write(2)` of `input`; returns the bytes consumed.
    fn write(_file: &OpenFile, _input: &[u8]) -> Result<usize> {
        kernel::build_error(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Called on `open(2)`; an error fails the open.
    fn open(_file: &OpenFile) -> Result {
        kernel::build_error(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Called once per successful open: on the last close, or when the
    /// node is removed while the file is open, whichever comes first. A
    /// value the open [holds](OpenFile::hold) is dropped after it.
    fn release(_file: &OpenFile) {
        kernel::build_error(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Sets up an `mmap(2)` of the file. When the node is removed, kernfs
    /// unmaps every mapping of it: later accesses get `SIGBUS`.
    fn mmap(_file: &OpenFile, _vma: &mut Vma) -> Result {
        kernel::build_error(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Handles `ioctl(2)` (the `kernfs_ops::ioctl` of patch 0006): called
    /// with the node active and without the open file's mutex, so calls may
    /// run concurrently. Returns the syscall's non-negative result.
    fn ioctl(_file: &OpenFile, _cmd: u32, _arg: usize) -> Result<isize> {
        kernel::build_error(kernel::error::VTABLE_DEFAULT_ERROR)
    }
}

/// Builds `struct kernfs_ops` tables from [`FileOps`] implementations.
struct FileAdapter<T: FileOps>(PhantomData<T>);

impl<T: FileOps> FileAdapter<T> {
    /// `seq_show`: [`FileOps::show`].
    ///
    /// # Safety
    ///
    /// Called by kernfs with the live seq_file of a read of a file of `T`.
    unsafe extern "C" fn seq_show(sf: *mut bindings::seq_file, _v: *mut c_void) -> c_int {
        // SAFETY: kernfs' seq_file has the live open file of this read in
        // `private`, whose node is active during the callback; `OpenFile` is
        // transparent.
        let file = unsafe { &*(*sf).private.cast::<OpenFile>() };
        let key = file.key();
        // SAFETY: `sf` is the live seq_file of this read.
        let m = unsafe { SeqFile::from_raw(sf) };
        match T::show(key, m) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }

    /// `write`: [`FileOps::write`].
    ///
    /// # Safety
    ///
    /// Called by kernfs with a live open file of `T` and its kernel copy of
    /// the written bytes.
    unsafe extern "C" fn write(
        of: *mut bindings::kernfs_open_file,
        buf: *mut c_char,
        bytes: usize,
        _off: bindings::loff_t,
    ) -> isize {
        // SAFETY: kernfs calls this with a live `of` whose node is active;
        // `OpenFile` is transparent.
        let file = unsafe { &*of.cast::<OpenFile>() };
        // SAFETY: kernfs copied the user's bytes into `buf`, a kernel buffer
        // of at least `bytes` bytes that lives for this call.
        let input = unsafe { core::slice::from_raw_parts(buf.cast::<u8>(), bytes) };
        match T::write(file, input) {
            // A write never consumes more than it was given.
            Ok(n) => isize::try_from(n.min(bytes)).unwrap_or(isize::MAX),
            Err(e) => e.to_errno() as isize,
        }
    }

    /// `open`: [`FileOps::open`].
    ///
    /// # Safety
    ///
    /// Called by kernfs with a live open file of `T`.
    unsafe extern "C" fn open(of: *mut bindings::kernfs_open_file) -> c_int {
        // SAFETY: kernfs calls this with a live `of` whose node is active.
        match T::open(unsafe { &*of.cast::<OpenFile>() }) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }

    /// `release`: [`FileOps::release`].
    ///
    /// # Safety
    ///
    /// Called by kernfs with a live open file of `T`, once per open.
    unsafe extern "C" fn release(of: *mut bindings::kernfs_open_file) {
        // SAFETY: kernfs calls this with a live `of`, once per open.
        let file = unsafe { &*of.cast::<OpenFile>() };
        if T::HAS_RELEASE {
            T::release(file);
        }
        file.drop_held();
    }

    /// `mmap`: [`FileOps::mmap`].
    ///
    /// # Safety
    ///
    /// Called by kernfs with a live open file of `T` and the mapping being
    /// set up, under `mmap_lock`.
    unsafe extern "C" fn mmap(
        of: *mut bindings::kernfs_open_file,
        vma: *mut bindings::vm_area_struct,
    ) -> c_int {
        // SAFETY: kernfs calls this with a live `of` whose node is active.
        let file = unsafe { &*of.cast::<OpenFile>() };
        // SAFETY: `vma` is the mapping being set up, under `mmap_lock`.
        let vma = unsafe { Vma::from_raw(vma) };
        match T::mmap(file, vma) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }

    /// `ioctl`: [`FileOps::ioctl`].
    ///
    /// # Safety
    ///
    /// Called by kernfs with a live open file of `T`.
    unsafe extern "C" fn ioctl(
        of: *mut bindings::kernfs_open_file,
        cmd: kernel::ffi::c_uint,
        arg: kernel::ffi::c_ulong,
    ) -> kernel::ffi::c_long {
        // SAFETY: kernfs calls this with a live `of` whose node is active.
        let file = unsafe { &*of.cast::<OpenFile>() };
        match T::ioctl(file, cmd, arg) {
            Ok(n) => n,
            Err(e) => e.to_errno() as isize,
        }
    }

    const fn build() -> bindings::kernfs_ops {
        // SAFETY: `struct kernfs_ops` is plain data; all-zeroes means "no
        // callbacks", which kernfs handles (reads/writes get EINVAL/EIO).
        let mut ops: bindings::kernfs_ops = unsafe { core::mem::zeroed() };
        if T::HAS_SHOW {
            ops.seq_show = Some(Self::seq_show);
        }
        if T::HAS_WRITE {
            // `atomic_write_len` stays 0: kernfs hands over at most a page
            // per call, and every ghostfs command is far shorter, so an
            // overlong write fails the parse (EINVAL) on its first page.
            ops.write = Some(Self::write);
        }
        if T::HAS_OPEN {
            ops.open = Some(Self::open);
        }
        // An `open` may hold a value: the release drops it.
        if T::HAS_RELEASE || T::HAS_OPEN {
            ops.release = Some(Self::release);
        }
        if T::HAS_MMAP {
            ops.mmap = Some(Self::mmap);
        }
        if T::HAS_IOCTL {
            ops.ioctl = Some(Self::ioctl);
        }
        ops
    }

    const OPS: &'static bindings::kernfs_ops = &Self::build();
}

/// A filesystem type whose every mount shows the same kernfs hierarchy
/// (mounting it again, anywhere, shows the same files), in a `static`.
///
/// # Invariants
///
/// `raw` is the first field (`#[repr(C)]`): the `fs_type` of a mount
/// context of this type points to `self`. `root` is NULL or a hierarchy
/// leaked by [`FsType::register`], which lives for good.
#[repr(C)]
pub struct FsType {
    raw: Opaque<bindings::file_system_type>,
    root: AtomicPtr<bindings::kernfs_root>,
    magic: usize,
}

// SAFETY: after registration only the VFS touches `raw`, under its locks;
// `root` is an atomic, `magic` immutable.
unsafe impl Sync for FsType {}

/// The mount context operations of every [`FsType`]: kernfs does the work.
static FS_CTX_OPS: OpsTable<bindings::fs_context_operations> = {
    // SAFETY: plain C data; all-zeroes means "no operation".
    let mut o: bindings::fs_context_operations = unsafe { core::mem::zeroed() };
    o.free = Some(free_fs_context);
    o.get_tree = Some(bindings::kernfs_get_tree);
    // SAFETY: function pointers only; C only reads the table.
    unsafe { OpsTable::new(o) }
};

impl FsType {
    /// A filesystem type named `name` whose superblocks have magic number
    /// `magic`; it shows nothing until [`FsType::register`].
    pub const fn new(name: &'static CStr, magic: usize) -> Self {
        // SAFETY: plain C data; all-zeroes is the usual starting point for
        // a `struct file_system_type`.
        let mut t: bindings::file_system_type = unsafe { core::mem::zeroed() };
        t.name = name.as_char_ptr();
        t.init_fs_context = Some(init_fs_context);
        t.kill_sb = Some(bindings::kernfs_kill_sb);
        FsType {
            raw: Opaque::new(t),
            root: AtomicPtr::new(null_mut()),
            magic,
        }
    }

    /// Creates the mount point `/sys/fs/<mount_point>`, keeps `root` for
    /// good as the hierarchy every mount shows, and registers the type.
    /// Boot, once. On failure the mount point is removed again.
    pub fn register(&'static self, root: Root, mount_point: &'static CStr) -> Result {
        let name = mount_point.as_char_ptr();
        // SAFETY: `fs_kobj` is set up by the VFS long before device initcalls
        // and never freed; the name is a static string.
        let ret = unsafe { bindings::sysfs_create_mount_point(bindings::fs_kobj, name) };
        if ret != 0 {
            return Err(Error::from_errno(ret));
        }
        // INVARIANT: leaked: the hierarchy lives for good.
        self.root.store(root.leak(), Ordering::Release);
        // SAFETY: `self` is a static that lives forever and is registered
        // once.
        let ret = unsafe { bindings::register_filesystem(self.raw.get()) };
        if ret != 0 {
            // SAFETY: as above; created just now, nothing is mounted there.
            unsafe { bindings::sysfs_remove_mount_point(bindings::fs_kobj, name) };
            return Err(Error::from_errno(ret));
        }
        Ok(())
    }

    /// The root directory of the registered hierarchy (`None` before
    /// [`FsType::register`]).
    pub fn root_dir(&self) -> Option<Node> {
        let root = NonNull::new(self.root.load(Ordering::Acquire))?;
        // SAFETY: by the type invariant the hierarchy lives for good.
        let kn = unsafe { bindings::kernfs_root_to_node(root.as_ptr()) };
        // INVARIANT: the root directory of a hierarchy that is never
        // destroyed is never removed.
        Some(Node(kn))
    }
}

/// `init_fs_context` of every [`FsType`]: a kernfs mount of its hierarchy.
///
/// # Safety
///
/// Called by the VFS with a freshly allocated context of an [`FsType`].
unsafe extern "C" fn init_fs_context(fc: *mut bindings::fs_context) -> c_int {
    // SAFETY: `fc` is valid; its `fs_type` is the `raw` field, the first,
    // of a static `FsType` (type invariant).
    let this = unsafe { &*(*fc).fs_type.cast::<FsType>() };
    let root = this.root.load(Ordering::Acquire);
    if root.is_null() {
        return ENODEV.to_errno();
    }
    let kfc = bindings::kernfs_fs_context {
        root,
        ns_tag: null_mut(),
        magic: this.magic,
        new_sb_created: false,
    };
    let kfc = match KBox::new(kfc, GFP_KERNEL) {
        Ok(b) => KBox::into_raw(b),
        Err(_) => return ENOMEM.to_errno(),
    };
    // SAFETY: the VFS passes a valid, freshly allocated `fc` that this
    // function initialises; `init_user_ns` is a static that lives forever.
    unsafe {
        (*fc).fs_private = kfc.cast();
        (*fc).ops = FS_CTX_OPS.get();
        bindings::put_user_ns((*fc).user_ns);
        (*fc).user_ns = bindings::get_user_ns(addr_of_mut!(bindings::init_user_ns));
        (*fc).set_global(true);
    }
    0
}

/// `free` of the mount context.
///
/// # Safety
///
/// Called by the VFS with a context [`init_fs_context`] set up.
unsafe extern "C" fn free_fs_context(fc: *mut bindings::fs_context) {
    // SAFETY: `fc` is the context `init_fs_context` set up.
    let kfc = unsafe { (*fc).fs_private }.cast::<bindings::kernfs_fs_context>();
    // SAFETY: as above.
    unsafe { bindings::kernfs_free_fs_context(fc) };
    if !kfc.is_null() {
        // SAFETY: `fs_private` came from `KBox::into_raw` in `init_fs_context`
        // and is freed only here.
        drop(unsafe { KBox::from_raw(kfc) });
    }
}
