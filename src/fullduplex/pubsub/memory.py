"""The in-process backplane: fan-out inside one Python process.

:class:`MemoryBackplane` is the default of ``fullduplex serve``: one node, nothing to
run beside it. Several instances sharing one :class:`MemoryHub` (and one
:class:`MemoryRoomStore`) behave like nodes sharing a Redis or NATS server, which
lets tests check multi-node behaviour in one process.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

from .base import Backplane, BackplaneClosed, Callback, RoomStore, Subscription

__all__ = ["MemoryBackplane", "MemoryHub", "MemoryRoomStore"]

logger = logging.getLogger("fullduplex.pubsub")


class MemoryHub:
    """The channels shared by the :class:`MemoryBackplane` instances using it."""

    def __init__(self) -> None:
        self.channels: dict[str, list[_MemorySubscription]] = {}

    def deliver(self, channel: str, data: bytes) -> int:
        """Call every subscription of ``channel``; return how many were called."""
        subs = self.channels.get(channel)
        if not subs:
            return 0
        # Copy: a callback may subscribe or unsubscribe.
        for sub in tuple(subs):
            if not sub.active:
                continue
            try:
                sub.callback(channel, data)
            except Exception:
                logger.exception("backplane callback failed on %r", channel)
        return len(subs)


class _MemorySubscription(Subscription):
    def __init__(self, backplane: MemoryBackplane, channel: str, callback: Callback) -> None:
        super().__init__(channel, callback)
        self._backplane: MemoryBackplane | None = backplane

    @property
    def active(self) -> bool:
        return self._backplane is not None

    def _end(self) -> None:
        backplane, self._backplane = self._backplane, None
        if backplane is None:
            return
        backplane._subscriptions.discard(self)
        subs = backplane.hub.channels.get(self.channel)
        if subs is not None:
            try:
                subs.remove(self)
            except ValueError:
                pass
            if not subs:
                del backplane.hub.channels[self.channel]

    async def unsubscribe(self) -> None:
        self._end()


class MemoryBackplane(Backplane):
    """Publish/subscribe within this process.

    Args:
        hub: channels shared with other instances (default: a private hub).
        store: room state shared with other instances (default: a private store).

    Delivery is synchronous: when ``await publish(...)`` returns, every callback
    has run.
    """

    kind = "memory"

    def __init__(self, hub: MemoryHub | None = None, store: MemoryRoomStore | None = None) -> None:
        self.hub = hub if hub is not None else MemoryHub()
        self._store = store if store is not None else MemoryRoomStore()
        self._subscriptions: set[_MemorySubscription] = set()
        self._closed = False
        self.published = 0

    def _check_open(self) -> None:
        if self._closed:
            raise BackplaneClosed("the backplane is closed")

    async def publish(self, channel: str, data: bytes) -> None:
        self._check_open()
        self.published += 1
        self.hub.deliver(channel, bytes(data))

    async def subscribe(self, channel: str, callback: Callback) -> Subscription:
        self._check_open()
        sub = _MemorySubscription(self, channel, callback)
        self._subscriptions.add(sub)
        self.hub.channels.setdefault(channel, []).append(sub)
        return sub

    def room_store(self) -> MemoryRoomStore:
        return self._store

    async def close(self) -> None:
        self._closed = True
        for sub in tuple(self._subscriptions):
            sub._end()

    @property
    def healthy(self) -> bool:
        return not self._closed

    def status(self) -> dict[str, Any]:
        return {
            **super().status(),
            "subscriptions": len(self._subscriptions),
            "published": self.published,
        }


class _Room:
    __slots__ = ("history", "members")

    def __init__(self) -> None:
        self.members: dict[str, str] = {}  # nick key -> nick, in join order
        self.history: list[dict[str, Any]] = []


class MemoryRoomStore(RoomStore):
    """Room members and history in a dict.

    Args:
        max_rooms: rooms kept at most; beyond, the least recently used room with no
            members is forgotten (its history with it).
    """

    def __init__(self, max_rooms: int = 10_000) -> None:
        self.max_rooms = max_rooms
        self._rooms: OrderedDict[str, _Room] = OrderedDict()

    def _room(self, room: str) -> _Room:
        found = self._rooms.get(room)
        if found is None:
            found = self._rooms[room] = _Room()
            if len(self._rooms) > self.max_rooms:
                self._evict()
        else:
            self._rooms.move_to_end(room)
        return found

    def _evict(self) -> None:
        for key, candidate in self._rooms.items():
            if not candidate.members:
                del self._rooms[key]
                return

    async def add_member(self, room: str, nick_key: str, nick: str, node: str) -> bool:
        members = self._room(room).members
        if nick_key in members:
            return False
        members[nick_key] = nick
        return True

    async def remove_member(self, room: str, nick_key: str) -> None:
        found = self._rooms.get(room)
        if found is not None:
            found.members.pop(nick_key, None)

    async def members(self, room: str) -> list[str]:
        found = self._rooms.get(room)
        return [] if found is None else list(found.members.values())

    async def append_history(self, room: str, entry: dict[str, Any], limit: int) -> None:
        history = self._room(room).history
        history.append(entry)
        if len(history) > limit:
            del history[: len(history) - limit]

    async def history(self, room: str) -> list[dict[str, Any]]:
        found = self._rooms.get(room)
        return [] if found is None else list(found.history)

    @property
    def rooms(self) -> int:
        """How many rooms are kept."""
        return len(self._rooms)
