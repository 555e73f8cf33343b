"""`build`: the engine's side of a Dockerfile build (the builder is knarr.build).

The engine is the builder's backend: it resolves base images (built-in ones
made on first use), runs each RUN in a real container through its own
container machinery (network `none` unless asked), and registers the final
image. The builder runs in a thread of its own; its calls into the engine
are sent to the event loop and waited for there. Progress goes back as
Docker's JSON messages through `emit`.
"""

import asyncio
import fcntl
import io
import json
import os
import select
import shutil
import tempfile

from knarr.build import Builder, Options, RunSpec, extract
from knarr.content import ContentStore
from knarr.errors import InvalidArgument, KnarrError, NotFound
from knarr.oci import digest as digests
from knarr.oci import reference
from knarr.snapshots import Snapshotter, mark_top_directory

__all__ = ["BuildMixin"]

_F_SETPIPE_SZ = 1031
_BODY_STALL = 300  # seconds a client may pause while sending a context
_REMOVERS: set = set()  # removals of finished builds' scratch dirs still running


def remove_stale_scratch(root: str) -> None:
    """Drop the scratch dirs (unpacked contexts) of builds a killed daemon left: at start
    no build runs."""
    base = os.path.join(root, "build", "tmp")
    _make_scratch(base)
    for name in os.listdir(base):
        if name.startswith("build-"):
            shutil.rmtree(os.path.join(base, name), ignore_errors=True)


def _make_scratch(path: str) -> None:
    """The directory builds unpack their contexts in. Each context then lands in a block
    group ext4 picks by the hash of its name, not in the (often just freed) one of the
    engine root: see snapshots.mark_top_directory."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    mark_top_directory(path)


def remove_stale_steps(snapshots) -> None:
    """Drop step snapshots a killed daemon left (`build-<pid>-...`, pid gone)."""
    for row in snapshots.walk():
        pid = row["key"].removeprefix("build-").split("-", 1)[0]
        if row["key"].startswith("build-") and pid.isdigit() and \
                not os.path.exists(f"/proc/{pid}"):
            try:
                snapshots.remove(row["key"])
            except KnarrError:
                pass


class _Backend:
    """The builder's view of the engine, called from the build thread."""

    def __init__(self, engine, loop: asyncio.AbstractEventLoop) -> None:
        self.engine, self.loop = engine, loop
        self.snapshots = Snapshotter(engine.root)
        self.content = ContentStore(engine.root)
        if not getattr(engine, "_build_swept", False):  # once per daemon
            remove_stale_steps(self.snapshots)
            engine._build_swept = True

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def image(self, ref: str, pull: bool) -> tuple[str, dict, list[dict]]:
        if pull:
            self._call(self.engine.pull(ref))
        try:
            image_id, config = self._call(self.engine.image(ref))
        except NotFound:  # not here: pull it, as Docker's builder does
            self._call(self.engine.pull(ref))
            image_id, config = self._call(self.engine.image(ref))
        manifest = self._call(self.engine.in_image_thread(self.engine.images.manifest,
                                                          image_id))
        return image_id, config, manifest["layers"]

    def run(self, spec: RunSpec, output) -> tuple[int, str, str]:
        return self._call(self.engine.run_build_step(spec, output))

    def remove(self, container_id: str) -> None:
        try:
            self._call(self.engine.delete(container_id, force=True))
        except NotFound:
            pass

    def register(self, manifest: bytes, config: bytes, names: list[str]) -> str:
        store = self.engine.images

        def run() -> str:
            image_id = digests.sha256_of(config)
            if store.records.get(image_id) is None:
                return store.register(manifest, config, names, label="build")
            for name in names:  # a rebuild from cache: the image is there, only tag it
                if store.records.image_of(str(reference.parse(name))) != image_id:
                    store.tag(image_id, name)
            return image_id
        return self._call(self.engine.in_image_thread(run))

    def close(self) -> None:
        self.snapshots.close()


async def _feed(loop: asyncio.AbstractEventLoop, body, write_fd: int) -> None:
    """Copy the request body into the pipe the build thread extracts from; if the build
    stops reading, read the rest of the body and drop it."""
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(write_fd, "wb", buffering=0))
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    broken = False
    try:
        async for chunk in body:
            if broken:
                continue
            try:
                writer.write(chunk)
                await writer.drain()
            except (BrokenPipeError, ConnectionResetError):
                broken = True
    finally:
        transport.close()


