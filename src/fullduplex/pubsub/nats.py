"""The NATS backplane: ``nats://host:port`` (needs the ``[nats]`` extra).

Fan-out uses core NATS: channel ``room:lobby`` is the subject
``<prefix>.room:lobby`` (prefix ``fullduplex`` by default). Characters a subject may
not hold (``.`` ``*`` ``>``, white space, non-ASCII) are written ``%XX`` (UTF-8), so
every channel name maps to one single-token subject. NATS delivers a message to
every subscription, the publisher's own connection included, once, and keeps one
connection's messages in order.

Room state lives in the JetStream key-value bucket ``<prefix>`` (the server needs
``-js``): key ``m.<room>`` holds the members in join order, ``h.<room>`` the recent
history (room names base64url-encoded), each one JSON document changed by
compare-and-set (``update(..., last=revision)``, retried on conflict), so adding a
member is atomic across nodes. A server without JetStream still fans out; the room
store then falls back to this node's memory, with a warning, and ``status()`` says
``"store": "memory"``: presence and history are per node.

Reconnection is this package's own (the client's automatic reconnection is off),
so both shared backplanes behave alike during an outage: see
:mod:`fullduplex.pubsub._bus`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

try:
    import nats
    import nats.errors
    import nats.js.errors
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "the NATS backplane needs the nats-py package: pip install 'fullduplex[nats]'"
    ) from exc

from ._bus import BusBackplane, BusRoomStore
from .memory import MemoryRoomStore

__all__ = ["NatsBackplane", "NatsRoomStore", "subject_token"]

logger = logging.getLogger("fullduplex.pubsub")

_UNSAFE = re.compile(r"[^A-Za-z0-9_\-:=/]")

#: Compare-and-set attempts before giving up on a contended key.
CAS_ATTEMPTS = 50


def subject_token(channel: str) -> str:
    """``channel`` as one NATS subject token (reversible, readable for plain names)."""
    return (
        _UNSAFE.sub(
            lambda m: "".join(f"%{b:02X}" for b in m.group().encode("utf-8", "surrogatepass")),
            channel,
        )
        or "%"
    )


def _key(kind: str, room: str) -> str:
    encoded = base64.urlsafe_b64encode(room.encode("utf-8", "surrogatepass")).rstrip(b"=")
    return f"{kind}.{encoded.decode('ascii') or '_'}"


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class NatsRoomStore(BusRoomStore):
    """Members and history of rooms in a JetStream key-value bucket."""

    backplane: NatsBackplane

    async def _change(self, key: str, change: Any) -> Any:
        """Apply ``change(value) -> (new value or None, result)`` by compare-and-set."""
        kv = self.backplane._kv_bucket()
        for _ in range(CAS_ATTEMPTS):
            try:
                entry = await kv.get(key)
            except nats.js.errors.KeyNotFoundError:
                entry = None
            value = json.loads(entry.value) if entry is not None and entry.value else None
            new, result = change(value)
            if new is None:
                return result
            try:
                if entry is None:
                    await kv.create(key, _dumps(new))
                else:
                    await kv.update(key, _dumps(new), last=entry.revision)
            except nats.js.errors.KeyWrongLastSequenceError:
                continue  # another node changed it meanwhile: read again
            return result
        raise nats.errors.Error(f"key {key!r} is too contended")

    async def _add_member(self, room: str, nick_key: str, nick: str, node: str) -> bool:
        def add(members: dict[str, list[str]] | None) -> tuple[Any, bool]:
            members = members or {}
            if nick_key in members:
                return None, False
            members[nick_key] = [nick, node]
            return members, True

        return bool(await self._change(_key("m", room), add))

    async def _remove_member(self, room: str, nick_key: str) -> None:
        def remove(members: dict[str, list[str]] | None) -> tuple[Any, None]:
            if not members or nick_key not in members:
                return None, None
            del members[nick_key]
            return members, None

        await self._change(_key("m", room), remove)

    async def _members(self, room: str) -> list[str]:
        try:
            entry = await self.backplane._kv_bucket().get(_key("m", room))
        except nats.js.errors.KeyNotFoundError:
            return []
        members = json.loads(entry.value) if entry.value else {}
        return [nick for nick, _ in members.values()]

    async def _append_history(self, room: str, entry: dict[str, Any], limit: int) -> None:
        def append(history: list[Any] | None) -> tuple[Any, None]:
            history = (history or []) + [entry]
            return history[-limit:] if limit > 0 else [], None

        await self._change(_key("h", room), append)

    async def _history(self, room: str) -> list[dict[str, Any]]:
        try:
            entry = await self.backplane._kv_bucket().get(_key("h", room))
        except nats.js.errors.KeyNotFoundError:
            return []
        return list(json.loads(entry.value)) if entry.value else []


class _LocalStore(BusRoomStore):
    """The fallback without JetStream: this node's memory (presence per node)."""

    def __init__(self, backplane: NatsBackplane) -> None:
        super().__init__(backplane)
        self._memory = MemoryRoomStore()

    async def _add_member(self, room: str, nick_key: str, nick: str, node: str) -> bool:
        return await self._memory.add_member(room, nick_key, nick, node)

    async def _remove_member(self, room: str, nick_key: str) -> None:
        await self._memory.remove_member(room, nick_key)

    async def _members(self, room: str) -> list[str]:
        return await self._memory.members(room)

    async def _append_history(self, room: str, entry: dict[str, Any], limit: int) -> None:
        await self._memory.append_history(room, entry, limit)

    async def _history(self, room: str) -> list[dict[str, Any]]:
        return await self._memory.history(room)

    async def restore(self) -> int:
        return 0  # nothing was lost


