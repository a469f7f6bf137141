"""Hostile or broken clients fail cleanly, and a well-behaved client keeps being served."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import Any

import pytest

import fullduplex
from e2e.rawclient import (
    BINARY,
    CONT,
    TEXT,
    HttpMessage,
    RawPeer,
    new_key,
    raw_client,
    upgrade_headers,
)
from fullduplex import Connection, ConnectionClosedError, InvalidStatus
from support import TIMEOUT, echo, running, wait


async def assert_echoes(server: fullduplex.Server, path: str = "/", **kwargs: Any) -> None:
    """The well-behaved client: connects, round-trips text and binary, closes with 1000."""
    async with fullduplex.connect(f"ws://127.0.0.1:{server.port}{path}", **kwargs) as conn:
        await conn.send("still fine")
        assert await wait(conn.recv()) == "still fine"
        await conn.send(b"\x00\x01")
        assert await wait(conn.recv()) == b"\x00\x01"
    assert conn.close_code == 1000


async def raw_answer(port: int, request: bytes) -> HttpMessage:
    """Send raw request bytes in one write; return the answer; the server must close."""
    async with raw_client(port, handshake=False) as peer:
        await peer.send(request)
        answer = await peer.read_http()
        await peer.expect_eof()
    return answer


def upgrade_request(
    port: int, *, extra: Sequence[tuple[str, str]] = (), target: str = "/"
) -> bytes:
    headers = [*upgrade_headers(port), *extra]
    lines = [f"GET {target} HTTP/1.1", *(f"{k}: {v}" for k, v in headers), "", ""]
    return "\r\n".join(lines).encode("latin-1")


# ------------------------------------------------------------------ request head limits


async def test_header_line_too_large_gets_431() -> None:
    async with running() as server:
        answer = await raw_answer(
            server.port, upgrade_request(server.port, extra=[("X-Big", "a" * 9000)])
        )
        assert answer.status == 431
        await assert_echoes(server)


async def test_too_many_headers_get_431() -> None:
    async with running() as server:
        extra = [(f"X-H{i}", "1") for i in range(200)]
        answer = await raw_answer(server.port, upgrade_request(server.port, extra=extra))
        assert answer.status == 431
        await assert_echoes(server)


async def test_request_line_too_long_gets_414() -> None:
    async with running() as server:
        answer = await raw_answer(
            server.port, upgrade_request(server.port, target="/" + "a" * 9000)
        )
        assert answer.status == 414
        await assert_echoes(server)


async def test_head_limits_are_configurable() -> None:
    async with running(max_header_size=200, max_headers=20, max_request_line=100) as server:
        big = [("X-Big", "b" * 250)]
        assert (
            await raw_answer(server.port, upgrade_request(server.port, extra=big))
        ).status == 431
        many = [(f"X-H{i}", "1") for i in range(25)]
        assert (
            await raw_answer(server.port, upgrade_request(server.port, extra=many))
        ).status == 431
        long = upgrade_request(server.port, target="/" + "p" * 120)
        assert (await raw_answer(server.port, long)).status == 414
        # Just under the limits is fine.
        await assert_echoes(server, additional_headers=[("X-Big", "b" * 150)])
        await assert_echoes(server, path="/" + "p" * 50)


async def test_an_unterminated_oversized_header_is_refused_without_waiting_for_its_end() -> None:
    async with running() as server, raw_client(server.port, handshake=False) as peer:
        # The line never ends: the server must answer once it is too long.
        await peer.send(b"GET / HTTP/1.1\r\nX-Big: " + b"x" * 20_000)
        answer = await peer.read_http()
        assert answer.status == 431
        await peer.expect_eof()
        await assert_echoes(server)


async def test_garbage_instead_of_a_request_gets_400() -> None:
    async with running() as server:
        answer = await raw_answer(
            server.port, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"
        )
        assert answer.status == 400
        await assert_echoes(server)


# ------------------------------------------------------------------ connection cap


async def test_max_connections_answers_503_with_retry_after_and_frees_up() -> None:
    async with running(max_connections=2) as server:
        url = f"ws://127.0.0.1:{server.port}/"
        first = await fullduplex.connect(url)
        second = await fullduplex.connect(url)
        with pytest.raises(InvalidStatus) as info:
            await wait(fullduplex.connect(url))
        assert info.value.status == 503
        assert info.value.response.headers.get("Retry-After")
        # The refused connection does not count; the open ones still work.
        await second.send("x")
        assert await wait(second.recv()) == "x"
        # A client leaves: its place is free again.
        await wait(first.close())
        third = await wait(fullduplex.connect(url))
        await third.send("y")
        assert await wait(third.recv()) == "y"
        await third.close()
        await second.close()


async def test_max_connections_none_is_unlimited() -> None:
    async with running() as server:
        url = f"ws://127.0.0.1:{server.port}/"
        conns = [await fullduplex.connect(url) for _ in range(20)]
        for conn in conns:
            await conn.send("x")
        for conn in conns:
            assert await wait(conn.recv()) == "x"
            await conn.close()


# ------------------------------------------------------------------ message limits


async def test_max_size_fails_with_1009() -> None:
    async with running(max_size=1000) as server:
        async with raw_client(server.port) as peer:
            await peer.send_frame(BINARY, os.urandom(1000))
            assert (await peer.recv_message())[0] == BINARY
            await peer.send_frame(TEXT, "x" * 1001)
            await peer.expect_close(1009)
        async with fullduplex.connect(f"ws://127.0.0.1:{server.port}/", compression=None) as conn:
            await conn.send(os.urandom(1001))
            with pytest.raises(ConnectionClosedError) as info:
                await wait(conn.recv())
            assert info.value.code == 1009
        await assert_echoes(server)


async def test_max_size_counts_the_whole_fragmented_message() -> None:
    async with running(max_size=1000) as server:
        async with raw_client(server.port) as peer:
            await peer.send_frame(TEXT, "a" * 600, fin=False)
            await peer.send_frame(CONT, "a" * 401, fin=True)
            await peer.expect_close(1009)
        await assert_echoes(server)


async def test_max_fragments_fails_with_1008() -> None:
    async with running(max_fragments=4) as server:
        async with raw_client(server.port) as peer:
            # Exactly the limit is fine.
            await peer.send_frame(TEXT, "a", fin=False)
            for _ in range(2):
                await peer.send_frame(CONT, "b", fin=False)
            await peer.send_frame(CONT, "c", fin=True)
            assert await peer.recv_message() == (TEXT, b"abbc")
            # One more is not.
            await peer.send_frame(BINARY, b"a", fin=False)
            for _ in range(4):
                await peer.send_frame(CONT, b"b", fin=False)
            await peer.expect_close(1008)
        await assert_echoes(server)


async def test_endless_tiny_fragments_without_a_limit_on_fragments_still_hit_max_size() -> None:
    async with running(max_size=100) as server:
        async with raw_client(server.port) as peer:
            await peer.send_frame(TEXT, "", fin=False)
            await peer.send_frames([(CONT, b"z", False)] * 101)
            await peer.expect_close(1009)
        await assert_echoes(server)


# ------------------------------------------------------------------ slow or silent peers


async def test_slowloris_handshakes_are_dropped_after_open_timeout() -> None:
    loop = asyncio.get_running_loop()
    async with running(open_timeout=0.3) as server:
        request = upgrade_request(server.port)
        peers: list[RawPeer] = []
        async with (
            raw_client(server.port, handshake=False) as a,
            raw_client(server.port, handshake=False) as b,
            raw_client(server.port, handshake=False) as c,
        ):
            peers = [a, b, c]
            start = loop.time()
            await a.send(request[:10])  # a bit of the request line
            await b.send(request[:-2])  # everything but the final CRLF
            # c sends nothing at all
            await assert_echoes(server)  # served meanwhile
            for peer in peers:
                await peer.expect_eof(timeout=TIMEOUT)
            elapsed = loop.time() - start
            assert 0.25 <= elapsed < 0.3 + 1.5, elapsed
        await assert_echoes(server)


async def test_a_client_that_stops_reading_is_dropped_by_max_unsent() -> None:
    chunk = os.urandom(64 * 1024)
    outcome: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    async def handler(conn: Connection) -> None:
        assert conn.request is not None
        if conn.request.path != "/firehose":
            await echo(conn)
            return
        assert conn.protocol is not None
        try:
            for _ in range(2000):  # 125 MiB, never waiting: the callback path
                conn.protocol.send(chunk)
        except fullduplex.InvalidState:
            pass
        await conn.wait_closed()
        try:
            await conn.recv()
        except ConnectionClosedError as exc:
            outcome.set_result(exc.sent_code)

    async with running(handler, max_unsent=1024 * 1024, close_timeout=0.3) as server:
        async with raw_client(server.port, handshake=False) as peer:
            await peer.send(upgrade_request(server.port, target="/firehose"))
            assert (await peer.read_http()).status == 101
            peer.transport.pause_reading()  # and never read again
            await assert_echoes(server)
            assert await wait(outcome) == 1008
            peer.transport.resume_reading()
            # Dropped, not left hanging: whatever got through, then the end.
            while True:
                try:
                    await peer.recv_frame()
                except EOFError:
                    break
        await assert_echoes(server)


# ------------------------------------------------------------------ Host validation


@pytest.mark.parametrize(
    "host",
    ["evil.example", "evil.example:80", "127.0.0.2", "localhost.evil.example", ""],
)
async def test_unknown_host_gets_400(host: str) -> None:
    async with running(hosts=["chat.example", "127.0.0.1"]) as server:
        headers = [("Host", host)] if host else []
        headers += [(k, v) for k, v in upgrade_headers(server.port) if k != "Host"]
        lines = ["GET / HTTP/1.1", *(f"{k}: {v}" for k, v in headers), "", ""]
        answer = await raw_answer(server.port, "\r\n".join(lines).encode())
        assert answer.status == 400
        await assert_echoes(server)


@pytest.mark.parametrize("host", ["chat.example", "CHAT.example:443", "127.0.0.1"])
async def test_known_host_is_accepted(host: str) -> None:
    async with running(hosts=["chat.example", "127.0.0.1"]) as server:
        headers = [("Host", host)] + [
            (k, v) for k, v in upgrade_headers(server.port, new_key()) if k != "Host"
        ]
        async with raw_client(server.port, headers=headers) as peer:
            await peer.send_frame(TEXT, "hi")
            assert await peer.recv_message() == (TEXT, b"hi")
            await peer.send_close(1000)
            await peer.expect_close(1000, reply=False)


@pytest.mark.parametrize(
    ("host", "status"),
    [("[::1]", 101), ("[::1]:9000", 101), ("[::2]:9000", 400), ("::1", 400)],
)
async def test_ipv6_host_names(host: str, status: int) -> None:
    async with running(hosts=["[::1]"]) as server:
        headers = [("Host", host)] + [
            (k, v) for k, v in upgrade_headers(server.port) if k != "Host"
        ]
        lines = ["GET / HTTP/1.1", *(f"{k}: {v}" for k, v in headers), "", ""]
        async with raw_client(server.port, handshake=False) as peer:
            await peer.send("\r\n".join(lines).encode())
            assert (await peer.read_http()).status == status
