"""Time subjects side by side: warm-ups, then interleaved iterations, then statistics.

Subjects take turns within each round, and the order rotates from round to
round, so a slow drift of the host (another build starting, the page cache
filling) falls on every subject alike rather than on whichever ran last.
"""

from __future__ import annotations

import os
import resource
import signal
import statistics
import subprocess
import time
from dataclasses import dataclass, field

from benchkit.subjects import Subject

STDERR_KEEP = 8000  # characters of a failed run's stderr kept for the report


@dataclass
class Failure:
    """Why a subject stopped being timed."""

    phase: str  # "pending", "unavailable", "warm-up" or "iteration"
    number: int  # which warm-up or iteration, from 1
    returncode: int | None
    stderr: str
    cleanup_error: str | None = None


@dataclass
class Outcome:
    """What measuring one subject gave: samples in milliseconds, or a failure."""

    subject: Subject
    samples_ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)  # user + sys of the command's tree
    failure: Failure | None = None

    @property
    def ok(self) -> bool:
        """Whether the subject ran every warm-up and iteration."""
        return self.failure is None

    @property
    def pending(self) -> bool:
        """Whether the subject was not run because it is not expected to work yet."""
        return self.failure is not None and self.failure.phase == "pending"

    def stats(self) -> dict[str, float] | None:
        """Median, p90, min, max and mean of the samples, in ms; None without samples."""
        if not self.ok or not self.samples_ms:
            return None
        s = sorted(self.samples_ms)
        return {
            "median": statistics.median(s),
            "p90": percentile(s, 90),
            "min": s[0],
            "max": s[-1],
            "mean": statistics.fmean(s),
            "stdev": statistics.stdev(s) if len(s) > 1 else 0.0,
            "cpu": statistics.median(self.cpu_ms) if self.cpu_ms else 0.0,
        }


def percentile(sorted_values: list[float], pct: float) -> float:
    """The pct-th percentile by linear interpolation between closest ranks."""
    if len(sorted_values) == 1:
        return sorted_values[0]
    rank = (len(sorted_values) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low)


@dataclass
class RunResult:
    """One timed run of a command."""

    elapsed_ms: float
    returncode: int | None  # None: killed after the timeout
    stderr: str
    cpu_ms: float = 0.0  # user + sys of the command and the descendants it reaped


def run_timed(argv: list[str], timeout: float) -> RunResult:
    """Run argv with no stdin, stdout discarded and stderr kept; time it from spawn to reap.

    The command gets its own session so that, after a timeout, the whole process
    group it made can be killed and not only its first process. CPU time is that of
    the process tree the command waited for: a daemon it talks to is not in it.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter_ns()
    try:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, start_new_session=True)
    except OSError as exc:
        return RunResult(0.0, 127, f"{argv[0]}: {exc}")
    try:
        _, err = proc.communicate(timeout=timeout)
        returncode: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        _, err = proc.communicate()
        returncode = None
        err += f"\n(killed after {timeout:g} s)".encode()
    except BaseException:
        # interrupted (Ctrl-C reaches only us: the run has its own session)
        _kill_group(proc.pid)
        proc.wait()
        raise
    elapsed = (time.perf_counter_ns() - start) / 1e6
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
    return RunResult(elapsed, returncode, err.decode(errors="replace")[-STDERR_KEEP:], cpu)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def measure(outcomes: list[Outcome], iterations: int, warmups: int, timeout: float,
            run_prefix: str, progress=None) -> None:
    """Time every available subject `warmups + iterations` times, interleaved.

    Samples and failures go into `outcomes` as they come, so an interrupted run
    still knows what it started. A subject that fails once is not run again:
    its failure (exit status and stderr) is kept, its run's leftovers removed,
    and the others carry on.
    """
    for o in outcomes:
        if o.subject.pending:
            o.failure = Failure("pending", 0, None, o.subject.pending)
        elif o.subject.unavailable:
            o.failure = Failure("unavailable", 0, None, o.subject.unavailable)
    for rnd in range(warmups + iterations):
        live = [o for o in outcomes if o.ok]
        if not live:
            break
        shift = rnd % len(live)
        for o in live[shift:] + live[:shift]:
            # ids differ per subject too: runc and crun name the cgroup after the id
            _run_one(o, rnd, warmups, timeout, f"{run_prefix}-{o.subject.slug}-{rnd}")
        if progress:
            progress(rnd + 1, warmups + iterations)


def _run_one(o: Outcome, rnd: int, warmups: int, timeout: float, run_id: str) -> None:
    try:
        result = run_timed(o.subject.argv(run_id), timeout)
    except BaseException:
        o.subject.remove(run_id)  # interrupted mid-run: leave nothing behind
        raise
    if result.returncode == 0:
        if rnd >= warmups:
            o.samples_ms.append(result.elapsed_ms)
            o.cpu_ms.append(result.cpu_ms)
        return
    if rnd < warmups:
        phase, number = "warm-up", rnd + 1
    else:
        phase, number = "iteration", rnd - warmups + 1
    o.failure = Failure(phase, number, result.returncode, result.stderr.strip())
    o.failure.cleanup_error = o.subject.remove(run_id)
