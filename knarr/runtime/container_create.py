"""create: set up a container from a bundle and leave its init waiting for start."""

import os
import time

from knarr import fastjson
from knarr import sys as ksys
from knarr.errors import FailedPrecondition, InvalidArgument, KnarrError, NotFound
from knarr.oci import runtime_spec
from knarr.runtime import (
    capabilities,
    cgroups,
    devices,
    hooks,
    init,
    mounts,
    namespaces,
    signals,
    state,
)
from knarr.runtime.cgroups import prime
from knarr.runtime.cgroups.base import close_anchors, open_anchors
from knarr.runtime.channel import Channel, pair

__all__ = ["create", "create_held", "load_bundle", "warm_up"]


def load_bundle(bundle: str, root: str | None = None) -> dict:
    """Read and validate `<bundle>/config.json`; its seccomp profile is compiled, and
    kept under the state `root`, if given (seccomp_cache)."""
    path = os.path.join(bundle, "config.json")
    try:
        raw = ksys.read_bytes(path)
    except FileNotFoundError:
        raise NotFound(f"load bundle {bundle}: config.json not found", path=path) from None
    try:
        config = fastjson.loads(raw)
    except ValueError as exc:
        raise InvalidArgument(f"load bundle {bundle}: config.json is not valid JSON: {exc}",
                              path=path) from exc
    runtime_spec.validate_config(config)
    if "process" not in config:
        raise InvalidArgument(f"load bundle {bundle}: config.json: process: missing")
    _check_security(config, root)
    return config


def _check_security(config: dict, root: str | None) -> None:
    """Fail at create, before any process exists, on a bad capability or profile."""
    for kind, names in config["process"].get("capabilities", {}).items():
        capabilities.mask(names, f"process.capabilities.{kind}")
    profile = config.get("linux", {}).get("seccomp")
    if profile:
        from knarr.runtime import seccomp  # only configs with a profile pay for libseccomp

        seccomp.validate(profile, root)


def warm_up(rounds: int = 2) -> None:
    """Run create's checks of a config, and what init parses, on the default config,
    touching nothing on the host: a process forked to create a container later (the
    engine's pre-forked starter) does this while it waits, so that the copy-on-write
    faults and the interpreter's first-run work on these paths are behind it, and
    behind the init it forks (1-2 ms of each create here). Never raises: it is only
    an optimisation."""
    try:
        _warm_up(rounds)
    except Exception:  # noqa: BLE001 - the create itself will meet any real problem
        pass


def _warm_up(rounds: int) -> None:
    from knarr.runtime.mounts import parse_options

    raw = fastjson.dumps(runtime_spec.default_config()).encode()
    for _ in range(rounds):
        config = fastjson.loads(raw)
        state.validate_id("warm-up")
        runtime_spec.validate_config(config)
        _check_security(config, None)
        ksys.real_path("/")
        linux = config.get("linux", {})
        devices.with_default_rules(linux.get("resources", {}), linux.get("devices", []))
        devices.devices_of(config)
        runtime_spec.namespaces_of(config)
        cgroups.open_cgroup(linux.get("cgroupsPath"), "warm-up")
        for mount in config.get("mounts", []):
            parse_options(mount.get("options", []))


def _rootfs_of(bundle: str, config: dict) -> str:
    rootfs = os.path.join(bundle, config["root"]["path"])
    if not os.path.isdir(rootfs):
        raise NotFound(f"create container: rootfs {rootfs} does not exist or is not a "
                       f"directory", path=rootfs)
    return ksys.real_path(rootfs)


def create(root: str, container_id: str, bundle: str, **options) -> dict:
    """Create the container; its state record. See create_held for the options."""
    return create_held(root, container_id, bundle, **options)[0]


