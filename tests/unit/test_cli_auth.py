"""Registry credentials: which registry a reference names, the config file, the header."""

import base64
import json
import os

from knarr.cli import auth


def test_registry_of():
    assert auth.registry_of("busybox") == auth.INDEX
    assert auth.registry_of("library/busybox:1") == auth.INDEX
    assert auth.registry_of("localhost/x") == "localhost"
    assert auth.registry_of("127.0.0.1:5000/a/b:v1") == "127.0.0.1:5000"
    assert auth.registry_of("ghcr.io/o/r") == "ghcr.io"


def test_saved_credentials_make_the_header(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "cfg"))
    assert auth.header_for("reg.example:5000/x") == {}
    auth.save({"auths": {"reg.example:5000": {"auth": base64.b64encode(b"u:p:w").decode()}},
               "other": "kept"})
    assert os.stat(auth.config_path()).st_mode & 0o777 == 0o600
    header = auth.header_for("reg.example:5000/x:v1")["X-Registry-Auth"]
    assert json.loads(base64.urlsafe_b64decode(header)) == \
        {"username": "u", "password": "p:w", "serveraddress": "reg.example:5000"}
    assert auth.load()["other"] == "kept"
