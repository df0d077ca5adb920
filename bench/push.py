"""Pieces of `manage.py bench_push`: a fast local push sink and generated subscriptions.

The sink is a minimal HTTP/1.1 server on 127.0.0.1 that answers every POST with 201, with
keep-alive, in its own process so it does not compete for the sender's interpreter. It does
not decrypt anything: the tests' push service checks correctness, the sink measures speed.
"""

import asyncio
import multiprocessing
import os
import socket

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from notifications.webpush import b64url_encode

_RESPONSE = b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\nLocation: /m\r\n\r\n"


class _SinkProtocol(asyncio.Protocol):
    def __init__(self, counter):
        self.counter = counter
        self.buffer = bytearray()
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.buffer += data
        answered = 0
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head = bytes(self.buffer[:end]).lower()
            length = 0
            start = head.find(b"content-length:")
            if start >= 0:
                stop = head.find(b"\r\n", start)
                length = int(head[start + 15 : stop if stop >= 0 else None])
            if len(self.buffer) < end + 4 + length:
                break
            del self.buffer[: end + 4 + length]
            answered += 1
        if answered:
            self.transport.write(_RESPONSE * answered)
            self.counter[0] += answered


def _serve(sock: socket.socket, ready) -> None:
    async def main():
        counter = [0]
        server = await asyncio.get_running_loop().create_server(
            lambda: _SinkProtocol(counter), sock=sock, backlog=1024
        )
        ready.set()
        async with server:
            await server.serve_forever()

    asyncio.run(main())


class Sink:
    """A push sink in a child process: `with Sink() as sink: sink.origin`."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1024)
        self.origin = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        # Spawned, not forked: the parent may already run threads (the sender's event loop).
        ctx = multiprocessing.get_context("spawn")
        self._ready = ctx.Event()
        self.process = ctx.Process(target=_serve, args=(self.sock, self._ready), daemon=True)

    def __enter__(self) -> "Sink":
        self.process.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.join(5)
        self.sock.close()


def key_pool(size: int) -> list[tuple[str, str]]:
    """`size` real browser-like key pairs as (p256dh, auth), base64url, to reuse across subs."""
    pool = []
    for _ in range(size):
        key = ec.generate_private_key(ec.SECP256R1())
        p256dh = key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        pool.append((b64url_encode(p256dh), b64url_encode(os.urandom(16))))
    return pool
