"""Docker's json-file log: one `{"log":..,"stream":..,"time":..}` line per output line.

The writer runs in the monitor (no json module: fastjson's C encoder), rotates at
max-size keeping max-file files (`<id>-json.log`, `.1`, `.2`, ...). The reader
runs in the daemon and yields entries oldest first across the rotated files.
"""

import os
import time

from knarr import fastjson

__all__ = ["Writer", "parse_size", "read_entries", "timestamp"]

_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "m": 1024 ** 2, "mb": 1024 ** 2,
          "g": 1024 ** 3, "gb": 1024 ** 3}


def parse_size(text: str | None) -> int:
    """'10m' -> bytes; empty or None -> 0 (no limit)."""
    if not text:
        return 0
    text = text.strip().lower()
    digits = text.rstrip("kmgb")
    return int(float(digits) * _UNITS[text[len(digits):]])


def timestamp(ns: int | None = None) -> str:
    """RFC 3339 with nanoseconds, UTC, as Docker writes log times."""
    ns = time.time_ns() if ns is None else ns
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


def _entry(text: str, stream: str, now: str) -> str:
    return '{"log":' + fastjson.dumps(text) + ',"stream":"' + stream + '","time":"' + now + '"}\n'


class Writer:
    """Appends log lines for one container, rotating by size."""

    def __init__(self, path: str, max_size: int = 0, max_file: int = 1) -> None:
        self.path = path
        self.max_size = max_size
        self.max_file = max(1, max_file)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self._size = os.fstat(self._fd).st_size
        self._partial = {"stdout": b"", "stderr": b""}

    def write(self, stream: str, data: bytes) -> None:
        """Log `data` from `stream`, a line per entry; a partial line waits for its end."""
        data = self._partial[stream] + data
        lines = data.split(b"\n")
        self._partial[stream] = lines.pop()
        if len(self._partial[stream]) >= 16384:  # as Docker: a long line is split
            lines.append(self._partial[stream])
            self._partial[stream] = b""
            last_partial = True
        else:
            last_partial = False
        if not lines:
            return
        now = timestamp()
        batch = b""
        for i, line in enumerate(lines):
            end = b"" if last_partial and i == len(lines) - 1 else b"\n"
            entry = _entry((line + end).decode("utf-8", "replace"), stream, now).encode()
            if self.max_size and batch and \
                    self._size + len(batch) + len(entry) > self.max_size:
                self._append(batch)  # rotation is decided entry by entry
                batch = b""
            batch += entry
        self._append(batch)

    def flush(self) -> None:
        """Write out partial lines (at exit)."""
        for stream, rest in self._partial.items():
            if rest:
                self._partial[stream] = b""
                self._append(_entry(rest.decode("utf-8", "replace"), stream,
                                    timestamp()).encode())

    def _append(self, blob: bytes) -> None:
        if self.max_size and self._size and self._size + len(blob) > self.max_size:
            self._rotate()
        os.write(self._fd, blob)
        self._size += len(blob)

    def _rotate(self) -> None:
        os.close(self._fd)
        if self.max_file > 1:
            for n in range(self.max_file - 1, 0, -1):
                older = f"{self.path}.{n - 1}" if n > 1 else self.path
                if os.path.exists(older):
                    os.rename(older, f"{self.path}.{n}")
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        else:
            flags = os.O_WRONLY | os.O_TRUNC | os.O_CREAT | os.O_CLOEXEC
        self._fd = os.open(self.path, flags, 0o640)
        self._size = 0

    def close(self) -> None:
        """Flush and close."""
        self.flush()
        os.close(self._fd)


def log_files(path: str) -> list[str]:
    """The log and its rotated files, oldest first."""
    rotated = []
    n = 1
    while os.path.exists(f"{path}.{n}"):
        rotated.append(f"{path}.{n}")
        n += 1
    return list(reversed(rotated)) + ([path] if os.path.exists(path) else [])


def read_entries(path: str, current=None) -> list[dict]:
    """Every entry of a container's log, oldest first.

    `current`, the log opened (binary) by the caller, is read instead of `path` and left
    just after its last whole line: a follower goes on from there, losing nothing that
    was written in between.
    """
    entries = []
    mine = os.fstat(current.fileno()).st_ino if current is not None else None
    for name in log_files(path):
        if current is not None and (name == path or _inode(name) == mine):
            continue  # rotated after the caller opened it: it is `current`
        with open(name, "rb") as f:
            lines = f.read().split(b"\n")
        entries.extend(_parse(lines))
    if current is not None:
        lines = current.read().split(b"\n")
        if lines[-1]:
            current.seek(-len(lines[-1]), os.SEEK_CUR)  # a line still being written
        entries.extend(_parse(lines[:-1]))
    return entries


def _parse(lines: list[bytes]) -> list[dict]:
    import json

    entries = []
    for line in lines:
        if not line:
            continue
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue  # a line cut short by a crash
    return entries


def _inode(name: str) -> int | None:
    try:
        return os.stat(name).st_ino
    except FileNotFoundError:
        return None
