"""Fuzz targets: one function per parser, each taking bytes and checking what must hold.

A target returns normally when the input was parsed or refused the way the parser
promises (knarr's InvalidArgument, the HTTP layer's BadRequest); anything else escapes
and is a crash. The same functions serve the hypothesis properties
(tests/unit/test_fuzz_properties.py) and the atheris harnesses (fuzz/fuzz_*.py).
"""

import asyncio
import io
import json
import os
import shutil
import tarfile
import tempfile

from knarr.errors import InvalidArgument, NotFound

__all__ = ["reference", "image_spec", "dockerfile", "layer_tar", "http_request", "TARGETS",
           "tar_of", "hostile_entry"]


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="surrogateescape")


def reference(data: bytes) -> None:
    """parse() refuses with InvalidArgument or returns a reference that parses back to
    itself, in full and in Docker's short form."""
    from knarr.oci import reference as ref

    text = _text(data)
    try:
        parsed = ref.parse(text)
    except InvalidArgument:
        return
    assert ref.parse(str(parsed)) == parsed, (text, str(parsed))
    first = parsed.familiar_name.split("/")[0]
    if parsed.domain == ref.DEFAULT_DOMAIN and "/" in parsed.familiar_name and \
            ("." in first or ":" in first or first == "localhost"):
        return  # docker.io/0.0/x prints as 0.0/x, which names a registry: so does Docker's
    assert ref.parse(parsed.familiar()) == parsed, (text, parsed.familiar())
    assert parsed.name.startswith(parsed.domain + "/")


def image_spec(data: bytes) -> None:
    """Every validator refuses with InvalidArgument or returns; platform selection on a
    valid index returns one of its manifests or refuses."""
    from knarr.oci import image_spec as spec

    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return
    for validate in (spec.validate_manifest, spec.validate_index, spec.validate_config,
                     lambda d: spec.validate_descriptor(d, "descriptor")):
        try:
            validate(doc)
        except InvalidArgument:
            continue
    try:
        index = spec.validate_index(doc)
    except InvalidArgument:
        return
    try:
        chosen = spec.select_manifest(index, spec.platform_of_machine(os.uname().machine))
    except (InvalidArgument, NotFound):
        return
    assert chosen in index["manifests"]


def dockerfile(data: bytes) -> None:
    """parse() refuses with InvalidArgument (ParseError) or returns instructions whose
    keywords are known and whose line numbers are within the text."""
    from knarr.build import parser

    text = _text(data)
    try:
        parsed = parser.parse(text)
    except InvalidArgument:
        return
    lines = text.replace("\r\n", "\n").count("\n") + 1
    for instruction in parsed.instructions:
        assert instruction.keyword in parser.KEYWORDS, instruction
        assert 1 <= instruction.line <= lines, (instruction.line, lines)


# -- layer tars -------------------------------------------------------------------------


def hostile_entry(kind: int, name: str, link: str, payload: bytes) -> tarfile.TarInfo:
    """One tar entry of a kind picked by number: file, dir, symlink, hard link, char and
    block device, fifo, a file whose header claims a huge size."""
    info = tarfile.TarInfo(name)
    info.mtime, info.mode = 1_600_000_000, 0o755
    kinds = [tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE,
             tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE, tarfile.REGTYPE]
    info.type = kinds[kind % len(kinds)]
    info.linkname = link if info.type in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""
    if info.type in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = 1, 3 if info.type == tarfile.CHRTYPE else 7
    info.size = len(payload) if info.type == tarfile.REGTYPE else 0
    if kind % len(kinds) == len(kinds) - 1:
        info.size = 1 << 40  # a header that lies: far more than the archive holds
    return info


def tar_of(entries: list[tuple[int, str, str, bytes]]) -> bytes:
    """An uncompressed tar of hostile entries (headers written as given, sizes unchecked)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for kind, name, link, payload in entries:
            info = hostile_entry(kind, name, link, payload)
            header = info.tobuf(tar.format, tar.encoding, "surrogateescape")
            body = payload if info.type == tarfile.REGTYPE else b""
            body += b"\0" * (-len(body) % 512)
            buf.write(header + body)
        tar.offset = buf.tell()
    return buf.getvalue()


def _snapshot(top: str) -> dict[str, tuple]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            out[path] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


def layer_tar(data: bytes) -> None:
    """apply_layer refuses with InvalidArgument or extracts; either way nothing outside
    the target directory is created, changed or removed."""
    from knarr.snapshots.apply import apply_layer

    sandbox = tempfile.mkdtemp(prefix="knarr-fuzz-tar-")
    try:
        target = os.path.join(sandbox, "a", "b", "target")
        os.makedirs(target)
        with open(os.path.join(sandbox, "canary"), "wb") as f:
            f.write(b"canary")
        os.makedirs(os.path.join(sandbox, "a", "sibling"))
        before = {p: v for p, v in _snapshot(sandbox).items() if not p.startswith(target)}
        try:
            apply_layer(target, io.BytesIO(data), max_bytes=1 << 24)
        except InvalidArgument:
            pass
        after = {p: v for p, v in _snapshot(sandbox).items()
                 if not (p == target or p.startswith(target + "/"))}
        assert after == before, sorted(set(after.items()) ^ set(before.items()))
        with open(os.path.join(sandbox, "canary"), "rb") as f:
            assert f.read() == b"canary"
    finally:
        shutil.rmtree(sandbox, ignore_errors=True)


# -- HTTP requests ----------------------------------------------------------------------

_LOOP: asyncio.AbstractEventLoop | None = None


async def _read(data: bytes) -> None:
    from knarr.api import http

    reader = asyncio.StreamReader(limit=1 << 16)
    reader.feed_data(data)
    reader.feed_eof()
    while True:
        try:
            request = await http.read_request(reader)
        except http.BadRequest:
            return
        if request is None:
            return
        assert request.method and isinstance(request.path, str)
        try:
            await request.body()
        except (http.BadRequest, asyncio.IncompleteReadError):
            return  # the server answers 400, or closes: the client hung up mid-body
        try:
            await request.json()
        except (http.BadRequest, InvalidArgument):
            pass


def http_request(data: bytes) -> None:
    """The API's request reader takes any bytes from a client: requests, or BadRequest."""
    global _LOOP
    if _LOOP is None:
        _LOOP = asyncio.new_event_loop()
    _LOOP.run_until_complete(_read(data))


TARGETS = {"reference": reference, "image_spec": image_spec, "dockerfile": dockerfile,
           "layer_tar": layer_tar, "http_request": http_request}
