"""``fullduplex.connect``: URLs, handshake failures, request headers, timeouts."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import fullduplex
from e2e.rawclient import CLOSE, TEXT, raw_server
from fullduplex import (
    Connection,
    ConnectionClosedOK,
    InvalidResponse,
    InvalidStatus,
    InvalidURI,
    State,
)
from fullduplex.http import response
from fullduplex.io.client import WebSocketURI, parse_uri
from support import echo, recorder, running, wait


def request_recorder() -> tuple[asyncio.Future[Any], Callable[[Connection], Awaitable[None]]]:
    """A handler that records the upgrade request, then echoes."""
    seen, record = recorder()

    async def handler(conn: Connection) -> None:
        record(conn.request)
        await echo(conn)

    return seen, handler


# ------------------------------------------------------------------ parse_uri


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("ws://example.com", WebSocketURI(False, "example.com", 80, "/")),
        ("ws://example.com/", WebSocketURI(False, "example.com", 80, "/")),
        ("wss://example.com", WebSocketURI(True, "example.com", 443, "/")),
        ("ws://example.com:8080/chat", WebSocketURI(False, "example.com", 8080, "/chat")),
        ("wss://example.com:8443/a/b", WebSocketURI(True, "example.com", 8443, "/a/b")),
        ("ws://Example.COM/", WebSocketURI(False, "example.com", 80, "/")),
        ("ws://[::1]:9000/x", WebSocketURI(False, "::1", 9000, "/x")),
        ("wss://[2001:db8::1]/", WebSocketURI(True, "2001:db8::1", 443, "/")),
        ("ws://h/p?q=1&r=two", WebSocketURI(False, "h", 80, "/p?q=1&r=two")),
        ("ws://h?q=1", WebSocketURI(False, "h", 80, "/?q=1")),
        ("ws://user:pa%3Ass@h/", WebSocketURI(False, "h", 80, "/", "user", "pa:ss")),
        ("ws://user@h/", WebSocketURI(False, "h", 80, "/", "user", None)),
    ],
)
def test_parse_uri(uri: str, expected: WebSocketURI) -> None:
    assert parse_uri(uri) == expected


@pytest.mark.parametrize(
    ("uri", "host_header"),
    [
        ("ws://h/", "h"),
        ("ws://h:80/", "h"),
        ("ws://h:443/", "h:443"),
        ("wss://h:443/", "h"),
        ("wss://h:80/", "h:80"),
        ("ws://[::1]:9000/", "[::1]:9000"),
        ("ws://[::1]/", "[::1]"),
    ],
)
def test_host_header_leaves_out_the_default_port(uri: str, host_header: str) -> None:
    assert parse_uri(uri).host_header == host_header


@pytest.mark.parametrize(
    "uri",
    [
        "http://example.com/",
        "https://example.com/",
        "example.com",
        "ws:///path",
        "ws://h/#frag",
        "ws://h/#",
        "ws://h/path#x",
        "ws://h:notaport/",
        "ws://h:99999/",
        "ws://h/a b",
    ],
)
def test_parse_uri_refuses(uri: str) -> None:
    with pytest.raises(InvalidURI):
        parse_uri(uri)


async def test_connect_refuses_a_bad_url_before_any_io() -> None:
    with pytest.raises(InvalidURI):
        await fullduplex.connect("http://127.0.0.1:1/")
    with pytest.raises(InvalidURI):
        await fullduplex.connect("ws://127.0.0.1:1/#frag")


# ------------------------------------------------------------------ failures


async def test_connect_to_a_closed_port_raises_oserror(unused_port: int) -> None:
    with pytest.raises(OSError):
        await wait(fullduplex.connect(f"ws://127.0.0.1:{unused_port}/"))


@pytest.mark.parametrize("status", [403, 404, 503])
async def test_non_101_answer_raises_invalid_status_with_the_response(status: int) -> None:
    body = f"nope {status}\n"

    def refuse(conn: Any, request: Any) -> Any:
        return response(status, body, headers=[("X-Why", "testing")])

    async with running(process_request=refuse) as server:
        with pytest.raises(InvalidStatus) as info:
            await wait(fullduplex.connect(f"ws://127.0.0.1:{server.port}/"))
    exc = info.value
    assert isinstance(exc, InvalidResponse)
    assert exc.status == status
    assert exc.response.status == status
    assert exc.response.body == body.encode()
    assert exc.response.headers["X-Why"] == "testing"
    assert str(status) in str(exc)


async def test_bad_accept_key_raises_invalid_response() -> None:
    async with raw_server() as server:
        task = asyncio.ensure_future(fullduplex.connect(server.url))
        peer = await server.accept()
        await peer.read_http()
        peer.transport.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n"
        )
        with pytest.raises(InvalidResponse) as info:
            await wait(task)
        assert not isinstance(info.value, InvalidStatus)


async def test_unrequested_subprotocol_from_the_server_raises_invalid_response() -> None:
    async with raw_server() as server:
        task = asyncio.ensure_future(fullduplex.connect(server.url, subprotocols=["a"]))
        peer = await server.accept()
        await peer.accept_handshake(extra=[("Sec-WebSocket-Protocol", "b")])
        with pytest.raises(InvalidResponse):
            await wait(task)


async def test_server_closing_during_the_handshake_raises_invalid_response() -> None:
    async with raw_server() as server:
        task = asyncio.ensure_future(fullduplex.connect(server.url))
        peer = await server.accept()
        await peer.read_http()
        peer.close_tcp()
        with pytest.raises(InvalidResponse):
            await wait(task)


async def test_open_timeout_against_a_silent_server() -> None:
    loop = asyncio.get_running_loop()
    async with raw_server() as server:
        start = loop.time()
        with pytest.raises(TimeoutError):
            await wait(fullduplex.connect(server.url, open_timeout=0.3))
        elapsed = loop.time() - start
        assert 0.25 <= elapsed < 0.3 + 1.0, elapsed
        # The TCP connection was made, the request sent, and then given up.
        peer = await server.accept()
        request = await peer.read_http()
        assert request.start_line == "GET / HTTP/1.1"
        await peer.expect_eof()


# ------------------------------------------------------------------ request headers


async def test_user_info_becomes_basic_authorization() -> None:
    seen, handler = request_recorder()
    async with running(handler) as server:
        port = server.port
        uri = f"ws://al%40ice:s3cr%3At@127.0.0.1:{port}/"
        async with fullduplex.connect(uri):
            request = await wait(seen)
    assert (
        request.headers["Authorization"] == "Basic " + base64.b64encode(b"al@ice:s3cr:t").decode()
    )
    # Never sent as part of the Host header or the path.
    assert request.headers["Host"] == f"127.0.0.1:{port}"
    assert request.path == "/"


async def test_explicit_authorization_header_wins_over_user_info() -> None:
    seen, handler = request_recorder()
    async with running(handler) as server:
        uri = f"ws://u:p@127.0.0.1:{server.port}/"
        async with fullduplex.connect(uri, additional_headers={"Authorization": "Bearer t0k"}):
            request = await wait(seen)
    assert request.headers.get_all("Authorization") == ["Bearer t0k"]


@pytest.mark.parametrize(
    "headers",
    [
        [("X-One", "1"), ("X-Two", "2"), ("X-Two", "again")],
        {"X-One": "1", "X-Two": "2"},
    ],
    ids=["list", "dict"],
)
async def test_additional_headers_reach_the_server(headers: Any) -> None:
    seen, handler = request_recorder()
    async with running(handler) as server:
        async with fullduplex.connect(
            f"ws://127.0.0.1:{server.port}/", additional_headers=headers
        ) as conn:
            request = await wait(seen)
            await conn.send("ok")
            assert await wait(conn.recv()) == "ok"
    assert request.headers["X-One"] == "1"
    expected = ["2", "again"] if isinstance(headers, list) else ["2"]
    assert request.headers.get_all("X-Two") == expected


async def test_origin_is_sent() -> None:
    seen, handler = request_recorder()
    async with running(handler) as server:
        async with fullduplex.connect(
            f"ws://127.0.0.1:{server.port}/", origin="https://app.example"
        ):
            request = await wait(seen)
    assert request.headers["Origin"] == "https://app.example"


async def test_no_origin_header_by_default() -> None:
    seen, handler = request_recorder()
    async with running(handler) as server:
        async with fullduplex.connect(f"ws://127.0.0.1:{server.port}/"):
            request = await wait(seen)
    assert "Origin" not in request.headers


@pytest.mark.parametrize(
    ("offered", "supported", "chosen"),
    [
        (["v2", "v1"], ["v1", "v2"], "v1"),
        (["v2"], ["v1", "v2"], "v2"),
        (["v3"], ["v1", "v2"], None),
        ([], ["v1"], None),
        (["v1"], [], None),
    ],
)
async def test_subprotocol_negotiation(
    offered: list[str], supported: list[str], chosen: str | None
) -> None:
    seen, record = recorder()

    async def handler(conn: Connection) -> None:
        record(conn.subprotocol)
        await echo(conn)

    async with running(handler, subprotocols=supported) as server:
        async with fullduplex.connect(
            f"ws://127.0.0.1:{server.port}/", subprotocols=offered
        ) as conn:
            assert conn.subprotocol == chosen
            assert await wait(seen) == chosen
            header = conn.response.headers.get("Sec-WebSocket-Protocol") if conn.response else None
            assert header == chosen


# ------------------------------------------------------------------ closing


async def test_close_timeout_when_the_server_never_closes_tcp() -> None:
    loop = asyncio.get_running_loop()
    async with raw_server() as server:
        task = asyncio.ensure_future(fullduplex.connect(server.url, close_timeout=0.3))
        peer = await server.accept()
        await peer.accept_handshake()
        conn = await wait(task)
        start = loop.time()
        closing = asyncio.ensure_future(conn.close())
        frame = await peer.recv_frame()
        assert frame.opcode == CLOSE and frame.close_code == 1000
        await peer.send_close(1000)  # ...and then keep the TCP connection open
        await wait(closing)
        elapsed = loop.time() - start
        assert elapsed < 0.3 + 1.0, elapsed
        assert conn.state is State.CLOSED
        assert conn.close_code == 1000
        await peer.expect_eof()


async def test_close_timeout_when_the_server_never_answers_the_close() -> None:
    loop = asyncio.get_running_loop()
    async with raw_server() as server:
        task = asyncio.ensure_future(fullduplex.connect(server.url, close_timeout=0.3))
        peer = await server.accept()
        await peer.accept_handshake()
        conn = await wait(task)
        start = loop.time()
        await wait(conn.close())
        elapsed = loop.time() - start
        assert 0.25 <= elapsed < 0.3 + 1.0, elapsed
        assert conn.state is State.CLOSED
        assert conn.close_code == 1006
        with pytest.raises(fullduplex.ConnectionClosedError):
            await conn.recv()


async def test_async_with_connect_closes_with_1000() -> None:
    async with raw_server() as server:
        task = asyncio.ensure_future(_use_and_leave(server.url))
        peer = await server.accept()
        await peer.accept_handshake()
        frame = await peer.recv_frame()
        assert (frame.opcode, frame.payload) == (TEXT, b"bye")
        frame = await peer.recv_frame()
        assert frame.opcode == CLOSE and frame.close_code == 1000
        await peer.send_close(1000)
        peer.close_tcp()  # the server closes TCP first (RFC 6455 §7.1.1)
        assert await wait(task) == State.CLOSED


async def _use_and_leave(url: str) -> State:
    async with fullduplex.connect(url) as conn:
        await conn.send("bye")
    return conn.state


async def test_server_close_is_seen_as_closed_ok() -> None:
    async with raw_server() as server:
        task = asyncio.ensure_future(fullduplex.connect(server.url))
        peer = await server.accept()
        await peer.accept_handshake()
        conn = await wait(task)
        await peer.send_close(1001, "bye")
        with pytest.raises(ConnectionClosedOK) as info:
            await wait(conn.recv())
        assert (info.value.code, info.value.reason) == (1001, "bye")
        frame = await peer.recv_frame()
        assert frame.opcode == CLOSE and frame.close_code == 1001
        peer.close_tcp()
        await wait(conn.wait_closed())
        assert conn.close_code == 1001
