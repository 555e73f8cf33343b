"""Seccomp filters from an OCI `linux.seccomp` object, built with libseccomp.

`validate` checks a profile, builds it in libseccomp and exports it as a classic
BPF program kept in memory, so that a bad one fails at create time and a good one
is compiled once per process (and its forks: create validates, init and exec are
forks); `compile_and_load` installs that program with seccomp(2), the last step
before exec, without libseccomp. Syscall names unknown on this architecture are
skipped, so one profile serves every architecture.
"""

import errno
import os
from collections import namedtuple

from knarr.errors import FailedPrecondition, InvalidArgument, Unavailable
from knarr.runtime import seccomp_default
from knarr.sys import seccomp as scmp

__all__ = ["ACTIONS", "OPERATORS", "ARCHITECTURES", "FLAGS", "validate", "compile_and_load",
           "default_profile"]

# OCI action name -> libseccomp action; ERRNO and TRACE take errnoRet (see _action).
ACTIONS = {
    "SCMP_ACT_KILL": scmp.SCMP_ACT_KILL_THREAD,
    "SCMP_ACT_KILL_THREAD": scmp.SCMP_ACT_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": scmp.SCMP_ACT_KILL_PROCESS,
    "SCMP_ACT_TRAP": scmp.SCMP_ACT_TRAP,
    "SCMP_ACT_ERRNO": scmp.act_errno(0),
    "SCMP_ACT_TRACE": scmp.act_trace(0),
    "SCMP_ACT_ALLOW": scmp.SCMP_ACT_ALLOW,
    "SCMP_ACT_LOG": scmp.SCMP_ACT_LOG,
}
_WITH_ERRNO = {"SCMP_ACT_ERRNO": scmp.act_errno, "SCMP_ACT_TRACE": scmp.act_trace}

OPERATORS = {
    "SCMP_CMP_NE": scmp.SCMP_CMP_NE,
    "SCMP_CMP_LT": scmp.SCMP_CMP_LT,
    "SCMP_CMP_LE": scmp.SCMP_CMP_LE,
    "SCMP_CMP_EQ": scmp.SCMP_CMP_EQ,
    "SCMP_CMP_GE": scmp.SCMP_CMP_GE,
    "SCMP_CMP_GT": scmp.SCMP_CMP_GT,
    "SCMP_CMP_MASKED_EQ": scmp.SCMP_CMP_MASKED_EQ,
}

# OCI architecture name -> libseccomp's name for it.
ARCHITECTURES = {f"SCMP_ARCH_{a.upper()}": a for a in (
    "x86", "x86_64", "x32", "arm", "aarch64", "mips", "mips64", "mips64n32", "mipsel",
    "mipsel64", "mipsel64n32", "ppc", "ppc64", "ppc64le", "s390", "s390x", "parisc",
    "parisc64", "riscv64")}

