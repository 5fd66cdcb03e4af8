// SPDX-License-Identifier: GPL-2.0

//! Parsers for the text userspace writes to ghostfs files.
//!
//! Pure code: no kernel types, no allocation, no panics (no indexing, no
//! unchecked arithmetic), so the same file is compiled into the kernel crate
//! and into a host test (`userspace/ghost-exp/tests/kernel_parse.rs`).
//!
//! Rules shared by every file:
//! - one write is one command; a single trailing `\n` is removed;
//! - words are separated by single spaces; anything else (leading or
//!   trailing blanks, tabs, repeated spaces, NUL bytes) is an error;
//! - numbers are decimal ASCII digits only (no sign unless the field allows
//!   negative values, no `0x`, no `+`), and must fit their type;
//! - input longer than [`MAX_WRITE`] bytes is rejected.
//!
//! Errors are [`ParseError`] values; the caller maps them to errnos.

/// The longest command any ghostfs file accepts, in bytes.
pub const MAX_WRITE: usize = 256;

/// Why a write was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Malformed: unknown command, bad number, extra words, too long (`EINVAL`).
    Invalid,
    /// A well-formed `create` with an option this kernel does not know (`ENOENT`).
    UnknownOption,
}

/// A command written to the root `ctl` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootCmd {
    /// `create <id> <abi>[ gid=<n>][ ephemeral]`.
    Create {
        /// The enclave id: the directory is `enclave_<id>`.
        id: u64,
        /// The ABI version the creator expects.
        abi: u32,
        /// Group that may use the enclave's files (`gid=<n>`).
        gid: Option<u32>,
        /// Destroy the enclave when the creating process exits.
        ephemeral: bool,
    },
}

/// A command written to an enclave's `ctl` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnclaveCmd {
    /// `destroy`.
    Destroy,
    /// `create sw_region <id> <node>`.
    CreateSwRegion {
        /// Region id: the file is `sw_regions/sw_<id>`.
        id: u32,
        /// NUMA node to allocate on.
        node: u32,
    },
    /// `become agent <cpu> <qfd>` (`qfd` -1: the default queue).
    BecomeAgent {
        /// The CPU the calling thread becomes the agent of.
        cpu: u32,
        /// The queue fd for the agent's messages, or -1.
        qfd: i32,
    },
    /// `discover tasks`.
    DiscoverTasks,
    /// `disable my bpf_prog_load`.
    DisableMyBpfProgLoad,
}

/// Checks the length (at most `max` bytes), strips the one trailing newline
/// and checks that the rest is UTF-8.
fn strip(input: &[u8], max: usize) -> Result<&str, ParseError> {
    if input.len() > max {
        return Err(ParseError::Invalid);
    }
    let body = match input.split_last() {
        Some((b'\n', rest)) => rest,
        _ => input,
    };
    core::str::from_utf8(body).map_err(|_| ParseError::Invalid)
}

/// Strips the one trailing newline and checks length and characters.
fn line(input: &[u8]) -> Result<&str, ParseError> {
    let s = strip(input, MAX_WRITE)?;
    if s.is_empty() || s.bytes().any(|b| !(b' '..=b'~').contains(&b)) {
        return Err(ParseError::Invalid);
    }
    if s.starts_with(' ') || s.ends_with(' ') || s.contains("  ") {
        return Err(ParseError::Invalid);
    }
    Ok(s)
}

/// Parses a decimal `u64` made of ASCII digits only.
pub fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let mut v: u64 = 0;
    for b in s.bytes() {
        let d = match b {
            b'0'..=b'9' => u64::from(b - b'0'),
            _ => return None,
        };
        v = v.checked_mul(10)?.checked_add(d)?;
    }
    Some(v)
}

/// Parses a decimal `u32` made of ASCII digits only.
pub fn parse_u32(s: &str) -> Option<u32> {
    parse_u64(s).and_then(|v| u32::try_from(v).ok())
}

/// Parses a decimal `i32`, with an optional leading `-`.
pub fn parse_i32(s: &str) -> Option<i32> {
    match s.strip_prefix('-') {
        Some(mag) => {
            let m = i64::try_from(parse_u64(mag)?).ok()?;
            i32::try_from(m.checked_neg()?).ok()
        }
        None => i32::try_from(parse_u64(s)?).ok(),
    }
}

/// Parses a whole file content as one unsigned number (e.g. `runnable_timeout`).
pub fn parse_number(input: &[u8]) -> Result<u64, ParseError> {
    parse_u64(line(input)?).ok_or(ParseError::Invalid)
}

