"""What the shared backplanes (Redis, NATS) have in common: local fan-out and outages.

Theory of operation. A node holds *one* bus subscription per channel, however many
local subscriptions it has: the first local :meth:`~BusBackplane.subscribe` of a
channel subscribes on the bus (and returns once the bus confirmed it), the last
:meth:`~BusSubscription.unsubscribe` unsubscribes. Every message arriving on a bus
subscription is handed to the channel's local callbacks, in order, on the event loop.

The bus connection goes through these states::

    new ──start()──▶ connected ──connection lost──▶ reconnecting ──▶ connected ...
                        │                              │  (back-off: 50 ms doubling
                        └──────── close() ─────────────┴── to 2 s, with jitter)──▶ closed

While *reconnecting* the node keeps its WebSocket clients; :attr:`healthy` is
false (``/healthz`` answers 503) and :meth:`publish`, :meth:`subscribe` and the room
store raise :class:`~fullduplex.pubsub.BackplaneError` at once instead of waiting:
the sender is told (chat answers ``unavailable``), nothing is buffered. Once the
bus is back the node subscribes again to every channel that still has local
subscriptions, puts its local members back into the shared room store (a bus that
restarted empty has lost them), and only then reports healthy.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import random
import time
from typing import Any

from .base import Backplane, BackplaneClosed, BackplaneError, Callback, RoomStore, Subscription

__all__ = ["BusBackplane", "BusRoomStore", "BusSubscription", "redact"]

logger = logging.getLogger("fullduplex.pubsub")

#: Reconnection back-off: first delay, factor, cap (seconds).
BACKOFF_FIRST = 0.05
BACKOFF_FACTOR = 2.0
BACKOFF_MAX = 2.0


def redact(url: str) -> str:
    """``url`` without its password (for logs, ``/healthz`` and ``/stats``)."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return url
    credentials, _, host = rest.partition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if user else f"{scheme}://***@{host}"


class BusSubscription(Subscription):
    def __init__(self, backplane: BusBackplane, channel: str, callback: Callback) -> None:
        super().__init__(channel, callback)
        self._backplane: BusBackplane | None = backplane

    @property
    def active(self) -> bool:
        return self._backplane is not None

    async def unsubscribe(self) -> None:
        backplane, self._backplane = self._backplane, None
        if backplane is not None:
            await backplane._remove(self)


class BusRoomStore(RoomStore):
    """A shared store that remembers the members this node added, to restore them.

    Subclasses implement the ``_``-prefixed operations; this class keeps the local
    record and turns failures into :class:`~fullduplex.pubsub.BackplaneError`.
    """

    def __init__(self, backplane: BusBackplane) -> None:
        self.backplane = backplane
        self._local: dict[str, dict[str, tuple[str, str]]] = {}

    async def add_member(self, room: str, nick_key: str, nick: str, node: str) -> bool:
        self.backplane._refuse_if_down()
        added = await self.backplane._guard(self._add_member(room, nick_key, nick, node))
        if added:
            self._local.setdefault(room, {})[nick_key] = (nick, node)
        return added

    async def remove_member(self, room: str, nick_key: str) -> None:
        local = self._local.get(room)
        if local is not None:
            local.pop(nick_key, None)
            if not local:
                del self._local[room]
        self.backplane._refuse_if_down()
        await self.backplane._guard(self._remove_member(room, nick_key))

    async def members(self, room: str) -> list[str]:
        self.backplane._refuse_if_down()
        return await self.backplane._guard(self._members(room))

    async def append_history(self, room: str, entry: dict[str, Any], limit: int) -> None:
        self.backplane._refuse_if_down()
        await self.backplane._guard(self._append_history(room, entry, limit))

    async def history(self, room: str) -> list[dict[str, Any]]:
        self.backplane._refuse_if_down()
        return await self.backplane._guard(self._history(room))

    async def restore(self) -> int:
        """Add this node's members again (after the bus came back); return how many.

        A nick another node took meanwhile stays theirs.
        """
        restored = 0
        for room, members in list(self._local.items()):
            for nick_key, (nick, node) in list(members.items()):
                if await self._add_member(room, nick_key, nick, node):
                    restored += 1
        return restored

    @abc.abstractmethod
    async def _add_member(self, room: str, nick_key: str, nick: str, node: str) -> bool: ...

    @abc.abstractmethod
    async def _remove_member(self, room: str, nick_key: str) -> None: ...

    @abc.abstractmethod
    async def _members(self, room: str) -> list[str]: ...

    @abc.abstractmethod
    async def _append_history(self, room: str, entry: dict[str, Any], limit: int) -> None: ...

    @abc.abstractmethod
    async def _history(self, room: str) -> list[dict[str, Any]]: ...


