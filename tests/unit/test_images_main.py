"""`python -m knarr.images`: each verb is one library call, errors exit 1 with the message."""

import json
import os
import shutil

from knarr.images import ImageStore
from knarr.images.__main__ import main


def test_verbs(tmp_path, capsys):
    root = str(tmp_path)
    assert main(["--root", root, "hello-world"]) == 0
    image_id = json.loads(capsys.readouterr().out)
    assert main(["--root", root, "tag", "hello-world", "greet:v1"]) == 0
    assert main(["--root", root, "list"]) == 0
    (summary,) = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert summary["Id"] == image_id
    assert sorted(summary["RepoTags"]) == ["greet:v1", "hello-world:latest"]
    assert main(["--root", root, "check"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_error_exits_1_with_the_message(tmp_path, capsys):
    assert main(["--root", str(tmp_path), "rmi", "nope"]) == 1
    assert capsys.readouterr().err == "knarr images: image nope: not found\n"


def test_check_reports_a_corrupt_blob_and_a_broken_snapshot(tmp_path, capsys):
    """`python -m knarr.images check` reads every blob and every snapshot record."""
    root = str(tmp_path)
    assert main(["--root", root, "hello-world"]) == 0
    image_id = json.loads(capsys.readouterr().out)
    store = ImageStore(root)
    layer = store.get(image_id)["layers"][0]["digest"]
    chain = store.chain_ids(image_id)[-1]
    layer_dir = store.snapshots.path(chain)
    store.close()
    blob = os.path.join(root, "content", "blobs", "sha256", layer.split(":")[1])
    os.chmod(blob, 0o644)
    with open(blob, "r+b") as f:
        f.write(b"X")  # same size, other bytes: only the digest can tell
    os.chmod(blob, 0o444)
    shutil.rmtree(layer_dir)
    assert main(["--root", root, "check"]) == 1
    problems = json.loads(capsys.readouterr().out)
    assert any(p.startswith(f"blob {layer}: digest mismatch: content is sha256:")
               for p in problems)
    assert f"snapshot {chain}: directory {layer_dir} is missing" in problems
