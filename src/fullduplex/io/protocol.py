"""The asyncio adapter shared by both sides: an :class:`asyncio.Protocol` around the core.

After the opening handshake (done by the subclasses in :mod:`.server` and
:mod:`.client`), bytes from the transport go into the sans-I/O
:class:`~fullduplex.protocol.Connection`; what it wants written goes out in one
``transport.write`` per batch; its events go to a *listener* by plain method calls.
No task and no future is created per message: the asyncio ``Connection``, the
browser-style ``WebSocket`` and the broker are all listeners.

Sends made while events are being dispatched (an echo, a broadcast from a message
callback) are coalesced with the pongs and close echoes of the same read into one
write at the end of ``data_received``.

Timers kept here, because the core has no clock: the handshake timeout, keepalive
pings and their timeout, and the close timeout.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import OrderedDict, deque
from typing import Any, Protocol, cast

from ..errors import InvalidState, closed_error
from ..protocol.connection import Connection as Core, Side, State
from ..protocol.deflate import PerMessageDeflate
from ..protocol.events import Pong
from ..protocol.frames import CloseCode

__all__ = ["Listener", "OpenDeadlines", "WebSocketProtocol"]

logger = logging.getLogger("fullduplex")

DEFAULT_WRITE_LIMIT = 64 * 1024
# Enum members as constants: an enum class attribute costs ~100 ns on Python 3.11.
_CONNECTING, _OPEN, _CLOSED = State.CONNECTING, State.OPEN, State.CLOSED
_UNSET: Any = object()
_GATHER = 64 * 1024


class Listener(Protocol):
    """What a :class:`WebSocketProtocol` calls; every method runs on the event loop."""

    def on_open(self, ws: WebSocketProtocol) -> None:
        """The handshake succeeded; ``ws`` is OPEN and can send."""

    def on_message(self, ws: WebSocketProtocol, data: str | bytes) -> None:
        """A whole message arrived: ``str`` for text, ``bytes`` for binary."""

    def on_closing(self, ws: WebSocketProtocol) -> None:
        """No more messages will come: a close frame arrived or the connection failed."""

    def on_close(self, ws: WebSocketProtocol, code: int, reason: str, was_clean: bool) -> None:
        """The connection is CLOSED; ``code`` is the peer's code (1006 if dropped)."""


