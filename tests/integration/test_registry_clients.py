"""Real clients against `knarr-registry serve`: skopeo and the docker CLI with a real dockerd.

Each copy goes both ways and is checked by digest: what comes out is what
went in. Plain HTTP, TLS with a test CA, htpasswd Basic auth and Bearer
tokens are all exercised. The dockerd is the test's own (own socket, data
root, exec root, pidfile; no bridge, no iptables) and is stopped at the end.
Skipped, with the reason, when skopeo or dockerd is missing or not root.
"""

import json
import os
import shutil
import subprocess
import time

import pytest
from test_registry_support import RegistryProcess, make_layout, skopeo

SKOPEO = shutil.which("skopeo")
DOCKERD = shutil.which("dockerd")
DOCKER = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else shutil.which("docker")
BUSYBOX = "/bin/busybox"

needs_skopeo = pytest.mark.skipif(SKOPEO is None, reason="skopeo is not installed")


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    path = tmp_path_factory.mktemp("layout") / "img"
    files = {"bin/busybox": open(BUSYBOX, "rb").read() if os.path.exists(BUSYBOX) else b"x"}
    digest = make_layout(str(path), [files, {"etc/motd": b"knarr registry test\n"}])
    return str(path), digest


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("certs")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=knarr registry test CA")
    run("req", *ec, "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=127.0.0.1")
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "srv.crt", "-days", "2", "-extfile", "san.ext")
    cadir = d / "ca"
    cadir.mkdir()
    shutil.copy(d / "ca.pem", cadir / "ca.crt")
    return {"cert": str(d / "srv.crt"), "key": str(d / "srv.key"), "cadir": str(cadir)}


@pytest.fixture(scope="module")
def htpasswd(tmp_path_factory):
    path = tmp_path_factory.mktemp("auth") / "htpasswd"
    if shutil.which("htpasswd"):
        line = subprocess.run(["htpasswd", "-nbB", "alice", "secret"], capture_output=True,
                              text=True, check=True).stdout.strip()
    else:
        from knarr.registry.auth import apr1
        line = f"alice:{apr1('secret', 'knarrslt')}"
    path.write_text(line + "\n")
    return str(path)


def _digest_of(ref: str, *flags: str) -> str:
    return json.loads(skopeo("inspect", *flags, ref).stdout)["Digest"]


def _round_trip(tmp_path, layout, addr, *tls_and_creds, repo="test/busybox"):
    src, digest = layout
    dest = f"docker://{addr}/{repo}:v1"
    dflags = [f.replace("--X-", "--dest-") for f in tls_and_creds]
    sflags = [f.replace("--X-", "--src-") for f in tls_and_creds]
    iflags = [f.replace("--X-", "--") for f in tls_and_creds]
    skopeo("copy", *dflags, f"oci:{src}:latest", dest)
    assert _digest_of(dest, *iflags) == digest
    out = tmp_path / "out"
    skopeo("copy", *sflags, dest, f"oci:{out}:copied")
    index = json.loads((out / "index.json").read_text())
    assert index["manifests"][0]["digest"] == digest
    for desc in json.loads((out / "blobs" / "sha256" / digest[7:]).read_text())["layers"]:
        assert os.path.exists(os.path.join(src, "blobs", "sha256", desc["digest"][7:]))


@needs_skopeo
def test_skopeo_copy_in_and_out(tmp_path, layout):
    with RegistryProcess(str(tmp_path / "root")) as reg:
        _round_trip(tmp_path, layout, reg.addr, "--X-tls-verify=false")


@needs_skopeo
def test_skopeo_with_tls_and_basic_auth(tmp_path, layout, certs, htpasswd):
    with RegistryProcess(str(tmp_path / "root"), "--tls-cert", certs["cert"], "--tls-key",
                         certs["key"], "--htpasswd", htpasswd) as reg:
        with pytest.raises(AssertionError, match="401|unauthorized|authentication"):
            skopeo("copy", f"--dest-cert-dir={certs['cadir']}",
                   f"oci:{layout[0]}:latest", f"docker://{reg.addr}/x:y")
        _round_trip(tmp_path, layout, reg.addr, f"--X-cert-dir={certs['cadir']}",
                    "--X-creds=alice:secret")


