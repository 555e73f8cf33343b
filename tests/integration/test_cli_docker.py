"""The knarr CLI against a real dockerd: Docker's own daemon is the reference server.

The module starts a dockerd of its own (own socket, data root, exec root,
pidfile; no bridge, no iptables) and stops it at the end. Images come from
knarr's built-in busybox and hello-world, loaded through `knarr load`.
Skipped, with the reason, when dockerd (Debian package docker.io) or
busybox-static is missing or we are not root.

KNARR_CLI_SERVER=knarrd runs the same tests against knarr's own daemon instead
(private --root, --exec-root and socket; no TLS listener).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

KNARR = os.path.join(os.path.dirname(sys.executable), "knarr")
SERVER = os.environ.get("KNARR_CLI_SERVER", "dockerd")
DOCKERD = os.path.join(os.path.dirname(sys.executable), "knarrd") if SERVER == "knarrd" \
    else shutil.which("dockerd")

pytestmark = [
    pytest.mark.privileged,
    pytest.mark.skipif(DOCKERD is None, reason="dockerd is not installed (Debian package "
                                               "docker.io)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="dockerd needs root"),
    pytest.mark.skipif(not os.path.exists("/bin/busybox"),
                       reason="needs busybox-static (/bin/busybox)"),
]


def hugetlb_off_cgroup2() -> None:
    """On a hybrid cgroup host runc wants hugetlb on a v1 hierarchy (see bench/setup.sh)."""
    base = "/sys/fs/cgroup"
    if os.path.exists(f"{base}/cgroup.controllers"):  # pure cgroup2 host
        return
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[fields.index("-") + 1] == "cgroup" and "hugetlb" in \
                    fields[-1].split(","):
                return
    os.makedirs(f"{base}/hugetlb", exist_ok=True)
    subprocess.run(["mount", "-t", "cgroup", "-o", "hugetlb", "cgroup", f"{base}/hugetlb"],
                   check=False, capture_output=True)


class Dockerd:
    """A private dockerd and the knarr CLI pointed at it."""

    def __init__(self, state) -> None:
        self.state = state
        self.host = f"unix://{state}/docker.sock"
        self.log = open(state / "dockerd.log", "wb")
        self.certs = make_certs(state / "certs") if shutil.which("openssl") and \
            SERVER == "dockerd" else None
        tls = []
        if self.certs is not None:
            self.tcp = f"tcp://127.0.0.1:{_free_port()}"
            tls = ["--host", self.tcp, "--tlsverify", "--tlscacert", f"{self.certs}/ca.pem",
                   "--tlscert", f"{self.certs}/server-cert.pem", "--tlskey",
                   f"{self.certs}/server-key.pem"]
        if SERVER == "knarrd":
            argv = [DOCKERD, "--host", self.host, "--root", str(state / "data"),
                    "--exec-root", str(state / "exec")]
        else:
            argv = [DOCKERD, "--host", self.host, *tls, "--data-root", str(state / "data"),
                    "--exec-root", str(state / "exec"), "--pidfile", str(state / "dockerd.pid"),
                    "--bridge=none", "--iptables=false"]
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while self.knarr("version").returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"dockerd did not start: {(state / 'dockerd.log').read_text()}")
            time.sleep(0.2)

    def knarr(self, *args: str, input: bytes | None = None, timeout: float = 60,
              env: dict | None = None, host: bool = True) -> subprocess.CompletedProcess:
        """Run the knarr CLI with -H pointing at this dockerd."""
        argv = [KNARR, "-H", self.host, *args] if host else [KNARR, *args]
        return subprocess.run(argv, input=input, capture_output=True, timeout=timeout,
                              env=env if env is not None else _env())

    def ok(self, *args: str, **kwargs) -> str:
        """Run knarr, expect success, return stdout as text."""
        result = self.knarr(*args, **kwargs)
        assert result.returncode == 0, (args, result.returncode, result.stderr.decode())
        return result.stdout.decode()

    def stop(self) -> None:
        """Remove every container, stop dockerd, delete its data."""
        if self.proc.poll() is None:
            ids = self.knarr("ps", "-aq").stdout.decode().split()
            if ids:
                self.knarr("rm", "-f", *ids)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        # A dockerd that had to be killed leaves its overlay and netns mounts behind.
        from peers import unmount_under

        unmount_under(str(self.state))
        shutil.rmtree(self.state / "data", ignore_errors=True)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_certs(path) -> str:
    """A CA, a server certificate for 127.0.0.1 and a client certificate (openssl, EC keys)."""
    path.mkdir()

    def ssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=path, check=True, capture_output=True)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ssl("req", "-x509", *ec, "-keyout", "ca-key.pem", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=knarr-test-ca")
    for name, usage, san in (("server", "serverAuth", "IP:127.0.0.1,DNS:localhost"),
                             ("client", "clientAuth", "DNS:client")):
        (path / f"{name}.ext").write_text(f"subjectAltName={san}\nextendedKeyUsage={usage}\n")
        ssl("req", *ec, "-keyout", f"{name}-key.pem", "-out", f"{name}.csr", "-subj",
            f"/CN={name}")
        ssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem",
            "-CAcreateserial", "-out", f"{name}-cert.pem", "-days", "2", "-extfile",
            f"{name}.ext")
    (path / "cert.pem").write_bytes((path / "client-cert.pem").read_bytes())
    (path / "key.pem").write_bytes((path / "client-key.pem").read_bytes())
    return str(path)


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    return env


def image_tarball(path) -> str:
    """knarr's built-in busybox and hello-world as a docker-save tarball."""
    from knarr.images import ImageStore, busybox, hello_world, save

    store = ImageStore(str(path / "store"))
    try:
        busybox(store)
        hello_world(store)
        tar = str(path / "images.tar")
        with open(tar, "wb") as f:
            save(store, ["busybox:latest", "hello-world:latest"], f, format="docker")
    finally:
        store.close()
    return tar


