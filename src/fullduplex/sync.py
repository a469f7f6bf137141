"""A blocking WebSocket client for scripts and REPLs.

::

    from fullduplex.sync import connect

    with connect("ws://127.0.0.1:9001/") as ws:
        ws.send("Hello WebSockets!")
        print(ws.recv(timeout=5))

Design
------
Each connection runs an asyncio event loop in a background thread and drives the
same io layer as the asyncio API (:func:`fullduplex.connect_callbacks`), with a
:class:`~fullduplex.Connection` subclass as its listener. We chose this over a
second, socket-blocking implementation because:

* there is one implementation of the protocol, the handshake (redirects, proxies,
  TLS, compression) and the flow control, so the two clients cannot drift apart;
* the timers keep running while the caller is blocked elsewhere or idle: keepalive
  pings are answered and sent, close timeouts fire;
* thread safety comes for free: everything that touches the connection runs on its
  loop thread, so one thread may ``recv`` while others ``send`` or ``close``.

Received messages cross into the caller's thread through a deque guarded by a
:class:`threading.Condition`, so ``recv(timeout=...)`` waits in the caller's thread
and a timeout never has to cancel anything on the loop: a message cannot be lost
to a timeout. ``send``, ``ping`` and ``close`` run on the loop through
:func:`asyncio.run_coroutine_threadsafe` and the caller waits for their result.
The loop thread ends when the connection is closed with :meth:`close` (also called
by ``with`` and when the object is garbage-collected).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
import weakref
from collections import deque
from collections.abc import Coroutine, Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

from .client import connect_callbacks
from .connection import Connection
from .errors import ConnectionClosed, ConnectionClosedError, ConnectionClosedOK
from .io.protocol import WebSocketProtocol
from .protocol.connection import State
from .protocol.frames import CloseCode

__all__ = ["ClientConnection", "connect"]

T = TypeVar("T")
Data = str | bytes


class _Bridge(Connection):
    """The listener, on the loop thread: hands messages to the caller's threads."""

    def __init__(self, max_queue: int | None) -> None:
        super().__init__(max_queue=max_queue)
        self.ready = threading.Condition()
        self.inbox: deque[Data] = deque()
        self.ended: ConnectionClosed | None = None  # set once no message can come
        self.reading_paused = False

    def on_message(self, ws: WebSocketProtocol, data: Data) -> None:
        with self.ready:
            self.inbox.append(data)
            self.ready.notify()
            if self.max_queue is not None and len(self.inbox) >= self.max_queue:
                self.reading_paused = True
                ws.pause_reading()

    def on_closing(self, ws: WebSocketProtocol) -> None:
        # A close frame arrived or the connection failed: no more messages.
        with self.ready:
            self.ended = ws.closed_exception()  # type: ignore[assignment]
            self.ready.notify_all()

    def on_close(self, ws: WebSocketProtocol, code: int, reason: str, was_clean: bool) -> None:
        super().on_close(ws, code, reason, was_clean)
        with self.ready:
            self.ended = ws.closed_exception()  # type: ignore[assignment]
            self.ready.notify_all()


class _Runner:
    """The loop thread. Kept apart from :class:`ClientConnection` so that the
    connection object can be garbage-collected (and then stops the thread)."""

    def __init__(self, bridge: _Bridge) -> None:
        self.bridge = bridge
        self.loop = asyncio.new_event_loop()
        self.lock = threading.Lock()
        self.stopped = False
        self.thread = threading.Thread(target=self._main, name="fullduplex-sync", daemon=True)
        self.thread.start()

    def _main(self) -> None:
        loop = self.loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            # Stopped without close() (garbage collection): drop the connection.
            proto = self.bridge.protocol
            if proto is not None and not proto.closed.done():
                proto.abort()
                loop.run_until_complete(proto.closed)
            # Whatever was submitted before stop() ends as cancelled, so no caller
            # waits forever (they get the connection's closed error instead).
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            if tasks:
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T] | None:
        """Run ``coro`` on the loop; ``None`` (and ``coro`` closed) if it has stopped."""
        with self.lock:
            if self.stopped:
                coro.close()
                return None
            return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self) -> None:
        with self.lock:
            if self.stopped:
                return
            self.stopped = True
            self.loop.call_soon_threadsafe(self.loop.stop)
        if threading.current_thread() is not self.thread:
            self.thread.join()


