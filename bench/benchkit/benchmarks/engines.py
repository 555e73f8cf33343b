"""The three engines of the engine_* benchmarks, each private to one benchmark run.

Not a benchmark itself (it is not in MODULES): engine_hello, engine_exec,
engine_stats and engine_memory import it.

- knarr: `knarrd --root R --exec-root E -H unix://S`, driven by `knarr -H unix://S`;
- docker: a dockerd of its own (image_data.Dockerd: own socket, data root, exec
  root and pid file) with Docker's default networking, as its users have it: its
  bridge driver on a bridge of the bench's own (`kbdock1`, 10.215.1.0/24) and
  iptables on (benchkit/dockernet.py puts the host back as it was at the end),
  driven by the docker CLI;
- docker-nonet (with `Engines(..., docker_nonet=True)`): a second dockerd of its own,
  `--bridge=none --iptables=false` (its containers get no network at all: less work
  than knarr's and podman's bridge), for the figure docker gives without networking;
- podman: `podman --root --runroot --tmpdir` under the scratch directory,
  `--cgroup-manager=cgroupfs --events-backend=file`.

The bench host has no registry, so the images come from knarr's built-in ones:
`knarr save hello-world` and `knarr save busybox` give docker-loadable tarballs,
which docker and podman `load`. All three engines so run the same bytes.

`Engines.stop()` (idempotent, also registered with atexit) removes every
container made, stops the daemons (and knarrd's process group), unmounts
whatever is still mounted under the scratch directory and removes the
per-container cgroups the engines named after those containers.
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import time
from pathlib import Path

from benchkit.benchmarks import image_data
from benchkit.dockernet import DockerBridge
from benchkit.host import VENV_BIN
from benchkit.subjects import KNARR, PEER, Subject, missing_program, program_version

KNARRD = str(VENV_BIN / "knarrd")
KNARR_CLI = str(VENV_BIN / "knarr")
# the parents under which docker (cgroupfs driver), podman (cgroupfs) and knarr
# put a container's cgroup, named after (or containing) the container's id
CGROUP_PARENTS = ("docker", "libpod_parent", "knarr")
# the bridge of the engine benches' dockerd (net_http.py's is kbdock0, 10.215.0.0/24)
DOCKER_BRIDGE = ("kbdock1", "10.215.1.1/24")


def _run(argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
    """Run argv; a run past `timeout` is killed and reported as exit -9."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(argv, -9, "", f"killed after {timeout:g} s")


def _must(argv: list[str], timeout: float = 60) -> str:
    done = _run(argv, timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])}...: exit {done.returncode}: "
                           f"{done.stderr.strip()[-1000:]}")
    return done.stdout.strip()


def _interpreter_of(launcher: Path) -> str:
    """The interpreter of one of this venv's launchers (install-launchers may give the CLI
    the distribution's python rather than the venv's), or the venv's."""
    try:
        first = launcher.read_text().split("\n", 1)[0]
    except OSError:
        first = ""
    return first[2:].split()[0] if first.startswith("#!") and first[2:].split() else \
        str(VENV_BIN / "python")


