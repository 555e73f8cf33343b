"""knarr-runtime ps [--format table|json] ID [PS_ARGS...]"""

import json
import subprocess

from knarr.runtime import container as containers
from knarr.runtime_cli.flags import REMAINDER


def add_parser(sub) -> None:
    """Register the verb."""
    p = sub.add_parser("ps", help="list the processes of a container")
    p.add_argument("-f", "--format", default="table", choices=("table", "json"))
    p.add_argument("id", metavar="ID")
    p.add_argument("ps_args", nargs=REMAINDER, help="options for ps(1) (default: -ef)")
    p.set_defaults(func=run)


def run(args) -> int:
    """Print the processes, as ps(1) shows them, or their pids as JSON."""
    pids = containers.load(args.root, args.id).cgroup.pids()
    if args.format == "json":
        print(json.dumps(pids))
        return 0
    out = subprocess.run(["ps", *(args.ps_args or ["-ef"])], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    header, lines = out[0], out[1:]
    column = header.split().index("PID")
    print(header)
    wanted = set(pids)
    for line in lines:
        fields = line.split()
        if len(fields) > column and fields[column].isdigit() and int(fields[column]) in wanted:
            print(line)
    return 0
