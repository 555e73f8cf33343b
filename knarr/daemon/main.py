"""knarrd: serve the Docker Engine API for one state root.

The fork helper is forked first, while this process holds little more than
the interpreter: every container's monitor is a fork of it.
"""

import sys

__all__ = ["entry"]

DEFAULT_ROOT = "/var/lib/knarr"
DEFAULT_EXEC_ROOT = "/run/knarr"
DEFAULT_HOST = "unix:///run/knarr/knarr.sock"


def _parse(argv: list[str]):
    import argparse

    parser = argparse.ArgumentParser(prog="knarrd", description="the knarr daemon: serves "
                                     "the Docker Engine API")
    parser.add_argument("--root", default=DEFAULT_ROOT, help="persistent state "
                        f"(default {DEFAULT_ROOT})")
    parser.add_argument("--exec-root", default=DEFAULT_EXEC_ROOT, help="run-time state "
                        f"(default {DEFAULT_EXEC_ROOT})")
    parser.add_argument("-H", "--host", default=DEFAULT_HOST,
                        help=f"where to listen (default {DEFAULT_HOST})")
    parser.add_argument("--debug", "-D", action="store_true", help="log every request")
    return parser.parse_args(argv)


def _socket_path(host: str) -> str:
    if host.startswith("unix://"):
        return host[len("unix://"):]
    if host.startswith("/"):
        return host
    raise SystemExit(f"knarrd: -H {host}: only unix:// sockets are served for now")


async def _serve(args, helper) -> None:
    import asyncio
    import logging
    import signal

    from knarr.api import Server
    from knarr.engine import Engine

    engine = Engine(args.root, args.exec_root, helper)
    await engine.restore()
    server = await Server(engine).serve_unix(args.socket)
    logging.getLogger("knarr").info("knarrd: listening on %s", args.host)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    server.close()
    engine.close()  # containers and their monitors keep running: live restore


def entry(argv: list[str] | None = None) -> None:
    """The knarrd command."""
    from knarr.engine import forkhelper

    helper, _helper_pid = forkhelper.start()
    args = _parse(sys.argv[1:] if argv is None else argv)
    args.socket = _socket_path(args.host)
    import asyncio
    import logging
    import os

    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s")
    if os.geteuid() != 0:
        raise SystemExit("knarrd: must run as root")
    try:
        asyncio.run(_serve(args, helper))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    entry()
