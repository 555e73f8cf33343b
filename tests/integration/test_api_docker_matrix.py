"""The docker CLI, Debian's 20.10 and the 28.x on this machine, against knarrd's socket.

Each CLI speaks its own API version (1.41 and 1.50 here); each test runs the
same commands with both and checks what a user sees: ids, tables, streams,
exit statuses, and the terminal (tmux) for `run -it`, `exec -it` and `attach`.
"""

import os
import re
import subprocess
import time

import pytest
from test_api_support import knarrd_fixture, wait_for  # noqa: F401
from test_cli_terminal import TMUX, Tmux

CLIS = {"20.10": "/usr/bin/docker", "28": "/usr/local/bin/docker"}

pytestmark = [pytest.mark.privileged]


@pytest.fixture(params=sorted(CLIS), ids=lambda v: f"docker{v}")
def docker(request, knarrd):
    """Run one docker CLI against the test's knarrd; returns CompletedProcess."""
    binary = CLIS[request.param]
    assert os.access(binary, os.X_OK), f"{binary} missing: Makefile installs docker.io and " \
        "the 28.x CLI"
    env = dict(os.environ, DOCKER_HOST=f"unix://{knarrd.sock}",
               DOCKER_CONFIG=os.path.join(knarrd.base, "docker-config"))
    env.pop("DOCKER_API_VERSION", None)

    def run(*args: str, input: bytes | None = None, timeout: float = 60):
        return subprocess.run([binary, *args], input=input, capture_output=True, env=env,
                              timeout=timeout)

    def ok(*args: str, **kw) -> str:
        out = run(*args, **kw)
        assert out.returncode == 0, f"docker {' '.join(args)}: {out.stderr.decode()}"
        return out.stdout.decode()

    run.ok, run.binary, run.env, run.version = ok, binary, env, request.param
    return run


def test_version_negotiation(docker):
    out = docker.ok("version", "--format", "{{.Client.APIVersion}} {{.Server.APIVersion}} "
                    "{{.Server.MinAPIVersion}}").split()
    assert out == [{"20.10": "1.41", "28": "1.50"}[docker.version], "1.50", "1.24"]


