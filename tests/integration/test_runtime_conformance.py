"""Conformance of knarr-runtime to the OCI runtime spec, written from its MUST clauses
(runtime.md: state, lifecycle, operations, errors; config.md and config-linux.md:
the process and linux fields). Each test drives real busybox containers through
the CLI and says which clause it checks.
"""

import json
import os
import resource
import subprocess
import time
import uuid

import pytest
from runtime_helpers import cgroup_dirs, report, state_of, wait_for, wait_status

from knarr.runtime.state import process_start_time

pytestmark = pytest.mark.privileged

def bind(source, destination: str, *options: str) -> dict:
    return {"destination": destination, "type": "bind", "source": str(source),
            "options": ["rbind", *options]}


def tmpfs(destination: str, *options: str) -> dict:
    return {"destination": destination, "type": "tmpfs", "source": "tmpfs",
            "options": list(options)}


def hook(*script: str) -> dict:
    return {"path": "/bin/sh", "args": ["sh", "-c", "; ".join(script)]}


def refused(result, *words: str) -> None:
    """An operation failed with one error line naming what it was refused for."""
    assert result.returncode == 1, (result.returncode, result.stderr)
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("knarr-runtime: "), lines
    for word in words:
        assert word in lines[0], (word, lines[0])


def assert_nothing_left(runtime, cid) -> None:
    assert not os.path.exists(os.path.join(runtime.root, cid))
    assert [d for d in cgroup_dirs(cid) if os.path.exists(d)] == []
    assert runtime("state", cid).returncode == 1


def processes_with(marker: str) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                if name.isdigit() and marker.encode() in f.read().split(b"\0"):
                    found.append(int(name))
        except OSError:
            continue
    return found


def unique_number() -> str:
    return str(100000 + uuid.uuid4().int % 10**8)


# runtime.md, "State" and "Lifecycle" steps 1-4.