def baseline_launchers(source: str, bin_dir: Path) -> tuple[str, str]:
    """knarrd and knarr launchers (as scripts/install-launchers writes them) running the
    knarr package of `source`, another checkout, with the interpreters this venv's own
    knarrd and knarr launchers use (the same for both subjects)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, module in (("knarrd", "knarr.daemon.main"), ("knarr", "knarr.cli.main")):
        path = bin_dir / name
        path.write_text(f"#!{_interpreter_of(VENV_BIN / name)} -IS\nimport sys\n"
                        f"sys.path.insert(0, {source!r})\nfrom {module} import entry\nentry()\n")
        path.chmod(0o755)
        paths.append(str(path))
    return paths[0], paths[1]


class Knarrd:
    """A knarrd of the benchmark's own, in its own process group."""

    def __init__(self, state: Path, daemon: str = KNARRD, cli: str = KNARR_CLI) -> None:
        self.state = state
        self.sock = f"unix://{state}/knarr.sock"
        self.proc: subprocess.Popen | None = None
        self.daemon, self.cli = daemon, cli

    def start(self) -> None:
        """Start it and wait until `knarr version` answers; RuntimeError if it does not."""
        self.state.mkdir(parents=True, exist_ok=True)
        log = open(self.state / "knarrd.log", "wb")  # noqa: SIM115 - knarrd's, till stop
        self.proc = subprocess.Popen(
            [self.daemon, "--root", str(self.state / "root"), "--exec-root",
             str(self.state / "exec"), "-H", self.sock],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        log.close()
        deadline = time.monotonic() + 60
        while _run(self.argv("version")).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("knarrd did not start: "
                                   + (self.state / "knarrd.log").read_text()[-2000:])
            time.sleep(0.1)

    def argv(self, *args: str) -> list[str]:
        """A knarr CLI command line against this knarrd."""
        return [self.cli, "-H", self.sock, *args]

    def stop(self) -> None:
        """Stop the daemon and its fork helper (idempotent)."""
        if self.proc is None:
            return
        pgid = self.proc.pid
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        try:
            os.killpg(pgid, signal.SIGKILL)  # the fork helper, if it outlived the daemon
        except ProcessLookupError:
            pass
        self.proc = None


class Engines:
    """knarr, docker and podman, private to one benchmark; each may be unavailable."""

    def __init__(self, workdir: Path, docker_nonet: bool = False) -> None:
        self.workdir = workdir
        self.knarrd = Knarrd(workdir / "knarrd")
        # KNARR_BENCH_BASELINE=DIR: one more subject, knarr@baseline, the knarr of DIR
        # (another checkout) on a knarrd of its own, for before/after figures of one run
        self.baseline = None
        if image_data.BASELINE:
            self.baseline = Knarrd(workdir / "knarrd-baseline", *baseline_launchers(
                image_data.BASELINE, workdir / "baseline-bin"))
        self.dockerd = image_data.Dockerd(workdir / "dockerd", DockerBridge(*DOCKER_BRIDGE))
        self.dockerds = {"docker": self.dockerd}
        if docker_nonet:
            self.dockerds["docker-nonet"] = image_data.Dockerd(workdir / "dockerd-nonet")
        self.podman_state = workdir / "podman"
        self.unavailable: dict[str, str] = {}
        self.versions: dict[str, str] = {}
        self.containers: dict[str, list[str]] = {"knarr": [], "docker": [], "podman": [],
                                                 "knarr@baseline": [], "docker-nonet": []}
        self.stopped = False
        atexit.register(self.stop)

    # command lines -----------------------------------------------------------------
    def argv(self, engine: str, *args: str) -> list[str]:
        """`engine`'s CLI command line, against this benchmark's private state."""
        if engine == "knarr":
            return self.knarrd.argv(*args)
        if engine == "knarr@baseline":
            return self.baseline.argv(*args)
        if engine in self.dockerds:
            return self.dockerds[engine].argv(*args)
        s = self.podman_state
        return ["podman", "--root", str(s / "root"), "--runroot", str(s / "run"),
                "--tmpdir", str(s / "tmp"), "--cgroup-manager=cgroupfs",
                "--events-backend=file", *args]

    # set-up ------------------------------------------------------------------------
    def start(self) -> None:
        """Start the daemons and give docker and podman knarr's hello-world and busybox.

        knarr is needed (its images feed the others); a peer that cannot start is
        recorded in `unavailable` and the others go on.
        """
        self.knarrd.start()
        self.versions["knarr"] = "knarrd " + (_run(self.argv(
            "knarr", "version", "--format", "{{.Server.Version}}")).stdout.strip() or "?")
        # a built-in image is in the store once a container has used it; `create`
        # rather than `run --rm`, which now and then does not return (issue 4's bug
        # list: the CLI stays after the container is gone; the timing runs are
        # killed at --timeout, this set-up must not hang)
        knarrs = ["knarr"]
        if self.baseline is not None:
            self.baseline.start()
            knarrs.append("knarr@baseline")
            self.versions["knarr@baseline"] = f"knarr of {image_data.BASELINE}"
        for engine in knarrs:
            for name, image in (("kbprephello", "hello-world"), ("kbprepbusybox", "busybox")):
                _must(self.argv(engine, "create", "--name", name, image, "true"))
                _must(self.argv(engine, "rm", name))
        images = self.workdir / "images"
        images.mkdir(parents=True, exist_ok=True)
        tarballs = []
        for name in ("hello-world", "busybox"):
            tarballs.append(str(images / f"{name}.tar"))
            _must(self.argv("knarr", "save", name, "-o", tarballs[-1]))
        for engine, dockerd in self.dockerds.items():
            reason = image_data.missing_docker()
            if reason is None:
                try:
                    dockerd.start()
                    self.versions[engine] = dockerd.version() + (
                        " (--bridge=none --iptables=false)" if dockerd.bridge is None
                        else " (bridge networking)")
                    for tarball in tarballs:
                        _must(self.argv(engine, "load", "-i", tarball))
                except RuntimeError as exc:
                    reason = str(exc)
            if reason is not None:
                self.unavailable[engine] = reason
        reason = missing_program("podman")
        if reason is None:
            try:
                for tarball in tarballs:
                    _must(self.argv("podman", "load", "-i", tarball))
                self.versions["podman"] = program_version("podman")
            except RuntimeError as exc:
                reason = str(exc)
        if reason is not None:
            self.unavailable["podman"] = reason

    def run_detached(self, engine: str, name: str, *command: str) -> str:
        """`run -d --name NAME busybox COMMAND` in `engine`; its full id."""
        self.containers[engine].append(name)
        out = _must(self.argv(engine, "run", "-d", "--name", name, "busybox", *command))
        cid = out.splitlines()[-1].strip()
        self.containers[engine].append(cid)
        return cid

    def available(self) -> list[str]:
        """The engines that started."""
        return [e for e in self.engines() if e not in self.unavailable]

    def engines(self) -> tuple[str, ...]:
        """Every engine of the run, knarr@baseline too when there is one."""
        return (*self.dockerds, "podman", "knarr") + (
            ("knarr@baseline",) if self.baseline else ())

    # subjects ----------------------------------------------------------------------
    def subject(self, engine: str, argv, cleanup=None, notes=None) -> Subject:
        """A subject for `engine`, whose sweep at the end stops every engine."""
        def leftovers() -> list[str]:
            self.stop()
            return []

        role = KNARR if engine == "knarr" else PEER
        if engine in self.unavailable:
            return Subject(name=engine, role=role, argv=lambda run_id: [],
                           unavailable=self.unavailable[engine], leftovers=leftovers)
        return Subject(name=engine, role=role, argv=argv, cleanup=cleanup,
                       leftovers=leftovers, version=self.versions.get(engine, ""),
                       notes=notes or {})

    # tear-down ---------------------------------------------------------------------
    def stop(self) -> None:
        """Remove the containers, stop the daemons, unmount, remove cgroups (idempotent)."""
        if self.stopped:
            return
        self.stopped = True
        for engine, daemon in (("knarr", self.knarrd), ("knarr@baseline", self.baseline)):
            if daemon is not None and daemon.proc is not None:
                ids = _run(self.argv(engine, "ps", "-aq", "--no-trunc")).stdout.split()
                self.containers[engine] += ids
                if ids:
                    _run(self.argv(engine, "rm", "-f", *ids))
        for engine, dockerd in self.dockerds.items():
            if dockerd.proc is not None:
                ids = _run(self.argv(engine, "ps", "-aq", "--no-trunc")).stdout.split()
                self.containers[engine] += ids
                if ids:
                    _run(self.argv(engine, "rm", "-f", *ids))
        if "podman" not in self.unavailable and self.podman_state.exists():
            ids = _run(self.argv("podman", "ps", "-aq", "--no-trunc")).stdout.split()
            self.containers["podman"] += ids
            _run(self.argv("podman", "rm", "-a", "-f", "-t", "0"))
        self.knarrd.stop()
        if self.baseline is not None:
            self.baseline.stop()
        for dockerd in self.dockerds.values():
            dockerd.stop(remove=False)
        unmount_under(self.workdir)
        remove_cgroups([c for ids in self.containers.values() for c in ids if len(c) == 64])


def unmount_under(top: Path) -> None:
    """Unmount (lazily, deepest first) everything mounted at or below `top`."""
    prefix = str(top.resolve()) + "/"
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point.startswith(prefix):
            points.append(point)
    for point in sorted(set(points), key=len, reverse=True):
        _run(["umount", "-l", point])


def remove_cgroups(ids: list[str]) -> None:
    """rmdir (deepest first) the empty cgroups whose names contain one of `ids`,
    under docker/, libpod_parent/ or knarr/ in every hierarchy."""
    if not ids:
        return
    root = Path("/sys/fs/cgroup")
    for hierarchy in [root, *root.iterdir()] if root.is_dir() else []:
        for parent in CGROUP_PARENTS:
            base = hierarchy / parent
            if not base.is_dir():
                continue
            for entry in base.iterdir():
                if entry.is_dir() and any(i in entry.name for i in ids):
                    for dirpath, _, _ in sorted(os.walk(entry), key=lambda w: -len(w[0])):
                        try:
                            os.rmdir(dirpath)
                        except OSError:
                            pass
