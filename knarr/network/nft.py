"""nftables through libnftables (ctypes), in-process: no `nft` spawned per container.

Falls back to the `nft` binary when the library cannot be loaded.
"""

import ctypes
import ctypes.util
import subprocess
import threading

from knarr.errors import FailedPrecondition

__all__ = ["run"]

_lock = threading.Lock()
_ctx = None
_lib = None


def _context():
    global _ctx, _lib
    if _ctx is None:
        name = ctypes.util.find_library("nftables") or "libnftables.so.1"
        try:
            lib = ctypes.CDLL(name, use_errno=True)
        except OSError:
            return None
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
        lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
        lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
        ctx = lib.nft_ctx_new(0)
        lib.nft_ctx_buffer_output(ctx)
        lib.nft_ctx_buffer_error(ctx)
        _lib, _ctx = lib, ctx
    return _ctx


def run(script: str, what: str = "apply nftables rules") -> str:
    """Run an nft script as one transaction; its output. FailedPrecondition on error."""
    with _lock:
        ctx = _context()
        if ctx is None:
            return _run_binary(script, what)
        rc = _lib.nft_run_cmd_from_buffer(ctx, script.encode())
        out = (_lib.nft_ctx_get_output_buffer(ctx) or b"").decode()
        err = (_lib.nft_ctx_get_error_buffer(ctx) or b"").decode()
    if rc != 0:
        raise FailedPrecondition(f"{what}: {err.strip() or 'nft failed'}")
    return out


def _run_binary(script: str, what: str) -> str:
    try:
        proc = subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True)
    except FileNotFoundError:
        raise FailedPrecondition(f"{what}: nftables is not installed (Debian package "
                                 "nftables)") from None
    if proc.returncode:
        raise FailedPrecondition(f"{what}: {proc.stderr.strip()}")
    return proc.stdout
