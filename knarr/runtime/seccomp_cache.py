"""Compiled seccomp programs kept on disk, under the runtime's state root.

libseccomp takes 10-20 ms to build and export Docker's default profile, in every
knarr-runtime process (and engine task) that meets a profile it has not compiled in
memory. The exported classic BPF depends only on the profile's text, libseccomp's
version and API level, and the machine and kernel; so it is kept in
`<root>/seccomp~/<key>.bpf`, where `key` is the SHA-256 of all of those, and read
back instead of compiled. ("~" is no character of a container id, so the directory
never stands for a container.)

An entry is one header line, `<key> <seccomp(2) flags> <sha256 of the program>`,
then the program. It is trusted only when the header names the key it was looked up
by and the program's digest matches; anything else is a miss, compiled and written
again (temp file, fsync, rename). Only profiles that compiled are written, so a hit
stands for a profile that validated.
"""

import os

from knarr.runtime.state import write_atomic
from knarr.sys import seccomp as scmp

try:  # the builtin module: hashlib loads OpenSSL (~5 ms of a knarr-runtime start)
    from _sha256 import sha256
except ImportError:  # pragma: no cover - a Python built without it
    from hashlib import sha256

__all__ = ["DIR_NAME", "MAX_ENTRIES", "cache_dir", "key_of", "read", "write"]

DIR_NAME = "seccomp~"
MAX_ENTRIES = 64  # profiles differ by capability set and user profile; few in practice
_FORMAT = b"knarr-seccomp-bpf 1"
_BPF_INSTRUCTION = 8


def cache_dir(root: str) -> str:
    """The cache's directory under the runtime state root `root`."""
    return os.path.join(root, DIR_NAME)


def key_of(profile_json: str) -> str:
    """The cache key of a profile's compact JSON text on this host and libseccomp."""
    uname = os.uname()
    digest = sha256(_FORMAT)
    for part in (".".join(map(str, scmp.version())), str(scmp.api_get()), uname.machine,
                 uname.release):
        digest.update(b"\0" + part.encode())
    digest.update(b"\0" + profile_json.encode())
    return digest.hexdigest()


def _path(cache_dir: str, key: str) -> str:
    return os.path.join(cache_dir, key + ".bpf")


def read(cache_dir: str, key: str) -> tuple[bytes, int] | None:
    """The program and seccomp(2) flags cached under `key`; None when there is no
    entry, or one that does not check out."""
    try:
        fd = os.open(_path(cache_dir, key), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        data = os.read(fd, os.fstat(fd).st_size + 1)
    finally:
        os.close(fd)
    header, _, bpf = data.partition(b"\n")
    fields = header.split(b" ")
    if len(fields) != 3 or fields[0] != key.encode() or not fields[1].isdigit():
        return None
    if not bpf or len(bpf) % _BPF_INSTRUCTION \
            or sha256(bpf).hexdigest().encode() != fields[2]:
        return None
    return bpf, int(fields[1])


def write(cache_dir: str, key: str, bpf: bytes, flags: int) -> None:
    """Keep a compiled program under `key` (temp file, fsync, rename). A cache that
    cannot be written is no error: the program is compiled again next time."""
    try:
        os.makedirs(cache_dir, mode=0o700, exist_ok=True)
        _prune(cache_dir)
        header = f"{key} {flags} {sha256(bpf).hexdigest()}\n".encode()
        write_atomic(_path(cache_dir, key), header + bpf, 0o600, durable=True)
    except OSError:
        pass


def _prune(cache_dir: str) -> None:
    """Empty the cache when it holds MAX_ENTRIES programs (a bound, not an LRU)."""
    names = os.listdir(cache_dir)
    if len(names) < MAX_ENTRIES:
        return
    for name in names:
        try:
            os.unlink(os.path.join(cache_dir, name))
        except OSError:
            pass
