"""knarr-runtime against what the OCI runtime-tools validation suite checks.

runtime-tools (opencontainers/runtime-tools, validation/) drives a runtime as
`RUNTIME create --bundle B [--pid-file F] ID`, `state`, `start`, `kill ID SIG`,
`delete ID`, with configs made by its generator, and checks either from inside
(a helper, runtimetest, compares the process's view with config.json) or from
outside (it reads the container's cgroup files on the host). These tests build
the same kind of configs and make the same comparisons, with a shell script in
place of runtimetest: each check prints "ok" or "not ok", as TAP does.
"""

import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid

import pytest
from conftest import RUNTIME, make_busybox_rootfs

pytestmark = pytest.mark.privileged

CGROUP_ROOT = "/sys/fs/cgroup"

# The generator's defaults (runtime-tools generate.New for linux).
GENERATOR_CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
]


def generator_config(*args: str) -> dict:
    """A config as runtime-tools' generator writes it, running `args`."""
    def mount(dest, kind, source, *options):
        return {"destination": dest, "type": kind, "source": source, "options": list(options)}
    return {
        "ociVersion": "1.0.2",
        "hostname": "mrsdalloway",
        "root": {"path": "rootfs", "readonly": False},
        "process": {
            "terminal": False, "user": {"uid": 0, "gid": 0}, "args": list(args), "cwd": "/",
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "TERM=xterm"],
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "capabilities": {s: list(GENERATOR_CAPS) for s in
                             ("bounding", "effective", "inheritable", "permitted", "ambient")},
        },
        "mounts": [
            mount("/proc", "proc", "proc", "nosuid", "noexec", "nodev"),
            mount("/dev", "tmpfs", "tmpfs", "nosuid", "strictatime", "mode=755", "size=65536k"),
            mount("/dev/pts", "devpts", "devpts", "nosuid", "noexec", "newinstance",
                  "ptmxmode=0666", "mode=0620", "gid=5"),
            mount("/dev/shm", "tmpfs", "shm", "nosuid", "noexec", "nodev", "mode=1777",
                  "size=65536k"),
            mount("/dev/mqueue", "mqueue", "mqueue", "nosuid", "noexec", "nodev"),
            mount("/sys", "sysfs", "sysfs", "nosuid", "noexec", "nodev", "ro"),
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "seccomp": generator_seccomp(),
        },
    }


def generator_seccomp() -> dict:
    """A profile shaped like the generator's default: errno (EPERM) by default for
    x86_64, x86 and x32, a long allow list with names of every architecture, and
    arguments compared for personality and clone; clone3 falls to the default."""
    from knarr.runtime import seccomp

    profile = seccomp.default_profile(GENERATOR_CAPS)
    del profile["defaultErrnoRet"]
    profile["syscalls"] = [rule for rule in profile["syscalls"]
                           if rule["action"] == "SCMP_ACT_ALLOW"]
    return profile


# --- the checker: runtimetest's comparisons as shell, generated from the config ---

