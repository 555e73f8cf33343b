"""`knarr-registry`: serve a registry, or collect its garbage.

    knarr-registry serve --addr 127.0.0.1:5000 --root DIR [--htpasswd F]
                         [--tls-cert C --tls-key K] [--read-only] [--token-key F]
    knarr-registry gc --root DIR [--upload-age SECONDS] [--dry-run]

The root should be the registry's own: gc deletes every blob in
`<root>/content` that no repository links.
"""

import argparse
import os
import secrets
import signal
import ssl
import sys

__all__ = ["entry", "main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="knarr-registry",
                                     description="an OCI distribution registry")
    verbs = parser.add_subparsers(dest="verb", required=True)
    serve = verbs.add_parser("serve", help="serve the registry over HTTP(S)")
    serve.add_argument("--addr", default="127.0.0.1:5000", help="HOST:PORT to listen on")
    serve.add_argument("--root", required=True, help="state directory")
    serve.add_argument("--htpasswd", help="htpasswd file: Basic auth (or token logins)")
    serve.add_argument("--tls-cert", help="PEM certificate chain")
    serve.add_argument("--tls-key", help="PEM private key")
    serve.add_argument("--read-only", action="store_true", help="refuse every write")
    serve.add_argument("--token-key", help="HMAC key file (made if absent): Bearer tokens")
    serve.add_argument("--verbose", action="store_true", help="access log on stderr")
    gc = verbs.add_parser("gc", help="delete unreferenced blobs and stale uploads")
    gc.add_argument("--root", required=True, help="state directory")
    gc.add_argument("--upload-age", type=float, default=7 * 86400.0,
                    help="drop upload sessions idle this many seconds (default a week)")
    gc.add_argument("--orphan-age", type=float, default=86400.0,
                    help="unlink blobs no manifest of their repository names after this many "
                         "seconds (default a day; negative keeps them)")
    gc.add_argument("--dry-run", action="store_true", help="report, delete nothing")
    return parser


def _token_key(path: str) -> bytes:
    """The key in `path`, made (32 random bytes, mode 0600) if the file does not exist."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        with open(path, "rb") as f:
            return f.read()
    key = secrets.token_bytes(32)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return key


def serve(args: argparse.Namespace) -> int:
    """Run the server until SIGTERM or SIGINT."""
    from knarr.registry.app import Registry
    from knarr.registry.http import Server

    if bool(args.tls_cert) != bool(args.tls_key):
        print("knarr-registry: --tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    context = None
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
    host, _, port = args.addr.rpartition(":")
    app = Registry(args.root, htpasswd=args.htpasswd,
                   token_key=_token_key(args.token_key) if args.token_key else None,
                   read_only=args.read_only, verbose=args.verbose, tls=context is not None)
    server = Server((host or "0.0.0.0", int(port)), app, context)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    bound = server.server_address
    print(f"knarr-registry: listening on {bound[0]}:{bound[1]}", file=sys.stderr, flush=True)
    try:
        server.serve_forever(poll_interval=0.5)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.server_close()
    return 0


def collect(args: argparse.Namespace) -> int:
    """One garbage collection; prints what it removed."""
    from knarr.errors import KnarrError
    from knarr.registry.gc import collect as run

    try:
        result = run(args.root, args.upload_age, args.dry_run,
                     None if args.orphan_age < 0 else args.orphan_age)
    except KnarrError as exc:
        print(f"knarr-registry: {exc}", file=sys.stderr)
        return 1
    verb = "would remove" if args.dry_run else "removed"
    print(f"{verb} {len(result['blobs'])} blobs ({result['bytes']} bytes), "
          f"{len(result['orphans'])} unreferenced blob links, "
          f"{len(result['uploads'])} stale uploads")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the verb."""
    args = _parser().parse_args(argv)
    return serve(args) if args.verb == "serve" else collect(args)


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
