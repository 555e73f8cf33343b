"""With no daemon on the default socket, knarr starts knarrd (found beside itself) and says so."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FAKE_KNARRD = textwrap.dedent("""\
    #!{python} -IS
    # A stand-in for knarrd: serves /_ping and /version on --host, records its argv.
    import os, socket, sys
    host = sys.argv[sys.argv.index("--host") + 1]
    with open(os.path.join(os.path.dirname(sys.argv[0]), "knarrd.argv"), "w") as f:
        f.write(" ".join(sys.argv[1:]) + " pid=%d" % os.getpid())
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(host[len("unix://"):])
    srv.listen(4)
    while True:
        conn, _ = srv.accept()
        data = b""
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
            while b"\\r\\n\\r\\n" in data:
                head, _, data = data.partition(b"\\r\\n\\r\\n")
                path = head.split()[1]
                body = b"OK" if path == b"/_ping" else b'{{"Version":"fake-knarrd"}}'
                conn.sendall(b"HTTP/1.1 200 OK\\r\\nApi-Version: 1.43\\r\\nContent-Type: "
                             b"application/json\\r\\nContent-Length: %d\\r\\n\\r\\n" % len(body)
                             + body)
        conn.close()
""")

LAUNCHER = textwrap.dedent("""\
    #!{python} -IS
    import sys
    sys.path.insert(0, {repo!r})
    from knarr.cli.main import entry
    entry()
""")


def _script(path, text: str) -> str:
    path.write_text(text.format(python=sys.executable, repo=REPO))
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def install(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    knarr = _script(bindir / "knarr", LAUNCHER)
    _script(bindir / "knarrd", FAKE_KNARRD)
    yield bindir, knarr
    argv = bindir / "knarrd.argv"
    if argv.exists():
        pid = int(argv.read_text().rsplit("pid=", 1)[1])
        os.kill(pid, signal.SIGKILL)


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env.update(extra)
    return env


def test_default_socket_without_a_daemon_starts_knarrd(install, tmp_path):
    bindir, knarr = install
    host = f"unix://{tmp_path}/run/knarr.sock"
    os.makedirs(tmp_path / "run")
    out = subprocess.run([knarr, "version", "--format", "{{.Server.Version}}"],
                         capture_output=True, timeout=30, env=_env(KNARR_DEFAULT_HOST=host))
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"fake-knarrd\n"
    assert out.stderr == (f"knarr: no daemon at {host}; starting {bindir}/knarrd in the "
                          "background\n").encode()
    assert (bindir / "knarrd.argv").read_text().startswith(f"--host {host} ")
    # the second time the daemon is there: nothing said, nothing started
    again = subprocess.run([knarr, "version", "--format", "{{.Server.Version}}"],
                           capture_output=True, timeout=30, env=_env(KNARR_DEFAULT_HOST=host))
    assert (again.returncode, again.stderr) == (0, b"")


@pytest.mark.parametrize("how", ["flag", "env"])
def test_an_explicit_host_never_starts_a_daemon(install, tmp_path, how):
    bindir, knarr = install
    host = f"unix://{tmp_path}/none.sock"
    argv = [knarr, "-H", host, "ps"] if how == "flag" else [knarr, "ps"]
    env = _env(DOCKER_HOST=host) if how == "env" else _env()
    env["KNARR_DEFAULT_HOST"] = f"unix://{tmp_path}/default.sock"
    began = time.monotonic()
    out = subprocess.run(argv, capture_output=True, timeout=30, env=env)
    assert out.returncode == 1 and time.monotonic() - began < 5
    assert out.stderr == (f"Cannot connect to the knarr daemon at {host}. Is the knarr daemon "
                          "running?\n").encode()
    assert not (bindir / "knarrd.argv").exists()