def create_held(root: str, container_id: str, bundle: str, *,
                console_socket: str | None = None, pid_file: str | None = None,
                no_pivot: bool = False, preserve_fds: int = 0, systemd_cgroup: bool = False,
                config: dict | None = None) -> tuple[dict, cgroups.Cgroup]:
    """Create the container; on any failure nothing is left behind. `config` is the
    bundle's, when the caller has read it with load_bundle already. Returns the
    state record and the container's cgroup (run goes on with both in hand)."""
    state.validate_id(container_id)
    bundle = ksys.real_path(bundle)
    config = load_bundle(bundle, root) if config is None else config
    rootfs = _rootfs_of(bundle, config)
    cdir = state.make_container_dir(root, container_id)
    record = {"ociVersion": config["ociVersion"], "id": container_id, "pid": 0,
              "bundle": bundle, "rootfs": rootfs, "annotations": config.get("annotations"),
              "created": _now_rfc3339(), "start_time": None, "cgroups_path":
              config.get("linux", {}).get("cgroupsPath"), "systemd_cgroup": systemd_cgroup,
              "hooks": _later_hooks(config),
              # exec starts from these; later edits to config.json must not count.
              "process": config["process"],
              "seccomp": config.get("linux", {}).get("seccomp")}
    cgroup = None
    try:
        fifo = os.path.join(cdir, state.FIFO_NAME)
        os.mkfifo(fifo, 0o622)
        os.chmod(fifo, 0o622)  # whatever the umask: init may write it as a mapped host uid
        cgroup = cgroups.open_cgroup(record["cgroups_path"], container_id)
        linux = config.get("linux", {})
        resources = devices.with_default_rules(linux.get("resources", {}),
                                               linux.get("devices", []))
        ctx = {"root": root, "config": config, "rootfs": rootfs, "bundle": bundle,
               "fifo": fifo, "no_pivot": no_pivot, "preserve_fds": preserve_fds,
               "namespaces": runtime_spec.namespaces_of(config),
               "console_socket": console_socket}
        ctx["sends_hierarchies"] = _sends_hierarchies(config, ctx["namespaces"])
        # Opened here, as the host's root, and inherited: in a user namespace init runs as
        # an unprivileged host uid that cannot reach the state root or the caller's socket.
        ctx["fifo_fd"] = os.open(fifo, os.O_PATH | os.O_CLOEXEC)
        ctx["console"] = None
        if console_socket:  # console (termios, fcntl, struct) only for terminals
            from knarr.runtime import console

            ctx["console"] = console.connect(console_socket)
        try:
            pid = _spawn(ctx, (cgroup, resources), record, config)
        finally:
            os.close(ctx["fifo_fd"])
            if ctx["console"] is not None:
                ctx["console"].close()
        state.commit(root, container_id, ctx["staged_state"])
        if pid_file:
            state.write_atomic(os.path.abspath(pid_file), str(pid).encode(), 0o644)
    except BaseException:
        _undo(cdir, cgroup, record)
        raise
    return record, cgroup


def _spawn(ctx: dict, cgroup: tuple, record: dict, config: dict) -> int:
    parent, child = pair()
    ns = ctx["namespaces"]
    # Without a user (or time) namespace the runtime forks init straight into its pid
    # namespace; otherwise stage1 makes the user namespace, is mapped, and forks init.
    direct = "user" not in ns and "time" not in ns
    try:
        if direct:
            first = _fork_init(child, ctx, ns, cgroup[0])
        else:
            first = _fork_stage1(parent, child, ctx)
    finally:
        child.close()
    try:
        return _drive(parent, first, direct, ctx, cgroup, record, config)
    finally:
        parent.close()


def _fork_stage1(parent: Channel, child: Channel, ctx: dict) -> int:
    # The runtime moves init with a cgroup.procs write, whose first one after a quiet
    # spell waits for an RCU grace period: start that wait now (cgroups.prime).
    prime.start()
    pid = os.fork()
    if pid == 0:
        parent.close()
        init.stage1(child, ctx)
    return pid


