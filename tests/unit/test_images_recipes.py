"""Layer recipes: a loaded uncompressed layer kept as its snapshot's files plus the rest of
its tar, made again (and checked against its digest) when a save, push or check needs it."""

import gzip
import hashlib
import io
import json
import os
import random
import struct
import tarfile

import pytest

from knarr.errors import FailedPrecondition, InvalidArgument
from knarr.images import ImageStore, layer_tar, load, save
from knarr.snapshots import RECIPE_FORMAT, RECIPE_LABEL, apply_layer, recipe


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def store(tmp_path):
    s = ImageStore(str(tmp_path / "root"))
    yield s
    s.close()


def _add(t: tarfile.TarFile, name: str, kind=tarfile.REGTYPE, data=b"", **fields) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.mode, info.mtime = kind, len(data), 0o644, 1700000000
    for key, value in fields.items():
        setattr(info, key, value)
    t.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def _varied(fmt: int) -> bytes:
    """A tar with every kind of entry and extension a layer has."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        _add(t, "etc", tarfile.DIRTYPE, mode=0o755)
        _add(t, "etc/empty")
        _add(t, "etc/odd", data=b"x" * 513)
        _add(t, "etc/block", data=os.urandom(4096))
        _add(t, "etc/" + "long-name-" * 20, data=b"long")
        _add(t, "etc/" + "d" * 120 + "/f", data=b"deep")
        _add(t, "etc/link", tarfile.LNKTYPE, linkname="etc/odd")
        _add(t, "etc/sym", tarfile.SYMTYPE, linkname="odd")
        _add(t, "etc/big", data=os.urandom(3 << 20), uid=1000, gid=100, uname="u" * 40)
        _add(t, "etc/.wh.gone")
        _add(t, "usr/lib/x", data=b"implied parents")
        if fmt == tarfile.PAX_FORMAT:
            _add(t, "etc/xattr", data=b"x", pax_headers={"SCHILY.xattr.user.k": "v"})
            _add(t, "etc/ünïcode", data=b"u")
    return buf.getvalue() + bytes(2048)  # more end blocks than tarfile writes


class _Blob:
    """What a recorder switches to: bytes in memory."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data) -> None:
        self.data += data

    def abort(self) -> None:
        pass


class _Tee:
    """Reads `tar` in pieces of random sizes, giving each to the recorder as it goes
    (the recorder keeping the largest window it held)."""

    def __init__(self, tar: bytes, recorder: recipe.Recorder, seed: int = 0) -> None:
        self.data, self.at, self.recorder = tar, 0, recorder
        self.random = random.Random(seed)
        self.held = 0

    def read(self, n: int = -1) -> bytes:
        n = len(self.data) if n < 0 else min(n, self.random.randint(1, 300_000))
        out = self.data[self.at:self.at + n]
        self.at += len(out)
        if out:
            self.recorder.write(out)
            self.held = max(self.held, sum(len(c) for _, c in self.recorder.chunks))
        return out


def _record(tmp_path, tar: bytes, seed: int = 0) -> tuple[recipe.Recorder, str, _Tee]:
    fs = tmp_path / f"fs{seed}"
    fs.mkdir()
    blob = _Blob()
    recorder = recipe.Recorder(lambda: blob)
    tee = _Tee(tar, recorder, seed)
    applied = apply_layer(str(fs), tee, recorder=recorder)
    tee.read()
    assert applied.diff_id == _sha(tar) and recorder.digest() == _sha(tar)
    return recorder, str(fs), tee


def _recipe_of(tmp_path, tar: bytes, seed: int = 0) -> tuple[str, str]:
    """Apply `tar` to a fresh directory, recording its recipe; (recipe path, fs)."""
    recorder, fs, _ = _record(tmp_path, tar, seed)
    data = recorder.finish()
    assert data is not None and recorder.mode == "recipe"
    path = str(tmp_path / f"layer{seed}.recipe")
    recipe.save(path, data)
    return path, fs


def _regenerated(path: str, fs: str) -> bytes:
    out = io.BytesIO()
    size = recipe.regenerate(path, fs, out.write)
    assert size == len(out.getvalue())
    return out.getvalue()


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT])
def test_a_recipe_makes_the_same_tar_again(tmp_path, fmt):
    if fmt == tarfile.USTAR_FORMAT:
        tar = layer_tar([("a", "dir", 0o755, b""), ("a/b", "file", 0o600, b"b" * 1000)])
    else:
        tar = _varied(fmt)
    for seed in range(4):  # the tar given to the recorder in pieces of other sizes
        path, fs = _recipe_of(tmp_path, tar, seed)
        assert _regenerated(path, fs) == tar
    records, total, digest = recipe.parse(open(path, "rb").read())
    assert total == len(tar) and digest == _sha(tar)
    # the recipe holds what is not file data: far less than the tar
    assert os.path.getsize(path) < len(tar) // 4 or len(tar) < 50_000


