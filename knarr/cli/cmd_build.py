"""knarr build [OPTIONS] PATH | -: an image from a Dockerfile, with Docker's classic output.

The context directory is sent as a tar stream, made while it is sent; `-`
reads a tar context from stdin. `.dockerignore` is applied by the daemon.
Exit status as Docker's client: the error's code (a failing RUN: 1).
"""

import json
import os
import sys

from knarr.cli import flags
from knarr.tarstream import ustar_header

__all__ = ["command", "run"]


def command(name: str) -> flags.Command:
    """The declaration of `build`."""
    c = flags.Command(name, f"knarr {name} [OPTIONS] PATH | -",
                      "Build an image from a Dockerfile", min_args=1, max_args=1)
    c.add_argument("-t", "--tag", action="append", help="Name and optionally a tag in the "
                                                        "'name:tag' format")
    c.add_argument("-f", "--file", help="Name of the Dockerfile (Default is 'PATH/Dockerfile')")
    c.add_argument("--build-arg", action="append", help="Set build-time variables")
    c.add_argument("--label", action="append", help="Set metadata for an image")
    c.add_argument("--target", help="Set the target build stage to build.")
    c.add_argument("--no-cache", action="store_true", help="Do not use cache when building "
                                                           "the image")
    c.add_argument("--pull", action="store_true", help="Always attempt to pull a newer "
                                                       "version of the image")
    c.add_argument("-q", "--quiet", action="store_true", help="Suppress the build output and "
                                                              "print image ID on success")
    c.add_argument("--iidfile", help="Write the image ID to the file")
    c.add_argument("--rm", action="store_true", default=True, help="Remove intermediate "
                                                                   "containers after a "
                                                                   "successful build")
    c.add_argument("--force-rm", action="store_true", help="Always remove intermediate "
                                                           "containers")
    c.add_argument("--network", help="Set the networking mode for the RUN instructions "
                                     "during build")
    return c


def _pairs(values: list[str] | None, env_fallback: bool) -> dict:
    out: dict = {}
    for item in values or []:
        key, eq, value = item.partition("=")
        if eq:
            out[key] = value
        elif env_fallback:
            out[key] = os.environ.get(key)
        else:
            out[key] = ""
    return out


class _TarStream:
    """A tar of a directory (plus one extra file), made as it is read: the headers are
    made first (so the length is known and the body needs no chunked framing), file
    data is read straight from each file in the pieces the client sends, owners 0:0."""

    def __init__(self, root: str, extra: tuple[str, bytes] | None) -> None:
        self.root = root
        self.entries = self._entries(extra)
        self.length = sum(len(h) + _padded(size) for h, _, size in self.entries) + 1024
        self.pieces = self._pieces()
        self.piece, self.offset = b"", 0

    def _header(self, rel: str, st) -> bytes | None:
        import stat

        mode = st.st_mode
        name = rel.encode("utf-8", "surrogateescape")
        if stat.S_ISREG(mode):
            kind, size, link = b"0", st.st_size, b""
        elif stat.S_ISDIR(mode):
            kind, size, link, name = b"5", 0, b"", name + b"/"
        elif stat.S_ISLNK(mode):
            kind, size, link = b"2", 0, os.readlink(os.path.join(self.root, rel)).encode(
                "utf-8", "surrogateescape")
        else:
            return None  # devices, fifos, sockets: not part of a context
        return ustar_header(name, stat.S_IMODE(mode), 0, 0, size, int(st.st_mtime), kind, link)

    def _entries(self, extra) -> list[tuple[bytes, str | bytes | None, int]]:
        """(header, file path or inline data or None, data size) per entry."""
        import stat

        out: list[tuple[bytes, str | bytes | None, int]] = []
        top = len(self.root.rstrip("/")) + 1
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames.sort()
            base = dirpath[top:]
            for name in sorted(dirnames + filenames):
                full = os.path.join(dirpath, name)
                st = os.lstat(full)
                header = self._header(f"{base}/{name}" if base else name, st)
                if header is not None:
                    regular = stat.S_ISREG(st.st_mode)
                    out.append((header, full if regular else None,
                                st.st_size if regular else 0))
        if extra is not None:
            out.append((ustar_header(extra[0].encode(), 0o644, 0, 0, len(extra[1]), 0, b"0"),
                        extra[1], len(extra[1])))
        return out

    def _pieces(self):
        for header, source, size in self.entries:
            yield header
            if isinstance(source, bytes):
                yield source + b"\0" * (_padded(size) - size)
            elif source is not None:
                yield from _file_data(source, size)
        yield b"\0" * 1024

    def read(self, n: int = -1) -> bytes:
        """The next bytes, at most `n` (fewer at a piece's end); b"" at the end."""
        while self.offset >= len(self.piece):
            piece = next(self.pieces, None)
            if piece is None:
                return b""
            self.piece, self.offset = piece, 0
        if self.offset == 0 and (n < 0 or len(self.piece) <= n):
            self.offset = len(self.piece)
            return self.piece
        end = len(self.piece) if n < 0 else self.offset + n
        out = self.piece[self.offset:end]
        self.offset += len(out)
        return out

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.pieces.close()


