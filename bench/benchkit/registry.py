"""The benchmarks `bench/run.py` knows, and what each one measures.

A benchmark is a function that, given a scratch directory, prepares what it needs
there (bundles, state roots) and returns the subjects to time: the peers and the
knarr side. Register it with `@register(...)` in a module under
`benchkit/benchmarks/` and import that module in `benchkit/benchmarks/__init__.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchkit.subjects import Subject


@dataclass(frozen=True)
class Goal:
    """A target for knarr against one peer: median(knarr) / median(peer) <= max_ratio."""

    knarr: str
    peer: str
    max_ratio: float

    def describe(self) -> str:
        """The goal as a reader sees it beside the ratio."""
        return f"{self.knarr} within {self.max_ratio:g}x {self.peer}"


@dataclass(frozen=True)
class Benchmark:
    """One registered benchmark: a name, what it times, and how to prepare its subjects."""

    name: str
    summary: str
    prepare: Callable[[Path], list[Subject]]
    goals: tuple[Goal, ...] = ()


BENCHMARKS: dict[str, Benchmark] = {}


def register(name: str, summary: str, goals: tuple[Goal, ...] = ()):
    """Decorate a prepare function to register it as the benchmark `name`."""

    def add(prepare: Callable[[Path], list[Subject]]):
        if name in BENCHMARKS:
            raise ValueError(f"register benchmark {name}: already registered")
        BENCHMARKS[name] = Benchmark(name, summary, prepare, goals)
        return prepare

    return add


def lookup(names: list[str]) -> list[Benchmark]:
    """The benchmarks named, in order; all of them, in registration order, if none are."""
    if not names:
        return list(BENCHMARKS.values())
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        known = ", ".join(BENCHMARKS)
        raise KeyError(f"unknown benchmark {', '.join(unknown)} (known: {known})")
    return [BENCHMARKS[n] for n in names]
