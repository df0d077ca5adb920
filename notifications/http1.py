"""A small HTTP/1.1 client for one job: many POSTs to push services over pooled connections.

Requests are built and responses parsed by h11 (a sans-I/O HTTP/1.1 implementation that
validates the request target and every header value: a CR/LF or a control character in a
stored endpoint raises before a byte is written); this module only moves h11's bytes over
asyncio streams, keeps connections alive per origin, and, above all, says for every failed
exchange whether the request **may have reached the service**:

- `NotSent`: certainly nothing of this request reached the service — the connection could not
  be opened (refused, DNS, TLS handshake, connect timeout). Safe to send again.
- `MaybeSent`: at least one byte of the request was handed to the socket and no complete
  answer came back (read timeout, connection dropped after the write, a malformed answer, a
  reused keep-alive connection that fails after the write). The service may have accepted it;
  the caller must never send it again.
- `InvalidRequest`: the request cannot be written at all (a target or header h11 refuses).

Why not aiohttp or httpx: push delivery is CPU-bound and what push services need is narrow (a
POST with a small body, keep-alive, TLS, a status and a few headers back); see
notifications/README.md for the measured cost of each option.

- at most `limit` connections in all, kept alive and reused per origin (scheme, host, port),
  but only while idle for less than `KEEPALIVE_IDLE` seconds and with nothing unread on them
  (a server closes idle connections; a write racing that close is an unknown outcome, so
  old connections are not risked);
- TLS with the system's trusted certificates (plus the CAs of `ca_file`, if given) and
  hostname checking for https;
- at most 64 KB of headers and 1 MB of body (push services answer with almost nothing);
- a total timeout per request (connecting included); any error closes that connection.
"""

import asyncio
import functools
import ssl
import time
from collections import defaultdict
from dataclasses import dataclass
from urllib.parse import urlsplit

import h11

MAX_HEAD = 64 * 1024
MAX_BODY = 1024 * 1024
# A pooled connection idle for longer is closed rather than reused: servers close idle
# keep-alive connections (Node's default is 5 s), and a request written as the server closes
# may or may not have been read, an outcome the caller would have to record as unknown.
KEEPALIVE_IDLE = 4.0
_READ_SIZE = 64 * 1024


@functools.cache
def _tls_context() -> ssl.SSLContext:
    # Loading the system's certificates takes tens of milliseconds: once per process.
    return ssl.create_default_context()


def tls_context_with(ca_file: str) -> ssl.SSLContext:
    """The system's trusted certificates plus those of `ca_file` (PEM); hostnames checked.

    Raises OSError (ssl.SSLError included) when the file cannot be read or holds no
    certificate.
    """
    context = ssl.create_default_context()
    context.load_verify_locations(cafile=ca_file)
    return context


class HttpError(Exception):
    """The exchange failed without a complete answer."""


class InvalidRequest(HttpError):
    """The request cannot be written (h11 refused its target or a header); nothing was sent."""


class NotSent(HttpError):
    """Nothing of the request reached the service (connecting failed); sending again is safe."""


class MaybeSent(HttpError):
    """The request may have reached the service but no complete answer came back."""


@dataclass(slots=True)
class Response:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


@dataclass(slots=True)
class Request:
    """A validated POST: where it goes and the h11 events that write it."""

    key: tuple  # the pool's origin key (scheme, host, port)
    head: h11.Request
    body: bytes


