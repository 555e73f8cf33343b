"""Error categories shared by every knarr package.

Each error carries the context it was raised in (an id, a path, a digest) so
that the edge (CLI, API) can render it without guessing. Messages are
lower-case, say what was being done and to what, and end without a period.
"""

__all__ = [
    "KnarrError",
    "NotFound",
    "AlreadyExists",
    "Conflict",
    "InvalidArgument",
    "FailedPrecondition",
    "Unavailable",
    "Unauthorized",
]


class KnarrError(Exception):
    """Base of every knarr error; `context` holds what it is about."""

    def __init__(self, message: str, **context: object) -> None:
        super().__init__(message)
        self.message = message
        self.context = context

    def __str__(self) -> str:
        return self.message


class NotFound(KnarrError):
    """The named thing (container, image, blob, path) does not exist."""


class AlreadyExists(KnarrError):
    """A thing with that name or id exists already."""


class Conflict(KnarrError):
    """The request clashes with the current state of another thing."""


class InvalidArgument(KnarrError):
    """The input is malformed or out of range."""


class FailedPrecondition(KnarrError):
    """The thing exists but is not in a state that allows the operation."""


class Unavailable(KnarrError):
    """A facility this needs (kernel feature, library, service) is missing."""


class Unauthorized(KnarrError):
    """A service (a registry) refused the credentials given, or wanted some."""