def _fork_init(child: Channel, ctx: dict, ns: dict, cgroup: cgroups.Cgroup) -> int:
    """Fork init as pid 1 of its new (or joined) pid namespace; this process stays in
    its own. Init makes and joins the other namespaces itself, and joins its cgroup:
    it is born in the v2 directory, made here first (see _fork_into), and joins the v1
    ones, made after the fork, through their hierarchies' mount points opened here
    (cgroups.join_at), which its mounts cannot hide by then."""
    v2 = ctx["v2_dir"] = cgroup.create_v2()
    ctx["v2_fd"] = os.open(v2, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC) if v2 else -1
    try:
        ctx["cgroup_anchors"] = open_anchors(cgroup.v1_anchors())
        try:
            return _fork_in_pid_ns(child, ctx, ns)
        finally:
            close_anchors(ctx["cgroup_anchors"])
    finally:
        if ctx["v2_fd"] >= 0:
            os.close(ctx["v2_fd"])


def _fork_in_pid_ns(child: Channel, ctx: dict, ns: dict) -> int:
    if "pid" not in ns:
        return _fork(child, ctx)
    own = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if ns["pid"]:
            namespaces.join(namespaces.open_paths([("pid", ns["pid"])]))
        else:
            ksys.unshare(ksys.CLONE_NEWPID)
        return _fork(child, ctx)
    finally:
        ksys.setns(own, ksys.CLONE_NEWPID)  # our later children (hooks) are the host's
        os.close(own)


def _fork(child: Channel, ctx: dict) -> int:
    pid = _fork_into(ctx)
    if pid == 0:
        init.direct(child, ctx)
    return pid


def _fork_into(ctx: dict) -> int:
    """os.fork, the child born in the container's cgroup v2 directory if it has one.

    Init then joins the v1 hierarchies itself through `tasks` (init.join_cgroup):
    no cgroup.procs write moves it, so no migration lock is taken and no RCU grace
    period waited for (10-25 ms here, on the path of every create). Where clone3
    cannot do it (an old kernel, a seccomp filter, another thread running), init
    writes cgroup.procs itself; ctx["born_in_v2"] tells it which."""
    ctx["born_in_v2"] = False
    if ctx["v2_fd"] < 0 or not _one_thread():
        return os.fork()
    try:
        ctx["born_in_v2"] = True
        return ksys.fork_into_cgroup(ctx["v2_fd"], long_lived=True)
    except OSError:
        ctx["born_in_v2"] = False
        return os.fork()


def _one_thread() -> bool:
    """Whether this process runs one thread (clone3 does not take glibc's malloc and
    stdio locks around the fork, as glibc's fork does; another thread might hold one).
    The kernel's count: a fork of a threaded process has one, whatever Python says."""
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False


def _drive(ch: Channel, first: int, direct: bool, ctx: dict, cgroup: tuple, record: dict,
           config: dict) -> int:
    """Walk stage1 (unless `direct`: `first` is init itself) and init through creation;
    return init's pid. `cgroup`: the container's cgroup, and the resources to apply."""
    what = f"create container {record['id']}"
    stage1 = None if direct else first
    pid = first
    if direct:
        record["pid"] = pid  # from here on, a failure kills it (create's _undo)
    cgroup, resources = cgroup
    try:
        # Made (but for init's v2 directory) and configured while init (or stage1) makes
        # its namespaces. Without stage1, init joins on "made", while the limits are
        # written; it waits for "cgroup" (the limits in place) before device nodes.
        if not direct or ctx["cgroup_anchors"]:
            cgroup.create()
        if direct:
            ch.send("made")
            _send_hierarchies(ch, ctx)
        cgroup.apply(resources)
    except BaseException:
        if stage1 is not None:
            _reap(stage1, kill=True)
        else:
            _raise_reported(ch)  # init's own error, when that is why it is gone
        raise
    if stage1 is not None:
        try:
            message = _next(ch, what)
            if message["kind"] == "userns":
                namespaces.write_id_maps(stage1, config.get("linux", {}))
                ch.send("mapped")
                message = _next(ch, what)
        except BaseException:
            _reap(stage1, kill=True)
            raise
        if message["kind"] != "pid":
            _reap(stage1, kill=True)
            raise FailedPrecondition(f"{what}: unexpected message {message['kind']!r}")
        pid = message["pid"]
    record["pid"] = pid
    # stage1 has said all it had to say; it is reaped once init is ready, by when it
    # has long exited, rather than waited for here.
    try:
        # With stage1, init is moved, not stage1, while it makes its namespaces and first
        # mounts (a first cgroup.procs write may wait for an RCU grace period:
        # cgroups.prime). It waits for "made" before anything that depends on its cgroup
        # (a new cgroup namespace, cgroup mounts), and for "cgroup" before device nodes.
        try:
            if not direct:  # without stage1, init joins itself
                cgroup.add_process(pid)
                prime.stop()
                ch.send("made")
                _send_hierarchies(ch, ctx)
            ch.send("cgroup")
        except BaseException:
            _raise_reported(ch)  # init's own error, when that is why it is gone
            raise
        _set_oom_score(pid, config["process"].get("oomScoreAdj"))
        state_now = _hook_state(record, "creating")
        hooks.run(config, "prestart", state_now)
        hooks.run(config, "createRuntime", state_now)
        ch.send("continue", hook_state=state_now)
        # The state file is written while init finishes, and put in place once it is
        # ready (create_held).
        record["start_time"] = state.process_start_time(pid)
        ctx["staged_state"] = state.stage(ctx["root"], record)
        ch.expect("ready", what)
    except BaseException:
        if stage1 is not None:
            _reap(stage1)  # it exits by itself after "pid"; then init is no zombie of it
        _kill(pid)
        raise
    if stage1 is not None:
        _reap(stage1)
    return pid


