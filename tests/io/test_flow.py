"""Flow control end to end: a slow reader on either side slows the writer down.

Kernel socket buffers on loopback can absorb megabytes, which would hide the
library's own buffering; the sockets here get small buffers so the effects show
after a few hundred kilobytes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

import fullduplex
from e2e.rawclient import (
    BINARY,
    PING,
    PONG,
    TEXT,
    accept_key,
    encode_frame,
    new_key,
    raw_client,
    upgrade_headers,
)
from fullduplex import Connection, ConnectionClosedError, InvalidState

TIMEOUT = 5.0
SMALL = 16 * 1024  # socket buffer size asked for (Linux doubles it)


def listening_socket(*, rcvbuf: int | None = None, sndbuf: int | None = None) -> socket.socket:
    """A listening socket on 127.0.0.1; accepted sockets inherit its buffer sizes."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    if sndbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    return sock


async def connected_socket(
    port: int, *, rcvbuf: int | None = None, sndbuf: int | None = None
) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    if sndbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return sock


@asynccontextmanager
async def running(
    handler: Callable[[Connection], Awaitable[None]], sock: socket.socket, **kwargs: Any
) -> AsyncIterator[fullduplex.Server]:
    async with fullduplex.serve(handler, None, sock=sock, **kwargs) as server:
        yield server


def recorder() -> tuple[asyncio.Future[Any], Callable[[Any], None]]:
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def record(value: Any) -> None:
        if not future.done():
            future.set_result(value)

    return future, record


async def wait(awaitable: Awaitable[Any], timeout: float = TIMEOUT) -> Any:
    return await asyncio.wait_for(asyncio.ensure_future(awaitable), timeout)


async def stalls(future: asyncio.Future[Any], window: float = 0.3) -> bool:
    """Whether ``future`` is still pending after ``window`` seconds."""
    done, _ = await asyncio.wait([future], timeout=window)
    return not done


async def echo(conn: Connection) -> None:
    async for message in conn:
        await conn.send(message)


async def assert_echoes(port: int) -> None:
    async with fullduplex.connect(f"ws://127.0.0.1:{port}/", open_timeout=TIMEOUT) as conn:
        await conn.send("hello")
        assert await wait(conn.recv()) == "hello"


# A small hand-made client over asyncio streams: a StreamReader stops reading from
# the socket once ``limit`` bytes wait in it, so "the client does not read" is just
# "the test does not call read()".


async def stream_client(
    port: int, *, limit: int = 1024, rcvbuf: int | None = SMALL
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    sock = await connected_socket(port, rcvbuf=rcvbuf)
    reader, writer = await asyncio.open_connection(sock=sock, limit=limit)
    key = new_key()
    lines = ["GET / HTTP/1.1", *(f"{k}: {v}" for k, v in upgrade_headers(port, key)), "", ""]
    writer.write("\r\n".join(lines).encode())
    head = await wait(reader.readuntil(b"\r\n\r\n"))
    assert head.startswith(b"HTTP/1.1 101 "), head
    assert accept_key(key).encode() in head
    return reader, writer


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """(opcode, payload) of the next frame from a server (unmasked)."""
    b0, b1 = await reader.readexactly(2)
    length = b1 & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", await reader.readexactly(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", await reader.readexactly(8))
    assert not b1 & 0x80, "server frames are not masked"
    return b0 & 0x0F, await reader.readexactly(length)


