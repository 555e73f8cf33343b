"""Resource limits of the container process (setrlimit(2), OCI process.rlimits)."""

from knarr import sys as ksys
from knarr.errors import FailedPrecondition, InvalidArgument

__all__ = ["RLIMITS", "validate", "apply"]

# Numbers from <asm-generic/resource.h>, the same on x86_64 and aarch64.
RLIMITS: dict[str, int] = {
    "RLIMIT_CPU": 0,
    "RLIMIT_FSIZE": 1,
    "RLIMIT_DATA": 2,
    "RLIMIT_STACK": 3,
    "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5,
    "RLIMIT_NPROC": 6,
    "RLIMIT_NOFILE": 7,
    "RLIMIT_MEMLOCK": 8,
    "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10,
    "RLIMIT_SIGPENDING": 11,
    "RLIMIT_MSGQUEUE": 12,
    "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14,
    "RLIMIT_RTTIME": 15,
}

_UINT64_MAX = 2**64 - 1  # RLIM_INFINITY, as the JSON config writes it and prlimit takes it
_CAP_SYS_RESOURCE = 24


def _limit(value: object, field: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _UINT64_MAX:
        raise InvalidArgument(f"config.json: {field}: expected an integer from 0 to "
                              f"{_UINT64_MAX}, got {value!r}", field=field)
    return value


def _parse(rlimits: object) -> list[tuple[str, int, int, int]]:
    if not isinstance(rlimits, list):
        raise InvalidArgument("config.json: process.rlimits: expected array",
                              field="process.rlimits")
    parsed, seen = [], set()
    for i, rl in enumerate(rlimits):
        field = f"process.rlimits[{i}]"
        if not isinstance(rl, dict):
            raise InvalidArgument(f"config.json: {field}: expected object", field=field)
        kind = rl.get("type")
        if kind not in RLIMITS:
            raise InvalidArgument(f"config.json: {field}.type: unknown rlimit {kind!r}",
                                  field=f"{field}.type")
        if kind in seen:
            raise InvalidArgument(f"config.json: {field}.type: {kind} listed twice",
                                  field=f"{field}.type")
        seen.add(kind)
        soft, hard = _limit(rl.get("soft"), f"{field}.soft"), _limit(rl.get("hard"),
                                                                    f"{field}.hard")
        if _above(soft, hard):
            raise InvalidArgument(f"config.json: {field}: {kind} soft limit {_show(soft)} is "
                                  f"above its hard limit {_show(hard)}", field=field)
        parsed.append((kind, RLIMITS[kind], soft, hard))
    return parsed


def _above(a: int, b: int) -> bool:
    """a > b: RLIM_INFINITY, the largest value, is above every number."""
    return a > b


def _show(value: int) -> str:
    return "unlimited" if value == _UINT64_MAX else str(value)


def validate(rlimits: list[dict]) -> None:
    """Check OCI process.rlimits without setting anything."""
    _parse(rlimits)


def apply(rlimits: list[dict]) -> None:
    """Set each OCI rlimit on the calling process.

    Raising a hard limit above the current one needs CAP_SYS_RESOURCE; without it
    the error says which limit, what was asked and what is allowed.
    """
    for kind, number, soft, hard in _parse(rlimits):
        try:
            ksys.prlimit(number, soft, hard)
        except OSError as exc:
            raise _refused(kind, soft, hard, ksys.prlimit(number)[1], exc) from exc


def _refused(kind: str, soft: int, hard: int, current_hard: int, exc: Exception):
    if not _above(hard, current_hard):
        return FailedPrecondition(f"set {kind} to soft {_show(soft)}, hard {_show(hard)}: "
                                  f"{exc}", rlimit=kind)
    if not _has_sys_resource():
        why = "CAP_SYS_RESOURCE is missing"
    elif kind == "RLIMIT_NOFILE":
        why = "it may not exceed /proc/sys/fs/nr_open"
    else:
        why = f"the kernel refused it: {exc}"
    return FailedPrecondition(
        f"set {kind}: cannot raise the hard limit to {_show(hard)}, above the allowed "
        f"{_show(current_hard)}: {why}", rlimit=kind, asked=hard, allowed=current_hard)


def _has_sys_resource() -> bool:
    effective = ksys.capget()[0]
    return bool(effective & (1 << _CAP_SYS_RESOURCE))
