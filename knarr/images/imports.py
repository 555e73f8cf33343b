"""`import`: a single-layer image from a root file system tarball, with `--change`s.

The tarball (plain, gzip or zstd) is stored uncompressed, so that its digest
is its diff_id, in one pass that also counts and hashes it. Each change is
a Dockerfile instruction that sets image config: CMD, ENTRYPOINT, ENV,
WORKDIR, USER, EXPOSE, LABEL, VOLUME, STOPSIGNAL, ONBUILD.
"""

import datetime
import json
import os
import shlex
from typing import BinaryIO

from knarr.errors import InvalidArgument
from knarr.images import unpack
from knarr.images.store import ImageStore
from knarr.oci import digest as digests
from knarr.oci import image_spec, reference
from knarr.snapshots import decompressed, detect

__all__ = ["import_image", "apply_changes"]

_CHUNK = 1 << 20
_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}


def apply_changes(run_config: dict, changes: list[str]) -> dict:
    """Apply Dockerfile-style instructions to a run config (the `config` of an image)."""
    out = dict(run_config)
    for change in changes:
        keyword, _, rest = change.strip().partition(" ")
        handler = _HANDLERS.get(keyword.upper())
        if handler is None or not rest.strip():
            raise InvalidArgument(f"import: change {change!r}: expected one of "
                                  f"{', '.join(sorted(_HANDLERS))} with an argument",
                                  change=change)
        handler(out, rest.strip())
    return out


def _command(rest: str) -> list[str]:
    if rest.startswith("["):
        try:
            value = json.loads(rest)
        except ValueError as exc:
            raise InvalidArgument(f"import: {rest!r}: not a JSON array: {exc}") from exc
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidArgument(f"import: {rest!r}: expected an array of strings")
        return value
    return ["/bin/sh", "-c", rest]


def _pairs(rest: str) -> list[tuple[str, str]]:
    words = shlex.split(rest)
    if words and "=" not in words[0]:
        return [(words[0], " ".join(words[1:]))]  # the legacy `ENV KEY value` form
    return [tuple(w.split("=", 1)) if "=" in w else (w, "") for w in words]  # type: ignore


def _env(config: dict, rest: str) -> None:
    env = [e for e in config.get("Env") or []]
    for key, value in _pairs(rest):
        env = [e for e in env if e.split("=", 1)[0] != key] + [f"{key}={value}"]
    config["Env"] = env


def _labels(config: dict, rest: str) -> None:
    config["Labels"] = dict(config.get("Labels") or {}, **dict(_pairs(rest)))


def _expose(config: dict, rest: str) -> None:
    ports = dict(config.get("ExposedPorts") or {})
    for port in rest.split():
        ports[port if "/" in port else f"{port}/tcp"] = {}
    config["ExposedPorts"] = ports


def _volume(config: dict, rest: str) -> None:
    paths = _command(rest) if rest.startswith("[") else rest.split()
    config["Volumes"] = dict(config.get("Volumes") or {}, **{p: {} for p in paths})


_HANDLERS = {
    "CMD": lambda c, r: c.__setitem__("Cmd", _command(r)),
    "ENTRYPOINT": lambda c, r: c.__setitem__("Entrypoint", _command(r)),
    "ENV": _env,
    "WORKDIR": lambda c, r: c.__setitem__("WorkingDir", r),
    "USER": lambda c, r: c.__setitem__("User", r),
    "EXPOSE": _expose,
    "LABEL": _labels,
    "VOLUME": _volume,
    "STOPSIGNAL": lambda c, r: c.__setitem__("StopSignal", r),
    "ONBUILD": lambda c, r: c.__setitem__("OnBuild", (c.get("OnBuild") or []) + [r]),
}


def import_image(store: ImageStore, stream: BinaryIO, names: list[str] | None = None,
                 changes: list[str] | None = None, message: str = "",
                 machine: str | None = None) -> str:
    """Make a one-layer image of a root file system tarball; return its id."""
    run_config = apply_changes({}, changes or [])
    layer = _store_layer(store, stream)
    size = store.content.info(layer).size
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    machine = machine or os.uname().machine
    config = {"architecture": _ARCH.get(machine, machine), "os": "linux", "created": now,
              "config": run_config, "rootfs": {"type": "layers", "diff_ids": [layer]},
              "history": [{"created": now, "created_by": "knarr import",
                           **({"comment": message} if message else {})}]}
    config_bytes = json.dumps(config).encode()
    manifest = {"schemaVersion": 2, "mediaType": image_spec.OCI_MANIFEST,
                "config": image_spec.descriptor(image_spec.OCI_CONFIG,
                                                digests.sha256_of(config_bytes),
                                                len(config_bytes)),
                "layers": [image_spec.descriptor(image_spec.OCI_LAYER, layer, size)]}
    normalised = [str(reference.parse(n)) for n in names or []]
    try:
        return store.register(json.dumps(manifest).encode(), config_bytes, normalised,
                              label=f"import {normalised[0] if normalised else ''}".strip())
    except BaseException:
        if layer not in store.content_roots():
            store.content.delete(layer)
        raise


def _store_layer(store: ImageStore, stream: BinaryIO) -> str:
    rest = unpack.Peekable(stream)
    with store.content.writer(f"import-{os.getpid()}") as writer:
        writer.truncate()
        with decompressed(rest, detect(rest.peek(4))) as plain:  # type: ignore[arg-type]
            while chunk := plain.read(_CHUNK):
                writer.write(chunk)
        return writer.commit()
