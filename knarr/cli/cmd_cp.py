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
        return _from_container(cli, src_c, src, dst, args)
    return _to_container(cli, src, dst_c, dst, args)


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


def _from_container(cli, container: str, path: str, dest: str, args) -> int:
    from knarr import tarstream

    if args.follow_link:
        info = _stat(cli, container, path)
        if info and info.get("linkTarget"):
            rename_from = os.path.basename(info["linkTarget"].rstrip("/"))
            path, link_name = info["linkTarget"], os.path.basename(path.rstrip("/"))
        else:
            rename_from = link_name = None
    else:
        rename_from = link_name = None
    resp = cli.client.request("GET", f"/containers/{quote_path(container)}/archive",
                              {"path": path}, what=("container:path", f"{container}:{path}"))
    try:
        if dest == "-":
            for chunk in resp.chunks():
                sys.stdout.buffer.write(chunk)
            return 0
        base = os.path.basename(os.path.normpath(path)) or "/"
        contents = path.endswith("/.") or path.rstrip("/") == ""
        into, rename = dest, None
        if contents:
            os.makedirs(dest, exist_ok=True)
            rename = (base, ".")
        elif os.path.isdir(dest):
            rename = (rename_from, link_name) if rename_from else None
        else:
            into = os.path.dirname(os.path.abspath(dest))
            if dest.endswith("/"):
                raise cli.fail(f"invalid output path: directory {dest!r} does not exist", 1)
            rename = (base, os.path.basename(dest))
        fd = os.open(into, os.O_RDONLY | os.O_DIRECTORY)
        source = _source(resp)
        try:
            tarstream.extract(source, fd, chown=bool(args.archive) and os.geteuid() == 0,
                              rename=rename, in_place=True)
        except (tarstream.TarError, OSError) as exc:
            raise cli.fail(f"copy {container}:{path} to {dest}: {exc}", 1) from None
        finally:
            source.close()
            os.close(fd)
    finally:
        resp.conn.close()
    return 0


def _source(resp):
    """The body as a tarstream source: read straight off the socket (spliced into the files)
    when the body runs to the connection's close on a plain socket, else its chunks."""
    from knarr import tarstream

    conn = resp.conn
    framed = "transfer-encoding" in resp.headers or "content-length" in resp.headers
    sock = getattr(conn, "sock", None)
    if framed or not hasattr(sock, "setblocking") or hasattr(sock, "getpeercert"):  # TLS
        return tarstream.Source(chunks=resp.chunks())
    held = bytes(conn.buf)
    conn.buf.clear()
    conn.sock.setblocking(True)
    return tarstream.Source(fd=conn.sock.fileno(), initial=held)


def _to_container(cli, src: str, container: str, path: str, args) -> int:
    target = _stat(cli, container, path)
    query = {"noOverwriteDirNonDir": True, "copyUIDGID": bool(args.archive) or None}
    if src == "-":
        stream = os.fdopen(0, "rb", closefd=False)
        cli.client.call("PUT", f"/containers/{quote_path(container)}/archive",
                        {"path": path, **query}, stream=stream,
                        headers={"Content-Type": "application/x-tar"})
        return 0
    if not os.path.lexists(src):
        raise cli.fail(f"lstat {os.path.abspath(src)}: no such file or directory", 1)
    contents = src.endswith("/.")
    local = os.path.abspath(src)
    name = os.path.basename(local)
    if target is not None and target.get("mode", 0) & _DIR:
        where, arcname = path, ("." if contents else name)
    else:
        if path.endswith("/"):
            raise cli.fail(f"Error response from daemon: Could not find the file {path} in "
                           f"container {container}", 1)
        where, arcname = os.path.dirname(path.rstrip("/")) or "/", os.path.basename(
            path.rstrip("/"))
    stream = _TarBody(local, arcname, args.follow_link)
    with stream:
        cli.client.call("PUT", f"/containers/{quote_path(container)}/archive",
                        {"path": where, **query}, stream=stream,
                        headers={"Content-Type": "application/x-tar"})
    return 0


class _TarBody:
    """The request body of a copy in: `write_chunks` writes the tar stream as HTTP chunks
    straight into a plain socket (file bodies by sendfile); `read` serves any other
    transport (TLS) from a pipe a thread fills."""

    def __init__(self, local: str, arcname: str, follow: bool) -> None:
        self.local, self.arcname, self.follow = local, arcname, follow
        self.pipe = None

    def _write(self, fd: int, chunked: bool) -> None:
        from knarr import tarstream

        parent = os.open(os.path.dirname(self.local) or "/", os.O_RDONLY | os.O_DIRECTORY)
        try:
            tarstream.write_tree(fd, parent, os.path.basename(self.local) or ".",
                                 self.arcname, follow=self.follow, chunked=chunked)
        finally:
            os.close(parent)

    def write_chunks(self, fd: int) -> None:
        """Write the whole body, chunk-framed, into `fd`."""
        self._write(fd, True)

    def read(self, size: int) -> bytes:
        """Up to `size` bytes of the plain tar stream."""
        if self.pipe is None:
            import threading

            r, w = os.pipe()

            def fill() -> None:
                try:
                    self._write(w, False)
                except OSError:
                    pass
                finally:
                    os.close(w)

            threading.Thread(target=fill, daemon=True).start()
            self.pipe = os.fdopen(r, "rb")
        return self.pipe.read(size)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        if self.pipe is not None:
            self.pipe.close()
