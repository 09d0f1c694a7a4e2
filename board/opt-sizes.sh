#!/bin/bash
# The stripped size of ctigw at each opt-level, per ARM board: how each
# board's OPT_LEVEL (board/<name>/board.mk) was chosen. Needs the cross
# linkers (make cross-deps BOARD=...). Builds into /tmp/ctigw-opt-<level>.
set -euo pipefail
cd "$(dirname "$0")/.."
for b in ${@:-aarch64 armv7}; do
  t=$(cat board/$b/target)
  T=$(echo "$t" | tr 'a-z-' 'A-Z_')
  L=$(sed -n 's/^LINKER *:= *//p' board/$b/board.mk)
  for o in 3 2 s z; do
    env CTIGW_BOARD=$b "CARGO_TARGET_${T}_LINKER=$L" CARGO_PROFILE_RELEASE_OPT_LEVEL=$o \
      cargo build -q --release --locked --target "$t" --bin ctigw --target-dir /tmp/ctigw-opt-$o
    echo "$b opt-level=$o $(stat -c %s /tmp/ctigw-opt-$o/$t/release/ctigw) bytes"
  done
done
