"""Acceptance of knarr-runtime (issue 2, "What must hold"): real busybox containers
driven through the real CLI, each property checked from inside the container and,
where the host can see it, from outside too.
"""

import errno
import json
import os
import re
import select
import shutil
import signal
import socket
import tempfile
import threading
import time

import pytest
from runtime_helpers import CGROUP_ROOT, cgroup_dirs, report, state_of, wait_for, wait_status

from knarr.oci import runtime_spec

pytestmark = pytest.mark.privileged

# Capability numbers from <linux/capability.h>, so the expected masks do not come
# from the runtime under test.
CAP_NUMBERS = {"CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_FOWNER": 3, "CAP_KILL": 5,
               "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_NET_BIND_SERVICE": 10,
               "CAP_NET_RAW": 13, "CAP_SYS_CHROOT": 18, "CAP_AUDIT_WRITE": 29}


def cap_mask(names) -> int:
    mask = 0
    for name in names:
        mask |= 1 << CAP_NUMBERS[name]
    return mask


def tmpfs(destination: str, *options: str) -> dict:
    return {"destination": destination, "type": "tmpfs", "source": "tmpfs",
            "options": ["nosuid", "nodev", *options]}


def bind(source: str, destination: str, *options: str) -> dict:
    return {"destination": destination, "type": "bind", "source": source,
            "options": ["rbind", *options]}


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


