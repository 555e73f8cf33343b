"""knarr create [OPTIONS] IMAGE [COMMAND] [ARG...]: the container's config, and create itself.

`run` shares the flags and the request built here.
"""

import sys

from knarr.cli import flags, opts, units
from knarr.errors import NotFound

__all__ = ["command", "run", "declare", "create_body", "create_container", "image_ref"]


def command(name: str) -> flags.Command:
    """The declaration of `create`."""
    c = flags.Command(name, f"knarr {name} [OPTIONS] IMAGE [COMMAND] [ARG...]",
                      "Create a new container", min_args=1, interspersed=False)
    declare(c)
    return c


def declare(c: flags.Command) -> None:
    """The flags run and create share."""
    a = c.add_argument
    a("-i", "--interactive", action="store_true", help="Keep STDIN open even if not attached")
    a("-t", "--tty", action="store_true", help="Allocate a pseudo-TTY")
    a("--name", help="Assign a name to the container")
    a("-e", "--env", action="append", help="Set environment variables")
    a("--env-file", action="append", help="Read in a file of environment variables")
    a("-w", "--workdir", help="Working directory inside the container")
    a("-u", "--user", help="Username or UID (format: <name|uid>[:<group|gid>])")
    a("--entrypoint", help="Overwrite the default ENTRYPOINT of the image")
    a("-h", "--hostname", help="Container host name")
    a("--domainname", help="Container NIS domain name")
    a("-l", "--label", action="append", help="Set meta data on a container")
    a("-m", "--memory", type=units.ram_in_bytes, help="Memory limit")
    a("--memory-swap", type=units.mem_swap_bytes,
      help="Swap limit equal to memory plus swap: '-1' to enable unlimited swap")
    a("--memory-reservation", type=units.ram_in_bytes, help="Memory soft limit")
    a("--memory-swappiness", type=int, help="Tune container memory swappiness (0 to 100)")
    a("--cpus", type=units.parse_nano_cpus, help="Number of CPUs")
    a("-c", "--cpu-shares", type=int, help="CPU shares (relative weight)")
    a("--cpuset-cpus", help="CPUs in which to allow execution (0-3, 0,1)")
    a("--cpuset-mems", help="MEMs in which to allow execution (0-3, 0,1)")
    a("--cpu-period", type=int, help="Limit CPU CFS (Completely Fair Scheduler) period")
    a("--cpu-quota", type=int, help="Limit CPU CFS (Completely Fair Scheduler) quota")
    a("--pids-limit", type=int, help="Tune container pids limit (set -1 for unlimited)")
    a("--ulimit", action="append", type=opts.ulimit, help="Ulimit options")
    a("--restart", default="no", help="Restart policy to apply when a container exits")
    a("--init", action="store_true",
      help="Run an init inside the container that forwards signals and reaps processes")
    a("--read-only", action="store_true", help="Mount the container's root filesystem as read only")
    a("--cap-add", action="append", help="Add Linux capabilities")
    a("--cap-drop", action="append", help="Drop Linux capabilities")
    a("--privileged", action="store_true", help="Give extended privileges to this container")
    a("--security-opt", action="append", help="Security Options")
    a("--stop-signal", help="Signal to stop a container")
    a("--stop-timeout", type=int, help="Timeout (in seconds) to stop a container")
    a("--health-cmd", help="Command to run to check health")
    a("--health-interval", type=units.parse_duration,
      help="Time between running the check (ms|s|m|h) (default 0s)")
    a("--health-retries", type=int, help="Consecutive failures needed to report unhealthy")
    a("--health-timeout", type=units.parse_duration,
      help="Maximum time to allow one check to run (ms|s|m|h) (default 0s)")
    a("--health-start-period", type=units.parse_duration,
      help="Start period for the container to initialize before starting health-retries "
           "countdown (ms|s|m|h) (default 0s)")
    a("--no-healthcheck", action="store_true", help="Disable any container-specified HEALTHCHECK")
    a("--oom-kill-disable", action="store_true", help="Disable OOM Killer")
    a("--oom-score-adj", type=int, help="Tune host's OOM preferences (-1000 to 1000)")
    a("--network", "--net", default="default", help="Connect a container to a network")
    a("-v", "--volume", action="append", help="Bind mount a volume")
    a("--volumes-from", action="append",
      help="Mount volumes from the specified container(s)")
    a("--mount", action="append", type=opts.mount,
      help="Attach a filesystem mount to the container")
    a("-p", "--publish", action="append", type=opts.publish,
      help="Publish a container's port(s) to the host")
    a("-P", "--publish-all", action="store_true",
      help="Publish all exposed ports to random ports")
    a("--expose", action="append", help="Expose a port or a range of ports")
    a("--tmpfs", action="append", help="Mount a tmpfs directory")
    a("--sysctl", action="append", help="Sysctl options")
    a("--device", action="append", type=opts.device, help="Add a host device to the container")
    a("--group-add", action="append", help="Add additional groups to join")
    a("--shm-size", type=units.ram_in_bytes, help="Size of /dev/shm")
    a("--log-driver", help="Logging driver for the container")
    a("--log-opt", action="append", help="Log driver options")
    a("--ipc", help="IPC mode to use")
    a("--pid", help="PID namespace to use")
    a("--uts", help="UTS namespace to use")
    a("--userns", help="User namespace to use")
    a("--cgroupns", help="Cgroup namespace to use (host|private)")
    a("--cgroup-parent", help="Optional parent cgroup for the container")
    a("--dns", action="append", help="Set custom DNS servers")
    a("--dns-search", action="append", help="Set custom DNS search domains")
    a("--dns-option", "--dns-opt", action="append", help="Set DNS options")
    a("--ip", help="IPv4 address (e.g., 172.30.100.104)")
    a("--mac-address", help="Container MAC address (e.g., 92:d0:c6:0a:29:33)")
    a("--network-alias", "--net-alias", action="append",
      help="Add network-scoped alias for the container")
    a("--add-host", action="append", help="Add a custom host-to-IP mapping (host:ip)")
    a("--platform", help="Set platform if server is multi-platform capable")
    a("--pull", default="missing",
      help='Pull image before running ("always"|"missing"|"never")')
    a("-a", "--attach", action="append", type=opts.stream_name,
      help="Attach to STDIN, STDOUT or STDERR")


