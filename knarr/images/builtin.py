"""Images knarr makes without a registry: hello-world, busybox and Debian.

hello-world and busybox are single-layer images built from a layer tar made
here in memory, with fixed times, so the same inputs always give the same
image id. `hello_world` needs nothing but knarr; `busybox` copies the host's
static busybox (Debian package busybox-static) and links every applet it
lists. `debian` runs debootstrap (Debian package debootstrap) against the
Debian mirror this machine's apt uses, and imports the tree it makes.
"""

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile

from knarr.errors import Unavailable
from knarr.images.elf import static_writer
from knarr.images.imports import import_image
from knarr.images.store import ImageStore
from knarr.oci import image_spec, reference

__all__ = ["GREETING", "hello_world", "busybox", "debian", "build_image", "layer_tar",
           "apt_mirror"]

_EPOCH = 1_704_067_200  # 2024-01-01T00:00:00Z: fixed, so builds are reproducible
_CREATED = "2024-01-01T00:00:00Z"
_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}

GREETING = b"""
Hello from knarr!

If you can read this, your knarr installation works. Here is what it just did:

 1. The knarr client passed your request to the knarr daemon.
 2. The daemon looked for the image "hello-world" and found it in its own
    store. No registry was asked: this image is built into knarr, and its
    one layer holds a program of a few hundred bytes that knarr wrote out
    itself, instruction by instruction.
 3. The daemon made a new container from the image: a root file system of
    its own stacked on the image's layer, and fresh namespaces around it.
 4. The container started that program. It made exactly two system calls:
    one to write these lines, one to exit.
 5. The daemon carried the program's output back to the client, which
    printed it here, on your terminal.

For something you can poke at, start a shell in a busybox container:
 $ knarr run -it busybox sh
"""


