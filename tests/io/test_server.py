"""``fullduplex.serve``: handlers, closing, keepalive and timeouts, seen from real sockets."""

from __future__ import annotations

import asyncio
import logging

import pytest

import fullduplex
from e2e.rawclient import (
    BINARY,
    CLOSE,
    PING,
    encode_frame,
    raw_client,
    upgrade_headers,
)
from fullduplex import Connection, ConnectionClosedError, ConnectionClosedOK, State
from support import TIMEOUT, echo, running, url, wait


async def assert_echoes(server: fullduplex.Server) -> None:
    """A well-behaved client gets its text and binary messages back."""
    async with fullduplex.connect(url(server), open_timeout=TIMEOUT) as conn:
        await conn.send("hello")
        assert await asyncio.wait_for(conn.recv(), TIMEOUT) == "hello"
        await conn.send(b"\x00\xff")
        assert await asyncio.wait_for(conn.recv(), TIMEOUT) == b"\x00\xff"


# ------------------------------------------------------------------ handler ending


async def test_handler_returning_closes_with_1000() -> None:
    async def handler(conn: Connection) -> None:
        await conn.send("bye")

    async with running(handler) as server, fullduplex.connect(url(server)) as conn:
        assert await wait(conn.recv()) == "bye"
        with pytest.raises(ConnectionClosedOK) as info:
            await wait(conn.recv())
        assert info.value.code == 1000
        assert conn.close_code == 1000


async def test_handler_returning_closes_with_1000_seen_by_a_raw_client() -> None:
    async def handler(conn: Connection) -> None:
        return

    async with running(handler) as server, raw_client(server.port) as peer:
        await peer.expect_close(1000)


async def test_handler_raising_closes_with_1011_logs_and_the_server_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def handler(conn: Connection) -> None:
        message = await conn.recv()
        if message == "explode":
            raise RuntimeError("boom in handler")
        await conn.send(message)
        await echo(conn)

    caplog.set_level(logging.ERROR, logger="fullduplex")
    async with running(handler) as server:
        async with fullduplex.connect(url(server)) as conn:
            await conn.send("explode")
            with pytest.raises(ConnectionClosedError) as info:
                await wait(conn.recv())
            assert info.value.code == 1011
        await assert_echoes(server)

    failures = [r for r in caplog.records if r.exc_info is not None]
    assert failures, caplog.records
    exc = failures[0].exc_info
    assert exc is not None
    assert isinstance(exc[1], RuntimeError) and str(exc[1]) == "boom in handler"
    assert "Traceback" in caplog.text and "boom in handler" in caplog.text


async def test_handler_raising_does_not_disturb_other_open_connections() -> None:
    async def handler(conn: Connection) -> None:
        async for message in conn:
            if message == "explode":
                raise RuntimeError("boom")
            await conn.send(message)

    async with running(handler) as server:
        async with fullduplex.connect(url(server)) as good, fullduplex.connect(url(server)) as bad:
            await good.send("one")
            assert await wait(good.recv()) == "one"
            await bad.send("explode")
            with pytest.raises(ConnectionClosedError):
                await wait(bad.recv())
            await good.send("two")
            assert await wait(good.recv()) == "two"


# ------------------------------------------------------------------ server lifecycle


async def test_port_zero_picks_a_free_port() -> None:
    async with running() as server:
        assert isinstance(server.port, int) and server.port > 0
        assert server.sockets and server.sockets[0].getsockname()[1] == server.port
        await assert_echoes(server)


async def test_await_serve_returns_a_running_server() -> None:
    server = await fullduplex.serve(echo, "127.0.0.1", 0)
    try:
        assert isinstance(server, fullduplex.Server)
        port = server.port
        await assert_echoes(server)
    finally:
        await wait(server.close())
    with pytest.raises(OSError):
        await fullduplex.connect(f"ws://127.0.0.1:{port}/", open_timeout=TIMEOUT)


async def test_async_with_serve_closes_on_exit() -> None:
    async with fullduplex.serve(echo, "127.0.0.1", 0) as server:
        await assert_echoes(server)
        port = server.port
    with pytest.raises(OSError):
        await fullduplex.connect(f"ws://127.0.0.1:{port}/", open_timeout=TIMEOUT)


