"""Volumes, binds, tmpfs and cp against a private knarrd, with real containers."""

import io
import os
import secrets
import subprocess
import tarfile
import time

import pytest
from test_api_support import REPO, demux, knarrd_fixture, wait_for  # noqa: F401

pytestmark = pytest.mark.privileged
KNARR = os.path.join(REPO, ".venv", "bin", "knarr")


def _logs(client, cid: str) -> bytes:
    return demux(client.get(f"/containers/{cid}/logs", stdout=1, stderr=1).body)[1]


def _run_wait(client, cmd: list[str], **config) -> tuple[str, int, bytes]:
    cid = client.run("busybox", cmd, **config)
    code = client.post(f"/containers/{cid}/wait").json()["StatusCode"]
    return cid, code, _logs(client, cid)


def _knarr(knarrd, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([KNARR, "-H", f"unix://{knarrd.sock}", *args], input=input,
                          capture_output=True, timeout=60)


def test_named_volume_outlives_its_container_and_refuses_rm_while_used(knarrd):
    client = knarrd.client
    resp = client.post("/volumes/create", {"Name": "keep", "Labels": {"a": "b"}})
    assert resp.status == 201 and resp.json()["Name"] == "keep"
    assert resp.json()["Labels"] == {"a": "b"} and resp.json()["Driver"] == "local"
    cid, code, _ = _run_wait(client, ["sh", "-c", "echo kept > /v/f"],
                             HostConfig={"Binds": ["keep:/v"]})
    assert code == 0
    assert client.delete(f"/containers/{cid}", v=1).status == 204
    assert client.get("/volumes/keep").status == 200  # rm -v keeps named volumes
    cid, code, out = _run_wait(client, ["cat", "/v/f"], HostConfig={"Binds": ["keep:/v"]})
    assert (code, out) == (0, b"kept\n")
    mounts = client.inspect(cid)["Mounts"]
    assert mounts == [{"Type": "volume", "Name": "keep", "Source": mounts[0]["Source"],
                       "Destination": "/v", "Driver": "local", "Mode": "z", "RW": True,
                       "Propagation": ""}]
    busy = client.delete("/volumes/keep")
    assert busy.status == 409 and busy.message == f"remove keep: volume is in use - [{cid}]"
    assert client.delete("/volumes/keep", force=1).status == 409
    listed = client.get("/volumes", filters='{"dangling": ["true"]}').json()
    assert listed["Volumes"] == []
    assert [v["Name"] for v in client.get("/volumes", filters='{"label": ["a=b"]}')
            .json()["Volumes"]] == ["keep"]
    assert client.delete(f"/containers/{cid}").status == 204
    assert [v["Name"] for v in client.get("/volumes", filters='{"dangling": ["1"]}')
            .json()["Volumes"]] == ["keep"]
    assert client.delete("/volumes/keep").status == 204
    gone = client.get("/volumes/keep")
    assert gone.status == 404 and gone.message == "get keep: no such volume"


def test_rm_v_removes_anonymous_volumes_only_and_copy_up_fills_them(knarrd):
    client = knarrd.client
    cid = client.create("busybox", ["true"], Volumes={"/etc": {}},
                        HostConfig={"Binds": ["named:/named", "/anon"],
                                    "Mounts": [{"Type": "volume", "Source": "empty",
                                                "Target": "/usr", "VolumeOptions":
                                                {"NoCopy": True}}]})
    mounts = {m["Destination"]: m for m in client.inspect(cid)["Mounts"]}
    assert set(mounts) == {"/etc", "/named", "/anon", "/usr"}
    anon = mounts["/etc"]["Name"]
    assert len(anon) == 64 and mounts["/etc"]["Mode"] == ""
    # copy-up: the image's /etc is in the new anonymous volume; nocopy left /usr empty
    assert sorted(os.listdir(mounts["/etc"]["Source"])) == ["group", "passwd"]
    assert os.listdir(mounts["/usr"]["Source"]) == []
    labels = client.get(f"/volumes/{anon}").json()["Labels"]
    assert labels == {"com.docker.volume.anonymous": ""}
    assert client.delete(f"/containers/{cid}", v=1).status == 204
    names = {v["Name"] for v in client.get("/volumes").json()["Volumes"]}
    assert names == {"named", "empty"}
    prune = client.post("/volumes/prune").json()  # API 1.41: every unused volume
    assert sorted(prune["VolumesDeleted"]) == ["empty", "named"]


def test_binds_read_only_missing_sources_and_volumes_from(knarrd, tmp_path):
    client = knarrd.client
    missing = tmp_path / "made" / "by-v"
    _, code, out = _run_wait(client, ["sh", "-c", "touch /ro/x || echo refused; "
                                      "echo in > /made/f"],
                             HostConfig={"Binds": [f"{tmp_path}:/ro:ro", f"{missing}:/made"]})
    assert code == 0 and b"refused" in out and (missing / "f").read_text() == "in\n"
    assert not (tmp_path / "x").exists()
    bad = client.post("/containers/create", {"Image": "busybox", "HostConfig": {"Mounts": [
        {"Type": "bind", "Source": str(tmp_path / "nope"), "Target": "/x"}]}})
    assert bad.status == 400 and bad.message == ('invalid mount config for type "bind": bind '
                                                 f'source path does not exist: {tmp_path}/nope')
    dup = client.post("/containers/create", {"Image": "busybox", "HostConfig": {
        "Binds": ["a1:/x", "a2:/x"]}})
    assert dup.status == 400 and dup.message == "Duplicate mount point: /x"
    source = client.create("busybox", ["true"], name="src",
                           HostConfig={"Binds": ["shared:/shared", f"{tmp_path}:/host"]})
    _, code, out = _run_wait(client, ["sh", "-c", "echo hi > /shared/f; cat /shared/f; "
                                      "touch /host/y || echo ro"],
                             HostConfig={"VolumesFrom": ["src:ro"], "Binds": ["other:/shared"]})
    assert (code, out) == (0, b"hi\nro\n")  # /shared overridden by its own bind
    _, code, out = _run_wait(client, ["ls", "/shared", "/host"],
                             HostConfig={"VolumesFrom": ["src"]})
    assert code == 0 and b"made" in out
    assert client.delete(f"/containers/{source}").status == 204


def test_tmpfs_is_empty_at_each_start_and_sized_as_asked(knarrd):
    client = knarrd.client
    script = ("echo entries $(ls -A /t /m | grep -vc :); touch /t/a /m/b; "
              "stat -f -c '%b %S' /t /m; stat -c '%a' /m; "
              "grep -E ' /(t|m) ' /proc/mounts | cut -d' ' -f4")
    cid = client.run("busybox", ["sh", "-c", script], HostConfig={
        "Tmpfs": {"/t": "size=8m"},
        "Mounts": [{"Type": "tmpfs", "Target": "/m",
                    "TmpfsOptions": {"SizeBytes": 4 << 20, "Mode": 0o1770}}]})
    for start in range(2):
        assert client.post(f"/containers/{cid}/wait").json()["StatusCode"] == 0
        lines = _logs(client, cid).decode().splitlines()
        assert len(lines) == 6 * (start + 1), lines
        run = lines[-6:]
        assert run[0] == "entries 1"  # only the blank separator line: both empty
        sizes = [int(a) * int(b) for a, b in (line.split() for line in run[1:3])]
        assert sizes == [8 << 20, 4 << 20]
        assert run[3] == "1770"
        assert all("nosuid" in opts and "nodev" in opts for opts in run[4:])
        if start == 0:
            assert client.post(f"/containers/{cid}/start").status == 204
            wait_for(lambda: client.inspect(cid)["State"]["StartedAt"] and
                     len(_logs(client, cid).splitlines()) == 12, timeout=10)


def test_device_volumes_tmpfs_and_bind_options(knarrd, tmp_path):
    client = knarrd.client
    resp = client.post("/volumes/create", {"Name": "ram", "DriverOpts": {
        "type": "tmpfs", "device": "tmpfs", "o": "size=2m"}})
    assert resp.status == 201 and resp.json()["Options"]["o"] == "size=2m"
    (tmp_path / "seen").write_text("host side\n")
    client.post("/volumes/create", {"Name": "hostdir", "DriverOpts": {
        "type": "none", "o": "bind", "device": str(tmp_path)}})
    _, code, out = _run_wait(client, ["sh", "-c", "stat -f -c '%b %S' /r; cat /h/seen"],
                             HostConfig={"Binds": ["ram:/r", "hostdir:/h"]})
    size, block = out.split(b"\n")[0].split()
    assert code == 0 and int(size) * int(block) == 2 << 20 and b"host side" in out
    bad = client.post("/volumes/create", {"Name": "bad", "DriverOpts": {"colour": "red"}})
    assert bad.status == 400 and bad.message == 'invalid option: "colour"'
    assert client.delete("/containers/" + client.get("/containers/json", all=1)
                         .json()[0]["Id"]).status == 204
    for name in ("ram", "hostdir"):
        assert client.delete(f"/volumes/{name}").status == 204
    assert (tmp_path / "seen").exists()  # removing a bind volume leaves its device alone


def _tree(top) -> dict:
    out = {}
    for dirpath, dirs, files in os.walk(top):
        for name in dirs + files:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            rel = os.path.relpath(path, top)
            out[rel] = (st.st_mode, st.st_uid, st.st_gid, int(st.st_mtime),
                        os.readlink(path) if os.path.islink(path) else
                        open(path, "rb").read() if os.path.isfile(path) else None)
    return out


def _sample(top) -> None:
    os.makedirs(top / "d" / "e")
    (top / "d" / "f").write_bytes(os.urandom(300_000))
    (top / "s").write_text("small")
    os.symlink("d/f", top / "link")
    os.chown(top / "s", 1234, 4321)
    os.chmod(top / "s", 0o4751)
    os.chmod(top / "d" / "e", 0o700)
    for path in (top / "s", top / "d" / "f", top / "d" / "e", top / "d"):
        os.utime(path, (1_000_000_000, 1_000_000_000), follow_symlinks=False)


def test_cp_both_ways_keeps_modes_owners_times_and_follows_volumes(knarrd, tmp_path):
    src = tmp_path / "src"
    _sample(src)
    client = knarrd.client
    cid = client.run("busybox", ["sleep", "1000"], HostConfig={
        "Binds": ["cpvol:/vol"], "Tmpfs": {"/tmp": ""}})
    for where in ("/vol", "/tmp", "/"):
        done = _knarr(knarrd, "cp", "-a", str(src), f"{cid}:{where}")
        assert done.returncode == 0, done.stderr
        back = tmp_path / f"back{where.replace('/', '_')}"
        done = _knarr(knarrd, "cp", "-a", f"{cid}:{where.rstrip('/')}/src", str(back))
        assert done.returncode == 0, done.stderr
        assert _tree(back) == _tree(src)
    listing = client.post(f"/containers/{cid}/exec", {"Cmd": ["ls", "-ln", "/vol/src/s"],
                                                      "AttachStdout": True}).json()["Id"]
    sock_out = client.post(f"/exec/{listing}/start", {"Detach": False}).body
    assert b"-rwsr-x--x" in sock_out and b"1234" in sock_out and b"4321" in sock_out
    volume = client.get("/volumes/cpvol").json()["Mountpoint"]
    assert _tree(os.path.join(volume, "src")) == _tree(src)  # it went into the volume
    # without -a the files belong to the container's root
    assert _knarr(knarrd, "cp", str(src / "s"), f"{cid}:/vol/plain").returncode == 0
    assert os.stat(os.path.join(volume, "plain")).st_uid == 0
    # stopped: the volume is still what the path names
    client.post(f"/containers/{cid}/kill")
    wait_for(lambda: not client.inspect(cid)["State"]["Running"])
    assert _knarr(knarrd, "cp", str(src / "s"), f"{cid}:/vol/while-stopped").returncode == 0
    assert os.path.exists(os.path.join(volume, "while-stopped"))
    done = _knarr(knarrd, "cp", f"{cid}:/vol/src/d/f", str(tmp_path / "f-stopped"))
    assert done.returncode == 0 and (tmp_path / "f-stopped").read_bytes() == \
        (src / "d" / "f").read_bytes()
    done = _knarr(knarrd, "cp", "-L", f"{cid}:/src/link", str(tmp_path / "followed"))
    assert done.returncode == 0 and not os.path.islink(tmp_path / "followed")
    missing = _knarr(knarrd, "cp", f"{cid}:/nope", str(tmp_path / "x"))
    assert (missing.returncode, missing.stderr) == (
        1, f"Error: No such container:path: {cid}:/nope\n".encode())  # Docker's words


def _tar_of(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as archive:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _put(client, cid: str, path: str, body: bytes):
    from test_api_support import _UnixConnection

    conn = _UnixConnection(client.path, 30)
    conn.request("PUT", client.url(f"/containers/{cid}/archive", {"path": path}), body=body,
                 headers={"Content-Type": "application/x-tar"})
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp.status


def test_cp_never_leaves_the_container_root_through_symlinks(knarrd, tmp_path):
    """CVE-2019-14271 / CVE-2018-15664: links to / and .., and a path swapped for a link
    to / in a tight loop while copies run, never reach the host."""
    client = knarrd.client
    token = secrets.token_hex(6)
    secret = f"/tmp/knarr-host-secret-{token}"
    with open(secret, "w") as f:
        f.write("host only\n")
    race = ("mkdir -p /w /tmp; echo inside > /tmp/knarr-host-secret-" + token + "; "
            "ln -s / /up; ln -s ../../.. /w/dots; "
            "while true; do rm -rf /w/x; mkdir -p /w/x/tmp; "
            "echo dir > /w/x/tmp/knarr-host-secret-" + token + "; "
            "rm -rf /w/x; ln -s / /w/x; done")
    cid = client.run("busybox", ["sh", "-c", race])
    try:
        assert wait_for(lambda: client.request(  # the container's shell has made its files
            "HEAD", f"/containers/{cid}/archive", query={"path": f"/w/dots{secret}"}
        ).status == 200)
        for path in (f"/up{secret}", f"/w/dots{secret}", f"/up/../..{secret}"):
            resp = client.request("GET", f"/containers/{cid}/archive", query={"path": path})
            assert resp.status == 200
            member = tarfile.open(fileobj=io.BytesIO(resp.body)).extractfile(
                os.path.basename(secret))
            assert member.read() == b"inside\n"
        deadline = time.monotonic() + 3
        rounds = 0
        while time.monotonic() < deadline or rounds < 3:  # a loaded host: at least 3 rounds
            name = f"pwned-{token}-{rounds}"
            status = _put(client, cid, "/w/x/tmp", _tar_of(name, b"x"))
            assert status in (200, 404, 400)
            assert not os.path.exists(f"/tmp/{name}")
            resp = client.request("GET", f"/containers/{cid}/archive",
                                  query={"path": f"/w/x{secret}"})
            if resp.status == 200:  # the file may be gone between the stat and the read
                archive = tarfile.open(fileobj=io.BytesIO(resp.body))
                for member in archive.getmembers():
                    assert archive.extractfile(member).read() in (b"inside\n", b"dir\n")
            for link in ("/up/tmp", "/w/dots/tmp"):
                assert _put(client, cid, link, _tar_of(name + "b", b"x")) == 200
                assert not os.path.exists(f"/tmp/{name}b")
            rounds += 1
        client.post(f"/containers/{cid}/kill")  # stopped: cp mounts the root itself
        wait_for(lambda: not client.inspect(cid)["State"]["Running"])
        for link in ("/up/tmp", "/w/dots/tmp", "/w/x/tmp"):  # /w/x: as the loop left it
            assert _put(client, cid, link, _tar_of(f"pwned-{token}-stopped", b"x")) in \
                ((200,) if link != "/w/x/tmp" else (200, 404))
            assert not os.path.exists(f"/tmp/pwned-{token}-stopped")
        resp = client.request("GET", f"/containers/{cid}/archive",
                              query={"path": f"/w/dots{secret}"})
        member = tarfile.open(fileobj=io.BytesIO(resp.body)).extractfile(
            os.path.basename(secret))
        assert member.read() == b"inside\n"
    finally:
        os.unlink(secret)
        for leftover in os.listdir("/tmp"):
            assert not leftover.startswith(f"pwned-{token}"), leftover


def _children(pid: int) -> list[int]:
    out = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            out += [int(p) for p in f.read().split()]
    return out


def _state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


def test_copy_processes_are_forks_of_the_fork_helper_and_cp_works_without_it(knarrd, tmp_path):
    """The fork helper forks each copy process (no interpreter start); with the helper
    gone, a fresh interpreter does the copy as before."""
    from test_api_support import _UnixConnection

    client = knarrd.client
    cid = client.run("busybox", ["sleep", "1000"])
    (tmp_path / "big").write_bytes(os.urandom(8 << 20))
    assert _knarr(knarrd, "cp", str(tmp_path / "big"), f"{cid}:/big").returncode == 0
    helpers = [p for p in _children(knarrd.proc.pid)
               if open(f"/proc/{p}/cmdline", "rb").read() ==
               open(f"/proc/{knarrd.proc.pid}/cmdline", "rb").read()]
    assert len(helpers) == 1, helpers
    before = set(_children(helpers[0]))
    # a GET whose body is not read: its copy process blocks on the full socket, alive
    conn = _UnixConnection(client.path, 30)
    conn.request("GET", client.url(f"/containers/{cid}/archive", {"path": "/big"}))
    resp = conn.getresponse()
    assert resp.status == 200
    copiers = wait_for(lambda: set(_children(helpers[0])) - before)
    assert copiers, "no copy process under the fork helper"
    resp.close()
    conn.close()  # the copy process's next write fails: it ends
    assert wait_for(lambda: not (set(_children(helpers[0])) & copiers))
    os.kill(helpers[0], 9)
    assert wait_for(lambda: _state(helpers[0]) in ("Z", None))
    done = _knarr(knarrd, "cp", f"{cid}:/big", str(tmp_path / "back"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "back").read_bytes() == (tmp_path / "big").read_bytes()
    (tmp_path / "small").write_bytes(b"in")
    assert _knarr(knarrd, "cp", str(tmp_path / "small"), f"{cid}:/small").returncode == 0
    done = _knarr(knarrd, "cp", f"{cid}:/small", "-")
    assert tarfile.open(fileobj=io.BytesIO(done.stdout)).extractfile("small").read() == b"in"


def test_cp_in_rewrites_the_containers_own_files_in_place_and_replaces_the_images(knarrd,
                                                                                 tmp_path):
    client = knarrd.client
    cid = client.run("busybox", ["sleep", "1000"])
    pid = client.inspect(cid)["State"]["Pid"]
    root = f"/proc/{pid}/root"
    src = tmp_path / "d"
    src.mkdir()
    (src / "f").write_bytes(os.urandom(300_000))
    (src / "passwd").write_bytes(b"root:x:0:0::/:/bin/sh\n")
    assert _knarr(knarrd, "cp", f"{src}/.", f"{cid}:/in").returncode == 0
    (src / "f").write_bytes(b"shorter")
    with open(f"{root}/in/f", "rb") as held:  # what the first copy made
        assert _knarr(knarrd, "cp", f"{src}/.", f"{cid}:/in").returncode == 0
        st = os.fstat(held.fileno())
        assert (st.st_nlink, st.st_size, st.st_uid) == (1, 7, 0)  # rewritten, not replaced
        assert held.read() == b"shorter"
    assert open(f"{root}/in/f", "rb").read() == b"shorter"
    image_passwd = os.stat(f"{root}/etc/passwd")
    assert _knarr(knarrd, "cp", str(src / "passwd"), f"{cid}:/etc/passwd").returncode == 0
    assert open(f"{root}/etc/passwd", "rb").read() == b"root:x:0:0::/:/bin/sh\n"
    assert os.stat(f"{root}/etc/passwd").st_ino != image_passwd.st_ino
