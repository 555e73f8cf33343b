"""Small files (/proc, cgroupfs, state and config files) read without io's objects.

`open()` sets up a FileIO, a buffer and, for text, a decoder, and asks the file
whether it is a terminal: more than the read itself costs for the few hundred
bytes of a /proc file, on paths (knarr-runtime's start, a forked init) where
every such cost is paid at once.
"""

import os

__all__ = ["read_bytes", "read_text", "real_path"]


def read_bytes(path: str) -> bytes:
    """The whole content of the file at `path`."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def read_text(path: str) -> str:
    """The content of the file at `path`, decoded as UTF-8."""
    return read_bytes(path).decode()


def real_path(path: str) -> str:
    """os.path.realpath(path), for a path that exists taken from the kernel's own name
    for it (/proc/self/fd): three calls, where realpath makes one lstat per component.
    Anything else (no such path, no /proc, a deleted directory) goes to realpath."""
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return os.path.realpath(path)
    try:
        name = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        name = ""
    finally:
        os.close(fd)
    if not name.startswith("/") or name.endswith(" (deleted)"):
        return os.path.realpath(path)
    return name
