"""knarr cp: copy files between a container and the local file system (tar over the API)."""

import os
import sys

from knarr.cli import flags
from knarr.cli.common import quote_path

__all__ = ["command", "run", "split_arg"]

_DIR = 1 << 31  # Go's os.ModeDir in the path stat header


def command(name: str) -> flags.Command:
    """The declaration of `cp`."""
    c = flags.Command(name, f"knarr {name} [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n\tknarr "
                      f"{name} [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
                      "Copy files/folders between a container and the local filesystem",
                      min_args=2, max_args=2)
    c.add_argument("-a", "--archive", action="store_true",
                   help="Archive mode (copy all uid/gid information)")
    c.add_argument("-L", "--follow-link", action="store_true",
                   help="Always follow symbol link in SRC_PATH")
    return c


def split_arg(arg: str) -> tuple[str, str]:
    """("container", "path") for `container:path`; ("", path) for a local path."""
    if arg.startswith("/") or arg.startswith("."):
        return "", arg
    container, sep, path = arg.partition(":")
    return (container, path) if sep and container else ("", arg)


def run(cli, args) -> int:
    """Copy one way or the other."""
    (src_c, src), (dst_c, dst) = split_arg(args.args[0]), split_arg(args.args[1])
    if src_c and dst_c:
        raise cli.fail("copying between containers is not supported", 1)
    if not src_c and not dst_c:
        raise cli.fail("must specify at least one container source", 1)
    if src_c:
        return _from_container(cli, src_c, src, dst)
    return _to_container(cli, src, dst_c, dst)


def _stat(cli, container: str, path: str) -> dict | None:
    """The path's stat in the container, or None if it does not exist."""
    import base64

    from knarr.client import jsonc

    resp = cli.client.request("HEAD", f"/containers/{quote_path(container)}/archive",
                              {"path": path}, ok=(404,))
    resp.read()
    resp.conn.close()
    if resp.status == 404:
        return None
    header = resp.headers.get("x-docker-container-path-stat")
    return jsonc.loads(base64.b64decode(header)) if header else {}


def _from_container(cli, container: str, path: str, dest: str) -> int:
    import tarfile

    resp = cli.client.request("GET", f"/containers/{quote_path(container)}/archive",
                              {"path": path}, what=("container:path", f"{container}:{path}"))
    try:
        if dest == "-":
            for chunk in resp.chunks():
                sys.stdout.buffer.write(chunk)
            return 0
        base = os.path.basename(path.rstrip("/")) or "/"
        into, rename = dest, None
        if not os.path.isdir(dest):
            into, rename = os.path.dirname(os.path.abspath(dest)), os.path.basename(dest)
        with tarfile.open(fileobj=_ChunkReader(resp.chunks()), mode="r|") as archive:
            for member in archive:
                if rename and (member.name == base or member.name.startswith(base + "/")):
                    member.name = rename + member.name[len(base):]
                if hasattr(tarfile, "tar_filter"):  # Python 3.11.4 and later
                    archive.extract(member, into, filter="tar")
                else:
                    archive.extract(member, into)
    finally:
        resp.conn.close()
    return 0


def _to_container(cli, src: str, container: str, path: str) -> int:
    import tarfile
    import tempfile

    target = _stat(cli, container, path)
    if src == "-":
        where, stream, length = path, os.fdopen(0, "rb", closefd=False), None
    else:
        if not os.path.lexists(src):
            raise cli.fail(f"lstat {src}: no such file or directory", 1)
        if target is not None and target.get("mode", 0) & _DIR:
            where, name = path, os.path.basename(os.path.abspath(src))
        else:
            where, name = os.path.dirname(path.rstrip("/")) or "/", os.path.basename(path)
        stream = tempfile.TemporaryFile()
        with tarfile.open(fileobj=stream, mode="w") as archive:
            archive.add(src, arcname=name)
        length = stream.tell()
        stream.seek(0)
    with stream:
        cli.client.call("PUT", f"/containers/{quote_path(container)}/archive",
                        {"path": where, "noOverwriteDirNonDir": True}, stream=stream,
                        length=length, headers={"Content-Type": "application/x-tar"})
    return 0


class _ChunkReader:
    """A read()-able view of an iterator of byte chunks, for tarfile's stream mode."""

    def __init__(self, chunks) -> None:
        self.chunks, self.buf = chunks, b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self.buf) < size:
            chunk = next(self.chunks, None)
            if chunk is None:
                break
            self.buf += chunk
        if size < 0:
            data, self.buf = self.buf, b""
        else:
            data, self.buf = self.buf[:size], self.buf[size:]
        return data