def test_a_damaged_recipe_is_refused(tmp_path):
    tar = layer_tar([("a", "file", 0o644, b"a" * 700), ("b", "file", 0o644, b"b")])
    path, fs = _recipe_of(tmp_path, tar)
    good = open(path, "rb").read()
    for cut in range(len(good)):
        with pytest.raises(InvalidArgument, match="layer recipe"):
            recipe.parse(good[:cut])
    first = len(recipe.MAGIC)  # the first record's kind
    for bad in (b"X" + good[1:], good + b"E", good[:first] + b"Q" + good[first + 1:]):
        with pytest.raises(InvalidArgument, match="layer recipe"):
            recipe.parse(bad)


def test_regenerate_refuses_files_that_are_not_as_recorded(tmp_path):
    tar = layer_tar([("d", "dir", 0o755, b""), ("d/a", "file", 0o644, b"a" * 700),
                     ("b", "file", 0o644, b"bb")])
    path, fs = _recipe_of(tmp_path, tar)
    with open(os.path.join(fs, "b"), "ab") as f:
        f.write(b"!")  # longer
    with pytest.raises(InvalidArgument, match="b: not a regular file of 2 bytes"):
        _regenerated(path, fs)
    os.unlink(os.path.join(fs, "b"))
    with pytest.raises(InvalidArgument, match="b: No such file"):
        _regenerated(path, fs)
    os.rename(os.path.join(fs, "d"), os.path.join(fs, "e"))
    os.symlink("e", os.path.join(fs, "d"))  # never followed
    with pytest.raises(InvalidArgument, match="layer recipe: d/a"):
        _regenerated(path, fs)


def test_regenerate_refuses_a_path_out_of_the_snapshot(tmp_path):
    (tmp_path / "fs").mkdir()
    (tmp_path / "secret").write_bytes(b"s")
    name = b"../secret"
    data = recipe.MAGIC + b"F" + struct.pack("<QI", 1, len(name)) + name + b"E" + \
        struct.pack("<Q", 1) + bytes(32)
    path = tmp_path / "r"
    path.write_bytes(data)
    with pytest.raises(InvalidArgument, match="not a plain path"):
        recipe.regenerate(str(path), str(tmp_path / "fs"), lambda b: None)


def test_the_recorder_holds_a_window_not_the_tar(tmp_path):
    entries = [("d", "dir", 0o755, b"")]
    for i in range(40):
        entries += [(f"d/big{i}", "file", 0o644, os.urandom(1 << 20)),
                    (f"d/small{i}", "file", 0o644, b"s" * i)]
    tar = layer_tar(entries)
    recorder, fs, tee = _record(tmp_path, tar)
    assert tee.held < (3 << 20)  # about a big file and a piece, of 41 MB
    path = str(tmp_path / "r")
    recipe.save(path, recorder.finish())
    assert _regenerated(path, fs) == tar


_UNREPRODUCIBLE = [
    [("a", "file", 0o644, b"1" * 700), ("b", "file", 0o644, b"b"), ("a", "file", 0o644, b"2")],
    [("d", "dir", 0o755, b""), ("d/a", "file", 0o644, b"1"), ("d/.wh.a", "file", 0o644, b"")],
    [("d/a", "file", 0o644, b"1"), ("d/a", "dir", 0o755, b"")],  # a file replaced
    [("x", "file", 0o644, os.urandom(3 << 20)), ("d", "dir", 0o755, b""),
     ("d/a", "file", 0o644, b"1"), ("d", "file", 0o644, b"a dir replaced")],
]


@pytest.mark.parametrize("entries", _UNREPRODUCIBLE)
def test_a_layer_whose_files_do_not_make_it_switches_to_its_blob(tmp_path, entries):
    """Before the entry that replaces or removes something, the recorder writes what
    came before (made from the files) and then the rest: the blob is the tar."""
    tar = layer_tar(entries)
    for seed in range(3):
        fs = tmp_path / f"fs{seed}"
        fs.mkdir()
        blob = _Blob()
        recorder = recipe.Recorder(lambda b=blob: b)
        tee = _Tee(tar, recorder, seed)
        assert apply_layer(str(fs), tee, recorder=recorder).files is None
        tee.read()
        assert recorder.finish() is None and recorder.mode == "blob"
        assert bytes(blob.data) == tar
        plain = tmp_path / f"plain{seed}"
        plain.mkdir()
        assert apply_layer(str(plain), io.BytesIO(tar)).files is None


