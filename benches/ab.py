#!/usr/bin/env python3
"""Two builds of ctigw side by side, for a before/after of a change: both
release gateways up at once, each with its own two simulated nodes, and
the same ctigw-load run alternated between them (ABBA...), so that the
machine's drift falls on both alike. Reports the median server CPU per
request of each and their ratio, per request kind.

usage: python3 benches/ab.py TREE_A TREE_B [ROUNDS [SECONDS [KINDS]]]
  TREE_A, TREE_B  checkouts with `cargo build --release --bins` done
  ROUNDS          runs per kind and build (default 6)
  SECONDS         length of each run (default 4)
  KINDS           comma-separated ctigw-load --requests kinds
                  (default features,relayed,calls)

Not part of `make bench`: a tool for a change's closing note."""

import json
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile

import rig
from kamailio import cpu_ns

USERS = 100
WINDOW = 16


def start(tree, scratch, procs):
    rig.BIN = pathlib.Path(tree).resolve() / "target" / "release"
    return rig.start_gateway(scratch, procs)


def cpu_per_request(load, port, kind, pid, seconds):
    before = cpu_ns([pid])
    out = subprocess.run(
        [load, "--gateway", f"127.0.0.1:{port}", "--users", str(USERS), "--window", str(WINDOW),
         "--duration", str(seconds), "--requests", kind, "--json"],
        capture_output=True, text=True, check=True,
    )
    used = cpu_ns([pid]) - before
    report = json.loads(out.stdout)
    if report["lost"] or report["refused"]:
        sys.exit(f"{kind} run lost or refused requests: {out.stdout}")
    return used / sum(k["ok"] for k in report["kinds"].values()) / 1000


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    a, b = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 6
    seconds = int(sys.argv[4]) if len(sys.argv) > 4 else 4
    kinds = sys.argv[5].split(",") if len(sys.argv) > 5 else ["features", "relayed", "calls"]
    load = rig.ROOT / "target" / "release" / "ctigw-load"
    scratch = pathlib.Path(tempfile.mkdtemp(prefix="ctigw-ab-"))
    subprocess.run([load, "--write-lines", str(USERS), scratch], check=True)
    procs = []
    try:
        gateways = {"A": start(a, scratch, procs), "B": start(b, scratch, procs)}
        runs = {}
        for kind in kinds:
            for r in range(rounds):
                for name in ("A", "B") if r % 2 == 0 else ("B", "A"):
                    gw, port = gateways[name]
                    runs.setdefault((kind, name), []).append(cpu_per_request(load, port, kind, gw.pid, seconds))
    finally:
        rig.stop(procs)
        shutil.rmtree(scratch, ignore_errors=True)
    for kind in kinds:
        ma, mb = statistics.median(runs[(kind, "A")]), statistics.median(runs[(kind, "B")])
        spread = lambda xs: f"{min(xs):.1f}-{max(xs):.1f}"
        print(f"{kind}: A {ma:.2f} us, B {mb:.2f} us per request (CPU), B/A {mb / ma:.3f} "
              f"(A {spread(runs[(kind, 'A')])}, B {spread(runs[(kind, 'B')])}, {rounds} runs each)")


if __name__ == "__main__":
    main()
