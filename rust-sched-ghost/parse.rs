// SPDX-License-Identifier: GPL-2.0

//! Parsers for the text userspace writes to ghostfs files.
//!
//! Pure code: no kernel types, no allocation, no panics (no indexing, no
//! unchecked arithmetic), so the same file is compiled into the kernel crate
//! and into a host test (`rust-sched-ghost/host-tests/tests/parse.rs`).
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
//!
//! Owns: the grammar of every ghostfs write, and CPU sets ([`CpuSet`]).
//! Calls: nothing (pure code).

/// The longest command any ghostfs file accepts, in bytes.
pub const MAX_WRITE: usize = 256;

/// Why a write was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Malformed: unknown command, bad number, extra words, too long (`EINVAL`).
    Invalid,
    /// A well-formed `create` with an option this kernel does not know (`ENOENT`).
    UnknownOption,
    /// A CPU list naming a CPU at or beyond the number of CPU ids (`ERANGE`).
    Range,
    /// A number too big for its field, or a CPU mask with bits beyond the
    /// number of CPU ids (`EOVERFLOW`).
    Overflow,
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

/// Why a `kstrto*`-style number did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KstrtoError {
    /// Not a number (`EINVAL`).
    Invalid,
    /// A number that does not fit (`ERANGE`).
    Range,
}

/// The value of ASCII digit `c` in `radix`, if it is one.
fn digit(c: u8, radix: u32) -> Option<u64> {
    let v = match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => return None,
    };
    (u32::from(v) < radix).then_some(u64::from(v))
}

/// The kernel's `_kstrtoull(s, 0)`: `0x`/`0X` and a hex digit make it
/// hexadecimal, a leading `0` octal, else decimal; at least one digit; one
/// trailing newline and nothing else may follow. (ghostfs files are parsed
/// the way ghOSt parses them: with `kstrto*` on the written bytes, which
/// kernfs ends with a NUL, so a NUL ends the text.)
fn kstrtoull(s: &[u8]) -> Result<u64, KstrtoError> {
    let (radix, digits) = match s {
        [b'0', x, h, ..] if (*x == b'x' || *x == b'X') && digit(*h, 16).is_some() => {
            (16, s.get(2..).unwrap_or(&[]))
        }
        [b'0', ..] => (8, s),
        _ => (10, s),
    };
    let mut v: u64 = 0;
    let mut n = 0usize;
    let mut overflow = false;
    for &c in digits {
        let Some(d) = digit(c, radix) else {
            break;
        };
        n += 1;
        match v
            .checked_mul(u64::from(radix))
            .and_then(|v| v.checked_add(d))
        {
            Some(nv) => v = nv,
            None => overflow = true,
        }
    }
    if overflow {
        return Err(KstrtoError::Range);
    }
    if n == 0 {
        return Err(KstrtoError::Invalid);
    }
    match digits.get(n..).unwrap_or(&[]) {
        [] | [b'\n'] => Ok(v),
        _ => Err(KstrtoError::Invalid),
    }
}

/// The text of a ghostfs write up to its first NUL, if it is not too long.
fn kstrto_text(input: &[u8]) -> Result<&[u8], KstrtoError> {
    if input.len() > MAX_WRITE {
        return Err(KstrtoError::Invalid);
    }
    Ok(match input.iter().position(|&b| b == 0) {
        Some(end) => input.get(..end).unwrap_or(&[]),
        None => input,
    })
}

/// A whole file content as `kstrtoull(s, 0)`/`kstrtoul` (an optional `+`)
/// takes it (e.g. `runnable_timeout`).
pub fn parse_unsigned(input: &[u8]) -> Result<u64, KstrtoError> {
    let s = kstrto_text(input)?;
    kstrtoull(s.strip_prefix(b"+").unwrap_or(s))
}

/// A whole file content as `kstrtoll(s, 0)` takes it (an optional sign;
/// e.g. `tasks`).
pub fn parse_signed(input: &[u8]) -> Result<i64, KstrtoError> {
    let s = kstrto_text(input)?;
    match s.strip_prefix(b"-") {
        Some(mag) => {
            let m = kstrtoull(mag)?;
            // -2^63 is the most negative value.
            if m > 1u64 << 63 {
                return Err(KstrtoError::Range);
            }
            Ok(0i64.wrapping_sub_unsigned(m))
        }
        None => {
            let v = kstrtoull(s.strip_prefix(b"+").unwrap_or(s))?;
            i64::try_from(v).map_err(|_| KstrtoError::Range)
        }
    }
}

