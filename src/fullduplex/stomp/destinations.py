"""The broker engine: STOMP destinations, subscriptions, acks and transactions, I/O-free.

The engine routes for many sessions at once. It knows them only as opaque, hashable
:class:`Subscriber` handles with a negotiated ``version`` and a ``deliver(data)``
method taking one encoded MESSAGE frame (a
:class:`~fullduplex.stomp.session.ServerSession` is one). The broker feeds it the
session events (:meth:`Router.dispatch`) and turns the
:class:`~fullduplex.stomp.errors.DestinationError` it raises into ERROR frames.

Destinations
------------

``/topic/<name>``
    Publish-subscribe: each message goes to every subscription of the topic. A
    message nobody subscribes to is dropped. NACK, UNSUBSCRIBE and DISCONNECT never
    redeliver a topic message.
``/queue/<name>``
    Competing consumers: each message goes to one subscription, round-robin over the
    consumers that can take it. A queue keeps a backlog while nobody can.

Virtual hosts (the CONNECT ``host`` header) partition both namespaces.

Policies
--------

Backlog overflow
    A queue holds at most ``backlog_limit`` undelivered messages. Publishing one more
    drops the *oldest* one (as RabbitMQ's default ``drop-head``) and counts it in
    :attr:`RouterStats.dropped_backlog`: producers are never refused, which in STOMP
    would mean an ERROR frame and a closed connection. Messages put back by NACK or a
    consumer leaving are not counted against the limit when they return; they can
    be dropped by later publications like any other.
Acknowledgement
    ``auto``: settled when delivered. ``client``: cumulative, ACK (or NACK) of a
    message settles it and every earlier unsettled message of the same subscription.
    ``client-individual``: one message at a time. A NACKed queue message, and every
    unsettled one of a consumer that unsubscribes or disconnects, goes back to the
    *front* of its queue, in order, and is delivered again with ``redelivered:true``.
    ``max_unacked`` optionally caps unsettled messages per queue consumer (prefetch).
Slow subscribers
    The I/O layer owns the outgoing buffers. When one goes over its high-water mark it
    calls :meth:`Router.set_congested` with ``True``, and ``False`` once drained. A
    congested subscriber gets no topic messages: they are dropped for it alone and
    counted (:attr:`RouterStats.dropped_slow`, :meth:`Router.dropped`), so one slow
    reader never holds back the others or grows memory. Queues assign it no new
    messages; they wait in the backlog for another consumer or for it to drain.
Transactions
    SEND, ACK and NACK with a ``transaction`` header are buffered and applied in order
    on COMMIT; ABORT (and a disconnect) discards them, so acks of an aborted
    transaction leave their messages unacknowledged.
Headers
    A MESSAGE carries ``subscription``, ``ack`` (unless ack mode is auto),
    ``redelivered`` (when redelivered), ``destination``, ``message-id``, the sender's
    other headers and ``content-length``. Frame-level sender headers (``receipt``,
    ``transaction``) and any the broker sets itself are not forwarded. The part every
    subscriber shares is encoded once per protocol version.
Backplane
    An injected ``publish(host, destination, headers, body)`` receives every topic
    message published locally; :meth:`Router.receive_remote` delivers one from another
    node to local subscribers without publishing it again.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from itertools import count
from typing import Protocol

from .errors import DestinationError
from .frames import encode_headers
from .session import (
    Abort,
    Ack,
    Begin,
    Close,
    Commit,
    Disconnect,
    Event,
    Nack,
    Send,
    Subscribe,
    Unsubscribe,
)

__all__ = [
    "ACK_MODES",
    "Publish",
    "Router",
    "RouterStats",
    "Subscriber",
]

#: Subscription acknowledgement modes.
ACK_MODES = frozenset({"auto", "client", "client-individual"})

#: The backplane hook: ``publish(host, destination, headers, body)``.
Publish = Callable[[str, str, list[tuple[str, str]], bytes], None]

TOPIC_PREFIX = "/topic/"
QUEUE_PREFIX = "/queue/"

# Sender headers never copied into a MESSAGE: frame-level ones, and those the broker
# sets itself (a forged one would otherwise shadow ours for a first-wins reader).
_NOT_FORWARDED = frozenset(
    {
        "ack",
        "content-length",
        "destination",
        "message-id",
        "receipt",
        "redelivered",
        "subscription",
        "transaction",
    }
)


class Subscriber(Protocol):
    """What the engine needs from a session.

    Attributes:
        version: the negotiated STOMP version, which decides header escaping.
    """

    version: str

    def deliver(self, data: bytes) -> None:
        """Send one encoded MESSAGE frame (or queue it for sending)."""


@dataclass(slots=True)
class RouterStats:
    """Counters since the router was created."""

    published: int = 0
    delivered: int = 0
    redelivered: int = 0
    dropped_backlog: int = 0
    dropped_slow: int = 0


@dataclass(eq=False, slots=True)
class _Message:
    id: str
    destination: str
    headers: list[tuple[str, str]]
    body: bytes
    redelivered: bool = False
    # Encoded shared part ("destination:..." up to the NUL) per protocol version.
    tails: dict[str, bytes] = field(default_factory=dict)


@dataclass(eq=False, slots=True)
class _Delivery:
    message: _Message
    subscription: _Subscription
    ack_id: str


@dataclass(eq=False, slots=True)
class _Queue:
    name: str
    pending: deque[_Message] = field(default_factory=deque)
    consumers: list[_Subscription] = field(default_factory=list)
    next: int = 0  # round-robin position in consumers
    pumping: bool = False


@dataclass(eq=False, slots=True)
class _VHost:
    name: str
    topics: dict[str, list[_Subscription]] = field(default_factory=dict)
    queues: dict[str, _Queue] = field(default_factory=dict)


@dataclass(eq=False, slots=True)
class _Client:
    subscriber: Subscriber
    host: _VHost
    subscriptions: dict[str, _Subscription] = field(default_factory=dict)
    deliveries: dict[str, _Delivery] = field(default_factory=dict)  # by ack id
    transactions: dict[str, list[Callable[[], None]]] = field(default_factory=dict)
    congested: bool = False


@dataclass(eq=False, slots=True)
class _Subscription:
    client: _Client
    id: str
    destination: str
    queue: _Queue | None  # None for a topic
    ack: str
    # Unsettled deliveries in delivery order (cumulative acks settle a prefix).
    unacked: OrderedDict[str, _Delivery] = field(default_factory=OrderedDict)
    by_message_id: dict[str, _Delivery] = field(default_factory=dict)
    dropped: int = 0
    removed: bool = False


def _counter(prefix: str) -> Callable[[], str]:
    numbers = count(1)
    return lambda: f"{prefix}{next(numbers)}"


class Router:
    """Routes messages between the sessions of one broker node.

    Args:
        backlog_limit: most undelivered messages a queue keeps (oldest dropped first).
        max_unacked: most unsettled messages per queue consumer, or ``None``.
        hosts: the virtual hosts clients may use, or ``None`` for any.
        default_host: the virtual host of a client that sent no ``host`` header.
        publish: backplane hook called for every locally published topic message.
        message_ids: returns a fresh ``message-id`` (default: ``"m-1"``, ``"m-2"``...).
    """

    def __init__(
        self,
        *,
        backlog_limit: int = 10_000,
        max_unacked: int | None = None,
        hosts: Iterable[str] | None = None,
        default_host: str = "/",
        publish: Publish | None = None,
        message_ids: Callable[[], str] | None = None,
    ) -> None:
        self.backlog_limit = backlog_limit
        self.max_unacked = max_unacked
        self.hosts = None if hosts is None else frozenset(hosts)
        self.default_host = default_host
        self.stats = RouterStats()
        self._publish_hook = publish
        self._message_id = message_ids or _counter("m-")
        self._ack_id = _counter("a-")
        self._vhosts: dict[str, _VHost] = {}
        self._clients: dict[Subscriber, _Client] = {}

    # -- sessions ---------------------------------------------------------------------

    def connect(self, subscriber: Subscriber, host: str | None = None) -> None:
        """Register a connected session on virtual host ``host`` (``None``: the default).

        Raises:
            DestinationError: ``host`` is not one of the allowed virtual hosts.
        """
        name = self.default_host if host is None else host
        if self.hosts is not None and name not in self.hosts:
            raise DestinationError(
                "unknown virtual host", f"virtual host {name[:80]!r} does not exist"
            )
        if subscriber not in self._clients:
            self._clients[subscriber] = _Client(subscriber, self._vhost(name))

    def disconnect(self, subscriber: Subscriber) -> None:
        """Forget a session: abort its transactions, requeue its unsettled messages.

        Idempotent; call it when the connection closes for whatever reason.
        """
        client = self._clients.pop(subscriber, None)
        if client is None:
            return
        client.transactions.clear()
        for sub in list(client.subscriptions.values()):
            self._remove(sub)

    def set_congested(self, subscriber: Subscriber, congested: bool) -> None:
        """Say whether a session's outgoing buffer is over its high-water mark.

        While congested it gets no topic messages (dropped and counted) and no new
        queue messages; clearing the flag resumes queue delivery at once. Sessions the
        engine does not know (already disconnected) are ignored.
        """
        client = self._clients.get(subscriber)
        if client is None:
            return
        client.congested = congested
        if not congested:
            for sub in list(client.subscriptions.values()):
                if sub.queue is not None:
                    self._pump(sub.queue)

    # -- frames -------------------------------------------------------------------------

    def subscribe(
        self, subscriber: Subscriber, sub_id: str, destination: str, ack: str = "auto"
    ) -> None:
        """Add a subscription.

        Raises:
            DestinationError: duplicate id, bad destination or unknown ack mode.
        """
        client = self._client(subscriber)
        is_queue = self._is_queue(destination)
        if ack not in ACK_MODES:
            raise DestinationError("invalid ack mode", f"unknown ack mode {ack[:40]!r}")
        if sub_id in client.subscriptions:
            raise DestinationError(
                "duplicate subscription", f"subscription id {sub_id[:80]!r} is already in use"
            )
        host = client.host
        queue = None
        if is_queue:
            queue = host.queues.get(destination)
            if queue is None:
                queue = host.queues[destination] = _Queue(destination)
        sub = _Subscription(client, sub_id, destination, queue, ack)
        client.subscriptions[sub_id] = sub
        if queue is None:
            host.topics.setdefault(destination, []).append(sub)
        else:
            queue.consumers.append(sub)
            self._pump(queue)

    def unsubscribe(self, subscriber: Subscriber, sub_id: str) -> None:
        """Remove a subscription; its unsettled queue messages go back to the queue.

        Raises:
            DestinationError: no subscription has this id.
        """
        self._remove(self._subscription(self._client(subscriber), sub_id))

    def send(
        self,
        subscriber: Subscriber,
        destination: str,
        body: bytes,
        headers: Iterable[tuple[str, str]] = (),
        *,
        transaction: str | None = None,
    ) -> None:
        """Publish a message, or buffer it in ``transaction`` until COMMIT.

        Raises:
            DestinationError: bad destination or unknown transaction.
        """
        client = self._client(subscriber)
        is_queue = self._is_queue(destination)
        forwarded = [(k, v) for k, v in headers if k not in _NOT_FORWARDED]
        publish = partial(self._publish, client.host, destination, is_queue, forwarded, body)
        if transaction is None:
            publish()
        else:
            self._transaction(client, transaction).append(publish)

    def ack(
        self,
        subscriber: Subscriber,
        ack_id: str,
        *,
        subscription: str | None = None,
        transaction: str | None = None,
    ) -> None:
        """Acknowledge a delivery (cumulatively for ``client`` subscriptions).

        Args:
            subscriber: the session.
            ack_id: the MESSAGE's ``ack`` header (1.2), or its ``message-id`` (1.0, 1.1).
            subscription: the subscription id a 1.1 client names with a message-id.
            transaction: buffer the ACK until this transaction commits.

        Raises:
            DestinationError: unknown ack id or transaction.
        """
        self._settle_or_buffer(subscriber, ack_id, subscription, transaction, requeue=False)

    def nack(
        self,
        subscriber: Subscriber,
        ack_id: str,
        *,
        subscription: str | None = None,
        transaction: str | None = None,
    ) -> None:
        """Reject a delivery: a queue message is redelivered, a topic message dropped.

        Settles like :meth:`ack` (cumulatively for ``client`` subscriptions).

        Raises:
            DestinationError: unknown ack id or transaction.
        """
        self._settle_or_buffer(subscriber, ack_id, subscription, transaction, requeue=True)

    def begin(self, subscriber: Subscriber, transaction: str) -> None:
        """Start a transaction.

        Raises:
            DestinationError: the transaction is already open.
        """
        client = self._client(subscriber)
        if transaction in client.transactions:
            raise DestinationError(
                "transaction already started",
                f"transaction {transaction[:80]!r} is already in progress",
            )
        client.transactions[transaction] = []

    def commit(self, subscriber: Subscriber, transaction: str) -> None:
        """Apply a transaction's SENDs, ACKs and NACKs in order.

        Raises:
            DestinationError: unknown transaction.
        """
        client = self._client(subscriber)
        operations = self._transaction(client, transaction)
        del client.transactions[transaction]
        for operation in operations:
            operation()

    def abort(self, subscriber: Subscriber, transaction: str) -> None:
        """Discard a transaction's SENDs, ACKs and NACKs.

        Raises:
            DestinationError: unknown transaction.
        """
        client = self._client(subscriber)
        self._transaction(client, transaction)
        del client.transactions[transaction]

    def dispatch(self, subscriber: Subscriber, event: Event) -> None:
        """Apply a session event (SEND, SUBSCRIBE, ACK... DISCONNECT, Close).

        Other events are ignored; receipts stay the caller's job.

        Raises:
            DestinationError: the engine refuses the frame.
        """
        if isinstance(event, Send):
            self.send(
                subscriber,
                event.destination,
                event.body,
                event.headers,
                transaction=event.transaction,
            )
        elif isinstance(event, Subscribe):
            self.subscribe(subscriber, event.id, event.destination, event.ack)
        elif isinstance(event, Unsubscribe):
            self.unsubscribe(subscriber, event.id)
        elif isinstance(event, (Ack, Nack)):
            settle = self.ack if isinstance(event, Ack) else self.nack
            settle(
                subscriber,
                event.id,
                subscription=event.subscription,
                transaction=event.transaction,
            )
        elif isinstance(event, Begin):
            self.begin(subscriber, event.transaction)
        elif isinstance(event, Commit):
            self.commit(subscriber, event.transaction)
        elif isinstance(event, Abort):
            self.abort(subscriber, event.transaction)
        elif isinstance(event, (Disconnect, Close)):
            self.disconnect(subscriber)

    # -- backplane ----------------------------------------------------------------------

    def receive_remote(
        self, host: str, destination: str, headers: Iterable[tuple[str, str]], body: bytes
    ) -> None:
        """Deliver a topic message published on another node, without publishing it again.

        Raises:
            DestinationError: ``destination`` is not a topic.
        """
        if self._is_queue(destination):
            raise DestinationError("not a topic", "only topic messages travel between nodes")
        forwarded = [(k, v) for k, v in headers if k not in _NOT_FORWARDED]
        self._publish(self._vhost(host), destination, False, forwarded, body, remote=True)

    # -- introspection ------------------------------------------------------------------

    def queue_depth(self, destination: str, host: str | None = None) -> int:
        """Return how many messages wait undelivered in a queue."""
        queue = self._vhost(host or self.default_host).queues.get(destination)
        return 0 if queue is None else len(queue.pending)

    def subscriber_count(self, destination: str, host: str | None = None) -> int:
        """Return how many subscriptions a topic or queue has."""
        vhost = self._vhost(host or self.default_host)
        queue = vhost.queues.get(destination)
        if queue is not None:
            return len(queue.consumers)
        return len(vhost.topics.get(destination, ()))

    def unacked(self, subscriber: Subscriber) -> int:
        """Return how many deliveries a session has not settled yet."""
        return len(self._client(subscriber).deliveries)

    def dropped(self, subscriber: Subscriber) -> int:
        """Return how many topic messages a session missed while congested."""
        return sum(sub.dropped for sub in self._client(subscriber).subscriptions.values())

    # -- internals ----------------------------------------------------------------------

    def _vhost(self, name: str) -> _VHost:
        vhost = self._vhosts.get(name)
        if vhost is None:
            vhost = self._vhosts[name] = _VHost(name)
        return vhost

    def _client(self, subscriber: Subscriber) -> _Client:
        try:
            return self._clients[subscriber]
        except KeyError:
            raise DestinationError("not connected", "the session is not connected") from None

    def _subscription(self, client: _Client, sub_id: str) -> _Subscription:
        try:
            return client.subscriptions[sub_id]
        except KeyError:
            raise DestinationError(
                "unknown subscription", f"no subscription has id {sub_id[:80]!r}"
            ) from None

    def _transaction(self, client: _Client, transaction: str) -> list[Callable[[], None]]:
        try:
            return client.transactions[transaction]
        except KeyError:
            raise DestinationError(
                "unknown transaction", f"transaction {transaction[:80]!r} was not started"
            ) from None

    def _is_queue(self, destination: str) -> bool:
        for prefix in (QUEUE_PREFIX, TOPIC_PREFIX):
            if destination.startswith(prefix) and len(destination) > len(prefix):
                # A raw newline could not be written to a 1.0 subscriber.
                if "\n" in destination or "\r" in destination:
                    break
                return prefix == QUEUE_PREFIX
        raise DestinationError(
            "invalid destination",
            f"{destination[:80]!r}: destinations are /topic/<name> or /queue/<name>",
        )

    def _publish(
        self,
        host: _VHost,
        destination: str,
        is_queue: bool,
        headers: list[tuple[str, str]],
        body: bytes,
        remote: bool = False,
    ) -> None:
        self.stats.published += 1
        message = _Message(self._message_id(), destination, headers, bytes(body))
        if is_queue:
            queue = host.queues.get(destination)
            if queue is None:
                queue = host.queues[destination] = _Queue(destination)
            queue.pending.append(message)
            if len(queue.pending) > self.backlog_limit:
                queue.pending.popleft()
                self.stats.dropped_backlog += 1
            self._pump(queue)
            return
        # Copy: a subscriber's deliver() may unsubscribe someone, who then gets nothing.
        for sub in list(host.topics.get(destination, ())):
            if sub.removed:
                continue
            if sub.client.congested:
                sub.dropped += 1
                self.stats.dropped_slow += 1
            else:
                self._deliver(sub, message)
        if self._publish_hook is not None and not remote:
            self._publish_hook(host.name, destination, headers, message.body)

    def _pump(self, queue: _Queue) -> None:
        """Hand waiting messages to consumers that can take them, round-robin."""
        if queue.pumping:
            # Re-entered from a deliver() callback: the outer loop carries on.
            return
        queue.pumping = True
        try:
            while queue.pending:
                sub = self._next_consumer(queue)
                if sub is None:
                    break
                self._deliver(sub, queue.pending.popleft())
        finally:
            queue.pumping = False

    def _next_consumer(self, queue: _Queue) -> _Subscription | None:
        consumers = queue.consumers
        for offset in range(len(consumers)):
            index = (queue.next + offset) % len(consumers)
            sub = consumers[index]
            if sub.client.congested:
                continue
            if self.max_unacked is not None and len(sub.unacked) >= self.max_unacked:
                continue
            queue.next = index + 1
            return sub
        return None

    def _deliver(self, sub: _Subscription, message: _Message) -> None:
        client = sub.client
        version = client.subscriber.version
        prefix = [("subscription", sub.id)]
        if sub.ack != "auto":
            delivery = _Delivery(message, sub, self._ack_id())
            sub.unacked[delivery.ack_id] = delivery
            sub.by_message_id[message.id] = delivery
            client.deliveries[delivery.ack_id] = delivery
            prefix.append(("ack", delivery.ack_id))
        if message.redelivered:
            prefix.append(("redelivered", "true"))
        tail = message.tails.get(version)
        if tail is None:
            shared = [("destination", message.destination), ("message-id", message.id)]
            shared += message.headers
            if message.body:
                shared.append(("content-length", str(len(message.body))))
            # A 1.2 sender's header may hold a newline a 1.0 reader cannot get: skip it.
            head = encode_headers(shared, version, skip_invalid=True)
            tail = message.tails[version] = b"".join((head, b"\n", message.body, b"\x00"))
        self.stats.delivered += 1
        client.subscriber.deliver(
            b"".join((b"MESSAGE\n", encode_headers(prefix, version, skip_invalid=True), tail))
        )

    def _find(self, client: _Client, ack_id: str, subscription: str | None) -> _Delivery:
        delivery = None
        if subscription is None:
            delivery = client.deliveries.get(ack_id)
            if delivery is None:
                # A 1.0 ACK names only the message-id.
                for sub in client.subscriptions.values():
                    delivery = sub.by_message_id.get(ack_id)
                    if delivery is not None:
                        break
        else:
            named = client.subscriptions.get(subscription)
            if named is not None:
                delivery = named.by_message_id.get(ack_id)
        if delivery is None:
            raise DestinationError(
                "unknown ack id", f"no unacknowledged message matches {ack_id[:80]!r}"
            )
        return delivery

    def _settle_or_buffer(
        self,
        subscriber: Subscriber,
        ack_id: str,
        subscription: str | None,
        transaction: str | None,
        *,
        requeue: bool,
    ) -> None:
        client = self._client(subscriber)
        delivery = self._find(client, ack_id, subscription)
        if transaction is None:
            self._settle(delivery, requeue)
        else:
            self._transaction(client, transaction).append(partial(self._settle, delivery, requeue))

    def _settle(self, delivery: _Delivery, requeue: bool) -> None:
        sub = delivery.subscription
        if delivery.ack_id not in sub.unacked:
            # Settled meanwhile (an earlier cumulative ack, or the consumer left)
            # between a transactional ACK and its COMMIT.
            return
        if sub.ack == "client":
            settled = list(self._pop_through(sub, delivery.ack_id))
        else:
            del sub.unacked[delivery.ack_id]
            settled = [delivery]
        for item in settled:
            del sub.by_message_id[item.message.id]
            del sub.client.deliveries[item.ack_id]
        if sub.queue is not None:
            if requeue:
                self._requeue(sub.queue, settled)
            self._pump(sub.queue)

    @staticmethod
    def _pop_through(sub: _Subscription, ack_id: str) -> Iterator[_Delivery]:
        while True:
            key, delivery = sub.unacked.popitem(last=False)
            yield delivery
            if key == ack_id:
                return

    def _requeue(self, queue: _Queue, deliveries: list[_Delivery]) -> None:
        for delivery in reversed(deliveries):
            delivery.message.redelivered = True
            queue.pending.appendleft(delivery.message)
        self.stats.redelivered += len(deliveries)

    def _remove(self, sub: _Subscription) -> None:
        sub.removed = True
        client = sub.client
        del client.subscriptions[sub.id]
        for ack_id in sub.unacked:
            del client.deliveries[ack_id]
        queue = sub.queue
        if queue is None:
            topic = client.host.topics[sub.destination]
            topic.remove(sub)
            if not topic:
                del client.host.topics[sub.destination]
            return
        queue.consumers.remove(sub)
        self._requeue(queue, list(sub.unacked.values()))
        sub.unacked.clear()
        sub.by_message_id.clear()
        self._pump(queue)
        if not queue.consumers and not queue.pending:
            del client.host.queues[queue.name]
