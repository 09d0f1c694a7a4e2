#!/usr/bin/env python3
"""The gateway's own figures, for `make bench`, each from one run of one
command (ctigw-load against a release ctigw and two simulated nodes on
loopback, over TCP as a Lync pool connects):

  storm       10,000 users sign in at once (INVITE, 200, ACK, MonitorStart)
  saturation  call requests per second, closed loop of 64 in flight
  half        p50 / p99 / p99.9 latency at half the saturation rate
  memory      resident memory idle, and with every session of the board's
              table open (16,384 on x86_64)

Latency is the Lync client's: request out to answer in, through the
gateway and the simulated node (the node answers at once, so nearly all of
it is the gateway and the loopback). Appends its section to BENCHMARKS.md.
"""

import json
import pathlib
import shutil
import subprocess
import sys
import tempfile

from rig import BIN, ROOT, append_section, peak_rss_while, rss_kib, start_gateway, stop

STORM_USERS = 10_000


def board_sessions():
    for line in (ROOT / "board/x86_64/capacities").read_text().splitlines():
        if line.startswith("sessions"):
            return int(line.split("=")[1])
    sys.exit("no sessions in board/x86_64/capacities")


def load(port, *args):
    out = subprocess.run([BIN / "ctigw-load", "--gateway", f"127.0.0.1:{port}", "--transport", "tcp", "--json", *args],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main():
    users = board_sessions()
    scratch = pathlib.Path(tempfile.mkdtemp(prefix="ctigw-bench-"))
    subprocess.run([BIN / "ctigw-load", "--write-lines", str(users), scratch], check=True)
    procs = []
    try:
        gw, gw_port = start_gateway(scratch, procs)
        idle_rss = rss_kib(gw.pid)

        storm = load(gw_port, "--users", str(STORM_USERS), "--window", "128", "--duration", "1")
        saturated = load(gw_port, "--users", "200", "--window", "64", "--duration", "10")
        half_rate = saturated["rate_per_s"] / 2
        half = load(gw_port, "--users", "200", "--window", "256", "--rate", f"{half_rate:.0f}", "--duration", "10")

        # Every session open: sample the RSS while the users are signed in.
        peak, full = peak_rss_while(gw.pid, lambda: load(
            gw_port, "--users", str(users), "--window", "128", "--rate", "100", "--duration", "3"))
    finally:
        stop(procs)
        shutil.rmtree(scratch, ignore_errors=True)

    for name, r in [("storm", storm), ("saturation", saturated), ("half", half), ("full", full)]:
        if r["lost"]:
            sys.exit(f"{name}: requests lost: {json.dumps(r)}")
    lines = [
        "",
        "## The gateway: sign-in storm, saturation, latency, memory",
        "",
        "`benches/gateway.py`: ctigw-load over TCP (one connection, as a Lync pool) against a release ctigw "
        "and two simulated nodes that answer at once, on loopback; every figure from one run.",
        "",
        "| figure | value | run |",
        "|---|---:|---|",
        f"| sign-in storm, {STORM_USERS} users (INVITE + 200 + ACK + MonitorStart) | {storm['storm_ms']:.0f} ms "
        f"| {storm['signed_in']} signed in, {storm['refused']} refused |",
        f"| call requests per second at saturation (closed loop, 64 in flight, 200 users) "
        f"| {saturated['rate_per_s']:.0f} | {saturated['call_requests_ok']} answered, {saturated['refused']} refused |",
        f"| latency at half of it ({half['rate_per_s']:.0f}/s): p50 / p99 / p99.9 "
        f"| {half['p50_us']} / {half['p99_us']} / {half['p999_us']} us | {half['call_requests_ok']} requests, "
        f"{half['refused']} refused |",
        f"| resident memory, idle | {idle_rss} KiB | after boot, both nodes up |",
        f"| resident memory, all {users} sessions open | {peak} KiB | {full['signed_in']} signed in, peak |",
        "",
    ]
    append_section(lines)


if __name__ == "__main__":
    main()
