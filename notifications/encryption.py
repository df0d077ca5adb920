"""Payload encryption for Web Push (RFC 8291, aes128gcm), in this process or in a child one.

`encrypt` is the computation itself. Every message needs a fresh P-256 key pair and an ECDH
with the browser's key (RFC 8291 §3.4): about a third of a sending worker's CPU, most of it
holding the GIL. `EncryptionProcess` moves it out of the worker's process: a child process
(`python -m notifications.encryption`) reads waves of (plaintext, p256dh, auth) from its
stdin and writes back, for each, the encrypted body or the reason it cannot be encrypted. It
runs on the other core, outside the worker's GIL, while the worker writes and records the
waves around it.

The child only computes: it holds no connection, no database, no key of the shop (only the
browsers' public keys and auth secrets it is given), and it never sends anything; it exits
at the end of its stdin, so it goes when the worker goes (kill -9 included). Whenever it is
unavailable (it could not start, died, hung, or answered something malformed) the worker
encrypts the wave itself and starts a new child a little later: the rows are prepared as
before, and none of them is ever marked sending before its body exists.

Kept free of Django and of the rest of the app, so the child starts in a fraction of a
second.
"""

import asyncio
import base64
import hashlib
import hmac
import marshal
import os
import re
import signal
import struct
import sys
import time
from collections import deque
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# A push service accepts at most 4096 bytes of encrypted payload (RFC 8030 §7.2). The
# aes128gcm body is: salt (16) + record size (4) + key id length (1) + sender's public key
# (65) = 86 bytes of header, then the plaintext, one padding delimiter byte (0x02) and the
# 16-byte AES-GCM tag. So the plaintext may be at most 4096 - 86 - 1 - 16 = 3993 bytes.
MAX_ENCRYPTED_SIZE = 4096
AES128GCM_HEADER_SIZE = 16 + 4 + 1 + 65
MAX_PLAINTEXT_SIZE = MAX_ENCRYPTED_SIZE - AES128GCM_HEADER_SIZE - 1 - 16
_RECORD_SIZE = 4096


_P256 = ec.SECP256R1()


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_B64URL = re.compile(r"[A-Za-z0-9_-]*={0,2}")


def b64url_decode(text: str) -> bytes:
    """Decode base64url with or without padding; raises ValueError on anything else."""
    if not isinstance(text, str) or not _B64URL.fullmatch(text):
        raise ValueError("not base64url")
    text = text.rstrip("=")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise ValueError("not base64url") from exc


def _receiver_key(p256dh: str) -> tuple[ec.EllipticCurvePublicKey, bytes]:
    raw = b64url_decode(p256dh)
    if len(raw) != 65 or raw[0] != 4:
        raise ValueError("p256dh must be an uncompressed P-256 point (65 bytes).")
    return ec.EllipticCurvePublicKey.from_encoded_point(_P256, raw), raw


def receiver_key_parse(p256dh: str) -> ec.EllipticCurvePublicKey:
    """The browser's public key; raises ValueError unless it is a point on P-256."""
    return _receiver_key(p256dh)[0]


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.digest(key, data, hashlib.sha256)


def encrypt(plaintext: bytes, *, p256dh: str, auth: str) -> bytes:
    """Encrypt a push message for one subscription (RFC 8291, aes128gcm, one record)."""
    if len(plaintext) > MAX_PLAINTEXT_SIZE:
        raise ValueError(f"Payload is {len(plaintext)} bytes; at most {MAX_PLAINTEXT_SIZE}.")
    receiver, ua_public = _receiver_key(p256dh)
    auth_secret = b64url_decode(auth)
    # A fresh sender key pair and salt per message, as RFC 8291 §3.4 requires.
    sender = ec.generate_private_key(_P256)
    as_public = sender.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    ecdh_secret = sender.exchange(ec.ECDH(), receiver)
    prk_key = _hmac(auth_secret, ecdh_secret)
    ikm = _hmac(prk_key, b"WebPush: info\x00" + ua_public + as_public + b"\x01")
    salt = os.urandom(16)
    prk = _hmac(salt, ikm)
    cek = _hmac(prk, b"Content-Encoding: aes128gcm\x00\x01")[:16]
    nonce = _hmac(prk, b"Content-Encoding: nonce\x00\x01")[:12]
    header = salt + struct.pack("!IB", _RECORD_SIZE, len(as_public)) + as_public
    return header + AESGCM(cek).encrypt(nonce, plaintext + b"\x02", None)


# --- The child process ---------------------------------------------------------------------

_FRAME = struct.Struct("!I")
# A frame larger than this is not from the other side of this module: stop.
_MAX_FRAME = 64 * 1024 * 1024


def encrypt_wave(items: list) -> list:
    """Encrypt each (plaintext, p256dh, auth): its body, or why it cannot be encrypted."""
    bodies = []
    for plaintext, p256dh, auth in items:
        try:
            bodies.append(encrypt(plaintext, p256dh=p256dh, auth=auth))
        except Exception as exc:
            bodies.append(f"{type(exc).__name__}: {exc}")
    return bodies


