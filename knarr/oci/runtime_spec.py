"""The OCI runtime-spec config: validation and the default config.

A config stays a plain dict (the JSON as written) so that every field the
spec defines survives a round trip; this module checks the shape of the
fields knarr acts on and says which field is wrong when one is.
"""

from knarr.errors import InvalidArgument

__all__ = [
    "SPEC_VERSION",
    "NAMESPACE_TYPES",
    "validate_config",
    "default_config",
    "namespaces_of",
]

SPEC_VERSION = "1.0.2"

NAMESPACE_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")

_DEFAULT_CAPS = [
    "CAP_AUDIT_WRITE",
    "CAP_KILL",
    "CAP_NET_BIND_SERVICE",
]


def _fail(field: str, problem: str) -> InvalidArgument:
    return InvalidArgument(f"config.json: {field}: {problem}", field=field)


def _expect(value: object, kind: type | tuple, field: str) -> None:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise _fail(field, f"expected {_json_name(names)}, got {type(value).__name__}")


def _json_name(py: str) -> str:
    return {"dict": "object", "list": "array", "str": "string", "int": "integer",
            "bool": "boolean"}.get(py, py)


def validate_config(config: object) -> dict:
    """Check the fields knarr acts on; return the config or raise InvalidArgument."""
    _expect(config, dict, "(top level)")
    assert isinstance(config, dict)
    if "ociVersion" not in config:
        raise _fail("ociVersion", "missing")
    _expect(config["ociVersion"], str, "ociVersion")
    if not _is_semver(config["ociVersion"]):
        raise _fail("ociVersion", f"{config['ociVersion']!r} is not a SemVer 2.0.0 version")
    _validate_root(config.get("root"))
    _validate_process(config.get("process"))
    _validate_mounts(config.get("mounts", []))
    if "hostname" in config:
        _expect(config["hostname"], str, "hostname")
    if "linux" in config:
        _validate_linux(config["linux"])
    return config


def _is_semver(version: str) -> bool:
    # MAJOR.MINOR.PATCH, then an optional -pre-release and +build (config.md)
    core, plus, build = version.partition("+")
    core, dash, pre = core.partition("-")
    if (plus and not build) or (dash and not pre):
        return False
    numbers = core.split(".")
    tags = [t for part in (pre, build) if part for t in part.split(".")]
    return (len(numbers) == 3 and all(n.isascii() and n.isdigit() for n in numbers)
            and all(t and all(c.isascii() and (c.isalnum() or c == "-") for c in t)
                    for t in tags))


def _validate_root(root: object) -> None:
    if root is None:
        raise _fail("root", "missing")
    _expect(root, dict, "root")
    assert isinstance(root, dict)
    if not root.get("path"):
        raise _fail("root.path", "missing")
    _expect(root["path"], str, "root.path")
    _expect(root.get("readonly", False), bool, "root.readonly")


def _validate_process(process: object) -> None:
    if process is None:
        return
    _expect(process, dict, "process")
    assert isinstance(process, dict)
    if "cwd" not in process:
        raise _fail("process.cwd", "missing")
    _expect(process["cwd"], str, "process.cwd")
    if not process["cwd"].startswith("/"):
        raise _fail("process.cwd", f"must be an absolute path, got {process['cwd']!r}")
    args = process.get("args")
    if args is not None:
        _expect(args, list, "process.args")
        for i, arg in enumerate(args):
            _expect(arg, str, f"process.args[{i}]")
    for i, env in enumerate(process.get("env", [])):
        _expect(env, str, f"process.env[{i}]")
    _expect(process.get("terminal", False), bool, "process.terminal")
    user = process.get("user", {})
    _expect(user, dict, "process.user")
    for key in ("uid", "gid"):
        if key in user:
            _expect(user[key], int, f"process.user.{key}")
    for i, rl in enumerate(process.get("rlimits", [])):
        _expect(rl, dict, f"process.rlimits[{i}]")
        for key in ("type", "hard", "soft"):
            if key not in rl:
                raise _fail(f"process.rlimits[{i}].{key}", "missing")


def _validate_mounts(mounts: object) -> None:
    _expect(mounts, list, "mounts")
    assert isinstance(mounts, list)
    for i, m in enumerate(mounts):
        _expect(m, dict, f"mounts[{i}]")
        if "destination" not in m:
            raise _fail(f"mounts[{i}].destination", "missing")
        _expect(m["destination"], str, f"mounts[{i}].destination")
        _expect(m.get("options", []), list, f"mounts[{i}].options")


def _validate_linux(linux: object) -> None:
    _expect(linux, dict, "linux")
    assert isinstance(linux, dict)
    seen = set()
    for i, ns in enumerate(linux.get("namespaces", [])):
        _expect(ns, dict, f"linux.namespaces[{i}]")
        kind = ns.get("type")
        if kind not in NAMESPACE_TYPES:
            raise _fail(f"linux.namespaces[{i}].type", f"unknown namespace type {kind!r}")
        if kind in seen:
            raise _fail(f"linux.namespaces[{i}].type", f"namespace {kind!r} listed twice")
        seen.add(kind)
        if "path" in ns:
            _expect(ns["path"], str, f"linux.namespaces[{i}].path")
    for key in ("uidMappings", "gidMappings"):
        for i, m in enumerate(linux.get(key, [])):
            for field in ("containerID", "hostID", "size"):
                _expect(m.get(field), int, f"linux.{key}[{i}].{field}")
    if linux.get("uidMappings") and "user" not in seen:
        raise _fail("linux.uidMappings", "set without a user namespace")
    for key in ("maskedPaths", "readonlyPaths"):
        for i, p in enumerate(linux.get(key, [])):
            _expect(p, str, f"linux.{key}[{i}]")
    if "cgroupsPath" in linux:
        _expect(linux["cgroupsPath"], str, "linux.cgroupsPath")
    if "resources" in linux:
        _expect(linux["resources"], dict, "linux.resources")
    if "sysctl" in linux:
        _expect(linux["sysctl"], dict, "linux.sysctl")


def namespaces_of(config: dict) -> dict[str, str | None]:
    """Map each namespace type in the config to its path (None: make a new one)."""
    return {ns["type"]: ns.get("path") for ns in config.get("linux", {}).get("namespaces", [])}


def default_config(rootless: bool = False) -> dict:
    """The config `knarr-runtime spec` writes: a shell in a fresh set of namespaces."""
    config = {
        "ociVersion": SPEC_VERSION,
        "process": {
            "terminal": True,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "TERM=xterm"],
            "cwd": "/",
            "capabilities": {k: list(_DEFAULT_CAPS) for k in
                             ("bounding", "effective", "permitted", "ambient")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "knarr",
        "mounts": _default_mounts(),
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount",
                                                 "cgroup")],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                            "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                            "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                              "/proc/sysrq-trigger"],
        },
    }
    if rootless:
        _make_rootless(config)
    return config


def _default_mounts() -> list[dict]:
    return [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620",
                     "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
    ]


def _make_rootless(config: dict) -> None:
    linux = config["linux"]
    linux.pop("resources", None)
    linux["namespaces"] = [ns for ns in linux["namespaces"] if ns["type"] != "network"]
    linux["namespaces"].append({"type": "user"})
    linux["uidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
    linux["gidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
    mounts = [m for m in config["mounts"] if m["destination"] not in ("/sys", "/sys/fs/cgroup")]
    mounts.append({"destination": "/sys", "type": "none", "source": "/sys",
                   "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]})
    config["mounts"] = mounts