def start(tmp_path_factory) -> Dockerd:
    """A running private dockerd with busybox and hello-world loaded by `knarr load`."""
    hugetlb_off_cgroup2()
    daemon = Dockerd(tmp_path_factory.mktemp("dockerd"))
    tar = image_tarball(tmp_path_factory.mktemp("images"))
    out = daemon.ok("load", "-i", tar)
    assert "Loaded image: busybox:latest" in out and "Loaded image: hello-world:latest" in out
    return daemon


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    daemon = start(tmp_path_factory)
    yield daemon
    daemon.stop()


def _names(d) -> list[str]:
    return d.ok("ps", "-a", "--format", "{{.Names}}").split()


# -- run -------------------------------------------------------------------------------------


def test_run_rm_prints_output_and_leaves_nothing(d):
    before = _names(d)
    out = d.knarr("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2")
    assert (out.returncode, out.stdout, out.stderr) == (0, b"out\n", b"err\n")
    assert _names(d) == before


def test_run_hello_world(d):
    from knarr.images import GREETING

    out = d.knarr("run", "--rm", "hello-world")
    assert (out.returncode, out.stdout) == (0, GREETING)


def test_run_exit_code_propagates(d):
    assert d.knarr("run", "--rm", "busybox", "sh", "-c", "exit 3").returncode == 3
    assert d.knarr("run", "--rm", "busybox", "false").returncode == 1


def test_run_interactive_copies_piped_stdin_and_ends_at_eof(d):
    data = b"".join(b"line %d\n" % i for i in range(2000))
    out = d.knarr("run", "-i", "--rm", "busybox", "cat", input=data, timeout=30)
    assert out.returncode == 0 and out.stdout == data


