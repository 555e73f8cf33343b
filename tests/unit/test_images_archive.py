"""Load and save: docker-save and OCI archives, digests checked on every path, crash safety."""

import gzip
import hashlib
import io
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tarfile
import time

import pytest

from knarr.errors import InvalidArgument
from knarr.images import ImageStore, build_image, hello_world, layer_tar, load, save, unpack
from knarr.oci import image_spec


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def store(tmp_path):
    s = ImageStore(str(tmp_path / "root"))
    yield s
    s.close()


@pytest.fixture
def other(tmp_path):
    s = ImageStore(str(tmp_path / "other"))
    yield s
    s.close()


def _two_layer_image(store, name="localhost:5000/app:v1"):
    base = layer_tar([("etc", "dir", 0o755, b""), ("etc/hostname", "file", 0o644, b"base\n")])
    image_id = build_image(store, base, {"Cmd": ["sh"]}, [name], "x86_64", "base")
    return image_id


def _members(data: bytes) -> dict[str, bytes]:
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        for m in t.getmembers():
            if m.isreg():
                out[m.name] = t.extractfile(m).read()
    return out


def _tar_of(files: dict[str, bytes]) -> bytes:
    return layer_tar([(name, "file", 0o644, data) for name, data in files.items()])


def _empty(store) -> bool:
    return (store.list() == [] and list(store.content.walk()) == []
            and store.snapshots.walk() == [] and store.content.ingests() == [])


@pytest.mark.parametrize("fmt", ["docker", "oci"])
def test_round_trip_keeps_ids_names_and_layers(store, other, fmt):
    hello = hello_world(store, machine="x86_64")
    app = _two_layer_image(store)
    out = io.BytesIO()
    save(store, ["hello-world", "localhost:5000/app:v1"], out, format=fmt)
    loaded = load(other, io.BytesIO(out.getvalue()))
    assert [i["Id"] for i in loaded] == [hello, app]
    for ref in ("hello-world:latest", "localhost:5000/app:v1"):
        assert other.inspect(ref)["RootFS"] == store.inspect(ref)["RootFS"]
        assert other.inspect(ref)["Id"] == store.inspect(ref)["Id"]
    assert other.check() == []


def test_docker_format_is_what_docker_load_reads(store):
    image_id = hello_world(store, machine="x86_64")
    out = io.BytesIO()
    save(store, ["hello-world"], out, format="docker")
    files = _members(out.getvalue())
    (entry,) = json.loads(files["manifest.json"])
    assert entry["RepoTags"] == ["hello-world:latest"]
    assert entry["Config"] == image_id.split(":")[1] + ".json"
    assert _sha(files[entry["Config"]]) == image_id
    diff_ids = json.loads(files[entry["Config"]])["rootfs"]["diff_ids"]
    assert [_sha(files[p]) for p in entry["Layers"]] == diff_ids
    top = entry["Layers"][-1].split("/")[0]
    assert json.loads(files["repositories"]) == {"hello-world": {"latest": top}}


def test_oci_format_is_a_valid_layout(store):
    hello_world(store, machine="x86_64")
    out = io.BytesIO()
    save(store, ["hello-world"], out, format="oci")
    files = _members(out.getvalue())
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(files["index.json"])
    (desc,) = index["manifests"]
    assert desc["mediaType"] == image_spec.OCI_MANIFEST
    assert desc["annotations"] == {"io.containerd.image.name":
                                   "docker.io/library/hello-world:latest",
                                   "org.opencontainers.image.ref.name": "latest"}
    for name, data in files.items():
        if name.startswith("blobs/sha256/"):
            assert _sha(data) == "sha256:" + name.rsplit("/", 1)[1]
    manifest = json.loads(files["blobs/sha256/" + desc["digest"].split(":")[1]])
    image_spec.validate_manifest(manifest)
    assert manifest["config"]["mediaType"] == image_spec.OCI_CONFIG


def test_save_by_id_writes_no_names(store, other):
    image_id = hello_world(store, machine="x86_64")
    out = io.BytesIO()
    save(store, [image_id], out)
    (entry,) = json.loads(_members(out.getvalue())["manifest.json"])
    assert entry["RepoTags"] is None
    assert load(other, io.BytesIO(out.getvalue())) == [{"Id": image_id, "Names": []}]


