"""knarr build and POST /build: bad input, the cache, and the clients (knarr CLI, docker CLI 20.10
and 28 with the classic builder, docker-py), against one knarrd of the module's own."""

import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time

import pytest
from test_api_support import Daemon, _UnixConnection

pytestmark = [pytest.mark.privileged]

KNARR = os.path.join(os.path.dirname(sys.executable), "knarr")
DOCKERS = [d for d in ("/usr/bin/docker", "/usr/local/bin/docker") if os.path.exists(d)]


@pytest.fixture(scope="module")
def daemon():
    base = tempfile.mkdtemp(prefix="build-api-")
    d = Daemon(base).start()
    try:
        yield d
    finally:
        leftovers = d.teardown()
        assert not leftovers, f"left behind: {leftovers}"


def _knarr(daemon, *args, stdin=None, cwd=None):
    return subprocess.run([KNARR, "-H", f"unix://{daemon.sock}", *args], capture_output=True,
                          input=stdin, cwd=cwd, timeout=120)


def _docker(daemon, cli, *args):
    env = dict(os.environ, DOCKER_BUILDKIT="0", DOCKER_CONFIG=os.path.join(daemon.base, "dc"))
    return subprocess.run([cli, "-H", f"unix://{daemon.sock}", *args], capture_output=True,
                          env=env, timeout=120)


