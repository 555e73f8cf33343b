"""Shared fixtures: busybox bundles, a private runtime state root, the CLI."""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNTIME = os.path.join(os.path.dirname(sys.executable), "knarr-runtime")
BUSYBOX = shutil.which("busybox") or "/bin/busybox"


def pytest_collection_modifyitems(config, items):
    """Privileged tests run for real as root; elsewhere they skip and say why."""
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root: real namespaces, cgroups and mounts")
    for item in items:
        if "privileged" in item.keywords:
            item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI a skip is a failure: `make test` installs every tool the suite uses, so a
    skip there means an install step is missing, and a skipped test proves nothing."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") == "true" and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"skipped in CI, which must run everything: {reason}"


def _orphan_test_bridges() -> list[str]:
    """Bridges named like a test daemon's (kt + 8 hex digits) that no live process names.

    A test run killed half-way (a timeout, ^C) leaves its daemon's bridge, and with it a
    /16 of the address pools: left to pile up, they exhaust the pools of later runs.
    """
    bridges = [n for n in os.listdir("/sys/class/net") if re.fullmatch(r"kt[0-9a-f]{8}", n)]
    if not bridges:
        return []
    named = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                named.update(f.read().decode(errors="replace").split("\0"))
        except OSError:
            pass
    return [b for b in bridges if b not in named]


@pytest.fixture(scope="session", autouse=True)
def _no_orphan_test_bridges():
    """Sweep test daemons' bridges that earlier, interrupted runs left, before and after."""
    if os.geteuid() != 0:
        yield
        return
    _drop_orphans()
    yield
    _drop_orphans()


def _drop_orphans() -> None:
    for bridge in _orphan_test_bridges():
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)


def make_busybox_rootfs(path: str) -> None:
    """A root file system with the host's busybox-static and its applet links."""
    os.makedirs(path)
    for d in ("bin", "proc", "sys", "dev", "etc", "tmp", "root"):
        os.mkdir(os.path.join(path, d))
    shutil.copy2(BUSYBOX, os.path.join(path, "bin", "busybox"))
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True,
                             check=True).stdout.split()
    for applet in applets:
        if applet != "busybox":
            os.symlink("busybox", os.path.join(path, "bin", applet))
    with open(os.path.join(path, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n")
    with open(os.path.join(path, "etc", "group"), "w") as f:
        f.write("root:x:0:\nnogroup:x:65534:\n")


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory):
    """One shared, read-only-by-convention busybox rootfs."""
    path = str(tmp_path_factory.mktemp("busybox") / "rootfs")
    make_busybox_rootfs(path)
    return path


class Bundle:
    """An OCI bundle whose config a test edits before running it."""

    def __init__(self, path: str, rootfs: str) -> None:
        from knarr.oci.runtime_spec import default_config

        self.path = path
        os.makedirs(path)
        os.symlink(rootfs, os.path.join(path, "rootfs"))
        self.config = default_config()
        self.config["process"]["terminal"] = False

    def args(self, *argv: str) -> "Bundle":
        self.config["process"]["args"] = list(argv)
        return self

    def write(self) -> str:
        with open(os.path.join(self.path, "config.json"), "w") as f:
            json.dump(self.config, f)
        return self.path


class Runtime:
    """knarr-runtime with a private --root; remembers ids to clean up."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.ids: list[str] = []

    def new_id(self) -> str:
        cid = "t-" + uuid.uuid4().hex[:12]
        self.ids.append(cid)
        return cid

    def __call__(self, *argv: str, input: bytes | None = None, timeout: float = 30,
                 check: bool = False) -> subprocess.CompletedProcess:
        # Files, not pipes: a detached container inherits our stdout and would
        # hold a pipe open long after knarr-runtime has exited.
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            result = subprocess.run([RUNTIME, "--root", self.root, *argv], input=input,
                                    stdout=out, stderr=err, timeout=timeout)
            out.seek(0)
            err.seek(0)
            result.stdout, result.stderr = out.read(), err.read()
        if check and result.returncode != 0:
            raise AssertionError(f"knarr-runtime {' '.join(argv)} exited {result.returncode}:"
                                 f" {result.stderr.decode()}")
        return result

    def cleanup(self) -> None:
        for cid in self.ids:
            subprocess.run([RUNTIME, "--root", self.root, "delete", "-f", cid],
                           capture_output=True, timeout=30)


@pytest.fixture
def runtime(tmp_path):
    """A knarr-runtime CLI bound to this test's own state root."""
    rt = Runtime(str(tmp_path / "state"))
    yield rt
    rt.cleanup()


@pytest.fixture
def bundle(tmp_path, busybox_rootfs):
    """A fresh bundle over the shared busybox rootfs."""
    return Bundle(str(tmp_path / "bundle"), busybox_rootfs)