def test_run_d_ps_logs_f_stats_stop_rm(docker, knarrd):
    cid = docker.ok("run", "-d", "--name", "web", "-m", "64m", "busybox", "sh", "-c",
                    "echo one; sleep 1; echo two; exec sleep 1000").strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid)
    ps = docker.ok("ps", "--format", "{{.ID}} {{.Names}} {{.Status}} {{.Image}}")
    assert re.fullmatch(rf"{cid[:12]} web Up .* busybox\n", ps)
    follow = subprocess.Popen([docker.binary, "logs", "-f", "web"], stdout=subprocess.PIPE,
                              env=docker.env)
    try:
        assert follow.stdout.readline() == b"one\n"
        assert follow.stdout.readline() == b"two\n"  # printed a second later: it follows
        stats = docker.ok("stats", "--no-stream")
        header, row = stats.splitlines()
        assert "MEM USAGE / LIMIT" in header
        assert row.startswith(cid[:12]) and re.search(r"B / 64MiB ", row), row
        docker.ok("stop", "-t", "1", "web")
        assert follow.wait(10) == 0  # logs -f ends when the container does
    finally:
        follow.kill()
        follow.wait()
    assert docker.ok("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "web") == \
        "exited 137\n"
    assert docker.ok("rm", "web").strip() == "web"
    assert docker.ok("ps", "-aq") == ""
    missing = docker("rm", "web")
    assert missing.returncode == 1 and b"No such container: web" in missing.stderr


def test_images_tag_save_rmi_load_inspect_events_df(docker, tmp_path):
    docker.ok("run", "--rm", "busybox", "true")  # built-in images are made on first use
    docker.ok("run", "--rm", "hello-world")
    images = docker.ok("images", "--format", "{{.Repository}}:{{.Tag}}").split()
    assert sorted(images) == ["busybox:latest", "hello-world:latest"]
    since = str(int(time.time()) - 1)
    docker.ok("tag", "busybox", "example.test/box:v1")
    image_id = docker.ok("inspect", "-f", "{{.Id}}", "example.test/box:v1").strip()
    assert image_id == docker.ok("inspect", "-f", "{{.Id}}", "busybox").strip()
    tar = str(tmp_path / "box.tar")
    docker.ok("save", "-o", tar, "example.test/box:v1")
    assert "Untagged: example.test/box:v1" in docker.ok("rmi", "example.test/box:v1")
    assert "Loaded image: example.test/box:v1" in docker.ok("load", "-i", tar)
    assert "example.test/box:v1" in docker.ok("images", "--format",
                                              "{{.Repository}}:{{.Tag}}")
    history = docker.ok("history", "--format", "{{.CreatedBy}}", "example.test/box:v1")
    assert history.strip()
    events = docker.ok("events", "--since", since, "--until", str(int(time.time()) + 1),
                       "--filter", "type=image", "--format", "{{.Action}}").split()
    assert events[:2] == ["tag", "save"] and "untag" in events and "load" in events, events
    df = docker.ok("system", "df")
    assert re.search(r"^Images +2 +0 ", df, re.M) and re.search(r"^Containers +0 ", df, re.M)
    two_names = docker("rmi", image_id[7:19])
    assert two_names.returncode == 1 and b"referenced in multiple repositories" in \
        two_names.stderr, two_names.stderr
    assert docker.ok("rmi", "example.test/box:v1") == "Untagged: example.test/box:v1\n"


def _tmux(tmp_path, docker) -> Tmux:
    assert TMUX, "tmux missing: the Makefile installs it"
    env = f"DOCKER_HOST={docker.env['DOCKER_HOST']} DOCKER_CONFIG={docker.env['DOCKER_CONFIG']}"
    return Tmux(tmp_path, f"env {env} {docker.binary}")


def test_run_it_exec_it_attach_in_a_terminal(docker, tmp_path):
    term = _tmux(tmp_path, docker)
    try:
        win = term.start("run", "run -it --name box busybox sh", width=90, height=25)
        term.wait_for(win, lambda s: s.rstrip().endswith("/ #"))
        cid = docker.ok("inspect", "-f", "{{.Id}}", "box").strip()
        term("send-keys", "-t", win, "hostname; stty size", "Enter")
        term.wait_for(win, lambda s: cid[:12] in s and "25 90" in s)

        ex = term.start("exec", "exec -it box sh")
        term.wait_for(ex, lambda s: s.rstrip().endswith("/ #"))
        term("send-keys", "-t", ex, "tty; stty size; exit 5", "Enter")
        assert term.status("exec") == 5
        assert "/dev/pts/" in term.screen(ex) and "25 90" in term.screen(ex)

        term("send-keys", "-t", win, "C-p", "C-q")
        assert term.status("run") == 0
        assert docker.ok("inspect", "-f", "{{.State.Running}}", "box") == "true\n"
        back = term.start("attach", "attach box")
        time.sleep(0.5)
        term("send-keys", "-t", back, "echo back-$((40+2)); exit 3", "Enter")
        assert term.status("attach") == 3
        assert "back-42" in term.screen(back)
        assert docker.ok("inspect", "-f", "{{.State.ExitCode}}", "box") == "3\n"
    finally:
        term.kill()
    docker.ok("rm", "box")


def test_run_i_pipes_and_exit_codes(docker):
    assert docker.ok("run", "--rm", "-i", "busybox", "cat", input=b"piped\n") == "piped\n"
    assert docker("run", "--rm", "busybox", "sh", "-c", "exit 7").returncode == 7
    missing = docker("run", "--rm", "busybox", "no-such-program")
    assert missing.returncode == 127 and b"executable file not found" in missing.stderr
    assert docker.ok("ps", "-aq") == ""