CAP_NUMBERS = {name: n for n, name in enumerate([
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE"])}

STATUS_FIELDS = {"bounding": "CapBnd", "effective": "CapEff", "inheritable": "CapInh",
                 "permitted": "CapPrm", "ambient": "CapAmb"}

DEFAULT_SYMLINKS = {"/dev/fd": "/proc/self/fd", "/dev/ptmx": "pts/ptmx",
                    "/dev/stdin": "/proc/self/fd/0", "/dev/stdout": "/proc/self/fd/1",
                    "/dev/stderr": "/proc/self/fd/2"}
DEFAULT_FS = {"/proc": "proc", "/sys": "sysfs", "/dev/pts": "devpts", "/dev/shm": "tmpfs"}
DEFAULT_DEVICES = [("/dev/null", 1, 3), ("/dev/zero", 1, 5), ("/dev/full", 1, 7),
                   ("/dev/random", 1, 8), ("/dev/urandom", 1, 9), ("/dev/tty", 5, 0),
                   ("/dev/ptmx", 5, 2)]
RLIMIT_ROWS = {"RLIMIT_CPU": "Max cpu time", "RLIMIT_FSIZE": "Max file size",
               "RLIMIT_DATA": "Max data size", "RLIMIT_STACK": "Max stack size",
               "RLIMIT_CORE": "Max core file size", "RLIMIT_NOFILE": "Max open files",
               "RLIMIT_AS": "Max address space", "RLIMIT_NPROC": "Max processes"}

CHECKER_PRELUDE = r"""
n=0
check() { n=$((n+1)); if eval "$2"; then echo "ok $n - $1"; else echo "not ok $n - $1"; fi; }
writable() { if [ -d "$1" ]; then f="$1/.w$$"; touch "$f" 2>/dev/null && rm -f "$f";
  elif [ -f "$1" ] || [ -c "$1" ]; then (echo a > "$1") 2>/dev/null; else return 1; fi; }
readable() { if [ -d "$1" ]; then [ -n "$(ls -A "$1" 2>/dev/null)" ];
  elif [ -f "$1" ] || [ -c "$1" ]; then [ -n "$(head -c 1 "$1" 2>/dev/null)" ];
  else return 1; fi; }
mnt() { awk -v d="$1" '$5 == d {for (i = 7; $i != "-"; i++); print $(i+1), $(i+2)}' \
  /proc/self/mountinfo; }
"""


def _q(text: str) -> str:
    return "'" + str(text).replace("'", "'\\''") + "'"


def _cap_mask(names: list[str]) -> int:
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last = int(f.read())
    return sum(1 << CAP_NUMBERS[c] for c in set(names) if CAP_NUMBERS.get(c, 99) <= last)


def checker(config: dict) -> str:
    """A busybox sh script making runtimetest's comparisons for `config`."""
    process, linux = config["process"], config.get("linux", {})
    lines = [CHECKER_PRELUDE]
    add = lambda what, test: lines.append(f"check {_q(what)} {_q(test)}")  # noqa: E731
    if config["root"].get("readonly"):
        add("root filesystem is readonly", "! writable /")
    if config.get("hostname"):
        add("has expected hostname", f'[ "$(hostname)" = {_q(config["hostname"])} ]')
    add("has expected working directory",
        f'[ "$(readlink /proc/$$/cwd)" = {_q(process["cwd"])} ]')
    for env in process.get("env", []):
        key, _, value = env.partition("=")
        add(f"has expected environment variable {key}", f'[ "${key}" = {_q(value)} ]')
    user = process["user"]
    add("has expected user ID", f'[ "$(id -u)" = {user["uid"]} ]')
    add("has expected group ID", f'[ "$(id -g)" = {user["gid"]} ]')
    for gid in user.get("additionalGids", []):
        add(f"has expected additional group ID {gid}", f'id -G | tr " " "\\n" | grep -qx {gid}')
    for rl in process.get("rlimits", []):
        row = RLIMIT_ROWS[rl["type"]]
        limits = f"$(sed -n \"s/^{row}  *\\([^ ]*\\)  *\\([^ ]*\\).*/\\1 \\2/p\" /proc/self/limits)"
        add(f"has expected soft and hard {rl['type']}", f'[ "{limits}" = "{rl["soft"]} {rl["hard"]}" ]')
    for kind, names in process.get("capabilities", {}).items():
        mask = f"{_cap_mask(names):016x}"
        add(f"has expected {kind} capabilities",
            f'[ "$(awk \'/^{STATUS_FIELDS[kind]}:/ {{print $2}}\' /proc/self/status)" = {mask} ]')
    for link, target in DEFAULT_SYMLINKS.items():
        add(f"symlink {link} has the expected target", f'[ "$(readlink {link})" = {_q(target)} ]')
    for path, fstype in DEFAULT_FS.items():
        add(f"mount {path} has expected type", f'mnt {path} | grep -q "^{fstype} "')
    for path, major, minor in DEFAULT_DEVICES:
        add(f"{path} (default device) is c {major}:{minor}",
            f'[ "$(stat -L -c "%F %t %T" {path})" = "character special file {major:x} {minor:x}" ]')
    for device in linux.get("devices", []):
        kind = {"c": "character special file", "u": "character special file",
                "b": "block special file", "p": "fifo"}[device["type"]]
        want = kind if device["type"] == "p" else \
            f"{kind} {device['major']:x} {device['minor']:x}"
        got = "%F" if device["type"] == "p" else "%F %t %T"
        add(f"{device['path']} has the expected type and number",
            f'[ "$(stat -c "{got}" {device["path"]})" = "{want}" ]')
        if "fileMode" in device:
            add(f"{device['path']} has the expected permissions",
                f'[ "$(stat -c %a {device["path"]})" = {device["fileMode"] & 0o777:o} ]')
        for key, fmt in (("uid", "%u"), ("gid", "%g")):
            if key in device:
                add(f"{device['path']} has the expected {key}",
                    f'[ "$(stat -c {fmt} {device["path"]})" = {device[key]} ]')
    nnp = 1 if process.get("noNewPrivileges") else 0
    add("has expected noNewPrivileges", f'grep -q "^NoNewPrivs:.{nnp}$" /proc/self/status')
    for path in linux.get("maskedPaths", []):
        add(f"cannot read masked path {path}", f"! readable {path}")
    if "oomScoreAdj" in process:
        add("has expected OOM score adjustment",
            f'[ "$(cat /proc/self/oom_score_adj)" = {process["oomScoreAdj"]} ]')
    for path in linux.get("readonlyPaths", []):
        add(f"{path} (readonlyPaths) is not writable", f"! writable {path}")
    for key, value in linux.get("sysctl", {}).items():
        add(f"has expected sysctl {key}",
            f'[ "$(cat /proc/sys/{key.replace(".", "/")})" = {_q(value)} ]')
    for kind in ("uid", "gid"):
        for m in linux.get(f"{kind}Mappings", []):
            add(f"/proc/self/{kind}_map has expected mapping",
                f"awk '$1 == {m['containerID']} && $2 == {m['hostID']} && $3 == {m['size']}' "
                f"/proc/self/{kind}_map | grep -q .")
    for rule in (linux.get("seccomp") or {}).get("syscalls", []):
        if rule["action"] == "SCMP_ACT_ERRNO" and "getcwd" in rule["names"]:
            add("getcwd fails as the seccomp profile says", "! /bin/pwd -P >/dev/null 2>&1")
    lines.append(_mounts_in_order(config["mounts"]))
    if linux.get("rootfsPropagation"):
        # last: undoing the shared case's bind takes the real /proc with it, as
        # runtimetest's does (its later checks do not read /proc for this config)
        lines.append(PROPAGATION[linux["rootfsPropagation"]])
    return "\n".join(lines) + "\n"


# runtimetest's propagation check: bind the root (recursively) elsewhere, then mount
# something under the root; only a shared root shows it at the copy too. An
# unbindable root refuses the bind.
_EXPOSED = r"""
t=/prop-target-$$; m=/prop-mount-$$; d=/prop-test-$$
mkdir -p $t $m $d && touch $d/example
mount --rbind / $t && mount --bind $d $m
check "root propagation WHAT" "WANT [ -e $t$m/example ]"
umount -l $m; umount -l $t; rm -rf $t $m $d
"""
PROPAGATION = {
    "shared": _EXPOSED.replace("WHAT", "is shared").replace("WANT ", ""),
    "slave": _EXPOSED.replace("WHAT", "is slave").replace("WANT", "!"),
    "private": _EXPOSED.replace("WHAT", "is private").replace("WANT", "!"),
    "unbindable": r"""
t=/prop-target-$$; mkdir -p $t
check "root propagation is unbindable" "! mount --rbind / $t 2>/dev/null"
umount -l $t 2>/dev/null; rmdir $t
""",
}


def _mounts_in_order(mounts: list[dict]) -> str:
    # Each non-bind mount is found in /proc/self/mountinfo (destination, type and
    # source), after the one before it.
    wanted = [m for m in mounts if m.get("type") not in ("bind", "rbind")
              and not {"bind", "rbind"} & set(m.get("options", []))]
    spec = " ".join(f"{os.path.normpath(m['destination'])}|{m['type']}|{m['source']}"
                    for m in wanted)
    return MOUNTS_IN_ORDER.replace("WANT", _q(spec))


MOUNTS_IN_ORDER = r"""awk -v want=WANT '
BEGIN { n = split(want, w, " ") }
{ for (i = 7; $i != "-"; i++); seen[++rows] = $5 "|" $(i+1) "|" $(i+2) }
END { at = 0
  for (k = 1; k <= n; k++) { found = 0
    for (r = at + 1; r <= rows; r++) if (seen[r] == w[k]) { found = r; break }
    if (found) { at = found; print "ok - mounts[" k - 1 "] found in order" }
    else print "not ok - mounts[" k - 1 "] (" w[k] ") found in order" } }' \
/proc/self/mountinfo
"""


# --- driving the runtime as runtime-tools does ---

class Suite:
    """knarr-runtime with its own --root, bundles over one private busybox rootfs."""

    def __init__(self, workdir: str) -> None:
        self.workdir = workdir
        self.root = os.path.join(workdir, "state")
        self.rootfs = os.path.join(workdir, "rootfs")
        os.chmod(workdir, 0o755)  # a user namespace's root (a host uid) walks to its rootfs
        make_busybox_rootfs(self.rootfs)
        self.ids: list[str] = []

    def __call__(self, *argv: str) -> subprocess.CompletedProcess:
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            result = subprocess.run([RUNTIME, "--root", self.root, *argv], stdout=out,
                                    stderr=err, timeout=30)
            out.seek(0)
            err.seek(0)
            result.stdout, result.stderr = out.read().decode(), err.read().decode()
        return result

    def bundle(self, config: dict) -> str:
        path = tempfile.mkdtemp(prefix="ocitest", dir=self.workdir)
        os.symlink(self.rootfs, os.path.join(path, "rootfs"))
        with open(os.path.join(path, "config.json"), "w") as f:
            json.dump(config, f)
        return path

    def create(self, config: dict, *flags: str) -> tuple[str, str, subprocess.CompletedProcess]:
        """`create --bundle B [flags] ID` with stdio to files in the bundle, as the suite does."""
        bundle, cid = self.bundle(config), str(uuid.uuid4())
        self.ids.append(cid)
        with open(os.path.join(bundle, "stdout"), "wb") as out, \
                open(os.path.join(bundle, "stderr"), "wb+") as err:
            result = subprocess.run([RUNTIME, "--root", self.root, "create", "--bundle", bundle,
                                     *flags, cid], stdout=out, stderr=err, timeout=30)
            err.seek(0)
            result.stderr = err.read().decode()
        return cid, bundle, result

    def state(self, cid: str) -> dict:
        result = self("state", cid)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def wait_stopped(self, cid: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while self.state(cid)["status"] != "stopped":
            assert time.monotonic() < deadline, f"{cid} did not stop"
            time.sleep(0.02)

    def inside(self, config: dict) -> list[str]:
        """Run the checker for `config` in a container; return its TAP lines."""
        script = os.path.join(self.rootfs, "runtimetest-" + uuid.uuid4().hex[:8])
        with open(script, "w") as f:
            f.write(checker(config))
        config["process"]["args"] = ["/bin/sh", "/" + os.path.basename(script)]
        cid, bundle, created = self.create(config)
        assert created.returncode == 0, created.stderr
        started = self("start", cid)
        assert started.returncode == 0, started.stderr
        self.wait_stopped(cid)
        assert self("delete", cid).returncode == 0
        with open(os.path.join(bundle, "stdout")) as out, \
                open(os.path.join(bundle, "stderr")) as err:
            lines = out.read().splitlines()
            assert err.read() == ""
        return [line for line in lines if line.startswith(("ok", "not ok"))]

    def cleanup(self) -> None:
        for cid in self.ids:
            if os.path.exists(os.path.join(self.root, cid)):
                self("delete", "-f", cid)


@pytest.fixture(scope="module")
def suite():
    workdir = tempfile.mkdtemp(prefix="knarr-validation-")
    s = Suite(workdir)
    yield s
    s.cleanup()
    shutil.rmtree(workdir, ignore_errors=True)


def all_ok(lines: list[str]) -> None:
    assert lines, "the checker printed nothing"
    failed = [line for line in lines if line.startswith("not ok")]
    assert failed == [], failed


# --- inside: runtimetest's comparisons ---

def test_generator_defaults(suite):
    """The generator's config as it is: default devices, links, file systems, mounts."""
    lines = suite.inside(generator_config())
    all_ok(lines)
    assert len(lines) > 30


def test_process_rlimits(suite):
    config = generator_config()
    gib = 1024 ** 3
    config["process"]["rlimits"] += [
        {"type": "RLIMIT_AS", "hard": 2 * gib, "soft": gib},
        {"type": "RLIMIT_CORE", "hard": 4 * gib, "soft": 3 * gib},
        {"type": "RLIMIT_DATA", "hard": 6 * gib, "soft": 5 * gib},
        {"type": "RLIMIT_FSIZE", "hard": 8 * gib, "soft": 7 * gib},
        {"type": "RLIMIT_STACK", "hard": 10 * gib, "soft": 9 * gib},
        {"type": "RLIMIT_CPU", "hard": 120, "soft": 60},
    ]
    config["process"]["rlimits"][0] = {"type": "RLIMIT_NOFILE", "hard": 4000, "soft": 3000}
    all_ok(suite.inside(config))


def test_linux_fields(suite):
    """sysctl, devices of each type, oomScoreAdj, a user, a tmpfs with options, ro root."""
    config = generator_config()
    config["root"]["readonly"] = True
    config["hostname"] = "validation"
    config["process"]["user"] = {"uid": 1, "gid": 1, "additionalGids": [2, 8]}
    config["process"]["cwd"] = "/tmp"
    config["process"]["oomScoreAdj"] = 500
    config["process"]["noNewPrivileges"] = True
    config["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                             "options": ["nosuid", "strictatime", "mode=755", "size=1k"]})
    config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    config["linux"]["devices"] = [
        {"path": "/dev/test1", "type": "c", "major": 10, "minor": 666, "fileMode": 0o660,
         "uid": 0, "gid": 0},
        {"path": "/dev/test2", "type": "b", "major": 8, "minor": 666, "fileMode": 0o660,
         "uid": 0, "gid": 0},
        {"path": "/dev/test3", "type": "p", "major": 8, "minor": 666, "fileMode": 0o660},
    ]
    all_ok(suite.inside(config))


def test_masked_and_readonly_paths_of_every_kind(suite):
    """Directories, files, nested ones and device nodes (b, c, p), as the suite makes them."""
    rootfs = suite.rootfs
    for top in ("masked", "readonly"):
        os.makedirs(os.path.join(rootfs, f"{top}-dir", f"{top}-subdir"), exist_ok=True)
        for rel in (f"{top}-file", f"{top}-dir/{top}-file", f"{top}-dir/{top}-subdir/{top}-file",
                    f"{top}-dir/{top}-subdir/tmp"):
            with open(os.path.join(rootfs, rel), "w") as f:
                f.write("secrets")
        for kind, mode in (("b", 0o060000), ("c", 0o020000), ("p", 0o010000)):
            node = os.path.join(rootfs, f"{top}-device-{kind}")
            if not os.path.lexists(node):
                os.mknod(node, mode | 0o666, 0)
    config = generator_config()
    for top, key in (("masked", "maskedPaths"), ("readonly", "readonlyPaths")):
        config["linux"][key] = [f"/{top}-dir", f"/{top}-file", f"/{top}-dir/{top}-subdir",
                                f"/{top}-dir/{top}-file",
                                f"/{top}-dir/{top}-subdir/{top}-file"] + \
            [f"/{top}-device-{kind}" for kind in "bcp"]
    all_ok(suite.inside(config))


def test_user_namespace_mappings(suite):
    config = generator_config()
    config["linux"]["namespaces"].append({"type": "user"})
    config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 3200}]
    config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 3200}]
    all_ok(suite.inside(config))


# --- outside: what the host sees of a created container ---

PROC_NAMESPACES = ("cgroup", "ipc", "mnt", "net", "pid", "user", "uts")


def _ns(pid: int | str, name: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{name}")


def created(suite, config: dict, *flags: str) -> tuple[str, dict]:
    cid, _, result = suite.create(config, *flags)
    assert result.returncode == 0, result.stderr
    return cid, suite.state(cid)


def remove(suite, cid: str) -> None:
    suite("kill", cid, "KILL")
    suite.wait_stopped(cid)
    assert suite("delete", cid).returncode == 0


def test_without_namespaces_every_one_is_inherited(suite):
    config = generator_config("true")
    config["linux"]["namespaces"] = []
    del config["hostname"]
    cid, state = created(suite, config)
    assert [n for n in PROC_NAMESPACES if _ns(state["pid"], n) != _ns("self", n)] == []
    started = suite("start", cid)  # init reaches the fifo without a /proc of its own
    assert started.returncode == 0, started.stderr
    suite.wait_stopped(cid)
    assert suite("delete", cid).returncode == 0


def test_every_namespace_without_a_path_is_new(suite):
    config = generator_config("true")
    config["linux"]["namespaces"] = [{"type": t} for t in (
        "cgroup", "ipc", "mount", "network", "pid", "user", "uts")]
    config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1000}]
    config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1000}]
    cid, state = created(suite, config)
    assert [n for n in PROC_NAMESPACES if _ns(state["pid"], n) == _ns("self", n)] == []
    remove(suite, cid)


