"""What each config-only instruction does to an image's run config; pure, no I/O.

`apply(instruction, config, env, escape)` returns the text that goes in the
history (`#(nop)` comment) and changes `config` in place as Docker's classic
builder does: ENV and LABEL pairs (the legacy `KEY value` form too), EXPOSE
(`80`, `80/udp`, ranges), VOLUME (JSON or words), USER, WORKDIR (relative to
the previous one), STOPSIGNAL, HEALTHCHECK (NONE or CMD with its options),
SHELL, ONBUILD, MAINTAINER, CMD and ENTRYPOINT.
"""

import json
import posixpath
import re

from knarr.build.parser import Instruction, ParseError
from knarr.build.words import process_word, process_words, split_words
from knarr.errors import InvalidArgument

__all__ = ["apply", "apply_changes", "name_value_pairs", "command_of", "parse_duration", "DEFAULT_SHELL"]

DEFAULT_SHELL = ["/bin/sh", "-c"]
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1, "us": 1000, "µs": 1000, "ms": 10**6, "s": 10**9, "m": 60 * 10**9,
          "h": 3600 * 10**9}


def _fail(instruction: Instruction, message: str) -> InvalidArgument:
    return ParseError(instruction.line, message)


def name_value_pairs(instruction: Instruction, env: dict, escape: str) -> list[tuple[str, str]]:
    """The KEY=VALUE pairs of ENV, LABEL or ARG, expanded and unquoted."""
    rest = instruction.rest
    if not rest:
        raise _fail(instruction, f"{instruction.keyword} requires at least one argument")
    words = split_words(rest, escape)
    if "=" not in words[0] and instruction.keyword != "ARG":
        if len(words) < 2:
            raise _fail(instruction, f"{instruction.keyword} names can not be blank"
                        if not words else f"{instruction.keyword} must have two arguments")
        value = rest[len(words[0]):].strip()
        return [(process_word(words[0], env, escape), process_word(value, env, escape))]
    pairs = []
    for word in words:
        key, eq, value = word.partition("=")
        if not eq and instruction.keyword != "ARG":
            raise _fail(instruction, f"Syntax error - can't find = in \"{word}\". "
                        "Must be of the form: name=value")
        key = process_word(key, env, escape)
        if not key:
            raise _fail(instruction, f"{instruction.keyword} names can not be blank")
        pairs.append((key, process_word(value, env, escape) if eq else None))
    return pairs  # type: ignore[return-value]


def command_of(instruction: Instruction, shell: list[str]) -> list[str]:
    """The argv of RUN, CMD or ENTRYPOINT: the JSON form as is, else the shell plus text."""
    if instruction.json is not None:
        return list(instruction.json)
    return [*shell, instruction.rest]


def parse_duration(text: str, what: str) -> int:
    """A Go duration (`30s`, `1m30s`, `500ms`) in nanoseconds."""
    if text in ("0", ""):
        return 0
    pos, total = 0, 0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += int(float(match.group(1)) * _UNITS[match.group(2)])
        pos = match.end()
    if pos != len(text):
        raise InvalidArgument(f"time: invalid duration \"{text}\" for {what}")
    return total


def _env_list_set(env: list[str], key: str, value: str) -> list[str]:
    out = [e for e in env if e.partition("=")[0] != key]
    index = next((i for i, e in enumerate(env) if e.partition("=")[0] == key), None)
    if index is None:
        return out + [f"{key}={value}"]
    return env[:index] + [f"{key}={value}"] + env[index + 1:]


def _env(ins: Instruction, config: dict, env: dict, escape: str) -> str:
    pairs = name_value_pairs(ins, env, escape)
    current = list(config.get("Env") or [])
    for key, value in pairs:
        current = _env_list_set(current, key, value)
    config["Env"] = current
    return "ENV " + " ".join(f"{k}={v}" for k, v in pairs)


def _label(ins: Instruction, config: dict, env: dict, escape: str) -> str:
    pairs = name_value_pairs(ins, env, escape)
    config["Labels"] = dict(config.get("Labels") or {}, **dict(pairs))
    return "LABEL " + " ".join(f"{k}={v}" for k, v in pairs)


def _expose(ins: Instruction, config: dict, env: dict, escape: str) -> str:
    words = process_words(ins.rest, env, escape)
    if not words:
        raise _fail(ins, "EXPOSE requires at least one argument")
    ports = dict(config.get("ExposedPorts") or {})
    for word in words:
        port, _, proto = word.partition("/")
        proto = (proto or "tcp").lower()
        low, _, high = port.partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            raise InvalidArgument(f"invalid containerPort: {port}")
        for number in range(int(low), int(high or low) + 1):
            ports[f"{number}/{proto}"] = {}
    config["ExposedPorts"] = ports
    return "EXPOSE " + " ".join(sorted(ports))


def _volume(ins: Instruction, config: dict, env: dict, escape: str) -> str:
    if ins.json is not None:
        paths = [process_word(p, env, escape) for p in ins.json]
    else:
        paths = process_words(ins.rest, env, escape)
    if not paths:
        raise _fail(ins, "VOLUME requires at least one argument")
    volumes = dict(config.get("Volumes") or {})
    for path in paths:
        if not path.strip():
            raise InvalidArgument("VOLUME specified can not be an empty string")
        volumes[path] = {}
    config["Volumes"] = volumes
    return f"VOLUME {paths}".replace("'", "")


