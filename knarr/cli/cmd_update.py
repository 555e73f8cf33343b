"""knarr update [OPTIONS] CONTAINER [CONTAINER...]: change resource limits or the restart policy."""

from knarr.cli import flags, opts, units
from knarr.cli.common import each, quote_path

__all__ = ["command", "run", "update_body"]


def command(name: str) -> flags.Command:
    """The declaration of `update`."""
    c = flags.Command(name, f"knarr {name} [OPTIONS] CONTAINER [CONTAINER...]",
                      "Update configuration of one or more containers", min_args=1)
    a = c.add_argument
    a("--blkio-weight", type=int, help="Block IO (relative weight), between 10 and 1000")
    a("--cpu-period", type=int, help="Limit CPU CFS (Completely Fair Scheduler) period")
    a("--cpu-quota", type=int, help="Limit CPU CFS (Completely Fair Scheduler) quota")
    a("-c", "--cpu-shares", type=int, help="CPU shares (relative weight)")
    a("--cpus", type=units.parse_nano_cpus, help="Number of CPUs")
    a("--cpuset-cpus", help="CPUs in which to allow execution (0-3, 0,1)")
    a("--cpuset-mems", help="MEMs in which to allow execution (0-3, 0,1)")
    a("-m", "--memory", type=units.ram_in_bytes, help="Memory limit")
    a("--memory-reservation", type=units.ram_in_bytes, help="Memory soft limit")
    a("--memory-swap", type=units.mem_swap_bytes,
      help="Swap limit equal to memory plus swap: '-1' to enable unlimited swap")
    a("--pids-limit", type=int, help="Tune container pids limit (set -1 for unlimited)")
    a("--restart", help="Restart policy to apply when a container exits")
    return c


_FIELDS = (("BlkioWeight", "blkio_weight"), ("CpuPeriod", "cpu_period"),
           ("CpuQuota", "cpu_quota"), ("CpuShares", "cpu_shares"), ("NanoCpus", "cpus"),
           ("CpusetCpus", "cpuset_cpus"), ("CpusetMems", "cpuset_mems"), ("Memory", "memory"),
           ("MemoryReservation", "memory_reservation"), ("MemorySwap", "memory_swap"),
           ("PidsLimit", "pids_limit"))


def update_body(args) -> dict:
    """The POST /containers/{id}/update body: only what was given."""
    body = {key: getattr(args, dest) for key, dest in _FIELDS
            if getattr(args, dest) is not None}
    if args.restart:
        body["RestartPolicy"] = opts.restart(args.restart)
    return body


def run(cli, args) -> int:
    """POST /containers/{id}/update for each; print the daemon's warnings."""
    import sys

    try:
        body = update_body(args)
    except ValueError as exc:
        raise cli.fail(f"{exc}", 1) from None
    if not body:
        raise cli.fail("you must provide one or more flags when using this command", 1)

    def update(name: str) -> None:
        result = cli.client.post(f"/containers/{quote_path(name)}/update", None, body) or {}
        for warning in result.get("Warnings") or []:
            sys.stderr.write(f"{warning}\n")

    return each(cli, args.args, update)
