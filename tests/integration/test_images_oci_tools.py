"""Other OCI tools read knarr's OCI archives: skopeo inspects and copies them, umoci unpacks.

Skipped, with the reason, when skopeo or umoci is not installed (Debian
packages skopeo and umoci).
"""

import json
import os
import shutil
import subprocess
import tarfile

import pytest

from knarr.images import ImageStore, busybox, load, save

SKOPEO, UMOCI = shutil.which("skopeo"), shutil.which("umoci")
needs_skopeo = pytest.mark.skipif(SKOPEO is None, reason="skopeo is not installed")
needs_umoci = pytest.mark.skipif(UMOCI is None, reason="umoci is not installed")
pytestmark = pytest.mark.skipif(not os.path.exists("/bin/busybox"),
                                reason="needs busybox-static (/bin/busybox)")


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """knarr's busybox image saved as an OCI archive; (path, image id, store root)."""
    tmp = tmp_path_factory.mktemp("oci")
    store = ImageStore(str(tmp / "root"))
    image_id = busybox(store)
    path = tmp / "busybox-oci.tar"
    with open(path, "wb") as f:
        save(store, ["busybox:latest"], f, format="oci")
    inspect = store.inspect(image_id)
    store.close()
    return path, image_id, inspect


@needs_skopeo
def test_skopeo_inspects_the_oci_archive(archive):
    path, image_id, inspect = archive
    out = json.loads(subprocess.run([SKOPEO, "inspect", f"oci-archive:{path}:latest"],
                                    capture_output=True, check=True).stdout)
    assert out["Architecture"] == inspect["Architecture"] and out["Os"] == "linux"
    config = json.loads(subprocess.run([SKOPEO, "inspect", "--config",
                                        f"oci-archive:{path}:latest"],
                                       capture_output=True, check=True).stdout)
    assert config["rootfs"]["diff_ids"] == inspect["RootFS"]["Layers"]


@needs_skopeo
def test_skopeo_copy_to_docker_archive_loads_back_with_the_same_id(archive, tmp_path):
    path, image_id, _ = archive
    target = tmp_path / "docker.tar"
    subprocess.run([SKOPEO, "copy", "--quiet", f"oci-archive:{path}:latest",
                    f"docker-archive:{target}:busybox:copied"], capture_output=True, check=True)
    store = ImageStore(str(tmp_path / "root"))
    with open(target, "rb") as f:
        (result,) = load(store, f)
    assert result["Id"] == image_id
    assert store.resolve("busybox:copied") == image_id
    store.close()


@needs_umoci
def test_umoci_unpacks_the_oci_archive(archive, tmp_path):
    path, _, _ = archive
    layout = tmp_path / "layout"
    with tarfile.open(path) as t:
        t.extractall(layout, filter="tar")
    bundle = tmp_path / "bundle"
    subprocess.run([UMOCI, "unpack", "--image", f"{layout}:latest", str(bundle)],
                   capture_output=True, check=True)
    rootfs = bundle / "rootfs"
    assert os.readlink(rootfs / "bin/sh") == "/bin/busybox"
    assert os.path.getsize(rootfs / "bin/busybox") == os.path.getsize("/bin/busybox")
    config = json.loads((bundle / "config.json").read_text())
    assert config["process"]["args"] == ["sh"]
