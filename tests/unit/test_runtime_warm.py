"""container_create.warm_up runs create's checks on the default config and leaves
nothing behind on the host."""

import os

from knarr.runtime import container_create


def test_warm_up_touches_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = {name: os.path.exists(os.path.join("/sys/fs/cgroup", name, "knarr", "warm-up"))
              for name in os.listdir("/sys/fs/cgroup")}
    assert container_create.warm_up() is None
    assert os.listdir(tmp_path) == []
    for name, existed in before.items():
        assert os.path.exists(os.path.join("/sys/fs/cgroup", name, "knarr", "warm-up")) == existed


def test_warm_up_never_raises(monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("no cgroup hierarchy here")

    monkeypatch.setattr(container_create.cgroups, "open_cgroup", broken)
    container_create.warm_up()
