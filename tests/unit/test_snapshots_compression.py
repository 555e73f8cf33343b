"""knarr.snapshots.compression: the gzip reader layers are inflated through."""

import gzip
import io
import os
import pathlib
import zlib

import pytest

from knarr import installed
from knarr.errors import InvalidArgument
from knarr.snapshots import compression, decompressed, detect
from knarr.snapshots.compression import GZIP, GzipStream


@pytest.fixture(autouse=True, params=["chosen", "zlib"])
def inflater(request, monkeypatch):
    """Every test with the inflater chosen (zlib-ng, a dependency, wherever it is
    installed) and with the standard library's zlib (the fallback where it is not)."""
    if request.param == "zlib":
        monkeypatch.setattr(compression, "_inflater", zlib)
    else:
        assert compression._inflate_module() is (installed.optional("zlib_ng.zlib_ng") or zlib)
    return request.param


def test_zlib_ng_is_a_dependency():
    pyproject = pathlib.Path(__file__).resolve().parents[2] / "pyproject.toml"
    assert '"zlib-ng==' in pyproject.read_text()


class _Trickle(io.RawIOBase):
    """A stream that hands out at most `most` bytes per read, as a socket may."""

    def __init__(self, data: bytes, most: int) -> None:
        self.data, self.most, self.at = data, most, 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = self.most if n < 0 else min(n, self.most)
        out = self.data[self.at:self.at + n]
        self.at += len(out)
        return out


def _read_all(stream, n: int) -> bytes:
    parts = []
    while part := stream.read(n):
        assert len(part) <= n
        parts.append(part)
    return b"".join(parts)


@pytest.mark.parametrize("n", [777, 1 << 20])
def test_inflates_what_gzip_wrote_in_pieces_of_at_most_n(n):
    plain = os.urandom(300_000) + b"a" * 3_000_000 + os.urandom(1000)
    packed = gzip.compress(plain)
    assert detect(packed[:4]) == GZIP
    with decompressed(_Trickle(packed, 7000), GZIP) as out:
        assert _read_all(out, n) == plain
    assert GzipStream(io.BytesIO(packed), chunk=100).read() == plain


def test_several_members_and_nul_padding_read_as_one_stream():
    parts = [b"first " * 1000, b"", b"second " * 5000]
    packed = b"".join(gzip.compress(p) for p in parts) + b"\0" * 700
    for chunk in (1, 64, 1 << 20):
        assert _read_all(GzipStream(io.BytesIO(packed), chunk=chunk), 1 << 16) == b"".join(parts)


def test_a_corrupt_stream_is_refused_naming_where():
    packed = bytearray(gzip.compress(os.urandom(200_000)))
    packed[-5] ^= 0xFF  # the length in the trailer
    with pytest.raises(InvalidArgument, match="gzip stream: corrupt near byte"):
        _read_all(GzipStream(io.BytesIO(bytes(packed)), chunk=4096), 1 << 16)
    crc = bytearray(gzip.compress(b"x" * 100_000))
    crc[-8] ^= 0x01  # the CRC-32 in the trailer
    with pytest.raises(InvalidArgument, match="incorrect data check"):
        GzipStream(io.BytesIO(bytes(crc))).read()
    with pytest.raises(InvalidArgument, match="incorrect header check"):
        GzipStream(io.BytesIO(gzip.compress(b"ok") + b"junk after it")).read()


def test_a_truncated_stream_raises_eof_error():
    packed = gzip.compress(os.urandom(100_000))
    with pytest.raises(EOFError, match="gzip stream: truncated at byte 50000"):
        GzipStream(io.BytesIO(packed[:50_000]), chunk=10_000).read()
    with pytest.raises(EOFError):
        GzipStream(io.BytesIO(packed[:-4])).read()


def test_a_deflate_bomb_is_inflated_piece_by_piece():
    """Output is bounded per read, however much a piece of input would expand to."""
    packed = gzip.compress(b"\0" * (32 << 20), compresslevel=1)
    assert len(packed) < 200_000
    stream = GzipStream(io.BytesIO(packed))
    sizes = []
    while part := stream.read(1 << 20):
        sizes.append(len(part))
    assert max(sizes) == 1 << 20 and sum(sizes) == 32 << 20
