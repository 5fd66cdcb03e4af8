// SPDX-License-Identifier: GPL-2.0

//! Boot-time check that the ghost classes sit where ghOSt needs them.
//!
//! The core scheduler walks the class tables as an array between
//! `__sched_class_highest` and `__sched_class_lowest`, highest priority first.
//! The check walks the same array, names each table it finds, and compares
//! the result with the order ghOSt requires:
//! `stop > ghost_agent > dl > rt > fair > ghost > idle`, and with
//! `CONFIG_SCHED_CLASS_EXT` the eighth class, `ext`, above ghost (ghost
//! yields to ext as it does to fair):
//! `stop > ghost_agent > dl > rt > fair > ext > ghost > idle`.
//! It logs the order it found in either case; the in-VM tests assert the line.

use crate::classes::{ghost_agent_sched_class, ghost_sched_class};
use core::ptr::addr_of;
use kernel::bindings;
use kernel::prelude::*;

/// The required order, highest first.
#[cfg(not(CONFIG_SCHED_CLASS_EXT))]
const EXPECTED: [&str; 7] = ["stop", "ghost_agent", "dl", "rt", "fair", "ghost", "idle"];
/// The required order, highest first: ghost yields to ext as to fair.
#[cfg(CONFIG_SCHED_CLASS_EXT)]
const EXPECTED: [&str; 8] = [
    "stop",
    "ghost_agent",
    "dl",
    "rt",
    "fair",
    "ext",
    "ghost",
    "idle",
];

/// Room for one class more than expected, so that an extra one shows.
const SLOTS: usize = EXPECTED.len() + 1;

/// `ext_sched_class`, in a kernel built with sched_ext.
#[cfg(CONFIG_SCHED_CLASS_EXT)]
fn ext_class() -> Option<*const bindings::sched_class> {
    Some(addr_of!(bindings::ext_sched_class))
}

/// `ext_sched_class`, in a kernel built with sched_ext: not this one.
#[cfg(not(CONFIG_SCHED_CLASS_EXT))]
fn ext_class() -> Option<*const bindings::sched_class> {
    None
}

/// Names the class table at `c`, or `"?"` for a table this check does not know.
fn name_of(c: *const bindings::sched_class) -> &'static str {
    // Only the addresses of these extern statics are taken (safe since Rust
    // 1.82); nothing is read through them.
    let known: [(*const bindings::sched_class, &'static str); 7] = [
        (addr_of!(bindings::stop_sched_class), "stop"),
        (ghost_agent_sched_class.as_ptr(), "ghost_agent"),
        (addr_of!(bindings::dl_sched_class), "dl"),
        (addr_of!(bindings::rt_sched_class), "rt"),
        (addr_of!(bindings::fair_sched_class), "fair"),
        (ghost_sched_class.as_ptr(), "ghost"),
        (addr_of!(bindings::idle_sched_class), "idle"),
    ];
    if ext_class().is_some_and(|e| core::ptr::eq(e, c)) {
        return "ext";
    }
    known
        .iter()
        .find(|(p, _)| core::ptr::eq(*p, c))
        .map_or("?", |(_, n)| n)
}

/// Checks the class order; logs it and returns `EINVAL` if it is wrong.
pub fn check_class_order() -> Result {
    // Linker-defined symbols bounding the class array; only their addresses
    // are used.
    let mut c = addr_of!(bindings::__sched_class_highest).cast::<bindings::sched_class>();
    let end = addr_of!(bindings::__sched_class_lowest).cast::<bindings::sched_class>();
    let mut found: [&'static str; SLOTS] = ["?"; SLOTS];
    let mut n = 0usize;
    let mut ok = true;
    while c < end {
        match found.get_mut(n) {
            Some(slot) => *slot = name_of(c),
            None => {
                ok = false;
                break;
            }
        }
        n += 1;
        c = c.wrapping_add(1);
    }
    ok = ok && n == EXPECTED.len() && found.iter().zip(EXPECTED.iter()).all(|(a, b)| a == b);

    let line = ClassLine::joined(found.iter().take(n));
    if ok {
        pr_info!("sched classes: {} (ghost classes OK)\n", line.as_str());
        Ok(())
    } else {
        pr_err!(
            "sched classes: {} (expected {})\n",
            line.as_str(),
            ClassLine::joined(EXPECTED.iter()).as_str()
        );
        Err(EINVAL)
    }
}

/// A small fixed buffer for the one log line (no allocation needed).
struct ClassLine {
    buf: [u8; 128],
    len: usize,
}

impl ClassLine {
    fn new() -> Self {
        ClassLine {
            buf: [0; 128],
            len: 0,
        }
    }

    /// `names` joined by `" > "`.
    fn joined<'a>(names: impl Iterator<Item = &'a &'static str>) -> Self {
        let mut line = ClassLine::new();
        for (i, name) in names.enumerate() {
            line.push(if i == 0 { "" } else { " > " });
            line.push(name);
        }
        line
    }

    fn push(&mut self, s: &str) {
        for &b in s.as_bytes() {
            if let Some(slot) = self.buf.get_mut(self.len) {
                *slot = b;
                self.len += 1;
            }
        }
    }

    fn as_str(&self) -> &str {
        // Only whole ASCII names are pushed; on truncation fall back to a marker.
        self.buf
            .get(..self.len)
            .and_then(|b| core::str::from_utf8(b).ok())
            .unwrap_or("<truncated>")
    }
}
