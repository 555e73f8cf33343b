"""knarr version [OPTIONS]: the client's and the daemon's versions."""

import sys

from knarr.cli import flags
from knarr.errors import KnarrError

__all__ = ["command", "run", "VERSION"]

VERSION = "0.1.0"


def command(name: str) -> flags.Command:
    """The declaration of `version`."""
    c = flags.Command(name, f"knarr {name} [OPTIONS]", "Show the knarr version information",
                      max_args=0)
    c.add_argument("-f", "--format", help="Format the output using the given Go template")
    return c


def _client_info(cli) -> dict:
    import os

    from knarr.client.api import API_VERSION

    version = cli._client.version if cli._client else API_VERSION
    return {"Version": VERSION, "ApiVersion": version, "DefaultAPIVersion": API_VERSION,
            "PythonVersion": sys.version.split()[0], "Os": "linux",
            "Arch": _arch(os.uname().machine), "Context": "default"}


def _arch(machine: str) -> str:
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def run(cli, args) -> int:
    """GET /version; print both sides (the client's even when the daemon is away)."""
    server, error = None, None
    try:
        server = cli.client.get("/version")
    except KnarrError as exc:
        error = exc
    client = _client_info(cli)
    if args.format:
        from knarr.cli.template import render

        fmt = "{{json .}}" if args.format.strip() == "json" else args.format
        sys.stdout.write(render(fmt, {"Client": client, "Server": server}) + "\n")
    else:
        sys.stdout.write(_text(client, server))
    if error is not None:
        sys.stdout.flush()
        raise cli.fail(cli.describe(error), 1)
    return 0


def _text(client: dict, server: dict | None) -> str:
    api = client["ApiVersion"]
    if api != client["DefaultAPIVersion"]:
        api += f" (downgraded from {client['DefaultAPIVersion']})"
    lines = ["Client:", f" Version:           {client['Version']}",
             f" API version:       {api}", f" Python version:    {client['PythonVersion']}",
             f" OS/Arch:           {client['Os']}/{client['Arch']}",
             f" Context:           {client['Context']}"]
    if server:
        lines += ["", "Server:"] + _server_lines(server)
    return "\n".join(lines) + "\n"


def _ansic(stamp: str) -> str:
    """An RFC 3339 build time as Go's time.ANSIC (`Thu May  7 21:09:36 2026`), in its zone."""
    import time

    from knarr.cli import units

    try:
        epoch = units.rfc3339_to_epoch(stamp)
    except (ValueError, IndexError):
        return stamp
    zone = stamp[-6:] if len(stamp) > 6 and stamp[-6] in "+-" and stamp[-3] == ":" else ""
    if zone:
        sign = -1 if zone[0] == "-" else 1
        epoch += sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return time.strftime("%a %b %e %H:%M:%S %Y", time.gmtime(epoch))


def _server_lines(server: dict) -> list[str]:
    lines = [" Engine:", f"  Version:          {server.get('Version', '')}",
             f"  API version:      {server.get('ApiVersion', '')} (minimum version "
             f"{server.get('MinAPIVersion', '')})",
             f"  Go version:       {server.get('GoVersion', '')}",
             f"  Git commit:       {server.get('GitCommit', '')}",
             f"  Built:            {_ansic(server.get('BuildTime', ''))}",
             f"  OS/Arch:          {server.get('Os', '')}/{server.get('Arch', '')}",
             f"  Experimental:     {str(server.get('Experimental', False)).lower()}"]
    for comp in server.get("Components") or []:
        if comp.get("Name") == "Engine":
            continue
        lines += [f" {comp.get('Name')}:", f"  Version:          {comp.get('Version', '')}"]
        for key, value in sorted((comp.get("Details") or {}).items()):
            if key in ("GitCommit",):
                lines.append(f"  {key + ':':<18}{value}")
    return lines
