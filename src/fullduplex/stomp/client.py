"""An asyncio STOMP client over WebSocket (``ws://``, ``wss://``) or TCP (``tcp://``).

::

    async with Client("ws://127.0.0.1:8765/stomp", login="guest", passcode="guest") as client:
        sub = await client.subscribe("/queue/work", ack="client-individual")
        await client.send("/queue/work", b"hello", receipt=True)   # waits for the RECEIPT
        async for message in sub:
            print(message.text)
            client.ack(message)

Theory of operation
-------------------

Like the broker, the client is a :class:`~fullduplex.stomp.session.ClientSession`
driven by transport callbacks (an io-layer listener for WebSocket, an
:class:`asyncio.Protocol` for TCP): no task per message. Commands are written at once;
those that take ``receipt=True`` return a future that resolves when the server's
RECEIPT arrives (and fails with :class:`ServerError` or :class:`ConnectionLost`).
Without a receipt they return a future that is already done, so ``await`` is
optional.

One timer, driven by :meth:`~fullduplex.stomp.session.StompSession.tick`, sends
heart-beats and notices a silent server. When the connection is lost (heart-beat
timeout, network error, the server closing or sending ERROR after it had accepted us),
a client with ``reconnect=True`` connects again with exponential back-off (``delay``,
``2 × delay``... up to ``max_delay``, with ±20 % jitter) and subscribes again with
the same ids, destinations, ack modes and headers. Acknowledgements of messages from
an earlier connection are dropped silently: the broker already redelivers them. A
refused CONNECT (bad credentials) is never retried.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import ssl as ssl_module
import urllib.parse
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from itertools import count
from typing import Any, cast

from ..errors import FullDuplexError, InvalidState
from ..io.protocol import WebSocketProtocol
from ..protocol.connection import State as WSState
from ..protocol.frames import CloseCode
from .broker import SUBPROTOCOLS
from .errors import StompError
from .frames import DEFAULT_MAX_FRAME_SIZE, VERSIONS
from .session import ClientSession, Close, Connected, Error, Event, Message, Receipt, State

__all__ = [
    "Client",
    "ConnectionLost",
    "ReceivedMessage",
    "ServerError",
    "Subscription",
    "Transaction",
]

logger = logging.getLogger("fullduplex.stomp.client")

DEFAULT_TCP_PORT = 61613

Callback = Callable[["ReceivedMessage"], Any]


class ServerError(StompError):
    """The server sent an ERROR frame (it closes the connection after it).

    Attributes:
        headers: the ERROR frame's headers.
        body: the ERROR frame's body (the server's explanation).
    """

    default_code = "STOMP_SERVER_ERROR"

    def __init__(self, error: Error) -> None:
        text = error.body.decode(errors="replace")
        super().__init__(error.message or "ERROR frame", text)
        self.headers = list(error.headers)
        self.body = error.body


class ConnectionLost(StompError):
    """The connection ended before the operation completed."""

    default_code = "STOMP_CONNECTION_LOST"


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """A MESSAGE delivered to a :class:`Subscription`.

    Attributes:
        destination: where it was sent.
        message_id: the broker's ``message-id``.
        subscription: the subscription id.
        ack_id: the ``ack`` header (1.2, non-auto subscriptions), else ``None``.
        body: the body octets.
        headers: every header, in wire order.
        redelivered: whether the broker says it delivered this message before.
    """

    destination: str
    message_id: str
    subscription: str | None
    ack_id: str | None
    body: bytes
    headers: list[tuple[str, str]]
    raw: Message
    generation: int

    @property
    def text(self) -> str:
        """The body decoded as UTF-8."""
        return self.body.decode()

    @property
    def redelivered(self) -> bool:
        return self.header("redelivered") == "true"

    def header(self, name: str, default: str | None = None) -> str | None:
        """The first value of header ``name`` (the one that counts in STOMP)."""
        for key, value in self.headers:
            if key == name:
                return value
        return default


class Subscription:
    """A subscription: messages go to its callback, or wait for ``async for``.

    Iteration ends after :meth:`unsubscribe` or when the client is closed for good.
    """

    def __init__(
        self,
        client: Client,
        id: str,
        destination: str,
        ack: str,
        headers: list[tuple[str, str]],
        callback: Callback | None,
    ) -> None:
        self.client = client
        self.id = id
        self.destination = destination
        self.ack = ack
        self.headers = headers
        self.callback = callback
        self.active = True
        self._queue: deque[ReceivedMessage] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def get(self) -> ReceivedMessage:
        """Return the next message.

        Raises:
            ConnectionLost: the subscription ended and no message is left.
        """
        while not self._queue:
            if not self.active:
                raise ConnectionLost("subscription ended", f"{self.id!r} is no longer active")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._queue.popleft()

    def __aiter__(self) -> AsyncIterator[ReceivedMessage]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[ReceivedMessage]:
        while True:
            try:
                yield await self.get()
            except ConnectionLost:
                return

    def unsubscribe(self, *, receipt: bool = True) -> asyncio.Future[None]:
        """Send UNSUBSCRIBE; the returned future waits for its RECEIPT."""
        return self.client._unsubscribe(self, receipt)

    def _deliver(self, message: ReceivedMessage) -> None:
        callback = self.callback
        if callback is None:
            self._queue.append(message)
            self._wake()
            return
        try:
            result = callback(message)
        except Exception:
            logger.exception("error in subscription callback for %s", self.destination)
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            self._tasks.add(task)
            task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)  # type: ignore[arg-type]
        if not task.cancelled() and task.exception() is not None:
            logger.error("error in subscription callback", exc_info=task.exception())

    def _end(self) -> None:
        self.active = False
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def __repr__(self) -> str:
        return f"<Subscription {self.id} {self.destination} ack={self.ack}>"


class Transaction:
    """A STOMP transaction; ``async with client.transaction() as tx`` commits on exit.

    Its SENDs, ACKs and NACKs take effect together at :meth:`commit`, or not at all
    after :meth:`abort` (or an exception in the ``async with`` block).
    """

    def __init__(self, client: Client, id: str) -> None:
        self.client = client
        self.id = id
        self.done = False

    def send(
        self, destination: str, body: bytes | str = b"", **kwargs: Any
    ) -> asyncio.Future[None]:
        """SEND within the transaction; arguments as for :meth:`Client.send`."""
        return self.client.send(destination, body, transaction=self.id, **kwargs)

    def ack(self, message: ReceivedMessage, *, receipt: bool = False) -> asyncio.Future[None]:
        """ACK within the transaction."""
        return self.client.ack(message, transaction=self.id, receipt=receipt)

    def nack(self, message: ReceivedMessage, *, receipt: bool = False) -> asyncio.Future[None]:
        """NACK within the transaction."""
        return self.client.nack(message, transaction=self.id, receipt=receipt)

    def commit(self, *, receipt: bool = True) -> asyncio.Future[None]:
        """COMMIT: apply everything sent in the transaction."""
        self.done = True
        return self.client._command("commit", self.id, receipt=receipt)

    def abort(self, *, receipt: bool = True) -> asyncio.Future[None]:
        """ABORT: discard everything sent in the transaction."""
        self.done = True
        return self.client._command("abort", self.id, receipt=receipt)

    async def __aenter__(self) -> Transaction:
        await self.client._command("begin", self.id, receipt=False)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if self.done or not self.client.connected:
            return
        if exc_type is None:
            await self.commit()
        else:
            await self.abort()


class Client:
    """A STOMP client; see the module docstring.

    Args:
        url: ``ws://host:port/path`` or ``wss://...`` for STOMP over WebSocket (the
            ``v12.stomp``, ``v11.stomp`` and ``v10.stomp`` subprotocols are
            offered); ``tcp://host:port`` or ``stomp://host:port`` for plain TCP
            (default port 61613).
        login, passcode: the CONNECT credentials.
        host: the CONNECT ``host`` header (virtual host); default: the URL's host.
        heartbeat: ``(cx, cy)`` in ms: how often the client can send heart-beats and
            how often it wants to receive them (0: never).
        heartbeat_grace, heartbeat_slack: tolerance before the server is declared
            dead (``interval × grace + slack`` seconds of silence).
        headers: extra CONNECT headers.
        versions: the STOMP versions offered.
        reconnect: connect again after a lost connection, restoring subscriptions.
        reconnect_delay: first back-off delay in seconds (doubled after each failure).
        reconnect_max_delay: longest back-off delay.
        reconnect_attempts: failed attempts before giving up (``None``: never).
        connect_timeout: seconds allowed for opening the transport and CONNECTED.
        max_frame_size: largest frame accepted from the server.
        ssl: an :class:`ssl.SSLContext` for TCP (``wss://`` sets one up itself).
        ws_options: extra options for :func:`fullduplex.connect` (WebSocket only).
        on_error: ``on_error(exc)`` called with a :class:`ServerError` for each ERROR.
        on_connect: ``on_connect(client)`` called after each (re)connection.
    """

    def __init__(
        self,
        url: str,
        *,
        login: str | None = None,
        passcode: str | None = None,
        host: str | None = None,
        heartbeat: tuple[int, int] = (10_000, 10_000),
        heartbeat_grace: float = 1.5,
        heartbeat_slack: float = 0.5,
        headers: Iterable[tuple[str, str]] = (),
        versions: Iterable[str] = VERSIONS,
        reconnect: bool = True,
        reconnect_delay: float = 0.1,
        reconnect_max_delay: float = 10.0,
        reconnect_attempts: int | None = None,
        connect_timeout: float = 10.0,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        ssl: ssl_module.SSLContext | None = None,
        ws_options: dict[str, Any] | None = None,
        on_error: Callable[[ServerError], Any] | None = None,
        on_connect: Callable[[Client], Any] | None = None,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("ws", "wss", "tcp", "stomp"):
            raise ValueError(f"{url!r}: use ws://, wss://, tcp:// or stomp://")
        if not parts.hostname:
            raise ValueError(f"{url!r} has no host")
        self.url = url
        self.websocket = parts.scheme in ("ws", "wss")
        self._address = (parts.hostname, parts.port or DEFAULT_TCP_PORT)
        self.login = login
        self.passcode = passcode
        self.host = host if host is not None else parts.hostname
        self.heartbeat = heartbeat
        self.heartbeat_grace = heartbeat_grace
        self.heartbeat_slack = heartbeat_slack
        self.connect_headers = list(headers)
        self.versions = tuple(versions)
        self.reconnect = reconnect
        self.reconnect_delay = reconnect_delay
        self.reconnect_max_delay = reconnect_max_delay
        self.reconnect_attempts = reconnect_attempts
        self.connect_timeout = connect_timeout
        self.max_frame_size = max_frame_size
        self.ssl = ssl
        self.ws_options = dict(ws_options or {})
        self.on_error = on_error
        self.on_connect = on_connect

        #: The CONNECTED frame of the current connection.
        self.connected_frame: Connected | None = None
        #: The last ERROR the server sent, as a :class:`ServerError`.
        self.last_error: ServerError | None = None
        #: How many times the client connected (1 after the first connect()).
        self.connections = 0
        self.subscriptions: dict[str, Subscription] = {}

        self._session: ClientSession | None = None
        self._link: _Link | None = None
        self._generation = 0
        self._ids = count(1)
        self._receipts: dict[str, asyncio.Future[None]] = {}
        self._connecting: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._reconnector: asyncio.Task[None] | None = None
        self._up: asyncio.Event | None = None
        self._closing = False
        self._running = False

    # -- connecting ---------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether a STOMP session is established right now."""
        return self._session is not None and self._session.state is State.CONNECTED

    @property
    def version(self) -> str | None:
        """The negotiated STOMP version."""
        return self.connected_frame.version if self.connected_frame else None

    @property
    def session_id(self) -> str | None:
        """The CONNECTED ``session`` header."""
        return self.connected_frame.session if self.connected_frame else None

    async def connect(self) -> Client:
        """Connect (transport, CONNECT, CONNECTED); returns the client.

        Raises:
            ServerError: the server refused the CONNECT.
            OSError, TimeoutError, fullduplex.HandshakeError: no connection.
        """
        self._closing = False
        if self._up is None:
            self._up = asyncio.Event()
        await self._open()
        return self

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until the client is connected (after a reconnection, say)."""
        if self._up is None:
            raise InvalidState("connect() was never called")
        await asyncio.wait_for(self._up.wait(), timeout)

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        session = ClientSession(
            self.host,
            login=self.login,
            passcode=self.passcode,
            headers=self.connect_headers,
            versions=self.versions,
            heartbeat=self.heartbeat,
            heartbeat_grace=self.heartbeat_grace,
            heartbeat_slack=self.heartbeat_slack,
            max_frame_size=self.max_frame_size,
        )
        self._generation += 1
        self._session = session
        self._connecting = connecting = loop.create_future()
        try:
            self._link = await asyncio.wait_for(self._open_link(), self.connect_timeout)
            session.connect(loop.time())
            self._flush()
            await asyncio.wait_for(asyncio.shield(connecting), self.connect_timeout)
            # Subscriptions of an earlier connection, with their ids.
            waits = [self._resubscribe(sub) for sub in self.subscriptions.values()]
            if waits:
                await asyncio.wait_for(asyncio.gather(*waits), self.connect_timeout)
        except BaseException:
            link, self._link = self._link, None
            if link is not None:
                link.abort()
            self._session = None
            raise
        finally:
            self._connecting = None
        self.connections += 1
        assert self._up is not None
        self._up.set()
        if self.on_connect is not None:
            try:
                self.on_connect(self)
            except Exception:
                logger.exception("error in on_connect")

    async def _open_link(self) -> _Link:
        if self.websocket:
            from ..client import connect_callbacks

            link = _WebSocketLink(self)
            options = dict(self.ws_options)
            options.setdefault("subprotocols", SUBPROTOCOLS)
            options.setdefault("max_size", self.max_frame_size + 4096)
            link.ws = await connect_callbacks(self.url, link, **options)
            return link
        loop = asyncio.get_running_loop()
        host, port = self._address
        _, protocol = await loop.create_connection(lambda: _TcpLink(self), host, port, ssl=self.ssl)
        return protocol

    def _resubscribe(self, sub: Subscription) -> asyncio.Future[None]:
        session = self._session
        assert session is not None
        receipt = self._receipt(True)
        session.subscribe(
            sub.destination, sub.id, ack=sub.ack, headers=sub.headers, receipt=receipt
        )
        self._flush()
        return self._receipts[receipt] if receipt else _done()

    async def disconnect(self, timeout: float = 10.0) -> None:
        """Send DISCONNECT, wait for its RECEIPT (everything before it was processed),
        then close. No reconnection happens afterwards."""
        self._closing = True
        if self._reconnector is not None:
            self._reconnector.cancel()
            self._reconnector = None
        session, link = self._session, self._link
        if session is not None and session.state is State.CONNECTED and link is not None:
            receipt = self._receipt(True)
            session.disconnect(receipt=receipt)
            self._flush()
            try:
                await asyncio.wait_for(self._receipts[receipt], timeout)
            except (asyncio.TimeoutError, StompError):
                pass
        if link is not None:
            link.close()
            await link.wait_closed(timeout)
        self._shutdown(ConnectionLost("disconnected", "the client disconnected"))

    async def close(self) -> None:
        """Alias of :meth:`disconnect`."""
        await self.disconnect()

    async def __aenter__(self) -> Client:
        return await self.connect()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.disconnect()

    # -- commands -----------------------------------------------------------------

    async def subscribe(
        self,
        destination: str,
        callback: Callback | None = None,
        *,
        ack: str = "auto",
        headers: Iterable[tuple[str, str]] | dict[str, str] = (),
        id: str | None = None,
        receipt: bool = True,
    ) -> Subscription:
        """Subscribe to ``destination``; returns once the server confirmed it.

        Args:
            destination: ``/topic/...`` or ``/queue/...`` (on our broker).
            callback: called with each :class:`ReceivedMessage` (may be ``async``);
                without one, iterate the subscription with ``async for``.
            ack: ``"auto"``, ``"client"`` (cumulative) or ``"client-individual"``.
            headers: extra SUBSCRIBE headers (``selector``, ``prefetch-count``...).
            id: the subscription id (default: a fresh one).
            receipt: wait for the server's RECEIPT before returning.
        """
        session = self._require()
        sub_id = id if id is not None else f"sub-{next(self._ids)}"
        if sub_id in self.subscriptions:
            raise ValueError(f"subscription id {sub_id!r} is in use")
        extra = list(headers.items()) if isinstance(headers, dict) else list(headers)
        sub = Subscription(self, sub_id, destination, ack, extra, callback)
        rid = self._receipt(receipt)
        session.subscribe(destination, sub_id, ack=ack, headers=extra, receipt=rid)
        self.subscriptions[sub_id] = sub
        self._flush()
        if rid is not None:
            await self._receipts[rid]
        return sub

    def _unsubscribe(self, sub: Subscription, receipt: bool) -> asyncio.Future[None]:
        if self.subscriptions.pop(sub.id, None) is None:
            return _done()
        sub._end()
        if not self.connected:
            return _done()
        session = self._require()
        rid = self._receipt(receipt)
        session.unsubscribe(sub.id, receipt=rid)
        self._flush()
        return self._receipts[rid] if rid is not None else _done()

    def send(
        self,
        destination: str,
        body: bytes | str = b"",
        *,
        headers: Iterable[tuple[str, str]] | dict[str, str] = (),
        content_type: str | None = None,
        transaction: str | None = None,
        receipt: bool = False,
    ) -> asyncio.Future[None]:
        """SEND a message; ``await`` the result to wait for the RECEIPT if asked.

        A ``str`` body is sent as UTF-8 with ``content-type: text/plain;charset=utf-8``
        unless ``content_type`` says otherwise.
        """
        session = self._require()
        if isinstance(body, str):
            body = body.encode()
            if content_type is None:
                content_type = "text/plain;charset=utf-8"
        extra = list(headers.items()) if isinstance(headers, dict) else list(headers)
        rid = self._receipt(receipt)
        session.send(
            destination,
            body,
            headers=extra,
            content_type=content_type,
            transaction=transaction,
            receipt=rid,
        )
        self._flush()
        return self._receipts[rid] if rid is not None else _done()

    def ack(
        self, message: ReceivedMessage, *, transaction: str | None = None, receipt: bool = False
    ) -> asyncio.Future[None]:
        """ACK ``message`` (dropped if it came on an earlier connection)."""
        return self._settle("ack", message, transaction, receipt)

    def nack(
        self, message: ReceivedMessage, *, transaction: str | None = None, receipt: bool = False
    ) -> asyncio.Future[None]:
        """NACK ``message``: the broker redelivers a queue message."""
        return self._settle("nack", message, transaction, receipt)

    def _settle(
        self, kind: str, message: ReceivedMessage, transaction: str | None, receipt: bool
    ) -> asyncio.Future[None]:
        if message.generation != self._generation or not self.connected:
            return _done()
        session = self._require()
        rid = self._receipt(receipt)
        getattr(session, kind)(message.raw, transaction=transaction, receipt=rid)
        self._flush()
        return self._receipts[rid] if rid is not None else _done()

    def transaction(self, id: str | None = None) -> Transaction:
        """A transaction to use with ``async with`` (BEGIN on entry, COMMIT on exit)."""
        return Transaction(self, id if id is not None else f"tx-{next(self._ids)}")

    async def begin(self, id: str | None = None, *, receipt: bool = False) -> Transaction:
        """BEGIN a transaction and return it; finish it with commit() or abort()."""
        tx = self.transaction(id)
        await self._command("begin", tx.id, receipt=receipt)
        return tx

    def _command(self, kind: str, transaction: str, *, receipt: bool) -> asyncio.Future[None]:
        session = self._require()
        rid = self._receipt(receipt)
        getattr(session, kind)(transaction, receipt=rid)
        self._flush()
        return self._receipts[rid] if rid is not None else _done()

    async def drain(self) -> None:
        """Wait while the transport's write buffer is above its high-water mark."""
        if self._link is not None:
            await self._link.drain()

    # -- internals ---------------------------------------------------------------

    def _require(self) -> ClientSession:
        session = self._session
        if session is None or session.state is not State.CONNECTED:
            raise InvalidState("the STOMP client is not connected")
        return session

    def _receipt(self, wanted: bool) -> str | None:
        if not wanted:
            return None
        rid = f"r-{next(self._ids)}"
        self._receipts[rid] = asyncio.get_running_loop().create_future()
        return rid

    def _flush(self) -> None:
        session, link = self._session, self._link
        if session is None:
            return
        chunks = session.data_to_send()
        if chunks and link is not None:
            link.write(chunks)

    def _received(self, link: _Link, data: bytes) -> None:
        session = self._session
        if link is not self._link or session is None:
            return
        session.receive_data(data, asyncio.get_running_loop().time())
        self._run()

    def _lost(self, link: _Link) -> None:
        session = self._session
        if link is not self._link or session is None:
            return
        session.receive_eof()
        self._run()

    def _run(self) -> None:
        session = self._session
        if session is None or self._running:
            return
        self._running = True
        try:
            while events := session.events_received():
                for event in events:
                    self._handle(event)
        finally:
            self._running = False
        self._flush()

    def _handle(self, event: Event) -> None:
        kind = type(event)
        if kind is Message:
            assert isinstance(event, Message)
            self._message(event)
        elif kind is Receipt:
            assert isinstance(event, Receipt)
            waiter = self._receipts.pop(event.receipt_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        elif kind is Connected:
            assert isinstance(event, Connected)
            self.connected_frame = event
            self._tick()
            if self._connecting is not None and not self._connecting.done():
                self._connecting.set_result(None)
        elif kind is Error:
            assert isinstance(event, Error)
            self._error(ServerError(event), event.receipt_id)
        elif kind is Close:
            assert isinstance(event, Close)
            self._closed(event)

    def _message(self, event: Message) -> None:
        sub = self.subscriptions.get(event.subscription or "")
        if sub is None:
            # STOMP 1.0 servers may leave the subscription out.
            for candidate in self.subscriptions.values():
                if candidate.destination == event.destination:
                    sub = candidate
                    break
        if sub is None:
            return  # a message in flight when we unsubscribed
        ack_id = event.ack
        if ack_id is None and sub.ack != "auto":
            ack_id = event.message_id  # 1.0 and 1.1 acknowledge by message-id
        sub._deliver(
            ReceivedMessage(
                event.destination,
                event.message_id,
                event.subscription,
                ack_id,
                event.body,
                event.headers,
                event,
                self._generation,
            )
        )

    def _error(self, error: ServerError, receipt_id: str | None) -> None:
        self.last_error = error
        if receipt_id is not None:
            waiter = self._receipts.pop(receipt_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_exception(error)
        connecting = self._connecting
        if connecting is not None and not connecting.done():
            connecting.set_exception(error)
        if self.on_error is not None:
            try:
                self.on_error(error)
            except Exception:
                logger.exception("error in on_error")

    def _closed(self, event: Close) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        assert self._up is not None
        self._up.clear()
        self._flush()
        link, self._link = self._link, None
        if link is not None:
            link.close()
        lost = ConnectionLost("connection lost", event.reason)
        receipts, self._receipts = self._receipts, {}
        for waiter in receipts.values():
            if not waiter.done():
                waiter.set_exception(lost)
        connecting = self._connecting
        if connecting is not None:
            if not connecting.done():
                connecting.set_exception(lost)
            return  # connect() reports it
        if self._closing or not self.reconnect:
            self._shutdown(lost)
        elif self._reconnector is None:
            logger.info("STOMP connection lost (%s); reconnecting", event.reason)
            self._reconnector = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        delay = self.reconnect_delay
        failures = 0
        try:
            while not self._closing:
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
                try:
                    await self._open()
                    return
                except ServerError as exc:
                    logger.warning("STOMP reconnection refused: %s", exc.message)
                    self._shutdown(exc)
                    return
                except (OSError, asyncio.TimeoutError, FullDuplexError) as exc:
                    failures += 1
                    logger.info("STOMP reconnection failed (%s)", exc)
                    if self.reconnect_attempts is not None and failures >= self.reconnect_attempts:
                        self._shutdown(ConnectionLost("gave up reconnecting", str(exc)))
                        return
                    delay = min(delay * 2, self.reconnect_max_delay)
        finally:
            if self._reconnector is asyncio.current_task():
                self._reconnector = None

    def _shutdown(self, reason: StompError) -> None:
        """No more connections: end the subscriptions' iterations."""
        self._closing = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for sub in self.subscriptions.values():
            sub._end()
        receipts, self._receipts = self._receipts, {}
        for waiter in receipts.values():
            if not waiter.done():
                waiter.set_exception(reason)

    def _tick(self) -> None:
        self._timer = None
        session = self._session
        if session is None:
            return
        loop = asyncio.get_running_loop()
        when = session.tick(loop.time())
        if when is not None:
            self._timer = loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._tick()
        self._run()


# -- transports ---------------------------------------------------------------------


class _Link:
    """What the client needs from a transport."""

    def write(self, chunks: list[bytes]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def abort(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    async def drain(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    async def wait_closed(self, timeout: float) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class _WebSocketLink(_Link):
    """STOMP over WebSocket: one frame per message, text when it is UTF-8."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.ws: WebSocketProtocol | None = None

    # listener
    def on_open(self, ws: WebSocketProtocol) -> None:
        self.ws = ws

    def on_message(self, ws: WebSocketProtocol, data: str | bytes) -> None:
        self.client._received(self, data.encode() if isinstance(data, str) else data)

    def on_closing(self, ws: WebSocketProtocol) -> None:
        self.client._lost(self)

    def on_close(self, ws: WebSocketProtocol, code: int, reason: str, was_clean: bool) -> None:
        self.client._lost(self)

    # link
    def write(self, chunks: list[bytes]) -> None:
        ws = self.ws
        if ws is None or ws.state is not WSState.OPEN:
            return
        for chunk in chunks:
            try:
                ws.send(chunk.decode())
            except UnicodeDecodeError:
                ws.send(chunk)

    def close(self) -> None:
        if self.ws is not None:
            self.ws.close(CloseCode.NORMAL_CLOSURE)

    def abort(self) -> None:
        if self.ws is not None:
            self.ws.abort()

    async def drain(self) -> None:
        if self.ws is not None:
            await self.ws.drain()

    async def wait_closed(self, timeout: float) -> None:
        if self.ws is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self.ws.closed), timeout)
            except asyncio.TimeoutError:
                self.ws.abort()


class _TcpLink(_Link, asyncio.Protocol):
    """STOMP over plain TCP."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._paused = False
        self._drain: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.client._received(self, data)

    def eof_received(self) -> bool | None:
        self.client._lost(self)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if not self.closed.done():
            self.closed.set_result(None)
        self.resume_writing()
        self.client._lost(self)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        waiter, self._drain = self._drain, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def write(self, chunks: list[bytes]) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(chunks[0] if len(chunks) == 1 else b"".join(chunks))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    async def drain(self) -> None:
        if self._paused and self.transport is not None:
            if self._drain is None:
                self._drain = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._drain)

    async def wait_closed(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(self.closed), timeout)
        except asyncio.TimeoutError:
            self.abort()


def _done() -> asyncio.Future[None]:
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    future.set_result(None)
    return future
