"""Crash rounds: SIGKILL knarrd (or a container's monitor) at a random moment during a
load, a pull, a build, a run, an exec, a create or a removal, restart it, and check that nothing was lost,
half made or left behind.

After every round:
- the engine root passes `knarr.engine.check.check` (every blob's digest, every image's
  blobs and layers, every container's record, directory and snapshot, no orphans);
- every image and container the daemon acknowledged before the kill is still there
  (unless its removal was acknowledged), each one inspectable;
- the long-running "survivor" container still runs with the same pid, and every
  acknowledged detached container still runs;
- no process, mount, cgroup, network namespace or veth of a container that is not
  running is left.

Run by tests/integration/test_hardening_crash.py, or by hand:
    python tests/integration/crash_rounds.py --rounds 100 [--seed N] [--monitor]

Pulls (a fresh three-layer image pushed to a local distribution 2.8 each time) and builds
(POST /build through `knarr build`: FROM busybox, COPY, RUN) come every PULL_BUILD_EVERY
rounds, alternating, so the quick run stays short; a pull or build killed in flight must
leave nothing tagged (and the store check finds no orphaned blob or snapshot).
"""

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from distribution_support import Distribution, push_layout_raw  # noqa: E402
from peers import _goarch, write_oci_archive  # noqa: E402
from test_api_support import (  # noqa: E402
    Daemon,
    bridge_ports,
    cgroup_dirs,
    mounts_under,
    netns_files,
    processes_under,
)

from knarr.engine.check import check  # noqa: E402

KNARR = os.path.join(os.path.dirname(sys.executable), "knarr")
MAX_IMAGES, MAX_CONTAINERS = 4, 6
PULL_BUILD_EVERY = 3


class Round:
    """One operation started through the knarr CLI, and what it said."""

    def __init__(self, kind: str, argv: list[str], subject: str = "") -> None:
        self.kind, self.argv, self.subject = kind, argv, subject
        self.proc: subprocess.Popen | None = None
        self.out = self.err = b""
        self.code: int | None = None


