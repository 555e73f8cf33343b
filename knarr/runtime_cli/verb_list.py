"""knarr-runtime list [--format table|json] [-q]"""

import json
import os
import pwd

from knarr.errors import KnarrError
from knarr.runtime import container as containers
from knarr.runtime import state


def add_parser(sub) -> None:
    """Register the verb."""
    p = sub.add_parser("list", aliases=["ls"], help="list containers under --root")
    p.add_argument("-f", "--format", default="table", choices=("table", "json"))
    p.add_argument("-q", "--quiet", action="store_true", help="print only the ids")
    p.set_defaults(func=run)


def _rows(root: str) -> list[dict]:
    rows = []
    for container_id in state.list_ids(root):
        try:
            c = containers.load(root, container_id)
        except KnarrError:
            continue
        doc = c.oci_state()
        doc["owner"] = _owner(os.path.join(root, container_id))
        rows.append(doc)
    return rows


def _owner(path: str) -> str:
    try:
        return pwd.getpwuid(os.stat(path).st_uid).pw_name
    except (KeyError, OSError):
        return ""


def run(args) -> int:
    """Print the list."""
    rows = _rows(args.root)
    if args.quiet:
        for row in rows:
            print(row["id"])
    elif args.format == "json":
        print(json.dumps(rows))
    else:
        table = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        table += [(r["id"], str(r["pid"]), r["status"], r["bundle"], r["created"], r["owner"])
                  for r in rows]
        widths = [max(len(row[i]) for row in table) for i in range(6)]
        for row in table:
            print("   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0
