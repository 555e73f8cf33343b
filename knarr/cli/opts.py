"""Parsers for the values of run/create flags (env files, ulimits, devices, ...)."""

import os

__all__ = ["env_list", "read_env_file", "key_values", "ulimit", "device", "tmpfs", "restart",
           "detach_keys", "filters"]


def env_list(values: list[str]) -> list[str]:
    """`-e A=1 -e B`: B takes the client's own value when set, as Docker's CLI does."""
    out = []
    for item in values:
        name, eq, _ = item.partition("=")
        if not name:
            raise ValueError(f"invalid environment variable: {item}")
        if eq:
            out.append(item)
        elif name in os.environ:
            out.append(f"{name}={os.environ[name]}")
        else:
            out.append(name)
    return out


def read_env_file(path: str) -> list[str]:
    """The variables of an --env-file: one a line, blank lines and # comments skipped."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise ValueError(f"open {path}: {exc.strerror.lower() if exc.strerror else exc}") \
            from None
    return env_list([ln.lstrip() for ln in lines if ln.strip() and not ln.lstrip()
                     .startswith("#")])


def key_values(values: list[str]) -> dict[str, str]:
    """`k=v` items (labels, sysctls, log options) as a dict; `k` alone maps to ""."""
    out = {}
    for item in values:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def ulimit(text: str) -> dict:
    """`nofile=1024:2048` → {"Name": "nofile", "Soft": 1024, "Hard": 2048}."""
    name, eq, limits = text.partition("=")
    if not eq or not name:
        raise ValueError(f"invalid ulimit argument: {text}")
    soft, _, hard = limits.partition(":")
    try:
        soft_n = int(soft)
        hard_n = int(hard) if hard else soft_n
    except ValueError:
        raise ValueError(f"invalid ulimit argument: {text}") from None
    if soft_n > hard_n:
        raise ValueError(f"ulimit soft limit must be less than or equal to hard limit: "
                         f"{soft_n} > {hard_n}")
    return {"Name": name, "Soft": soft_n, "Hard": hard_n}


ulimit.kind = "ulimit"


def device(text: str) -> dict:
    """`/dev/host[:/dev/container[:rwm]]` → a device mapping."""
    parts = text.split(":")
    if not parts[0] or len(parts) > 3:
        raise ValueError(f"invalid device specification: {text}")
    host = parts[0]
    inside, perms = host, "rwm"
    if len(parts) == 2:
        if parts[1] and set(parts[1]) <= set("rwm") and not parts[1].startswith("/"):
            perms = parts[1]
        else:
            inside = parts[1]
    elif len(parts) == 3:
        inside, perms = parts[1], parts[2]
    if not set(perms) <= set("rwm"):
        raise ValueError(f"invalid device mode: {perms}")
    return {"PathOnHost": host, "PathInContainer": inside, "CgroupPermissions": perms}


def tmpfs(values: list[str]) -> dict[str, str]:
    """`/run:rw,size=64m` items → {"/run": "rw,size=64m"}."""
    out = {}
    for item in values:
        path, _, options = item.partition(":")
        out[path] = options
    return out


def restart(text: str) -> dict:
    """`on-failure:3` → {"Name": "on-failure", "MaximumRetryCount": 3}."""
    name, _, count = text.partition(":")
    policy: dict = {"Name": "" if name == "no" else name}
    if count:
        if name != "on-failure":
            raise ValueError(f"maximum retry count cannot be used with restart policy "
                             f"'{name}'")
        try:
            policy["MaximumRetryCount"] = int(count)
        except ValueError:
            raise ValueError("maximum retry count must be an integer") from None
    return policy


_KEYS = {"ctrl-@": 0, "ctrl-[": 27, "ctrl-\\": 28, "ctrl-]": 29, "ctrl-^": 30, "ctrl-_": 31}


def detach_keys(text: str) -> bytes:
    """`ctrl-p,ctrl-q` → b"\\x10\\x11"; single characters stand for themselves."""
    out = bytearray()
    for key in text.split(","):
        low = key.lower()
        if low in _KEYS:
            out.append(_KEYS[low])
        elif low.startswith("ctrl-") and len(low) == 6 and "a" <= low[5] <= "z":
            out.append(ord(low[5]) - ord("a") + 1)
        elif len(key) == 1:
            out.append(ord(key))
        else:
            raise ValueError(f"Unknown character: '{key}'")
    return bytes(out)


def stream_name(text: str) -> str:
    """-a/--attach: stdin, stdout or stderr (any case)."""
    if text.lower() not in ("stdin", "stdout", "stderr"):
        raise ValueError("valid streams are STDIN, STDOUT and STDERR")
    return text.lower()


def publish(text: str) -> tuple[str, dict]:
    """`[ip:][host_port:]container_port[/proto]` → ("80/tcp", {"HostIp": .., "HostPort": ..})."""
    spec, _, proto = text.partition("/")
    proto = proto or "tcp"
    parts = spec.rsplit(":", 2)
    if spec.startswith("[") and "]" in spec:  # [::1]:8080:80
        host_ip, _, rest = spec[1:].partition("]")
        parts = [host_ip, *rest.lstrip(":").split(":")]
    port = parts[-1]
    host_port = parts[-2] if len(parts) >= 2 else ""
    host_ip = parts[-3] if len(parts) == 3 else ""
    if not port.isdigit() or (host_port and not host_port.replace("-", "").isdigit()) or \
            proto not in ("tcp", "udp", "sctp"):
        raise ValueError(f"Invalid containerPort: {port}" if not port.isdigit() else
                         f"invalid proto: {proto}" if proto not in ("tcp", "udp", "sctp")
                         else f"Invalid hostPort: {host_port}")
    return f"{port}/{proto}", {"HostIp": host_ip, "HostPort": host_port}


publish.kind = "list"


def mount(text: str) -> dict:
    """--mount type=bind,source=/a,target=/b,readonly → a HostConfig.Mounts entry."""
    out: dict = {"Type": "volume"}
    for field in text.split(","):
        key, eq, value = field.partition("=")
        key = key.strip().lower()
        if key in ("type",):
            out["Type"] = value
        elif key in ("source", "src"):
            out["Source"] = value
        elif key in ("target", "destination", "dst"):
            out["Target"] = value
        elif key in ("readonly", "ro"):
            out["ReadOnly"] = not eq or value.lower() in ("1", "true")
        elif key == "bind-propagation":
            out.setdefault("BindOptions", {})["Propagation"] = value
        elif key == "tmpfs-size":
            from knarr.cli.units import ram_in_bytes

            out.setdefault("TmpfsOptions", {})["SizeBytes"] = ram_in_bytes(value)
        elif key == "tmpfs-mode":
            out.setdefault("TmpfsOptions", {})["Mode"] = int(value, 8)
        elif key == "volume-nocopy":
            out.setdefault("VolumeOptions", {})["NoCopy"] = not eq or value.lower() in \
                ("1", "true")
        elif key == "volume-label":
            label, _, label_value = value.partition("=")
            out.setdefault("VolumeOptions", {}).setdefault("Labels", {})[label] = label_value
        elif key == "volume-driver":
            out.setdefault("VolumeOptions", {}).setdefault("DriverConfig", {})["Name"] = value
        elif key == "volume-opt":
            opt, _, opt_value = value.partition("=")
            config = out.setdefault("VolumeOptions", {}).setdefault("DriverConfig", {})
            config.setdefault("Options", {})[opt] = opt_value
        elif key in ("consistency",):
            out["Consistency"] = value
        else:
            raise ValueError(f"unexpected key '{key}' in '{field}'")
    if "Target" not in out:
        raise ValueError("target is required")
    return out


mount.kind = "mount"


def filter_item(text: str) -> str:
    """One --filter value: name=value."""
    if "=" not in text:
        raise ValueError("bad format of filter (expected name=value)")
    return text


filter_item.kind = "filter"


def filters(values: list[str]) -> dict[str, list[str]] | None:
    """`--filter k=v` items → the API's filters map (None when there are none)."""
    out: dict[str, list[str]] = {}
    for item in values:
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError("bad format of filter (expected name=value)")
        out.setdefault(key.strip().lower(), []).append(value)
    return out or None
