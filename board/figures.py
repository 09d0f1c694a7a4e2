#!/usr/bin/env python3
"""Per-board figures of the release binaries, for the board READMEs.

For each board given (default: aarch64 armv7 x86_64): the stripped size of
ctigw, the time from starting it to its first answer (an OPTIONS over UDP,
with two host simulators as its CTI nodes), its resident memory once idle,
and its peak resident memory while the board's whole session table signs
in (ctigw-load over TCP, in a Lync pool's shapes, as `make bench` does on
x86_64). ARM binaries run under qemu-user, whose own resident memory is
part of the process's; so beside it is qemu's footprint running a C
program that only sleeps, built with the board's cross compiler, and the
figures without it. Then each board's `ctigw --budget`. Run by
`make figures`, which builds each board first.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benches"))
from rig import peak_rss_while, rss_kib  # noqa: E402  (the benches' helpers)


def board_var(board, name):
    for line in open(os.path.join(ROOT, "board", board, "board.mk")):
        if line.startswith(name):
            return line.split(":=", 1)[1].strip()
    return ""


def free_port():
    while True:
        tcp = socket.socket()
        tcp.bind(("127.0.0.1", 0))
        port = tcp.getsockname()[1]
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            udp.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            tcp.close()
            udp.close()


def start_sim(lines=None):
    sim = subprocess.Popen(
        [os.path.join(ROOT, "target/release/ctigw-sim"), "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0",
         "--lines", lines or os.path.join(ROOT, "config/sim-lines.conf"), "--outside", "answer=0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    listen = sim.stdout.readline().split()[-1]
    sim.stdout.readline()
    return sim, listen


def measure(board, runs):
    target = open(os.path.join(ROOT, "board", board, "target")).read().strip()
    binary = os.path.join(ROOT, "target", target, "release", "ctigw")
    qemu = board_var(board, "QEMU")
    sysroot = board_var(board, "SYSROOT")
    env = dict(os.environ, RUST_LOG="warn")
    if sysroot:
        env["QEMU_LD_PREFIX"] = sysroot
    prefix = [qemu] if qemu else []
    sims = [start_sim(), start_sim()]
    boot, rss = [], []
    try:
        for _ in range(runs):
            port = free_port()
            conf = f"/tmp/ctigw-figures-{board}.conf"
            with open(conf, "w") as f:
                f.write(f"[sip]\nlisten = 127.0.0.1:{port}\nhost = 127.0.0.1\ntrusted = 127.0.0.1\n[cti]\n")
                for _, listen in sims:
                    f.write(f"node = {listen}\n")
                f.write(f"[admin]\nlisten = off\n[log]\nlevel = warn\n[lines]\nfile = {ROOT}/config/lines.conf\n")
            probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            probe.bind(("127.0.0.1", 0))
            probe.settimeout(0.005)
            options = (f"OPTIONS sip:ctigw@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{probe.getsockname()[1]};"
                       "branch=z9hG4bKfig\r\nFrom: <sip:f@example.com>;tag=f\r\nTo: <sip:ctigw@127.0.0.1>\r\n"
                       "Call-ID: fig\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode()
            started = time.monotonic()
            gw = subprocess.Popen(prefix + [binary, "--config", conf], env=env, stderr=subprocess.PIPE, text=True)
            while True:
                probe.sendto(options, ("127.0.0.1", port))
                try:
                    probe.recv(2048)
                    break
                except (socket.timeout, ConnectionRefusedError):
                    if gw.poll() is not None or time.monotonic() - started > 30:
                        gw.kill()
                        raise SystemExit(f"{board}: no answer within 30 s: {gw.communicate()[1]}")
            boot.append((time.monotonic() - started) * 1000)
            time.sleep(2)  # idle: links up, heartbeats going
            rss.append(rss_kib(gw.pid))
            gw.terminate()
            gw.wait(timeout=10)
    finally:
        for sim, _ in sims:
            sim.kill()
    baseline = None
    if qemu:
        source, idle_binary = "/tmp/ctigw-idle.c", f"/tmp/ctigw-idle-{board}"
        with open(source, "w") as f:
            f.write("#include <unistd.h>\nint main(void) { pause(); return 0; }\n")
        subprocess.run([board_var(board, "LINKER"), "-O2", "-o", idle_binary, source], check=True)
        idle = subprocess.Popen(prefix + [idle_binary], env=env)
        time.sleep(2)
        baseline = rss_kib(idle.pid)
        idle.kill()
        idle.wait()
    full = full_rss(board, prefix, binary, env)
    boot.sort()
    rss.sort()
    return {
        "full": full,
        "board": board,
        "target": target,
        "size": os.path.getsize(binary),
        "boot_ms": boot[len(boot) // 2],
        "rss_kib": rss[len(rss) // 2],
        "runs": runs,
        "baseline": baseline,
    }


def board_sessions(board):
    for line in open(os.path.join(ROOT, "board", board, "capacities")):
        if line.startswith("sessions"):
            return int(line.split("=")[1])
    raise SystemExit(f"{board}: no sessions in its capacities")


def full_rss(board, prefix, binary, env):
    """Peak resident memory while every session of the board's table
    signs in and makes calls, with their count: (KiB, signed in)."""
    users = board_sessions(board)
    scratch = tempfile.mkdtemp(prefix="ctigw-figures-")
    load = os.path.join(ROOT, "target/release/ctigw-load")
    subprocess.run([load, "--write-lines", str(users), scratch], check=True, stdout=subprocess.DEVNULL)
    sims = [start_sim(os.path.join(scratch, "sim-lines.conf")) for _ in range(2)]
    gw = None
    try:
        port = free_port()
        conf = os.path.join(scratch, "ctigw.conf")
        with open(conf, "w") as f:
            f.write(f"[sip]\nlisten = 127.0.0.1:{port}\nhost = 127.0.0.1\ntrusted = 127.0.0.1\n[cti]\n")
            for _, listen in sims:
                f.write(f"node = {listen}\n")
            f.write(f"[admin]\nlisten = off\n[log]\nlevel = warn\n[lines]\nfile = {scratch}/lines.conf\n")
        gw = subprocess.Popen(prefix + [binary, "--config", conf], env=env, stderr=subprocess.DEVNULL)
        time.sleep(5)  # booted, links up (qemu included)
        peak, out = peak_rss_while(gw.pid, lambda: subprocess.run(
            [load, "--gateway", f"127.0.0.1:{port}", "--transport", "tcp", "--json", "--users", str(users),
             "--window", "128", "--rate", "100", "--duration", "3"], capture_output=True, text=True))
        result = json.loads(out.stdout) if out.stdout else {}
        return peak, result.get("signed_in", 0), users
    finally:
        if gw:
            gw.kill()
            gw.wait()
        for sim, _ in sims:
            sim.kill()
        shutil.rmtree(scratch, ignore_errors=True)


def main():
    boards = sys.argv[1:] or ["aarch64", "armv7", "x86_64"]
    print("| board | ctigw stripped | boot to serving (median of 5) | idle RSS (median of 5) "
          "| RSS, every session signed in (peak) | qemu alone | idle / full without qemu |")
    print("|---|---|---|---|---|---|---|")
    budgets = []
    for board in boards:
        r = measure(board, runs=5)
        under = " under qemu" if r["baseline"] is not None else " native"
        alone = f"{r['baseline']} KiB" if r["baseline"] is not None else "-"
        base = r["baseline"] or 0
        full, signed_in, users = r["full"]
        print(f"| {r['board']} | {r['size']} bytes | {r['boot_ms']:.1f} ms{under} | {r['rss_kib']} KiB{under} "
              f"| {full} KiB{under} ({signed_in} of {users} signed in) | {alone} "
              f"| {r['rss_kib'] - base} / {full - base} KiB |")
        target = open(os.path.join(ROOT, "board", board, "target")).read().strip()
        qemu, sysroot = board_var(board, "QEMU"), board_var(board, "SYSROOT")
        env = dict(os.environ, QEMU_LD_PREFIX=sysroot) if sysroot else None
        budget = subprocess.run(([qemu] if qemu else []) + [os.path.join(ROOT, "target", target, "release", "ctigw"),
                                "--budget"], capture_output=True, text=True, env=env, check=True).stdout
        budgets.append(budget)
    for budget in budgets:
        print()
        print(budget, end="")


if __name__ == "__main__":
    main()