@needs_skopeo
def test_skopeo_with_tls_and_tokens(tmp_path, layout, certs, htpasswd):
    with RegistryProcess(str(tmp_path / "root"), "--tls-cert", certs["cert"], "--tls-key",
                         certs["key"], "--htpasswd", htpasswd,
                         "--token-key", str(tmp_path / "token.key")) as reg:
        _round_trip(tmp_path, layout, reg.addr, f"--X-cert-dir={certs['cadir']}",
                    "--X-creds=alice:secret")
        assert oct(os.stat(tmp_path / "token.key").st_mode & 0o777) == "0o600"


def _hugetlb_off_cgroup2() -> None:
    """On a hybrid cgroup host dockerd's runc wants hugetlb on v1 (see bench/setup.sh)."""
    base = "/sys/fs/cgroup"
    if os.path.exists(f"{base}/cgroup.controllers"):
        return
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[fields.index("-") + 1] == "cgroup" and "hugetlb" in fields[-1].split(","):
                return
    os.makedirs(f"{base}/hugetlb", exist_ok=True)
    subprocess.run(["mount", "-t", "cgroup", "-o", "hugetlb", "cgroup", f"{base}/hugetlb"],
                   check=False, capture_output=True)


class Dockerd:
    """A private dockerd that trusts the given registries over plain HTTP."""

    def __init__(self, state, registries) -> None:
        self.state = state
        self.sock = f"unix://{state}/docker.sock"
        self.log = open(state / "dockerd.log", "wb")
        insecure = [f"--insecure-registry={r}" for r in registries]
        self.proc = subprocess.Popen(
            [DOCKERD, "--host", self.sock, "--data-root", str(state / "data"),
             "--exec-root", str(state / "exec"), "--pidfile", str(state / "dockerd.pid"),
             "--bridge=none", "--iptables=false", *insecure],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while self.docker("version", check=False).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"dockerd did not start: {(state / 'dockerd.log').read_text()}")
            time.sleep(0.2)

    def docker(self, *args, check=True, timeout=120):
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        proc = subprocess.run([DOCKER, "--config", str(self.state / "cli"), "-H", self.sock,
                               *args], capture_output=True, text=True, timeout=timeout, env=env)
        if check and proc.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)}: {proc.stderr}")
        return proc

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.state / "data", ignore_errors=True)


@needs_skopeo
@pytest.mark.privileged
@pytest.mark.skipif(DOCKERD is None or DOCKER is None,
                    reason="dockerd is not installed (Debian package docker.io)")
@pytest.mark.skipif(os.geteuid() != 0, reason="dockerd needs root")
def test_docker_push_and_pull(tmp_path, layout, certs, htpasswd):
    plain = RegistryProcess(str(tmp_path / "plain")).start()
    secure = RegistryProcess(str(tmp_path / "secure"), "--tls-cert", certs["cert"],
                             "--tls-key", certs["key"], "--htpasswd", htpasswd,
                             "--token-key", str(tmp_path / "token.key")).start()
    daemon = None
    try:
        skopeo("copy", "--dest-tls-verify=false", f"oci:{layout[0]}:latest",
               f"docker://{plain.addr}/src/busybox:v1")
        _hugetlb_off_cgroup2()
        (tmp_path / "dockerd").mkdir()
        daemon = Dockerd(tmp_path / "dockerd", [plain.addr, secure.addr])
        d = daemon.docker
        d("pull", f"{plain.addr}/src/busybox:v1")
        d("tag", f"{plain.addr}/src/busybox:v1", f"{plain.addr}/pushed/busybox:v2")
        d("push", f"{plain.addr}/pushed/busybox:v2")
        pushed = _digest_of(f"docker://{plain.addr}/pushed/busybox:v2", "--tls-verify=false")
        d("rmi", f"{plain.addr}/pushed/busybox:v2")
        out = d("pull", f"{plain.addr}/pushed/busybox:v2").stdout
        assert pushed in out
        # TLS (unverified: an insecure registry), htpasswd login, Bearer tokens
        refused = d("pull", f"{secure.addr}/team/busybox:v1", check=False)
        assert refused.returncode != 0 and "unauthorized" in refused.stderr
        d("tag", f"{plain.addr}/src/busybox:v1", f"{secure.addr}/team/busybox:v1")
        login = subprocess.run([DOCKER, "--config", str(daemon.state / "cli"), "-H", daemon.sock,
                                "login", "-u", "alice", "--password-stdin", secure.addr],
                               input="secret", capture_output=True, text=True, timeout=60)
        assert login.returncode == 0, login.stderr
        out = d("push", f"{secure.addr}/team/busybox:v1").stdout
        got = _digest_of(f"docker://{secure.addr}/team/busybox:v1",
                         f"--cert-dir={certs['cadir']}", "--creds=alice:secret")
        assert f"digest: {got}" in out
        d("rmi", f"{secure.addr}/team/busybox:v1")
        assert got in d("pull", f"{secure.addr}/team/busybox:v1").stdout
    finally:
        if daemon is not None:
            daemon.stop()
        plain.stop()
        secure.stop()


