"""knarr system df: disk usage by images, containers, volumes and build cache."""

import sys

from knarr.cli import flags, units
from knarr.cli.table import Formatter

__all__ = ["command", "run", "summary_rows"]

DEFAULT_FORMAT = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"
HEADERS = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE",
           "Reclaimable": "RECLAIMABLE"}


def command(name: str) -> flags.Command:
    """The declaration of `system df`."""
    c = flags.Command(name, f"knarr {name} [OPTIONS]", "Show docker disk usage", max_args=0)
    c.add_argument("--format", help="Pretty-print images using a Go template")
    c.add_argument("-v", "--verbose", action="store_true", help="Show detailed information")
    return c


def _reclaim(reclaimable: int, total: int, percent: bool = True) -> str:
    text = units.human_size(reclaimable, 4)
    if percent and total > 0:
        return f"{text} ({reclaimable * 100 // total}%)"
    return text


def summary_rows(df: dict) -> list[dict]:
    """The four rows of `system df`, computed as Docker's CLI does."""
    images, containers = df.get("Images") or [], df.get("Containers") or []
    volumes, cache = df.get("Volumes") or [], df.get("BuildCache") or []
    total = df.get("LayersSize", 0)
    used = sum(i.get("Size", 0) - i.get("SharedSize", 0) for i in images
               if i.get("Containers", 0) and i.get("SharedSize", -1) != -1)
    active_c = [c for c in containers if c.get("State") in ("running", "paused", "restarting")]
    c_size = sum(c.get("SizeRw", 0) for c in containers)
    c_free = sum(c.get("SizeRw", 0) for c in containers if c not in active_c)
    v_size = sum(max((v.get("UsageData") or {}).get("Size", 0), 0) for v in volumes)
    v_free = sum(max((v.get("UsageData") or {}).get("Size", 0), 0) for v in volumes
                 if (v.get("UsageData") or {}).get("RefCount", 0) == 0)
    b_size = sum(b.get("Size", 0) for b in cache if not b.get("Shared"))
    b_free = sum(b.get("Size", 0) for b in cache if not b.get("InUse") and not b.get("Shared"))
    return [
        {"Type": "Images", "TotalCount": str(len(images)),
         "Active": str(sum(1 for i in images if i.get("Containers", 0) > 0)),
         "Size": units.human_size(total, 4), "Reclaimable": _reclaim(total - used, total)},
        {"Type": "Containers", "TotalCount": str(len(containers)), "Active": str(len(active_c)),
         "Size": units.human_size(c_size, 4), "Reclaimable": _reclaim(c_free, c_size)},
        {"Type": "Local Volumes", "TotalCount": str(len(volumes)),
         "Active": str(sum(1 for v in volumes if (v.get("UsageData") or {}).get("RefCount"))),
         "Size": units.human_size(v_size, 4), "Reclaimable": _reclaim(v_free, v_size)},
        {"Type": "Build Cache", "TotalCount": str(len(cache)),
         "Active": str(sum(1 for b in cache if b.get("InUse"))),
         "Size": units.human_size(b_size, 4), "Reclaimable": _reclaim(b_free, b_size, False)},
    ]


def run(cli, args) -> int:
    """GET /system/df and print the summary table (or, with -v, one table per kind)."""
    df = cli.client.get("/system/df") or {}
    if args.verbose and not args.format:
        sys.stdout.write(verbose(df))
        return 0
    sys.stdout.write(Formatter(args.format or DEFAULT_FORMAT, HEADERS).render(summary_rows(df)))
    return 0


_IMAGES = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t" \
          "{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}"
_CONTAINERS = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t" \
              "{{.RunningFor}}\t{{.Status}}\t{{.Names}}"
_VOLUMES = "table {{.Name}}\t{{.Links}}\t{{.Size}}"
_CACHE = "table {{.ID}}\t{{.CacheType}}\t{{.Size}}\t{{.CreatedSince}}\t{{.LastUsedSince}}\t" \
         "{{.UsageCount}}\t{{.Shared}}"


def verbose(df: dict) -> str:
    """`system df -v`: images, containers, volumes and build cache, each in its own table."""
    from knarr.cli import cmd_images, cmd_ps

    images = cmd_images.rows_of(df.get("Images") or [])
    for row in images:
        row.size_digits = 4
    containers = [cmd_ps.Row(c) for c in df.get("Containers") or []]
    for row in containers:
        row.size_digits = 4
    volumes = [{"Name": v.get("Name", ""),
                "Links": str((v.get("UsageData") or {}).get("RefCount", 0)),
                "Size": units.human_size(max((v.get("UsageData") or {}).get("Size", 0), 0), 4)}
               for v in df.get("Volumes") or []]
    cache = [{"ID": b.get("ID", "")[:12], "CacheType": b.get("Type", ""),
              "Size": units.human_size(b.get("Size", 0), 4),
              "CreatedSince": b.get("CreatedAt", ""), "LastUsedSince": b.get("LastUsedAt", ""),
              "UsageCount": str(b.get("UsageCount", 0)), "Shared": str(b.get("Shared", False))
              .lower()} for b in df.get("BuildCache") or []]
    cache_size = sum(b.get("Size", 0) for b in df.get("BuildCache") or [])
    return "".join([
        "Images space usage:\n\n", Formatter(_IMAGES, cmd_images.HEADERS).render(images),
        "\nContainers space usage:\n\n", Formatter(_CONTAINERS, cmd_ps.HEADERS).render(containers),
        "\nLocal Volumes space usage:\n\n",
        Formatter(_VOLUMES, {"Name": "VOLUME NAME", "Links": "LINKS", "Size": "SIZE"})
        .render(volumes),
        f"\nBuild cache usage: {units.human_size(cache_size, 4)}\n\n",
        Formatter(_CACHE, {"ID": "CACHE ID", "CacheType": "CACHE TYPE", "Size": "SIZE",
                           "CreatedSince": "CREATED", "LastUsedSince": "LAST USED",
                           "UsageCount": "USAGE", "Shared": "SHARED"}).render(cache)])
