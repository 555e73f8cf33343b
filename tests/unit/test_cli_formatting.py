"""ps, images and stats tables, templates and the Go tabwriter layout."""

import pytest

from knarr.cli import cmd_df, cmd_events, cmd_images, cmd_ps, statsrow
from knarr.cli.table import Formatter, tabwrite
from knarr.cli.template import Template, TemplateError, render

NOW = 1_700_000_000.0
CONTAINER = {"Id": "712bbc2a9f5ca6abf82113453341e1e0d016260663389cbb6c3ff2570d7ceed8",
             "Names": ["/c1"], "Image": "busybox", "Command": "sleep 1000",
             "Created": NOW - 3, "Ports": [], "Labels": {"a": "b"}, "State": "running",
             "Status": "Up 3 seconds", "SizeRw": 0, "SizeRootFs": 1_990_000}


def test_tabwriter_pads_cells_to_the_widest_plus_three_min_ten():
    text = tabwrite(["A\tBBBBBBBBBBBB\tC", "xx\ty\tlast"])
    assert text == "A         BBBBBBBBBBBB   C\nxx        y              last\n"


def test_ps_table_like_docker():
    rows = [cmd_ps.Row(CONTAINER, now=NOW)]
    out = Formatter(cmd_ps.DEFAULT_FORMAT, cmd_ps.HEADERS).render(rows)
    assert out.splitlines() == [
        "CONTAINER ID   IMAGE     COMMAND        CREATED         STATUS         PORTS     NAMES",
        '712bbc2a9f5c   busybox   "sleep 1000"   3 seconds ago   Up 3 seconds             c1',
    ]


def test_ps_size_quiet_and_truncation():
    row = cmd_ps.Row(dict(CONTAINER, Command="sh -c 'while true; do sleep 1; done'"), now=NOW)
    assert row.Size == "0B (virtual 1.99MB)"
    assert row.Command == '"sh -c \'while true; …"'
    full = cmd_ps.Row(CONTAINER, trunc=False, now=NOW)
    assert full.ID == CONTAINER["Id"] and full.Command == '"sleep 1000"'
    assert Formatter("{{.ID}}", {}).render([row]) == "712bbc2a9f5c\n"


def test_ps_json_and_custom_table():
    row = cmd_ps.Row(CONTAINER, now=NOW)
    assert '"Names":"c1"' in Formatter("{{json .}}", {}).render([row])
    assert Formatter("table {{.Names}}\\t{{.State}}", cmd_ps.HEADERS).render([row]) == \
        "NAMES     STATE\nc1        running\n"


def test_images_rows_for_each_tag_and_untagged():
    image = {"Id": "sha256:ea1b27795a094299d809c24546da0b382f34c21730536c51de3769eeab7116f8",
             "RepoTags": ["busybox:latest", "reg:5000/x/y:v1"], "Created": NOW - 2 * 365 * 86400,
             "Size": 1_990_000}
    rows = cmd_images.rows_of([image, dict(image, RepoTags=None)], now=NOW)
    assert [(r.Repository, r.Tag, r.ID) for r in rows] == [
        ("busybox", "latest", "ea1b27795a09"), ("reg:5000/x/y", "v1", "ea1b27795a09"),
        ("<none>", "<none>", "ea1b27795a09")]
    out = Formatter(cmd_images.DEFAULT_FORMAT, cmd_images.HEADERS).render(rows[:1])
    assert out.splitlines() == ["REPOSITORY   TAG       IMAGE ID       CREATED       SIZE",
                                "busybox      latest    ea1b27795a09   2 years ago   1.99MB"]


STATS = {
    "id": "ccd1a720a41a" + "0" * 52, "name": "/st",
    "cpu_stats": {"cpu_usage": {"total_usage": 2_000_000_000, "percpu_usage": [1, 1]},
                  "system_cpu_usage": 110_000_000_000, "online_cpus": 2},
    "precpu_stats": {"cpu_usage": {"total_usage": 1_500_000_000},
                     "system_cpu_usage": 100_000_000_000},
    "memory_stats": {"usage": 5 << 20, "limit": 64 << 20,
                     "stats": {"total_inactive_file": 1 << 20, "inactive_file": 2 << 20}},
    "networks": {"eth0": {"rx_bytes": 1500, "tx_bytes": 20}, "eth1": {"rx_bytes": 500,
                                                                       "tx_bytes": 0}},
    "blkio_stats": {"io_service_bytes_recursive": [
        {"op": "Read", "value": 4096}, {"op": "Write", "value": 1_000_000},
        {"op": "read", "value": 4096}, {"op": "Total", "value": 9}]},
    "pids_stats": {"current": 3},
}


