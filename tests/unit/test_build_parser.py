"""The Dockerfile parser, word processing and .dockerignore matching: pure functions."""

import pytest

from knarr.build import dispatch
from knarr.build.dockerignore import parse as ignore
from knarr.build.parser import ParseError, parse, parse_line
from knarr.build.words import process_word, process_words, split_words


def test_comments_blank_lines_and_case():
    df = parse("# a comment\n\nfrom busybox\n  # indented comment\nrun echo hi # not a comment\n")
    assert [(i.keyword, i.rest, i.line) for i in df.instructions] == [
        ("FROM", "busybox", 3), ("RUN", "echo hi # not a comment", 5)]


def test_directives_only_at_the_top():
    df = parse("# syntax=docker/dockerfile:1\n# escape=`\nFROM x\nRUN a `\n  b\n")
    assert df.directives == {"syntax": "docker/dockerfile:1", "escape": "`"}
    assert df.escape == "`"
    assert df.instructions[1].rest == "a   b"
    late = parse("FROM x\n# escape=`\nRUN a \\\n b\n")
    assert late.directives == {} and late.instructions[1].rest == "a  b"


def test_bad_directives():
    with pytest.raises(ParseError, match="line 1: invalid escape token"):
        parse("# escape=x\nFROM a\n")
    with pytest.raises(ParseError, match="line 2: only one escape parser directive"):
        parse("# escape=`\n# escape=\\\nFROM a\n")


def test_continuations_skip_comments_and_empty_lines():
    df = parse("FROM a\nRUN echo one \\\n# inside\n\n    two \\\n  three\nCMD x\n")
    run = df.instructions[1]
    assert run.rest == "echo one     two   three" and run.line == 2
    assert df.instructions[2].line == 7


def test_json_and_shell_forms():
    run = parse_line('RUN ["echo", "a b"]', 1)
    assert run.json == ["echo", "a b"]
    shell = parse_line("RUN [not json", 1)
    assert shell.json is None and shell.rest == "[not json"
    assert parse_line('CMD ["a", 1]', 1).json is None  # not all strings: the shell form


def test_flags():
    copy = parse_line("COPY --from=build --chown=1:2 --chmod=755 a b /c/", 4)
    assert copy.flags == {"from": ["build"], "chown": ["1:2"], "chmod": ["755"]}
    assert copy.rest == "a b /c/" and copy.flag("from") == "build"
    assert parse_line("FROM --platform=linux/amd64 busybox AS b", 1).flag("platform") == \
        "linux/amd64"


def test_unknown_instruction_names_its_line():
    with pytest.raises(ParseError) as err:
        parse("FROM a\n\nFOO bar\n")
    assert str(err.value) == "dockerfile parse error line 3: unknown instruction: FOO"
    assert err.value.line == 3


def test_shell_needs_json_and_onbuild_limits():
    with pytest.raises(ParseError, match="SHELL requires the arguments to be in JSON form"):
        parse("FROM a\nSHELL /bin/bash -c\n")
    with pytest.raises(ParseError, match="isn't allowed as an ONBUILD trigger"):
        parse("FROM a\nONBUILD FROM b\n")
    with pytest.raises(ParseError, match="unknown instruction: NOPE"):
        parse("FROM a\nONBUILD NOPE x\n")


def test_heredocs():
    df = parse("FROM a\nRUN <<EOF\necho one\necho two\nEOF\nCOPY <<-'END' /x\n\thello $HOME\n\tEND\n"
               "CMD x\n")
    run, copy, cmd = df.instructions[1:]
    assert run.heredocs[0].name == "EOF" and run.heredocs[0].content == "echo one\necho two\n"
    assert copy.heredocs[0].content == "hello $HOME\n" and not copy.heredocs[0].expand
    assert cmd.keyword == "CMD" and cmd.line == 9
    with pytest.raises(ParseError, match="line 2: unterminated heredoc EOF"):
        parse("FROM a\nRUN <<EOF\nno end\n")


def test_variables():
    env = {"A": "1", "EMPTY": "", "NAME": "knarr"}
    assert process_word("$A-${A}-$NONE-x", env) == "1-1--x"
    assert process_word("$A ${A} $NONE", env) == "1 1 "
    assert process_word("${NONE:-dflt} ${EMPTY:-dflt} ${EMPTY-dflt} ${A:-dflt}", env) == \
        "dflt dflt  1"
    assert process_word("${A:+alt} ${NONE:+alt} ${EMPTY+set}", env) == "alt  set"
    assert process_word("'$A' \"$A\" \\$A", env) == "$A 1 $A"
    assert process_word('"a \\"b\\" c"', env) == 'a "b" c'
    assert process_word("${NAME}_x$", env) == "knarr_x$"
    with pytest.raises(Exception, match="NONE: needed"):
        process_word("${NONE:?needed}", env)


