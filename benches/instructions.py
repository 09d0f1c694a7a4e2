#!/usr/bin/env python3
"""Instruction counts of one request through the gateway core, for `make
bench`: benches/instructions.rs under `valgrind --tool=callgrind`, run
with N = 0 and N = 10,000 requests; the difference over 10,000 is one
request (parse, route, write), free of the boot and of the noise that
times carry. Appends its section to BENCHMARKS.md."""

import json
import re
import shutil
import subprocess
import sys

from rig import ROOT, append_section

N = 10_000


def bench_binary():
    out = subprocess.run(
        ["cargo", "bench", "--locked", "--bench", "instructions", "--no-run", "--message-format=json"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )
    for line in out.stdout.splitlines():
        message = json.loads(line)
        if message.get("reason") == "compiler-artifact" and message.get("target", {}).get("name") == "instructions":
            if message.get("executable"):
                return message["executable"]
    sys.exit("no instructions bench binary")


# The gateway's share only: every call the rig makes into the core goes
# through the bench's core_call, and only that is counted, not the rig, the
# simulated node or Lync writing its requests and answers.
GATEWAY_ONLY = ["--toggle-collect=*core_call*"]


def instructions(binary, kind, n):
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *GATEWAY_ONLY, binary, kind,
         str(n)],
        capture_output=True, text=True, check=True,
    )
    return int(re.search(r"Collected : (\d+)", out.stderr).group(1))


def main():
    if not shutil.which("valgrind"):
        sys.exit("valgrind is not installed (Debian: valgrind)")
    binary = bench_binary()
    rows = []
    for kind, what in [("features", "GetCSTAFeatures, answered by the gateway (parse, route, write the 200)"),
                       ("relayed", "GetDoNotDisturb relayed to a node and its answer carried back"),
                       ("event", "a node's DeliveredEvent relayed to Lync as an INFO, and Lync's 200 to it"),
                       ("relayed+dialplan", "the same GetDoNotDisturb through a PBX's dial plan (devices rewritten both ways)"),
                       ("event+dialplan", "the same DeliveredEvent through a PBX's dial plan (every device rewritten)")]:
        per_request = (instructions(binary, kind, N) - instructions(binary, kind, 0)) / N
        rows.append(f"| {what} | {per_request:,.0f} |")
    lines = [
        "",
        "## Instructions per request (callgrind)",
        "",
        f"`benches/instructions.py`: the sans-IO core in memory, driven by the test rig (`ctigw::rig`), one user "
        f"over UDP, (count with {N:,} INFOs (or events) - count with none) / " + f"{N:,}" + "; repeatable where "
        "times are not. Only the calls into the core are counted (callgrind's --toggle-collect on the bench's "
        "core_call): the gateway's work, not the rig's, the simulated node's or Lync's.",
        "",
        "| request | instructions |",
        "|---|---:|",
        *rows,
        "",
    ]
    append_section(lines)


if __name__ == "__main__":
    main()