def _oci_archive(layers: list[tuple[bytes, str]], platform_index: bool = False,
                 ref_name: str | None = "v1") -> tuple[bytes, str]:
    """An OCI layout tarball from (blob, media type) layers; return it and the image id."""
    diff_ids = [_sha(gzip.decompress(b) if t.endswith("gzip") else _unzstd(b) if
                     t.endswith("zstd") else b) for b, t in layers]
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["x"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": image_spec.OCI_MANIFEST,
                           "config": image_spec.descriptor(image_spec.OCI_CONFIG, _sha(config),
                                                           len(config)),
                           "layers": [image_spec.descriptor(t, _sha(b), len(b))
                                      for b, t in layers]}).encode()
    files = {"oci-layout": b'{"imageLayoutVersion": "1.0.0"}'}
    for blob in [config, manifest] + [b for b, _ in layers]:
        files[f"blobs/sha256/{_sha(blob)[7:]}"] = blob
    annotations = {"org.opencontainers.image.ref.name": ref_name} if ref_name else None
    top = image_spec.descriptor(image_spec.OCI_MANIFEST, _sha(manifest), len(manifest),
                                platform={"os": "linux", "architecture": "amd64"})
    if platform_index:
        other = image_spec.descriptor(image_spec.OCI_MANIFEST, "sha256:" + "1" * 64, 10,
                                      platform={"os": "linux", "architecture": "arm64"})
        nested = json.dumps({"schemaVersion": 2, "manifests": [other, top]}).encode()
        files[f"blobs/sha256/{_sha(nested)[7:]}"] = nested
        top = image_spec.descriptor(image_spec.OCI_INDEX, _sha(nested), len(nested))
    top = dict(top, **({"annotations": annotations} if annotations else {}))
    files["index.json"] = json.dumps({"schemaVersion": 2, "manifests": [top]}).encode()
    return _tar_of(files), _sha(config)


def _unzstd(data: bytes) -> bytes:
    return subprocess.run(["zstd", "-dc"], input=data, capture_output=True, check=True).stdout


def _layer(name: str, payload: bytes) -> bytes:
    return layer_tar([(name, "file", 0o644, payload)])


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the test index offers amd64")
def test_oci_gzip_layers_and_platform_index(store):
    archive, image_id = _oci_archive([(gzip.compress(_layer("a", b"1")),
                                       image_spec.OCI_LAYER_GZIP),
                                      (_layer("b", b"2"), image_spec.OCI_LAYER)],
                                     platform_index=True)
    assert load(store, io.BytesIO(archive), default_name="example/app") == [
        {"Id": image_id, "Names": ["docker.io/example/app:v1"]}]
    assert os.path.exists(os.path.join(store.snapshots.path(store.chain_ids(image_id)[0]), "a"))
    assert store.check() == []


@pytest.mark.skipif(not shutil.which("zstd"), reason="needs the zstd command (package zstd)")
def test_oci_zstd_layer(store):
    plain = _layer("z", b"zstd data")
    packed = subprocess.run(["zstd", "-c", "-q"], input=plain, capture_output=True,
                            check=True).stdout
    archive, image_id = _oci_archive([(packed, image_spec.OCI_LAYER_ZSTD)], ref_name=None)
    assert load(store, io.BytesIO(archive)) == [{"Id": image_id, "Names": []}]
    assert store.inspect(image_id)["RootFS"]["Layers"] == [_sha(plain)]


def test_oci_blob_not_matching_its_name_is_refused(store):
    archive, _ = _oci_archive([(_layer("a", b"1"), image_spec.OCI_LAYER)])
    files = _members(archive)
    layer_name = next(n for n, d in files.items() if d == _layer("a", b"1"))
    files[layer_name] = _layer("a", b"2")
    with pytest.raises(InvalidArgument) as info:
        load(store, io.BytesIO(_tar_of(files)))
    expected = "sha256:" + layer_name.rsplit("/", 1)[1]
    assert str(info.value) == (f"load: {layer_name}: digest mismatch: expected {expected}, "
                               f"got {_sha(_layer('a', b'2'))}")
    assert _empty(store)


