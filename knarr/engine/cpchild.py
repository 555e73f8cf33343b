"""The process that does a `cp`'s file work, inside the container's root.

The daemon starts it (a small fresh interpreter, single-threaded) for each
archive request. It enters the container's root before it touches a path:

- a running container: chroot into /proc/<pid>/root, the container's own root
  with every mount it has (volumes, binds, tmpfs) exactly as the container sees
  them;
- a stopped one: a private mount namespace, the container's overlay (or the
  monitor's still-mounted rootfs) bound at a scratch directory, each volume and
  bind mounted at its destination, resolved inside that root by openat2
  (RESOLVE_IN_ROOT) and mounted through the resulting fd, then chroot;
- a plain directory (a volume being filled from its image): chroot into it.

From then on the kernel resolves every path inside the root: a symlink to `/`
or `..`, even one swapped in while the copy runs, names the container's root,
never the host's. Members are created with *at calls on directory fds
(`knarr.tarstream`). Protocol: argv[1] is a JSON request; the first line on
stdout is a JSON reply ({"stat": ...} or {"error": ..., "kind": ...}); for
`get` the tar stream follows it; `put` reads the tar on stdin and then replies.
"""

import base64
import json
import os
import stat
import sys
import time

from knarr import tarstream

__all__ = ["main"]

_DIR = 1 << 31
_SYMLINK = 1 << 27


def _reply(doc: dict) -> None:
    os.write(1, json.dumps(doc).encode() + b"\n")


