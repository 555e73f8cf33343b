"""Reading layer streams: detecting and undoing gzip or zstd compression.

gzip uses the standard library. zstd uses the `zstandard` module when it is
installed, and otherwise the `zstd` command (Debian package zstd), fed from
a thread; without either a zstd layer is refused as Unavailable.
"""

import gzip
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from knarr.errors import InvalidArgument, Unavailable

__all__ = ["detect", "decompressed", "GZIP", "ZSTD"]

GZIP, ZSTD = "gzip", "zstd"
_MAGIC = {b"\x1f\x8b": GZIP, b"\x28\xb5\x2f\xfd": ZSTD}
_CHUNK = 1 << 20


def detect(prefix: bytes) -> str | None:
    """The compression whose magic number starts `prefix`, or None for plain data."""
    for magic, name in _MAGIC.items():
        if prefix.startswith(magic):
            return name
    return None


@contextmanager
def decompressed(stream: BinaryIO, compression: str | None) -> Iterator[BinaryIO]:
    """A file object reading the decompressed bytes of `stream`."""
    if compression is None:
        yield stream
    elif compression == GZIP:
        with gzip.GzipFile(fileobj=stream, mode="rb") as out:
            yield out  # type: ignore[misc]
    elif compression == ZSTD:
        with _zstd_reader(stream) as out:
            yield out
    else:
        raise InvalidArgument(f"unknown compression {compression!r}", compression=compression)


@contextmanager
def _zstd_reader(stream: BinaryIO) -> Iterator[BinaryIO]:
    try:
        import zstandard  # type: ignore[import-not-found]
    except ImportError:
        zstandard = None
    if zstandard is not None:
        with zstandard.ZstdDecompressor().stream_reader(stream, read_across_frames=True) as out:
            yield out
        return
    if shutil.which("zstd") is None:
        raise Unavailable("zstd layer: neither the zstandard module nor the zstd command is "
                          "installed", compression=ZSTD)
    with _zstd_process(stream) as out:
        yield out


@contextmanager
def _zstd_process(stream: BinaryIO) -> Iterator[BinaryIO]:
    proc = subprocess.Popen(["zstd", "-dc", "-q"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin and proc.stdout and proc.stderr
    feeder = threading.Thread(target=_feed, args=(stream, proc.stdin), daemon=True)
    feeder.start()
    try:
        yield proc.stdout  # type: ignore[misc]
    finally:
        proc.stdout.close()
        feeder.join()
        err = proc.stderr.read()
        proc.stderr.close()
        code = proc.wait()
    if code != 0:
        raise InvalidArgument(f"zstd layer: {err.decode(errors='replace').strip()}",
                              compression=ZSTD)


def _feed(stream: BinaryIO, sink: BinaryIO) -> None:
    try:
        while chunk := stream.read(_CHUNK):
            sink.write(chunk)
    except (BrokenPipeError, ValueError):
        pass
    finally:
        try:
            sink.close()
        except BrokenPipeError:
            pass

