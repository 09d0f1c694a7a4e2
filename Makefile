# ctigw: the commands a developer and CI use. `make help` lists them.

CARGO        ?= cargo
BOARD        ?= x86_64
TARGET       := $(shell cat board/$(BOARD)/target)
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := sip_message sip_stream csta_document
TESTDATA     ?= $(abspath $(or $(CTIGW_TESTDATA),../shared/testdata))

.PHONY: help build run demo deps test lint bench fuzz fuzz-build clean

help:
	@echo "make run          build and start the gateway and two simulated CTI nodes (Ctrl-C stops all)"
	@echo "make demo         one scripted user against make run (or a stack of its own): the SIP/CSTA ladder"
	@echo "make test         every test: unit, integration, property, doc, benches once"
	@echo "make deps         install the real peers the tests use: sipp, tshark (Debian, as root)"
	@echo "make lint         rustfmt and clippy, warnings are errors"
	@echo "make build        release build for BOARD=$(BOARD) ($(TARGET))"
	@echo "make bench        criterion benchmarks, ctigw beside the rsip crate"
	@echo "make fuzz         each fuzz target for FUZZ_SECONDS=$(FUZZ_SECONDS) seconds"

build:
	$(CARGO) build --release --locked --target $(TARGET)

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
	echo "       users and lines: config/lines.conf; try 'make demo' in another terminal; Ctrl-C stops"; echo; \
	$(BIN)/ctigw --config config/ctigw.conf

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

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

bench:
	$(CARGO) bench --locked --bench codec
	python3 benches/report.py

# cargo-fuzz drives libFuzzer; the project's stable toolchain is told to
# accept the sanitizer flags it passes (RUSTC_BOOTSTRAP), so no nightly is needed.
fuzz-build:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd fuzz && RUSTC_BOOTSTRAP=1 $(CARGO) fuzz build

# Each target starts from the RFC 4475 messages and the shared samples.
fuzz: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	  case $$t in csta_*) seeds="$(TESTDATA)/csta" ;; *) seeds="../tests/rfc4475 $(TESTDATA)/sip" ;; esac; \
	  mkdir -p fuzz/corpus/$$t; \
	  echo "== $$t for $(FUZZ_SECONDS)s"; \
	  (cd fuzz && RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run $$t corpus/$$t $$seeds -- \
	    -max_total_time=$(FUZZ_SECONDS) -max_len=8192 -print_final_stats=1) || exit 1; \
	done

clean:
	$(CARGO) clean
