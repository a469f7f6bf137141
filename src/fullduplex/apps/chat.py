"""Chat rooms over a small JSON protocol (``docs/chat-protocol.md``).

Theory of operation. Each connection runs :meth:`ChatServer.handler`, which reads
one message at a time, checks it (size, rate, JSON, fields) and acts on it. Bad
input is answered with an ``error`` to that connection only, or ends that
connection (binary frame: 1003, oversized: 1009, persistent flooding: 1008).

Room events (``message``, ``presence``, ``typing``) are never sent to local
connections directly. They are JSON-encoded once and published on the backplane
channel ``room:<name>``; every node subscribed to that channel, this one
included, hands the bytes to its local members with :func:`fullduplex.broadcast`
(one frame encoding, the same bytes to each, congested members skipped). So an
event reaches each member once, whichever node its author is on. A node
subscribes to a room's channel when its first local member joins and
unsubscribes when its last one leaves.

Who is in a room and its recent history are kept in the backplane's
:class:`~fullduplex.pubsub.RoomStore`, shared by every node.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import time
import unicodedata
from dataclasses import asdict, dataclass
from typing import Any

from .. import __version__
from ..connection import Connection
from ..errors import ConnectionClosed
from ..protocol.frames import CloseCode
from ..pubsub.base import Backplane, BackplaneError, RoomStore, Subscription
from ..server import broadcast
from .stats import EndpointStats

__all__ = ["ChatError", "ChatPolicy", "ChatServer", "TokenBucket", "canonical"]

logger = logging.getLogger("fullduplex.chat")

PROTOCOL_VERSION = 1

# C0/C1 controls other than tab and newline, and lone surrogates (not encodable).
_BAD_TEXT = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


@dataclass(frozen=True)
class ChatPolicy:
    """Limits of the chat endpoint; ``welcome`` tells clients the numbers.

    Attributes:
        history_size: messages kept per room and sent on joining.
        max_text: longest message text, in characters (code points).
        max_nick: longest nickname, in characters.
        max_room: longest room name, in characters.
        max_message_bytes: largest WebSocket message accepted; beyond, close 1009.
        rate_burst: messages a connection may send at once (token bucket size).
        rate_per_second: sustained messages per second (token refill rate).
        strike_limit: messages refused for rate, leaking at ``strike_leak`` per
            second, beyond which the connection is closed with 1008.
        strike_leak: strikes forgiven per second.
    """

    history_size: int = 50
    max_text: int = 2000
    max_nick: int = 24
    max_room: int = 32
    max_message_bytes: int = 16 * 1024
    rate_burst: int = 10
    rate_per_second: float = 2.0
    strike_limit: int = 20
    strike_leak: float = 1.0


class ChatError(Exception):
    """Bad input from one client: answered with ``{"type": "error", code, message}``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class TokenBucket:
    """``capacity`` tokens, refilled at ``rate`` per second; a message costs one."""

    __slots__ = ("capacity", "rate", "tokens", "updated")

    def __init__(self, capacity: float, rate: float, now: float) -> None:
        self.capacity = capacity
        self.rate = rate
        self.tokens = float(capacity)
        self.updated = now

    def take(self, now: float) -> bool:
        """Spend one token if there is one."""
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


def canonical(name: str) -> str:
    """The key two names must share to be the same nick or room (case-insensitive)."""
    return unicodedata.normalize("NFKC", name).casefold()


def _check_name(value: Any, field: str, max_len: int, code: str) -> str:
    """A nick or room name: 1..max_len letters, digits, marks, ``_ - .``; starts alnum."""
    if not isinstance(value, str):
        raise ChatError(code, f'"{field}" must be a string')
    value = unicodedata.normalize("NFC", value)
    if not 1 <= len(value) <= max_len:
        raise ChatError(code, f'"{field}" must be 1 to {max_len} characters')
    for index, char in enumerate(value):
        major = unicodedata.category(char)[0]
        if major in "LN" or (index > 0 and (major == "M" or char in "_-.")):
            continue
        raise ChatError(
            code,
            f'"{field}" may contain letters, digits and _ - . and must start '
            "with a letter or digit",
        )
    return value


def _encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class _Session:
    """One connection's chat state."""

    __slots__ = ("bucket", "conn", "nick", "nick_key", "room", "strikes", "struck_at")

    def __init__(self, conn: Connection, policy: ChatPolicy, now: float) -> None:
        self.conn = conn
        self.room: str | None = None
        self.nick = ""
        self.nick_key = ""
        self.bucket = TokenBucket(policy.rate_burst, policy.rate_per_second, now)
        self.strikes = 0.0
        self.struck_at = now

    def strike(self, now: float, leak: float) -> float:
        self.strikes = max(0.0, self.strikes - (now - self.struck_at) * leak) + 1
        self.struck_at = now
        return self.strikes


