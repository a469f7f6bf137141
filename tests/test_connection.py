"""``fullduplex.Connection`` over real sockets: receiving, closing, what a handler sees, ping."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

import fullduplex
from e2e.rawclient import (
    BINARY,
    CLOSE,
    PING,
    TEXT,
    encode_frame,
    raw_client,
)
from fullduplex import Connection, ConnectionClosedError, ConnectionClosedOK, State
from support import TIMEOUT, echo, recorder, running, url, wait


async def assert_echoes(server: fullduplex.Server) -> None:
    """A well-behaved client gets its text and binary messages back."""
    async with fullduplex.connect(url(server), open_timeout=TIMEOUT) as conn:
        await conn.send("hello")
        assert await asyncio.wait_for(conn.recv(), TIMEOUT) == "hello"
        await conn.send(b"\x00\xff")
        assert await asyncio.wait_for(conn.recv(), TIMEOUT) == b"\x00\xff"


# ------------------------------------------------------------------ async for / recv


@pytest.mark.parametrize("code", [1000, 1001])
async def test_async_for_ends_quietly_on_a_normal_close(code: int) -> None:
    outcome, record = recorder()

    async def handler(conn: Connection) -> None:
        got = []
        try:
            async for message in conn:
                got.append(message)
        except Exception as exc:
            record(("raised", exc))
            raise
        record(("ended", got))

    async with running(handler) as server, fullduplex.connect(url(server)) as conn:
        await conn.send("a")
        await conn.send(b"b")
        await conn.close(code, "done")
        assert await wait(outcome) == ("ended", ["a", b"b"])


@pytest.mark.parametrize("code", [1002, 1011, 3000, 4000])
async def test_async_for_raises_connection_closed_error_on_other_codes(code: int) -> None:
    outcome, record = recorder()

    async def handler(conn: Connection) -> None:
        try:
            async for _ in conn:
                pass
        except ConnectionClosedError as exc:
            record(exc)
            raise
        record(None)

    async with running(handler) as server, fullduplex.connect(url(server)) as conn:
        await conn.close(code, "why")
        exc = await wait(outcome)
        assert isinstance(exc, ConnectionClosedError)
        assert (exc.code, exc.reason) == (code, "why")


async def test_async_for_raises_connection_closed_error_when_the_peer_drops() -> None:
    outcome, record = recorder()

    async def handler(conn: Connection) -> None:
        try:
            async for _ in conn:
                pass
        except ConnectionClosedError as exc:
            record(exc)
            raise
        record(None)

    async with running(handler) as server, raw_client(server.port) as peer:
        await peer.send_frame(TEXT, "hi")
        peer.abort()
        exc = await wait(outcome)
        assert isinstance(exc, ConnectionClosedError)
        assert exc.code == 1006


async def test_recv_and_send_after_a_normal_close_raise_closed_ok_with_code_and_reason() -> None:
    outcome, record = recorder()

    async def handler(conn: Connection) -> None:
        await conn.wait_closed()
        errors = []
        for op in (conn.recv, lambda: conn.send("late")):
            try:
                await op()
            except Exception as exc:
                errors.append(exc)
        record(errors)

    async with running(handler) as server:
        conn = await fullduplex.connect(url(server))
        await conn.close(1000, "see you")
        errors = await wait(outcome)
        assert [type(e) for e in errors] == [ConnectionClosedOK, ConnectionClosedOK]
        assert [(e.code, e.reason) for e in errors] == [(1000, "see you")] * 2
        # And on the client side, after its own close.
        with pytest.raises(ConnectionClosedOK) as info:
            await conn.recv()
        assert info.value.code == 1000
        with pytest.raises(ConnectionClosedOK):
            await conn.send("late")
        assert conn.state is State.CLOSED


async def test_recv_and_send_after_an_error_close_raise_closed_error_with_code_and_reason() -> None:
    outcome, record = recorder()

    async def handler(conn: Connection) -> None:
        await conn.wait_closed()
        errors = []
        for op in (conn.recv, lambda: conn.send("late")):
            try:
                await op()
            except Exception as exc:
                errors.append(exc)
        record(errors)

    async with running(handler) as server:
        conn = await fullduplex.connect(url(server))
        await conn.close(4321, "custom failure")
        errors = await wait(outcome)
        assert [type(e) for e in errors] == [ConnectionClosedError, ConnectionClosedError]
        assert [(e.code, e.reason) for e in errors] == [(4321, "custom failure")] * 2
        assert conn.close_code == 4321


async def test_messages_received_before_the_close_are_still_returned() -> None:
    outcome, record = recorder()

    async def handler(conn: Connection) -> None:
        await conn.wait_closed()  # everything, close included, has arrived
        got: list[Any] = []
        try:
            while True:
                got.append(await conn.recv())
        except ConnectionClosedOK as exc:
            record((got, exc.code))

    async with running(handler) as server, raw_client(server.port) as peer:
        await peer.send(
            encode_frame(TEXT, b"one")
            + encode_frame(BINARY, b"two")
            + encode_frame(TEXT, b"three")
            + encode_frame(CLOSE, b"\x03\xe8")
        )
        assert await wait(outcome) == (["one", b"two", "three"], 1000)


async def test_messages_received_before_a_dropped_connection_are_still_returned() -> None:
    outcome, record = recorder()

    async def handler(conn: Connection) -> None:
        await conn.wait_closed()
        got: list[Any] = []
        try:
            while True:
                got.append(await conn.recv())
        except ConnectionClosedError as exc:
            record((got, exc.code))

    async with running(handler) as server, raw_client(server.port) as peer:
        await peer.send(encode_frame(TEXT, b"one") + encode_frame(TEXT, b"two"))
        # An echo round trip would need the handler; a ping proves both arrived.
        await peer.send_frame(PING, b"p")
        frame = await peer.recv_frame()
        assert frame.payload == b"p"
        peer.abort()
        assert await wait(outcome) == (["one", "two"], 1006)


# ------------------------------------------------------------------ what the handler sees


async def test_request_subprotocol_and_addresses_are_exposed() -> None:
    seen, record = recorder()

    async def handler(conn: Connection) -> None:
        record(conn)
        await echo(conn)

    async with running(handler, subprotocols=["chat.v1", "chat.v2"]) as server:
        async with fullduplex.connect(
            url(server, "/rooms/42?user=ann"),
            subprotocols=["chat.v2", "chat.v1"],
            additional_headers=[("X-Trace", "abc123")],
        ) as client:
            conn = await wait(seen)
            assert conn.request is not None
            assert conn.request.method == "GET"
            assert conn.request.path == "/rooms/42?user=ann"
            assert conn.request.headers["X-Trace"] == "abc123"
            assert conn.request.headers["Host"] == f"127.0.0.1:{server.port}"
            # Server preference wins among what the client offered.
            assert conn.subprotocol == "chat.v1"
            assert client.subprotocol == "chat.v1"
            assert conn.remote_address == client.local_address
            assert conn.local_address == client.remote_address
            assert conn.local_address[:2] == ("127.0.0.1", server.port)
            assert conn.state is State.OPEN
            assert client.response is not None and client.response.status == 101


async def test_no_subprotocol_when_none_is_offered() -> None:
    seen, record = recorder()

    async def handler(conn: Connection) -> None:
        record(conn.subprotocol)
        await echo(conn)

    async with running(handler, subprotocols=["chat.v1"]) as server:
        async with fullduplex.connect(url(server)) as client:
            assert await wait(seen) is None
            assert client.subprotocol is None


# ------------------------------------------------------------------ ping


async def test_ping_returns_a_latency_on_both_sides() -> None:
    seen, record = recorder()

    async def handler(conn: Connection) -> None:
        record(await conn.ping(b"from server"))
        await echo(conn)

    async with running(handler) as server, fullduplex.connect(url(server)) as conn:
        latency = await wait(conn.ping(b"from client"))
        assert isinstance(latency, float) and 0 <= latency < TIMEOUT
        server_latency = await wait(seen)
        assert isinstance(server_latency, float) and 0 <= server_latency < TIMEOUT
        assert isinstance(await wait(conn.ping()), float)


# ------------------------------------------------------------------ sending


async def test_send_iterable_and_async_iterable_as_one_fragmented_message() -> None:
    async def parts() -> AsyncIterator[bytes]:
        for part in (b"ab", b"cd", b"ef"):
            yield part

    async with running() as server, fullduplex.connect(url(server)) as conn:
        await conn.send(["caf", "é", "!"])
        assert await wait(conn.recv()) == "café!"
        await conn.send(parts())
        assert await wait(conn.recv()) == b"abcdef"
        await conn.send(bytearray(b"ba"))
        assert await wait(conn.recv()) == b"ba"
        await conn.send(memoryview(b"mv"))
        assert await wait(conn.recv()) == b"mv"


async def test_send_mixed_fragments_raises_type_error_and_the_connection_survives() -> None:
    async with running() as server, fullduplex.connect(url(server)) as conn:
        with pytest.raises(TypeError):
            await conn.send(["text", b"bytes"])
        # The partial message was terminated; the stream is still well-formed.
        assert await wait(conn.recv()) == "text"
        with pytest.raises(TypeError):
            await conn.send(42)  # type: ignore[arg-type]
        await conn.send("after")
        assert await wait(conn.recv()) == "after"


async def test_two_concurrent_recv_calls_are_refused() -> None:
    async with running() as server, fullduplex.connect(url(server)) as conn:
        first = asyncio.ensure_future(conn.recv())
        await asyncio.sleep(0)  # let it start waiting
        with pytest.raises(fullduplex.InvalidState):
            await wait(conn.recv())
        await conn.send("x")
        assert await wait(first) == "x"


async def test_close_is_idempotent_and_state_goes_to_closed() -> None:
    async with running() as server:
        conn = await fullduplex.connect(url(server))
        assert conn.state is State.OPEN and conn.close_code is None
        await wait(conn.close())
        await wait(conn.close())
        assert conn.state is State.CLOSED
        assert conn.close_code == 1000
        assert conn.close_reason == ""


async def test_ping_after_close_raises_connection_closed() -> None:
    async with running() as server:
        conn = await fullduplex.connect(url(server))
        await wait(conn.close())
        with pytest.raises(ConnectionClosedOK):
            await wait(conn.ping())


async def test_ping_with_a_timeout_against_a_peer_that_never_answers() -> None:
    from e2e.rawclient import raw_server

    async with raw_server() as server:
        task = asyncio.ensure_future(fullduplex.connect(server.url, close_timeout=0.1))
        peer = await server.accept()
        await peer.accept_handshake()
        conn = await wait(task)
        with pytest.raises(TimeoutError):
            await conn.ping(b"anyone?", timeout=0.1)
        assert (await peer.recv_frame()).payload == b"anyone?"
        conn.protocol.abort()  # type: ignore[union-attr]
        await wait(conn.wait_closed())
