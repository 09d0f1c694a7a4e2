#!/usr/bin/env python3
"""Per-board figures of the release binaries, for the board READMEs.

For each board given (default: aarch64 armv7 x86_64): the stripped size of
ctigw, the time from starting it to its first answer (an OPTIONS over UDP,
with two host simulators as its CTI nodes), and its resident memory once
idle. ARM binaries run under qemu-user, whose own resident memory is part
of the process's; so beside it is qemu's footprint running a C program
that only sleeps, built with the board's cross compiler. Run by
`make figures`, which builds each board first.
"""

import os
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def start_sim():
    sim = subprocess.Popen(
        [os.path.join(ROOT, "target/release/ctigw-sim"), "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0",
         "--lines", os.path.join(ROOT, "config/sim-lines.conf")],
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
    boot.sort()
    rss.sort()
    return {
        "board": board,
        "target": target,
        "size": os.path.getsize(binary),
        "boot_ms": boot[len(boot) // 2],
        "rss_kib": rss[len(rss) // 2],
        "runs": runs,
        "baseline": baseline,
    }


def main():
    boards = sys.argv[1:] or ["aarch64", "armv7", "x86_64"]
    print("| board | ctigw stripped | boot to serving (median of 5) | idle RSS (median of 5) | qemu alone |")
    print("|---|---|---|---|---|")
    for board in boards:
        r = measure(board, runs=5)
        under = " under qemu" if r["baseline"] is not None else " native"
        alone = f"{r['baseline']} KiB" if r["baseline"] is not None else "-"
        print(f"| {r['board']} | {r['size']} bytes | {r['boot_ms']:.1f} ms{under} | {r['rss_kib']} KiB{under} "
              f"| {alone} |")


if __name__ == "__main__":
    main()