async def test_serve_forever_returns_after_close() -> None:
    server = await fullduplex.serve(echo, "127.0.0.1", 0)
    task = asyncio.ensure_future(server.serve_forever())
    await assert_echoes(server)
    assert not task.done()
    await wait(server.close())
    await wait(task)
    await wait(server.wait_closed())


async def test_close_sends_1001_to_every_client_and_waits_for_the_handlers() -> None:
    finished: list[str] = []
    started = asyncio.Event()
    count = 0

    async def handler(conn: Connection) -> None:
        nonlocal count
        count += 1
        if count == 3:
            started.set()
        try:
            await echo(conn)
        finally:
            finished.append("done")

    server = await fullduplex.serve(handler, "127.0.0.1", 0)
    clients = [await fullduplex.connect(url(server)) for _ in range(3)]
    await wait(started.wait())
    assert len(server.connections) == 3
    await wait(server.close(), 3)
    assert finished == ["done"] * 3
    assert not server.connections
    for client in clients:
        with pytest.raises(ConnectionClosedOK) as info:
            await wait(client.recv())
        assert info.value.code == 1001
        await wait(client.wait_closed())
        assert client.close_code == 1001
        assert client.state is State.CLOSED


async def test_close_is_bounded_when_a_client_never_answers_the_close() -> None:
    loop = asyncio.get_running_loop()
    server = await fullduplex.serve(echo, "127.0.0.1", 0, close_timeout=0.2)
    try:
        async with raw_client(server.port) as peer:
            good = await fullduplex.connect(url(server))
            await good.send("x")
            assert await wait(good.recv()) == "x"
            start = loop.time()
            await wait(server.close(), 3)
            elapsed = loop.time() - start
            assert elapsed < 0.2 + 1.5, elapsed
            # The silent client got the close frame, then the connection was dropped.
            frame = await peer.recv_frame()
            assert frame.opcode == CLOSE and frame.close_code == 1001
            await peer.expect_eof()
            # The well-behaved one finished the closing handshake.
            with pytest.raises(ConnectionClosedOK):
                await wait(good.recv())
    finally:
        await wait(server.close())


async def test_close_with_a_handler_that_ignores_the_connection_is_bounded() -> None:
    never = asyncio.Event()

    async def stubborn(conn: Connection) -> None:
        await never.wait()

    loop = asyncio.get_running_loop()
    server = await fullduplex.serve(stubborn, "127.0.0.1", 0, close_timeout=0.2)
    client = await fullduplex.connect(url(server))
    start = loop.time()
    await wait(server.close(), 3)
    assert loop.time() - start < 0.2 + 1.5
    with pytest.raises(ConnectionClosedOK):
        await wait(client.recv())


# ------------------------------------------------------------------ ping / keepalive


async def test_keepalive_timeout_closes_a_silent_peer_with_1011() -> None:
    loop = asyncio.get_running_loop()
    async with running(ping_interval=0.1, ping_timeout=0.2) as server:
        async with raw_client(server.port) as peer:
            start = loop.time()
            before = await peer.expect_close(1011, reply=False)
            elapsed = loop.time() - start
            assert before and all(f.opcode == PING for f in before), before
            assert 0.25 <= elapsed < 0.3 + 1.5, elapsed
        await assert_echoes(server)


