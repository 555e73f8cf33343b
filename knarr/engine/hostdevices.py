"""Host device nodes for --device and --privileged, as OCI linux.devices entries."""

import os
import stat

from knarr.errors import InvalidArgument

__all__ = ["host_devices", "requested_devices"]

_SKIP = ("/dev/pts", "/dev/shm", "/dev/mqueue")


def _entry(host_path: str, container_path: str) -> dict | None:
    st = os.stat(host_path)
    if stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISBLK(st.st_mode):
        kind = "b"
    else:
        return None
    return {"path": container_path, "type": kind, "major": os.major(st.st_rdev),
            "minor": os.minor(st.st_rdev), "fileMode": stat.S_IMODE(st.st_mode),
            "uid": st.st_uid, "gid": st.st_gid}


def host_devices(root: str = "/dev") -> list[dict]:
    """Every device node under /dev (what a privileged container gets), links skipped."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) not in _SKIP]
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                continue
            try:
                entry = _entry(path, path)
            except OSError:
                continue
            if entry is not None:
                out.append(entry)
    return out


def requested_devices(requests: list[dict] | None) -> tuple[list[dict], list[dict]]:
    """(linux.devices, cgroup allow rules) for HostConfig.Devices."""
    devices, rules = [], []
    for request in requests or []:
        host_path = request.get("PathOnHost", "")
        inside = request.get("PathInContainer") or host_path
        access = request.get("CgroupPermissions") or "rwm"
        try:
            entry = _entry(host_path, inside)
        except OSError as exc:
            raise InvalidArgument(f'error gathering device information while adding custom '
                                  f'device "{host_path}": {exc.strerror.lower()}',
                                  device=host_path) from exc
        if entry is None:
            raise InvalidArgument(f'error gathering device information while adding custom '
                                  f'device "{host_path}": not a device node', device=host_path)
        devices.append(entry)
        rules.append({"allow": True, "type": entry["type"], "major": entry["major"],
                      "minor": entry["minor"], "access": access})
    return devices, rules