def _context(tmp, dockerfile: str, files: dict | None = None) -> str:
    os.makedirs(tmp, exist_ok=True)
    with open(os.path.join(tmp, "Dockerfile"), "w") as f:
        f.write(dockerfile)
    for name, data in (files or {}).items():
        path = os.path.join(tmp, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(data)
    return tmp


def _tags(daemon) -> list[str]:
    return [t for i in daemon.client.get("/images/json").json() for t in i["RepoTags"]]


@pytest.mark.parametrize("dockerfile, files, message", [
    ("FROM busybox\nRUN true\nFOO bar\n", {}, "dockerfile parse error line 3: unknown "
                                               "instruction: FOO"),
    ("FROM busybox\nENV A=1\nENV B=\"open\n", {}, "Dockerfile line 3: unexpected end of "
                                                   "statement while looking for matching "
                                                   "double-quote"),
    ("FROM busybox\n\nCOPY missing.txt /x\n", {}, "Dockerfile line 3: COPY failed: file not "
                                                   "found in build context or excluded by "
                                                   ".dockerignore: stat missing.txt: file "
                                                   "does not exist"),
    ("FROM busybox\nCOPY ../x /x\n", {}, "Dockerfile line 2: COPY failed: forbidden path "
                                         "outside the build context: ../x ()"),
    ("FROM busybox\nCOPY out /x\n", {"out": "symlink"}, "Dockerfile line 2: COPY failed: "
                                                         "forbidden path outside the build "
                                                         "context: out (a symlink to "
                                                         "/etc/passwd)"),
    ("FROM busybox\nRUN echo half > /half\nRUN false\n", {}, "The command '/bin/sh -c false' "
                                                             "returned a non-zero code: 1"),
])
def test_bad_input_one_clear_error_nothing_tagged(daemon, tmp_path, dockerfile, files,
                                                   message):
    context = _context(str(tmp_path / "ctx"), dockerfile,
                       {k: v for k, v in files.items() if v != "symlink"})
    for name, kind in files.items():
        if kind == "symlink":
            os.symlink("/etc/passwd", os.path.join(context, name))
    done = _knarr(daemon, "build", "-t", "bad:input", context)
    assert done.returncode == 1, done
    assert done.stderr.decode().strip().splitlines() == [message]
    assert "bad:input" not in _tags(daemon)
    assert daemon.client.get("/containers/json", all=1).json() == []


def test_failing_run_exit_code_is_the_commands(daemon, tmp_path):
    context = _context(str(tmp_path), "FROM busybox\nRUN exit 3\n")
    for cli in DOCKERS:
        done = _docker(daemon, cli, "build", context)
        assert done.returncode == 3, done
        assert b"The command '/bin/sh -c exit 3' returned a non-zero code: 3" in done.stderr


def _ten_steps(tmp) -> str:
    return _context(tmp, "FROM busybox\nENV A=1\nCOPY one.txt /one\nRUN echo a > /a\n"
                         "COPY two.txt /two\nWORKDIR /w\nRUN echo b > b\nLABEL x=y\n"
                         "EXPOSE 80\nCMD [\"cat\", \"/one\"]\n",
                    {"one.txt": "one\n", "two.txt": "two\n"})


def _post_build(daemon, context: str, **query) -> list[dict]:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in sorted(os.listdir(context)):
            tar.add(os.path.join(context, name), arcname=name)
    conn = _UnixConnection(daemon.sock, 60)
    conn.request("POST", daemon.client.url("/build", query), body=buf.getvalue(),
                 headers={"Content-Type": "application/x-tar"})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    assert resp.status == 200, body
    return [json.loads(line) for line in body.splitlines() if line.strip()]


def _layer_state(daemon) -> dict:
    out = {}
    for top in ("snapshots", "content/blobs/sha256"):
        base = os.path.join(daemon.root, top)
        for name in os.listdir(base):
            st = os.stat(os.path.join(base, name))
            out[f"{top}/{name}"] = (st.st_mtime_ns, st.st_ino)
    return out


def test_cached_rebuild_is_fast_and_touches_no_layer(daemon, tmp_path):
    context = _ten_steps(str(tmp_path / "ctx"))
    first = _post_build(daemon, context, t="cache:test")
    image_id = next(m["aux"]["ID"] for m in first if "aux" in m)
    before = _layer_state(daemon)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        again = _post_build(daemon, context, t="cache:test")
        times.append(time.perf_counter() - start)
    assert next(m["aux"]["ID"] for m in again if "aux" in m) == image_id
    text = "".join(m.get("stream", "") for m in again)
    assert text.count(" ---> Using cache") == 9, text
    assert _layer_state(daemon) == before
    assert min(times) <= 0.2, times
    with open(os.path.join(context, "two.txt"), "w") as f:
        f.write("changed\n")
    changed = "".join(m.get("stream", "") for m in _post_build(daemon, context))
    steps = changed.split("Step ")[1:]
    cached = [s.split(" : ")[0] for s in steps if "Using cache" in s]
    assert cached == ["2/10", "3/10", "4/10"], changed


def test_knarr_cli_options_and_tar_context(daemon, tmp_path):
    context = _context(str(tmp_path / "ctx"),
                       "FROM busybox AS one\nARG WHO=nobody\nRUN echo $WHO > /who\n"
                       "FROM one\nRUN echo never\n")
    iid = str(tmp_path / "iid")
    done = _knarr(daemon, "build", "-q", "-t", "opt:a", "-t", "opt:b", "--target", "one",
                  "--build-arg", "WHO=knarr", "--label", "l=v", "--iidfile", iid, context)
    assert done.returncode == 0, done
    with open(iid) as f:
        image_id = f.read()
    assert done.stdout.decode().strip() == image_id
    info = daemon.client.get(f"/images/{image_id}/json").json()
    assert sorted(info["RepoTags"]) == ["opt:a", "opt:b"]
    assert info["Config"]["Labels"] == {"l": "v"}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(os.path.join(context, "Dockerfile"), arcname="Dockerfile")
    piped = _knarr(daemon, "build", "--target", "one", "--build-arg", "WHO=knarr", "-",
                   stdin=buf.getvalue())
    assert piped.returncode == 0, piped
    out = piped.stdout.decode()
    assert "Step 1/3 : FROM busybox AS one" in out and out.count(" ---> Using cache") == 2
    labelled = daemon.client.get(f"/images/{image_id}/json").json()
    assert out.strip().endswith("Successfully built " + out.split(" ---> ")[-1][:12])
    assert labelled["RootFS"] == daemon.client.get(
        f"/images/{out.split(' ---> ')[-1][:12]}/json").json()["RootFS"]


def test_docker_clis_and_docker_py_build_against_knarr(daemon, tmp_path):
    import docker

    context = _context(str(tmp_path / "ctx"), "FROM busybox\nCOPY f /f\nRUN cat /f\n",
                       {"f": "from the context\n"})
    for cli in DOCKERS:
        done = _docker(daemon, cli, "build", "-t", "clis:latest", context)
        assert done.returncode == 0, done
        out = done.stdout.decode()
        assert "Step 3/3 : RUN cat /f" in out and "Successfully tagged clis:latest" in out
        ran = _knarr(daemon, "run", "--rm", "clis", "cat", "/f")
        assert ran.stdout == \
            b"from the context\n", ran
    client = docker.DockerClient(base_url=f"unix://{daemon.sock}")
    try:
        image, logs = client.images.build(path=context, tag="py:built", nocache=True)
        streamed = "".join(entry.get("stream", "") for entry in logs)
        assert "Step 2/3 : COPY f /f" in streamed and "from the context" in streamed
        assert "py:built" in image.tags
        with pytest.raises(docker.errors.BuildError, match="returned a non-zero code: 1"):
            client.images.build(fileobj=io.BytesIO(b"FROM busybox\nRUN false\n"))
    finally:
        client.close()


def test_commit_with_changes_shares_the_layer_code(daemon):
    run = _knarr(daemon, "run", "--name", "tocommit", "busybox", "sh", "-c",
                 "echo kept > /kept && rm /etc/group")
    assert run.returncode == 0, run
    done = _knarr(daemon, "commit", "-a", "me <me@x>", "-m", "a message", "-c", "ENV A=1",
                  "-c", 'CMD ["cat", "/kept"]', "-c", "EXPOSE 80", "-c", "WORKDIR /etc",
                  "tocommit", "committed:changes")
    assert done.returncode == 0, done
    info = daemon.client.get("/images/committed:changes/json").json()
    config = info["Config"]
    assert "A=1" in config["Env"] and config["Cmd"] == ["cat", "/kept"]
    assert config["ExposedPorts"] == {"80/tcp": {}} and config["WorkingDir"] == "/etc"
    assert info["Author"] == "me <me@x>" and info["Comment"] == "a message"
    out = _knarr(daemon, "run", "--rm", "committed:changes")
    assert out.stdout == b"kept\n"
    gone = _knarr(daemon, "run", "--rm", "committed:changes", "ls", "/etc/group")
    assert gone.returncode != 0
    bad = _knarr(daemon, "commit", "-c", "RUN true", "tocommit")
    assert bad.returncode == 1 and b"run is not a valid change command" in bad.stderr
    assert _knarr(daemon, "rm", "tocommit").returncode == 0


def test_heredocs_chmod_scratch_and_add_url(daemon, tmp_path):
    context = _context(str(tmp_path / "ctx"),
                       "FROM busybox AS tools\n"
                       "COPY --chmod=750 <<EOF /script.sh\n#!/bin/sh\necho from heredoc\nEOF\n"
                       "RUN <<EOF\nset -e\n/script.sh > /ran\nstat -c %a /script.sh >> /ran\nEOF\n"
                       "FROM scratch\nCOPY --from=tools /ran /ran\nCOPY f /f\n",
                       {"f": "file\n"})
    done = _knarr(daemon, "build", "-t", "misc:scratch", context)
    assert done.returncode == 0, done
    info = daemon.client.get("/images/misc:scratch/json").json()
    assert len(info["RootFS"]["Layers"]) == 2
    saved = daemon.client.get("/images/misc:scratch/get").body
    files = {}
    with tarfile.open(fileobj=io.BytesIO(saved)) as outer:
        for member in outer:
            if member.name.endswith(".tar") or "/blobs/" in member.name:
                data = outer.extractfile(member).read()
                try:
                    with tarfile.open(fileobj=io.BytesIO(data)) as layer:
                        for m in layer:
                            if m.isreg():
                                files[m.name] = layer.extractfile(m).read()
                except tarfile.TarError:
                    continue
    assert files.get("ran") == b"from heredoc\n750\n" and files.get("f") == b"file\n"
    url = _context(str(tmp_path / "url"), "FROM busybox\nADD http://example.invalid/x /x\n")
    bad = _knarr(daemon, "build", url)
    assert bad.returncode == 1
    assert b"downloading from a URL is not supported" in bad.stderr


def test_built_layers_are_directories_until_saved_or_pushed(daemon, tmp_path):
    """A build writes no layer blob; save and push make each one from its directory, and
    what they send hashes to the image's diff_ids."""
    import hashlib
    import urllib.request

    from distribution_support import Distribution

    from knarr.engine.check import check

    context = _context(str(tmp_path / "ctx"), "FROM busybox\nCOPY d /d\nRUN echo ran > /ran\n",
                       {"d/a": "a\n", "d/b/c": "c\n"})
    done = _knarr(daemon, "build", "-q", "-t", "dirlayers:one", context)
    assert done.returncode == 0, done
    info = daemon.client.get("/images/dirlayers:one/json").json()
    built = info["RootFS"]["Layers"][-2:]
    blobs = os.path.join(daemon.root, "content", "blobs", "sha256")
    assert not any(os.path.exists(os.path.join(blobs, d.removeprefix("sha256:")))
                   for d in built)
    assert check(daemon.root) == []
    with Distribution(tmp_path / "registry") as registry:
        target = f"{registry.addr}/dirlayers/one:1"
        assert _knarr(daemon, "tag", "dirlayers:one", target).returncode == 0
        pushed = _knarr(daemon, "push", target)
        assert pushed.returncode == 0, pushed
        request = urllib.request.Request(
            f"http://{registry.addr}/v2/dirlayers/one/manifests/1",
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            layers = [x["digest"] for x in json.loads(resp.read())["layers"]]
        assert layers[-2:] == built
        for digest in built:
            with urllib.request.urlopen(f"http://{registry.addr}/v2/dirlayers/one/blobs/"
                                        f"{digest}", timeout=10) as resp:
                assert f"sha256:{hashlib.sha256(resp.read()).hexdigest()}" == digest
    saved = daemon.client.get("/images/dirlayers:one/get").body
    with tarfile.open(fileobj=io.BytesIO(saved)) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())
        tars = [tar.extractfile(p).read() for p in manifest[0]["Layers"]]
    assert [f"sha256:{hashlib.sha256(t).hexdigest()}" for t in tars] == info["RootFS"]["Layers"]
    assert all(os.path.exists(os.path.join(blobs, d.removeprefix("sha256:"))) for d in built)
    assert check(daemon.root) == []
    assert _knarr(daemon, "rmi", "dirlayers:one", target).returncode == 0


def test_a_refused_context_is_read_to_its_end_and_answered(daemon):
    """The build thread reads a sized body off the socket itself; when the tar is refused
    early it still reads the rest, so the client can send it all and read the error."""
    body = b"\x01" * 512 + os.urandom(6 << 20)  # not a tar: a bad first header
    for query in ({}, {"q": "1"}):
        conn = _UnixConnection(daemon.sock, 60)
        conn.request("POST", daemon.client.url("/build", query), body=body,
                     headers={"Content-Type": "application/x-tar"})
        resp = conn.getresponse()
        lines = [json.loads(x) for x in resp.read().splitlines() if x.strip()]
        conn.close()
        assert resp.status == 200
        assert lines[-1]["error"] == \
            "build context: not a tar archive: bad number in a header", lines
