"""The last steps of becoming the container process, and the exec into its program.

`finalize` turns the (root, fully capable) container init into the process the
config describes: limits, no_new_privs, user and groups, capabilities, umask,
working directory and, last, the seccomp filter. `exec_process` then finds
args[0] on the container's PATH and executes it with the container's env.
"""

import os
import sys

from knarr import sys as ksys
from knarr.errors import FailedPrecondition, InvalidArgument, NotFound
from knarr.runtime import capabilities, rlimits

__all__ = ["finalize", "exec_process", "find_executable", "check_capabilities", "environ"]

# prctl(2) options from <linux/prctl.h>; knarr.sys binds the call.
PR_SET_KEEPCAPS = 8
PR_SET_NO_NEW_PRIVS = 38

_CAP_SYS_ADMIN = 1 << capabilities.CAPABILITIES["CAP_SYS_ADMIN"]
_DEFAULT_UMASK = 0o022


def finalize(process: dict, *, seccomp: dict | None) -> None:
    """Become the configured process: everything up to, but not including, exec.

    Order matters: rlimits and no_new_privs first; the bounding set is dropped and
    the user switched while KEEPCAPS keeps the permitted set; then the configured
    capability sets, umask and cwd; seccomp last, so the filter need not allow any
    of the calls made here. One exception: without noNewPrivileges the kernel wants
    CAP_SYS_ADMIN to load a filter, so if the configured effective set lacks it, it
    is held until the filter is in and the final capset (and ambient raise) follows.
    """
    rlimits.apply(process.get("rlimits", []))
    no_new_privs = bool(process.get("noNewPrivileges"))
    if no_new_privs:
        ksys.prctl(PR_SET_NO_NEW_PRIVS, 1)
    # Without process.capabilities the sets are left as they are (as runc does).
    configured = process.get("capabilities")
    caps = capabilities.validate(configured) if configured is not None else None
    if caps is not None:
        ksys.prctl(PR_SET_KEEPCAPS, 1)
        capabilities.drop_bounding(caps["bounding"])
    _switch_user(process.get("user", {}))
    if caps is not None:
        ksys.prctl(PR_SET_KEEPCAPS, 0)
    if caps is not None and seccomp is not None and not no_new_privs \
            and not caps["effective"] & _CAP_SYS_ADMIN:
        _finish_with_privileged_load(process, caps, seccomp)
        return
    if caps is not None:
        _set_capabilities(caps)
    _enter(process)
    if seccomp is not None:
        _load_seccomp(seccomp)


def _finish_with_privileged_load(process: dict, caps: dict[str, int], seccomp: dict) -> None:
    """Without no_new_privs the kernel loads a filter only for a CAP_SYS_ADMIN holder.

    Keep CAP_SYS_ADMIN (if this process still has it) just long enough to load the
    filter, then set the configured sets; the filter then must allow capset (and
    prctl, for ambient capabilities), which every sane profile does.
    """
    _set_capabilities(caps, extra=_CAP_SYS_ADMIN & ksys.capget()[1])
    _enter(process)
    _load_seccomp(seccomp)
    _set_capabilities(caps)


def _set_capabilities(caps: dict[str, int], extra: int = 0) -> None:
    """Set the configured sets, plus `extra` in effective and permitted."""
    try:
        capabilities.set_process_sets(caps["effective"] | extra, caps["permitted"] | extra,
                                      caps["inheritable"], caps["ambient"])
    except OSError as exc:
        raise FailedPrecondition(f"set capabilities: {_capset_problem(caps, exc)}") from exc


def check_capabilities(process: dict) -> None:
    """Refuse, while create can still fail, capabilities no capset could grant: ones
    outside the runtime's own permitted set (runc fails create for them too)."""
    configured = process.get("capabilities")
    if configured is None:
        return
    caps = capabilities.validate(configured)
    missing = (caps["permitted"] | caps["effective"] | caps["ambient"]) & ~ksys.capget()[1]
    if missing:
        raise FailedPrecondition("set capabilities: the runtime lacks "
                                 f"{', '.join(capabilities.names_of(missing))}")


def _capset_problem(caps: dict[str, int], exc: OSError) -> str:
    """Say which asked-for capability the kernel refused, when that can be told."""
    missing = caps["permitted"] & ~ksys.capget()[1]
    if missing:
        return f"the runtime lacks {', '.join(capabilities.names_of(missing))}"
    bounding = sum(1 << capabilities.CAPABILITIES[n] for n in capabilities.host_capabilities())
    outside = caps["inheritable"] & ~bounding
    if outside:
        return (f"inheritable {', '.join(capabilities.names_of(outside))} not in the "
                f"bounding set")
    return exc.strerror.lower()


