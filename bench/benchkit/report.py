"""Turn outcomes into the printed table and the JSON result file."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from benchkit.measure import Outcome
from benchkit.registry import Benchmark, Goal
from benchkit.subjects import KNARR

STDERR_LINES = 15  # lines of a failure's stderr printed under the table


@dataclass
class Ratio:
    """median(knarr subject) / median(peer), and the goal it is held to, if any."""

    knarr: str
    peer: str
    value: float | None
    goal: Goal | None

    def verdict(self) -> str | None:
        """'met', 'missed', 'unknown' (a side failed) or None without a goal."""
        if self.goal is None:
            return None
        if self.value is None:
            return "unknown"
        return "met" if self.value <= self.goal.max_ratio else "missed"


def ratios(bench: Benchmark, outcomes: list[Outcome]) -> list[Ratio]:
    """Every knarr subject against every peer, with the benchmark's goals attached."""
    medians = {o.subject.name: (o.stats() or {}).get("median") for o in outcomes}
    goals = {(g.knarr, g.peer): g for g in bench.goals}
    found = []
    for k in (o for o in outcomes if o.subject.role == KNARR):
        for p in (o for o in outcomes if o.subject.role != KNARR):
            num, den = medians[k.subject.name], medians[p.subject.name]
            value = num / den if num is not None and den else None
            goal = goals.get((k.subject.name, p.subject.name))
            found.append(Ratio(k.subject.name, p.subject.name, value, goal))
    return found


def table(bench: Benchmark, outcomes: list[Outcome], params: dict, machine: dict) -> str:
    """The human-readable report of one benchmark."""
    rows = ratios(bench, outcomes)
    knarr_names = sorted({r.knarr for r in rows})
    lines = [f"== {bench.name}: {bench.summary}",
             f"   {params['iterations']} iterations after {params['warmups']} warm-ups,"
             " subjects interleaved; times in ms; cpu: median user+sys of the command's"
             " own process tree (not of a daemon it talks to)",
             f"   host: {machine['cpus']} cpus, 1-min load {params['load_before']:g}"
             f" -> {params['load_after']:g}, cpu steal {params['cpu_steal']:.0%}",
             ""]
    head = f"{'subject':<16}{'role':<7}{'median':>9}{'p90':>9}{'min':>9}{'max':>9}{'cpu':>9}"
    head += "".join(f"  {f'{k} / this':>22}" for k in knarr_names)
    lines.append(head)
    for o in outcomes:
        lines.append(_row(o, rows, knarr_names))
    lines += _goal_lines(rows) + _failure_lines(outcomes)
    return "\n".join(lines)


def _row(o: Outcome, rows: list[Ratio], knarr_names: list[str]) -> str:
    start = f"{o.subject.name:<16}{o.subject.role:<7}"
    stats = o.stats()
    if stats is None:
        return start + f"{_failure_label(o):>45}"
    cells = "".join(f"{stats[k]:>9.1f}" for k in ("median", "p90", "min", "max", "cpu"))
    for k in knarr_names:
        match = [r for r in rows if r.knarr == k and r.peer == o.subject.name]
        cells += f"  {_ratio_cell(match[0]) if match else '':>22}"
    return start + cells


def _ratio_cell(r: Ratio) -> str:
    text = "n/a" if r.value is None else f"{r.value:.2f}x"
    if r.goal is not None:
        text += f" (goal <={r.goal.max_ratio:g}x)"
    return text


def _failure_label(o: Outcome) -> str:
    f = o.failure
    if f is None:
        return "no samples"
    if f.phase in ("pending", "unavailable"):
        return f.phase.upper()
    status = "timed out" if f.returncode is None else f"exit {f.returncode}"
    return f"FAILED ({status}, {f.phase} {f.number})"


def _goal_lines(rows: list[Ratio]) -> list[str]:
    out = []
    for r in rows:
        if r.goal is None:
            continue
        value = f"ratio {r.value:.2f}x" if r.value is not None else "no ratio: a side failed"
        out.append(f"goal: {r.goal.describe()}: {r.verdict()} ({value})")
    return [""] + out if out else []


def _failure_lines(outcomes: list[Outcome]) -> list[str]:
    out = []
    for o in outcomes:
        f = o.failure
        if f is None:
            continue
        text = f.stderr.splitlines() or ["(no stderr)"]
        if len(text) > STDERR_LINES:
            text = [f"... ({len(text) - STDERR_LINES} lines above cut)"] + text[-STDERR_LINES:]
        out += ["", f"{o.subject.name}: {_failure_label(o).lower()}:"]
        out += [f"  | {line}" for line in text]
        if f.cleanup_error:
            out.append(f"  cleanup: {f.cleanup_error}")
    return out


def to_json(bench: Benchmark, outcomes: list[Outcome], params: dict, host: dict) -> dict:
    """The machine-readable result of one benchmark."""
    return {
        "benchmark": bench.name,
        "summary": bench.summary,
        "params": params,
        "host": host,
        "subjects": [_subject_json(o) for o in outcomes],
        "ratios": [
            {"knarr": r.knarr, "peer": r.peer, "ratio": r.value,
             "goal_max_ratio": r.goal.max_ratio if r.goal else None, "goal": r.verdict()}
            for r in ratios(bench, outcomes)
        ],
    }


def _subject_json(o: Outcome) -> dict:
    f = o.failure
    return {
        "name": o.subject.name,
        "role": o.subject.role,
        "version": o.subject.version,
        "notes": o.subject.notes,
        "status": "ok" if f is None else (f.phase if f.phase in ("pending", "unavailable")
                                          else "failed"),
        "stats_ms": o.stats(),
        "samples_ms": [round(x, 3) for x in o.samples_ms],
        "cpu_samples_ms": [round(x, 3) for x in o.cpu_ms],
        "failure": None if f is None else {
            "phase": f.phase, "number": f.number, "returncode": f.returncode,
            "stderr": f.stderr, "cleanup_error": f.cleanup_error,
        },
    }


def write_json(directory: Path, name: str, result: dict) -> Path:
    """Write result to directory/<name>.json: temp file, fsync, rename."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.")
    with os.fdopen(fd, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o644)
    os.rename(tmp, path)
    return path