/// Parses a whole file content as `0` or `1` (the boolean tunables).
pub fn parse_bool(input: &[u8]) -> Result<bool, ParseError> {
    match line(input)? {
        "0" => Ok(false),
        "1" => Ok(true),
        _ => Err(ParseError::Invalid),
    }
}

/// Parses a write to the root `ctl` file.
pub fn parse_root_cmd(input: &[u8]) -> Result<RootCmd, ParseError> {
    let mut words = line(input)?.split(' ');
    if words.next() != Some("create") {
        return Err(ParseError::Invalid);
    }
    let id = words
        .next()
        .and_then(parse_u64)
        .ok_or(ParseError::Invalid)?;
    let abi = words
        .next()
        .and_then(parse_u32)
        .ok_or(ParseError::Invalid)?;
    let mut gid = None;
    let mut ephemeral = false;
    for opt in words {
        if let Some(v) = opt.strip_prefix("gid=") {
            if gid.is_some() {
                return Err(ParseError::Invalid);
            }
            gid = Some(parse_u32(v).ok_or(ParseError::Invalid)?);
        } else if opt == "ephemeral" {
            if ephemeral {
                return Err(ParseError::Invalid);
            }
            ephemeral = true;
        } else {
            return Err(ParseError::UnknownOption);
        }
    }
    Ok(RootCmd::Create {
        id,
        abi,
        gid,
        ephemeral,
    })
}

/// Parses a write to an enclave's `ctl` file.
pub fn parse_enclave_cmd(input: &[u8]) -> Result<EnclaveCmd, ParseError> {
    let mut words = line(input)?.split(' ');
    let cmd = match (words.next(), words.next()) {
        (Some("destroy"), None) => return Ok(EnclaveCmd::Destroy),
        (Some("discover"), Some("tasks")) => EnclaveCmd::DiscoverTasks,
        (Some("disable"), Some("my")) => match words.next() {
            Some("bpf_prog_load") => EnclaveCmd::DisableMyBpfProgLoad,
            _ => return Err(ParseError::Invalid),
        },
        (Some("create"), Some("sw_region")) => {
            let id = words
                .next()
                .and_then(parse_u32)
                .ok_or(ParseError::Invalid)?;
            let node = words
                .next()
                .and_then(parse_u32)
                .ok_or(ParseError::Invalid)?;
            EnclaveCmd::CreateSwRegion { id, node }
        }
        (Some("become"), Some("agent")) => {
            let cpu = words
                .next()
                .and_then(parse_u32)
                .ok_or(ParseError::Invalid)?;
            let qfd = words
                .next()
                .and_then(parse_i32)
                .ok_or(ParseError::Invalid)?;
            if qfd < -1 {
                return Err(ParseError::Invalid);
            }
            EnclaveCmd::BecomeAgent { cpu, qfd }
        }
        _ => return Err(ParseError::Invalid),
    };
    match words.next() {
        None => Ok(cmd),
        Some(_) => Err(ParseError::Invalid),
    }
}

/// The most CPUs a [`CpuSet`] holds (`cpulist`/`cpumask` beyond it: `EINVAL`).
pub const MAX_CPUS: usize = 1024;

/// A set of CPU numbers below [`MAX_CPUS`], without allocation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CpuSet {
    words: [u64; MAX_CPUS / 64],
}

impl core::fmt::Debug for CpuSet {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Default for CpuSet {
    fn default() -> Self {
        Self::new()
    }
}

impl CpuSet {
    /// The empty set.
    pub const fn new() -> Self {
        CpuSet {
            words: [0; MAX_CPUS / 64],
        }
    }

    /// Adds `cpu`; false (and no change) if it is not below [`MAX_CPUS`].
    pub fn insert(&mut self, cpu: usize) -> bool {
        match self.words.get_mut(cpu / 64) {
            Some(w) => {
                *w |= 1 << (cpu % 64);
                true
            }
            None => false,
        }
    }

    /// Whether `cpu` is in the set.
    pub fn contains(&self, cpu: usize) -> bool {
        self.words
            .get(cpu / 64)
            .is_some_and(|w| w & (1 << (cpu % 64)) != 0)
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }

    /// The CPUs in the set, in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        (0..MAX_CPUS).filter(move |&c| self.contains(c))
    }

    /// The highest CPU in the set plus one (0 when empty).
    fn end(&self) -> usize {
        self.iter().last().map_or(0, |c| c + 1)
    }
}