def _enter(process: dict) -> None:
    """Set the umask and change into the working directory."""
    umask = process.get("user", {}).get("umask", _DEFAULT_UMASK)
    if not isinstance(umask, int) or isinstance(umask, bool) or not 0 <= umask <= 0o777:
        raise InvalidArgument(f"config.json: process.user.umask: expected 0 to 0o777, got "
                              f"{umask!r}", field="process.user.umask")
    os.umask(umask)
    cwd = process.get("cwd", "/")
    try:
        os.chdir(cwd)
    except FileNotFoundError as exc:
        raise NotFound(f"chdir to cwd {cwd}: no such file or directory", path=cwd) from exc
    except OSError as exc:
        raise FailedPrecondition(f"chdir to cwd {cwd}: {exc.strerror.lower()}",
                                 path=cwd) from exc


def _switch_user(user: dict) -> None:
    uid, gid = user.get("uid", 0), user.get("gid", 0)
    groups = user.get("additionalGids", [])
    for field, value in (("uid", uid), ("gid", gid), *((f"additionalGids[{i}]", g)
                                                       for i, g in enumerate(groups))):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise InvalidArgument(f"config.json: process.user.{field}: expected a "
                                  f"non-negative integer, got {value!r}",
                                  field=f"process.user.{field}")
    try:
        if _setgroups_allowed():
            os.setgroups(groups)
        elif groups:
            print(f"knarr: warning: /proc/self/setgroups is deny, not setting additional "
                  f"groups {groups}", file=sys.stderr)
        os.setgid(gid)
        os.setuid(uid)
    except OSError as exc:
        raise FailedPrecondition(f"switch to user {uid}:{gid} (groups {groups}): "
                                 f"{exc.strerror.lower()}", uid=uid, gid=gid) from exc


def _setgroups_allowed() -> bool:
    """False in a user namespace whose setgroups file says deny (setgroups would fail)."""
    try:
        with open("/proc/self/setgroups") as f:
            return f.read().strip() != "deny"
    except FileNotFoundError:
        return True


def environ(entries: list[str]) -> dict[str, str]:
    """The OCI process.env list as a mapping for execve.

    An entry without "=" (or with an empty name) names no variable getenv(3) could
    find, so it is left out; a name given twice keeps its last value.
    """
    env: dict[str, str] = {}
    for entry in entries:
        name, sep, value = entry.partition("=")
        if sep and name:
            env[name] = value
    return env


def _program(process: dict) -> str:
    args = process.get("args")
    if not args or not isinstance(args, list) or not args[0]:
        raise InvalidArgument("config.json: process.args: no program to run",
                              field="process.args")
    return args[0]


def _candidates(name: str, env: dict[str, str]) -> list[str]:
    """Where execvp(3) would look for `name`: itself if it has a slash, else on PATH."""
    if "/" in name:
        return [name]
    search = env.get("PATH", os.defpath)
    return [os.path.join(directory or ".", name) for directory in search.split(":")]


def _not_found(name: str) -> NotFound:
    if "/" in name:
        return NotFound(f'exec: "{name}": stat {name}: no such file or directory', path=name)
    return NotFound(f'exec: "{name}": executable file not found in $PATH', path=name)


def _denied(name: str) -> FailedPrecondition:
    return FailedPrecondition(f'exec: "{name}": permission denied', path=name)


def find_executable(process: dict) -> str:
    """The path exec_process would run, checked now (before the user switch).

    Relative candidates are taken against process.cwd; raises NotFound or
    FailedPrecondition with the same wording exec_process would.
    """
    name = _program(process)
    cwd = process.get("cwd", "/")
    denied = False
    for candidate in _candidates(name, environ(process.get("env", []))):
        path = os.path.join(cwd, candidate)
        if not os.path.exists(path):
            continue
        if os.path.isdir(path) or not os.access(path, os.X_OK):
            denied = True
            continue
        return candidate
    raise _denied(name) if denied else _not_found(name)


def exec_process(process: dict) -> None:
    """Replace this process with process.args, searching the container's PATH.

    Like execvp(3): a candidate that does not exist is skipped, one that may not be
    executed is remembered and skipped; any other failure stops the search.
    """
    name = _program(process)
    env = environ(process.get("env", []))
    denied = False
    for candidate in _candidates(name, env):
        try:
            os.execve(candidate, process["args"], env)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except PermissionError:
            denied = True
            continue
        except OSError as exc:
            raise FailedPrecondition(f'exec: "{name}": {exc.strerror.lower()}',
                                     path=candidate) from exc
    raise _denied(name) if denied else _not_found(name)


def _load_seccomp(profile: dict) -> None:
    # Imported here: most runs of knarr-runtime never load a filter.
    from knarr.runtime import seccomp as seccomp_filter

    seccomp_filter.compile_and_load(profile)
