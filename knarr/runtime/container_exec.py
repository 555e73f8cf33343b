"""exec: run one more process inside a running container."""

import os

from knarr.errors import FailedPrecondition, InvalidArgument
from knarr.oci import runtime_spec
from knarr.runtime import console, init, namespaces, process, signals, state
from knarr.runtime import container as containers
from knarr.runtime.channel import Channel, pair
from knarr.runtime.container_run import forward_signals
from knarr.runtime.waiting import become_subreaper, wait_exit_status

__all__ = ["exec_process"]


def exec_process(root: str, container_id: str, proc: dict, *, detach: bool = False,
                 console_socket: str | None = None, pid_file: str | None = None,
                 preserve_fds: int = 0, here: bool = False) -> int:
    """Start `proc` in the container; return its pid (detach) or its exit status.

    `here` (with detach, without pid_file): the calling process joins the container's
    cgroup and namespaces itself and forks the process from there, instead of a stage1
    child doing it; one fork fewer, for a caller that exits right after (the monitor's
    exec task).
    """
    if here and (not detach or pid_file):
        raise InvalidArgument("exec here: only detached, without a pid file")
    c = containers.load(root, container_id)
    status = c.status()
    if status not in (state.Status.RUNNING, state.Status.CREATED):
        raise c.refuse("exec in", status)
    runtime_spec.validate_config({"ociVersion": runtime_spec.SPEC_VERSION, "root": {"path": "/"},
                                  "process": proc})
    if proc.get("terminal") and not console_socket and detach:
        raise InvalidArgument("exec --detach with a terminal needs --console-socket")
    ctx = {"process": proc, "console_socket": console_socket, "preserve_fds": preserve_fds,
           "seccomp": c.record.get("seccomp"),
           "namespaces": namespaces.namespace_paths_of(c.pid, namespaces.FLAGS)}
    init.preload({"linux": {"seccomp": ctx["seccomp"]}}, root)  # before setns hides the host
    if not detach:
        become_subreaper()
    relay = None
    if proc.get("terminal") and not ctx["console_socket"]:
        relay = console.Relay(root, container_id)
        ctx["console_socket"] = relay.path
    ctx["cgroup"] = c.cgroup
    try:
        target = _spawn_here(ctx, c) if here else _spawn(ctx, c)
        master = relay.receive() if relay else None
    finally:
        if relay:
            relay.close()
    if pid_file:
        state.write_atomic(os.path.abspath(pid_file), str(target).encode(), 0o644)
    if detach:
        return target
    forward_signals(target, master)
    if master is not None:
        console.proxy(master)
    return wait_exit_status(target)


def _spawn(ctx: dict, c: containers.Container) -> int:
    parent, child = pair()
    pid = os.fork()
    if pid == 0:
        parent.close()
        _stage1(child, ctx)
    child.close()
    try:
        return _drive(parent, pid, c)
    finally:
        parent.close()


def _drive(ch: Channel, stage1: int, c: containers.Container) -> int:
    try:
        message = ch.expect("pid", f"exec in container {c.id}")
    finally:
        os.waitpid(stage1, 0)
    return _wait_exec(ch, message["pid"])


def _spawn_here(ctx: dict, c: containers.Container) -> int:
    """`_stage1`'s work in this process: join, fork the process, wait for its exec."""
    parent, child = pair()
    try:
        v2_fd, sock, cgroup_ns = _enter(ctx)
        pid = _fork_into(v2_fd)
        if pid == 0:
            parent.close()
            _become(child, ctx, sock, cgroup_ns)
        child.close()
        for fd in [fd for _, fd in cgroup_ns] + ([v2_fd] if v2_fd >= 0 else []):
            os.close(fd)
        if sock is not None:
            sock.close()
        return _wait_exec(parent, pid)
    finally:
        parent.close()


def _wait_exec(ch: Channel, target: int) -> int:
    """`target`'s pid once it has exec'd (the channel closes on exec); its error if not."""
    reply = ch.recv()
    if reply is not None and reply["kind"] == "error":
        from knarr.runtime.channel import error_from

        try:
            os.waitpid(target, 0)
        except ChildProcessError:
            pass
        raise error_from(reply)
    return target


def _stage1(ch: Channel, ctx: dict) -> None:
    """Join the container's cgroup and namespaces, fork the process there, report its pid."""
    try:
        v2_fd, sock, cgroup_ns = _enter(ctx)
        pid = _fork_into(v2_fd)
        if pid == 0:
            _become(ch, ctx, sock, cgroup_ns)
        ch.send("pid", pid=pid)
        os._exit(0)
    except BaseException as exc:  # noqa: BLE001
        ch.send_error(exc)
        os._exit(1)


def _enter(ctx: dict) -> tuple[int, object, list[tuple[str, int]]]:
    """Move this (one-threaded) process into the container's cgroup and namespaces.

    It joins the v1 hierarchies through `tasks` (no migration lock) and returns an fd
    of the v2 directory, to fork the process straight into (clone3): no cgroup.procs
    write, so no wait for an RCU grace period. It stays in our cgroup namespace (clone3
    checks the target against the caller's): the child joins the returned one. Also
    returns the console socket, connected while the host's paths are still in view.
    """
    sock = console.connect(ctx["console_socket"]) if ctx["console_socket"] else None
    v2 = ctx["cgroup"].join_self()
    v2_fd = os.open(v2, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC) if v2 else -1
    opened = namespaces.open_paths(namespaces.join_paths(ctx["namespaces"]))
    cgroup_ns = [(kind, fd) for kind, fd in opened if kind == "cgroup"]
    namespaces.join([(kind, fd) for kind, fd in opened if kind != "cgroup"])
    return v2_fd, sock, cgroup_ns


def _fork_into(v2_fd: int) -> int:
    """os.fork, the child born in the cgroup v2 directory open at `v2_fd` (if not -1)."""
    if v2_fd < 0:
        return os.fork()
    from knarr import sys as ksys

    try:
        return ksys.fork_into_cgroup(v2_fd)
    except OSError:
        pass
    # no clone3 into a cgroup here (old kernel, a seccomp filter): move ourselves first;
    # opened by fd, since our mount namespace may be the container's by now
    fd = os.open("cgroup.procs", os.O_WRONLY | os.O_CLOEXEC, dir_fd=v2_fd)
    try:
        os.write(fd, b"0")
    finally:
        os.close(fd)
    return os.fork()


def _become(ch: Channel, ctx: dict, sock, cgroup_ns: list[tuple[str, int]]) -> None:
    try:
        namespaces.join(cgroup_ns)
        proc = ctx["process"]
        os.setsid()
        if proc.get("terminal"):
            master, slave = console.open_pty()
            size = proc.get("consoleSize")
            if size:
                console.set_size(master, size.get("height", 0), size.get("width", 0))
            console.send_master(sock, master)
            os.close(master)
            console.make_controlling(slave)
        if sock is not None:
            sock.close()
        for fd in range(3, 3 + ctx["preserve_fds"]):
            os.set_inheritable(fd, True)
        process.find_executable(proc)
        signals.reset_for_exec()
        process.finalize(proc, seccomp=ctx["seccomp"])
        process.exec_process(proc)
    except BaseException as exc:  # noqa: BLE001
        ch.send_error(exc)
        os._exit(127 if "not found" in str(exc) else 126)
    raise FailedPrecondition("exec returned")