def _padded(size: int) -> int:
    return size + (-size % 512)


def _file_data(path: str, size: int):
    """A file's bytes in the pieces the client sends, padded to the tar block; exactly
    `size` bytes even if the file changes meanwhile."""
    piece = 1 << 18
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        left = size
        while left > 0:
            data = os.read(fd, min(left, piece))
            if not data:
                data = b"\0" * min(left, piece)  # truncated while read: keep the size
            left -= len(data)
            yield data
    finally:
        os.close(fd)
    if size % 512:
        yield b"\0" * (512 - size % 512)


def _dockerfile(args, root: str | None) -> tuple[str | None, tuple[str, bytes] | None]:
    if not args.file:
        return None, None
    if root is None or args.file == "-":
        data = sys.stdin.buffer.read() if args.file == "-" else open(args.file, "rb").read()
        return ".knarr-dockerfile", (".knarr-dockerfile", data)
    path = os.path.abspath(args.file)
    rel = os.path.relpath(path, root)
    if not rel.startswith("../"):
        return rel, None
    with open(path, "rb") as f:
        return ".knarr-dockerfile", (".knarr-dockerfile", f.read())


def run(cli, args) -> int:
    """POST /build with the context; print the daemon's stream."""
    where = args.args[0]
    root = None if where == "-" else os.path.abspath(where)
    if root is not None and not os.path.isdir(root):
        raise cli.fail(f"unable to prepare context: path \"{where}\" not found", 1)
    dockerfile, extra = _dockerfile(args, root)
    if root is not None and dockerfile is None and \
            not os.path.exists(os.path.join(root, "Dockerfile")):
        raise cli.fail("unable to prepare context: unable to evaluate symlinks in Dockerfile "
                       f"path: lstat {os.path.join(root, 'Dockerfile')}: no such file or "
                       "directory", 1)
    body = os.fdopen(0, "rb", closefd=False) if root is None else _TarStream(root, extra)
    length = getattr(body, "length", None)
    query = {"t": args.tag or None, "dockerfile": dockerfile, "q": args.quiet,
             "nocache": args.no_cache, "pull": args.pull, "target": args.target,
             "rm": args.rm, "forcerm": args.force_rm, "networkmode": args.network,
             "buildargs": json.dumps(_pairs(args.build_arg, True)) if args.build_arg
             else None,
             "labels": json.dumps(_pairs(args.label, False)) if args.label else None}
    with body:
        messages = cli.client.stream_json("POST", "/build", query, stream=body,
                                          length=length,
                                          headers={"Content-Type": "application/x-tar"})
        image_id = _show(cli, messages)
    if args.iidfile:
        with open(args.iidfile, "w") as f:
            f.write(image_id)
    return 0


def _show(cli, messages) -> str:
    image_id = ""
    for msg in messages:
        if msg.get("errorDetail") or msg.get("error"):
            detail = msg.get("errorDetail") or {}
            sys.stdout.flush()
            raise cli.fail(detail.get("message") or msg.get("error"),
                           int(detail.get("code") or 1))
        if isinstance(msg.get("aux"), dict):
            image_id = msg["aux"].get("ID", image_id)
        if "stream" in msg:
            sys.stdout.write(msg["stream"])
            sys.stdout.flush()
    return image_id
