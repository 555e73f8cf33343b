"""The registry client: OCI distribution-spec pull, push and login (tier 3).

Imports only oci, content, errors and fastjson below it; the engine connects
it to the image store (`extract`, `discard`, `chain_exists` callables).
"""

from knarr.distribution.auth import Credentials
from knarr.distribution.hosts import DEFAULT_CERTS_DIR, Endpoint, Hosts
from knarr.distribution.login import login, server_domain
from knarr.distribution.pull import Pulled, Puller
from knarr.distribution.push import Pusher
from knarr.distribution.registry import tags
from knarr.distribution.search import search
from knarr.distribution.session import Session

__all__ = ["Credentials", "DEFAULT_CERTS_DIR", "Endpoint", "Hosts", "login", "server_domain",
           "Pulled", "Puller", "Pusher", "Session", "list_tags", "search"]


def list_tags(hosts: Hosts, ref, creds: Credentials | None = None) -> list[str]:
    """Every tag of a reference's repository."""
    session = Session(hosts, ref.domain, ref.path, creds)
    try:
        return tags(session)
    finally:
        session.close()
