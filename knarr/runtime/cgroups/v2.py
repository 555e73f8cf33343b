"""The cgroup v2 driver: one unified tree, one directory per container.

The driver takes the tree's root as a parameter, so the unit tests run it
against a fake tree of plain files in a temporary directory.
"""

import os

from knarr.errors import InvalidArgument, KnarrError, Unavailable
from knarr.runtime.cgroups import fs, v2_resources
from knarr.runtime.cgroups.base import Cgroup

__all__ = ["V2Cgroup"]


class V2Cgroup(Cgroup):
    """A container's cgroup in the unified (v2) hierarchy mounted at `root`."""

    layout = "v2"

    def __init__(self, path: str, root: str, container_id: str) -> None:
        self._root = root
        self._cgdir = os.path.join(root, path.lstrip("/"))
        super().__init__(path, {"unified": self._cgdir}, container_id)

    def create(self) -> None:
        """Make the directory and give it every controller its parents can pass down.

        In v2 a controller's files appear in a cgroup only when its parent
        lists the controller in cgroup.subtree_control, and so on up to the
        root; a controller that cannot be enabled (an intermediate cgroup with
        processes of its own, say) shows up later, when a limit needs it.
        """
        fs.make_dirs(self._cgdir)
        parent = self._root
        for part in os.path.relpath(self._cgdir, self._root).split(os.sep):
            self._enable_controllers(parent)
            parent = os.path.join(parent, part)

    def create_v2(self) -> str:
        self.create()
        return self._cgdir

    def _enable_controllers(self, cgdir: str) -> None:
        available = set(fs.read(cgdir, "cgroup.controllers").split())
        enabled = set(fs.read(cgdir, "cgroup.subtree_control").split())
        missing = sorted(available - enabled)
        if not missing:
            return
        try:
            fs.write(cgdir, "cgroup.subtree_control", " ".join(f"+{c}" for c in missing))
        except KnarrError:
            # One refused controller fails the whole write; enable the rest alone.
            for controller in missing:
                try:
                    fs.write(cgdir, "cgroup.subtree_control", f"+{controller}")
                except KnarrError:
                    continue  # reported when a limit needs it

    def apply(self, resources: dict) -> None:
        """Write the OCI `linux.resources` to the v2 control files."""
        if not isinstance(resources, dict):
            raise InvalidArgument("linux.resources: expected an object",
                                  field="linux.resources")
        v2_resources.apply(self._cgdir, resources)

    def freeze(self) -> None:
        """Stop every process in the cgroup; return once cgroup.events says frozen 1."""
        self._set_frozen(1)

    def thaw(self) -> None:
        """Let the cgroup's processes run again; return once cgroup.events says frozen 0."""
        self._set_frozen(0)

    def is_frozen(self) -> bool:
        """Whether the kernel reports the cgroup frozen (not merely asked to freeze)."""
        if not fs.has(self._cgdir, "cgroup.events"):
            return False
        return fs.read_flat(self._cgdir, "cgroup.events").get("frozen", 0) == 1

    def _set_frozen(self, wanted: int) -> None:
        if not fs.has(self._cgdir, "cgroup.freeze"):
            raise Unavailable(f"cgroup {self._cgdir}: set cgroup.freeze to {wanted}: "
                              "the kernel has no v2 freezer (needs 5.2)", path=self._cgdir)
        fs.write(self._cgdir, "cgroup.freeze", wanted)
        if fs.wait_until(lambda: self.is_frozen() == bool(wanted), self.freeze_timeout):
            return
        if wanted:
            fs.write(self._cgdir, "cgroup.freeze", 0)  # don't leave it half frozen
        raise Unavailable(f"cgroup {self._cgdir}: set cgroup.freeze to {wanted}: "
                          f"cgroup.events still not frozen {wanted} after "
                          f"{self.freeze_timeout:g}s", path=self._cgdir)

    def stats(self) -> dict:
        """CPU, memory, pids and I/O statistics, shaped like runc's."""
        from knarr.runtime.cgroups import v2_stats  # only stats need it

        return v2_stats.collect(self._cgdir)

    def oom_killed(self) -> bool:
        """Whether the kernel's OOM killer has killed a process in this cgroup."""
        if not fs.has(self._cgdir, "memory.events"):
            return False
        return fs.read_flat(self._cgdir, "memory.events").get("oom_kill", 0) > 0
