"""Work a monitor hands to short-lived children of its own.

Creating, starting, exec'ing into and tearing down a container parse configs,
load libseccomp, read cgroups: the pages all that touches would stay dirty, and
private, in a long-lived monitor. A child does it and exits, and the monitor
stays a near-pristine fork of the helper (its pages shared). The monitor is a
child subreaper, so the container's processes, whose parents exit, are
reparented to it all the same. A child reports one JSON line per step.
"""

import os

from knarr import fastjson
from knarr import sys as ksys
from knarr.engine import users
from knarr.oci.overlay import fit_overlay
from knarr.runtime import container as containers
from knarr.runtime import container_create, container_delete, container_exec, container_start

__all__ = ["TaskError", "fork_task", "fork_waiting", "prefork_starter", "hand_starter",
           "read_message", "mount_rootfs", "starter", "exec_child", "teardown",
           "teardown_here", "delete_here", "oom_killed", "signal_all", "reap_child"]


_PR_SET_PDEATHSIG = 1


class TaskError(Exception):
    """A step a child ran failed; `category` names the knarr error class."""

    def __init__(self, message: str, category: str = "") -> None:
        super().__init__(message)
        self.category = category


def _send(fd: int, **message: object) -> None:
    os.write(fd, fastjson.dumps(message).encode() + b"\n")


def read_message(fd: int) -> dict:
    """One JSON line from a child; a TaskError if it failed or died."""
    buf = b""
    while not buf.endswith(b"\n"):
        try:
            data = os.read(fd, 4096)
        except InterruptedError:
            continue
        if not data:
            raise TaskError("the monitor's helper process exited without a word")
        buf += data
    message = fastjson.loads(buf)
    if "error" in message:
        raise TaskError(message["error"], message.get("category", ""))
    return message


def reap_child(pid: int) -> None:
    """Reap a task child (the monitor's SIGCHLD loop may have done so already)."""
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def fork_task(work, *args, close: tuple[int, ...] = ()) -> tuple[int, int]:
    """Fork a child running `work(report_fd, *args)`; return (pid, fd to read reports from).

    The child first closes `close`: the monitor's ends of pipes it shares with the child
    (a fork inherits them; the starter kept the write end of its own "go" pipe and never
    saw the EOF that says the monitor gave up, so both waited on each other forever).
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        def task(w: int) -> None:
            os.close(r)
            for fd in close:
                os.close(fd)
            work(w, *args)

        os._exit(_run_task(task, w))
    os.close(w)
    return pid, r


def _run_task(work, w: int) -> int:
    """In a task child: `work(w)`, an exception reported on `w`; the child's exit code."""
    try:
        work(w)
    except BaseException as exc:  # noqa: BLE001 - reported to the monitor
        try:
            _send(w, error=str(exc), category=type(exc).__name__)
        except OSError:
            pass
        return 1
    return 0


def fork_waiting(close: tuple = ()) -> tuple[int, object] | None:
    """Fork a child that is to wait for one request on a SOCK_SEQPACKET pair: (pid, our
    end) in the parent, (0, its end) in the child, None if the fork failed. The child
    has closed our end and the sockets in `close`, and dies with its parent (PDEATHSIG
    SIGKILL, set before it checks that the parent is still the one that forked it)
    until it clears that itself."""
    import socket

    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    parent = os.getpid()
    try:
        pid = os.fork()
    except OSError:
        ours.close()
        theirs.close()
        return None
    if pid == 0:
        try:
            ours.close()
            for sock in close:
                sock.close()
            ksys.prctl(_PR_SET_PDEATHSIG, 9)
            if os.getppid() == parent:
                return 0, theirs
        except BaseException:  # noqa: BLE001 - a child that cannot wait has nothing to do
            pass
        os._exit(0)
    theirs.close()
    return pid, ours


def prefork_starter(close: tuple = ()) -> tuple[int, object] | None:
    """Fork, ahead of any request, a child that waits for one `starter` task (see
    `hand_starter`): a spare monitor does this, so its container's create does not wait
    for a fork. The child closes `close` (sockets it must not hold) and dies with its
    parent until it has its task. (pid, our end of its channel), or None."""
    forked = fork_waiting(close)
    if forked is None or forked[0]:
        return forked
    import socket

    chan, code = forked[1], 0
    try:
        container_create.warm_up()  # while it waits: the create's first-run costs now
        msg, fds, _flags, _addr = socket.recv_fds(chan, 1 << 20, 5)
        chan.close()
        if not msg or len(fds) != 5:
            os._exit(0)
        w, stdio, go = fds[0], fds[1:4], fds[4]
        task = fastjson.loads(msg)

        def start(w: int) -> None:
            os.chdir(task["p"]["bundle"])
            starter(w, task["p"], stdio, task["console"], go)

        code = _run_task(start, w)
    finally:
        os._exit(code)


def hand_starter(pre: tuple, p: dict, stdio: list[int], console: str | None,
                 go: int) -> tuple[int, int] | None:
    """Give `starter`'s task to a child `prefork_starter` made; (pid, fd to read its
    reports from) as `fork_task` returns, or None if it is gone (then fork one)."""
    pid, sock = pre
    r, w = os.pipe()
    try:
        import socket

        socket.send_fds(sock, [fastjson.dumps({"p": p, "console": console}).encode()],
                        [w, *stdio, go])
    except OSError:
        os.close(r)
        reap_child(pid)
        return None
    finally:
        os.close(w)
        sock.close()
    return pid, r