def _user(ins: Instruction, config: dict, env: dict, escape: str) -> str:
    if not ins.rest:
        raise _fail(ins, "USER requires exactly one argument")
    config["User"] = process_word(ins.rest, env, escape)
    return f"USER {config['User']}"


def _workdir(ins: Instruction, config: dict, env: dict, escape: str) -> str:
    if not ins.rest:
        raise _fail(ins, "WORKDIR requires exactly one argument")
    path = process_word(ins.rest, env, escape)
    config["WorkingDir"] = posixpath.normpath(
        posixpath.join("/", config.get("WorkingDir") or "/", path))
    return f"WORKDIR {config['WorkingDir']}"


def _stopsignal(ins: Instruction, config: dict, env: dict, escape: str) -> str:
    if not ins.rest:
        raise _fail(ins, "STOPSIGNAL requires exactly one argument")
    config["StopSignal"] = process_word(ins.rest, env, escape)
    return f"STOPSIGNAL {config['StopSignal']}"


def _healthcheck(ins: Instruction, config: dict, env: dict, escape: str) -> str:
    word, _, rest = ins.rest.partition(" ")
    if word.upper() == "NONE":
        if rest.strip() or ins.flags:
            raise _fail(ins, "HEALTHCHECK NONE takes no arguments")
        config["Healthcheck"] = {"Test": ["NONE"]}
        return "HEALTHCHECK NONE"
    if word.upper() != "CMD":
        raise _fail(ins, f"Unknown type \"{word.upper()}\" in HEALTHCHECK (try CMD)")
    inner = Instruction("CMD", rest.strip(), ins.line)
    from knarr.build.parser import _json_array

    inner.json = _json_array(inner.rest) if inner.rest.startswith("[") else None
    test = ["CMD", *inner.json] if inner.json is not None else ["CMD-SHELL", inner.rest]
    check: dict = {"Test": test}
    for flag, key in (("interval", "Interval"), ("timeout", "Timeout"),
                      ("start-period", "StartPeriod"), ("start-interval", "StartInterval")):
        value = ins.flag(flag)
        if value is not None and parse_duration(value, flag):
            check[key] = parse_duration(value, flag)
    retries = ins.flag("retries")
    if retries is not None:
        if not retries.isdigit():
            raise InvalidArgument(f"strconv.ParseInt: parsing \"{retries}\": invalid syntax")
        if int(retries):
            check["Retries"] = int(retries)
    config["Healthcheck"] = check
    return f"HEALTHCHECK &{{{test}}}"


def _shell(ins: Instruction, config: dict, env: dict, escape: str) -> str:
    if not ins.json:
        raise _fail(ins, "SHELL requires the arguments to be in JSON form")
    config["Shell"] = list(ins.json)
    return f"SHELL {ins.json}"


def _onbuild(ins: Instruction, config: dict, env: dict, escape: str) -> str:
    trigger = ins.rest
    keyword, _, rest = trigger.partition(" ")
    trigger = f"{keyword.upper()} {rest}".strip()
    config["OnBuild"] = list(config.get("OnBuild") or []) + [trigger]
    return f"ONBUILD {trigger}"


def _cmd(ins: Instruction, config: dict, env: dict, escape: str) -> str:
    config["Cmd"] = command_of(ins, config.get("Shell") or DEFAULT_SHELL)
    return f"CMD {_go_list(config['Cmd'])}"


def _entrypoint(ins: Instruction, config: dict, env: dict, escape: str) -> str:
    config["Entrypoint"] = command_of(ins, config.get("Shell") or DEFAULT_SHELL)
    return f"ENTRYPOINT {_go_list(config['Entrypoint'])}"


def _go_list(argv: list[str]) -> str:
    """A list as Go's %q prints a []string, as Docker's history shows it."""
    return "[" + " ".join(json.dumps(a) for a in argv) + "]"


_HANDLERS = {"ENV": _env, "LABEL": _label, "EXPOSE": _expose, "VOLUME": _volume,
             "USER": _user, "WORKDIR": _workdir, "STOPSIGNAL": _stopsignal,
             "HEALTHCHECK": _healthcheck, "SHELL": _shell, "ONBUILD": _onbuild,
             "CMD": _cmd, "ENTRYPOINT": _entrypoint}


def apply(instruction: Instruction, config: dict, env: dict, escape: str = "\\") -> str:
    """Apply a config-only instruction to `config`; return its history comment."""
    handler = _HANDLERS.get(instruction.keyword)
    if handler is None:
        raise InvalidArgument(f"{instruction.keyword} does not change the config alone")
    return handler(instruction, config, env, escape)


def is_config_only(keyword: str) -> bool:
    """Whether an instruction only changes the config (no layer)."""
    return keyword in _HANDLERS and keyword != "WORKDIR"


_CHANGES = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "USER", "VOLUME", "WORKDIR")


def apply_changes(config: dict, changes: list[str]) -> dict:
    """`commit --change` and `import --change`: Dockerfile instructions applied to a run
    config (a changed copy is returned)."""
    from knarr.build.parser import parse_line

    out = json.loads(json.dumps(config))
    for text in changes:
        ins = parse_line(text, 1)
        if ins.keyword not in _CHANGES:
            raise InvalidArgument(f"{ins.keyword.lower()} is not a valid change command")
        env = dict(e.partition("=")[::2] for e in out.get("Env") or [])
        apply(ins, out, env)
    return out
