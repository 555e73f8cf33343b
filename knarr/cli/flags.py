"""Flag parsing with Docker's (pflag's) rules and messages, without argparse.

Commands declare flags the way argparse takes them (`add_argument("-e",
"--env", action="append")`). Parsing follows pflag: combined short flags
(`-it`), values joined or separate (`-eA=1`, `-e A=1`, `--env=A=1`), booleans
with an optional `=false`, `--` ends the flags, and commands like `run` stop
at the first positional so the container's own flags pass through. Errors are
Docker's texts (`unknown flag: --bogus`) and exit 125; `--help` prints a usage
page.
"""

__all__ = ["Args", "Command", "UsageError", "HelpRequested", "parse_bool"]

PROG = "knarr"


class UsageError(Exception):
    """A malformed command line; `code` is the exit status (125 for flags, as Docker)."""

    def __init__(self, message: str, code: int = 125) -> None:
        super().__init__(message)
        self.message, self.code = message, code


class HelpRequested(Exception):
    """`-h`/`--help` was given."""


class Args:
    """The parsed flags as attributes, plus `args`: the positionals."""

    def __init__(self, **values: object) -> None:
        self.__dict__.update(values)

    def __repr__(self) -> str:
        return f"Args({self.__dict__!r})"


_TRUE = ("1", "t", "T", "true", "TRUE", "True")
_FALSE = ("0", "f", "F", "false", "FALSE", "False")


def parse_bool(text: str) -> bool:
    """Go's strconv.ParseBool."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f'strconv.ParseBool: parsing "{text}": invalid syntax')


def go_int(text: str) -> int:
    """An integer flag value, with Go's strconv error text."""
    try:
        return int(text, 0) if text[1:2] in ("x", "o", "b") else int(text)
    except ValueError:
        raise ValueError(f'strconv.ParseInt: parsing "{text}": invalid syntax') from None


class _Flag:
    __slots__ = ("short", "long", "dest", "action", "type", "default", "help", "metavar",
                 "hidden")

    def __init__(self, names, action, type, default, help, metavar, dest, hidden) -> None:
        self.short = next((n[1:] for n in names if len(n) == 2 and n[1] != "-"), "")
        self.long = next((n[2:] for n in names if n.startswith("--")), "")
        self.dest = dest or (self.long or self.short).replace("-", "_")
        self.action, self.type, self.help, self.metavar = action, type, help, metavar
        self.hidden = hidden
        if default is None and action == "store_true":
            default = False
        self.default = default

    def spelled(self) -> str:
        """`-m, --memory` or `--cpus`, as Docker names a flag in errors."""
        if self.short and self.long:
            return f"-{self.short}, --{self.long}"
        return f"--{self.long}" if self.long else f"-{self.short}"


