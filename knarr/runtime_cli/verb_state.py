"""knarr-runtime state ID: the OCI state as JSON"""

import json

from knarr.runtime import container as containers


def add_parser(sub) -> None:
    """Register the verb."""
    p = sub.add_parser("state", help="print a container's state as JSON")
    p.add_argument("id", metavar="ID")
    p.set_defaults(func=run)


def run(args) -> int:
    """Print the state."""
    print(json.dumps(containers.load(args.root, args.id).oci_state(), indent=2))
    return 0
