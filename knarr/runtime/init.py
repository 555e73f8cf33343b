"""The container's side of create: the forked processes that become the container.

Without a user namespace the runtime forks init straight into its pid namespace
(`direct`); init joins and makes the other namespaces. With one, stage1 (child
of the runtime) makes it, is mapped, joins and makes namespaces, then forks
init, which is pid 1 of a new pid namespace. Either way the runtime then moves
init into the container's cgroup while init makes its first mounts. init builds
the root file system, reports ready, and blocks on the exec fifo until `start`;
then it becomes the user's process. Every step reports failure to the runtime over the channel.
"""

import os

from knarr import sys as ksys
from knarr.errors import FailedPrecondition, InvalidArgument
from knarr.runtime import hooks, mounts, namespaces, process, rootfs, signals
from knarr.runtime.cgroups import fs
from knarr.runtime.cgroups.base import join_at
from knarr.runtime.channel import Channel

__all__ = ["stage1", "direct", "preload"]


def stage1(ch: Channel, ctx: dict) -> None:
    """Run in the runtime's child when there is a user namespace to make or join (or
    a time namespace); never returns."""
    try:
        _enter_namespaces(ch, ctx)
        pid = os.fork()
        if pid == 0:
            _init(ch, ctx)
        ch.send("pid", pid=pid)
        os._exit(0)
    except BaseException as exc:  # noqa: BLE001 - everything is reported, then we exit
        ch.send_error(exc)
        os._exit(1)


def direct(ch: Channel, ctx: dict) -> None:
    """Run in the runtime's child forked straight into its pid namespace (no user
    namespace): make and join the other namespaces, then be init; never returns."""
    try:
        ns = ctx["namespaces"]
        namespaces.join(namespaces.open_paths(
            [(kind, path) for kind, path in namespaces.join_paths(ns) if kind != "pid"]))
        flags = namespaces.new_flags(ns, skip=("pid", "cgroup"))
        if flags:
            ksys.unshare(flags)
    except BaseException as exc:  # noqa: BLE001
        ch.send_error(exc)
        os._exit(1)
    _init(ch, ctx)


def join_cgroup(ctx: dict) -> None:
    """Join the container's cgroup, made by the runtime (direct create; with stage1 the
    runtime moves init): the v1 hierarchies through `tasks`, by the mount points it
    opened, and v2 through cgroup.procs unless born there."""
    join_at(ctx.get("cgroup_anchors", ()))
    if ctx.get("v2_fd", -1) >= 0 and not ctx.get("born_in_v2"):
        fd = os.open("cgroup.procs", os.O_WRONLY | os.O_CLOEXEC, dir_fd=ctx["v2_fd"])
        try:
            os.write(fd, b"0")
        except OSError as exc:
            raise fs.error(exc, ctx["v2_dir"], f"add process {os.getpid()}") from exc
        finally:
            os.close(fd)


def _enter_namespaces(ch: Channel, ctx: dict) -> None:
    ns = ctx["namespaces"]
    opened = namespaces.open_paths(namespaces.join_paths(ns))
    namespaces.join(opened)
    if "user" in ns and not ns["user"]:
        ksys.unshare(ksys.CLONE_NEWUSER)
        ch.send("userns")
        ch.expect("mapped", "map user ids")
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    # A new cgroup namespace is made by init, once it is in the container's cgroup.
    flags = namespaces.new_flags(ns, skip=("user", "cgroup"))
    if flags:
        ksys.unshare(flags)


