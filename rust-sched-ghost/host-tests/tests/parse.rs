//! Host tests of the kernel crate's parsers (`rust-sched-ghost/parse.rs`).
//!
//! The file is pure `core` code, so the very same source the kernel compiles
//! is compiled here and exercised without a kernel.

#[path = "../../parse.rs"]
#[allow(dead_code)]
mod parse;

use parse::*;

/// Asserts that `parse` rejects every input with `ParseError::Invalid`.
fn assert_invalid<T: std::fmt::Debug>(
    parse: impl Fn(&[u8]) -> Result<T, ParseError>,
    inputs: &[&[u8]],
) {
    for b in inputs {
        let r = parse(b);
        assert!(
            matches!(r, Err(ParseError::Invalid)),
            "{:?}: {r:?}",
            String::from_utf8_lossy(b)
        );
    }
}

#[test]
fn root_create_forms() {
    assert_eq!(
        parse_root_cmd(b"create 1 91\n"),
        Ok(RootCmd::Create {
            id: 1,
            abi: 91,
            gid: None,
            ephemeral: false
        })
    );
    assert_eq!(
        parse_root_cmd(b"create 7 91 gid=100 ephemeral"),
        Ok(RootCmd::Create {
            id: 7,
            abi: 91,
            gid: Some(100),
            ephemeral: true
        })
    );
    assert_eq!(
        parse_root_cmd(b"create 7 91 ephemeral gid=0\n"),
        Ok(RootCmd::Create {
            id: 7,
            abi: 91,
            gid: Some(0),
            ephemeral: true
        })
    );
    assert_eq!(
        parse_root_cmd(b"create 18446744073709551615 4294967295"),
        Ok(RootCmd::Create {
            id: u64::MAX,
            abi: u32::MAX,
            gid: None,
            ephemeral: false
        })
    );
}

#[test]
fn root_rejects_garbage() {
    let bad: &[&[u8]] = &[
        b"",
        b"\n",
        b"create",
        b"create 1",
        b"create 1 91 gid=",
        b"create 1 91 gid=-1",
        b"create 1 91 gid=4294967296",
        b"create 1 91 gid=1 gid=1",
        b"create 1 91 ephemeral ephemeral",
        b"create 18446744073709551616 91",
        b"create 1 4294967296",
        b"create +1 91",
        b"create -1 91",
        b"create 0x10 91",
        b"create 1 91\n\n",
        b"create 1 91 ",
        b" create 1 91",
        b"create  1 91",
        b"create\t1 91",
        b"create 1 91\0",
        b"create 1 \xff",
        b"destroy",
    ];
    assert_invalid(parse_root_cmd, bad);
    let long = [b'1'; MAX_WRITE + 1];
    assert_eq!(parse_root_cmd(&long), Err(ParseError::Invalid));
    assert_eq!(
        parse_root_cmd(b"create 1 91 nosuch"),
        Err(ParseError::UnknownOption)
    );
    assert_eq!(
        parse_root_cmd(b"create 1 91 gid=1 nosuch\n"),
        Err(ParseError::UnknownOption)
    );
}

#[test]
fn enclave_commands() {
    assert_eq!(parse_enclave_cmd(b"destroy\n"), Ok(EnclaveCmd::Destroy));
    assert_eq!(
        parse_enclave_cmd(b"discover tasks"),
        Ok(EnclaveCmd::DiscoverTasks)
    );
    assert_eq!(
        parse_enclave_cmd(b"disable my bpf_prog_load\n"),
        Ok(EnclaveCmd::DisableMyBpfProgLoad)
    );
    assert_eq!(
        parse_enclave_cmd(b"create sw_region 3 0\n"),
        Ok(EnclaveCmd::CreateSwRegion { id: 3, node: 0 })
    );
    assert_eq!(
        parse_enclave_cmd(b"become agent 2 -1"),
        Ok(EnclaveCmd::BecomeAgent { cpu: 2, qfd: -1 })
    );
    assert_eq!(
        parse_enclave_cmd(b"become agent 0 17\n"),
        Ok(EnclaveCmd::BecomeAgent { cpu: 0, qfd: 17 })
    );
    let bad: &[&[u8]] = &[
        b"destroy now",
        b"discover",
        b"discover tasks now",
        b"disable my",
        b"disable my bpf_prog_load please",
        b"create sw_region 1",
        b"create sw_region 1 0 0",
        b"create sw_region -1 0",
        b"become agent",
        b"become agent 1",
        b"become agent 1 -2",
        b"become agent -1 0",
        b"become agent 1 2147483648",
        b"become agent 1 --1",
        b"become agent 1 -",
        b"become agent 4294967296 0",
        b"become",
        b"ping",
    ];
    assert_invalid(parse_enclave_cmd, bad);
}

#[test]
fn numbers() {
    assert_eq!(parse_u64("0"), Some(0));
    assert_eq!(parse_u64("007"), Some(7));
    assert_eq!(parse_u64(""), None);
    assert_eq!(parse_u64("1a"), None);
    assert_eq!(parse_u64("99999999999999999999"), None);
    assert_eq!(parse_i32("-2147483648"), Some(i32::MIN));
    assert_eq!(parse_i32("-2147483649"), None);
    assert_eq!(parse_i32("2147483647"), Some(i32::MAX));
    assert_eq!(parse_i32("-"), None);
}

