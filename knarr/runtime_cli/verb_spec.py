"""knarr-runtime spec [--rootless] [--bundle DIR]: write a default config.json"""

import json
import os

from knarr.errors import AlreadyExists
from knarr.oci import runtime_spec


def add_parser(sub) -> None:
    """Register the verb."""
    p = sub.add_parser("spec", help="write a starter config.json into the bundle")
    p.add_argument("-b", "--bundle", default=".", help="bundle directory (default: .)")
    # Its own dest: the global --rootless (default "auto") would otherwise make every
    # spec rootless.
    p.add_argument("--rootless", action="store_true", dest="spec_rootless",
                   help="a config for a user namespace")
    p.set_defaults(func=run)


def run(args) -> int:
    """Write the config, refusing to overwrite one."""
    path = os.path.join(args.bundle, "config.json")
    if os.path.exists(path):
        raise AlreadyExists(f"spec: {path} exists already; remove it first", path=path)
    with open(path, "w") as f:
        json.dump(runtime_spec.default_config(rootless=args.spec_rootless), f, indent="\t")
    return 0
