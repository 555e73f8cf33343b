"""The image store: built-in images, list, inspect, history, tag, remove, prune, check."""

import os
import shutil
import struct
import subprocess

import pytest

from knarr.errors import Conflict, InvalidArgument, NotFound
from knarr.images import GREETING, ImageStore, busybox, hello_world
from knarr.images.elf import static_writer

HOST_BUSYBOX = shutil.which("busybox") or "/bin/busybox"
needs_busybox = pytest.mark.skipif(not os.path.exists("/bin/busybox"),
                                   reason="needs busybox-static (/bin/busybox)")
x86_64 = pytest.mark.skipif(os.uname().machine != "x86_64", reason="runs an x86_64 program")


@pytest.fixture
def store(tmp_path):
    s = ImageStore(str(tmp_path / "root"))
    yield s
    s.close()


def _top(store, ref):
    return store.snapshots.path(store.chain_ids(ref)[-1])


@x86_64
def test_hello_world_runs_and_greets(store):
    image_id = hello_world(store)
    assert store.resolve("hello-world") == image_id
    program = os.path.join(_top(store, "hello-world"), "hello")
    assert os.path.getsize(program) < 2048
    out = subprocess.run([program], capture_output=True, timeout=5)
    assert out.returncode == 0 and out.stdout == GREETING
    assert b"found it in its own" in GREETING and b"two system calls" in GREETING
    assert store.config("hello-world")["config"]["Cmd"] == ["/hello"]


def test_builds_are_reproducible(tmp_path):
    ids = []
    for n in range(2):
        s = ImageStore(str(tmp_path / f"r{n}"))
        ids.append(hello_world(s, machine="x86_64"))
        s.close()
    assert ids[0] == ids[1]


def test_aarch64_program_is_well_formed():
    program = static_writer(b"hi\n", "aarch64")
    assert program[:4] == b"\x7fELF"
    (machine,) = struct.unpack_from("<H", program, 18)
    (entry,) = struct.unpack_from("<Q", program, 24)
    assert machine == 0xB7 and entry == 0x400000 + 120
    assert program.endswith(b"hi\n")
    qemu = shutil.which("qemu-aarch64") or shutil.which("qemu-aarch64-static")
    if qemu:
        path = "/tmp/knarr-test-hello-aarch64"
        with open(path, "wb") as f:
            f.write(program)
        os.chmod(path, 0o755)
        assert subprocess.run([qemu, path], capture_output=True).stdout == b"hi\n"


def test_unknown_machine_is_refused():
    with pytest.raises(InvalidArgument, match="no code for machine 'mips'"):
        static_writer(b"x", "mips")


@needs_busybox
def test_busybox_image_has_applets(store):
    busybox(store)
    fs = _top(store, "busybox:latest")
    assert os.readlink(os.path.join(fs, "bin/sh")) == "/bin/busybox"
    assert os.path.islink(os.path.join(fs, "bin/ls"))
    assert oct(os.stat(os.path.join(fs, "tmp")).st_mode & 0o7777) == "0o1777"
    out = subprocess.run([os.path.join(fs, "bin/busybox"), "echo", "ok"], capture_output=True)
    assert out.stdout == b"ok\n"
    assert store.config("busybox")["config"]["Cmd"] == ["sh"]


def test_list_inspect_history(store):
    image_id = hello_world(store, machine="x86_64")
    (summary,) = store.list()
    assert summary["Id"] == image_id and summary["RepoTags"] == ["hello-world:latest"]
    assert summary["Size"] > 0
    info = store.inspect("hello-world:latest")
    assert info["Id"] == image_id and info["Os"] == "linux" and info["Architecture"] == "amd64"
    assert info["RootFS"]["Layers"] == [store.get(image_id)["layers"][0]["diff_id"]]
    (step,) = store.history(image_id)
    assert step["Id"] == image_id and step["Size"] == summary["Size"]
    assert step["Tags"] == ["hello-world:latest"]


def test_resolve_by_name_id_and_prefix(store):
    image_id = hello_world(store, machine="x86_64")
    hexid = image_id.split(":")[1]
    for ref in ("hello-world", "docker.io/library/hello-world:latest", image_id, hexid,
                hexid[:12]):
        assert store.resolve(ref) == image_id
    with pytest.raises(NotFound, match="image nothing: not found"):
        store.resolve("nothing")
    with pytest.raises(NotFound, match="image hello-world:v2: not found"):
        store.resolve("hello-world:v2")


