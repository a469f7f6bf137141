"""The Redis backplane: ``redis://host:port/db`` (needs the ``[redis]`` extra).

Fan-out uses Redis pub/sub: channel ``room:lobby`` is the Redis channel
``<prefix>room:lobby`` (prefix ``fullduplex:`` by default; pub/sub ignores the
database number, the prefix keeps clusters sharing a server apart). Each node has
two connections: one in subscribe mode, read by one task that hands every message
to the local callbacks (no task per message), and a small pool for commands
(``PUBLISH``, sent in pipelined batches by one writer, and the room store). Redis
relays a message to every subscribed connection, the publisher's own included,
exactly once, in the order it processed the ``PUBLISH`` commands: so one
publisher's messages keep their order.

Room state::

    <prefix>members:<room>   hash  nick key -> JSON [join sequence, nick, node]
    <prefix>joins            integer, the join sequence (members are listed in join order)
    <prefix>history:<room>   list  JSON entries, oldest first, trimmed with LTRIM

Adding a member is one Lua script (check, then set: atomic); appending to the history
is ``RPUSH`` + ``LTRIM`` in one ``MULTI`` transaction.

Outages are handled by :class:`~fullduplex.pubsub._bus.BusBackplane`: the subscriber
connection's end is noticed at once (and a silent one by a ``PING`` every
``ping_interval`` seconds), the node reports unhealthy, refuses publications, and
reconnects with back-off. Presence and history survive a Redis restart only as far as
Redis persists them (RDB/AOF); members of connected clients are restored by their
nodes after the restart either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

try:
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import RedisError
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "the Redis backplane needs the redis package: pip install 'fullduplex[redis]'"
    ) from exc

from ._bus import BusBackplane, BusRoomStore

__all__ = ["RedisBackplane", "RedisRoomStore"]

logger = logging.getLogger("fullduplex.pubsub")

# KEYS[1] members hash, KEYS[2] join counter; ARGV nick key, nick, node.
_ADD_MEMBER = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
local seq = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode({seq, ARGV[2], ARGV[3]}))
return 1
"""


class RedisRoomStore(BusRoomStore):
    """Members and history of rooms in Redis (see the module docstring for the keys)."""

    backplane: RedisBackplane

    def __init__(self, backplane: RedisBackplane) -> None:
        super().__init__(backplane)
        self._script: Any = None

    def _key(self, kind: str, room: str) -> str:
        return f"{self.backplane.prefix}{kind}:{room}"

    async def _add_member(self, room: str, nick_key: str, nick: str, node: str) -> bool:
        client = self.backplane._client()
        if self._script is None:
            self._script = client.register_script(_ADD_MEMBER)
        keys = [self._key("members", room), f"{self.backplane.prefix}joins"]
        return bool(await self._script(keys=keys, args=[nick_key, nick, node], client=client))

    async def _remove_member(self, room: str, nick_key: str) -> None:
        await self.backplane._client().hdel(self._key("members", room), nick_key)

    async def _members(self, room: str) -> list[str]:
        values = await self.backplane._client().hvals(self._key("members", room))
        rows = sorted(json.loads(value) for value in values)
        return [nick for _, nick, _ in rows]

    async def _append_history(self, room: str, entry: dict[str, Any], limit: int) -> None:
        key = self._key("history", room)
        data = json.dumps(entry, ensure_ascii=False, separators=(",", ":"))
        async with self.backplane._client().pipeline(transaction=True) as pipe:
            pipe.rpush(key, data)
            pipe.ltrim(key, -limit, -1)
            await pipe.execute()

    async def _history(self, room: str) -> list[dict[str, Any]]:
        values = await self.backplane._client().lrange(self._key("history", room), 0, -1)
        return [json.loads(value) for value in values]


