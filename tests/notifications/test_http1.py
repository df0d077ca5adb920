"""The push client's HTTP/1.1 pool against small real servers answering the ways HTTP allows."""

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from notifications.http1 import Http1Pool, HttpError, InvalidRequest, MaybeSent, NotSent
from notifications.webpush import retry_after_seconds


async def _serve(answers: list[bytes], received: list[bytes]):
    """A server that answers each request on a connection with the next canned answer."""

    async def handle(reader, writer):
        while answers:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                break
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            received.append(head + await reader.readexactly(length))
            writer.write(answers.pop(0))
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


def _exchange(answers, posts=1, timeout=2.0):
    received = []

    async def main():
        server, origin = await _serve(list(answers), received)
        pool = Http1Pool(limit=4, timeout=timeout)
        try:
            results = []
            for i in range(posts):
                try:
                    results.append(
                        await pool.post(
                            f"{origin}/push/{i}?a=1", headers={"TTL": "60"}, body=b"secret"
                        )
                    )
                except (HttpError, TimeoutError) as exc:
                    results.append(exc)
            return results, pool.connections_opened
        finally:
            await pool.close()
            server.close()

    results, opened = asyncio.run(main())
    return results, opened, received


def test_requests_are_well_formed_and_connections_reused():
    ok = b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\nLocation: /m/1\r\n\r\n"
    results, opened, received = _exchange([ok, ok, ok], posts=3)
    assert [r.status for r in results] == [201, 201, 201]
    assert results[0].headers["location"] == "/m/1"
    assert opened == 1
    head, body = received[0].split(b"\r\n\r\n")
    assert head.startswith(b"POST /push/0?a=1 HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"\r\nContent-Length: 6\r\n" in head + b"\r\n" and b"\r\nTTL: 60" in head
    assert body == b"secret"


def test_chunked_bodies_and_retry_after():
    answer = (
        b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 30\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nslow \r\n5;ext=1\r\ndown!\r\n0\r\nX-Trailer: 1\r\n\r\n"
    )
    ok = b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"
    results, opened, _ = _exchange([answer, ok], posts=2)
    assert (results[0].status, results[0].body, results[0].headers["retry-after"]) == (
        429,
        b"slow down!",
        "30",
    )
    assert results[1].status == 201 and opened == 1


def test_connection_close_opens_a_new_connection():
    closing = b"HTTP/1.1 201 Created\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    results, opened, _ = _exchange([closing, closing], posts=2)
    assert [r.status for r in results] == [201, 201]
    assert opened == 2


@pytest.mark.parametrize(
    "answer",
    [
        b"garbage\r\n\r\n",
        b"HTTP/1.1 2x1 Created\r\n\r\n",
        b"HTTP/1.1 201 Created\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 201 Created\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 201 Created\r\nContent-Length: 10\r\n\r\nshort",
    ],
)
def test_malformed_answers_are_errors(answer):
    [result], _, _ = _exchange([answer])
    assert isinstance(result, HttpError)


def _run(coroutine):
    return asyncio.run(coroutine)


async def _server(handler):
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


async def _read_request(reader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    return head + await reader.readexactly(length)


def _post_to(handler, *, timeout=2.0, posts=1):
    """Results (Response or the exception) of `posts` POSTs to a server running `handler`."""

    async def main():
        server, origin = await _server(handler)
        pool = Http1Pool(limit=2, timeout=timeout)
        results = []
        try:
            for i in range(posts):
                try:
                    results.append(await pool.post(f"{origin}/p/{i}", headers={}, body=b"x"))
                except HttpError as exc:
                    results.append(exc)
        finally:
            await pool.close()
            server.close()
        return results

    return _run(main())


def test_an_answer_after_the_timeout_may_have_been_sent():
    async def late(reader, writer):
        await _read_request(reader)
        await asyncio.sleep(1.0)
        writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    [result] = _post_to(late, timeout=0.3)
    assert isinstance(result, MaybeSent) and "Timed out" in str(result)


def test_a_connection_dropped_after_reading_the_request_may_have_been_sent():
    async def drop(reader, writer):
        await _read_request(reader)
        writer.transport.abort()

    [result] = _post_to(drop)
    assert isinstance(result, MaybeSent)


def test_a_connection_closed_on_accept_may_have_been_sent():
    # The client wrote its request before it could know: it cannot tell this from a drop
    # after the service read it, so it is not sent again.
    async def close(reader, writer):
        writer.close()

    [result] = _post_to(close)
    assert isinstance(result, MaybeSent)


@pytest.mark.parametrize(
    "answer",
    [
        b"garbage\r\n\r\n",
        b"HTTP/1.1 2x1 Created\r\n\r\n",
        b"HTTP/1.1 201 Created\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 201 Created\r\nContent-Length: 10\r\n\r\nshort",
        b"\x00\xff\xfe" * 100,
    ],
)
def test_a_garbage_answer_may_have_been_sent(answer):
    async def garbage(reader, writer):
        await _read_request(reader)
        writer.write(answer)
        await writer.drain()
        writer.close()

    [result] = _post_to(garbage)
    assert isinstance(result, MaybeSent)


def test_a_refused_connection_was_not_sent():
    async def main():
        pool = Http1Pool(limit=1, timeout=2)
        with pytest.raises(NotSent):
            await pool.post("http://127.0.0.1:1/x", headers={}, body=b"")

    _run(main())


def test_a_connect_timeout_was_not_sent():
    # A listening socket whose accept queue is full: the SYN is never answered.
    import socket

    async def main():
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = []
        try:
            for _ in range(8):
                filler = socket.socket()
                filler.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    filler.connect(("127.0.0.1", port))
                fillers.append(filler)
            pool = Http1Pool(limit=1, timeout=0.5)
            with pytest.raises(NotSent, match="could not connect"):
                await pool.post(f"http://127.0.0.1:{port}/x", headers={}, body=b"")
        finally:
            for filler in fillers:
                filler.close()
            listener.close()

    _run(main())


def test_a_stale_keep_alive_connection_is_not_reused():
    """The server closed the idle connection: the next request opens a new one instead of
    writing into the closed one (which would make its outcome unknown)."""

    async def answer_then_close(reader, writer):
        await _read_request(reader)
        writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.close()

    async def main():
        server, origin = await _server(answer_then_close)
        pool = Http1Pool(limit=1, timeout=2)
        try:
            first = await pool.post(f"{origin}/a", headers={}, body=b"x")
            await asyncio.sleep(0.3)  # the server closes the idle connection meanwhile
            second = await pool.post(f"{origin}/b", headers={}, body=b"x")
        finally:
            await pool.close()
            server.close()
        return first.status, second.status, pool.connections_opened

    assert _run(main()) == (201, 201, 2)


def test_bytes_beyond_an_answer_are_never_read_as_the_next_answer():
    """More than the answer came back (here a second, unsolicited answer in the same write):
    the connection is not reused, so the next request cannot take those bytes for its own
    answer."""
    ok = b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"
    stray = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"
    results, opened, received = _exchange([ok + stray, ok], posts=2)
    assert [r.status for r in results] == [201, 201]
    assert (opened, len(received)) == (2, 2)


def test_a_connection_that_receives_bytes_while_idle_is_not_reused():
    async def answer_then_chatter(reader, writer):
        await _read_request(reader)
        writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.write(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            await _read_request(reader)
        writer.close()

    async def main():
        server, origin = await _server(answer_then_chatter)
        pool = Http1Pool(limit=1, timeout=2)
        try:
            first = await pool.post(f"{origin}/a", headers={}, body=b"x")
            await asyncio.sleep(0.3)  # the server writes to the idle connection meanwhile
            second = await pool.post(f"{origin}/b", headers={}, body=b"x")
        finally:
            await pool.close()
            server.close()
        return first.status, second.status, pool.connections_opened

    assert _run(main()) == (201, 201, 2)


def test_a_reused_connection_that_fails_after_the_write_may_have_been_sent():
    async def answer_once_then_drop(reader, writer):
        await _read_request(reader)
        writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        await _read_request(reader)
        writer.transport.abort()

    first, second = _post_to(answer_once_then_drop, posts=2)
    assert first.status == 201
    assert isinstance(second, MaybeSent)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("7", 7.0), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0), (None, None), ("soon", None)],
)
def test_429_answers_carry_retry_after_in_both_forms(header, seconds):
    async def slow_down(reader, writer):
        await _read_request(reader)
        extra = f"Retry-After: {header}\r\n".encode() if header else b""
        writer.write(b"HTTP/1.1 429 Too Many Requests\r\n" + extra + b"Content-Length: 0\r\n\r\n")
        await writer.drain()

    [result] = _post_to(slow_down)
    assert result.status == 429
    assert retry_after_seconds(result.headers.get("retry-after")) == seconds
    future = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    assert 85 <= retry_after_seconds(future) <= 90


