"""fastjson gives what json gives, without importing it at start-up."""

import json
import pathlib
import subprocess
import sys

import pytest

from knarr import fastjson

DOCS = ['{"a": [1, 2.5, -3e2, true, false, null], "b": {"c": "d\\u00e9\\n"}}', "  []  ",
        '"x"', "12", '{"": {"": [{}]}}', '{"big": 123456789012345678901234567890}']


@pytest.mark.parametrize("doc", DOCS)
def test_loads_matches_json(doc):
    assert fastjson.loads(doc) == json.loads(doc)
    assert fastjson.loads(doc.encode()) == json.loads(doc)


@pytest.mark.parametrize("doc", ["", "{", '{"a": 1} x', "[1,]", "{'a': 1}", "nul"])
def test_loads_refuses_what_json_refuses(doc):
    with pytest.raises(ValueError):
        json.loads(doc)
    with pytest.raises(ValueError):
        fastjson.loads(doc)


def test_dumps_matches_compact_json():
    value = {"id": "x", "pid": 12, "list": [1, None, True, 1.5], "s": "é\"\\\n"}
    assert fastjson.dumps(value) == json.dumps(value, separators=(",", ":"))
    assert fastjson.loads(fastjson.dumps(value)) == value


def test_dumps_refuses_objects():
    with pytest.raises(TypeError, match="not JSON serializable"):
        fastjson.dumps({"a": object()})


def test_importing_it_does_not_import_json_or_re():
    repo = str(pathlib.Path(__file__).resolve().parents[2])
    code = (f"import sys; sys.path.insert(0, {repo!r}); import knarr.fastjson as f; "
            "f.loads('{\"a\": [1]}'); f.dumps({'a': 1}); "
            "print('json' in sys.modules, 're' in sys.modules)")
    out = subprocess.run([sys.executable, "-IS", "-c", code], capture_output=True, text=True)
    assert out.stdout.split() == ["False", "False"], out.stderr


def test_errors_are_proper_before_json_is_imported():
    repo = str(pathlib.Path(__file__).resolve().parents[2])
    code = (f"import sys; sys.path.insert(0, {repo!r}); import knarr.fastjson as f\n"
            "try:\n    f.loads('{\"a\": ')\nexcept ValueError as e:\n    print(type(e).__name__)")
    out = subprocess.run([sys.executable, "-IS", "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "JSONDecodeError", out.stderr
