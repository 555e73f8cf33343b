"""A subject is one thing being timed (crun, runc, knarr-runtime, podman...).

It is a command line per iteration, built from a fresh run id, plus how to
remove what a failed or interrupted run leaves behind.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field

PEER = "peer"
KNARR = "knarr"


@dataclass
class Subject:
    """One command to time, run with a fresh id each iteration.

    `argv(run_id)` is the command timed. `cleanup(run_id)`, when given, is the
    command that removes a run's leftovers after a failure (e.g. `delete -f`).
    `tidy(run_id)`, when given, removes what even that cannot (a killed run's
    cgroups) and returns the errors met. `leftovers()` lists run ids still
    present at the end, for a last sweep.
    `unavailable` holds the reason the subject cannot run at all (not installed,
    broken install); `pending` the reason it is not expected to yet (the knarr
    side of a benchmark written ahead of the feature). Either way the subject
    is reported, not timed; only `unavailable` counts as a failure.
    """

    name: str
    role: str
    argv: Callable[[str], list[str]]
    cleanup: Callable[[str], list[str]] | None = None
    tidy: Callable[[str], list[str]] | None = None
    leftovers: Callable[[], list[str]] | None = None
    version: str = ""
    unavailable: str | None = None
    pending: str | None = None
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def slug(self) -> str:
        """The name reduced to characters every runtime accepts in a container id."""
        return re.sub(r"[^A-Za-z0-9]+", "", self.name)

    def remove(self, run_id: str, timeout: float = 30.0) -> str | None:
        """Remove one run's leftovers; return the error text if that failed."""
        error = self._delete(run_id, timeout)
        tidy_errors = self.tidy(run_id) if self.tidy else []
        return "; ".join(([error] if error else []) + tidy_errors) or None

    def _delete(self, run_id: str, timeout: float) -> str | None:
        if self.cleanup is None:
            return None
        try:
            done = subprocess.run(
                self.cleanup(run_id), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE, timeout=timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"remove {self.name} run {run_id}: {exc}"
        if done.returncode == 0 or not self._still_there(run_id):
            # a run that failed before creating anything has nothing to delete
            return None
        text = done.stderr.decode(errors="replace").strip().splitlines()
        return f"remove {self.name} run {run_id}: exit {done.returncode}: {text[-1:]}"

    def _still_there(self, run_id: str) -> bool:
        return self.leftovers is None or run_id in self.leftovers()

    def sweep(self) -> list[str]:
        """Remove every run still present at the end; return the errors met."""
        if self.leftovers is None:
            return []
        errors = (self.remove(run_id) for run_id in self.leftovers())
        return [e for e in errors if e]


def program_version(program: str, flag: str = "--version") -> str:
    """The first line `program --version` prints, or '' when it cannot say."""
    if shutil.which(program) is None:
        return ""
    try:
        done = subprocess.run([program, flag], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    lines = done.stdout.decode(errors="replace").strip().splitlines()
    return lines[0].strip() if lines else ""


def missing_program(program: str) -> str | None:
    """Why `program` cannot be run, or None when it is on PATH (or an existing path)."""
    if shutil.which(program) is None:
        return f"{program}: not installed"
    return None
