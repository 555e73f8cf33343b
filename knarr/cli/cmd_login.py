"""knarr login [OPTIONS] [SERVER]: check credentials with the daemon and keep them."""

import sys

from knarr.cli import flags

__all__ = ["command", "run"]


def command(name: str) -> flags.Command:
    """The declaration of `login`."""
    c = flags.Command(name, f"knarr {name} [OPTIONS] [SERVER]",
                      "Log in to a registry", max_args=1)
    c.add_argument("-p", "--password", help="Password")
    c.add_argument("--password-stdin", action="store_true", help="Take the password from stdin")
    c.add_argument("-u", "--username", help="Username")
    return c


def _ask(prompt: str, secret: bool) -> str:
    if secret:
        import getpass

        return getpass.getpass(prompt)
    sys.stdout.write(prompt)
    sys.stdout.flush()
    return sys.stdin.readline().rstrip("\n")


def run(cli, args) -> int:
    """POST /auth; on success store user:password for the server."""
    from knarr.cli import auth

    server = args.args[0] if args.args else auth.INDEX
    if args.password and args.password_stdin:
        raise cli.fail("--password and --password-stdin are mutually exclusive", 1)
    if args.password_stdin:
        if not args.username:
            raise cli.fail("Must provide --username with --password-stdin", 1)
        args.password = sys.stdin.read().rstrip("\r\n")
    elif args.password:
        sys.stderr.write("WARNING! Using --password via the CLI is insecure. Use "
                         "--password-stdin.\n")
    username = args.username or _ask("Username: ", secret=False)
    password = args.password if args.password is not None else _ask("Password: ", True)
    if not username or not password:
        raise cli.fail("Error: Non-null Username Required" if not username else
                       "Error: Password Required", 1)
    result = cli.client.post("/auth", None, {"username": username, "password": password,
                                             "serveraddress": server}) or {}
    where = auth.store(server, username, password)
    if where != "helper":
        sys.stderr.write(f"WARNING! Your password will be stored unencrypted in {where}.\n"
                         "Configure a credential helper to remove this warning. See\n"
                         "https://docs.docker.com/engine/reference/commandline/login/"
                         "#credentials-store\n\n")
    sys.stdout.write(f"{result.get('Status') or 'Login Succeeded'}\n")
    return 0