def test_run_detached_prints_the_id_and_ps_lists_it_up(d):
    out = d.ok("run", "-d", "--name", "det", "busybox", "sleep", "1000")
    cid = out.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid)
    table = d.ok("ps").splitlines()
    assert table[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS",
                                "PORTS", "NAMES"]
    row = next(line for line in table if line.endswith(" det"))
    assert row.startswith(cid[:12]) and '"sleep 1000"' in row and " Up " in row
    assert cid[:12] in d.ok("ps", "-q").split()
    assert d.ok("ps", "--format", "{{.ID}} {{.Names}} {{.State}}").splitlines().count(
        f"{cid[:12]} det running") == 1
    assert cid in d.ok("ps", "--no-trunc", "-q")
    d.ok("rm", "-f", "det")


def test_run_not_found_and_not_executable_exit_codes(d):
    missing = d.knarr("run", "--rm", "busybox", "no-such-program")
    assert missing.returncode == 127
    assert missing.stderr.startswith(b"knarr: Error response from daemon: ")
    assert d.knarr("run", "--rm", "busybox", "/etc/passwd").returncode == 126


def test_run_flags_reach_the_container(d):
    out = d.ok("run", "--rm", "-e", "A=1", "-w", "/tmp", "-u", "65534", "-h", "boat",
               "--label", "k=v", "busybox", "sh", "-c", 'echo $A $(pwd) $(id -u) $(hostname)')
    assert out.split() == ["1", "/tmp", "65534", "boat"]


# -- lifecycle ---------------------------------------------------------------------------------


@pytest.fixture
def sleeper(d):
    name = f"s{time.monotonic_ns()}"
    d.ok("run", "-d", "--name", name, "-m", "64m", "busybox", "sh", "-c",
         "echo one; echo two >&2; exec sleep 1000")
    yield name
    d.knarr("rm", "-f", name)


def test_logs(d, sleeper):
    deadline = time.monotonic() + 10
    while d.knarr("logs", sleeper).stdout != b"one\n" and time.monotonic() < deadline:
        time.sleep(0.1)
    out = d.knarr("logs", sleeper)
    assert (out.stdout, out.stderr) == (b"one\n", b"two\n")
    assert d.knarr("logs", "--tail", "0", sleeper).stdout == b""
    stamped = d.ok("logs", "-t", sleeper)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z one\n", stamped)


def test_logs_of_a_container_with_a_tty_are_raw(d):
    name = f"t{time.monotonic_ns()}"
    d.ok("run", "-t", "--name", name, "busybox", "sh", "-c", "echo out; echo err >&2")
    try:
        assert d.knarr("logs", name).stdout == b"out\r\nerr\r\n"
    finally:
        d.knarr("rm", name)


def test_exec(d, sleeper):
    assert d.ok("exec", sleeper, "sh", "-c", "echo $((6*7))") == "42\n"
    assert d.knarr("exec", sleeper, "sh", "-c", "exit 5").returncode == 5
    assert d.ok("exec", "-i", sleeper, "cat", input=b"via stdin\n") == "via stdin\n"
    assert d.ok("exec", "-e", "X=y", "-w", "/etc", "-u", "nobody", sleeper, "sh", "-c",
                "echo $X $(pwd) $(id -un)").split() == ["y", "/etc", "nobody"]
    d.ok("exec", "-d", sleeper, "touch", "/tmp/detached")
    deadline = time.monotonic() + 10
    while d.knarr("exec", sleeper, "test", "-e", "/tmp/detached").returncode != 0:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert d.knarr("exec", sleeper, "no-such-program").returncode in (126, 127)


def test_stop_within_its_timeout_then_rm(d, sleeper):
    began = time.monotonic()
    assert d.ok("stop", "-t", "1", sleeper) == f"{sleeper}\n"
    assert time.monotonic() - began < 10
    assert d.ok("inspect", "--format", "{{.State.Status}}", sleeper) == "exited\n"
    assert d.ok("rm", sleeper) == f"{sleeper}\n"
    assert sleeper not in _names(d)