async def close_writer(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        await writer.wait_closed()
    except ConnectionError:
        pass


# ------------------------------------------------------------------ reading side


class Reader:
    """A handler that reads only when told to, and records what it got."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.conn: asyncio.Future[Connection] = loop.create_future()
        self.orders: asyncio.Queue[int] = asyncio.Queue()
        self.done: asyncio.Queue[int] = asyncio.Queue()
        self.got: list[Any] = []

    async def __call__(self, conn: Connection) -> None:
        self.conn.set_result(conn)
        while True:
            count = await self.orders.get()
            if count < 0:
                return
            for _ in range(count):
                self.got.append(await conn.recv())
            self.done.put_nowait(len(self.got))

    async def read(self, count: int) -> int:
        self.orders.put_nowait(count)
        return int(await wait(self.done.get()))

    def stop(self) -> None:
        self.orders.put_nowait(-1)


async def test_server_pauses_reading_at_max_queue_and_resumes_when_the_handler_reads() -> None:
    handler = Reader()
    async with running(handler, listening_socket(), max_queue=4, close_timeout=1) as server:
        async with raw_client(server.port) as peer:
            conn = await wait(handler.conn)
            assert conn.protocol is not None and conn.protocol.transport is not None
            transport = conn.protocol.transport

            def batch(first: int, count: int, ping: bytes) -> bytes:
                frames = [encode_frame(TEXT, f"m{i}".encode()) for i in range(first, first + count)]
                return b"".join(frames) + encode_frame(PING, ping)

            # Three queued messages: still reading (the pong proves they arrived).
            await peer.send(batch(0, 3, b"a"))
            assert (await peer.recv_frame()).payload == b"a"
            assert transport.is_reading()

            # The fourth fills the queue: reading pauses.
            await peer.send(batch(3, 1, b"b"))
            assert (await peer.recv_frame()).payload == b"b"
            assert not transport.is_reading()

            # What comes now stays in the socket: no pong.
            await peer.send(batch(4, 5, b"c"))
            with pytest.raises(asyncio.TimeoutError):
                await peer.recv_frame(timeout=0.3)

            # The handler reads down to the low-water mark: reading resumes.
            assert await handler.read(3) == 3
            frame = await peer.recv_frame()
            assert (frame.opcode, frame.payload) == (PONG, b"c")

            assert await handler.read(6) == 9
            assert handler.got == [f"m{i}" for i in range(9)]
            assert transport.is_reading()
            handler.stop()
            await peer.expect_close(1000)


async def test_client_send_blocks_while_the_server_handler_does_not_read() -> None:
    handler = Reader()
    message = os.urandom(32 * 1024)  # incompressible
    count = 64  # 2 MiB: far beyond the small socket buffers plus the client's write limit
    sock = listening_socket(rcvbuf=SMALL)
    async with running(handler, sock, max_queue=4, max_size=None, close_timeout=1) as server:
        client_sock = await connected_socket(server.port, sndbuf=SMALL)
        async with fullduplex.connect(
            f"ws://127.0.0.1:{server.port}/", sock=client_sock, write_limit=32 * 1024
        ) as conn:
            sent = 0

            async def sender() -> None:
                nonlocal sent
                for i in range(count):
                    await conn.send(bytes([i]) + message)
                    sent += 1

            task = asyncio.ensure_future(sender())
            await wait(handler.conn)
            try:
                assert await stalls(task), "send() never waited"
                assert 4 <= sent < count
                assert conn.protocol is not None
                assert conn.protocol.write_paused
                assert conn.protocol.buffered_amount > 0
                stalled_at = sent
                assert await stalls(task, 0.1)
                assert sent == stalled_at  # still stuck, not merely slow

                assert await handler.read(count) == count
                await wait(task)
            finally:
                task.cancel()
                handler.stop()
            assert [m[0] for m in handler.got] == list(range(count))
            assert all(m[1:] == message for m in handler.got)


# ------------------------------------------------------------------ writing side


async def test_server_send_waits_while_the_client_does_not_read_and_then_proceeds() -> None:
    message = os.urandom(64 * 1024)
    count = 40
    state: dict[str, Any] = {"sent": 0}
    finished, record = recorder()

    async def pusher(conn: Connection) -> None:
        state["conn"] = conn
        for i in range(count):
            await conn.send(bytes([i]) + message)
            state["sent"] += 1
        record(state["sent"])
        await conn.wait_closed()

    sock = listening_socket(sndbuf=SMALL)
    async with running(pusher, sock, write_limit=32 * 1024) as server:
        reader, writer = await stream_client(server.port)
        try:
            assert await stalls(finished), "send() never waited for the reader"
            conn = state["conn"]
            assert 0 < state["sent"] < count
            assert conn.protocol.write_paused
            assert conn.protocol.buffered_amount > 32 * 1024
            # Bounded: the asyncio API waits rather than buffering everything.
            assert conn.protocol.buffered_amount < 32 * 1024 + 2 * len(message)

            got = []
            for _ in range(count):
                got.append(await wait(read_frame(reader)))
            assert await wait(finished) == count
            assert [(op, p[0]) for op, p in got] == [(BINARY, i) for i in range(count)]
            assert all(p[1:] == message for _, p in got)
        finally:
            await close_writer(writer)


async def test_max_unsent_drops_a_client_that_stops_reading_while_others_go_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    chunk = os.urandom(64 * 1024)
    outcome, record = recorder()
    loop = asyncio.get_running_loop()

    async def handler(conn: Connection) -> None:
        assert conn.request is not None
        if conn.request.headers.get("X-Role") != "push":
            await echo(conn)
            return
        pushed = 0
        assert conn.protocol is not None
        try:
            for _ in range(200):  # 12.5 MiB, without ever waiting
                conn.protocol.send(chunk)
                pushed += 1
        except InvalidState:
            pass
        failed_at = loop.time()
        await conn.wait_closed()
        try:
            await conn.recv()
        except ConnectionClosedError as exc:
            record((pushed, exc.sent_code, exc.code, loop.time() - failed_at))

    caplog.set_level(logging.INFO, logger="fullduplex")
    sock = listening_socket(sndbuf=SMALL)
    async with running(handler, sock, max_unsent=256 * 1024, close_timeout=0.3) as server:
        # The hand-made client sends X-Role: push by being the only one asking.
        rsock = await connected_socket(server.port, rcvbuf=SMALL)
        reader, writer = await asyncio.open_connection(sock=rsock, limit=1024)
        try:
            key = new_key()
            headers = [*upgrade_headers(server.port, key), ("X-Role", "push")]
            lines = ["GET / HTTP/1.1", *(f"{k}: {v}" for k, v in headers), "", ""]
            writer.write("\r\n".join(lines).encode())
            head = await wait(reader.readuntil(b"\r\n\r\n"))
            assert head.startswith(b"HTTP/1.1 101 ")

            await assert_echoes(server.port)  # unaffected while the other is stuck
            pushed, sent_code, code, elapsed = await wait(outcome)
            assert pushed < 200
            assert sent_code == 1008
            assert code == 1006  # dropped: the close frame never got through
            assert 0.25 <= elapsed < 0.3 + 1.5, elapsed
            assert "unsent" in caplog.text

            # The client sees the connection end (reset or EOF), never a hang.
            async def drain_all() -> None:
                try:
                    while await reader.read(65536):
                        pass
                except ConnectionError:
                    pass

            await wait(drain_all())
            await assert_echoes(server.port)
        finally:
            await close_writer(writer)


async def test_max_unsent_none_keeps_buffering() -> None:
    chunk = os.urandom(64 * 1024)
    outcome, record = recorder()

    async def handler(conn: Connection) -> None:
        assert conn.protocol is not None
        for _ in range(16):  # 1 MiB, four times the cap used above
            conn.protocol.send(chunk)
        record(conn.protocol.buffered_amount)
        await conn.wait_closed()

    sock = listening_socket(sndbuf=SMALL)
    async with running(handler, sock, max_unsent=None, close_timeout=0.3) as server:
        reader, writer = await stream_client(server.port)
        try:
            assert await wait(outcome) > 256 * 1024
            for _ in range(16):
                op, payload = await wait(read_frame(reader))
                assert (op, payload) == (BINARY, chunk)
        finally:
            await close_writer(writer)
