"""A seccomp profile in Docker's format (`--security-opt seccomp=profile.json`) rendered
into an OCI linux.seccomp object for one container.

Docker's format adds to the OCI one: `archMap` (the native architecture and the
sub-architectures a filter covers), `name` beside `names`, and per rule `includes` /
`excludes` conditions on the container's capabilities, the machine's architecture and
the kernel's version. A rule whose conditions do not hold is left out.
"""

import os

from knarr.errors import InvalidArgument

__all__ = ["from_docker"]

# platform.machine() -> Go's name for it, which Docker's `arches` conditions use.
_GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le",
           "s390x": "s390x", "riscv64": "riscv64"}
_NATIVE = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64",
           "armv7l": "SCMP_ARCH_ARM", "ppc64le": "SCMP_ARCH_PPC64LE",
           "s390x": "SCMP_ARCH_S390X", "riscv64": "SCMP_ARCH_RISCV64"}
_PASSED_THROUGH = ("defaultAction", "defaultErrnoRet", "flags", "listenerPath",
                   "listenerMetadata")


def from_docker(profile: object, capabilities: list[str]) -> dict:
    """The OCI linux.seccomp object for `profile` (Docker's format, already decoded) and
    a container holding `capabilities`."""
    if not isinstance(profile, dict):
        raise InvalidArgument("Decoding seccomp profile failed: not a JSON object")
    if profile.get("architectures") and profile.get("archMap"):
        raise InvalidArgument("'architectures' and 'archMap' were specified in the seccomp "
                              "profile, use either 'architectures' or 'archMap'")
    out = {key: profile[key] for key in _PASSED_THROUGH if key in profile}
    machine = os.uname().machine
    out["architectures"] = list(profile.get("architectures") or _arch_map(profile, machine))
    caps = set(capabilities)
    rules = profile.get("syscalls") if profile.get("syscalls") is not None else []
    if not isinstance(rules, list):
        raise InvalidArgument("Decoding seccomp profile failed: syscalls is not an array")
    out["syscalls"] = [_oci_rule(rule) for rule in rules if _applies(rule, caps, machine)]
    return out


def _arch_map(profile: dict, machine: str) -> list[str]:
    native = _NATIVE.get(machine)
    for entry in profile.get("archMap") or []:
        if isinstance(entry, dict) and entry.get("architecture") == native:
            return [native, *(entry.get("subArchitectures") or [])]
    return []


def _applies(rule: object, caps: set[str], machine: str) -> bool:
    if not isinstance(rule, dict):
        raise InvalidArgument("Decoding seccomp profile failed: a syscall rule is not an "
                              "object")
    includes, excludes = rule.get("includes") or {}, rule.get("excludes") or {}
    arch = _GOARCH.get(machine, machine)
    if includes.get("arches") and arch not in includes["arches"]:
        return False
    if includes.get("caps") and not set(includes["caps"]) <= caps:
        return False
    if includes.get("minKernel") and _kernel() < _version(includes["minKernel"]):
        return False
    if excludes.get("arches") and arch in excludes["arches"]:
        return False
    if excludes.get("caps") and set(excludes["caps"]) & caps:
        return False
    return True


def _oci_rule(rule: dict) -> dict:
    names = list(rule.get("names") or [])
    if rule.get("name"):
        names.append(rule["name"])
    out = {"names": names, "action": rule.get("action")}
    for key in ("args", "errnoRet"):
        if rule.get(key) is not None:
            out[key] = rule[key]
    return out


def _version(text: str) -> tuple[int, int]:
    parts = str(text).split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        raise InvalidArgument(f"Decoding seccomp profile failed: invalid kernel version "
                              f"{text!r}") from None


def _kernel() -> tuple[int, int]:
    major, _, rest = os.uname().release.partition(".")
    minor = "".join(c for c in rest.split(".")[0] if c.isdigit()) or "0"
    return int(major), int(minor)