def test_docker_layer_not_matching_its_diff_id_is_refused(store, other):
    hello_world(other, machine="x86_64")
    out = io.BytesIO()
    save(other, ["hello-world"], out)
    files = _members(out.getvalue())
    (entry,) = json.loads(files["manifest.json"])
    files[entry["Layers"][0]] = _layer("hello", b"not the program")
    with pytest.raises(InvalidArgument, match=f"load: layer {entry['Layers'][0]}: digest "
                                              "mismatch: expected sha256:"):
        load(store, io.BytesIO(_tar_of(files)))
    assert _empty(store)


def test_docker_config_not_matching_its_name_is_refused(store, other):
    hello_world(other, machine="x86_64")
    out = io.BytesIO()
    save(other, ["hello-world"], out)
    files = _members(out.getvalue())
    (entry,) = json.loads(files["manifest.json"])
    files[entry["Config"]] = files[entry["Config"]].replace(b"/hello", b"/evil")
    with pytest.raises(InvalidArgument, match=f"load: config {entry['Config']}: digest mismatch"):
        load(store, io.BytesIO(_tar_of(files)))
    assert _empty(store)


def test_compressed_layer_with_wrong_diff_id_leaves_nothing(store, other):
    """A gzip layer's diff_id is only known after unpacking: refused then, and undone."""
    good = _layer("a", b"1")
    hello_world(other, machine="x86_64")
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers",
                                    "diff_ids": [_sha(good), _sha(b"something else")]}}).encode()
    files = {f"{_sha(config)[7:]}.json": config, "l1/layer.tar": gzip.compress(good),
             "l2/layer.tar": gzip.compress(_layer("b", b"2"))}
    files["manifest.json"] = json.dumps([{"Config": f"{_sha(config)[7:]}.json",
                                          "RepoTags": ["x:y"],
                                          "Layers": ["l1/layer.tar", "l2/layer.tar"]}]).encode()
    with pytest.raises(InvalidArgument, match="diff_id mismatch: expected sha256:"):
        load(store, io.BytesIO(_tar_of(files)))
    assert _empty(store)


def test_not_an_image_archive(store):
    with pytest.raises(InvalidArgument, match="neither manifest.json"):
        load(store, io.BytesIO(_tar_of({"readme": b"hi"})))
    with pytest.raises(InvalidArgument, match="corrupt or truncated archive"):
        load(store, io.BytesIO(b"\x00garbage" * 100))


def test_load_of_gzipped_docker_save(store, other):
    image_id = hello_world(other, machine="x86_64")
    out = io.BytesIO()
    save(other, ["hello-world"], out)
    assert load(store, io.BytesIO(gzip.compress(out.getvalue())))[0]["Id"] == image_id


@pytest.fixture(scope="module")
def big_archive(tmp_path_factory) -> dict[str, tuple[str, str]]:
    """docker-save tarballs of one layer: a 24 MB random file and 2,000 small ones; by
    what load keeps of it: its layer recipe ("recipe"), or its blob ("blob": the layer
    writes f0 twice, so its files do not make it)."""
    tmp_path = tmp_path_factory.mktemp("big")
    store = ImageStore(str(tmp_path / "source"))
    blob = os.urandom(24 << 20)
    entries = [("big", "file", 0o644, blob)] + \
        [(f"f{i}", "file", 0o644, b"x" * i) for i in range(2000)]
    out = {}
    for kind, extra in (("recipe", []), ("blob", [("f0", "file", 0o644, b"again")])):
        layer = layer_tar(entries + extra)
        image_id = build_image(store, layer, {"Cmd": ["x"]}, [f"{kind}:1"], "x86_64", kind)
        path = str(tmp_path / f"{kind}.tar")
        with open(path, "wb") as f:
            save(store, [f"{kind}:1"], f)
        out[kind] = (path, image_id)
    store.close()
    return out


_LOADER = """
import sys
from knarr.images import ImageStore, load
store = ImageStore(sys.argv[1])
with open(sys.argv[2], "rb") as f:
    load(store, f)
"""


def _kill_when(proc, ready, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.002)
    proc.kill()
    return False


def _ingesting(root):
    ingest = os.path.join(root, "content", "ingest")
    def ready():
        for name in os.listdir(ingest) if os.path.isdir(ingest) else []:
            data = os.path.join(ingest, name, "data")
            if os.path.exists(data) and os.path.getsize(data) > (4 << 20):
                return True
        return False
    return ready


