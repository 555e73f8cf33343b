"""docker cp: a path of a container's file system as a tar stream, out and in.

The file work happens in `cpchild`, a process of its own that enters the
container's root (chroot into a running container's /proc/<pid>/root, or a
private mount namespace with the overlay and the container's volumes and binds
for a stopped one) before it resolves a path, so no symlink can take it outside.
The daemon only moves bytes between that process's pipes and the HTTP stream.
"""

import asyncio
import base64
import json
import os
import subprocess
import sys
import tempfile

from knarr.errors import InvalidArgument, NotFound, Unavailable

__all__ = ["ArchivesMixin", "stat_header"]

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_LAUNCH = (f"import sys; sys.path.insert(0, {_REPO!r}); "
           "from knarr.engine import cpchild; cpchild.main()")
_F_SETPIPE_SZ = 1031
_PIPE_SIZE = 1 << 20


def stat_header(doc: dict) -> str:
    """Docker's X-Docker-Container-Path-Stat header value for a stat document."""
    return base64.b64encode(json.dumps(doc).encode()).decode()


def _pipe() -> tuple[int, int]:
    r, w = os.pipe2(os.O_CLOEXEC)
    try:
        import fcntl

        fcntl.fcntl(w, _F_SETPIPE_SZ, _PIPE_SIZE)
    except OSError:
        pass  # above /proc/sys/fs/pipe-max-size: the default will do
    return r, w


async def _write_all(fd: int, data: bytes) -> None:
    loop = asyncio.get_running_loop()
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            ready = loop.create_future()
            loop.add_writer(fd, ready.set_result, None)
            try:
                await ready
            finally:
                loop.remove_writer(fd)


class _Forked:
    """The part of asyncio's Process that CpChild uses, for a copy process the fork helper
    made (not our child: its exit is seen through a pidfd, its status is not ours)."""

    def __init__(self, pid: int, stderr: asyncio.StreamReader) -> None:
        self.pid, self.stderr, self.returncode = pid, stderr, None
        try:
            self.pidfd: int | None = os.pidfd_open(pid)
        except OSError:  # gone already
            self.pidfd, self.returncode = None, 0

    def kill(self) -> None:
        if self.pidfd is not None and self.returncode is None:
            import signal

            try:
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            except ProcessLookupError:
                pass

    async def wait(self) -> int:
        if self.pidfd is not None:
            loop = asyncio.get_running_loop()
            gone = loop.create_future()
            loop.add_reader(self.pidfd, lambda: gone.done() or gone.set_result(None))
            try:
                await gone
            finally:
                loop.remove_reader(self.pidfd)
                os.close(self.pidfd)
                self.pidfd = None
        self.returncode = 0
        return 0


class CpChild:
    """A running cpchild: its reply reader, the pipe into it, the process."""

    def __init__(self, proc, reader: asyncio.StreamReader, stdin_fd: int | None,
                 scratch: str | None) -> None:
        self.proc, self.reader, self.stdin_fd, self.scratch = proc, reader, stdin_fd, scratch

    async def reply(self, what: str) -> dict:
        line = await self.reader.readline()
        if not line:
            err = await self.finish()
            raise Unavailable(f"{what}: the copy process ended without a reply: {err}")
        return json.loads(line)

    async def finish(self) -> str:
        """Close our ends, wait for the process, remove the scratch dir; its stderr."""
        if self.stdin_fd is not None:
            os.close(self.stdin_fd)
            self.stdin_fd = None
        err = await self.proc.stderr.read()
        await self.proc.wait()
        if self.scratch:
            try:
                os.rmdir(self.scratch)
            except OSError:
                pass
        return err.decode(errors="replace").strip()[-2000:]


