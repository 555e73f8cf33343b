"""knarr: a Docker-compatible command line speaking only the Docker Engine API.

`main.entry` is the console script. Each command lives in its own module
(`cmd_run`, `cmd_ps`, ...) and only the one being run is imported.
"""

__all__: list[str] = []