def test_pause_unpause_kill_restart_wait_rename_top(d, sleeper):
    d.ok("pause", sleeper)
    assert d.ok("inspect", "-f", "{{.State.Status}}", sleeper) == "paused\n"
    d.ok("unpause", sleeper)
    top = d.ok("top", sleeper).splitlines()
    assert "PID" in top[0] and any("sleep 1000" in line for line in top[1:])
    d.ok("restart", "-t", "0", sleeper)
    assert d.ok("inspect", "-f", "{{.State.Running}}", sleeper) == "true\n"
    d.ok("kill", "-s", "KILL", sleeper)  # pid 1 ignores TERM without a handler
    assert d.ok("wait", sleeper) == "137\n"
    d.ok("rename", sleeper, sleeper + "-new")
    assert sleeper + "-new" in _names(d)
    d.ok("rename", sleeper + "-new", sleeper)


def test_inspect(d, sleeper):
    (info,) = json.loads(d.ok("inspect", sleeper))
    assert info["Name"] == f"/{sleeper}" and info["HostConfig"]["Memory"] == 64 << 20
    (image,) = json.loads(d.ok("image", "inspect", "busybox"))
    assert image["RepoTags"] == ["busybox:latest"]
    assert d.ok("inspect", "-f", "{{.Config.Image}} {{json .Config.Cmd}}", sleeper) == \
        'busybox ["sh","-c","echo one; echo two >&2; exec sleep 1000"]\n'


def test_create_then_start_attached(d):
    name = f"cr{time.monotonic_ns()}"
    cid = d.ok("create", "--name", name, "busybox", "sh", "-c", "echo created; exit 4").strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid)
    out = d.knarr("start", "-a", name)
    assert (out.returncode, out.stdout) == (4, b"created\n")
    d.ok("rm", name)


def test_stats_no_stream_columns_and_memory_limit(d, sleeper):
    cid = d.ok("inspect", "-f", "{{.Id}}", sleeper).strip()
    _settle(cid)  # a just-started container's memory still moves (sh, then exec sleep)
    before = _cgroup_memory(cid)
    out = d.ok("stats", "--no-stream", sleeper).splitlines()
    after = _cgroup_memory(cid)
    assert re.split(r"\s{2,}", out[0]) == ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT",
                                           "MEM %", "NET I/O", "BLOCK I/O", "PIDS"]
    row = next(line for line in out[1:] if line.startswith(cid[:12]))
    cells = re.split(r"\s{2,}", row)
    assert cells[1] == sleeper and cells[2].endswith("%")
    usage, limit = cells[3].split(" / ")
    assert limit == "64MiB" and cells[7] == "1"
    if before is not None and after is not None:
        low, high = min(before, after) * 0.9, max(before, after) * 1.1
        assert low <= _bytes(usage) <= high, (usage, before, after)
    formatted = d.ok("stats", "--no-stream", "--format", "{{.Name}}: {{.MemUsage}}", sleeper)
    assert formatted.startswith(f"{sleeper}: ") and formatted.endswith(" / 64MiB\n")


def _settle(cid: str, timeout: float = 10) -> None:
    """Wait until two readings of the container's memory, 0.3 s apart, agree within 2 %."""
    deadline = time.monotonic() + timeout
    last = _cgroup_memory(cid)
    while last is not None and time.monotonic() < deadline:
        time.sleep(0.3)
        now = _cgroup_memory(cid)
        if abs(now - last) <= last * 0.02:
            return
        last = now


def _bytes(text: str) -> float:
    for i, unit in enumerate(("B", "KiB", "MiB", "GiB")):
        if text.endswith(unit) and (unit != "B" or text[-2].isdigit()):
            return float(text[:-len(unit)]) * 1024 ** i
    raise ValueError(text)