class ArchivesMixin:
    """HEAD, GET and PUT of /containers/{id}/archive, and volume copy-up."""

    def _cp_root(self, record: dict) -> dict:
        """Where cpchild finds the container's root: its pid, or mounts to make."""
        cid = record["Id"]
        state = self.state(cid)
        upper = next((o[len("upperdir="):] for m in record["_snapshot"]["mounts"]
                      if m["type"] == "overlay" for o in m["options"]
                      if o.startswith("upperdir=")), None)
        if state["Running"] and state["Pid"]:
            return {"pid": state["Pid"], "upper": upper}
        rootfs = os.path.join(self.monitor_dir(cid), "rootfs")
        binds = []
        for m in record.get("Mounts") or []:
            if m["Type"] == "volume":
                binds.append({"source": self.volumes.mount(m["Name"]),
                              "destination": m["Destination"], "ro": not m["RW"]})
            elif m["Type"] == "bind" and os.path.exists(m["Source"]):
                binds.append({"source": m["Source"], "destination": m["Destination"],
                              "ro": not m["RW"]})
        return {"rootfs": rootfs if os.path.ismount(rootfs) else None,
                "mounts": record["_snapshot"]["mounts"], "binds": binds, "upper": upper}

    async def _cp_start(self, root: dict, request: dict, stdin: bool,
                        pass_fds: tuple = ()) -> CpChild:
        scratch = None
        if not root.get("pid") and not root.get("dir"):
            scratch = tempfile.mkdtemp(prefix="cp-", dir=self.exec_root)
        request = {**root, **request, "scratch": scratch}
        helper = getattr(self, "helper", None)
        if helper is not None:
            try:
                return await self._cp_fork(helper, request, stdin, pass_fds, scratch)
            except OSError:
                pass  # no helper to ask (it died): a fresh interpreter, as below
        out_r, out_w = _pipe()
        in_r = in_w = None
        if stdin:
            in_r, in_w = _pipe()
            os.set_blocking(in_w, False)
        loop = asyncio.get_running_loop()
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-I", "-S", "-c", _LAUNCH, json.dumps(request),
                stdin=in_r if stdin else subprocess.DEVNULL, stdout=out_w,
                stderr=subprocess.PIPE, pass_fds=pass_fds)
        finally:
            os.close(out_w)
            if in_r is not None:
                os.close(in_r)
        reader = asyncio.StreamReader(limit=1 << 22)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader),
                                     os.fdopen(out_r, "rb", 0))
        return CpChild(proc, reader, in_w, scratch)

    async def _cp_fork(self, helper, request: dict, stdin: bool, pass_fds: tuple,
                       scratch: str | None) -> CpChild:
        """The copy process forked by the fork helper, which has its code loaded."""
        from knarr.engine import forkhelper

        out_r, out_w = _pipe()
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        if stdin:
            in_r, in_w = _pipe()
            os.set_blocking(in_w, False)
        else:
            in_r, in_w = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC), None
        try:
            forkhelper.spawn_copy(helper, json.dumps(request).encode(),
                                  [in_r, out_w, err_w, *pass_fds])
        except OSError:
            for fd in (out_r, err_r, in_w):
                if fd is not None:
                    os.close(fd)
            raise
        finally:
            for fd in (in_r, out_w, err_w):
                os.close(fd)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=1 << 22)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader),
                                     os.fdopen(out_r, "rb", 0))
        errors = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(errors),
                                     os.fdopen(err_r, "rb", 0))
        line = await reader.readline()
        try:
            pid = json.loads(line)["pid"]
        except (ValueError, KeyError, TypeError):
            if in_w is not None:
                os.close(in_w)
            err = (await errors.read()).decode(errors="replace").strip()[-2000:]
            if scratch:
                try:
                    os.rmdir(scratch)
                except OSError:
                    pass
            raise Unavailable(f"the fork helper made no copy process: {err}") from None
        return CpChild(_Forked(pid, errors), reader, in_w, scratch)

    async def _cp_reply(self, child: CpChild, ref: str, path: str) -> dict:
        reply = await child.reply(f"copy {path} of {ref}")
        if "error" in reply:
            await child.finish()
            if reply["kind"] == "notfound":
                raise NotFound(f"Could not find the file {path} in container {ref}", path=path)
            raise InvalidArgument(reply["error"], path=path)
        return reply

    async def path_stat(self, ref: str, path: str) -> dict:
        """The stat document of a path in a container (HEAD .../archive)."""
        child = await self._cp_start(self._cp_root(self.record(ref)),
                                     {"op": "stat", "path": path}, False)
        reply = await self._cp_reply(child, ref, path)
        await child.finish()
        return reply["stat"]

    async def archive_get(self, ref: str, path: str, follow: bool = False,
                          root: dict | None = None, arcname: str | None = None):
        """(stat document, async iterator of the tar stream's pieces) of a path."""
        request = {"op": "get", "path": path, "follow": follow}
        if arcname is not None:
            request["arcname"] = arcname
        child = await self._cp_start(root or self._cp_root(self.record(ref)), request, False)
        reply = await self._cp_reply(child, ref, path)

        async def pieces():
            try:
                while chunk := await child.reader.read(1 << 20):
                    yield chunk
            finally:
                child.proc.kill() if child.proc.returncode is None else None
                await child.finish()

        return reply["stat"], pieces()

    async def archive_get_to_socket(self, ref: str, path: str, sock_fd: int, head: str) -> None:
        """GET .../archive with the bytes off the daemon's path: cpchild writes `head` (the
        response head, "@STAT@" standing for the stat header) and the tar stream straight
        into the client's socket. An error before anything is written raises as usual."""
        request = {"op": "get", "path": path, "sock_fd": sock_fd, "head": head}
        child = await self._cp_start(self._cp_root(self.record(ref)), request, False,
                                     (sock_fd,))
        try:
            await self._cp_reply(child, ref, path)
        finally:
            if child.proc.returncode is None:
                await child.finish()

    async def archive_put_from_socket(self, ref: str, path: str, sock_fd: int, held: bytes,
                                      framing: tuple, copy_uid_gid: bool = False,
                                      no_overwrite_dir_nondir: bool = False) -> None:
        """PUT .../archive with cpchild reading the request body (`framing`: ("chunked",)
        or ("length", n)) from the client's socket itself, after `held`, the part the
        daemon had already read."""
        record = self.record(ref)
        request = {"op": "put", "path": path, "no_overwrite": no_overwrite_dir_nondir,
                   "chown": True if copy_uid_gid else [0, 0], "sock_fd": sock_fd,
                   "framing": list(framing)}
        child = await self._cp_start(self._cp_root(record), request, True, (sock_fd,))
        try:
            await _write_all(child.stdin_fd, held)
        except BrokenPipeError:
            pass
        os.close(child.stdin_fd)
        child.stdin_fd = None
        try:
            reply = await self._cp_reply(child, ref, path)
            if "ready" in reply:
                await self._cp_reply(child, ref, path)
        finally:
            if child.proc.returncode is None:
                await child.finish()

    async def archive_put(self, ref: str, path: str, chunks, copy_uid_gid: bool = False,
                          no_overwrite_dir_nondir: bool = False) -> None:
        """Extract a tar stream (async iterator of pieces) into a directory of a container."""
        record = self.record(ref)
        request = {"op": "put", "path": path, "no_overwrite": no_overwrite_dir_nondir,
                   "chown": True if copy_uid_gid else [0, 0]}
        await self.put_tar(self._cp_root(record), request, chunks, ref)

    async def put_tar(self, root: dict, request: dict, chunks, ref: str) -> None:
        """Run a put cpchild in `root`, feeding it `chunks`."""
        child = await self._cp_start(root, request, True)
        await self._cp_reply(child, ref, request["path"])
        broken = False
        async for chunk in chunks:
            if broken:
                continue  # drain the request body
            try:
                await _write_all(child.stdin_fd, chunk)
            except BrokenPipeError:
                broken = True
        os.close(child.stdin_fd)
        child.stdin_fd = None
        await self._cp_reply(child, ref, request["path"])
        await child.finish()

    async def copy_up(self, record: dict, path: str, volume_dir: str) -> None:
        """Fill an empty volume with what the container's image has at `path`."""
        root = self._cp_root(record)
        root["binds"] = []  # the image's content, not what is mounted over it
        try:
            doc, pieces = await self.archive_get(record["Id"], path, root=root, arcname=".")
        except NotFound:
            return
        if not doc["mode"] & (1 << 31):
            async for _ in pieces:
                pass
            return
        request = {"op": "put", "path": "/", "chown": True}
        await self.put_tar({"dir": volume_dir}, request, pieces, record["Id"])