def test_tag_and_remove_like_rmi(store):
    image_id = hello_world(store, machine="x86_64")
    assert store.tag("hello-world", "localhost:5000/greet:v1") == "localhost:5000/greet:v1"
    assert sorted(store.names(image_id)[0]) == ["hello-world:latest", "localhost:5000/greet:v1"]
    with pytest.raises(Conflict, match="referenced in multiple repositories"):
        store.remove(image_id)
    assert store.remove("localhost:5000/greet:v1") == [{"Untagged": "localhost:5000/greet:v1"}]
    assert store.remove("hello-world") == [{"Untagged": "hello-world:latest"},
                                           {"Deleted": image_id}]
    assert store.list() == []
    assert list(store.content.walk()) == [] and store.snapshots.walk() == []


@x86_64
def test_removing_the_last_tag_drops_the_repo_digests_too(store):
    """A pulled image has a tag and a repo digest; `rmi name:tag` deletes it, as Docker's."""
    image_id = hello_world(store, machine="x86_64")
    pinned = f"localhost:5000/greet@{store.get(image_id)['manifest']}"
    store.records.set_name(f"docker.io/library/hello-world@{store.get(image_id)['manifest']}",
                           image_id)
    store.tag("hello-world", "localhost:5000/greet:v1")
    store.records.set_name(pinned, image_id)
    assert store.remove(image_id, force=True)[-1] == {"Deleted": image_id}
    image_id = hello_world(store, machine="x86_64")
    store.records.set_name(pinned, image_id)
    store.tag("hello-world", "localhost:5000/greet:v1")
    store.tag("hello-world", "localhost:5000/greet:v2")
    assert store.remove("localhost:5000/greet:v1") == [{"Untagged": "localhost:5000/greet:v1"}]
    assert store.remove("localhost:5000/greet:v2") == [{"Untagged": "localhost:5000/greet:v2"},
                                                       {"Untagged": pinned}]
    assert store.remove(image_id) == [{"Untagged": "hello-world:latest"}, {"Deleted": image_id}]


def test_remove_refuses_an_image_in_use_unless_forced(tmp_path):
    used = set()
    store = ImageStore(str(tmp_path), in_use=lambda image_id: image_id in used)
    image_id = hello_world(store, machine="x86_64")
    used.add(image_id)
    with pytest.raises(Conflict, match=f"image {image_id} is used by a container"):
        store.remove("hello-world")
    assert store.resolve("hello-world") == image_id
    assert store.remove("hello-world", force=True)[-1] == {"Deleted": image_id}


def test_remove_keeps_layers_a_container_stands_on(store):
    image_id = hello_world(store, machine="x86_64")
    top = store.chain_ids(image_id)[-1]
    store.snapshots.prepare("container-1", top)
    store.remove(image_id, force=True)
    assert store.snapshots.exists(top)
    store.snapshots.remove("container-1")
    store.prune()
    assert store.snapshots.walk() == []


@needs_busybox
def test_prune_removes_dangling_then_all(store):
    hello = hello_world(store, machine="x86_64")
    box = busybox(store)
    store.tag(box, "other:tag")
    store.remove("other:tag")  # leaves busybox:latest
    store.records.drop_name("docker.io/library/hello-world:latest")  # dangling now
    result = store.prune()
    assert result["ImagesDeleted"] == [{"Deleted": hello}]
    assert result["SpaceReclaimed"] > 0
    assert [i["Id"] for i in store.list()] == [box]
    assert store.prune(all_images=True)["ImagesDeleted"][-1] == {"Deleted": box}
    assert store.list() == [] and list(store.content.walk()) == []


def test_check_finds_a_corrupt_blob_and_a_missing_layer(store):
    image_id = hello_world(store, machine="x86_64")
    assert store.check() == []
    layer = store.get(image_id)["layers"][0]["digest"]
    path = store.content.blob_path(layer)
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.write(b"X")
    os.chmod(path, 0o444)
    chain = store.chain_ids(image_id)[-1]
    store.snapshots.remove(chain)
    problems = store.check()
    assert any(p.startswith(f"blob {layer}: digest mismatch") for p in problems)
    assert f"image {image_id}: snapshot {chain} is missing" in problems


def test_df(store):
    hello_world(store, machine="x86_64")
    df = store.df()
    assert df["Images"] == 1 and df["Active"] == 0 and df["Size"] > 0
