"""`python -m knarr.images`: the image store from a shell, until the knarr CLI serves it.

    python -m knarr.images --root /var/lib/knarr busybox          # from /bin/busybox
    python -m knarr.images --root /var/lib/knarr hello-world
    python -m knarr.images --root /var/lib/knarr debian bookworm  # needs debootstrap
    python -m knarr.images --root /var/lib/knarr load < image.tar
    python -m knarr.images --root /var/lib/knarr save busybox > busybox.tar
    python -m knarr.images --root /var/lib/knarr list | inspect REF | history REF
    python -m knarr.images --root /var/lib/knarr tag SRC DST | rmi REF | prune | check
"""

import argparse
import json
import sys

from knarr.errors import KnarrError
from knarr.images import ImageStore, busybox, debian, hello_world, load, save

_DEFAULT_ROOT = "/var/lib/knarr"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m knarr.images", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=_DEFAULT_ROOT, help="engine state root")
    verbs = parser.add_subparsers(dest="verb", required=True)
    verbs.add_parser("hello-world", help="build the built-in hello-world image")
    box = verbs.add_parser("busybox", help="build busybox:latest from the host's busybox")
    box.add_argument("--source", default="/bin/busybox")
    deb = verbs.add_parser("debian", help="build debian:<suite> with debootstrap")
    deb.add_argument("suite", nargs="?", default="bookworm")
    deb.add_argument("--mirror")
    ld = verbs.add_parser("load", help="load a docker-save or OCI archive from stdin")
    ld.add_argument("--name", help="repository for OCI entries that carry only a tag")
    sv = verbs.add_parser("save", help="write images to stdout")
    sv.add_argument("refs", nargs="+")
    sv.add_argument("--format", choices=("docker", "oci"), default="docker")
    verbs.add_parser("list", help="list images")
    for verb in ("inspect", "history", "rmi"):
        p = verbs.add_parser(verb)
        p.add_argument("ref")
        if verb == "rmi":
            p.add_argument("--force", action="store_true")
    tag = verbs.add_parser("tag")
    tag.add_argument("source")
    tag.add_argument("target")
    pr = verbs.add_parser("prune", help="remove dangling images (all unused with --all)")
    pr.add_argument("--all", action="store_true")
    verbs.add_parser("check", help="verify every blob, image and layer in the store")
    return parser


def _run(store: ImageStore, args: argparse.Namespace) -> object:
    simple = {
        "hello-world": lambda: hello_world(store),
        "busybox": lambda: busybox(store, args.source),
        "debian": lambda: debian(store, args.suite, args.mirror),
        "load": lambda: load(store, sys.stdin.buffer, args.name),
        "list": store.list,
        "inspect": lambda: store.inspect(args.ref),
        "history": lambda: store.history(args.ref),
        "rmi": lambda: store.remove(args.ref, force=args.force),
        "tag": lambda: store.tag(args.source, args.target),
        "prune": lambda: store.prune(all_images=args.all),
        "check": store.check,
    }
    if args.verb == "save":
        return save(store, args.refs, sys.stdout.buffer, args.format)
    return simple[args.verb]()


def main(argv: list[str] | None = None) -> int:
    """Run one verb; print its result as JSON; exit 1 with the message on a knarr error."""
    args = _parser().parse_args(argv)
    store = ImageStore(args.root)
    try:
        result = _run(store, args)
    except KnarrError as exc:
        print(f"knarr images: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    if result is not None:
        print(json.dumps(result, indent=2))
    return 1 if args.verb == "check" and result else 0


if __name__ == "__main__":
    sys.exit(main())
