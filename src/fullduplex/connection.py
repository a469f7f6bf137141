"""The asyncio connection users hold: ``async for``, ``recv``, ``send``, ``close``.

It is a listener of :class:`~fullduplex.io.protocol.WebSocketProtocol`: messages
land in a bounded queue; when the queue is full, reading from the socket pauses
until the application catches up. ``send`` writes at once and waits only while
the transport's buffer is above its high-water mark.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import Any

from .errors import ConnectionClosedOK, InvalidState
from .io.protocol import WebSocketProtocol
from .protocol.connection import State
from .protocol.frames import CloseCode
from .protocol.handshake import Request, Response

__all__ = ["Connection", "Data"]

Data = str | bytes


class Connection:
    """One WebSocket connection, on either side.

    Server handlers receive one; :func:`fullduplex.connect` returns one.

    Args:
        max_queue: how many received messages may wait for :meth:`recv` before
            reading from the socket pauses (``None``: never pause).
    """

    def __init__(self, *, max_queue: int | None = 32) -> None:
        self.max_queue = max_queue
        self._low_water = max(1, max_queue // 4) if max_queue else 0
        self._queue: deque[Data] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self.protocol: WebSocketProtocol | None = None
        self.request: Request | None = None
        self.response: Response | None = None

    # -------------------------------------------------------- listener methods

    def on_open(self, ws: WebSocketProtocol) -> None:
        self.protocol = ws
        self.request = getattr(ws, "request", None)
        self.response = getattr(ws, "response", None)

    def on_message(self, ws: WebSocketProtocol, data: Data) -> None:
        self._queue.append(data)
        self._wake()
        if self.max_queue is not None and len(self._queue) >= self.max_queue:
            ws.pause_reading()

    def on_closing(self, ws: WebSocketProtocol) -> None:
        self._wake()

    def on_close(self, ws: WebSocketProtocol, code: int, reason: str, was_clean: bool) -> None:
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # ------------------------------------------------------------------ state

    def _proto(self) -> WebSocketProtocol:
        if self.protocol is None:
            raise InvalidState("the connection is not open yet")
        return self.protocol

    @property
    def state(self) -> State:
        """CONNECTING, OPEN, CLOSING or CLOSED (numbered like ``readyState``)."""
        return State.CONNECTING if self.protocol is None else self.protocol.state

    @property
    def subprotocol(self) -> str | None:
        """The negotiated subprotocol, or ``None``."""
        return None if self.protocol is None else self.protocol.subprotocol

    @property
    def remote_address(self) -> Any:
        """The peer's socket address."""
        return None if self.protocol is None else self.protocol.remote_address

    @property
    def local_address(self) -> Any:
        """This end's socket address."""
        return None if self.protocol is None else self.protocol.local_address

    @property
    def close_code(self) -> int | None:
        """The peer's close code once closed (1005: none given, 1006: dropped)."""
        return None if self.protocol is None else self.protocol.close_code

    @property
    def close_reason(self) -> str | None:
        """The peer's close reason once closed."""
        return None if self.protocol is None else self.protocol.close_reason

    # -------------------------------------------------------------- receiving

    async def recv(self) -> Data:
        """Return the next message: ``str`` for text, ``bytes`` for binary.

        Messages received before the connection closed are all returned first.

        Raises:
            ConnectionClosedOK: the connection closed normally (1000/1001).
            ConnectionClosedError: it closed with an error or dropped.
        """
        proto = self._proto()
        while not self._queue:
            core = proto.core
            if proto.state is State.CLOSED:
                raise proto.closed_exception()
            if core is not None and core.input_done:
                # Nothing more can come (close frame received, or the connection
                # failed): say so now, not once the TCP connection is gone.
                raise proto.closed_exception()
            if self._waiter is not None:
                raise InvalidState("another coroutine is already waiting in recv()")
            waiter = proto.loop.create_future()
            self._waiter = waiter
            try:
                await waiter
            finally:
                if self._waiter is waiter:
                    self._waiter = None
        data = self._queue.popleft()
        if proto._read_paused and len(self._queue) <= self._low_water:
            proto.resume_reading()
        return data

    def __aiter__(self) -> AsyncIterator[Data]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Data]:
        try:
            while True:
                yield await self.recv()
        except ConnectionClosedOK:
            return

    # ---------------------------------------------------------------- sending

    async def send(
        self,
        message: Data | bytearray | memoryview | Iterable[Data] | AsyncIterable[Data],
        *,
        compress: bool | None = None,
    ) -> None:
        """Send a message: ``str`` as text, bytes-like as binary.

        An iterable or async iterable of ``str`` (or of bytes-like) is sent as one
        message in several fragments, one per item.

        With permessage-deflate negotiated, ``compress=False`` sends this message
        uncompressed and ``True`` compresses it whatever its size; by default
        messages from the size threshold up are compressed.

        Raises:
            ConnectionClosed: the connection is closing or closed.
            TypeError: an unsupported type, or fragments of mixed types.
        """
        proto = self._proto()
        if isinstance(message, (str, bytes, bytearray, memoryview)):
            await self._check_sendable(proto)
            proto.send(message, compress=compress)
        elif isinstance(message, AsyncIterable):
            await self._send_fragments(proto, message.__aiter__(), compress)
        elif isinstance(message, Iterable):
            await self._send_fragments(proto, _aiter_sync(iter(message)), compress)
        else:
            raise TypeError(f"cannot send {type(message).__name__}")
        if proto.write_paused:
            await proto.drain()

    async def _send_fragments(
        self, proto: WebSocketProtocol, it: AsyncIterator[Any], compress: bool | None
    ) -> None:
        try:
            current = await it.__anext__()
        except StopAsyncIteration:
            return
        text = isinstance(current, str)
        first = True
        while True:
            if not isinstance(current, (str, bytes, bytearray, memoryview)) or (
                isinstance(current, str) != text
            ):
                if not first:
                    # Close the message properly before complaining.
                    proto.send_fragment("" if text else b"", first=False, fin=True)
                raise TypeError("message fragments must all be str or all bytes-like")
            try:
                nxt = await it.__anext__()
                last = False
            except StopAsyncIteration:
                last = True
            await self._check_sendable(proto)
            proto.send_fragment(current, first=first, fin=last, compress=compress)
            if last:
                return
            first = False
            current = nxt
            if proto.write_paused:
                await proto.drain()

    async def _check_sendable(self, proto: WebSocketProtocol) -> None:
        if proto.state is not State.OPEN:
            core = proto.core
            if core is None or not core.input_done:
                # We sent a close frame: the peer's answer tells how it ended.
                await self._wait_closed(proto)
            raise proto.closed_exception()

    async def ping(self, data: bytes | str | None = None, timeout: float | None = None) -> float:
        """Send a ping and wait for its pong; return the round-trip time in seconds.

        Raises:
            ConnectionClosed: the connection closed before the pong came.
            TimeoutError: no pong within ``timeout`` seconds.
        """
        proto = self._proto()
        await self._check_sendable(proto)
        if isinstance(data, str):
            data = data.encode("utf-8")
        waiter = proto.ping(data)
        if timeout is None:
            return await waiter
        return await asyncio.wait_for(waiter, timeout)

    async def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Run the closing handshake and wait until the TCP connection is closed.

        Bounded by the connection's ``close_timeout``; harmless when already closing.
        """
        proto = self._proto()
        proto.close(code, reason)
        await self._wait_closed(proto)

    async def wait_closed(self) -> None:
        """Wait until the connection is closed."""
        await asyncio.shield(self._proto().closed)

    async def _wait_closed(self, proto: WebSocketProtocol) -> None:
        if not proto.closed.done():
            try:
                await asyncio.wait_for(asyncio.shield(proto.closed), proto.close_timeout + 1)
            except asyncio.TimeoutError:
                proto.abort()
                await asyncio.shield(proto.closed)

    def __repr__(self) -> str:
        return f"<Connection {self.state.name} remote={self.remote_address}>"


async def _aiter_sync(it: Iterable[Any]) -> AsyncIterator[Any]:
    for item in it:  # type: ignore[attr-defined]
        yield item
