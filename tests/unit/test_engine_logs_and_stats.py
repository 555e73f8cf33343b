"""The json-file log, times, event filters and the stats and top shapes."""

import json

import pytest

from knarr.engine import events, jsonlog, stats, timefmt
from knarr.errors import InvalidArgument


def test_json_file_lines_in_dockers_format(tmp_path):
    path = str(tmp_path / "c-json.log")
    log = jsonlog.Writer(path)
    log.write("stdout", b"one\ntw")
    log.write("stderr", b"err\n")
    log.write("stdout", b"o\n")
    log.write("stdout", b"tail without newline")
    log.close()
    entries = jsonlog.read_entries(path)
    assert [(e["stream"], e["log"]) for e in entries] == [
        ("stdout", "one\n"), ("stderr", "err\n"), ("stdout", "two\n"),
        ("stdout", "tail without newline")]
    assert all(e["time"].endswith("Z") and len(e["time"]) == 30 for e in entries)
    with open(path) as f:
        first = f.readline()
    assert list(json.loads(first)) == ["log", "stream", "time"]


def test_rotation_keeps_max_file_files(tmp_path):
    path = str(tmp_path / "c-json.log")
    log = jsonlog.Writer(path, max_size=300, max_file=2)
    for i in range(40):
        log.write("stdout", f"line {i}\n".encode())
    log.close()
    assert jsonlog.log_files(path) == [path + ".1", path]
    entries = jsonlog.read_entries(path)
    assert entries[-1]["log"] == "line 39\n" and len(entries) < 40
    assert jsonlog.parse_size("10m") == 10 << 20 and jsonlog.parse_size("1k") == 1024


def test_reading_an_open_log_leaves_it_where_a_follower_goes_on(tmp_path):
    # logs --follow: what is written between the reading and the following is not lost
    path = str(tmp_path / "c-json.log")
    log = jsonlog.Writer(path, max_size=300, max_file=2)
    for i in range(12):
        log.write("stdout", f"line {i}\n".encode())
    log.flush()
    whole = [e["log"] for e in jsonlog.read_entries(path)]
    assert len(jsonlog.log_files(path)) == 2 and whole[-1] == "line 11\n"
    entry = json.dumps({"log": "late\n", "stream": "stdout", "time": "t"}).encode() + b"\n"
    with open(path, "ab") as f:
        f.write(entry[:10])  # a line still being written
    with open(path, "rb") as current:
        entries = jsonlog.read_entries(path, current)
        assert [e["log"] for e in entries] == whole
        with open(path, "ab") as f:
            f.write(entry[10:])
        assert current.read() == entry
    log.close()


def test_non_utf8_output_is_kept_readable(tmp_path):
    path = str(tmp_path / "c-json.log")
    log = jsonlog.Writer(path)
    log.write("stdout", b"caf\xc3\xa9 \xff\n")
    log.close()
    assert jsonlog.read_entries(path)[0]["log"] == "caf\u00e9 \ufffd\n"


def test_times():
    assert timefmt.parse_timestamp("1970-01-01T00:00:10.5Z") == 10.5
    assert timefmt.parse_timestamp("0001-01-01T00:00:00Z") == 0.0
    assert timefmt.parse_since("1700000000.25") == 1700000000.25
    assert timefmt.parse_since("10m", now=1000.0) == 400.0
    assert timefmt.parse_since(None) is None
    for bad in (":", "abc", "2026-13-40T00:00:00Z"):  # the API answers 400, not 500
        with pytest.raises(InvalidArgument, match="parse time"):
            timefmt.parse_since(bad)
    assert [timefmt.human_duration(s) for s in (0.5, 1, 5, 90, 150, 3600, 7200, 200000)] == [
        "Less than a second", "1 second", "5 seconds", "About a minute", "2 minutes",
        "About an hour", "2 hours", "2 days"]


def test_event_shape_and_filters():
    bus = events.EventBus()
    event = bus.publish("container", "die", "c" * 64,
                        {"image": "busybox", "name": "box", "exitCode": "0", "team": "a"})
    assert event["status"] == "die" and event["from"] == "busybox" and event["id"] == "c" * 64
    assert event["Actor"]["Attributes"]["exitCode"] == "0" and event["scope"] == "local"
    assert events.matches(event, {"event": ["die"], "container": ["box"]})
    assert events.matches(event, {"label": ["team=a"]})
    assert not events.matches(event, {"type": ["image"]})
    assert not events.matches(event, {"event": ["start"]})


def _reading(total: int, usage: int, limit: int, running: bool = True) -> dict:
    return {"read": "2026-01-01T00:00:00.000000000Z", "system": 10_000, "running": running,
            "networks": {}, "cgroup": {
                "cpu": {"usage": {"total": total, "percpu": [total], "kernel": 1, "user": 2},
                        "throttling": {"periods": 0, "throttled_periods": 0,
                                       "throttled_time": 0}},
                "memory": {"usage": {"usage": usage, "max": usage, "failcnt": 0,
                                     "limit": limit},
                           "raw": {"total_inactive_file": 100, "cache": 200}},
                "pids": {"current": 3, "limit": 0}, "blkio": {}}}


def test_docker_stats_shape():
    record = {"Id": "c" * 64, "Name": "/box"}
    doc = stats.docker_stats(record, _reading(500, 4096, 64 << 20), _reading(300, 0, 0))
    assert doc["cpu_stats"]["cpu_usage"]["total_usage"] == 500
    assert doc["precpu_stats"]["cpu_usage"]["total_usage"] == 300
    assert doc["memory_stats"]["usage"] == 4096 and doc["memory_stats"]["limit"] == 64 << 20
    assert doc["memory_stats"]["stats"]["total_inactive_file"] == 100
    assert doc["pids_stats"] == {"current": 3} and doc["name"] == "/box"
    assert "networks" not in doc and doc["blkio_stats"]["io_service_bytes_recursive"] is None
    unlimited = stats.docker_stats(record, _reading(1, 1, 1 << 63), None)
    assert unlimited["memory_stats"]["limit"] == stats.host_memory()
    assert unlimited["preread"] == "0001-01-01T00:00:00Z"


def test_top_keeps_the_containers_processes():
    out = ("UID PID PPID C STIME TTY TIME CMD\n"
           "root 10 1 0 10:00 ? 00:00:00 sleep 1000\n"
           "root 11 1 0 10:00 ? 00:00:00 /usr/sbin/sshd -D\n")
    top = stats.parse_ps(out, {10})
    assert top["Titles"][-1] == "CMD"
    assert top["Processes"] == [["root", "10", "1", "0", "10:00", "?", "00:00:00",
                                 "sleep 1000"]]
