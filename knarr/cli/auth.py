"""Registry credentials: ~/.docker/config.json (or $DOCKER_CONFIG) and the X-Registry-Auth header."""

import os

__all__ = ["INDEX", "registry_of", "config_path", "load", "save", "header_for", "credentials",
           "store", "erase", "helper_of"]

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


def helper_of(config: dict, registry: str) -> str | None:
    """The credential helper for a registry: `credHelpers[registry]`, else `credsStore`."""
    return (config.get("credHelpers") or {}).get(registry) or config.get("credsStore") or None


def _helper(helper: str, action: str, data: str) -> str:
    """Run `docker-credential-<helper> <action>` with `data` on stdin; return its stdout."""
    import subprocess

    from knarr.errors import KnarrError

    try:
        done = subprocess.run([f"docker-credential-{helper}", action], input=data,
                              capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise KnarrError(f"error getting credentials - err: exec: \"docker-credential-"
                         f"{helper}\": executable file not found in $PATH") from None
    if done.returncode != 0:
        raise KnarrError((done.stdout or done.stderr).strip() or
                         f"docker-credential-{helper} {action} failed")
    return done.stdout


def credentials(registry: str) -> dict | None:
    """{"username", "password", "serveraddress"} (or "identitytoken") stored for `registry`,
    from its credential helper when the config names one, else from `auths`."""
    import base64

    config = load()
    helper = helper_of(config, registry)
    if helper:
        from knarr.client import jsonc

        try:
            doc = jsonc.loads(_helper(helper, "get", registry))
        except Exception:  # noqa: BLE001 - "credentials not found": pull anonymously
            return None
        if doc.get("Username") == "<token>":
            return {"identitytoken": doc.get("Secret", ""), "serveraddress": registry}
        return {"username": doc.get("Username", ""), "password": doc.get("Secret", ""),
                "serveraddress": registry}
    entry = (config.get("auths") or {}).get(registry)
    if not entry or not (entry.get("auth") or entry.get("identitytoken")):
        return None
    if entry.get("identitytoken"):
        return {"identitytoken": entry["identitytoken"], "serveraddress": registry}
    user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
    return {"username": user, "password": password, "serveraddress": registry}


def store(registry: str, username: str, password: str) -> str:
    """Keep credentials (in the helper, if configured; else base64 in `auths`); return
    where they went: "helper" or the config file's path."""
    import base64

    from knarr.client import jsonc

    config = load()
    helper = helper_of(config, registry)
    if helper:
        _helper(helper, "store", jsonc.dumps({"ServerURL": registry, "Username": username,
                                              "Secret": password}))
        config.setdefault("auths", {})[registry] = {}
        save(config)
        return "helper"
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    config.setdefault("auths", {})[registry] = {"auth": token}
    save(config)
    return config_path()


def erase(registry: str) -> bool:
    """Forget a registry's credentials; False if none were kept."""
    config = load()
    auths = config.get("auths") or {}
    helper = helper_of(config, registry)
    known = registry in auths
    if helper:
        try:
            _helper(helper, "erase", registry)
            known = True
        except Exception:  # noqa: BLE001 - nothing stored there
            pass
    if registry in auths:
        del auths[registry]
        save(config)
    return known


def encode(creds: dict) -> str:
    """The X-Registry-Auth value: URL-safe base64 of the JSON credentials."""
    import base64

    from knarr.client import jsonc

    return base64.urlsafe_b64encode(jsonc.dumps(creds).encode()).decode()


def header_for(ref: str) -> dict[str, str]:
    """Headers for a pull or push of `ref`: X-Registry-Auth when we hold credentials."""
    creds = credentials(registry_of(ref))
    return {"X-Registry-Auth": encode(creds)} if creds else {}
