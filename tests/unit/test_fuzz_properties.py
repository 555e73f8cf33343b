"""Property tests (hypothesis) for the parsers that take input from outside: image
references, manifests/indexes/configs, Dockerfiles, layer tars and the API's HTTP requests.
The properties are the fuzz targets of fuzz/targets.py (the atheris harnesses run the same
functions); here hypothesis feeds them structured input: 100 examples each in `make test`,
2000 in `make hardening` (KNARR_HARDENING=full)."""

import json
import os
import sys

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "fuzz"))
import targets  # noqa: E402

EXAMPLES = 2000 if os.environ.get("KNARR_HARDENING") == "full" else 100
# Derandomized unless asked: the same examples on every CI run, so a failure is reproducible
# and not a coin toss; KNARR_FUZZ_RANDOM=1 explores new ones.
fuzz = settings(max_examples=EXAMPLES, deadline=None,
                derandomize=not os.environ.get("KNARR_FUZZ_RANDOM"),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# -- references ---------------------------------------------------------------------------

_component = st.from_regex(r"[a-z0-9]{1,5}([._-]{1,2}[a-z0-9]{1,4})?", fullmatch=True)
_domain = st.one_of(st.just(""), st.sampled_from(["localhost", "localhost:5000", "docker.io/",
                                                  "index.docker.io/", "[::1]:5000",
                                                  "registry.example:443", "Ex-Am.ple"]))
_reference = st.builds(
    lambda d, parts, tag, digest: (d + ("/" if d and not d.endswith("/") else "") +
                                   "/".join(parts) + tag + digest),
    _domain, st.lists(_component, min_size=1, max_size=4),
    st.one_of(st.just(""), st.from_regex(r":[\w][\w.-]{0,10}", fullmatch=True),
              st.just(":"), st.just(":" + "a" * 130)),
    st.one_of(st.just(""), st.just("@sha256:" + "a" * 64), st.just("@sha256:abc"),
              st.just("@sha512:" + "b" * 128), st.just("@")))


@fuzz
@given(st.one_of(_reference, st.text(max_size=80)))
@example("busybox")
@example("docker.io/library/busybox:latest@sha256:" + "0" * 64)
@example("a" * 256)
def test_references_parse_back_to_themselves_or_are_refused(text):
    targets.reference(text.encode("utf-8", "surrogatepass"))


# -- manifests, indexes, configs ----------------------------------------------------------

_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) |
                     st.text(max_size=10),
                     lambda inner: st.lists(inner, max_size=3) |
                     st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=10)
_digest = st.sampled_from(["sha256:" + "a" * 64, "sha256:A", "sha512:" + "c" * 128, "", 7])
_descriptor = st.fixed_dictionaries(
    {"mediaType": st.sampled_from(["application/vnd.oci.image.manifest.v1+json",
                                   "application/vnd.docker.distribution.manifest.v2+json",
                                   "application/vnd.oci.image.layer.v1.tar+gzip", "x", 3]),
     "digest": _digest, "size": st.one_of(st.integers(-2, 1 << 40), st.text(max_size=3))},
    optional={"platform": st.fixed_dictionaries(
        {"architecture": st.sampled_from(["amd64", "arm64", "arm", "", None]),
         "os": st.sampled_from(["linux", "windows", ""])},
        optional={"variant": st.sampled_from(["v7", "v8", ""])}),
        "annotations": _json, "urls": _json})
_document = st.fixed_dictionaries(
    {"schemaVersion": st.sampled_from([2, 1, "2", None])},
    optional={"mediaType": st.sampled_from(["application/vnd.oci.image.index.v1+json",
                                            "application/vnd.oci.image.manifest.v1+json"]),
              "config": _descriptor, "layers": st.lists(_descriptor, max_size=3),
              "manifests": st.lists(_descriptor, max_size=3), "architecture": _json,
              "os": st.sampled_from(["linux", 1]),
              "rootfs": st.fixed_dictionaries({"type": st.sampled_from(["layers", "x"]),
                                               "diff_ids": st.lists(_digest, max_size=2)}),
              "config_": _json})


@fuzz
@given(st.one_of(_document, _json))
def test_image_documents_are_validated_or_refused(doc):
    targets.image_spec(json.dumps(doc).encode())


# -- Dockerfiles --------------------------------------------------------------------------

_keyword = st.sampled_from(["FROM", "RUN", "CMD", "COPY", "ADD", "ENV", "ARG", "LABEL",
                            "EXPOSE", "WORKDIR", "USER", "VOLUME", "ENTRYPOINT", "SHELL",
                            "ONBUILD", "HEALTHCHECK", "STOPSIGNAL", "MAINTAINER", "from", "BOGUS"])
