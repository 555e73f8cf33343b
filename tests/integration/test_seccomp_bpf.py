"""The compiled seccomp path: a profile exported once as classic BPF by libseccomp,
kept in memory, and loaded with seccomp(2) in a fork without libseccomp."""

import errno
import os

import pytest

from knarr.errors import FailedPrecondition
from knarr.runtime import seccomp
from knarr.sys import seccomp as scmp

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
needs_libseccomp = pytest.mark.skipif(not scmp.available(), reason="needs libseccomp.so.2")

_PR_SET_NO_NEW_PRIVS = 38


def _deny_mkdir(**extra) -> dict:
    return {"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                          "errnoRet": errno.EACCES}], **extra}


def _in_child(body) -> tuple[int, str]:
    """Run `body()` in a fork; return its exit code and what it reported."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # never return into pytest from here
        code = 0
        try:
            os.close(r)
            os.write(w, str(body()).encode())
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            os.write(w, f"{type(exc).__name__}: {exc}".encode())
            code = 99
        os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        out = f.read().decode()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out


def _mkdir_errno(path) -> int:
    try:
        os.mkdir(path)
    except OSError as exc:
        return exc.errno
    return 0


def _no_libseccomp():
    raise OSError(errno.ENOENT, "libseccomp is out of reach")


@needs_libseccomp
def test_export_gives_whole_bpf_instructions():
    ctx = seccomp._build(seccomp._parse(_deny_mkdir()))
    try:
        program = scmp.export_bpf(ctx)
    finally:
        scmp.release(ctx)
    assert program and len(program) % 8 == 0


@needs_libseccomp
def test_flags_become_seccomp_flags():
    program = seccomp._program(_deny_mkdir(flags=["SECCOMP_FILTER_FLAG_LOG"]))
    assert program.flags == scmp.SECCOMP_FILTER_FLAG_TSYNC | scmp.SECCOMP_FILTER_FLAG_LOG
    assert seccomp._program(_deny_mkdir()).flags == scmp.SECCOMP_FILTER_FLAG_TSYNC


@needs_libseccomp
def test_the_same_profile_is_compiled_once(monkeypatch):
    calls = []
    real = scmp.export_bpf
    monkeypatch.setattr(scmp, "export_bpf", lambda ctx: calls.append(ctx) or real(ctx))
    monkeypatch.setattr(seccomp, "_PROGRAMS", {})
    profile = _deny_mkdir()
    seccomp.validate(profile)
    first = seccomp._program(profile)
    assert seccomp._program(dict(profile)) is first
    assert len(calls) == 1


@pytest.mark.privileged
@needs_root
@needs_libseccomp
@pytest.mark.parametrize("flags", [[], ["SECCOMP_FILTER_FLAG_LOG"],
                                   ["SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_TSYNC"]])
def test_a_validated_profile_loads_in_a_fork_without_libseccomp(tmp_path, monkeypatch, flags):
    profile = _deny_mkdir(flags=flags)
    monkeypatch.setattr(seccomp, "_PROGRAMS", {})
    seccomp.validate(profile)  # as create does, in the parent

    def body():
        # Init after pivot_root: libseccomp is out of reach, the program is not.
        scmp._library = _no_libseccomp
        os.mkdir(tmp_path / "before")
        os.close(os.open(tmp_path / "f", os.O_CREAT | os.O_WRONLY))  # not denied
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        seccomp.compile_and_load(profile)
        seccomp.compile_and_load(profile)  # a second filter from the same cached program
        with open(f"/proc/{os.getpid()}/status") as f:
            mode = [line.split()[1] for line in f if line.startswith("Seccomp:")][0]
        return f"{_mkdir_errno(tmp_path / 'after')} {mode}"

    assert _in_child(body) == (0, f"{errno.EACCES} 2")
    assert (tmp_path / "before").is_dir() and not (tmp_path / "after").exists()
    assert os.path.exists(tmp_path / "f")


@pytest.mark.privileged
@needs_root
@needs_libseccomp
def test_without_no_new_privs_or_cap_sys_admin_the_load_is_refused():
    profile = _deny_mkdir()
    seccomp.validate(profile)

    def body():
        from knarr.runtime import capabilities

        capabilities.set_process_sets(0, 0, 0, 0)
        try:
            seccomp.compile_and_load(profile)
        except FailedPrecondition as exc:
            return str(exc)
        return "loaded"

    assert _in_child(body) == (0, "load seccomp filter: permission denied: needs "
                                  "process.noNewPrivileges or CAP_SYS_ADMIN")


def _fresh_process(monkeypatch) -> None:
    """Forget what this process compiled, as another knarr-runtime would not have it."""
    monkeypatch.setattr(seccomp, "_PROGRAMS", {})
    monkeypatch.setattr(seccomp, "_LAST", [None, None])


@needs_libseccomp
def test_the_filter_is_a_binary_tree():
    ctx = seccomp._build(seccomp._parse(seccomp.default_profile()))
    try:
        assert scmp.attr_get(ctx, scmp.SCMP_FLTATR_CTL_OPTIMIZE) == 2
    finally:
        scmp.release(ctx)


@needs_libseccomp
def test_a_compiled_profile_is_read_back_from_the_cache(tmp_path, monkeypatch):
    from knarr.runtime import seccomp_cache

    profile = seccomp.default_profile()
    _fresh_process(monkeypatch)
    seccomp.validate(profile, str(tmp_path))
    first = seccomp._program(profile)
    cache = seccomp_cache.cache_dir(str(tmp_path))
    [entry] = os.listdir(cache)
    assert entry.endswith(".bpf")
    _fresh_process(monkeypatch)
    monkeypatch.setattr(seccomp, "_compile", lambda plan: pytest.fail("compiled again"))
    assert seccomp._program(dict(profile), str(tmp_path)) == first
    assert seccomp_cache.read(cache, entry[:-4]) == (first.bpf, first.flags)


@needs_libseccomp
@pytest.mark.parametrize("damage", ["program", "digest", "key", "truncated"])
def test_a_damaged_cache_entry_is_compiled_again(tmp_path, monkeypatch, damage):
    profile = _deny_mkdir()
    _fresh_process(monkeypatch)
    seccomp.validate(profile, str(tmp_path))
    good = seccomp._program(profile)
    [path] = (tmp_path / "seccomp~").iterdir()
    header, _, bpf = path.read_bytes().partition(b"\n")
    key, flags, digest = header.split(b" ")
    if damage == "program":
        bpf = bytes([bpf[0] ^ 1]) + bpf[1:]
    elif damage == "digest":
        digest = digest[::-1]
    elif damage == "key":  # another profile's entry, put under this one's name
        key = b"0" * 64
    else:
        bpf = bpf[:-3]
    path.write_bytes(b" ".join((key, flags, digest)) + b"\n" + bpf)
    _fresh_process(monkeypatch)
    compiled = []
    real = seccomp._compile
    monkeypatch.setattr(seccomp, "_compile", lambda plan: compiled.append(1) or real(plan))
    assert seccomp._program(profile, str(tmp_path)) == good
    assert compiled == [1]
    assert path.read_bytes().partition(b"\n")[2] == good.bpf  # written again, whole


@needs_libseccomp
def test_a_bad_profile_is_not_cached_and_a_full_cache_is_emptied(tmp_path, monkeypatch):
    from knarr.errors import InvalidArgument
    from knarr.runtime import seccomp_cache

    _fresh_process(monkeypatch)
    with pytest.raises(InvalidArgument):
        seccomp.validate(_deny_mkdir(defaultAction="SCMP_ACT_NOPE"), str(tmp_path))
    cache = tmp_path / seccomp_cache.DIR_NAME
    assert not cache.exists()
    cache.mkdir()
    for i in range(seccomp_cache.MAX_ENTRIES):
        (cache / f"{i:064x}.bpf").write_bytes(b"old")
    seccomp.validate(_deny_mkdir(), str(tmp_path))
    assert len(os.listdir(cache)) == 1
