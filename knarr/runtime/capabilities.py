"""Linux capabilities of the container process (capabilities(7), OCI process.capabilities).

The five OCI sets (bounding, effective, permitted, inheritable, ambient) are
lists of names like "CAP_CHOWN". `mask` turns a list into a bit mask;
`apply` makes the calling thread's sets exactly the configured ones.
"""

import os
import sys

from knarr import sys as ksys
from knarr.errors import InvalidArgument

__all__ = [
    "CAPABILITIES",
    "SETS",
    "last_cap",
    "mask",
    "masks",
    "validate",
    "names_of",
    "host_capabilities",
    "drop_bounding",
    "set_process_sets",
    "apply",
]

CAPABILITIES: dict[str, int] = {
    "CAP_CHOWN": 0,
    "CAP_DAC_OVERRIDE": 1,
    "CAP_DAC_READ_SEARCH": 2,
    "CAP_FOWNER": 3,
    "CAP_FSETID": 4,
    "CAP_KILL": 5,
    "CAP_SETGID": 6,
    "CAP_SETUID": 7,
    "CAP_SETPCAP": 8,
    "CAP_LINUX_IMMUTABLE": 9,
    "CAP_NET_BIND_SERVICE": 10,
    "CAP_NET_BROADCAST": 11,
    "CAP_NET_ADMIN": 12,
    "CAP_NET_RAW": 13,
    "CAP_IPC_LOCK": 14,
    "CAP_IPC_OWNER": 15,
    "CAP_SYS_MODULE": 16,
    "CAP_SYS_RAWIO": 17,
    "CAP_SYS_CHROOT": 18,
    "CAP_SYS_PTRACE": 19,
    "CAP_SYS_PACCT": 20,
    "CAP_SYS_ADMIN": 21,
    "CAP_SYS_BOOT": 22,
    "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24,
    "CAP_SYS_TIME": 25,
    "CAP_SYS_TTY_CONFIG": 26,
    "CAP_MKNOD": 27,
    "CAP_LEASE": 28,
    "CAP_AUDIT_WRITE": 29,
    "CAP_AUDIT_CONTROL": 30,
    "CAP_SETFCAP": 31,
    "CAP_MAC_OVERRIDE": 32,
    "CAP_MAC_ADMIN": 33,
    "CAP_SYSLOG": 34,
    "CAP_WAKE_ALARM": 35,
    "CAP_BLOCK_SUSPEND": 36,
    "CAP_AUDIT_READ": 37,
    "CAP_PERFMON": 38,
    "CAP_BPF": 39,
    "CAP_CHECKPOINT_RESTORE": 40,
}

SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")

# prctl(2) options; libc.py binds the call, the numbers are from <linux/prctl.h>.
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

_CAP_LAST_CAP = "/proc/sys/kernel/cap_last_cap"


_last_cap: list[int] = []


def last_cap() -> int:
    """The highest capability number the running kernel knows (read once: it cannot change)."""
    if not _last_cap:
        try:
            _last_cap.append(int(ksys.read_bytes(_CAP_LAST_CAP)))
        except (OSError, ValueError):
            _last_cap.append(max(CAPABILITIES.values()))
    return _last_cap[0]


def mask(names: list[str], field: str, *, kernel_last: int | None = None) -> int:
    """The bit mask of capability `names`; `field` names the config field in errors.

    A name this table does not know is an InvalidArgument; one the running kernel
    does not know is skipped with a warning, so one config runs on old kernels too.
    """
    if not isinstance(names, list):
        raise InvalidArgument(f"config.json: {field}: expected array, got "
                              f"{type(names).__name__}", field=field)
    top = last_cap() if kernel_last is None else kernel_last
    bits = 0
    for name in names:
        number = CAPABILITIES.get(name) if isinstance(name, str) else None
        if number is None:
            raise InvalidArgument(f"config.json: {field}: unknown capability {name!r}",
                                  field=field, capability=name)
        if number > top:
            print(f"knarr: warning: {field}: {name} is not known to the running kernel, "
                  f"skipping it", file=sys.stderr)
            continue
        bits |= 1 << number
    return bits


def masks(caps: dict | None) -> dict[str, int]:
    """Each of the five sets of an OCI process.capabilities object as a mask (absent: 0)."""
    caps = caps or {}
    if not isinstance(caps, dict):
        raise InvalidArgument("config.json: process.capabilities: expected object",
                              field="process.capabilities")
    top = last_cap()
    return {s: mask(caps.get(s, []), f"process.capabilities.{s}", kernel_last=top)
            for s in SETS}


def validate(caps: dict | None) -> dict[str, int]:
    """Check an OCI process.capabilities object without changing anything; return masks.

    Besides the names, checks what capset(2) and PR_CAP_AMBIENT_RAISE would refuse:
    an effective capability must be permitted. An ambient capability that is not
    both permitted and inheritable is left out, as runc does: configs written by
    `runc spec` (and ours) list ambient capabilities with no inheritable set.
    """
    m = masks(caps)
    _require_subset(m, "effective", m["permitted"], "permitted")
    m["ambient"] &= m["permitted"] & m["inheritable"]
    return m


def _require_subset(m: dict[str, int], name: str, allowed: int, what: str) -> None:
    extra = m[name] & ~allowed
    if extra:
        field = f"process.capabilities.{name}"
        raise InvalidArgument(f"config.json: {field}: {', '.join(names_of(extra))} must also "
                              f"be in {what}", field=field)


def names_of(bits: int) -> list[str]:
    """The capability names set in mask `bits`, in number order."""
    return [name for name, n in CAPABILITIES.items() if bits & (1 << n)]


def host_capabilities() -> list[str]:
    """Names of the capabilities in this process's bounding set."""
    top = last_cap()
    return [name for name, n in CAPABILITIES.items()
            if n <= top and ksys.prctl(PR_CAPBSET_READ, n) == 1]


def drop_bounding(keep: int) -> None:
    """Drop from the bounding set every capability the kernel knows that is not in `keep`
    (only those still in it: a drop needs CAP_SETPCAP even when it changes nothing)."""
    present = _bounding_set()
    for n in range(last_cap() + 1):
        if keep & (1 << n):
            continue
        if present is None:
            if ksys.prctl(PR_CAPBSET_READ, n) != 1:
                continue
        elif not present & (1 << n):
            continue
        ksys.prctl(PR_CAPBSET_DROP, n)


def _bounding_set() -> int | None:
    """This process's bounding set, from /proc/self/status in one read (one prctl per
    capability otherwise); None without a /proc."""
    try:
        fd = os.open("/proc/self/status", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        text = os.read(fd, 65536)
    finally:
        os.close(fd)
    start = text.find(b"\nCapBnd:")
    if start < 0:
        return None
    return int(text[start + 8:text.index(b"\n", start + 1)], 16)


def set_process_sets(effective: int, permitted: int, inheritable: int, ambient: int) -> None:
    """capset the three thread sets, then make the ambient set exactly `ambient`."""
    ksys.capset(effective, permitted, inheritable)
    ksys.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    for n in range(last_cap() + 1):
        if ambient & (1 << n):
            ksys.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, n)


def apply(caps: dict | None) -> None:
    """Make the calling thread's capability sets exactly those of OCI `caps`.

    Drops the bounding set first (that needs CAP_SETPCAP, which capset may take
    away), then sets effective, permitted and inheritable, then raises ambient ones.
    """
    m = validate(caps)
    drop_bounding(m["bounding"])
    set_process_sets(m["effective"], m["permitted"], m["inheritable"], m["ambient"])
