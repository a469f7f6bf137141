"""STOMP topics across nodes: the broker's backplane hooks wired to a :class:`Backplane`.

Theory of operation. Each node's broker delivers a topic message to its own
subscribers at once (the engine does it), then hands it to the engine's ``publish``
hook. :class:`TopicBridge` queues it and one sender task publishes the queue, in
order, on the channel ``stomp:<vhost>:<destination>``, tagged with this node's id.
Every node with local subscribers of that topic is subscribed to the channel and
gives what arrives to :meth:`Broker.receive_remote
<fullduplex.stomp.Broker.receive_remote>`, except its own messages (the tag), which
its subscribers already have. So each subscriber gets each message once, and one
publisher's messages keep their order.

A node subscribes to a topic's channel when the topic gets its first local
subscription and unsubscribes when the last one goes; the broker's router is
wrapped (:class:`_WatchedRouter`) to say when. The bus subscription is made in the
background: messages published on other nodes in the few milliseconds before it is
in effect are not seen (a RECEIPT for SUBSCRIBE covers the local node only).

Limits. ``/queue/...`` destinations stay per node (each node has its own queues).
While the bus is down, local delivery goes on; messages for other nodes are dropped
and counted (``dropped`` in ``/stats``): a STOMP sender cannot be told without an
ERROR frame, which would close its connection. A bus that is slower than the
publishers holds at most ``max_outbox`` messages; older ones are dropped beyond.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections import deque
from collections.abc import Iterable
from typing import Any

from ..pubsub.base import Backplane, BackplaneError, Subscription
from ..stomp import Broker, Router

__all__ = ["TopicBridge", "topic_channel"]

logger = logging.getLogger("fullduplex.stomp.bridge")

TOPIC_PREFIX = "/topic/"


def topic_channel(host: str, destination: str) -> str:
    """The backplane channel of a topic: ``stomp:<vhost>:<destination>``."""
    return f"stomp:{host}:{destination}"


class _WatchedRouter(Router):
    """The broker's router, telling the bridge when topics gain or lose subscribers."""

    def __init__(self, bridge: TopicBridge, **options: Any) -> None:
        super().__init__(**options)
        self._bridge = bridge

    def subscribe(self, subscriber: Any, sub_id: str, destination: str, ack: str = "auto") -> None:
        super().subscribe(subscriber, sub_id, destination, ack)
        if destination.startswith(TOPIC_PREFIX):
            self._bridge.watch(self._clients[subscriber].host.name, destination)

    def unsubscribe(self, subscriber: Any, sub_id: str) -> None:
        super().unsubscribe(subscriber, sub_id)
        self._bridge.review(self)

    def disconnect(self, subscriber: Any) -> None:
        known = subscriber in self._clients
        super().disconnect(subscriber)
        if known:
            self._bridge.review(self)


