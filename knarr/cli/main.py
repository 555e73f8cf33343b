"""Entry point of `knarr`: global flags, one module per command, errors at the edge."""

import os
import sys

from knarr.cli import flags
from knarr.errors import KnarrError

__all__ = ["main", "entry", "COMMANDS"]

# command -> module (knarr.cli.cmd_<module>); only the one run is imported
COMMANDS = {
    "run": "run", "create": "create", "start": "start", "stop": "stop", "restart": "restart",
    "kill": "kill", "rm": "rm", "ps": "ps", "inspect": "inspect", "wait": "wait",
    "rename": "rename", "pause": "pause", "unpause": "unpause", "top": "top", "logs": "logs",
    "attach": "attach", "exec": "exec", "stats": "stats", "events": "events",
    "images": "images", "rmi": "rmi", "tag": "tag", "save": "save", "load": "load",
    "history": "history", "version": "version", "info": "info", "diff": "diff",
    "commit": "commit", "export": "export", "import": "import", "port": "port", "pull": "pull",
    "cp": "cp", "update": "update", "login": "login", "logout": "logout", "push": "push",
    "build": "build", "search": "search",
}
# management commands: `knarr container ls` and friends
GROUPS = {
    "container": {"ls": "ps", "list": "ps", "ps": "ps", "remove": "rm", "prune": "prune",
                  **{c: c for c in ("run", "create", "start", "stop", "restart", "kill", "rm",
                                    "inspect", "wait", "rename", "pause", "unpause", "top",
                                    "logs", "attach", "exec", "stats", "diff", "commit", "export",
                                    "port", "cp", "update")}},
    "image": {"ls": "images", "list": "images", "rm": "rmi", "remove": "rmi",
              "inspect": "inspect", "tag": "tag", "save": "save", "load": "load",
              "history": "history", "prune": "prune", "import": "import",
              "pull": "pull", "push": "push", "build": "build"},
    "system": {"info": "info", "df": "df", "prune": "prune", "events": "events"},
    "network": {"create": "network_create", "ls": "network_ls", "list": "network_ls",
                "inspect": "inspect", "rm": "network_rm", "remove": "network_rm",
                "prune": "prune", "connect": "network_connect",
                "disconnect": "network_disconnect"},
    "volume": {v: "volume" for v in ("create", "ls", "list", "inspect", "rm", "remove",
                                     "prune")},
}
_ALIASES = {"list", "remove", "ps"}  # shown only under their usual names
_GLOBAL_VALUES = {"-H": "host", "--host": "host", "-l": "log_level", "--log-level": "log_level",
                  "--config": "config", "-c": "context", "--context": "context",
                  "--tlscacert": "tlscacert", "--tlscert": "tlscert", "--tlskey": "tlskey"}
_GLOBAL_BOOLS = {"-D", "--debug", "--tls", "--tlsverify"}
# commands that always ask the daemon: its version ping goes out before their flags are
# parsed and is answered meanwhile
_PING_EARLY = {"run", "exec", "create", "start", "stop", "rm", "kill", "ps", "inspect", "wait",
               "logs", "attach", "restart"}
_HELP = {"-h", "--help"}


class Globals:
    """The flags given before the command."""

    def __init__(self) -> None:
        self.host: list[str] = []
        self.version = self.help = self.tls = self.tlsverify = False
        self.tlscacert = self.tlscert = self.tlskey = None


def _globals(argv: list[str]) -> tuple[Globals, list[str]]:
    """Split the global flags off; the rest starts with the command."""
    g = Globals()
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, value = arg.partition("=")
        if name in _GLOBAL_VALUES:
            if not eq:
                if i + 1 >= len(argv):
                    raise flags.UsageError(f"flag needs an argument: {name}\n"
                                           "See 'knarr --help'.")
                i += 1
                value = argv[i]
            if _GLOBAL_VALUES[name] == "host":
                g.host.append(value)
            else:
                setattr(g, _GLOBAL_VALUES[name], value)
        elif name in _GLOBAL_BOOLS:
            if name in ("--tls", "--tlsverify"):
                setattr(g, name[2:], value.lower() not in ("false", "0") if eq else True)
        elif arg in ("-v", "--version"):
            g.version = True
        elif arg in ("-h", "--help"):
            g.help = True
        elif arg.startswith("-") and arg != "-":
            raise flags.UsageError(f"unknown flag: {name}\nSee 'knarr --help'.")
        else:
            break
        i += 1
    return g, argv[i:]


def _resolve(words: list[str]) -> tuple[str, str, list[str]]:
    """(module, name as typed, remaining argv) for `run ...` or `container ls ...`."""
    first = words[0]
    if first in GROUPS and len(words) > 1 and not words[1].startswith("-"):
        sub = GROUPS[first].get(words[1])
        if sub is None:
            raise flags.UsageError(f"knarr: '{first} {words[1]}' is not a knarr command.\n"
                                   f"See 'knarr {first} --help'", code=1)
        return sub, f"{first} {words[1]}", words[2:]
    if first in GROUPS:
        if len(words) > 1 and words[1] not in ("-h", "--help"):
            raise flags.UsageError(f"unknown flag: {words[1]}\nSee 'knarr {first} --help'.")
        raise flags.UsageError(_group_help(first), code=0)
    if first not in COMMANDS:
        raise flags.UsageError(f"knarr: '{first}' is not a knarr command.\n"
                               "See 'knarr --help'", code=1)
    return COMMANDS[first], first, words[1:]


