"""Capability names to masks, and the checks made before anything is applied."""

import pytest

from knarr.errors import InvalidArgument
from knarr.runtime import capabilities


def test_table_covers_every_capability_up_to_checkpoint_restore():
    numbers = sorted(capabilities.CAPABILITIES.values())
    assert numbers == list(range(41))
    assert capabilities.CAPABILITIES["CAP_CHOWN"] == 0
    assert capabilities.CAPABILITIES["CAP_SYS_ADMIN"] == 21
    assert capabilities.CAPABILITIES["CAP_SYS_RESOURCE"] == 24
    assert capabilities.CAPABILITIES["CAP_CHECKPOINT_RESTORE"] == 40


def test_mask_sets_one_bit_per_name():
    got = capabilities.mask(["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"], "f",
                            kernel_last=40)
    assert got == (1 << 0) | (1 << 5) | (1 << 10)
    assert capabilities.mask([], "f", kernel_last=40) == 0


def test_mask_of_a_name_twice_is_the_same_bit():
    assert capabilities.mask(["CAP_KILL", "CAP_KILL"], "f", kernel_last=40) == 1 << 5


def test_unknown_capability_names_the_field_and_the_capability():
    with pytest.raises(InvalidArgument) as info:
        capabilities.mask(["CAP_KILL", "CAP_FLY"], "process.capabilities.bounding")
    message = str(info.value)
    assert "process.capabilities.bounding" in message
    assert "'CAP_FLY'" in message
    assert info.value.context["field"] == "process.capabilities.bounding"


@pytest.mark.parametrize("name", ["kill", "KILL", "CAP_kill", 5, None])
def test_names_are_exact(name):
    with pytest.raises(InvalidArgument, match="unknown capability"):
        capabilities.mask([name], "process.capabilities.effective")


def test_a_set_that_is_not_a_list_is_refused():
    with pytest.raises(InvalidArgument, match="process.capabilities.ambient: expected array"):
        capabilities.mask("CAP_KILL", "process.capabilities.ambient")


def test_capability_the_kernel_does_not_know_is_skipped_with_a_warning(capsys):
    got = capabilities.mask(["CAP_KILL", "CAP_BPF", "CAP_CHECKPOINT_RESTORE"],
                            "process.capabilities.permitted", kernel_last=38)
    assert got == 1 << 5
    err = capsys.readouterr().err
    assert "CAP_BPF" in err and "CAP_CHECKPOINT_RESTORE" in err
    assert "process.capabilities.permitted" in err


def test_masks_gives_every_set_and_zero_for_absent_ones():
    got = capabilities.masks({"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"]})
    assert got == {"bounding": 32, "effective": 32, "permitted": 0, "inheritable": 0,
                   "ambient": 0}
    assert capabilities.masks(None) == dict.fromkeys(capabilities.SETS, 0)


def test_validate_accepts_a_consistent_config():
    caps = {s: ["CAP_KILL", "CAP_CHOWN"] for s in capabilities.SETS}
    assert capabilities.validate(caps)["ambient"] == (1 << 5) | 1


def test_effective_must_be_permitted():
    with pytest.raises(InvalidArgument) as info:
        capabilities.validate({"effective": ["CAP_KILL", "CAP_CHOWN"],
                               "permitted": ["CAP_CHOWN"]})
    assert "process.capabilities.effective" in str(info.value)
    assert "CAP_KILL" in str(info.value) and "permitted" in str(info.value)


def test_ambient_not_permitted_and_inheritable_is_left_out():
    # `runc spec` (and knarr's default config) list ambient caps with no inheritable
    # set; the kernel would refuse to raise them, so they are dropped, as runc does.
    got = capabilities.validate({"permitted": ["CAP_KILL", "CAP_CHOWN"],
                                 "inheritable": ["CAP_CHOWN"],
                                 "ambient": ["CAP_KILL", "CAP_CHOWN"]})
    assert got["ambient"] == 1 << 0


def test_unknown_name_in_any_set_is_found_by_validate():
    with pytest.raises(InvalidArgument, match="process.capabilities.inheritable"):
        capabilities.validate({"inheritable": ["CAP_NOPE"]})


def test_names_of_is_the_inverse_of_mask():
    names = ["CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_CHECKPOINT_RESTORE"]
    assert capabilities.names_of(capabilities.mask(names, "f", kernel_last=40)) == names


def test_host_capabilities_match_the_bounding_set_in_proc():
    with open("/proc/self/status") as f:
        line = next(x for x in f if x.startswith("CapBnd:"))
    bounding = int(line.split()[1], 16)
    assert capabilities.host_capabilities() == capabilities.names_of(bounding)


def test_the_default_configs_capabilities_validate():
    from knarr.oci.runtime_spec import default_config

    caps = default_config()["process"]["capabilities"]
    got = capabilities.validate(caps)
    assert got["bounding"] == capabilities.mask(caps["bounding"], "f")


def _in_child(work) -> str:
    """Run `work()` in a forked child (capability changes stay there); its result."""
    import os

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(w, str(work()).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        out = f.read()
    os.waitpid(pid, 0)
    return out


@pytest.mark.parametrize("proc", [True, False])
def test_drop_bounding_keeps_exactly_what_it_is_told(monkeypatch, proc):
    # read from /proc/self/status in one go, or cap by cap when there is no /proc
    if not proc:
        monkeypatch.setattr(capabilities, "_bounding_set", lambda: None)
    before = capabilities.mask(capabilities.host_capabilities(), "f")
    chown = 1 << capabilities.CAPABILITIES["CAP_CHOWN"]
    if not before & chown or not capabilities.ksys.capget()[0] & (1 << 8):  # CAP_SETPCAP
        pytest.fail("needs CAP_CHOWN in the bounding set and CAP_SETPCAP (run as root)")
    keep = before & ~chown

    def drop():
        capabilities.drop_bounding(keep)
        capabilities.drop_bounding(keep)  # again: nothing left to drop, nothing fails
        return capabilities.mask(capabilities.host_capabilities(), "f")

    assert int(_in_child(drop)) == keep
    assert capabilities._bounding_set() in (before, None)
