"""The STOMP broker: sessions over WebSocket and plain TCP around one routing engine.

::

    broker = Broker(authenticate=check_password)
    await broker.serve_websocket("127.0.0.1", 8765, path="/stomp")   # ws://.../stomp
    await broker.serve_tcp("127.0.0.1", 61613)                       # stomp://...

    # or mounted next to other endpoints on one port:
    router.websocket("/stomp", broker.handler, SUBPROTOCOLS)

Theory of operation
-------------------

Each connection is a *peer*: a :class:`~fullduplex.stomp.session.ServerSession` (the
sans-I/O protocol state) plus the transport it came in on. Received bytes go into the
session with the loop's clock; the session's events go to the shared
:class:`~fullduplex.stomp.destinations.Router`; what the session wants written goes
out at once. There is no task per message, nor per connection on the TCP and
:func:`~fullduplex.server.serve_callbacks` paths: everything runs in the transports'
callbacks (``on_message`` for WebSocket, ``data_received`` for TCP). The peer is the
engine's *subscriber*: the engine hands it encoded MESSAGE frames by calling
:meth:`_Peer.deliver`, which writes them straight away.

WebSocket framing: each STOMP frame (and each heart-beat EOL) goes out as one
WebSocket message, as text when it is valid UTF-8 and as binary otherwise, so a body
that is not UTF-8 survives. Incoming text and binary messages are both accepted; a
message may hold several frames or part of one, since the session parser is fed a
byte stream.

Receipts are sent after the frame asking for one has been applied by the engine, in
the order of the frames; a DISCONNECT's receipt is the last frame the client gets.
An error (a malformed frame, a refused operation, bad credentials) is answered with
an ERROR frame carrying ``message`` and a plain-text explanation, then the connection
closes (WebSocket close code 1002); other connections are not affected.

Policies
--------

Heart-beats
    The broker offers ``heartbeat=(sx, sy)`` (default 10 s both ways) and the session
    negotiates with the client's CONNECT. A timer per connection, armed from
    :meth:`~fullduplex.stomp.session.StompSession.tick`, sends beats and declares a
    silent client dead after ``interval × heartbeat_grace + heartbeat_slack`` seconds
    (defaults 1.5 and 0.5 s). Any received byte counts as a beat. A dead client's
    connection is closed (WebSocket code 1011) and its unacknowledged queue messages
    are redelivered to others.
Slow subscribers
    When a connection's write buffer goes over its high-water mark (the transport
    calls ``pause_writing``: ``ws.write_paused`` for WebSocket), the peer is marked
    *congested* in the engine: it misses topic messages (dropped for it alone and
    counted in :attr:`Broker.stats`) and is assigned no new queue messages, which
    wait for other consumers. When the buffer drains below its low-water mark,
    delivery resumes. The high-water mark is ``write_limit`` (1 MiB by default for
    the broker's own listeners; the server's ``write_limit`` when mounted). A client
    that stops reading altogether is dropped by the WebSocket server once
    ``max_unsent`` bytes wait (16 MiB by default).
Backlog, acknowledgements, redelivery, transactions
    See :mod:`fullduplex.stomp.destinations`: queues keep at most ``backlog_limit``
    undelivered messages (oldest dropped first); NACK, UNSUBSCRIBE and disconnecting
    put unsettled queue messages back at the front of their queue, redelivered with
    ``redelivered:true``.
Virtual hosts
    With ``virtual_hosts=None`` (the default) every client shares one namespace,
    whatever its ``host`` header says: the spec recommends that clients send the
    server's host name there, which differs with the address used. With a list,
    ``host`` must name one of them (a missing header means ``default_host``) and
    each has its own topics and queues.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from itertools import count
from typing import Any, cast

from ..http import response, split_path
from ..io.protocol import WebSocketProtocol
from ..protocol.connection import State as WSState
from ..protocol.frames import CloseCode
from ..protocol.handshake import Request, Response
from .destinations import Publish, Router, RouterStats
from .errors import DestinationError
from .frames import DEFAULT_MAX_FRAME_SIZE, VERSIONS
from .session import Close, ConnectRequest, Disconnect, Event, ServerSession, State

__all__ = ["SUBPROTOCOLS", "Authenticate", "Broker"]

logger = logging.getLogger("fullduplex.stomp")

#: The WebSocket subprotocols of STOMP, in the broker's order of preference.
SUBPROTOCOLS = ("v12.stomp", "v11.stomp", "v10.stomp")

#: ``authenticate(login, passcode, host)`` returning a bool or an awaitable of one.
Authenticate = Callable[[str | None, str | None, str | None], "bool | Awaitable[bool]"]

SERVER_NAME = "fullduplex/0.1"


class Broker:
    """A STOMP 1.0/1.1/1.2 broker over WebSocket and TCP.

    Args:
        authenticate: ``authenticate(login, passcode, host)`` returning ``True`` to
            accept a CONNECT, ``False`` to refuse it (ERROR, then close); may return
            an awaitable. ``None`` accepts everyone.
        heartbeat: ``(sx, sy)`` in milliseconds: how often the broker can send
            heart-beats and how often it wants to receive them (0: never).
        heartbeat_grace: factor on the receive interval before a client is dead.
        heartbeat_slack: seconds added to that deadline.
        backlog_limit: most undelivered messages a queue keeps.
        max_unacked: most unsettled messages per queue consumer (``None``: no cap).
        virtual_hosts: the virtual hosts clients may name in ``host``, or ``None``
            for one shared namespace (see the module docstring).
        default_host: the virtual host of a client that sends no ``host``.
        publish: backplane hook ``publish(host, destination, headers, body)`` called
            for every topic message published on this node; feed messages from other
            nodes to :meth:`receive_remote`.
        versions: the STOMP versions spoken.
        max_frame_size: largest frame accepted; bigger ones get an ERROR.
        write_limit: write-buffer high-water mark of the broker's own listeners;
            above it a connection counts as a slow subscriber.
        server: the CONNECTED ``server`` header.
        close_timeout: seconds a TCP connection may take to flush and close.
    """

    def __init__(
        self,
        *,
        authenticate: Authenticate | None = None,
        heartbeat: tuple[int, int] = (10_000, 10_000),
        heartbeat_grace: float = 1.5,
        heartbeat_slack: float = 0.5,
        backlog_limit: int = 10_000,
        max_unacked: int | None = None,
        virtual_hosts: Iterable[str] | None = None,
        default_host: str = "/",
        publish: Publish | None = None,
        versions: Iterable[str] = VERSIONS,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        write_limit: int = 2**20,
        server: str | None = SERVER_NAME,
        close_timeout: float = 10.0,
    ) -> None:
        self.authenticate = authenticate
        self.heartbeat = heartbeat
        self.heartbeat_grace = heartbeat_grace
        self.heartbeat_slack = heartbeat_slack
        self.versions = tuple(versions)
        self.max_frame_size = max_frame_size
        self.write_limit = write_limit
        self.server_name = server
        self.close_timeout = close_timeout
        self.virtual_hosts = None if virtual_hosts is None else frozenset(virtual_hosts)
        self.default_host = default_host
        self.router = Router(
            backlog_limit=backlog_limit,
            max_unacked=max_unacked,
            hosts=self.virtual_hosts,
            default_host=default_host,
            publish=publish,
        )
        self.peers: set[_Peer] = set()
        self._session_ids = count(1)
        self._tcp_servers: list[asyncio.Server] = []
        self._ws_servers: list[Any] = []

    # -- mounting ---------------------------------------------------------------------

    def listener(self) -> _WebSocketPeer:
        """Return a fresh listener for one WebSocket connection.

        This is the factory for :func:`fullduplex.serve_callbacks` (or the ``on_open``
        of a :class:`~fullduplex.io.server.ServerProtocol`); offer :data:`SUBPROTOCOLS`.
        """
        return _WebSocketPeer(self)

    async def handler(self, conn: Any) -> None:
        """A :func:`fullduplex.serve` / :class:`fullduplex.routing.Router` handler.

        ``router.websocket("/stomp", broker.handler, SUBPROTOCOLS)`` mounts the
        broker. The connection's events are taken over by a listener, so messages
        take the callback path; this coroutine only waits for the end.
        """
        ws: WebSocketProtocol | None = conn.protocol
        if ws is None:
            return
        peer = _WebSocketPeer(self)
        ws.listener = peer
        peer.on_open(ws)
        # Messages the Connection queued before the listener changed (frames sent
        # right behind the handshake), and the reading it may have paused for them.
        queued = getattr(conn, "_queue", None)
        if queued:
            pending = list(queued)
            queued.clear()
            for data in pending:
                peer.on_message(ws, data)
        ws.resume_reading()
        if ws.state is not WSState.OPEN:
            peer.on_closing(ws)
        try:
            await asyncio.shield(ws.closed)
        except asyncio.CancelledError:
            ws.close(CloseCode.GOING_AWAY, "server shutting down")
            raise
        finally:
            peer.finish()

    def process_request(self, path: str) -> Callable[[Any, Request], Response | None]:
        """A ``process_request`` hook answering 404 for any path but ``path``."""

        def hook(conn: Any, request: Request) -> Response | None:
            if split_path(request.path) == path:
                return None
            return response(404, f"No STOMP endpoint at {split_path(request.path)}.\n")

        return hook

    # -- listening --------------------------------------------------------------------

    async def serve_websocket(
        self, host: str | None = "127.0.0.1", port: int = 0, path: str = "/stomp", **options: Any
    ) -> Any:
        """Listen for STOMP over WebSocket at ``ws://host:port{path}``.

        Other paths get 404. ``options`` go to :func:`fullduplex.serve_callbacks`
        (``ssl``, ``ping_interval``, ``max_connections``...). Returns the
        :class:`fullduplex.Server` (``server.port`` is the port); :meth:`close`
        stops it.
        """
        from ..server import serve_callbacks

        options.setdefault("subprotocols", SUBPROTOCOLS)
        options.setdefault("write_limit", self.write_limit)
        options.setdefault("max_size", self.max_frame_size)
        options.setdefault("process_request", self.process_request(path))
        server = await serve_callbacks(self.listener, host, port, **options)
        self._ws_servers.append(server)
        return server

    async def serve_tcp(
        self, host: str | None = "127.0.0.1", port: int = 61613, **options: Any
    ) -> asyncio.Server:
        """Listen for STOMP over plain TCP (61613 is the usual port; 0 picks one).

        ``options`` go to :meth:`asyncio.loop.create_server` (``ssl``...). Returns
        the :class:`asyncio.Server`; :meth:`close` stops it.
        """
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _TcpPeer(self), host, port, **options)
        self._tcp_servers.append(server)
        return server

    async def close(self) -> None:
        """Stop listening and close every connection (1001 for WebSocket clients)."""
        for tcp in self._tcp_servers:
            tcp.close()
        servers, self._ws_servers = self._ws_servers, []
        for server in servers:
            await server.close()
        for peer in list(self.peers):
            peer.shutdown()
        for tcp in self._tcp_servers:
            await tcp.wait_closed()
        self._tcp_servers.clear()

    async def __aenter__(self) -> Broker:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- engine -----------------------------------------------------------------------

    @property
    def stats(self) -> RouterStats:
        """Counters: published, delivered, redelivered, dropped (backlog, slow)."""
        return self.router.stats

    def receive_remote(
        self, host: str, destination: str, headers: Iterable[tuple[str, str]], body: bytes
    ) -> None:
        """Deliver a topic message published on another node to local subscribers."""
        self.router.receive_remote(host, destination, headers, body)

    def _new_session(self) -> ServerSession:
        return ServerSession(
            server=self.server_name,
            versions=self.versions,
            heartbeat=self.heartbeat,
            heartbeat_grace=self.heartbeat_grace,
            heartbeat_slack=self.heartbeat_slack,
            max_frame_size=self.max_frame_size,
        )

    def _session_id(self) -> str:
        return f"session-{next(self._session_ids)}"


class _Peer:
    """One client connection: its session, its timer, its place in the engine.

    Subclasses supply the transport: :meth:`_write`, :meth:`_close_transport`.
    """

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.loop = asyncio.get_running_loop()
        self.session = broker._new_session()
        self.congested = False
        self.finished = False
        self._timer: asyncio.TimerHandle | None = None
        self._auth: asyncio.Task[Any] | None = None
        self._running = False

    # -- the engine's Subscriber interface ----------------------------------------------

    @property
    def version(self) -> str:
        return self.session.version

    def deliver(self, data: bytes) -> None:
        self.session.deliver(data)
        if not self._running:
            self._flush()

    # -- from the transport ---------------------------------------------------------

    def receive(self, data: bytes) -> None:
        if self.finished:
            return
        self.session.receive_data(data, self.loop.time())
        self._run()

    def receive_eof(self) -> None:
        if not self.session.closed:
            self.session.receive_eof()
            self._run()

    def finish(self) -> None:
        """The transport is gone: forget this peer everywhere; idempotent."""
        self.receive_eof()
        if self.finished:
            return
        self.finished = True
        self.broker.peers.discard(self)
        self.broker.router.disconnect(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._auth is not None:
            self._auth.cancel()
            self._auth = None

    def shutdown(self) -> None:
        """The broker is closing: close the connection without an ERROR frame."""
        if not self.session.closed:
            self.session.close("broker shutting down")
            self._run()

    def set_congested(self, congested: bool) -> None:
        if congested != self.congested and not self.finished:
            self.congested = congested
            self.broker.router.set_congested(self, congested)

    # -- the event loop of one session ------------------------------------------------

    def _run(self) -> None:
        """Apply the session's events, then write what it queued."""
        session = self.session
        if self._running:
            return  # re-entered (a delivery while handling): the outer loop carries on
        self._running = True
        try:
            while events := session.events_received():
                for event in events:
                    self._handle(event)
        finally:
            self._running = False
        self._flush()

    def _handle(self, event: Event) -> None:
        session = self.session
        router = self.broker.router
        kind = type(event)
        if kind is Close:
            assert isinstance(event, Close)
            self._closed(event)
            return
        if session.closed:
            return  # an ERROR ended the session: ignore what was pipelined after it
        if kind is ConnectRequest:
            assert isinstance(event, ConnectRequest)
            self._connect(event)
        elif kind is Disconnect:
            assert isinstance(event, Disconnect)
            router.disconnect(self)
            receipt = event.receipt
            if receipt is not None:
                session.send_receipt(receipt)
            session.close("disconnected")
        else:
            try:
                router.dispatch(self, event)
            except DestinationError as exc:
                session.send_error(exc, getattr(event, "receipt", None))
                return
            receipt = getattr(event, "receipt", None)
            if receipt is not None:
                session.send_receipt(receipt)

    def _connect(self, request: ConnectRequest) -> None:
        authenticate = self.broker.authenticate
        if authenticate is None:
            self._admit(request)
            return
        try:
            verdict = authenticate(request.login, request.passcode, request.host)
        except Exception:
            logger.exception("authenticate() failed")
            self.session.reject("authentication failed", "the broker could not check credentials")
            return
        if inspect.isawaitable(verdict):
            self._auth = self.loop.create_task(_await(verdict))
            self._auth.add_done_callback(partial(self._auth_done, request))
        else:
            self._verdict(request, bool(verdict))

    def _auth_done(self, request: ConnectRequest, task: asyncio.Task[Any]) -> None:
        self._auth = None
        if task.cancelled() or self.finished or self.session.state is not State.CONNECTING:
            return
        exc = task.exception()
        if exc is not None:
            logger.error("authenticate() failed", exc_info=exc)
            self.session.reject("authentication failed", "the broker could not check credentials")
        else:
            self._verdict(request, bool(task.result()))
        self._run()

    def _verdict(self, request: ConnectRequest, accepted: bool) -> None:
        if accepted:
            self._admit(request)
        else:
            self.session.reject(
                "access refused", "the login and passcode were not accepted for this host"
            )

    def _admit(self, request: ConnectRequest) -> None:
        broker = self.broker
        host = request.host if broker.virtual_hosts is not None else None
        try:
            broker.router.connect(self, host)
        except DestinationError as exc:
            self.session.reject(exc.message, exc.description)
            return
        self.session.accept(broker._session_id(), self.loop.time())
        self._tick()

    def _tick(self) -> None:
        self._timer = None
        if self.finished:
            return
        when = self.session.tick(self.loop.time())
        if when is not None:
            self._timer = self.loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._tick()
        self._run()

    def _closed(self, event: Close) -> None:
        self.broker.router.disconnect(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._flush()
        if event.error is not None:
            code, reason = CloseCode.PROTOCOL_ERROR, "STOMP error"
        elif event.reason.startswith("heart-beat"):
            code, reason = CloseCode.INTERNAL_ERROR, "STOMP heart-beat timeout"
        elif event.reason == "broker shutting down":
            code, reason = CloseCode.GOING_AWAY, event.reason
        else:
            code, reason = CloseCode.NORMAL_CLOSURE, ""
        self._close_transport(code, reason)

    def _flush(self) -> None:
        chunks = self.session.data_to_send()
        if chunks:
            self._write(chunks)

    # -- transport hooks --------------------------------------------------------------

    def _write(self, chunks: list[bytes]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _close_transport(self, code: int, reason: str) -> None:  # pragma: no cover
        raise NotImplementedError


class _WebSocketPeer(_Peer):
    """A peer on a WebSocket connection: a listener of the io layer."""

    def __init__(self, broker: Broker) -> None:
        super().__init__(broker)
        self.ws: WebSocketProtocol | None = None
        self._drain: asyncio.Task[None] | None = None

    def on_open(self, ws: WebSocketProtocol) -> None:
        self.ws = ws
        self.broker.peers.add(self)
        core = ws.core
        limit = self.broker.max_frame_size + 4096
        if core is not None and core.max_size is not None and core.max_size < limit:
            # A frame travels in one message for most clients (stomp.js, stomp.py).
            core.max_size = limit

    def on_message(self, ws: WebSocketProtocol, data: str | bytes) -> None:
        self.receive(data.encode() if isinstance(data, str) else data)

    def on_closing(self, ws: WebSocketProtocol) -> None:
        self.receive_eof()

    def on_close(self, ws: WebSocketProtocol, code: int, reason: str, was_clean: bool) -> None:
        self.finish()
        if self._drain is not None:
            self._drain.cancel()
            self._drain = None

    def _write(self, chunks: list[bytes]) -> None:
        ws = self.ws
        if ws is None or ws.state is not WSState.OPEN:
            return
        for chunk in chunks:
            try:
                text = chunk.decode()
            except UnicodeDecodeError:
                ws.send(chunk)
            else:
                ws.send(text)
        if ws.write_paused and not self.congested:
            self.set_congested(True)
            self._drain = self.loop.create_task(ws.drain())
            self._drain.add_done_callback(self._drained)

    def _drained(self, task: asyncio.Task[None]) -> None:
        self._drain = None
        if not task.cancelled():
            self.set_congested(False)

    def _close_transport(self, code: int, reason: str) -> None:
        ws = self.ws
        if ws is not None and ws.state is WSState.OPEN:
            ws.close(code, reason)


class _TcpPeer(_Peer, asyncio.Protocol):
    """A peer on a plain TCP connection (STOMP's native transport)."""

    def __init__(self, broker: Broker) -> None:
        super().__init__(broker)
        self.transport: asyncio.Transport | None = None
        self._abort: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        limit = self.broker.write_limit
        transport.set_write_buffer_limits(high=limit, low=limit // 4)
        self.broker.peers.add(self)

    def data_received(self, data: bytes) -> None:
        self.receive(data)

    def eof_received(self) -> bool | None:
        self.receive_eof()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self._abort is not None:
            self._abort.cancel()
        self.finish()

    def pause_writing(self) -> None:
        self.set_congested(True)

    def resume_writing(self) -> None:
        self.set_congested(False)

    def _write(self, chunks: list[bytes]) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(chunks[0] if len(chunks) == 1 else b"".join(chunks))

    def _close_transport(self, code: int, reason: str) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.close()
            # close() waits for the buffer to drain: bound the wait.
            self._abort = self.loop.call_later(self.broker.close_timeout, transport.abort)


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable
