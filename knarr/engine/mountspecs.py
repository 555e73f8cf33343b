"""A create request's mounts, parsed and checked as Docker does (no I/O).

`-v`/Binds (`src:dst[:mode]`, `/dst` for an anonymous volume), `--mount`/Mounts
(type bind, volume, tmpfs) and the image's VOLUMEs become one list of mount
points in the shape of inspect's `Mounts`, each with private keys (`_...`) the
engine acts on: `_nocopy`, `_create_src`, `_anonymous`, `_labels`, `_opts`, `_tmpfs`.
"""

import os

from knarr.errors import InvalidArgument
from knarr.volumes import validate_name

__all__ = ["parse", "from_binds", "from_mounts", "image_volumes", "public", "oci_mounts"]

_PROPAGATION = ("shared", "rshared", "slave", "rslave", "private", "rprivate")
_MODES = {"ro", "rw", "z", "Z", "nocopy", "consistent", "cached", "delegated",
          *_PROPAGATION}


def _bad(spec: str, why: str = "") -> InvalidArgument:
    return InvalidArgument(f"invalid volume specification: '{spec}'" + (f": {why}" if why
                                                                          else ""), bind=spec)


def _bind_spec(spec: str) -> dict:
    parts = spec.split(":")
    if len(parts) == 1:
        src, dst, mode = "", parts[0], ""
    elif len(parts) == 2:
        src, dst, mode = parts[0], parts[1], ""
    elif len(parts) == 3:
        src, dst, mode = parts
    else:
        raise _bad(spec)
    kind = "bind" if src.startswith("/") else "volume"
    if not dst.startswith("/"):
        raise _bad(spec, f'invalid mount config for type "{kind}": invalid mount path: '
                         f"'{dst}' mount path must be absolute")
    if os.path.normpath(dst) == "/":
        raise InvalidArgument("invalid specification: destination can't be '/'", bind=spec)
    modes = [m for m in mode.split(",") if m]
    if any(m not in _MODES for m in modes) or ("ro" in modes and "rw" in modes):
        raise InvalidArgument(f"invalid mode: {mode}", bind=spec)
    propagation = [m for m in modes if m in _PROPAGATION]
    if propagation and kind != "bind":
        raise InvalidArgument(f"invalid mode: {mode}", bind=spec)
    if "nocopy" in modes and kind == "bind":
        raise InvalidArgument(f"invalid mode: {mode}", bind=spec)
    return {"kind": kind, "src": src, "dst": os.path.normpath(dst), "mode": mode,
            "modes": modes, "propagation": propagation[-1] if propagation else ""}


def from_binds(binds: list[str]) -> list[dict]:
    """Mount points for HostConfig.Binds (`docker run -v`)."""
    out = []
    for spec in binds or []:
        if not isinstance(spec, str):
            raise _bad(str(spec))
        b = _bind_spec(spec)
        rw = "ro" not in b["modes"]
        if b["kind"] == "bind":
            out.append({"Type": "bind", "Source": os.path.normpath(b["src"]),
                        "Destination": b["dst"], "Mode": b["mode"], "RW": rw,
                        "Propagation": b["propagation"] or "rprivate", "_create_src": True})
        else:
            name = validate_name(b["src"]) if b["src"] else ""
            out.append({"Type": "volume", "Name": name, "Source": "", "Destination": b["dst"],
                        "Driver": "local", "Mode": b["mode"] or ("z" if name else ""),
                        "RW": rw, "Propagation": "", "_nocopy": "nocopy" in b["modes"],
                        "_anonymous": not name})
    return out


def _mount_error(kind: str, why: str, source: str = "") -> InvalidArgument:
    return InvalidArgument(f'invalid mount config for type "{kind}": {why}', mount=source)