class OpenDeadlines:
    """The opening-handshake timeouts of a server's connections, on one timer.

    A timer per connection means arming and cancelling a system timer for every
    handshake. Here a connection joins the bucket of the moment it arrived (buckets
    are ``granularity`` seconds wide) and leaves it when its handshake ends; when a
    bucket expires, the handshakes still in it time out together. A timeout thus
    fires between ``timeout`` and ``timeout + granularity`` seconds after the
    connection arrived.
    """

    __slots__ = ("_buckets", "_loop", "_timer", "granularity", "timeout")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, timeout: float, granularity: float | None = None
    ) -> None:
        self._loop = loop
        self.timeout = timeout
        self.granularity = min(1.0, timeout / 10) if granularity is None else granularity
        # (expiry, members) oldest first; members are the connections still handshaking.
        self._buckets: deque[tuple[float, set[WebSocketProtocol]]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    def add(self, proto: WebSocketProtocol) -> set[WebSocketProtocol]:
        """Start ``proto``'s countdown; returns its bucket (to ``discard`` it from)."""
        buckets = self._buckets
        now = self._loop.time()
        expiry = now + self.timeout + self.granularity
        if buckets and buckets[-1][0] > expiry - self.granularity:
            members = buckets[-1][1]
        else:
            members = set()
            buckets.append((expiry, members))
            if self._timer is None:
                self._timer = self._loop.call_at(expiry, self._expire)
        members.add(proto)
        return members

    def _expire(self) -> None:
        self._timer = None
        buckets = self._buckets
        now = self._loop.time()
        while buckets and buckets[0][0] <= now:
            _, members = buckets.popleft()
            for proto in list(members):
                proto._open_timed_out()
        if buckets:
            self._timer = self._loop.call_at(buckets[0][0], self._expire)

    def close(self) -> None:
        """Stop the timer (the server is closing; its connections are aborted)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._buckets.clear()


class WebSocketProtocol(asyncio.Protocol):
    """One WebSocket connection on an asyncio transport.

    Args:
        side: client or server.
        max_size: largest incoming message in bytes, ``None`` for no limit.
        max_fragments: most frames per incoming message, ``None`` for no limit.
        ping_interval: seconds between keepalive pings, ``None`` to disable.
        ping_timeout: seconds to wait for any data after a ping before failing the
            connection with 1011, ``None`` to disable.
        close_timeout: seconds to wait for the closing handshake and the TCP close.
        open_timeout: seconds allowed for the opening handshake.
        write_limit: high-water mark of the transport's write buffer, in bytes;
            ``send`` waits (``drain``) while the buffer is above it.
        loop: the running event loop (looked up when not given).
        open_deadlines: a server's shared handshake timer, used instead of a timer
            of this connection's own for ``open_timeout``.
    """

    # One per open connection: slots keep an idle connection small. "__dict__" stays
    # so applications and subclasses may still hang their own attributes on it; it is
    # only allocated when they do.
    __slots__ = (
        "__dict__",
        "__weakref__",
        "_close_timer",
        "_closed",
        "_closing_notified",
        "_dispatching",
        "_drain_waiters",
        "_failure_logged",
        "_flush_scheduled",
        "_last_recv",
        "_local_address",
        "_open_deadlines",
        "_open_timer",
        "_ping_timer",
        "_pings",
        "_pong_timer",
        "_read_paused",
        "_remote_address",
        "_tls",
        "_transport_closed",
        "_write_paused",
        "close_timeout",
        "core",
        "deflate",
        "extensions",
        "listener",
        "loop",
        "max_fragments",
        "max_size",
        "open_timeout",
        "ping_interval",
        "ping_timeout",
        "side",
        "subprotocol",
        "transport",
        "write_limit",
    )

    listener: Listener | None

    def __init__(
        self,
        side: Side,
        *,
        max_size: int | None = 2**20,
        max_fragments: int | None = None,
        ping_interval: float | None = 20,
        ping_timeout: float | None = 20,
        close_timeout: float = 10,
        open_timeout: float | None = 10,
        write_limit: int = DEFAULT_WRITE_LIMIT,
        loop: asyncio.AbstractEventLoop | None = None,
        open_deadlines: OpenDeadlines | None = None,
    ) -> None:
        self.side = side
        self.max_size = max_size
        self.max_fragments = max_fragments
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.close_timeout = close_timeout
        self.open_timeout = open_timeout
        self.write_limit = write_limit

        # A server passes its loop: asking for the running loop costs a system call
        # (getpid) per connection on Python 3.11.
        self.loop = loop if loop is not None else asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.core: Core | None = None
        self.listener = None
        self.subprotocol: str | None = None
        self.extensions: str = ""
        self.deflate: PerMessageDeflate | None = None
        # Looked up when first asked for: most connections never are.
        self._remote_address: Any = _UNSET
        self._local_address: Any = _UNSET

        self._dispatching = False
        self._tls = False
        self._write_paused = False
        self._read_paused = False
        # Created by the first drain() that waits.
        self._drain_waiters: list[asyncio.Future[None]] | None = None
        # Pings waiting for their pong, oldest first; created by the first ping.
        self._pings: OrderedDict[bytes, tuple[asyncio.Future[float], float]] | None = None
        self._last_recv = 0.0
        self._open_deadlines = open_deadlines
        # A timer of its own, or its bucket in open_deadlines.
        self._open_timer: asyncio.TimerHandle | set[WebSocketProtocol] | None = None
        self._ping_timer: asyncio.TimerHandle | None = None
        self._pong_timer: asyncio.TimerHandle | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._transport_closed = False
        self._closing_notified = False
        self._flush_scheduled = False
        self._failure_logged = False
        # Created when first asked for (see closed): most connections never are.
        self._closed: asyncio.Future[None] | None = None

    # ------------------------------------------------------------ public state

    @property
    def closed(self) -> asyncio.Future[None]:
        """A future resolved once the TCP connection is closed."""
        closed = self._closed
        if closed is None:
            closed = self._closed = self.loop.create_future()
            if self._transport_closed:
                closed.set_result(None)
        return closed

    @property
    def remote_address(self) -> Any:
        """The peer's address (``peername``), ``None`` before the connection is made."""
        address = self._remote_address
        if address is _UNSET:
            if self.transport is None:
                return None
            address = self._remote_address = self.transport.get_extra_info("peername")
        return address

    @property
    def local_address(self) -> Any:
        """This end's address (``sockname``), ``None`` before the connection is made."""
        address = self._local_address
        if address is _UNSET:
            if self.transport is None:
                return None
            address = self._local_address = self.transport.get_extra_info("sockname")
        return address

    @property
    def state(self) -> State:
        """CONNECTING until the handshake is done, then the core's state."""
        if self.core is None:
            return _CLOSED if self._transport_closed else _CONNECTING
        return self.core.state

    @property
    def close_code(self) -> int | None:
        """The peer's close code once CLOSED (1005 none, 1006 dropped), else None."""
        if self.core is None:
            return CloseCode.ABNORMAL_CLOSURE if self._transport_closed else None
        return self.core.close_code if self.core.state is _CLOSED else None

    @property
    def close_reason(self) -> str | None:
        """The peer's close reason once CLOSED, else None."""
        if self.core is None:
            return "" if self._transport_closed else None
        return self.core.close_reason if self.core.state is _CLOSED else None

    @property
    def buffered_amount(self) -> int:
        """Bytes sent and not yet written to the socket (queued or in the transport)."""
        transport = self.transport
        if transport is None or self._transport_closed:
            return 0
        pending = self.core.output_pending if self.core is not None else 0
        return transport.get_write_buffer_size() + pending

    # --------------------------------------------------------- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport: no isinstance.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=self.write_limit, low=self.write_limit // 4)
        self._tls = transport.get_extra_info("sslcontext") is not None
        if self._tls:
            # asyncio's TLS transport forgets its addresses once closed: ask now
            # (a TLS handshake dwarfs the cost).
            self._remote_address = transport.get_extra_info("peername")
            self._local_address = transport.get_extra_info("sockname")
        if self.open_timeout is not None:
            deadlines = self._open_deadlines
            if deadlines is not None:
                self._open_timer = deadlines.add(self)
            else:
                self._open_timer = self.loop.call_later(self.open_timeout, self._open_timed_out)

    def data_received(self, data: bytes) -> None:
        core = self.core
        if core is None:
            self.handshake_data(data)
            return
        if self._pong_timer is not None:
            # Only a pending keepalive check reads this: no clock read per message.
            self._last_recv = self.loop.time()
        # Deliver the events, then act on the core's wishes with one write at the
        # end (kept in this one method: it runs for every read).
        events = core.receive(data)
        if events:
            listener = self.listener
            self._dispatching = True
            try:
                for event in events:
                    kind = type(event)
                    if kind is bytes or kind is str:
                        if listener is not None:
                            try:
                                listener.on_message(self, event)  # type: ignore[arg-type]
                            except Exception:
                                logger.exception("error in message callback")
                                self.fail(CloseCode.INTERNAL_ERROR, "internal error")
                    elif kind is Pong:
                        self._pong(event.data)  # type: ignore[union-attr]
                    # Ping: the core queued the pong. CloseReceived: _after_input
                    # closes TCP (server) or waits for the server to (client).
            finally:
                self._dispatching = False
        if core.output_pending or core.input_done:
            self._flush()

    def eof_received(self) -> bool | None:
        # The peer closed its side; we have nothing useful to add, so let the
        # transport close (returning a false value closes it).
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport_closed = True
        if self._open_timer is not None:
            self._stop_open_timer()
        if self._ping_timer is not None:
            self._ping_timer.cancel()
        if self._pong_timer is not None:
            self._pong_timer.cancel()
        if self._close_timer is not None:
            self._close_timer.cancel()
        core = self.core
        if core is not None:
            core.receive_eof()
            pings, self._pings = self._pings, None
            if pings:
                for waiter, _ in pings.values():
                    if not waiter.done():
                        waiter.set_exception(self.closed_exception())
        else:
            self.handshake_lost(exc)
        self._wake_drain()
        closed = self._closed
        if closed is not None and not closed.done():
            closed.set_result(None)
        if core is not None and self.listener is not None:
            listener, self.listener = self.listener, None
            try:
                listener.on_close(
                    self, core.close_code or 1006, core.close_reason or "", core.was_clean
                )
            except Exception:
                logger.exception("error in close callback")

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_drain()

    # ---------------------------------------------------- handshake (subclasses)

    def handshake_data(self, data: bytes) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def handshake_lost(self, exc: Exception | None) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def handshake_timed_out(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _stop_open_timer(self) -> None:
        timer, self._open_timer = self._open_timer, None
        if type(timer) is set:
            timer.discard(self)
        elif timer is not None:
            timer.cancel()  # type: ignore[union-attr]

    def _open_timed_out(self) -> None:
        self._open_timer = None
        if self.core is None and self.transport is not None:
            self.handshake_timed_out()

    def start(self, leftover: bytes) -> None:
        """Enter OPEN after a successful handshake; ``leftover`` are early frames."""
        if self._open_timer is not None:
            self._stop_open_timer()
        self.core = Core(
            self.side,
            max_size=self.max_size,
            max_fragments=self.max_fragments,
            deflate=self.deflate,
        )
        if self.ping_interval is not None:
            self._ping_timer = self.loop.call_later(self.ping_interval, self._keepalive)
        listener = self.listener
        if listener is not None:
            listener.on_open(self)
        if leftover and self.core.state is _OPEN:
            self.data_received(leftover)

    # ------------------------------------------------------------ core driving

    def _flush(self) -> None:
        core = self.core
        assert core is not None
        size = core.output_pending
        if size:
            out = core.data_to_send()
            transport = self.transport
            if transport is not None and not self._transport_closed:
                if len(out) == 1:
                    transport.write(out[0])
                elif size >= _GATHER and not transport.is_closing():
                    # Large payloads are queued uncopied after their headers; a
                    # gathered write (writev on uvloop) sends them without joining.
                    # (Not on a closing transport: some asyncio versions' writelines
                    # lack write's guard against that.)
                    transport.writelines(out)
                else:
                    transport.write(b"".join(out))
                if self._write_paused:
                    self._write_backlogged()
        # Failing, closing and the end of input all stop reading first (the core's
        # input_done): one test covers them while messages flow.
        if core.input_done:
            self._after_input()

    def _write_backlogged(self) -> None:
        """The transport's buffer is over the write limit (subclasses may act)."""

    def _after_input(self) -> None:
        core = self.core
        assert core is not None
        if core.failure is not None and not self._failure_logged:
            self._failure_logged = True
            logger.info(
                "failing connection from %s: %s (close %d)",
                self.remote_address,
                core.failure,
                core.failure.close_code,
            )
        if core.input_done and not self._closing_notified:
            self._closing_notified = True
            on_closing = getattr(self.listener, "on_closing", None)
            if on_closing is not None:
                try:
                    on_closing(self)
                except Exception:
                    logger.exception("error in closing callback")
        if core.eof_wanted:
            self._close_transport()
        elif core.close_expected():
            self._arm_close_timer()

    def _close_transport(self) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.close()
            if not transport.get_write_buffer_size() and not self._tls:
                # Nothing left to write: the transport is closed at once, so a
                # timer (a system timer per connection on uvloop) is not needed.
                return
        # transport.close() waits for the buffer to drain (and TLS for its goodbye);
        # a peer that stops reading must not keep the connection alive past the
        # close timeout.
        self._arm_close_timer()

    def _arm_close_timer(self) -> None:
        if self._close_timer is None and not self._transport_closed:
            self._close_timer = self.loop.call_later(self.close_timeout, self._close_timed_out)

    def _close_timed_out(self) -> None:
        if self.transport is not None and not self._transport_closed:
            self.transport.abort()

    # ----------------------------------------------------------------- sending

    def _check_open(self) -> Core:
        core = self.core
        if core is None:
            raise InvalidState("the connection is not open yet")
        return core

    def send(
        self, data: str | bytes | bytearray | memoryview, *, compress: bool | None = None
    ) -> None:
        """Send one message now (text for ``str``, binary otherwise), without waiting.

        ``compress=False`` sends it uncompressed even when permessage-deflate is on;
        ``None`` lets the size threshold decide.

        Raises:
            InvalidState: the connection is not OPEN.
        """
        core = self.core
        if core is None:
            raise InvalidState("the connection is not open yet")
        core.send_message(data, compress)
        if not self._dispatching:
            self._after_send()

    def send_fragment(
        self,
        data: str | bytes | bytearray | memoryview,
        *,
        first: bool,
        fin: bool,
        compress: bool | None = None,
    ) -> None:
        """Send one fragment of a message; ``first`` picks text/binary from ``data``."""
        core = self._check_open()
        if first:
            if isinstance(data, str):
                core.send_text(data, fin, compress=compress)
            else:
                core.send_binary(data, fin, compress=compress)
        else:
            core.send_continuation(data, fin)
        self._after_send()

    def send_prepared(self, frame: bytes) -> None:
        """Send a frame built once by ``Core.prepare_frame`` (broadcast, servers)."""
        self._check_open().send_prepared(frame)
        self._after_send()

    def _after_send(self) -> None:
        # Messages sent outside a read (a handler's awaits, a broadcast from another
        # connection) are written together once per loop iteration: one system call
        # for a burst instead of one per message. A large backlog goes out at once.
        if self._dispatching:
            return
        core = self.core
        assert core is not None
        if core.output_pending >= self.write_limit:
            self._flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._scheduled_flush)

    def _scheduled_flush(self) -> None:
        self._flush_scheduled = False
        if self.core is not None and not self._transport_closed:
            self._flush()

    def ping(self, data: bytes | None = None) -> asyncio.Future[float]:
        """Send a ping; the future resolves to the round-trip time when its pong comes."""
        core = self._check_open()
        pings = self._pings
        if pings is None:
            pings = self._pings = OrderedDict()
        if data is None:
            data = os.urandom(4)
            while data in pings:  # pragma: no cover - 1 in 4 billion
                data = os.urandom(4)
        elif data in pings:
            raise InvalidState("a ping with this payload is already waiting for its pong")
        core.send_ping(data)
        waiter: asyncio.Future[float] = self.loop.create_future()
        pings[bytes(data)] = (waiter, self.loop.time())
        if not self._dispatching:
            self._flush()
        return waiter

    def _pong(self, data: bytes) -> None:
        pings = self._pings
        if not pings or data not in pings:
            return  # unsolicited (RFC 6455 §5.5.3): ignored
        now = self.loop.time()
        # A pong answers its ping and every earlier one still waiting (§5.5.3 allows
        # a peer to answer only the latest of several pings).
        while pings:
            key, (waiter, sent) = pings.popitem(last=False)
            if not waiter.done():
                waiter.set_result(now - sent)
            if key == data:
                break

    def close(self, code: int | None = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Start the closing handshake; harmless if it already started.

        Raises:
            ValueError: the code may not be sent or the reason is over 123 bytes.
        """
        core = self.core
        if core is None:
            self.abort()
            return
        if core.state is _OPEN:
            core.send_close(code, reason)
            self._arm_close_timer()
            # The peer's close frame may be behind messages we stopped reading
            # because the application was slow: read on, or the handshake stalls.
            self.resume_reading()
            if not self._dispatching:
                self._flush()

    def fail(self, code: int, reason: str = "") -> None:
        """Fail the connection with ``code`` (RFC 6455 §7.1.7)."""
        core = self.core
        if core is None:
            self.abort()
            return
        core.fail(code, reason)
        self._arm_close_timer()
        if not self._dispatching:
            self._flush()

    def abort(self) -> None:
        """Drop the TCP connection at once, without a closing handshake.

        Messages already sent are handed to the socket first (writes are batched per
        loop iteration); whatever the socket cannot take at once is discarded.
        """
        transport = self.transport
        if transport is not None and not self._transport_closed:
            core = self.core
            if core is not None and core.output_pending:
                transport.write(b"".join(core.data_to_send()))
            transport.abort()

    # ------------------------------------------------------------ flow control

    @property
    def write_paused(self) -> bool:
        """Whether the transport's buffer is above the write limit."""
        return self._write_paused

    async def drain(self) -> None:
        """Wait until the write buffer is below its low-water mark (or closed)."""
        if not self._write_paused or self._transport_closed:
            return
        waiter: asyncio.Future[None] = self.loop.create_future()
        if self._drain_waiters is None:
            self._drain_waiters = []
        self._drain_waiters.append(waiter)
        await waiter

    def _wake_drain(self) -> None:
        waiters = self._drain_waiters
        if not waiters:
            return
        self._drain_waiters = None
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def pause_reading(self) -> None:
        """Stop reading from the socket (the application is not keeping up)."""
        if not self._read_paused and self.transport is not None and not self._transport_closed:
            self._read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        """Read from the socket again."""
        if self._read_paused and self.transport is not None and not self._transport_closed:
            self._read_paused = False
            self.transport.resume_reading()

    # --------------------------------------------------------------- keepalive

    def _keepalive(self) -> None:
        self._ping_timer = None
        core = self.core
        if core is None or core.state is not _OPEN:
            return
        sent_at = self.loop.time()
        try:
            waiter = self.ping()
        except InvalidState:  # pragma: no cover - checked above
            return
        # Nobody awaits a keepalive ping: retrieve its outcome so a connection
        # that ends first does not log "exception was never retrieved".
        waiter.add_done_callback(_ignore_outcome)
        if self.ping_timeout is not None and self._pong_timer is None:
            self._pong_timer = self.loop.call_later(self.ping_timeout, self._check_alive, sent_at)
        assert self.ping_interval is not None
        self._ping_timer = self.loop.call_later(self.ping_interval, self._keepalive)

    def _check_alive(self, sent_at: float) -> None:
        self._pong_timer = None
        # Any data received since the ping proves the peer alive: a large message
        # still arriving must not trip the timeout.
        if self._last_recv < sent_at and self.core is not None:
            logger.info("keepalive ping timeout: %s", self.remote_address)
            self.fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")

    def closed_exception(self) -> Exception:
        """The :class:`~fullduplex.errors.ConnectionClosed` describing this connection."""
        core = self.core
        if core is None:
            return closed_error(CloseCode.ABNORMAL_CLOSURE)
        code = core.close_code
        if code is None:  # still closing: report what we know
            code = core.close_rcvd[0] if core.close_rcvd else CloseCode.ABNORMAL_CLOSURE
        sent = core.close_sent
        return closed_error(
            code,
            core.close_reason or "",
            was_clean=core.was_clean,
            sent_code=sent[0] if sent else None,
            sent_reason=sent[1] if sent else "",
        )


def _ignore_outcome(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
