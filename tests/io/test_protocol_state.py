"""State a connection creates when first asked for: its addresses and ``closed``."""

from __future__ import annotations

import asyncio
from typing import Any

import fullduplex
from fullduplex.io.protocol import WebSocketProtocol
from fullduplex.protocol.connection import Side

TIMEOUT = 5.0
REQUEST = (
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


class Recorder:
    """A listener that hands over its connection when it opens and when it closes."""

    def __init__(self, opened: asyncio.Queue[Any], closed: asyncio.Queue[Any]) -> None:
        self.opened, self.closed = opened, closed

    def on_open(self, ws: WebSocketProtocol) -> None:
        self.opened.put_nowait(ws)

    def on_message(self, ws: WebSocketProtocol, data: str | bytes) -> None:
        pass

    def on_close(self, ws: WebSocketProtocol, code: int, reason: str, was_clean: bool) -> None:
        self.closed.put_nowait(ws)


async def open_one(
    port: int, opened: asyncio.Queue[Any]
) -> tuple[asyncio.StreamWriter, WebSocketProtocol]:
    """Open a connection; returns the client's writer and the server's protocol."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(REQUEST)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    assert head.startswith(b"HTTP/1.1 101 ")
    return writer, await asyncio.wait_for(opened.get(), TIMEOUT)


async def test_addresses_before_during_and_after_the_connection() -> None:
    loop = asyncio.get_running_loop()
    unconnected = WebSocketProtocol(Side.SERVER, loop=loop)
    assert unconnected.remote_address is None
    assert unconnected.local_address is None

    opened: asyncio.Queue[Any] = asyncio.Queue()
    lost: asyncio.Queue[Any] = asyncio.Queue()
    async with fullduplex.serve_callbacks(lambda: Recorder(opened, lost), port=0) as server:
        asked_writer, asked = await open_one(server.port, opened)
        unasked_writer, unasked = await open_one(server.port, opened)
        client_ends = [
            (w.get_extra_info("sockname"), w.get_extra_info("peername"))
            for w in (asked_writer, unasked_writer)
        ]
        assert (asked.remote_address, asked.local_address) == client_ends[0]
        asked_writer.close()
        unasked_writer.close()
        gone = {await asyncio.wait_for(lost.get(), TIMEOUT) for _ in range(2)}
        assert gone == {asked, unasked}
        # Still known once the connection is gone, whether asked for before or not.
        assert (asked.remote_address, asked.local_address) == client_ends[0]
        assert (unasked.remote_address, unasked.local_address) == client_ends[1]


async def test_closed_resolves_whenever_it_is_first_asked_for() -> None:
    opened: asyncio.Queue[Any] = asyncio.Queue()
    lost: asyncio.Queue[Any] = asyncio.Queue()
    async with fullduplex.serve_callbacks(lambda: Recorder(opened, lost), port=0) as server:
        early_writer, early = await open_one(server.port, opened)
        late_writer, late = await open_one(server.port, opened)

        # Asked for while open: pending, resolved by the loss.
        waiting = early.closed
        assert not waiting.done()
        assert early.closed is waiting
        early_writer.transport.abort()
        await asyncio.wait_for(waiting, TIMEOUT)
        assert await asyncio.wait_for(lost.get(), TIMEOUT) is early

        # First asked for after the loss: already resolved.
        late_writer.close()
        assert await asyncio.wait_for(lost.get(), TIMEOUT) is late
        assert late.closed.done()
        assert late.closed.result() is None