/// The `kstrto*` grammar ghOSt's files use: base 0, an optional sign, one
/// trailing newline, a NUL ends the text; `ERANGE` only for values that do
/// not fit.
#[test]
fn kstrto_numbers() {
    use KstrtoError::{Invalid, Range};
    // Tunables (`kstrtoint`): any integer; nonzero is on.
    assert_eq!(parse_int(b"1\n"), Ok(1));
    assert_eq!(parse_int(b"0"), Ok(0));
    assert_eq!(parse_int(b"2"), Ok(2));
    assert_eq!(parse_int(b"-1"), Ok(-1));
    assert_eq!(parse_int(b"+7"), Ok(7));
    assert_eq!(parse_int(b"0x10"), Ok(16));
    assert_eq!(parse_int(b"0X1f"), Ok(31));
    assert_eq!(parse_int(b"010"), Ok(8));
    assert_eq!(parse_int(b"08"), Err(Invalid));
    assert_eq!(parse_int(b"0x"), Err(Invalid));
    assert_eq!(parse_int(b"true"), Err(Invalid));
    assert_eq!(parse_int(b""), Err(Invalid));
    assert_eq!(parse_int(b"\n"), Err(Invalid));
    assert_eq!(parse_int(b" 1"), Err(Invalid));
    assert_eq!(parse_int(b"1 "), Err(Invalid));
    assert_eq!(parse_int(b"1\n\n"), Err(Invalid));
    assert_eq!(parse_int(b"1\0garbage"), Ok(1));
    assert_eq!(parse_int(b"2147483648"), Err(Range));
    assert_eq!(parse_int(b"-2147483648"), Ok(i32::MIN));
    // `runnable_timeout` (`kstrtoul`): no minus sign.
    assert_eq!(parse_unsigned(b"1000\n"), Ok(1000));
    assert_eq!(parse_unsigned(b"+5"), Ok(5));
    assert_eq!(parse_unsigned(b"-1"), Err(Invalid));
    assert_eq!(parse_unsigned(b"18446744073709551615"), Ok(u64::MAX));
    assert_eq!(parse_unsigned(b"18446744073709551616"), Err(Range));
    // `tasks` (`kstrtoll`).
    assert_eq!(parse_signed(b"-9223372036854775808"), Ok(i64::MIN));
    assert_eq!(parse_signed(b"-9223372036854775809"), Err(Range));
    assert_eq!(parse_signed(b"9223372036854775808"), Err(Range));
    assert_eq!(parse_signed(b"0x7fffffffffffffff"), Ok(i64::MAX));
    assert_eq!(parse_signed(&[b'1'; 300]), Err(Invalid));
}

fn set(cpus: &[usize]) -> CpuSet {
    let mut s = CpuSet::new();
    for &c in cpus {
        assert!(s.insert(c));
    }
    s
}

/// Asserts that `parse` rejects every input with `err`.
fn assert_err<T: std::fmt::Debug>(
    parse: impl Fn(&[u8]) -> Result<T, ParseError>,
    err: ParseError,
    inputs: &[&[u8]],
) {
    for b in inputs {
        let r = parse(b);
        assert!(
            matches!(&r, Err(e) if *e == err),
            "{:?}: {r:?}, want {err:?}",
            String::from_utf8_lossy(b)
        );
    }
}

/// The grammar and errnos of the kernel's `cpulist_parse()`.
#[test]
fn cpulist_parse_and_format() {
    assert_eq!(parse_cpulist(b"0-2,5\n", 8), Ok(set(&[0, 1, 2, 5])));
    assert_eq!(parse_cpulist(b"3", 8), Ok(set(&[3])));
    assert_eq!(parse_cpulist(b"\n", 8), Ok(CpuSet::new()));
    assert_eq!(parse_cpulist(b"", 8), Ok(CpuSet::new()));
    assert_eq!(parse_cpulist(b"1,1", 8), Ok(set(&[1])));
    // Empty regions and white space separate like commas.
    assert_eq!(parse_cpulist(b",0,,1 2\t3,", 8), Ok(set(&[0, 1, 2, 3])));
    assert_eq!(parse_cpulist(b" 0 ", 8), Ok(set(&[0])));
    // `all`, `N` (the last CPU), and `A-B:used/group` patterns.
    assert_eq!(parse_cpulist(b"all", 4), Ok(set(&[0, 1, 2, 3])));
    assert_eq!(parse_cpulist(b"ALL", 2), Ok(set(&[0, 1])));
    assert_eq!(parse_cpulist(b"N", 4), Ok(set(&[3])));
    assert_eq!(parse_cpulist(b"2-N", 4), Ok(set(&[2, 3])));
    assert_eq!(parse_cpulist(b"0-7:2/4", 8), Ok(set(&[0, 1, 4, 5])));
    assert_eq!(parse_cpulist(b"all:1/2", 4), Ok(set(&[0, 2])));
    // Nothing after the newline counts.
    assert_eq!(parse_cpulist(b"1\nxyz", 8), Ok(set(&[1])));
    assert_err(
        |b| parse_cpulist(b, 8),
        ParseError::Invalid,
        &[
            &b"2-1"[..],
            b"-1",
            b"1-",
            b"a",
            b"1 -2",
            b"1x",
            b"0-7:2",
            b"0-7:4/2",
            b"0-7:2/0",
            b"0x1",
        ],
    );
    assert_err(
        |b| parse_cpulist(b, 8),
        ParseError::Range,
        &[&b"8"[..], b"0-8", b"7,9"],
    );
    assert_err(
        |b| parse_cpulist(b, 8),
        ParseError::Overflow,
        &[&b"4294967296"[..], b"0-99999999999"],
    );
    let mut out = String::new();
    format_cpulist(&set(&[0, 1, 2, 5, 7, 8]), &mut out).unwrap();
    assert_eq!(out, "0-2,5,7-8\n");
    out.clear();
    format_cpulist(&CpuSet::new(), &mut out).unwrap();
    assert_eq!(out, "\n");
}