class Command:
    """One command's flags, argument count and help text."""

    def __init__(self, name: str, usage: str, summary: str, min_args: int = 0,
                 max_args: int | None = None, interspersed: bool = True) -> None:
        self.name, self.usage, self.summary = name, usage, summary
        self.min_args, self.max_args, self.interspersed = min_args, max_args, interspersed
        self.flags: list[_Flag] = []
        self._long: dict[str, _Flag] = {}
        self._short: dict[str, _Flag] = {}

    def add_argument(self, *names: str, action: str | None = None, type=None, default=None,
                     help: str = "", metavar: str | None = None, dest: str | None = None,
                     hidden: bool = False) -> None:
        """Declare a flag: action None (a value), "store_true" or "append"."""
        flag = _Flag(names, action, type, default, help, metavar, dest, hidden)
        self.flags.append(flag)
        if flag.long:
            self._long[flag.long] = flag
        if flag.short:
            self._short[flag.short] = flag

    # -- parsing ----------------------------------------------------------

    def parse(self, argv: list[str]) -> Args:
        """Parse `argv` (the words after the command's name)."""
        values = {f.dest: (list(f.default) if isinstance(f.default, list) else
                           [] if f.action == "append" and f.default is None else f.default)
                  for f in self.flags}
        values["explicit"] = set()
        loose: list[str] = []
        i = 0
        while i < len(argv):
            arg = argv[i]
            if arg == "--":
                loose += argv[i + 1:]
                break
            if arg.startswith("--"):
                i = self._long_flag(argv, i, values)
            elif arg.startswith("-") and len(arg) > 1:
                i = self._short_flags(argv, i, values)
            elif not self.interspersed:
                loose += argv[i:]
                break
            else:
                loose.append(arg)
                i += 1
        self._check_count(loose)
        return Args(args=loose, **values)

    def _long_flag(self, argv: list[str], i: int, values: dict) -> int:
        name, eq, value = argv[i][2:].partition("=")
        flag = self._long.get(name)
        if flag is None:
            if name == "help":
                raise HelpRequested()
            raise self.error(f"unknown flag: --{name}")
        if flag.action == "store_true":
            self._set(flag, value if eq else "true", values)
            return i + 1
        if not eq:
            if i + 1 >= len(argv):
                raise self.error(f"flag needs an argument: --{name}")
            i += 1
            value = argv[i]
        self._set(flag, value, values)
        return i + 1

    def _short_flags(self, argv: list[str], i: int, values: dict) -> int:
        arg = argv[i]
        j = 1
        while j < len(arg):
            char = arg[j]
            flag = self._short.get(char)
            if flag is None:
                if char == "h":
                    raise HelpRequested()
                raise self.error(f"unknown shorthand flag: '{char}' in -{arg[j:]}")
            rest = arg[j + 1:]
            if flag.action == "store_true":
                if rest.startswith("="):
                    self._set(flag, rest[1:], values)
                    return i + 1
                self._set(flag, "true", values)
                j += 1
                continue
            if rest:
                self._set(flag, rest[1:] if rest.startswith("=") else rest, values)
                return i + 1
            if i + 1 >= len(argv):
                raise self.error(f"flag needs an argument: '{char}' in -{char}")
            self._set(flag, argv[i + 1], values)
            return i + 2
        return i + 1

    def _set(self, flag: _Flag, text: str, values: dict) -> None:
        try:
            if flag.action == "store_true":
                value: object = parse_bool(text)
            elif flag.type is int:
                value = go_int(text)
            else:
                value = flag.type(text) if flag.type else text
        except ValueError as exc:
            raise self.error(
                f'invalid argument "{text}" for "{flag.spelled()}" flag: {exc}') from None
        if flag.action == "append":
            values[flag.dest].append(value)
        else:
            values[flag.dest] = value
        values["explicit"].add(flag.dest)

    def _check_count(self, loose: list[str]) -> None:
        low, high, n = self.min_args, self.max_args, len(loose)
        if low == high and n != low:
            if low == 0:
                self._count_error("accepts no arguments.")
            self._count_error(f"requires exactly {_plural(low)}.")
        if n < low:
            self._count_error(f"requires at least {_plural(low)}.")
        if high is not None and n > high:
            self._count_error(f"requires at most {_plural(high)}.")

    def _count_error(self, what: str) -> None:
        raise UsageError(f'"{PROG} {self.name}" {what}\nSee \'{PROG} {self.name} --help\'.'
                         f"\n\nUsage:  {self.usage}\n\n{self.summary}", code=1)

    def error(self, message: str) -> UsageError:
        """A flag error with Docker's hint to the help page."""
        return UsageError(f"{message}\nSee '{PROG} {self.name} --help'.")

    # -- help -------------------------------------------------------------

    def help_text(self) -> str:
        """The usage page `--help` prints."""
        lines = [f"\nUsage:  {self.usage}\n", self.summary, ""]
        rows = []
        for flag in sorted(self.flags, key=lambda f: f.long or f.short):
            if flag.hidden:
                continue
            names = (f"-{flag.short}, " if flag.short else "    ") + \
                (f"--{flag.long}" if flag.long else "")
            if flag.action != "store_true":
                names += " " + (flag.metavar or _kind(flag))
            text = flag.help
            default = flag.default
            if default not in (None, False, "", [], -1) and flag.action != "append" and \
                    "(default" not in text:
                shown = "true" if default is True else \
                    f'"{default}"' if isinstance(default, str) else default
                text += f" (default {shown})"
            rows.append((names, text))
        if rows:
            width = max(len(r[0]) for r in rows) + 3
            lines.append("Options:")
            lines += [f"  {names.ljust(width)}{text}".rstrip() for names, text in rows]
        return "\n".join(lines) + "\n"


def _kind(flag: _Flag) -> str:
    if flag.action == "append":
        return "list"
    if flag.type is int:
        return "int"
    return getattr(flag.type, "kind", "string")


def _plural(n: int) -> str:
    return f"{n} argument" if n == 1 else f"{n} arguments"