def test_a_target_that_was_not_empty_has_no_files(tmp_path):
    (tmp_path / "x").write_bytes(b"")
    tar = layer_tar([("a", "file", 0o644, b"1")])
    assert apply_layer(str(tmp_path), io.BytesIO(tar)).files is None
    blob = _Blob()
    recorder = recipe.Recorder(lambda: blob)
    tee = _Tee(tar, recorder)
    apply_layer(str(tmp_path), tee, recorder=recorder)
    tee.read()
    assert recorder.finish() is None and bytes(blob.data) == tar


def test_a_recorder_that_lost_its_extraction_keeps_nothing(tmp_path):
    tar = layer_tar([("a", "file", 0o644, b"1"), ("../escape", "file", 0o644, b"x")])
    (tmp_path / "fs").mkdir()
    recorder = recipe.Recorder(_Blob)
    tee = _Tee(tar, recorder)
    with pytest.raises(InvalidArgument, match="'..' in path"):
        apply_layer(str(tmp_path / "fs"), tee, recorder=recorder)
    recorder.lose()
    tee.read()
    assert recorder.finish() is None and recorder.digest() == _sha(tar)
    assert not recorder.chunks and recorder.blob is None


# -- the store ------------------------------------------------------------------

def _docker_archive(layers: list[bytes], tags=("big:1",), repeat: int = 1) -> tuple[bytes, str]:
    """A docker-save tarball of uncompressed or gzip layers; (bytes, image id)."""
    diff_ids = [_sha(gzip.decompress(x) if x[:2] == b"\x1f\x8b" else x) for x in layers]
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    files = {f"{_sha(config)[7:]}.json": config}
    for i, layer in enumerate(layers):
        files[f"l{i}/layer.tar"] = layer
    files["manifest.json"] = json.dumps([{"Config": f"{_sha(config)[7:]}.json",
                                          "RepoTags": list(tags),
                                          "Layers": list(files)[1:]}]).encode()
    return layer_tar([(name, "file", 0o644, data) for name, data in files.items()]), \
        _sha(config)


_BIG = os.urandom(5 << 20)  # above the size load keeps in memory without looking


def _plain(tag: str = "x") -> bytes:
    return layer_tar([("etc", "dir", 0o755, b""), ("etc/big", "file", 0o644, _BIG),
                      ("etc/tag", "file", 0o644, tag.encode()),
                      ("etc/" + "n" * 150, "file", 0o644, b"long name")])