def _one_mount(m: dict) -> dict:
    kind = m.get("Type") or ""
    source, target = m.get("Source") or "", m.get("Target") or ""
    if kind not in ("bind", "volume", "tmpfs"):
        raise _mount_error(kind, "mount type unknown", source)
    if not target:
        raise _mount_error(kind, "field Target must not be empty", source)
    if not target.startswith("/"):
        raise _mount_error(kind, f"invalid mount path: '{target}' mount path must be "
                                 "absolute", source)
    rw = not m.get("ReadOnly")
    base = {"Destination": os.path.normpath(target), "Mode": "", "RW": rw, "Propagation": ""}
    if kind == "bind":
        if not source:
            raise _mount_error(kind, "field Source must not be empty", source)
        if not source.startswith("/"):
            raise _mount_error(kind, f"invalid mount path: '{source}' mount path must be "
                                     "absolute", source)
        propagation = (m.get("BindOptions") or {}).get("Propagation") or "rprivate"
        if propagation not in _PROPAGATION:
            raise _mount_error(kind, f"invalid propagation mode: {propagation}", source)
        return {"Type": "bind", "Source": os.path.normpath(source), **base,
                "Propagation": propagation, "_create_src": False}
    if kind == "tmpfs":
        if source:
            raise _mount_error(kind, "source must not be specified", source)
        opts = m.get("TmpfsOptions") or {}
        tmpfs = []
        if opts.get("SizeBytes"):
            tmpfs.append(f"size={opts['SizeBytes'] // 1024}k")
        if opts.get("Mode"):
            tmpfs.append(f"mode={opts['Mode']:o}")
        return {"Type": "tmpfs", "Source": "", **base, "_tmpfs": tmpfs}
    vopts = m.get("VolumeOptions") or {}
    driver = (vopts.get("DriverConfig") or {})
    return {"Type": "volume", "Name": validate_name(source) if source else "", "Source": "",
            **base, "Driver": driver.get("Name") or "local",
            "_nocopy": bool(vopts.get("NoCopy")), "_anonymous": not source,
            "_labels": vopts.get("Labels") or {}, "_opts": driver.get("Options") or {}}


def from_mounts(mounts: list[dict]) -> list[dict]:
    """Mount points for HostConfig.Mounts (`docker run --mount`)."""
    return [_one_mount(m) for m in mounts or []]


def image_volumes(volumes: dict | None, taken: set[str]) -> list[dict]:
    """Anonymous volumes for the image's VOLUMEs not already covered by a mount."""
    out = []
    for dest in sorted(volumes or {}):
        dest = os.path.normpath(dest)
        if dest not in taken:
            out.append({"Type": "volume", "Name": "", "Source": "", "Destination": dest,
                        "Driver": "local", "Mode": "", "RW": True, "Propagation": "",
                        "_nocopy": False, "_anonymous": True})
    return out


def parse(host: dict, inherited: list[dict] | None = None,
          image_vols: dict | None = None) -> list[dict]:
    """Every mount point of a container: inherited (--volumes-from) first, overridden by
    Binds and Mounts at the same destination, then the image's VOLUMEs."""
    own = from_binds(host.get("Binds")) + from_mounts(host.get("Mounts"))
    seen: set[str] = set()
    for m in own:
        if m["Destination"] in seen:
            raise InvalidArgument(f"Duplicate mount point: {m['Destination']}",
                                  destination=m["Destination"])
        seen.add(m["Destination"])
    points = [m for m in inherited or [] if m["Destination"] not in seen] + own
    taken = {m["Destination"] for m in points} | set(host.get("Tmpfs") or {})
    return points + image_volumes(image_vols, taken)


def public(points: list[dict]) -> list[dict]:
    """The mount points as inspect shows them (private keys dropped)."""
    return [{k: v for k, v in m.items() if not k.startswith("_")} for m in points]


def oci_mounts(points: list[dict], tmpfs_opts: dict) -> list[dict]:
    """OCI mount entries for the mount points; `tmpfs_opts` maps a tmpfs destination to
    its size/mode options."""
    out = []
    for m in points:
        if m["Type"] == "tmpfs":
            options = ["nosuid", "nodev", "noexec", "rw" if m["RW"] else "ro",
                       *tmpfs_opts.get(m["Destination"], [])]
            out.append({"destination": m["Destination"], "type": "tmpfs", "source": "tmpfs",
                        "options": options})
            continue
        options = ["rbind", m.get("Propagation") or "rprivate", "rw" if m["RW"] else "ro"]
        out.append({"destination": m["Destination"], "type": "bind", "source": m["Source"],
                    "options": options})
    return out
