"""Interop with Node's ``ws`` package (8.x), both ways.

``test_server_*``: ``node/client.js`` against ``fullduplex.serve``.
``test_client_*``: ``fullduplex.connect`` against ``node/echo_server.js``.

permessage-deflate is off on the Node side until fullduplex negotiates it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

import fullduplex

pytestmark = pytest.mark.interop

TIMEOUT = 10.0
MiB = 2**20
SIZES = [0, 125, 126, 65535, 65536, MiB]
UNICODE_CHARS = "aé߀✓😀z𝄞"


def make_text(size: int, pattern: str = "ascii") -> str:
    chars = UNICODE_CHARS if pattern == "unicode" else "abcdefghijklmnopqrstuvwxyz"
    return (chars * (size // len(chars) + 1))[:size]


def make_binary(size: int) -> bytes:
    return random.Random(size).randbytes(size)


@contextlib.asynccontextmanager
async def our_server(handler: Any, **kwargs: Any) -> AsyncIterator[str]:
    async with fullduplex.serve(handler, "127.0.0.1", 0, **kwargs) as server:
        yield f"ws://127.0.0.1:{server.port}/"


def our_client(url: str, **kwargs: Any) -> Any:
    kwargs.setdefault("open_timeout", TIMEOUT)
    kwargs.setdefault("close_timeout", TIMEOUT)
    return fullduplex.connect(url, **kwargs)


async def recv(conn: Any) -> Any:
    return await asyncio.wait_for(conn.recv(), TIMEOUT)


def assert_ok(run: Any) -> None:
    assert run.report["ok"], (run.report, run.stderr)
    assert run.returncode == 0, (run.report, run.stderr)


# ---------------------------------------------------------------------------
# Node ws client -> fullduplex server


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("kind", ["text", "binary"])
async def test_server_echoes(kind: str, size: int, node: Any, echo_handler: Any) -> None:
    scenario = {"messages": [{"type": kind, "size": size}], "close": {"code": 1000}}
    async with our_server(echo_handler) as url:
        run = await node.run_client(url, scenario)
    assert_ok(run)
    assert run.report["messages"][0]["echoed"]


async def test_server_echoes_16_mib_without_max_size(node: Any, echo_handler: Any) -> None:
    scenario = {"messages": [{"type": "binary", "size": 16 * MiB}], "close": {"code": 1000}}
    async with our_server(echo_handler, max_size=None) as url:
        run = await node.run_client(url, scenario, timeout=30)
    assert_ok(run)


async def test_server_echoes_non_ascii_text(node: Any, echo_handler: Any) -> None:
    sizes = [1, 8, 125, 126, 65535, 65536, 100_000]
    scenario = {
        "messages": [{"type": "text", "size": size, "pattern": "unicode"} for size in sizes]
        + [{"type": "text", "text": text} for text in ("héllo", "日本語", "😀 𝄞", "\u0000")],
        "close": {"code": 1000},
    }
    async with our_server(echo_handler) as url:
        run = await node.run_client(url, scenario)
    assert_ok(run)
    assert len(run.report["messages"]) == len(sizes) + 4


@pytest.mark.parametrize(
    "message",
    [
        {"type": "text", "size": 10, "fragments": 3},
        # Byte-sized fragments of 2-, 3- and 4-byte characters: splits inside sequences.
        {"type": "text", "size": 64, "pattern": "unicode", "fragments": 7},
        {"type": "text", "size": 16, "pattern": "unicode", "fragments": 40},
        {"type": "binary", "size": 1000, "fragments": 10},
        {"type": "binary", "size": 256 * 1024, "fragments": 4},
    ],
    ids=["text", "unicode-split-sequences", "unicode-one-byte-frames", "binary", "large-binary"],
)
async def test_server_reassembles_fragments(
    message: dict[str, Any], node: Any, echo_handler: Any
) -> None:
    scenario = {"messages": [message], "close": {"code": 1000}}
    async with our_server(echo_handler) as url:
        run = await node.run_client(url, scenario)
    assert_ok(run)


async def test_server_answers_ping_with_pong(node: Any, echo_handler: Any) -> None:
    scenario = {"ping": "are you there?", "close": {"code": 1000}}
    async with our_server(echo_handler) as url:
        run = await node.run_client(url, scenario)
    assert_ok(run)
    assert run.report["pong"] == {"received": True, "data": "are you there?"}


async def test_server_ping_gets_pong_from_client(node: Any, echo_handler: Any) -> None:
    # The handler pings, and echoes the command only once the pong came back.
    scenario = {"messages": [{"type": "text", "text": "please-ping:node"}], "close": {"code": 1000}}
    async with our_server(echo_handler) as url:
        run = await node.run_client(url, scenario)
    assert_ok(run)
    assert len(echo_handler.latencies) == 1
    assert echo_handler.latencies[0] >= 0


async def test_server_agrees_on_subprotocol(node: Any, echo_handler: Any) -> None:
    scenario = {"protocols": ["v2.fullduplex", "chat"], "close": {"code": 1000}}
    async with our_server(echo_handler, subprotocols=["chat", "other"]) as url:
        run = await node.run_client(url, scenario)
        conn = await echo_handler.next_connection()
    assert_ok(run)
    assert run.report["protocol"] == "chat"
    assert conn.subprotocol == "chat"


async def test_server_without_common_subprotocol(node: Any, echo_handler: Any) -> None:
    # Whether our server answers without a subprotocol or refuses the handshake, ws
    # fails the connection: it requires one of the subprotocols it offered.
    scenario = {"protocols": ["superchat"], "close": {"code": 1000}}
    async with our_server(echo_handler, subprotocols=["chat"]) as url:
        run = await node.run_client(url, scenario)
    assert not run.report["opened"]
    errors = " ".join(run.report["errors"])
    assert "Server sent no subprotocol" in errors or "Unexpected server response: 4" in errors


@pytest.mark.parametrize(("code", "reason"), [(1000, ""), (1000, "done"), (4000, "node bye ✓")])
async def test_server_handles_close_from_client(
    code: int, reason: str, node: Any, echo_handler: Any
) -> None:
    scenario = {
        "messages": [{"type": "text", "size": 5}],
        "close": {"code": code, "reason": reason},
    }
    async with our_server(echo_handler) as url:
        run = await node.run_client(url, scenario)
        ended = await echo_handler.next_ended()
    assert_ok(run)
    # What ws saw: our server echoed the code, the handshake completed.
    assert run.report["close"]["code"] == code
    assert run.report["close"]["wasClean"] is True
    # What our server saw.
    assert ended.close_code == code
    assert ended.close_reason == reason
    assert ended.error.was_clean
    expected = fullduplex.ConnectionClosedOK if code == 1000 else fullduplex.ConnectionClosedError
    assert isinstance(ended.error, expected)


async def test_server_initiates_close(node: Any, echo_handler: Any) -> None:
    scenario = {"send": ["please-close:4001:python bye ✓"]}
    async with our_server(echo_handler) as url:
        run = await node.run_client(url, scenario)
        ended = await echo_handler.next_ended()
    assert_ok(run)
    assert run.report["close"] == {"code": 4001, "reason": "python bye ✓", "wasClean": True}
    # ws echoes the close frame as it came.
    assert ended.close_code == 4001
    assert ended.close_reason == "python bye ✓"
    assert isinstance(ended.error, fullduplex.ConnectionClosedError)
    assert ended.error.was_clean


async def test_server_sees_custom_header(node: Any, echo_handler: Any, header_values: Any) -> None:
    scenario = {"headers": {"X-Fullduplex-Test": "from-node"}, "close": {"code": 1000}}
    async with our_server(echo_handler) as url:
        run = await node.run_client(url + "node/path", scenario)
        conn = await echo_handler.next_connection()
    assert_ok(run)
    assert conn.request.path == "/node/path"
    assert header_values(conn.request.headers, "X-Fullduplex-Test") == ["from-node"]


# ---------------------------------------------------------------------------
# fullduplex client -> Node ws server


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("kind", ["text", "binary"])
async def test_client_echoes(kind: str, size: int, node: Any) -> None:
    message = make_text(size) if kind == "text" else make_binary(size)
    async with node.echo_server() as server, our_client(server.url) as conn:
        await conn.send(message)
        echo = await recv(conn)
    assert type(echo) is type(message)
    assert echo == message


async def test_client_echoes_16_mib_without_max_size(node: Any) -> None:
    message = make_binary(16 * MiB)
    async with node.echo_server() as server, our_client(server.url, max_size=None) as conn:
        await conn.send(message)
        assert await asyncio.wait_for(conn.recv(), 30) == message


async def test_client_echoes_non_ascii_text(node: Any) -> None:
    texts = ["héllo", "日本語", "😀 𝄞", "\u0000", make_text(100_000, "unicode")]
    async with node.echo_server() as server, our_client(server.url) as conn:
        for text in texts:
            await conn.send(text)
            assert await recv(conn) == text


@pytest.mark.parametrize(
    "fragments",
    [["frag", "men", "ted"], ["é", "😀", "日本"], [b"\x00\x01", b"", b"\xff" * 1000]],
    ids=["text", "unicode", "binary"],
)
async def test_client_sends_fragments(fragments: list[Any], node: Any) -> None:
    async with node.echo_server() as server, our_client(server.url) as conn:
        await conn.send(fragments)
        assert await recv(conn) == fragments[0][:0].join(fragments)


async def test_client_ping_gets_pong_from_server(node: Any) -> None:
    async with node.echo_server() as server, our_client(server.url) as conn:
        latency = await asyncio.wait_for(conn.ping(b"py-ping"), TIMEOUT)
    assert isinstance(latency, float)
    assert latency >= 0


async def test_client_answers_server_ping(node: Any) -> None:
    async with node.echo_server() as server, our_client(server.url) as conn:
        await conn.send("please-ping:from-node")
        assert await recv(conn) == "pong-received:from-node"


async def test_client_agrees_on_subprotocol(node: Any) -> None:
    async with (
        node.echo_server("--protocols", "chat,other") as server,
        our_client(server.url, subprotocols=["v2.fullduplex", "chat"]) as conn,
    ):
        event = await server.next_event("connection")
        assert conn.subprotocol == "chat"
    assert event["protocol"] == "chat"


async def test_client_without_common_subprotocol(node: Any) -> None:
    """ws answers without a subprotocol; the client may continue or fail the connection.

    RFC 6455 §4.1 lets the client fail the connection then; if it continues, it must
    report no subprotocol.
    """
    async with node.echo_server("--protocols", "chat") as server:
        try:
            conn = await asyncio.wait_for(
                our_client(server.url, subprotocols=["superchat"]), TIMEOUT
            )
        except fullduplex.HandshakeError:
            return
        try:
            assert conn.subprotocol is None
            await conn.send("still works")
            assert await recv(conn) == "still works"
        finally:
            await asyncio.wait_for(conn.close(), TIMEOUT)


@pytest.mark.parametrize(("code", "reason"), [(1000, ""), (1000, "done"), (4000, "python bye ✓")])
async def test_client_closes(code: int, reason: str, node: Any) -> None:
    async with node.echo_server() as server:
        conn = await asyncio.wait_for(our_client(server.url), TIMEOUT)
        await conn.send("hi")
        assert await recv(conn) == "hi"
        await asyncio.wait_for(conn.close(code, reason), TIMEOUT)
        event = await server.next_event("close")

    assert event["code"] == code
    assert event["reason"] == reason
    assert event["wasClean"] is True
    # ws echoes the close frame as it came.
    assert conn.close_code == code
    assert conn.close_reason == reason
    assert conn.state == fullduplex.State.CLOSED
    expected = fullduplex.ConnectionClosedOK if code == 1000 else fullduplex.ConnectionClosedError
    with pytest.raises(expected) as raised:
        await conn.recv()
    assert raised.value.was_clean


async def test_client_handles_close_from_server(node: Any) -> None:
    async with node.echo_server() as server, our_client(server.url) as conn:
        await conn.send("please-close:4001:node bye ✓")
        with pytest.raises(fullduplex.ConnectionClosedError) as raised:
            await recv(conn)
        await asyncio.wait_for(conn.wait_closed(), TIMEOUT)
        event = await server.next_event("close")

    assert raised.value.code == 4001
    assert raised.value.reason == "node bye ✓"
    assert raised.value.was_clean
    assert conn.close_code == 4001
    assert conn.close_reason == "node bye ✓"
    # Our client echoed the code and the handshake completed on ws' side too.
    assert event["code"] == 4001
    assert event["wasClean"] is True


async def test_client_handles_default_close_from_server(node: Any) -> None:
    args = ("--close-code", "1001", "--close-reason", "going away")
    async with node.echo_server(*args) as server, our_client(server.url) as conn:
        await conn.send("please-close")
        received = [message async for message in conn]  # ends quietly on 1001
        await asyncio.wait_for(conn.wait_closed(), TIMEOUT)
    assert received == []
    assert conn.close_code == 1001
    assert conn.close_reason == "going away"


async def test_client_sends_custom_headers(node: Any) -> None:
    headers = {"X-Fullduplex-Test": "from-python"}
    async with (
        node.echo_server() as server,
        our_client(server.url + "py/path", additional_headers=headers) as conn,
    ):
        event = await server.next_event("connection")
        assert conn.response.status == 101
    assert event["path"] == "/py/path"
    assert event["headers"]["x-fullduplex-test"] == "from-python"
