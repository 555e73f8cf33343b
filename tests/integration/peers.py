"""Helpers for tests that drive knarr-runtime through its peers: podman and containerd.

Each peer gets private roots under one temporary directory, so tearing a peer
down is: ask it to remove what it made, stop the processes whose command line
names that directory, detach the mounts under it, remove the cgroup tree its
containers were put in, and delete the directory.
"""

import hashlib
import io
import json
import os
import platform
import pty
import select
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time

from knarr import sys as ksys
from knarr.runtime.cgroups import layout

RUNTIME = os.path.join(os.path.dirname(sys.executable), "knarr-runtime")
CGROUP_ROOT = "/sys/fs/cgroup"


class Result:
    """What a command did: its status, its output, and how long it took."""

    def __init__(self, argv: list[str], returncode: int, stdout: bytes, stderr: bytes,
                 seconds: float) -> None:
        self.argv, self.returncode = argv, returncode
        self.stdout, self.stderr, self.seconds = stdout, stderr, seconds

    @property
    def out(self) -> str:
        return self.stdout.decode(errors="replace")

    def __repr__(self) -> str:
        return (f"<{' '.join(self.argv[:6])}... exited {self.returncode} in {self.seconds:.2f}s;"
                f" stdout={self.stdout[-400:]!r} stderr={self.stderr[-800:]!r}>")


def run(argv: list[str], *, env: dict | None = None, timeout: float = 60,
        check: bool = False, stdin=subprocess.DEVNULL) -> Result:
    """Run a command with its output in files, not pipes.

    A detached container's monitor (conmon, a shim) may keep inherited pipes
    open long after the command itself has returned.
    """
    started = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.run(argv, env=env, stdin=stdin, stdout=out, stderr=err,
                              timeout=timeout)
        out.seek(0)
        err.seek(0)
        result = Result(argv, proc.returncode, out.read(), err.read(),
                        time.monotonic() - started)
    if check and result.returncode != 0:
        raise AssertionError(f"command failed: {result!r}")
    return result


def run_in_pty(argv: list[str], *, env: dict | None = None, timeout: float = 60) -> Result:
    """Run a command whose stdin, stdout and stderr are a fresh pty; collect what it prints."""
    master, slave = pty.openpty()
    started = time.monotonic()
    proc = subprocess.Popen(argv, env=env, stdin=slave, stdout=slave, stderr=slave,
                            start_new_session=True)
    os.close(slave)
    output = b""
    try:
        deadline = started + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every slave end is closed
                    break
                if not data:
                    break
                output += data
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return Result(argv, code, output, b"", time.monotonic() - started)


# --- images ---------------------------------------------------------------------------------


def write_layer(rootfs: str, path: str) -> None:
    """A tar of `rootfs` as an image layer: every file owned by root."""
    def as_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info

    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(os.listdir(rootfs)):
            tar.add(os.path.join(rootfs, name), arcname=name, filter=as_root)


def _goarch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(machine, machine)


def _blob(tar: tarfile.TarFile, data: bytes, media_type: str) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    info = tarfile.TarInfo(f"blobs/sha256/{digest}")
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))
    return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}


