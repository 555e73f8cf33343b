"""Push, login and authenticated pulls against distribution 2.8: anonymous, htpasswd Basic
over TLS with a test CA (knarrd given a certs.d of the test's own), and Bearer tokens from
a token server of the tests' own. Credentials go through the CLI's config.json (and a
credential helper), then X-Registry-Auth, then the daemon.
"""

import base64
import hashlib
import json
import os
import shutil
import stat
import subprocess

import pytest
from distribution_support import (
    Distribution,
    TokenServer,
    make_certs,
    make_htpasswd,
    manifest_digest,
)
from test_api_support import Daemon
from test_distribution_pull import knarr

pytestmark = pytest.mark.privileged


@pytest.fixture()
def daemon_with_certs(tmp_path):
    """A knarrd whose registry certs dir is the test's; yields (daemon, certs.d path)."""
    import tempfile

    base = tempfile.mkdtemp(prefix="knarrd-")
    certs_d = os.path.join(base, "certs.d")
    os.makedirs(certs_d)
    daemon = Daemon(base).start("--registry-certs-dir", certs_d)
    try:
        yield daemon, certs_d
    finally:
        leftovers = daemon.teardown()
    assert not leftovers, leftovers


def _config(daemon) -> dict:
    with open(os.path.join(daemon.base, "cli", "config.json")) as f:
        return json.load(f)


def test_push_then_pull_anonymous(daemon_with_certs, tmp_path):
    daemon, _ = daemon_with_certs
    with Distribution(tmp_path / "reg") as reg:
        knarr(daemon, "pull", "busybox")
        knarr(daemon, "tag", "busybox", f"{reg.addr}/team/box:v1")
        out = knarr(daemon, "push", f"{reg.addr}/team/box:v1").stdout
        digest = manifest_digest(reg.addr, "team/box", "v1")
        assert f"The push refers to repository [{reg.addr}/team/box]" in out
        assert ": Pushed" in out and f"v1: digest: {digest} size: " in out
        # a second push: every blob is there already
        out = knarr(daemon, "push", f"{reg.addr}/team/box:v1").stdout
        assert "Layer already exists" in out and ": Pushed" not in out
        # another repository of the same registry: mounted, not sent again
        knarr(daemon, "tag", "busybox", f"{reg.addr}/other/box:v2")
        out = knarr(daemon, "push", f"{reg.addr}/other/box:v2").stdout
        assert "Mounted from team/box" in out, out
        assert manifest_digest(reg.addr, "other/box", "v2") == digest
        # push by digest: the manifest put under its digest, no tag
        out = knarr(daemon, "push", f"{reg.addr}/pinned/box@{digest}").stdout
        assert f"{digest}: digest: {digest} size: " in out
        seen = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false",
                               f"docker://{reg.addr}/pinned/box@{digest}"], capture_output=True)
        assert hashlib.sha256(seen.stdout).hexdigest() == digest[7:]
        # pull it back into an empty store, by digest, and run it
        knarr(daemon, "rmi", f"{reg.addr}/team/box:v1", f"{reg.addr}/other/box:v2", "busybox")
        out = knarr(daemon, "pull", "-q", f"{reg.addr}/team/box@{digest}").stdout
        assert out == f"{reg.addr}/team/box@{digest}\n"
        run = knarr(daemon, "run", "--rm", f"{reg.addr}/team/box@{digest}", "echo", "hi")
        assert run.stdout == "hi\n"
        # every tag of a repository
        knarr(daemon, "tag", f"{reg.addr}/team/box@{digest}", f"{reg.addr}/team/box:v3")
        knarr(daemon, "push", "--all-tags", f"{reg.addr}/team/box")
        knarr(daemon, "rmi", f"{reg.addr}/team/box:v3")
        out = knarr(daemon, "pull", "--all-tags", f"{reg.addr}/team/box").stdout
        tags = {t for i in daemon.client.get("/images/json").json() for t in i["RepoTags"]}
        assert {f"{reg.addr}/team/box:v1", f"{reg.addr}/team/box:v3"} <= tags, out


