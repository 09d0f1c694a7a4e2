"""What the system benchmarks share (benches/kamailio.py, gateway.py,
instructions.py): the paths, free ports, a release ctigw with two simulated
nodes for a set of load users, and the section each appends to
BENCHMARKS.md."""

import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
BIN = ROOT / "target" / "release"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def peak_rss_while(pid, work):
    """The most resident memory of process `pid`, sampled every 50 ms
    while `work()` runs, and what `work()` returned: (KiB, result)."""
    peak, done = [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_kib(pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        result = work()
    finally:
        done.set()
        sampler.join()
    return peak[0], result


def wait_udp(port, limit=10.0):
    """Until an OPTIONS to 127.0.0.1:port is answered."""
    options = (
        f"OPTIONS sip:ping@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;rport;branch=z9hG4bKping\r\n"
        "From: <sip:bench@127.0.0.1>;tag=b\r\nTo: <sip:ping@127.0.0.1>\r\nCall-ID: ping\r\nCSeq: 1 OPTIONS\r\n"
        "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    deadline = time.time() + limit
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        while time.time() < deadline:
            s.sendto(options, ("127.0.0.1", port))
            try:
                s.recv(4096)
                return
            except OSError:
                time.sleep(0.1)
    sys.exit(f"nothing answers on 127.0.0.1:{port}")


def start_gateway(scratch, procs):
    """Two simulated nodes and a release ctigw for the load users whose line
    files are in `scratch` (ctigw-load --write-lines); the processes go into
    `procs`. Returns the gateway's process and SIP port, both nodes up."""
    nodes = []
    for _ in range(2):
        port = free_port()
        nodes.append(port)
        sim = subprocess.Popen(
            [BIN / "ctigw-sim", "--listen", f"127.0.0.1:{port}", "--control", f"127.0.0.1:{free_port()}",
             "--lines", scratch / "sim-lines.conf", "--outside", "answer=0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        procs.append(sim)
        while not sim.stdout.readline().startswith("CONTROL"):  # listening once it says so
            pass
    port = free_port()
    (scratch / "ctigw.conf").write_text(
        f"[sip]\nlisten = 127.0.0.1:{port}\nhost = 127.0.0.1\ntrusted = 127.0.0.1\n"
        f"[cti]\nnode = 127.0.0.1:{nodes[0]}\nnode = 127.0.0.1:{nodes[1]}\n"
        f"[admin]\nlisten = off\n[log]\nlevel = warn\n[lines]\nfile = {scratch / 'lines.conf'}\n"
    )
    gw = subprocess.Popen([BIN / "ctigw", "--config", scratch / "ctigw.conf"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(gw)
    wait_udp(port)
    time.sleep(1.5)  # both CTI links up
    return gw, port


def stop(procs):
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()


def append_section(lines):
    """Appends a section to BENCHMARKS.md (report.py wrote it first) and prints it."""
    text = "\n".join(lines)
    with open(ROOT / "BENCHMARKS.md", "a") as f:
        f.write(text)
    print(text)
