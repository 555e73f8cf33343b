"""The API's edges: the socket is 0660 root:knarr, and no endpoint reads or writes a host
path outside what Docker allows (a bind of / is allowed, as Docker allows it; names,
archive paths, archive entries and image archives cannot reach outside the engine's own
directories)."""

import grp
import io
import json
import os
import socket
import stat
import tarfile

import pytest
from test_api_support import _UnixConnection, knarrd_fixture  # noqa: F401

pytestmark = pytest.mark.privileged


def _raw(knarrd, method: str, path: str, body: bytes, query: str = "") -> tuple[int, bytes]:
    conn = _UnixConnection(knarrd.sock, 60)
    conn.request(method, f"/v1.41{path}{query}", body=body,
                 headers={"Content-Type": "application/x-tar"})
    resp = conn.getresponse()
    out = resp.status, resp.read()
    conn.close()
    return out


def _tar(*entries: tuple[str, str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, kind, data in entries:
            info = tarfile.TarInfo(name)
            if kind == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, data.decode()
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_the_socket_is_0660_root_knarr_and_closed_to_others(knarrd):
    st = os.stat(knarrd.sock)
    assert stat.S_IMODE(st.st_mode) == 0o660 and st.st_uid == 0
    assert st.st_gid == grp.getgrnam("knarr").gr_gid
    pid = os.fork()
    if pid == 0:  # nobody, in no knarr group: the connect must be refused
        code = 1
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            s = socket.socket(socket.AF_UNIX)
            try:
                s.connect(knarrd.sock)
            except PermissionError:
                code = 0
        finally:
            os._exit(code)
    assert os.waitpid(pid, 0)[1] == 0


def test_names_with_dot_dot_are_refused(knarrd):
    client = knarrd.client
    resp = client.post("/containers/create", {"Image": "busybox"}, name="../../x")
    assert resp.status == 400, resp.body
    cid = client.create("busybox", ["true"])
    assert client.post(f"/containers/{cid}/rename", name="../x").status == 400
    resp = client.post("/volumes/create", {"Name": "../../escape"})
    assert resp.status == 400, resp.body
    assert not os.path.exists(os.path.join(knarrd.root, "escape"))
    assert client.get("/images/get", names="../../../etc/passwd").status in (400, 404)


def test_archive_paths_and_entries_stay_inside_the_container(knarrd):
    client = knarrd.client
    marker = os.path.join(knarrd.base, "host-marker")
    with open(marker, "w") as f:
        f.write("host secret")
    cid = client.run("busybox", ["sh", "-c", f"ln -s {marker} /link; ln -s / /root-link; "
                                 "sleep 1000"])
    climb = "/.." * 12
    status, _ = _raw(knarrd, "GET", f"/containers/{cid}/archive", b"",
                     f"?path={climb}{marker}")
    assert status == 404
    for path in ("/link", f"/root-link{marker}"):
        status, body = _raw(knarrd, "GET", f"/containers/{cid}/archive", b"", f"?path={path}")
        assert b"host secret" not in body, path
    hostile = _tar((f"..{climb}{knarrd.base}/pwned-dotdot", "file", b"x"),
                   ("esc", "sym", knarrd.base.encode()), ("esc/pwned-link", "file", b"x"))
    status, body = _raw(knarrd, "PUT", f"/containers/{cid}/archive", hostile, "?path=/")
    for name in ("pwned-dotdot", "pwned-link"):
        assert not os.path.exists(os.path.join(knarrd.base, name)), (status, body)
    status, body = _raw(knarrd, "PUT", f"/containers/{cid}/archive", _tar(("f", "file", b"y")),
                        "?path=/root-link" + knarrd.base)
    assert not os.path.exists(os.path.join(knarrd.base, "f")), (status, body)
    with open(marker) as f:
        assert f.read() == "host secret"


def test_image_archives_cannot_name_host_files(knarrd):
    marker = os.path.join(knarrd.base, "host-config.json")
    with open(marker, "w") as f:
        json.dump({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers",
                                                                      "diff_ids": []}}, f)
    climb = "../" * 12
    manifest = [{"Config": climb + marker.lstrip("/"), "RepoTags": ["evil:1"],
                 "Layers": [climb + "etc/hostname"]}]
    archive = _tar(("manifest.json", "file", json.dumps(manifest).encode()),
                   (climb + knarrd.base.lstrip("/") + "/pwned-load", "file", b"x"))
    status, body = _raw(knarrd, "POST", "/images/load", archive, "?quiet=1")
    assert status >= 400 or b"error" in body.lower(), body
    assert knarrd.client.get("/images/evil:1/json").status == 404
    assert not os.path.exists(os.path.join(knarrd.base, "pwned-load"))


def test_a_bind_of_the_host_root_is_allowed_as_docker_allows_it(knarrd):
    client = knarrd.client
    cid = client.run("busybox", ["sh", "-c", "test -d /host/proc && echo seen"],
                     HostConfig={"Binds": ["/:/host:ro"]})
    assert client.post(f"/containers/{cid}/wait").json()["StatusCode"] == 0
    logs = client.get(f"/containers/{cid}/logs", stdout=1).body
    assert b"seen" in logs
