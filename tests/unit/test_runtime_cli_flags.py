"""The quick parser agrees with argparse on every well-formed command line."""

import argparse

import pytest

from knarr.runtime_cli import flags, main

LINES = [
    ["--root", "/r", "create", "--bundle", "/b", "--pid-file", "/p", "c1"],
    ["--root=/r", "--log", "/l", "--log-format", "json", "create", "-b", "/b", "c1"],
    ["--systemd-cgroup", "run", "-d", "--bundle", "/b", "--preserve-fds", "2", "c1"],
    ["start", "c1"],
    ["kill", "c1"],
    ["kill", "--all", "c1", "KILL"],
    ["delete", "-f", "a", "b"],
    ["state", "c1"],
    ["exec", "-t", "--env", "A=1", "-e", "B=2", "c1", "sh", "-c", "echo -n x"],
    ["exec", "--process", "/p.json", "-d", "--pid-file", "/p", "c1"],
    ["ps", "--format", "json", "c1"],
    ["ps", "c1", "-ef", "-o", "pid"],
    ["list", "-q"],
    ["ls", "--format", "json"],
    ["update", "--resources", "-", "c1"],
    ["events", "--stats", "c1"],
]


@pytest.mark.parametrize("argv", LINES, ids=" ".join)
def test_quick_parse_matches_argparse(argv):
    argv = main._normalise(argv)
    verb = main._verb_in(argv)
    quick = vars(flags.parse(main._declare(flags.QuickParser(), verb), argv))
    slow = vars(main._argparse(verb).parse_args(argv))
    assert {k: v for k, v in quick.items() if k != "func"} == \
        {k: v for k, v in slow.items() if k != "func"}
    assert quick["func"].__module__ == slow["func"].__module__


@pytest.mark.parametrize("argv", [
    ["create", "--bogus", "c1"], ["create"], ["kill", "c1", "TERM", "extra"], ["state", "-h"],
    ["--log-format", "xml", "state", "c1"], ["exec", "--preserve-fds", "x", "c1", "sh"],
    ["nosuchverb"], ["update", "c1"],
])
def test_anything_odd_falls_back_to_argparse(argv):
    verb = main._verb_in(argv)
    with pytest.raises(flags.Fallback):
        flags.parse(main._declare(flags.QuickParser(), verb), argv)


def test_runc_single_dash_long_flags():
    assert main._normalise(["create", "-bundle", "/b", "-pid-file=/p", "x", "-d"]) == \
        ["create", "--bundle", "/b", "--pid-file=/p", "x", "-d"]


def test_remainder_value_matches_argparse():
    assert flags.REMAINDER == argparse.REMAINDER


def test_options_after_the_id_belong_to_the_command():
    argv = ["exec", "c1", "-t", "sh"]
    quick = flags.parse(main._declare(flags.QuickParser(), "exec"), argv)
    slow = main._argparse("exec").parse_args(argv)
    assert quick.command == slow.command == ["-t", "sh"] and quick.tty is slow.tty is False
