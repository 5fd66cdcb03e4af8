// SPDX-License-Identifier: GPL-2.0

//! [`warn_once!`](crate::warn_once): a kernel `WARN` (stack trace, taint)
//! for a state the code believes impossible, printed once per call site;
//! the caller then returns as if nothing happened.

use kernel::bindings;

/// Prints a `WARN` with `what` and the Rust call site `file:line`.
/// `what` and `file` end with a NUL (the macro adds it).
#[doc(hidden)]
pub fn warn(what: &'static str, file: &'static str, line: u32) {
    if !what.ends_with('\0') || !file.ends_with('\0') {
        return;
    }
    let line = i32::try_from(line).unwrap_or(i32::MAX);
    // SAFETY: both strings are static and NUL-terminated (checked above);
    // `WARN` may be called from any context.
    unsafe { bindings::ghost_warn(what.as_ptr().cast(), file.as_ptr().cast(), line) }
}

/// `WARN_ONCE`: warns the first time this call site is reached with the
/// message `$what` (a string literal). Evaluates to nothing; the caller
/// returns or goes on. Any context.
#[macro_export]
macro_rules! warn_once {
    ($what:literal) => {{
        static WARNED: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
        if !WARNED.swap(true, core::sync::atomic::Ordering::Relaxed) {
            $crate::sys::warn::warn(concat!($what, "\0"), concat!(file!(), "\0"), line!());
        }
    }};
}
