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

/// Strips the one trailing newline and checks length and characters.
fn line(input: &[u8]) -> Result<&str, ParseError> {
    if input.len() > MAX_WRITE {
        return Err(ParseError::Invalid);
    }
    let body = match input.split_last() {
        Some((b'\n', rest)) => rest,
        _ => input,
    };
    let s = core::str::from_utf8(body).map_err(|_| ParseError::Invalid)?;
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
