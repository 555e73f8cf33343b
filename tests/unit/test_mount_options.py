"""Mount options become mount(2) flags; paths resolve inside a rootfs; mount tables parse."""

import os

import pytest

from knarr.errors import InvalidArgument
from knarr.runtime import devices
from knarr.runtime.mounts import (
    CgroupHierarchy,
    cgroup_hierarchies,
    hierarchies_from_wire,
    own_cgroups,
    parse_mountinfo,
    parse_options,
    safe_join,
)
from knarr.sys.libc import (
    MS_BIND,
    MS_MANDLOCK,
    MS_NOATIME,
    MS_NODEV,
    MS_NODIRATIME,
    MS_NOEXEC,
    MS_NOSUID,
    MS_NOSYMFOLLOW,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_RELATIME,
    MS_REMOUNT,
    MS_SHARED,
    MS_SLAVE,
    MS_STRICTATIME,
    MS_SYNCHRONOUS,
    MS_UNBINDABLE,
)


@pytest.mark.parametrize("option, flag", [
    ("ro", MS_RDONLY), ("nosuid", MS_NOSUID), ("nodev", MS_NODEV), ("noexec", MS_NOEXEC),
    ("sync", MS_SYNCHRONOUS), ("remount", MS_REMOUNT), ("mand", MS_MANDLOCK),
    ("noatime", MS_NOATIME), ("nodiratime", MS_NODIRATIME), ("relatime", MS_RELATIME),
    ("strictatime", MS_STRICTATIME), ("bind", MS_BIND), ("rbind", MS_BIND | MS_REC),
    ("nosymfollow", MS_NOSYMFOLLOW),
])
def test_each_flag_option_sets_its_flag(option, flag):
    parsed = parse_options([option])
    assert parsed.flags == flag
    assert parsed.data == ""


@pytest.mark.parametrize("setter, clearer", [
    ("ro", "rw"), ("nosuid", "suid"), ("nodev", "dev"), ("noexec", "exec"),
    ("sync", "async"), ("mand", "nomand"), ("noatime", "atime"),
    ("nodiratime", "diratime"), ("relatime", "norelatime"),
    ("strictatime", "nostrictatime"),
])
def test_the_later_of_two_opposite_options_wins(setter, clearer):
    assert parse_options([setter, clearer]).flags == 0
    assert parse_options([clearer, setter]).flags == parse_options([setter]).flags


@pytest.mark.parametrize("option, flag", [
    ("private", MS_PRIVATE), ("rprivate", MS_PRIVATE | MS_REC),
    ("shared", MS_SHARED), ("rshared", MS_SHARED | MS_REC),
    ("slave", MS_SLAVE), ("rslave", MS_SLAVE | MS_REC),
    ("unbindable", MS_UNBINDABLE), ("runbindable", MS_UNBINDABLE | MS_REC),
])
def test_propagation_options_are_kept_apart_from_flags(option, flag):
    parsed = parse_options(["rbind", option])
    assert parsed.flags == MS_BIND | MS_REC
    assert parsed.propagation == (flag,)


def test_unknown_options_become_data_in_order():
    parsed = parse_options(["nosuid", "mode=755", "strictatime", "size=65536k", "newinstance"])
    assert parsed.flags == MS_NOSUID | MS_STRICTATIME
    assert parsed.data == "mode=755,size=65536k,newinstance"


def test_tmpcopyup_is_ignored():
    assert parse_options(["tmpcopyup", "mode=1777"]).data == "mode=1777"


def test_bind_with_ro_needs_a_remount_pass():
    parsed = parse_options(["rbind", "ro", "nosuid", "rprivate"])
    assert parsed.is_bind
    assert parsed.remount_flags == MS_RDONLY | MS_NOSUID
    assert not parse_options(["bind"]).remount_flags
    assert not parse_options(["nosuid"]).is_bind


def test_default_config_mounts_parse():
    from knarr.oci.runtime_spec import default_config
    for m in default_config()["mounts"]:
        parse_options(m.get("options", []))
    devpts = parse_options(["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620",
                            "gid=5"])
    assert devpts.flags == MS_NOSUID | MS_NOEXEC
    assert devpts.data == "newinstance,ptmxmode=0666,mode=0620,gid=5"


# -- safe_join --------------------------------------------------------------


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "rootfs"
    (r / "etc").mkdir(parents=True)
    (r / "usr" / "lib").mkdir(parents=True)
    (r / "etc" / "passwd").write_text("root\n")
    return r


def test_plain_paths_join(root):
    assert safe_join(str(root), "/etc/passwd") == f"{root}/etc/passwd"
    assert safe_join(str(root), "etc/./passwd") == f"{root}/etc/passwd"
    assert safe_join(str(root), "/") == str(root)
    assert safe_join(str(root), "") == str(root)
    assert safe_join(str(root) + "/", "//etc//") == f"{root}/etc"


def test_dotdot_stops_at_the_root(root):
    assert safe_join(str(root), "/../../etc") == f"{root}/etc"
    assert safe_join(str(root), "/usr/lib/../../../../etc/passwd") == f"{root}/etc/passwd"


def test_missing_components_are_kept(root):
    assert safe_join(str(root), "/new/dir/../x") == f"{root}/new/x"
    assert safe_join(str(root), "/etc/passwd/child") == f"{root}/etc/passwd/child"


def test_absolute_symlink_resolves_from_the_root(root):
    (root / "lib").symlink_to("/usr/lib")
    (root / "escape").symlink_to("/etc")
    assert safe_join(str(root), "/lib/x") == f"{root}/usr/lib/x"
    assert safe_join(str(root), "/escape/passwd") == f"{root}/etc/passwd"


