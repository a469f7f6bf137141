"""The backplane interface: fan-out of bytes between the nodes serving the same rooms.

A *node* is one ``fullduplex serve`` process. Its connections are local; what one
of them says must reach the connections of every node. The backplane carries it::

    node A ── publish("room:lobby", data) ──▶ backplane ──▶ every subscriber of
                                                            "room:lobby", on every
                                                            node, A included

Rules every implementation keeps (``tests/pubsub/contract.py`` checks them):

- ``publish`` hands ``data`` to each subscription of ``channel`` exactly once,
  including subscriptions of the publishing node itself. A node therefore never
  delivers its own events directly: it publishes them and delivers what comes back,
  so each event reaches each local connection once, whichever node it came from.
- Messages from one publisher on one channel arrive in the order published.
- Callbacks are plain functions run on the event loop, with no task per message;
  they must not block. An exception in one is logged and does not affect others.
- Once ``await subscribe(...)`` returns, everything published afterwards (by any
  node) is delivered; after ``await sub.unsubscribe()`` nothing more is.
- ``data`` is opaque bytes; channels are ``str`` (the chat uses ``room:<name>``).

Room state that must be shared by the nodes (who is in a room, its recent history)
lives behind the separate :class:`RoomStore` interface, so a backplane that is pure
pub/sub (NATS core) can be paired with a store elsewhere (Redis, a database).
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

from ..errors import FullDuplexError

__all__ = [
    "Backplane",
    "BackplaneClosed",
    "BackplaneError",
    "Callback",
    "RoomStore",
    "Subscription",
]

#: ``callback(channel, data)``, called on the event loop for each message.
Callback = Callable[[str, bytes], None]


class BackplaneError(FullDuplexError):
    """The backplane could not do what was asked (connection lost, closed, ...)."""


class BackplaneClosed(BackplaneError):
    """The backplane was closed; it publishes and subscribes no more."""


class Subscription(abc.ABC):
    """One subscription to one channel; :meth:`unsubscribe` ends it."""

    def __init__(self, channel: str, callback: Callback) -> None:
        self.channel = channel
        self.callback = callback

    @property
    @abc.abstractmethod
    def active(self) -> bool:
        """Whether messages are still delivered to this subscription."""

    @abc.abstractmethod
    async def unsubscribe(self) -> None:
        """Stop the deliveries; harmless when already unsubscribed or closed."""

    def __repr__(self) -> str:
        state = "active" if self.active else "ended"
        return f"<{type(self).__name__} {self.channel!r} {state}>"


class Backplane(abc.ABC):
    """Publish/subscribe between nodes.

    Implementations: :class:`~fullduplex.pubsub.memory.MemoryBackplane` (one process,
    the default), :class:`~fullduplex.pubsub.redis.RedisBackplane` and
    :class:`~fullduplex.pubsub.nats.NatsBackplane`; nothing else in the application
    changes. While a shared bus is unreachable :attr:`healthy` is false and
    :meth:`publish` and :meth:`subscribe` raise :class:`BackplaneError` at once.
    """

    #: Short name shown in ``/healthz`` and ``/stats`` ("memory", "redis", ...).
    kind: str = "backplane"

    async def start(self) -> None:  # noqa: B027 - a no-op unless there is a bus
        """Connect to the shared bus, if any; idempotent (the default does nothing).

        Shared backplanes also connect on first use; an application calls this
        before serving so that an unreachable bus is reported at once.

        Raises:
            BackplaneError: the bus cannot be reached.
        """

    @abc.abstractmethod
    async def publish(self, channel: str, data: bytes) -> None:
        """Deliver ``data`` to every subscription of ``channel`` on every node.

        Raises:
            BackplaneClosed: after :meth:`close`.
            BackplaneError: the message could not be handed over.
        """

    @abc.abstractmethod
    async def subscribe(self, channel: str, callback: Callback) -> Subscription:
        """Call ``callback(channel, data)`` for each message published to ``channel``.

        Returns once the subscription is in effect.

        Raises:
            BackplaneClosed: after :meth:`close`.
        """

    @abc.abstractmethod
    def room_store(self) -> RoomStore:
        """The room state shared by the nodes using this backplane."""

    @abc.abstractmethod
    async def close(self) -> None:
        """End every subscription and release connections; idempotent."""

    @property
    @abc.abstractmethod
    def healthy(self) -> bool:
        """Whether publishing and delivery work right now (``/healthz``)."""

    def status(self) -> dict[str, Any]:
        """A JSON-able description for ``/healthz`` and ``/stats``."""
        return {"kind": self.kind, "healthy": self.healthy}

    async def __aenter__(self) -> Backplane:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class RoomStore(abc.ABC):
    """Room state shared by every node: members (by nick) and recent history.

    Rooms are identified by a canonical key and nicks by a canonical key (the
    application folds case before calling); ``nick`` is the name as shown.
    ``node`` names the node holding the member's connection, so a shared store can
    drop the members of a node that died.
    """

    @abc.abstractmethod
    async def add_member(self, room: str, nick_key: str, nick: str, node: str) -> bool:
        """Add a member unless ``nick_key`` is taken in ``room``; atomic.

        Returns:
            whether the member was added (``False``: the nick is taken).
        """

    @abc.abstractmethod
    async def remove_member(self, room: str, nick_key: str) -> None:
        """Remove a member; harmless when absent."""

    @abc.abstractmethod
    async def members(self, room: str) -> list[str]:
        """The nicks in ``room``, in the order they joined."""

    @abc.abstractmethod
    async def append_history(self, room: str, entry: dict[str, Any], limit: int) -> None:
        """Append a JSON-able entry, keeping only the last ``limit`` ones."""

    @abc.abstractmethod
    async def history(self, room: str) -> list[dict[str, Any]]:
        """The kept entries of ``room``, oldest first."""
