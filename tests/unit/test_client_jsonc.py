"""The client's JSON codec matches the json package."""

import json

import pytest

from knarr.client import jsonc

DOCS = [{"a": [1, 2.5, None, True, False], "b": {"c": "ü\n\"q\""}, "e": {}, "f": []},
        [], {}, "text", 0, [{"Id": "x" * 64, "Names": ["/c1"]}]]


@pytest.mark.parametrize("doc", DOCS)
def test_round_trip_and_same_as_json(doc):
    assert jsonc.loads(jsonc.dumps(doc)) == doc
    assert jsonc.dumps(doc) == json.dumps(doc, separators=(",", ":"))


@pytest.mark.parametrize("doc", DOCS)
def test_indented_output_is_dockers_inspect_layout(doc):
    assert jsonc.dumps_indent(doc) == json.dumps(doc, indent=4, ensure_ascii=False)


@pytest.mark.parametrize("bad", ["", "{", "[1,]", "{} x", "nul"])
def test_bad_documents_raise_value_error(bad):
    with pytest.raises(ValueError):
        jsonc.loads(bad)