def test_relative_symlink_cannot_climb_out(root):
    (root / "usr" / "up").symlink_to("../../../../../../tmp")
    (root / "usr" / "lib" / "sib").symlink_to("../../etc")
    assert safe_join(str(root), "/usr/up/f") == f"{root}/tmp/f"
    assert safe_join(str(root), "/usr/lib/sib/passwd") == f"{root}/etc/passwd"


def test_symlink_at_the_end_is_followed(root):
    (root / "proc").symlink_to("/etc")
    assert safe_join(str(root), "/proc") == f"{root}/etc"


def test_symlink_chains_and_dangling_links(root):
    (root / "a").symlink_to("b")
    (root / "b").symlink_to("/c")
    (root / "c").symlink_to("etc")
    (root / "dangling").symlink_to("/nowhere/../gone")
    assert safe_join(str(root), "/a/passwd") == f"{root}/etc/passwd"
    assert safe_join(str(root), "/dangling") == f"{root}/gone"


def test_symlink_loop_is_an_error(root):
    (root / "loop1").symlink_to("loop2")
    (root / "loop2").symlink_to("/loop1")
    (root / "self").symlink_to("self")
    with pytest.raises(InvalidArgument, match="too many levels of symbolic links"):
        safe_join(str(root), "/loop1/x")
    with pytest.raises(InvalidArgument):
        safe_join(str(root), "self")


def test_result_is_always_inside_root(root):
    (root / "x").symlink_to("../../../..")
    (root / "y").symlink_to("/x/../x/..")
    for path in ("/x", "/y", "/x/y/x/..", "../x/../y/etc"):
        resolved = safe_join(str(root), path)
        assert resolved == str(root) or resolved.startswith(f"{root}/")
        assert os.path.realpath(resolved).startswith(str(root))


# -- mount tables -----------------------------------------------------------

MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 /kubepods /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory,clone_children
36 31 0:33 / /sys/fs/cgroup/memory\\040copy rw - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
"""


def test_mountinfo_parses_optional_fields_and_escapes():
    mounts = parse_mountinfo(MOUNTINFO)
    assert [m.mount_point for m in mounts][:2] == ["/proc", "/"]
    assert mounts[1].optional == ("shared:1",)
    assert mounts[1].fstype == "ext4" and mounts[1].source == "/dev/vda"
    assert mounts[5].mount_point == "/sys/fs/cgroup/memory copy"
    assert mounts[4].root == "/kubepods"


def test_cgroup_hierarchies_one_per_subsystem_set():
    found = cgroup_hierarchies(parse_mountinfo(MOUNTINFO), {"cpu", "cpuacct", "memory"})
    assert found == [
        CgroupHierarchy(("cpu", "cpuacct"), "/sys/fs/cgroup/cpu,cpuacct", "/"),
        CgroupHierarchy(("memory",), "/sys/fs/cgroup/memory", "/kubepods"),
        CgroupHierarchy(("name=systemd",), "/sys/fs/cgroup/systemd", "/"),
        CgroupHierarchy((), "/sys/fs/cgroup/unified", "/"),
    ]
    assert [h.name for h in found] == ["cpu,cpuacct", "memory", "systemd", "unified"]
    assert [h.version for h in found] == [1, 1, 1, 2]


def test_hierarchies_cross_the_channel_whole():
    from knarr import fastjson

    found = cgroup_hierarchies(parse_mountinfo(MOUNTINFO), {"cpu", "cpuacct", "memory"})
    assert hierarchies_from_wire(fastjson.loads(fastjson.dumps(found))) == found


def test_own_cgroups_keys_by_subsystem_set():
    own = own_cgroups("9:name=systemd:/user\n2:cpuacct,cpu:/a\n0::/b\n")
    assert own == {frozenset({"name=systemd"}): "/user", frozenset({"cpu", "cpuacct"}): "/a",
                   frozenset(): "/b"}


# -- devices ----------------------------------------------------------------


def test_config_devices_replace_defaults_of_the_same_path():
    config = {"linux": {"devices": [
        {"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "uid": 7},
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]}}
    found = devices.devices_of(config)
    paths = [d["path"] for d in found]
    assert paths.count("/dev/null") == 1
    assert found[0]["uid"] == 7
    assert set(paths) == {"/dev/null", "/dev/fuse", "/dev/zero", "/dev/full", "/dev/random",
                          "/dev/urandom", "/dev/tty"}


def test_default_devices_have_their_numbers():
    numbers = {d["path"]: (d["major"], d["minor"]) for d in devices.devices_of({})}
    assert numbers == {"/dev/null": (1, 3), "/dev/zero": (1, 5), "/dev/full": (1, 7),
                       "/dev/random": (1, 8), "/dev/urandom": (1, 9), "/dev/tty": (5, 0)}


def test_dev_links_are_made_and_replace_files(tmp_path):
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "ptmx").write_text("")
    devices.create_dev_links(str(tmp_path))
    assert os.readlink(tmp_path / "dev" / "ptmx") == "pts/ptmx"
    assert os.readlink(tmp_path / "dev" / "fd") == "/proc/self/fd"
    assert os.readlink(tmp_path / "dev" / "stderr") == "/proc/self/fd/2"
    devices.create_dev_links(str(tmp_path))  # a second time changes nothing


@pytest.mark.parametrize("destination, options, bound", [
    ("/dev", ["rbind"], True), ("//dev/", ["bind", "ro"], True), ("dev", ["rbind"], True),
    ("/dev", ["nosuid", "mode=755"], False), ("/dev/shm", ["rbind"], False),
])
def test_dev_is_bound_only_by_a_bind_on_dev(destination, options, bound):
    from knarr.runtime import rootfs
    mounts = [{"destination": destination, "type": "bind", "options": options}]
    assert rootfs._dev_is_bound(mounts) is bound