/// The grammar and errnos of the kernel's `cpumask_parse()`.
#[test]
fn cpumask_parse_and_format() {
    assert_eq!(parse_cpumask(b"3\n", 2), Ok(set(&[0, 1])));
    assert_eq!(parse_cpumask(b"0", 2), Ok(CpuSet::new()));
    assert_eq!(parse_cpumask(b"00000001,00000000", 64), Ok(set(&[32])));
    assert_eq!(parse_cpumask(b"A", 8), Ok(set(&[1, 3])));
    // No group at all is no CPU; separators may repeat or surround groups.
    assert_eq!(parse_cpumask(b"", 2), Ok(CpuSet::new()));
    assert_eq!(parse_cpumask(b"\n", 2), Ok(CpuSet::new()));
    assert_eq!(parse_cpumask(b" 3 ", 2), Ok(set(&[0, 1])));
    assert_eq!(parse_cpumask(b"1,,0", 64), Ok(set(&[32])));
    assert_eq!(parse_cpumask(b"3\nff", 2), Ok(set(&[0, 1])));
    assert_err(
        |b| parse_cpumask(b, 2),
        ParseError::Invalid,
        &[&b"g"[..], b"0x3", b"-1"],
    );
    assert_err(
        |b| parse_cpumask(b, 2),
        ParseError::Overflow,
        &[
            // A bit beyond the CPU ids.
            &b"4"[..],
            // More groups than the CPU ids need.
            b"0,3",
            b"0,1,2",
            // A group of nine digits.
            b"000000003",
        ],
    );
    let mut out = String::new();
    format_cpumask(&set(&[0, 1]), 2, &mut out).unwrap();
    assert_eq!(out, "3\n");
    out.clear();
    format_cpumask(&CpuSet::new(), 8, &mut out).unwrap();
    assert_eq!(out, "00\n");
    out.clear();
    format_cpumask(&set(&[0, 33]), 40, &mut out).unwrap();
    assert_eq!(out, "02,00000001\n");
    // Round trip.
    for s in [
        set(&[]),
        set(&[0]),
        set(&[1, 2, 3, 63]),
        set(&[5, 100, 1023]),
    ] {
        let mut out = String::new();
        format_cpumask(&s, MAX_CPUS, &mut out).unwrap();
        assert_eq!(parse_cpumask(out.as_bytes(), MAX_CPUS), Ok(s));
        out.clear();
        format_cpulist(&s, &mut out).unwrap();
        assert_eq!(parse_cpulist(out.as_bytes(), MAX_CPUS), Ok(s));
    }
}

#[test]
fn cpu_values_shorter_than_a_page() {
    // Every CPU named on its own: 4009 bytes, accepted.
    let all: Vec<String> = (0..MAX_CPUS).map(|c| c.to_string()).collect();
    let list = all.join(",");
    assert_eq!(list.len(), 4009);
    let set = parse_cpulist(list.as_bytes(), MAX_CPUS).unwrap();
    assert_eq!(set.iter().count(), MAX_CPUS);
    // A whole page may be a write that kernfs cut short: refused.
    let page = vec![b'0'; 4096];
    assert_invalid(|b| parse_cpumask(b, MAX_CPUS), &[&page]);
    assert_invalid(|b| parse_cpulist(b, MAX_CPUS), &[&page]);
    let mut padded = vec![b' '; 4094];
    padded.push(b'0');
    assert!(parse_cpumask(&padded, MAX_CPUS).unwrap().is_empty());
}

#[test]
fn cpuset_iter_yields_every_cpu_in_order_across_words() {
    let cpus = [0, 1, 5, 63, 64, 127, 128, 500, 1022, 1023];
    let s = set(&cpus);
    assert_eq!(s.iter().collect::<Vec<_>>(), cpus.to_vec());
    assert_eq!(CpuSet::new().iter().count(), 0);
    let mut full = CpuSet::new();
    for c in 0..1024 {
        full.insert(c);
    }
    assert_eq!(
        full.iter().collect::<Vec<_>>(),
        (0..1024).collect::<Vec<_>>()
    );
}
