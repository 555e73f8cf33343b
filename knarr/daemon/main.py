"""knarrd: serve the Docker Engine API for one state root.

The fork helper is forked first, while this process holds little more than
the interpreter: every container's monitor is a fork of it.
"""

import sys

__all__ = ["entry"]

DEFAULT_ROOT = "/var/lib/knarr"
DEFAULT_EXEC_ROOT = "/run/knarr"
DEFAULT_HOST = "unix:///run/knarr/knarr.sock"
DEFAULT_GROUP = "knarr"


def _parse(argv: list[str]):
    import argparse

    parser = argparse.ArgumentParser(prog="knarrd", description="the knarr daemon: serves "
                                     "the Docker Engine API")
    parser.add_argument("--root", default=DEFAULT_ROOT, help="persistent state "
                        f"(default {DEFAULT_ROOT})")
    parser.add_argument("--exec-root", default=DEFAULT_EXEC_ROOT, help="run-time state "
                        f"(default {DEFAULT_EXEC_ROOT})")
    parser.add_argument("-H", "--host", action="append", default=None,
                        help=f"where to listen: unix://PATH or tcp://HOST:PORT, repeatable "
                        f"(default {DEFAULT_HOST})")
    parser.add_argument("--tls", action="store_true", help="serve TCP with TLS")
    parser.add_argument("--tlsverify", action="store_true",
                        help="serve TCP with TLS and require client certificates")
    parser.add_argument("--tlscacert", help="CA certificate clients must be signed by")
    parser.add_argument("--tlscert", help="the server's certificate")
    parser.add_argument("--tlskey", help="the server's private key")
    parser.add_argument("--insecure-tcp", action="store_true",
                        help="allow a tcp:// listener without TLS (anyone who reaches it "
                        "is root on this machine)")
    parser.add_argument("-G", "--group", default=DEFAULT_GROUP,
                        help="group owning the unix sockets, made if missing when it is the "
                        f"default (default {DEFAULT_GROUP}; '' for root only)")
    parser.add_argument("--debug", "-D", action="store_true", help="log every request")
    parser.add_argument("--insecure-registry", action="append", default=[],
                        metavar="HOST[:PORT]|CIDR", help="a registry reached over plain HTTP "
                        "or unverified TLS (repeatable; loopback addresses always are)")
    parser.add_argument("--registry-mirror", action="append", default=[], metavar="URL",
                        help="a Docker Hub mirror, tried first (repeatable)")
    parser.add_argument("--registry-certs-dir", default="/etc/knarr/certs.d",
                        help="per-registry TLS files: <dir>/<host[:port]>/{*.crt,*.cert,*.key} "
                        "(default /etc/knarr/certs.d)")
    parser.add_argument("--max-concurrent-downloads", type=int, default=3,
                        help="layers a pull downloads at once (default 3)")
    parser.add_argument("--max-concurrent-uploads", type=int, default=5,
                        help="layers a push uploads at once (default 5)")
    parser.add_argument("--bridge", "-b", default="knarr0",
                        help="the Linux bridge of the default network (default knarr0)")
    parser.add_argument("--bridge-subnet", "--bip", default="",
                        help="the default network's subnet (default: 10.117.0.0/16 if free)")
    parser.add_argument("--default-address-pool", default="10.118.0.0/15",
                        help="where user-defined networks get their /24 subnets")
    parser.add_argument("--nft-table", default="knarr",
                        help="the nftables table (family ip) this daemon owns")
    parser.add_argument("--resolv-conf", default="/etc/resolv.conf",
                        help="the resolvers containers' DNS queries are forwarded to")
    parser.add_argument("--mtu", type=int, default=1500, help="the default networks' MTU")
    return parser.parse_args(argv)


def _listener(host: str) -> tuple[str, str, int]:
    """("unix", path, 0) or ("tcp", address, port) for one -H value."""
    if host.startswith("unix://"):
        return "unix", host[len("unix://"):], 0
    if host.startswith("/"):
        return "unix", host, 0
    if host.startswith("tcp://"):
        address, _, port = host[len("tcp://"):].rpartition(":")
        if port.isdigit():
            return "tcp", address.strip("[]"), int(port)
    raise SystemExit(f"knarrd: -H {host}: expected unix://PATH or tcp://HOST:PORT")