_arg = st.one_of(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=20),
                 st.sampled_from(['["a", "b"]', '["a"', "--from=x a b", "<<EOF", "a=b c=\"d e\"",
                                  "--chmod=755 --chown=1:1 a b", "\\", "`", "NONE", "ONBUILD RUN x",
                                  "--interval=1s CMD true", "$X ${Y:-z} ${", "--mount=type=cache"]))
_line = st.builds(lambda k, a, end: f"{k} {a}{end}", _keyword, _arg,
                  st.sampled_from(["", " \\", " `", "\r"]))
_dockerfile = st.builds(
    lambda head, lines: head + "\n".join(lines),
    st.sampled_from(["", "# escape=`\n", "# syntax=docker/dockerfile:1\n", "#escape=x\n"]),
    st.lists(st.one_of(_line, st.sampled_from(["EOF", "# comment", "", "  "])), max_size=10))


@fuzz
@given(st.one_of(_dockerfile, st.text(max_size=200)))
@example("FROM a\nRUN <<EOF\nx\n")
def test_dockerfiles_parse_or_are_refused(text):
    targets.dockerfile(text.encode("utf-8", "surrogatepass"))


# -- layer tars ---------------------------------------------------------------------------

_names = st.one_of(st.sampled_from(["a", "b", "a/b", "../x", "../../canary", "/abs", "/",
                                    "a/../../x", "l", "l/x", "l/../x", ".wh.a", ".wh..wh..opq",
                                    "d/", "./a", "a//b", "\u00e9", "..", ".", "a/.wh.b",
                                    "../sibling/x", "../../a/sibling/y"]),
                   st.text(alphabet="ab./l\x00", min_size=1, max_size=10))
_links = st.sampled_from(["/", "..", "../..", "../../canary", "a", "l", "/etc/passwd", "l/x",
                          "", "../../../a/sibling", "a/b", "/a"])
_entries = st.lists(st.tuples(st.integers(0, 7), _names, _links, st.binary(max_size=32)),
                    max_size=8)


@fuzz
@given(_entries)
@example([(2, "l", "..", b""), (0, "l/x", "", b"out")])               # a file through a symlink
@example([(2, "l", "../../..", b""), (1, "l/d", "", b"")])            # a dir through a symlink
@example([(3, "h", "../../canary", b"")])                             # a hard link out
@example([(2, "l", "/", b""), (3, "h", "l/canary", b"")])            # a hard link via a link
@example([(4, "dev", "", b""), (5, "blk", "", b""), (6, "fifo", "", b"")])  # device nodes
@example([(7, "huge", "", b"x")])                                     # a header that lies
@example([(0, "a\x00b", "", b"x")])                           # a NUL in a PAX name (atheris)
@example([(2, "l", "a\x00b", b""), (3, "h", "a\x00b", b"")])  # and in link targets
def test_layer_tars_write_nothing_outside_the_target(entries):
    targets.layer_tar(targets.tar_of(entries))


# -- API requests -------------------------------------------------------------------------

_request_line = st.builds(
    lambda m, t, v: f"{m} {t} {v}".encode("latin-1", "replace"),
    st.sampled_from(["GET", "POST", "DELETE", "HEAD", "", "G ET"]),
    st.one_of(st.sampled_from(["/", "//[", "/v1.41/containers/json?all=1&filters={}",
                               "/containers/create?name=../x", "/%2e%2e/%00", "*",
                               "/images/json?filters=[1]", "http://[::1/x"]),
              st.text(max_size=30)),
    st.sampled_from(["HTTP/1.1", "HTTP/1.0", "", "HTTP/9"]))
_header = st.one_of(st.sampled_from([b"Content-Length: 5", b"Content-Length: -1",
                                     b"Content-Length: x", b"Content-Length: \xb2",
                                     b"Transfer-Encoding: chunked", b"Connection: Upgrade",
                                     b"Upgrade: tcp", b"Content-Type: application/json", b":",
                                     b"X"]),
                    st.binary(max_size=20))
_body = st.one_of(st.binary(max_size=40),
                  st.sampled_from([b"5\r\nhello\r\n0\r\n\r\n", b"zz\r\n", b"-1\r\n", b"{}",
                                   b'{"Image": "busybox"}', b"[", b"\xff\xfe"]))


@fuzz
@given(st.builds(lambda line, headers, body: line + b"\r\n" + b"\r\n".join(headers) +
                 b"\r\n\r\n" + body, _request_line, st.lists(_header, max_size=4), _body))
@example(b"GET //[ HTTP/1.1\r\n\r\n")
@example(b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n")
@example(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
def test_api_requests_are_read_or_refused_with_bad_request(data):
    targets.http_request(data)