def _differs(path: str, ours: str) -> bool:
    # pid_for_children reads ENOENT between unshare(2) and the first fork
    try:
        return os.readlink(path) != ours
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("name,kind,option", [
    ("ipc", "ipc", "--ipc"), ("mnt", "mount", "--mount"), ("net", "network", "--net"),
    ("pid", "pid", "--pid"), ("uts", "uts", "--uts")])
def test_a_namespace_path_is_joined(suite, name, kind, option):
    """As the suite does: the namespace of an `unshare` process (its pid_for_children
    for pid), with the generator's hostname still set."""
    holder = subprocess.Popen(["unshare", option, "--fork", "sleep", "1000"],
                              start_new_session=True)
    try:
        suffix = "_for_children" if name == "pid" else ""
        path = f"/proc/{holder.pid}/ns/{name}{suffix}"
        deadline = time.monotonic() + 3
        while not _differs(path, _ns("self", name)):
            assert time.monotonic() < deadline, "unshare made no namespace"
            time.sleep(0.02)
        config = generator_config("true")
        config["linux"]["namespaces"] = [ns for ns in config["linux"]["namespaces"]
                                         if ns["type"] != kind] + [{"type": kind, "path": path}]
        cid, state = created(suite, config)
        assert _ns(state["pid"], name) == os.readlink(path)
        remove(suite, cid)
    finally:
        os.killpg(holder.pid, 9)
        holder.wait()


