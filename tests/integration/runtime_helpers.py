"""Helpers shared by the runtime test files (acceptance, conformance, validation)."""

import json
import os
import time

CGROUP_ROOT = "/sys/fs/cgroup"


def state_of(runtime, cid) -> dict:
    """The OCI state knarr-runtime reports for `cid`."""
    return json.loads(runtime("state", cid, check=True).stdout)


def wait_for(predicate, timeout=10.0, what="condition"):
    """Poll `predicate` until it returns something true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def wait_status(runtime, cid, status, timeout=10.0) -> None:
    """Wait until the container reports `status`."""
    wait_for(lambda: state_of(runtime, cid)["status"] == status, timeout,
             f"{cid} to be {status}")


def report(stdout: bytes) -> dict[str, str]:
    """key=value lines the container printed."""
    pairs = (line.split("=", 1) for line in stdout.decode().splitlines() if "=" in line)
    return {k: v for k, v in pairs}


def cgroup_dirs(cid) -> list[str]:
    """Where the runtime puts the container's cgroup in every hierarchy of this host."""
    return [os.path.join(CGROUP_ROOT, name, "knarr", cid) for name in sorted(os.listdir(CGROUP_ROOT))
            if os.path.isdir(os.path.join(CGROUP_ROOT, name))]
