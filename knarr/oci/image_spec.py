"""Image-spec data: media types, descriptors, manifests, indexes, configs, platforms.

Covers the OCI image spec and Docker's image manifest v2 schema 2 (with its
manifest list), which name the same structures with different media types.
Documents stay plain dicts (the JSON as parsed) so that unknown fields
survive; the validators check the fields knarr acts on and name the one
that is wrong.
"""

from knarr.errors import InvalidArgument, NotFound
from knarr.oci import digest as digests

__all__ = [
    "OCI_MANIFEST", "OCI_INDEX", "OCI_CONFIG", "OCI_LAYER", "OCI_LAYER_GZIP",
    "OCI_LAYER_ZSTD", "OCI_LAYOUT_VERSION",
    "DOCKER_MANIFEST", "DOCKER_MANIFEST_LIST", "DOCKER_CONFIG", "DOCKER_LAYER",
    "DOCKER_LAYER_GZIP", "DOCKER_FOREIGN_LAYER",
    "MANIFEST_TYPES", "INDEX_TYPES", "CONFIG_TYPES", "LAYER_TYPES",
    "ANNOTATION_REF_NAME", "ANNOTATION_IMAGE_NAME",
    "layer_compression", "descriptor", "validate_descriptor", "validate_manifest",
    "validate_index", "validate_config", "is_manifest", "is_index",
    "Platform", "platform_of_machine", "select_manifest",
]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_ND = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_ND_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYOUT_VERSION = "1.0.0"

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
CONFIG_TYPES = (OCI_CONFIG, DOCKER_CONFIG)
_LAYER_COMPRESSION = {
    OCI_LAYER: None, OCI_LAYER_ND: None, DOCKER_LAYER: None,
    OCI_LAYER_GZIP: "gzip", OCI_LAYER_ND_GZIP: "gzip", DOCKER_LAYER_GZIP: "gzip",
    DOCKER_FOREIGN_LAYER: "gzip", OCI_LAYER_ZSTD: "zstd",
}
LAYER_TYPES = tuple(_LAYER_COMPRESSION)

ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
# containerd writes the full image name here; knarr reads and writes it too.
ANNOTATION_IMAGE_NAME = "io.containerd.image.name"


def _fail(where: str, problem: str) -> InvalidArgument:
    return InvalidArgument(f"{where}: {problem}", field=where)


def layer_compression(media_type: str) -> str | None:
    """'gzip', 'zstd' or None (plain tar) for a layer media type."""
    if media_type not in _LAYER_COMPRESSION:
        raise _fail("layer", f"unsupported layer media type {media_type!r}")
    return _LAYER_COMPRESSION[media_type]


def is_manifest(media_type: str | None) -> bool:
    """True for an image manifest media type (OCI or Docker)."""
    return media_type in MANIFEST_TYPES


def is_index(media_type: str | None) -> bool:
    """True for an index or manifest list media type."""
    return media_type in INDEX_TYPES


def descriptor(media_type: str, digest: str, size: int, **extra: object) -> dict:
    """A descriptor dict; `extra` adds platform, annotations and the like."""
    out = {"mediaType": media_type, "digest": digests.validate(digest), "size": size}
    out.update({k: v for k, v in extra.items() if v is not None})
    return out


def validate_descriptor(desc: object, where: str) -> dict:
    """Check mediaType, digest and size of a descriptor; return it."""
    if not isinstance(desc, dict):
        raise _fail(where, f"expected object, got {type(desc).__name__}")
    if not isinstance(desc.get("mediaType"), str):
        raise _fail(f"{where}.mediaType", "missing or not a string")
    try:
        digests.validate(desc.get("digest"), f"{where}.digest")
    except InvalidArgument as exc:
        raise _fail(f"{where}.digest", exc.message) from exc
    size = desc.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise _fail(f"{where}.size", f"expected a non-negative integer, got {size!r}")
    return desc


def validate_manifest(manifest: object, where: str = "manifest") -> dict:
    """Check an image manifest's schema version, config and layers."""
    if not isinstance(manifest, dict):
        raise _fail(where, f"expected object, got {type(manifest).__name__}")
    if manifest.get("schemaVersion") != 2:
        raise _fail(f"{where}.schemaVersion", f"expected 2, got {manifest.get('schemaVersion')!r}")
    media_type = manifest.get("mediaType", OCI_MANIFEST)
    if not is_manifest(media_type):
        raise _fail(f"{where}.mediaType", f"not an image manifest: {media_type!r}")
    validate_descriptor(manifest.get("config"), f"{where}.config")
    layers = manifest.get("layers")
    if not isinstance(layers, list):
        raise _fail(f"{where}.layers", "missing or not an array")
    for i, layer in enumerate(layers):
        validate_descriptor(layer, f"{where}.layers[{i}]")
        layer_compression(layer["mediaType"])
    return manifest


def validate_index(index: object, where: str = "index") -> dict:
    """Check an index / manifest list and each descriptor in it."""
    if not isinstance(index, dict):
        raise _fail(where, f"expected object, got {type(index).__name__}")
    if index.get("schemaVersion") != 2:
        raise _fail(f"{where}.schemaVersion", f"expected 2, got {index.get('schemaVersion')!r}")
    manifests = index.get("manifests")
    if not isinstance(manifests, list):
        raise _fail(f"{where}.manifests", "missing or not an array")
    for i, desc in enumerate(manifests):
        validate_descriptor(desc, f"{where}.manifests[{i}]")
    return index


