"""Validation of runtime-spec configs: each bad field is named in the error."""

import copy

import pytest

from knarr.errors import InvalidArgument
from knarr.oci import runtime_spec


def test_default_config_is_valid():
    config = runtime_spec.default_config()
    assert runtime_spec.validate_config(config) is config
    assert config["root"] == {"path": "rootfs", "readonly": True}


def test_rootless_config_has_user_namespace_and_mappings():
    config = runtime_spec.default_config(rootless=True)
    assert runtime_spec.namespaces_of(config)["user"] is None
    assert "network" not in runtime_spec.namespaces_of(config)
    runtime_spec.validate_config(config)


@pytest.mark.parametrize("mutate, field", [
    (lambda c: c.pop("ociVersion"), "ociVersion"),
    (lambda c: c.pop("root"), "root"),
    (lambda c: c["root"].update(path=5), "root.path"),
    (lambda c: c["process"].update(cwd="relative"), "process.cwd"),
    (lambda c: c["process"].update(args="sh"), "process.args"),
    (lambda c: c["process"]["user"].update(uid="0"), "process.user.uid"),
    (lambda c: c["linux"]["namespaces"].append({"type": "bogus"}), "linux.namespaces[6].type"),
    (lambda c: c["linux"]["namespaces"].append({"type": "pid"}), "linux.namespaces[6].type"),
    (lambda c: c["mounts"].append({"type": "tmpfs"}), "mounts[7].destination"),
    (lambda c: c["process"]["rlimits"].append({"type": "RLIMIT_CORE"}),
     "process.rlimits[1].hard"),
])
def test_bad_fields_are_named(mutate, field):
    config = copy.deepcopy(runtime_spec.default_config())
    mutate(config)
    with pytest.raises(InvalidArgument) as info:
        runtime_spec.validate_config(config)
    assert str(info.value).startswith(f"config.json: {field}:")


def test_top_level_must_be_an_object():
    with pytest.raises(InvalidArgument, match="expected object, got list"):
        runtime_spec.validate_config([])
