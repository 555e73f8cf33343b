"""Looking at containers: attach, logs, stats, top and events."""

import asyncio
import json
import os
import time

from knarr.engine import events as eventbus
from knarr.engine import jsonlog, stats
from knarr.engine.streams import Stream
from knarr.engine.timefmt import parse_timestamp
from knarr.errors import Conflict, InvalidArgument

__all__ = ["ObserveMixin"]

_STREAMS = {"stdout": 1, "stderr": 2}


class ObserveMixin:
    """attach, logs, stats, top, events."""

    async def attach(self, ref: str, stdin: bool, stdout: bool, stderr: bool,
                     logs: bool = False, stream: bool = True) -> Stream:
        """The container's output (past log first if `logs`), input to its stdin."""
        cid = self.resolve(ref)
        before = []
        if logs:
            async for frame in self.logs(cid, stdout=stdout, stderr=stderr):
                before.append(frame)
        if not stream:
            return Stream(before=before)
        request = {"op": "attach", "stdin": stdin, "stdout": stdout, "stderr": stderr}
        if cid in self.links and cid not in self.starting:
            _reply, reader, writer = await self.monitor_open(cid, request)
            return Stream(reader, writer, before)
        future = asyncio.get_running_loop().create_future()
        future.attach_request = request
        self.pending_attach.setdefault(cid, []).append(future)
        return Stream(before=before, pending=future)

    # -- logs ---------------------------------------------------------------

    async def logs(self, ref: str, stdout: bool = True, stderr: bool = True,
                   follow: bool = False, since: float | None = None,
                   until: float | None = None, timestamps: bool = False, tail: str = "all"):
        """Frames (stream, bytes) of the container's json-file log, as Docker's logs."""
        record = self.record(ref)
        cid = record["Id"]
        if record["HostConfig"]["LogConfig"]["Type"] == "none":
            raise InvalidArgument('configured logging driver does not support reading')
        path = self.log_path(cid)
        wanted = {n for s, n in _STREAMS.items() if (stdout, stderr)[n - 1]}
        current = None
        if follow:  # followed from where the reading ends, not from a later end of file
            try:
                current = open(path, "rb")  # noqa: SIM115 - closed by _follow
            except FileNotFoundError:
                pass
        try:
            entries = await asyncio.to_thread(jsonlog.read_entries, path, current)
        except BaseException:
            if current is not None:
                current.close()
            raise
        entries = [e for e in entries if _in_window(e, since, until)]
        if tail not in ("all", "", None) and int(tail) >= 0:
            entries = entries[-int(tail):] if int(tail) else []
        for entry in entries:
            frame = _frame(entry, wanted, timestamps)
            if frame:
                yield frame
        if not follow or (until is not None and until <= time.time()):
            if current is not None:
                current.close()
            return
        async for frame in self._follow(cid, path, wanted, timestamps, until, current):
            yield frame

    async def _follow(self, cid: str, path: str, wanted: set, timestamps: bool,
                      until: float | None, f=None):
        partial = b""
        while True:
            running = cid in self.links or cid in self.starting
            if f is None and os.path.exists(path):
                f = open(path, "rb")
            chunk = f.read() if f is not None else b""
            if f is not None and not chunk and _rotated(f, path):
                f.close()
                f = open(path, "rb")
                continue
            lines = (partial + chunk).split(b"\n")
            partial = lines.pop()
            for line in lines:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                frame = _frame(entry, wanted, timestamps)
                if frame:
                    yield frame
            if until is not None and time.time() >= until:
                break
            if not chunk:
                if not running:
                    break
                await asyncio.sleep(0.05)
        if f is not None:
            f.close()

    # -- stats and top ------------------------------------------------------

    async def stats(self, ref: str, stream: bool = True, one_shot: bool = False):
        """Docker's stats JSON documents: one a second, or a single one."""
        record = self.record(ref)
        cid = record["Id"]
        previous = self.stats_cache.get(cid)
        if not stream and not one_shot and (previous is None or
                                            time.monotonic() - previous[0] > 2):
            previous = (time.monotonic(), self._sample(record))
            await asyncio.sleep(0.1)
        while True:
            sample = self._sample(record)
            doc = stats.docker_stats(record, sample, previous[1] if previous else None)
            previous = (time.monotonic(), sample)
            self.stats_cache[cid] = previous
            yield doc
            if not stream:
                return
            await asyncio.sleep(1.0)

    def _sample(self, record: dict) -> dict:
        cid = record["Id"]
        running = cid in self.links and self.state(cid)["Running"]
        return stats.sample(cid, self.state(cid)["Pid"] if running else 0, running)

    async def top(self, ref: str, ps_args: str | None = None) -> dict:
        """The container's processes as `ps` shows them: {Titles, Processes}."""
        from knarr.runtime import cgroups

        cid = self.resolve(ref)
        if not self.state(cid)["Running"]:
            raise Conflict(f"Container {cid} is not running", id=cid)
        pids = set(cgroups.open_cgroup(f"/knarr/{cid}", cid).pids())
        args = (ps_args or "-ef").split()
        proc = await asyncio.create_subprocess_exec("ps", *args, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        if proc.returncode != 0:
            raise InvalidArgument(f"ps: {err.decode().strip()}", args=ps_args)
        try:
            return stats.parse_ps(out.decode(), pids)
        except ValueError as exc:
            raise InvalidArgument(f"Couldn't find PID field in ps output: {exc}") from exc

    # -- events -------------------------------------------------------------

    async def events_stream(self, since: float | None, until: float | None,
                            filters: dict):
        """Docker events: the remembered ones since `since`, then live ones until `until`."""
        queue = self.events.subscribe()
        try:
            if since is not None:
                for event in list(self.events.history):
                    if event["timeNano"] / 1e9 >= since and (until is None or
                                                              event["timeNano"] / 1e9 <= until):
                        if eventbus.matches(event, filters):
                            yield event
            while until is None or time.time() < until:
                timeout = None if until is None else max(0.0, until - time.time())
                try:
                    event = await asyncio.wait_for(queue.get(), timeout)
                except TimeoutError:
                    break
                if eventbus.matches(event, filters):
                    yield event
        finally:
            self.events.unsubscribe(queue)


def _in_window(entry: dict, since: float | None, until: float | None) -> bool:
    if since is None and until is None:
        return True
    t = parse_timestamp(entry.get("time", ""))
    return (since is None or t >= since) and (until is None or t <= until)


def _frame(entry: dict, wanted: set, timestamps: bool) -> tuple[int, bytes] | None:
    number = _STREAMS.get(entry.get("stream"), 1)
    if number not in wanted:
        return None
    text = entry.get("log", "")
    if timestamps:
        text = entry.get("time", "") + " " + text
    return number, text.encode()


def _rotated(f, path: str) -> bool:
    try:
        return os.stat(path).st_ino != os.fstat(f.fileno()).st_ino
    except FileNotFoundError:
        return False
