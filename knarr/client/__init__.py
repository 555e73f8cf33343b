"""The Docker Engine API client: knarr's own, usable against any Engine API.

Modules are imported one by one by the CLI, which pays only for what a command
uses: `transport` (HTTP/1.1 over a unix socket or TCP), `api` (versioned
requests, JSON, streams, hijacked connections, errors), `frames` (the 8-byte
multiplexed stream framing), `jsonc` (JSON without the json package).
This module itself imports nothing.
"""

__all__: list[str] = []
