"""TLS for the API over TCP, with half-close kept.

The docker CLI half-closes a hijacked connection when it has no input to send
(on TLS: a close_notify alert) and goes on reading the output. asyncio's TLS
transport closes the whole connection on close_notify, so TLS runs here in two
threads per connection, relaying plaintext through a socketpair whose other
end the server handles like any other connection.
"""

import asyncio
import socket
import ssl
import threading

__all__ = ["serve_tls"]


def _inbound(tls: ssl.SSLSocket, plain: socket.socket) -> None:
    try:
        while data := tls.recv(65536):
            plain.sendall(data)
    except (OSError, ssl.SSLError):
        pass
    try:
        plain.shutdown(socket.SHUT_WR)  # the client's half-close, passed on
    except OSError:
        pass


def _outbound(tls: ssl.SSLSocket, plain: socket.socket) -> None:
    try:
        while data := plain.recv(65536):
            tls.sendall(data)
    except (OSError, ssl.SSLError):
        pass
    for close in (tls.close, plain.close):
        try:
            close()
        except OSError:
            pass


def _bridge(raw: socket.socket, context: ssl.SSLContext, plain: socket.socket) -> None:
    raw.setblocking(True)
    raw.settimeout(30)
    try:
        tls = context.wrap_socket(raw, server_side=True)
    except (OSError, ssl.SSLError):
        raw.close()
        plain.close()
        return
    tls.settimeout(None)
    threading.Thread(target=_inbound, args=(tls, plain), daemon=True).start()
    _outbound(tls, plain)


async def serve_tls(handle, host: str, port: int, context: ssl.SSLContext):
    """Accept TCP connections, terminate TLS in threads, hand plaintext to `handle`."""
    async def accepted(reader, writer) -> None:
        raw = writer.get_extra_info("socket").dup()
        writer.transport.abort()
        ours, theirs = socket.socketpair()
        threading.Thread(target=_bridge, args=(socket.socket(fileno=raw.detach()), context,
                                               theirs), daemon=True).start()
        ours.setblocking(False)
        plain_reader, plain_writer = await asyncio.open_connection(sock=ours, limit=1 << 20)
        await handle(plain_reader, plain_writer)

    return await asyncio.start_server(accepted, host or None, port, limit=1 << 20)
