"""linux.seccomp validation (field-named errors) and the default profile's shape.

`validate` also builds the filter in libseccomp without loading it, so these
tests need libseccomp.so.2 but no privilege.
"""

import copy
import errno
import platform

import pytest

from knarr.errors import InvalidArgument, Unavailable
from knarr.runtime import seccomp
from knarr.sys import seccomp as scmp

pytestmark = pytest.mark.skipif(not scmp.available(), reason="libseccomp.so.2 is not installed")


def _profile(**extra) -> dict:
    base = {"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}
    base.update(extra)
    return base


def _rule(**fields) -> dict:
    return _profile(syscalls=[dict({"names": ["getpriority"], "action": "SCMP_ACT_ERRNO"},
                                   **fields)])


def test_a_small_profile_validates():
    seccomp.validate(_profile(architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X86",
                                             "SCMP_ARCH_AARCH64"],
                              flags=["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_TSYNC",
                                     "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]))


@pytest.mark.parametrize("action", sorted(seccomp.ACTIONS))
def test_every_action_is_accepted(action):
    seccomp.validate({"defaultAction": action,
                      "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]})


@pytest.mark.parametrize("op", sorted(seccomp.OPERATORS))
def test_every_operator_is_accepted(op):
    seccomp.validate(_rule(args=[{"index": 0, "value": 1, "valueTwo": 1, "op": op}]))


@pytest.mark.parametrize("profile, field, words", [
    ({}, "linux.seccomp.defaultAction", "missing"),
    ({"defaultAction": "SCMP_ACT_DENY"}, "linux.seccomp.defaultAction", "SCMP_ACT_DENY"),
    (_profile(architectures=["SCMP_ARCH_VAX"]), "linux.seccomp.architectures[0]",
     "SCMP_ARCH_VAX"),
    (_profile(flags=["SECCOMP_FILTER_FLAG_FAST"]), "linux.seccomp.flags[0]",
     "SECCOMP_FILTER_FLAG_FAST"),
    (_profile(syscalls={}), "linux.seccomp.syscalls", "expected an array"),
    (_rule(action="SCMP_ACT_MAYBE"), "linux.seccomp.syscalls[0].action", "SCMP_ACT_MAYBE"),
    (_profile(syscalls=[{"names": ["mkdir"]}]), "linux.seccomp.syscalls[0].action",
     "missing"),
    (_profile(syscalls=[{"names": [], "action": "SCMP_ACT_KILL"}]),
     "linux.seccomp.syscalls[0].names", "non-empty"),
    (_profile(syscalls=[{"names": [7], "action": "SCMP_ACT_KILL"}]),
     "linux.seccomp.syscalls[0].names[0]", "syscall name"),
    (_rule(args=[{"index": 0, "value": 1, "op": "SCMP_CMP_SIMILAR"}]),
     "linux.seccomp.syscalls[0].args[0].op", "SCMP_CMP_SIMILAR"),
    (_rule(args=[{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]),
     "linux.seccomp.syscalls[0].args[0].index", "out of range"),
    (_rule(args=[{"index": 0, "value": -1, "op": "SCMP_CMP_EQ"}]),
     "linux.seccomp.syscalls[0].args[0].value", "out of range"),
    (_rule(args=[{"index": 0, "op": "SCMP_CMP_EQ"}]),
     "linux.seccomp.syscalls[0].args[0].value", "unsigned integer"),
    (_rule(errnoRet=70000), "linux.seccomp.syscalls[0].errnoRet", "out of range"),
    (_rule(action="SCMP_ACT_ALLOW", errnoRet=1), "linux.seccomp.syscalls[0].errnoRet",
     "does not take an errno"),
    ({"defaultAction": "SCMP_ACT_KILL", "defaultErrnoRet": 1},
     "linux.seccomp.defaultErrnoRet", "does not take an errno"),
])
def test_errors_name_the_field(profile, field, words):
    with pytest.raises(InvalidArgument) as info:
        seccomp.validate(profile)
    assert info.value.context["field"] == field
    assert str(info.value).startswith(f"config.json: {field}: ")
    assert words in str(info.value)


@pytest.mark.parametrize("profile", [
    _profile(listenerPath="/run/notify.sock"),
    _rule(action="SCMP_ACT_NOTIFY"),
    {"defaultAction": "SCMP_ACT_NOTIFY"},
    _profile(flags=["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]),
])
def test_notify_is_unavailable(profile):
    with pytest.raises(Unavailable, match="seccomp notify is not supported"):
        seccomp.validate(profile)


def test_unknown_syscall_names_are_skipped():
    seccomp.validate(_profile(syscalls=[{"names": ["no_such_call", "mkdir", "s390_runtime_instr"],
                                         "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]))


def test_a_rule_with_the_default_action_is_a_no_op():
    seccomp.validate(_profile(syscalls=[{"names": ["mkdir"], "action": "SCMP_ACT_ALLOW"}]))


def test_two_comparisons_on_one_argument_are_accepted():
    # libseccomp refuses that within one rule; the profile gets one rule per comparison.
    seccomp.validate(_rule(args=[{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                                 {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]))


def test_validate_does_not_change_the_profile():
    profile = seccomp.default_profile()
    before = copy.deepcopy(profile)
    seccomp.validate(profile)
    assert profile == before


# The default profile.

def _allowed(profile: dict) -> set[str]:
    return {name for rule in profile["syscalls"]
            if rule["action"] == "SCMP_ACT_ALLOW" and "args" not in rule
            for name in rule["names"]}


def _rules_for(profile: dict, name: str) -> list[dict]:
    return [rule for rule in profile["syscalls"] if name in rule["names"]]


def test_default_profile_validates():
    seccomp.validate(seccomp.default_profile())
    seccomp.validate(seccomp.default_profile(["CAP_SYS_ADMIN", "CAP_SYS_PTRACE"]))


def test_default_profile_denies_with_eperm_for_this_machine():
    profile = seccomp.default_profile()
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
    assert profile["defaultErrnoRet"] == errno.EPERM
    native = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64"}
    if platform.machine() in native:
        assert profile["architectures"][0] == native[platform.machine()]


def test_default_profile_allows_the_ordinary_calls():
    allowed = _allowed(seccomp.default_profile())
    for name in ("read", "write", "openat", "execve", "fork", "wait4",
                 "mmap", "exit_group", "rt_sigaction", "getcwd", "mkdir", "chown", "setuid",
                 "capset", "prctl", "chroot"):
        assert name in allowed, name


def test_default_profile_blocks_what_needs_a_capability_the_container_lacks():
    allowed = _allowed(seccomp.default_profile())
    for name in ("unshare", "setns", "mount", "umount2", "reboot", "init_module", "kexec_load",
                 "bpf", "perf_event_open", "keyctl", "add_key", "open_by_handle_at",
                 "settimeofday", "swapon", "pivot_root", "io_uring_setup", "acct", "syslog"):
        assert name not in allowed, name


def test_clone_without_sys_admin_may_not_make_namespaces():
    profile = seccomp.default_profile()
    (clone,) = _rules_for(profile, "clone")
    assert clone["args"] == [{"index": 0, "value": 0x7E020000, "valueTwo": 0,
                              "op": "SCMP_CMP_MASKED_EQ"}]
    (clone3,) = _rules_for(profile, "clone3")
    assert clone3["action"] == "SCMP_ACT_ERRNO" and clone3["errnoRet"] == errno.ENOSYS


def test_a_capability_opens_the_calls_it_governs():
    profile = seccomp.default_profile(["CAP_SYS_ADMIN", "CAP_SYS_TIME"])
    allowed = _allowed(profile)
    assert {"unshare", "mount", "setns", "clone", "clone3", "settimeofday"} <= allowed
    assert [r for r in _rules_for(profile, "clone") if "args" in r] == []
    assert "chroot" not in allowed  # CAP_SYS_CHROOT was not given


def test_personality_and_socket_are_limited_by_argument():
    profile = seccomp.default_profile()
    personas = {r["args"][0]["value"] for r in _rules_for(profile, "personality")}
    assert personas == {0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF}
    (socket,) = _rules_for(profile, "socket")
    assert socket["args"] == [{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}]


def test_default_profile_names_are_unique_and_mostly_known_here():
    (allow, *_) = seccomp.default_profile()["syscalls"]
    names = allow["names"]
    assert len(names) == len(set(names))
    known = [n for n in names if scmp.syscall_resolve_name(n) != scmp.NR_SCMP_ERROR]
    assert len(known) > 0.95 * len(names)


def test_default_profile_is_a_fresh_copy_each_time():
    first = seccomp.default_profile()
    first["syscalls"][0]["names"].append("kexec_load")
    first["syscalls"][-1].setdefault("args", []).append({})
    assert "kexec_load" not in _allowed(seccomp.default_profile())
    seccomp.validate(seccomp.default_profile())
