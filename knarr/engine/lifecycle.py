"""Start, stop, restart, kill, pause: the daemon's side of each container's monitor.

Starting asks the fork helper for a monitor and waits on a report channel for
"started" (or "created", when attaches wait, then "go"). Each running container
has a link: a `watch` connection to its monitor carrying start, die and health
events; the link ending means the monitor is gone and the container is down.
"""

import asyncio
import json
import os
import signal
import socket

from knarr.engine import forkhelper, monitor_io
from knarr.errors import (
    AlreadyExists,
    Conflict,
    FailedPrecondition,
    InvalidArgument,
    KnarrError,
    NotFound,
    Unavailable,
)

__all__ = ["LifecycleMixin", "parse_signal", "NotModified"]

_CATEGORIES = {c.__name__: c for c in (NotFound, AlreadyExists, Conflict, InvalidArgument,
                                         FailedPrecondition, Unavailable)}


# How long a monitor may take to mount, create and start a container before start fails.
_START_TIMEOUT = 120.0


class NotModified(KnarrError):
    """Nothing to do: the container is already in the asked-for state (HTTP 304)."""


def parse_signal(value, default: int = signal.SIGKILL) -> int:
    """A signal from a number or a name (KILL, SIGKILL); InvalidArgument if unknown."""
    if value in (None, ""):
        return default
    text = str(value).strip().upper()
    if text.isdigit() and 0 < int(text) < 65:
        return int(text)
    try:
        return int(getattr(signal.Signals, text if text.startswith("SIG") else "SIG" + text))
    except AttributeError:
        raise InvalidArgument(f"Invalid signal: {value}", signal=value) from None


