//! Builds `c/abi_conformance.c`, the C program of the `c_*` in-VM tests
//! (see `src/tests/conformance/c_program.rs`), against the uapi header of
//! this repository only: `-I linux/include/uapi` provides `<linux/ghost.h>`;
//! everything else comes from libc. The binary lands in `OUT_DIR` and its path is compiled into
//! `ghost-exp` as `GHOST_ABI_CONFORMANCE_BIN` (the VM sees the host's
//! filesystem at the same paths).

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let src = manifest.join("c/abi_conformance.c");
    let uapi = manifest.join("../../linux/include/uapi");
    let header = uapi.join("linux/ghost.h");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR")).join("ghost-abi-conformance");
    println!("cargo:rerun-if-changed={}", src.display());
    println!("cargo:rerun-if-changed={}", header.display());
    println!("cargo:rerun-if-env-changed=CC");
    let cc = env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .args([
            "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-pthread", "-I",
        ])
        .arg(&uapi)
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .status()
        .unwrap_or_else(|e| panic!("running {cc}: {e}"));
    assert!(status.success(), "{cc} failed to build {}", src.display());
    println!(
        "cargo:rustc-env=GHOST_ABI_CONFORMANCE_BIN={}",
        out.display()
    );
}
