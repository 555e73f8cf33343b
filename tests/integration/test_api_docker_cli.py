"""The real docker CLI in front of knarrd: the Engine API is the contract."""

import os
import shutil
import subprocess

import pytest
from test_api_support import knarrd_fixture  # noqa: F401

pytestmark = [pytest.mark.privileged,
              pytest.mark.skipif(shutil.which("docker") is None, reason="no docker CLI")]


def _docker(knarrd, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, DOCKER_HOST=f"unix://{knarrd.sock}",
               DOCKER_CONFIG=os.path.join(knarrd.base, "docker-config"))
    return subprocess.run(["docker", *args], input=input, capture_output=True, env=env,
                          timeout=60)


def test_docker_run_ps_exec_stats_rm(knarrd):
    hello = _docker(knarrd, "run", "--rm", "hello-world")
    assert hello.returncode == 0 and b"Hello from knarr!" in hello.stdout
    assert _docker(knarrd, "ps", "-aq").stdout == b""
    run = _docker(knarrd, "run", "-d", "--name", "box", "-m", "64m", "busybox", "sleep", "1000")
    cid = run.stdout.strip().decode()
    assert run.returncode == 0 and len(cid) == 64
    ps = _docker(knarrd, "ps", "--format", "{{.Names}} {{.Status}}").stdout.decode()
    assert ps.startswith("box Up")
    assert _docker(knarrd, "exec", "box", "hostname").stdout == cid[:12].encode() + b"\n"
    stats = _docker(knarrd, "stats", "--no-stream", "--format", "{{.MemUsage}}").stdout
    assert stats.strip().endswith(b"/ 64MiB")
    assert _docker(knarrd, "run", "--rm", "-i", "busybox", "cat", input=b"piped\n").stdout == \
        b"piped\n"
    code = _docker(knarrd, "run", "--rm", "busybox", "sh", "-c", "exit 7")
    assert code.returncode == 7
    missing = _docker(knarrd, "run", "--rm", "busybox", "no-such-program")
    assert missing.returncode == 127 and b"executable file not found" in missing.stderr
    taken = _docker(knarrd, "run", "--name", "box", "busybox", "true")
    assert taken.returncode == 125 and b'The container name "/box" is already in use' in \
        taken.stderr
    assert _docker(knarrd, "rm", "-f", "box").returncode == 0
    assert _docker(knarrd, "ps", "-aq").stdout == b""
