"""The package tiers of DESIGN.md hold: a package imports only lower tiers.

Packages on the same tier do not import each other; apps import only what
their row allows. The check reads every module's imports with `ast`.
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2] / "knarr"

# The floor: errors (DESIGN.md lists it on tier 0 beside oci, and every package,
# oci included, raises its categories) and fastjson (the JSON codec every hot
# path shares). Everyone may import them, apps included.
# installed: site-packages on demand; codebundle: a launcher's modules from one file
FLOOR = {"errors", "fastjson", "tarstream", "installed", "codebundle"}
TIERS = {
    "errors": -1, "fastjson": -1, "tarstream": -1, "installed": -1, "codebundle": -1,
    "oci": 0,
    "sys": 1,
    "runtime": 2, "content": 2, "snapshots": 2, "network": 2,
    "images": 3, "distribution": 3, "build": 3, "volumes": 3,
    "engine": 4,
    "api": 5,
}

# Apps say exactly which packages they may import.
APPS = {
    "registry": {"oci", "content", "errors"},
    "client": {"errors"},
    "cli": {"client", "errors"},
    "runtime_cli": {"runtime", "oci", "errors", "sys"},
    # knarrd: the daemon's entry point wires the engine to the API server.
    "daemon": {"api", "engine", "images", "content", "snapshots", "runtime", "network",
               "volumes", "distribution", "build", "oci", "errors", "sys"},
}


def _package_of(module: pathlib.Path) -> str:
    rel = module.relative_to(ROOT)
    return rel.parts[0].removesuffix(".py")


def _knarr_imports(module: pathlib.Path) -> set[str]:
    tree = ast.parse(module.read_text(), str(module))
    found = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module == "knarr":
            names = [f"knarr.{a.name}" for a in node.names]  # from knarr import sys
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            raise AssertionError(f"{module}: relative import; use absolute knarr.* imports")
        for name in names:
            parts = name.split(".")
            if parts[0] == "knarr" and len(parts) > 1:
                found.add(parts[1])
    return found


def _modules():
    return sorted(p for p in ROOT.rglob("*.py") if p.parent != ROOT)


def test_every_package_has_a_tier():
    packages = {_package_of(p) for p in _modules()}
    unknown = packages - set(TIERS) - set(APPS)
    assert not unknown, f"packages without a tier in DESIGN.md: {sorted(unknown)}"


@pytest.mark.parametrize("module", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_respect_tiers(module):
    own = _package_of(module)
    for dep in _knarr_imports(module) - {own} - FLOOR:
        if own in APPS:
            assert dep in APPS[own], f"{module.name}: app {own} may not import knarr.{dep}"
        else:
            assert dep in TIERS, f"{module.name}: {own} imports app knarr.{dep}"
            assert TIERS[dep] < TIERS[own], (
                f"{module.name}: knarr.{own} (tier {TIERS[own]}) imports knarr.{dep} "
                f"(tier {TIERS[dep]})")