def _summaries(names: dict[str, str]) -> str:
    """`  name  summary` lines; imports each command's module (help only)."""
    width = max(len(n) for n in names) + 2
    lines = []
    for name, module_name in sorted(names.items()):
        module = __import__(f"knarr.cli.cmd_{module_name}", fromlist=["command"])
        lines.append(f"  {name.ljust(width)}{module.command(name).summary}")
    return "\n".join(lines) + "\n"


def _group_help(group: str) -> str:
    return (f"\nUsage:  knarr {group} COMMAND\n\nManage {group}s\n\nCommands:\n" +
            _summaries({k: v for k, v in GROUPS[group].items() if k not in _ALIASES}) +
            f"\nRun 'knarr {group} COMMAND --help' for more "
            "information on a command.\n")


def _usage() -> str:
    return ("\nUsage:  knarr [OPTIONS] COMMAND\n\nA Docker-compatible command line for "
            "knarr, speaking the Docker Engine API\n\nOptions:\n"
            "  -H, --host list      Daemon socket to connect to (default "
            "unix:///run/knarr/knarr.sock; DOCKER_HOST)\n"
            "      --tls            Use TLS; implied by --tlsverify\n"
            "      --tlscacert, --tlscert, --tlskey string   TLS files (default "
            "$DOCKER_CERT_PATH/{ca,cert,key}.pem)\n"
            "      --tlsverify      Use TLS and verify the remote (DOCKER_TLS_VERIFY)\n"
            "  -v, --version        Print version information and quit\n\n"
            "Management Commands:\n  container   Manage containers\n  image       Manage "
            "images\n  network     Manage networks\n  system      Manage knarr\n  volume      Manage volumes\n\nCommands:\n"
            "  daemon      Run the knarr daemon (knarrd; see 'knarr daemon --help')\n" + _summaries(COMMANDS) +
            "\nRun 'knarr COMMAND --help' for more information on a command.\n")


def main(argv: list[str] | None = None) -> int:
    """Run one knarr command; return its exit status."""
    argv = sys.argv[1:] if argv is None else argv
    from knarr.cli.context import Cli

    try:
        g, words = _globals(argv)
        if g.version and not words:
            from knarr.cli.cmd_version import VERSION

            sys.stdout.write(f"knarr version {VERSION}\n")
            return 0
        if not words:
            sys.stdout.write(_usage())
            return 0 if g.help else 0
        if words[0] == "daemon":
            _exec_daemon(words[1:])
        if len(g.host) > 1:
            raise flags.UsageError("Please specify only one -H", code=1)
        module_name, typed, rest = _resolve(words)
    except flags.UsageError as exc:
        _say(exc.message, exc.code)
        return exc.code
    cli = Cli(g.host, typed, g)
    if module_name in _PING_EARLY and not _HELP.intersection(rest):
        cli.ping_early()
    module = __import__(f"knarr.cli.cmd_{module_name}", fromlist=["COMMAND"])
    return _run(cli, module, typed, rest)


def _exec_daemon(argv: list[str]) -> None:
    """`knarr daemon ARGS` is `knarrd ARGS` (the CLI imports no daemon code: it execs it)."""
    knarrd = os.path.join(os.path.dirname(os.path.abspath(sys.argv[0])), "knarrd")
    if not os.access(knarrd, os.X_OK):
        raise flags.UsageError(f"knarr daemon: {knarrd} not found", code=1)
    sys.stdout.flush()
    os.execv(knarrd, [knarrd, *argv])


def _run(cli, module, typed: str, rest: list[str]) -> int:
    command = module.command(typed)
    try:
        args = command.parse(rest)
        return module.run(cli, args) or 0
    except flags.HelpRequested:
        sys.stdout.write(command.help_text())
        return 0
    except flags.UsageError as exc:
        _say(exc.message, exc.code)
        return exc.code
    except cli.StatusError as exc:
        if exc.message:
            _say(exc.message, exc.code)
        return exc.code
    except KnarrError as exc:
        _say(cli.describe(exc), 1)
        return 1
    except KeyboardInterrupt:
        return 130
    except ValueError as exc:
        if type(exc).__name__ != "TemplateError":
            raise
        _say(f"failed to parse template: template: {exc}", 1)
        return 1
    except BrokenPipeError:
        return 0
    finally:
        cli.close()


def _say(message: str, code: int) -> None:
    stream = sys.stdout if code == 0 else sys.stderr
    stream.write(message if message.endswith("\n") else message + "\n")


def entry() -> None:
    """Console-script wrapper: flush and leave without interpreter teardown."""
    code = main()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        pass
    sys.stderr.flush()
    os._exit(code)