class NatsBackplane(BusBackplane):
    """Publish/subscribe through a NATS server; room state in JetStream KV.

    Args:
        url: ``nats://[user:password@]host[:port]`` (``tls://`` for TLS); the query
            may set ``prefix``.
        prefix: first subject token and KV bucket name (default ``fullduplex``).
        ping_interval: seconds between the client's liveness pings.
        timeout: seconds a connection attempt or a request may take.
    """

    kind = "nats"
    _errors = (nats.errors.Error, OSError, asyncio.TimeoutError, TimeoutError)

    def __init__(
        self,
        url: str = "nats://127.0.0.1:4222",
        *,
        prefix: str | None = None,
        ping_interval: float = 5.0,
        timeout: float = 5.0,
    ) -> None:
        super().__init__(url)
        parts = urlsplit(url)
        if parts.scheme not in ("nats", "tls"):
            raise ValueError(f"not a nats:// URL: {url!r}")
        if prefix is None:
            prefix = parse_qs(parts.query).get("prefix", ["fullduplex"])[0]
        if not re.fullmatch(r"[A-Za-z0-9_-]+", prefix):
            raise ValueError(f"the NATS prefix must be letters, digits, _ or -: {prefix!r}")
        self.prefix = prefix
        self._server = parts._replace(query="", fragment="").geturl()
        self.ping_interval = ping_interval
        self.timeout = timeout
        self._nc: Any = None
        self._kv: Any = None
        self.jetstream: bool | None = None
        self._subs: dict[str, Any] = {}
        self._flushing: asyncio.Task[None] | None = None

    def status(self) -> dict[str, Any]:
        store = None if self.jetstream is None else ("jetstream" if self.jetstream else "memory")
        return {**super().status(), "store": store}

    def _make_store(self) -> BusRoomStore:
        if self.jetstream is False:
            return _LocalStore(self)
        return NatsRoomStore(self)

    def _kv_bucket(self) -> Any:
        if self._kv is None:
            raise nats.errors.ConnectionClosedError()
        return self._kv

    def _subject(self, channel: str) -> str:
        return f"{self.prefix}.{subject_token(channel)}"

    # ------------------------------------------------------------- connection

    async def _connect(self) -> None:
        nc: Any = None

        async def on_gone() -> None:
            if self._nc is nc and nc is not None:
                self._lost(nc.last_error)

        async def on_error(exc: Exception) -> None:
            logger.debug("nats client error: %s", exc)

        nc = await nats.connect(
            servers=[self._server],
            allow_reconnect=False,
            connect_timeout=max(1, int(self.timeout)),
            ping_interval=max(1, int(self.ping_interval)),
            max_outstanding_pings=2,
            disconnected_cb=on_gone,
            closed_cb=on_gone,
            error_cb=on_error,
            name="fullduplex",
        )
        try:
            await self._open_bucket(nc)
        except BaseException:
            with contextlib.suppress(Exception):
                await nc.close()
            raise
        self._nc = nc
        self._subs.clear()

    async def _open_bucket(self, nc: Any) -> None:
        if self.jetstream is False:
            return
        js = nc.jetstream(timeout=self.timeout)
        try:
            self._kv = await js.create_key_value(bucket=self.prefix, history=1)
        except (nats.errors.NoRespondersError, nats.js.errors.ServiceUnavailableError) as exc:
            if self.jetstream is None:
                self.jetstream = False
                logger.warning(
                    "%s has no JetStream (%s): presence and history stay per node",
                    self._server,
                    type(exc).__name__,
                )
                return
            raise
        except nats.js.errors.BadRequestError:
            self._kv = await js.key_value(self.prefix)  # exists with another config
        self.jetstream = True

    async def _disconnect(self) -> None:
        nc, self._nc = self._nc, None
        self._kv = None
        self._subs.clear()
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.close()

    def _connection(self) -> Any:
        nc = self._nc
        if nc is None or not nc.is_connected:
            raise nats.errors.ConnectionClosedError()
        return nc

    async def _bus_subscribe(self, channel: str) -> None:
        nc = self._connection()
        deliver = self._deliver

        async def on_message(msg: Any) -> None:
            deliver(channel, msg.data)

        sub = await nc.subscribe(self._subject(channel), cb=on_message)
        self._subs[channel] = sub
        # Once the server answered a PING sent after the SUB, the SUB is in effect.
        await self._barrier(nc)

    async def _bus_unsubscribe(self, channel: str) -> None:
        sub = self._subs.pop(channel, None)
        if sub is not None:
            await sub.unsubscribe()

    async def _bus_publish(self, channel: str, data: bytes) -> None:
        nc = self._connection()
        await nc.publish(self._subject(channel), data)
        # The client only buffers: wait until the server has it, as with Redis, so
        # that a failure is reported to the sender and a message published after
        # this one returned (on any node) cannot overtake it. Publications of one
        # loop iteration share one PING/PONG.
        flushing = self._flushing
        if flushing is None or flushing.done():
            flushing = self._flushing = asyncio.get_running_loop().create_task(self._flush(nc))
        await asyncio.shield(flushing)

    async def _flush(self, nc: Any) -> None:
        # From here on, new publications need the next PING: this one may be sent.
        self._flushing = None
        await self._barrier(nc)

    async def _barrier(self, nc: Any) -> None:
        """Return once the server processed every command sent so far."""
        # nats-py (2.16) writes the PING of flush() straight to the socket, ahead
        # of commands still in its pending buffer, so a PONG alone proves nothing:
        # have the buffer written first.
        await asyncio.wait_for(nc._flush_pending(force_flush=True), self.timeout)
        await nc.flush(timeout=self.timeout)
