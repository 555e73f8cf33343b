"""knarr info [OPTIONS]: system-wide information from the daemon."""

import sys

from knarr.cli import flags, units

__all__ = ["command", "run"]


def command(name: str) -> flags.Command:
    """The declaration of `info`."""
    c = flags.Command(name, f"knarr {name} [OPTIONS]", "Display system-wide information",
                      max_args=0)
    c.add_argument("-f", "--format", help="Format the output using the given Go template")
    return c


_FIELDS = (("Server Version", "ServerVersion"), ("Storage Driver", "Driver"),
           ("Logging Driver", "LoggingDriver"), ("Cgroup Driver", "CgroupDriver"),
           ("Cgroup Version", "CgroupVersion"), ("Default Runtime", "DefaultRuntime"),
           ("Init Binary", "InitBinary"), ("Security Options", "SecurityOptions"),
           ("Kernel Version", "KernelVersion"), ("Operating System", "OperatingSystem"),
           ("OSType", "OSType"), ("Architecture", "Architecture"), ("CPUs", "NCPU"),
           ("Total Memory", "MemTotal"), ("Name", "Name"), ("ID", "ID"),
           ("Docker Root Dir", "DockerRootDir"), ("Debug Mode", "Debug"),
           ("Experimental", "ExperimentalBuild"), ("Live Restore Enabled", "LiveRestoreEnabled"))


def run(cli, args) -> int:
    """GET /info; print it the way `docker info` lays it out."""
    info = cli.client.get("/info") or {}
    if args.format:
        from knarr.cli.template import render

        sys.stdout.write(render(args.format, info) + "\n")
        return 0
    lines = ["Client:", " Context:    default", " Debug Mode: false", "", "Server:",
             f" Containers: {info.get('Containers', 0)}",
             f"  Running: {info.get('ContainersRunning', 0)}",
             f"  Paused: {info.get('ContainersPaused', 0)}",
             f"  Stopped: {info.get('ContainersStopped', 0)}",
             f" Images: {info.get('Images', 0)}"]
    for title, key in _FIELDS:
        if key not in info:
            continue
        value = info[key]
        if key == "MemTotal":
            value = units.bytes_size(value)
        elif key == "SecurityOptions":
            lines.append(f" {title}:")
            lines += [f"  {opt.removeprefix('name=').split(',')[0]}" for opt in value or []]
            continue
        elif isinstance(value, bool):
            value = str(value).lower()
        lines.append(f" {title}: {value}")
    for warning in info.get("Warnings") or []:
        sys.stderr.write(warning + "\n")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0
