"""knarr-runtime update --resources FILE|- ID: change a container's cgroup limits"""

import json
import sys

from knarr.errors import InvalidArgument
from knarr.runtime import container as containers


def add_parser(sub) -> None:
    """Register the verb."""
    p = sub.add_parser("update", help="update resource limits (OCI linux.resources JSON)")
    p.add_argument("-r", "--resources", required=True, help="a JSON file, or - for stdin")
    p.add_argument("id", metavar="ID")
    p.set_defaults(func=run)


def run(args) -> int:
    """Apply the new limits."""
    raw = sys.stdin.read() if args.resources == "-" else open(args.resources).read()
    try:
        resources = json.loads(raw)
    except ValueError as exc:
        raise InvalidArgument(f"update {args.id}: resources are not valid JSON: {exc}") from exc
    containers.load(args.root, args.id).cgroup.apply(resources)
    return 0
