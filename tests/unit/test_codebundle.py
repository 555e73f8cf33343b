"""knarr.codebundle: modules compiled into one file, served by a finder first on
sys.meta_path, each only while its source is the one compiled. Every import runs in
a fresh interpreter (the finder is process-wide)."""

import json
import os
import subprocess
import sys

from knarr import codebundle

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(codebundle.__file__)))


def _tree(root) -> None:
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("VALUE = 'pkg'\n")
    (root / "pkg" / "one.py").write_text("from pkg import two\nVALUE = 'one' + two.VALUE\n")
    (root / "pkg" / "two.py").write_text("VALUE = 'two'\n")
    (root / "pkg" / "sub" / "__init__.py").write_text("")
    (root / "pkg" / "sub" / "deep.py").write_text("VALUE = 'deep'\n")


def _import(root, bundle, *names) -> dict:
    """Import `names` in a fresh interpreter with the bundle installed; per module, its
    VALUE, __file__, whether the bundle's finder loaded it, and its __path__."""
    code = f"""
import json, sys
sys.path.insert(0, {_REPO!r})
sys.path.insert(0, {str(root)!r})
from knarr import codebundle
installed = codebundle.install({str(bundle)!r})
out = {{"installed": installed}}
for name in {list(names)!r}:
    __import__(name)
    m = sys.modules[name]
    out[name] = [m.VALUE, m.__file__, type(m.__spec__.loader).__name__ == "_Finder",
                 getattr(m, "__path__", None)]
print(json.dumps(out))
"""
    result = subprocess.run([sys.executable, "-IS", "-c", code], capture_output=True,
                            text=True, check=True)
    return json.loads(result.stdout)


def test_bundled_modules_load_from_the_bundle_like_from_their_files(tmp_path):
    _tree(tmp_path)
    bundle = tmp_path / "b.bundle"
    assert codebundle.build(str(bundle), str(tmp_path), ("pkg",)) == 3
    got = _import(tmp_path, bundle, "pkg.one", "pkg", "pkg.sub.deep")
    assert got["installed"] is True
    assert got["pkg.one"] == ["onetwo", str(tmp_path / "pkg" / "one.py"), True, None]
    assert got["pkg"] == ["pkg", str(tmp_path / "pkg" / "__init__.py"), True,
                          [str(tmp_path / "pkg")]]
    # a package the bundle lacks is found as usual, through its parent's __path__
    assert got["pkg.sub.deep"][0] == "deep" and got["pkg.sub.deep"][2] is False


def test_a_module_whose_source_changed_is_imported_from_the_source(tmp_path):
    _tree(tmp_path)
    bundle = tmp_path / "b.bundle"
    codebundle.build(str(bundle), str(tmp_path), ("pkg",))
    (tmp_path / "pkg" / "two.py").write_text("VALUE = 'TWO, edited'\n")
    got = _import(tmp_path, bundle, "pkg.one", "pkg.two")
    assert got["pkg.two"][0] == "TWO, edited" and got["pkg.two"][2] is False
    assert got["pkg.one"] == ["oneTWO, edited", str(tmp_path / "pkg" / "one.py"), True, None]


def test_no_bundle_a_foreign_file_or_another_pythons_bundle_installs_nothing(tmp_path):
    _tree(tmp_path)
    assert _import(tmp_path, tmp_path / "missing", "pkg.one")["pkg.one"][2] is False
    foreign = tmp_path / "foreign"
    foreign.write_bytes(b"not a bundle at all")
    assert _import(tmp_path, foreign, "pkg.one")["installed"] is False
    bundle = tmp_path / "b.bundle"
    codebundle.build(str(bundle), str(tmp_path), ("pkg",))
    raw = bytearray(bundle.read_bytes())
    raw[8] ^= 0xFF  # the interpreter's bytecode magic number
    bundle.write_bytes(bytes(raw))
    got = _import(tmp_path, bundle, "pkg.one")
    assert got["installed"] is False and got["pkg.one"][0] == "onetwo"


def test_the_launchers_bundle_holds_every_module_knarr_runtime_run_imports():
    # what a `run` imports, all from the bundle when it is fresh (tmp bundle, this tree)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        bundle = os.path.join(tmp, "rt.bundle")
        codebundle.build(bundle, _REPO)
        code = f"""
import sys
sys.path.insert(0, {_REPO!r})
from knarr import codebundle
assert codebundle.install({bundle!r})
import knarr.runtime_cli.main, knarr.runtime_cli.verb_run, knarr.runtime.init
from knarr.runtime import cgroups
cgroups.open_cgroup(None, "x")
import knarr.runtime.cgroups.v1, knarr.runtime.cgroups.v2
print(sorted(m for m in sys.modules if m.startswith("knarr.")
             and type(sys.modules[m].__spec__.loader).__name__ != "_Finder"))
"""
        out = subprocess.run([sys.executable, "-IS", "-c", code], capture_output=True,
                             text=True, check=True).stdout
    assert out.strip() == "['knarr.codebundle']"  # imported by the launcher, before


def test_the_cli_bundle_holds_every_module_knarr_run_imports(tmp_path):
    # the knarr launcher's bundle: what `knarr run` and `exec` import, all from it
    bundle = str(tmp_path / "cli.bundle")
    codebundle.build(bundle, _REPO, codebundle.CLI_PACKAGES)
    code = f"""
import sys
sys.path.insert(0, {_REPO!r})
from knarr import codebundle
assert codebundle.install({bundle!r})
import knarr.cli.main, knarr.cli.context, knarr.cli.cmd_run, knarr.cli.cmd_exec
import knarr.cli.attaching, knarr.client.api, knarr.client.jsonc
print(sorted(m for m in sys.modules if m.startswith("knarr.")
             and type(sys.modules[m].__spec__.loader).__name__ != "_Finder"))
"""
    out = subprocess.run([sys.executable, "-IS", "-c", code], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "['knarr.codebundle']"
