"""A quick parser for the argparse declarations of knarr-runtime's verbs.

argparse costs more to import and to build than most of a `run`, so the
common, well-formed command lines are parsed here from the same declarations.
Anything this parser does not handle itself (help, a bad flag, a missing
argument) raises Fallback, and main() hands the command line to argparse,
which prints the message users know.
"""

import sys

# types.SimpleNamespace, without importing `types` (start-up cost)
SimpleNamespace = type(sys.implementation)

__all__ = ["REMAINDER", "Fallback", "QuickParser", "parse"]

REMAINDER = "..."  # the value of argparse.REMAINDER


class Fallback(Exception):
    """Let argparse deal with this command line."""


class _Option:
    __slots__ = ("dest", "action", "default", "type", "choices", "required")

    def __init__(self, names, action, default, type, choices, required, dest):
        longs = [n for n in names if n.startswith("--")]
        self.dest = dest or (longs[0] if longs else names[0]).lstrip("-").replace("-", "_")
        self.action, self.type, self.choices, self.required = action, type, choices, required
        self.default = [] if action == "append" and default is None else default
        if action == "store_true" and default is None:
            self.default = False


class QuickParser:
    """Records add_argument/add_parser/set_defaults calls the way argparse takes them."""

    def __init__(self) -> None:
        self.options: dict[str, _Option] = {}
        self.positionals: list[tuple[str, object, object, object]] = []
        self.defaults: dict[str, object] = {}
        self.verbs: dict[str, QuickParser] = {}
        self.verb_dest = "verb"

    def add_argument(self, *names, action=None, default=None, type=None, choices=None,
                     required=False, nargs=None, help=None, metavar=None, dest=None):
        """Declare an option (names start with '-') or a positional."""
        if names[0].startswith("-"):
            option = _Option(names, action, default, type, choices, required, dest)
            for name in names:
                self.options[name] = option
        else:
            self.positionals.append((names[0], nargs, type, default))

    def add_subparsers(self, dest: str, metavar=None) -> "QuickParser":
        """Verbs are registered on this parser itself."""
        self.verb_dest = dest
        return self

    def add_parser(self, name: str, aliases=(), help=None) -> "QuickParser":
        """A verb's own parser."""
        verb = QuickParser()
        for alias in (name, *aliases):
            self.verbs[alias] = verb
        return verb

    def set_defaults(self, **values) -> None:
        """Values every parse of this parser sets."""
        self.defaults.update(values)


def parse(parser: QuickParser, argv: list[str]) -> SimpleNamespace:
    """Parse `argv`; raise Fallback for anything argparse should handle."""
    ns = SimpleNamespace(**{parser.verb_dest: None})
    rest = _consume(parser, argv, ns, verbs=True)
    if rest:
        raise Fallback()
    return ns


def _start(parser: QuickParser, ns: SimpleNamespace) -> None:
    for option in parser.options.values():
        if not hasattr(ns, option.dest):
            value = option.default
            setattr(ns, option.dest, list(value) if isinstance(value, list) else value)
    for key, value in parser.defaults.items():
        setattr(ns, key, value)


def _consume(parser: QuickParser, argv: list[str], ns: SimpleNamespace, verbs: bool) -> list:
    _start(parser, ns)
    loose: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-h", "--help"):
            raise Fallback()
        if arg == "--":
            loose.extend(argv[i + 1:])
            break
        if arg.startswith("-") and len(arg) > 1 and not _takes_rest(parser, loose + [arg]):
            i = _option(parser, argv, i, ns)
            continue
        if verbs and parser.verbs and not loose:
            verb = parser.verbs.get(arg)
            if verb is None:
                raise Fallback()
            setattr(ns, parser.verb_dest, arg)
            return _consume(verb, argv[i + 1:], ns, verbs=False)
        if _takes_rest(parser, loose + [arg]) and _filled(parser, loose):
            loose.extend(argv[i:])
            break
        loose.append(arg)
        i += 1
    _positionals(parser, loose, ns)
    return []


def _takes_rest(parser: QuickParser, loose: list[str]) -> bool:
    """Whether the next loose argument falls into a REMAINDER positional."""
    fixed = 0
    for _name, nargs, _type, _default in parser.positionals:
        if nargs == REMAINDER:
            return len(loose) > fixed
        if nargs in ("*", "+", "?"):
            return False
        fixed += 1
    return False


def _filled(parser: QuickParser, loose: list[str]) -> bool:
    return len(loose) >= sum(1 for p in parser.positionals if p[1] is None)


def _option(parser: QuickParser, argv: list[str], i: int, ns: SimpleNamespace) -> int:
    name, eq, value = argv[i].partition("=")
    option = parser.options.get(name)
    if option is None:
        raise Fallback()
    if option.action == "store_true":
        if eq:
            raise Fallback()
        setattr(ns, option.dest, True)
        return i + 1
    if not eq:
        if i + 1 >= len(argv):
            raise Fallback()
        i += 1
        value = argv[i]
    value = _convert(option.type, value)
    if option.choices is not None and value not in option.choices:
        raise Fallback()
    if option.action == "append":
        getattr(ns, option.dest).append(value)
    else:
        setattr(ns, option.dest, value)
    return i + 1


def _convert(kind, value: str):
    if kind is None:
        return value
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise Fallback() from None


def _positionals(parser: QuickParser, loose: list[str], ns: SimpleNamespace) -> None:
    for option in parser.options.values():
        if option.required and getattr(ns, option.dest) is None:
            raise Fallback()
    for name, nargs, kind, default in parser.positionals:
        if nargs in (REMAINDER, "*"):
            setattr(ns, name, [_convert(kind, v) for v in loose])
            loose = []
        elif nargs == "+":
            if not loose:
                raise Fallback()
            setattr(ns, name, [_convert(kind, v) for v in loose])
            loose = []
        elif nargs == "?":
            setattr(ns, name, _convert(kind, loose.pop(0)) if loose else default)
        else:
            if not loose:
                raise Fallback()
            setattr(ns, name, _convert(kind, loose.pop(0)))
    if loose:
        raise Fallback()
