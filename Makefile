# ctigw: the commands a developer and CI use. `make help` lists them.

CARGO        ?= cargo
BOARD        ?= x86_64
TARGET       := $(shell cat board/$(BOARD)/target)
ARM_BOARDS   := aarch64 armv7
VERSION      := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
DIST         := dist/ctigw-$(VERSION)-$(BOARD)
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := sip_message sip_stream csta_document gateway
TESTDATA     ?= $(abspath $(or $(CTIGW_TESTDATA),../shared/testdata))

.PHONY: help build cross cross-deps package figures soak run run-pbx demo deps test test-arm test-board lint bench fuzz fuzz-build clean

# The board's cross linker, emulator and packages (board/<name>/board.mk),
# and the environment that makes cargo use them: the linker, qemu-user as
# the runner of test binaries, and CTIGW_TEST_RUNNER for the binaries the
# integration tests start. CTIGW_BOARD picks the capacities (build.rs).
# The same cross gcc compiles ring's C and assembly (TLS) through the cc
# crate (CC_<target>).
include board/$(BOARD)/board.mk
TARGET_VAR := $(shell echo $(TARGET) | tr 'a-z-' 'A-Z_')
BOARD_ENV  := CTIGW_BOARD=$(BOARD) CARGO_PROFILE_RELEASE_OPT_LEVEL=$(OPT_LEVEL) \
  $(if $(LINKER),CARGO_TARGET_$(TARGET_VAR)_LINKER=$(LINKER) CC_$(subst -,_,$(TARGET))=$(LINKER)) \
  $(if $(QEMU),CARGO_TARGET_$(TARGET_VAR)_RUNNER=$(QEMU) CTIGW_TEST_RUNNER=$(QEMU) QEMU_LD_PREFIX=$(SYSROOT))

help:
	@echo "make run          build and start the gateway and two simulated CTI nodes (Ctrl-C stops all)"
	@echo "make run-pbx      the same against PBX-style nodes (dial-plan device ids, N<...> forms) with config/pbx.conf"
	@echo "make demo         one scripted user against make run (or a stack of its own): the SIP/CSTA ladder"
	@echo "make test         every test: unit, integration, property, doc, benches once"
	@echo "make deps         install the real peers the tests use: sipp, tshark (Debian, as root)"
	@echo "make lint         rustfmt and clippy, warnings are errors"
	@echo "make build        release build for BOARD=$(BOARD) ($(TARGET)); boards: board/*/"
	@echo "make cross        build for BOARD and package it: $(DIST).tar.gz"
	@echo "make figures     per board: binary size, boot-to-serving time, idle RSS (ARM under qemu)"
	@echo "make test-arm     the unit and integration tests for $(ARM_BOARDS), under qemu-user"
	@echo "make bench        criterion benchmarks, ctigw beside the rsip crate"
	@echo "make fuzz         each fuzz target for FUZZ_SECONDS=$(FUZZ_SECONDS) seconds"
	@echo "make soak         SOAK_SECONDS=$(SOAK_SECONDS) of steady load: memory flat, counters consistent (not in CI)"

build: cross-deps
	$(BOARD_ENV) $(CARGO) build --release --locked --target $(TARGET) --bins

# With `cross` and a running container engine, `cross` builds (Cross.toml);
# otherwise the Debian cross linker and the rustup target do, so a machine
# without containers builds too. Then the installable tree and tarball.
cross:
	@if command -v cross >/dev/null 2>&1 && { docker info >/dev/null 2>&1 || podman info >/dev/null 2>&1; }; then \
	  echo "make cross: cross build for $(TARGET)"; \
	  CTIGW_BOARD=$(BOARD) cross build --release --locked --target $(TARGET) --bins; \
	else \
	  echo "make cross: no cross/container engine; Debian cross linker for $(TARGET)"; \
	  $(MAKE) --no-print-directory build BOARD=$(BOARD); \
	fi
	@$(MAKE) --no-print-directory package BOARD=$(BOARD)

