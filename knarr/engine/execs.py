"""Exec: one more process in a running container, run by the container's monitor."""

import asyncio
import json
import os

from knarr.engine.streams import Stream
from knarr.errors import Conflict, InvalidArgument, NotFound

__all__ = ["ExecMixin"]


class ExecMixin:
    """exec create, start, resize and inspect."""

    def _running_or_refuse(self, cid: str) -> None:
        state = self.state(cid)
        if not state["Running"] or cid not in self.links:
            raise Conflict(f"Container {cid} is not running", id=cid)
        if state["Paused"]:
            raise Conflict(f"Container {cid} is paused, unpause the container before exec",
                           id=cid)

    async def exec_create(self, ref: str, body: dict) -> str:
        """Record an exec for a running container; return its id."""
        cid = self.resolve(ref)
        cmd = body.get("Cmd")
        if isinstance(cmd, str):
            cmd = [cmd]
        if not cmd:
            raise InvalidArgument("No exec command specified", id=cid)
        self._running_or_refuse(cid)
        exec_id = self.new_id()
        self.execs[exec_id] = {
            "ID": exec_id, "Running": False, "ExitCode": None, "Pid": 0,
            "ProcessConfig": {"tty": bool(body.get("Tty")), "entrypoint": cmd[0],
                              "arguments": cmd[1:], "privileged": bool(body.get("Privileged")),
                              "user": body.get("User") or ""},
            "OpenStdin": bool(body.get("AttachStdin")),
            "OpenStdout": bool(body.get("AttachStdout")),
            "OpenStderr": bool(body.get("AttachStderr")),
            "CanRemove": False, "ContainerID": cid, "DetachKeys": body.get("DetachKeys") or "",
            "_env": body.get("Env") or [], "_cwd": body.get("WorkingDir") or "",
            "_size": body.get("ConsoleSize"), "_started": asyncio.Event(),
        }
        self.publish(cid, f"exec_create: {' '.join(cmd)}", execID=exec_id)
        return exec_id

    def exec_get(self, exec_id: str) -> dict:
        """An exec's record; NotFound with Docker's text if none."""
        found = self.execs.get(exec_id)
        if found is None:
            raise NotFound(f"No such exec instance: {exec_id}", exec=exec_id)
        return found

    def exec_inspect(self, exec_id: str) -> dict:
        """Docker's exec inspect document."""
        return {k: v for k, v in self.exec_get(exec_id).items() if not k.startswith("_")}

    def _exec_process(self, x: dict, tty: bool) -> dict:
        with open(os.path.join(self.monitor_dir(x["ContainerID"]), "config.json")) as f:
            process = dict(json.load(f)["process"])
        env = {e.partition("=")[0]: e for e in process.get("env", [])}
        env.update({e.partition("=")[0]: e for e in x["_env"]})
        pc = x["ProcessConfig"]
        process.update(args=[pc["entrypoint"], *pc["arguments"]], env=list(env.values()),
                       terminal=tty)
        process.pop("rlimits", None)
        if x["_cwd"]:
            process["cwd"] = x["_cwd"]
        if pc["privileged"]:
            caps = self.host_capabilities()
            process["capabilities"] = {k: list(caps) for k in
                                       ("bounding", "effective", "permitted")}
        if x["_size"]:
            process["consoleSize"] = {"height": x["_size"][0], "width": x["_size"][1]}
        return process

    def exec_startable(self, exec_id: str) -> dict:
        """The exec's record if it can start now; NotFound or Conflict (Docker's texts)."""
        x = self.exec_get(exec_id)
        if x["Running"] or x["ExitCode"] is not None:
            raise Conflict(f"Error: Exec command {exec_id} is already running", exec=exec_id)
        self._running_or_refuse(x["ContainerID"])
        return x

    async def exec_start(self, exec_id: str, detach: bool = False,
                         tty: bool | None = None) -> Stream | None:
        """Run an exec; its Stream, or None when detached (it runs on by itself)."""
        x = self.exec_startable(exec_id)
        cid = x["ContainerID"]
        tty = x["ProcessConfig"]["tty"] if tty is None else tty
        request = {"op": "exec", "process": self._exec_process(x, tty),
                   "stdin": x["OpenStdin"] and not detach, "user": x["ProcessConfig"]["user"]}
        try:
            reply, reader, writer = await self.monitor_open(cid, request)
        finally:
            x["_started"].set()  # a resize waiting for the start goes on (or fails)
        if "error" in reply:
            writer.close()
            x["ExitCode"] = reply.get("exit_code", 126)
            raise InvalidArgument(f"OCI runtime exec failed: exec failed: {reply['error']}",
                                  exec=exec_id)
        x.update(Running=True, Pid=reply["pid"])
        command = " ".join([x["ProcessConfig"]["entrypoint"], *x["ProcessConfig"]["arguments"]])
        self.publish(cid, f"exec_start: {command}", execID=exec_id)

        def on_control(message: dict) -> None:
            x.update(ExitCode=message["exit_code"], Running=False)

        def on_end() -> None:
            if x["ExitCode"] is None:
                x["ExitCode"] = 126
            x["Running"] = False
            self.publish(cid, "exec_die", execID=exec_id, exitCode=str(x["ExitCode"]))

        stream = Stream(reader, writer, on_control=on_control, on_end=on_end)
        if detach:
            stream.close_input()
            asyncio.get_running_loop().create_task(_drain(stream))
            return None
        return stream

    async def exec_resize(self, exec_id: str, height: int, width: int) -> None:
        """Set the size of an exec's terminal."""
        x = self.exec_get(exec_id)
        if not x["Running"] and x["ExitCode"] is None:
            # a client resizes as soon as it has the stream: wait for the start, as Docker does
            try:
                await asyncio.wait_for(x["_started"].wait(), 10)
            except TimeoutError:
                raise Conflict("timeout waiting for exec session ready", exec=exec_id) from None
        if not x["Running"]:
            raise Conflict(f"Exec {exec_id} is not running", exec=exec_id)
        await self.monitor_call(x["ContainerID"], {"op": "resize", "exec_pid": x["Pid"],
                                                   "height": height, "width": width})


async def _drain(stream: Stream) -> None:
    while await stream.read() is not None:
        pass
    stream.close()