def test_stats_cpu_percent_is_share_of_system_delta_times_cpus():
    assert statsrow.cpu_percent(STATS) == pytest.approx(10.0)
    assert statsrow.cpu_percent({"cpu_stats": {}, "precpu_stats": {}}) == 0.0


def test_stats_memory_excludes_page_cache_v1_then_v2():
    assert statsrow.memory_usage(STATS["memory_stats"]) == 4 << 20
    v2 = {"usage": 5 << 20, "stats": {"inactive_file": 2 << 20}}
    assert statsrow.memory_usage(v2) == 3 << 20
    assert statsrow.memory_usage({"usage": 100, "stats": {"total_inactive_file": 200}}) == 100


def test_stats_table_columns():
    out = Formatter(statsrow.DEFAULT_FORMAT, statsrow.HEADERS).render(
        [statsrow.StatsRow(STATS)])
    assert out.splitlines() == [
        "CONTAINER ID   NAME      CPU %     MEM USAGE / LIMIT   MEM %     NET I/O     "
        "BLOCK I/O      PIDS",
        "ccd1a720a41a   st        10.00%    4MiB / 64MiB        6.25%     2kB / 20B   "
        "8.19kB / 1MB   3"]


def test_templates():
    data = {"State": {"Status": "running", "Pid": 42}, "Labels": {"k": "v"}, "L": [1, 2],
            "Empty": None}
    assert render("{{.State.Status}} {{.State.Pid}}", data) == "running 42"
    assert render('{{index .Labels "k"}}|{{json .Labels}}|{{.L}}', data) == 'v|{"k":"v"}|[1 2]'
    assert render("{{if .Empty}}x{{else}}y{{end}}{{range .L}}<{{.}}>{{end}}", data) == "y<1><2>"
    assert render("{{range $k, $v := .Labels}}{{$k}}={{$v}}{{end}} {{.State.Status | upper}}",
                  data) == "k=v RUNNING"
    assert render("{{.Nope}}", data) == "<no value>"
    assert render("{{- .L -}} \n", data) == "[1 2]"
    with pytest.raises(TemplateError):
        Template("{{.A")
    with pytest.raises(TemplateError):
        render("{{bogus .A}}", data)


def test_events_line():
    event = {"Type": "container", "Action": "start", "timeNano": 1_700_000_000_123_456_789,
             "Actor": {"ID": "abc", "Attributes": {"name": "c1", "image": "busybox"}}}
    assert cmd_events.event_line(event) == \
        "2023-11-14T22:13:20.123456789Z container start abc (image=busybox, name=c1)"


def test_system_df_rows():
    df = {"LayersSize": 2000, "Images": [{"Size": 2000, "SharedSize": 0, "Containers": 1}],
          "Containers": [{"State": "exited", "SizeRw": 100}, {"State": "running", "SizeRw": 300}]}
    rows = cmd_df.summary_rows(df)
    assert rows[0]["Reclaimable"] == "0B (0%)" and rows[0]["Active"] == "1"
    assert rows[1]["Size"] == "400B" and rows[1]["Reclaimable"] == "100B (25%)"


def test_template_method_calls_with_arguments():
    row = cmd_ps.Row(CONTAINER, now=NOW)
    assert Template('{{.Label "a"}}|{{.Label "missing"}}').render(row) == "b|"


def test_ports_column():
    ports = [{"PrivatePort": 80, "PublicPort": 8080, "Type": "tcp", "IP": "0.0.0.0"},
             {"PrivatePort": 53, "Type": "udp"}, {"PrivatePort": 443, "Type": "tcp"},
             {"PrivatePort": 444, "Type": "tcp"},
             {"PrivatePort": 80, "PublicPort": 8080, "Type": "tcp", "IP": "::"}]
    assert cmd_ps.displayable_ports(ports) == \
        "53/udp, 443-444/tcp, 0.0.0.0:8080->80/tcp, [::]:8080->80/tcp"
    assert cmd_ps.displayable_ports([]) == ""
