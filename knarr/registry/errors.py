"""The distribution spec's error codes, each with its HTTP status.

A handler raises `RegistryError(code, message, detail)`; the server turns it
into the spec's JSON body `{"errors": [{"code", "message", "detail"}]}`.
"""

__all__ = ["RegistryError", "STATUS"]

STATUS = {
    "BLOB_UNKNOWN": 404,
    "BLOB_UPLOAD_INVALID": 400,
    "BLOB_UPLOAD_UNKNOWN": 404,
    "DIGEST_INVALID": 400,
    "MANIFEST_BLOB_UNKNOWN": 400,
    "MANIFEST_INVALID": 400,
    "MANIFEST_UNKNOWN": 404,
    "NAME_INVALID": 400,
    "NAME_UNKNOWN": 404,
    "SIZE_INVALID": 400,
    "UNAUTHORIZED": 401,
    "DENIED": 403,
    "UNSUPPORTED": 405,
    "TOOMANYREQUESTS": 429,
}


class RegistryError(Exception):
    """A refusal the client is told about: a spec error code, a message, a detail."""

    def __init__(self, code: str, message: str, detail: object = None,
                 status: int | None = None, headers: dict | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.detail = detail
        self.status = status or STATUS[code]
        self.headers = headers or {}

    def body(self) -> dict:
        """The JSON error document of the spec."""
        entry = {"code": self.code, "message": self.message}
        if self.detail is not None:
            entry["detail"] = self.detail
        return {"errors": [entry]}
