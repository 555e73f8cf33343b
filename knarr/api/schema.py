"""The JSON types of the request bodies the Engine API reads, checked at the edge.

Docker's daemon decodes bodies into Go structs, so a value of the wrong type is
a 400 with Go's text (`json: cannot unmarshal string into Go struct field
HostConfig.HostConfig.Memory of type int64`) before anything looks at it. The
same declarations here let the engine trust the types it is given. Unknown
fields pass (Go ignores them); null is every type's zero value.
"""

from knarr.errors import InvalidArgument

__all__ = ["check", "with_legacy_host_config", "CREATE", "UPDATE", "EXEC_CREATE", "EXEC_START", "CONFIG"]

# Leaf types: Go's name for each, as its error messages print it.
STR, INT, UINT, BOOL = "string", "int64", "uint64", "bool"
STRSLICE = "strslice"  # a string or a list of strings (Docker's strslice.StrSlice)
ANY = "interface {}"


def LIST(item):  # noqa: N802 - reads like the Go type it declares
    return ("list", item)


def MAP(value):  # noqa: N802
    return ("map", value)


STRINGS = LIST(STR)
LABELS = MAP(STR)
_INT_RANGE = {INT: (-2**63, 2**63 - 1), UINT: (0, 2**64 - 1)}

HEALTHCHECK = {"Test": STRSLICE, "Interval": INT, "Timeout": INT, "Retries": INT,
               "StartPeriod": INT, "StartInterval": INT}
CONFIG = {
    "Hostname": STR, "Domainname": STR, "User": STR, "AttachStdin": BOOL,
    "AttachStdout": BOOL, "AttachStderr": BOOL, "ExposedPorts": MAP(ANY), "Tty": BOOL,
    "OpenStdin": BOOL, "StdinOnce": BOOL, "Env": STRINGS, "Cmd": STRSLICE,
    "Healthcheck": HEALTHCHECK, "ArgsEscaped": BOOL, "Image": STR, "Volumes": MAP(ANY),
    "WorkingDir": STR, "Entrypoint": STRSLICE, "NetworkDisabled": BOOL, "MacAddress": STR,
    "OnBuild": STRINGS, "Labels": LABELS, "StopSignal": STR, "StopTimeout": INT,
    "Shell": STRSLICE,
}
_THROTTLE = LIST({"Path": STR, "Rate": UINT})
RESOURCES = {
    "CpuShares": INT, "Memory": INT, "NanoCpus": INT, "CgroupParent": STR,
    "BlkioWeight": UINT, "BlkioWeightDevice": LIST({"Path": STR, "Weight": UINT}),
    "BlkioDeviceReadBps": _THROTTLE, "BlkioDeviceWriteBps": _THROTTLE,
    "BlkioDeviceReadIOps": _THROTTLE, "BlkioDeviceWriteIOps": _THROTTLE,
    "CpuPeriod": INT, "CpuQuota": INT, "CpuRealtimePeriod": INT, "CpuRealtimeRuntime": INT,
    "CpusetCpus": STR, "CpusetMems": STR,
    "Devices": LIST({"PathOnHost": STR, "PathInContainer": STR, "CgroupPermissions": STR}),
    "DeviceCgroupRules": STRINGS, "DeviceRequests": LIST(MAP(ANY)), "KernelMemory": INT,
    "KernelMemoryTCP": INT, "MemoryReservation": INT, "MemorySwap": INT,
    "MemorySwappiness": INT, "OomKillDisable": BOOL, "PidsLimit": INT,
    "Ulimits": LIST({"Name": STR, "Soft": INT, "Hard": INT}), "CpuCount": INT,
    "CpuPercent": INT, "IOMaximumIOps": UINT, "IOMaximumBandwidth": UINT,
}
MOUNT = {
    "Type": STR, "Source": STR, "Target": STR, "ReadOnly": BOOL, "Consistency": STR,
    "BindOptions": {"Propagation": STR, "NonRecursive": BOOL, "CreateMountpoint": BOOL,
                    "ReadOnlyNonRecursive": BOOL, "ReadOnlyForceRecursive": BOOL},
    "VolumeOptions": {"NoCopy": BOOL, "Labels": LABELS, "Subpath": STR,
                      "DriverConfig": {"Name": STR, "Options": LABELS}},
    "TmpfsOptions": {"SizeBytes": INT, "Mode": UINT, "Options": LIST(STRINGS)},
}
HOST_CONFIG = {
    **RESOURCES,
    "Binds": STRINGS, "ContainerIDFile": STR, "LogConfig": {"Type": STR, "Config": LABELS},
    "NetworkMode": STR, "PortBindings": MAP(LIST({"HostIp": STR, "HostPort": STR})),
    "RestartPolicy": {"Name": STR, "MaximumRetryCount": INT}, "AutoRemove": BOOL,
    "VolumeDriver": STR, "VolumesFrom": STRINGS, "ConsoleSize": LIST(UINT),
    "Annotations": LABELS, "CapAdd": STRSLICE, "CapDrop": STRSLICE, "CgroupnsMode": STR,
    "Dns": STRINGS, "DnsOptions": STRINGS, "DnsSearch": STRINGS, "ExtraHosts": STRINGS,
    "GroupAdd": STRINGS, "IpcMode": STR, "Cgroup": STR, "Links": STRINGS, "OomScoreAdj": INT,
    "PidMode": STR, "Privileged": BOOL, "PublishAllPorts": BOOL, "ReadonlyRootfs": BOOL,
    "SecurityOpt": STRINGS, "StorageOpt": LABELS, "Tmpfs": LABELS, "UTSMode": STR,
    "UsernsMode": STR, "ShmSize": INT, "Sysctls": LABELS, "Runtime": STR, "Isolation": STR,
    "Mounts": LIST(MOUNT), "MaskedPaths": STRINGS, "ReadonlyPaths": STRINGS, "Init": BOOL,
}
ENDPOINT = {
    "IPAMConfig": {"IPv4Address": STR, "IPv6Address": STR, "LinkLocalIPs": STRINGS},
    "Links": STRINGS, "Aliases": STRINGS, "MacAddress": STR, "DriverOpts": LABELS,
    "NetworkID": STR, "EndpointID": STR, "Gateway": STR, "IPAddress": STR,
    "IPPrefixLen": INT, "IPv6Gateway": STR, "GlobalIPv6Address": STR,
    "GlobalIPv6PrefixLen": INT, "DNSNames": STRINGS, "GwPriority": INT,
}
CREATE = {**CONFIG, "HostConfig": HOST_CONFIG,
          "NetworkingConfig": {"EndpointsConfig": MAP(ENDPOINT)}}