@pytest.mark.parametrize(
    "target",
    [
        "/push/a\r\nX-Injected: 1",
        "/push/a\nGET /admin HTTP/1.1",
        "/push/a b",
        "/push/\x00",
        "/push/caf\u00e9",
        "/push/\u2028",
    ],
)
def test_a_target_h11_refuses_is_never_written(target):
    async def record(reader, writer):
        received.append(await reader.read(1000))

    received = []

    async def main():
        server, origin = await _server(record)
        pool = Http1Pool(limit=1, timeout=1)
        try:
            with pytest.raises(InvalidRequest):
                await pool.post(origin + target, headers={}, body=b"x")
            await asyncio.sleep(0.05)
        finally:
            await pool.close()
            server.close()
        return pool.connections_opened

    assert _run(main()) == 0
    assert received == []


def test_a_header_value_with_a_line_break_is_refused():
    pool = Http1Pool(limit=1, timeout=1)
    with pytest.raises(InvalidRequest):
        pool.request("http://127.0.0.1:9/x", headers={"Topic": "a\r\nX: 1"}, body=b"")


def _bytes_written(request) -> bytes:
    import h11

    conn = h11.Connection(h11.CLIENT)
    return b"".join(
        conn.send(event)
        for event in (request.head, h11.Data(data=request.body), h11.EndOfMessage())
    )