class RedisBackplane(BusBackplane):
    """Publish/subscribe through a Redis server.

    Args:
        url: ``redis://[[user]:password@]host[:port][/db]`` (``rediss://`` for TLS);
            the query may set ``prefix``.
        prefix: prepended to channel and key names (default ``fullduplex:``).
        ping_interval: seconds between liveness checks of the subscriber connection.
        timeout: seconds a connection attempt or a command may take.
    """

    kind = "redis"
    _errors = (RedisError, OSError, asyncio.TimeoutError, TimeoutError)

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str | None = None,
        ping_interval: float = 5.0,
        timeout: float = 5.0,
    ) -> None:
        super().__init__(url)
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss"):
            raise ValueError(f"not a redis:// URL: {url!r}")
        query = parse_qs(parts.query)
        if prefix is None:
            prefix = query.get("prefix", ["fullduplex:"])[0]
        self.prefix = prefix
        path = parts.path.strip("/")
        self._options: dict[str, Any] = {
            "host": parts.hostname or "127.0.0.1",
            "port": parts.port or 6379,
            "db": int(path) if path else 0,
            "username": unquote(parts.username) if parts.username else None,
            "password": unquote(parts.password) if parts.password else None,
            "socket_connect_timeout": timeout,
            "socket_keepalive": True,
            # RESP2: subscribe-mode replies are plain arrays read in order (RESP3
            # would turn them into push messages handled elsewhere).
            "protocol": 2,
        }
        if parts.scheme == "rediss":
            self._options["ssl"] = True
        self.ping_interval = ping_interval
        self.timeout = timeout
        self._commands: Any = None  # redis.asyncio.Redis
        self._sub: Any = None  # redis.asyncio.Connection in subscribe mode
        self._reader: asyncio.Task[None] | None = None
        self._pinger: asyncio.Task[None] | None = None
        self._confirms: dict[bytes, deque[asyncio.Future[None]]] = {}
        self._pongs: deque[asyncio.Future[None]] = deque()
        self._outbox: deque[tuple[str, bytes, asyncio.Future[None]]] = deque()
        self._writer: asyncio.Task[None] | None = None

    def _make_store(self) -> RedisRoomStore:
        return RedisRoomStore(self)

    def _client(self) -> Any:
        if self._commands is None:
            raise RedisError("not connected")
        return self._commands

    # ------------------------------------------------------------- connection

    async def _connect(self) -> None:
        options = self._options
        if self._commands is None:
            ssl = options.get("ssl", False)
            self._commands = aioredis.Redis(
                **{k: v for k, v in options.items() if k != "ssl"},
                ssl=ssl,
                socket_timeout=self.timeout,
                # One quick retry: a pooled connection may be a stale one from before
                # an outage; a second failure is a real one.
                retry=Retry(NoBackoff(), 1),
            )
        await self._commands.ping()
        conn_options = {k: v for k, v in options.items() if k != "ssl"}
        connection_class = aioredis.SSLConnection if options.get("ssl") else aioredis.Connection
        # Reads wait for messages as long as it takes (liveness is the pinger's job).
        sub = connection_class(**conn_options, socket_timeout=None, retry=Retry(NoBackoff(), 0))
        await asyncio.wait_for(sub.connect(), self.timeout)
        self._sub = sub
        loop = asyncio.get_running_loop()
        self._reader = loop.create_task(self._read(sub))
        if self.ping_interval > 0:
            self._pinger = loop.create_task(self._ping(sub))

    async def _disconnect(self) -> None:
        for task in (self._reader, self._pinger, self._writer):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        self._reader = self._pinger = self._writer = None
        self._fail_waiters(RedisError("connection closed"))
        outbox, self._outbox = list(self._outbox), deque()
        for _, _, future in outbox:
            if not future.done():
                future.set_exception(RedisError("connection closed"))
                future.exception()
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.disconnect()
        if self.state == "closed" and self._commands is not None:
            commands, self._commands = self._commands, None
            with contextlib.suppress(Exception):
                await commands.aclose()
        elif self._commands is not None:
            # Drop pooled connections: after an outage they are all stale.
            with contextlib.suppress(Exception):
                await self._commands.connection_pool.disconnect()

    def _fail_waiters(self, exc: BaseException) -> None:
        waiters = [f for q in self._confirms.values() for f in q] + list(self._pongs)
        self._confirms.clear()
        self._pongs.clear()
        for future in waiters:
            if not future.done():
                future.set_exception(exc)
                future.exception()  # retrieved: no "never retrieved" warning

    async def _read(self, sub: Any) -> None:
        """The subscriber connection's one reader: messages and confirmations."""
        prefix = self.prefix.encode()
        try:
            while True:
                reply = await sub.read_response(disconnect_on_error=False)
                if isinstance(reply, bytes):
                    # A connection subscribed to nothing answers PING like any other.
                    reply = [reply.lower()]
                kind = reply[0]
                if kind == b"message":
                    name = reply[1]
                    if name.startswith(prefix):
                        self._deliver(name[len(prefix) :].decode("utf-8", "replace"), reply[2])
                elif kind in (b"subscribe", b"unsubscribe"):
                    waiters = self._confirms.get(reply[1])
                    if waiters:
                        future = waiters.popleft()
                        if not waiters:
                            del self._confirms[reply[1]]
                        if not future.done():
                            future.set_result(None)
                elif kind == b"pong" and self._pongs:
                    future = self._pongs.popleft()
                    if not future.done():
                        future.set_result(None)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            if self._sub is sub:
                self._fail_waiters(RedisError("connection lost"))
                self._lost(exc)

    async def _ping(self, sub: Any) -> None:
        """Notice a bus that stopped answering without closing the connection."""
        while self._sub is sub:
            await asyncio.sleep(self.ping_interval)
            try:
                await self._command(sub, self._pongs, "PING")
            except self._errors as exc:
                if self._sub is sub:
                    self._fail_waiters(RedisError("connection lost"))
                    self._lost(exc)
                return

    async def _command(self, sub: Any, waiters: deque[asyncio.Future[None]], *args: Any) -> None:
        """Send a command on the subscriber connection; wait for its confirmation."""
        future = asyncio.get_running_loop().create_future()
        waiters.append(future)
        await sub.send_command(*args, check_health=False)
        await asyncio.wait_for(future, self.timeout)

    def _waiters(self, channel: str) -> tuple[Any, deque[asyncio.Future[None]]]:
        sub = self._sub
        if sub is None:
            raise RedisError("not connected")
        return sub, self._confirms.setdefault((self.prefix + channel).encode(), deque())

    async def _bus_subscribe(self, channel: str) -> None:
        sub, waiters = self._waiters(channel)
        await self._command(sub, waiters, "SUBSCRIBE", self.prefix + channel)

    async def _bus_unsubscribe(self, channel: str) -> None:
        sub, waiters = self._waiters(channel)
        await self._command(sub, waiters, "UNSUBSCRIBE", self.prefix + channel)

    async def _bus_resubscribe(self, channels: list[str]) -> None:
        if not channels:
            return
        sub = self._sub
        if sub is None:
            raise RedisError("not connected")
        loop = asyncio.get_running_loop()
        futures = []
        for channel in channels:
            future = loop.create_future()
            self._confirms.setdefault((self.prefix + channel).encode(), deque()).append(future)
            futures.append(future)
        await sub.send_command(
            "SUBSCRIBE", *(self.prefix + c for c in channels), check_health=False
        )
        await asyncio.wait_for(asyncio.gather(*futures), self.timeout)

    async def _bus_publish(self, channel: str, data: bytes) -> None:
        # One writer sends what is waiting as one pipeline (one round trip per
        # batch, on one connection): this node's publications stay in order and
        # concurrent ones do not each take a pooled connection.
        client = self._client()
        future = asyncio.get_running_loop().create_future()
        self._outbox.append((self.prefix + channel, data, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write(client))
        await future

    async def _write(self, client: Any) -> None:
        outbox = self._outbox
        while outbox:
            batch = [outbox.popleft() for _ in range(min(len(outbox), 512))]
            try:
                async with client.pipeline(transaction=False) as pipe:
                    for channel, data, _ in batch:
                        pipe.publish(channel, data)
                    await pipe.execute()
            except BaseException as exc:
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                        future.exception()
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            for _, _, future in batch:
                if not future.done():
                    future.set_result(None)