def _check_plain_tcp(args) -> None:
    """A TCP listener without TLS gives root to anyone who reaches it: refuse it
    unless --insecure-tcp says that is meant."""
    plain = [h for h, (kind, _, _) in zip(args.host, args.listeners, strict=True)
             if kind == "tcp"] if args.tls_context is None else []
    if plain and not args.insecure_tcp:
        raise SystemExit(f"knarrd: refusing to listen on {plain[0]} without TLS: pass "
                         "--tlsverify --tlscacert --tlscert --tlskey, or --insecure-tcp "
                         "to allow it anyway")


def _tls_context(args):
    if not (args.tls or args.tlsverify):
        return None
    import ssl

    if not (args.tlscert and args.tlskey):
        raise SystemExit("knarrd: --tls needs --tlscert and --tlskey")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(args.tlscert, args.tlskey)
    if args.tlsverify:
        if not args.tlscacert:
            raise SystemExit("knarrd: --tlsverify needs --tlscacert")
        context.load_verify_locations(args.tlscacert)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


async def _serve(args, helper) -> None:
    import asyncio
    import logging
    import signal

    from knarr.api import Server
    from knarr.distribution import Hosts
    from knarr.engine import Engine

    net_options = {"bridge": args.bridge, "bridge_subnet": args.bridge_subnet,
                   "pool": args.default_address_pool, "nft_table": args.nft_table,
                   "resolv_conf": args.resolv_conf, "mtu": args.mtu}
    engine = Engine(args.root, args.exec_root, helper, net_options)
    engine.registry_hosts = Hosts(args.registry_certs_dir, args.insecure_registry,
                                  args.registry_mirror)
    engine.max_concurrent_downloads = args.max_concurrent_downloads
    engine.max_concurrent_uploads = args.max_concurrent_uploads
    await engine.restore()
    api = Server(engine)
    servers = []
    for host, (kind, where, port) in zip(args.host, args.listeners, strict=True):
        if kind == "unix":
            servers.append(await api.serve_unix(where, args.group))
        else:
            if args.tls_context is None:
                logging.getLogger("knarr").warning(
                    "knarrd: listening on %s without TLS (--insecure-tcp): anyone who can "
                    "reach it is root on this machine", host)
            servers.append(await api.serve_tcp(where, port, args.tls_context))
        logging.getLogger("knarr").info("knarrd: listening on %s", host)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    for server in servers:
        server.close()
    engine.close()  # containers and their monitors keep running: live restore


def entry(argv: list[str] | None = None) -> None:
    """The knarrd command."""
    from knarr.engine import forkhelper

    helper, _helper_pid = forkhelper.start()
    args = _parse(sys.argv[1:] if argv is None else argv)
    args.host = args.host or [DEFAULT_HOST]
    args.listeners = [_listener(h) for h in args.host]
    args.tls_context = _tls_context(args)
    _check_plain_tcp(args)
    import asyncio
    import logging
    import os

    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s")
    if os.geteuid() != 0:
        raise SystemExit("knarrd: must run as root")
    if args.group == DEFAULT_GROUP:
        _ensure_group(DEFAULT_GROUP)
    try:
        asyncio.run(_serve(args, helper))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    entry()


def _ensure_group(name: str) -> None:
    """Make the sockets' system group if it is missing, as Docker's packages make `docker`:
    the socket is then 0660 root:knarr, and membership is what grants access."""
    import logging
    import subprocess

    from knarr.api.server import group_gid

    if group_gid(name) is not None:
        return
    try:
        made = subprocess.run(["groupadd", "--system", name], capture_output=True, text=True)
    except OSError as exc:
        made = subprocess.CompletedProcess([], 1, "", str(exc))
    if made.returncode not in (0, 9):  # 9: made meanwhile by another daemon
        logging.getLogger("knarr").warning(
            "knarrd: could not make group %s (%s); the socket stays root-only (0600)", name,
            made.stderr.strip())
