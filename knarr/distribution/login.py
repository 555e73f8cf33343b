"""Login: check credentials against a registry, as `POST /auth` does."""

from knarr.distribution import auth
from knarr.distribution.hosts import DOCKER_HUB, Hosts
from knarr.distribution.session import Session, registry_error
from knarr.errors import Unauthorized

__all__ = ["login", "server_domain"]

_HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io",
             "registry-1.docker.io")


def server_domain(server: str) -> str:
    """The registry domain of a login server address (`https://host:port/v1/` → `host:port`)."""
    if server.rstrip("/") in (k.rstrip("/") for k in _HUB_KEYS):
        return DOCKER_HUB
    return server.split("://", 1)[-1].split("/", 1)[0]


def login(hosts: Hosts, server: str, creds: auth.Credentials) -> dict:
    """Check `creds` with the registry; return /auth's answer. Unauthorized if refused."""
    domain = server_domain(server)
    session = Session(hosts, domain, "", creds)
    session.scopes = []
    try:
        endpoint = session.ping()
        challenge = session.challenge
        if challenge is None:
            return {"Status": "Login Succeeded", "IdentityToken": ""}
        if challenge.scheme == "bearer":
            token, _ = session._fetch_token(challenge)  # noqa: SLF001 - the login check itself
            headers = {"Authorization": f"Bearer {token}"}
        else:
            headers = {"Authorization": auth.basic_header(creds)}
        resp = session._send(endpoint, "GET", f"{endpoint.base}/v2/", headers,  # noqa: SLF001
                             None, False)
        if resp.status == 401 and challenge.scheme == "basic":
            raise Unauthorized(f"login attempt to {endpoint.base}/v2/ failed with status: "
                               f"401 {resp.reason}", registry=domain)
        if resp.status >= 400 and resp.status != 401:
            raise registry_error(resp, f"login to {domain}")
    except Unauthorized as exc:
        raise Unauthorized(f"Get \"{session.endpoint.base if session.endpoint else domain}"
                           f"/v2/\": {_strip(exc.message)}", registry=domain) from None
    finally:
        session.close()
    return {"Status": "Login Succeeded", "IdentityToken": ""}


def _strip(message: str) -> str:
    return message.split(": ", 1)[1] if message.startswith("get a token from") else message
