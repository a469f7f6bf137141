"""The ``fullduplex serve`` application: every endpoint on one port.

::

    /         the chat page (apps/web/, shipped in the package)
    /chat     chat rooms, JSON protocol (docs/chat-protocol.md)
    /echo     echo service
    /stomp    STOMP over WebSocket (fullduplex.stomp.Broker)
    /healthz  200 with the backplane's status, 503 when it is unhealthy
    /stats    JSON counters per endpoint

Programmatic use::

    async with serve_app("127.0.0.1", 0) as server:
        print(server.port)
        await server.serve_forever()
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import logging
import ssl as ssl_module
from types import TracebackType
from typing import Any

from ..http import json_response
from ..protocol.handshake import Request, Response
from ..pubsub import Backplane, MemoryBackplane, RoomStore
from ..routing import Router
from ..server import Server, serve
from ..stomp import SUBPROTOCOLS, Broker
from .chat import ChatPolicy, ChatServer
from .echo import make_echo
from .stats import Stats
from .stomp_bridge import TopicBridge

__all__ = ["App", "AppServer", "build_app", "serve_app"]

logger = logging.getLogger("fullduplex.apps")


class App:
    """The assembled application: a :class:`Router` and what its handlers share.

    Attributes:
        router: pass ``router.handler`` and ``router.process_request`` to ``serve``.
        backplane: fan-out between nodes.
        chat: the ``/chat`` endpoint.
        stats: the ``/stats`` counters.
        stomp: the STOMP broker at ``/stomp``, unless built with ``stomp=False``.
        topic_bridge: carries the broker's ``/topic/...`` messages to the other
            nodes over the backplane.
    """

    def __init__(
        self,
        backplane: Backplane,
        *,
        store: RoomStore | None = None,
        chat_policy: ChatPolicy | None = None,
        stomp: bool = True,
    ) -> None:
        self.backplane = backplane
        self.stats = Stats()
        self.router = Router()
        self.chat = ChatServer(
            backplane, store=store, policy=chat_policy, counters=self.stats.endpoint("chat")
        )
        self.stomp: Broker | None = None
        self.topic_bridge: TopicBridge | None = None

        web = importlib.resources.files("fullduplex.apps") / "web"
        self.router.static("/", web)
        self.router.websocket("/chat", self.stats.track("chat", self.chat.handler))
        self.router.websocket(
            "/echo", self.stats.track("echo", make_echo(self.stats.endpoint("echo")))
        )
        if stomp:
            self._mount_stomp()
        self.router.http("/healthz", self.healthz)
        self.router.http("/stats", self.stats_route)

    def _mount_stomp(self) -> None:
        """Mount the STOMP broker at ``/stomp``; its topics span the nodes."""
        self.stomp = Broker()
        self.topic_bridge = TopicBridge(self.backplane, node=self.chat.node)
        self.topic_bridge.attach(self.stomp)
        self.router.websocket("/stomp", self.stats.track("stomp", self.stomp.handler), SUBPROTOCOLS)

    def healthz(self, request: Request) -> Response:
        """``/healthz``: 200 when the backplane works, else 503; JSON either way."""
        status = self.backplane.status()
        ok = bool(status.get("healthy"))
        return json_response(
            200 if ok else 503, {"status": "ok" if ok else "unavailable", "backplane": status}
        )

    def stats_route(self, request: Request) -> Response:
        """``/stats``: the counters as JSON."""
        snapshot = self.stats.snapshot()
        snapshot["backplane"] = self.backplane.status()
        snapshot["rooms"] = len(self.chat.rooms)
        if self.stomp is not None:
            snapshot["stomp"] = dataclasses.asdict(self.stomp.stats)
        if self.topic_bridge is not None:
            snapshot["stomp_bridge"] = self.topic_bridge.status()
        return json_response(200, snapshot)

    def serve(
        self,
        host: str | None = "127.0.0.1",
        port: int = 8765,
        **serve_options: Any,
    ) -> Any:
        """``fullduplex.serve`` with this application's handler and routes."""
        return serve(
            self.router.handler,
            host,
            port,
            process_request=self.router.process_request,
            select_subprotocol=self.router.select_subprotocol,
            **serve_options,
        )

    async def close(self) -> None:
        """Release the chat's subscriptions and the backplane (after the server closed)."""
        if self.stomp is not None:
            await self.stomp.close()
        if self.topic_bridge is not None:
            await self.topic_bridge.close()
        await self.chat.close()
        await self.backplane.close()


def build_app(
    *,
    backplane: Backplane | None = None,
    store: RoomStore | None = None,
    chat_policy: ChatPolicy | None = None,
    stomp: bool = True,
) -> App:
    """Assemble the application.

    Args:
        backplane: fan-out between nodes (default: a new in-process
            :class:`~fullduplex.pubsub.MemoryBackplane`).
        store: room state (default: the backplane's :meth:`~Backplane.room_store`).
        chat_policy: chat limits (history size, rates, lengths).
        stomp: mount a STOMP broker at ``/stomp``.
    """
    return App(
        backplane if backplane is not None else MemoryBackplane(),
        store=store,
        chat_policy=chat_policy,
        stomp=stomp,
    )


class AppServer:
    """What :func:`serve_app` returns: ``async with`` it (or ``await`` it) to serve.

    Leaving the block closes every connection with 1001, waits for the handlers,
    then closes the application (subscriptions, backplane).
    """

    def __init__(self, app: App, host: str | None, port: int, options: dict[str, Any]) -> None:
        self.app = app
        self._cm = app.serve(host, port, **options)
        self.server: Server | None = None

    async def start(self) -> Server:
        # A shared bus that cannot be reached fails the start, before listening.
        await self.app.backplane.start()
        self.server = await self._cm
        return self.server

    def __await__(self) -> Any:
        return self.start().__await__()

    async def __aenter__(self) -> Server:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop serving: 1001 to every client, then close the application."""
        try:
            if self.server is not None:
                await self.server.close()
        finally:
            await self.app.close()


def serve_app(
    host: str | None = "127.0.0.1",
    port: int = 8765,
    *,
    backplane: Backplane | None = None,
    store: RoomStore | None = None,
    chat_policy: ChatPolicy | None = None,
    ssl: ssl_module.SSLContext | None = None,
    stomp: bool = True,
    **serve_options: Any,
) -> AppServer:
    """Serve the whole application on ``host:port`` (``port=0``: any free port).

    ``async with serve_app(...) as server`` yields the :class:`~fullduplex.Server`
    (``server.port``); other keyword arguments go to :func:`fullduplex.serve`.
    """
    app = build_app(backplane=backplane, store=store, chat_policy=chat_policy, stomp=stomp)
    return AppServer(app, host, port, {"ssl": ssl, **serve_options})
