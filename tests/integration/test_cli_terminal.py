"""`knarr run -it` and `knarr attach` in a real terminal (tmux), against a test-owned dockerd.

A prompt, the hostname (the 12-character id), the window size following a
resize, ctrl-p ctrl-q detaching, attach coming back, and `exit 3` ending the
CLI with status 3.
"""

import os
import shutil
import subprocess
import time

import pytest
import test_cli_docker as peer

TMUX = shutil.which("tmux")

pytestmark = peer.pytestmark + [
    pytest.mark.skipif(TMUX is None, reason="tmux is not installed (Debian package tmux)"),
]


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    daemon = peer.start(tmp_path_factory)
    yield daemon
    daemon.stop()


class Tmux:
    """A private tmux server; each window runs a shell line and records its exit status."""

    def __init__(self, path, prefix: str) -> None:
        self.path, self.prefix = path, prefix  # prefix: the client and its -H
        self.sock = str(path / "tmux.sock")
        self.started = False

    def __call__(self, *args: str) -> str:
        out = subprocess.run([TMUX, "-S", self.sock, *args], capture_output=True, timeout=30)
        assert out.returncode == 0, out.stderr.decode()
        return out.stdout.decode()

    def start(self, name: str, knarr_args: str, width: int = 100, height: int = 30) -> str:
        """Run `PREFIX ARGS` in window `name`; its status lands in a file."""
        status = self.path / f"{name}.status"
        line = (f"{self.prefix} {knarr_args}; echo $? > {status}.tmp; "
                f"mv {status}.tmp {status}; sleep 600")
        if not self.started:
            self("new-session", "-d", "-s", "k", "-n", name, "-x", str(width), "-y",
                 str(height), "sh", "-c", line)
            self.started = True
        else:
            self("new-window", "-t", "k", "-n", name, "sh", "-c", line)
        return f"k:{name}"

    def screen(self, target: str) -> str:
        return self("capture-pane", "-p", "-t", target)

    def wait_for(self, target: str, predicate, timeout: float = 15) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen(target)
            if predicate(text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"screen never matched:\n{text}")
            time.sleep(0.1)

    def ask_until(self, target: str, keys: str, predicate, tries: int = 5) -> str:
        """Type `keys` + Enter until the screen matches: a resize travels CLI -> daemon ->
        pty on its own, and a command typed before it lands sees the old size."""
        for _ in range(tries - 1):
            self("send-keys", "-t", target, keys, "Enter")
            try:
                return self.wait_for(target, predicate, timeout=3)
            except AssertionError:
                pass
        self("send-keys", "-t", target, keys, "Enter")
        return self.wait_for(target, predicate)

    def status(self, name: str, timeout: float = 15) -> int:
        path = self.path / f"{name}.status"
        deadline = time.monotonic() + timeout
        while not path.exists():
            assert time.monotonic() < deadline, f"{name} did not end"
            time.sleep(0.1)
        return int(path.read_text())

    def kill(self) -> None:
        if self.started:
            subprocess.run([TMUX, "-S", self.sock, "kill-server"], capture_output=True)


@pytest.fixture
def tmux(tmp_path, d):
    term = Tmux(tmp_path, f"{peer.KNARR} -H {d.host}")
    yield term
    term.kill()


def _lines_after(screen: str, command: str) -> list[str]:
    lines = [line.rstrip() for line in screen.splitlines()]
    at = max(i for i, line in enumerate(lines) if line.endswith(command))
    return lines[at + 1:]