def _in_snapshot(root, name):
    snapshots = os.path.join(root, "snapshots")
    def ready():
        for number in os.listdir(snapshots) if os.path.isdir(snapshots) else []:
            if number.isdigit() and os.path.exists(os.path.join(snapshots, number, name)):
                return True
        return False
    return ready


_KILLED_WHEN = {  # (archive, ready)
    "unpack": ("recipe", lambda root: _in_snapshot(root, "fs/f500")),  # recorded, extracted
    "recipe": ("recipe", lambda root: _in_snapshot(root, "layer.recipe")),  # not committed
    "ingest": ("blob", _ingesting),  # its files do not make it: to an ingest
}


@pytest.mark.parametrize("when", sorted(_KILLED_WHEN))
def test_kill_9_during_load_then_load_again(tmp_path, when, big_archive):
    kind, ready_when = _KILLED_WHEN[when]
    archive, image_id = big_archive[kind]
    root = str(tmp_path / "root")
    proc = subprocess.Popen([sys.executable, "-c", _LOADER, root, archive])
    assert _kill_when(proc, ready_when(root)), "the load ended before it could be killed"
    store = ImageStore(root)
    assert store.list() == [] and store.check() == []
    with open(archive, "rb") as f:
        assert load(store, f)[0]["Id"] == image_id
    assert store.check() == []
    assert store.content.ingests() == []
    assert [r["key"] for r in store.snapshots.walk()] == store.chain_ids(image_id)
    assert sorted(n for n in os.listdir(store.snapshots.root) if n.isdigit()) == \
        sorted(str(store.snapshots.stat(c)["id"]) for c in store.chain_ids(image_id))
    layer = store.get(image_id)["layers"][0]["digest"]
    assert store.content.exists(layer) == (kind == "blob")
    store.materialize(image_id)  # the blob made again from the recipe checks out
    store.close()


def _docker_archive(layers: list[bytes], diff_ids: list[str] | None = None) -> tuple[bytes, str]:
    """A docker-save tarball of uncompressed or gzip layers; return it and the image id."""
    if diff_ids is None:
        diff_ids = [_sha(gzip.decompress(x) if x[:2] == b"\x1f\x8b" else x) for x in layers]
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    files = {f"{_sha(config)[7:]}.json": config}
    for i, layer in enumerate(layers):
        files[f"l{i}/layer.tar"] = layer
    files["manifest.json"] = json.dumps([{"Config": f"{_sha(config)[7:]}.json",
                                          "RepoTags": ["big:1"],
                                          "Layers": list(files)[1:]}]).encode()
    return _tar_of(files), _sha(config)


_BIG = os.urandom(5 << 20)  # above the size that load keeps in memory


def test_big_layers_are_extracted_while_the_archive_is_read(store, monkeypatch):
    """One pass: a big layer is unpacked as it streams in, not again from its blob."""
    base = layer_tar([("etc", "dir", 0o755, b""), ("etc/big", "file", 0o644, _BIG),
                      ("etc/a", "file", 0o600, b"a")])
    top = gzip.compress(layer_tar([("etc/big2", "file", 0o644, _BIG[::-1]),
                                   ("etc/.wh.a", "file", 0o644, b"")]), 1)
    archive, image_id = _docker_archive([base, top])

    def no_second_pass(*args, **kwargs):
        raise AssertionError("a layer was unpacked from its blob after the archive was read")

    monkeypatch.setattr(unpack, "unpack_layer", no_second_pass)
    assert load(store, io.BytesIO(archive)) == [{"Id": image_id, "Names": ["docker.io/library/big:1"]}]
    chains = store.chain_ids(image_id)
    assert [r["key"] for r in store.snapshots.walk()] == chains
    assert [p["key"] for p in store.snapshots.parents(chains[1])] == chains[:1]
    with open(os.path.join(store.snapshots.path(chains[0]), "etc", "big"), "rb") as f:
        assert f.read() == _BIG
    with open(os.path.join(store.snapshots.path(chains[1]), "etc", "big2"), "rb") as f:
        assert f.read() == _BIG[::-1]
    assert stat.S_ISCHR(os.lstat(os.path.join(store.snapshots.path(chains[1]), "etc", "a")).st_mode)
    assert store.check() == [] and store.content.ingests() == []
    # loading it again extracts again (as docker does) but keeps one copy
    assert load(store, io.BytesIO(archive))[0]["Id"] == image_id
    assert [r["key"] for r in store.snapshots.walk()] == chains
    assert sorted(n for n in os.listdir(store.snapshots.root) if n.isdigit()) == \
        sorted(str(store.snapshots.stat(c)["id"]) for c in chains)


