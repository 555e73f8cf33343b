"""nftables through libnftables (knarr.sys.nftables), in-process: no `nft` per container.

Falls back to the `nft` binary when the library cannot be loaded.
"""

import subprocess
import threading

from knarr.errors import FailedPrecondition
from knarr.sys import nftables

__all__ = ["run"]

_lock = threading.Lock()
_ctx: "nftables.Context | None" = None
_tried = False


def run(script: str, what: str = "apply nftables rules") -> str:
    """Run an nft script as one transaction; its output. FailedPrecondition on error."""
    global _ctx, _tried
    with _lock:
        if not _tried:
            _ctx, _tried = nftables.open_context(), True
        if _ctx is None:
            return _run_binary(script, what)
        rc, out, err = _ctx.run_cmd(script)
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
