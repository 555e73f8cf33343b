"""run/create option values and the request body they make."""

import pytest

from knarr.cli import cmd_create, cmd_run, opts, streams


def test_env_takes_unset_values_from_the_client(monkeypatch, tmp_path):
    monkeypatch.setenv("FROM_CLIENT", "yes")
    monkeypatch.delenv("UNSET_HERE", raising=False)
    assert opts.env_list(["A=1", "FROM_CLIENT", "UNSET_HERE"]) == \
        ["A=1", "FROM_CLIENT=yes", "UNSET_HERE"]
    path = tmp_path / "env"
    path.write_text("# comment\n\nX=1\n  Y=two words\n")
    assert opts.read_env_file(str(path)) == ["X=1", "Y=two words"]


def test_ulimit_device_restart_and_keys():
    assert opts.ulimit("nofile=1024:2048") == {"Name": "nofile", "Soft": 1024, "Hard": 2048}
    assert opts.ulimit("nproc=64") == {"Name": "nproc", "Soft": 64, "Hard": 64}
    with pytest.raises(ValueError):
        opts.ulimit("nofile")
    assert opts.device("/dev/fuse") == {"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse",
                                        "CgroupPermissions": "rwm"}
    assert opts.device("/dev/a:/dev/b:r")["PathInContainer"] == "/dev/b"
    assert opts.restart("on-failure:3") == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert opts.restart("no") == {"Name": ""}
    assert opts.detach_keys("ctrl-p,ctrl-q") == b"\x10\x11"
    assert opts.detach_keys("a,ctrl-@") == b"a\x00"
    assert opts.filters(["status=exited", "name=x", "name=y"]) == \
        {"status": ["exited"], "name": ["x", "y"]}


def test_create_body_from_flags():
    args = cmd_run.command("run").parse([
        "-it", "--rm", "--name", "c", "-e", "A=1", "-w", "/tmp", "-u", "1:2", "--entrypoint", "",
        "-h", "host", "-l", "k=v", "-m", "64m", "--memory-swap", "-1", "--cpus", "0.5",
        "--pids-limit", "10", "--ulimit", "nofile=10:20", "--restart", "on-failure:2",
        "--init", "--read-only", "--cap-add", "NET_ADMIN", "--cap-drop", "ALL",
        "--security-opt", "no-new-privileges", "--stop-signal", "SIGINT", "--stop-timeout",
        "3", "--health-cmd", "true", "--health-interval", "1s", "--network", "none",
        "-v", "/a:/b:ro", "--tmpfs", "/run:size=1m", "--sysctl", "net.ipv4.ip_forward=1",
        "--group-add", "10", "--shm-size", "1m", "--log-opt", "max-size=1m",
        "busybox", "sh", "-c", "true"])
    body = cmd_create.create_body(args, (True, True, True))
    hc = body["HostConfig"]
    assert body["Image"] == "busybox" and body["Cmd"] == ["sh", "-c", "true"]
    assert body["Tty"] and body["OpenStdin"] and body["StdinOnce"] and body["AttachStdin"]
    assert body["Entrypoint"] == [""] and body["Hostname"] == "host"
    assert body["Labels"] == {"k": "v"} and body["StopTimeout"] == 3
    assert body["Healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Interval": 10**9}
    assert hc["Memory"] == 64 << 20 and hc["MemorySwap"] == -1 and hc["NanoCpus"] == 5 * 10**8
    assert hc["AutoRemove"] and hc["Init"] and hc["ReadonlyRootfs"]
    assert hc["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    assert hc["Ulimits"] == [{"Name": "nofile", "Soft": 10, "Hard": 20}]
    assert hc["NetworkMode"] == "none" and hc["Binds"] == ["/a:/b:ro"]
    assert hc["Tmpfs"] == {"/run": "size=1m"} and hc["Sysctls"] == {"net.ipv4.ip_forward": "1"}
    assert hc["LogConfig"] == {"Type": "", "Config": {"max-size": "1m"}}
    assert hc["ShmSize"] == 1 << 20 and hc["PidsLimit"] == 10


def test_image_ref_and_start_error_codes():
    assert cmd_create.image_ref("busybox") == "busybox:latest"
    assert cmd_create.image_ref("reg:5000/x") == "reg:5000/x:latest"
    assert cmd_create.image_ref("x:1") == "x:1"
    assert cmd_run.start_error_code('exec: "x": executable file not found in $PATH') == 127
    assert cmd_run.start_error_code("exec: /etc/passwd: permission denied") == 126
    assert cmd_run.start_error_code("cgroup trouble") == 125


def test_detach_sequence_is_held_back_until_it_does_not_match():
    esc = streams._Escape(b"\x10\x11")
    assert esc.feed(b"ab\x10") == (b"ab", False)
    assert esc.feed(b"x") == (b"\x10x", False)
    assert esc.feed(b"\x10") == (b"", False)
    assert esc.feed(b"\x11rest") == (b"", True)


def test_publish_and_mount():
    assert opts.publish("80") == ("80/tcp", {"HostIp": "", "HostPort": ""})
    assert opts.publish("8080:80/udp") == ("80/udp", {"HostIp": "", "HostPort": "8080"})
    assert opts.publish("127.0.0.1:8080:80") == ("80/tcp", {"HostIp": "127.0.0.1",
                                                            "HostPort": "8080"})
    assert opts.publish("127.0.0.1::80")[1] == {"HostIp": "127.0.0.1", "HostPort": ""}
    with pytest.raises(ValueError):
        opts.publish("x:80:y")
    assert opts.mount("type=bind,source=/a,target=/b,readonly") == \
        {"Type": "bind", "Source": "/a", "Target": "/b", "ReadOnly": True}
    assert opts.mount("type=tmpfs,dst=/t,tmpfs-size=1m")["TmpfsOptions"] == {"SizeBytes": 1 << 20}
    with pytest.raises(ValueError):
        opts.mount("type=bind,source=/a")
    args = cmd_run.command("run").parse(["-p", "8080:80", "--expose", "53/udp",
                                         "--mount", "type=bind,src=/a,dst=/b", "busybox"])
    body = cmd_create.create_body(args, (False, True, True))
    assert body["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert body["HostConfig"]["PortBindings"] == {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}
    assert body["HostConfig"]["Mounts"] == [{"Type": "bind", "Source": "/a", "Target": "/b"}]
