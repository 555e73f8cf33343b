"""Create requests merged with image configs, and Docker's checks of HostConfig."""

import pytest

from knarr.engine import merge, names, oci_config
from knarr.errors import InvalidArgument

IMAGE = {"config": {"Env": ["PATH=/bin", "A=image"], "Cmd": ["sh"], "WorkingDir": "/w",
                    "Labels": {"from": "image"}, "ExposedPorts": {"80/tcp": {}},
                    "StopSignal": "SIGQUIT"}}
CID = "ab" * 32


def _merge(request: dict) -> dict:
    return merge.merge(request, IMAGE, "sha256:" + "1" * 64, "busybox", CID, "name")


def test_image_defaults_fill_in():
    record = _merge({"Image": "busybox"})
    assert record["Path"] == "sh" and record["Args"] == []
    config = record["Config"]
    assert config["Hostname"] == CID[:12] and config["WorkingDir"] == "/w"
    assert config["Env"] == ["PATH=/bin", "A=image"] and config["StopSignal"] == "SIGQUIT"
    assert record["HostConfig"]["RestartPolicy"] == {"Name": "no", "MaximumRetryCount": 0}
    assert record["HostConfig"]["LogConfig"]["Type"] == "json-file"
    assert record["Name"] == "/name" and record["Image"].startswith("sha256:")


def test_request_overrides_env_cmd_labels():
    record = _merge({"Image": "x", "Env": ["A=mine", "B=2"], "Cmd": ["echo", "hi"],
                     "Labels": {"k": "v"}, "Hostname": "box"})
    assert record["Config"]["Env"] == ["PATH=/bin", "A=mine", "B=2"]
    assert [record["Path"], *record["Args"]] == ["echo", "hi"]
    assert record["Config"]["Labels"] == {"from": "image", "k": "v"}
    assert record["Config"]["Hostname"] == "box"


def test_entrypoint_drops_the_image_cmd():
    record = _merge({"Image": "x", "Entrypoint": ["/bin/env"]})
    assert [record["Path"], *record["Args"]] == ["/bin/env"]
    record = _merge({"Image": "x", "Entrypoint": ["/bin/env"], "Cmd": ["-i"]})
    assert [record["Path"], *record["Args"]] == ["/bin/env", "-i"]


def test_no_command_is_refused():
    with pytest.raises(InvalidArgument, match="No command specified"):
        merge.merge({"Image": "x"}, {"config": {}}, "sha256:1", "x", CID, "n")


@pytest.mark.parametrize("host,message", [
    ({"Memory": 1}, "Minimum memory limit allowed is 6MB"),
    ({"Memory": "1g"}, "json: cannot unmarshal string into Go struct field "
                       "HostConfig.HostConfig.Memory of type int64"),
    ({"Memory": 64 << 20, "MemorySwap": 32 << 20}, "Minimum memoryswap limit should be "
                                                   "larger than memory limit, see usage"),
    ({"RestartPolicy": {"Name": "always", "MaximumRetryCount": 2}}, "maximum retry count "
                                                                    "can only be used"),
    ({"RestartPolicy": {"Name": "often"}}, "invalid restart policy 'often'"),
    ({"AutoRemove": True, "RestartPolicy": {"Name": "always"}}, "AutoRemove"),
    ({"NetworkMode": "container:"}, "invalid network mode"),
    ({"NanoCpus": 1000 * 10**9}, "Range of CPUs is from 0.01 to"),
    ({"LogConfig": {"Type": "syslog"}}, "no log driver named 'syslog'"),
])
def test_bad_host_config(host, message):
    with pytest.raises(InvalidArgument) as err:
        merge.validate_host_config(host)
    assert message in str(err.value)


def test_names():
    assert names.validate_name("/web-1.a_b") == "web-1.a_b"
    with pytest.raises(InvalidArgument, match=r"Invalid container name \(-x\)"):
        names.validate_name("-x")
    name = names.random_name(lambda n: False)
    assert "_" in name
    cid = names.new_id()
    assert len(cid) == 64 and not cid[:12].isdigit()


def _oci(host: dict, caps=("CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_NET_ADMIN")) -> dict:
    record = _merge({"Image": "x", "HostConfig": host, "Tty": True})
    return oci_config.build(record, "/c", list(caps), lambda c: {"caps": list(c)})


def test_oci_config_has_dockers_defaults():
    config = _oci({"Memory": 64 << 20, "PidsLimit": 50, "NanoCpus": 1_500_000_000,
                   "Ulimits": [{"Name": "nofile", "Soft": 10, "Hard": 20}]})
    process = config["process"]
    assert process["capabilities"]["bounding"] == oci_config.DEFAULT_CAPABILITIES
    assert len(oci_config.DEFAULT_CAPABILITIES) == 14
    assert process["terminal"] and "TERM=xterm" in process["env"]
    assert f"HOSTNAME={CID[:12]}" in process["env"] and process["cwd"] == "/w"
    assert process["rlimits"] == [{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 20}]
    linux = config["linux"]
    assert linux["resources"]["memory"] == {"limit": 64 << 20}
    assert linux["resources"]["pids"] == {"limit": 50}
    assert linux["resources"]["cpu"] == {"period": 100000, "quota": 150000}
    assert linux["maskedPaths"] == oci_config.MASKED_PATHS
    assert linux["readonlyPaths"] == oci_config.READONLY_PATHS
    assert linux["seccomp"] == {"caps": oci_config.DEFAULT_CAPABILITIES}
    assert {"type": "network"} in linux["namespaces"]
    binds = {m["destination"]: m["source"] for m in config["mounts"] if m["type"] == "bind"}
    assert binds == {"/etc/resolv.conf": "/c/resolv.conf", "/etc/hostname": "/c/hostname",
                     "/etc/hosts": "/c/hosts"}
    assert config["hostname"] == CID[:12] and config["root"]["path"] == "rootfs"


def test_privileged_gets_every_host_capability_and_nothing_masked():
    config = _oci({"Privileged": True})
    assert config["process"]["capabilities"]["bounding"] == \
        ["CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_NET_ADMIN"]
    linux = config["linux"]
    assert "seccomp" not in linux and linux["maskedPaths"] == [] == linux["readonlyPaths"]
    assert linux["resources"]["devices"] == [{"allow": True, "access": "rwm"}]


def test_cap_add_drop_host_network_and_security_options():
    config = _oci({"CapAdd": ["NET_ADMIN"], "CapDrop": ["chown"], "NetworkMode": "host",
                   "SecurityOpt": ["no-new-privileges", "seccomp=unconfined"]})
    bounding = config["process"]["capabilities"]["bounding"]
    assert "CAP_NET_ADMIN" in bounding and "CAP_CHOWN" not in bounding
    assert {"type": "network"} not in config["linux"]["namespaces"]
    assert config["process"]["noNewPrivileges"] and "seccomp" not in config["linux"]
    with pytest.raises(InvalidArgument, match="invalid ulimit type"):
        _oci({"Ulimits": [{"Name": "bogus", "Soft": 1, "Hard": 1}]})
