# ghost-rs: ghOSt (scheduling delegated to userspace agents) for Linux 6.12, in Rust.
#
#   make run         the demo: build everything, boot the VM, show ghost-rs at work
#   make test        every test, host and in-VM; last line "N passed, N failed"
#   make test-kasan  the in-VM suite on a KASAN kernel (its own tree, build/linux-kasan)
#   make test-scx    sched_ext beside ghost on the bench kernel (its own tree,
#                    build/linux-bench: BPF, BTF, SCHED_CLASS_EXT; long first build)
#                    with the kernel's scx_simple; output in build/vm-bench/
#   make test-stress make test on a loaded machine (stress-ng --cpu N and a
#                    second VM running the demo in a loop); reports the result
#                    and the time (Documentation/ghost-rs/reliability.rst)
#   make bench       the benchmarks: the ghOSt paper's microbenchmarks and
#                    third-party workloads, ghost against CFS in the same boot,
#                    two TCG modes; build/bench/results.json, plots, a table
#                    (QUICK=1: a short run; Documentation/ghost-rs/benchmarks.rst)
#   make fuzz        the random-operation fuzzer in the VM for SECONDS=N (default
#                    60), with a random seed printed first (FUZZ_SEED=S replays)
#
#   make setup       install the build dependencies (Debian 12, as root)
#   make prepare     extract, patch and configure the kernel tree (build/linux)
#   make kernel      build the kernel (incremental)
#   make userspace   build the userspace workspace (release)
#   make vm          an interactive shell in the VM, tools on PATH
#   make kernel-deb  Debian packages of the kernel (bindeb-pkg); KCONFIG=FILE|lean,
#                    LOCALMODCONFIG=1 (Documentation/ghost-rs/installing.rst)
#   make userspace-deb  the Debian package of the userspace (agents, ghostctl,
#                    ghost-exp, systemd units, man pages)
#   make clean       remove build outputs (keeps the extracted tree; FRESH=1 for all)
#
# Everything is built under build/ (git-ignored).

SHELL := /bin/bash
CARGO ?= cargo

.PHONY: all run test test-stress test-kasan test-scx fuzz bench setup prepare kernel userspace vm clean check-host \
	kernel-deb userspace-deb

all: kernel userspace

setup:
	@scripts/setup

prepare: setup
	@scripts/prepare-kernel $(if $(FRESH),--fresh)

kernel: prepare
	@scripts/build-kernel

userspace: setup
	@echo "userspace: cargo build --release (userspace/)"
	@cd userspace && PATH="$$HOME/.cargo/bin:$$PATH" $(CARGO) build --release --quiet

kernel-deb: setup
	@scripts/kernel-deb

userspace-deb: userspace
	@scripts/userspace-deb

run: kernel userspace
	@scripts/vm-run demo

test: kernel userspace
	@scripts/test

# make test while stress-ng --cpu N (installed by scripts/setup --optional)
# and a second VM (scripts/vm-run demo in a loop, in build/stress) load the
# machine; last line "test-stress: N passed, N failed in Xm YYs under load".
test-stress: kernel userspace
	@scripts/setup --optional
	@scripts/test-stress

# The KASAN variant: configs/*.config + configs/kasan/*.config, extracted,
# patched and built like build/linux but in build/linux-kasan; the in-VM suite
# and the kernel log check (a KASAN report is a splat) on it, output in
# build/vm-kasan/. Last line "N passed, N failed".
test-kasan: setup userspace
	@GHOST_KERNEL_VARIANT=kasan scripts/prepare-kernel $(if $(FRESH),--fresh)
	@GHOST_KERNEL_VARIANT=kasan scripts/build-kernel
	@GHOST_KERNEL_VARIANT=kasan scripts/vm-run test; rc=$$?; out=build/vm-kasan; \
	p=$$(grep -c '^PASS ' $$out/guest.log 2>/dev/null); p=$${p:-0}; \
	f=$$(grep -c '^FAIL ' $$out/guest.log 2>/dev/null); f=$${f:-0}; \
	if [ $$rc != 0 ] && [ $$f = 0 ]; then echo "FAIL vm-run (the guest did not complete the suite)"; f=1; fi; \
	if [ $$p = 0 ]; then echo "FAIL vm-suite (no in-VM test passed)"; f=$$((f + 1)); fi; \
	if grep -q PASS $$out/kernel-log-result 2>/dev/null; then echo "PASS kernel-log-clean (KASAN)"; p=$$((p + 1)); \
	else echo "FAIL kernel-log-clean (KASAN): see $$out/splats.txt"; f=$$((f + 1)); fi; \
	echo "$$p passed, $$f failed"; [ $$f = 0 ]

# The bench variant: configs/*.config + configs/bench/*.config (sched_ext
# beside ghost, Documentation/ghost-rs/scheduling.rst "ghost and sched_ext"),
# in build/linux-bench; the kernel's own tools/sched_ext built with clang-19
# (scripts/setup --bench, scripts/build-scx); then the scx_ tests and the
# class-order test on 4 vCPUs, with the kernel log check; output in
# build/vm-bench/. Not part of make test.
test-scx: userspace
	@scripts/setup --bench
	@GHOST_KERNEL_VARIANT=bench scripts/prepare-kernel $(if $(FRESH),--fresh)
	@GHOST_KERNEL_VARIANT=bench scripts/build-kernel
	@scripts/build-scx
	@GHOST_KERNEL_VARIANT=bench VM_CPUS=$${VM_CPUS:-4} GHOST_TEST_FILTER=$${GHOST_TEST_FILTER:-kernel_is_ghost,sched_classes_registered,scx_} \
		scripts/vm-run test; rc=$$?; out=build/vm-bench; \
	p=$$(grep -c '^PASS ' $$out/guest.log 2>/dev/null); p=$${p:-0}; \
	f=$$(grep -c '^FAIL ' $$out/guest.log 2>/dev/null); f=$${f:-0}; \
	if [ $$rc != 0 ] && [ $$f = 0 ]; then echo "FAIL vm-run (see above)"; f=1; fi; \
	if [ $$p = 0 ]; then echo "FAIL vm-suite (no in-VM test passed)"; f=$$((f + 1)); fi; \
	echo "$$p passed, $$f failed"; [ $$f = 0 ]

SECONDS ?= 60
fuzz: kernel userspace
	@FUZZ_SECONDS=$(SECONDS) scripts/vm-run fuzz

bench: kernel userspace
	@QUICK=$(QUICK) scripts/bench

vm: kernel userspace
	@scripts/vm-run shell

clean:
	@if [ -n "$(FRESH)" ]; then rm -rf build; else \
		rm -rf build/cargo build/vm build/test-logs build/kernel-build.log; \
		[ ! -d build/linux ] || $(MAKE) -s -C build/linux LLVM=1 clean; fi
