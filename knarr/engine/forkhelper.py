"""The fork helper: a small, single-threaded process that forks monitors on request.

The daemon forks it first thing, before it imports asyncio or the API, so the
helper holds only the interpreter, the runtime and the monitor. A monitor is
then a fork of the helper (its pages shared copy-on-write, frozen from the
garbage collector so they stay shared) and starting a container never pays a
new interpreter. After a moment idle (_SPARE_AFTER) the helper forks a spare, which
waits for the next monitor request and becomes that monitor: a start then finds its
monitor forked already. Requests arrive on a SOCK_SEQPACKET socket: the path of the
monitor's parameters, with one end of the daemon's report channel attached; or a
`cp` request (JSON, with the copy process's stdin, stdout, stderr and maybe the
client's socket attached), for which it forks the copy process (`cpchild.forked`):
a `docker cp` then pays a fork, not an interpreter start and its imports.
"""

import _signal
import gc
import os
import select
import socket

from knarr.engine import monitor_main, monitor_tasks

__all__ = ["start", "spawn", "spawn_copy", "restart"]

_PR_SET_PDEATHSIG = 1
_MAX_REQUEST = 1 << 16  # a cp request carries its response head and the root's mounts
_MAX_FDS = 4
_SPARE_AFTER = 0.05  # seconds idle before a spare monitor is forked
_spare: socket.socket | None = None  # our end of the spare monitor's request channel


def _serve(sock: socket.socket) -> None:
    _signal.signal(_signal.SIGINT, _signal.SIG_IGN)
    _signal.signal(_signal.SIGTERM, _signal.SIG_DFL)
    # Monitors are our children (one fork, not two) and the kernel reaps them: no zombies,
    # no waiting. When we die they are reparented to init and live on.
    _signal.signal(_signal.SIGCHLD, _signal.SIG_IGN)
    from knarr import sys as ksys

    ksys.prctl(_PR_SET_PDEATHSIG, _signal.SIGKILL)
    _preload()
    gc.collect()
    try:  # what imports and libseccomp freed: pages every monitor would map and be charged
        ksys.malloc_trim()
    except AttributeError:
        pass
    gc.freeze()
    global _spare
    while True:
        if _spare is None and not select.select([sock], [], [], _SPARE_AFTER)[0]:
            _spare = _fork_spare(sock)  # idle a moment: the next start's monitor, forked now
            continue
        try:
            msg, fds, flags, _addr = socket.recv_fds(sock, _MAX_REQUEST, _MAX_FDS)
        except InterruptedError:
            continue
        except OSError:
            os._exit(0)
        if not msg:
            os._exit(0)
        if msg.startswith(b"{"):
            if not flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
                _fork_copy(sock, msg, fds)
            for fd in fds:
                os.close(fd)
            continue
        if not _hand_to_spare(msg, fds):
            report = socket.socket(fileno=fds[0]) if fds else None
            _fork_monitor(sock, msg.decode(), report)
            if report is not None:
                report.close()
        else:
            for fd in fds:
                os.close(fd)


def _hand_to_spare(msg: bytes, fds: list[int]) -> bool:
    """Give a monitor request to the spare, if there is one; whether it took it."""
    global _spare
    if _spare is None:
        return False
    spare, _spare = _spare, None
    try:
        socket.send_fds(spare, [msg], fds)
        return True
    except OSError:  # it died (killed?): fork one as before
        return False
    finally:
        spare.close()


def _fork_spare(sock: socket.socket) -> socket.socket | None:
    """A child that waits for one monitor request and then is that monitor: the fork (a
    few ms of a start otherwise) is done before the start asks for it. It dies with us."""
    forked = monitor_tasks.fork_waiting(close=(sock,))
    if forked is None:
        return None
    pid, chan = forked
    if pid:
        return chan  # our end: the next monitor request goes there
    try:
        _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)  # the monitor reaps its own
        from knarr import sys as ksys

        # its container's starter task, forked ahead too
        starter = monitor_tasks.prefork_starter(close=(chan,))
        msg, fds, _flags, _addr = socket.recv_fds(chan, _MAX_REQUEST, _MAX_FDS)
        chan.close()
        if msg:
            ksys.prctl(_PR_SET_PDEATHSIG, 0)  # a monitor outlives the daemon
            report = socket.socket(fileno=fds[0]) if fds else None
            monitor_main.main(msg.decode(), report, starter)
    finally:
        os._exit(0)