class _SocketBody(io.RawIOBase):
    """A request body of known length read off the connection's (non-blocking) socket:
    first the bytes the server had read ahead, then the socket, waiting in poll."""

    def __init__(self, fd: int, held: bytes, length: int) -> None:
        super().__init__()
        self.fd, self.held, self.left = fd, memoryview(held), length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        with memoryview(buffer) as view:
            want = min(len(view), self.left)
            if want <= 0:
                return 0
            if self.held:
                got = min(want, len(self.held))
                view[:got] = self.held[:got]
                self.held = self.held[got:]
            else:
                got = self._read(view[:want])
            self.left -= got
            return got

    def _read(self, view) -> int:
        while True:
            try:
                got = os.readv(self.fd, [view])
            except BlockingIOError:
                poller = select.poll()
                poller.register(self.fd, select.POLLIN)
                if not poller.poll(_BODY_STALL * 1000):
                    raise InvalidArgument("build context: the client sent nothing for "
                                          f"{_BODY_STALL} s") from None
                continue
            if got == 0:
                raise InvalidArgument("build context: the connection closed before the "
                                      "end of the body")
            return got


class BuildMixin:
    """POST /build."""

    async def build(self, body, options: Options, emit,
                    socket: tuple[int, bytes, int] | None = None) -> str:
        """Build from a context tarball streamed by `body` (async byte chunks), or read
        by the build thread off `socket` (the connection's fd, the bytes the server had
        read already, the body's length); unpacked as it arrives. `emit(message)` gets
        Docker's JSON progress messages. Return the image id; BuildError on failure."""
        loop = asyncio.get_running_loop()
        if socket is None:
            read_fd, write_fd = os.pipe()
            try:
                fcntl.fcntl(write_fd, _F_SETPIPE_SZ, 1 << 20)
            except OSError:
                pass  # a smaller pipe only costs more wake-ups
            feeder = asyncio.ensure_future(_feed(loop, body, write_fd))
        else:
            feeder = asyncio.ensure_future(asyncio.sleep(0))
        queue: asyncio.Queue = asyncio.Queue()
        base = os.path.join(self.root, "build")
        scratch = os.path.join(base, "tmp")
        if not os.path.isdir(scratch):
            _make_scratch(scratch)
        workdir = tempfile.mkdtemp(prefix="build-", dir=scratch)
        backend = _Backend(self, loop)

        def output(text: str) -> None:
            if text:
                loop.call_soon_threadsafe(queue.put_nowait, {"stream": text})

        def run() -> str:
            raw = _SocketBody(*socket) if socket is not None else \
                io.FileIO(read_fd, "rb", closefd=True)
            with io.BufferedReader(raw, 1 << 20) as stream:
                try:
                    context = extract(stream, os.path.join(workdir, "context"))
                finally:  # the tar's padding after its end marker; what a refused
                    while stream.read(1 << 20):  # tar leaves: the client sends it all
                        pass
            builder = Builder(backend, context, options, output,
                              os.path.join(base, "cache"), workdir)
            return builder.build()

        task = loop.run_in_executor(None, run)
        try:
            while True:
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({task, getter},
                                             return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    await emit(getter.result())
                    continue
                getter.cancel()
                while not queue.empty():
                    await emit(queue.get_nowait())
                break
            image_id = await task
        finally:
            await feeder
            backend.close()
            # the unpacked context goes after the answer: its files live on as the
            # layers' (hard links), only their names here are removed
            remover = asyncio.ensure_future(asyncio.to_thread(shutil.rmtree, workdir, True))
            _REMOVERS.add(remover)
            remover.add_done_callback(_REMOVERS.discard)
        await emit({"aux": {"ID": image_id}})
        if options.quiet:
            await emit({"stream": f"{image_id}\n"})
        else:
            await emit({"stream": f"Successfully built {image_id.removeprefix('sha256:')[:12]}\n"})
            for tag in options.tags:
                await emit({"stream": f"Successfully tagged {reference.parse(tag).familiar()}\n"})
        self.events.publish("image", "build", image_id, {"name": image_id})
        return image_id

    async def run_build_step(self, spec: RunSpec, output) -> tuple[int, str, str]:
        """Run one RUN step's container to its end; (exit code, container id, snapshot)."""
        rc = spec.config
        body = {"Image": spec.base_image or "scratch", "Cmd": spec.argv, "Entrypoint": [""],
                "Env": spec.env, "User": rc.get("User") or "",
                "WorkingDir": rc.get("WorkingDir") or "", "Labels": {},
                "Healthcheck": {"Test": ["NONE"]},
                "HostConfig": {"NetworkMode": spec.network or "none"}}
        image_config = _image_config(rc)
        created = await self.create(body, None, base=(spec.base_image, image_config,
                                                      spec.parent))
        cid = created["Id"]
        output(f" ---> Running in {cid[:12]}\n")
        try:
            await self.start(cid)
            async for _stream, data in self.logs(cid, follow=True):
                output(data.decode("utf-8", "replace"))
            code = await self.wait(cid)
            await self._wait_link_gone(cid, 30)
        except KnarrError:
            await self.delete(cid, force=True)
            raise
        return code, cid, self.record(cid)["_snapshot"]["key"]


def _image_config(run_config: dict) -> dict:
    """An image config document around a run config (what `merge` reads)."""
    return {"config": json.loads(json.dumps(run_config))}

