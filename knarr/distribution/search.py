"""Search: the v1 search API, where a registry has one (Docker Hub does; distribution not)."""

import urllib.parse

from knarr.distribution.auth import Credentials
from knarr.distribution.hosts import DOCKER_HUB, Hosts
from knarr.distribution.session import Session
from knarr.errors import NotFound

__all__ = ["search", "split_term"]

_HUB_SEARCH = "index.docker.io"


def split_term(term: str) -> tuple[str, str]:
    """(registry domain, query) of a search term: `host:5000/name` or a Docker Hub query."""
    first, sep, rest = term.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return DOCKER_HUB, term


def search(hosts: Hosts, term: str, limit: int = 25,
           creds: Credentials | None = None) -> list[dict]:
    """Docker's search results: name, description, star_count, is_official, is_automated."""
    domain, query = split_term(term)
    session = Session(hosts, _HUB_SEARCH if domain == DOCKER_HUB else domain, "", creds)
    session.scopes = []
    path = "/v1/search?" + urllib.parse.urlencode({"q": query, "n": limit})
    try:
        endpoint = session.ping()
        resp = session.request("GET", path, ok=(200, 404, 405), what=f"search {domain}")
    finally:
        session.close()
    if resp.status != 200:
        raise NotFound(f"search {term}: registry {domain} has no search API (GET "
                       f"{endpoint.base}/v1/search answered {resp.status}); distribution "
                       "registries offer none", registry=domain)
    results = resp.json().get("results") or []
    out = []
    for item in results[:limit]:
        name = item.get("name", "")
        out.append({"name": f"{domain}/{name}" if domain != DOCKER_HUB else name,
                    "description": item.get("description", ""),
                    "star_count": item.get("star_count", 0),
                    "is_official": bool(item.get("is_official")),
                    "is_automated": bool(item.get("is_automated"))})
    return out