async def test_keepalive_does_not_close_a_peer_that_keeps_sending_data() -> None:
    """A big message trickling in counts as liveness even if pings go unanswered."""
    async with running(ping_interval=0.1, ping_timeout=0.25) as server:
        async with raw_client(server.port) as peer:
            payload = bytes(range(256)) * 40
            frame = encode_frame(BINARY, payload)
            chunks = 8
            step = -(-len(frame) // chunks)
            pings = 0
            # Send the next piece each time a ping arrives (never answering it): the
            # message takes about 0.8 s, more than ping_interval + ping_timeout.
            for start in range(0, len(frame), step):
                got = await peer.recv_frame()
                assert got.opcode == PING, got
                pings += 1
                await peer.send(frame[start : start + step])
            assert pings == chunks
            while True:
                got = await peer.recv_frame()
                if got.opcode != PING:
                    break
            assert (got.opcode, got.payload) == (BINARY, payload)


# ------------------------------------------------------------------ open_timeout


async def _trickle_until_dropped(port: int, data: bytes, pace: float) -> tuple[float, int]:
    """Write ``data`` one byte at a time, ``pace`` apart, until the server drops us.

    Returns (seconds until dropped, bytes written). The pacing is the time this
    client waits for the server to react (EOF or reset) before writing again.
    """
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    start = loop.time()
    sent = 0
    try:
        for byte in data:
            writer.write(bytes([byte]))
            sent += 1
            try:
                if await asyncio.wait_for(reader.read(1), pace) == b"":
                    break
                raise AssertionError("the server answered an unfinished request")
            except asyncio.TimeoutError:
                continue
            except ConnectionError:
                break
        else:
            raise AssertionError("the whole request went through without a drop")
        return loop.time() - start, sent
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except ConnectionError:
            pass


async def test_open_timeout_drops_a_client_sending_its_request_byte_by_byte() -> None:
    async with running(open_timeout=0.3) as server:
        request = "\r\n".join(
            ["GET / HTTP/1.1", *(f"{k}: {v}" for k, v in upgrade_headers(server.port)), "", ""]
        ).encode()
        slow = asyncio.ensure_future(_trickle_until_dropped(server.port, request, 0.05))
        await assert_echoes(server)  # served while the slow one is dribbling
        elapsed, sent = await wait(slow)
        assert 0.25 <= elapsed < 0.3 + 1.5, elapsed
        assert sent < len(request)
        await assert_echoes(server)


async def test_open_timeout_drops_a_client_that_sends_nothing() -> None:
    loop = asyncio.get_running_loop()
    async with running(open_timeout=0.2) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        start = loop.time()
        try:
            await assert_echoes(server)
            try:
                assert await wait(reader.read(1)) == b""
            except ConnectionError:
                pass
            elapsed = loop.time() - start
            assert 0.15 <= elapsed < 0.2 + 1.5, elapsed
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except ConnectionError:
                pass


async def test_open_timeout_does_not_touch_an_open_connection() -> None:
    async with running(open_timeout=0.1) as server, fullduplex.connect(url(server)) as conn:
        # Nothing ends the connection within three open_timeouts...
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(conn.wait_closed(), 0.3)
        # ...and it still works.
        await conn.send("still here")
        assert await wait(conn.recv()) == "still here"
        assert conn.state is State.OPEN


# ------------------------------------------------------------------ other event loops


def test_serve_and_connect_on_uvloop() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def main() -> None:
        async with running(close_timeout=0.1) as server:
            await asyncio.wait_for(assert_echoes(server), 1)

    loop = uvloop.new_event_loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


async def test_cancelling_serve_forever_closes_the_server() -> None:
    server = await fullduplex.serve(echo, "127.0.0.1", 0)
    port = server.port
    client = await fullduplex.connect(url(server))
    task = asyncio.ensure_future(server.serve_forever())
    await asyncio.sleep(0)  # let it start waiting
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await wait(task)
    with pytest.raises(ConnectionClosedOK) as info:
        await wait(client.recv())
    assert info.value.code == 1001
    with pytest.raises(OSError):
        await fullduplex.connect(f"ws://127.0.0.1:{port}/", open_timeout=TIMEOUT)


async def test_connections_take_weak_references_and_attributes() -> None:
    # Slots keep connections small, yet applications may still keep them in a
    # WeakSet and hang their own attributes on them.
    import weakref

    seen: weakref.WeakSet[object] = weakref.WeakSet()

    class Listener:
        def on_open(self, ws: object) -> None:
            seen.add(ws)
            seen.add(ws.core)  # type: ignore[attr-defined]
            ws.user = "ada"  # type: ignore[attr-defined]

        def on_message(self, ws: object, data: object) -> None:
            ws.send(ws.user)  # type: ignore[attr-defined]

    async with fullduplex.serve_callbacks(Listener, "127.0.0.1", 0) as server:
        async with fullduplex.connect(f"ws://127.0.0.1:{server.port}/") as client:
            await client.send("who?")
            assert await asyncio.wait_for(client.recv(), TIMEOUT) == "ada"
            assert len(seen) == 2