def image_ref(image: str) -> str:
    """`busybox` → `busybox:latest`, as Docker names an image it is about to pull."""
    name = image.rsplit("/", 1)[-1]
    if "@" in image or ":" in name:
        return image
    return image + ":latest"


def _env(args) -> list[str]:
    env = []
    for path in args.env_file:
        env += opts.read_env_file(path)
    return env + opts.env_list(args.env)


def _healthcheck(args) -> dict | None:
    if args.no_healthcheck:
        return {"Test": ["NONE"]}
    check: dict = {}
    if args.health_cmd:
        check["Test"] = ["CMD-SHELL", args.health_cmd]
    for key, value in (("Interval", args.health_interval), ("Timeout", args.health_timeout),
                       ("StartPeriod", args.health_start_period),
                       ("Retries", args.health_retries)):
        if value is not None:
            check[key] = value
    return check or None


def _security_opts(values: list[str]) -> list[str]:
    """seccomp=FILE is sent as the profile's contents, as Docker's CLI does."""
    out = []
    for item in values:
        key, sep, value = item.partition("=" if "=" in item else ":")
        if key == "seccomp" and value not in ("unconfined", "") and not value.startswith("{"):
            try:
                with open(value, encoding="utf-8") as f:
                    item = f"seccomp={f.read()}"
            except OSError as exc:
                raise ValueError(f"opening seccomp profile ({value}) failed: {exc}") from None
        out.append(item)
    return out


def _host_config(args) -> dict:
    hc: dict = {
        "Binds": args.volume or None, "NetworkMode": args.network,
        "RestartPolicy": opts.restart(args.restart), "AutoRemove": bool(getattr(args, "rm", 0)),
        "CapAdd": args.cap_add or None, "CapDrop": args.cap_drop or None,
        "Privileged": args.privileged, "ReadonlyRootfs": args.read_only,
        "SecurityOpt": _security_opts(args.security_opt) or None,
        "Tmpfs": opts.tmpfs(args.tmpfs) or None, "Sysctls": opts.key_values(args.sysctl) or None,
        "Devices": args.device or [], "GroupAdd": args.group_add or None,
        "LogConfig": {"Type": args.log_driver or "", "Config": opts.key_values(args.log_opt)},
        "Ulimits": args.ulimit or None, "Dns": args.dns or [], "ExtraHosts": args.add_host or None,
        "DnsSearch": args.dns_search or [], "DnsOptions": args.dns_option or [],
    }
    if args.mount:
        hc["Mounts"] = args.mount
    if args.volumes_from:
        hc["VolumesFrom"] = args.volumes_from
    if args.publish:
        bindings: dict[str, list] = {}
        for port, binding in args.publish:
            bindings.setdefault(port, []).append(binding)
        hc["PortBindings"] = bindings
    if args.publish_all:
        hc["PublishAllPorts"] = True
    if args.init:
        hc["Init"] = True
    if args.oom_kill_disable:
        hc["OomKillDisable"] = True
    for key, value in (("Memory", args.memory), ("MemorySwap", args.memory_swap),
                       ("MemoryReservation", args.memory_reservation),
                       ("MemorySwappiness", args.memory_swappiness), ("NanoCpus", args.cpus),
                       ("CpuShares", args.cpu_shares), ("CpusetCpus", args.cpuset_cpus),
                       ("CpusetMems", args.cpuset_mems), ("CpuPeriod", args.cpu_period),
                       ("CpuQuota", args.cpu_quota), ("PidsLimit", args.pids_limit),
                       ("ShmSize", args.shm_size), ("OomScoreAdj", args.oom_score_adj),
                       ("IpcMode", args.ipc), ("PidMode", args.pid), ("UTSMode", args.uts),
                       ("UsernsMode", args.userns), ("CgroupnsMode", args.cgroupns),
                       ("CgroupParent", args.cgroup_parent)):
        if value is not None:
            hc[key] = value
    return hc