def test_big_hostile_layer_is_refused_and_leaves_nothing(store, tmp_path):
    evil = layer_tar([("big", "file", 0o644, _BIG), ("../escaped", "file", 0o644, b"x")])
    archive, _ = _docker_archive([evil])
    with pytest.raises(InvalidArgument, match="entry '../escaped': '..' in path"):
        load(store, io.BytesIO(archive))
    assert _empty(store)
    assert not os.path.exists(tmp_path / "escaped")
    assert not os.path.exists(os.path.join(store.snapshots.root, "escaped"))


@pytest.mark.parametrize("compressed", [False, True])
def test_big_layer_with_wrong_diff_id_leaves_nothing(store, compressed):
    good = layer_tar([("big", "file", 0o644, _BIG)])
    archive, _ = _docker_archive([gzip.compress(good, 1) if compressed else good],
                                 diff_ids=[_sha(b"something else")])
    with pytest.raises(InvalidArgument, match="mismatch: expected sha256:"):
        load(store, io.BytesIO(archive))
    assert _empty(store)


def test_archive_cut_inside_a_big_layer_leaves_nothing(store):
    layer = layer_tar([("big", "file", 0o644, _BIG), ("small", "file", 0o644, b"s")])
    archive, _ = _docker_archive([layer])
    cut = archive.index(_BIG[:64]) + (3 << 20)  # inside the big file, as it is extracted
    with pytest.raises(InvalidArgument, match="load: corrupt or truncated archive"):
        load(store, io.BytesIO(archive[:cut]))
    assert _empty(store)


@pytest.mark.parametrize("sink", ["ingest", "recorder", "recorder-switching"])
@pytest.mark.parametrize("after", [0, 2 << 20, 5 << 20])
def test_a_blob_write_that_fails_fails_the_load_and_leaves_nothing(store, monkeypatch, after,
                                                                   sink):
    """A big member's bytes are written by a thread of its own (to an ingest for a
    compressed layer, to a layer recipe's recorder for a plain one): its failure (here ENOSPC after `after`
    bytes: at once, mid-extraction, at the end) is the load's, raised in the loading
    thread, and the thread is gone."""
    import errno
    import threading

    from knarr.content.writer import Writer
    from knarr.snapshots import recipe
    entries = [("big", "file", 0o644, _BIG), ("small", "file", 0o644, b"s")]
    if sink == "recorder-switching":  # the extraction waits for the bytes of its switch
        entries.append(("small", "file", 0o644, b"again"))
    layer = layer_tar(entries)
    archive, _ = _docker_archive([gzip.compress(layer, 1) if sink == "ingest" else layer])
    cls = Writer if sink == "ingest" else recipe.Recorder
    real = cls.write

    def write(self, data):
        if self.offset + len(data) > after:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(cls, "write", write)
    with pytest.raises(OSError) as raised:
        load(store, io.BytesIO(archive))
    assert raised.value.errno == errno.ENOSPC
    assert _empty(store)
    assert not [t for t in threading.enumerate() if t.name == "load-blob-writer"]


@pytest.mark.parametrize("twice", [False, True])
def test_the_blob_of_a_big_member_holds_every_byte_read(store, twice):
    """Kept as a recipe (made again on demand) or, when a name comes twice, as a blob."""
    entries = [("big", "file", 0o644, _BIG), ("big2", "file", 0o600, _BIG[::-1])]
    layer = layer_tar(entries + ([("big", "file", 0o644, b"again")] if twice else []))
    archive, image_id = _docker_archive([layer])
    assert load(store, io.BytesIO(archive))[0]["Id"] == image_id
    digest = _sha(layer)
    assert store.content.exists(digest) == twice
    assert store.check() == []
    store.materialize(image_id)
    with store.content.open(digest) as blob:
        assert blob.read() == layer
    assert store.check() == []
