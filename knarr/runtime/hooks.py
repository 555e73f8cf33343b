"""OCI lifecycle hooks: run each with the container state on its stdin."""

import sys

from knarr import fastjson
from knarr.errors import FailedPrecondition

__all__ = ["run", "FATAL_PHASES"]

# A failure in these phases fails the operation; in poststart and poststop it is
# only reported, as the spec says.
FATAL_PHASES = ("prestart", "createRuntime", "createContainer", "startContainer")


def run(config: dict, phase: str, state: dict) -> None:
    """Run the hooks of one phase in order; raise for a failing fatal hook."""
    for i, hook in enumerate(config.get("hooks", {}).get(phase, [])):
        try:
            _run_one(hook, state)
        except FailedPrecondition as exc:
            message = f"{phase} hook #{i} ({hook.get('path')}): {exc}"
            if phase in FATAL_PHASES:
                raise FailedPrecondition(message) from exc
            print(f"knarr-runtime: warning: {message}", file=sys.stderr)


def _run_one(hook: dict, state: dict) -> None:
    path = hook.get("path")
    if not path:
        raise FailedPrecondition("no path")
    import subprocess  # only when there are hooks: start-up cost matters

    args = hook.get("args") or [path]
    try:
        result = subprocess.run(args, executable=path, input=fastjson.dumps(state).encode(),
                                env=_env(hook.get("env")), timeout=hook.get("timeout"),
                                capture_output=True, close_fds=True)
    except subprocess.TimeoutExpired:
        raise FailedPrecondition(f"timed out after {hook.get('timeout')} s") from None
    except OSError as exc:
        raise FailedPrecondition(exc.strerror or str(exc)) from exc
    if result.returncode != 0:
        detail = result.stderr.decode(errors="replace").strip()
        raise FailedPrecondition(f"exit status {result.returncode}"
                                 + (f": {detail}" if detail else ""))


def _env(env: list[str] | None) -> dict[str, str]:
    pairs = (e.split("=", 1) for e in env or [])
    return {p[0]: (p[1] if len(p) > 1 else "") for p in pairs}
