"""A hijacked session's engine side: frames from a monitor, input to it."""

import asyncio
import json

from knarr.engine import monitor_io

__all__ = ["Stream"]


class Stream:
    """Frames (stream number, bytes) from a monitor connection, after any given up front.

    A control frame is not handed out: its JSON goes to `on_control` (an exec's
    exit code). Input written here goes to the process's stdin.
    """

    def __init__(self, reader=None, writer=None, before: list | None = None,
                 on_control=None, on_end=None, pending=None) -> None:
        self.pending = pending  # a future of (reply, reader, writer): attach before start
        self.reader = reader
        self.writer = writer
        self.before = list(before or [])
        self.on_control = on_control
        self.on_end = on_end
        self.ended = False

    async def read(self) -> tuple[int, bytes] | None:
        """The next frame; None at the end."""
        if self.before:
            return self.before.pop(0)
        await self._connected()
        while self.reader is not None:
            try:
                header = await self.reader.readexactly(8)
                payload = await self.reader.readexactly(int.from_bytes(header[4:], "big"))
            except (asyncio.IncompleteReadError, OSError):
                break
            if header[0] == monitor_io.CONTROL:
                if self.on_control is not None:
                    self.on_control(json.loads(payload))
                continue
            return header[0], payload
        self._end()
        return None

    async def _connected(self) -> None:
        if self.pending is not None and self.reader is None:
            try:
                _reply, self.reader, self.writer = await self.pending
            except Exception:  # noqa: BLE001 - the container never started: no stream
                self.pending = None

    def _end(self) -> None:
        if not self.ended:
            self.ended = True
            if self.on_end is not None:
                self.on_end()

    async def write(self, data: bytes) -> None:
        """Pass input to the process."""
        await self._connected()
        if self.writer is not None and not self.writer.is_closing():
            self.writer.write(data)
            await self.writer.drain()

    def close_input(self) -> None:
        """The client's input ended."""
        if self.writer is not None and not self.writer.is_closing() and \
                self.writer.can_write_eof():
            try:
                self.writer.write_eof()
            except OSError:
                pass

    def close(self) -> None:
        """Drop the monitor connection."""
        if self.writer is not None:
            self.writer.close()
        self._end()
