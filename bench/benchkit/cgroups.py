"""Remove the cgroups a killed runtime left behind.

runc and crun name a container's cgroup after its id when the config gives no
cgroupsPath, placing it under the caller's own cgroup in each hierarchy. A
runtime killed mid-create (a timeout, Ctrl-C) has no state to `delete -f`, but
may already have made those directories; an empty cgroup is removed by rmdir.
"""

from __future__ import annotations

import os
from pathlib import Path


def hierarchies() -> list[tuple[Path, str]]:
    """Each mounted cgroup hierarchy's mount point and this process's path in it."""
    own = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            own[name] = path
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, right = line.split(" - ", 1)
        fstype, _, options = right.split()[:3]
        if fstype == "cgroup2":
            found.append((Path(left.split()[4]), own.get("", "/")))
        elif fstype == "cgroup":
            names = [o for o in options.split(",") if o in own]
            found.append((Path(left.split()[4]), own[names[0]] if names else "/"))
    return found


def remove_named(name: str) -> list[str]:
    """rmdir every cgroup called `name` at a hierarchy's root or under our own cgroup.

    Returns the errors met; a cgroup that still holds processes stays, with an error.
    """
    errors = []
    for mount, own in hierarchies():
        for parent in {mount, mount / own.lstrip("/")}:
            target = parent / name
            if target.is_dir():
                errors += _rmdir_tree(target)
    return errors


def _rmdir_tree(top: Path) -> list[str]:
    errors = []
    for dirpath, _, _ in sorted(os.walk(top), key=lambda w: -len(w[0])):
        try:
            os.rmdir(dirpath)
        except OSError as exc:
            errors.append(f"remove cgroup {dirpath}: {exc.strerror}")
    return errors
