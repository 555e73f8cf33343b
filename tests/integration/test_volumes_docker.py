"""The docker CLI (each one installed: Debian's 20.10, a newer one if present) and
docker-py driving knarrd's volumes, -v and cp."""

import os
import subprocess

import docker
import pytest
from test_api_support import knarrd_fixture  # noqa: F401

pytestmark = pytest.mark.privileged
# Debian's docker.io (the Makefile installs it) and, where there is one, a newer CLI
CLIS = [p for p in ("/usr/bin/docker", "/usr/local/bin/docker") if os.path.exists(p)]


def _docker(cli: str, knarrd, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, DOCKER_HOST=f"unix://{knarrd.sock}",
               DOCKER_CONFIG=os.path.join(knarrd.base, "docker-config"))
    return subprocess.run([cli, *args], capture_output=True, env=env, timeout=60)


@pytest.mark.parametrize("cli", CLIS)
def test_docker_cli_volumes_run_v_and_cp(knarrd, cli, tmp_path):
    def ok(*args: str) -> str:
        done = _docker(cli, knarrd, *args)
        assert done.returncode == 0, (args, done.stderr)
        return done.stdout.decode()

    assert ok("volume", "create", "--label", "k=v", "data") == "data\n"
    assert "local     data" in ok("volume", "ls")
    assert ok("volume", "ls", "-q", "--filter", "label=k=v") == "data\n"
    assert ok("volume", "inspect", "-f", "{{.Name}} {{.Driver}} {{.Labels}}", "data") == \
        "data local map[k:v]\n"
    assert ok("run", "--rm", "-v", "data:/d", "busybox", "sh", "-c", "echo one > /d/f") == ""
    assert ok("run", "--rm", "-v", "data:/d:ro", "busybox", "cat", "/d/f") == "one\n"
    ro = _docker(cli, knarrd, "run", "--rm", "-v", "data:/d:ro", "busybox", "touch", "/d/x")
    assert ro.returncode == 1 and b"Read-only file system" in ro.stderr
    cid = ok("run", "-d", "--name", "holder", "-v", "data:/d", "--mount",
             "type=tmpfs,destination=/scratch,tmpfs-size=1m", "busybox", "sleep", "100").strip()
    busy = _docker(cli, knarrd, "volume", "rm", "data")
    assert busy.returncode == 1
    assert f"remove data: volume is in use - [{cid}]" in busy.stderr.decode()
    (tmp_path / "up").mkdir()
    (tmp_path / "up" / "note").write_text("from the host\n")
    os.chmod(tmp_path / "up" / "note", 0o640)
    ok("cp", str(tmp_path / "up"), "holder:/d/")
    ok("cp", str(tmp_path / "up" / "note"), "holder:/scratch/note")
    assert ok("exec", "holder", "cat", "/d/up/note", "/scratch/note") == "from the host\n" * 2
    assert ok("exec", "holder", "stat", "-c", "%a", "/d/up/note") == "640\n"
    ok("cp", "holder:/d/up", str(tmp_path / "down"))
    assert (tmp_path / "down" / "note").read_text() == "from the host\n"
    assert oct(os.stat(tmp_path / "down" / "note").st_mode & 0o777) == "0o640"
    ok("rm", "-f", "holder")
    assert ok("volume", "rm", "data") == "data\n"
    assert ok("volume", "ls", "-q") == ""


def test_docker_py_volumes(knarrd):
    client = docker.DockerClient(base_url=f"unix://{knarrd.sock}", version="1.41")
    try:
        volume = client.volumes.create("pyvol", labels={"made": "by-py"})
        assert volume.name == "pyvol" and volume.attrs["Labels"] == {"made": "by-py"}
        assert [v.name for v in client.volumes.list(filters={"label": "made=by-py"})] == \
            ["pyvol"]
        assert client.volumes.get("pyvol").attrs["Mountpoint"].endswith("/pyvol/_data")
        out = client.containers.run("busybox", ["sh", "-c", "echo py > /v/f; cat /v/f"],
                                    volumes={"pyvol": {"bind": "/v", "mode": "rw"}},
                                    remove=True)
        assert out == b"py\n"
        with pytest.raises(docker.errors.NotFound):
            client.volumes.get("nope")
        client.volumes.get("pyvol").remove()
        assert client.volumes.list() == []
        client.volumes.create("unused")
        assert client.volumes.prune()["VolumesDeleted"] == ["unused"]
    finally:
        client.close()