def child_main() -> None:
    """The child's loop: a frame of items in, a frame of bodies out, until stdin ends."""
    # Ctrl-C in a terminal reaches the whole process group: the worker decides when this ends
    # (by closing the pipe), not the terminal.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        head = stdin.read(_FRAME.size)
        if len(head) < _FRAME.size:
            return  # the worker closed the pipe, or died
        (size,) = _FRAME.unpack(head)
        data = stdin.read(size) if size <= _MAX_FRAME else b""
        if len(data) < size:
            return
        reply = marshal.dumps(encrypt_wave(marshal.loads(data)))
        stdout.write(_FRAME.pack(len(reply)) + reply)
        stdout.flush()


# --- The worker's side ---------------------------------------------------------------------

# Longest wait for a wave's bodies (100 messages take about 10 ms): beyond it the child is
# taken for hung, killed, and the wave encrypted here.
CHILD_TIMEOUT = 10.0
# After the child failed (or could not start), waves are encrypted here for this long before
# a new child is tried.
RESPAWN_PAUSE = 5.0
_PROJECT_DIR = Path(__file__).resolve().parent.parent


class ChildGone(Exception):
    """The child exited, or closed its side of the pipes."""


class _ChildProtocol(asyncio.SubprocessProtocol):
    """Splits the child's stdout into frames; each resolves the oldest wave waiting."""

    def __init__(self):
        self.buffer = bytearray()
        self.waiting: deque[asyncio.Future] = deque()
        self.gone = False

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= _FRAME.size:
            (size,) = _FRAME.unpack_from(self.buffer)
            if len(self.buffer) < _FRAME.size + size:
                return
            frame = bytes(self.buffer[_FRAME.size : _FRAME.size + size])
            del self.buffer[: _FRAME.size + size]
            if not self.waiting:
                self._fail()  # an answer nobody asked for: not a child to trust
                return
            future = self.waiting.popleft()
            if not future.done():
                future.set_result(frame)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        self._fail()

    def process_exited(self) -> None:
        self._fail()

    def _fail(self) -> None:
        self.gone = True
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(ChildGone())


class EncryptionProcess:
    """The worker's handle on its encryption child; use on one event loop."""

    def __init__(self, command: tuple[str, ...] | None = None):
        self.command = command or (sys.executable, "-m", "notifications.encryption")
        self._transport: asyncio.SubprocessTransport | None = None
        self._protocol: _ChildProtocol | None = None
        self._paused_until = 0.0
        self.started = 0  # children started (the tests count them)
        self.fallbacks = 0  # waves encrypted in this process because the child was unavailable

    @property
    def pid(self) -> int | None:
        return self._transport.get_pid() if self._transport is not None else None

    def cpu_seconds(self) -> float | None:
        """CPU time the running child has used (Linux's /proc), None without one."""
        pid = self.pid
        if pid is None:
            return None
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    async def encrypt_many(self, items: list[tuple[bytes, str, str]]) -> list[bytes | str]:
        """Each item's body, or why it cannot be encrypted ("ValueError: ..."), in order.

        Encrypted by the child when it is available, here otherwise: the answer is the same.
        """
        if not items:
            return []
        bodies = await self._from_child(items)
        if bodies is None:
            self.fallbacks += 1
            bodies = encrypt_wave(items)
        return bodies

    async def _from_child(self, items: list) -> list | None:
        protocol = await self._running()
        if protocol is None:
            return None
        data = marshal.dumps(items)
        future = asyncio.get_running_loop().create_future()
        stdin = self._transport.get_pipe_transport(0)
        if stdin is None or stdin.is_closing():
            self._stop(pause=True)
            return None
        protocol.waiting.append(future)
        stdin.write(_FRAME.pack(len(data)) + data)
        try:
            async with asyncio.timeout(CHILD_TIMEOUT):
                frame = await future
            bodies = marshal.loads(frame)
            if (
                isinstance(bodies, list)
                and len(bodies) == len(items)
                and all(isinstance(body, bytes | str) for body in bodies)
            ):
                return bodies
        except (ChildGone, TimeoutError, ValueError, EOFError, TypeError):
            pass
        self._stop(pause=True)
        return None

    async def _running(self) -> _ChildProtocol | None:
        if self._protocol is not None and not self._protocol.gone:
            return self._protocol
        self._stop(pause=self._protocol is not None)
        if time.monotonic() < self._paused_until:
            return None
        try:
            self._transport, self._protocol = await asyncio.get_running_loop().subprocess_exec(
                _ChildProtocol,
                *self.command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=None,
                cwd=_PROJECT_DIR,
            )
        except (OSError, RuntimeError):
            self._paused_until = time.monotonic() + RESPAWN_PAUSE
            return None
        self.started += 1
        return self._protocol

    def _stop(self, *, pause: bool) -> None:
        if self._transport is not None:
            # Closing the transport kills the child if it has not exited: it holds nothing
            # that could be lost.
            self._transport.close()
        self._transport = self._protocol = None
        if pause:
            self._paused_until = time.monotonic() + RESPAWN_PAUSE

    def close(self) -> None:
        """Stop the child; the next wave starts a new one."""
        self._stop(pause=False)
        self._paused_until = 0.0


if __name__ == "__main__":
    child_main()