def _enter_pid(pid: int) -> None:
    fd = os.open(f"/proc/{pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    os.fchdir(fd)
    os.chroot(".")
    os.chdir("/")
    os.close(fd)


def _enter_mounts(request: dict) -> None:
    from knarr import sys as ksys

    ksys.unshare(ksys.CLONE_NEWNS)
    ksys.mount(None, "/", None, ksys.MS_REC | ksys.MS_PRIVATE)
    here = request["scratch"]
    if request.get("rootfs"):
        ksys.mount(request["rootfs"], here, None, ksys.MS_BIND | ksys.MS_REC)
    else:
        for m in request["mounts"]:
            if m["type"] == "bind":
                ksys.mount(m["source"], here, None, ksys.MS_BIND)
            else:
                ksys.mount("overlay", here, "overlay", 0, ",".join(m["options"]))
    root_fd = os.open(here, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    for bind in sorted(request.get("binds") or [], key=lambda b: b["destination"].count("/")):
        _mount_in_root(root_fd, bind)
    os.fchdir(root_fd)
    os.chroot(".")
    os.chdir("/")
    os.close(root_fd)


def _mount_in_root(root_fd: int, bind: dict) -> None:
    from knarr import sys as ksys

    source = bind["source"]
    is_dir = os.path.isdir(source)
    dest = _make_in_root(root_fd, bind["destination"], is_dir)
    if dest is None:
        return
    try:
        target = f"/proc/self/fd/{dest}"
        ksys.mount(source, target, None, ksys.MS_BIND | ksys.MS_REC)
        if bind.get("ro"):
            ksys.mount(None, target, None, ksys.MS_REMOUNT | ksys.MS_BIND | ksys.MS_RDONLY)
    finally:
        os.close(dest)


def _make_in_root(root_fd: int, path: str, is_dir: bool) -> int | None:
    """An O_PATH fd of `path` resolved inside the root, made (dirs 0755) if missing."""
    from knarr import sys as ksys

    parts = [p for p in path.split("/") if p not in ("", ".")]
    done = ""
    for i, part in enumerate(parts):
        done = f"{done}/{part}"
        try:
            fd = ksys.openat2(root_fd, done, os.O_PATH, 0, ksys.RESOLVE_IN_ROOT)
        except FileNotFoundError:
            parent = ksys.openat2(root_fd, done.rsplit("/", 1)[0] or "/",
                                  os.O_PATH | os.O_DIRECTORY, 0, ksys.RESOLVE_IN_ROOT)
            try:
                real = os.open(".", os.O_RDONLY | os.O_DIRECTORY,
                               dir_fd=parent)  # O_PATH fds cannot be used for mkdirat
                try:
                    if i < len(parts) - 1 or is_dir:
                        os.mkdir(part, 0o755, dir_fd=real)
                    else:
                        os.close(os.open(part, os.O_CREAT | os.O_EXCL | os.O_WRONLY |
                                         os.O_NOFOLLOW, 0o644, dir_fd=real))
                finally:
                    os.close(real)
            finally:
                os.close(parent)
            fd = ksys.openat2(root_fd, done, os.O_PATH, 0, ksys.RESOLVE_IN_ROOT)
        if i == len(parts) - 1:
            return fd
        os.close(fd)
    return None


def _rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _stat(path: str) -> dict:
    st = os.lstat(path)
    mode = stat.S_IMODE(st.st_mode) | (_DIR if stat.S_ISDIR(st.st_mode) else 0) | \
        (_SYMLINK if stat.S_ISLNK(st.st_mode) else 0)
    return {"name": os.path.basename(os.path.normpath(path)) or "/", "size": st.st_size,
            "mode": mode, "mtime": _rfc3339(st.st_mtime),
            "linkTarget": os.path.realpath(path) if stat.S_ISLNK(st.st_mode) else ""}


def _split(path: str) -> tuple[str, str]:
    """(parent directory, last name) of a container path; "/" is ("/", ".")."""
    norm = os.path.normpath("/" + path.lstrip("/"))
    if norm == "/":
        return "/", "."
    return os.path.dirname(norm), os.path.basename(norm)


def _get(request: dict) -> None:
    path = request["path"]
    doc = _stat(path)
    parent, name = _split(path)
    parent_fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
    out = 1
    if request.get("sock_fd"):  # the client's socket: the response head, then the tar
        out = request["sock_fd"]
        os.set_blocking(out, True)
        stat_header = base64.b64encode(json.dumps(doc).encode()).decode()
        _write_all(out, request["head"].replace("@STAT@", stat_header).encode("latin-1"))
    _reply({"stat": doc})
    arcname = request.get("arcname", name if name != "." else ".")
    try:
        tarstream.write_tree(out, parent_fd, name, arcname,
                             follow=bool(request.get("follow")))
    except OSError:  # the reply is out: a broken stream is all the caller can be told
        os._exit(1)


def _write_all(fd: int, data: bytes) -> None:
    done = 0
    while done < len(data):
        done += os.write(fd, data[done:])


def _socket_source(request: dict) -> tarstream.Source:
    """The request body straight off the client's socket, after the bytes the daemon had
    already read (sent on stdin)."""
    held = b""
    while piece := os.read(0, 1 << 20):
        held += piece
    fd = request["sock_fd"]
    os.set_blocking(fd, True)
    framing = request["framing"]
    return tarstream.Source(fd=fd, framing=(held, framing[1] if framing[0] == "length"
                                             else None))


def _in_upper(upper_fd: int, path: str):
    """extract's in_place test inside an overlay: a file of the copy's destination may be
    rewritten in place when it is the upper layer's own (the same inode is at that path
    of the upper dir, looked up without leaving it); an image's file, which writing
    would copy up whole first, is replaced."""
    from knarr import sys as ksys

    base = os.path.realpath(path).strip("/")

    def fits(parts: list[str], st: os.stat_result) -> bool:
        rel = "/".join([base, *parts] if base else parts)
        try:
            fd = ksys.openat2(upper_fd, rel, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, 0,
                              ksys.RESOLVE_IN_ROOT | ksys.RESOLVE_NO_MAGICLINKS)
        except OSError:
            return False
        try:
            found = os.fstat(fd)
        finally:
            os.close(fd)
        return stat.S_ISREG(found.st_mode) and found.st_ino == st.st_ino
    return fits


def _put(request: dict) -> None:
    path = request["path"]
    source = _socket_source(request) if request.get("sock_fd") else tarstream.Source(fd=0)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        if request.get("sock_fd"):  # read the body all the same: the client is sending it
            while source.read(1 << 20):
                pass
        if isinstance(exc, NotADirectoryError):
            _reply({"error": "extraction point is not a directory", "kind": "invalid"})
            return
        raise
    _reply({"ready": True})
    chown = request.get("chown", True)
    upper = request.get("upper_fd")
    tarstream.extract(source, fd, chown=tuple(chown) if isinstance(chown, list) else chown,
                      no_overwrite_dir_nondir=bool(request.get("no_overwrite")),
                      in_place=_in_upper(upper, path) if upper is not None else False)
    _reply({"ok": True})


def main() -> None:
    """A fresh interpreter's entry: the request is argv[1]."""
    import tarfile  # noqa: F401 - every module must be loaded before chroot leaves it behind

    run(json.loads(sys.argv[1]))


def forked(request: dict, fds: list[int]) -> None:
    """The entry in a child of the fork helper (which has every module loaded): `fds` are
    its stdin, stdout and stderr, then the client's socket if the request has one. The
    first line out is {"pid": ...}; then as `main`. Never returns."""
    import fcntl

    code = 1
    try:
        high = [fd if fd > 2 else fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3) for fd in fds]
        for target, fd in enumerate(high[:3]):
            os.dup2(fd, target)
        for fd in set(high[:3]) | set(fds[:3]):
            if fd > 2:
                os.close(fd)
        if len(high) > 3:
            request["sock_fd"] = high[3]
        _reply({"pid": os.getpid()})
        run(request)
        code = 0
    except BaseException:  # noqa: BLE001 - told on stderr, as a fresh interpreter would
        sys.excepthook(*sys.exc_info())
    finally:
        try:
            sys.stderr.flush()
        finally:
            os._exit(code)


def run(request: dict) -> None:
    """Enter the root the request names, then stat, get or put."""
    try:
        if request.get("upper") and request.get("op") == "put":  # before the root is entered
            from knarr import sys as ksys  # noqa: F401 - for _in_upper, after the chroot

            request["upper_fd"] = os.open(request["upper"], os.O_PATH | os.O_DIRECTORY |
                                          os.O_CLOEXEC)
        if request.get("pid"):
            _enter_pid(request["pid"])
        elif request.get("dir"):
            os.chroot(request["dir"])
            os.chdir("/")
        else:
            _enter_mounts(request)
        op = request["op"]
        if op == "stat":
            _reply({"stat": _stat(request["path"])})
        elif op == "get":
            _get(request)
        else:
            _put(request)
    except BrokenPipeError:
        pass
    except FileNotFoundError as exc:
        _reply({"error": str(exc.strerror), "kind": "notfound"})
    except (OSError, tarstream.TarError) as exc:
        _reply({"error": str(exc), "kind": "invalid"})
