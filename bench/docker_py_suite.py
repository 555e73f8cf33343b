"""Run docker-py's own integration tests against knarrd and against a private dockerd.

    .venv/bin/python bench/docker_py_suite.py --source DOCKER_PY_CHECKOUT [FILE ...]

docker-py's sdist on PyPI has no tests/, so this needs a checkout of
docker/docker-py (tag 7.1.0) at --source. Each server gets its own roots and
socket; the images the suite names (alpine:3.10, busybox, hello-world) are
loaded from knarr's built-in images (busybox from the host's busybox-static),
no registry is asked. Prints `server: N passed, N failed, N skipped, N errors`
for each and the knarr/dockerd difference; pytest's own output goes to
--out (default /tmp/docker-py-suite). Run it as root. Not part of `make test`.
"""

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

FILES = ["api_container_test.py", "api_exec_test.py", "api_image_test.py",
         "api_volume_test.py", "api_build_test.py", "api_client_test.py"]
# name the suite asks for -> the built-in image standing in for it
IMAGES = {"alpine:3.10": "busybox", "alpine:latest": "busybox", "busybox:latest": "busybox",
          "busybox:buildroot-2014.02": "busybox", "hello-world:latest": "hello-world"}


def image_tarball(workdir: str) -> str:
    """A docker-save tarball with every name in IMAGES."""
    from knarr.images import ImageStore, busybox, hello_world, save

    store = ImageStore(os.path.join(workdir, "store"))
    try:
        made = {"busybox": busybox(store), "hello-world": hello_world(store)}
        for name, source in IMAGES.items():
            if not name.startswith(source + ":latest"):
                store.tag(made[source], name)
        tar = os.path.join(workdir, "images.tar")
        with open(tar, "wb") as f:
            save(store, sorted(IMAGES), f, format="docker")
    finally:
        store.close()
    return tar


def wait_socket(path: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(path)
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on {path}")


def start_server(kind: str, base: str) -> tuple[subprocess.Popen, str]:
    sock = os.path.join(base, f"{kind}.sock")
    if kind == "knarr":
        argv = [os.path.join(REPO, ".venv", "bin", "knarrd"), "--root", f"{base}/root",
                "--exec-root", f"{base}/run", "-H", f"unix://{sock}"]
    else:
        argv = ["dockerd", "-H", f"unix://{sock}", "--data-root", f"{base}/root",
                "--exec-root", f"{base}/run", "--pidfile", f"{base}/dockerd.pid",
                "--bridge=none", "--iptables=false"]
    log = open(os.path.join(base, f"{kind}.log"), "wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    wait_socket(sock, proc)
    return proc, sock


def load_images(sock: str, tar: str) -> None:
    import docker

    client = docker.DockerClient(base_url=f"unix://{sock}", version="auto")
    with open(tar, "rb") as f:
        client.images.load(f.read())
    client.close()


def run_suite(kind: str, sock: str, source: str, files: list[str], out: str) -> dict:
    env = dict(os.environ, DOCKER_HOST=f"unix://{sock}")
    for name in ("DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_CONFIG"):
        env.pop(name, None)
    paths = [os.path.join("tests", "integration", f) for f in files]
    log = os.path.join(out, f"{kind}.txt")
    with open(log, "w") as f:
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider",
                        *paths], cwd=source, env=env, stdout=f,
                       stderr=subprocess.STDOUT)
    with open(log) as f:
        tail = f.read()[-4000:]
    counts = {k: 0 for k in ("passed", "failed", "skipped", "errors")}
    for number, word in re.findall(r"(\d+) (passed|failed|skipped|errors?)", tail):
        counts["errors" if word.startswith("error") else word] = int(number)
    return counts


def stop_server(proc: subprocess.Popen, base: str) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f if line.split()[4].startswith(base)]
    for mount in sorted(mounts, reverse=True):
        subprocess.run(["umount", "-l", mount], capture_output=True)
    shutil.rmtree(base, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", required=True, help="a docker/docker-py checkout (7.1.0)")
    parser.add_argument("--server", choices=("knarr", "dockerd", "both"), default="both")
    parser.add_argument("--out", default="/tmp/docker-py-suite", help="pytest logs")
    parser.add_argument("files", nargs="*", default=FILES, help="under tests/integration")
    args = parser.parse_args()
    if not os.path.isdir(os.path.join(args.source, "tests", "integration")):
        print(f"{args.source}: no tests/integration (the PyPI sdist has none: use a "
              "checkout of docker/docker-py)", file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="docker-py-suite-")
    tar = image_tarball(work)
    results = {}
    kinds = ("knarr", "dockerd") if args.server == "both" else (args.server,)
    for kind in kinds:
        base = tempfile.mkdtemp(prefix=f"dps-{kind}-")
        proc, sock = start_server(kind, base)
        try:
            load_images(sock, tar)
            results[kind] = run_suite(kind, sock, args.source, args.files, args.out)
        finally:
            stop_server(proc, base)
        counts = results[kind]
        print(f"{kind}: {counts['passed']} passed, {counts['failed']} failed, "
              f"{counts['skipped']} skipped, {counts['errors']} errors "
              f"(log {args.out}/{kind}.txt)")
    shutil.rmtree(work, ignore_errors=True)
    if len(results) == 2:
        gap = results["knarr"]["passed"] - results["dockerd"]["passed"]
        print(f"knarr - dockerd: {gap:+d} passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
