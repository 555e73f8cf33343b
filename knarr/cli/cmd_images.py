"""knarr images [OPTIONS] [REPOSITORY[:TAG]]: list images in Docker's table."""

import sys
import time

from knarr.cli import flags, opts, units
from knarr.cli.table import Formatter

__all__ = ["command", "run", "Row", "rows_of"]

DEFAULT_FORMAT = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
DIGEST_FORMAT = "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t" \
                "{{.Size}}"
HEADERS = {"Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "Digest": "DIGEST",
           "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE",
           "Containers": "CONTAINERS", "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE",
           "VirtualSize": "VIRTUAL SIZE"}


def command(name: str) -> flags.Command:
    """The declaration of `images`."""
    c = flags.Command(name, f"knarr {name} [OPTIONS] [REPOSITORY[:TAG]]", "List images",
                      max_args=1)
    c.add_argument("-a", "--all", action="store_true",
                   help="Show all images (default hides intermediate images)")
    c.add_argument("--digests", action="store_true", help="Show digests")
    c.add_argument("-f", "--filter", action="append", type=opts.filter_item, help="Filter output based on conditions")
    c.add_argument("--format", help="Pretty-print images using a Go template")
    c.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    c.add_argument("-q", "--quiet", action="store_true", help="Only show image IDs")
    return c


class Row:
    """One (image, repository, tag) as Docker's formatter shows it."""

    size_digits = 3  # `system df -v` shows four

    def __init__(self, image: dict, repo: str, tag: str, digest: str, trunc: bool,
                 now: float) -> None:
        self.image, self.Repository, self.Tag, self.Digest = image, repo, tag, digest
        self.trunc, self.now = trunc, now

    @property
    def ID(self) -> str:
        ident = self.image.get("Id", "")
        return ident.removeprefix("sha256:")[:12] if self.trunc else ident

    @property
    def CreatedSince(self) -> str:
        created = self.image.get("Created", 0)
        return units.since_ago(created, self.now) if created > 0 else "N/A"

    @property
    def CreatedAt(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S %z %Z",
                             time.localtime(self.image.get("Created", 0)))

    @property
    def Size(self) -> str:
        return units.human_size(self.image.get("Size", 0), self.size_digits)

    @property
    def VirtualSize(self) -> str:
        return units.human_size(self.image.get("VirtualSize", self.image.get("Size", 0)), 4)

    @property
    def SharedSize(self) -> str:
        shared = self.image.get("SharedSize", -1)
        return "N/A" if shared < 0 else units.human_size(shared, self.size_digits)

    @property
    def UniqueSize(self) -> str:
        shared = self.image.get("SharedSize", -1)
        return "N/A" if shared < 0 else units.human_size(self.image.get("Size", 0) - shared,
                                                         self.size_digits)

    @property
    def Containers(self) -> str:
        count = self.image.get("Containers", -1)
        return "N/A" if count < 0 else str(count)

    def as_dict(self) -> dict:
        """What `{{json .}}` prints."""
        return {k: getattr(self, k) for k in ("Containers", "CreatedAt", "CreatedSince",
                                               "Digest", "ID", "Repository", "SharedSize",
                                               "Size", "Tag", "UniqueSize", "VirtualSize")}


def _split(ref: str) -> tuple[str, str]:
    name, _, tag = ref.rpartition(":")
    if "/" in tag or not name:
        return ref, "<none>"
    return name, tag


def rows_of(images: list[dict], trunc: bool = True, now: float | None = None) -> list[Row]:
    """A row per repository:tag (or one <none> row for an untagged image)."""
    now = time.time() if now is None else now
    rows = []
    for image in images:
        digests = {d.split("@")[0]: d.split("@")[1] for d in image.get("RepoDigests") or []
                   if "@" in d}
        tags = [t for t in image.get("RepoTags") or [] if t != "<none>:<none>"]
        for ref in tags:
            repo, tag = _split(ref)
            rows.append(Row(image, repo, tag, digests.get(repo, "<none>"), trunc, now))
        if not tags:
            repo = next(iter(digests), "<none>")
            rows.append(Row(image, repo, "<none>", digests.get(repo, "<none>"), trunc, now))
    return rows


def run(cli, args) -> int:
    """GET /images/json and print it."""
    from knarr.client import jsonc

    try:
        filters = opts.filters(args.filter) or {}
    except ValueError as exc:
        raise cli.fail(str(exc), 125) from None
    if args.args:
        filters["reference"] = [args.args[0]]
    images = cli.client.get("/images/json", {
        "all": args.all or None, "digests": args.digests or None,
        "filters": jsonc.dumps(filters) if filters else None}) or []
    if args.quiet:
        seen = []
        for row in rows_of(images, not args.no_trunc):
            if row.ID not in seen:
                seen.append(row.ID)
        sys.stdout.write("".join(i + "\n" for i in seen))
        return 0
    fmt = args.format if args.format and args.format.strip() != "table" else \
        (DIGEST_FORMAT if args.digests else DEFAULT_FORMAT)
    sys.stdout.write(Formatter(fmt, HEADERS).render(rows_of(images, not args.no_trunc)))
    return 0