def test_state_fields_and_the_user_process_waits_for_start(runtime, bundle, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    bundle.config["ociVersion"] = "1.0.2"
    bundle.config["annotations"] = {"com.example.key": "value", "org.example.n": "2"}
    bundle.config["mounts"].append(bind(out, "/tmp"))
    bundle.args("sh", "-c", "echo ran > /tmp/marker; exec sleep 1000").write()
    cid = runtime.new_id()
    runtime("create", "--bundle", bundle.path, cid, check=True)
    created = state_of(runtime, cid)
    # The state MUST include ociVersion, id, status, pid (created/running), bundle.
    assert created["ociVersion"] == "1.0.2"
    assert created["id"] == cid
    assert created["status"] == "created"
    assert created["pid"] > 0 and os.path.exists(f"/proc/{created['pid']}")
    assert created["bundle"] == bundle.path and os.path.isabs(created["bundle"])
    assert created["annotations"] == bundle.config["annotations"]
    # create MUST NOT run the user-specified program.
    time.sleep(0.3)
    assert not (out / "marker").exists()

    runtime("start", cid, check=True)
    wait_for(lambda: (out / "marker").exists(), 5, "the program to run after start")
    running = state_of(runtime, cid)
    assert running["status"] == "running" and running["pid"] == created["pid"]
    with open(f"/proc/{running['pid']}/cmdline", "rb") as f:
        assert f.read() == b"sleep\x001000\x00"  # pid is the container's process, as the host sees it

    runtime("kill", cid, "KILL", check=True)
    wait_status(runtime, cid, "stopped")
    stopped = state_of(runtime, cid)
    assert (stopped["id"], stopped["bundle"]) == (cid, bundle.path)
    runtime("delete", cid, check=True)
    refused(runtime("state", cid), cid)  # a container that does not exist is an error


def test_config_changes_after_create_do_not_affect_the_container(runtime, bundle, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    bundle.config["hooks"] = {"poststart": [hook(f"echo original > {out}/poststart")],
                              "poststop": [hook(f"echo original > {out}/poststop")]}
    bundle.config["mounts"].append(bind(out, "/tmp"))
    bundle.args("sh", "-c", "echo original > /tmp/program; exec sleep 1000").write()
    cid = runtime.new_id()
    runtime("create", "--bundle", bundle.path, cid, check=True)

    bundle.config["hooks"] = {"poststart": [hook(f"echo changed > {out}/poststart")],
                              "poststop": [hook(f"echo changed > {out}/poststop")]}
    bundle.args("sh", "-c", "echo changed > /tmp/program; exec sleep 1000").write()
    runtime("start", cid, check=True)
    wait_for(lambda: (out / "program").exists(), 5, "the program")
    assert (out / "program").read_text() == "original\n"
    assert (out / "poststart").read_text() == "original\n"

    config = os.path.join(bundle.path, "config.json")
    with open(config, "r+") as f:  # even a broken config.json does not matter now
        f.truncate(10)
    runtime("delete", "-f", cid, check=True)
    assert (out / "poststop").read_text() == "original\n"


# runtime.md, "Create": a duplicate id.

def test_create_with_a_taken_id_fails_and_leaves_the_first_container_alone(runtime, bundle,
                                                                           tmp_path):
    bundle.config["annotations"] = {"which": "first"}
    bundle.args("sleep", "1000").write()
    cid = runtime.new_id()
    runtime("create", "--bundle", bundle.path, cid, check=True)
    before = state_of(runtime, cid)
    with open(os.path.join(runtime.root, cid, "state.json"), "rb") as f:
        saved = f.read()

    from conftest import Bundle

    other = Bundle(str(tmp_path / "other"), os.path.realpath(os.path.join(bundle.path, "rootfs")))
    other.config["annotations"] = {"which": "second"}
    marker = unique_number()
    other.args("sleep", marker).write()
    refused(runtime("create", "--bundle", other.path, cid), cid, "exists")

    assert state_of(runtime, cid) == before
    with open(os.path.join(runtime.root, cid, "state.json"), "rb") as f:
        assert f.read() == saved
    assert processes_with(marker) == []
    runtime("start", cid, check=True)  # and it still works
    assert state_of(runtime, cid)["status"] == "running"
    runtime("delete", "-f", cid, check=True)


# runtime.md, "Start", "Kill", "Delete": operations the status does not allow MUST
# generate an error and MUST have no effect on the container.

def test_operations_the_status_does_not_allow_are_refused_without_effect(runtime, bundle):
    bundle.args("sleep", "1000").write()
    cid = runtime.new_id()
    runtime("run", "-d", "--bundle", bundle.path, cid, check=True)
    pid = state_of(runtime, cid)["pid"]

    refused(runtime("start", cid), cid, "running")
    refused(runtime("delete", cid), cid, "running")
    assert state_of(runtime, cid)["status"] == "running"
    runtime("pause", cid, check=True)
    refused(runtime("delete", cid), cid, "paused")
    refused(runtime("start", cid), cid, "paused")
    assert state_of(runtime, cid)["status"] == "paused"
    runtime("resume", cid, check=True)
    assert state_of(runtime, cid)["status"] == "running"
    assert state_of(runtime, cid)["pid"] == pid

    runtime("kill", cid, "KILL", check=True)
    wait_status(runtime, cid, "stopped")
    refused(runtime("start", cid), cid, "stopped")
    refused(runtime("kill", cid, "TERM"), cid, "stopped")
    assert state_of(runtime, cid)["status"] == "stopped"
    runtime("delete", cid, check=True)

    for verb in ("start", "kill", "delete", "state"):
        refused(runtime(verb, cid), cid)  # no such container


def test_kill_reaches_a_created_container(runtime, bundle):
    """runtime.md "Kill": a created container may be signalled; once its process is
    gone, its status MUST be stopped."""
    bundle.args("sleep", "1000").write()
    cid = runtime.new_id()
    runtime("create", "--bundle", bundle.path, cid, check=True)
    runtime("kill", cid, "KILL", check=True)
    wait_status(runtime, cid, "stopped")
    refused(runtime("start", cid), cid, "stopped")
    runtime("delete", cid, check=True)
    assert_nothing_left(runtime, cid)


def test_delete_of_a_created_container_removes_it_as_runc_does(runtime, bundle):
    """runtime.md says deleting a container that is not stopped MUST fail, and a
    created one is not stopped. knarr follows runc here on purpose: containerd's
    runc shim deletes never-started tasks without --force, and would leak them if
    delete refused. Delete must then leave nothing: no state, no process."""
    bundle.args("sleep", "1000").write()
    cid = runtime.new_id()
    runtime("create", "--bundle", bundle.path, cid, check=True)
    pid = json.loads(runtime("state", cid, check=True).stdout)["pid"]
    runtime("delete", cid, check=True)
    assert runtime("state", cid).returncode == 1
    assert process_start_time(pid) is None


# config.md "process": args is required to create a container.

@pytest.mark.parametrize("args", [None, []], ids=["missing", "empty"])
def test_process_without_args_fails_create_and_leaves_nothing(runtime, bundle, args):
    if args is None:
        del bundle.config["process"]["args"]
    else:
        bundle.config["process"]["args"] = args
    bundle.write()
    cid = runtime.new_id()
    refused(runtime("create", "--bundle", bundle.path, cid), "args")
    assert_nothing_left(runtime, cid)


# config.md "POSIX-platform Hooks".

def test_poststart_hook_failure_does_not_fail_start(runtime, bundle, tmp_path):
    after = tmp_path / "after"
    bundle.config["hooks"] = {"poststart": [hook("echo broken >&2", "exit 3"),
                                            hook(f"cat > {after}")]}
    bundle.args("sleep", "1000").write()
    cid = runtime.new_id()
    runtime("create", "--bundle", bundle.path, cid, check=True)
    result = runtime("start", cid)
    assert result.returncode == 0, result.stderr
    assert b"poststart" in result.stderr and b"warning" in result.stderr  # logged
    assert state_of(runtime, cid)["status"] == "running"
    assert json.loads(after.read_text())["id"] == cid  # the remaining hooks still ran
    runtime("delete", "-f", cid, check=True)


def test_prestart_hook_failure_fails_create_and_leaves_nothing(runtime, bundle, tmp_path):
    later = tmp_path / "later"
    marker = unique_number()
    bundle.config["hooks"] = {"prestart": [hook("exit 7")],
                              "createRuntime": [hook(f"touch {later}")]}
    bundle.args("sleep", marker).write()
    cid = runtime.new_id()
    refused(runtime("create", "--bundle", bundle.path, cid), "prestart", "exit status 7")
    assert_nothing_left(runtime, cid)
    assert processes_with(marker) == []
    assert not later.exists()


# config.md "process": env, cwd, user, umask, rlimits, noNewPrivileges, oomScoreAdj.

PROCESS_SCRIPT = r"""
echo ids=$(id -u) $(id -g)
echo groups=$(id -G)
grep -E '^(Uid|Gid|Groups|NoNewPrivs|Umask):' /proc/1/status | sed 's/:\t/=/' | tr '\t' ' '
echo cwd=$(pwd)
echo umask=$(umask)
echo nofile=$(ulimit -Sn) $(ulimit -Hn)
echo core=$(ulimit -Sc) $(ulimit -Hc)
echo oom_score_adj=$(cat /proc/1/oom_score_adj)
echo environ=$(tr '\0' '|' < /proc/1/environ)
"""


def test_process_fields(runtime, bundle):
    host_hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    hard = min(host_hard, 4096)
    process = bundle.config["process"]
    process["user"] = {"uid": 1000, "gid": 1001, "additionalGids": [10, 20], "umask": 0o027}
    process["cwd"] = "/tmp"
    process["env"] = ["PATH=/bin", "KNARR_A=1", "KNARR_B=x y=z", "EMPTY="]
    process["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 200, "hard": hard},
                          {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}]
    process["noNewPrivileges"] = True
    process["oomScoreAdj"] = 123
    bundle.config["mounts"].append(tmpfs("/tmp", "mode=1777", "size=1m"))
    bundle.args("sh", "-c", PROCESS_SCRIPT).write()
    result = runtime("run", "--bundle", bundle.path, runtime.new_id())
    assert result.returncode == 0, result.stderr
    out = report(result.stdout)
    assert out["ids"] == "1000 1001"
    assert sorted(out["groups"].split()) == ["10", "1001", "20"]
    assert out["Uid"].split() == ["1000"] * 4
    assert out["Gid"].split() == ["1001"] * 4
    assert sorted(out["Groups"].split()) == ["10", "20"]
    assert out["NoNewPrivs"] == "1"
    assert out["Umask"] == "0027" and out["umask"] == "0027"
    assert out["cwd"] == "/tmp"
    assert out["nofile"].split() == ["200", str(hard)]
    assert out["core"].split() == ["0", "0"]
    assert out["oom_score_adj"] == "123"
    assert sorted(out["environ"].rstrip("|").split("|")) == sorted(process["env"])


# config.md / config-linux.md: the linux fields, the mounts, the root.

LINUX_SCRIPT = r"""
echo sysctl_net=$(cat /proc/sys/net/ipv4/ip_forward)
echo sysctl_ipc=$(cat /proc/sys/kernel/shm_rmid_forced)
echo names=$(hostname) $(cat /proc/sys/kernel/domainname)
echo ro_path=$(touch /tmp/data/ro/x 2>&1; echo " rc=$?")
echo rw_path=$(touch /tmp/data/written 2>&1; echo " rc=$?")
echo masked_dir=$(ls -A /tmp/data/secret | wc -l)
echo masked_file=$(wc -c < /tmp/data/secret.txt)
echo masked_proc=$(wc -c < /proc/timer_list)
echo ro_bind=$(touch /tmp/robind/x 2>&1; echo " rc=$?")
echo ro_bind_read=$(cat /tmp/robind/file)
echo layer=$(ls /tmp/layer)
echo layer_mounts=$(awk '$5 == "/tmp/layer" {print $(NF-2)}' /proc/self/mountinfo)
echo small=$(awk '$5 == "/tmp/small" {print $6 "|" $NF}' /proc/self/mountinfo)
echo small_full=$(dd if=/dev/zero of=/tmp/small/fill bs=1k count=200 2>&1 | grep -c 'No space')
echo device=$(stat -c '%F|%t|%T|%a|%u|%g' /dev/knarr-null)
echo fifo=$(stat -c '%F|%a' /dev/knarr-fifo)
echo root_propagation=$(awk '$5 == "/" {for (i = 7; $i != "-"; i++) printf "%s ", $i}' /proc/self/mountinfo)
echo memory_limit=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes)
echo pids_max=$(cat /sys/fs/cgroup/pids/pids.max)
echo cgroup_paths=$(cut -d: -f3 /proc/self/cgroup | sort -u)
echo nnp=$(awk '/^NoNewPrivs:/ {print $2}' /proc/1/status)
"""


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def test_linux_fields_mounts_and_devices(runtime, bundle, tmp_path):
    data, shared, layer = tmp_path / "data", tmp_path / "shared", tmp_path / "layer"
    for d in (data / "ro", data / "secret", shared, layer):
        d.mkdir(parents=True)
    (data / "secret" / "hidden").write_text("hidden")
    (data / "secret.txt").write_text("secret")
    (shared / "file").write_text("shared")
    (layer / "top").write_text("")
    # Values unlike the host's, so a container that ignored them (or wrote them to
    # the host) shows.
    host_forward = _read("/proc/sys/net/ipv4/ip_forward")
    host_rmid = _read("/proc/sys/kernel/shm_rmid_forced")
    forward, rmid = str(1 - int(host_forward)), str(1 - int(host_rmid))

    config = bundle.config
    config["hostname"] = "linuxbox"
    config["domainname"] = "knarr.example"
    config["process"]["noNewPrivileges"] = False
    config["mounts"] += [
        tmpfs("/tmp", "mode=755"),
        bind(data, "/tmp/data"),
        bind(shared, "/tmp/robind", "ro"),
        tmpfs("/tmp/small", "nosuid", "noexec", "size=64k"),
        tmpfs("/tmp/layer"),          # mounts go on in order: the bind below hides this
        bind(layer, "/tmp/layer"),
    ]
    linux = config["linux"]
    linux["sysctl"] = {"net.ipv4.ip_forward": forward, "kernel.shm_rmid_forced": rmid}
    linux["readonlyPaths"] = linux["readonlyPaths"] + ["/tmp/data/ro"]
    linux["maskedPaths"] = linux["maskedPaths"] + ["/tmp/data/secret", "/tmp/data/secret.txt"]
    linux["devices"] = [
        {"path": "/dev/knarr-null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o640,
         "uid": 1000, "gid": 1001},
        {"path": "/dev/knarr-fifo", "type": "p", "fileMode": 0o600}]
    linux["rootfsPropagation"] = "shared"
    linux["resources"]["memory"] = {"limit": 64 * 1024 * 1024}
    linux["resources"]["pids"] = {"limit": 50}
    bundle.args("sh", "-c", LINUX_SCRIPT).write()
    result = runtime("run", "--bundle", bundle.path, runtime.new_id())
    assert result.returncode == 0, result.stderr
    out = report(result.stdout)

    assert (out["sysctl_net"], out["sysctl_ipc"]) == (forward, rmid)
    assert _read("/proc/sys/net/ipv4/ip_forward") == host_forward
    assert _read("/proc/sys/kernel/shm_rmid_forced") == host_rmid
    assert out["names"] == "linuxbox knarr.example"
    assert "Read-only file system" in out["ro_path"], out["ro_path"]
    assert out["rw_path"].strip() == "rc=0" and (data / "written").exists()
    assert (out["masked_dir"], out["masked_file"], out["masked_proc"]) == ("0", "0", "0")
    assert (data / "secret.txt").read_text() == "secret"  # masked, not changed
    assert "Read-only file system" in out["ro_bind"], out["ro_bind"]
    assert out["ro_bind_read"] == "shared" and not (shared / "x").exists()
    assert out["layer"] == "top"
    # Both are mounted, the tmpfs first; the bind, mounted second, is what shows.
    assert len(out["layer_mounts"].split()) == 2 and out["layer_mounts"].startswith("tmpfs ")
    mount_options, super_options = out["small"].split("|")
    assert {"nosuid", "noexec"} <= set(mount_options.split(",")), mount_options
    assert "size=64k" in super_options.split(","), super_options
    assert out["small_full"] == "1"  # the size= limit holds
    assert out["device"] == "character special file|1|3|640|1000|1001"
    assert out["fifo"] == "fifo|600"
    assert "shared:" in out["root_propagation"], out["root_propagation"]
    assert out["memory_limit"] == str(64 * 1024 * 1024)
    assert out["pids_max"] == "50"
    assert out["cgroup_paths"] == "/"  # every hierarchy reads "/" in the cgroup namespace
    assert out["nnp"] == "0"


# config-linux.md "Namespaces": a path means joining that namespace.

def test_join_a_network_namespace_by_path(runtime, bundle):
    name = "knarr-t-" + uuid.uuid4().hex[:8]
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"],
                       check=True)
        path = f"/run/netns/{name}"
        inode = os.stat(path).st_ino
        for ns in bundle.config["linux"]["namespaces"]:
            if ns["type"] == "network":
                ns["path"] = path
        bundle.args("sh", "-c", "readlink /proc/self/ns/net; ip -o link show lo").write()
        result = runtime("run", "--bundle", bundle.path, runtime.new_id())
        assert result.returncode == 0, result.stderr
        link, lo = result.stdout.decode().splitlines()
        assert link == f"net:[{inode}]"
        assert "UP" in lo.split("<", 1)[1].split(">")[0].split(",")  # the state we set
    finally:
        subprocess.run(["ip", "netns", "del", name], check=True)


def test_join_the_pid_and_uts_namespaces_of_another_container(runtime, bundle, tmp_path):
    bundle.config["hostname"] = "alpha"
    bundle.args("sleep", "1000").write()
    first = runtime.new_id()
    runtime("run", "-d", "--bundle", bundle.path, first, check=True)
    pid = state_of(runtime, first)["pid"]

    from conftest import Bundle

    second = Bundle(str(tmp_path / "second"), os.path.realpath(os.path.join(bundle.path,
                                                                             "rootfs")))
    del second.config["hostname"]  # the uts namespace is not its own to name
    for ns in second.config["linux"]["namespaces"]:
        if ns["type"] in ("pid", "uts"):
            ns["path"] = f"/proc/{pid}/ns/{ns['type']}"
    second.args("sh", "-c", "hostname; echo $$; readlink /proc/self/ns/pid;"
                            " readlink /proc/self/ns/uts;"
                            " cat /proc/1/cmdline | tr '\\0' ' '").write()
    result = runtime("run", "--bundle", second.path, runtime.new_id())
    assert result.returncode == 0, result.stderr
    hostname, own_pid, pid_ns, uts_ns, init_cmdline = result.stdout.decode().splitlines()
    assert hostname == "alpha"
    assert own_pid != "1"  # a member of the first container's pid namespace, not its init
    assert pid_ns == os.readlink(f"/proc/{pid}/ns/pid")
    assert uts_ns == os.readlink(f"/proc/{pid}/ns/uts")
    assert init_cmdline.strip() == "sleep 1000"
    assert state_of(runtime, first)["status"] == "running"  # the first is untouched
    runtime("delete", "-f", first, check=True)


def test_a_namespace_path_of_the_wrong_type_is_an_error(runtime, bundle):
    for ns in bundle.config["linux"]["namespaces"]:
        if ns["type"] == "network":
            ns["path"] = "/proc/self/ns/uts"
    bundle.args("true").write()
    cid = runtime.new_id()
    result = runtime("create", "--bundle", bundle.path, cid)
    refused(result, "network")
    assert_nothing_left(runtime, cid)



def test_exec_ignores_config_edits_after_create(runtime, bundle):
    """runtime.md: updates to config.json after create MUST NOT affect the container;
    exec starts from the process of the config the container was created with."""
    bundle.config["process"]["env"].append("MARK=original")
    bundle.args("sleep", "1000").write()
    cid = runtime.new_id()
    runtime("run", "-d", "--bundle", bundle.path, cid, check=True)
    bundle.config["process"]["env"][-1] = "MARK=changed"
    bundle.write()
    result = runtime("exec", cid, "sh", "-c", "echo $MARK", check=True)
    assert result.stdout == b"original\n"