class _LocalRoom:
    """The members of one room connected to this node, and its channel subscription."""

    __slots__ = ("counters", "key", "lock", "members", "pending", "subscription")

    def __init__(self, key: str, counters: EndpointStats) -> None:
        self.key = key
        self.counters = counters
        self.members: dict[Connection, _Session] = {}
        self.subscription: Subscription | None = None
        self.lock = asyncio.Lock()
        self.pending = 0  # joins in progress, which keep the subscription alive

    def deliver(self, channel: str, data: bytes) -> None:
        """Backplane callback: hand a room event to every local member."""
        if not self.members:
            return
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            logger.warning("dropped a non-UTF-8 event on %r", channel)
            return
        sent = broadcast(self.members, text)
        self.counters.sent(len(data), sent)
        self.counters.skipped += len(self.members) - sent


class ChatServer:
    """The ``/chat`` endpoint: rooms, nicknames, history and presence.

    Args:
        backplane: fan-out between nodes (its :meth:`~Backplane.room_store` keeps
            members and history unless ``store`` is given).
        store: room state shared between nodes.
        policy: limits; see :class:`ChatPolicy`.
        counters: where to count messages and bytes (``/stats``).
        node: this node's name in message ids and ``welcome`` (default: random).
    """

    def __init__(
        self,
        backplane: Backplane,
        *,
        store: RoomStore | None = None,
        policy: ChatPolicy | None = None,
        counters: EndpointStats | None = None,
        node: str | None = None,
    ) -> None:
        self.backplane = backplane
        self.store = store if store is not None else backplane.room_store()
        self.policy = policy if policy is not None else ChatPolicy()
        self.counters = counters if counters is not None else EndpointStats()
        self.node = node if node is not None else secrets.token_hex(4)
        self._rooms: dict[str, _LocalRoom] = {}
        self._ids = 0
        self._welcome = _encode(
            {
                "type": "welcome",
                "server": "fullduplex",
                "version": __version__,
                "protocol": PROTOCOL_VERSION,
                "node": self.node,
                "limits": asdict(self.policy),
            }
        ).decode("utf-8")

    @property
    def rooms(self) -> list[str]:
        """The rooms with members on this node."""
        return list(self._rooms)

    # --------------------------------------------------------------- handler

    async def handler(self, conn: Connection) -> None:
        """Serve one chat connection until it closes."""
        policy = self.policy
        counters = self.counters
        proto = conn.protocol
        core = proto.core if proto is not None else None
        if core is not None and (core.max_size is None or core.max_size > policy.max_message_bytes):
            # The endpoint's own limit: later messages over it fail with 1009.
            core.max_size = policy.max_message_bytes
        loop = asyncio.get_running_loop()
        session = _Session(conn, policy, loop.time())
        try:
            await self._send(conn, self._welcome)
            async for raw in conn:
                if isinstance(raw, bytes):
                    counters.messages_in += 1
                    counters.bytes_in += len(raw)
                    await self._reject(conn, CloseCode.UNSUPPORTED_DATA, "text messages only")
                    return
                size = len(raw.encode("utf-8", "surrogatepass"))
                counters.messages_in += 1
                counters.bytes_in += size
                if size > policy.max_message_bytes:
                    # Messages that arrived before the limit above was set.
                    await self._reject(conn, CloseCode.MESSAGE_TOO_BIG, "message too big")
                    return
                now = loop.time()
                if not session.bucket.take(now):
                    if session.strike(now, policy.strike_leak) > policy.strike_limit:
                        await self._reject(conn, CloseCode.POLICY_VIOLATION, "rate limit exceeded")
                        return
                    await self._error(conn, "rate_limited", "too many messages; slow down")
                    continue
                try:
                    await self._dispatch(session, raw)
                except ChatError as exc:
                    await self._error(conn, exc.code, exc.message)
                except BackplaneError:
                    logger.exception("backplane failed")
                    await self._error(conn, "unavailable", "the server cannot relay right now")
        except ConnectionClosed:
            pass
        finally:
            try:
                await self._leave(session)
            except Exception:
                logger.exception("leaving %r failed", session.room)

    async def _dispatch(self, session: _Session, raw: str) -> None:
        try:
            msg = json.loads(raw)
        except (ValueError, RecursionError):
            raise ChatError("invalid_json", "not valid JSON") from None
        if not isinstance(msg, dict):
            raise ChatError("invalid_message", "a message must be a JSON object")
        kind = msg.get("type")
        if not isinstance(kind, str):
            raise ChatError("invalid_message", 'a message needs a string "type"')
        if kind == "message":
            await self._on_message(session, msg)
        elif kind == "join":
            await self._on_join(session, msg)
        elif kind == "typing":
            await self._on_typing(session)
        elif kind == "leave":
            await self._on_leave(session)
        else:
            raise ChatError("unknown_type", "unknown message type")

    # -------------------------------------------------------------- commands

    async def _on_join(self, session: _Session, msg: dict[str, Any]) -> None:
        policy = self.policy
        room = canonical(_check_name(msg.get("room"), "room", policy.max_room, "invalid_room"))
        nick = _check_name(msg.get("nick"), "nick", policy.max_nick, "invalid_nick")
        nick_key = canonical(nick)
        if session.room == room:
            raise ChatError("already_joined", "already in this room")
        if not await self.store.add_member(room, nick_key, nick, self.node):
            raise ChatError("nick_taken", "this nickname is taken in this room")
        try:
            await self._leave(session)  # switching rooms
            local = await self._attach(room)
            try:
                history = await self.store.history(room)
                members = await self.store.members(room)
            except BaseException:
                await self._release(local)
                raise
        except BaseException:
            await self.store.remove_member(room, nick_key)
            raise
        session.room, session.nick, session.nick_key = room, nick, nick_key
        # No await between these two: no room event can slip in between.
        local.members[session.conn] = session
        joined = {
            "type": "joined",
            "room": room,
            "nick": nick,
            "members": members,
            "history": history,
        }
        await self._send(session.conn, _encode(joined).decode("utf-8"))
        await self._publish_presence(room, "join", nick)

    async def _on_message(self, session: _Session, msg: dict[str, Any]) -> None:
        room = session.room
        if room is None:
            raise ChatError("not_joined", "join a room first")
        text = msg.get("text")
        if not isinstance(text, str):
            raise ChatError("invalid_text", '"text" must be a string')
        if len(text) > self.policy.max_text:
            raise ChatError("text_too_long", f"at most {self.policy.max_text} characters")
        if not text.strip():
            raise ChatError("invalid_text", '"text" is empty')
        if _BAD_TEXT.search(text):
            raise ChatError("invalid_text", '"text" contains control characters')
        self._ids += 1
        event = {
            "type": "message",
            "room": room,
            "nick": session.nick,
            "text": text,
            "ts": int(time.time() * 1000),
            "id": f"{self.node}-{self._ids}",
        }
        await self.store.append_history(room, event, self.policy.history_size)
        await self.backplane.publish(_channel(room), _encode(event))

    async def _on_typing(self, session: _Session) -> None:
        room = session.room
        if room is None:
            raise ChatError("not_joined", "join a room first")
        event = {"type": "typing", "room": room, "nick": session.nick}
        await self.backplane.publish(_channel(room), _encode(event))

    async def _on_leave(self, session: _Session) -> None:
        room = session.room
        if room is None:
            raise ChatError("not_joined", "not in a room")
        await self._leave(session)
        await self._send(session.conn, _encode({"type": "left", "room": room}).decode("utf-8"))

    # ----------------------------------------------------------------- rooms

    async def _leave(self, session: _Session) -> None:
        room = session.room
        if room is None:
            return
        session.room = None
        local = self._rooms.get(room)
        if local is not None:
            local.members.pop(session.conn, None)
        try:
            await self.store.remove_member(room, session.nick_key)
            await self._publish_presence(room, "leave", session.nick)
        finally:
            if local is not None:
                await self._release(local)

    async def _attach(self, room: str) -> _LocalRoom:
        local = self._rooms.get(room)
        if local is None:
            local = self._rooms[room] = _LocalRoom(room, self.counters)
        local.pending += 1
        try:
            async with local.lock:
                if local.subscription is None:
                    local.subscription = await self.backplane.subscribe(
                        _channel(room), local.deliver
                    )
        except BaseException:
            local.pending -= 1
            await self._release(local)
            raise
        local.pending -= 1
        return local

    async def _release(self, local: _LocalRoom) -> None:
        """Unsubscribe from a room's channel when its last local member is gone."""
        if local.members or local.pending:
            return
        if self._rooms.get(local.key) is local:
            del self._rooms[local.key]
        sub, local.subscription = local.subscription, None
        if sub is not None:
            await sub.unsubscribe()

    async def _publish_presence(self, room: str, event: str, nick: str) -> None:
        members = await self.store.members(room)
        presence = {
            "type": "presence",
            "room": room,
            "event": event,
            "nick": nick,
            "members": members,
        }
        await self.backplane.publish(_channel(room), _encode(presence))

    # --------------------------------------------------------------- sending

    async def _send(self, conn: Connection, text: str) -> None:
        await conn.send(text)
        self.counters.sent(len(text.encode("utf-8")))

    async def _error(self, conn: Connection, code: str, message: str) -> None:
        await self._send(
            conn, _encode({"type": "error", "code": code, "message": message}).decode()
        )

    @staticmethod
    async def _reject(conn: Connection, code: int, reason: str) -> None:
        """Close a connection that broke the rules, discarding what it still sends.

        Reading on: a flood may have filled the receive queue, and the peer's close
        frame must be read for the closing handshake to end (bounded by the close
        timeout). Closing the socket with unread data would reset it instead, and
        the peer might never see the close code.
        """
        if conn.protocol is None:
            return
        conn.protocol.close(code, reason)
        try:
            while True:
                await conn.recv()
        except ConnectionClosed:
            pass

    async def close(self) -> None:
        """Drop this node's subscriptions (the server closes the connections)."""
        rooms, self._rooms = list(self._rooms.values()), {}
        for local in rooms:
            local.members.clear()
            sub, local.subscription = local.subscription, None
            if sub is not None:
                await sub.unsubscribe()


def _channel(room: str) -> str:
    return f"room:{room}"