def test_run_it_prompt_hostname_resize_detach_attach_exit(d, tmux):
    name = f"term{os.getpid()}"
    win = tmux.start("run", f"run -it --name {name} busybox sh")
    tmux.wait_for(win, lambda s: s.rstrip().endswith("/ #"))
    cid = d.ok("inspect", "-f", "{{.Id}}", name).strip()

    tmux("send-keys", "-t", win, "hostname", "Enter")
    screen = tmux.wait_for(win, lambda s: cid[:12] in s)
    assert _lines_after(screen, "# hostname")[0] == cid[:12]

    tmux("send-keys", "-t", win, "stty size", "Enter")
    screen = tmux.wait_for(win, lambda s: "30 100" in s)
    tmux("resize-window", "-t", win, "-x", "80", "-y", "20")
    tmux.ask_until(win, "clear; stty size", lambda s: "20 80" in s)

    tmux("send-keys", "-t", win, "C-p", "C-q")
    assert tmux.status("run") == 0
    assert d.ok("inspect", "-f", "{{.State.Running}}", name) == "true\n"

    back = tmux.start("attach", f"attach {name}")
    time.sleep(0.5)
    tmux("send-keys", "-t", back, "echo back-$((40+2))", "Enter")
    tmux.wait_for(back, lambda s: "back-42" in s.replace("back-$((40+2))", ""))
    tmux("send-keys", "-t", back, "C-p", "C-q")  # attach detaches as Docker's: status 1
    assert tmux.status("attach") == 1
    assert "read escape sequence" in tmux.screen(back)

    again = tmux.start("again", f"attach {name}")
    time.sleep(0.5)
    tmux("send-keys", "-t", again, "exit 3", "Enter")
    assert tmux.status("again") == 3
    assert d.ok("inspect", "-f", "{{.State.ExitCode}}", name) == "3\n"
    d.ok("rm", name)


def test_run_it_exit_status_and_rm(d, tmux):
    name = f"rm{os.getpid()}"
    win = tmux.start("rm", f"run -it --rm --name {name} busybox sh")
    tmux.wait_for(win, lambda s: s.rstrip().endswith("/ #"))
    tmux("send-keys", "-t", win, "exit 3", "Enter")
    assert tmux.status("rm") == 3
    assert name not in d.ok("ps", "-a", "--format", "{{.Names}}").split()


def test_exec_it_gets_a_terminal_that_follows_resizes(d, tmux):
    name = f"ex{os.getpid()}"
    d.ok("run", "-d", "--name", name, "busybox", "sleep", "1000")
    try:
        win = tmux.start("exec", f"exec -it {name} sh", width=90, height=25)
        tmux.wait_for(win, lambda s: s.rstrip().endswith("/ #"))
        tmux("send-keys", "-t", win, "tty; stty size", "Enter")
        screen = tmux.wait_for(win, lambda s: "25 90" in s)
        assert "/dev/pts/" in screen
        tmux("resize-window", "-t", win, "-x", "70", "-y", "15")
        tmux.ask_until(win, "clear; stty size", lambda s: "15 70" in s)
        tmux("send-keys", "-t", win, "exit 5", "Enter")
        assert tmux.status("exec") == 5
    finally:
        d.knarr("rm", "-f", name)


def test_custom_detach_keys(d, tmux):
    name = f"dk{os.getpid()}"
    win = tmux.start("dk", f"run -it --detach-keys ctrl-x,x --name {name} busybox sh")
    try:
        tmux.wait_for(win, lambda s: s.rstrip().endswith("/ #"))
        tmux("send-keys", "-t", win, "C-p", "C-q", "echo still-$((1+1))", "Enter")
        tmux.wait_for(win, lambda s: "still-2" in s.replace("still-$((1+1))", ""))
        tmux("send-keys", "-t", win, "C-x", "x")
        assert tmux.status("dk") == 0
        assert d.ok("inspect", "-f", "{{.State.Running}}", name) == "true\n"
    finally:
        d.knarr("rm", "-f", name)


def test_start_ai_gives_the_terminal_back(d, tmux):
    name = f"sai{os.getpid()}"
    d.ok("create", "-it", "--name", name, "busybox", "sh")
    try:
        win = tmux.start("sai", f"start -ai {name}", width=80, height=20)
        tmux.wait_for(win, lambda s: s.rstrip().endswith("/ #"))
        tmux("send-keys", "-t", win, "stty size", "Enter")
        tmux.wait_for(win, lambda s: "20 80" in s)
        tmux("send-keys", "-t", win, "exit 4", "Enter")
        assert tmux.status("sai") == 4
    finally:
        d.knarr("rm", "-f", name)