class LifecycleMixin:
    """The verbs that change whether a container runs."""

    async def monitor_open(self, cid: str, request: dict):
        """Connect to a container's monitor, send `request`, return (reply, reader, writer)."""
        try:
            reader, writer = await _connect(self.monitor_dir(cid))
        except OSError as exc:
            raise Conflict(f"Container {cid} is not running", id=cid) from exc
        try:
            writer.write(json.dumps(request).encode() + b"\n")
            line = await reader.readline()
        except OSError:
            line = b""
        if not line:
            writer.close()
            raise Conflict(f"Container {cid} is not running", id=cid)
        return json.loads(line), reader, writer

    async def monitor_call(self, cid: str, request: dict) -> dict:
        """One request and its reply."""
        reply, _reader, writer = await self.monitor_open(cid, request)
        writer.close()
        return reply

    # -- start --------------------------------------------------------------

    def _monitor_params(self, record: dict, wait_go: bool) -> dict:
        cid = record["Id"]
        config, host = record["Config"], record["HostConfig"]
        log = host["LogConfig"]
        from knarr.engine import jsonlog

        state = self.read_state(cid)
        return {
            "id": cid, "bundle": self.monitor_dir(cid), "runtime_root": self.runtime_root,
            "rootfs_mounts": record["_snapshot"]["mounts"], "state_path": self.state_path(cid),
            "log_driver": log["Type"], "log_path": self.log_path(cid),
            "log_max_size": jsonlog.parse_size(log["Config"].get("max-size")),
            "log_max_file": int(log["Config"].get("max-file") or 1),
            "tty": config["Tty"], "open_stdin": config["OpenStdin"],
            "stdin_once": config["StdinOnce"], "restart_policy": host["RestartPolicy"],
            "restart_count": state.get("RestartCount", 0) if state.get("Running") else 0,
            "healthcheck": config.get("Healthcheck"), "user": config["User"],
            "group_add": host.get("GroupAdd") or [], "wait_go": wait_go,
            "auto_remove": bool(host.get("AutoRemove")),
        }

    async def start(self, ref: str) -> None:
        """Start a created or stopped container."""
        record = self.record(ref)
        cid = record["Id"]
        state = self.state(cid)
        if state["Paused"]:
            raise Conflict("cannot start a paused container, try unpause instead", id=cid)
        if state["Running"] or cid in self.links or cid in self.starting:
            raise NotModified(f"container {cid} is already running", id=cid)
        self.starting.add(cid)
        try:
            await self._start(record)
        except BaseException:
            self.starting.discard(cid)
            await self._start_failed(record)
            raise
        self.starting.discard(cid)

    async def _start_failed(self, record: dict) -> None:
        """A failed start leaves the container stopped (or, with --rm, gone)."""
        cid = record["Id"]
        if cid in self.links:
            return
        await self.net_stop(cid)
        state = self.read_state(cid)
        self.wake(cid, "die", state.get("ExitCode", 0))
        if record["HostConfig"].get("AutoRemove"):
            try:
                await self.delete(cid, force=True)
            except NotFound:
                pass

    async def _start(self, record: dict) -> None:
        cid = record["Id"]
        if self.helper is None:
            raise Unavailable("start container: the daemon has no fork helper", id=cid)
        mdir = self.monitor_dir(cid)
        os.makedirs(mdir, mode=0o700, exist_ok=True)
        self.died.discard(cid)
        pending = self.pending_attach.pop(cid, [])
        self.ready_volumes(record)
        # The namespace first; its interfaces, addresses and routes are set up on the
        # network thread while the monitor forks, mounts and creates the container, which
        # then waits for "go" (as it does for attaches) until the network is ready.
        netns, net_made = await self.net_start(record)
        config = self.oci_config(record, netns)
        params = self._monitor_params(record, wait_go=bool(pending) or net_made is not None)
        params["cgroups_path"] = config["linux"]["cgroupsPath"]  # the monitor's OOM check
        self.write_json(os.path.join(mdir, "config.json"), config, durable=False)
        params_path = os.path.join(mdir, "monitor.json")
        with open(params_path, "w") as f:
            f.write(json.dumps(params))
        if net_made is not None:
            await net_made
        ours, theirs = socket.socketpair()
        replies: list[asyncio.Task] = []
        try:
            try:
                forkhelper.spawn(self.helper, params_path, theirs.fileno())
            except OSError:  # the helper died (killed?): start another and try once more
                self.helper.close()
                self.helper, _pid = forkhelper.restart()
                forkhelper.spawn(self.helper, params_path, theirs.fileno())
            # Each client attached before the start gets its connection to the monitor
            # made here, the monitor's end handed over on the report channel with the
            # request: the monitor serves it before it starts the container (no connect
            # and no round trip while the created container waits).
            replies = [self._hand_attach(cid, ours, future) for future in pending
                       if not future.done()]
        finally:
            theirs.close()
        reader, writer = await asyncio.open_unix_connection(sock=ours)
        linked = False
        try:
            if params["wait_go"]:
                # go as soon as the network is ready: the monitor finds it waiting once
                # it has created the container ("created" then needs no answer)
                try:
                    await self.net_finish(cid)
                except BaseException:
                    await _monitor_gives_up(reader, writer)
                    raise
                writer.write(b"go\n")
            reply = await _report(reader, writer, cid)
            if reply["kind"] == "created":
                reply = await _report(reader, writer, cid)
            if replies:  # answered before the start: read already, or at once
                await asyncio.gather(*replies)
            # the report channel is the container's link from now on (the monitor serves
            # it as a watch): its events, and its end when the monitor is gone
            self.links[cid] = asyncio.get_running_loop().create_task(
                self._link(cid, reader, writer))
            linked = True
        except TimeoutError:
            raise Unavailable(f"start container {cid}: its monitor did not report within "
                              f"{_START_TIMEOUT:g}s", id=cid) from None
        finally:
            if not linked:
                writer.close()
                for task in replies:
                    task.cancel()
            for future in pending:
                if not future.done():
                    future.set_exception(Conflict(f"Container {cid} is not running", id=cid))
        self.publish(cid, "start")

    def _hand_attach(self, cid: str, report: socket.socket, future) -> asyncio.Task:
        """Make an attach's connection to the monitor and send the monitor its end, with
        the request, on the report channel (still blocking: the few bytes go at once); a
        task that reads the monitor's answer and gives the attach its connection."""
        ours, theirs = socket.socketpair()
        try:
            line = b"attach " + json.dumps(future.attach_request).encode() + b"\n"
            socket.send_fds(report, [line], [theirs.fileno()])
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        return asyncio.ensure_future(self._attach_reply(cid, future, ours))

    async def _attach_reply(self, cid: str, future, sock: socket.socket) -> None:
        writer = None
        try:
            reader, writer = await asyncio.open_unix_connection(sock=sock, limit=1 << 20)
            line = await reader.readline()
        except OSError:
            line = b""
        except BaseException:  # cancelled: the start failed
            if writer is None:
                sock.close()
            else:
                writer.close()
            raise
        if line and not future.done():
            future.set_result((json.loads(line), reader, writer))
            return
        if writer is not None:
            writer.close()
        if not future.done():
            future.set_exception(Conflict(f"Container {cid} is not running", id=cid))

    # -- links --------------------------------------------------------------

    async def _attach_link(self, cid: str) -> bool:
        """Watch a running container's monitor; False if there is no monitor."""
        try:
            _reply, reader, writer = await self.monitor_open(cid, {"op": "watch"})
        except Conflict:
            return False
        self.links[cid] = asyncio.get_running_loop().create_task(self._link(cid, reader,
                                                                            writer))
        return True

    async def _link(self, cid: str, reader, writer) -> None:
        try:
            while line := await reader.readline():
                self._on_monitor_event(cid, json.loads(line))
        except (OSError, ValueError):
            pass
        finally:
            writer.close()
        self.links.pop(cid, None)
        await self._monitor_gone(cid)

    def _on_monitor_event(self, cid: str, message: dict) -> None:
        event = message.get("event")
        if event == "die":
            self.died.add(cid)
            self.publish(cid, "die", exitCode=str(message["exit_code"]))
            if message.get("oom"):
                self.publish(cid, "oom")
            if message.get("restarting"):
                self.wake(cid, "die", message["exit_code"])
            elif message.get("removing"):
                self._forget_at_die(cid, message["exit_code"])
            # else the waiters wake when the monitor is gone: the container is down for good
        elif event == "start":
            self.publish(cid, "start")
        elif event == "health_status":
            self.publish(cid, f"health_status: {message['status']}")

    def _forget_at_die(self, cid: str, code: int) -> None:
        """An --rm container's final die: it is removed now, for every later call and for
        its waiters (`run --rm`), while its monitor tears down; its files go once the
        monitor is gone (`_monitor_gone`)."""
        try:
            record = self.records.get(cid)
        except NotFound:
            return
        # addresses and ports first: this task's first step (all of the release) runs
        # before any waiter we wake below can answer its client
        asyncio.ensure_future(self.net_stop(cid))
        self.wake(cid, "die", code)
        self.forgotten[cid] = record
        self.forget(cid, record, code)

    async def _monitor_gone(self, cid: str) -> None:
        record = self.forgotten.pop(cid, None)
        if record is not None:  # removed at its die: what the monitor left, then the files
            self.died.discard(cid)
            await asyncio.to_thread(self.cleanup_orphan, cid)
            await self.net_stop(cid)  # released at the die already; nothing if so
            self._drop_files_later(cid, record)
            self.remove_anonymous_volumes(record)  # --rm: as `rm -v`, now nothing mounts them
            return
        state = self.read_state(cid)
        if state.get("Running"):  # the monitor died, not the container's end
            await asyncio.to_thread(self.cleanup_orphan, cid)
            self._mark_exited(cid, state, 255, "the container's monitor exited")
            self.publish(cid, "die", exitCode="255")
        elif cid not in self.starting and self.rootfs_mounted(cid):
            # The monitor died after saving its exit but before unmounting (SIGKILL).
            await asyncio.to_thread(self.cleanup_orphan, cid)
        elif cid not in self.died:
            # The container ended before the watch could hear it (it exited between
            # its start and our watch): say what the watch would have said.
            self.publish(cid, "die", exitCode=str(state.get("ExitCode", 0)))
            if state.get("OOMKilled"):
                self.publish(cid, "oom")
        self.died.discard(cid)
        await self.net_stop(cid)
        self.wake(cid, "die", state.get("ExitCode", 0))
        try:
            record = self.records.get(cid)
        except NotFound:
            return
        if record["HostConfig"].get("AutoRemove"):
            try:
                await self.delete(cid, force=True)
            except NotFound:
                pass

    async def _wait_link_gone(self, cid: str, timeout: float) -> bool:
        task = self.links.get(cid)
        if task is None:
            return True
        done, _ = await asyncio.wait({task}, timeout=timeout)
        return bool(done)

    # -- stop, kill, restart -------------------------------------------------

    async def stop(self, ref: str, timeout: int | None = None, sig: str | None = None) -> None:
        """Stop with the stop signal, then SIGKILL after the timeout (Docker's default 10 s)."""
        record = self.record(ref)
        cid = record["Id"]
        if cid not in self.links:
            raise NotModified(f"container {cid} is already stopped", id=cid)
        if timeout is None:
            timeout = record["Config"].get("StopTimeout", 10)
        signum = parse_signal(sig or record["Config"].get("StopSignal"), signal.SIGTERM)
        if self.state(cid)["Paused"]:
            await self.unpause(cid)
        try:
            await self.monitor_call(cid, {"op": "stop", "signal": signum, "timeout": timeout})
        except Conflict:
            pass
        wait = timeout + 10 if timeout >= 0 else None
        if not await self._wait_link_gone(cid, wait):
            raise Unavailable(f"stop container {cid}: still running after {wait}s", id=cid)
        self.publish(cid, "stop")

    async def kill_for_good(self, cid: str) -> None:
        """SIGKILL without restart, and wait for the monitor to finish."""
        if self.state(cid)["Paused"]:
            await self.unpause(cid)
        try:
            await self.monitor_call(cid, {"op": "stop", "signal": signal.SIGKILL, "timeout": 0})
        except Conflict:
            pass
        if not await self._wait_link_gone(cid, 15):
            await asyncio.to_thread(self.cleanup_orphan, cid)

    async def kill(self, ref: str, sig: str | None = None) -> None:
        """Send a signal; SIGKILL or the stop signal also means: do not restart."""
        record = self.record(ref)
        cid = record["Id"]
        signum = parse_signal(sig, signal.SIGKILL)
        if cid not in self.links or not self.state(cid)["Running"]:
            raise Conflict(f"Cannot kill container: {ref}: Container {cid} is not running",
                           id=cid)
        stop_signal = parse_signal(record["Config"].get("StopSignal"), signal.SIGTERM)
        manual = signum in (signal.SIGKILL, stop_signal)
        await self.monitor_call(cid, {"op": "kill", "signal": signum, "manual": manual})
        self.publish(cid, "kill", signal=str(signum))
        if signum == signal.SIGKILL:
            await self._wait_link_gone(cid, 10)

    async def restart(self, ref: str, timeout: int | None = None,
                      sig: str | None = None) -> None:
        """Stop (if running) and start again."""
        cid = self.resolve(ref)
        try:
            await self.stop(cid, timeout, sig)
        except NotModified:
            pass
        await self.start(cid)
        self.publish(cid, "restart")

    async def pause(self, ref: str) -> None:
        """Freeze every process of a running container."""
        from knarr.runtime import container_pause

        cid = self.resolve(ref)
        state = self.state(cid)
        if not state["Running"]:
            raise Conflict(f"Container {cid} is not running", id=cid)
        if state["Paused"]:
            raise Conflict(f"Container {cid} is already paused", id=cid)
        await asyncio.to_thread(container_pause.pause, self.runtime_root, cid)
        self.publish(cid, "pause")

    async def unpause(self, ref: str) -> None:
        """Thaw a paused container."""
        from knarr.runtime import container_pause

        cid = self.resolve(ref)
        if not self.state(cid)["Paused"]:
            raise Conflict(f"Container {cid} is not paused", id=cid)
        await asyncio.to_thread(container_pause.resume, self.runtime_root, cid)
        self.publish(cid, "unpause")

    async def update(self, ref: str, body: dict) -> list[str]:
        """Change a container's limits (live, if it runs) and restart policy (docker update)."""
        from knarr.engine import merge, oci_config

        record = self.record(ref)
        cid = record["Id"]
        allowed = ("Memory", "MemorySwap", "MemoryReservation", "NanoCpus", "CpuShares",
                   "CpuPeriod", "CpuQuota", "CpusetCpus", "CpusetMems", "PidsLimit",
                   "BlkioWeight", "RestartPolicy")
        changes = {k: v for k, v in (body or {}).items() if k in allowed and v is not None}
        host = dict(record["HostConfig"], **changes)
        if "NanoCpus" in changes:
            host.pop("CpuQuota", None)
            host.pop("CpuPeriod", None)
        host = merge.validate_host_config(host)
        if host.get("AutoRemove") and host["RestartPolicy"]["Name"] not in ("", "no"):
            raise InvalidArgument("Restart policy cannot be updated because AutoRemove is "
                                  "enabled for the container")
        record["HostConfig"] = host
        self.records.update(record)
        self.write_json(os.path.join(self.container_dir(cid), "config.v2.json"), record)
        if cid in self.links:
            resources = oci_config.build(record, "", [], lambda caps: None)["linux"]["resources"]
            resources.pop("devices", None)
            await asyncio.to_thread(_apply_resources, cid, resources)
            if "RestartPolicy" in changes:
                await self.monitor_call(cid, {"op": "update",
                                              "restart_policy": host["RestartPolicy"]})
        self.publish(cid, "update")
        return []

    async def resize(self, ref: str, height: int, width: int) -> None:
        """Set the size of a container's terminal."""
        cid = self.resolve(ref)
        if cid not in self.links:
            raise Conflict(f"Container {cid} is not running", id=cid)
        await self.monitor_call(cid, {"op": "resize", "height": height, "width": width})