class TopicBridge:
    """Carries one broker's topic messages to and from the other nodes.

    Args:
        backplane: the bus shared by the nodes.
        node: this node's id (tags its messages; default: random).
        max_outbox: messages waiting for the bus at most; older ones are dropped.
    """

    def __init__(
        self, backplane: Backplane, node: str | None = None, *, max_outbox: int = 10_000
    ) -> None:
        self.backplane = backplane
        self.node = node if node is not None else secrets.token_hex(4)
        self.max_outbox = max_outbox
        self.broker: Broker | None = None
        self._outbox: deque[tuple[str, bytes]] = deque()
        self._sender: asyncio.Task[None] | None = None
        self._topics: dict[tuple[str, str], Subscription | None] = {}
        self._watchers: set[asyncio.Task[None]] = set()
        self._closed = False
        self.sent = 0
        self.received = 0
        self.dropped = 0
        self._failing = False

    def attach(self, broker: Broker) -> None:
        """Wire ``broker``'s hooks to the backplane (before it has connections)."""
        old = broker.router
        if broker.peers:
            raise RuntimeError("attach the bridge before the broker has connections")
        broker.router = _WatchedRouter(
            self,
            backlog_limit=old.backlog_limit,
            max_unacked=old.max_unacked,
            hosts=old.hosts,
            default_host=old.default_host,
            publish=self.publish_local,
        )
        self.broker = broker

    def status(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "topics": sum(1 for sub in self._topics.values() if sub is not None),
            "sent": self.sent,
            "received": self.received,
            "dropped": self.dropped,
            "outbox": len(self._outbox),
        }

    # ------------------------------------------------------------- outgoing

    def publish_local(
        self, host: str, destination: str, headers: list[tuple[str, str]], body: bytes
    ) -> None:
        """The broker's ``publish`` hook: queue a topic message for the other nodes."""
        if self._closed:
            return
        head = json.dumps(
            {"o": self.node, "v": host, "d": destination, "h": headers},
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode("utf-8")
        self._outbox.append((topic_channel(host, destination), b"%s\n%s" % (head, body)))
        if len(self._outbox) > self.max_outbox:
            self._outbox.popleft()
            self._drop("the bus is too slow")
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._send())

    async def _send(self) -> None:
        """Publish the outbox in order; one task per burst, not per message."""
        outbox = self._outbox
        try:
            while outbox:
                channel, data = outbox.popleft()
                try:
                    await self.backplane.publish(channel, data)
                except BackplaneError as exc:
                    self._drop(str(exc))
                    continue
                self.sent += 1
                self._failing = False
        finally:
            self._sender = None

    def _drop(self, why: str) -> None:
        self.dropped += 1
        if not self._failing:
            self._failing = True
            logger.error("STOMP topic messages for other nodes are dropped: %s", why)

    # ------------------------------------------------------------- incoming

    def _receive(self, channel: str, data: bytes) -> None:
        broker = self.broker
        head, sep, body = data.partition(b"\n")
        try:
            meta = json.loads(head)
            origin, host, destination = meta["o"], meta["v"], meta["d"]
            headers: Iterable[tuple[str, str]] = [(str(k), str(v)) for k, v in meta["h"]]
        except (ValueError, KeyError, TypeError):
            logger.warning("ignored a malformed STOMP message on %r", channel)
            return
        if origin == self.node or broker is None or not sep:
            return  # our own: local subscribers have it already
        self.received += 1
        broker.receive_remote(host, destination, headers, body)

    def watch(self, host: str, destination: str) -> None:
        """A topic has local subscribers: subscribe to its channel (in the background)."""
        key = (host, destination)
        if key in self._topics or self._closed:
            return
        self._topics[key] = None
        task = asyncio.get_running_loop().create_task(self._subscribe(key))
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    async def _subscribe(self, key: tuple[str, str]) -> None:
        channel = topic_channel(*key)
        while key in self._topics and not self._closed:
            try:
                sub = await self.backplane.subscribe(channel, self._receive)
            except BackplaneError as exc:
                logger.warning("cannot subscribe to %r yet: %s", channel, exc)
                wait = getattr(self.backplane, "wait_healthy", None)
                if wait is None:
                    return
                await wait()
                continue
            if key in self._topics and not self._closed:
                self._topics[key] = sub
            else:
                await sub.unsubscribe()
            return

    def review(self, router: Router) -> None:
        """Subscriptions went away: unsubscribe from the channels no one needs."""
        for key in [k for k in self._topics if router.subscriber_count(k[1], k[0]) == 0]:
            sub = self._topics.pop(key)
            if sub is not None:
                task = asyncio.get_running_loop().create_task(sub.unsubscribe())
                self._watchers.add(task)
                task.add_done_callback(self._watchers.discard)

    async def close(self) -> None:
        """Stop carrying messages; unsubscribe from every channel."""
        self._closed = True
        for task in list(self._watchers) + ([self._sender] if self._sender else []):
            task.cancel()
        subs = [sub for sub in self._topics.values() if sub is not None]
        self._topics.clear()
        self._outbox.clear()
        for sub in subs:
            try:
                await sub.unsubscribe()
            except BackplaneError:
                pass
