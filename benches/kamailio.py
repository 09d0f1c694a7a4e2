#!/usr/bin/env python3
"""The gateway against a reference, for `make bench`: Kamailio (one UDP
worker) answering every request statelessly with 200 (config/kamailio/
reference.cfg), and ctigw, both driven by the same client (ctigw-load) over
UDP on loopback, in the same run:

  kamailio   100 users, each asks GetCSTAFeatures, Kamailio answers 200
  local      the same against ctigw, which answers it itself (SIP + CSTA)
  roundtrip  each asks GetDoNotDisturb for its line, which ctigw relays to
             the user's simulated CTI node and whose answer it relays back:
             the full CSTA round trip, one INFO in and one 200 out per
             request as for the other two
  calls      MakeCall / HoldCall / RetrieveCall / ClearConnection through
             ctigw and the nodes, with the events they cause (each event
             another SIP transaction: an INFO out, its 200 in), reported
             beside the ratios as the heavier everyday load

Each is a closed loop (16 requests in flight) for RUN_SECONDS, repeated
ROUNDS times; the medians are reported. On a shared 2-core machine the
client, not the server, sets the rate, so the figure compared is the
server's CPU time per request (from /proc/<pid>/task/*/schedstat, every
process and thread of the server; for the round trip ctigw's alone, the
simulated nodes stand for the telephone system): requests per CPU-second
is throughput per core. Ratios above 1 mean ctigw does more per core.

Appends its section to BENCHMARKS.md (report.py writes the file first).
"""

import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile

from rig import BIN, ROOT, append_section, free_port, start_gateway, stop, wait_udp

ROUNDS = int(os.environ.get("ROUNDS", "3"))
RUN_SECONDS = int(os.environ.get("RUN_SECONDS", "8"))
USERS = 100
WINDOW = 16


def cpu_ns(pids):
    """CPU time of every thread of `pids`, in ns."""
    total = 0
    for pid in pids:
        for task in pathlib.Path(f"/proc/{pid}/task").iterdir():
            total += int((task / "schedstat").read_text().split()[0])
    return total


def process_tree(root):
    """`root` and its descendants (Kamailio forks its workers)."""
    pids, frontier = [root], [root]
    while frontier:
        pid = frontier.pop()
        try:
            for child in pathlib.Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
                pids.append(int(child))
                frontier.append(int(child))
        except FileNotFoundError:
            pass
    return pids


def load(port, requests, pids):
    """One closed-loop run; returns (requests answered per s, server CPU ns per request, report)."""
    before = cpu_ns(pids)
    out = subprocess.run(
        [BIN / "ctigw-load", "--gateway", f"127.0.0.1:{port}", "--users", str(USERS), "--window", str(WINDOW),
         "--duration", str(RUN_SECONDS), "--requests", requests, "--json"],
        capture_output=True, text=True, check=True,
    )
    used = cpu_ns(pids) - before
    report = json.loads(out.stdout)
    answered = sum(k["ok"] for k in report["kinds"].values())
    if report["lost"] or report["refused"]:
        sys.exit(f"{requests} run lost or refused requests: {out.stdout}")
    return report["rate_per_s"], used / answered, report


def main():
    kamailio = shutil.which("kamailio") or shutil.which("kamailio", path="/usr/sbin")
    if not kamailio:
        sys.exit("kamailio is not installed (make deps installs it)")
    scratch = pathlib.Path(tempfile.mkdtemp(prefix="ctigw-bench-"))
    subprocess.run([BIN / "ctigw-load", "--write-lines", str(USERS), scratch], check=True)
    procs = []
    try:
        kam_port = free_port()
        kam = subprocess.Popen(
            [kamailio, "-f", ROOT / "config/kamailio/reference.cfg", "-A", f"LISTEN=udp:127.0.0.1:{kam_port}",
             "-DD", "-E", "-m", "64", "-M", "8"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        procs.append(kam)
        wait_udp(kam_port)
        gw, gw_port = start_gateway(scratch, procs)
        runs = {"kamailio": [], "local": [], "roundtrip": [], "calls": []}
        for _ in range(ROUNDS):
            runs["kamailio"].append(load(kam_port, "features", process_tree(kam.pid)))
            runs["local"].append(load(gw_port, "features", [gw.pid]))
            runs["roundtrip"].append(load(gw_port, "relayed", [gw.pid]))
            runs["calls"].append(load(gw_port, "calls", [gw.pid]))
    finally:
        stop(procs)
        shutil.rmtree(scratch, ignore_errors=True)

    med = {k: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v)) for k, v in runs.items()}
    p = {k: statistics.median(r[2]["p50_us"] for r in v) for k, v in runs.items()}
    p99 = {k: statistics.median(r[2]["p99_us"] for r in v) for k, v in runs.items()}
    local = med["kamailio"][1] / med["local"][1]
    roundtrip = med["kamailio"][1] / med["roundtrip"][1]
    calls = med["kamailio"][1] / med["calls"][1]
    events = statistics.median(
        r[2]["events"] / sum(k["ok"] for k in r[2]["kinds"].values()) for r in runs["calls"]
    )
    version = subprocess.run([kamailio, "-v"], capture_output=True, text=True).stdout.splitlines()[0]
    lines = [
        "",
        "## Against Kamailio: the SIP path per core",
        "",
        f"`benches/kamailio.py` ({version}, one UDP worker, `config/kamailio/reference.cfg`; "
        f"{USERS} users, closed loop of {WINDOW} in flight over UDP, {RUN_SECONDS} s per run, medians of {ROUNDS} "
        "rounds). The client sets the rate on this machine, so the comparison is the server's CPU time per "
        "request (all its processes and threads); the round trip and the calls count ctigw's CPU, not the "
        "simulated nodes'. The round trip is GetDoNotDisturb relayed through the user's node (one INFO in, "
        f"one 200 out, as for the others); the call mix causes {events:.2f} event INFOs per request, each "
        "another SIP transaction for the gateway (INFO out, 200 in).",
        "",
        "| run | requests/s | server CPU us per request | requests per CPU-second | p50 us | p99 us |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, label in [("kamailio", "Kamailio sl_send_reply"), ("local", "ctigw GetCSTAFeatures (local)"),
                        ("roundtrip", "ctigw GetDoNotDisturb via a node (round trip)"),
                        ("calls", "ctigw call mix via a node, with its events")]:
        rate, ns = med[name]
        lines.append(f"| {label} | {rate:.0f} | {ns / 1000:.2f} | {1e9 / ns:.0f} | {p[name]:.0f} | {p99[name]:.0f} |")
    lines += [
        "",
        f"ratio local/kamailio: {local:.2f}",
        f"ratio roundtrip/kamailio: {roundtrip:.2f}",
        "",
        f"The call mix, with its {events:.2f} events per request: {calls:.2f} of Kamailio's requests per "
        "CPU-second.",
        "",
    ]
    append_section(lines)


if __name__ == "__main__":
    main()