def _cgroup_memory(cid: str) -> float | None:
    """The container's memory use without page cache, read from its own cgroup (v1)."""
    base = f"/sys/fs/cgroup/memory/docker/{cid}"
    try:
        usage = int(open(f"{base}/memory.usage_in_bytes").read())
        stat = dict(line.split() for line in open(f"{base}/memory.stat"))
    except OSError:
        return None
    return usage - int(stat.get("total_inactive_file", 0))


# -- images ---------------------------------------------------------------------------------------


def test_images_tag_rmi(d):
    table = d.ok("images").splitlines()
    assert table[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert any(line.split()[:2] == ["busybox", "latest"] for line in table[1:])
    d.ok("tag", "busybox", "knarr-test/box:v1")
    assert any(line.split()[:2] == ["knarr-test/box", "v1"] for line in d.ok("images")
               .splitlines())
    assert d.ok("images", "--format", "{{.Repository}}:{{.Tag}}", "knarr-test/box") == \
        "knarr-test/box:v1\n"
    assert d.ok("rmi", "knarr-test/box:v1") == "Untagged: knarr-test/box:v1\n"
    image_id = d.ok("image", "inspect", "-f", "{{.Id}}", "busybox").strip()
    assert image_id[7:19] in d.ok("images", "-q").split()


def test_save_load_round_trip(d, tmp_path):
    d.ok("tag", "busybox", "knarr-test/saved:v2")
    path = tmp_path / "saved.tar"
    d.ok("save", "-o", str(path), "knarr-test/saved:v2")
    piped = d.knarr("save", "knarr-test/saved:v2")
    assert piped.returncode == 0 and len(piped.stdout) == path.stat().st_size
    d.ok("rmi", "knarr-test/saved:v2")
    assert d.ok("load", "-i", str(path)) == "Loaded image: knarr-test/saved:v2\n"
    assert d.ok("load", input=piped.stdout) == "Loaded image: knarr-test/saved:v2\n"
    d.ok("run", "--rm", "knarr-test/saved:v2", "true")
    d.ok("rmi", "knarr-test/saved:v2")


def test_history(d):
    out = d.ok("history", "busybox").splitlines()
    assert out[0].split() == ["IMAGE", "CREATED", "CREATED", "BY", "SIZE", "COMMENT"]


# -- system ----------------------------------------------------------------------------------------


def test_version_and_info(d):
    out = d.ok("version")
    assert out.startswith("Client:\n Version:") and "\nServer:\n Engine:\n  Version:" in out
    assert re.fullmatch(r"1\.\d+\n", d.ok("version", "--format", "{{.Server.ApiVersion}}"))
    info = d.ok("info")
    assert "Server Version: " in info and "Containers: " in info
    assert d.ok("info", "--format", "{{.OSType}}") == "linux\n"
    assert d.ok("system", "df").splitlines()[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE",
                                                            "RECLAIMABLE"]


def test_events_since_until(d):
    since = str(int(time.time()) - 1)
    d.ok("run", "--rm", "--name", "evt", "busybox", "true")
    until = str(int(time.time()) + 1)
    out = d.ok("events", "--since", since, "--until", until, "--filter", "container=evt")
    actions = [line.split()[2] for line in out.splitlines()]
    assert "create" in actions and "start" in actions and "die" in actions


def test_tcp_with_mutual_tls(d):
    if d.certs is None:
        pytest.skip("openssl is not installed: no certificates for the TLS listener")
    flags = ["-H", d.tcp, "--tlsverify", "--tlscacert", f"{d.certs}/ca.pem", "--tlscert",
             f"{d.certs}/client-cert.pem", "--tlskey", f"{d.certs}/client-key.pem"]
    out = d.knarr(*flags, "run", "--rm", "busybox", "echo", "over tls", host=False)
    assert (out.returncode, out.stdout) == (0, b"over tls\n"), out.stderr
    data = b"".join(b"tls line %d\n" % i for i in range(3000))
    piped = d.knarr(*flags, "run", "-i", "--rm", "busybox", "cat", input=data, host=False,
                    timeout=30)
    assert (piped.returncode, piped.stdout) == (0, data), piped.stderr
    env = dict(_env(), DOCKER_HOST=d.tcp, DOCKER_TLS_VERIFY="1", DOCKER_CERT_PATH=d.certs)
    assert d.knarr("version", "--format", "{{.Server.Os}}", env=env, host=False) \
        .stdout == b"linux\n"
    # without a client certificate the daemon refuses us
    bare = d.knarr("-H", d.tcp, "--tlsverify", "--tlscacert", f"{d.certs}/ca.pem", "ps",
                   host=False, env=dict(_env(), DOCKER_CERT_PATH=str(d.state)))
    assert bare.returncode == 1 and bare.stderr.startswith(b"error during connect: "), bare.stderr


def test_docker_host_is_honoured(d):
    env = dict(_env(), DOCKER_HOST=d.host)
    assert d.knarr("ps", env=env, host=False).returncode == 0


# -- bad input ---------------------------------------------------------------------------------------


def test_unknown_flag(d):
    before = _names(d)
    out = d.knarr("run", "--bogus", "busybox")
    assert out.returncode == 125
    assert out.stderr == b"unknown flag: --bogus\nSee 'knarr run --help'.\n"
    assert _names(d) == before


def test_unknown_container(d):
    stop = d.knarr("stop", "nope")
    assert (stop.returncode, stop.stderr) == (1, b"Error response from daemon: No such "
                                                 b"container: nope\n")
    inspect = d.knarr("container", "inspect", "nope")
    assert (inspect.returncode, inspect.stdout, inspect.stderr) == \
        (1, b"[]\n", b"Error: No such container: nope\n")
    assert d.knarr("inspect", "nope").stderr == b"Error: No such object: nope\n"
    assert d.knarr("logs", "nope").stderr == b"Error: No such container: nope\n"
    assert d.knarr("rm", "nope").stderr == b"Error: No such container: nope\n"


def test_conflicting_name(d, sleeper):
    before = _names(d)
    out = d.knarr("run", "--name", sleeper, "busybox", "true")
    assert out.returncode == 125
    assert out.stderr.startswith(f'knarr: Error response from daemon: Conflict. The container '
                                 f'name "/{sleeper}" is already in use'.encode())
    assert out.stderr.endswith(b"\nSee 'knarr run --help'.\n")
    assert _names(d) == before


def test_bad_memory_value(d):
    before = _names(d)
    out = d.knarr("run", "-m", "lots", "busybox", "true")
    assert out.returncode == 125
    assert out.stderr == (b"invalid argument \"lots\" for \"-m, --memory\" flag: invalid size: "
                          b"'lots'\nSee 'knarr run --help'.\n")
    assert _names(d) == before


def test_no_daemon_at_an_explicit_host_is_an_error_not_a_start(tmp_path):
    out = subprocess.run([KNARR, "-H", f"unix://{tmp_path}/none.sock", "ps"],
                         capture_output=True, timeout=30, env=_env())
    assert out.returncode == 1
    assert out.stderr == (f"Cannot connect to the knarr daemon at unix://{tmp_path}/none.sock."
                          " Is the knarr daemon running?\n").encode()


# -- streams and signals ------------------------------------------------------------------------


def _popen(d, *args: str) -> subprocess.Popen:
    return subprocess.Popen([KNARR, "-H", d.host, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=_env())


def _read_for(proc: subprocess.Popen, seconds: float) -> bytes:
    """What `proc` prints in `seconds`; then it gets SIGINT, as from ctrl-c."""
    import signal

    time.sleep(seconds)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    return out


def test_stats_live_table_is_redrawn(d, sleeper):
    out = _read_for(_popen(d, "stats", sleeper), 3.5).decode()
    frames = [f for f in out.split("\033[2J\033[H") if f]
    assert len(frames) >= 2
    for frame in frames:
        header, row = frame.splitlines()[:2]
        assert header.startswith("CONTAINER ID   NAME") and f" {sleeper} " in row


def test_logs_follow(d):
    name = f"f{time.monotonic_ns()}"
    d.ok("run", "-d", "--name", name, "busybox", "sh", "-c",
         "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done")
    try:
        out = _read_for(_popen(d, "logs", "-f", name), 2.0).decode().splitlines()
        assert len(out) >= 5 and out[:3] == ["tick 0", "tick 1", "tick 2"]
        since = d.ok("logs", "--since", "1s", name).splitlines()
        assert 0 < len(since) < len(d.ok("logs", name).splitlines())
    finally:
        d.knarr("rm", "-f", name)


def test_run_forwards_signals_to_the_container(d):
    import signal

    proc = _popen(d, "run", "--rm", "busybox", "sh", "-c",
                  'trap "echo got INT; exit 9" INT; echo ready; while true; do sleep 0.1; done')
    assert proc.stdout.readline() == b"ready\n"
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert (proc.returncode, out) == (9, b"got INT\n")


def test_attach_without_a_tty_follows_output_and_exit_status(d):
    name = f"a{time.monotonic_ns()}"
    d.ok("run", "-d", "--name", name, "busybox", "sh", "-c",
         "sleep 1; echo from main; echo to err >&2; exit 6")
    out = d.knarr("attach", name, timeout=30)
    assert (out.returncode, out.stdout, out.stderr) == (6, b"from main\n", b"to err\n")
    d.ok("rm", name)


def test_ps_filters_last_and_latest(d):
    first, second = f"p1{time.monotonic_ns()}", f"p2{time.monotonic_ns()}"
    d.ok("run", "--name", first, "--label", "knarr.test=1", "busybox", "true")
    d.ok("run", "--name", second, "--label", "knarr.test=1", "busybox", "true")
    try:
        assert d.ok("ps", "-l", "--format", "{{.Names}}") == f"{second}\n"
        assert d.ok("ps", "-n", "2", "--format", "{{.Names}}").split() == [second, first]
        labelled = d.ok("ps", "-a", "--filter", "label=knarr.test=1", "--filter",
                        "status=exited", "--format", "{{.Names}} {{.State}}").splitlines()
        assert sorted(labelled) == sorted([f"{first} exited", f"{second} exited"])
        assert d.ok("ps", "--filter", f"name={first}").count("\n") == 1  # header only
    finally:
        d.knarr("rm", first, second)


def test_rm_force_removes_a_running_container(d):
    name = f"rf{time.monotonic_ns()}"
    d.ok("run", "-d", "--name", name, "busybox", "sleep", "1000")
    refused = d.knarr("rm", name)
    assert refused.returncode == 1 and refused.stderr.startswith(
        b"Error response from daemon: You cannot remove a running container")
    assert d.ok("rm", "-f", name) == f"{name}\n"
    assert name not in _names(d)


def test_container_prune_removes_only_stopped_matching_containers(d, sleeper):
    name = f"pr{time.monotonic_ns()}"
    cid = d.ok("create", "--name", name, "--label", "knarr.prune=1", "busybox", "true").strip()
    declined = d.knarr("container", "prune", "--filter", "label=knarr.prune=1", input=b"n\n")
    assert declined.stdout == (b"WARNING! This will remove all stopped containers.\nAre you sure "
                               b"you want to continue? [y/N] Total reclaimed space: 0B\n")
    out = d.ok("container", "prune", "-f", "--filter", "label=knarr.prune=1")
    assert out == f"Deleted Containers:\n{cid}\n\nTotal reclaimed space: 0B\n"
    assert sleeper in _names(d) and name not in _names(d)


def test_cp_both_ways(d, sleeper, tmp_path):
    (tmp_path / "dir" / "sub").mkdir(parents=True)
    (tmp_path / "dir" / "sub" / "f").write_text("hello\n")
    (tmp_path / "file").write_text("one\n")
    d.ok("cp", str(tmp_path / "file"), f"{sleeper}:/tmp/")
    d.ok("cp", str(tmp_path / "file"), f"{sleeper}:/tmp/renamed")
    d.ok("cp", str(tmp_path / "dir"), f"{sleeper}:/tmp/dir2")
    assert d.ok("exec", sleeper, "cat", "/tmp/file", "/tmp/renamed", "/tmp/dir2/sub/f") == \
        "one\none\nhello\n"
    d.ok("cp", f"{sleeper}:/tmp/dir2", str(tmp_path / "back"))
    assert (tmp_path / "back" / "sub" / "f").read_text() == "hello\n"
    missing = d.knarr("cp", f"{sleeper}:/nope", str(tmp_path / "x"))
    assert (missing.returncode, missing.stderr) == \
        (1, f"Error: No such container:path: {sleeper}:/nope\n".encode())


def test_update_changes_limits_seen_by_stats(d, sleeper):
    assert d.ok("update", "-m", "96m", "--memory-swap", "192m", "--restart", "on-failure:2",
                sleeper) == f"{sleeper}\n"
    assert d.ok("inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.RestartPolicy.Name}}",
                sleeper) == f"{96 << 20} on-failure\n"
    assert d.ok("stats", "--no-stream", "--format", "{{.MemUsage}}", sleeper).endswith(
        " / 96MiB\n")


# -- registries ---------------------------------------------------------------------------------


@pytest.fixture
def registry(tmp_path):
    """knarr's registry server with one htpasswd user (u / pw), on a free local port."""
    import base64
    import hashlib

    pytest.importorskip("knarr.registry.main")
    digest = base64.b64encode(hashlib.sha1(b"pw").digest()).decode()
    (tmp_path / "htpasswd").write_text(f"u:{{SHA}}{digest}\n")
    addr = f"127.0.0.1:{_free_port()}"
    proc = subprocess.Popen([sys.executable, "-m", "knarr.registry", "serve", "--addr", addr,
                             "--root", str(tmp_path / "root"), "--htpasswd",
                             str(tmp_path / "htpasswd")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    import socket

    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(addr.split(":"), timeout=1).close()
            break
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, "registry did not start"
            time.sleep(0.1)
    yield addr
    proc.terminate()
    proc.wait(timeout=30)


def test_login_push_pull_logout_through_dockerd(d, registry, tmp_path):
    env = dict(_env(), DOCKER_CONFIG=str(tmp_path / "cfg"))
    bad = d.knarr("login", "-u", "u", "--password-stdin", registry, input=b"wrong\n", env=env)
    assert bad.returncode == 1 and bad.stderr.startswith(b"Error response from daemon: ")
    good = d.knarr("login", "-u", "u", "--password-stdin", registry, input=b"pw\n", env=env)
    assert (good.returncode, good.stdout) == (0, b"Login Succeeded\n")
    config = json.loads((tmp_path / "cfg" / "config.json").read_text())
    assert config["auths"][registry] == {"auth": "dTpwdw=="}  # u:pw

    ref = f"{registry}/knarr-test/box:v1"
    d.ok("tag", "busybox", ref, env=env)
    pushed = d.ok("push", ref, env=env).splitlines()
    assert pushed[0] == f"The push refers to repository [{registry}/knarr-test/box]"
    assert re.fullmatch(r"v1: digest: sha256:[0-9a-f]{64} size: \d+", pushed[-1])
    d.ok("rmi", ref, env=env)
    assert d.ok("pull", ref, env=env).splitlines()[-1] == ref
    assert d.ok("run", "--rm", ref, "echo", "pulled", env=env) == "pulled\n"
    d.ok("rmi", ref, env=env)
    assert d.ok("logout", registry, env=env) == f"Removing login credentials for {registry}\n"
    assert json.loads((tmp_path / "cfg" / "config.json").read_text())["auths"] == {}
