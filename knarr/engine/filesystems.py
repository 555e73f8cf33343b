"""A container's file system: changes (diff), export, commit, and import of a tarball."""

import hashlib
import json
import os
import shutil
import stat
import tarfile
import tempfile
import time

from knarr.build import write_layer_blob
from knarr.build.dispatch import apply_changes
from knarr.images import builtin
from knarr.oci import image_spec, reference
from knarr.snapshots import decompressed, detect

__all__ = ["FilesystemsMixin", "changes_of"]

# Made by the engine or the runtime, not by the container's process: Docker leaves them out.
_HIDDEN = {"/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/dev", "/proc", "/sys",
           "/dev/console", "/dev/pts", "/dev/shm", "/dev/mqueue"}
_MODIFIED, _ADDED, _DELETED = 0, 1, 2


def _lowers_and_upper(mounts: list[dict]) -> tuple[list[str], str]:
    lowers, upper = [], ""
    for m in mounts:
        if m["type"] == "bind":
            return [], m["source"]
        for opt in m.get("options", []):
            key, _, value = opt.partition("=")
            if key == "lowerdir":
                lowers = value.split(":")
            elif key == "upperdir":
                upper = value
    return lowers, upper


def changes_of(mounts: list[dict]) -> list[dict]:
    """Docker's change list ({Path, Kind}) from an overlay's upper dir and lowers."""
    lowers, upper = _lowers_and_upper(mounts)
    found: dict[str, int] = {}
    for dirpath, dirnames, filenames in os.walk(upper):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            path = "/" + os.path.relpath(full, upper)
            if path in _HIDDEN:
                continue
            st = os.lstat(full)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                found[path] = _DELETED  # an overlay whiteout
                continue
            in_lower = any(os.path.lexists(os.path.join(lower, path[1:])) for lower in lowers)
            if stat.S_ISDIR(st.st_mode) and in_lower:
                continue  # a directory is changed only if something in it is (below)
            found[path] = _MODIFIED if in_lower else _ADDED
    for path in list(found):
        parent = os.path.dirname(path)
        while parent != "/" and parent not in found:
            found[parent] = _MODIFIED
            parent = os.path.dirname(parent)
    return [{"Path": p, "Kind": k} for p, k in sorted(found.items())]


class FilesystemsMixin:
    """diff, export, commit, import."""

    def changes(self, ref: str) -> list[dict]:
        """What the container changed in its file system, as Docker lists it."""
        return changes_of(self.record(ref)["_snapshot"]["mounts"])

    async def export(self, ref: str) -> str:
        """The container's whole file system as a tarball; return its path (caller removes)."""
        record = self.record(ref)
        fd, path = tempfile.mkstemp(prefix="export-", dir=self.root)
        os.close(fd)
        try:
            await self.in_image_thread(self._export_sync, record, path)
        except BaseException:
            os.unlink(path)
            raise
        return path

    def _export_sync(self, record: dict, path: str) -> None:
        from knarr import sys as ksys

        rootfs = os.path.join(self.monitor_dir(record["Id"]), "rootfs")
        mounted_here = None
        if not os.path.ismount(rootfs):  # not running: mount it for the while
            mounted_here = tempfile.mkdtemp(prefix="export-", dir=self.root)
            for m in record["_snapshot"]["mounts"]:
                if m["type"] == "bind":
                    ksys.mount(m["source"], mounted_here, None, ksys.MS_BIND)
                else:
                    ksys.mount("overlay", mounted_here, "overlay", 0, ",".join(m["options"]))
            rootfs = mounted_here
        try:
            with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as archive:
                for name in sorted(os.listdir(rootfs)):
                    archive.add(os.path.join(rootfs, name), arcname=name)
        finally:
            if mounted_here:
                ksys.umount2(mounted_here, ksys.MNT_DETACH)
                os.rmdir(mounted_here)

    async def commit(self, ref: str, repo: str | None, tag: str | None, comment: str,
                     author: str, overrides: dict | None, changes: list[str],
                     pause: bool = True) -> str:
        """A new image: the container's image plus a layer of its changes; return its id."""
        record = self.record(ref)
        cid = record["Id"]
        paused_here = False
        if pause and self.state(cid)["Running"] and not self.state(cid)["Paused"]:
            await self.pause(cid)
            paused_here = True
        try:
            image_id = await self.in_image_thread(self._commit_sync, record, repo, tag,
                                                  comment, author, overrides or {}, changes or [])
        finally:
            if paused_here:
                await self.unpause(cid)
        self.publish(cid, "commit", comment=comment)
        return image_id

    def _commit_sync(self, record: dict, repo, tag, comment: str, author: str,
                     overrides: dict, changes: list[str]) -> str:
        store = self.images
        digest, size = write_layer_blob(store.content,
                                        store.snapshots.path(record["_snapshot"]["key"]))
        diff_id = digest  # an uncompressed layer: its blob's digest is its diff_id
        parent = store.config(record["Image"])
        manifest = store.manifest(record["Image"])
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        run_config = {k: v for k, v in record["Config"].items()
                      if k in ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "Labels",
                               "ExposedPorts", "StopSignal", "Healthcheck", "Volumes")
                      and v not in (None, "", {}, [])}
        run_config.update(overrides)
        if changes:
            run_config = apply_changes(run_config, changes)
        config = dict(parent, created=now, author=author, config=run_config)
        config["parent"] = record["Image"]  # Docker's image config keeps it; inspect shows it
        config.pop("comment", None)
        if comment:
            config["comment"] = comment
        config["rootfs"] = {"type": "layers",
                            "diff_ids": list(parent["rootfs"]["diff_ids"]) + [diff_id]}
        config["history"] = list(parent.get("history") or []) + [
            {"created": now, "created_by": " ".join([record["Path"], *record["Args"]]),
             "comment": comment, "author": author}]
        config_bytes = json.dumps(config, sort_keys=True).encode()
        config_digest = store.content.put(config_bytes)
        new_manifest = {"schemaVersion": 2, "mediaType": image_spec.OCI_MANIFEST,
                        "config": image_spec.descriptor(image_spec.OCI_CONFIG, config_digest,
                                                        len(config_bytes)),
                        "layers": list(manifest["layers"]) + [
                            image_spec.descriptor(image_spec.OCI_LAYER, digest, size)]}
        names = [_name(repo, tag)] if repo else []
        return store.register(json.dumps(new_manifest, sort_keys=True).encode(), config_bytes,
                              names, label=f"commit {record['Id'][:12]}")

    async def import_tarball(self, path: str, repo: str | None, tag: str | None,
                             message: str, changes: list[str] | None = None) -> str:
        """A single-layer image from a (possibly compressed) file system tarball."""
        def run() -> str:
            with open(path, "rb") as f:
                kind = detect(f.read(8))
                f.seek(0)
                with decompressed(f, kind) as plain, tempfile.TemporaryFile() as layer:
                    shutil.copyfileobj(plain, layer)
                    layer.seek(0)
                    data = layer.read()
            names = [_name(repo, tag)] if repo else []
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            run_config = apply_changes({}, changes or [])  # --change, as Docker's import
            return builtin.build_image(self.images, data, run_config, names, os.uname().machine,
                                       message or f"Imported from - ({digest[:19]})")

        image_id = await self.in_image_thread(run)
        self.events.publish("image", "import", image_id, {"name": _name(repo, tag) if repo
                                                           else image_id})
        return image_id


def _name(repo: str, tag: str | None) -> str:
    return str(reference.parse(f"{repo}:{tag}" if tag else repo))