@pytest.mark.parametrize("kind,wrong", [
    ("cgroup", "ipc"), ("ipc", "mnt"), ("mount", "net"), ("network", "pid"), ("pid", "user"),
    ("user", "uts"), ("uts", "cgroup")])
def test_a_namespace_path_of_another_type_fails_create(suite, kind, wrong):
    config = generator_config("true")
    config["linux"]["namespaces"] = [ns for ns in config["linux"]["namespaces"]
                                     if ns["type"] != kind] + \
        [{"type": kind, "path": f"/proc/self/ns/{wrong}"}]
    cid, _, result = suite.create(config)
    assert result.returncode != 0
    assert suite("state", cid).returncode != 0


# The suite reads a container's cgroup from the first v1 hierarchy's parent
# directory: <mount>/<controller>/<cgroupsPath> for an absolute path, and the
# path /proc/<pid>/cgroup names (which must contain cgroupsPath) for a relative one.
CGROUP_PATHS = ["/cgrouptest-" + uuid.uuid4().hex[:6],
                "testdir-" + uuid.uuid4().hex[:6] + "/cgrouptest/container"]


def cgroup_file(pid: int, cgroups_path: str, controller: str, name: str) -> str:
    if cgroups_path.startswith("/"):
        return os.path.join(CGROUP_ROOT, controller, cgroups_path.lstrip("/"), name)
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if controller in controllers.split(","):
                assert cgroups_path in path, (cgroups_path, path)
                return os.path.join(CGROUP_ROOT, controller, path.lstrip("/"), name)
    raise AssertionError(f"no {controller} hierarchy")


