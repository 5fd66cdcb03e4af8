//! Enclaves through ghostfs: create and destroy, the enclave `ctl`, open
//! files across destroy, unprivileged users, the tunables, `cpulist` and
//! `cpumask`, `agent_online`.

use crate::harness::sys::poll_pri;
use crate::harness::sys::{self, errno_name, Exit, GHOSTFS};
use crate::harness::{create_enclave, ctl_path, destroy_enclave, expect_errnos, mode_of, TUNABLES};

pub(crate) fn enclave_create_destroy() -> Result<(), String> {
    sys::ensure_ghostfs()?;
    let dir = format!("{GHOSTFS}/enclave_1");
    create_enclave("create 1 91\n")?;
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map_err(|e| format!("{dir}: {e}"))?
        .map(|d| d.map(|d| d.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    names.sort();
    let mut want: Vec<&str> = [
        "abi_version",
        "agent_online",
        "agentless_timeout",
        "cpu_data",
        "cpulist",
        "cpumask",
        "ctl",
        "runnable_timeout",
        "status",
        "sw_regions",
        "tasks",
    ]
    .into();
    want.extend(TUNABLES);
    want.sort();
    ensure!(
        names == want,
        "files of enclave_1: {names:?}, want {want:?}"
    );
    for (f, mode) in [
        ("", 0o555),
        ("/ctl", 0o664),
        ("/abi_version", 0o444),
        ("/status", 0o444),
        ("/cpu_data", 0o660),
        ("/tasks", 0o666),
        ("/sw_regions", 0o555),
    ] {
        let got = mode_of(&format!("{dir}{f}"))?;
        ensure!(got == mode, "enclave_1{f}: mode {got:o}, want {mode:o}");
    }
    for f in TUNABLES.iter().chain(&[
        "runnable_timeout",
        "agentless_timeout",
        "cpulist",
        "cpumask",
        "agent_online",
    ]) {
        let got = mode_of(&format!("{dir}/{f}"))?;
        ensure!(got == 0o664, "enclave_1/{f}: mode {got:o}, want 664");
    }
    let read =
        |f: &str| std::fs::read_to_string(format!("{dir}/{f}")).map_err(|e| format!("{f}: {e}"));
    // ghOSt prints the id with no newline.
    ensure!(read("ctl")? == "1", "ctl reads {:?}", read("ctl")?);
    ensure!(
        read("abi_version")? == "91\n",
        "abi_version reads {:?}",
        read("abi_version")?
    );
    let status = read("status")?;
    ensure!(
        status == "version 91\nactive no\nnr_tasks 0\n",
        "status reads {status:?}"
    );
    let again = sys::write_once(&format!("{GHOSTFS}/ctl"), b"create 1 91\n");
    ensure!(
        again == Err(libc::EEXIST),
        "second create 1: {again:?}, want EEXIST"
    );
    create_enclave("create 2 91")?;
    destroy_enclave(1)?;
    ensure!(
        std::fs::metadata(&dir).is_err(),
        "{dir} still exists after destroy"
    );
    ensure!(
        std::fs::metadata(format!("{GHOSTFS}/enclave_2")).is_ok(),
        "enclave_2 went away with enclave_1"
    );
    create_enclave("create 1 91")?;
    destroy_enclave(1)?;
    destroy_enclave(2)?;
    let n = std::fs::read_dir(GHOSTFS)
        .map_err(|e| e.to_string())?
        .count();
    ensure!(n == 2, "{n} entries left in {GHOSTFS}, want 2");
    Ok(())
}

pub(crate) fn enclave_ctl_rejects_bad_input() -> Result<(), String> {
    sys::ensure_ghostfs()?;
    create_enclave("create 3 91")?;
    let ctl = ctl_path(3);
    let cases: &[(&[u8], i32)] = &[
        (b"", libc::EINVAL),
        (b"\n", libc::EINVAL),
        (b"destroy now\n", libc::EINVAL),
        (b"destroy \n", libc::EINVAL),
        (b"Destroy\n", libc::EINVAL),
        (b"discover\n", libc::EINVAL),
        (b"create sw_region\n", libc::EINVAL),
        (b"create sw_region x 0\n", libc::EINVAL),
        (b"create sw_region 1 0 0\n", libc::EINVAL),
        (b"become agent 0 -2\n", libc::EINVAL),
        (b"become agent -1 0\n", libc::EINVAL),
        (b"become agent 0\n", libc::EINVAL),
        (b"disable my bpf\n", libc::EINVAL),
        (b"destroy\0\n", libc::EINVAL),
        (b"create sw_region 0 -1\n", libc::EINVAL),
        (b"create sw_region 0 99999\n", libc::EINVAL),
        (b"create sw_region 4294967296 0\n", libc::EINVAL),
        // No CPU: CPU 0 is not the enclave's.
        (b"become agent 0 -1\n", libc::ENODEV),
    ];
    expect_errnos(&ctl, cases)?;
    for ok in [&b"discover tasks\n"[..], b"disable my bpf_prog_load\n"] {
        sys::write_once(&ctl, ok)
            .map_err(|e| format!("write {:?}: {}", String::from_utf8_lossy(ok), errno_name(e)))?;
    }
    let r = sys::write_once(&format!("{GHOSTFS}/enclave_3/status"), b"x");
    ensure!(r.is_err(), "writing status succeeded");
    let id = std::fs::read_to_string(&ctl).map_err(|e| e.to_string())?;
    ensure!(id == "3", "ctl reads {id:?} after bad input");
    destroy_enclave(3)?;
    Ok(())
}

pub(crate) fn enclave_open_files_survive_destroy() -> Result<(), String> {
    use std::io::{Read, Write};
    sys::ensure_ghostfs()?;
    create_enclave("create 4 91")?;
    let mut ctl = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(ctl_path(4))
        .map_err(|e| e.to_string())?;
    let mut status =
        std::fs::File::open(format!("{GHOSTFS}/enclave_4/status")).map_err(|e| e.to_string())?;
    // Destroy through the held fd itself: the file's own callback removes
    // the directory holding it.
    ctl.write_all(b"destroy")
        .map_err(|e| format!("destroy through the held fd: {e}"))?;
    ensure!(
        std::fs::metadata(format!("{GHOSTFS}/enclave_4")).is_err(),
        "enclave_4 still exists"
    );
    let mut buf = String::new();
    let r = status.read_to_string(&mut buf);
    ensure!(
        r.is_err(),
        "reading a destroyed enclave's status succeeded: {buf:?}"
    );
    let r = ctl.write_all(b"destroy");
    ensure!(r.is_err(), "writing a destroyed enclave's ctl succeeded");
    drop((ctl, status));
    // The id is free again.
    create_enclave("create 4 91")?;
    destroy_enclave(4)?;
    Ok(())
}

/// Runs `f` in a child process with uid 65534 and group `gid`; returns its exit code.
fn as_nobody(gid: u32, f: fn() -> i32) -> Result<i32, String> {
    let child = sys::fork_child(|| {
        let dropped = sys::become_nobody(gid);
        if dropped {
            f()
        } else {
            100
        }
    })?;
    match sys::wait_child(child)? {
        Exit::Code(c) => Ok(c),
        other => Err(format!("child ended {other:?}")),
    }
}

pub(crate) fn enclave_unprivileged_refused() -> Result<(), String> {
    sys::ensure_ghostfs()?;
    // Without the group: the root ctl (0660) cannot even be opened for writing.
    let code = as_nobody(65534, || {
        match sys::write_once("/sys/fs/ghost/ctl", b"create 9 91") {
            Err(libc::EACCES) => 0,
            Err(_) => 2,
            Ok(_) => 1,
        }
    })?;
    ensure!(
        code == 0,
        "unprivileged create: child exit {code} (0: EACCES, 1: succeeded, 2: other errno)"
    );
    ensure!(
        std::fs::metadata(format!("{GHOSTFS}/enclave_9")).is_err(),
        "unprivileged create made enclave_9"
    );
    // With the enclave's group (gid=): the ctl opens, but destroy needs CAP_SYS_ADMIN.
    create_enclave("create 5 91 gid=4242")?;
    let code = as_nobody(4242, || {
        match sys::write_once("/sys/fs/ghost/enclave_5/ctl", b"destroy") {
            Err(libc::EPERM) => 0,
            Err(_) => 2,
            Ok(_) => 1,
        }
    })?;
    let gid_ok = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(ctl_path(5))
            .map(|m| m.gid())
            .map_err(|e| e.to_string())?
            == 4242
    };
    destroy_enclave(5)?;
    ensure!(
        code == 0,
        "unprivileged destroy: child exit {code} (0: EPERM, 1: succeeded, 2: other errno)"
    );
    ensure!(gid_ok, "enclave_5/ctl is not owned by group 4242");
    Ok(())
}

pub(crate) fn enclave_tunables() -> Result<(), String> {
    sys::ensure_ghostfs()?;
    create_enclave("create 6 91")?;
    let dir = format!("{GHOSTFS}/enclave_6");
    let read =
        |f: &str| std::fs::read_to_string(format!("{dir}/{f}")).map_err(|e| format!("{f}: {e}"));
    let write = |f: &str, v: &[u8]| {
        sys::write_once(&format!("{dir}/{f}"), v)
            .map_err(|e| format!("write {f}: {}", errno_name(e)))
    };
    // ghOSt's tunables: `kstrtoint` input (any integer; nonzero is on),
    // read back as "0" or "1" with no newline.
    let bad_bool: &[(&[u8], i32)] = &[
        (b"", libc::EINVAL),
        (b"yes\n", libc::EINVAL),
        (b"1 \n", libc::EINVAL),
        (b" 1", libc::EINVAL),
        (b"1\n\n", libc::EINVAL),
        (b"0x\n", libc::EINVAL),
        (b"99999999999\n", libc::EINVAL),
    ];
    for t in TUNABLES {
        ensure!(read(t)? == "0", "{t} starts at {:?}", read(t)?);
        write(t, b"1\n")?;
        ensure!(read(t)? == "1", "{t} reads {:?} after writing 1", read(t)?);
        expect_errnos(&format!("{dir}/{t}"), bad_bool)?;
        ensure!(read(t)? == "1", "{t} changed by bad input: {:?}", read(t)?);
        write(t, b"0")?;
        ensure!(read(t)? == "0", "{t} reads {:?} after writing 0", read(t)?);
        for on in [&b"2"[..], b"-1\n", b"0x10", b"01", b"+3"] {
            write(t, b"0")?;
            write(t, on)?;
            ensure!(
                read(t)? == "1",
                "{t} reads {:?} after writing {:?}",
                read(t)?,
                String::from_utf8_lossy(on)
            );
        }
        write(t, b"00")?;
        ensure!(read(t)? == "0", "{t} reads {:?} after writing 00", read(t)?);
    }
    ensure!(
        read("runnable_timeout")? == "0",
        "runnable_timeout starts at {:?}",
        read("runnable_timeout")?
    );
    write("runnable_timeout", b"1500\n")?;
    ensure!(
        read("runnable_timeout")? == "1500",
        "runnable_timeout reads {:?}",
        read("runnable_timeout")?
    );
    // `kstrtoul` input: hexadecimal and octal are numbers too.
    write("runnable_timeout", b"0x10\n")?;
    ensure!(
        read("runnable_timeout")? == "16",
        "runnable_timeout reads {:?} after 0x10",
        read("runnable_timeout")?
    );
    write("runnable_timeout", b"1500")?;
    let bad_ms: &[(&[u8], i32)] = &[
        (b"-1\n", libc::EINVAL),
        (b"1.5\n", libc::EINVAL),
        (b"abc\n", libc::EINVAL),
        (b"9223372036855\n", libc::EINVAL),
        (b"99999999999999999999\n", libc::EINVAL),
    ];
    expect_errnos(&format!("{dir}/runnable_timeout"), bad_ms)?;
    ensure!(
        read("runnable_timeout")? == "1500",
        "runnable_timeout changed by bad input"
    );
    write("runnable_timeout", b"9223372036854")?;
    write("runnable_timeout", b"0")?;
    // ghost-rs's own file: the default, the grammar of runnable_timeout.
    ensure!(
        read("agentless_timeout")? == "60000",
        "agentless_timeout starts at {:?}",
        read("agentless_timeout")?
    );
    write("agentless_timeout", b"0x10\n")?;
    ensure!(
        read("agentless_timeout")? == "16",
        "agentless_timeout reads {:?} after 0x10",
        read("agentless_timeout")?
    );
    expect_errnos(&format!("{dir}/agentless_timeout"), bad_ms)?;
    ensure!(
        read("agentless_timeout")? == "16",
        "agentless_timeout changed by bad input"
    );
    write("agentless_timeout", b"0")?;
    ensure!(
        read("agentless_timeout")? == "0",
        "agentless_timeout reads {:?} after 0",
        read("agentless_timeout")?
    );
    destroy_enclave(6)?;
    Ok(())
}

pub(crate) fn enclave_cpus() -> Result<(), String> {
    sys::ensure_ghostfs()?;
    let possible =
        std::fs::read_to_string("/sys/devices/system/cpu/possible").map_err(|e| e.to_string())?;
    ensure!(
        possible.trim() == "0-1",
        "the test expects a 2-CPU VM, possible CPUs: {possible:?}"
    );
    create_enclave("create 10 91")?;
    create_enclave("create 11 91")?;
    let f = |id: u64, name: &str| format!("{GHOSTFS}/enclave_{id}/{name}");
    let read = |id: u64, name: &str| {
        std::fs::read_to_string(f(id, name)).map_err(|e| format!("{name}: {e}"))
    };
    let write =
        |id: u64, name: &str, v: &str| sys::write_once(&f(id, name), v.as_bytes()).map(|_| ());

    ensure!(
        read(10, "cpulist")? == "\n",
        "new enclave cpulist {:?}",
        read(10, "cpulist")?
    );
    ensure!(
        read(10, "cpumask")? == "0\n",
        "new enclave cpumask {:?}",
        read(10, "cpumask")?
    );
    write(10, "cpulist", "0\n").map_err(|e| format!("cpulist 0: {}", errno_name(e)))?;
    ensure!(
        read(10, "cpulist")? == "0\n",
        "cpulist {:?}",
        read(10, "cpulist")?
    );
    ensure!(
        read(10, "cpumask")? == "1\n",
        "cpumask {:?}",
        read(10, "cpumask")?
    );

    // A CPU belongs to at most one enclave; a refused write changes nothing.
    ensure!(
        write(11, "cpulist", "0") == Err(libc::EBUSY),
        "enclave_11 took CPU 0 of enclave_10"
    );
    write(11, "cpulist", "1").map_err(|e| format!("cpulist 1: {}", errno_name(e)))?;
    ensure!(
        write(11, "cpulist", "0-1") == Err(libc::EBUSY),
        "cpulist 0-1 was not refused"
    );
    ensure!(
        write(11, "cpumask", "3") == Err(libc::EBUSY),
        "cpumask 3 was not refused"
    );
    ensure!(
        read(11, "cpulist")? == "1\n",
        "enclave_11 CPUs after refusals: {:?}",
        read(11, "cpulist")?
    );
    ensure!(
        read(10, "cpulist")? == "0\n",
        "enclave_10 CPUs after refusals: {:?}",
        read(10, "cpulist")?
    );

    // The errnos of the kernel's cpulist_parse()/cpumask_parse(), as under
    // ghOSt: ERANGE for a CPU beyond the CPU ids in a list, EOVERFLOW for a
    // number or a mask too big, EINVAL for anything malformed.
    let bad: &[(&[u8], i32)] = &[
        (b"2\n", libc::ERANGE),
        (b"0-2\n", libc::ERANGE),
        (b"1-0\n", libc::EINVAL),
        (b"x\n", libc::EINVAL),
        (b"-1\n", libc::EINVAL),
        (b"1x\n", libc::EINVAL),
        (b"4294967296\n", libc::EOVERFLOW),
        // Valid lists, but CPU 0 is enclave_10's.
        (b"0 \n", libc::EBUSY),
        (b"0,,1\n", libc::EBUSY),
    ];
    expect_errnos(&f(11, "cpulist"), bad)?;
    let bad: &[(&[u8], i32)] = &[
        (b"4\n", libc::EOVERFLOW),
        (b"0,1\n", libc::EOVERFLOW),
        (b"000000001\n", libc::EOVERFLOW),
        (b"g\n", libc::EINVAL),
        (b"0x1\n", libc::EINVAL),
    ];
    expect_errnos(&f(11, "cpumask"), bad)?;
    ensure!(
        read(11, "cpulist")? == "1\n",
        "enclave_11 CPUs after bad input: {:?}",
        read(11, "cpulist")?
    );

    // Destroying an enclave frees its CPUs.
    destroy_enclave(10)?;
    write(11, "cpumask", "3\n")
        .map_err(|e| format!("cpumask 3 after destroy: {}", errno_name(e)))?;
    ensure!(
        read(11, "cpulist")? == "0-1\n",
        "cpulist {:?}",
        read(11, "cpulist")?
    );
    write(11, "cpulist", "\n").map_err(|e| format!("clearing cpulist: {}", errno_name(e)))?;
    ensure!(
        read(11, "cpulist")? == "\n",
        "cpulist after clearing {:?}",
        read(11, "cpulist")?
    );

    // An offline CPU cannot join.
    let online = "/sys/devices/system/cpu/cpu1/online";
    if std::path::Path::new(online).exists() {
        sys::write_once(online, b"0").map_err(|e| format!("offlining CPU 1: {}", errno_name(e)))?;
        let r = write(11, "cpulist", "1");
        sys::write_once(online, b"1").map_err(|e| format!("onlining CPU 1: {}", errno_name(e)))?;
        ensure!(
            r == Err(libc::ENODEV),
            "cpulist with CPU 1 offline: {r:?}, want ENODEV"
        );
    }
    destroy_enclave(11)?;
    Ok(())
}

/// Reads `f` from the start (which also acknowledges a kernfs notification).
fn reread(f: &mut std::fs::File) -> Result<String, String> {
    use std::io::{Read, Seek};
    f.rewind().map_err(|e| e.to_string())?;
    let mut s = String::new();
    f.read_to_string(&mut s).map_err(|e| e.to_string())?;
    Ok(s)
}

pub(crate) fn enclave_agent_online() -> Result<(), String> {
    use std::io::Write;
    sys::ensure_ghostfs()?;
    create_enclave("create 12 91")?;
    let path = format!("{GHOSTFS}/enclave_12/agent_online");
    let status = || {
        std::fs::read_to_string(format!("{GHOSTFS}/enclave_12/status")).map_err(|e| e.to_string())
    };
    let open_rw = || {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
    };
    let mut watch = std::fs::File::open(&path).map_err(|e| e.to_string())?;
    ensure!(
        reread(&mut watch)? == "0",
        "agent_online starts at {:?}",
        reread(&mut watch)?
    );
    ensure!(status()?.contains("active no"), "status {:?}", status()?);

    // A writable open elsewhere wakes the poller.
    let p2 = path.clone();
    let opener = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(200));
        std::fs::OpenOptions::new().read(true).write(true).open(p2)
    });
    let woke = poll_pri(&watch, 10_000)?;
    let mut writer = opener
        .join()
        .map_err(|_| "opener panicked")?
        .map_err(|e| format!("writable open: {e}"))?;
    ensure!(woke, "no POLLPRI when agent_online was opened for writing");
    ensure!(
        reread(&mut watch)? == "1",
        "agent_online while held: {:?}",
        reread(&mut watch)?
    );
    ensure!(
        status()?.contains("active yes"),
        "status while held: {:?}",
        status()?
    );

    let second = open_rw();
    ensure!(
        second.as_ref().err().and_then(|e| e.raw_os_error()) == Some(libc::EBUSY),
        "second writable open: {second:?}, want EBUSY"
    );
    std::fs::File::open(&path).map_err(|e| format!("read-only open while held: {e}"))?;
    let w = writer.write(b"1");
    ensure!(
        w.as_ref().err().and_then(|e| e.raw_os_error()) == Some(libc::EINVAL),
        "write: {w:?}, want EINVAL"
    );

    // Closing the writer wakes the poller again and frees the claim.
    reread(&mut watch)?;
    drop(writer);
    ensure!(
        poll_pri(&watch, 10_000)?,
        "no POLLPRI when the writer closed"
    );
    ensure!(
        reread(&mut watch)? == "0",
        "agent_online after close: {:?}",
        reread(&mut watch)?
    );
    let again = open_rw().map_err(|e| format!("writable open after close: {e}"))?;
    // Destroying the enclave with the claim held is fine; closing afterwards too.
    destroy_enclave(12)?;
    drop(again);
    drop(watch);
    create_enclave("create 12 91")?;
    let fresh = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
    destroy_enclave(12)?;
    ensure!(
        fresh == "0",
        "a new enclave_12 starts with agent_online {fresh:?}"
    );
    Ok(())
}