# The tree an appliance's root file system takes, and its tarball.
package:
	@rm -rf $(DIST) && mkdir -p $(DIST)/usr/sbin $(DIST)/etc/ctigw $(DIST)/etc/init.d $(DIST)/lib/systemd/system
	install -m 0755 target/$(TARGET)/release/ctigw target/$(TARGET)/release/ctigw-sim $(DIST)/usr/sbin/
	install -m 0644 config/appliance.conf $(DIST)/etc/ctigw/ctigw.conf
	install -m 0644 config/lines.conf $(DIST)/etc/ctigw/lines.conf
	install -m 0644 board/$(BOARD)/ctigw.service $(DIST)/lib/systemd/system/ctigw.service
	install -m 0755 board/sysvinit/ctigw $(DIST)/etc/init.d/ctigw
	tar -C $(DIST) --owner=0 --group=0 --numeric-owner -czf $(DIST).tar.gz .
	@echo "$(DIST).tar.gz: ctigw $$(stat -c %s $(DIST)/usr/sbin/ctigw) bytes, ctigw-sim $$(stat -c %s $(DIST)/usr/sbin/ctigw-sim) bytes (stripped)"

# Per board: stripped size, boot-to-serving time and idle RSS (ARM under
# qemu-user), the table of board/README.md.
figures:
	$(CARGO) build --release --locked --bins
	@for b in $(ARM_BOARDS) x86_64; do $(MAKE) --no-print-directory build BOARD=$$b || exit 1; done
	python3 board/figures.py $(ARM_BOARDS) x86_64

# The board's cross linker and emulator (Debian packages) and rustup target.
cross-deps:
	@missing=""; \
	for tool in $(LINKER) $(QEMU); do command -v $$tool >/dev/null 2>&1 || missing="$(PACKAGES)"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "make cross-deps: please install $$missing (Debian packages), or run as root"; exit 1; fi; \
	  echo "make cross-deps: installing $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@rustup target list --installed 2>/dev/null | grep -qx '$(TARGET)' || rustup target add $(TARGET)

# The embedded default: two simulated CTI nodes and the gateway on
# loopback (config/ctigw.conf); Ctrl-C stops all three.
BIN  := ./target/release
# Starts the two simulators and arranges for them to stop with the recipe
# (their PIDs are kept: /bin/sh has no job control to ask).
SIMS := $(BIN)/ctigw-sim --listen 127.0.0.1:7001 --control 127.0.0.1:7101 --lines config/sim-lines.conf >/dev/null & s1=$$!; \
        $(BIN)/ctigw-sim --listen 127.0.0.1:7002 --control 127.0.0.1:7102 --lines config/sim-lines.conf >/dev/null & s2=$$!; \
        trap 'kill $$s1 $$s2 $$gw 2>/dev/null; wait' INT TERM EXIT;

run:
	$(CARGO) build --release --locked --bins
	@$(SIMS) \
	sleep 0.3; \
	echo; echo "ctigw: SIP on 127.0.0.1:5060 (UDP and TCP); CTI nodes 127.0.0.1:7001 and :7002"; \
	echo "       users and lines: config/lines.conf; try 'make demo' in another terminal; Ctrl-C stops"; \
	echo "       admin: curl 127.0.0.1:8080/healthz  /metrics  /nodes  /sessions"; echo; \
	$(BIN)/ctigw --config config/ctigw.conf

# As `make run`, the nodes shaped as an OpenScape-class PBX: devices named
# by the dial plan, the switch speaking first; the gateway translates by
# config/pbx.conf's [dialplan].
PBX_SIMS := $(BIN)/ctigw-sim --listen 127.0.0.1:7001 --control 127.0.0.1:7101 --lines config/pbx-lines.conf --naming openscape --speaks-first >/dev/null & s1=$$!; \
        $(BIN)/ctigw-sim --listen 127.0.0.1:7002 --control 127.0.0.1:7102 --lines config/pbx-lines.conf --naming openscape --speaks-first >/dev/null & s2=$$!; \
        trap 'kill $$s1 $$s2 $$gw 2>/dev/null; wait' INT TERM EXIT;