CONTAINERD = shutil.which("containerd")
CTR = shutil.which("ctr")


@needs_skopeo
@pytest.mark.privileged
@pytest.mark.skipif(CONTAINERD is None or CTR is None,
                    reason="containerd is not installed (Debian package containerd)")
@pytest.mark.skipif(os.geteuid() != 0, reason="containerd needs root")
def test_containerd_pull_and_push(tmp_path, layout, htpasswd):
    state = tmp_path / "containerd"
    state.mkdir()
    (state / "config.toml").write_text(
        'version = 2\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n')
    sock = str(state / "c.sock")
    log = open(state / "log", "wb")
    daemon = subprocess.Popen([CONTAINERD, "--config", str(state / "config.toml"), "--root",
                               str(state / "root"), "--state", str(state / "state"),
                               "--address", sock], stdout=log, stderr=subprocess.STDOUT)
    plain = RegistryProcess(str(tmp_path / "plain")).start()
    # ctr speaks plain HTTP to 127.0.0.1 whatever it is told (containerd's localhost
    # rule), so here auth is checked without TLS; skopeo and docker cover TLS
    secure = RegistryProcess(str(tmp_path / "secure"), "--htpasswd", htpasswd).start()

    def ctr(*args):
        done = subprocess.run([CTR, "-a", sock, "-n", "knarr-test", *args],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, (args, done.stderr)
        return done.stdout

    try:
        deadline = time.monotonic() + 30
        while subprocess.run([CTR, "-a", sock, "version"], capture_output=True).returncode:
            assert daemon.poll() is None and time.monotonic() < deadline, \
                (state / "log").read_text()
            time.sleep(0.2)
        skopeo("copy", "--dest-tls-verify=false", f"oci:{layout[0]}:latest",
               f"docker://{plain.addr}/src/busybox:v1")
        ctr("images", "pull", "--plain-http", f"{plain.addr}/src/busybox:v1")
        ctr("images", "tag", f"{plain.addr}/src/busybox:v1", f"{secure.addr}/team/busybox:v1")
        auth = ["--plain-http", "--user", "alice:secret"]
        ctr("images", "push", *auth, f"{secure.addr}/team/busybox:v1")
        ctr("images", "rm", f"{secure.addr}/team/busybox:v1", f"{plain.addr}/src/busybox:v1")
        ctr("images", "pull", *auth, f"{secure.addr}/team/busybox:v1")
        assert layout[1] in ctr("images", "ls")
        assert _digest_of(f"docker://{secure.addr}/team/busybox:v1", "--tls-verify=false",
                          "--creds=alice:secret") == layout[1]
    finally:
        subprocess.run([CTR, "-a", sock, "-n", "knarr-test", "images", "rm",
                        f"{secure.addr}/team/busybox:v1"], capture_output=True)
        daemon.terminate()
        try:
            daemon.wait(30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        log.close()
        subprocess.run(["umount", "-R", str(state / "state")], capture_output=True)
        plain.stop()
        secure.stop()