/// A whole file content as `kstrtoint(s, 0)` takes it (the 0/1 tunables:
/// ghOSt treats any nonzero value as on).
pub fn parse_int(input: &[u8]) -> Result<i32, KstrtoError> {
    let v = parse_signed(input)?;
    i32::try_from(v).map_err(|_| KstrtoError::Range)
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

    /// The CPUs in the set, in increasing order. Word by word, lowest set
    /// bit first: a commit walks its mask's CPUs this way, and a walk of
    /// all [`MAX_CPUS`] bits cost it about 10 000 instructions.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words
            .iter()
            .enumerate()
            .flat_map(|(i, &word)| SetBits::new(word, i.wrapping_mul(64)))
    }

    /// The highest CPU in the set plus one (0 when empty).
    fn end(&self) -> usize {
        self.iter().last().map_or(0, |c| c + 1)
    }
}

/// The set bits of one 64-bit word of a CPU set, lowest first, as CPU
/// numbers from `base` (also the userspace `CpuMask`'s walk).
pub struct SetBits {
    word: u64,
    base: usize,
}

impl SetBits {
    /// The set bits of `word`, numbered from `base`.
    pub fn new(word: u64, base: usize) -> Self {
        SetBits { word, base }
    }
}

impl Iterator for SetBits {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        if self.word == 0 {
            return None;
        }
        let bit = self.word.trailing_zeros() as usize;
        // Clears the lowest set bit.
        self.word &= self.word.wrapping_sub(1);
        Some(self.base.wrapping_add(bit))
    }
}

/// The longest `cpulist`/`cpumask` write, in bytes: a mask of [`MAX_CPUS`]
/// CPUs needs 288, a list naming each of them 4009. kernfs hands a file at
/// most one page per `write(2)` and drops the rest, so a page-long value may
/// have been cut short: only shorter ones are accepted.
pub const MAX_CPUS_WRITE: usize = 4095;

/// The text of a `cpulist`/`cpumask` write: up to the first newline (or
/// NUL: kernfs ends the written bytes with one), as the kernel's bitmap
/// parsers read it.
fn bitmap_text(input: &[u8]) -> Result<&[u8], ParseError> {
    if input.len() > MAX_CPUS_WRITE {
        return Err(ParseError::Invalid);
    }
    let end = input
        .iter()
        .position(|&b| b == b'\n' || b == 0)
        .unwrap_or(input.len());
    Ok(input.get(..end).unwrap_or(&[]))
}

/// Whether `c` separates regions of a bitmap text (the kernel's
/// `__end_of_region`: white space or a comma).
fn separator(c: u8) -> bool {
    c == b',' || c.is_ascii_whitespace()
}

/// A decimal number of a CPU list at the start of `s` (`N`: the last bit,
/// `nbits - 1`); the rest of `s`. The kernel's `bitmap_getnum`: no digit is
/// `EINVAL`, a value beyond `u32` is `EOVERFLOW`.
fn list_number(s: &[u8], nbits: usize) -> Result<(u64, &[u8]), ParseError> {
    if let Some(rest) = s.strip_prefix(b"N") {
        return Ok((nbits.saturating_sub(1) as u64, rest));
    }
    let n = s.iter().take_while(|c| c.is_ascii_digit()).count();
    if n == 0 {
        return Err(ParseError::Invalid);
    }
    let mut v: u64 = 0;
    for &c in s.get(..n).unwrap_or(&[]) {
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(c - b'0')))
            .filter(|&v| v <= u64::from(u32::MAX))
            .ok_or(ParseError::Overflow)?;
    }
    Ok((v, s.get(n..).unwrap_or(&[])))
}

