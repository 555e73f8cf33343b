"""Entry point of knarr-runtime: global flags, one module per verb, errors at the edge."""

import gc
import os
import sys
import time

from knarr.errors import KnarrError
from knarr.runtime_cli import flags

__all__ = ["main"]

VERSION = "0.1.0"
SPEC_VERSION = "1.0.2"

VERBS = ("create", "start", "run", "state", "kill", "delete", "exec", "ps", "pause",
         "resume", "list", "spec", "events", "update", "features")


def _declare(parser, verb: str | None):
    """Declare every flag on `parser` (argparse's or the quick one); only the named
    verb's module is imported, as start-up cost matters."""
    parser.add_argument("-v", "--version", action="store_true", help="print the version")
    parser.add_argument("--root", default="/run/knarr/runtime",
                        help="directory for container state (default: %(default)s)")
    parser.add_argument("--log", help="also write errors to this file")
    parser.add_argument("--log-format", default="text", choices=("text", "json"),
                        help="format of the --log file (default: %(default)s)")
    parser.add_argument("--debug", action="store_true", help="accepted for runc compatibility")
    parser.add_argument("--systemd-cgroup", action="store_true",
                        help="cgroupsPath is in the slice:prefix:name form")
    parser.add_argument("--rootless", default="auto", help="accepted for runc compatibility")
    parser.add_argument("--criu", help="accepted for runc compatibility (no checkpointing)")
    sub = parser.add_subparsers(dest="verb", metavar="COMMAND")
    for name in ([verb] if verb in VERBS else VERBS):
        module = __import__(f"knarr.runtime_cli.verb_{name}", fromlist=["add_parser"])
        module.add_parser(sub)
    return parser


def _argparse(verb: str | None):
    import argparse

    return _declare(argparse.ArgumentParser(
        prog="knarr-runtime",
        description="knarr-runtime runs OCI bundles: a runc-compatible command line for "
                    "knarr's container runtime."), verb)


def _parse(argv: list[str]):
    """The parsed command line: quickly when well-formed, else through argparse."""
    verb = _verb_in(argv)
    if verb is not None:
        try:
            return flags.parse(_declare(flags.QuickParser(), verb), argv), None
        except flags.Fallback:
            pass
    parser = _argparse(verb)
    return parser.parse_args(argv), parser


_VALUED = {"--root", "--log", "--log-format", "--rootless", "--criu"}


def _verb_in(argv: list[str]) -> str | None:
    """The first argument that names a verb (global flags come before it); a global
    flag's value is not one, even when it is spelled like a verb (--root state)."""
    aliases = {"ls": "list"}
    after_flag = False
    for arg in argv:
        if after_flag:
            after_flag = False
        elif arg in _VALUED:
            after_flag = True
        elif arg in VERBS or arg in aliases:
            return aliases.get(arg, arg)
    return None


# runc (Go flags) also accepts single-dash long options: -bundle X.
_LONG = {"bundle", "root", "log", "log-format", "console-socket", "pid-file", "detach",
         "process", "tty", "cwd", "env", "user", "force", "all", "format", "debug",
         "systemd-cgroup", "no-pivot", "no-new-keyring", "preserve-fds", "rootless"}


def _normalise(argv: list[str]) -> list[str]:
    """Turn runc's `-bundle` spelling into `--bundle`, leaving everything else alone."""
    out = []
    for arg in argv:
        if arg.startswith("-") and not arg.startswith("--"):
            if arg[1:].split("=", 1)[0] in _LONG:
                arg = "-" + arg
        out.append(arg)
    return out


def main(argv: list[str] | None = None) -> int:
    """Run one knarr-runtime command; exit with its status."""
    argv = sys.argv[1:] if argv is None else argv
    args, parser = _parse(_normalise(argv))
    if args.version:
        print(f"knarr-runtime version {VERSION}\nspec: {SPEC_VERSION}")
        return 0
    if not args.verb:
        (parser or _argparse(None)).print_help()
        return 0
    try:
        code = args.func(args)
    except KnarrError as exc:
        return _fail(args, str(exc))
    except OSError as exc:
        return _fail(args, f"{args.verb}: {exc.strerror or exc}")
    except KeyboardInterrupt:
        return 130
    sys.stdout.flush()
    return code or 0


def _fail(args, message: str) -> int:
    print(f"knarr-runtime: {message}", file=sys.stderr)
    if args.log:
        _log(args.log, args.log_format, message)
    return 1


def _log(path: str, fmt: str, message: str) -> None:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if fmt == "json":
        import json

        line = json.dumps({"level": "error", "msg": message, "time": now})
    else:
        line = f'time="{now}" level=error msg="{_quote(message)}"'
    try:
        with open(path, "a") as f:
            f.write(line + "\n")
    except OSError:
        pass


def entry() -> None:
    """Console-script wrapper.

    The cyclic garbage collector is off: every verb is short-lived (run and exec
    wait, allocating next to nothing meanwhile), and collections during the
    imports cost time and, in the forked stage1 and init, copy-on-write faults."""
    gc.disable()
    os._exit(_exit_code(main()))


def _exit_code(code: int) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    return code


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
