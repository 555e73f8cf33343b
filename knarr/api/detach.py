"""Detach keys: the byte sequence (ctrl-p ctrl-q unless told otherwise) that ends an
attached session's input without passing it on, as Docker's daemon does."""

from knarr.errors import InvalidArgument

__all__ = ["parse_keys", "Detector", "DEFAULT"]

DEFAULT = "ctrl-p,ctrl-q"


def parse_keys(spec: str | None) -> bytes:
    """'ctrl-p,ctrl-q' -> b'\\x10\\x11'; a plain character stands for itself."""
    out = bytearray()
    for key in (spec or DEFAULT).split(","):
        key = key.strip()
        if len(key) == 1:
            out.append(ord(key))
        elif key.lower().startswith("ctrl-") and len(key) == 6:
            char = key[5].lower()
            if char.isalpha():
                out.append(ord(char) - ord("a") + 1)
            elif char in "@[\\]^_":
                out.append(ord(char) - ord("@"))
            else:
                raise InvalidArgument(f"Invalid detach keys ({spec}) provided")
        else:
            raise InvalidArgument(f"Invalid detach keys ({spec}) provided")
    return bytes(out)


class Detector:
    """Pass input through, holding back a possible start of the sequence."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.held = b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """(bytes to pass on, whether the sequence was seen)."""
        out = bytearray()
        for byte in data:
            self.held += bytes((byte,))
            while self.held and not self.keys.startswith(self.held):
                out.append(self.held[0])
                self.held = self.held[1:]
            if self.held == self.keys:
                return bytes(out), True
        return bytes(out), False
