"""podman and containerd drive knarr-runtime as they drive runc.

podman (through conmon) and containerd (through its runc shim v2) each run a
busybox image with knarr-runtime as their OCI runtime. Each peer gets private
roots under a temporary directory of its own and puts its containers in a
private cgroup parent. The module's fixtures remove every container, mount,
cgroup and process the peers made, pass or fail, and then fail the teardown
if the peer's own removal had left any of them behind.
"""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid

import peers
import pytest

pytestmark = pytest.mark.privileged

IMAGE = "localhost/knarr-busybox:peers"
# podman, as root, gives knarr-runtime no --root: its containers live in the default root.
KNARR_DEFAULT_ROOT = "/run/knarr/runtime"
TRAP_TERM = 'trap "exit 42" TERM; echo started; while :; do sleep 0.1; done'


def _knarr_state(container_id: str, root: str = KNARR_DEFAULT_ROOT) -> dict | None:
    """knarr-runtime's own view of a container; None if it has no such container."""
    result = peers.run([peers.RUNTIME, "--root", root, "state", container_id], timeout=30)
    return json.loads(result.stdout) if result.returncode == 0 else None


def _wait_for(check, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


@pytest.fixture(scope="module")
def image_files(tmp_path_factory, busybox_rootfs) -> dict:
    """The busybox rootfs as a layer tarball (for podman import) and an OCI archive (for ctr)."""
    top = tmp_path_factory.mktemp("peers-image")
    layer, archive = str(top / "rootfs.tar"), str(top / "busybox-oci.tar")
    peers.write_layer(busybox_rootfs, layer)
    peers.write_oci_archive(layer, archive, IMAGE)
    return {"layer": layer, "oci": archive}


# --- podman ---------------------------------------------------------------------------------


class Podman:
    """podman with private storage, run and tmp dirs, and knarr-runtime as its runtime."""

    def __init__(self, top: str) -> None:
        self.top = top
        self.cgroup_parent = f"/knarr-peers-podman-{uuid.uuid4().hex[:8]}"
        root, runroot, tmp = (os.path.join(top, d) for d in ("root", "runroot", "tmp"))
        os.makedirs(tmp)
        self.env = dict(os.environ, TMPDIR=tmp,
                        CONTAINERS_CONF=self._write(_containers_conf(top, tmp)),
                        CONTAINERS_STORAGE_CONF=self._write(_storage_conf(root, runroot)))
        self.base = ["podman", "--root", root, "--runroot", runroot, "--tmpdir", tmp,
                     "--cgroup-manager=cgroupfs", "--events-backend=file",
                     "--storage-driver=overlay", "--runtime", peers.RUNTIME]

    def _write(self, text: tuple[str, str]) -> str:
        path = os.path.join(self.top, text[0])
        with open(path, "w") as f:
            f.write(text[1])
        return path

    def __call__(self, *args: str, timeout: float = 60, check: bool = False,
                 stdin=subprocess.DEVNULL) -> peers.Result:
        return peers.run(self.base + list(args), env=self.env, timeout=timeout, check=check,
                         stdin=stdin)

    def run_flags(self) -> list[str]:
        """Flags every `podman run` here gets: our cgroup parent, no network."""
        return ["--cgroup-parent", self.cgroup_parent, "--network", "none"]

    def inspect(self, name: str, fmt: str) -> str:
        return self("inspect", "--format", fmt, name, check=True).out.strip()

    def teardown(self) -> list[str]:
        """Remove everything; return what podman's own removal left behind."""
        ids = self("ps", "-aq", "--no-trunc", timeout=30).out.split()
        self("rm", "-fa", "-t", "0", timeout=120)
        leaks = []
        for cid in ids:
            if _knarr_state(cid) is not None:
                leaks.append(f"knarr-runtime state of {cid}")
                peers.run([peers.RUNTIME, "delete", "-f", cid], timeout=30)
        # conmon and `podman container cleanup` finish on their own after rm.
        killed = peers.stop_processes(peers.pids_mentioning(self.top), grace=10)
        leaks += [f"process {pid}" for pid in killed]
        leaks += [f"mount {m}" for m in peers.unmount_under(self.top)]
        # podman leaves the parent and its conmon cgroup, as it does with runc.
        containers = [d for d in peers.existing_cgroup_dirs(self.cgroup_parent)
                      if os.path.basename(d).startswith("libpod-")]
        leaks += [f"cgroup {d}" for d in containers]
        leaks += [f"cgroup {d} (not removable)" for d in
                  peers.remove_cgroup_tree(self.cgroup_parent)]
        shutil.rmtree(self.top, ignore_errors=True)
        return leaks


def _containers_conf(top: str, tmp: str) -> tuple[str, str]:
    # default_ulimits = []: podman's default RLIMIT_NOFILE is above this host's hard limit,
    # which root cannot raise here (no CAP_SYS_RESOURCE); the empty list inherits ours.
    return "containers.conf", (
        "[containers]\n"
        "default_ulimits = []\n"
        'log_driver = "k8s-file"\n'
        "[engine]\n"
        'cgroup_manager = "cgroupfs"\n'
        'events_logger = "file"\n'
        f'tmp_dir = "{tmp}"\n'
        "[network]\n"
        f'network_config_dir = "{os.path.join(top, "networks")}"\n')


def _storage_conf(root: str, runroot: str) -> tuple[str, str]:
    return "storage.conf", (
        "[storage]\n"
        'driver = "overlay"\n'
        f'graphroot = "{root}"\n'
        f'runroot = "{runroot}"\n')


@pytest.fixture(scope="module")
def podman(image_files):
    """A private podman with the busybox image imported; torn down with the module."""
    if not (shutil.which("podman") and shutil.which("conmon")):
        pytest.skip("podman or conmon is not installed")
    peers.ensure_hugetlb_on_v1()
    # Not under tmp_path: podman refuses a runroot path longer than 50 characters.
    p = Podman(tempfile.mkdtemp(prefix="knarr-podman-"))
    try:
        p("import", image_files["layer"], IMAGE, check=True)
        yield p
    finally:
        leaks = p.teardown()
    assert not leaks, f"podman with knarr-runtime left behind: {leaks}"


def _podman_name() -> str:
    return "kp-" + uuid.uuid4().hex[:10]


def test_podman_run_prints_hello(podman):
    result = podman("run", "--rm", *podman.run_flags(), IMAGE, "echo", "hello")
    assert result.returncode == 0, result
    assert result.stdout == b"hello\n", result


def test_podman_propagates_exit_status_and_stdin(podman):
    result = podman("run", "--rm", *podman.run_flags(), IMAGE, "sh", "-c", "exit 7")
    assert result.returncode == 7, result
    missing = podman("run", "--rm", *podman.run_flags(), IMAGE, "no-such-program")
    assert missing.returncode == 127, missing
    assert b"no-such-program" in missing.stderr, missing
    with open(__file__, "rb") as f:
        piped = podman("run", "--rm", "-i", *podman.run_flags(), IMAGE, "wc", "-c", stdin=f)
    assert piped.returncode == 0, piped
    assert int(piped.out) == os.path.getsize(__file__)


def test_podman_detached_exec_pause_stop_rm(podman):
    name = _podman_name()
    cid = podman("run", "-d", "--name", name, *podman.run_flags(), IMAGE, "sh", "-c", TRAP_TERM,
                 check=True).out.strip()
    assert podman.inspect(name, "{{.OCIRuntime}}") == peers.RUNTIME
    pid = int(podman.inspect(name, "{{.State.Pid}}"))
    merged = podman.inspect(name, "{{.GraphDriver.Data.MergedDir}}")
    assert merged in peers.mounts_under(podman.top)
    state = _knarr_state(cid)
    assert state and state["status"] == "running" and state["pid"] == pid, state

    inside = podman("exec", name, "sh", "-c", "hostname; cat /proc/1/cmdline; exit 3")
    assert inside.returncode == 3, inside
    assert inside.out.splitlines() == [cid[:12], "sh\0-c\0" + TRAP_TERM + "\0"]

    podman("pause", name, check=True)
    assert _knarr_state(cid)["status"] == "paused"
    podman("unpause", name, check=True)
    assert _knarr_state(cid)["status"] == "running"

    stop = podman("stop", "-t", "10", name, check=True)
    assert stop.seconds < 8, f"SIGTERM did not stop it: {stop}"
    assert podman.inspect(name, "{{.State.ExitCode}}") == "42"
    assert podman("logs", name, check=True).out == "started\n"
    podman("rm", name, check=True)
    assert _knarr_state(cid) is None
    assert not [d for d in peers.existing_cgroup_dirs(podman.cgroup_parent) if cid in d]
    # conmon's exit command (podman container cleanup) may still be finishing.
    assert _wait_for(lambda: not peers.pids_mentioning(cid)), peers.pids_mentioning(cid)
    assert not [m for m in peers.mounts_under(podman.top) if cid in m or m == merged]


def test_podman_stop_falls_back_to_sigkill(podman):
    # sleep as pid 1 has no SIGTERM handler, so the kernel ignores SIGTERM for it.
    name = _podman_name()
    podman("run", "-d", "--name", name, *podman.run_flags(), IMAGE, "sleep", "100", check=True)
    stop = podman("stop", "-t", "1", name, check=True)
    assert stop.seconds >= 1, stop
    assert podman.inspect(name, "{{.State.ExitCode}}") == "137"
    podman("rm", name, check=True)


def test_podman_kill_wait_start_restart(podman):
    name = _podman_name()
    cid = podman("run", "-d", "--name", name, *podman.run_flags(), IMAGE, "sleep", "100",
                 check=True).out.strip()
    podman("kill", name, check=True)
    assert podman("wait", name, check=True).out.strip() == "137"
    # The same id is created and started again: delete left nothing in the way.
    podman("start", name, check=True)
    first = _knarr_state(cid)
    assert first and first["status"] == "running", first
    podman("restart", "-t", "0", name, check=True)
    second = _knarr_state(cid)
    assert second and second["status"] == "running" and second["pid"] != first["pid"], second
    assert podman.inspect(name, "{{.State.Pid}}") == str(second["pid"])
    podman("rm", "-f", "-t", "0", name, check=True)
    assert _knarr_state(cid) is None


def test_podman_terminal_through_console_socket(podman):
    result = podman("run", "--rm", "-t", *podman.run_flags(), IMAGE,
                    "sh", "-c", "tty; test -t 0 && test -t 1 && echo on-a-tty")
    assert result.returncode == 0, result
    assert result.stdout == b"/dev/pts/0\r\non-a-tty\r\n", result
    name = _podman_name()
    podman("run", "-d", "--name", name, *podman.run_flags(), IMAGE, "sleep", "100", check=True)
    inside = podman("exec", "-t", name, "tty")
    assert inside.returncode == 0, inside
    assert inside.stdout.startswith(b"/dev/pts/"), inside
    podman("rm", "-f", "-t", "0", name, check=True)


def test_podman_config_reaches_the_container(podman):
    script = ("hostname; id -u; echo $GREETING; pwd;"
              " cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null"
              " || cat /sys/fs/cgroup/memory.max;"
              " cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max;"
              " touch /x 2>/dev/null || echo read-only")
    result = podman("run", "--rm", *podman.run_flags(), "--hostname", "boxy", "-u", "65534",
                    "-e", "GREETING=hi", "-w", "/tmp", "--memory", "64m", "--pids-limit", "50",
                    "--read-only", IMAGE, "sh", "-c", script)
    assert result.returncode == 0, result
    assert result.out.splitlines() == ["boxy", "65534", "hi", "/tmp", str(64 << 20), "50",
                                       "read-only"]


def test_podman_user_namespace_with_a_terminal(podman):
    # Container root is host uid 100000, which can neither reach knarr-runtime's state root
    # nor conmon's console socket: the runtime must hand init both, already open.
    maps = ["--uidmap", "0:100000:65536", "--gidmap", "0:100000:65536"]
    result = podman("run", "--rm", "-t", *maps, *podman.run_flags(), IMAGE,
                    "sh", "-c", "id -u; tty; cat /proc/self/uid_map")
    assert result.returncode == 0, result
    uid, tty, uid_map = result.out.splitlines()
    assert (uid, tty, uid_map.split()) == ("0", "/dev/pts/0", ["0", "100000", "65536"])


def test_podman_update_changes_the_limits(podman):
    name = _podman_name()
    podman("run", "-d", "--name", name, *podman.run_flags(), "--memory", "64m", IMAGE,
           "sleep", "100", check=True)
    podman("update", "--memory", "128m", name, check=True)
    limit = podman("exec", name, "sh", "-c",
                   "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null"
                   " || cat /sys/fs/cgroup/memory.max")
    assert limit.returncode == 0 and limit.out.strip() == str(128 << 20), limit
    podman("rm", "-f", "-t", "0", name, check=True)


# --- containerd -----------------------------------------------------------------------------


class Containerd:
    """A private containerd (no CRI) whose ctr runs use knarr-runtime as the runc binary."""

    NAMESPACE = "knarr-test"

    def __init__(self, top: str) -> None:
        self.top = top
        self.sock = os.path.join(top, "containerd.sock")
        self.runc_root = os.path.join(top, "runtime")
        self.fifo_dir = os.path.join(top, "fifo")
        self.cgroup_parent = f"/knarr-peers-ctr-{uuid.uuid4().hex[:8]}"
        self.ids: list[str] = []
        self.proc: subprocess.Popen | None = None

    @property
    def knarr_root(self) -> str:
        """knarr-runtime's --root as the shim passes it: the runc root plus the namespace."""
        return os.path.join(self.runc_root, self.NAMESPACE)

    def start(self) -> None:
        config = os.path.join(self.top, "config.toml")
        with open(config, "w") as f:
            f.write(_containerd_config(self.top, self.sock))
        log = open(os.path.join(self.top, "containerd.log"), "wb")
        with log:
            self.proc = subprocess.Popen(["containerd", "--config", config], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log, start_new_session=True)
        if not peers.wait_for_socket(self.sock, 15):
            raise AssertionError(f"containerd did not start: {self.log_tail()}")

    def log_tail(self) -> str:
        try:
            with open(os.path.join(self.top, "containerd.log"), "rb") as f:
                return f.read()[-2000:].decode(errors="replace")
        except OSError:
            return ""

    def ctr(self, *args: str, timeout: float = 60, check: bool = False) -> peers.Result:
        return peers.run(["ctr", "-a", self.sock, "-n", self.NAMESPACE, *args], timeout=timeout,
                         check=check)

    def ctr_in_pty(self, *args: str, timeout: float = 60) -> peers.Result:
        return peers.run_in_pty(["ctr", "-a", self.sock, "-n", self.NAMESPACE, *args],
                                timeout=timeout)

    def new_id(self) -> str:
        cid = "kc-" + uuid.uuid4().hex[:10]
        self.ids.append(cid)
        return cid

    def run_flags(self, cid: str) -> list[str]:
        """Flags every `ctr run` here gets: knarr-runtime, private runtime root, fifos, cgroup."""
        return ["--runc-binary", peers.RUNTIME, "--runc-root", self.runc_root,
                "--fifo-dir", self.fifo_dir, "--cgroup", f"{self.cgroup_parent}/{cid}"]

    def teardown(self) -> list[str]:
        """Remove everything; return what containerd's own removal left behind."""
        if self.proc is not None and self.proc.poll() is None:
            listed = self.ctr("containers", "ls", "-q", timeout=30).out.split()
            for cid in dict.fromkeys(listed + self.ids):
                self.ctr("task", "kill", "-s", "KILL", cid, timeout=30)
                self.ctr("task", "delete", "-f", cid, timeout=30)
                self.ctr("containers", "delete", cid, timeout=30)
        leaks = self._stop_daemon()
        for cid in _ids_under(self.knarr_root):
            leaks.append(f"knarr-runtime state of {cid}")
            peers.run([peers.RUNTIME, "--root", self.knarr_root, "delete", "-f", cid], timeout=30)
        killed = peers.stop_processes(peers.pids_mentioning(self.top), grace=5)
        leaks += [f"process {pid}" for pid in killed]
        leaks += [f"mount {m}" for m in peers.unmount_under(self.top)]
        for cid in self.ids:
            sock = peers.containerd_shim_socket(self.sock, self.NAMESPACE, cid)
            if os.path.exists(sock):
                leaks.append(f"shim socket {sock}")
                os.unlink(sock)
        below = [d for d in peers.existing_cgroup_dirs(self.cgroup_parent)
                 if os.path.basename(d) in self.ids]
        leaks += [f"cgroup {d}" for d in below]
        leaks += [f"cgroup {d} (not removable)" for d in
                  peers.remove_cgroup_tree(self.cgroup_parent)]
        shutil.rmtree(self.top, ignore_errors=True)
        return leaks

    def _stop_daemon(self) -> list[str]:
        if self.proc is None or self.proc.poll() is not None:
            return []
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return [f"containerd {self.proc.pid} ignored SIGTERM"]
        return []


def _containerd_config(top: str, sock: str) -> str:
    # The opt plugin would otherwise create /opt/containerd; CRI would want a CNI set-up.
    return (
        "version = 2\n"
        f'root = "{os.path.join(top, "root")}"\n'
        f'state = "{os.path.join(top, "state")}"\n'
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
        "[grpc]\n"
        f'  address = "{sock}"\n'
        "[ttrpc]\n"
        f'  address = "{sock}.ttrpc"\n'
        "[debug]\n"
        '  address = ""\n'
        "[metrics]\n"
        '  address = ""\n'
        '[plugins."io.containerd.internal.v1.opt"]\n'
        f'  path = "{os.path.join(top, "opt")}"\n')


def _ids_under(root: str) -> list[str]:
    try:
        return sorted(os.listdir(root))
    except FileNotFoundError:
        return []


@pytest.fixture(scope="module")
def containerd(image_files):
    """A private containerd with the busybox image imported; stopped with the module."""
    for binary in ("containerd", "ctr", "containerd-shim-runc-v2"):
        if not shutil.which(binary):
            pytest.skip(f"{binary} is not installed")
    peers.ensure_hugetlb_on_v1()
    c = Containerd(tempfile.mkdtemp(prefix="knarr-ctr-"))  # short: a unix socket lives in it
    try:
        c.start()
        c.ctr("images", "import", image_files["oci"], check=True)
        yield c
    finally:
        leaks = c.teardown()
    assert not leaks, f"containerd with knarr-runtime left behind: {leaks}"


def test_ctr_run_prints_hello(containerd):
    cid = containerd.new_id()
    result = containerd.ctr("run", "--rm", *containerd.run_flags(cid), IMAGE, cid, "echo", "hello")
    assert result.returncode == 0, result
    assert result.stdout == b"hello\n", result


def test_ctr_propagates_exit_status_and_errors(containerd):
    cid = containerd.new_id()
    result = containerd.ctr("run", "--rm", *containerd.run_flags(cid), IMAGE, cid,
                            "sh", "-c", "exit 7")
    assert result.returncode == 7, result
    cid = containerd.new_id()
    missing = containerd.ctr("run", "--rm", *containerd.run_flags(cid), IMAGE, cid,
                             "no-such-program")
    assert missing.returncode != 0, missing
    # The shim reads the reason from knarr-runtime's --log (JSON).
    assert b'"no-such-program": executable file not found' in missing.stderr, missing
    assert containerd.ctr("containers", "ls", "-q", check=True).out.split() == []
    assert _ids_under(containerd.knarr_root) == []


def test_ctr_detached_exec_pause_kill_delete(containerd):
    cid = containerd.new_id()
    containerd.ctr("run", "-d", *containerd.run_flags(cid), IMAGE, cid, "sh", "-c", TRAP_TERM,
                   check=True)
    tasks = containerd.ctr("task", "ls", check=True).out.split()
    pid = int(tasks[tasks.index(cid) + 1])
    assert [m for m in peers.mounts_under(containerd.top) if cid in m], "no rootfs mount"
    state = _knarr_state(cid, containerd.knarr_root)
    assert state and state["status"] == "running" and state["pid"] == pid, state

    inside = containerd.ctr("task", "exec", "--exec-id", "e1", "--fifo-dir", containerd.fifo_dir,
                            cid, "sh", "-c", "echo in-exec; cat /proc/1/cmdline; exit 4")
    assert inside.returncode == 4, inside
    assert inside.out.splitlines() == ["in-exec", "sh\0-c\0" + TRAP_TERM + "\0"]
    assert str(pid) in containerd.ctr("task", "ps", cid, check=True).out.split()
    # The shim reads the container's cgroup itself, found from init's pid.
    containerd.ctr("task", "metrics", cid, check=True)

    containerd.ctr("task", "pause", cid, check=True)
    assert _knarr_state(cid, containerd.knarr_root)["status"] == "paused"
    containerd.ctr("task", "resume", cid, check=True)
    assert _knarr_state(cid, containerd.knarr_root)["status"] == "running"

    containerd.ctr("task", "kill", cid, check=True)  # SIGTERM, which the trap turns into 42
    assert _wait_for(lambda: f"{cid} {pid} STOPPED" in
                     " ".join(containerd.ctr("task", "ls").out.split())), "task did not stop"
    deleted = containerd.ctr("task", "delete", cid, check=True)
    assert b"exit code 42" in deleted.stderr, deleted
    containerd.ctr("containers", "delete", cid, check=True)
    assert _knarr_state(cid, containerd.knarr_root) is None
    assert not [d for d in peers.existing_cgroup_dirs(containerd.cgroup_parent) if cid in d]
    assert _wait_for(lambda: not peers.pids_mentioning(cid)), peers.pids_mentioning(cid)
    assert not [m for m in peers.mounts_under(containerd.top) if cid in m]


def test_ctr_terminal_through_console_socket(containerd):
    # ctr wants a terminal of its own for -t: give it a pty.
    cid = containerd.new_id()
    result = containerd.ctr_in_pty("run", "--rm", "-t", *containerd.run_flags(cid), IMAGE, cid,
                                   "sh", "-c", "tty; test -t 0 && test -t 1 && echo on-a-tty; exit 5")
    assert result.returncode == 5, result
    assert b"/dev/pts/0\r" in result.stdout and b"on-a-tty" in result.stdout, result
    cid = containerd.new_id()
    containerd.ctr("run", "-d", *containerd.run_flags(cid), IMAGE, cid, "sleep", "100", check=True)
    inside = containerd.ctr_in_pty("task", "exec", "-t", "--exec-id", "t1", "--fifo-dir",
                                   containerd.fifo_dir, cid, "sh", "-c", "tty; exit 6")
    assert inside.returncode == 6, inside
    assert b"/dev/pts/" in inside.stdout, inside
    containerd.ctr("task", "kill", "--all", "-s", "KILL", cid, check=True)
    assert _wait_for(lambda: "STOPPED" in containerd.ctr("task", "ls").out)
    containerd.ctr("task", "delete", cid, check=True)
    containerd.ctr("containers", "delete", cid, check=True)
