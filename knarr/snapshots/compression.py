"""Reading layer streams: detecting and undoing gzip or zstd compression.

gzip is inflated by zlib directly (`GzipStream`), a megabyte of compressed
input at a time; `gzip.GzipFile` reads its input 8 KiB at a time, which on a
pull meant some 20,000 trips per 180 MB through the network, hashing and
ingest code above it, and output pieces as small. The inflating is zlib-ng's
(the `zlib-ng` module, a dependency) where it is installed: it does the same
work in half the CPU time of the system zlib 1.2.13, without the GIL; the
standard library's zlib otherwise. zstd uses the `zstandard` module when it is
installed, and otherwise the `zstd` command (Debian package zstd), fed from
a thread; without either a zstd layer is refused as Unavailable.
"""

import shutil
import subprocess
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from knarr import installed
from knarr.errors import InvalidArgument, Unavailable

__all__ = ["detect", "decompressed", "GzipStream", "GZIP", "ZSTD"]

GZIP, ZSTD = "gzip", "zstd"
_MAGIC = {b"\x1f\x8b": GZIP, b"\x28\xb5\x2f\xfd": ZSTD}
_CHUNK = 1 << 20
_inflater = None  # zlib_ng's module or zlib, chosen on first use


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
        yield GzipStream(stream)  # type: ignore[misc]
    elif compression == ZSTD:
        with _zstd_reader(stream) as out:
            yield out
    else:
        raise InvalidArgument(f"unknown compression {compression!r}", compression=compression)


def _inflate_module():
    global _inflater
    if _inflater is None:
        _inflater = installed.optional("zlib_ng.zlib_ng") or zlib
    return _inflater


class GzipStream:
    """A file object of the inflated bytes of a gzip stream (one or more members, as
    `gzip` and Docker read them; NUL padding after the last member is ignored).

    zlib checks each member's header, CRC-32 and length itself. A corrupt stream is
    refused as InvalidArgument, a truncated one raises EOFError (as tarfile's own
    truncation does), both naming the byte offset in the compressed stream."""

    def __init__(self, stream: BinaryIO, chunk: int = _CHUNK) -> None:
        self.stream = stream
        self.chunk = chunk
        self.zlib = _inflate_module()
        self.inflate = self.zlib.decompressobj(16 + zlib.MAX_WBITS)
        self.pending = b""  # compressed bytes read but not yet given to zlib
        self.offset = 0  # compressed bytes read from `stream`
        self.eof = False

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        """Up to `n` inflated bytes (all the rest if n < 0); b"" at the end."""
        if n < 0:
            parts = []
            while part := self.read(self.chunk):
                parts.append(part)
            return b"".join(parts)
        while n and not self.eof:
            if not self.pending:
                self.pending = self._input()
                if not self.pending:
                    if self.inflate.eof:
                        self.eof = True
                        break
                    raise EOFError(f"gzip stream: truncated at byte {self.offset}")
            try:
                out = self.inflate.decompress(self.pending, n)
            except (zlib.error, self.zlib.error) as exc:
                raise InvalidArgument(f"gzip stream: corrupt near byte {self.offset}: {exc}",
                                      compression=GZIP) from None
            self.pending = self.inflate.unconsumed_tail
            if self.inflate.eof:
                self._next_member()
            if out:
                return out
        return b""

    def _input(self) -> bytes:
        data = self.stream.read(self.chunk)
        self.offset += len(data)
        return data

    def _next_member(self) -> None:
        """After a member's trailer: start the next member, or end at padding or EOF."""
        rest = self.inflate.unused_data
        while not rest.strip(b"\0"):
            rest = self._input()
            if not rest:
                self.pending, self.eof = b"", True
                return
        rest = rest.lstrip(b"\0")
        self.inflate = self.zlib.decompressobj(16 + zlib.MAX_WBITS)
        self.pending = rest

    def close(self) -> None:
        pass


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