def _add_file(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_oci_archive(layer: str, path: str, name: str) -> None:
    """An OCI image layout tarball with one uncompressed layer, named `name`."""
    with open(layer, "rb") as f:
        layer_data = f.read()
    config = {
        "architecture": _goarch(), "os": "linux",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Cmd": ["sh"]},
        "rootfs": {"type": "layers",
                   "diff_ids": ["sha256:" + hashlib.sha256(layer_data).hexdigest()]},
    }
    with tarfile.open(path, "w") as tar:
        layer_desc = _blob(tar, layer_data, "application/vnd.oci.image.layer.v1.tar")
        config_desc = _blob(tar, json.dumps(config).encode(),
                            "application/vnd.oci.image.config.v1+json")
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": config_desc, "layers": [layer_desc]}
        manifest_desc = _blob(tar, json.dumps(manifest).encode(), manifest["mediaType"])
        manifest_desc["annotations"] = {"io.containerd.image.name": name,
                                        "org.opencontainers.image.ref.name": name}
        index = {"schemaVersion": 2, "manifests": [manifest_desc]}
        _add_file(tar, "index.json", json.dumps(index).encode())
        _add_file(tar, "oci-layout", b'{"imageLayoutVersion": "1.0.0"}')


# --- host preparation -----------------------------------------------------------------------


def ensure_hugetlb_on_v1() -> None:
    """Move hugetlb off cgroup2 on a hybrid host, as bench/setup.sh does; idempotent.

    On a hybrid host (v1 controllers, cgroup2 at /sys/fs/cgroup/unified) runc,
    crun and podman's cgroup code are unhappy while a controller stays on
    cgroup2, and hugetlb is the one left there. The mount is host preparation
    shared with the benchmarks, so it is left in place.
    """
    hierarchies = _hierarchies()
    if not any(h.version == 1 for h in hierarchies):
        return
    if any("hugetlb" in h.controllers for h in hierarchies if h.version == 1):
        return
    with open("/proc/cgroups") as f:
        if not any(line.split()[0] == "hugetlb" for line in f if not line.startswith("#")):
            return
    target = os.path.join(CGROUP_ROOT, "hugetlb")
    try:
        os.makedirs(target, exist_ok=True)
        ksys.mount("cgroup", target, "cgroup", 0, "hugetlb")
    except OSError as exc:
        # Not fatal: knarr-runtime copes with the hybrid layout; the peers may not.
        print(f"peers: could not move hugetlb off cgroup2: {exc}", file=sys.stderr)


# --- leftovers: processes, mounts, cgroups -------------------------------------------------


def pids_mentioning(text: str) -> list[int]:
    """Pids of processes (not this one) whose command line contains `text`."""
    needle = text.encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if needle in cmdline:
            found.append(int(name))
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return False
    return raw[raw.rindex(b")") + 2:][:1] not in (b"Z", b"X")


def stop_processes(pids: list[int], grace: float = 5.0) -> list[int]:
    """Give `pids` `grace` seconds to exit on their own, then SIGKILL them; return those killed."""
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.05)
    killed = [p for p in pids if _alive(p)]
    for pid in killed:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return killed


def mounts_under(path: str) -> list[str]:
    """Mount points at or below `path`, deepest first."""
    prefix = os.path.realpath(path)
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].encode().decode("unicode_escape")
            if point == prefix or point.startswith(prefix + "/"):
                points.append(point)
    return sorted(points, key=lambda p: p.count("/"), reverse=True)


def unmount_under(path: str) -> list[str]:
    """Detach every mount at or below `path`; return the mount points that were there."""
    points = mounts_under(path)
    for point in points:
        try:
            ksys.umount2(point, ksys.MNT_DETACH)
        except OSError:
            pass
    return points


def cgroup_dirs(name: str) -> list[str]:
    """The directory of cgroup `name` (like /knarr-peers-x) in every mounted hierarchy."""
    name = name.strip("/")
    return [os.path.join(h.mountpoint, name) for h in _hierarchies()]


def _hierarchies() -> list:
    # Looked up afresh: the library remembers them per process, and a hierarchy (hugetlb)
    # may have been mounted since.
    layout.forget_hierarchies()
    return layout.find_hierarchies(CGROUP_ROOT)


def existing_cgroup_dirs(name: str) -> list[str]:
    """Every directory at or below cgroup `name`, in any hierarchy, deepest first."""
    found = []
    for top in cgroup_dirs(name):
        for dirpath, _dirs, _files in os.walk(top):
            found.append(dirpath)
    return sorted(found, key=lambda p: p.count("/"), reverse=True)


def remove_cgroup_tree(name: str, timeout: float = 5.0) -> list[str]:
    """Kill what is left in cgroup `name` and below, then remove it; return what remains."""
    deadline = time.monotonic() + timeout
    while True:
        dirs = existing_cgroup_dirs(name)
        for cgdir in dirs:
            _kill_members(cgdir)
            try:
                os.rmdir(cgdir)
            except OSError:
                pass
        left = existing_cgroup_dirs(name)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def _kill_members(cgdir: str) -> None:
    try:
        with open(os.path.join(cgdir, "cgroup.procs")) as f:
            pids = [int(line) for line in f if line.strip()]
    except OSError:
        return
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    freezer = os.path.join(cgdir, "freezer.state")
    if pids and os.path.exists(freezer):
        try:
            with open(freezer, "w") as f:
                f.write("THAWED")
        except OSError:
            pass


def wait_for_socket(path: str, timeout: float) -> bool:
    """True once a unix socket at `path` accepts a connection."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            try:
                sock.connect(path)
                return True
            except OSError:
                time.sleep(0.02)
    return False


def containerd_shim_socket(address: str, namespace: str, container_id: str) -> str:
    """Where containerd 1.6's runc shim v2 puts its socket (a fixed directory, not --state)."""
    digest = hashlib.sha256(os.path.join(address, namespace, container_id).encode()).hexdigest()
    return os.path.join("/run/containerd/s", digest)
