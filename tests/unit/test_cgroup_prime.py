"""knarr.runtime.cgroups.prime: the early, no-op cgroup move that starts the kernel's
RCU wait while knarr-runtime imports. It must leave the process where it was."""

import os
import time

from knarr.runtime.cgroups import prime


def _own():
    with open("/proc/self/cgroup") as f:
        return f.read()


def test_primes_within_its_own_cgroup_and_stops():
    path = prime._own_procs()
    if os.geteuid() != 0:
        assert path is None or os.access(path, os.W_OK)
        return
    assert path is not None and path.endswith("/cgroup.procs")
    before = _own()
    prime.start()
    time.sleep(0.05)  # several writes, the first one past a grace period
    prime.stop()
    time.sleep(0.01)
    assert _own() == before
    with open(path) as f:
        assert str(os.getpid()) in f.read().split()


def test_no_cgroup_file_means_no_thread(monkeypatch):
    monkeypatch.setattr(prime, "_own_procs", lambda: None)
    prime.start()
    assert prime._running[0] is False
