"""``fullduplex.serve``: an asyncio WebSocket server running one handler per connection."""

from __future__ import annotations

import asyncio
import inspect
import logging
import socket
import ssl as ssl_module
from collections.abc import Awaitable, Callable, Generator, Iterable, Sequence
from types import TracebackType
from typing import Any

from .connection import Connection
from .errors import ConnectionClosed, InvalidState
from .io.protocol import Listener, OpenDeadlines, WebSocketProtocol
from .io.server import ProcessRequest, ProcessResponse, SelectSubprotocol, ServerProtocol
from .protocol.connection import State
from .protocol.deflate import DeflateOptions, deflate_options
from .protocol.frames import CloseCode

__all__ = ["Server", "broadcast", "serve", "serve_callbacks"]

logger = logging.getLogger("fullduplex.server")

Handler = Callable[[Connection], Awaitable[None]]


def _keyword_defaults(*functions: Callable[..., Any]) -> dict[str, Any]:
    defaults: dict[str, Any] = {}
    for function in functions:
        for parameter in inspect.signature(function).parameters.values():
            if (
                parameter.kind is parameter.KEYWORD_ONLY
                and parameter.default is not parameter.empty
            ):
                defaults.setdefault(parameter.name, parameter.default)
    return defaults


# What ServerProtocol does when an option is not passed (its own parameters first).
_PROTOCOL_DEFAULTS = _keyword_defaults(ServerProtocol.__init__, WebSocketProtocol.__init__)
_PLAIN_TYPES = (type(None), bool, int, float, str)


