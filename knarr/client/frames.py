"""The Engine API's multiplexed stream framing (attach, exec, logs without a TTY).

Each frame is an 8-byte header, `[stream, 0, 0, 0, size (big-endian uint32)]`,
followed by `size` bytes of payload; stream 0 is stdin, 1 stdout, 2 stderr.
With a TTY the stream is raw bytes and carries no frames.
"""

__all__ = ["STDIN", "STDOUT", "STDERR", "Demuxer", "encode"]

STDIN, STDOUT, STDERR = 0, 1, 2
HEADER = 8


def encode(stream: int, payload: bytes) -> bytes:
    """One frame carrying `payload` on `stream` (tests and servers use it)."""
    return bytes((stream, 0, 0, 0)) + len(payload).to_bytes(4, "big") + payload


class Demuxer:
    """Splits a byte stream fed in arbitrary pieces into (stream, payload) frames."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Add `data`; return every frame now complete, in order."""
        buf = self._buf
        buf += data
        frames = []
        while len(buf) >= HEADER:
            size = int.from_bytes(buf[4:8], "big")
            if len(buf) < HEADER + size:
                break
            frames.append((buf[0], bytes(buf[HEADER:HEADER + size])))
            del buf[:HEADER + size]
        return frames

    def pending(self) -> int:
        """Bytes held back waiting for the rest of a frame."""
        return len(self._buf)