def create_body(args, attach: tuple[bool, bool, bool]) -> dict:
    """The POST /containers/create body for these flags; `attach` is (stdin, stdout, stderr)."""
    image, *cmd = args.args
    body: dict = {
        "Hostname": args.hostname or "", "Domainname": args.domainname or "",
        "User": args.user or "", "AttachStdin": attach[0], "AttachStdout": attach[1],
        "AttachStderr": attach[2], "Tty": args.tty, "OpenStdin": args.interactive,
        "StdinOnce": args.interactive and attach[0], "Env": _env(args),
        "Cmd": cmd or None, "Image": image, "WorkingDir": args.workdir or "",
        "Labels": opts.key_values(args.label),
        "HostConfig": _host_config(args), "NetworkingConfig": {"EndpointsConfig": {}},
    }
    exposed = [p for p, _ in args.publish] + \
        [e if "/" in e else e + "/tcp" for e in args.expose]
    if exposed:
        body["ExposedPorts"] = {p: {} for p in exposed}
    if args.entrypoint is not None:
        body["Entrypoint"] = [args.entrypoint] if args.entrypoint else [""]
    if args.stop_signal:
        body["StopSignal"] = args.stop_signal
    if args.stop_timeout is not None:
        body["StopTimeout"] = args.stop_timeout
    health = _healthcheck(args)
    if health:
        body["Healthcheck"] = health
    if args.network == "none":
        body["NetworkDisabled"] = True
    if args.mac_address:
        body["MacAddress"] = args.mac_address
    if args.ip or args.network_alias:
        endpoint: dict = {"Aliases": args.network_alias or None}
        if args.ip:
            endpoint["IPAMConfig"] = {"IPv4Address": args.ip}
        body["NetworkingConfig"]["EndpointsConfig"][args.network] = endpoint
    return body


def create_container(cli, args, body: dict, meanwhile=None) -> str:
    """POST /containers/create, pulling a missing image first as Docker does; the new id.
    `meanwhile()` is called while the daemon creates the container (run's own set-up)."""
    client = cli.client
    query = {"name": args.name or None, "platform": args.platform or None}
    if args.pull == "always":
        _pull(cli, body["Image"])
    try:
        if meanwhile is None:
            result = client.post("/containers/create", query, body)
        else:
            sent = client.send_only("POST", "/containers/create", query, body)
            meanwhile()
            result = client.answer_json(sent)
    except NotFound as exc:
        if args.pull == "never" or "image" not in exc.message.lower():
            raise
        sys.stderr.write(f"Unable to find image '{image_ref(body['Image'])}' locally\n")
        _pull(cli, body["Image"])
        result = client.post("/containers/create", query, body)
    for warning in result.get("Warnings") or []:
        sys.stderr.write(f"WARNING: {warning}\n")
    return result["Id"]


def _pull(cli, image: str) -> None:
    from knarr.cli import progress

    ref = image_ref(image)
    name, _, tag = ref.rpartition(":") if "@" not in ref else (ref, "", "")
    from knarr.cli import auth

    progress.show(cli.client.stream_json("POST", "/images/create",
                                         {"fromImage": name, "tag": tag or None},
                                         headers=auth.header_for(name)), sys.stderr)


def run(cli, args) -> int:
    """Create the container and print its id."""
    try:
        body = create_body(args, (False, True, True))
    except ValueError as exc:
        raise cli.fail(f"knarr: {exc}.\nSee 'knarr {cli.command} --help'.", 125) from None
    cid = create_container(cli, args, body)  # errors: Docker's plain daemon error, status 1
    sys.stdout.write(cid + "\n")
    return 0


def run_error(cli, exc, help: bool = True) -> str:
    """`knarr: Error response from daemon: ....` plus the help hint, as `docker run` prints."""
    text = cli.describe(exc).rstrip(".") + "."
    if help:
        text += f"\nSee 'knarr {cli.command} --help'."
    return f"knarr: {text}"
