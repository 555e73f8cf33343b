"""A command's modules from one file, compiled ahead: imports without the path search.

Importing a module through Python's path finder costs about 130 us of the import
system's own work on this host (the finder's directory scan and stat calls, opening
and checking the .pyc, module and spec set-up in importlib's Python code), more than
most knarr-runtime module bodies take to run, and knarr-runtime imports about 45
modules at every start. `build` compiles every module of some packages into one
file: a header (a tag and the interpreter's bytecode magic number), an index (module
name -> where its code is, whether it is a package, its source file and that file's
mtime and size) and each module's marshalled code. `install` reads the index and
puts a finder first on sys.meta_path that serves those modules from the file, each
only while its source file is the one compiled (its mtime and size, as a .pyc is
checked; a stale module is left to the usual finders, so an edited source is always
what runs), reading and unmarshalling a module's code only when it is imported.

scripts/install-launchers builds knarr-runtime's bundle (RUNTIME_PACKAGES) and the knarr
CLI's (CLI_PACKAGES) into the venv and has each launcher install its own; `make deps`
rebuilds them when a source changes.
"""

import marshal
import os
import sys

__all__ = ["RUNTIME_PACKAGES", "CLI_PACKAGES", "build", "install"]

# What knarr-runtime imports: its command line, the runtime library, the system
# calls, the OCI config checks, and the floor modules.
RUNTIME_PACKAGES = ("knarr", "knarr.runtime", "knarr.runtime.cgroups", "knarr.runtime_cli",
                    "knarr.sys", "knarr.oci")
# What the knarr CLI imports: its commands and the API client (about 20 modules a run).
CLI_PACKAGES = ("knarr", "knarr.cli", "knarr.client")

_TAG = b"knarrcb1"
# The running interpreter's bytecode magic number (importlib's MAGIC_NUMBER): code
# compiled by another Python version is never used.
_MAGIC = sys.modules["_frozen_importlib_external"].MAGIC_NUMBER
_HEAD = len(_TAG) + len(_MAGIC) + 4


def build(path: str, root: str, packages: tuple[str, ...] = RUNTIME_PACKAGES) -> int:
    """Compile every module of `packages` (directories under `root`) into the bundle at
    `path` (temp + fsync + rename); return how many modules it holds."""
    index: dict[str, tuple] = {}
    chunks = []
    offset = 0
    for package in packages:
        directory = os.path.join(root, *package.split("."))
        for name in sorted(os.listdir(directory)):
            if not name.endswith(".py"):
                continue
            source = os.path.join(directory, name)
            compiled = _compile(source)
            if compiled is None:
                continue
            blob, mtime_ns, size = compiled
            module = package if name == "__init__.py" else f"{package}.{name[:-3]}"
            index[module] = (offset, len(blob), name == "__init__.py", source, mtime_ns, size)
            chunks.append(blob)
            offset += len(blob)
    head = marshal.dumps(index)
    data = _TAG + _MAGIC + len(head).to_bytes(4, "little") + head + b"".join(chunks)
    tmp = f"{path}.tmp-{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)
    return len(index)


def _compile(source: str) -> tuple[bytes, int, int] | None:
    """The marshalled code of `source` with the mtime and size it was read at; None if
    the file changed while being read (a later build takes it)."""
    before = os.stat(source)
    with open(source, "rb") as f:
        text = f.read()
    after = os.stat(source)
    if (before.st_mtime_ns, before.st_size) != (after.st_mtime_ns, after.st_size):
        return None
    code = compile(text, source, "exec", dont_inherit=True)
    return marshal.dumps(code), after.st_mtime_ns, after.st_size


def install(path: str) -> bool:
    """Serve the modules of the bundle at `path` before any other finder; False (and
    nothing changed) when there is no usable bundle there."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        head = os.pread(fd, _HEAD, 0)
        if len(head) != _HEAD or head[:len(_TAG)] != _TAG \
                or head[len(_TAG):_HEAD - 4] != _MAGIC:
            raise ValueError("not a bundle for this interpreter")
        size = int.from_bytes(head[_HEAD - 4:], "little")
        index = marshal.loads(os.pread(fd, size, _HEAD))
        if not isinstance(index, dict):
            raise ValueError("no index")
        finder = _Finder(fd, _HEAD + size, index)
    except (OSError, ValueError, EOFError, TypeError):
        os.close(fd)
        return False
    sys.meta_path.insert(0, finder)
    return True


class _Finder:
    """Finder and loader of a bundle's modules (an entry of sys.meta_path)."""

    def __init__(self, fd: int, base: int, index: dict) -> None:
        self.fd, self.base, self.index = fd, base, index
        st = os.fstat(fd)
        self.identity = (st.st_dev, st.st_ino)
        self.spec_type = sys.modules["_frozen_importlib"].ModuleSpec

    def find_spec(self, name: str, path=None, target=None):
        entry = self.index.get(name)
        if entry is None:
            return None
        _, _, package, source, mtime_ns, size = entry
        try:
            st = os.stat(source)
            mine = os.fstat(self.fd)  # still our file (a forked child may close fds)
        except OSError:
            return None
        if (st.st_mtime_ns, st.st_size) != (mtime_ns, size) \
                or (mine.st_dev, mine.st_ino) != self.identity:
            return None
        spec = self.spec_type(name, self, origin=source, is_package=package)
        if package:
            spec.submodule_search_locations = [os.path.dirname(source)]
        spec.has_location = True
        return spec

    def create_module(self, spec):
        return None  # the default module object

    def exec_module(self, module) -> None:
        offset, length = self.index[module.__spec__.name][:2]
        data = os.pread(self.fd, length, self.base + offset)
        if len(data) != length:
            raise ImportError(f"knarr code bundle: {module.__spec__.name} is cut short",
                              name=module.__spec__.name)
        exec(marshal.loads(data), module.__dict__)  # noqa: S102 - our own compiled code
