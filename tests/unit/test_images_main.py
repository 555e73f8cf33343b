"""`python -m knarr.images`: each verb is one library call, errors exit 1 with the message."""

import json

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