# OCI flag -> the libseccomp filter attribute that sets it. TSYNC is always on.
FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": scmp.SCMP_FLTATR_CTL_TSYNC,
    "SECCOMP_FILTER_FLAG_LOG": scmp.SCMP_FLTATR_CTL_LOG,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": scmp.SCMP_FLTATR_CTL_SSB,
}
# The libseccomp attribute -> the seccomp(2) flag it stands for when loading.
_LOAD_FLAGS = {
    scmp.SCMP_FLTATR_CTL_TSYNC: scmp.SECCOMP_FILTER_FLAG_TSYNC,
    scmp.SCMP_FLTATR_CTL_LOG: scmp.SECCOMP_FILTER_FLAG_LOG,
    scmp.SCMP_FLTATR_CTL_SSB: scmp.SECCOMP_FILTER_FLAG_SPEC_ALLOW,
}
_NOTIFY_ONLY = ("SCMP_ACT_NOTIFY", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV")

_FIELD = "linux.seccomp"


# Each group is one libseccomp rule (its comparisons all must hold); the rule
# matches if any group does.
class _Rule(namedtuple("_Rule", "field names action groups")):
    __slots__ = ()


class _Plan(namedtuple("_Plan", "default_action architectures attributes rules")):
    __slots__ = ()


def _fail(field: str, problem: str) -> InvalidArgument:
    return InvalidArgument(f"config.json: {field}: {problem}", field=field)


def _unsupported(field: str) -> Unavailable:
    return Unavailable(f"config.json: {field}: seccomp notify is not supported", field=field)


def _expect(value: object, kind: type, field: str, what: str) -> None:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _fail(field, f"expected {what}, got {value!r}")


def _uint(value: object, field: str, top: int) -> int:
    _expect(value, int, field, "an unsigned integer")
    assert isinstance(value, int)
    if not 0 <= value <= top:
        raise _fail(field, f"{value} is out of range 0..{top}")
    return value


def _action(obj: dict, key: str, errno_key: str, field: str) -> int:
    name = obj.get(key)
    if name in _NOTIFY_ONLY:
        raise _unsupported(f"{field}.{key}")
    if name not in ACTIONS:
        raise _fail(f"{field}.{key}", f"unknown action {name!r}")
    if name in _WITH_ERRNO:
        ret = obj.get(errno_key, errno.EPERM)
        return _WITH_ERRNO[name](_uint(ret, f"{field}.{errno_key}", 0xFFFF))
    if errno_key in obj:
        raise _fail(f"{field}.{errno_key}", f"{name} does not take an errno")
    return ACTIONS[name]


def _parse(seccomp: object) -> _Plan:
    _expect(seccomp, dict, _FIELD, "an object")
    assert isinstance(seccomp, dict)
    if "listenerPath" in seccomp or "listenerMetadata" in seccomp:
        raise _unsupported(f"{_FIELD}.listenerPath")
    if "defaultAction" not in seccomp:
        raise _fail(f"{_FIELD}.defaultAction", "missing")
    default = _action(seccomp, "defaultAction", "defaultErrnoRet", _FIELD)
    syscalls = seccomp.get("syscalls", [])
    _expect(syscalls, list, f"{_FIELD}.syscalls", "an array")
    rules = tuple(_parse_rule(r, f"{_FIELD}.syscalls[{i}]") for i, r in enumerate(syscalls))
    return _Plan(default, _parse_architectures(seccomp.get("architectures", [])),
                 _parse_flags(seccomp.get("flags", [])), rules)


def _parse_architectures(arches: object) -> tuple[str, ...]:
    field = f"{_FIELD}.architectures"
    _expect(arches, list, field, "an array")
    assert isinstance(arches, list)
    for i, name in enumerate(arches):
        if name not in ARCHITECTURES:
            raise _fail(f"{field}[{i}]", f"unknown architecture {name!r}")
    return tuple(ARCHITECTURES[name] for name in arches)


def _parse_flags(flags: object) -> tuple[int, ...]:
    field = f"{_FIELD}.flags"
    _expect(flags, list, field, "an array")
    assert isinstance(flags, list)
    attributes = []
    for i, flag in enumerate(flags):
        if flag in _NOTIFY_ONLY:
            raise _unsupported(f"{field}[{i}]")
        if flag not in FLAGS:
            raise _fail(f"{field}[{i}]", f"unknown flag {flag!r}")
        attributes.append(FLAGS[flag])
    return tuple(attributes)


def _parse_rule(rule: object, field: str) -> _Rule:
    _expect(rule, dict, field, "an object")
    assert isinstance(rule, dict)
    names = rule.get("names")
    if not isinstance(names, list) or not names:
        raise _fail(f"{field}.names", "expected a non-empty array of syscall names")
    for i, name in enumerate(names):
        _expect(name, str, f"{field}.names[{i}]", "a syscall name")
    if "action" not in rule:
        raise _fail(f"{field}.action", "missing")
    action = _action(rule, "action", "errnoRet", field)
    args = rule.get("args", [])
    _expect(args, list, f"{field}.args", "an array")
    comparisons = [_parse_arg(a, f"{field}.args[{i}]") for i, a in enumerate(args)]
    return _Rule(field, tuple(names), action, _group(comparisons))


def _parse_arg(arg: object, field: str) -> tuple[int, int, int, int]:
    _expect(arg, dict, field, "an object")
    assert isinstance(arg, dict)
    index = _uint(arg.get("index"), f"{field}.index", 5)
    op = arg.get("op")
    if op not in OPERATORS:
        raise _fail(f"{field}.op", f"unknown operator {op!r}")
    value = _uint(arg.get("value"), f"{field}.value", 2**64 - 1)
    value_two = _uint(arg.get("valueTwo", 0), f"{field}.valueTwo", 2**64 - 1)
    return index, OPERATORS[op], value, value_two


def _group(comparisons: list[tuple[int, int, int, int]]) -> tuple:
    """One rule if every comparison is on its own argument (they AND together);
    libseccomp cannot test one argument twice in a rule, so comparisons that share
    an argument become one rule each and OR together, as profiles in the wild expect."""
    indexes = [c[0] for c in comparisons]
    if len(set(indexes)) == len(indexes):
        return (tuple(comparisons),)
    return tuple((c,) for c in comparisons)


def _build(plan: _Plan) -> int:
    """A libseccomp filter context for `plan`; the caller releases it."""
    try:
        ctx = scmp.init(plan.default_action)
    except OSError as exc:
        raise _library_error(exc) from exc
    try:
        _add_architectures(ctx, plan.architectures)
        # knarr sets no_new_privs itself when the config asks; libseccomp would always.
        scmp.attr_set(ctx, scmp.SCMP_FLTATR_CTL_NNP, 0)
        scmp.attr_set(ctx, scmp.SCMP_FLTATR_CTL_TSYNC, 1)
        scmp.attr_set(ctx, scmp.SCMP_FLTATR_API_SYSRAWRC, 1)
        _optimize(ctx)
        for attribute in plan.attributes:
            scmp.attr_set(ctx, attribute, 1)
        for rule in plan.rules:
            _add_rule(ctx, rule, plan.default_action)
    except OSError as exc:
        scmp.release(ctx)
        raise _library_error(exc) from exc
    except BaseException:
        scmp.release(ctx)
        raise
    return ctx


def _optimize(ctx: int) -> None:
    """Have libseccomp sort the syscalls into a binary tree (libseccomp 2.5 and later).

    The kernel walks a new filter once for every syscall number, to cache the calls it
    always allows (5.11 and later): over the default list of ~1,000 instructions that
    took ~3.4 ms of every container's start here, over the tree ~1.2 ms. The
    container's own calls walk a few dozen instructions, not hundreds."""
    try:
        scmp.attr_set(ctx, scmp.SCMP_FLTATR_CTL_OPTIMIZE, 2)
    except OSError:
        pass  # an older libseccomp: the filter is the same, in a list


def _library_error(exc: OSError) -> Exception:
    if exc.errno == errno.ENOENT:
        return Unavailable(f"seccomp: libseccomp is not installed: {exc.strerror}")
    return FailedPrecondition(f"seccomp: {exc.strerror}")


def _add_architectures(ctx: int, arches: tuple[str, ...]) -> None:
    for i, name in enumerate(arches):
        token = scmp.arch_resolve_name(name)
        if not token:
            raise Unavailable(f"config.json: {_FIELD}.architectures[{i}]: libseccomp does "
                              f"not know architecture {name!r}")
        if not scmp.arch_exist(ctx, token):
            scmp.arch_add(ctx, token)


def _add_rule(ctx: int, rule: _Rule, default_action: int) -> None:
    if rule.action == default_action:
        return  # libseccomp refuses a rule that repeats the default; it changes nothing
    for name in rule.names:
        number = scmp.syscall_resolve_name(name)
        if number == scmp.NR_SCMP_ERROR:
            continue  # not a syscall on this architecture (or this libseccomp)
        for group in rule.groups:
            try:
                scmp.rule_add_array(ctx, rule.action, number, group)
            except OSError as exc:
                raise _fail(rule.field, f"add rule for {name}: {exc.strerror}") from exc


# A compiled profile: the classic BPF program libseccomp exported, and the seccomp(2)
# flags to load it with.
class _Program(namedtuple("_Program", "bpf flags")):
    __slots__ = ()


# Profiles this process (or the one it was forked from) has compiled, keyed by their
# compact JSON: building Docker's profile takes libseccomp milliseconds, and create,
# init and exec would each build it again.
_PROGRAMS: dict[str, _Program] = {}
# The profile object last looked up, and its program: create validates the config's
# profile, and init (a fork) and finalize look the same object up again; its JSON
# text, the key above, takes ~0.4 ms to make each time.
_LAST: list = [None, None]


def _compile(plan: _Plan) -> _Program:
    ctx = _build(plan)
    try:
        bpf = scmp.export_bpf(ctx)
    except OSError as exc:
        raise _library_error(exc) from exc
    finally:
        scmp.release(ctx)
    # TSYNC is always on, as it was when libseccomp loaded the filter itself.
    flags = scmp.SECCOMP_FILTER_FLAG_TSYNC
    for attribute in plan.attributes:
        flags |= _LOAD_FLAGS[attribute]
    return _Program(bpf, flags)


def _program(seccomp: dict, root: str | None = None) -> _Program:
    """The compiled program of `seccomp`: from memory, from the on-disk cache under
    the state `root` (see seccomp_cache), or compiled now; kept in memory (and on
    disk)."""
    if _LAST[0] is seccomp:
        return _LAST[1]
    from knarr import fastjson

    text = fastjson.dumps(seccomp)
    program = _PROGRAMS.get(text)
    if program is None:
        program = _PROGRAMS[text] = _load_or_compile(seccomp, text, root)
    _LAST[:] = seccomp, program
    return program


def _load_or_compile(seccomp: dict, text: str, root: str | None) -> _Program:
    if root is None:
        return _compile(_parse(seccomp))
    from knarr.runtime import seccomp_cache  # not imported when memory has the program

    cache_dir = seccomp_cache.cache_dir(root)
    try:
        key = seccomp_cache.key_of(text)
    except OSError as exc:
        raise _library_error(exc) from exc
    cached = seccomp_cache.read(cache_dir, key)
    if cached is not None:
        return _Program(*cached)
    program = _compile(_parse(seccomp))
    seccomp_cache.write(cache_dir, key, program.bpf, program.flags)
    return program


def validate(seccomp: dict, root: str | None = None) -> None:
    """Check an OCI linux.seccomp object and compile its filter without loading it
    (the compiled program is kept for compile_and_load in this process and its forks,
    and under the state `root`, if given, for other processes: see seccomp_cache).
    The profile must not change afterwards."""
    _program(seccomp, root)


def compile_and_load(seccomp: dict) -> None:
    """Load the filter of OCI linux.seccomp `seccomp` into this process: the program
    compiled by validate (in this process or the one it was forked from), or compiled now.

    The kernel refuses to load a filter unless no_new_privs is set or the caller
    has CAP_SYS_ADMIN; TSYNC is always on, so every thread gets the filter.
    """
    program = _program(seccomp)
    try:
        scmp.set_mode_filter(program.bpf, program.flags)
    except OSError as exc:
        if exc.errno == errno.EACCES:
            raise FailedPrecondition("load seccomp filter: permission denied: needs "
                                     "process.noNewPrivileges or CAP_SYS_ADMIN") from exc
        raise FailedPrecondition(f"load seccomp filter: {exc.strerror}") from exc


def default_profile(capabilities: list[str] | None = None) -> dict:
    """knarr's default linux.seccomp object (after Docker's) for a container holding
    `capabilities` (its bounding set; None: Docker's default capabilities).

    The default action is EPERM; calls a capability governs are allowed only with
    that capability, and namespace-making clone flags only with CAP_SYS_ADMIN.
    """
    data = seccomp_default
    caps = set(data.DEFAULT_CAPABILITIES if capabilities is None else capabilities)
    machine = os.uname().machine
    allowed = list(data.ALLOWED) + data.BY_ARCH.get(machine, [])
    allowed += sorted({name for cap, names in data.BY_CAPABILITY.items() if cap in caps
                       for name in names})
    syscalls = [{"names": allowed, "action": "SCMP_ACT_ALLOW"}]
    syscalls += [_copy_rule(r) for r in data.CONDITIONAL]
    if "CAP_SYS_ADMIN" not in caps:
        syscalls += [_copy_rule(r) for r in data.WITHOUT_SYS_ADMIN]
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": errno.EPERM,
        "architectures": list(data.ARCHITECTURES.get(machine, [])),
        "syscalls": syscalls,
    }


def _copy_rule(rule: dict) -> dict:
    copy = dict(rule, names=list(rule["names"]))
    if "args" in rule:
        copy["args"] = [dict(a) for a in rule["args"]]
    return copy
