"""The build corpus: each Dockerfile under tests/build_corpus built by knarr and by a real
dockerd's classic builder, then the image configs and the final file trees compared.

One dockerd and one knarrd for the whole module (own sockets and roots; dockerd with
`--bridge=none --iptables=false`); both get the same busybox (knarr's, saved by knarr
and loaded into dockerd). The docker CLI (DOCKER_BUILDKIT=0) drives both builds, so
knarr's /build is checked against the client Docker ships.
"""

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time

import pytest
from test_api_support import Daemon

CORPUS = os.path.join(os.path.dirname(__file__), "..", "build_corpus")
CASES = sorted(os.listdir(CORPUS))
DOCKERD = shutil.which("dockerd")
DOCKER = "/usr/bin/docker"
# made by the engines for a container, not by the build
_SKIP = {".dockerenv", "etc/hostname", "etc/hosts", "etc/resolv.conf", "etc/mtab"}
_SKIP_TOP = ("dev/", "proc/", "sys/")

pytestmark = [pytest.mark.privileged]


def _hugetlb_fix() -> None:
    """dockerd 20.10 on a cgroup v1 host wants a hugetlb hierarchy to exist."""
    base = "/sys/fs/cgroup"
    if os.path.exists(f"{base}/cgroup.controllers") or os.path.ismount(f"{base}/hugetlb"):
        return
    os.makedirs(f"{base}/hugetlb", exist_ok=True)
    subprocess.run(["mount", "-t", "cgroup", "-o", "hugetlb", "cgroup", f"{base}/hugetlb"],
                   check=False)


class Engines:
    """The docker CLI against the module's dockerd or knarrd."""

    def __init__(self, base: str, docker_sock: str, knarr_sock: str) -> None:
        self.base = base
        self.socks = {"docker": docker_sock, "knarr": knarr_sock}

    def run(self, engine: str, *args: str, check: bool = True, timeout: float = 120):
        env = dict(os.environ, DOCKER_BUILDKIT="0",
                   DOCKER_CONFIG=os.path.join(self.base, "docker-config"))
        done = subprocess.run([DOCKER, "-H", f"unix://{self.socks[engine]}", *args],
                              capture_output=True, env=env, timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"{engine}: docker {' '.join(args)}: exit {done.returncode}\n"
                                 f"{done.stdout.decode()}\n{done.stderr.decode()}")
        return done


@pytest.fixture(scope="module")
def engines():
    assert DOCKERD is not None, "dockerd is not installed (Debian package docker.io)"
    _hugetlb_fix()
    base = tempfile.mkdtemp(prefix="build-corpus-")
    knarrd = Daemon(os.path.join(base, "knarr"))
    os.makedirs(knarrd.base)
    knarrd.start()
    state = os.path.join(base, "dockerd")
    os.makedirs(state)
    sock = os.path.join(state, "docker.sock")
    log = open(os.path.join(state, "dockerd.log"), "wb")
    dockerd = subprocess.Popen([DOCKERD, "--host", f"unix://{sock}", "--data-root",
                                os.path.join(state, "data"), "--exec-root",
                                os.path.join(state, "exec"), "--pidfile",
                                os.path.join(state, "dockerd.pid"), "--bridge=none",
                                "--iptables=false"], stdout=log, stderr=subprocess.STDOUT)
    e = Engines(base, sock, knarrd.sock)
    try:
        deadline = time.monotonic() + 30
        while e.run("docker", "version", check=False).returncode != 0:
            assert dockerd.poll() is None and time.monotonic() < deadline, \
                open(os.path.join(state, "dockerd.log")).read()
            time.sleep(0.2)
        e.run("knarr", "create", "--name", "warm", "busybox", "true")
        e.run("knarr", "rm", "warm")
        saved = os.path.join(base, "busybox.tar")
        e.run("knarr", "save", "-o", saved, "busybox")
        e.run("docker", "load", "-i", saved)
        yield e
    finally:
        for engine in ("docker", "knarr"):
            ids = e.run(engine, "ps", "-aq", check=False).stdout.split()
            if ids:
                e.run(engine, "rm", "-f", *[i.decode() for i in ids], check=False)
        dockerd.terminate()
        try:
            dockerd.wait(timeout=30)
        except subprocess.TimeoutExpired:
            dockerd.kill()
            dockerd.wait()
        log.close()
        leftovers = knarrd.teardown()
        shutil.rmtree(base, ignore_errors=True)
        assert not leftovers, f"left behind: {leftovers}"


def _context(case: str, tmp: str) -> tuple[str, dict]:
    """A copy of the case's directory (with the file modes git cannot keep) and its options."""
    context = os.path.join(tmp, case)
    shutil.copytree(os.path.join(CORPUS, case), context, symlinks=True)
    options: dict = {}
    path = os.path.join(context, "options.json")
    if os.path.exists(path):
        with open(path) as f:
            options = json.load(f)
        os.unlink(path)
    for rel, mode in options.get("modes", {}).items():
        os.chmod(os.path.join(context, rel), int(mode, 8))
    return context, options


def _build(e: Engines, engine: str, context: str, options: dict, tag: str) -> str:
    args = ["build", "-q", "-t", tag]
    for key, value in options.get("buildargs", {}).items():
        args += ["--build-arg", f"{key}={value}"]
    if options.get("target"):
        args += ["--target", options["target"]]
    return e.run(engine, *args, context).stdout.decode().strip()


def _config(e: Engines, engine: str, tag: str) -> dict:
    info = json.loads(e.run(engine, "image", "inspect", tag).stdout)[0]
    c = info["Config"]
    history = json.loads(b"[" + b",".join(e.run(engine, "history", "--no-trunc", "--format",
                                                "{{json .}}", tag).stdout.split()) + b"]")
    fields = ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Volumes",
              "Labels", "Healthcheck", "StopSignal", "Shell", "OnBuild")
    return {**{k: c.get(k) or None for k in fields}, "history": len(history),
            "layers": len(info["RootFS"]["Layers"])}


def _tree(e: Engines, engine: str, tag: str) -> dict:
    name = f"tree-{tag.replace(':', '-')}"
    e.run(engine, "create", "--name", name, tag, "true")
    try:
        data = e.run(engine, "export", name).stdout
    finally:
        e.run(engine, "rm", name)
    tree = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        for m in archive:
            path = m.name.strip("/").removeprefix("./")
            if not path or path in _SKIP or path.startswith(_SKIP_TOP) or \
                    path in ("dev", "proc", "sys"):
                continue
            what = m.linkname if m.issym() else (
                hashlib.sha256(archive.extractfile(m).read()).hexdigest()[:16]
                if m.isreg() else "")
            tree[path] = (m.type.decode(errors="replace") if m.type != tarfile.AREGTYPE
                          else "0", oct(m.mode & 0o7777), m.uid, m.gid, what)
    return tree


@pytest.mark.parametrize("case", CASES)
def test_corpus_builds_like_docker(engines, case, tmp_path):
    context, options = _context(case, str(tmp_path))
    tag = f"corpus-{case}:latest"
    _build(engines, "docker", context, options, tag)
    _build(engines, "knarr", context, options, tag)
    assert _config(engines, "knarr", tag) == _config(engines, "docker", tag)
    knarr_tree, docker_tree = _tree(engines, "knarr", tag), _tree(engines, "docker", tag)
    only_knarr = {k: v for k, v in knarr_tree.items() if docker_tree.get(k) != v}
    only_docker = {k: v for k, v in docker_tree.items() if knarr_tree.get(k) != v}
    assert only_knarr == only_docker == {}, (only_knarr, only_docker)