def _sends_hierarchies(config: dict, ns: dict) -> bool:
    """Whether the runtime sends init the cgroup hierarchies mounted here (after
    "made"): when init mounts cgroups in a mount namespace of its own, a copy of ours.
    Found here while init joins its cgroup, they spare it reading and parsing the
    mount table itself."""
    return "mount" in ns and not ns["mount"] and \
        any(m.get("type") == "cgroup" for m in config.get("mounts", []))


def _send_hierarchies(ch: Channel, ctx: dict) -> None:
    if ctx["sends_hierarchies"]:
        ch.send("hierarchies", hierarchies=mounts.host_cgroup_hierarchies())


def _next(ch: Channel, what: str) -> dict:
    message = ch.recv()
    if message is None:
        raise FailedPrecondition(f"{what}: container init exited unexpectedly")
    if message["kind"] == "error":
        from knarr.runtime.channel import error_from

        raise error_from(message)
    return message


def _raise_reported(ch: Channel) -> None:
    """Raise the error init reported, if it has (without waiting for one)."""
    ch.set_blocking(False)
    try:
        message = ch.recv()
    except OSError:
        return
    finally:
        ch.set_blocking(True)
    if message is not None and message["kind"] == "error":
        from knarr.runtime.channel import error_from

        raise error_from(message)


def _set_oom_score(pid: int, score: int | None) -> None:
    if score is None:
        return
    try:
        with open(f"/proc/{pid}/oom_score_adj", "w") as f:
            f.write(str(score))
    except OSError as exc:
        raise InvalidArgument(f"set oomScoreAdj {score}: {exc.strerror}") from exc


def _reap(pid: int, kill: bool = False) -> None:
    if kill:
        try:
            os.kill(pid, signals.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signals.SIGKILL)
    except ProcessLookupError:
        return
    for _ in range(200):
        if state.process_start_time(pid) is None:
            return
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.005)


def _undo(cdir: str, cgroup, record: dict) -> None:
    """Remove whatever a failed create made."""
    if record.get("pid"):
        _kill(record["pid"])
    if cgroup is not None:
        try:
            cgroup.destroy()
        except KnarrError:
            pass
    state.remove_dir(cdir)


def _later_hooks(config: dict) -> dict:
    """The hooks start and delete run, kept from now: later edits to config.json must not
    affect the container (runtime spec, "Lifecycle")."""
    phases = config.get("hooks") or {}
    return {phase: phases[phase] for phase in ("poststart", "poststop") if phase in phases}


def _hook_state(record: dict, status: str) -> dict:
    return state.oci_state(record, status) | {"pid": record.get("pid") or 0}


def _now_rfc3339() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e9):09d}Z"