def read_cgroup(pid: int, cgroups_path: str, controller: str, name: str) -> str:
    with open(cgroup_file(pid, cgroups_path, controller, name)) as f:
        return f.read().strip()


def with_resources(cgroups_path: str, **resources) -> dict:
    config = generator_config("true")
    config["linux"]["cgroupsPath"] = cgroups_path
    config["linux"]["resources"].update(resources)
    return config


def v1_hierarchy(controller: str) -> bool:
    return os.path.isfile(os.path.join(CGROUP_ROOT, controller, "cgroup.procs"))


@pytest.fixture
def cgroup_parents():
    yield
    for path in CGROUP_PATHS[1:]:  # the runtime removes the leaf; the suite's parents stay
        parts = path.split("/")
        for depth in range(len(parts) - 1, 0, -1):
            for controller in os.listdir(CGROUP_ROOT):
                try:
                    os.rmdir(os.path.join(CGROUP_ROOT, controller, *parts[:depth]))
                except OSError:
                    pass


@pytest.mark.skipif(not v1_hierarchy("memory"), reason="needs the v1 memory controller")
@pytest.mark.parametrize("cgroups_path", CGROUP_PATHS)
def test_cgroups_memory(suite, cgroups_path, cgroup_parents):
    limit = 50593792
    config = with_resources(cgroups_path, memory={
        "limit": limit, "reservation": limit, "swap": limit, "kernelTCP": limit,
        "swappiness": 50, "disableOOMKiller": True})
    cid, state = created(suite, config)
    read = lambda name: read_cgroup(state["pid"], cgroups_path, "memory", name)  # noqa: E731
    assert read("memory.limit_in_bytes") == str(limit)
    assert read("memory.soft_limit_in_bytes") == str(limit)
    if os.path.exists(cgroup_file(state["pid"], cgroups_path, "memory",
                                  "memory.memsw.limit_in_bytes")):
        assert read("memory.memsw.limit_in_bytes") == str(limit)
    assert read("memory.kmem.tcp.limit_in_bytes") == str(limit)
    assert read("memory.swappiness") == "50"
    assert "oom_kill_disable 1" in read("memory.oom_control")
    remove(suite, cid)


