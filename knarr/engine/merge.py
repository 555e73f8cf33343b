"""A create request merged with its image's config, checked as Docker checks it.

The result is the container's record: Docker's inspect shape minus State (which
the monitor owns) and the runtime-only fields the engine adds at start.
"""

import os
import time

from knarr.engine import mountspecs, names
from knarr.errors import InvalidArgument

__all__ = ["merge", "validate_host_config", "parse_restart_policy", "rfc3339"]

_DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_MIN_MEMORY = 6 * 1024 * 1024
_INT_FIELDS = ("Memory", "MemorySwap", "MemoryReservation", "NanoCpus", "CpuShares",
               "CpuPeriod", "CpuQuota", "PidsLimit", "ShmSize", "OomScoreAdj",
               "MemorySwappiness")
_RESTART_NAMES = ("", "no", "always", "unless-stopped", "on-failure")


def rfc3339(ts: float) -> str:
    """A UTC time as Docker prints it, with nanoseconds."""
    whole = int(ts)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + \
        f".{int((ts - whole) * 1e9):09d}Z"


def _env_map(env: list[str]) -> dict[str, str]:
    out = {}
    for item in env:
        key, _, _value = item.partition("=")
        out[key] = item
    return out


def _merge_env(image_env: list[str] | None, request_env: list[str] | None) -> list[str]:
    merged = _env_map(image_env or [])
    merged.update(_env_map(request_env or []))
    return list(merged.values())


def _argv(config: dict, image: dict) -> tuple[list[str], list[str]]:
    """(entrypoint, cmd) as Docker picks them: a given entrypoint drops the image's cmd."""
    if config.get("Entrypoint") is not None:
        entrypoint = [a for a in config["Entrypoint"] if a != ""] if \
            config["Entrypoint"] != [""] else []
        return entrypoint, list(config.get("Cmd") or [])
    cmd = config.get("Cmd") if config.get("Cmd") else image.get("Cmd")
    return list(image.get("Entrypoint") or []), list(cmd or [])


def _check_type(section: dict, key: str, kind: type, where: str) -> None:
    value = section.get(key)
    if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
        go = {int: "int64", str: "string", list: "[]string", dict: "object"}[kind]
        got = {str: "string", bool: "bool", list: "array", dict: "object",
               float: "number", int: "number"}.get(type(value), "value")
        raise InvalidArgument(f"json: cannot unmarshal {got} into Go struct field "
                              f"{where}.{key} of type {go}", field=key)


def parse_device_rule(rule: str) -> dict:
    """`c 7:128 rwm` (Docker's --device-cgroup-rule) as an OCI linux.resources.devices entry."""
    fields = rule.split()
    numbers = fields[1].split(":") if len(fields) == 3 else []
    if len(numbers) != 2 or fields[0] not in ("a", "b", "c") or \
            not all(n == "*" or n.isdigit() for n in numbers) or \
            not fields[2] or set(fields[2]) - set("rwm"):
        raise InvalidArgument(f"invalid device cgroup rule format: '{rule}'", rule=rule)
    entry = {"allow": True, "type": fields[0], "access": fields[2]}
    for key, number in zip(("major", "minor"), numbers, strict=True):
        if number != "*":
            entry[key] = int(number)
    return entry


def parse_restart_policy(policy: dict | None) -> dict:
    """A checked RestartPolicy {Name, MaximumRetryCount}."""
    policy = dict(policy or {})
    name = policy.get("Name") or "no"
    if name not in _RESTART_NAMES:
        raise InvalidArgument(f"invalid restart policy '{name}'", policy=name)
    count = policy.get("MaximumRetryCount") or 0
    if not isinstance(count, int) or count < 0:
        raise InvalidArgument("invalid restart policy: maximum retry count can't be negative")
    if count and name != "on-failure":
        raise InvalidArgument("invalid restart policy: maximum retry count can only be used "
                              "with 'on-failure'", policy=name)
    return {"Name": name, "MaximumRetryCount": count}