/// Parses a CPU list of CPUs below `nbits` (the number of CPU ids), with
/// the grammar and errors of the kernel's `cpulist_parse()` (ghOSt's):
/// regions separated by commas or white space (empty regions allowed; an
/// empty list is no CPU), each `A`, `A-B`, `A-B:used/group` or `all`, `N`
/// meaning the last CPU. `EINVAL` for anything malformed or a decreasing
/// range, `ERANGE` for a CPU at or beyond `nbits`, `EOVERFLOW` for a number
/// beyond 32 bits.
pub fn parse_cpulist(input: &[u8], nbits: usize) -> Result<CpuSet, ParseError> {
    let mut s = bitmap_text(input)?;
    let mut set = CpuSet::new();
    loop {
        while s.first().is_some_and(|&c| separator(c)) {
            s = s.get(1..).unwrap_or(&[]);
        }
        if s.is_empty() {
            return Ok(set);
        }
        let (start, end, rest) = match s.get(..3) {
            Some(w) if w.eq_ignore_ascii_case(b"all") => {
                (0, nbits.saturating_sub(1) as u64, s.get(3..).unwrap_or(&[]))
            }
            _ => {
                let (a, rest) = list_number(s, nbits)?;
                match rest.first() {
                    None => (a, a, rest),
                    Some(&c) if separator(c) => (a, a, rest),
                    Some(b'-') => {
                        let (b, rest) = list_number(rest.get(1..).unwrap_or(&[]), nbits)?;
                        (a, b, rest)
                    }
                    Some(_) => return Err(ParseError::Invalid),
                }
            }
        };
        // An optional `:used/group` pattern.
        let (used, group, rest) = match rest.first() {
            None => (end - start.min(end) + 1, end - start.min(end) + 1, rest),
            Some(&c) if separator(c) => (end - start.min(end) + 1, end - start.min(end) + 1, rest),
            Some(b':') => {
                let (used, rest) = list_number(rest.get(1..).unwrap_or(&[]), nbits)?;
                if rest.first() != Some(&b'/') {
                    return Err(ParseError::Invalid);
                }
                let (group, rest) = list_number(rest.get(1..).unwrap_or(&[]), nbits)?;
                (used, group, rest)
            }
            Some(_) => return Err(ParseError::Invalid),
        };
        // Whatever follows is the next region's business (the kernel checks
        // and sets this region first).
        if start > end || group == 0 || used > group {
            return Err(ParseError::Invalid);
        }
        if end >= nbits as u64 {
            return Err(ParseError::Range);
        }
        let mut base = start;
        while base <= end {
            let last = end.min(base.saturating_add(used).saturating_sub(1));
            let mut cpu = base;
            while cpu <= last && used > 0 {
                if !set.insert(cpu as usize) {
                    return Err(ParseError::Range);
                }
                cpu += 1;
            }
            base = base.saturating_add(group);
        }
        s = rest;
    }
}

/// Parses a hexadecimal CPU mask of CPUs below `nbits` (the number of CPU
/// ids), with the grammar and errors of the kernel's `cpumask_parse()`
/// (ghOSt's): 32-bit groups of at most 8 hex digits, lowest last, separated
/// by commas or white space (`3`, `00000000,00000003`); no group at all is
/// no CPU. `EINVAL` for a non-hex character, `EOVERFLOW` for a group of more
/// than 8 digits, more groups than `nbits` needs, or a bit at or beyond
/// `nbits`.
pub fn parse_cpumask(input: &[u8], nbits: usize) -> Result<CpuSet, ParseError> {
    let text = bitmap_text(input)?;
    let mut set = CpuSet::new();
    let mut chunks_left = nbits.div_ceil(32);
    let mut chunk = 0usize;
    // Groups are read from the end of the text.
    let mut end = text.len();
    loop {
        while end > 0 && text.get(end - 1).is_some_and(|&c| separator(c)) {
            end -= 1;
        }
        if end == 0 {
            break;
        }
        if chunks_left == 0 {
            return Err(ParseError::Overflow);
        }
        chunks_left -= 1;
        let mut v: u32 = 0;
        let mut i = 0u32;
        loop {
            let c = text.get(end - 1).copied().unwrap_or(b'-');
            let d = digit(c, 16).ok_or(ParseError::Invalid)?;
            v |= (d as u32) << i;
            end -= 1;
            i += 4;
            if end == 0 || text.get(end - 1).is_some_and(|&c| separator(c)) {
                break;
            }
            if i == 32 {
                // A ninth digit in a row.
                return match text.get(end - 1).and_then(|&c| digit(c, 16)) {
                    Some(_) => Err(ParseError::Overflow),
                    None => Err(ParseError::Invalid),
                };
            }
        }
        for bit in 0..32usize {
            if v & (1 << bit) != 0 {
                let cpu = chunk * 32 + bit;
                if cpu >= nbits || !set.insert(cpu) {
                    return Err(ParseError::Overflow);
                }
            }
        }
        chunk += 1;
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