def validate_config(config: object, where: str = "config") -> dict:
    """Check an image config: os, architecture, rootfs.diff_ids and the run config."""
    if not isinstance(config, dict):
        raise _fail(where, f"expected object, got {type(config).__name__}")
    for key in ("architecture", "os"):
        if not isinstance(config.get(key), str):
            raise _fail(f"{where}.{key}", "missing or not a string")
    rootfs = config.get("rootfs")
    if not isinstance(rootfs, dict) or rootfs.get("type") != "layers":
        raise _fail(f"{where}.rootfs", "expected an object with type 'layers'")
    diff_ids = rootfs.get("diff_ids")
    if not isinstance(diff_ids, list):
        raise _fail(f"{where}.rootfs.diff_ids", "missing or not an array")
    for i, diff_id in enumerate(diff_ids):
        try:
            digests.validate(diff_id)
        except InvalidArgument as exc:
            raise _fail(f"{where}.rootfs.diff_ids[{i}]", exc.message) from exc
    _validate_run_config(config.get("config") or {}, f"{where}.config")
    return config


def _validate_run_config(run: object, where: str) -> None:
    if not isinstance(run, dict):
        raise _fail(where, f"expected object, got {type(run).__name__}")
    for key in ("Env", "Cmd", "Entrypoint"):
        value = run.get(key)
        if value is not None and not (isinstance(value, list)
                                      and all(isinstance(v, str) for v in value)):
            raise _fail(f"{where}.{key}", "expected an array of strings")
    for key in ("User", "WorkingDir", "StopSignal"):
        if run.get(key) is not None and not isinstance(run[key], str):
            raise _fail(f"{where}.{key}", "expected a string")
    for key in ("ExposedPorts", "Volumes", "Labels"):
        if run.get(key) is not None and not isinstance(run[key], dict):
            raise _fail(f"{where}.{key}", "expected an object")


# Machine names as uname reports them, mapped to OCI architecture and variant.
_MACHINES = {
    "x86_64": ("amd64", None), "amd64": ("amd64", None),
    "aarch64": ("arm64", "v8"), "arm64": ("arm64", "v8"),
    "armv7l": ("arm", "v7"), "armv6l": ("arm", "v6"),
    "i386": ("386", None), "i686": ("386", None),
    "ppc64le": ("ppc64le", None), "s390x": ("s390x", None), "riscv64": ("riscv64", None),
}


class Platform:
    """An os/architecture/variant triple, as written `linux/arm64/v8`."""

    def __init__(self, os: str, architecture: str, variant: str | None = None) -> None:
        self.os = os
        self.architecture = architecture
        self.variant = variant or _default_variant(architecture)

    @classmethod
    def parse(cls, text: str) -> "Platform":
        """Parse `os/arch[/variant]`; raise InvalidArgument naming it when malformed."""
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise InvalidArgument(f"platform {text!r}: expected os/arch[/variant]", platform=text)
        arch = _MACHINES.get(parts[1], (parts[1], None))[0]
        return cls(parts[0], arch, parts[2] if len(parts) == 3 else None)

    @classmethod
    def of(cls, desc_platform: dict) -> "Platform":
        """The platform of a descriptor's `platform` field or an image config."""
        return cls(desc_platform.get("os", ""), desc_platform.get("architecture", ""),
                   desc_platform.get("variant"))

    def matches(self, other: "Platform") -> bool:
        """True if an image for `other` runs here (same os and arch; variant no newer)."""
        if (self.os, self.architecture) != (other.os, other.architecture):
            return False
        if not other.variant or not self.variant:
            return True
        return _variant_rank(other.variant) <= _variant_rank(self.variant)

    def __str__(self) -> str:
        tail = f"/{self.variant}" if self.variant else ""
        return f"{self.os}/{self.architecture}{tail}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Platform) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))


def _default_variant(architecture: str) -> str | None:
    return "v8" if architecture == "arm64" else None


def _variant_rank(variant: str) -> int:
    digits = variant.lstrip("v")
    return int(digits) if digits.isdigit() else 0


def platform_of_machine(machine: str, os: str = "linux") -> Platform:
    """The platform of a machine name as `uname -m` prints it."""
    arch, variant = _MACHINES.get(machine, (machine, None))
    return Platform(os, arch, variant)


def select_manifest(index: dict, want: Platform) -> dict:
    """The descriptor in an index that best fits `want`; NotFound if none does."""
    best, best_rank = None, -1
    for desc in index.get("manifests", []):
        if not is_manifest(desc.get("mediaType")) or "platform" not in desc:
            continue
        have = Platform.of(desc["platform"])
        if want.matches(have):
            rank = _variant_rank(have.variant) if have.variant else 0
            if rank > best_rank:
                best, best_rank = desc, rank
    if best is None:
        offered = sorted(str(Platform.of(d["platform"])) for d in index.get("manifests", [])
                         if "platform" in d)
        raise NotFound(f"no manifest for platform {want} (index offers {offered})",
                       platform=str(want))
    return best
