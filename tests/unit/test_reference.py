"""Image references, digests and image-spec helpers: parsing, normalising, validating."""

import pytest

from knarr.errors import InvalidArgument, NotFound
from knarr.oci import digest as digests
from knarr.oci import image_spec, reference

HEX = "a" * 64
DIGEST = f"sha256:{HEX}"


@pytest.mark.parametrize("text, full, familiar", [
    ("busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"),
    ("library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("docker.io/library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("index.docker.io/library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("user/app:v1", "docker.io/user/app:v1", "user/app:v1"),
    ("localhost/app", "localhost/app:latest", "localhost/app:latest"),
    ("localhost:5000/a/b:t", "localhost:5000/a/b:t", "localhost:5000/a/b:t"),
    ("quay.io/org/repo", "quay.io/org/repo:latest", "quay.io/org/repo:latest"),
    ("Registry/app", "Registry/app:latest", "Registry/app:latest"),
    ("[::1]:5000/app", "[::1]:5000/app:latest", "[::1]:5000/app:latest"),
    (f"busybox@{DIGEST}", f"docker.io/library/busybox@{DIGEST}", f"busybox@{DIGEST}"),
    (f"busybox:1@{DIGEST}", f"docker.io/library/busybox:1@{DIGEST}", f"busybox:1@{DIGEST}"),
    ("docker.io/a.b-c__d/e", "docker.io/a.b-c__d/e:latest", "a.b-c__d/e:latest"),
    ("x/y---z.w", "docker.io/x/y---z.w:latest", "x/y---z.w:latest"),
])
def test_parse_normalises(text, full, familiar):
    ref = reference.parse(text)
    assert str(ref) == full
    assert ref.familiar() == familiar
    assert reference.parse(full) == ref


def test_parts():
    ref = reference.parse(f"localhost:5000/a/b:t@{DIGEST}")
    assert (ref.domain, ref.path, ref.tag, ref.digest) == ("localhost:5000", "a/b", "t", DIGEST)
    assert ref.name == "localhost:5000/a/b"
    assert reference.parse("busybox").familiar_name == "busybox"
    assert reference.parse("busybox", default_tag=False).tag is None


def test_with_tag_and_digest():
    ref = reference.parse("busybox")
    assert str(ref.with_tag("x")) == "docker.io/library/busybox:x"
    assert str(ref.with_digest(DIGEST)) == f"docker.io/library/busybox@{DIGEST}"
    with pytest.raises(InvalidArgument, match="invalid tag"):
        ref.with_tag("-bad")


@pytest.mark.parametrize("text, problem", [
    ("", "empty"),
    ("Busybox", "lower-case"),
    ("busybox:", "invalid tag"),
    ("busybox:-x", "invalid tag"),
    ("busybox:" + "x" * 129, "invalid tag"),
    ("busybox@sha256:abc", "invalid digest"),
    ("busybox@md5:" + "a" * 32, "invalid digest"),
    ("a//b", "invalid repository path component ''"),
    ("a/b_-c", "invalid repository path component"),
    ("-a", "invalid repository path component"),
    ("bad_domain.com:5000/y", "invalid domain"),
    ("exa_mple.com/y", "invalid domain"),
    (HEX, "mistaken for an image id"),
    ("a/" + "b" * 300, "longer than 255"),
    ("a b", "invalid repository path component"),
])
def test_invalid_references_are_named(text, problem):
    with pytest.raises(InvalidArgument, match=problem) as info:
        reference.parse(text)
    assert repr(text)[:20].strip("'") in str(info.value) or text == ""
    assert info.value.context["reference"] == text


def test_looks_like_id():
    assert reference.looks_like_id(HEX) and reference.looks_like_id(DIGEST)
    assert not reference.looks_like_id("busybox")


def test_digest_validation():
    assert digests.validate(DIGEST) == DIGEST
    assert digests.hex_of(DIGEST) == HEX
    assert digests.from_hex(HEX) == DIGEST
    for bad, problem in [("sha256:" + "A" * 64, "64 lower-case"), ("sha256", "form"),
                         ("sha512:" + "a" * 128, "unsupported algorithm"), (5, "string")]:
        with pytest.raises(InvalidArgument, match=problem):
            digests.validate(bad)


def test_chain_ids_follow_the_spec():
    a, b = digests.sha256_of(b"a"), digests.sha256_of(b"b")
    assert digests.chain_ids([a]) == [a]
    assert digests.chain_ids([a, b]) == [a, digests.sha256_of(f"{a} {b}".encode())]


def _manifest(layer_type=image_spec.OCI_LAYER_GZIP):
    return {"schemaVersion": 2, "mediaType": image_spec.OCI_MANIFEST,
            "config": image_spec.descriptor(image_spec.OCI_CONFIG, DIGEST, 10),
            "layers": [image_spec.descriptor(layer_type, DIGEST, 3)]}


def test_manifest_validation_names_the_field():
    assert image_spec.validate_manifest(_manifest())
    bad = _manifest()
    bad["layers"][0]["size"] = -1
    with pytest.raises(InvalidArgument, match=r"manifest.layers\[0\].size"):
        image_spec.validate_manifest(bad)
    with pytest.raises(InvalidArgument, match="unsupported layer media type"):
        image_spec.validate_manifest(_manifest("text/plain"))
    bad = _manifest()
    bad["config"]["digest"] = "sha256:nothex"
    with pytest.raises(InvalidArgument, match=r"manifest.config.digest"):
        image_spec.validate_manifest(bad)


def test_config_validation():
    config = {"architecture": "amd64", "os": "linux",
              "rootfs": {"type": "layers", "diff_ids": [DIGEST]},
              "config": {"Cmd": ["sh"], "Env": ["A=1"]}}
    assert image_spec.validate_config(config)
    config["config"]["Cmd"] = "sh"
    with pytest.raises(InvalidArgument, match=r"config.config.Cmd"):
        image_spec.validate_config(config)
    with pytest.raises(InvalidArgument, match=r"config.rootfs"):
        image_spec.validate_config({"architecture": "amd64", "os": "linux"})


def test_layer_compression():
    assert image_spec.layer_compression(image_spec.DOCKER_LAYER) is None
    assert image_spec.layer_compression(image_spec.DOCKER_LAYER_GZIP) == "gzip"
    assert image_spec.layer_compression(image_spec.OCI_LAYER_ZSTD) == "zstd"


def _index(*platforms):
    return {"schemaVersion": 2, "manifests": [
        image_spec.descriptor(image_spec.OCI_MANIFEST, digests.sha256_of(p.encode()), 1,
                              platform=dict(zip(("os", "architecture", "variant"),
                                                p.split("/"), strict=False)))
        for p in platforms]}


def test_platform_selection():
    index = image_spec.validate_index(_index("linux/arm/v6", "linux/arm/v7", "linux/amd64",
                                             "linux/arm64/v8", "windows/amd64"))
    amd64 = image_spec.platform_of_machine("x86_64")
    assert image_spec.select_manifest(index, amd64)["platform"]["architecture"] == "amd64"
    arm = image_spec.platform_of_machine("armv7l")
    assert image_spec.select_manifest(index, arm)["platform"]["variant"] == "v7"
    arm64 = image_spec.Platform.parse("linux/aarch64")
    assert str(arm64) == "linux/arm64/v8"
    assert image_spec.select_manifest(index, arm64)["platform"]["architecture"] == "arm64"
    with pytest.raises(NotFound, match="no manifest for platform linux/s390x"):
        image_spec.select_manifest(index, image_spec.Platform.parse("linux/s390x"))
    with pytest.raises(InvalidArgument, match="expected os/arch"):
        image_spec.Platform.parse("linux")