def _info(name: str, kind: bytes, mode: int, **extra: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = kind, mode, _EPOCH
    for key, value in extra.items():
        setattr(info, key, value)
    return info


def layer_tar(entries: list[tuple]) -> bytes:
    """A layer tar of (name, 'dir'|'file'|'sym', mode, payload-or-target) entries."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, kind, mode, payload in entries:
            if kind == "dir":
                archive.addfile(_info(name, tarfile.DIRTYPE, mode))
            elif kind == "sym":
                archive.addfile(_info(name, tarfile.SYMTYPE, 0o777, linkname=payload))
            else:
                archive.addfile(_info(name, tarfile.REGTYPE, mode, size=len(payload)),
                                io.BytesIO(payload))
    return buf.getvalue()


def build_image(store: ImageStore, layer: bytes, run_config: dict, names: list[str],
                machine: str, created_by: str) -> str:
    """Store a single-layer image from an uncompressed layer tar; return its id."""
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = {
        "architecture": _ARCH.get(machine, machine), "os": "linux", "created": _CREATED,
        "config": run_config,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": _CREATED, "created_by": created_by}],
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    layer_digest = store.content.put(layer, expected=diff_id)
    manifest = {
        "schemaVersion": 2, "mediaType": image_spec.OCI_MANIFEST,
        "config": image_spec.descriptor(image_spec.OCI_CONFIG,
                                        "sha256:" + hashlib.sha256(config_bytes).hexdigest(),
                                        len(config_bytes)),
        "layers": [image_spec.descriptor(image_spec.OCI_LAYER, layer_digest, len(layer))],
    }
    return store.register(json.dumps(manifest, sort_keys=True).encode(), config_bytes,
                          names, label=names[0] if names else "built-in image")


def hello_world(store: ImageStore, machine: str | None = None,
                name: str = "hello-world:latest") -> str:
    """Build the hello-world image for `machine` (default: this one); return its id."""
    machine = machine or os.uname().machine
    program = static_writer(GREETING, machine)
    layer = layer_tar([("hello", "file", 0o755, program)])
    return build_image(store, layer, {"Cmd": ["/hello"], "Env": [_PATH]},
                       [str(reference.parse(name))], machine,
                       "knarr: built-in hello-world (a static program knarr assembles)")


_DIRS = [("bin", 0o755), ("dev", 0o755), ("etc", 0o755), ("home", 0o755), ("proc", 0o555),
         ("root", 0o700), ("sbin", 0o755), ("sys", 0o555), ("tmp", 0o1777), ("usr", 0o755),
         ("usr/bin", 0o755), ("usr/sbin", 0o755), ("var", 0o755), ("var/tmp", 0o1777)]
_PASSWD = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
_GROUP = b"root:x:0:\nnobody:x:65534:\n"


def busybox(store: ImageStore, source: str = "/bin/busybox",
            name: str = "busybox:latest") -> str:
    """Build a busybox image from the host's static busybox; return its id."""
    if not os.path.exists(source):
        raise Unavailable(f"busybox image: {source} not found (install busybox-static)",
                          path=source)
    with open(source, "rb") as f:
        program = f.read()
    entries = [(d, "dir", mode, b"") for d, mode in _DIRS]
    entries += [("bin/busybox", "file", 0o755, program), ("etc/passwd", "file", 0o644, _PASSWD),
                ("etc/group", "file", 0o644, _GROUP)]
    taken = {e[0] for e in entries}
    for applet in _applets(source):
        if applet not in taken and os.path.dirname(applet) in taken:
            entries.append((applet, "sym", 0o777, "/bin/busybox"))
            taken.add(applet)
    return build_image(store, layer_tar(entries), {"Cmd": ["sh"], "Env": [_PATH]},
                       [str(reference.parse(name))], os.uname().machine,
                       f"knarr: busybox image from the host's {source}")


def _applets(source: str) -> list[str]:
    """Applet paths (`bin/ls`, `usr/bin/awk`) as the binary lists them."""
    out = subprocess.run([source, "--list-full"], capture_output=True, check=True).stdout
    return sorted(line.strip() for line in out.decode().splitlines()
                  if line.strip() and not line.startswith("/") and ".." not in line)


def apt_mirror(sources_dir: str = "/etc/apt") -> str:
    """The first Debian mirror URI that apt is configured with on this machine."""
    candidates = [os.path.join(sources_dir, "sources.list")]
    parts = os.path.join(sources_dir, "sources.list.d")
    if os.path.isdir(parts):
        candidates += [os.path.join(parts, n) for n in sorted(os.listdir(parts))]
    for path in candidates:
        if not os.path.isfile(path):
            continue
        with open(path) as f:
            for line in f:
                words = line.split()
                if words[:1] == ["URIs:"] and len(words) > 1:
                    return words[1]
                if words[:1] == ["deb"]:
                    return next(w for w in words[1:] if not w.startswith("["))
    raise Unavailable("debian image: no apt mirror configured in /etc/apt", path=sources_dir)


def debian(store: ImageStore, suite: str = "bookworm", mirror: str | None = None,
           name: str | None = None) -> str:
    """Build a minimal Debian image with debootstrap; return its id."""
    if shutil.which("debootstrap") is None:
        raise Unavailable("debian image: debootstrap is not installed (package debootstrap)")
    mirror = mirror or apt_mirror()
    with tempfile.TemporaryDirectory(dir=store.root, prefix="debootstrap-") as work:
        tree = os.path.join(work, "rootfs")
        subprocess.run(["debootstrap", "--variant=minbase", suite, tree, mirror], check=True,
                       stdout=subprocess.DEVNULL)
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            _empty_dir(os.path.join(tree, leftover))
        tar = subprocess.Popen(["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*",
                                "-C", tree, "-cf", "-", "."], stdout=subprocess.PIPE)
        assert tar.stdout is not None
        try:
            image_id = import_image(store, tar.stdout, [name or f"debian:{suite}"],
                                    ["CMD [\"bash\"]"],
                                    message=f"debootstrap --variant=minbase {suite} {mirror}")
        finally:
            tar.stdout.close()
            tar.wait()
    return image_id


def _empty_dir(path: str) -> None:
    if not os.path.isdir(path):
        return
    for entry in os.scandir(path):
        if entry.is_file(follow_symlinks=False) and entry.name != "lock":
            os.unlink(entry.path)