def _saved_layers(store, ref: str) -> list[bytes]:
    out = io.BytesIO()
    save(store, [ref], out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as t:
        manifest = json.loads(t.extractfile("manifest.json").read())
        return [t.extractfile(p).read() for p in manifest[0]["Layers"]]


def test_a_loaded_plain_layer_is_kept_as_a_recipe(store):
    layer = _plain()
    archive, image_id = _docker_archive([layer])
    assert load(store, io.BytesIO(archive))[0]["Id"] == image_id
    chain = store.chain_ids(image_id)[0]
    assert not store.content.exists(_sha(layer))
    assert store.snapshots.stat(chain)["labels"][RECIPE_LABEL] == RECIPE_FORMAT
    assert os.path.getsize(store.snapshots.recipe_path(chain)) < 30_000
    assert store.check() == [] and store.content.ingests() == []
    assert _saved_layers(store, "big:1") == [layer]  # made again, checked, stored
    assert store.content.exists(_sha(layer)) and store.check() == []


def test_rmi_removes_the_snapshot_and_its_recipe(store):
    archive, image_id = _docker_archive([_plain()])
    load(store, io.BytesIO(archive))
    number = str(store.snapshots.stat(store.chain_ids(image_id)[0])["id"])
    store.remove("big:1")
    assert store.snapshots.walk() == []
    assert not os.path.exists(os.path.join(store.snapshots.root, number))
    assert list(store.content.walk()) == []


@pytest.mark.parametrize("damage", ["byte", "removed", "recipe"])
def test_a_snapshot_changed_since_is_caught_by_check_and_save(store, damage):
    layer = _plain()
    archive, image_id = _docker_archive([layer])
    load(store, io.BytesIO(archive))
    chain = store.chain_ids(image_id)[0]
    big = os.path.join(store.snapshots.path(chain), "etc", "big")
    if damage == "byte":
        with open(big, "r+b") as f:
            f.seek(1 << 20)
            byte = f.read(1)
            f.seek(1 << 20)
            f.write(bytes([byte[0] ^ 1]))
    elif damage == "removed":
        os.unlink(big)
    else:
        with open(store.snapshots.recipe_path(chain), "r+b") as f:
            f.truncate(100)
    problems = store.check()
    assert len(problems) == 1
    assert problems[0].startswith(f"image {image_id}: layer {_sha(layer)}: snapshot {chain}")
    with pytest.raises(FailedPrecondition,
                       match=f"image {image_id}: layer {_sha(layer)}: snapshot {chain} no "
                             "longer makes the layer it was stored as"):
        save(store, ["big:1"], io.BytesIO())
    assert not store.content.exists(_sha(layer)) and store.content.ingests() == []


@pytest.mark.parametrize("case", ["twice", "whiteout", "gzip"])
def test_layers_a_recipe_cannot_make_keep_their_blob(store, case):
    if case == "twice":
        layer = layer_tar([("big", "file", 0o644, _BIG), ("big", "file", 0o644, b"2")])
    elif case == "whiteout":
        layer = layer_tar([("d", "dir", 0o755, b""), ("d/big", "file", 0o644, _BIG),
                           ("d/.wh.big", "file", 0o644, b"")])
    else:
        layer = gzip.compress(_plain(), 1)
    archive, image_id = _docker_archive([layer])
    assert load(store, io.BytesIO(archive))[0]["Id"] == image_id
    chain = store.chain_ids(image_id)[0]
    assert store.content.exists(_sha(layer))
    assert RECIPE_LABEL not in store.snapshots.stat(chain)["labels"]
    assert not os.path.exists(store.snapshots.recipe_path(chain))
    assert store.check() == []


def test_the_same_layer_in_two_chains_of_one_load(store):
    shared, other = _plain("shared"), _plain("other")
    first, first_id = _docker_archive([shared], tags=("one:1",))
    second, second_id = _docker_archive([other, shared], tags=("two:1",))
    load(store, io.BytesIO(first))
    load(store, io.BytesIO(second))
    assert store.check() == []
    assert _saved_layers(store, "one:1") == [shared]
    assert _saved_layers(store, "two:1") == [other, shared]
    assert store.check() == []


def test_a_chain_unpacked_before_without_a_recipe_keeps_the_blob(store):
    """The chain exists (from a gzip layer of the same diff_id): the plain layer's blob
    is stored, since that snapshot has no recipe."""
    layer = _plain()
    zipped, _ = _docker_archive([gzip.compress(layer, 1)], tags=("zipped:1",))
    plain, plain_id = _docker_archive([layer], tags=("plain:1",))
    load(store, io.BytesIO(zipped))
    load(store, io.BytesIO(plain))
    assert store.content.exists(_sha(layer))
    assert store.check() == []
    assert _saved_layers(store, "plain:1") == [layer]


def test_loading_again_keeps_the_first_recipe(store):
    layer = _plain()
    archive, image_id = _docker_archive([layer])
    load(store, io.BytesIO(archive))
    load(store, io.BytesIO(archive))
    assert not store.content.exists(_sha(layer))
    assert len(store.snapshots.walk()) == 1 and store.check() == []
    assert _saved_layers(store, "big:1") == [layer]


def test_a_recipe_counts_in_the_snapshot_usage(store):
    archive, image_id = _docker_archive([_plain()])
    load(store, io.BytesIO(archive))
    chain = store.chain_ids(image_id)[0]
    with_recipe = store.snapshots.usage(chain)[0]
    os.unlink(store.snapshots.recipe_path(chain))
    assert with_recipe > store.snapshots.usage(chain)[0]


def test_a_build_cache_entry_on_a_recipe_layer_is_a_hit(store, tmp_path):
    """A step cached on a loaded image's layers stays a hit while the snapshot that
    makes the layer exists (a build FROM a loaded image)."""
    from knarr.build.cache import Cache
    layer = _plain()
    archive, image_id = _docker_archive([layer])
    load(store, io.BytesIO(archive))
    row = store.get(image_id)
    config = json.loads(store.content.read(image_id))
    cache = Cache(str(tmp_path / "cache"), store.content, store.snapshots)
    cache.put("k", config, row["layers"])
    assert not store.content.exists(_sha(layer))
    assert cache.get("k") == (config, row["layers"])
    store.remove("big:1")
    assert cache.get("k") is None
