"""Bad input to knarr-runtime: each mistake gives one clear error line on stderr and
exit status 1, and leaves nothing behind: no state under --root, no cgroup, no process.
"""

import json
import os
import uuid

import pytest

pytestmark = pytest.mark.privileged

CGROUP_ROOT = "/sys/fs/cgroup"


def _marker() -> str:
    """A number no other process has as an argument: how a leaked process is found."""
    return str(100000 + uuid.uuid4().int % 10**8)


def _processes_with(marker: str) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                if marker.encode() in f.read().split(b"\0"):
                    found.append(int(name))
        except OSError:
            continue
    return found


def _cgroups_of(cid: str) -> list[str]:
    dirs = (os.path.join(CGROUP_ROOT, name, "knarr", cid) for name in os.listdir(CGROUP_ROOT))
    return [d for d in dirs if os.path.exists(d)]


def _state_entries(runtime) -> list[str]:
    try:
        return sorted(os.listdir(runtime.root))
    except FileNotFoundError:
        return []


def assert_one_clear_error(result, expected: str) -> str:
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert result.stdout == b""
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("knarr-runtime: "), lines[0]
    assert "Traceback" not in lines[0] and "[Errno" not in lines[0], lines[0]
    assert expected in lines[0], (expected, lines[0])
    return lines[0]


def assert_nothing_left(runtime, cid: str, marker: str, existing=()) -> None:
    assert _state_entries(runtime) == sorted(existing)
    assert _cgroups_of(cid) == [] or cid in existing
    assert _processes_with(marker) == []


def _truncate(bundle):
    text = json.dumps(bundle.config)
    with open(os.path.join(bundle.path, "config.json"), "w") as f:
        f.write(text[: len(text) // 2])


def _no_rootfs(bundle):
    os.unlink(os.path.join(bundle.path, "rootfs"))


def _namespace(bundle):
    bundle.config["linux"]["namespaces"].append({"type": "wormhole"})


def _capability(bundle):
    bundle.config["process"]["capabilities"]["bounding"].append("CAP_TIME_TRAVEL")


def _seccomp(bundle):
    bundle.config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_EXPLODE"}]}


def _executable(bundle):
    bundle.config["process"]["args"][0] = "nope"


CASES = {
    # name: (how the bundle is broken, what the error line must say)
    "malformed-config": (_truncate, "config.json is not valid JSON"),
    "missing-rootfs": (_no_rootfs, "rootfs"),
    "unknown-namespace": (_namespace, "unknown namespace type 'wormhole'"),
    "unknown-capability": (_capability, "CAP_TIME_TRAVEL"),
    "invalid-seccomp-action": (_seccomp, "SCMP_ACT_EXPLODE"),
    "missing-executable": (_executable, 'exec: "nope": executable file not found in $PATH'),
}


@pytest.mark.parametrize("verb", ["create", "run"])
@pytest.mark.parametrize("case", list(CASES))
def test_bad_bundle(runtime, bundle, case, verb):
    breaks, expected = CASES[case]
    marker = _marker()
    bundle.args("sleep", marker)
    breaks(bundle)
    if case != "malformed-config":
        bundle.write()
    cid = runtime.new_id()
    result = runtime(verb, "--bundle", bundle.path, cid)
    line = assert_one_clear_error(result, expected)
    if case == "missing-executable":
        assert line == 'knarr-runtime: exec: "nope": executable file not found in $PATH'
    assert_nothing_left(runtime, cid, marker)


def test_duplicate_id(runtime, bundle):
    first_marker, second_marker = _marker(), _marker()
    bundle.args("sleep", first_marker).write()
    cid = runtime.new_id()
    runtime("create", "--bundle", bundle.path, cid, check=True)
    pid = json.loads(runtime("state", cid, check=True).stdout)["pid"]
    bundle.args("sleep", second_marker).write()
    for verb in ("create", "run"):
        result = runtime(verb, "--bundle", bundle.path, cid)
        assert_one_clear_error(result, f"container with id exists: {cid}")
    assert_nothing_left(runtime, cid, second_marker, existing=[cid])
    state = json.loads(runtime("state", cid, check=True).stdout)
    assert (state["status"], state["pid"]) == ("created", pid)  # the first is untouched
    assert _cgroups_of(cid)
    runtime("delete", "-f", cid, check=True)


@pytest.mark.parametrize("bad_id", ["../x", "a/b", "..", ""])
def test_invalid_container_id(runtime, bundle, bad_id):
    marker = _marker()
    bundle.args("sleep", marker).write()
    for verb in ("create", "run"):
        result = runtime(verb, "--bundle", bundle.path, bad_id)
        assert_one_clear_error(result, f"invalid container id {bad_id!r}")
    assert _state_entries(runtime) == []
    assert _processes_with(marker) == []
    if bad_id == "../x":
        assert not os.path.exists(os.path.join(os.path.dirname(runtime.root), "x"))
        assert not os.path.exists(os.path.join(CGROUP_ROOT, "memory", "x"))