def _apply_resources(cid: str, resources: dict) -> None:
    from knarr.runtime import cgroups

    cgroups.open_cgroup(f"/knarr/{cid}", cid).update(resources)


async def _connect(mdir: str):
    """Connect to a monitor's socket through /proc/self/fd: its full path may be longer
    than the 107 bytes a unix socket address holds."""
    dirfd = os.open(mdir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(
            sock, f"/proc/self/fd/{dirfd}/{monitor_io.MONITOR_SOCK}")
    except BaseException:
        sock.close()
        raise
    finally:
        os.close(dirfd)
    return await asyncio.open_unix_connection(sock=sock, limit=1 << 20)


async def _monitor_gives_up(reader, writer) -> None:
    """No go for a created container: the monitor kills it, cleans up and exits; wait
    (a while) for its end of the report channel to close."""
    try:
        writer.write(b"no\n")
    except OSError:
        return
    _no_more(writer)
    await _monitor_closed(reader)


def _no_more(writer) -> None:
    """Shut our side of the report channel for writing: the monitor's reads end."""
    try:
        writer.write_eof()
    except OSError:
        pass


async def _monitor_closed(reader) -> None:
    """Wait (a while) for the monitor's end of the report channel to close: it exits
    after its own clean-up (state saved, rootfs unmounted), which the daemon's clean-up
    of a failed start (`rm` of an --rm container) must not race."""
    try:
        await asyncio.wait_for(reader.read(), 30)
    except (OSError, TimeoutError):
        pass


async def _report(reader, writer, cid: str) -> dict:
    try:
        line = await asyncio.wait_for(reader.readline(), _START_TIMEOUT)
    except ConnectionError as exc:  # ours, not the API client's: say so
        raise FailedPrecondition(f"start container {cid}: its monitor's report channel "
                                 f"failed: {exc}", id=cid) from exc
    if not line:
        raise FailedPrecondition(f"start container {cid}: its monitor exited before "
                                 "reporting", id=cid)
    reply = json.loads(line)
    if reply["kind"] == "error":
        # nothing more goes to the monitor: it reads what we sent until this end, so
        # that its close does not reset the channel (see monitor_main._drain_report)
        _no_more(writer)
        await _monitor_closed(reader)
        category = _CATEGORIES.get(reply.get("category"), FailedPrecondition)
        if "not found" in reply["message"] or "permission denied" in reply["message"]:
            category = InvalidArgument
        raise category(f"failed to create task for container: {reply['message']}", id=cid)
    return reply
