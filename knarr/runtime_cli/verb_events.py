"""knarr-runtime events --stats ID: one resource-usage snapshot as JSON"""

import json

from knarr.runtime import container as containers


def add_parser(sub) -> None:
    """Register the verb."""
    p = sub.add_parser("events", help="print resource statistics of a container")
    p.add_argument("--stats", action="store_true", help="print one snapshot and exit")
    p.add_argument("--interval", default="5s", help="accepted; only --stats is supported")
    p.add_argument("id", metavar="ID")
    p.set_defaults(func=run)


def run(args) -> int:
    """Print the stats event."""
    c = containers.load(args.root, args.id)
    print(json.dumps({"type": "stats", "id": c.id, "data": c.cgroup.stats()}))
    return 0
