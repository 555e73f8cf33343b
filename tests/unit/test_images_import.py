"""import: a one-layer image of a root file system tarball, with Dockerfile-style changes."""

import gzip
import hashlib
import io
import os

import pytest

from knarr.errors import InvalidArgument
from knarr.images import ImageStore, apply_changes, import_image, layer_tar
from knarr.images.builtin import apt_mirror


@pytest.fixture
def store(tmp_path):
    s = ImageStore(str(tmp_path / "root"))
    yield s
    s.close()


def test_changes_set_the_run_config():
    config = apply_changes({"Env": ["PATH=/bin", "A=old"]}, [
        'CMD ["sh", "-c", "echo hi"]', "ENTRYPOINT /init", 'ENV A=new B="two words"',
        "ENV LEGACY some value", "WORKDIR /srv", "USER 1000:1000", "EXPOSE 80 53/udp",
        'LABEL org.example.a=1 "b=two words"', "VOLUME /data /cache", "STOPSIGNAL SIGINT"])
    assert config["Cmd"] == ["sh", "-c", "echo hi"]
    assert config["Entrypoint"] == ["/bin/sh", "-c", "/init"]
    assert config["Env"] == ["PATH=/bin", "A=new", "B=two words", "LEGACY=some value"]
    assert config["WorkingDir"] == "/srv" and config["User"] == "1000:1000"
    assert config["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert config["Labels"] == {"org.example.a": "1", "b": "two words"}
    assert config["Volumes"] == {"/data": {}, "/cache": {}}
    assert config["StopSignal"] == "SIGINT"


@pytest.mark.parametrize("change", ["RUN echo", "CMD", "CMD [1, 2]", "CMD [oops"])
def test_bad_changes_are_refused(change):
    with pytest.raises(InvalidArgument, match="import: "):
        apply_changes({}, [change])


@pytest.mark.parametrize("compress", [False, True])
def test_import_of_a_tarball(store, compress):
    plain = layer_tar([("etc", "dir", 0o755, b""), ("etc/motd", "file", 0o644, b"imported\n")])
    data = gzip.compress(plain) if compress else plain
    image_id = import_image(store, io.BytesIO(data), ["example/rootfs:1"],
                            ["CMD /bin/true", "ENV X=1"], message="from a test")
    info = store.inspect("example/rootfs:1")
    assert info["Id"] == image_id
    assert info["RootFS"]["Layers"] == ["sha256:" + hashlib.sha256(plain).hexdigest()]
    assert info["Config"] == {"Cmd": ["/bin/sh", "-c", "/bin/true"], "Env": ["X=1"]}
    assert store.history(image_id)[0]["Comment"] == "from a test"
    top = store.snapshots.path(store.chain_ids(image_id)[-1])
    assert open(os.path.join(top, "etc/motd")).read() == "imported\n"
    assert store.check() == []


def test_import_of_a_hostile_tarball_leaves_nothing(store):
    import tarfile
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        info = tarfile.TarInfo("../escape")
        t.addfile(info, io.BytesIO(b""))
    with pytest.raises(InvalidArgument, match="entry '../escape': '..' in path"):
        import_image(store, io.BytesIO(buf.getvalue()), ["bad:1"])
    assert store.list() == [] and list(store.content.walk()) == []
    assert store.snapshots.walk() == []


def test_apt_mirror_reads_both_source_formats(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text("# nothing\n")
    (tmp_path / "sources.list.d/debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\n")
    assert apt_mirror(str(tmp_path)) == "http://mirror.example/debian"
    (tmp_path / "sources.list").write_text("deb [arch=amd64] http://old.example/debian main\n")
    assert apt_mirror(str(tmp_path)) == "http://old.example/debian"
