"""net_http: HTTP through a published port, knarr against Docker; run --rm with and
without a bridge network.

    .venv/bin/python bench/net_http.py [--rounds 3] [--duration 8]

Both engines run the same busybox httpd (knarr's built-in busybox image, loaded
into Docker), published with `-p PORT:80`, and the same client, `wrk` (Debian
package), drives each in turn, alternating rounds: to 127.0.0.1 (knarr: kernel
DNAT with route_localnet; Docker: its default userland proxy, docker-proxy) and
to the host's own address (both: kernel DNAT).

Docker runs as a dockerd of this script's own WITH its networking: its own bridge
(`kbdock0`, 10.215.0.0/24, made here), iptables on, the userland proxy on
(benchkit/dockernet.py, shared with the engine benchmarks: it may set iptables'
FORWARD policy to DROP; the policy, its rules and chains and the sysctls it changed
are put back as they were when it stops, and the bridge removed; a killed run's
are put back by the next run, or `bench/run.py --restore-network`). knarr runs on
a knarrd of its own (`kbench0`, 10.216.0.0/24, table `ip knarr_bench`), all removed
at the end.

Prints medians and ratios, writes bench/results/net_http.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from benchkit.benchmarks.image_data import DOCKER, DOCKERD, Dockerd  # noqa: E402
from benchkit.dockernet import DockerBridge  # noqa: E402

VENV_BIN = BENCH.parent / ".venv" / "bin"
HTTPD = ["sh", "-c", "head -c 612 /dev/zero | tr '\\0' x > /tmp/index.html; "
         "exec httpd -f -p 80 -h /tmp"]


def sh(argv: list[str], check: bool = True, timeout: float = 120) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip()}")
    return done.stdout


def free_port() -> int:
    import socket

    s = socket.socket()
    s.bind(("0.0.0.0", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def host_address() -> str:
    for line in sh(["ip", "-4", "-o", "addr", "show", "scope", "global"]).splitlines():
        dev, addr = line.split()[1], line.split()[3].split("/")[0]
        if not dev.startswith(("k", "docker", "cni", "br-", "veth")):
            return addr
    raise RuntimeError("no host address")


class Stack:
    """knarrd and dockerd of this script's own."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.knarr_sock = f"unix://{work}/knarr.sock"
        self.dockerd = Dockerd(work / "dockerd", DockerBridge("kbdock0", "10.215.0.1/24"))
        self.procs: list[subprocess.Popen] = []

    def knarr(self, *args: str, check: bool = True) -> str:
        return sh([str(VENV_BIN / "knarr"), "-H", self.knarr_sock, *args], check)

    def docker(self, *args: str, check: bool = True) -> str:
        return sh(self.dockerd.argv(*args), check)

    def start(self) -> None:
        log = open(self.work / "knarrd.log", "wb")  # noqa: SIM115
        self.procs.append(subprocess.Popen(
            [str(VENV_BIN / "knarrd"), "--root", str(self.work / "kroot"), "--exec-root",
             str(self.work / "kexec"), "-H", self.knarr_sock, "--bridge", "kbench0",
             "--bip", "10.216.0.0/24", "--nft-table", "knarr_bench"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        self.dockerd.start()
        for ping in (lambda: self.knarr("version"),):
            deadline = time.monotonic() + 60
            while True:
                try:
                    ping()
                    break
                except RuntimeError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
        tar = str(self.work / "busybox.tar")
        self.knarr("create", "--name", "prep", "busybox", "true")
        self.knarr("rm", "prep")
        self.knarr("save", "busybox", "-o", tar)
        self.docker("load", "-i", tar)

    def stop(self) -> None:
        for cli in (self.knarr, self.docker):
            try:
                ids = cli("ps", "-aq").split()
                if ids:
                    cli("rm", "-f", *ids, check=False)
            except (RuntimeError, subprocess.TimeoutExpired):
                pass
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.dockerd.stop(remove=False)
        sh(["ip", "link", "del", "kbench0"], check=False)
        sh(["nft", "delete", "table", "ip", "knarr_bench"], check=False)
        for way in ("-i", "-o"):
            rule = [way, "kbench0", "-m", "comment", "--comment", "knarr kbench0", "-j",
                    "ACCEPT"]
            sh(["iptables", "-w", "-D", "FORWARD", *rule], check=False)
        sh(["umount", "-R", "-l", str(self.work)], check=False)


def wrk(url: str, duration: int) -> dict:
    out = sh(["wrk", "-t2", "-c16", f"-d{duration}s", "--latency", url],
             timeout=duration + 30)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = re.search(r"Latency\s+([\d.]+)(us|ms|s)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    return {"rps": rps, "latency_ms": float(lat.group(1)) * scale[lat.group(2)],
            "p99_ms": float(p99.group(1)) * scale[p99.group(2)],
            "errors": errors.group(0) if errors else ""}


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    sh(argv)
    return time.perf_counter() - start


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=int, default=8)
    p.add_argument("--runs", type=int, default=20, help="run --rm timings of each kind")
    args = p.parse_args()
    for tool in ("wrk", "nft", "iptables"):
        if shutil.which(tool) is None:
            sys.exit(f"net_http: {tool} is not installed")
    if DOCKERD is None or DOCKER is None:
        sys.exit("net_http: dockerd/docker are not installed (Debian package docker.io)")
    work = Path(tempfile.mkdtemp(prefix="knarr-net-bench-"))
    stack = Stack(work)
    results: dict = {"http": {}, "run_rm": {}}
    try:
        stack.start()
        kport, dport = free_port(), free_port()
        stack.knarr("run", "-d", "--name", "kweb", "-p", f"{kport}:80", "busybox", *HTTPD)
        stack.docker("run", "-d", "--name", "dweb", "-p", f"{dport}:80", "busybox", *HTTPD)
        time.sleep(1)
        addr = host_address()
        samples: dict[str, list[dict]] = {}
        for rnd in range(args.rounds):
            for target in ("127.0.0.1", addr):
                order = [("knarr", kport), ("docker", dport)]
                if rnd % 2:
                    order.reverse()
                for engine, port in order:
                    key = f"{engine} {'loopback' if target == '127.0.0.1' else 'host-ip'}"
                    samples.setdefault(key, []).append(
                        wrk(f"http://{target}:{port}/index.html", args.duration))
        for key, runs in samples.items():
            results["http"][key] = {
                "rps": statistics.median(r["rps"] for r in runs),
                "latency_ms": statistics.median(r["latency_ms"] for r in runs),
                "p99_ms": statistics.median(r["p99_ms"] for r in runs),
                "errors": [r["errors"] for r in runs if r["errors"]], "runs": runs}
        times: dict[str, list[float]] = {"bridge": [], "none": []}
        for _ in range(3):  # warm up
            stack.knarr("run", "--rm", "busybox", "true")
        for i in range(args.runs):
            for kind in (("bridge", "none") if i % 2 else ("none", "bridge")):
                times[kind].append(timed([str(VENV_BIN / "knarr"), "-H", stack.knarr_sock,
                                          "run", "--rm", "--network", kind, "busybox",
                                          "true"]))
        results["run_rm"] = {k: {"median_ms": statistics.median(v) * 1000,
                                 "runs_ms": [t * 1000 for t in v]} for k, v in times.items()}
    finally:
        stack.stop()
        shutil.rmtree(work, ignore_errors=True)
    report(results)
    out = BENCH / "results"
    out.mkdir(exist_ok=True)
    (out / "net_http.json").write_text(json.dumps(results, indent=2))
    return 0


def report(results: dict) -> None:
    http = results["http"]
    print(f"{'subject':<22}{'req/s':>10}{'avg ms':>9}{'p99 ms':>9}")
    for key, r in sorted(http.items()):
        print(f"{key:<22}{r['rps']:>10.0f}{r['latency_ms']:>9.2f}{r['p99_ms']:>9.2f}")
    for where in ("loopback", "host-ip"):
        k, d = http.get(f"knarr {where}"), http.get(f"docker {where}")
        if k and d:
            print(f"throughput knarr/docker ({where}): {k['rps'] / d['rps']:.2f}x "
                  f"(goal >= 1.0x)")
    rm = results["run_rm"]
    if rm:
        added = rm["bridge"]["median_ms"] - rm["none"]["median_ms"]
        print(f"run --rm: bridge {rm['bridge']['median_ms']:.1f} ms, none "
              f"{rm['none']['median_ms']:.1f} ms, bridge adds {added:.1f} ms (goal <= 10 ms)")


if __name__ == "__main__":
    sys.exit(main())