class _Connection:
    __slots__ = ("h11", "idle_since", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
        self.idle_since = time.monotonic()

    def reusable(self, now: float) -> bool:
        return (
            now - self.idle_since < KEEPALIVE_IDLE
            and not self.reader.at_eof()
            # Bytes the server sent while the connection was idle (an unsolicited answer,
            # a TLS alert): the connection is no longer in a known state.
            and not len(self.reader._buffer)
            and not self.writer.is_closing()
        )

    def close(self) -> None:
        self.writer.close()


class Http1Pool:
    def __init__(self, *, limit: int = 100, timeout: float = 10.0, ca_file: str = ""):
        self.limit = limit
        self.timeout = timeout
        # Read now, so a wrong file is an error here rather than a failure of every request.
        self._tls = tls_context_with(ca_file) if ca_file else None
        self._slots = asyncio.Semaphore(limit)
        self._idle: dict[tuple, list[_Connection]] = defaultdict(list)
        self._origins: dict[str, tuple[tuple, bytes]] = {}
        self.connections_opened = 0

    def _origin(self, url: str) -> tuple[tuple, bytes, str]:
        """(pool key, Host header, request target) of a URL; origins are parsed once."""
        start = url.find("://")
        end = url.find("/", start + 3) if start > 0 else -1
        origin, target = (url, "/") if end < 0 else (url[:end], url[end:])
        known = self._origins.get(origin)
        if known is None:
            try:
                parts = urlsplit(origin)
                default = 443 if parts.scheme == "https" else 80
                port = parts.port or default
            except ValueError as exc:
                raise InvalidRequest(f"Not a valid URL: {url[:100]!r}") from exc
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise InvalidRequest(f"Not an http(s) URL: {url[:100]!r}")
            host = parts.hostname
            if ":" in host:
                host = f"[{host}]"
            if port != default:
                host = f"{host}:{port}"
            try:
                # The Host value as bytes, once per origin (h11 still validates it).
                host_value = host.encode("ascii")
            except UnicodeEncodeError as exc:
                raise InvalidRequest(f"Refused to write this request: {exc}"[:300]) from exc
            known = ((parts.scheme, parts.hostname, port), host_value)
            if len(self._origins) < 10_000:
                self._origins[origin] = known
        return known[0], known[1], target

    def request(
        self, url: str, *, headers: dict[str, str] | dict[bytes, bytes], body: bytes
    ) -> Request:
        """Validate and build a POST; raises InvalidRequest for anything h11 would not write.

        Header names and values may be bytes (cheaper: h11 skips the encoding) or str; h11
        validates every one of them either way.
        """
        key, host, target = self._origin(url)
        fields = [(b"Host", host), (b"Content-Length", b"%d" % len(body))]
        fields += headers.items()
        try:
            head = h11.Request(method="POST", target=target, headers=fields)
        except (h11.LocalProtocolError, ValueError) as exc:
            raise InvalidRequest(f"Refused to write this request: {exc}"[:300]) from exc
        return Request(key, head, body)

    async def post(self, url: str, *, headers: dict[str, str], body: bytes) -> Response:
        """POST `body` to `url` (see `send`)."""
        return await self.send(self.request(url, headers=headers, body=body))

    async def send(self, request: Request) -> Response:
        """Send a built request; raises NotSent, MaybeSent (see the module's docstring)."""
        return await self.exchange(request, await self.connect(request))

    async def connect(self, request: Request) -> _Connection:
        """Take a slot of the pool and an open connection for `request`, without writing it.

        Raises NotSent when no connection could be had. The caller then either writes the
        request with `exchange` or hands the connection back with `abandon`; holding it in
        between lets a caller record that the request is about to be written only once
        nothing is left between that record and the write.
        """
        await self._slots.acquire()
        try:
            async with asyncio.timeout(self.timeout):
                return await self._connection(request.key)
        except BaseException as exc:
            self._slots.release()
            if isinstance(exc, Exception):
                raise NotSent(_describe(exc, written=False)) from exc
            raise

    async def take_idle(self, request: Request) -> _Connection | None:
        """`connect` for the common case of a warm pool, without a task and a timer per
        request: a reusable pooled connection when a slot is free, else None (nothing held,
        nothing awaited)."""
        idle = self._idle.get(request.key)
        if not idle or self._slots.locked():
            return None
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            if connection.reusable(now):
                # Not locked: acquiring returns at once, without suspending.
                await self._slots.acquire()
                return connection
            connection.close()
        return None

    def abandon(self, connection: _Connection) -> None:
        """Give back a connection from `connect` whose request will not be written."""
        connection.close()
        self._slots.release()

    def write(self, request: Request, connection: _Connection) -> bool:
        """Hand `request` to the socket of a connection from `connect`, now, without waiting.

        Returns False, having written nothing, when the connection is no longer usable (the
        server closed it, or it idled too long, since `connect`): `exchange` then takes
        another. After True, read the answer with `exchange(..., written=True)`.
        """
        if not connection.reusable(time.monotonic()):
            return False
        try:
            data = connection.h11.send(request.head)
            data += connection.h11.send(h11.Data(data=request.body))
            data += connection.h11.send(h11.EndOfMessage())
        except h11.LocalProtocolError:
            connection.close()  # nothing was handed over; exchange opens another
            return False
        connection.writer.write(data)
        return True

    async def exchange(
        self, request: Request, connection: _Connection, *, written: bool = False
    ) -> Response:
        """Write `request` on a connection from `connect` (unless `write` already did) and
        read the answer. Raises NotSent, MaybeSent."""
        try:
            if not written:
                if not connection.reusable(time.monotonic()):
                    # The server closed it (or it idled too long) since `connect`; nothing
                    # was written on it yet: another one.
                    connection.close()
                    async with asyncio.timeout(self.timeout):
                        connection = await self._connection(request.key)
                data = connection.h11.send(request.head)
                data += connection.h11.send(h11.Data(data=request.body))
                data += connection.h11.send(h11.EndOfMessage())
                written = True
                connection.writer.write(data)
            async with asyncio.timeout(self.timeout):
                response = await self._read_response(connection)
        except BaseException as exc:
            connection.close()
            self._slots.release()
            if isinstance(exc, Exception):
                # Whatever went wrong, what matters is whether a byte was handed over.
                error = MaybeSent if written else NotSent
                raise error(_describe(exc, written=written)) from exc
            raise
        self._slots.release()
        h = connection.h11
        if h.our_state is h11.DONE and h.their_state is h11.DONE:
            h.start_next_cycle()
            connection.idle_since = time.monotonic()
            self._idle[request.key].append(connection)
        else:
            connection.close()
        return response

    async def _connection(self, key: tuple) -> _Connection:
        idle = self._idle[key]
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            if connection.reusable(now):
                return connection
            connection.close()
        scheme, host, port = key
        tls = None
        if scheme == "https":
            tls = self._tls if self._tls is not None else _tls_context()
        reader, writer = await asyncio.open_connection(
            host, port, ssl=tls, server_hostname=host if tls else None, limit=MAX_HEAD
        )
        self.connections_opened += 1
        return _Connection(reader, writer)

    async def _read_response(self, connection: _Connection) -> Response:
        conn = connection.h11
        reader = connection.reader
        status = None
        headers: dict[str, str] = {}
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                # b"" at EOF: h11 ends a read-to-close body there, anything else is an error.
                conn.receive_data(await reader.read(_READ_SIZE))
                continue
            if isinstance(event, h11.InformationalResponse):
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
                headers = {
                    name.decode("latin-1"): value.decode("latin-1") for name, value in event.headers
                }
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_BODY:
                    raise HttpError("Response body too large")
            elif isinstance(event, h11.EndOfMessage):
                return Response(status, headers, bytes(body))
            elif isinstance(event, h11.ConnectionClosed):
                raise HttpError("The connection was closed before a complete answer")
            else:
                raise HttpError(f"Unexpected HTTP event {type(event).__name__}")

    async def close(self) -> None:
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()


def _describe(exc: BaseException, *, written: bool) -> str:
    if isinstance(exc, TimeoutError):
        what = "no complete answer" if written else "could not connect"
        return f"Timed out ({what})"
    if isinstance(exc, h11.RemoteProtocolError):
        return f"Malformed answer: {exc}"
    if isinstance(exc, HttpError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}".strip()
