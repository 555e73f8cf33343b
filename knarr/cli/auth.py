"""Registry credentials: ~/.docker/config.json (or $DOCKER_CONFIG) and the X-Registry-Auth header."""

import os

__all__ = ["INDEX", "registry_of", "config_path", "load", "save", "header_for"]

INDEX = "https://index.docker.io/v1/"  # Docker Hub's key in config.json


def registry_of(ref: str) -> str:
    """The registry an image reference lives in (Docker Hub's key when none is named)."""
    first, sep, _ = ref.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return INDEX


def config_path() -> str:
    """Where credentials are kept."""
    base = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    return os.path.join(base, "config.json")


def load() -> dict:
    """The config file's contents ({} when there is none)."""
    from knarr.client import jsonc

    try:
        with open(config_path(), "rb") as f:
            data = jsonc.loads(f.read())
    except FileNotFoundError:
        return {}
    return data if isinstance(data, dict) else {}


def save(config: dict) -> None:
    """Write the config file (temp file, then rename; mode 0600: it holds secrets)."""
    from knarr.client import jsonc

    path = config_path()
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(jsonc.dumps_indent(config, "\t") + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)


def credentials(registry: str) -> dict | None:
    """{"username", "password", "serveraddress"} stored for `registry`, if any."""
    import base64

    entry = (load().get("auths") or {}).get(registry)
    if not entry or not entry.get("auth"):
        return None
    user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
    return {"username": user, "password": password, "serveraddress": registry}


def encode(creds: dict) -> str:
    """The X-Registry-Auth value: URL-safe base64 of the JSON credentials."""
    import base64

    from knarr.client import jsonc

    return base64.urlsafe_b64encode(jsonc.dumps(creds).encode()).decode()


def header_for(ref: str) -> dict[str, str]:
    """Headers for a pull or push of `ref`: X-Registry-Auth when we hold credentials."""
    creds = credentials(registry_of(ref))
    return {"X-Registry-Auth": encode(creds)} if creds else {}