def _use_stdio(fds: list[int]) -> None:
    for target, source in enumerate(fds):
        os.dup2(source, target)


def _load_config(bundle: str) -> dict:
    with open(os.path.join(bundle, "config.json"), "rb") as f:
        return fastjson.loads(f.read())


def _resolve_user(p: dict) -> None:
    spec = p.get("user") or ""
    if not spec and not p.get("group_add"):
        return
    path = os.path.join(p["bundle"], "config.json")
    config = _load_config(p["bundle"])
    rootfs = os.path.join(p["bundle"], "rootfs")
    config["process"]["user"], home = users.resolve(rootfs, spec, p.get("group_add"))
    env = config["process"]["env"]
    if home and not any(e.startswith("HOME=") for e in env):
        env.append(f"HOME={home}")
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(fastjson.dumps(config).encode())
    os.rename(tmp, path)


def starter(report: int, p: dict, stdio: list[int], console: str | None, go: int) -> None:
    """Mount the rootfs and create the container; on "g" from the monitor, start it."""
    mount_rootfs(p)
    _use_stdio(stdio)
    _resolve_user(p)
    record, cgroup = container_create.create_held(p["runtime_root"], p["id"], p["bundle"],
                                                  console_socket=console)
    devnull = os.open("/dev/null", os.O_RDWR)
    _use_stdio([devnull] * 3)  # the container holds its stdio now; we must not
    _send(report, pid=record["pid"])
    if os.read(go, 1) != b"g":
        return  # the monitor gave up on this start; it kills init itself
    # started from the record and cgroup create made, not looked up again (as run does)
    container_start.start_container(containers.Container(p["runtime_root"], record, cgroup))
    _send(report, started=True)


def mount_rootfs(p: dict) -> None:
    """Mount the container's rootfs (the image's overlay, or a bind) on <bundle>/rootfs.

    In the starter task, not the monitor: the pages this work touches stay out of the
    long-lived monitor.
    """
    target = os.path.join(p["bundle"], "rootfs")
    os.makedirs(target, exist_ok=True)
    if os.path.ismount(target):
        return  # a restart, or a monitor started again over a mounted rootfs
    for m in p["rootfs_mounts"]:
        if m["type"] == "bind":
            ksys.mount(m["source"], target, None, ksys.MS_BIND | ksys.MS_REC)
            if "ro" in m.get("options", []):
                ksys.mount(None, target, None,
                           ksys.MS_BIND | ksys.MS_REMOUNT | ksys.MS_RDONLY)
            continue
        base, fitted = fit_overlay(m)
        options = fitted.get("options", [])
        cwd = os.getcwd()
        if base:
            os.chdir(base)
        try:
            if p.get("auto_remove") and fitted["type"] == "overlay":
                # --rm: the upper dir is thrown away at the end, so it need not
                # survive a crash; no syncs, and the unmount no longer waits for
                # the upper file system's sync (tens of ms on a busy disk).
                try:
                    ksys.mount(fitted.get("source", "overlay"), target, "overlay", 0,
                               ",".join([*options, "volatile"]))
                    continue
                except OSError:
                    pass  # a kernel before 5.10: mount it as any other
            ksys.mount(fitted.get("source", "overlay"), target, fitted["type"], 0,
                       ",".join(options))
        finally:
            os.chdir(cwd)


def exec_child(report: int, p: dict, process: dict | None, args: list[str] | None,
               user: str, stdio: list[int], console: str | None) -> None:
    """Start one more process in the container; report its pid."""
    _use_stdio(stdio)
    if process is None:  # a health probe: the container's own process, another argv
        process = dict(_load_config(p["bundle"])["process"], args=args, terminal=False)
        process.pop("rlimits", None)
    if user:
        process["user"], _home = users.resolve(os.path.join(p["bundle"], "rootfs"), user)
    # we exit right after: join the container here rather than through a stage1 child
    pid = container_exec.exec_process(p["runtime_root"], p["id"], process, detach=True,
                                      console_socket=console, here=True)
    _send(report, pid=pid)


def teardown(report: int, p: dict) -> None:
    """After init's exit: was it an OOM kill; then remove the runtime's container."""
    oom = oom_killed(p)
    container_delete.delete(p["runtime_root"], p["id"], force=True)
    _send(report, oom=oom)


def teardown_here(p: dict) -> bool:
    """`teardown` in the calling process (a monitor on its way out); whether OOM struck."""
    oom = oom_killed(p)
    delete_here(p)
    return oom


def delete_here(p: dict) -> None:
    """Remove the runtime's container (cgroup, state) from the calling process."""
    try:
        container_delete.delete(p["runtime_root"], p["id"], force=True)
    except Exception:  # noqa: BLE001 - as a failed task child: the exit is recorded anyway
        pass


def oom_killed(p: dict) -> bool:
    """Whether the OOM killer struck in the container's cgroup (opened by the path the
    daemon gave, without reading the runtime's state)."""
    try:
        if p.get("cgroups_path"):
            from knarr.runtime import cgroups

            return cgroups.open_cgroup(p["cgroups_path"], p["id"]).oom_killed()
        return containers.load(p["runtime_root"], p["id"]).cgroup.oom_killed()
    except Exception:  # noqa: BLE001 - no cgroup, no OOM kill to report
        return False


def signal_all(report: int, p: dict, signum: int) -> None:
    """Signal every process in the container's cgroup."""
    containers.load(p["runtime_root"], p["id"]).signal(signum, all_processes=True)
    _send(report, done=True)
