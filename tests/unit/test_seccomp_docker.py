"""Docker-format seccomp profiles rendered for one container (includes/excludes, archMap)."""

import os

import pytest

from knarr.errors import InvalidArgument
from knarr.runtime.seccomp_docker import from_docker

NATIVE = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64"}[os.uname().machine]
GOARCH = {"x86_64": "amd64", "aarch64": "arm64"}[os.uname().machine]


def _profile(*rules: dict) -> dict:
    return {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
            "archMap": [{"architecture": NATIVE, "subArchitectures": ["SUB"]},
                        {"architecture": "SCMP_ARCH_OTHER", "subArchitectures": ["X"]}],
            "syscalls": list(rules)}


def test_arch_map_picks_the_native_architecture_and_its_subarchitectures():
    out = from_docker(_profile(), [])
    assert out == {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
                   "architectures": [NATIVE, "SUB"], "syscalls": []}


def test_rules_follow_capabilities_arches_and_kernel():
    rules = [
        {"names": ["a"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["b"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["c"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["d"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": [GOARCH]}},
        {"names": ["e"], "action": "SCMP_ACT_ALLOW", "excludes": {"arches": [GOARCH]}},
        {"names": ["f"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "2.6"}},
        {"names": ["g"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "99.0"}},
        {"name": "h", "action": "SCMP_ACT_ERRNO", "errnoRet": 38,
         "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}], "comment": "dropped"},
    ]
    plain = [r["names"] for r in from_docker(_profile(*rules), [])["syscalls"]]
    assert plain == [["a"], ["c"], ["d"], ["f"], ["h"]]
    admin = [r["names"] for r in from_docker(_profile(*rules), ["CAP_SYS_ADMIN"])["syscalls"]]
    assert admin == [["a"], ["b"], ["d"], ["f"], ["h"]]
    assert from_docker(_profile(*rules), [])["syscalls"][-1] == {
        "names": ["h"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38,
        "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]}


@pytest.mark.parametrize("profile", [
    [], "x", {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["A"], "archMap": [{}]},
    {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": {}},
    {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [1]},
    {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["a"], "includes":
                                                      {"minKernel": "x.y"}}]},
])
def test_malformed_profiles_are_invalid_arguments(profile):
    with pytest.raises(InvalidArgument):
        from_docker(profile, [])
