"""A small HTTP/1.1 client for one job: many POSTs to push services over pooled connections.

Why not aiohttp: measured on the 2-core machines against the local sink, aiohttp's
per-request machinery costs about 0.8 ms of CPU, as much as 4 encryptions; a bare
asyncio-streams exchange costs about 0.2 ms. Push delivery is CPU-bound, so that difference
is most of the throughput (see notifications/README.md). What push services need is
narrow — POST with a small body, keep-alive, TLS, a status code and a few headers back — and
this module implements just that, strictly:

- at most `limit` connections in all, kept alive and reused per origin (scheme, host, port);
- TLS with the system's trusted certificates (plus the CAs of `ca_file`, if given) and
  hostname checking for https;
- responses with Content-Length, chunked transfer coding, or read-to-close bodies, at most
  64 KB of headers and 1 MB of body (push services answer with almost nothing);
- a total timeout per request (connecting included); any error closes that connection.
"""

import asyncio
import functools
import ssl
from collections import defaultdict
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_HEAD = 64 * 1024
MAX_BODY = 1024 * 1024


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
    """The exchange failed: connection, TLS, timeout or a malformed response."""


@dataclass(slots=True)
class Response:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


class _Connection:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer

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
        self._origins: dict[str, tuple[tuple, str]] = {}
        self.connections_opened = 0

    def _origin(self, url: str) -> tuple[tuple, str, str]:
        """(pool key, Host header, request target) of a URL; origins are parsed once."""
        start = url.find("://")
        end = url.find("/", start + 3) if start > 0 else -1
        origin, target = (url, "/") if end < 0 else (url[:end], url[end:])
        known = self._origins.get(origin)
        if known is None:
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise HttpError(f"Not an http(s) URL: {url[:100]}")
            try:
                default = 443 if parts.scheme == "https" else 80
                port = parts.port or default
            except ValueError as exc:
                raise HttpError(f"Bad port in {origin[:100]}") from exc
            host = parts.hostname
            if ":" in host:
                host = f"[{host}]"
            if port != default:
                host = f"{host}:{port}"
            known = self._origins[origin] = ((parts.scheme, parts.hostname, port), host)
        return known[0], known[1], target.split("#", 1)[0]

    async def post(self, url: str, *, headers: dict[str, str], body: bytes) -> Response:
        """POST `body` to `url`; raises HttpError (or TimeoutError) when there is no answer."""
        key, host, target = self._origin(url)
        lines = [f"POST {target} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        async with self._slots:
            connection = None
            try:
                async with asyncio.timeout(self.timeout):
                    connection = await self._connection(key)
                    connection.writer.write(request)
                    response, keep = await self._read_response(connection.reader)
            except TimeoutError:
                if connection is not None:
                    connection.close()
                raise
            except (OSError, ssl.SSLError, asyncio.IncompleteReadError, ValueError) as exc:
                if connection is not None:
                    connection.close()
                raise HttpError(f"{type(exc).__name__}: {exc}") from exc
            except HttpError:
                if connection is not None:
                    connection.close()
                raise
            if keep:
                self._idle[key].append(connection)
            else:
                connection.close()
            return response

    async def _connection(self, key: tuple) -> _Connection:
        idle = self._idle[key]
        while idle:
            connection = idle.pop()
            # A connection the server closed while idle is not reused.
            if not connection.reader.at_eof() and not connection.writer.is_closing():
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

    async def _read_response(self, reader: asyncio.StreamReader) -> tuple[Response, bool]:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError as exc:
            raise HttpError("Response headers too large") from exc
        status_line, *header_lines = head[:-4].decode("latin-1").split("\r\n")
        version, _, rest = status_line.partition(" ")
        if not version.startswith("HTTP/1.") or not rest[:3].isdigit():
            raise HttpError(f"Malformed status line: {status_line[:80]!r}")
        status = int(rest[:3])
        headers = {}
        for line in header_lines:
            name, sep, value = line.partition(":")
            if not sep:
                raise HttpError(f"Malformed header line: {line[:80]!r}")
            headers[name.strip().lower()] = value.strip()
        keep = headers.get("connection", "").lower() != "close" and version == "HTTP/1.1"
        if status in (204, 304) or 100 <= status < 200:
            return Response(status, headers, b""), keep
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = await self._read_chunked(reader)
        elif "content-length" in headers:
            length = headers["content-length"]
            if not length.isdigit() or int(length) > MAX_BODY:
                raise HttpError(f"Bad Content-Length: {length[:20]!r}")
            body = await reader.readexactly(int(length))
        else:
            body = await reader.read(MAX_BODY)
            keep = False
        return Response(status, headers, body), keep

    async def _read_chunked(self, reader: asyncio.StreamReader) -> bytes:
        body = bytearray()
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0].strip() or b"x", 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":
                    pass  # trailers
                return bytes(body)
            if len(body) + size > MAX_BODY:
                raise HttpError("Response body too large")
            body += await reader.readexactly(size)
            if await reader.readexactly(2) != b"\r\n":
                raise HttpError("Malformed chunked body")

    async def close(self) -> None:
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()
