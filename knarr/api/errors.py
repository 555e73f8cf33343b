"""The one place that turns knarr errors into HTTP statuses."""

from knarr.engine import NotModified
from knarr.errors import (
    AlreadyExists,
    Conflict,
    FailedPrecondition,
    InvalidArgument,
    KnarrError,
    NotFound,
    Unauthorized,
    Unavailable,
)

__all__ = ["status_of"]

_STATUS = ((NotModified, 304), (NotFound, 404), (AlreadyExists, 409), (Conflict, 409),
           (InvalidArgument, 400), (FailedPrecondition, 409), (Unavailable, 500),
           (Unauthorized, 401))


def status_of(exc: BaseException) -> int:
    """The HTTP status Docker gives for this kind of failure."""
    if isinstance(exc, KnarrError):
        for kind, status in _STATUS:
            if isinstance(exc, kind):
                return status
    return 500