def _preload() -> None:
    """Load now, once, what every container start needs: the seccomp module, libseccomp
    and Docker's profile compiled once (libseccomp's own tables), shared by all forks."""
    try:
        from knarr.runtime import seccomp

        seccomp.validate(seccomp.default_profile())
    except Exception:  # noqa: BLE001 - a host without libseccomp starts without seccomp
        pass
    try:
        _preload_cgroups()
    except Exception:  # noqa: BLE001 - only an optimisation; the tasks look for themselves
        pass
    try:  # the copy process's code and everything it needs before its chroot
        import json  # noqa: F401
        import tarfile  # noqa: F401

        from knarr.engine import cpchild  # noqa: F401
    except Exception:  # noqa: BLE001 - only an optimisation
        pass
    from knarr.engine.monitor_warm import warm_up

    try:
        warm_up()
    except Exception:  # noqa: BLE001 - only an optimisation
        pass


def _preload_cgroups(root: str = "/sys/fs/cgroup") -> None:
    """The host's cgroup driver and its hierarchies (mountinfo parsed once): every create,
    exec and teardown task otherwise imports the driver and parses mountinfo again."""
    from knarr.runtime import cgroups

    if os.path.exists(os.path.join(root, "cgroup.controllers")):
        cgroups.V2Cgroup  # noqa: B018 - the attribute access imports the driver
    else:
        cgroups.V1Cgroup  # noqa: B018
        cgroups.find_hierarchies(root)
    from knarr.runtime import container, container_delete  # noqa: F401 - teardown's


def _fork_copy(sock: socket.socket, msg: bytes, fds: list[int]) -> None:
    """A copy process for one archive request (the caller closes our copies of `fds`)."""
    try:
        pid = os.fork()
    except OSError:
        return  # the daemon sees its pipes close without a pid line
    if pid == 0:
        try:
            _close_channels(sock)
            _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)
            import json

            from knarr.engine import cpchild

            cpchild.forked(json.loads(msg), fds)
        finally:
            os._exit(1)


def _fork_monitor(sock: socket.socket, params_path: str, report) -> None:
    if os.fork() == 0:
        try:
            _close_channels(sock)
            _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)  # the monitor reaps its own
            # A monitor outlives the daemon: fork cleared the helper's parent-death signal.
            monitor_main.main(params_path, report)
        finally:
            os._exit(0)


def _close_channels(sock: socket.socket) -> None:
    """In a child: the helper's request channel and its spare's are not ours."""
    sock.close()
    if _spare is not None:
        _spare.close()


def start() -> tuple[socket.socket, int]:
    """Fork the helper from this (still small) process; return (our end, its pid)."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid == 0:
        try:
            ours.close()
            _serve(theirs)
        finally:
            os._exit(0)
    theirs.close()
    return ours, pid


def spawn(sock: socket.socket, params_path: str, report_fd: int) -> None:
    """Ask the helper for a monitor that reads `params_path` and reports on `report_fd`."""
    socket.send_fds(sock, [params_path.encode()], [report_fd])


def spawn_copy(sock: socket.socket, request: bytes, fds: list[int]) -> None:
    """Ask the helper for a copy process running `request` (JSON) on `fds` (stdin, stdout,
    stderr and maybe the client's socket); it says its pid first on its stdout."""
    if len(request) > _MAX_REQUEST or len(fds) > _MAX_FDS:
        raise OSError(f"a copy request of {len(request)} bytes and {len(fds)} fds is too big "
                      "for the fork helper")
    socket.send_fds(sock, [request], fds)


def restart() -> tuple[socket.socket, int]:
    """A new helper when the first is gone: a fresh, small interpreter (the daemon itself
    is too big by now to fork one from)."""
    import subprocess
    import sys

    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    code = (f"import sys; sys.path.insert(0, {repo!r}); import socket; "
            f"from knarr.engine import forkhelper; "
            f"forkhelper._serve(socket.socket(fileno={theirs.fileno()}))")
    proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", code], pass_fds=[theirs.fileno()],
                            stdin=subprocess.DEVNULL, start_new_session=True)
    theirs.close()
    return ours, proc.pid