def test_unterminated_quotes():
    with pytest.raises(Exception, match="matching double-quote"):
        process_word('"open', {})
    with pytest.raises(Exception, match="matching single-quote"):
        process_word("'open", {})


def test_words_split_on_unquoted_blanks():
    assert split_words('a "b c" d\\ e \'f g\'') == ["a", '"b c"', "d\\ e", "'f g'"]
    assert process_words('$X "y z" ""', {"X": ""}) == ["y z", ""]


def test_env_label_arg_pairs():
    env = {"B": "bee"}
    ins = parse_line('ENV A=1 C="two words" D=$B', 1)
    assert dispatch.name_value_pairs(ins, env, "\\") == [("A", "1"), ("C", "two words"),
                                                          ("D", "bee")]
    legacy = parse_line("ENV KEY some value $B", 1)
    assert dispatch.name_value_pairs(legacy, env, "\\") == [("KEY", "some value bee")]
    arg = parse_line("ARG X Y=2", 1)
    assert dispatch.name_value_pairs(arg, env, "\\") == [("X", None), ("Y", "2")]


def test_config_instructions():
    config: dict = {"Env": ["PATH=/bin", "A=0"]}
    for line in ("ENV A=1", "LABEL a=b \"c d\"=e", "EXPOSE 80 53/udp 8000-8001",
                 "VOLUME /data /logs", 'VOLUME ["/j"]', "USER nobody", "WORKDIR /app",
                 "WORKDIR sub", "STOPSIGNAL SIGINT", 'SHELL ["/bin/bash", "-c"]',
                 "HEALTHCHECK --interval=5s --retries=3 CMD true", "ONBUILD run echo",
                 "CMD echo hi", 'ENTRYPOINT ["/e"]'):
        dispatch.apply(parse_line(line, 1), config, {}, "\\")
    assert config["Env"] == ["PATH=/bin", "A=1"]
    assert config["Labels"] == {"a": "b", "c d": "e"}
    assert set(config["ExposedPorts"]) == {"80/tcp", "53/udp", "8000/tcp", "8001/tcp"}
    assert config["Volumes"] == {"/data": {}, "/logs": {}, "/j": {}}
    assert config["User"] == "nobody" and config["WorkingDir"] == "/app/sub"
    assert config["StopSignal"] == "SIGINT" and config["Shell"] == ["/bin/bash", "-c"]
    assert config["Healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Interval": 5 * 10**9,
                                     "Retries": 3}
    assert config["OnBuild"] == ["RUN echo"]
    assert config["Cmd"] == ["/bin/bash", "-c", "echo hi"] and config["Entrypoint"] == ["/e"]


def test_durations():
    assert dispatch.parse_duration("1m30s", "x") == 90 * 10**9
    assert dispatch.parse_duration("500ms", "x") == 5 * 10**8
    with pytest.raises(Exception, match="invalid duration"):
        dispatch.parse_duration("5 s", "x")


def test_dockerignore_rules():
    m = ignore("# comment\n*.log\n!keep.log\nbuild/\n**/tmp\n/abs\ndocs/*.md\n")
    assert m.excluded("a.log") and not m.excluded("keep.log")
    assert m.excluded("sub/x.log") is False  # `*` stays within one component
    assert m.excluded("build") and m.excluded("build/deep/file")
    assert m.excluded("tmp") and m.excluded("a/b/tmp") and m.excluded("a/tmp/f")
    assert m.excluded("abs") and not m.excluded("x/abs")
    assert m.excluded("docs/a.md") and not m.excluded("docs/sub/a.md")
    assert not m.excluded("src/main.py")
    exc = ignore("dir\n!dir/keep\n")
    assert exc.excluded("dir/other") and not exc.excluded("dir/keep") and exc.has_exceptions()
    assert ignore("**/*.pyc\n").excluded("a/b/c.pyc") and ignore("**/*.pyc\n").excluded("c.pyc")
    assert ignore("f?o\n[ab]x\n").excluded("foo") and ignore("[ab]x\n").excluded("bx")
