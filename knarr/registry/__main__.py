"""`python -m knarr.registry`: the same as `knarr-registry`."""

from knarr.registry.main import entry

entry()
