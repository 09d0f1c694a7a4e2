# ctigw: the commands a developer and CI use. `make help` lists them.

CARGO        ?= cargo
BOARD        ?= x86_64
TARGET       := $(shell cat board/$(BOARD)/target)
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := sip_message sip_stream csta_document
TESTDATA     ?= $(abspath $(or $(CTIGW_TESTDATA),../shared/testdata))

.PHONY: help build run test lint bench fuzz fuzz-build clean

help:
	@echo "make run          build and start the gateway on its embedded default"
	@echo "make test         every test: unit, integration, property, doc, benches once"
	@echo "make lint         rustfmt and clippy, warnings are errors"
	@echo "make build        release build for BOARD=$(BOARD) ($(TARGET))"
	@echo "make bench        criterion benchmarks, ctigw beside the rsip crate"
	@echo "make fuzz         each fuzz target for FUZZ_SECONDS=$(FUZZ_SECONDS) seconds"

build:
	$(CARGO) build --release --locked --target $(TARGET)

run:
	$(CARGO) build --release --locked
	./target/release/ctigw

# --all-targets builds and runs unit, integration and property tests and
# runs each benchmark once in test mode; doc tests need their own pass.
test:
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
