"""The cgroup v1 driver: one directory per hierarchy, a control file per knob.

Used for pure v1 and for hybrid hosts, where a cgroup2 tree with no
controllers is mounted beside the v1 ones (at <root>/unified): the container
gets a directory there too, so that in its own cgroup namespace every line
of /proc/self/cgroup reads "/".
"""

import os

from knarr.errors import InvalidArgument, Unavailable
from knarr.runtime.cgroups import fs, v1_resources
from knarr.runtime.cgroups.base import Cgroup
from knarr.runtime.cgroups.layout import Hierarchy

__all__ = ["V1Cgroup"]

# Where pids() looks first: a hierarchy that every runtime places processes in.
_PIDS_PREFERENCE = ("pids", "freezer", "memory", "cpu", "devices")


class V1Cgroup(Cgroup):
    """A container's cgroup on a v1 or hybrid host."""

    def __init__(self, path: str, hierarchies: list[Hierarchy], container_id: str,
                 layout: str = "v1") -> None:
        dirs = {}
        for hierarchy in hierarchies:
            cgdir = os.path.join(hierarchy.mountpoint, path.lstrip("/"))
            for name in hierarchy.names:
                dirs[name] = cgdir
        super().__init__(path, dirs, container_id)
        self.layout = layout
        self._roots = {name: h.mountpoint for h in hierarchies for name in h.names}

    def _dir(self, controller: str) -> str | None:
        return self._dirs.get(controller)

    def create(self) -> None:
        """Make the directories; fill in cpuset.cpus and cpuset.mems on the way down.

        A new v1 cpuset starts with no cpus and no memory nodes, and the kernel
        refuses to attach a process to it until both are set, so each level
        created here inherits its parent's.
        """
        cpuset = self._dir("cpuset")
        for cgdir in self._unique_dirs():
            if cgdir != cpuset:
                fs.make_dirs(cgdir)
        if cpuset:
            self._create_cpuset(self._roots["cpuset"], cpuset)

    def v1_anchors(self) -> list[tuple[str, str, str]]:
        anchors = {}
        for name, cgdir in self._dirs.items():
            if name != "unified":
                # each directory is the hierarchy's mount point joined with the path
                anchors[cgdir] = (self._roots[name], self.path.lstrip("/"), cgdir)
        return sorted(anchors.values())

    def _create_cpuset(self, root: str, cgdir: str) -> None:
        parent = root
        for part in os.path.relpath(cgdir, root).split(os.sep):
            current = os.path.join(parent, part)
            fs.make_dirs(current)
            for name in ("cpuset.cpus", "cpuset.mems"):
                if not fs.read(current, name):
                    fs.write(current, name, fs.read(parent, name))
            parent = current

    def apply(self, resources: dict) -> None:
        """Write the OCI `linux.resources` to the v1 control files."""
        if not isinstance(resources, dict):
            raise InvalidArgument("linux.resources: expected an object",
                                  field="linux.resources")
        v1_resources.apply(self._dirs, resources)

    def freeze(self) -> None:
        """Stop every process in the cgroup; return once the kernel says FROZEN."""
        self._set_freezer("FROZEN")

    def thaw(self) -> None:
        """Let the cgroup's processes run again."""
        self._set_freezer("THAWED")

    def is_frozen(self) -> bool:
        """Whether the freezer reads FROZEN (a freeze in progress does not count)."""
        cgdir = self._dir("freezer")
        if not cgdir or not fs.has(cgdir, "freezer.state"):
            return False
        return fs.read(cgdir, "freezer.state") == "FROZEN"

    def _set_freezer(self, state: str) -> None:
        cgdir = self._dir("freezer")
        if not cgdir:
            raise Unavailable(f"cgroup {self.path}: set freezer to {state}: "
                              "no freezer hierarchy mounted", path=self.path)

        # A task in an uninterruptible sleep can hold a freeze at FREEZING; writing
        # FROZEN again makes the kernel retry the tasks that were not frozen yet.
        def settled() -> bool:
            if fs.read(cgdir, "freezer.state") == state:
                return True
            fs.write(cgdir, "freezer.state", state)
            return False

        fs.write(cgdir, "freezer.state", state)
        if not fs.wait_until(settled, self.freeze_timeout):
            if state == "FROZEN":
                fs.write(cgdir, "freezer.state", "THAWED")  # don't leave it half frozen
            raise Unavailable(f"cgroup {cgdir}: set freezer.state to {state}: "
                              f"still not {state} after {self.freeze_timeout:g}s",
                              path=cgdir)

    def _pids_dir(self) -> str:
        preferred = [self._dirs[n] for n in _PIDS_PREFERENCE if n in self._dirs]
        candidates = preferred + self._unique_dirs()
        # Skip a hierarchy mounted after create(): the container has no directory there.
        return next((d for d in candidates if os.path.isdir(d)), candidates[0])

    def stats(self) -> dict:
        """CPU, memory, pids and block I/O statistics, shaped like runc's."""
        from knarr.runtime.cgroups import v1_stats  # only stats need it

        return v1_stats.collect(self._dirs)

    def oom_killed(self) -> bool:
        """Whether the kernel's OOM killer has killed a process in this cgroup."""
        cgdir = self._dir("memory")
        if not cgdir or not fs.has(cgdir, "memory.oom_control"):
            return False
        control = fs.read_flat(cgdir, "memory.oom_control")
        return control.get("oom_kill", 0) > 0 or control.get("under_oom", 0) == 1