def test_basic_auth_over_tls_with_a_test_ca(daemon_with_certs, tmp_path):
    daemon, certs_d = daemon_with_certs
    certs = make_certs(_mkdir(tmp_path / "certs"))
    htpasswd = make_htpasswd(tmp_path / "htpasswd")
    with Distribution(tmp_path / "reg", tls=certs, htpasswd=htpasswd) as reg:
        ref = f"{reg.addr}/team/box:v1"
        knarr(daemon, "pull", "busybox")
        knarr(daemon, "tag", "busybox", ref)
        # a CA that did not sign the registry's certificate: refused, named
        other = make_certs(_mkdir(tmp_path / "other"))
        _mkdir(os.path.join(certs_d, reg.addr))
        shutil.copy(other["ca"], os.path.join(certs_d, reg.addr, "ca.crt"))
        out = knarr(daemon, "push", ref, check=False)
        assert out.returncode == 1 and "certificate verify failed" in out.stderr, out.stderr
        shutil.copy(certs["ca"], os.path.join(certs_d, reg.addr, "ca.crt"))
        out = knarr(daemon, "push", ref, check=False)
        assert out.returncode == 1 and "unauthorized" in out.stderr.lower(), out.stderr
        bad = knarr(daemon, "login", "-u", "alice", "--password-stdin", reg.addr,
                    input="wrong\n", check=False)
        assert bad.returncode == 1 and "401" in bad.stderr, bad.stderr
        good = knarr(daemon, "login", "-u", "alice", "--password-stdin", reg.addr,
                     input="secret\n")
        assert "Login Succeeded" in good.stdout
        entry = _config(daemon)["auths"][reg.addr]
        assert base64.b64decode(entry["auth"]) == b"alice:secret"
        cfg = os.path.join(daemon.base, "cli", "config.json")
        assert stat.S_IMODE(os.stat(cfg).st_mode) == 0o600
        knarr(daemon, "push", ref)
        knarr(daemon, "rmi", ref)
        knarr(daemon, "pull", ref)
        digest = manifest_digest(reg.addr, "team/box", "v1", "--creds=alice:secret",
                                 f"--cert-dir={os.path.join(certs_d, reg.addr)}")
        assert daemon.client.get(f"/images/{ref}/json").json()["RepoDigests"] == \
            [f"{reg.addr}/team/box@{digest}"]
        out = knarr(daemon, "logout", reg.addr)
        assert out.stdout == f"Removing login credentials for {reg.addr}\n"
        assert reg.addr not in _config(daemon)["auths"]
        knarr(daemon, "rmi", ref)
        out = knarr(daemon, "pull", ref, check=False)
        assert out.returncode == 1 and "unauthorized" in out.stderr.lower()


def test_bearer_tokens_and_a_credential_helper(daemon_with_certs, tmp_path):
    daemon, _ = daemon_with_certs
    tokens = TokenServer(_mkdir(tmp_path / "tokens")).start()
    helper_dir = _mkdir(tmp_path / "bin")
    store = tmp_path / "helper-store.json"
    _write_helper(os.path.join(helper_dir, "docker-credential-knarrtest"), str(store))
    env = {"PATH": f"{helper_dir}:{os.environ['PATH']}"}
    os.makedirs(os.path.join(daemon.base, "cli"))
    with open(os.path.join(daemon.base, "cli", "config.json"), "w") as f:
        json.dump({"credsStore": "knarrtest"}, f)
    try:
        with Distribution(tmp_path / "reg", token=tokens) as reg:
            ref = f"{reg.addr}/team/box:v1"
            knarr(daemon, "pull", "busybox")
            knarr(daemon, "tag", "busybox", ref)
            out = knarr(daemon, "push", ref, env=env, check=False)
            assert out.returncode == 1 and "unauthorized" in out.stderr.lower(), out.stderr
            knarr(daemon, "login", "-u", "alice", "--password-stdin", reg.addr,
                  input="secret\n", env=env)
            assert json.loads(store.read_text())[reg.addr] == ["alice", "secret"]
            assert "auth" not in _config(daemon)["auths"].get(reg.addr, {})
            knarr(daemon, "push", ref, env=env)
            pushes = [i for i in tokens.issued if i["user"] == "alice" and
                      any("push" in a["actions"] for a in i["access"])]
            assert pushes and pushes[0]["access"][0]["name"] == "team/box"
            knarr(daemon, "tag", "busybox", f"{reg.addr}/public/box:v1")
            knarr(daemon, "push", f"{reg.addr}/public/box:v1", env=env)
            knarr(daemon, "rmi", ref, f"{reg.addr}/public/box:v1")
            knarr(daemon, "pull", ref, env=env)
            knarr(daemon, "logout", reg.addr, env=env)
            assert reg.addr not in json.loads(store.read_text())
            # anonymous: a token without a user, good for public/* only
            knarr(daemon, "pull", f"{reg.addr}/public/box:v1", env=env)
            knarr(daemon, "rmi", ref)
            out = knarr(daemon, "pull", ref, env=env, check=False)
            assert out.returncode == 1 and "unauthorized" in out.stderr.lower(), out.stderr
    finally:
        tokens.stop()


def _write_helper(path: str, store: str) -> None:
    """A credential helper speaking Docker's protocol, keeping secrets in a JSON file."""
    with open(path, "w") as f:
        f.write(f"""#!/usr/bin/env python3
import json, os, sys
path = {store!r}
data = json.load(open(path)) if os.path.exists(path) else {{}}
action, text = sys.argv[1], sys.stdin.read().strip()
if action == "store":
    doc = json.loads(text)
    data[doc["ServerURL"]] = [doc["Username"], doc["Secret"]]
elif action == "get":
    if text not in data:
        print("credentials not found in native keychain")
        sys.exit(1)
    print(json.dumps({{"ServerURL": text, "Username": data[text][0], "Secret": data[text][1]}}))
elif action == "erase":
    data.pop(text, None)
json.dump(data, open(path, "w"))
""")
    os.chmod(path, 0o755)


def _mkdir(path) -> str:
    os.makedirs(path, exist_ok=True)
    return str(path)