class ClientConnection:
    """A blocking WebSocket client connection; see :func:`connect`.

    All methods may be called from any thread.
    """

    def __init__(self, runner: _Runner, bridge: _Bridge, close_timeout: float) -> None:
        self._runner = runner
        self._bridge = bridge
        self._close_timeout = close_timeout
        self._finalizer = weakref.finalize(self, runner.stop)

    # ------------------------------------------------------------------ state

    @property
    def state(self) -> State:
        """CONNECTING, OPEN, CLOSING or CLOSED (numbered like ``readyState``)."""
        return self._bridge.state

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol the server selected, or ``None``."""
        return self._bridge.subprotocol

    @property
    def close_code(self) -> int | None:
        """The peer's close code once known (1005: none given, 1006: dropped).

        Known as soon as the peer's close frame arrives, so it is set when
        :meth:`recv` or iteration reports the end, before the TCP close.
        """
        code = self._bridge.close_code
        ended = self._bridge.ended
        return ended.code if code is None and ended is not None else code

    @property
    def close_reason(self) -> str | None:
        """The peer's close reason once known."""
        reason = self._bridge.close_reason
        ended = self._bridge.ended
        return ended.reason if reason is None and ended is not None else reason

    @property
    def remote_address(self) -> Any:
        return self._bridge.remote_address

    @property
    def local_address(self) -> Any:
        return self._bridge.local_address

    @property
    def response(self) -> Any:
        """The server's handshake response (status, reason, headers)."""
        return self._bridge.response

    # -------------------------------------------------------------- receiving

    def recv(self, timeout: float | None = None) -> Data:
        """Return the next message: ``str`` for text, ``bytes`` for binary.

        Messages received before the connection closed are returned first.

        Raises:
            TimeoutError: no message within ``timeout`` seconds (nothing is lost:
                a later ``recv`` gets the next message).
            ConnectionClosedOK: the connection closed normally (1000/1001).
            ConnectionClosedError: it closed with an error or dropped.
        """
        bridge = self._bridge
        deadline = None if timeout is None else time.monotonic() + timeout
        with bridge.ready:
            while not bridge.inbox:
                if bridge.ended is not None:
                    raise bridge.ended
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(f"no message within {timeout} s")
                bridge.ready.wait(remaining)
            data = bridge.inbox.popleft()
            if bridge.reading_paused and len(bridge.inbox) <= bridge._low_water:
                bridge.reading_paused = False
                proto = bridge.protocol
                if proto is not None:
                    self._runner.loop.call_soon_threadsafe(proto.resume_reading)
        return data

    def __iter__(self) -> Iterator[Data]:
        """Yield messages until the connection closes; ends quietly on a normal close."""
        try:
            while True:
                yield self.recv()
        except ConnectionClosedOK:
            return

    # ---------------------------------------------------------------- sending

    def send(self, message: Data | bytearray | memoryview | Iterable[Data]) -> None:
        """Send a message: ``str`` as text, bytes-like as binary.

        An iterable of ``str`` (or of bytes-like) is sent as one fragmented message.
        Blocks while the connection's write buffer is above its ``write_limit``.

        Raises:
            ConnectionClosed: the connection is closing or closed.
            TypeError: an unsupported type.
        """
        if not isinstance(message, (str, bytes, bytearray, memoryview)):
            message = list(message)  # an iterator must not be consumed on another thread
        self._run(self._bridge.send(message))

    def ping(self, data: bytes | str | None = None, timeout: float | None = None) -> float:
        """Send a ping and wait for its pong; return the round-trip time in seconds.

        Raises:
            TimeoutError: no pong within ``timeout`` seconds.
            ConnectionClosed: the connection closed before the pong came.
        """
        return self._run(self._bridge.ping(data), timeout)

    def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Run the closing handshake, wait for the TCP close, and stop the loop thread.

        Bounded by ``close_timeout``; harmless when already closed.

        Raises:
            ValueError: ``code`` may not be sent or ``reason`` is over 123 bytes.
        """
        future = self._runner.submit(self._bridge.close(code, reason))
        if future is not None:
            try:
                future.result(self._close_timeout + 5)
            except ValueError:
                raise  # a bad code or reason: the connection is still open
            except (Exception, concurrent.futures.CancelledError):
                pass  # closed anyway; how is in close_code and close_reason
        self._runner.stop()

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        future = self._runner.submit(coro)
        if future is None:
            raise self._closed_error()
        try:
            return future.result(timeout)
        except concurrent.futures.CancelledError:
            raise self._closed_error() from None
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"no answer within {timeout} s") from None

    def _closed_error(self) -> ConnectionClosed:
        ended = self._bridge.ended
        if ended is not None:
            return ended
        return ConnectionClosedError(CloseCode.ABNORMAL_CLOSURE)

    # ---------------------------------------------------------- context manager

    def __enter__(self) -> ClientConnection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<ClientConnection {self.state.name} remote={self.remote_address}>"


def connect(
    uri: str,
    *,
    subprotocols: Sequence[str] | None = None,
    additional_headers: Iterable[tuple[str, str]] | Mapping[str, str] | None = None,
    origin: str | None = None,
    open_timeout: float | None = 10,
    max_queue: int | None = 32,
    close_timeout: float = 10,
    **options: Any,
) -> ClientConnection:
    """Connect to a WebSocket server and return a blocking connection.

    Use it as a context manager (``with connect(url) as ws: ...``) or call
    :meth:`ClientConnection.close` when done.

    Args:
        uri: a ``ws://`` or ``wss://`` URL.
        subprotocols: subprotocols to offer, in order of preference.
        additional_headers: extra request headers.
        origin: value of the ``Origin`` header.
        open_timeout: seconds allowed for TCP connect plus the handshake.
        max_queue: messages buffered before reading from the socket pauses.
        close_timeout: seconds allowed for the closing handshake.
        **options: any other option of :func:`fullduplex.connect` (``max_size``,
            ``ping_interval``, ``ping_timeout``, ``compression``, ``ssl``, ...).

    Raises:
        InvalidURI, InvalidStatus, InvalidResponse, TimeoutError, OSError: as
        :func:`fullduplex.connect`.
    """
    bridge = _Bridge(max_queue)
    runner = _Runner(bridge)
    future = runner.submit(
        connect_callbacks(
            uri,
            bridge,
            subprotocols=subprotocols,
            additional_headers=additional_headers,
            origin=origin,
            open_timeout=open_timeout,
            close_timeout=close_timeout,
            **options,
        )
    )
    assert future is not None
    try:
        future.result()
    except BaseException:
        runner.stop()
        raise
    return ClientConnection(runner, bridge, close_timeout)
