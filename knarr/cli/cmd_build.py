"""knarr build [OPTIONS] PATH | -: an image from a Dockerfile, with Docker's classic output.

The context directory is sent as a tar stream, made while it is sent; `-`
reads a tar context from stdin. `.dockerignore` is applied by the daemon.
Exit status as Docker's client: the error's code (a failing RUN: 1).
"""

import json
import os
import sys

from knarr.cli import flags

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


def _tar_context(root: str, extra: tuple[str, bytes] | None):
    """A readable pipe carrying a tar of `root` (plus one extra file), written by a thread."""
    import tarfile
    import threading

    read_fd, write_fd = os.pipe()

    def as_root(info):
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    def write() -> None:
        try:
            with os.fdopen(write_fd, "wb", buffering=1 << 20) as out, \
                    tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT,
                                 bufsize=1 << 20) as tar:
                for name in sorted(os.listdir(root)):
                    tar.add(os.path.join(root, name), arcname=name, filter=as_root)
                if extra is not None:
                    import io

                    info = tarfile.TarInfo(extra[0])
                    info.size, info.mode = len(extra[1]), 0o644
                    tar.addfile(info, io.BytesIO(extra[1]))
        except BrokenPipeError:
            pass

    threading.Thread(target=write, daemon=True).start()
    return os.fdopen(read_fd, "rb", buffering=1 << 20)


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
    body = os.fdopen(0, "rb", closefd=False) if root is None else _tar_context(root, extra)
    query = {"t": args.tag or None, "dockerfile": dockerfile, "q": args.quiet,
             "nocache": args.no_cache, "pull": args.pull, "target": args.target,
             "rm": args.rm, "forcerm": args.force_rm, "networkmode": args.network,
             "buildargs": json.dumps(_pairs(args.build_arg, True)) if args.build_arg
             else None,
             "labels": json.dumps(_pairs(args.label, False)) if args.label else None}
    with body:
        messages = cli.client.stream_json("POST", "/build", query, stream=body,
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
