"""A container's OCI runtime config, with Docker's defaults.

Docker's default capability set, its seccomp profile, its masked and
read-only paths, /etc/hostname, /etc/hosts and /etc/resolv.conf bound from the
container's directory, and the HostConfig's limits. `--privileged` gets every
capability this host has (not a fixed list: this host lacks CAP_SYS_RESOURCE),
no seccomp filter, every device and nothing masked.
"""

from knarr.engine import mountspecs
from knarr.engine.merge import parse_device_rule
from knarr.errors import InvalidArgument
from knarr.oci import runtime_spec

__all__ = ["build", "DEFAULT_CAPABILITIES", "MASKED_PATHS", "READONLY_PATHS", "hosts_file"]

DEFAULT_CAPABILITIES = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
    "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
]
MASKED_PATHS = [
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
    "/sys/firmware", "/sys/devices/virtual/powercap",
]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
_RLIMITS = {"core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile",
            "nproc", "rss", "rtprio", "rttime", "sigpending", "stack", "as"}


def hosts_file(hostname: str, extra: list[str] | None, ip: str | None = None) -> str:
    """/etc/hosts for a container: its hostname on its address (127.0.1.1 without one)."""
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
             "fe00::0\tip6-localnet", "ff00::0\tip6-mcastprefix", "ff02::1\tip6-allnodes",
             "ff02::2\tip6-allrouters", f"{ip or '127.0.1.1'}\t{hostname}"]
    for entry in extra or []:
        host, _, address = entry.partition(":")
        lines.append(f"{address}\t{host}")
    return "\n".join(lines) + "\n"


def _capabilities(host: dict, host_caps: list[str]) -> list[str]:
    if host.get("Privileged"):
        return list(host_caps)
    caps = list(DEFAULT_CAPABILITIES)
    adds = [_cap_name(c) for c in host.get("CapAdd") or []]
    drops = [_cap_name(c) for c in host.get("CapDrop") or []]
    if "CAP_ALL" in drops:
        caps = []
    caps = [c for c in caps if c not in drops]
    if "CAP_ALL" in adds:
        return [c for c in host_caps if c not in drops]
    for cap in adds:
        if cap not in caps:
            caps.append(cap)
    return caps


def _cap_name(name: str) -> str:
    name = name.upper()
    return name if name.startswith("CAP_") else "CAP_" + name


def _security_options(host: dict) -> dict:
    out = {"no_new_privileges": False, "seccomp": "default"}
    for opt in host.get("SecurityOpt") or []:
        key, sep, value = opt.partition("=") if "=" in opt else opt.partition(":")
        if key == "no-new-privileges":
            out["no_new_privileges"] = value.lower() in ("", "true")
        elif key == "seccomp":
            out["seccomp"] = value
        elif key in ("apparmor", "label"):
            continue
        else:
            raise InvalidArgument(f"invalid --security-opt 2: {opt!r}", option=opt)
    return out


def _rlimits(host: dict) -> list[dict]:
    out = []
    for ulimit in host.get("Ulimits") or []:
        name = ulimit.get("Name", "")
        if name not in _RLIMITS:
            raise InvalidArgument(f"invalid ulimit type: {name}", ulimit=name)
        out.append({"type": "RLIMIT_" + name.upper(), "soft": ulimit.get("Soft", 0),
                    "hard": ulimit.get("Hard", 0)})
    return out


def _resources(host: dict) -> dict:
    memory = {}
    if host.get("Memory"):
        memory["limit"] = host["Memory"]
    if host.get("MemorySwap") and host["MemorySwap"] > 0:
        memory["swap"] = host["MemorySwap"]
    if host.get("MemoryReservation"):
        memory["reservation"] = host["MemoryReservation"]
    if host.get("MemorySwappiness") is not None and host["MemorySwappiness"] >= 0:
        memory["swappiness"] = host["MemorySwappiness"]
    if host.get("OomKillDisable"):
        memory["disableOOMKiller"] = True
    cpu = {}
    if host.get("CpuShares"):
        cpu["shares"] = host["CpuShares"]
    if host.get("NanoCpus"):
        cpu["period"] = 100000
        cpu["quota"] = host["NanoCpus"] * 100000 // 1_000_000_000
    if host.get("CpuPeriod"):
        cpu["period"] = host["CpuPeriod"]
    if host.get("CpuQuota"):
        cpu["quota"] = host["CpuQuota"]
    for key, field in (("CpusetCpus", "cpus"), ("CpusetMems", "mems")):
        if host.get(key):
            cpu[field] = host[key]
    out: dict = {}
    if memory:
        out["memory"] = memory
    if cpu:
        out["cpu"] = cpu
    if host.get("PidsLimit") and host["PidsLimit"] > 0:
        out["pids"] = {"limit": host["PidsLimit"]}
    if host.get("Privileged"):
        out["devices"] = [{"allow": True, "access": "rwm"}]
    else:
        out["devices"] = [{"allow": False, "access": "rwm"},
                          {"allow": True, "type": "c", "access": "m"},
                          {"allow": True, "type": "b", "access": "m"}]
        out["devices"] += [parse_device_rule(r) for r in host.get("DeviceCgroupRules") or []]
    return out


