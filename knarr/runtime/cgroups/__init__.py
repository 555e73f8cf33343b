"""Linux control groups for the OCI runtime: placement, limits, freezer, statistics.

`open_cgroup` looks at how cgroups are mounted and returns the driver that
fits: `V2Cgroup` on a unified (v2) host, `V1Cgroup` on a v1 or hybrid one.
Both offer the same methods; the runtime never needs to know which it has.
"""

import os

from knarr.runtime.cgroups.base import Cgroup
from knarr.runtime.cgroups.layout import current_layout, find_hierarchies, resolve_path

__all__ = [
    "Cgroup",
    "V1Cgroup",
    "V2Cgroup",
    "current_layout",
    "open_cgroup",
    "resolve_path",
]


def open_cgroup(cgroups_path: str | None, container_id: str,
                root: str = "/sys/fs/cgroup") -> Cgroup:
    """The cgroup for a container, at `cgroups_path` (the config's linux.cgroupsPath).

    Nothing is created or written until `create` and `apply` are called.
    """
    path = resolve_path(cgroups_path, container_id)
    if os.path.exists(os.path.join(root, "cgroup.controllers")):
        from knarr.runtime.cgroups.v2 import V2Cgroup

        return V2Cgroup(path, root, container_id)
    from knarr.runtime.cgroups.v1 import V1Cgroup

    hierarchies = find_hierarchies(root)
    layout = "hybrid" if any(h.version == 2 for h in hierarchies) else "v1"
    return V1Cgroup(path, hierarchies, container_id, layout)


def __getattr__(name: str):
    # The drivers load on first use: a host needs one of them, and knarr-runtime's
    # start-up pays for every module it imports.
    if name == "V1Cgroup":
        from knarr.runtime.cgroups.v1 import V1Cgroup

        return V1Cgroup
    if name == "V2Cgroup":
        from knarr.runtime.cgroups.v2 import V2Cgroup

        return V2Cgroup
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
