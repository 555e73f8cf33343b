"""Interop with a real dockerd through distribution 2.8: an image knarr pushes, docker pulls
and runs; an image docker makes and pushes, knarr pulls and runs; both sides agree on the
manifest digest and the layers. The dockerd is the test's own (own socket, data root and
exec root, no bridge, no iptables, the registry as an insecure one) and is stopped after.
"""

import io
import json
import pathlib
import shutil
import subprocess
import tarfile
import tempfile

import pytest
from distribution_support import Distribution, manifest_digest
from peers import unmount_under
from test_api_support import knarrd_fixture  # noqa: F401
from test_distribution_pull import knarr
from test_registry_clients import Dockerd, _hugetlb_off_cgroup2

pytestmark = pytest.mark.privileged


def _rootfs_tar() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        tar.add("/bin/busybox", "bin/busybox")
        for applet in ("sh", "echo", "cat"):
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
        note = b"made by docker\n"
        info = tarfile.TarInfo("etc/made-by")
        info.size = len(note)
        tar.addfile(info, io.BytesIO(note))
    return out.getvalue()


def test_knarr_and_docker_exchange_images(knarrd, tmp_path):
    # a short state path: containerd's sockets live under it (104-byte limit)
    state = pathlib.Path(tempfile.mkdtemp(prefix="kdd-"))
    try:
        with Distribution(tmp_path / "reg") as reg:
            _hugetlb_off_cgroup2()
            docker = Dockerd(state, [reg.addr])
            try:
                _exchange(knarrd, reg, docker)
            finally:
                docker.stop()
    finally:
        left = unmount_under(str(state))
        shutil.rmtree(state, ignore_errors=True)
    assert not left, f"dockerd left mounts: {left}"


def _exchange(knarrd, reg, docker) -> None:
    d = docker.docker
    # knarr pushes, docker pulls and runs
    mine = f"{reg.addr}/knarr/box:v1"
    knarr(knarrd, "pull", "busybox")
    knarr(knarrd, "tag", "busybox", mine)
    knarr(knarrd, "push", mine)
    digest = manifest_digest(reg.addr, "knarr/box", "v1")
    assert digest in d("pull", mine).stdout
    seen = json.loads(d("image", "inspect", mine).stdout)[0]
    assert seen["RepoDigests"] == [f"{reg.addr}/knarr/box@{digest}"]
    ours = knarrd.client.get(f"/images/{mine}/json").json()
    assert seen["RootFS"]["Layers"] == ours["RootFS"]["Layers"] and seen["Id"] == ours["Id"]
    out = d("run", "--rm", "--network", "none", mine, "echo", "hello from knarr's push")
    assert out.stdout == "hello from knarr's push\n"
    # docker makes an image, pushes it; knarr pulls and runs it
    theirs = f"{reg.addr}/docker/box:v1"
    made = subprocess.run([*_docker_argv(docker), "import", "--change", 'CMD ["/bin/sh"]', "-",
                           theirs], input=_rootfs_tar(), capture_output=True, timeout=120)
    assert made.returncode == 0, made.stderr
    pushed = d("push", theirs).stdout
    digest = manifest_digest(reg.addr, "docker/box", "v1")
    assert f"digest: {digest}" in pushed
    knarr(knarrd, "pull", theirs)
    got = knarrd.client.get(f"/images/{theirs}/json").json()
    assert got["RepoDigests"] == [f"{reg.addr}/docker/box@{digest}"]
    assert got["Manifest"]["Digest"] == digest
    dockers = json.loads(d("image", "inspect", theirs).stdout)[0]
    assert got["Id"] == dockers["Id"] and got["RootFS"]["Layers"] == dockers["RootFS"]["Layers"]
    run = knarr(knarrd, "run", "--rm", theirs, "cat", "/etc/made-by")
    assert run.stdout == "made by docker\n"


def _docker_argv(docker) -> list[str]:
    from test_registry_clients import DOCKER

    return [DOCKER, "--config", str(docker.state / "cli"), "-H", docker.sock]

