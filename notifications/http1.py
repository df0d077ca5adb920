"""A small HTTP/1.1 client for one job: many POSTs to push services over pooled connections.

Requests are built and responses parsed by h11 (a sans-I/O HTTP/1.1 implementation that
validates the request target and every header value: a CR/LF or a control character in a
stored endpoint raises before a byte is written); this module only moves h11's bytes over
asyncio transports (each connection is a protocol that feeds h11 where the answer's bytes
land: no task, stream buffer or wake-up per request), keeps connections alive per origin,
and, above all, says for every failed exchange whether the request **may have reached the
service**:

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
  but only while idle for less than `KEEPALIVE_IDLE` seconds and with nothing received since
  their last answer (a server closes idle connections; a write racing that close is an
  unknown outcome, so old connections are not risked);
- TLS with the system's trusted certificates (plus the CAs of `ca_file`, if given) and
  hostname checking for https;
- at most 64 KB of headers and 1 MB of body (push services answer with almost nothing);
- a timeout on connecting, and one from the write to the complete answer (requests written
  together share one timer: `write` them, then wait for them with `answers`); any error
  closes that connection.
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
# Distinct sets of header lines whose validation by h11 is kept (per origin, body length,
# VAPID token, TTL, urgency and topic: a handful per campaign).
HEADER_CACHE_SIZE = 1000
_END_OF_MESSAGE = h11.EndOfMessage()


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


class _Connection(asyncio.Protocol):
    """One keep-alive connection: h11 is fed in `data_received` as the answer arrives.

    A protocol rather than asyncio streams: an answer is parsed where its bytes land,
    without a task, a stream buffer and a wake-up per request (see the module docstring).
    """

    __slots__ = ("closed", "expecting", "h11", "idle_since", "result", "transport", "wave")

    def __init__(self):
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
        self.idle_since = time.monotonic()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        # True from the write of a request until its answer is complete or has failed.
        self.expecting = False
        self.result: Response | BaseException | None = None
        self.wave: _Wave | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if not self.expecting:
            # Bytes nobody asked for (an unsolicited answer, more after a complete one): the
            # connection is no longer in a known state.
            self.closed = True
            self.transport.close()
            return
        try:
            self.h11.receive_data(data)
            self._read_events()
        except Exception as exc:
            self._finish(exc)

    def eof_received(self) -> None:
        self.closed = True
        if self.expecting:
            self._end_of_input()
        # Returning None: the transport closes itself.

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.expecting:
            if exc is not None:
                self._finish(exc)
            else:
                self._end_of_input()

    def _end_of_input(self) -> None:
        # h11 ends a read-to-close body at EOF; anything else is an error.
        try:
            self.h11.receive_data(b"")
            self._read_events()
        except Exception as exc:
            self._finish(exc)
        if self.expecting:
            self._finish(HttpError("The connection was closed before a complete answer"))

    def _read_events(self) -> None:
        conn = self.h11
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                return
            if isinstance(event, h11.InformationalResponse):
                continue
            if isinstance(event, h11.Response):
                headers = {
                    name.decode("latin-1"): value.decode("latin-1") for name, value in event.headers
                }
                self.result = Response(event.status_code, headers, b"")
            elif isinstance(event, h11.Data):
                body = self.result.body + event.data
                if len(body) > MAX_BODY:
                    raise HttpError("Response body too large")
                self.result.body = body
            elif isinstance(event, h11.EndOfMessage):
                if conn.trailing_data[0]:
                    # More than the answer arrived: not a connection to reuse.
                    self.closed = True
                self._finish(self.result)
                return
            elif isinstance(event, h11.ConnectionClosed):
                raise HttpError("The connection was closed before a complete answer")
            else:
                raise HttpError(f"Unexpected HTTP event {type(event).__name__}")

    def _finish(self, result: "Response | BaseException") -> None:
        if not self.expecting:
            return
        self.expecting = False
        self.result = result
        if not isinstance(result, Response):
            self.close()
        if self.wave is not None:
            self.wave.answered()

    def send(self, request: "Request") -> None:
        """Hand the request to the socket; raises h11.LocalProtocolError having written nothing."""
        data = self.h11.send(request.head)
        data += self.h11.send(h11.Data(data=request.body))
        data += self.h11.send(_END_OF_MESSAGE)
        self.result = None
        self.wave = None
        self.expecting = True
        self.transport.write(data)

    def reusable(self, now: float) -> bool:
        return (
            now - self.idle_since < KEEPALIVE_IDLE
            and not self.closed
            and not self.transport.is_closing()
        )

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class _Wave:
    """Requests written together, waited for together: one future and one timer for all."""

    __slots__ = ("future", "waiting")

    def __init__(self, loop: asyncio.AbstractEventLoop, waiting: int):
        self.future = loop.create_future()
        self.waiting = waiting

    def answered(self) -> None:
        self.waiting -= 1
        if self.waiting <= 0 and not self.future.done():
            self.future.set_result(None)

    def timed_out(self) -> None:
        if not self.future.done():
            self.future.set_result(None)


class Http1Pool:
    def __init__(self, *, limit: int = 100, timeout: float = 10.0, ca_file: str = ""):
        self.limit = limit
        self.timeout = timeout
        # Read now, so a wrong file is an error here rather than a failure of every request.
        self._tls = tls_context_with(ca_file) if ca_file else None
        self._slots = asyncio.Semaphore(limit)
        self._idle: dict[tuple, list[_Connection]] = defaultdict(list)
        self._origins: dict[str, tuple[tuple, bytes]] = {}
        self._headers: dict[tuple, object] = {}  # header lines -> h11's validated headers
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
        # A campaign's requests to one push service differ only by their target and body:
        # their header lines are validated by h11 the first time and its validated headers
        # reused for the same lines (h11 then validates only the target, the method and the
        # Host count; see tests/notifications/test_http1.py).
        lines = (host, len(body), *headers.items())
        validated = self._headers.get(lines)
        try:
            if validated is not None:
                head = h11.Request(method="POST", target=target, headers=validated)
            else:
                fields = [(b"Host", host), (b"Content-Length", b"%d" % len(body))]
                fields += headers.items()
                head = h11.Request(method="POST", target=target, headers=fields)
                if len(self._headers) >= HEADER_CACHE_SIZE:
                    self._headers.clear()
                self._headers[lines] = head.headers
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
        request with `write` (then `answers`) or `exchange`, or hands the connection back
        with `abandon`; holding it in between lets a caller record that the request is
        about to be written only once nothing is left between that record and the write.
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
        another. After True, wait for the answer with `answers` (or
        `exchange(..., written=True)`).
        """
        if not connection.reusable(time.monotonic()):
            return False
        try:
            connection.send(request)
        except h11.LocalProtocolError:
            connection.close()  # nothing was handed over; exchange opens another
            return False
        return True

    async def answers(
        self, written: list[tuple[Request, _Connection]]
    ) -> list[Response | MaybeSent]:
        """The answers of requests `write` handed over together, in order: a Response, or
        MaybeSent. One timer (`timeout` from now) for all of them rather than one per
        request; each connection goes back to the pool (or is closed) and frees its slot."""
        loop = asyncio.get_running_loop()
        wave = _Wave(loop, len(written))
        for _, connection in written:
            if connection.expecting:
                connection.wave = wave
            else:
                wave.waiting -= 1  # answered (or failed) already
        timer = None
        if wave.waiting > 0:
            timer = loop.call_at(loop.time() + self.timeout, wave.timed_out)
        released = 0
        try:
            if timer is not None:
                await wave.future
            now = time.monotonic()
            results: list[Response | MaybeSent] = []
            for request, connection in written:
                connection.wave = None
                result = connection.result
                if connection.expecting:
                    connection.expecting = False
                    result = TimeoutError()
                if isinstance(result, Response):
                    h = connection.h11
                    if (
                        h.our_state is h11.DONE
                        and h.their_state is h11.DONE
                        and not connection.closed
                    ):
                        h.start_next_cycle()
                        connection.idle_since = now
                        self._idle[request.key].append(connection)
                    else:
                        connection.close()
                    results.append(result)
                else:
                    connection.close()
                    results.append(MaybeSent(_describe(result, written=True)))
                connection.result = None
                released += 1
                self._slots.release()
            return results
        except BaseException:
            # Cancelled while waiting: whatever has not answered is cut.
            for _, connection in written[released:]:
                connection.wave = None
                connection.expecting = False
                connection.close()
                self._slots.release()
            raise
        finally:
            if timer is not None:
                timer.cancel()

    async def exchange(
        self, request: Request, connection: _Connection, *, written: bool = False
    ) -> Response:
        """Write `request` on a connection from `connect` (unless `write` already did) and
        read the answer. Raises NotSent, MaybeSent."""
        if not written:
            try:
                if not connection.reusable(time.monotonic()):
                    # The server closed it (or it idled too long) since `connect`; nothing
                    # was written on it yet: another one.
                    connection.close()
                    async with asyncio.timeout(self.timeout):
                        connection = await self._connection(request.key)
                connection.send(request)
            except BaseException as exc:
                connection.close()
                self._slots.release()
                if isinstance(exc, Exception):
                    raise NotSent(_describe(exc, written=False)) from exc
                raise
        (result,) = await self.answers([(request, connection)])
        if isinstance(result, MaybeSent):
            raise result
        return result

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
        _, connection = await asyncio.get_running_loop().create_connection(
            _Connection, host, port, ssl=tls, server_hostname=host if tls else None
        )
        self.connections_opened += 1
        return connection

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