@pytest.mark.parametrize("cgroups_path", CGROUP_PATHS)
def test_cgroups_cpu_pids_and_device_rules_in_order(suite, cgroups_path, cgroup_parents):
    cpus = f"0-{os.cpu_count() - 1}" if os.cpu_count() > 1 else "0"
    config = with_resources(
        cgroups_path, cpu={"shares": 2048, "period": 500000, "quota": 200000, "cpus": cpus,
                           "mems": "0"},
        pids={"limit": 1000},
        devices=[{"allow": False, "access": "rwm"},
                 {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
                 {"allow": True, "type": "b", "major": 8, "minor": 20, "access": "rw"},
                 {"allow": True, "type": "b", "major": 10, "minor": 200, "access": "r"}])
    cid, state = created(suite, config)
    read = lambda c, name: read_cgroup(state["pid"], cgroups_path, c, name)  # noqa: E731
    assert read("cpu", "cpu.shares") == "2048"
    assert read("cpu", "cpu.cfs_period_us") == "500000"
    assert read("cpu", "cpu.cfs_quota_us") == "200000"
    assert read("cpuset", "cpuset.cpus") == cpus
    assert read("cpuset", "cpuset.mems") == "0"
    assert read("pids", "pids.max") == "1000"
    # the config's allow rules first, in their order (the suite compares by index)
    assert read("devices", "devices.list").splitlines()[:3] == [
        "c 10:229 rwm", "b 8:20 rw", "b 10:200 r"]
    remove(suite, cid)
    if cgroups_path.startswith("/"):  # delete removes what create made
        assert not os.path.exists(os.path.join(CGROUP_ROOT, "pids", cgroups_path.lstrip("/")))


def test_cgroups_hugetlb_limits_and_an_unknown_page_size(suite):
    """Each page size the kernel has gets its limit, and an unknown size ("3MB") fails
    create. Where hugetlb has no v1 hierarchy (a hybrid host leaves it on cgroup2
    until something mounts it, as bench/setup.sh does) limits are not applied and
    only create succeeding can be checked."""
    sizes = {"hugepages-2048kB": "2MB", "hugepages-1048576kB": "1GB"}
    present = [sizes[e] for e in os.listdir("/sys/kernel/mm/hugepages") if e in sizes]
    on_v1 = v1_hierarchy("hugetlb")
    for size in present:
        config = with_resources(CGROUP_PATHS[0], hugepageLimits=[
            {"pageSize": size, "limit": 2 << 30}])
        cid, state = created(suite, config)
        if on_v1:
            name = f"hugetlb.{size}.limit_in_bytes"
            assert read_cgroup(state["pid"], CGROUP_PATHS[0], "hugetlb", name) == str(2 << 30)
        remove(suite, cid)
    if not on_v1:
        return
    config = with_resources(CGROUP_PATHS[0], hugepageLimits=[
        {"pageSize": "3MB", "limit": 100 * 3 * 1024 * 1024}])
    cid, _, result = suite.create(config)
    assert result.returncode != 0 and "3MB" in result.stderr
    assert suite("state", cid).returncode != 0
    assert not os.path.exists(os.path.join(CGROUP_ROOT, "hugetlb", CGROUP_PATHS[0].lstrip("/")))


def test_seccomp_errno_for_one_call_and_a_mount_label(suite):
    """linux_seccomp: allow by default, getcwd fails; linux_mount_label: an SELinux
    label on a host without SELinux changes nothing."""
    config = generator_config()
    config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}]}
    config["linux"]["mountLabel"] = "system_u:object_r:svirt_sandbox_file_t:s0:c715,c811"
    lines = suite.inside(config)
    all_ok(lines)
    assert any("getcwd" in line for line in lines)