UPDATE = {**RESOURCES, "RestartPolicy": HOST_CONFIG["RestartPolicy"]}
EXEC_CREATE = {"User": STR, "Privileged": BOOL, "Tty": BOOL, "ConsoleSize": LIST(UINT),
               "AttachStdin": BOOL, "AttachStderr": BOOL, "AttachStdout": BOOL,
               "Detach": BOOL, "DetachKeys": STR, "Env": STRINGS, "WorkingDir": STR,
               "Cmd": STRSLICE}
EXEC_START = {"Detach": BOOL, "Tty": BOOL, "ConsoleSize": LIST(UINT)}


def _go_name(kind) -> str:
    if isinstance(kind, dict):
        return "struct"
    if isinstance(kind, tuple):
        return ("[]" if kind[0] == "list" else "map[string]") + _go_name(kind[1])
    return "[]string" if kind == STRSLICE else kind


def _json_kind(value, kind=None) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):  # Go names the number when it is the wrong number
        return f"number {value}" if isinstance(kind, str) and kind in _INT_RANGE else "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), "value")


def _fail(value, kind, struct: str, path: str):
    raise InvalidArgument(f"json: cannot unmarshal {_json_kind(value, kind)} into Go struct "
                          f"field {struct}.{path} of type {_go_name(kind)}", field=path)


_ZERO = {STR: "", INT: 0, UINT: 0, BOOL: False, STRSLICE: []}


def _zero(kind):
    if isinstance(kind, dict) or (isinstance(kind, tuple) and kind[0] == "map"):
        return {}
    return [] if isinstance(kind, tuple) else _ZERO.get(kind)


def _check(value, kind, struct: str, path: str):
    """`value` checked against `kind`; a null inside a list or map becomes its zero value
    (as Go decodes it), so nothing past here meets a None it did not expect."""
    if value is None or kind == ANY:
        return value
    if isinstance(kind, dict):
        if not isinstance(value, dict):
            _fail(value, kind, struct, path)
        return {key: _check(sub, kind[key], struct, f"{path}.{key}" if path else key)
                if key in kind else sub for key, sub in value.items()}
    if isinstance(kind, tuple):
        container = list if kind[0] == "list" else dict
        if not isinstance(value, container):
            _fail(value, kind, struct, path)
        def item_of(item):
            return _zero(kind[1]) if item is None else _check(item, kind[1], struct, path)

        return [item_of(v) for v in value] if container is list else \
            {k: item_of(v) for k, v in value.items()}
    if kind == STRSLICE:
        if not (isinstance(value, str) or
                (isinstance(value, list) and all(isinstance(v, (str, type(None)))
                                                 for v in value))):
            _fail(value, kind, struct, path)
        return value if isinstance(value, str) else [v or "" for v in value]
    if kind in _INT_RANGE:
        low, high = _INT_RANGE[kind]
        if isinstance(value, bool) or not isinstance(value, int) or \
                not low <= value <= high:
            _fail(value, kind, struct, path)
    elif kind == BOOL and not isinstance(value, bool) or \
            kind == STR and not isinstance(value, str):
        _fail(value, kind, struct, path)
    return value


def check(body, schema: dict, struct: str):
    """`body` if its fields have the types `schema` declares, else InvalidArgument (400)
    with Go's text; `struct` names the Go type the way Docker's messages do."""
    if body is None:
        return None
    if not isinstance(body, dict):
        raise InvalidArgument(f"json: cannot unmarshal {_json_kind(body)} into Go value of "
                              f"type {struct}")
    out = dict(body)
    for key, value in body.items():
        if key in schema:  # a nested struct is named by its own type, as Go does
            kind = schema[key]
            out[key] = _check(value, kind, key if isinstance(kind, dict) else struct, key)
    return out


def with_legacy_host_config(body):
    """A create body with no HostConfig takes its host settings from the top level, as
    Docker's daemon still reads them (docker-py's create_container(runtime=...) sends
    them there)."""
    if not isinstance(body, dict) or body.get("HostConfig"):
        return body
    legacy = {k: v for k, v in body.items() if k in HOST_CONFIG and k not in CONFIG}
    if not legacy:
        return body
    return {**body, "HostConfig": check(legacy, HOST_CONFIG, "HostConfig")}
