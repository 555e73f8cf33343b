"""docker cp: a path of a container's file system as a tarball, out and in.

The container's root is its mounted rootfs while it runs (the monitor's mount),
else the snapshot mounted for the while. Paths are resolved inside that root
(symlinks followed as the container would), and extraction refuses members
that would land outside it.
"""

import base64
import contextlib
import json
import os
import stat
import tarfile
import tempfile

from knarr.errors import InvalidArgument, NotFound
from knarr.runtime.mounts import safe_join

__all__ = ["ArchivesMixin"]


class ArchivesMixin:
    """GET, HEAD and PUT of /containers/{id}/archive."""

    @contextlib.contextmanager
    def _root_of(self, record: dict):
        from knarr import sys as ksys

        rootfs = os.path.join(self.monitor_dir(record["Id"]), "rootfs")
        if os.path.ismount(rootfs):
            yield rootfs
            return
        here = tempfile.mkdtemp(prefix="archive-", dir=self.root)
        try:
            for m in record["_snapshot"]["mounts"]:
                if m["type"] == "bind":
                    ksys.mount(m["source"], here, None, ksys.MS_BIND)
                else:
                    ksys.mount("overlay", here, "overlay", 0, ",".join(m["options"]))
            yield here
        finally:
            while os.path.ismount(here):
                ksys.umount2(here, ksys.MNT_DETACH)
            os.rmdir(here)

    def path_stat(self, ref: str, path: str) -> str:
        """Docker's X-Docker-Container-Path-Stat header value for a path."""
        record = self.record(ref)
        with self._root_of(record) as root:
            return _stat_header(root, path, record["Id"])

    def archive_get(self, ref: str, path: str, out_path: str) -> str:
        """Write the path as a tarball to `out_path`; return the stat header."""
        record = self.record(ref)
        with self._root_of(record) as root:
            header = _stat_header(root, path, record["Id"])
            host = safe_join(root, path)
            name = os.path.basename(os.path.normpath(path)) or "/"
            with tarfile.open(out_path, "w", format=tarfile.PAX_FORMAT) as archive:
                archive.add(host, arcname=name if name != "/" else ".")
        return header

    def archive_put(self, ref: str, path: str, tar_path: str) -> None:
        """Extract a tarball into a directory of the container."""
        record = self.record(ref)
        with self._root_of(record) as root:
            target = safe_join(root, path)
            if not os.path.isdir(target):
                raise NotFound(f"Could not find the file {path} in container "
                               f"{record['Id']}", path=path)
            try:
                with tarfile.open(tar_path) as archive:
                    archive.extractall(target, filter="tar")
            except (tarfile.FilterError, tarfile.ReadError) as exc:
                raise InvalidArgument(f"extract to {path}: {exc}", path=path) from exc


def _stat_header(root: str, path: str, cid: str) -> str:
    host = safe_join(root, path)
    try:
        st = os.lstat(host)
    except FileNotFoundError:
        raise NotFound(f"Could not find the file {path} in container {cid}",
                       path=path) from None
    mode = stat.S_IMODE(st.st_mode) | (1 << 31 if stat.S_ISDIR(st.st_mode) else 0) | \
        (1 << 27 if stat.S_ISLNK(st.st_mode) else 0)
    doc = {"name": os.path.basename(os.path.normpath(path)) or "/", "size": st.st_size,
           "mode": mode, "mtime": _rfc3339(st.st_mtime),
           "linkTarget": os.readlink(host) if stat.S_ISLNK(st.st_mode) else ""}
    return base64.b64encode(json.dumps(doc).encode()).decode()


def _rfc3339(ts: float) -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
