"""The Engine API server: Docker's HTTP API over a unix socket, in front of the engine.

One routes module per resource; `errors.status_of` is the only place that picks
HTTP statuses.
"""

from knarr.api.server import Server

__all__ = ["Server"]