class Crashes:
    """A knarrd of its own, the state it acknowledged, and the rounds that kill it."""

    def __init__(self, base: str, seed: int) -> None:
        self.base = base
        self.rng = random.Random(seed)
        self.daemon = Daemon(base)
        self.images: set[str] = set()          # acknowledged loads, by name
        self.containers: set[str] = set()      # acknowledged creates, not yet removed
        self.detached: set[str] = set()        # acknowledged `run -d`: must keep running
        self.seen: set[str] = set()            # every container id ever heard of
        self.maybe_gone: set[str] = set()      # removals killed in flight: gone or not
        self.figures = {"rounds": 0, "daemon_kills": 0, "monitor_kills": 0, "problems": [],
                        "by_kind": {}}
        self.serial = 0
        self.crash_count = 0
        self.registry: Distribution | None = None
        self.half_done: set[str] = set()       # pulls/builds killed in flight: not tagged

    # -- helpers -----------------------------------------------------------------------

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([KNARR, "-H", f"unix://{self.daemon.sock}", *args],
                              capture_output=True, timeout=timeout)

    def ok(self, *args: str) -> str:
        result = self.cli(*args)
        if result.returncode != 0:
            raise AssertionError(f"knarr {' '.join(args)}: {result.stderr.decode()}")
        return result.stdout.decode().strip()

    def image_archive(self) -> tuple[str, str]:
        """An OCI archive of a fresh one-layer image (2-6 MiB of random bytes)."""
        self.serial += 1
        name = f"crash/load:{self.serial}"
        work = os.path.join(self.base, "archives")
        os.makedirs(work, exist_ok=True)
        rootfs = os.path.join(work, "rootfs")
        os.makedirs(rootfs, exist_ok=True)
        with open(os.path.join(rootfs, "data"), "wb") as f:
            f.write(os.urandom(self.rng.randint(2, 6) << 20))
        layer, archive = os.path.join(work, "layer.tar"), os.path.join(work, "image.tar")
        import tarfile

        with tarfile.open(layer, "w") as tar:
            tar.add(os.path.join(rootfs, "data"), arcname="data")
        write_oci_archive(layer, archive, f"docker.io/{name}")
        return name, archive

    def push_image(self) -> str:
        """Push a fresh three-layer image (1-3 MiB of random bytes a layer) to the local
        registry; return the reference to pull."""
        import hashlib
        import json
        import tarfile

        if self.registry is None:
            self.registry = Distribution(os.path.join(self.base, "registry")).start()
        self.serial += 1
        layout = os.path.join(self.base, "layout")
        blobs = os.path.join(layout, "blobs", "sha256")
        os.makedirs(blobs, exist_ok=True)

        def blob(data: bytes, media: str) -> dict:
            digest = hashlib.sha256(data).hexdigest()
            with open(os.path.join(blobs, digest), "wb") as f:
                f.write(data)
            return {"mediaType": media, "digest": f"sha256:{digest}", "size": len(data)}

        layers = []
        for n in range(3):
            data_path = os.path.join(self.base, "layerdata")
            with open(data_path, "wb") as f:
                f.write(os.urandom(self.rng.randint(1, 3) << 20))
            tar_path = os.path.join(self.base, "layer.tar")
            with tarfile.open(tar_path, "w") as tar:
                tar.add(data_path, arcname=f"layer{n}")
            with open(tar_path, "rb") as f:
                layers.append(f.read())
        layer_descs = [blob(d, "application/vnd.oci.image.layer.v1.tar") for d in layers]
        config = {"architecture": _goarch(), "os": "linux", "config": {"Cmd": ["sh"]},
                  "rootfs": {"type": "layers", "diff_ids": [d["digest"] for d in layer_descs]}}
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": blob(json.dumps(config).encode(),
                                   "application/vnd.oci.image.config.v1+json"),
                    "layers": layer_descs}
        mdesc = blob(json.dumps(manifest).encode(), manifest["mediaType"])
        with open(os.path.join(layout, "index.json"), "w") as f:
            json.dump({"schemaVersion": 2, "manifests": [mdesc]}, f)
        tag = f"v{self.serial}"
        push_layout_raw(self.registry.addr, "crash/pull", tag, layout)
        return f"{self.registry.addr}/crash/pull:{tag}"

    def build_context(self) -> str:
        """A build context: COPY of a fresh 1-4 MiB file, then a RUN over it."""
        self.serial += 1
        ctx = os.path.join(self.base, "context")
        os.makedirs(ctx, exist_ok=True)
        with open(os.path.join(ctx, "payload"), "wb") as f:
            f.write(os.urandom(self.rng.randint(1, 4) << 20))
        with open(os.path.join(ctx, "Dockerfile"), "w") as f:
            f.write(f"FROM busybox\nCOPY payload /payload\n"
                    f"RUN sleep 0.{self.rng.randint(1, 5)} && md5sum /payload > /sum "
                    f"&& echo {self.serial} > /serial\nCMD [\"cat\", \"/sum\"]\n")
        return ctx

    # -- the rounds ----------------------------------------------------------------------

    def setup(self) -> None:
        self.daemon.start()
        self.survivor = self.ok("run", "-d", "--name", "survivor", "busybox", "sleep", "1000000")
        self.survivor_pid = self.pid(self.survivor)
        self.seen.add(self.survivor)
        self.containers.add(self.survivor)

    def pid(self, cid: str) -> int:
        return int(self.ok("inspect", "-f", "{{.State.Pid}}", cid))

    def pick(self) -> Round:
        self.crash_count += 1
        turn = self.crash_count - 1
        if PULL_BUILD_EVERY and turn % PULL_BUILD_EVERY == 1 and len(self.images) < MAX_IMAGES:
            if (turn // PULL_BUILD_EVERY) % 2 == 0:
                ref = self.push_image()
                return Round("pull", ["pull", "-q", ref], ref)
            name = f"crash/build:{self.serial + 1}"
            return Round("build", ["build", "-q", "-t", name, self.build_context()], name)
        kinds = ["load", "run_rm", "run_d", "create", "exec", "remove", "rmi"]
        if len(self.images) >= MAX_IMAGES:
            kinds = ["rmi", "run_rm", "exec"]
        elif len(self.containers) >= MAX_CONTAINERS:
            kinds = ["remove", "run_rm", "exec", "load"]
        kind = self.rng.choice(kinds)
        removable = sorted(self.containers - {self.survivor})
        if kind == "remove" and not removable or kind == "rmi" and not self.images:
            kind = "run_rm"
        if kind == "load":
            name, archive = self.image_archive()
            return Round(kind, ["load", "-q", "-i", archive], name)
        if kind == "run_rm":
            return Round(kind, ["run", "--rm", "busybox", "sh", "-c", "echo hi; sleep 0.3"])
        if kind == "run_d":
            return Round(kind, ["run", "-d", "busybox", "sleep", "1000000"])
        if kind == "create":
            return Round(kind, ["create", "busybox", "true"])
        if kind == "exec":
            return Round(kind, ["exec", "survivor", "sh", "-c", "echo in; sleep 0.2"])
        if kind == "remove":
            cid = self.rng.choice(removable)
            return Round(kind, ["rm", "-f", cid], cid)
        name = self.rng.choice(sorted(self.images))
        return Round(kind, ["rmi", name], name)

    def start(self, r: Round) -> None:
        r.proc = subprocess.Popen([KNARR, "-H", f"unix://{self.daemon.sock}", *r.argv],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def finish(self, r: Round) -> None:
        try:
            r.out, r.err = r.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            r.proc.kill()
            r.out, r.err = r.proc.communicate()
        r.code = r.proc.returncode
        if r.code != 0:
            # Killed in flight: a removal may or may not have happened (or only stopped
            # the container); neither outcome is a loss.
            if r.kind == "remove":
                self.detached.discard(r.subject)
                self.maybe_gone.add(r.subject)
            elif r.kind == "rmi":
                self.maybe_gone.add(r.subject)
            elif r.kind in ("pull", "build"):
                self.half_done.add(r.subject)
            return
        # Acknowledged: from here on it must hold.
        if r.kind in ("load", "pull", "build"):
            self.images.add(r.subject)
        elif r.kind in ("run_d", "create"):
            cid = r.out.decode().strip()
            self.seen.add(cid)
            self.containers.add(cid)
            if r.kind == "run_d":
                self.detached.add(cid)
        elif r.kind == "remove":
            self.containers.discard(r.subject)
            self.detached.discard(r.subject)
        elif r.kind == "rmi":
            self.images.discard(r.subject)

    def crash_round(self) -> None:
        """Start an operation, SIGKILL the daemon at a random moment, restart, check."""
        r = self.pick()
        self.start(r)
        time.sleep(self.rng.uniform(0.0, 0.9))
        self.daemon.kill9()
        self.finish(r)
        self.daemon.proc = None
        self.restart()
        self.figures["daemon_kills"] += 1
        self.after(r)

    def restart(self) -> None:
        try:
            self.daemon.start()
        except AssertionError:
            from peers import pids_mentioning

            for pid in pids_mentioning(self.base):
                for task in os.listdir(f"/proc/{pid}/task"):
                    with open(f"/proc/{pid}/task/{task}/stack") as f:
                        stack = f.read().splitlines()[:3]
                    print(f"pid {pid} task {task} {_proc_paths(pid)} {_cmdline(pid)[-60:]}:"
                          f" {stack}", file=sys.stderr)
            raise

    def monitor_round(self) -> None:
        """Run a container, SIGKILL its monitor while it runs (or during an exec), check."""
        cid = self.ok("run", "-d", "busybox", "sh", "-c", "sleep 1000000")
        self.seen.add(cid)
        r = Round("monitor", ["exec", cid, "sh", "-c", "echo in; sleep 0.5"], cid)
        if self.rng.random() < 0.5:
            self.start(r)
        time.sleep(self.rng.uniform(0.0, 0.4))
        monitor = self.monitor_of(cid)
        if monitor is not None:
            os.kill(monitor, signal.SIGKILL)
        if r.proc is not None:
            self.finish(r)
        self.figures["monitor_kills"] += 1
        deadline = time.monotonic() + 15
        while self.ok("inspect", "-f", "{{.State.Running}}", cid) == "true":
            if time.monotonic() > deadline:
                self.problem(r, f"container {cid} still running 15 s after its monitor died")
                break
            time.sleep(0.05)
        self.containers.add(cid)
        self.after(r)
        self.cli("rm", "-f", cid)
        self.containers.discard(cid)

    def monitor_of(self, cid: str) -> int | None:
        mdir = os.path.join(self.daemon.exec_root, "containers", cid)
        for pid in processes_under(mdir):
            try:
                if os.readlink(f"/proc/{pid}/root") == "/" and \
                        os.readlink(f"/proc/{pid}/cwd").startswith(mdir):
                    return pid
            except OSError:
                continue
        return None

    # -- the checks ----------------------------------------------------------------------

    def problem(self, r: Round, text: str) -> None:
        self.figures["problems"].append(f"round {self.figures['rounds']} ({r.kind} "
                                        f"{r.subject}): {text}")

    def after(self, r: Round) -> None:
        """Check the round; what the daemon is still finishing (an auto-remove's files, a
        dead monitor's network) gets up to 10 s: only what stays is a problem."""
        self.figures["rounds"] += 1
        self.figures["by_kind"][r.kind] = self.figures["by_kind"].get(r.kind, 0) + 1
        found = self.figures["problems"]
        deadline = time.monotonic() + 10
        while True:
            self.figures["problems"] = []
            self.check_round(r)
            late = self.figures["problems"]
            if not late or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        self.figures["problems"] = found + late

    def check_round(self, r: Round) -> None:
        for text in check(self.daemon.root, self.daemon.exec_root):
            self.problem(r, f"check: {text}")
        listed = {c for c in self.ok("ps", "-aq", "--no-trunc").split()}
        self.seen |= listed
        self.containers -= self.maybe_gone - listed
        for cid in self.containers - listed:
            self.problem(r, f"acknowledged container {cid} is lost")
        for cid in listed:
            if self.cli("inspect", cid).returncode != 0:
                self.problem(r, f"listed container {cid} cannot be inspected")
        running = {c for c in self.ok("ps", "-q", "--no-trunc").split()}
        for cid in self.detached - running:
            self.problem(r, f"acknowledged detached container {cid} is not running")
        if self.survivor not in running or self.pid(self.survivor) != self.survivor_pid:
            self.problem(r, "the survivor is not running with its pid")
        names = self.ok("images", "--format", "{{.Repository}}:{{.Tag}}").split()
        self.images -= {n for n in self.maybe_gone if f"docker.io/{n}" not in names and
                        n not in names}
        self.maybe_gone.clear()
        for name in self.half_done:
            # Killed after the tag was written (the reply not yet read): done, not half
            # done; it must then be whole, and from here on it is acknowledged.
            if f"docker.io/{name}" in names or name in names:
                if self.cli("inspect", name).returncode != 0:
                    self.problem(r, f"{name} is tagged but cannot be inspected")
                self.images.add(name)
                self.figures["done_before_kill"] = self.figures.get("done_before_kill", 0) + 1
        self.half_done.clear()
        for name in self.images:
            if f"docker.io/{name}" not in names and name not in names:
                self.problem(r, f"acknowledged image {name} is lost")
        self.leftovers(r, running)
        self.store_leftovers(r)

    def leftovers(self, r: Round, running: set[str]) -> None:
        containers = os.path.join(self.daemon.exec_root, "containers")
        allowed = [os.path.join(containers, cid) for cid in running]
        for pid in processes_under(self.base):
            if pid == self.daemon.proc.pid or _below_any(_proc_paths(pid), allowed):
                continue
            if _is_daemon_child(pid, self.daemon.proc.pid):
                continue
            self.problem(r, f"orphaned process {pid}: {_cmdline(pid)}")
        netns = [os.path.join(self.daemon.exec_root, "netns", cid) for cid in running]
        for mount in mounts_under(self.base):
            if not _below_any([mount], allowed + netns):
                self.problem(r, f"orphaned mount {mount}")
        for name in netns_files(self.daemon.exec_root):
            if name not in running:
                self.problem(r, f"orphaned network namespace {name}")
        veths = bridge_ports(self.daemon.bridge)
        if len(veths) > len(running):
            self.problem(r, f"{len(veths)} veths on {self.daemon.bridge} for {len(running)} "
                         f"running containers: {veths}")
        for cid in self.seen - running:
            for d in cgroup_dirs(cid):
                self.problem(r, f"orphaned cgroup {d}")

    def store_leftovers(self, r: Round) -> None:
        """What a killed pull or build may leave in the store and no image or container
        names: build step snapshots, ingests, leases, blobs, layer snapshots."""
        from knarr.images import ImageStore

        store = ImageStore(self.daemon.root)
        try:
            wanted_blobs, wanted_snaps = set(), set()
            for image_id in store.records.ids():
                row = store.records.get(image_id)
                wanted_blobs |= {image_id, row["manifest"], *(x["digest"] for x in row["layers"])}
                wanted_snaps |= set(store.chain_ids(image_id))
            for row in store.snapshots.walk():
                key = row["key"]
                if key.startswith("build-"):
                    self.problem(r, f"build step snapshot {key} left")
                elif not key.startswith("container-") and key not in wanted_snaps:
                    self.figures.setdefault("unnamed_snapshots", set()).add(key)
            for ref, _size, live in store.content.ingests():
                self.problem(r, f"ingest {ref} left (live: {live})")
            leases = os.listdir(store.content.lease_root)
            if leases:
                self.problem(r, f"leases left: {leases}")
            for info in store.content.walk():
                if info.digest not in wanted_blobs:
                    self.figures.setdefault("unnamed_blobs", set()).add(info.digest)
        finally:
            store.close()

    def run(self, rounds: int, monitor_every: int) -> dict:
        self.setup()
        try:
            for n in range(rounds):
                if monitor_every and n % monitor_every == monitor_every - 1:
                    self.monitor_round()
                else:
                    self.crash_round()
        finally:
            self.figures["leftovers_at_teardown"] = self.daemon.teardown()
            if self.registry is not None:
                self.registry.stop()
            for key in ("unnamed_snapshots", "unnamed_blobs"):
                self.figures[key] = len(self.figures.get(key, ()))
        return self.figures


def _proc_paths(pid: int) -> list[str]:
    out = []
    for link in ("cwd", "root"):
        try:
            out.append(os.readlink(f"/proc/{pid}/{link}"))
        except OSError:
            pass
    return out


def _below_any(paths: list[str], tops: list[str]) -> bool:
    return any(p == t or p.startswith(t + "/") for p in paths for t in tops)


def _is_daemon_child(pid: int, daemon: int) -> bool:
    """The daemon's own fork helper (its cwd is wherever the daemon started)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1]) == daemon
    except (OSError, ValueError, IndexError):
        return False


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")[:200]
    except OSError:
        return "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--monitor-every", type=int, default=5,
                        help="every Nth round kills a container's monitor instead (0: never)")
    args = parser.parse_args()
    base = tempfile.mkdtemp(prefix="knarr-crash-")
    figures = Crashes(base, args.seed).run(args.rounds, args.monitor_every)
    figures["seed"] = args.seed
    import json

    print(json.dumps(figures, indent=1))
    sys.exit(1 if figures["problems"] or figures["leftovers_at_teardown"] else 0)


if __name__ == "__main__":
    main()