def _mounts(record: dict, files_dir: str) -> list[dict]:
    host = record["HostConfig"]
    privileged = bool(host.get("Privileged"))
    mounts = [m for m in runtime_spec.default_config()["mounts"]]
    shm = host.get("ShmSize") or 64 * 1024 * 1024
    for m in mounts:
        if m["destination"] == "/dev/shm":
            m["options"] = [o for o in m["options"] if not o.startswith("size=")] + \
                [f"size={shm // 1024}k"]
        if privileged and m["destination"] in ("/sys", "/sys/fs/cgroup"):
            m["options"] = [o for o in m["options"] if o != "ro"]
    for name in ("resolv.conf", "hostname", "hosts"):
        mounts.append({"destination": f"/etc/{name}", "type": "bind",
                       "source": f"{files_dir}/{name}", "options": ["rbind", "rprivate"]})
    mounts += mountspecs.oci_mounts(record.get("Mounts") or [],
                                    (record.get("_mountopts") or {}).get("tmpfs") or {})
    for dest, opts in (host.get("Tmpfs") or {}).items():
        options = ["nosuid", "nodev", "noexec"] + [o for o in opts.split(",") if o]
        mounts.append({"destination": dest, "type": "tmpfs", "source": "tmpfs",
                       "options": options})
    return mounts


def build(record: dict, files_dir: str, host_caps: list[str], seccomp_profile,
          devices: tuple[list, list] = ([], []), netns: str | None = None) -> dict:
    """The OCI config for a container record; `seccomp_profile(caps)` renders the default;
    `devices` are the (linux.devices, cgroup rules) of --device or --privileged; `netns`
    the network namespace to join (None: a new one, unless the host's is shared)."""
    host, config = record["HostConfig"], record["Config"]
    caps = _capabilities(host, host_caps)
    security = _security_options(host)
    env = list(config["Env"])
    if not any(e.startswith("HOSTNAME=") for e in env):
        env.append(f"HOSTNAME={config['Hostname']}")
    if config["Tty"] and not any(e.startswith("TERM=") for e in env):
        env.append("TERM=xterm")
    process = {
        "terminal": config["Tty"], "user": {"uid": 0, "gid": 0},
        "args": [record["Path"], *record["Args"]], "env": env,
        "cwd": config["WorkingDir"] or "/",
        "capabilities": {k: list(caps) for k in ("bounding", "effective", "permitted")},
        "noNewPrivileges": security["no_new_privileges"],
    }
    rlimits = _rlimits(host)
    if rlimits:
        process["rlimits"] = rlimits
    if host.get("OomScoreAdj"):
        process["oomScoreAdj"] = host["OomScoreAdj"]
    namespaces = [{"type": t} for t in ("pid", "ipc", "uts", "mount", "cgroup")]
    if netns:
        namespaces.append({"type": "network", "path": netns})
    elif host.get("NetworkMode") != "host":
        namespaces.append({"type": "network"})
    linux = {
        "resources": _resources(host), "namespaces": namespaces,
        "cgroupsPath": f"/knarr/{record['Id']}",
        "maskedPaths": [] if host.get("Privileged") else list(MASKED_PATHS),
        "readonlyPaths": [] if host.get("Privileged") else list(READONLY_PATHS),
    }
    if host.get("Sysctls"):
        linux["sysctl"] = dict(host["Sysctls"])
    if devices[0]:
        linux["devices"] = devices[0]
        linux["resources"]["devices"] += devices[1]
    if not host.get("Privileged") and security["seccomp"] != "unconfined":
        linux["seccomp"] = _seccomp(security["seccomp"], caps, seccomp_profile)
    out = {
        "ociVersion": runtime_spec.SPEC_VERSION, "process": process,
        "root": {"path": "rootfs", "readonly": bool(host.get("ReadonlyRootfs"))},
        "hostname": config["Hostname"], "mounts": _mounts(record, files_dir), "linux": linux,
    }
    if config.get("Domainname"):
        out["domainname"] = config["Domainname"]
    return out


def _seccomp(choice: str, caps: list[str], seccomp_profile) -> dict:
    """The default profile, or the one the client sent: Docker's CLI reads the file and
    sends its contents, so the daemon takes JSON text and never opens a host path."""
    if choice in ("default", ""):
        return seccomp_profile(caps)
    import json

    from knarr.runtime.seccomp_docker import from_docker

    try:
        profile = json.loads(choice)
    except ValueError as exc:
        raise InvalidArgument(f"Decoding seccomp profile failed: {exc}") from None
    return from_docker(profile, caps)
