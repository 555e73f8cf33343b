"""Packages installed beside knarr, for processes started without site (-S).

knarr's launchers start Python isolated and without site processing, so the
environment's site-packages (a venv's, when Python runs from one) is not on
sys.path. The few third-party modules knarr uses (pyroute2's message codecs,
zlib-ng's inflater) are found there on first use.
"""

import importlib
import os
import sys
from types import ModuleType

__all__ = ["add_site_packages", "optional"]


def add_site_packages() -> None:
    """Put the environment's site-packages on sys.path (once; idempotent)."""
    import site

    prefixes = [sys.prefix]
    venv = os.path.dirname(os.path.dirname(os.path.abspath(sys.executable)))
    if os.path.exists(os.path.join(venv, "pyvenv.cfg")):
        prefixes.insert(0, venv)
    sys.path.extend(p for p in site.getsitepackages(prefixes) if p not in sys.path)


def optional(name: str) -> ModuleType | None:
    """The module `name`, looked for in site-packages too; None if not installed."""
    try:
        return importlib.import_module(name)
    except ImportError:
        add_site_packages()
    try:
        return importlib.import_module(name)
    except ImportError:
        return None
