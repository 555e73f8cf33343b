"""Relaying a hijacked stream: framing to stdout/stderr, raw TTY bytes, stdin EOF, detach."""

import os
import socket
import threading

from knarr.cli import streams
from knarr.client import frames


def _pipes():
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    in_r, in_w = os.pipe()
    return (out_r, out_w), (err_r, err_w), (in_r, in_w)


def _drain(fd: int) -> bytes:
    os.set_blocking(fd, False)
    try:
        return os.read(fd, 1 << 20)
    except BlockingIOError:
        return b""


def test_bytes_read_with_the_headers_start_a_frame_the_socket_completes():
    ours, daemon = socket.socketpair()
    (out_r, out_w), (err_r, err_w), _ = _pipes()
    frame = frames.encode(1, b"first\n")
    daemon.sendall(frame[5:] + frames.encode(2, b"warn\n"))
    daemon.close()
    assert streams.relay(ours, frame[:5], tty=False, stdin=False, out_fd=out_w,
                         err_fd=err_w) == streams.ENDED
    assert (_drain(out_r), _drain(err_r)) == (b"first\n", b"warn\n")


def test_stdin_is_copied_and_its_eof_half_closes_the_connection():
    ours, daemon = socket.socketpair()
    (out_r, out_w), (err_r, err_w), (in_r, in_w) = _pipes()
    received = []

    def fake_daemon():
        data = b""
        while chunk := daemon.recv(100):
            data += chunk  # until our half-close
        received.append(data)
        daemon.sendall(frames.encode(1, b"echo:" + data))
        daemon.close()

    thread = threading.Thread(target=fake_daemon)
    thread.start()
    os.write(in_w, b"typed input")
    os.close(in_w)
    result = streams.relay(ours, b"", tty=False, stdin=True, out_fd=out_w, err_fd=err_w,
                           in_fd=in_r)
    thread.join()
    assert result == streams.ENDED and received == [b"typed input"]
    assert _drain(out_r) == b"echo:typed input"


def test_tty_stream_is_raw_and_detach_keys_end_the_relay():
    ours, daemon = socket.socketpair()
    (out_r, out_w), (err_r, err_w), (in_r, in_w) = _pipes()
    daemon.sendall(b"\x01\x00\x00\x00raw bytes, no frames")
    os.write(in_w, b"ls\r\x10\x11never sent")
    result = streams.relay(ours, b"", tty=True, stdin=True, detach_keys=b"\x10\x11",
                           out_fd=out_w, err_fd=err_w, in_fd=in_r)
    assert result == streams.DETACHED
    daemon.settimeout(2)
    assert daemon.recv(100) == b"ls\r"
    assert _drain(out_r) == b"\x01\x00\x00\x00raw bytes, no frames"
    assert _drain(err_r) == b""