/// The longest `cpulist`/`cpumask` write, in bytes: a mask of [`MAX_CPUS`]
/// CPUs needs 288, a list naming each of them 4009. kernfs hands a file at
/// most one page per `write(2)` and drops the rest, so a page-long value may
/// have been cut short: only shorter ones are accepted.
pub const MAX_CPUS_WRITE: usize = 4095;

/// Strips the one trailing newline; unlike [`line`], allows an empty value.
fn value(input: &[u8]) -> Result<&str, ParseError> {
    strip(input, MAX_CPUS_WRITE)
}

/// Parses a CPU list (`0-2,5`; empty: no CPU) of CPUs below `nbits`.
pub fn parse_cpulist(input: &[u8], nbits: usize) -> Result<CpuSet, ParseError> {
    let s = value(input)?;
    let mut set = CpuSet::new();
    if s.is_empty() {
        return Ok(set);
    }
    for item in s.split(',') {
        let (lo, hi) = match item.split_once('-') {
            Some((a, b)) => (parse_u64(a), parse_u64(b)),
            None => (parse_u64(item), parse_u64(item)),
        };
        let (lo, hi) = match (lo, hi) {
            (Some(lo), Some(hi)) if lo <= hi => (lo, hi),
            _ => return Err(ParseError::Invalid),
        };
        let hi = usize::try_from(hi).map_err(|_| ParseError::Invalid)?;
        let lo = usize::try_from(lo).map_err(|_| ParseError::Invalid)?;
        if hi >= nbits {
            return Err(ParseError::Invalid);
        }
        for cpu in lo..=hi {
            if !set.insert(cpu) {
                return Err(ParseError::Invalid);
            }
        }
    }
    Ok(set)
}

/// Parses a hexadecimal CPU mask (`3`, `00000000,00000003`; commas between
/// 32-bit groups as the kernel prints them) of CPUs below `nbits`.
pub fn parse_cpumask(input: &[u8], nbits: usize) -> Result<CpuSet, ParseError> {
    let s = value(input)?;
    if s.is_empty() || s.starts_with(',') || s.ends_with(',') || s.contains(",,") {
        return Err(ParseError::Invalid);
    }
    let mut set = CpuSet::new();
    let mut bit = 0usize;
    for c in s.bytes().rev() {
        if c == b',' {
            continue;
        }
        let nibble = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => return Err(ParseError::Invalid),
        };
        for i in 0..4 {
            if nibble & (1 << i) != 0 {
                let cpu = bit.checked_add(i).ok_or(ParseError::Invalid)?;
                if cpu >= nbits || !set.insert(cpu) {
                    return Err(ParseError::Invalid);
                }
            }
        }
        bit = bit.checked_add(4).ok_or(ParseError::Invalid)?;
    }
    Ok(set)
}

/// Writes `set` as a CPU list (`0-2,5`) and a newline.
pub fn format_cpulist(set: &CpuSet, w: &mut impl core::fmt::Write) -> core::fmt::Result {
    let mut first = true;
    let mut cpus = set.iter().peekable();
    while let Some(lo) = cpus.next() {
        let mut hi = lo;
        while cpus.peek() == Some(&(hi + 1)) {
            hi += 1;
            cpus.next();
        }
        let sep = if first { "" } else { "," };
        first = false;
        if lo == hi {
            write!(w, "{sep}{lo}")?;
        } else {
            write!(w, "{sep}{lo}-{hi}")?;
        }
    }
    writeln!(w)
}

/// Writes `set` as a hexadecimal mask of `nbits` bits, the way the kernel's
/// `%*pb` does (32-bit groups, highest first, separated by commas; the first
/// group only as wide as its bits need), and a newline.
pub fn format_cpumask(
    set: &CpuSet,
    nbits: usize,
    w: &mut impl core::fmt::Write,
) -> core::fmt::Result {
    let nbits = nbits.clamp(1, MAX_CPUS).max(set.end());
    let groups = nbits.div_ceil(32);
    for g in (0..groups).rev() {
        let mut v: u32 = 0;
        for i in 0..32 {
            if set.contains(g * 32 + i) {
                v |= 1 << i;
            }
        }
        if g + 1 == groups {
            let width = (nbits - g * 32).div_ceil(4);
            write!(w, "{v:0width$x}")?;
        } else {
            write!(w, ",{v:08x}")?;
        }
    }
    writeln!(w)
}