run-pbx:
	$(CARGO) build --release --locked --bins
	@$(PBX_SIMS) \
	sleep 0.3; \
	echo; echo "ctigw: SIP on 127.0.0.1:5060 (UDP and TCP); PBX-style CTI nodes 127.0.0.1:7001 and :7002"; \
	echo "       users and devices: config/pbx-lines.conf; dial plan: config/pbx.conf; Ctrl-C stops"; echo; \
	$(BIN)/ctigw --config config/pbx.conf

# One scripted user through sign-in, monitor, make call, hold, retrieve,
# transfer and hang-up, printing the ladder; against `make run` if it is
# up, otherwise against a stack started for the demo and stopped after.
demo:
	$(CARGO) build --release --locked --bins
	@if $(BIN)/ctigw-demo --probe; then \
	  $(BIN)/ctigw-demo; \
	else \
	  $(SIMS) \
	  sleep 0.3; \
	  RUST_LOG=warn $(BIN)/ctigw --config config/ctigw.conf & gw=$$!; \
	  sleep 1; \
	  $(BIN)/ctigw-demo; \
	fi

# The real peers the end-to-end tests drive: sipp (sip-tester) and tshark.
deps:
	@missing=""; \
	command -v sipp >/dev/null 2>&1 || missing="$$missing sip-tester"; \
	command -v tshark >/dev/null 2>&1 || missing="$$missing tshark"; \
	command -v kamailio >/dev/null 2>&1 || [ -x /usr/sbin/kamailio ] || missing="$$missing kamailio"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "make deps: please install$$missing (Debian packages), or run as root"; exit 1; fi; \
	  echo "make deps: installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$missing >/dev/null; \
	fi

# --all-targets builds and runs unit, integration and property tests and
# runs each benchmark once in test mode; doc tests need their own pass.
test: deps
	$(CARGO) test --locked --all-targets
	$(CARGO) test --locked --doc

# Every unit and integration test, built for each ARM board and run under
# qemu-user (doc tests and benches stay on the host: cargo cannot run
# cross-compiled doc tests on stable).
test-arm:
	@for b in $(ARM_BOARDS); do $(MAKE) --no-print-directory test-board BOARD=$$b || exit 1; done

test-board: cross-deps
	$(BOARD_ENV) $(CARGO) test --locked --target $(TARGET) --lib --bins --tests

# Ten minutes (SOAK_SECONDS) of steady traffic through the gateway and two
# simulated nodes: memory flat, counters consistent. Not run by CI.
SOAK_SECONDS ?= 600
soak:
	SOAK_SECONDS=$(SOAK_SECONDS) $(CARGO) test --release --locked --test soak -- --ignored --nocapture

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

# The codec benchmarks (criterion), instruction counts of one request
# (callgrind), the gateway against Kamailio, then the gateway's storm,
# saturation, latency and memory; each writes its section of BENCHMARKS.md.
bench: deps
	$(CARGO) bench --locked --bench codec
	python3 benches/report.py
	python3 benches/instructions.py
	$(CARGO) build --locked --release --bins
	python3 benches/kamailio.py
	python3 benches/gateway.py

# cargo-fuzz drives libFuzzer; the project's stable toolchain is told to
# accept the sanitizer flags it passes (RUSTC_BOOTSTRAP), so no nightly is needed.
fuzz-build:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd fuzz && RUSTC_BOOTSTRAP=1 $(CARGO) fuzz build

# Each target starts from the RFC 4475 messages and the shared samples.
fuzz: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	  case $$t in csta_*) seeds="$(TESTDATA)/csta" ;; gateway) seeds="seeds/gateway regressions/gateway" ;; *) seeds="../tests/rfc4475 $(TESTDATA)/sip" ;; esac; \
	  mkdir -p fuzz/corpus/$$t; \
	  echo "== $$t for $(FUZZ_SECONDS)s"; \
	  (cd fuzz && RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run $$t corpus/$$t $$seeds -- \
	    -max_total_time=$(FUZZ_SECONDS) -max_len=8192 -print_final_stats=1) || exit 1; \
	done

clean:
	$(CARGO) clean
	rm -rf dist