_HEADERS = {b"Authorization": b"vapid t=a.b.c, k=K", b"TTL": b"60", b"Topic": b"campaign-1"}


@pytest.mark.parametrize(
    "target",
    ["/push/a\r\nX-Injected: 1", "/push/a b", "/push/\x00", "/push/caf\u00e9"],
)
def test_a_target_is_validated_even_when_its_headers_were_validated_before(target):
    pool = Http1Pool(limit=1, timeout=1)
    pool.request("http://127.0.0.1:9/push/ok", headers=dict(_HEADERS), body=b"x")
    with pytest.raises(InvalidRequest):
        pool.request("http://127.0.0.1:9" + target, headers=dict(_HEADERS), body=b"x")


def test_requests_with_headers_validated_before_are_written_as_a_fresh_pool_writes_them():
    pool = Http1Pool(limit=1, timeout=1)
    for i, body in enumerate([b"x", b"y", b"zz", b"x" * 300, b""]):
        url = f"http://127.0.0.1:9/push/{i}"
        request = pool.request(url, headers=dict(_HEADERS), body=body)
        fresh = Http1Pool(limit=1, timeout=1).request(url, headers=dict(_HEADERS), body=body)
        assert _bytes_written(request) == _bytes_written(fresh)
        assert f"\r\nContent-Length: {len(body)}\r\n".encode() in _bytes_written(request)
    other = pool.request("http://localhost:9/push/1", headers={b"TTL": b"5"}, body=b"x")
    assert b"\r\nHost: localhost:9\r\n" in _bytes_written(other)
    assert b"\r\nTTL: 5\r\n" in _bytes_written(other) and b"Topic" not in _bytes_written(other)


def test_a_refused_header_is_refused_every_time():
    pool = Http1Pool(limit=1, timeout=1)
    for _ in range(2):
        with pytest.raises(InvalidRequest):
            pool.request("http://127.0.0.1:9/x", headers={b"Topic": b"a\r\nX: 1"}, body=b"")
