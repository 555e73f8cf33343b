"""knarr info [OPTIONS]: system-wide information from the daemon, laid out as `docker info`."""

import sys

from knarr.cli import flags, units

__all__ = ["command", "run", "server_lines"]


def command(name: str) -> flags.Command:
    """The declaration of `info`."""
    c = flags.Command(name, f"knarr {name} [OPTIONS]", "Display system-wide information",
                      max_args=0)
    c.add_argument("-f", "--format", help="Format the output using the given Go template")
    return c


def _security(options: list[str]) -> list[str]:
    lines = [" Security Options:"]
    for opt in options or []:
        fields = dict(f.partition("=")[::2] for f in opt.split(","))
        lines.append(f"  {fields.pop('name', opt)}")
        lines += [f"   {key.capitalize()}: {value}" for key, value in fields.items()]
    return lines


def _plugins(plugins: dict) -> list[str]:
    lines = [" Plugins:"]
    for kind in ("Volume", "Network", "Authorization", "Log"):
        if plugins.get(kind):
            lines.append(f"  {kind}: {' '.join(plugins[kind])}")
    return lines


def server_lines(info: dict) -> list[str]:
    """The Server: section."""
    get = info.get
    lines = [f" Containers: {get('Containers', 0)}", f"  Running: {get('ContainersRunning', 0)}",
             f"  Paused: {get('ContainersPaused', 0)}",
             f"  Stopped: {get('ContainersStopped', 0)}", f" Images: {get('Images', 0)}",
             f" Server Version: {get('ServerVersion', '')}",
             f" Storage Driver: {get('Driver', '')}"]
    lines += [f"  {k}: {v}" for k, v in get("DriverStatus") or []]
    lines += [f" Logging Driver: {get('LoggingDriver', '')}",
              f" Cgroup Driver: {get('CgroupDriver', '')}",
              f" Cgroup Version: {get('CgroupVersion', '')}"]
    lines += _plugins(get("Plugins") or {})
    swarm = (get("Swarm") or {}).get("LocalNodeState")
    if swarm:
        lines.append(f" Swarm: {swarm}")
    if get("Runtimes"):
        lines.append(f" Runtimes: {' '.join(sorted(get('Runtimes')))}")
    lines += [f" Default Runtime: {get('DefaultRuntime', '')}"]
    if get("InitBinary"):
        lines.append(f" Init Binary: {get('InitBinary')}")
    for name, key in (("containerd", "ContainerdCommit"), ("runc", "RuncCommit"),
                      ("init", "InitCommit")):
        if key in info:
            lines.append(f" {name} version: {(get(key) or {}).get('ID', '')}")
    lines += _security(get("SecurityOptions"))
    lines += [f" Kernel Version: {get('KernelVersion', '')}",
              f" Operating System: {get('OperatingSystem', '')}",
              f" OSType: {get('OSType', '')}", f" Architecture: {get('Architecture', '')}",
              f" CPUs: {get('NCPU', 0)}", f" Total Memory: {units.bytes_size(get('MemTotal', 0))}",
              f" Name: {get('Name', '')}", f" ID: {get('ID', '')}",
              f" Docker Root Dir: {get('DockerRootDir', '')}",
              f" Debug Mode: {str(get('Debug', False)).lower()}"]
    if get("IndexServerAddress"):
        lines.append(f" Registry: {get('IndexServerAddress')}")
    lines.append(" Labels:")
    lines += [f"  {label}" for label in get("Labels") or []]
    lines.append(f" Experimental: {str(get('ExperimentalBuild', False)).lower()}")
    cidrs = (get("RegistryConfig") or {}).get("InsecureRegistryCIDRs") or []
    if cidrs:
        lines.append(" Insecure Registries:")
        lines += [f"  {cidr}" for cidr in cidrs]
    lines.append(f" Live Restore Enabled: {str(get('LiveRestoreEnabled', False)).lower()}")
    return lines


def run(cli, args) -> int:
    """GET /info; print it the way `docker info` lays it out."""
    info = cli.client.get("/info") or {}
    if args.format:
        from knarr.cli.template import render

        fmt = "{{json .}}" if args.format.strip() == "json" else args.format
        sys.stdout.write(render(fmt, info) + "\n")
        return 0
    lines = ["Client:", " Context:    default", " Debug Mode: false", "", "Server:"]
    sys.stdout.write("\n".join(lines + server_lines(info)) + "\n\n")
    for warning in info.get("Warnings") or []:
        sys.stderr.write(warning + "\n")
    return 0