class _InCgroup:
    """Wait (once) until the runtime has made and configured the container's cgroup
    (and, with stage1, moved init into it), join it, then make the new cgroup
    namespace, if any: it is rooted where init is at that time."""

    def __init__(self, ch: Channel, ctx: dict) -> None:
        self.ch, self.ctx, self.ns = ch, ctx, ctx["namespaces"]
        self.joined = self.limited = False
        self.hierarchies = None

    def __call__(self, limits: bool = True) -> list | None:
        """Be in the cgroup (its namespace made); with `limits`, also wait until the
        runtime has written its limits (device nodes need the devices rules). Returns
        the cgroup hierarchies the runtime found mounted, if it sent them."""
        if not self.joined:
            self.joined = True
            self.ch.expect("made", "join the container's cgroup")
            join_cgroup(self.ctx)
            if "cgroup" in self.ns and not self.ns["cgroup"]:
                ksys.unshare(ksys.CLONE_NEWCGROUP)
            if self.ctx.get("sends_hierarchies"):  # found by the runtime meanwhile
                sent = self.ch.expect("hierarchies", "mount the cgroup hierarchies")
                self.hierarchies = mounts.hierarchies_from_wire(sent["hierarchies"])
        if limits and not self.limited:
            self.limited = True
            self.ch.expect("cgroup", "wait for the container's cgroup limits")
        return self.hierarchies


def _init(ch: Channel, ctx: dict) -> None:
    try:
        _setup(ch, ctx)
    except BaseException as exc:  # noqa: BLE001
        # Before "ready" the runtime is listening and reports the error itself;
        # after it, only stderr is.
        ch.send_error(exc)
        if ctx.get("ready"):
            try:
                os.write(2, f"knarr-runtime: {exc}\n".encode())
            except OSError:
                pass
        os._exit(127 if "not found" in str(exc) else 1)


