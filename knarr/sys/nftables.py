"""ctypes bindings to libnftables (libnftables.so.1), as described in libnftables(3).

Raw calls only, no policy: a context that buffers output and errors, and one call that
runs a script through it. The library is opened on first use; `open_context()` returns
None where it cannot be loaded, so callers can fall back to the `nft` binary.
"""

import ctypes
import ctypes.util

__all__ = ["Context", "open_context"]


class Context:
    """One nft_ctx with buffered output and error; not thread-safe (callers lock)."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self._lib = lib
        self._ctx = lib.nft_ctx_new(0)
        lib.nft_ctx_buffer_output(self._ctx)
        lib.nft_ctx_buffer_error(self._ctx)

    def run_cmd(self, script: str) -> tuple[int, str, str]:
        """nft_run_cmd_from_buffer: (return code, output, error output)."""
        rc = self._lib.nft_run_cmd_from_buffer(self._ctx, script.encode())
        out = (self._lib.nft_ctx_get_output_buffer(self._ctx) or b"").decode()
        err = (self._lib.nft_ctx_get_error_buffer(self._ctx) or b"").decode()
        return rc, out, err


def open_context() -> Context | None:
    """A new context, or None when libnftables cannot be loaded."""
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
    return Context(lib)
