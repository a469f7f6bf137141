"""Interop with the ``websockets`` library, both ways, in-process on one event loop.

``test_server_*``: a ``websockets`` client against ``fullduplex.serve``.
``test_client_*``: ``fullduplex.connect`` against a ``websockets`` server.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
import websockets.asyncio.messages
from websockets.asyncio.client import ClientConnection, connect as ws_connect
from websockets.asyncio.server import ServerConnection, serve as ws_serve
from websockets.exceptions import (
    ConnectionClosed as WsConnectionClosed,
    ConnectionClosedError as WsConnectionClosedError,
    ConnectionClosedOK as WsConnectionClosedOK,
    InvalidStatus as WsInvalidStatus,
)
from websockets.protocol import State as WsState

import fullduplex

pytestmark = pytest.mark.interop

TIMEOUT = 10.0
MiB = 2**20
SIZES = [0, 125, 126, 65535, 65536, MiB]
UNICODE_CHARS = "aé߀✓😀z𝄞"
NON_ASCII_TEXTS = [
    "héllo wörld",
    "日本語のテキスト",
    "emoji 😀🎉 and a clef 𝄞",
    "\u0000 nul and \uffff max BMP",
    UNICODE_CHARS * 10_000,  # 80k characters, crosses 64 KiB in UTF-8 inside sequences
]


def make_text(size: int, pattern: str = "ascii") -> str:
    chars = UNICODE_CHARS if pattern == "unicode" else "abcdefghijklmnopqrstuvwxyz"
    return (chars * (size // len(chars) + 1))[:size]


def make_binary(size: int) -> bytes:
    return random.Random(size).randbytes(size)


def make_message(kind: str, size: int) -> str | bytes:
    return make_text(size) if kind == "text" else make_binary(size)


def digest(data: bytes) -> str:
    return f"{len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}"


def closed_cleanly(ws: ClientConnection | ServerConnection) -> bool:
    """Whether ``websockets`` saw a complete closing handshake and the TCP close."""
    protocol = ws.protocol
    return (
        ws.state is WsState.CLOSED
        and protocol.close_rcvd is not None
        and protocol.close_sent is not None
    )


@contextlib.asynccontextmanager
async def our_server(handler: Any, **kwargs: Any) -> AsyncIterator[tuple[Any, str]]:
    async with fullduplex.serve(handler, "127.0.0.1", 0, **kwargs) as server:
        yield server, f"ws://127.0.0.1:{server.port}/"


def ws_client(url: str, **kwargs: Any) -> ws_connect:
    """A ``websockets`` client; ``proxy=None`` keeps proxy settings from the environment out."""
    kwargs.setdefault("open_timeout", TIMEOUT)
    kwargs.setdefault("close_timeout", TIMEOUT)
    return ws_connect(url, proxy=None, **kwargs)


async def recv(conn: Any) -> Any:
    return await asyncio.wait_for(conn.recv(), TIMEOUT)


# ---------------------------------------------------------------------------
# websockets client -> fullduplex server


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("kind", ["text", "binary"])
async def test_server_echoes(kind: str, size: int, echo_handler: Any) -> None:
    message = make_message(kind, size)
    async with our_server(echo_handler) as (_, url), ws_client(url, max_size=None) as ws:
        await ws.send(message)
        echo = await recv(ws)
    assert type(echo) is type(message)
    assert echo == message


async def test_server_echoes_16_mib_without_max_size(echo_handler: Any) -> None:
    message = make_binary(16 * MiB)
    async with (
        our_server(echo_handler, max_size=None) as (_, url),
        ws_client(url, max_size=None) as ws,
    ):
        await ws.send(message)
        echo = await recv(ws)
    assert echo == message


@pytest.mark.parametrize("text", NON_ASCII_TEXTS, ids=range(len(NON_ASCII_TEXTS)))
async def test_server_echoes_non_ascii_text(text: str, echo_handler: Any) -> None:
    async with our_server(echo_handler) as (_, url), ws_client(url) as ws:
        await ws.send(text)
        assert await recv(ws) == text


@pytest.mark.parametrize(
    "fragments",
    [
        ["frag", "men", "ted"],
        ["", "empty first and last", ""],
        ["é", "😀", "日本"],
        [b"\x00\x01", b"", b"\xff" * 1000],
        [make_text(65536, "unicode")] * 4,
        [make_binary(64 * 1024)] * 16,
        ["x"] * 1000,
    ],
    ids=["text", "empty-parts", "unicode", "binary", "large-text", "large-binary", "1000-parts"],
)
async def test_server_reassembles_fragments(fragments: list[Any], echo_handler: Any) -> None:
    whole = fragments[0][:0].join(fragments)
    async with our_server(echo_handler, max_size=None) as (_, url):
        async with ws_client(url, max_size=None) as ws:
            await ws.send(fragments)
            assert await recv(ws) == whole


async def test_server_refuses_message_over_max_size(echo_handler: Any) -> None:
    async with our_server(echo_handler, max_size=1000) as (_, url), ws_client(url) as ws:
        await ws.send(b"x" * 1000)
        assert await recv(ws) == b"x" * 1000
        await ws.send(b"x" * 1001)
        with pytest.raises(WsConnectionClosedError):
            await recv(ws)
        await asyncio.wait_for(ws.wait_closed(), TIMEOUT)
    assert ws.close_code == 1009


async def test_server_reassembles_fragments_from_async_iterable(echo_handler: Any) -> None:
    async def parts() -> AsyncIterator[bytes]:
        for i in range(10):
            yield bytes([i]) * 100

    async with our_server(echo_handler) as (_, url), ws_client(url) as ws:
        await ws.send(parts())
        assert await recv(ws) == b"".join(bytes([i]) * 100 for i in range(10))


async def test_server_answers_ping_with_pong(echo_handler: Any) -> None:
    async with our_server(echo_handler) as (_, url), ws_client(url) as ws:
        pongs = [await ws.ping(data) for data in (b"first", b"", b"\xff" * 125)]
        latencies = await asyncio.wait_for(asyncio.gather(*pongs), TIMEOUT)
        # Messages still flow after the pings.
        await ws.send("after pings")
        assert await recv(ws) == "after pings"
    assert all(latency >= 0 for latency in latencies)


async def test_server_ping_gets_pong_from_client(echo_handler: Any) -> None:
    async with our_server(echo_handler) as (_, url), ws_client(url) as ws:
        await ws.send("please-ping:hello")
        # The handler echoes the command once conn.ping() has returned.
        assert await recv(ws) == "please-ping:hello"
    assert len(echo_handler.latencies) == 1
    assert isinstance(echo_handler.latencies[0], float)
    assert echo_handler.latencies[0] >= 0


async def test_server_agrees_on_subprotocol(echo_handler: Any) -> None:
    async with (
        our_server(echo_handler, subprotocols=["chat", "other"]) as (_, url),
        ws_client(url, subprotocols=["v2.fullduplex", "chat"]) as ws,
    ):
        conn = await echo_handler.next_connection()
        assert ws.subprotocol == "chat"
        assert conn.subprotocol == "chat"
        assert ws.response.headers["Sec-WebSocket-Protocol"] == "chat"


async def test_server_without_common_subprotocol(echo_handler: Any) -> None:
    """The server either continues without a subprotocol or refuses with an HTTP 4xx.

    RFC 6455 §4.2.2 lets the server answer without ``Sec-WebSocket-Protocol``; it must
    never pick one the client did not offer.
    """
    async with our_server(echo_handler, subprotocols=["chat"]) as (_, url):
        try:
            async with ws_client(url, subprotocols=["superchat"]) as ws:
                conn = await echo_handler.next_connection()
                assert ws.subprotocol is None
                assert "Sec-WebSocket-Protocol" not in ws.response.headers
                assert conn.subprotocol is None
                await ws.send("still works")
                assert await recv(ws) == "still works"
        except WsInvalidStatus as exc:
            assert 400 <= exc.response.status_code < 500


async def test_server_without_subprotocols_ignores_offer(echo_handler: Any) -> None:
    async with our_server(echo_handler) as (_, url), ws_client(url, subprotocols=["chat"]) as ws:
        conn = await echo_handler.next_connection()
        assert ws.subprotocol is None
        assert conn.subprotocol is None


@pytest.mark.parametrize(("code", "reason"), [(1000, ""), (1000, "done"), (4000, "client bye ✓")])
async def test_server_handles_close_from_client(code: int, reason: str, echo_handler: Any) -> None:
    async with our_server(echo_handler) as (_, url), ws_client(url) as ws:
        await ws.send("hi")
        assert await recv(ws) == "hi"
        await asyncio.wait_for(ws.close(code, reason), TIMEOUT)
        ended = await echo_handler.next_ended()

    # What the websockets client saw: our server echoed the close code.
    assert closed_cleanly(ws)
    assert ws.close_code == code
    # What our server saw.
    assert ended.close_code == code
    assert ended.close_reason == reason
    assert isinstance(ended.error, fullduplex.ConnectionClosed)
    assert ended.error.was_clean
    expected = fullduplex.ConnectionClosedOK if code == 1000 else fullduplex.ConnectionClosedError
    assert isinstance(ended.error, expected)


async def test_server_initiates_close(echo_handler: Any) -> None:
    async with our_server(echo_handler) as (_, url), ws_client(url) as ws:
        await ws.send("please-close:4001:server bye ✓")
        with pytest.raises(WsConnectionClosedError) as raised:
            await recv(ws)
        await asyncio.wait_for(ws.wait_closed(), TIMEOUT)
        ended = await echo_handler.next_ended()

    assert raised.value.rcvd is not None
    assert raised.value.rcvd.code == 4001
    assert raised.value.rcvd.reason == "server bye ✓"
    assert closed_cleanly(ws)
    assert ws.close_code == 4001
    assert ws.close_reason == "server bye ✓"
    # websockets echoes the close frame as it came.
    assert ended.close_code == 4001
    assert ended.close_reason == "server bye ✓"
    assert isinstance(ended.error, fullduplex.ConnectionClosedError)
    assert ended.error.was_clean


async def test_server_closes_with_1000_when_handler_returns() -> None:
    async def handler(conn: Any) -> None:
        await conn.send("bye")

    async with our_server(handler) as (_, url), ws_client(url) as ws:
        received = [message async for message in ws]  # ends quietly on 1000
        await asyncio.wait_for(ws.wait_closed(), TIMEOUT)
    assert received == ["bye"]
    assert closed_cleanly(ws)
    assert ws.close_code == 1000


async def test_server_closes_with_1011_when_handler_raises() -> None:
    async def handler(conn: Any) -> None:
        raise RuntimeError("boom in handler")

    async with our_server(handler) as (_, url):
        async with ws_client(url) as ws:
            with pytest.raises(WsConnectionClosedError):
                await recv(ws)
            await asyncio.wait_for(ws.wait_closed(), TIMEOUT)
        assert ws.close_code == 1011
        # The server goes on.
        async with ws_client(url) as ws2:
            with pytest.raises(WsConnectionClosedError):
                await recv(ws2)
        assert ws2.close_code == 1011


async def test_server_close_sends_1001_to_clients(echo_handler: Any) -> None:
    async with our_server(echo_handler) as (server, url), ws_client(url) as ws:
        await echo_handler.next_connection()
        await asyncio.wait_for(server.close(), TIMEOUT)
        with pytest.raises(WsConnectionClosedOK):
            await recv(ws)
        await asyncio.wait_for(ws.wait_closed(), TIMEOUT)
        await asyncio.wait_for(server.wait_closed(), TIMEOUT)
    assert closed_cleanly(ws)
    assert ws.close_code == 1001


async def test_server_sees_request_path_and_custom_header(
    echo_handler: Any, header_values: Any
) -> None:
    async with our_server(echo_handler) as (_, url):
        headers = {"X-Fullduplex-Test": "interop-42"}
        async with ws_client(url + "some/path?q=1", additional_headers=headers) as ws:
            conn = await echo_handler.next_connection()
            assert conn.request.method == "GET"
            assert conn.request.path == "/some/path?q=1"
            assert header_values(conn.request.headers, "x-fullduplex-test") == ["interop-42"]
            assert ws.response.status_code == 101


# ---------------------------------------------------------------------------
# fullduplex client -> websockets server


class WsPeer:
    """A ``websockets`` server handler: echoes, and obeys text commands.

    * ``please-close:CODE:REASON``: close with CODE and REASON.
    * ``please-ping:DATA``: ping with DATA; after the pong, send ``pong-received:DATA``.
    * ``fragments?``: receive the next message frame by frame and answer with a JSON
      object ``{"fragments": [...]}`` (text fragments as strings, binary ones as
      ``digest(fragment)``, which keeps the answer small).
    * ``whoami?``: answer with a JSON object of the subprotocol and request headers.

    When a connection ends, ``(close_code, close_reason, cleanly)`` goes on ``ended``.
    """

    def __init__(self) -> None:
        self.ended: asyncio.Queue[tuple[int | None, str | None, bool]] = asyncio.Queue()

    async def __call__(self, ws: ServerConnection) -> None:
        try:
            while True:
                message = await ws.recv()
                if message == "fragments?":
                    parts = [
                        part if isinstance(part, str) else digest(part)
                        async for part in ws.recv_streaming()
                    ]
                    await ws.send(json.dumps({"fragments": parts}))
                elif message == "whoami?":
                    headers = [[name, value] for name, value in ws.request.headers.raw_items()]
                    await ws.send(json.dumps({"subprotocol": ws.subprotocol, "headers": headers}))
                elif isinstance(message, str) and message.startswith("please-close:"):
                    _, code, reason = message.split(":", 2)
                    await ws.close(int(code), reason)
                elif isinstance(message, str) and message.startswith("please-ping:"):
                    data = message.removeprefix("please-ping:")
                    pong = await ws.ping(data.encode())
                    await asyncio.wait_for(pong, TIMEOUT)
                    await ws.send(f"pong-received:{data}")
                else:
                    await ws.send(message)
        except WsConnectionClosed:
            pass
        finally:
            await ws.wait_closed()
            self.ended.put_nowait((ws.close_code, ws.close_reason, closed_cleanly(ws)))

    async def next_ended(self) -> tuple[int | None, str | None, bool]:
        return await asyncio.wait_for(self.ended.get(), TIMEOUT)


@contextlib.asynccontextmanager
async def ws_server(handler: Any, **kwargs: Any) -> AsyncIterator[str]:
    kwargs.setdefault("close_timeout", TIMEOUT)
    async with ws_serve(handler, "127.0.0.1", 0, **kwargs) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/"


def our_client(url: str, **kwargs: Any) -> Any:
    kwargs.setdefault("open_timeout", TIMEOUT)
    kwargs.setdefault("close_timeout", TIMEOUT)
    return fullduplex.connect(url, **kwargs)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("kind", ["text", "binary"])
async def test_client_echoes(kind: str, size: int) -> None:
    message = make_message(kind, size)
    async with ws_server(WsPeer(), max_size=None) as url, our_client(url) as conn:
        await conn.send(message)
        echo = await recv(conn)
    assert type(echo) is type(message)
    assert echo == message


async def test_client_echoes_16_mib_without_max_size() -> None:
    message = make_message("text", 16 * MiB)
    async with (
        ws_server(WsPeer(), max_size=None) as url,
        our_client(url, max_size=None) as conn,
    ):
        await conn.send(message)
        assert await recv(conn) == message


@pytest.mark.parametrize("text", NON_ASCII_TEXTS, ids=range(len(NON_ASCII_TEXTS)))
async def test_client_echoes_non_ascii_text(text: str) -> None:
    async with ws_server(WsPeer()) as url, our_client(url) as conn:
        await conn.send(text)
        assert await recv(conn) == text


@pytest.mark.parametrize(
    "fragments",
    [
        ["frag", "men", "ted"],
        ["é", "😀", "日本"],
        [b"\x00\x01", b"\xff" * 1000],
        [make_binary(64 * 1024)] * 16,
    ],
    ids=["text", "unicode", "binary", "large-binary"],
)
async def test_client_sends_fragments(fragments: list[Any]) -> None:
    async with ws_server(WsPeer(), max_size=None) as url, our_client(url) as conn:
        await conn.send("fragments?")
        await conn.send(fragments)
        seen = json.loads(await recv(conn))["fragments"]
    expected = [part if isinstance(part, str) else digest(part) for part in fragments]
    assert seen == expected


async def test_client_sends_fragments_from_async_iterable() -> None:
    async def parts() -> AsyncIterator[str]:
        for word in ("async", "ly", " fragmented"):
            yield word

    async with ws_server(WsPeer()) as url, our_client(url) as conn:
        await conn.send("fragments?")
        await conn.send(parts())
        assert json.loads(await recv(conn)) == {"fragments": ["async", "ly", " fragmented"]}


async def test_client_sends_many_fragments(monkeypatch: pytest.MonkeyPatch) -> None:
    # websockets refuses more than 4096 fragments per message unless told otherwise.
    monkeypatch.setattr(websockets.asyncio.messages, "MAX_FRAGMENTS", 100_000)
    fragments = [bytes([i % 256]) * 10 for i in range(10_000)]
    async with ws_server(WsPeer(), max_size=None) as url, our_client(url) as conn:
        await conn.send(fragments)
        assert await recv(conn) == b"".join(fragments)


async def test_client_ping_gets_pong_from_server() -> None:
    async with ws_server(WsPeer()) as url, our_client(url) as conn:
        latencies = [
            await asyncio.wait_for(conn.ping(data), TIMEOUT) for data in (b"abc", b"", b"x" * 125)
        ]
        await conn.send("after pings")
        assert await recv(conn) == "after pings"
    assert all(isinstance(latency, float) and latency >= 0 for latency in latencies)


async def test_client_answers_server_ping() -> None:
    async with ws_server(WsPeer()) as url, our_client(url) as conn:
        await conn.send("please-ping:from-server")
        assert await recv(conn) == "pong-received:from-server"


async def test_client_agrees_on_subprotocol() -> None:
    async with (
        ws_server(WsPeer(), subprotocols=["chat", "other"]) as url,
        our_client(url, subprotocols=["v2.fullduplex", "chat"]) as conn,
    ):
        assert conn.subprotocol == "chat"
        await conn.send("whoami?")
        assert json.loads(await recv(conn))["subprotocol"] == "chat"


async def test_client_without_common_subprotocol_is_refused() -> None:
    # websockets answers 400 when it requires a subprotocol the client does not offer.
    async with ws_server(WsPeer(), subprotocols=["chat"]) as url:
        with pytest.raises(fullduplex.InvalidStatus) as raised:
            async with our_client(url, subprotocols=["superchat"]):
                pass  # pragma: no cover
    assert raised.value.status == 400


@pytest.mark.parametrize(("code", "reason"), [(1000, ""), (1000, "done"), (4000, "client bye ✓")])
async def test_client_closes(code: int, reason: str) -> None:
    peer = WsPeer()
    async with ws_server(peer) as url:
        conn = await asyncio.wait_for(our_client(url), TIMEOUT)
        await conn.send("hi")
        assert await recv(conn) == "hi"
        await asyncio.wait_for(conn.close(code, reason), TIMEOUT)
        ws_code, ws_reason, ws_clean = await peer.next_ended()

    assert (ws_code, ws_reason, ws_clean) == (code, reason, True)
    assert conn.state == fullduplex.State.CLOSED
    # websockets echoes the close frame as it came.
    assert conn.close_code == code
    assert conn.close_reason == reason
    expected = fullduplex.ConnectionClosedOK if code == 1000 else fullduplex.ConnectionClosedError
    with pytest.raises(expected) as raised:
        await conn.recv()
    assert raised.value.was_clean
    with pytest.raises(expected):
        await conn.send("too late")


async def test_client_handles_close_from_server() -> None:
    peer = WsPeer()
    async with ws_server(peer) as url, our_client(url) as conn:
        await conn.send("please-close:4002:server bye ✓")
        with pytest.raises(fullduplex.ConnectionClosedError) as raised:
            await recv(conn)
        await asyncio.wait_for(conn.wait_closed(), TIMEOUT)
        ws_code, _, ws_clean = await peer.next_ended()

    assert raised.value.code == 4002
    assert raised.value.reason == "server bye ✓"
    assert raised.value.was_clean
    assert conn.close_code == 4002
    assert conn.close_reason == "server bye ✓"
    assert conn.state == fullduplex.State.CLOSED
    # Our client echoed the code.
    assert ws_code == 4002
    assert ws_clean


async def test_client_iteration_ends_quietly_when_server_handler_returns() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.send("one")
        await ws.send(b"two")

    async with ws_server(handler) as url, our_client(url) as conn:
        received = [message async for message in conn]
        await asyncio.wait_for(conn.wait_closed(), TIMEOUT)
    assert received == ["one", b"two"]
    assert conn.close_code == 1000


async def test_client_sends_custom_headers() -> None:
    async with (
        ws_server(WsPeer()) as url,
        our_client(
            url,
            additional_headers={"X-Fullduplex-Test": "interop-42"},
            origin="http://origin.test",
        ) as conn,
    ):
        await conn.send("whoami?")
        headers = json.loads(await recv(conn))["headers"]
        assert conn.response.status == 101
    lowered = [(name.lower(), value) for name, value in headers]
    assert ("x-fullduplex-test", "interop-42") in lowered
    assert ("origin", "http://origin.test") in lowered