class Server:
    """A listening WebSocket server; see :func:`serve`.

    Attributes:
        connections: the connections whose handler is running.
    """

    def __init__(
        self,
        handler: Handler,
        *,
        max_queue: int | None = 32,
        close_timeout: float = 10,
        max_connections: int | None = None,
        listener_factory: Callable[[], Listener] | None = None,
        **protocol_options: Any,
    ) -> None:
        self.handler = handler
        self.listener_factory = listener_factory
        self.max_queue = max_queue
        self.max_connections = max_connections
        self.close_timeout = close_timeout
        self.protocol_options = protocol_options
        self.connections: set[Connection] = set()
        self._protocols: set[WebSocketProtocol] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._closing: asyncio.Task[None] | None = None
        self._closed: asyncio.Future[None] | None = None
        self._protocol_kwargs: dict[str, Any] | None = None
        self._open_deadlines: OpenDeadlines | None = None

    # ------------------------------------------------------------- lifecycle

    async def start(
        self,
        host: str | None = "127.0.0.1",
        port: int = 0,
        *,
        sock: socket.socket | None = None,
        ssl: ssl_module.SSLContext | None = None,
        unix: str | None = None,
        **create_server_options: Any,
    ) -> Server:
        """Start listening; ``port=0`` picks a free port (see :attr:`port`)."""
        loop = asyncio.get_running_loop()
        self._closed = loop.create_future()
        self._protocol_kwargs = {**self._options_for_protocols(), "loop": loop}
        open_timeout = self._protocol_kwargs.get("open_timeout", _PROTOCOL_DEFAULTS["open_timeout"])
        if open_timeout is not None:
            # One timer for every connection's opening handshake, not one each.
            self._open_deadlines = OpenDeadlines(loop, open_timeout)
            self._protocol_kwargs["open_deadlines"] = self._open_deadlines
        if unix is not None:
            self._server = await loop.create_unix_server(
                self._make_protocol, unix, sock=sock, ssl=ssl, **create_server_options
            )
        elif sock is not None:
            self._server = await loop.create_server(
                self._make_protocol, sock=sock, ssl=ssl, **create_server_options
            )
        else:
            self._server = await loop.create_server(
                self._make_protocol, host, port, ssl=ssl, **create_server_options
            )
        return self

    def _make_protocol(self) -> ServerProtocol:
        options = self._protocol_kwargs
        if options is None:
            options = self._protocol_kwargs = self._options_for_protocols()
        return ServerProtocol(self._on_open, **options)

    def _options_for_protocols(self) -> dict[str, Any]:
        options = {
            # Registered once connected: asyncio never reports a connection whose
            # TLS handshake failed, so registering here would leak it.
            "on_made": self._protocols.add,
            "on_lost": self._protocols.discard,
            "at_capacity": self._at_capacity if self.max_connections is not None else None,
            "close_timeout": self.close_timeout,
            **self.protocol_options,
        }
        # Binding a keyword costs on every connection: leave out the plain values
        # that equal the parameter's default (the default is then the same value).
        return {
            name: value
            for name, value in options.items()
            if not (
                name in _PROTOCOL_DEFAULTS
                and type(value) in _PLAIN_TYPES
                and type(value) is type(_PROTOCOL_DEFAULTS[name])
                and value == _PROTOCOL_DEFAULTS[name]
            )
        }

    def _at_capacity(self) -> bool:
        # The protocol asking is already counted in _protocols.
        return len(self._protocols) > self.max_connections  # type: ignore[operator]

    def _on_open(self, proto: ServerProtocol) -> Listener:
        if self.listener_factory is not None:
            return self.listener_factory()
        conn = Connection(max_queue=self.max_queue)
        conn.on_open(proto)
        self.connections.add(conn)
        task = proto.loop.create_task(self._run_handler(conn, proto))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return conn

    async def _run_handler(self, conn: Connection, proto: ServerProtocol) -> None:
        try:
            try:
                await self.handler(conn)
            except ConnectionClosed:
                pass  # the peer went away while the handler was talking to it
            except asyncio.CancelledError:
                proto.fail(CloseCode.GOING_AWAY, "server shutting down")
                raise
            except Exception:
                logger.exception("connection handler failed (%s)", proto.remote_address)
                proto.fail(CloseCode.INTERNAL_ERROR, "internal error")
            else:
                proto.close(CloseCode.NORMAL_CLOSURE)
            if not proto.closed.done():
                try:
                    await asyncio.wait_for(asyncio.shield(proto.closed), self.close_timeout + 1)
                except asyncio.TimeoutError:
                    proto.abort()
        finally:
            self.connections.discard(conn)

    # ----------------------------------------------------------------- public

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        """The listening sockets."""
        if self._server is None:
            return ()
        return tuple(self._server.sockets)  # type: ignore[arg-type]

    @property
    def port(self) -> int:
        """The port of the first listening TCP socket."""
        for sock in self.sockets:
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                return int(sock.getsockname()[1])
        raise ValueError("the server does not listen on TCP")

    async def serve_forever(self) -> None:
        """Serve until :meth:`close` is called (or the task is cancelled)."""
        assert self._closed is not None, "start() the server first"
        try:
            await asyncio.shield(self._closed)
        except asyncio.CancelledError:
            await self.close()
            raise

    def close(
        self,
        code: int = CloseCode.GOING_AWAY,
        reason: str = "server shutting down",
        timeout: float | None = None,
    ) -> asyncio.Task[None]:
        """Shut down gracefully: stop listening, close every connection with ``code``.

        Waits for the clients' closing handshakes and the handlers, at most
        ``timeout`` seconds (default: the close timeout), then drops what is left.
        Returns a task: ``await server.close()`` waits for the end.
        """
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(
                self._close(code, reason, self.close_timeout if timeout is None else timeout)
            )
        return self._closing

    async def _close(self, code: int, reason: str, timeout: float) -> None:
        if self._server is not None:
            self._server.close()
        protocols = list(self._protocols)
        for proto in protocols:
            if proto.state is State.OPEN:
                proto.close(code, reason)
            elif proto.state is State.CONNECTING:
                proto.abort()
        waits = [asyncio.shield(p.closed) for p in protocols if not p.closed.done()]
        tasks = list(self._tasks)
        if waits or tasks:
            _, pending = await asyncio.wait([*waits, *tasks], timeout=timeout)
            if pending:
                for proto in protocols:
                    proto.abort()
                for task in tasks:
                    task.cancel()
                await asyncio.wait(
                    [*tasks, *(asyncio.shield(p.closed) for p in protocols)], timeout=1
                )
        if self._server is not None:
            await self._server.wait_closed()
        if self._open_deadlines is not None:
            self._open_deadlines.close()
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)

    async def wait_closed(self) -> None:
        """Wait until :meth:`close` has finished."""
        assert self._closed is not None
        await asyncio.shield(self._closed)

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class _Serve:
    """What :func:`serve` returns: ``await`` it or use it with ``async with``."""

    def __init__(self, server: Server, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self._server = server
        self._args = args
        self._kwargs = kwargs

    def __await__(self) -> Generator[Any, None, Server]:
        return self._server.start(*self._args, **self._kwargs).__await__()

    async def __aenter__(self) -> Server:
        return await self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._server.close()


def serve(
    handler: Handler,
    host: str | None = "127.0.0.1",
    port: int = 0,
    *,
    subprotocols: Sequence[str] | None = None,
    max_size: int | None = 2**20,
    max_fragments: int | None = None,
    max_queue: int | None = 32,
    ping_interval: float | None = 20,
    ping_timeout: float | None = 20,
    close_timeout: float = 10,
    open_timeout: float | None = 10,
    write_limit: int = 64 * 1024,
    max_unsent: int | None = 16 * 2**20,
    max_connections: int | None = None,
    compression: DeflateOptions | str | None = "deflate",
    process_request: ProcessRequest | None = None,
    process_response: ProcessResponse | None = None,
    select_subprotocol: SelectSubprotocol | None = None,
    origins: Sequence[str | None] | None = None,
    hosts: Sequence[str] | None = None,
    max_request_line: int = 8192,
    max_header_size: int = 8192,
    max_headers: int = 128,
    ssl: ssl_module.SSLContext | None = None,
    sock: socket.socket | None = None,
    unix: str | None = None,
    **create_server_options: Any,
) -> _Serve:
    """Serve WebSocket connections, running ``await handler(conn)`` for each.

    ``async with serve(handler, "127.0.0.1", 8765) as server: await server.serve_forever()``

    When the handler returns, its connection is closed with 1000; when it raises,
    with 1011 and a logged traceback. Other connections are not affected.

    Args:
        handler: coroutine function taking a :class:`~fullduplex.Connection`.
        host, port: where to listen (``port=0``: any free port, see ``server.port``).
        subprotocols: subprotocols this server speaks, in order of preference.
        max_size: largest incoming message in bytes (``None``: no limit) → 1009.
        max_fragments: most frames per incoming message (``None``: no limit) → 1008.
        max_queue: received messages buffered per connection before reading pauses.
        ping_interval, ping_timeout: keepalive (``None`` disables); no data at all
            within ``ping_timeout`` after a ping closes the connection with 1011.
        close_timeout: seconds allowed for a closing handshake.
        open_timeout: seconds allowed for the opening handshake.
        write_limit: write-buffer high-water mark; ``send`` waits above it.
        max_unsent: bytes a connection may have waiting to be written before it is
            dropped with 1008 (a client that stops reading); ``None``: no cap.
        compression: ``"deflate"`` (default) accepts permessage-deflate offers
            (RFC 7692) with default settings; a
            :class:`~fullduplex.protocol.deflate.DeflateOptions` tunes them (window
            bits, context takeover, level, the size threshold below which messages
            go uncompressed); ``None`` turns compression off.
        max_connections: connections served at once; more get HTTP 503 with
            ``Retry-After`` (``None``: no limit).
        process_request: ``hook(conn, request)`` answering a request itself by
            returning a :class:`~fullduplex.http.Response` (static files, 401,
            redirects), or ``None`` to go on; plain or ``async``.
        process_response: ``hook(conn, request, response)`` adding headers to the
            101 response, or returning another response to send instead.
        select_subprotocol: ``hook(conn, offered)`` choosing the subprotocol.
        origins: accepted ``Origin`` values (``None`` entry: no Origin); else 403.
        hosts: accepted ``Host`` values; else 400.
        max_request_line, max_header_size, max_headers: request head limits
            (414 and 431 beyond).
        ssl: a server-side :class:`ssl.SSLContext` to serve ``wss://``.
        sock: an already bound socket to serve on instead of ``host``/``port``.
        unix: path of a Unix domain socket to listen on instead of TCP.
    """
    server = Server(
        handler,
        max_queue=max_queue,
        close_timeout=close_timeout,
        subprotocols=subprotocols,
        max_size=max_size,
        max_fragments=max_fragments,
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        open_timeout=open_timeout,
        write_limit=write_limit,
        max_unsent=max_unsent,
        max_connections=max_connections,
        compression=deflate_options(compression),
        process_request=process_request,
        process_response=process_response,
        select_subprotocol=select_subprotocol,
        origins=origins,
        hosts=hosts,
        max_request_line=max_request_line,
        max_header_size=max_header_size,
        max_headers=max_headers,
    )
    return _Serve(
        server, (host, port), {"ssl": ssl, "sock": sock, "unix": unix, **create_server_options}
    )


def serve_callbacks(
    factory: Callable[[], Listener],
    host: str | None = "127.0.0.1",
    port: int = 0,
    **options: Any,
) -> _Serve:
    """Serve WebSocket connections through callbacks: no task or future per message.

    ``factory()`` is called once per connection and returns a listener: an object
    with ``on_open(ws)``, ``on_message(ws, data)`` and ``on_close(ws, code, reason,
    was_clean)`` (and optionally ``on_closing(ws)``), all called on the event loop.
    ``ws`` is a :class:`~fullduplex.io.protocol.WebSocketProtocol`: ``ws.send(data)``
    writes at once (sends made inside ``on_message`` are coalesced into one write
    per read), ``ws.close(code, reason)``, ``ws.write_paused`` / ``await
    ws.drain()`` for backpressure, ``ws.pause_reading()`` / ``ws.resume_reading()``.

    Takes the same options as :func:`serve` (``max_queue`` does not apply).
    """
    cm = serve(_no_handler, host, port, **options)
    cm._server.listener_factory = factory
    return cm


async def _no_handler(conn: Connection) -> None:  # pragma: no cover - never called
    raise AssertionError("callback servers have no handler")


def broadcast(
    connections: Iterable[Connection | WebSocketProtocol],
    message: str | bytes,
    *,
    skip_congested: bool = True,
) -> int:
    """Send ``message`` to every open connection; return how many it was queued for.

    The frame is encoded once and the same bytes are handed to each transport, with
    no task or coroutine per recipient. With ``skip_congested`` (the default) a
    connection whose write buffer is above its ``write_limit`` misses the message
    instead of growing memory or slowing the others; connections past their
    ``max_unsent`` cap are dropped with 1008 by the server anyway.

    Works for server-side connections only (client frames must be masked one by one).
    """
    frame: bytes | None = None
    sent = 0
    for item in connections:
        proto = item.protocol if isinstance(item, Connection) else item
        if proto is None or proto.core is None or proto.core.state is not State.OPEN:
            continue
        if skip_congested and proto.write_paused:
            continue
        if frame is None:
            frame = proto.core.prepare_frame(message)
        try:
            proto.send_prepared(frame)
        except InvalidState:
            continue  # e.g. a fragmented message is being sent on this connection
        sent += 1
    return sent
