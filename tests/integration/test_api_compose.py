"""docker-compose 1.29 (Debian's, on docker-py) runs a three-service project on knarrd:
a busybox httpd, a worker polling it by its service name, and a one-shot job."""

import os
import subprocess
import time

import pytest
from test_api_support import knarrd_fixture, wait_for  # noqa: F401

pytestmark = [pytest.mark.privileged]

COMPOSE_FILE = """\
version: "3.7"
services:
  web:
    image: busybox
    stop_grace_period: 1s  # pid 1 ignores SIGTERM: don't wait the default 10 s
    command: ["sh", "-c", "mkdir -p /www && echo hello-from-web > /www/index.html && exec httpd -f -p 8080 -h /www"]
  worker:
    image: busybox
    depends_on: [web]
    stop_grace_period: 1s
    environment:
      TARGET: http://web:8080/index.html
    command: ["sh", "-c", "while :; do wget -qO- $$TARGET && echo worker-got-it; sleep 1; done"]
  job:
    image: busybox
    depends_on: [web]
    restart: "no"
    command: ["sh", "-c", "echo job-ran; exit 0"]
"""


def test_compose_up_ps_logs_exec_down(knarrd, tmp_path):
    (tmp_path / "docker-compose.yml").write_text(COMPOSE_FILE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env.update(DOCKER_HOST=f"unix://{knarrd.sock}", COMPOSE_INTERACTIVE_NO_CLI="1")

    def compose(*args: str, check: bool = True) -> str:
        proc = subprocess.run(["docker-compose", "-p", "trio", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)
        assert not check or proc.returncode == 0, f"compose {args}: {proc.stderr}"
        return proc.stdout + proc.stderr

    knarrd.client.post("/images/create", fromImage="busybox", tag="latest")
    try:
        up = compose("up", "-d")
        assert "Creating trio_web_1" in up and "Creating trio_job_1" in up
        assert wait_for(lambda: b"worker-got-it" in knarrd.client.get(
            "/containers/trio_worker_1/logs", stdout=1).body, timeout=30)
        assert wait_for(lambda: knarrd.client.inspect("trio_job_1")["State"]["Status"] ==
                        "exited")
        assert knarrd.client.inspect("trio_job_1")["State"]["ExitCode"] == 0
        ps = compose("ps")
        rows = {line.split()[0]: line for line in ps.splitlines() if line.startswith("trio_")}
        assert sorted(rows) == ["trio_job_1", "trio_web_1", "trio_worker_1"]
        assert " Up " in rows["trio_web_1"] and " Up " in rows["trio_worker_1"]
        assert "Exit 0" in rows["trio_job_1"]
        logs = compose("logs", "--no-color")
        assert "job-ran" in logs and "hello-from-web" in logs
        out = compose("exec", "-T", "worker", "wget", "-qO-", "http://web:8080/index.html")
        assert "hello-from-web" in out
    finally:
        down = compose("down", check=False)
    assert "Removing trio_web_1" in down and "Removing network trio_default" in down
    deadline = time.monotonic() + 10
    while knarrd.client.get("/containers/json", all=1).json() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert knarrd.client.get("/containers/json", all=1).json() == []
    assert knarrd.client.get("/networks/trio_default").status == 404