class ConsoleServer:
    """A --console-socket listener: accepts once and keeps the pty master it is sent."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(1)
        self.sock.settimeout(30)
        self.master: int | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        try:
            conn, _ = self.sock.accept()
            with conn:
                _msg, fds, _flags, _addr = socket.recv_fds(conn, 1024, 1)
            self.master = fds[0]
        except BaseException as exc:  # noqa: BLE001 - reported by wait()
            self.error = exc

    def wait(self) -> int:
        self.thread.join(30)
        assert self.master is not None, f"no pty master received: {self.error!r}"
        return self.master

    def read_all(self, timeout: float = 15.0) -> str:
        """Everything the container wrote to its terminal, until it hangs up."""
        master = self.wait()
        chunks = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not select.select([master], [], [], deadline - time.monotonic())[0]:
                break
            try:
                chunk = os.read(master, 4096)
            except OSError as exc:  # EIO: every slave fd is closed
                assert exc.errno == errno.EIO, exc
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace").replace("\r\n", "\n")

    def close(self) -> None:
        self.sock.close()
        if self.master is not None:
            os.close(self.master)


# The fence: hostname, pid namespace, /proc, capabilities, seccomp, masks, readonly root.

CONFINED_SCRIPT = r"""
echo pid=$$
echo hostname=$(hostname)
pids=; for p in /proc/[0-9]*; do pids="$pids ${p#/proc/}"; done; echo pids=$pids
echo self=$(readlink /proc/self)
echo procfs=$(awk '$5 == "/proc" {print $(NF-2)}' /proc/self/mountinfo)
grep '^Cap' /proc/1/status | tr -d '\t' | sed 's/:/=/'
echo seccomp=$(awk '/^Seccomp:/ {print $2}' /proc/1/status)
echo mkdir=$(mkdir /tmp/denied 2>&1; echo " rc=$?")
echo denied_exists=$(test -e /tmp/denied && echo yes || echo no)
echo touch_tmp=$(touch /tmp/allowed 2>&1; echo " rc=$?")
echo timer_list_bytes=$(wc -c < /proc/timer_list)
echo kcore=$(if [ -e /proc/kcore ]; then head -c 16 /proc/kcore | wc -c; else echo absent; fi)
echo firmware_entries=$(ls -A /sys/firmware | wc -l)
echo rootfs_write=$(touch /etc/probe 2>&1; echo " rc=$?")
"""


def test_fenced_container(runtime, bundle):
    """Hostname, pid 1, own processes and /proc, exact capability sets, a seccomp errno,
    masked paths and a readonly root: one container, each fence checked on its own line."""
    bounding = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW",
                "CAP_SETUID", "CAP_SETGID", "CAP_AUDIT_WRITE"]
    inheritable = ["CAP_KILL", "CAP_NET_BIND_SERVICE"]
    ambient = ["CAP_NET_BIND_SERVICE"]
    # For uid 0, exec makes permitted = effective = bounding | inheritable | ambient;
    # sets chosen that way are what the kernel keeps, so the status must show them exactly.
    bundle.config["process"]["capabilities"] = {
        "bounding": bounding, "effective": bounding, "permitted": bounding,
        "inheritable": inheritable, "ambient": ambient}
    bundle.config["hostname"] = "fenced-box"
    bundle.config["mounts"].append(tmpfs("/tmp", "size=1m"))
    bundle.config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                      "errnoRet": errno.EACCES}]}
    bundle.args("sh", "-c", CONFINED_SCRIPT).write()
    with open("/proc/timer_list", "rb") as f:
        assert f.read(16), "the host's /proc/timer_list is empty: the mask check would prove nothing"
    assert os.listdir("/sys/firmware"), "the host's /sys/firmware is empty"

    result = runtime("run", "--bundle", bundle.path, runtime.new_id())
    assert result.returncode == 0, result.stderr
    out = report(result.stdout)
    assert out["pid"] == "1"
    assert out["hostname"] == "fenced-box"
    assert out["pids"].split() == ["1"], out["pids"]  # only the shell: no host process
    assert 1 < int(out["self"]) < 10  # /proc/self resolves in the container's pid namespace
    assert out["procfs"] == "proc"
    assert int(out["CapBnd"], 16) == cap_mask(bounding)
    assert int(out["CapEff"], 16) == cap_mask(bounding)
    assert int(out["CapPrm"], 16) == cap_mask(bounding)
    assert int(out["CapInh"], 16) == cap_mask(inheritable)
    assert int(out["CapAmb"], 16) == cap_mask(ambient)
    assert out["seccomp"] == "2"  # filter mode
    assert "Permission denied" in out["mkdir"] and out["mkdir"].endswith("rc=1"), out["mkdir"]
    assert out["denied_exists"] == "no"
    assert out["touch_tmp"].strip() == "rc=0"  # what the profile does not name still works
    assert out["timer_list_bytes"] == "0"
    assert out["kcore"] in ("0", "absent")  # this kernel may lack /proc/kcore
    if os.path.exists("/proc/kcore"):
        assert out["kcore"] == "0"
    assert out["firmware_entries"] == "0"
    assert "Read-only file system" in out["rootfs_write"], out["rootfs_write"]
    assert not os.path.exists(os.path.join(bundle.path, "rootfs", "etc", "probe"))


# Resource limits.

def test_memory_limit_makes_a_hog_die_by_oom(runtime, bundle):
    limit = 16 * 1024 * 1024
    bundle.config["linux"]["resources"]["memory"] = {"limit": limit}
    # The shell doubles a string until the cgroup's OOM killer takes it (pid 1 itself).
    bundle.args("sh", "-c", "x=0123456789abcdef; while :; do x=$x$x; done").write()
    started = time.monotonic()
    result = runtime("run", "--bundle", bundle.path, runtime.new_id(), timeout=60)
    assert result.returncode == 137, (result.returncode, result.stderr)
    assert time.monotonic() - started < 30


def test_pids_limit_makes_fork_fail(runtime, bundle):
    bundle.config["linux"]["resources"]["pids"] = {"limit": 6}
    # An inner shell forks sleeps until the limit stops it; the outer one (which
    # must not fork again) then counts what is left: itself and four sleeps.
    script = ("sh -c 'for i in 1 2 3 4 5 6 7 8 9 10; do sleep 30 & done'; echo inner=$?; "
              "n=0; for p in /proc/[0-9]*; do n=$((n+1)); done; echo tasks=$n")
    bundle.args("sh", "-c", script).write()
    result = runtime("run", "--bundle", bundle.path, runtime.new_id())
    assert result.returncode == 0, result.stderr
    assert result.stderr == b"sh: can't fork: Resource temporarily unavailable\n"
    assert report(result.stdout) == {"inner": "2", "tasks": "5"}


def _cpu_usage_ns(cid) -> int:
    with open(os.path.join(CGROUP_ROOT, "cpuacct", "knarr", cid, "cpuacct.usage")) as f:
        return int(f.read())


def test_cpu_quota_holds_a_busy_loop_near_a_fifth_of_a_cpu(runtime, bundle):
    bundle.config["linux"]["resources"]["cpu"] = {"quota": 20000, "period": 100000}
    bundle.args("sh", "-c", "while :; do :; done").write()
    cid = runtime.new_id()
    runtime("run", "-d", "--bundle", bundle.path, cid, check=True)
    with open(os.path.join(CGROUP_ROOT, "cpu", "knarr", cid, "cpu.cfs_quota_us")) as f:
        assert f.read().strip() == "20000"
    wait_for(lambda: _cpu_usage_ns(cid) > 20_000_000, 5, "the loop to start")
    t0, u0 = time.monotonic(), _cpu_usage_ns(cid)
    time.sleep(1.5)
    t1, u1 = time.monotonic(), _cpu_usage_ns(cid)
    share = (u1 - u0) / 1e9 / (t1 - t0)
    assert 0.10 <= share <= 0.30, f"busy loop used {share:.0%} of a cpu under a 20% quota"

    stats = json.loads(runtime("events", "--stats", cid, check=True).stdout)
    assert stats["type"] == "stats" and stats["id"] == cid
    assert stats["data"]["cpu"]["usage"]["total"] >= u1
    assert stats["data"]["cpu"]["throttling"]["throttled_periods"] > 0
    assert stats["data"]["pids"]["current"] == 1
    assert stats["data"]["memory"]["usage"]["usage"] > 0
    runtime("delete", "-f", cid, check=True)


# A user namespace.

@pytest.fixture
def userns_rootfs():
    """A private busybox rootfs owned by host uid/gid 100000 (container root), in a
    directory the unprivileged uid can traverse."""
    from conftest import make_busybox_rootfs

    top = tempfile.mkdtemp(prefix="knarr-userns-")
    os.chmod(top, 0o755)
    path = os.path.join(top, "rootfs")
    make_busybox_rootfs(path)
    for parent, dirs, files in os.walk(path):
        for name in [parent, *(os.path.join(parent, n) for n in dirs + files)]:
            os.lchown(name, 100000, 100000)
    yield path
    shutil.rmtree(top)


def test_user_namespace_maps_container_root_to_an_unprivileged_host_uid(runtime, tmp_path,
                                                                        userns_rootfs):
    from conftest import Bundle

    bundle = Bundle(str(tmp_path / "userns-bundle"), userns_rootfs)
    linux = bundle.config["linux"]
    linux["namespaces"].append({"type": "user"})
    linux["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    linux["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    bundle.args("sleep", "1000").write()
    cid = runtime.new_id()
    runtime("run", "-d", "--bundle", bundle.path, cid, check=True)
    pid = state_of(runtime, cid)["pid"]
    with open(f"/proc/{pid}/status") as f:
        status = dict(line.rstrip("\n").split(":\t", 1) for line in f)
    assert status["Uid"].split() == ["100000"] * 4
    assert status["Gid"].split() == ["100000"] * 4
    inside = runtime("exec", cid, "sh", "-c", "id -u; id -g; cat /proc/self/uid_map")
    assert inside.returncode == 0, inside.stderr
    uid, gid, uid_map = inside.stdout.decode().splitlines()
    assert (uid, gid) == ("0", "0")
    assert uid_map.split() == ["0", "100000", "65536"]
    runtime("delete", "-f", cid, check=True)


# Delete leaves nothing behind.

def _host_mounts() -> set[str]:
    with open("/proc/self/mountinfo") as f:
        return {" ".join(line.split()[3:5]) + " " + line.split(" - ", 1)[1].strip()
                for line in f}


def _processes_with(marker: str) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    found.append(int(name))
        except OSError:
            continue
    return found


@pytest.mark.parametrize("paused", [False, True], ids=["running", "paused"])
def test_delete_force_leaves_no_mount_cgroup_or_process(runtime, bundle, tmp_path, paused):
    out = tmp_path / "out"
    out.mkdir()
    marker = str(int(time.time() * 1e6) % 10**9 + 100000)
    bundle.config["mounts"].append(bind(str(out), "/tmp"))
    bundle.args("sh", "-c", f"sleep {marker} & sleep {marker}").write()
    cid = runtime.new_id()
    before = _host_mounts()
    runtime("run", "-d", "--bundle", bundle.path, cid, check=True)
    pid = state_of(runtime, cid)["pid"]
    wait_for(lambda: len(_processes_with(marker)) == 2, 5, "both sleeps")
    dirs = cgroup_dirs(cid)
    assert dirs and all(os.path.isdir(d) for d in dirs), dirs
    with open(f"/proc/{pid}/mountinfo") as f:
        assert " /tmp " in f.read()  # the container has mounts of its own ...
    if paused:
        runtime("pause", cid, check=True)
        assert state_of(runtime, cid)["status"] == "paused"

    runtime("delete", "-f", cid, check=True)
    # ... and none of them, nor any made by the runtime, is left in the host's table.
    added = _host_mounts() - before
    ours = (str(tmp_path), os.path.realpath(os.path.join(bundle.path, "rootfs")), cid)
    assert not [m for m in added if any(part in m for part in ours)], added
    assert not [d for d in dirs if os.path.exists(d)]
    assert not pid_alive(pid)
    assert _processes_with(marker) == []
    assert not os.path.exists(os.path.join(runtime.root, cid))
    assert runtime("state", cid).returncode == 1


# Terminals.

def test_terminal_through_the_console_socket(runtime, bundle, tmp_path):
    bundle.config["process"]["terminal"] = True
    bundle.config["process"]["consoleSize"] = {"height": 31, "width": 97}
    bundle.args("sh", "-c", "tty; stty size; echo done").write()
    server = ConsoleServer(str(tmp_path / "console.sock"))
    cid = runtime.new_id()
    try:
        runtime("create", "--bundle", bundle.path, "--console-socket", server.path, cid,
                check=True)
        server.wait()
        runtime("start", cid, check=True)
        output = server.read_all()
    finally:
        server.close()
    lines = output.split()
    assert lines[0] in ("/dev/pts/0", "/dev/console"), output
    assert lines[1:] == ["31", "97", "done"], output
    wait_status(runtime, cid, "stopped")
    runtime("delete", cid, check=True)


# Hooks.

def _hook(path: str) -> dict:
    return {"path": "/bin/sh", "args": ["sh", "-c", f"cat > {path}"]}


def test_hooks_receive_the_state_on_stdin(runtime, bundle, tmp_path):
    out = tmp_path / "hooks"
    out.mkdir()
    phases = ("prestart", "createRuntime", "createContainer", "poststart", "poststop")
    hooks = {phase: [_hook(str(out / f"{phase}.json"))] for phase in phases}
    # startContainer runs inside the container: its path and output are the container's.
    hooks["startContainer"] = [{"path": "/bin/sh",
                                "args": ["sh", "-c", "cat > /tmp/startContainer.json"]}]
    bundle.config["hooks"] = hooks
    bundle.config["mounts"].append(bind(str(out), "/tmp"))
    bundle.config["annotations"] = {"org.example.hook": "yes"}
    bundle.args("sleep", "1000").write()
    cid = runtime.new_id()
    runtime("create", "--bundle", bundle.path, cid, check=True)
    pid = state_of(runtime, cid)["pid"]
    assert sorted(os.listdir(out)) == ["createContainer.json", "createRuntime.json",
                                       "prestart.json"]
    runtime("start", cid, check=True)
    assert (out / "poststart.json").exists()  # run before start returns
    runtime("delete", "-f", cid, check=True)

    seen = {p.stem: json.loads(p.read_text()) for p in out.iterdir()}
    assert sorted(seen) == sorted(hooks)
    want_status = {"prestart": "creating", "createRuntime": "creating",
                   "createContainer": "creating", "startContainer": "created",
                   "poststart": "running", "poststop": "stopped"}
    for phase, doc in seen.items():
        assert doc["id"] == cid, phase
        assert doc["bundle"] == bundle.path, phase
        assert doc["ociVersion"] == runtime_spec.SPEC_VERSION, phase
        assert doc["annotations"] == {"org.example.hook": "yes"}, phase
        assert doc["status"] == want_status[phase], (phase, doc["status"])
        if phase != "poststop":
            assert doc["pid"] == pid, phase


# exec.

def test_exec_with_a_process_file_detached_and_with_a_tty(runtime, bundle, tmp_path):
    bundle.config["hostname"] = "exec-box"
    bundle.args("sleep", "1000").write()
    cid = runtime.new_id()
    runtime("run", "-d", "--bundle", bundle.path, cid, check=True)

    # --process: a non-root user whose ambient capabilities survive exec.
    bounding = ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW"]
    kept = ["CAP_NET_BIND_SERVICE"]
    process = {"terminal": False, "user": {"uid": 1000, "gid": 1000},
               "args": ["sh", "-c", "id -u; hostname; pwd; echo $GREETING; "
                                    "grep ^Cap /proc/self/status"],
               "env": ["PATH=/bin", "GREETING=hello"], "cwd": "/etc",
               "capabilities": {"bounding": bounding, "effective": kept, "permitted": kept,
                                "inheritable": kept, "ambient": kept}}
    (tmp_path / "process.json").write_text(json.dumps(process))
    result = runtime("exec", "--process", str(tmp_path / "process.json"), cid)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    assert lines[:4] == ["1000", "exec-box", "/etc", "hello"]
    caps = dict(line.split(":\t") for line in lines[4:])
    assert int(caps["CapBnd"], 16) == cap_mask(bounding)
    for key in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
        assert int(caps[key], 16) == cap_mask(kept), key

    # -d with --pid-file: returns at once; the pid is the process, inside the container.
    pid_file = tmp_path / "exec.pid"
    started = time.monotonic()
    runtime("exec", "-d", "--pid-file", str(pid_file), cid, "sleep", "777", check=True)
    assert time.monotonic() - started < 10
    exec_pid = int(pid_file.read_text())
    with open(f"/proc/{exec_pid}/cmdline", "rb") as f:
        assert f.read() == b"sleep\x00777\x00"
    assert exec_pid in json.loads(runtime("ps", "--format", "json", cid, check=True).stdout)

    # --tty with a console socket; nobody sized this pty, so only its name is checked.
    output, result = _exec_on_a_tty(runtime, tmp_path / "tty1.sock", "--tty", cid, "sh", "-c",
                                    "tty; test -t 0 && test -t 1 && echo stdio-on-tty; exit 4")
    assert result.returncode == 4, result.stderr
    assert re.fullmatch(r"/dev/pts/\d+\nstdio-on-tty\n", output), output
    # A process file with a terminal and its size.
    process.update(terminal=True, consoleSize={"height": 25, "width": 81},
                   args=["sh", "-c", "stty size"])
    (tmp_path / "process.json").write_text(json.dumps(process))
    output, result = _exec_on_a_tty(runtime, tmp_path / "tty2.sock", "--process",
                                    str(tmp_path / "process.json"), cid)
    assert (result.returncode, output) == (0, "25 81\n"), result.stderr
    runtime("delete", "-f", cid, check=True)
    assert not pid_alive(exec_pid)


def _exec_on_a_tty(runtime, sock, *argv):
    server = ConsoleServer(str(sock))
    try:
        result = runtime("exec", "--console-socket", server.path, *argv)
        return server.read_all(), result
    finally:
        server.close()


# kill.

TRAPS = r"""
trap 'echo usr1 >> /tmp/log' USR1
trap 'echo usr2 >> /tmp/log' USR2
trap 'echo term >> /tmp/log; exit 0' TERM
echo ready >> /tmp/log
while :; do sleep 1000 & wait $!; done
"""


def test_kill_by_name_and_by_number(runtime, bundle, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    log = out / "log"
    bundle.config["mounts"].append(bind(str(out), "/tmp"))
    bundle.args("sh", "-c", TRAPS).write()
    cid = runtime.new_id()
    runtime("run", "-d", "--bundle", bundle.path, cid, check=True)
    wait_for(lambda: log.exists() and log.read_text() == "ready\n", 5, "the traps")
    expected = ["ready"]
    for sig, name in (("USR1", "usr1"), ("SIGUSR2", "usr2"), (str(int(signal.SIGUSR1)), "usr1"),
                      ("sigusr2", "usr2"), ("TERM", "term")):
        runtime("kill", cid, sig, check=True)
        expected.append(name)
        wait_for(lambda: log.read_text().split() == expected, 5, f"the trap of {sig}")
    wait_status(runtime, cid, "stopped")
    bad = runtime("kill", cid, "NOSUCHSIG")
    assert bad.returncode == 1 and b"invalid signal" in bad.stderr
    runtime("delete", cid, check=True)


def test_kill_without_a_signal_sends_sigterm_and_9_kills(runtime, bundle):
    bundle.args("sleep", "1000").write()
    cid = runtime.new_id()
    runtime("run", "-d", "--bundle", bundle.path, cid, check=True)
    runtime("kill", cid, check=True)  # sleep as pid 1 has no handler: SIGTERM is ignored
    time.sleep(0.2)
    assert state_of(runtime, cid)["status"] == "running"
    runtime("kill", cid, "9", check=True)
    wait_status(runtime, cid, "stopped")
    runtime("delete", cid, check=True)


# list, ps, --pid-file, spec.

def test_list_ps_and_pid_file(runtime, bundle, tmp_path):
    bundle.args("sh", "-c", "sleep 1000 & sleep 1001").write()
    cid = runtime.new_id()
    pid_file = tmp_path / "init.pid"
    runtime("create", "--bundle", bundle.path, "--pid-file", str(pid_file), cid, check=True)
    pid = state_of(runtime, cid)["pid"]
    assert pid_file.read_text() == str(pid)

    rows = json.loads(runtime("list", "--format", "json", check=True).stdout)
    assert len(rows) == 1
    row = rows[0]
    assert (row["id"], row["pid"], row["status"], row["bundle"]) == (
        cid, pid, "created", bundle.path)
    assert row["owner"] == "root" and row["created"].endswith("Z")
    runtime("start", cid, check=True)
    # busybox sh -c execs its last command: two sleeps, the second one pid 1.
    wait_for(lambda: len(json.loads(runtime("ps", "--format", "json", cid,
                                            check=True).stdout)) == 2, 5, "two processes")
    table = runtime("list", check=True).stdout.decode().splitlines()
    assert table[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    assert table[1].split()[:4] == [cid, str(pid), "running", bundle.path]
    assert runtime("list", "-q", check=True).stdout.decode().split() == [cid]

    pids = json.loads(runtime("ps", "--format", "json", cid, check=True).stdout)
    assert pid in pids
    ps = runtime("ps", cid, check=True).stdout.decode().splitlines()
    assert "PID" in ps[0].split()
    assert len(ps) == 3 and sum("sleep 100" in line for line in ps) == 2, ps
    runtime("delete", "-f", cid, check=True)
    assert json.loads(runtime("list", "--format", "json", check=True).stdout) == []


def test_spec_writes_a_valid_config_that_runs(runtime, tmp_path, busybox_rootfs):
    path = tmp_path / "spec-bundle"
    path.mkdir()
    runtime("spec", "--bundle", str(path), check=True)
    config = json.loads((path / "config.json").read_text())
    assert runtime_spec.validate_config(config) is config
    assert config["ociVersion"] == runtime_spec.SPEC_VERSION
    assert config["root"] == {"path": "rootfs", "readonly": True}
    assert config["process"]["args"] and config["process"]["cwd"] == "/"
    assert {ns["type"] for ns in config["linux"]["namespaces"]} >= {"pid", "mount"}
    again = runtime("spec", "--bundle", str(path))
    assert again.returncode == 1 and b"exists" in again.stderr
    # As written, with only the terminal turned off and a command given, it runs.
    config["process"]["terminal"] = False
    config["process"]["args"] = ["sh", "-c", "echo from-spec"]
    (path / "config.json").write_text(json.dumps(config))
    os.symlink(busybox_rootfs, path / "rootfs")
    result = runtime("run", "--bundle", str(path), runtime.new_id())
    assert (result.returncode, result.stdout) == (0, b"from-spec\n"), result.stderr
