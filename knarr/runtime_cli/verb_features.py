"""knarr-runtime features: what this runtime supports, as JSON"""

import json

from knarr.runtime import capabilities, namespaces


def add_parser(sub) -> None:
    """Register the verb."""
    p = sub.add_parser("features", help="print the features this runtime supports")
    p.set_defaults(func=run)


def run(args) -> int:
    """Print the features document."""
    print(json.dumps({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.1.0",
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer",
                  "poststart", "poststop"],
        "mountOptions": ["ro", "rw", "bind", "rbind", "nosuid", "nodev", "noexec", "private",
                         "rprivate", "shared", "rshared", "slave", "rslave"],
        "linux": {
            "namespaces": sorted(namespaces.FLAGS),
            "capabilities": sorted(capabilities.CAPABILITIES),
            "cgroup": {"v1": True, "v2": True, "systemd": False},
            "seccomp": {"enabled": True},
        },
    }, indent=2))
    return 0
