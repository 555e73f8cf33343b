"""Crash consistency: SIGKILL the daemon, or a container's monitor, at random moments during
loads, pulls, builds, runs, execs, creates and removals; after each restart nothing may be lost, half
made or left behind (crash_rounds.py says what is checked). 10 rounds in `make test`,
100 in `make hardening`."""

import os
import tempfile

import pytest
from crash_rounds import Crashes
from hardening_support import record, rounds

pytestmark = pytest.mark.privileged


def test_crash_rounds_lose_nothing_and_leave_nothing():
    seed = int(os.environ.get("KNARR_CRASH_SEED", "0")) or int.from_bytes(os.urandom(4), "big")
    base = tempfile.mkdtemp(prefix="knarr-crash-")
    figures = Crashes(base, seed).run(rounds(10, 100), monitor_every=5)
    figures["seed"] = seed
    record("crash", figures)
    assert figures["rounds"] == rounds(10, 100)
    assert not figures["problems"], (seed, figures["problems"])
    assert not figures["leftovers_at_teardown"], (seed, figures["leftovers_at_teardown"])
