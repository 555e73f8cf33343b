"""Load: many concurrent `run --rm` and many sequential lifecycles against one knarrd; every
one succeeds and afterwards no mount, cgroup, veth, nftables rule, process or daemon file
descriptor is left.
10 concurrent and 50 sequential in `make test`; 50 and 500 in `make hardening`."""

import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from hardening_support import cli, record, rounds
from test_api_support import (  # noqa: F401
    bridge_ports,
    cgroup_dirs,
    knarrd_fixture,
    mounts_under,
    processes_under,
    wait_for,
)

pytestmark = pytest.mark.privileged


def _fds(pid: int) -> list[str]:
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out.append(f"{fd} -> {os.readlink(f'/proc/{pid}/fd/{fd}')}")
        except OSError:
            pass
    return sorted(out)


def _leftovers(knarrd, ids: set[str]) -> list[str]:
    helpers = {knarrd.proc.pid} | _children(knarrd.proc.pid)
    out = [f"mount {m}" for m in mounts_under(knarrd.base)]
    out += [f"cgroup {d}" for cid in ids for d in cgroup_dirs(cid)]
    out += [f"process {p}" for p in processes_under(knarrd.base) if p not in helpers]
    out += [f"veth {v}" for v in bridge_ports(knarrd.bridge)]
    return out


def _nft_rules(table: str) -> list[str]:
    """The rules of the daemon's nftables table (without handles: they only grow)."""
    out = subprocess.run(["nft", "list", "table", "ip", table], capture_output=True, text=True)
    return sorted(line.strip() for line in out.stdout.splitlines()
                  if line.strip() and not line.strip().startswith(("table", "chain", "}")))


def _children(pid: int) -> set[int]:
    found = set()
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    found.add(int(name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def test_concurrent_run_rm_and_sequential_lifecycles_leak_nothing(knarrd):
    host = f"unix://{knarrd.sock}"
    client = knarrd.client
    assert cli(host, "run", "--rm", "busybox", "true").returncode == 0  # warm: image made
    time.sleep(0.5)
    fds_before = _fds(knarrd.proc.pid)
    nft_before = _nft_rules(knarrd.nft_table)

    concurrent, sequential = rounds(10, 50), rounds(50, 500)
    started = time.monotonic()
    with ThreadPoolExecutor(concurrent) as pool:
        results = list(pool.map(lambda i: cli(host, "run", "--rm", "busybox", "echo", str(i)),
                                range(concurrent)))
    concurrent_seconds = time.monotonic() - started
    failed = [r for r in results if r.returncode != 0]
    assert not failed, failed[:3]
    assert sorted(int(r.stdout) for r in results) == list(range(concurrent))

    ids: set[str] = set()
    started = time.monotonic()
    for i in range(sequential):
        cid = client.create("busybox", ["sh", "-c", f"exit {i % 3}"])
        ids.add(cid)
        assert client.post(f"/containers/{cid}/start").status == 204
        wait = client.post(f"/containers/{cid}/wait")
        assert wait.status == 200 and wait.json()["StatusCode"] == i % 3, wait.body
        assert client.delete(f"/containers/{cid}").status == 204
    sequential_seconds = time.monotonic() - started

    assert client.get("/containers/json", all=1).json() == []
    leftovers = wait_for(lambda: not _leftovers(knarrd, ids), timeout=10) or \
        _leftovers(knarrd, ids)
    fds_after = wait_for(lambda: _fds(knarrd.proc.pid) == fds_before, timeout=5) and fds_before \
        or _fds(knarrd.proc.pid)
    leaked_fds = sorted(set(fds_after) - set(fds_before))
    nft_after = _nft_rules(knarrd.nft_table)
    record("load", {"concurrent_run_rm": concurrent, "concurrent_seconds":
                    round(concurrent_seconds, 1), "sequential_lifecycles": sequential,
                    "sequential_seconds": round(sequential_seconds, 1),
                    "leftovers": [] if leftovers is True else leftovers,
                    "daemon_fds_before": len(fds_before), "daemon_fds_after": len(fds_after),
                    "leaked_fds": leaked_fds, "nft_rules_before": len(nft_before),
                    "nft_rules_after": len(nft_after)})
    assert nft_after == nft_before, (nft_before, nft_after)
    assert leftovers is True, leftovers
    assert not leaked_fds and len(fds_after) == len(fds_before), (fds_before, fds_after)
