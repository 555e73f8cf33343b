"""knarr save [OPTIONS] IMAGE [IMAGE...]: a docker-save tarball to a file or stdout."""

import os

from knarr.cli import flags

__all__ = ["command", "run"]


def command(name: str) -> flags.Command:
    """The declaration of `save`."""
    c = flags.Command(name, f"knarr {name} [OPTIONS] IMAGE [IMAGE...]",
                      "Save one or more images to a tar archive (streamed to STDOUT by default)",
                      min_args=1)
    c.add_argument("-o", "--output", help="Write to a file, instead of STDOUT")
    return c


def run(cli, args) -> int:
    """GET /images/get?names=..., written whole to -o (via a temp file) or stdout."""
    if not args.output and os.isatty(1):
        raise cli.fail("cowardly refusing to save to a terminal. Use the -o flag or redirect",
                       1)
    resp = cli.client.request("GET", "/images/get", {"names": list(args.args)})
    try:
        if args.output:
            _to_file(resp, args.output)
        else:
            for chunk in resp.chunks():
                _write(1, chunk)
    finally:
        resp.conn.close()
    return 0


def _to_file(resp, path: str) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for chunk in resp.chunks():
            _write(fd, chunk)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    os.rename(tmp, path)


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
