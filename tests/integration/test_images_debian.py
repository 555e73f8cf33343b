"""The Debian base image: debootstrap from this machine's apt mirror, imported, then run.

It downloads about 40 MB from the mirror apt uses and takes about a minute; the
Makefile installs debootstrap.
"""

import os
import shutil
import subprocess

import pytest

from knarr.images import ImageStore, debian

pytestmark = [
    pytest.mark.privileged,
    pytest.mark.skipif(shutil.which("debootstrap") is None,
                       reason="debootstrap is not installed (package debootstrap)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="debootstrap needs root"),
]


def test_debian_image_is_built_and_runs(tmp_path):
    store = ImageStore(str(tmp_path / "root"))
    image_id = debian(store, "bookworm")
    assert store.resolve("debian:bookworm") == image_id
    assert store.inspect(image_id)["Config"]["Cmd"] == ["bash"]
    assert store.check() == []
    fs = store.snapshots.path(store.chain_ids(image_id)[-1])
    out = subprocess.run(["chroot", fs, "/bin/sh", "-c", "cat /etc/debian_version"],
                         capture_output=True, check=True).stdout.decode()
    assert out.startswith("12.")
    store.close()
