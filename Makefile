# ghost-rs: ghOSt (scheduling delegated to userspace agents) for Linux 6.12, in Rust.
#
#   make run         the demo: build everything, boot the VM, show ghost-rs at work
#   make test        every test, host and in-VM; last line "N passed, N failed"
#   make fuzz        the random-operation fuzzer in the VM for SECONDS=N (default
#                    60), with a random seed printed first (FUZZ_SEED=S replays)
#
#   make setup       install the build dependencies (Debian 12, as root)
#   make prepare     extract, patch and configure the kernel tree (build/linux)
#   make kernel      build the kernel (incremental)
#   make userspace   build the userspace workspace (release)
#   make vm          an interactive shell in the VM, tools on PATH
#   make clean       remove build outputs (keeps the extracted tree; FRESH=1 for all)
#
# Everything is built under build/ (git-ignored).

SHELL := /bin/bash
CARGO ?= cargo

.PHONY: all run test fuzz setup prepare kernel userspace vm clean check-host

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

run: kernel userspace
	@scripts/vm-run demo

test: kernel userspace
	@scripts/test

SECONDS ?= 60
fuzz: kernel userspace
	@FUZZ_SECONDS=$(SECONDS) scripts/vm-run fuzz

vm: kernel userspace
	@scripts/vm-run shell

clean:
	@if [ -n "$(FRESH)" ]; then rm -rf build; else \
		rm -rf build/cargo build/vm build/test-logs build/kernel-build.log; \
		[ ! -d build/linux ] || $(MAKE) -s -C build/linux LLVM=1 clean; fi