# --- lifecycle, as the suite's create/start/state/kill/delete/pidfile/hooks tests ---

def test_operations_and_their_errors(suite):
    config = generator_config("sh", "-c", "echo 'process called' >> /output-start")
    output = os.path.join(suite.rootfs, "output-start")
    assert suite("create", "--bundle", suite.bundle(config)).returncode != 0  # no id
    for verb in ("start", "kill", "delete", "state"):
        assert suite(verb).returncode != 0  # no id
        assert suite(verb, str(uuid.uuid4())).returncode != 0  # no such container
    cid, bundle, result = suite.create(config)
    assert result.returncode == 0, result.stderr
    again = subprocess.run([RUNTIME, "--root", suite.root, "create", "--bundle", bundle, cid],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
    assert again.returncode != 0  # the id is taken
    state = suite.state(cid)
    assert (state["id"], state["status"], state["bundle"]) == (cid, "created", bundle)
    assert not os.path.exists(output)  # process.args wait for start
    assert suite("start", cid).returncode == 0
    suite.wait_stopped(cid)
    assert suite("start", cid).returncode != 0  # not created any more: no effect
    assert suite("kill", cid, "KILL").returncode != 0  # stopped: kill is an error
    with open(output) as f:
        assert f.read() == "process called\n"
    assert suite("delete", cid).returncode == 0
    assert suite("state", cid).returncode != 0


def test_kill_sends_the_signal_asked_for(suite):
    for signal in ("TERM", "USR1", "USR2"):
        name = f"{signal}-{uuid.uuid4().hex[:6]}"
        config = generator_config("sh", "-c", f"trap 'touch /{name}' {signal}; "
                                  f"touch /{name}.ready; sleep 10 & wait $!")
        cid, _ = created(suite, config)
        assert suite("start", cid).returncode == 0
        deadline = time.monotonic() + 5
        while not os.path.exists(os.path.join(suite.rootfs, f"{name}.ready")):
            assert time.monotonic() < deadline, "the trap was never set"
            time.sleep(0.01)
        assert suite("kill", cid, signal).returncode == 0
        suite.wait_stopped(cid)
        assert os.path.exists(os.path.join(suite.rootfs, name)), signal
        assert suite("delete", cid).returncode == 0


def test_pid_file_holds_the_pid_alone(suite, tmp_path):
    pid_file = tmp_path / "pidfile"
    cid, state = created(suite, generator_config("true"), "--pid-file", str(pid_file))
    assert pid_file.read_text() == str(state["pid"])  # strconv.Atoi: no newline
    remove(suite, cid)


@pytest.mark.parametrize("edit,accepted", [
    (lambda c: c.setdefault("annotations", {}).update({"org.unknown-key": ""}), True),
    (lambda c: c.update({"unknown": "unknown"}), True),
    (lambda c: c.update({"ociVersion": "invalid"}), False),
])
def test_unknown_properties_are_ignored_and_invalid_values_refused(suite, edit, accepted):
    config = generator_config("true")
    edit(config)
    cid, _, result = suite.create(config)
    assert (result.returncode == 0) == accepted, result.stderr
    if accepted:
        remove(suite, cid)
    else:
        assert suite("state", cid).returncode != 0


def test_hooks_get_the_state_on_stdin_and_run_in_order(suite, tmp_path):
    out = tmp_path / "hooks"
    out.mkdir()

    def hook(name):
        return {"path": "/bin/sh", "args": ["sh", "-c", f"cat > {out}/{name}; "
                                            f"echo {name} >> {out}/order"], "timeout": 5}
    config = generator_config("true")
    config["annotations"] = {"org.opencontainers.runtime-tools": "hook stdin test"}
    config["hooks"] = {"prestart": [hook("prestart1"), hook("prestart2")],
                       "poststart": [hook("poststart1"), hook("poststart2")],
                       "poststop": [{"path": "/bin/false", "args": ["false"]},
                                    hook("poststop1")]}
    cid, bundle, result = suite.create(config)
    assert result.returncode == 0, result.stderr
    pid = suite.state(cid)["pid"]
    assert suite("start", cid).returncode == 0
    suite.wait_stopped(cid)
    deleted = suite("delete", cid)  # a failing poststop hook is a warning only
    assert deleted.returncode == 0, deleted.stderr
    assert (out / "order").read_text().split() == [
        "prestart1", "prestart2", "poststart1", "poststart2", "poststop1"]
    for name in ("prestart1", "poststart1", "poststop1"):
        state = json.loads((out / name).read_text())
        assert (state["id"], state["bundle"]) == (cid, bundle)
        assert state["annotations"] == config["annotations"]
        if name != "poststop1":
            assert state["pid"] == pid
    assert json.loads((out / "poststart1").read_text())["status"] == "running"
    assert json.loads((out / "poststop1").read_text())["status"]


def host_capabilities() -> list[str]:
    """The capabilities in this process's bounding set, by name."""
    with open("/proc/self/status") as f:
        mask = int(next(line for line in f if line.startswith("CapBnd:")).split()[1], 16)
    return [name for name, n in CAP_NUMBERS.items() if mask >> n & 1]


def test_privileged_beyond_what_the_runtime_holds_fails_create(suite):
    """The generator's SetupPrivileged asks for every capability; on a host whose root
    lacks one (here CAP_SYS_RESOURCE) no capset can grant it, so create fails, as runc's
    does, and leaves nothing behind."""
    wanted = list(CAP_NUMBERS)
    config = generator_config("true")
    config["process"]["capabilities"] = {s: list(wanted) for s in STATUS_FIELDS}
    del config["linux"]["seccomp"]
    cid, _, result = suite.create(config)
    if set(host_capabilities()) >= {c for c in wanted if CAP_NUMBERS[c] <= _last_cap()}:
        assert result.returncode == 0, result.stderr  # a host whose root holds them all
        remove(suite, cid)
        return
    assert result.returncode != 0
    assert "lacks" in result.stderr, result.stderr
    assert suite("state", cid).returncode != 0


@pytest.mark.parametrize("propagation", ["shared", "slave", "private", "unbindable"])
def test_rootfs_propagation(suite, propagation):
    """linux_rootfs_propagation, privileged as far as the runtime can grant."""
    config = generator_config()
    config["process"]["capabilities"] = {s: host_capabilities() for s in STATUS_FIELDS}
    del config["linux"]["seccomp"]
    config["linux"]["rootfsPropagation"] = propagation
    lines = suite.inside(config)
    all_ok(lines)
    assert any("root propagation" in line for line in lines)


def _last_cap() -> int:
    with open("/proc/sys/kernel/cap_last_cap") as f:
        return int(f.read())


def test_a_root_spelled_like_a_verb_is_still_the_root(tmp_path):
    """`--root state delete ID` deletes from the directory "state" (it once picked
    "state" as the verb and failed on the rest)."""
    root = tmp_path / "state"
    root.mkdir()
    result = subprocess.run([RUNTIME, "--root", "state", "delete", "nope"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert result.stderr.strip() == "knarr-runtime: container does not exist: nope"


def test_numeric_user_without_passwd_and_an_empty_hostname(suite):
    """process_user (uid 10, gid 10, group 5) on a root with no /etc/passwd or
    /etc/group, and hostname "" (not set), as the suite's hostname case has it."""
    hidden = []
    for name in ("passwd", "group"):
        path = os.path.join(suite.rootfs, "etc", name)
        os.rename(path, path + ".hidden")
        hidden.append(path)
    try:
        config = generator_config()
        config["process"]["user"] = {"uid": 10, "gid": 10, "additionalGids": [5]}
        config["hostname"] = ""
        all_ok(suite.inside(config))
    finally:
        for path in hidden:
            os.rename(path + ".hidden", path)
