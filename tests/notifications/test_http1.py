"""The push client's HTTP/1.1 pool against small real servers answering the ways HTTP allows."""

import asyncio

import pytest

from notifications.http1 import Http1Pool, HttpError


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


def test_no_answer_times_out():
    async def main():
        async def silent(reader, writer):
            await asyncio.sleep(5)

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        pool = Http1Pool(limit=1, timeout=0.3)
        try:
            port = server.sockets[0].getsockname()[1]
            with pytest.raises(TimeoutError):
                await pool.post(f"http://127.0.0.1:{port}/x", headers={}, body=b"")
        finally:
            await pool.close()
            server.close()

    asyncio.run(main())


def test_a_refused_connection_is_an_error():
    async def main():
        pool = Http1Pool(limit=1, timeout=2)
        with pytest.raises(HttpError):
            await pool.post("http://127.0.0.1:1/x", headers={}, body=b"")
        with pytest.raises(HttpError):
            await pool.post("ftp://127.0.0.1/x", headers={}, body=b"")

    asyncio.run(main())