def validate_host_config(host: dict) -> dict:
    """Docker's checks of a HostConfig; return it with defaults filled in."""
    for key in _INT_FIELDS:
        _check_type(host, key, int, "HostConfig.HostConfig")
    memory = host.get("Memory") or 0
    if memory < 0 or 0 < memory < _MIN_MEMORY:
        raise InvalidArgument("Minimum memory limit allowed is 6MB", field="Memory")
    swap = host.get("MemorySwap") or 0
    if memory and swap > 0 and swap < memory:
        raise InvalidArgument("Minimum memoryswap limit should be larger than memory limit, "
                              "see usage", field="MemorySwap")
    if swap and not memory and swap != -1:
        raise InvalidArgument("You should always set the Memory limit when using Memoryswap "
                              "limit, see usage", field="MemorySwap")
    reservation = host.get("MemoryReservation") or 0
    if reservation and memory and reservation > memory:
        raise InvalidArgument("Minimum memory limit can not be less than memory reservation "
                              "limit, see usage", field="MemoryReservation")
    nano = host.get("NanoCpus") or 0
    cpus = os.cpu_count() or 1
    if nano < 0 or (nano and not 10_000_000 <= nano <= cpus * 1_000_000_000):
        raise InvalidArgument(f"Range of CPUs is from 0.01 to {cpus}.00, as there are only "
                              f"{cpus} CPUs available", field="NanoCpus")
    if host.get("NanoCpus") and (host.get("CpuQuota") or host.get("CpuPeriod")):
        raise InvalidArgument("Conflicting options: Nano CPUs and CPU Period cannot both be "
                              "set", field="NanoCpus")
    network = host.get("NetworkMode") or "default"
    if not isinstance(network, str) or network == "container:":
        raise InvalidArgument(f"invalid network mode: {network}", network=network)
    for rule in host.get("DeviceCgroupRules") or []:
        parse_device_rule(rule)
    out = dict(host)
    out["RestartPolicy"] = parse_restart_policy(host.get("RestartPolicy"))
    if out.get("AutoRemove") and out["RestartPolicy"]["Name"] not in ("", "no"):
        raise InvalidArgument("can't create 'AutoRemove' container with restart policy")
    out["NetworkMode"] = network
    log = dict(host.get("LogConfig") or {})
    log["Type"] = log.get("Type") or "json-file"
    if log["Type"] not in ("json-file", "none"):
        raise InvalidArgument(f'logger: no log driver named \'{log["Type"]}\' is registered',
                              driver=log["Type"])
    log["Config"] = log.get("Config") or {}
    out["LogConfig"] = log
    return out


def merge(request: dict, image: dict, image_id: str, image_name: str, container_id: str,
          name: str) -> dict:
    """The container's record from a create request and the image config it names."""
    config = {k: v for k, v in request.items() if k not in ("HostConfig", "NetworkingConfig")}
    for key in ("Cmd", "Entrypoint", "Env"):
        if isinstance(config.get(key), str):
            config[key] = [config[key]] if key != "Env" else [config[key]]
    host = validate_host_config(request.get("HostConfig") or {})
    image_config = image.get("config") or {}
    entrypoint, cmd = _argv(config, image_config)
    argv = entrypoint + cmd
    if not argv:
        raise InvalidArgument("No command specified", container=container_id)
    env = _merge_env(image_config.get("Env"), config.get("Env"))
    if not any(e.startswith("PATH=") for e in env):
        env.insert(0, _DEFAULT_PATH)
    merged = {
        "Hostname": config.get("Hostname") or container_id[:12],
        "Domainname": config.get("Domainname") or "",
        "User": config.get("User") or image_config.get("User") or "",
        "AttachStdin": bool(config.get("AttachStdin")),
        "AttachStdout": bool(config.get("AttachStdout")),
        "AttachStderr": bool(config.get("AttachStderr")),
        "ExposedPorts": {**(image_config.get("ExposedPorts") or {}),
                         **(config.get("ExposedPorts") or {})} or None,
        "Tty": bool(config.get("Tty")),
        "OpenStdin": bool(config.get("OpenStdin")),
        "StdinOnce": bool(config.get("StdinOnce")),
        "Env": env,
        "Cmd": cmd or None,
        "Healthcheck": config.get("Healthcheck") or image_config.get("Healthcheck"),
        "Image": image_name,
        "Volumes": config.get("Volumes") or image_config.get("Volumes"),
        "WorkingDir": config.get("WorkingDir") or image_config.get("WorkingDir") or "",
        "Entrypoint": entrypoint or None,
        "OnBuild": None,
        "Labels": {**(image_config.get("Labels") or {}), **(config.get("Labels") or {})},
        "StopSignal": config.get("StopSignal") or image_config.get("StopSignal") or "SIGTERM",
    }
    if config.get("StopTimeout") is not None:
        merged["StopTimeout"] = config["StopTimeout"]
    if config.get("MacAddress"):
        merged["MacAddress"] = config["MacAddress"]
    if host["NetworkMode"] == "host" and not config.get("Hostname"):
        import socket

        merged["Hostname"] = socket.gethostname()
    created = time.time()
    return {
        "Id": container_id, "Created": rfc3339(created), "_created": created,
        "Path": argv[0], "Args": argv[1:], "Image": image_id, "Name": "/" + name,
        "RestartCount": 0, "Driver": "overlay2", "Platform": "linux", "MountLabel": "",
        "ProcessLabel": "", "AppArmorProfile": "", "ExecIDs": None,
        "HostConfig": host, "Config": merged, "Mounts": _mounts_of(host),
    }


def _mounts_of(host: dict) -> list[dict]:
    """The mount points checked now; the engine makes their volumes (prepare_mounts)."""
    return mountspecs.public(mountspecs.parse(host))


def check_name(name: str | None, taken) -> str:
    """The name to give: the requested one (checked) or a random free one."""
    if name:
        return names.validate_name(name)
    return names.random_name(taken)
