"""What every command gets: the API client (started lazily), output, Docker's error texts."""

import os
import sys

from knarr.errors import KnarrError

__all__ = ["Cli", "StatusError"]


class StatusError(Exception):
    """End the command with `code`, printing `message` (if any) on stderr."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.message, self.code = message, code


class Cli:
    """One invocation's shared state: which daemon, its client, the command name."""

    StatusError = StatusError

    def __init__(self, hosts: list[str], command: str, options=None) -> None:
        self.command, self.options = command, options
        env = os.environ.get("DOCKER_HOST", "")
        self.explicit_host = bool(hosts or env)
        self.host = hosts[-1] if hosts else env or None
        self._client = None
        self._early = None  # a client whose ping is under way (ping_early)

    def ping_early(self) -> None:
        """Open the connection and send the version ping now, to be answered while the
        command parses its flags; `client` reads the answer (or, if nothing answered,
        does what it always does)."""
        if self._client is not None or os.environ.get("DOCKER_API_VERSION") or self._tls():
            return
        from knarr.client import api

        client = api.Client(self.host or os.environ.get("KNARR_DEFAULT_HOST") or
                            api.DEFAULT_HOST)
        if client.ping_early():
            self._early = client

    @property
    def client(self):
        """The API client, its version negotiated; starts knarrd when none listens.

        Only the default address gets a daemon started: the built-in
        unix:///run/knarr/knarr.sock, or KNARR_DEFAULT_HOST where an install (or
        a test) keeps its daemon elsewhere. -H and DOCKER_HOST never start one.
        """
        if self._client is None:
            from knarr.client import api

            default = os.environ.get("KNARR_DEFAULT_HOST") or api.DEFAULT_HOST
            client = self._early or api.Client(
                self.host or default, version=os.environ.get("DOCKER_API_VERSION") or None,
                tls=self._tls())
            self._early = None
            try:
                client.api_version()
            except api.DaemonUnreachable as exc:
                # only when nothing is there (ENOENT) or nothing listens (ECONNREFUSED)
                if self.explicit_host or exc.context.get("errno") not in (2, 111):
                    raise
                from knarr.cli import autostart

                autostart.start_daemon(client)
            self._client = client
        return self._client

    def _tls(self):
        """TLS settings from --tls/--tlsverify/--tls* and DOCKER_TLS_VERIFY/DOCKER_CERT_PATH."""
        g = self.options
        verify = bool(g and g.tlsverify) or bool(os.environ.get("DOCKER_TLS_VERIFY"))
        if not (verify or (g and g.tls)):
            return None
        from knarr.client.transport import TLSConfig

        certs = os.environ.get("DOCKER_CERT_PATH") or os.path.expanduser("~/.docker")

        def pick(given, default):
            path = given or os.path.join(certs, default)
            return path if given or os.path.exists(path) else None

        return TLSConfig(ca=pick(g and g.tlscacert, "ca.pem"),
                         cert=pick(g and g.tlscert, "cert.pem"),
                         key=pick(g and g.tlskey, "key.pem"), verify=verify)

    def close(self) -> None:
        """Drop the idle connection."""
        if self._client is not None:
            self._client.close()

    def describe(self, exc: KnarrError) -> str:
        """Docker's wording for an error: `Error response from daemon: ...` and kin."""
        from knarr.client.api import DaemonUnreachable

        if isinstance(exc, DaemonUnreachable) or exc.message.startswith("error during connect"):
            return exc.message
        if "object" in exc.context:
            return f"Error: {exc.message}"
        if "status" in exc.context:
            return f"Error response from daemon: {exc.message}"
        return f"Error: {exc.message}"

    def fail(self, message: str, code: int = 1) -> StatusError:
        """A StatusError to raise."""
        return StatusError(message, code)

    @staticmethod
    def out(text: str) -> None:
        """Write text to stdout."""
        sys.stdout.write(text)

    @staticmethod
    def err(text: str) -> None:
        """Write text to stderr."""
        sys.stderr.write(text)
