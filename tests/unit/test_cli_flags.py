"""Flag parsing follows pflag's rules and prints Docker's messages."""

import pytest

from knarr.cli import cmd_exec, cmd_ps, cmd_run, flags, main


def _run(argv):
    return cmd_run.command("run").parse(argv)


def test_combined_short_flags_and_stop_at_the_image():
    args = _run(["-it", "--rm", "--name=x", "-e", "A=1", "-eB=2", "busybox", "sh", "-c", "ls -l"])
    assert args.interactive and args.tty and args.rm
    assert args.name == "x" and args.env == ["A=1", "B=2"]
    assert args.args == ["busybox", "sh", "-c", "ls -l"]


def test_values_joined_with_equals_and_bool_values():
    args = _run(["-m=64m", "--rm=false", "-d=true", "--cpus", "1.5", "busybox"])
    assert args.memory == 64 << 20 and args.rm is False and args.detach is True
    assert args.cpus == 1_500_000_000


def test_double_dash_ends_flags():
    assert _run(["--", "-image"]).args == ["-image"]


def test_defaults():
    args = _run(["busybox"])
    assert args.env == [] and args.restart == "no" and args.network == "default"
    assert args.sig_proxy is True and args.memory is None


@pytest.mark.parametrize("argv,message", [
    (["--bogus", "busybox"], "unknown flag: --bogus"),
    (["-z", "busybox"], "unknown shorthand flag: 'z' in -z"),
    (["-itz", "busybox"], "unknown shorthand flag: 'z' in -z"),
    (["--name"], "flag needs an argument: --name"),
    (["-e"], "flag needs an argument: 'e' in -e"),
    (["-m", "foo", "busybox"], "invalid argument \"foo\" for \"-m, --memory\" flag: "
                               "invalid size: 'foo'"),
    (["--stop-timeout", "x", "busybox"], 'invalid argument "x" for "--stop-timeout" flag: '
                                         'strconv.ParseInt: parsing "x": invalid syntax'),
    (["-a", "bogus", "busybox"], 'invalid argument "bogus" for "-a, --attach" flag: valid '
                                 "streams are STDIN, STDOUT and STDERR"),
    (["--health-interval", "5", "busybox"], 'invalid argument "5" for "--health-interval" '
                                            'flag: time: missing unit in duration "5"'),
    (["--cpus", "abc", "busybox"], 'invalid argument "abc" for "--cpus" flag: failed to parse '
                                   "abc as a rational number"),
])
def test_flag_errors_are_dockers_with_status_125(argv, message):
    with pytest.raises(flags.UsageError) as info:
        _run(argv)
    assert info.value.message == f"{message}\nSee 'knarr run --help'."
    assert info.value.code == 125


def test_argument_count_errors_exit_1_with_usage():
    with pytest.raises(flags.UsageError) as info:
        cmd_exec.command("exec").parse(["c1"])
    assert info.value.code == 1
    assert info.value.message.startswith('"knarr exec" requires at least 2 arguments.\n'
                                         "See 'knarr exec --help'.\n\nUsage:  knarr exec")
    with pytest.raises(flags.UsageError) as info:
        cmd_ps.command("ps").parse(["x"])
    assert '"knarr ps" accepts no arguments.' in info.value.message


def test_help_is_requested_by_long_flag_and_shows_options():
    with pytest.raises(flags.HelpRequested):
        cmd_ps.command("ps").parse(["--help"])
    text = cmd_ps.command("ps").help_text()
    assert "Usage:  knarr ps [OPTIONS]" in text and "-a, --all" in text and "-n, --last int" in text


def test_interspersed_commands_take_flags_after_positionals():
    args = cmd_ps.command("ps").parse(["-a"])
    assert args.all
    exec_args = cmd_exec.command("exec").parse(["-it", "c1", "ls", "-l"])
    assert exec_args.args == ["c1", "ls", "-l"] and exec_args.tty


def test_global_flags_and_management_commands():
    g, rest = main._globals(["-H", "unix:///x.sock", "--debug", "ps", "-a"])
    assert g.host == ["unix:///x.sock"] and rest == ["ps", "-a"]
    assert main._resolve(["container", "ls", "-a"]) == ("ps", "container ls", ["-a"])
    assert main._resolve(["image", "rm", "x"]) == ("rmi", "image rm", ["x"])
    with pytest.raises(flags.UsageError) as info:
        main._resolve(["bogus"])
    assert info.value.message.startswith("knarr: 'bogus' is not a knarr command.")


def test_unknown_flag_end_to_end_exit_status(capsys):
    assert main.main(["run", "--bogus", "busybox"]) == 125
    assert capsys.readouterr().err == "unknown flag: --bogus\nSee 'knarr run --help'.\n"


def test_usage_version_and_unknown_commands(capsys):
    assert main.main([]) == 0
    assert "Usage:  knarr [OPTIONS] COMMAND" in capsys.readouterr().out
    assert main.main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("knarr version ")
    assert main.main(["bogus"]) == 1
    assert capsys.readouterr().err == "knarr: 'bogus' is not a knarr command.\nSee 'knarr --help'\n"
    assert main.main(["--bogus"]) == 125
    assert main.main(["ps", "--help"]) == 0
    assert "List containers" in capsys.readouterr().out


def test_every_command_declares_and_documents_itself():
    names = set(main.COMMANDS.values()) | {m for g in main.GROUPS.values() for m in g.values()}
    for name in sorted(names):
        module = __import__(f"knarr.cli.cmd_{name}", fromlist=["command"])
        command = module.command(name)
        assert command.usage.startswith(f"knarr {name}") and command.summary
        assert "Usage:" in command.help_text()


def test_tls_global_flags():
    g, rest = main._globals(["--tlsverify", "--tlscacert", "/ca", "--tlscert=/c", "ps"])
    assert g.tlsverify and g.tlscacert == "/ca" and g.tlscert == "/c" and rest == ["ps"]