class BusBackplane(Backplane):
    """Local fan-out, connection state, reconnection and counters of a shared bus.

    Subclasses connect to the bus (:meth:`_connect`, :meth:`_disconnect`), subscribe
    and unsubscribe one channel there (:meth:`_bus_subscribe`,
    :meth:`_bus_unsubscribe`), publish (:meth:`_bus_publish`), say which exceptions
    mean "the bus failed" (:attr:`_errors`), and call :meth:`_deliver` for each
    message and :meth:`_lost` when the connection goes away.
    """

    #: Exceptions of the client library that mean the bus failed.
    _errors: tuple[type[BaseException], ...] = (OSError,)

    def __init__(self, url: str) -> None:
        self.url = url
        self.state = "new"
        self._channels: dict[str, list[BusSubscription]] = {}
        self._bus_channels: set[str] = set()  # subscribed on the bus
        self._locks: dict[str, asyncio.Lock] = {}
        self._starting: asyncio.Task[None] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._store: BusRoomStore | None = None
        self.published = 0
        self.received = 0
        self.refused = 0
        self.outages = 0
        self.reconnects = 0
        self.last_error: str | None = None
        self._down_since: float | None = None
        self._state_changed: asyncio.Event | None = None

    def _set_state(self, state: str) -> None:
        self.state = state
        changed, self._state_changed = self._state_changed, None
        if changed is not None:
            changed.set()

    async def wait_healthy(self, healthy: bool = True) -> None:
        """Wait until :attr:`healthy` is ``healthy`` (bound it with a timeout)."""
        while self.healthy != healthy:
            if self.state == "closed":
                raise BackplaneClosed("the backplane is closed")
            if self._state_changed is None:
                self._state_changed = asyncio.Event()
            await self._state_changed.wait()

    # ------------------------------------------------------------ life cycle

    async def start(self) -> None:
        """Connect to the bus; idempotent.

        Raises:
            BackplaneError: the bus cannot be reached.
            BackplaneClosed: after :meth:`close`.
        """
        if self.state == "closed":
            raise BackplaneClosed("the backplane is closed")
        if self.state != "new":
            return
        if self._starting is None:
            self._starting = asyncio.get_running_loop().create_task(self._first_connect())
        try:
            await asyncio.shield(self._starting)
        except BackplaneError:
            self._starting = None
            raise

    async def _first_connect(self) -> None:
        try:
            await self._connect()
        except self._errors as exc:
            raise BackplaneError(f"cannot reach {redact(self.url)}: {_describe(exc)}") from exc
        if self.state == "new":
            self._set_state("connected")
            logger.info("backplane connected to %s", redact(self.url))

    async def close(self) -> None:
        if self.state == "closed":
            return
        self._set_state("closed")
        for task in (self._supervisor, self._starting):
            if task is not None and not task.done():
                task.cancel()
        self._supervisor = self._starting = None
        subs = [sub for subs in self._channels.values() for sub in subs]
        self._channels.clear()
        self._bus_channels.clear()
        for sub in subs:
            sub._backplane = None
        try:
            await self._disconnect()
        except Exception:
            logger.debug("closing the backplane connection failed", exc_info=True)

    @property
    def healthy(self) -> bool:
        return self.state == "connected"

    def status(self) -> dict[str, Any]:
        down = self._down_since
        return {
            **super().status(),
            "state": self.state,
            "url": redact(self.url),
            "channels": len(self._bus_channels),
            "subscriptions": sum(len(subs) for subs in self._channels.values()),
            "published": self.published,
            "received": self.received,
            "refused": self.refused,
            "outages": self.outages,
            "reconnects": self.reconnects,
            "down_for": None if down is None else round(time.monotonic() - down, 3),
            "last_error": self.last_error,
        }

    # --------------------------------------------------------------- pub/sub

    async def publish(self, channel: str, data: bytes) -> None:
        if self.state == "new":
            await self.start()
        self._refuse_if_down()
        try:
            await self._bus_publish(channel, bytes(data))
        except self._errors as exc:
            self.refused += 1
            raise BackplaneError(f"publishing failed: {_describe(exc)}") from exc
        self.published += 1

    async def subscribe(self, channel: str, callback: Callback) -> Subscription:
        if self.state == "new":
            await self.start()
        self._check_usable()
        sub = BusSubscription(self, channel, callback)
        lock = self._locks.setdefault(channel, asyncio.Lock())
        async with lock:
            self._check_usable()
            if channel not in self._bus_channels:
                try:
                    await self._bus_subscribe(channel)
                except self._errors as exc:
                    raise BackplaneError(f"subscribing failed: {_describe(exc)}") from exc
                self._bus_channels.add(channel)
            self._channels.setdefault(channel, []).append(sub)
        self._forget_lock(channel, lock)
        return sub

    async def _remove(self, sub: BusSubscription) -> None:
        channel = sub.channel
        subs = self._channels.get(channel)
        if subs is None:
            return
        try:
            subs.remove(sub)
        except ValueError:
            return
        if subs:
            return
        del self._channels[channel]
        lock = self._locks.setdefault(channel, asyncio.Lock())
        async with lock:
            if channel in self._channels or channel not in self._bus_channels:
                pass  # subscribed again meanwhile, or never on the bus
            else:
                self._bus_channels.discard(channel)
                if self.state == "connected":
                    try:
                        await self._bus_unsubscribe(channel)
                    except self._errors as exc:
                        # The connection is failing; a new one starts with no channel.
                        logger.debug("unsubscribing %r failed: %s", channel, exc)
        self._forget_lock(channel, lock)

    def _forget_lock(self, channel: str, lock: asyncio.Lock) -> None:
        if not lock.locked() and self._locks.get(channel) is lock:
            del self._locks[channel]

    def _deliver(self, channel: str, data: bytes) -> None:
        """Hand a message from the bus to the channel's local subscriptions."""
        self.received += 1
        subs = self._channels.get(channel)
        if not subs:
            return
        for sub in tuple(subs):  # a callback may subscribe or unsubscribe
            if not sub.active:
                continue
            try:
                sub.callback(channel, data)
            except Exception:
                logger.exception("backplane callback failed on %r", channel)

    # ----------------------------------------------------------- room store

    def room_store(self) -> RoomStore:
        if self._store is None:
            self._store = self._make_store()
        return self._store

    def _check_usable(self) -> None:
        state = self.state
        if state == "connected":
            return
        if state == "closed":
            raise BackplaneClosed("the backplane is closed")
        if state == "new":
            raise BackplaneError("the backplane is not started")
        raise BackplaneError(f"the backplane is unavailable ({redact(self.url)} unreachable)")

    def _refuse_if_down(self) -> None:
        """Raise (and count in ``refused``) unless the bus is usable right now."""
        try:
            self._check_usable()
        except BackplaneError:
            self.refused += 1
            raise

    async def _guard(self, operation: Any) -> Any:
        """Await a store operation, turning the client's failures into BackplaneError."""
        try:
            return await operation
        except self._errors as exc:
            self.refused += 1
            raise BackplaneError(f"the room store failed: {_describe(exc)}") from exc

    # ----------------------------------------------------------- outages

    def _lost(self, exc: BaseException | None) -> None:
        """The bus connection went away: go unhealthy and reconnect in the background."""
        if self.state != "connected":
            return
        self._set_state("reconnecting")
        self.outages += 1
        self._down_since = time.monotonic()
        self.last_error = _describe(exc) if exc is not None else "connection closed"
        logger.error(
            "backplane %s lost (%s); clients stay connected, reconnecting",
            redact(self.url),
            self.last_error,
        )
        self._bus_channels.clear()
        self._supervisor = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        delay = BACKOFF_FIRST
        attempt = 0
        while self.state == "reconnecting":
            attempt += 1
            try:
                await self._disconnect()
            except Exception:
                logger.debug("dropping the failed connection", exc_info=True)
            try:
                await self._connect()
                channels = sorted(self._channels)
                await self._bus_resubscribe(channels)
                self._bus_channels.update(channels)
                restored = 0
                if self._store is not None:
                    restored = await self._store.restore()
            except self._errors as exc:
                self.last_error = _describe(exc)
                if attempt == 1 or attempt % 20 == 0:
                    logger.warning(
                        "backplane %s still unreachable (attempt %d): %s",
                        redact(self.url),
                        attempt,
                        self.last_error,
                    )
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * BACKOFF_FACTOR, BACKOFF_MAX)
                continue
            if self.state != "reconnecting":
                return
            down = time.monotonic() - (self._down_since or time.monotonic())
            self._set_state("connected")
            self.reconnects += 1
            self._down_since = None
            logger.warning(
                "backplane %s back after %.1f s: %d channels resubscribed, %d members restored",
                redact(self.url),
                down,
                len(channels),
                restored,
            )

    async def _bus_resubscribe(self, channels: list[str]) -> None:
        """Subscribe a fresh connection to ``channels`` (default: one at a time)."""
        for channel in channels:
            await self._bus_subscribe(channel)

    # -------------------------------------------------------- to implement

    @abc.abstractmethod
    def _make_store(self) -> BusRoomStore: ...

    @abc.abstractmethod
    async def _connect(self) -> None: ...

    @abc.abstractmethod
    async def _disconnect(self) -> None: ...

    @abc.abstractmethod
    async def _bus_subscribe(self, channel: str) -> None: ...

    @abc.abstractmethod
    async def _bus_unsubscribe(self, channel: str) -> None: ...

    @abc.abstractmethod
    async def _bus_publish(self, channel: str, data: bytes) -> None: ...


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "connection closed"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