def _setup(ch: Channel, ctx: dict) -> None:
    config = ctx["config"]
    os.setsid()
    ns = ctx["namespaces"]
    new_mount = "mount" in ns and not ns["mount"]
    sock, fifo = ctx["console"], ctx["fifo_fd"]  # opened by the runtime, see create
    in_cgroup = _InCgroup(ch, ctx)
    preload(config)
    # The mounts are made while the runtime moves init into the cgroup, reaps stage1
    # and runs the prestart and createRuntime hooks (as runc does: those hooks see the
    # mounts, not yet the pivot_root). A failure here is reported at once; stage1's one
    # message is short and written whole, so the two cannot interleave on the channel.
    if new_mount:
        rootfs.prepare_rootfs(config, ctx["rootfs"], in_cgroupns="cgroup" in ns,
                              in_userns="user" in ns, bundle=ctx["bundle"],
                              in_cgroup=in_cgroup)
    in_cgroup()
    hook_state = ch.expect("continue", "run createRuntime hooks")["hook_state"]
    hooks.run(config, "createContainer", hook_state)
    fd_dir = None
    if new_mount:
        rootfs.pivot_into(ctx["rootfs"], no_pivot=ctx["no_pivot"])
    else:
        # No mount namespace of its own: the root gets no /proc mounted, so the
        # fifo is reopened later through this process's fds in the host's /proc.
        fd_dir = os.open("/proc/self/fd", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        os.chroot(ctx["rootfs"])
        os.chdir("/")
    _set_names(config, ns)
    if config["process"].get("terminal"):
        _setup_terminal(sock, config["process"])
    _write_sysctls(config.get("linux", {}).get("sysctl", {}))
    if new_mount:
        rootfs.finalize_rootfs(config)
    _close_fds(ch, {fifo, fd_dir}, ctx["preserve_fds"])
    process.find_executable(config["process"])
    process.check_capabilities(config["process"])
    ch.send("ready")
    ctx["ready"] = True
    if config.get("hooks", {}).get("startContainer"):
        # The hooks run as init is, before it becomes the configured process.
        _wait_for_start(fifo, fd_dir)
        hooks.run(config, "startContainer", {**hook_state, "status": "created"})
        _become_process(config)
    else:
        _become_process_then_wait(config, fifo, fd_dir)
    process.exec_process(config["process"])


def _become_process(config: dict) -> None:
    signals.reset_for_exec()
    process.finalize(config["process"], seccomp=config.get("linux", {}).get("seccomp"))


def _become_process_then_wait(config: dict, fifo: int, fd_dir: int | None) -> None:
    """Become the configured process (user, capabilities, seccomp: runc's order) while
    `start` is still on its way, then wait for it: only the exec is left for after.

    A failure is raised once start has come, as it would have been after it: start
    succeeds, and the container's process fails, with the error on its stderr. The
    fifo is reopened through /proc/self/fd, which the kernel lets a process do to its
    own fds whoever it has become (and which the seccomp profile must allow, as
    runc's must)."""
    failure = None
    try:
        _become_process(config)
    except Exception as exc:  # noqa: BLE001 - raised after start, below
        failure = exc
    _wait_for_start(fifo, fd_dir)
    if failure is not None:
        raise failure


def preload(config: dict, root: str | None = None) -> None:
    """Import now what init needs after pivot_root, when the host's Python library
    and libseccomp are out of reach: the seccomp module and the profile compiled to
    BPF (validate keeps the program; init loads it with seccomp(2) alone; from the
    cache under the state `root`, if given), and subprocess for startContainer hooks."""
    profile = config.get("linux", {}).get("seccomp")
    if profile:
        from knarr.runtime import seccomp

        seccomp.validate(profile, root)
    if config.get("hooks", {}).get("startContainer"):
        import subprocess  # noqa: F401
    if config.get("process", {}).get("terminal"):
        from knarr.runtime import console  # noqa: F401  (used after pivot_root)


def _set_names(config: dict, ns: dict) -> None:
    for key, setter in (("hostname", ksys.sethostname), ("domainname", ksys.setdomainname)):
        if key not in config:
            continue
        # A joined uts namespace (a path) is named too, as runc does; with none
        # in the config the name would be the host's.
        if "uts" not in ns:
            raise InvalidArgument(f"set {key} {config[key]!r}: the config has no uts "
                                  f"namespace")
        setter(config[key])


def _setup_terminal(sock, proc: dict) -> None:
    if sock is None:
        raise InvalidArgument("process.terminal is true but no --console-socket was given")
    from knarr.runtime import console  # imported by preload, before pivot_root

    master, slave = console.open_pty()
    size = proc.get("consoleSize")
    if size:
        console.set_size(master, size.get("height", 0), size.get("width", 0))
    rootfs.bind_console(slave)
    console.send_master(sock, master)
    os.close(master)
    sock.close()
    console.make_controlling(slave)


def _write_sysctls(sysctls: dict) -> None:
    for key, value in sysctls.items():
        path = "/proc/sys/" + key.replace(".", "/")
        try:
            with open(path, "w") as f:
                f.write(str(value))
        except OSError as exc:
            raise InvalidArgument(f"set sysctl {key}={value}: {exc.strerror}") from exc


def _close_fds(ch: Channel, needed: set, preserve: int) -> None:
    """Close every inherited fd but stdio, preserved ones and those init still needs."""
    keep = set(range(3 + preserve)) | set(ch.fds()) | needed
    try:
        names = os.listdir("/proc/self/fd")
    except FileNotFoundError:
        names = [str(fd) for fd in range(3, 1024)]
    for name in names:
        fd = int(name)
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass
    for fd in range(3, 3 + preserve):
        try:
            os.set_inheritable(fd, True)
        except OSError:
            pass


def _wait_for_start(fifo: int, fd_dir: int | None = None) -> None:
    """Block until `start` opens the fifo for reading, then tell it we are going.

    The fifo is reopened through /proc/self/fd, or `fd_dir` when that is given."""
    path = f"/proc/self/fd/{fifo}" if fd_dir is None else str(fifo)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC, dir_fd=fd_dir)
    except OSError as exc:
        raise FailedPrecondition(f"open exec fifo: {exc.strerror}") from exc
    os.write(fd, b"0")
    os.close(fd)
    os.close(fifo)
    if fd_dir is not None:
        os.close(fd_dir)
