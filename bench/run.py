"""Run knarr's benchmarks: the Debian-packaged peers and knarr, side by side, in one run.

    .venv/bin/python bench/run.py                 # every benchmark
    .venv/bin/python bench/run.py runtime_run     # one
    .venv/bin/python bench/run.py --list

Prints a table of medians and ratios (knarr / peer) per benchmark and writes
each one's result to bench/results/<name>.json. Exits 1 when any subject
failed or was unavailable (the others are still measured and shown; a knarr
side marked pending does not count), 2 on bad usage or when not root. See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchkit.benchmarks  # noqa: E402,F401  (registers the benchmarks)
from benchkit import host, report  # noqa: E402
from benchkit.measure import Outcome, measure  # noqa: E402
from benchkit.registry import BENCHMARKS, Benchmark, lookup  # noqa: E402

RESULTS = host.BENCH_DIR / "results"


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n\n")[0])
    p.add_argument("names", nargs="*", metavar="BENCHMARK", help="benchmarks to run (all)")
    p.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    p.add_argument("-n", "--iterations", type=int, default=30, help="timed runs each (30)")
    p.add_argument("-w", "--warmup", type=int, default=3, help="untimed runs first (3)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds allowed a run (60)")
    p.add_argument("--results", type=Path, default=RESULTS, help="where JSON goes")
    p.add_argument("-s", "--subject", action="append", default=[], metavar="NAME",
                   help="time only this subject (repeatable; default all)")
    p.add_argument("--no-setup", action="store_true", help="do not run bench/setup.sh")
    p.add_argument("--keep-workdir", action="store_true", help="keep bundles and roots")
    p.add_argument("--restore-network", action="store_true",
                   help="put back the host's iptables and sysctls as a killed run's dockerd "
                        "with networking found them (benchkit/dockernet.py), and exit")
    args = p.parse_args(argv)
    if args.iterations < 1 or args.warmup < 0:
        p.error("--iterations must be at least 1 and --warmup at least 0")
    return args


def list_benchmarks() -> None:
    """Print every registered benchmark and what it measures."""
    width = max(len(n) for n in BENCHMARKS)
    for b in BENCHMARKS.values():
        print(f"{b.name:<{width}}  {b.summary}")
        for g in b.goals:
            print(f"{'':<{width}}  goal: {g.describe()}")


def run_benchmark(bench: Benchmark, args: argparse.Namespace, machine: dict) -> bool:
    """Prepare, measure, report and clean up one benchmark; True unless a subject failed."""
    workdir = Path(tempfile.mkdtemp(prefix=f"knarr-bench-{bench.name}-"))
    outcomes: list[Outcome] = []
    load_before = round(os.getloadavg()[0], 2)
    ticks_before = host.cpu_ticks()
    try:
        outcomes = [Outcome(s) for s in bench.prepare(workdir)
                    if not args.subject or s.name in args.subject]
        print(f"{bench.name}: timing {', '.join(o.subject.name for o in outcomes)}",
              file=sys.stderr)
        measure(outcomes, args.iterations, args.warmup, args.timeout,
                run_prefix=f"kb{os.getpid()}", progress=_progress)
    except RuntimeError as exc:
        print(f"{bench.name}: cannot prepare: {exc}\n", file=sys.stderr)
        return False
    finally:
        sweep_errors = [e for o in outcomes for e in o.subject.sweep()]
        _remove_workdir(workdir, args.keep_workdir or bool(sweep_errors))
    params = {"iterations": args.iterations, "warmups": args.warmup,
              "timeout_s": args.timeout, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "load_before": load_before, "load_after": round(os.getloadavg()[0], 2),
              "cpu_steal": round(host.steal_share(ticks_before, host.cpu_ticks()), 3)}
    print(report.table(bench, outcomes, params, machine))
    for e in sweep_errors:
        print(f"leftover: {e} (kept {workdir})")
    path = report.write_json(args.results, bench.name,
                             report.to_json(bench, outcomes, params, machine))
    print(f"\nwrote {_relative(path)}\n")
    return all(o.ok or o.pending for o in outcomes)


def _progress(done: int, total: int) -> None:
    if sys.stderr.isatty():
        print(f"\r  round {done}/{total}", end="\n" if done == total else "", file=sys.stderr)


def _remove_workdir(workdir: Path, keep: bool) -> None:
    if keep:
        print(f"kept {workdir}", file=sys.stderr)
        return
    shutil.rmtree(workdir, onerror=lambda fn, path, exc: print(
        f"remove {path}: {exc[1]}", file=sys.stderr))


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks asked for; the exit status says whether all subjects ran."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.list:
        list_benchmarks()
        return 0
    if args.restore_network:
        from benchkit import dockernet

        print("restored: " + (", ".join(dockernet.restore_all()) or "nothing to restore"))
        return 0
    try:
        benches = lookup(args.names)
    except KeyError as exc:
        print(f"bench/run.py: {exc.args[0]}", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("bench/run.py: must run as root (the runtimes need it)", file=sys.stderr)
        return 2
    if not args.no_setup:
        ok, said = host.run_setup()
        print(said, file=sys.stderr)
        if not ok:
            print("bench/run.py: host set-up incomplete; peers may fail", file=sys.stderr)
    machine = host.describe()
    # SIGTERM unwinds like Ctrl-C, so the run in flight is killed and leftovers removed
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        results = [run_benchmark(b, args, machine) for b in benches]
    except KeyboardInterrupt:
        print("bench/run.py: interrupted", file=sys.stderr)
        return 130
    return 0 if all(results) else 1


def _interrupt(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
