"""Sans-I/O STOMP session: one connection's protocol state, server or client side.

Theory of operation
-------------------

A session turns received bytes into events and calls into bytes to send. It never
touches a socket or a clock: the I/O layer passes ``now`` (seconds, any monotonic
origin) and, after every call, collects :meth:`~StompSession.data_to_send` and
:meth:`~StompSession.events_received`. A :class:`Close` event means "flush what is
queued, then close the transport"; :attr:`~StompSession.closed` says the same.

States (both roles)::

    DISCONNECTED ──CONNECT──▶ CONNECTING ──CONNECTED──▶ CONNECTED ──DISCONNECT──▶ DISCONNECTING
         │                        │                         │                         │
         └────── error, ERROR frame, EOF or heart-beat timeout: CLOSED ◀──────────────┘

*Server*: CONNECT (or STOMP) moves DISCONNECTED to CONNECTING and yields a
:class:`ConnectRequest`. The layer above checks ``login``/``passcode`` (maybe
asynchronously) and calls :meth:`ServerSession.accept` (CONNECTED is sent) or
:meth:`ServerSession.reject` (ERROR, then close). Frames pipelined behind CONNECT stay
in the parser until then, so they are read with the negotiated version's escaping.
DISCONNECT moves to DISCONNECTING: no more frames are read nor MESSAGEs delivered, but
receipts still go out, so that the layer above can finish the events before it, answer
the DISCONNECT's own receipt last, and then call :meth:`~StompSession.close`.

*Client*: :meth:`ClientSession.connect` sends CONNECT (CONNECTING); CONNECTED moves to
CONNECTED; :meth:`ClientSession.disconnect` with a receipt waits in DISCONNECTING for the
RECEIPT, as the spec recommends for a graceful shutdown.

Which commands each state accepts is the table ``_ACCEPTS``; which headers each command
needs in each version is ``_REQUIRED``. A server answers every protocol violation with
an ERROR frame (``message`` header, explanation in the body, ``receipt-id`` if the bad
frame asked for a receipt) and closes; a client just closes.

Receipts are the job of the layer above, DISCONNECT's included: each event carries
``receipt``, and :meth:`ServerSession.send_receipt` answers it once the frame has really
been processed. The session cannot do it: it turns a whole chunk of frames into events
before the layer above has handled the first one.

Heart-beating
-------------

CONNECT carries ``heart-beat: cx,cy``, CONNECTED ``heart-beat: sx,sy`` (milliseconds).
Client to server beats every ``max(cx, sy)`` unless either is 0; server to client every
``max(sx, cy)`` unless either is 0 (spec, Heart-beating). :meth:`~StompSession.tick`
applies both directions and returns when it wants to be called again:

- Sending: a heart-beat EOL is queued when nothing is known to have been queued during
  the last interval. The session only learns that data went out at the next tick, so it
  assumes, pessimistically, that it went out at the previous tick, and ticks at least
  every half interval: the gap between two transmissions never exceeds the interval.
- Receiving: any received byte (frame or EOL) proves the peer alive. The peer is
  declared dead after ``interval × heartbeat_grace + heartbeat_slack`` seconds of
  silence (defaults 1.5 and 0.5 s), which absorbs network jitter and a peer that
  beats exactly at the interval; the session then closes with a :class:`Close` event.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, TypeAlias

from ..errors import InvalidState
from .errors import FrameError, StompError, StompProtocolError
from .frames import (
    DEFAULT_MAX_FRAME_SIZE,
    DEFAULT_MAX_HEADER_LENGTH,
    DEFAULT_MAX_HEADERS,
    HEARTBEAT_EOL,
    VERSIONS,
    Frame,
    FrameParser,
    Heartbeat,
    encode,
)

__all__ = [
    "Abort",
    "Ack",
    "Begin",
    "ClientSession",
    "Close",
    "Commit",
    "ConnectRequest",
    "Connected",
    "Disconnect",
    "Error",
    "Event",
    "Message",
    "Nack",
    "Receipt",
    "Role",
    "Send",
    "ServerSession",
    "State",
    "StompSession",
    "Subscribe",
    "Unsubscribe",
    "negotiate_heartbeat",
    "negotiate_version",
    "parse_heartbeat",
]

Headers = list[tuple[str, str]]


class Role(enum.Enum):
    """Which end of the connection a session plays."""

    CLIENT = "client"
    SERVER = "server"


class State(enum.IntEnum):
    """Where a session is in its life; see the module docstring for the transitions."""

    DISCONNECTED = 0
    CONNECTING = 1
    CONNECTED = 2
    DISCONNECTING = 3
    CLOSED = 4


# -- events ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConnectRequest:
    """Server side: a client sent CONNECT or STOMP; answer with accept() or reject()."""

    version: str
    host: str | None
    login: str | None
    passcode: str | None
    heartbeat: tuple[int, int]
    headers: Headers = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Send:
    """Server side: a SEND frame. ``headers`` holds every header, as received."""

    destination: str
    body: bytes
    headers: Headers
    transaction: str | None = None
    receipt: str | None = None


@dataclass(frozen=True, slots=True)
class Subscribe:
    """Server side: a SUBSCRIBE frame (a 1.0 one without ``id`` uses the destination)."""

    id: str
    destination: str
    ack: str
    headers: Headers
    receipt: str | None = None


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """Server side: an UNSUBSCRIBE frame (a 1.0 one may name the destination instead)."""

    id: str
    receipt: str | None = None


@dataclass(frozen=True, slots=True)
class Ack:
    """Server side: an ACK frame.

    ``id`` is the MESSAGE's ``ack`` header in 1.2 and its ``message-id`` before;
    ``subscription`` is set only when the client named one (1.1, optionally 1.0).
    """

    id: str
    subscription: str | None = None
    transaction: str | None = None
    receipt: str | None = None


@dataclass(frozen=True, slots=True)
class Nack:
    """Server side: a NACK frame (1.1 and 1.2); fields as for :class:`Ack`."""

    id: str
    subscription: str | None = None
    transaction: str | None = None
    receipt: str | None = None


@dataclass(frozen=True, slots=True)
class Begin:
    """Server side: BEGIN a transaction."""

    transaction: str
    receipt: str | None = None


@dataclass(frozen=True, slots=True)
class Commit:
    """Server side: COMMIT a transaction."""

    transaction: str
    receipt: str | None = None


@dataclass(frozen=True, slots=True)
class Abort:
    """Server side: ABORT a transaction."""

    transaction: str
    receipt: str | None = None


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Server side: the client sent DISCONNECT.

    Handle the events before it, answer ``receipt`` with ``send_receipt()``, then call
    ``close()``.
    """

    receipt: str | None = None


@dataclass(frozen=True, slots=True)
class Connected:
    """Client side: the server accepted the connection."""

    version: str
    server: str | None
    session: str | None
    heartbeat: tuple[int, int]
    headers: Headers = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Message:
    """Client side: a MESSAGE frame; ``ack`` is set when the subscription needs ACKs."""

    destination: str
    message_id: str
    subscription: str | None
    ack: str | None
    body: bytes
    headers: Headers


@dataclass(frozen=True, slots=True)
class Receipt:
    """Client side: the server processed the frame that asked for ``receipt_id``."""

    receipt_id: str


@dataclass(frozen=True, slots=True)
class Error:
    """Client side: the server sent ERROR (a :class:`Close` follows)."""

    message: str
    body: bytes
    headers: Headers
    receipt_id: str | None = None


@dataclass(frozen=True, slots=True)
class Close:
    """Both sides: flush the queued bytes, then close the transport.

    ``error`` is the protocol error that caused it, if any.
    """

    reason: str
    error: StompError | None = None


Event: TypeAlias = (
    ConnectRequest
    | Send
    | Subscribe
    | Unsubscribe
    | Ack
    | Nack
    | Begin
    | Commit
    | Abort
    | Disconnect
    | Connected
    | Message
    | Receipt
    | Error
    | Close
)


# -- the tables ------------------------------------------------------------------------

_CLIENT_COMMANDS: Final = frozenset(
    {"CONNECT", "STOMP", "SEND", "SUBSCRIBE", "UNSUBSCRIBE", "ACK", "NACK"}
    | {"BEGIN", "COMMIT", "ABORT", "DISCONNECT"}
)
_SERVER_COMMANDS: Final = frozenset({"CONNECTED", "MESSAGE", "RECEIPT", "ERROR"})
_CONNECTED_CLIENT_COMMANDS: Final = _CLIENT_COMMANDS - {"CONNECT", "STOMP"}

# Commands each (role, state) accepts from the peer. States missing here do not read
# frames at all: a server waiting for accept() leaves them buffered, CLOSED drops them.
_ACCEPTS: Final[dict[tuple[Role, State], frozenset[str]]] = {
    (Role.SERVER, State.DISCONNECTED): frozenset({"CONNECT", "STOMP"}),
    (Role.SERVER, State.CONNECTED): _CONNECTED_CLIENT_COMMANDS,
    (Role.CLIENT, State.DISCONNECTED): frozenset(),
    (Role.CLIENT, State.CONNECTING): frozenset({"CONNECTED", "ERROR"}),
    (Role.CLIENT, State.CONNECTED): frozenset({"MESSAGE", "RECEIPT", "ERROR"}),
    (Role.CLIENT, State.DISCONNECTING): frozenset({"MESSAGE", "RECEIPT", "ERROR"}),
}

# Spec: "Only the SEND, MESSAGE, and ERROR frames MAY have a body."
_BODY_ALLOWED: Final = frozenset({"SEND", "MESSAGE", "ERROR"})

_ALL_VERSIONS: Final = frozenset(VERSIONS)
_V11_UP: Final = frozenset({"1.1", "1.2"})


def _rule(*pairs: tuple[Iterable[str], tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    return {version: headers for versions, headers in pairs for version in versions}


# Headers a frame must carry, non-empty, per command and version. A version missing
# from a command's entry means the command does not exist in that version.
_REQUIRED: Final[dict[str, dict[str, tuple[str, ...]]]] = {
    "CONNECT": _rule((_ALL_VERSIONS, ())),
    "STOMP": _rule((_ALL_VERSIONS, ())),
    "SEND": _rule((_ALL_VERSIONS, ("destination",))),
    "SUBSCRIBE": _rule((("1.0",), ("destination",)), (_V11_UP, ("destination", "id"))),
    "UNSUBSCRIBE": _rule((("1.0",), ()), (_V11_UP, ("id",))),
    "ACK": _rule(
        (("1.0",), ("message-id",)),
        (("1.1",), ("message-id", "subscription")),
        (("1.2",), ("id",)),
    ),
    "NACK": _rule((("1.1",), ("message-id", "subscription")), (("1.2",), ("id",))),
    "BEGIN": _rule((_ALL_VERSIONS, ("transaction",))),
    "COMMIT": _rule((_ALL_VERSIONS, ("transaction",))),
    "ABORT": _rule((_ALL_VERSIONS, ("transaction",))),
    "DISCONNECT": _rule((_ALL_VERSIONS, ())),
    "CONNECTED": _rule((_ALL_VERSIONS, ())),
    "MESSAGE": _rule(
        (("1.0",), ("destination", "message-id")),
        (_V11_UP, ("destination", "message-id", "subscription")),
    ),
    "RECEIPT": _rule((_ALL_VERSIONS, ("receipt-id",))),
    "ERROR": _rule((_ALL_VERSIONS, ())),
}

_ACK_MODES: Final = {
    "1.0": frozenset({"auto", "client"}),
    "1.1": frozenset({"auto", "client", "client-individual"}),
    "1.2": frozenset({"auto", "client", "client-individual"}),
}


# -- negotiation helpers ---------------------------------------------------------------


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def negotiate_version(accept_version: str | None, supported: Iterable[str]) -> str | None:
    """Pick the highest version both sides speak, or ``None`` if there is none.

    Args:
        accept_version: the CONNECT ``accept-version`` header; absent means 1.0.
        supported: the versions this server speaks.
    """
    offered = {"1.0"} if accept_version is None else {v.strip() for v in accept_version.split(",")}
    common = offered & set(supported) & _ALL_VERSIONS
    return max(common, key=_version_key) if common else None


def parse_heartbeat(value: str | None) -> tuple[int, int]:
    """Parse a ``heart-beat`` header (``"cx,cy"`` in milliseconds); absent is ``(0, 0)``.

    Raises:
        StompProtocolError: the header is not two non-negative integers.
    """
    if value is None:
        return (0, 0)
    parts = [part.strip() for part in value.split(",")]
    if len(parts) != 2 or not all(part.isascii() and part.isdigit() for part in parts):
        raise StompProtocolError(
            "invalid heart-beat header",
            f"heart-beat must be two non-negative integers like '10000,10000', got {value!r}",
        )
    return (int(parts[0]), int(parts[1]))


def negotiate_heartbeat(mine: tuple[int, int], theirs: tuple[int, int]) -> tuple[int, int]:
    """Return ``(send, receive)`` intervals in milliseconds, 0 meaning none.

    Args:
        mine: this side's ``(can send every, wants to receive every)`` values.
        theirs: the peer's ``(can send every, wants to receive every)`` values.
    """
    send = 0 if mine[0] == 0 or theirs[1] == 0 else max(mine[0], theirs[1])
    receive = 0 if mine[1] == 0 or theirs[0] == 0 else max(mine[1], theirs[0])
    return (send, receive)


def _one_line(text: str) -> str:
    # An ERROR message header must survive every version's encoding, 1.0 included.
    return " ".join(text.split())


# -- the sessions ----------------------------------------------------------------------


class StompSession:
    """State shared by :class:`ServerSession` and :class:`ClientSession`.

    Args:
        versions: the protocol versions this side speaks.
        heartbeat: this side's ``(cx, cy)`` or ``(sx, sy)`` in milliseconds: how often
            it can send heart-beats and how often it wants to receive them (0: never).
        heartbeat_grace: factor applied to the receive interval before the peer is
            declared dead.
        heartbeat_slack: seconds added to that deadline.
        max_frame_size: see :class:`~fullduplex.stomp.frames.FrameParser`.
        max_headers: see :class:`~fullduplex.stomp.frames.FrameParser`.
        max_header_length: see :class:`~fullduplex.stomp.frames.FrameParser`.
        max_body_size: see :class:`~fullduplex.stomp.frames.FrameParser`.
    """

    role: ClassVar[Role]

    def __init__(
        self,
        *,
        versions: Iterable[str] = VERSIONS,
        heartbeat: tuple[int, int] = (0, 0),
        heartbeat_grace: float = 1.5,
        heartbeat_slack: float = 0.5,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        max_headers: int = DEFAULT_MAX_HEADERS,
        max_header_length: int = DEFAULT_MAX_HEADER_LENGTH,
        max_body_size: int | None = None,
    ) -> None:
        self.versions = tuple(sorted(set(versions), key=_version_key))
        if not self.versions or not set(self.versions) <= _ALL_VERSIONS:
            raise ValueError(f"versions must be a non-empty subset of {VERSIONS}")
        self.heartbeat = heartbeat
        self.heartbeat_grace = heartbeat_grace
        self.heartbeat_slack = heartbeat_slack
        self.state = State.DISCONNECTED
        #: The negotiated version once connected; until then the highest supported.
        self.version = self.versions[-1]
        self._parser = FrameParser(
            version=self.version,
            max_frame_size=max_frame_size,
            max_headers=max_headers,
            max_header_length=max_header_length,
            max_body_size=max_body_size,
        )
        self._events: list[Event] = []
        self._out: list[bytes] = []
        self._now = 0.0
        # Heart-beat bookkeeping, in seconds; 0.0 intervals mean "off".
        self.send_interval = 0.0
        self.receive_interval = 0.0
        self._last_received = 0.0
        self._last_sent = 0.0  # a lower bound on when data last went out
        self._last_check = 0.0
        self._sent_since_check = False

    # -- I/O layer interface -----------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether the transport should be closed once :meth:`data_to_send` is flushed."""
        return self.state is State.CLOSED

    def receive_data(self, data: bytes, now: float) -> None:
        """Process bytes received from the peer at time ``now`` (seconds)."""
        if self.state is State.CLOSED:
            return
        self._now = now
        if data:
            # Any octet counts as liveness (spec: "any new data").
            self._last_received = now
        self._parser.feed_data(data)
        self._process()

    def receive_eof(self) -> None:
        """The peer closed the transport; idempotent."""
        if self.state is not State.CLOSED:
            self._close("connection closed by peer")

    def close(self, reason: str = "closed") -> None:
        """Close from this side without an error (after a DISCONNECT, on a timeout...).

        Emits :class:`Close`; idempotent.
        """
        if self.state is not State.CLOSED:
            self._close(reason)

    def events_received(self) -> list[Event]:
        """Return and forget the events produced since the last call."""
        events, self._events = self._events, []
        return events

    def data_to_send(self) -> list[bytes]:
        """Return and forget the bytes to write, in order."""
        out, self._out = self._out, []
        return out

    def tick(self, now: float) -> float | None:
        """Apply heart-beating at time ``now``; return when to call again, or ``None``.

        Queues a heart-beat EOL when one is due and closes (with a :class:`Close`
        event) when the peer has been silent too long.
        """
        self._now = now
        if self.state not in (State.CONNECTED, State.DISCONNECTING):
            return None
        deadlines = []
        if self.receive_interval:
            limit = (
                self._last_received
                + self.receive_interval * self.heartbeat_grace
                + self.heartbeat_slack
            )
            if now >= limit:
                self._close("heart-beat timeout: no data received from the peer")
                return None
            deadlines.append(limit)
        if self.send_interval:
            if self._sent_since_check:
                # Data was queued somewhere in (last check, now]: assume the earliest.
                self._last_sent = max(self._last_sent, self._last_check)
                self._sent_since_check = False
            if now - self._last_sent >= self.send_interval:
                self._out.append(HEARTBEAT_EOL)
                self._last_sent = now
            self._last_check = now
            deadlines.append(
                min(self._last_sent + self.send_interval, now + self.send_interval / 2)
            )
        return min(deadlines) if deadlines else None

    # -- internals ----------------------------------------------------------------------

    def _reading(self) -> bool:
        return (self.role, self.state) in _ACCEPTS

    def _process(self) -> None:
        while self._reading():
            try:
                item = self._parser.next_frame()
            except FrameError as exc:
                self._fail(exc)
                return
            if item is None:
                return
            if isinstance(item, Heartbeat):
                continue
            try:
                self._dispatch(item)
            except StompError as exc:
                self._fail(exc, item.get("receipt"))

    def _dispatch(self, frame: Frame) -> None:
        command = frame.command
        if command not in self._known_commands():
            raise StompProtocolError(
                "unknown command", f"{command[:40]!r} is not a STOMP command this side accepts"
            )
        if command not in _ACCEPTS[(self.role, self.state)]:
            raise StompProtocolError(
                "unexpected frame",
                f"a {command} frame is not allowed while the session is {self.state.name}",
            )
        version = self.version
        required = _REQUIRED[command].get(version)
        if required is None:
            raise StompProtocolError(
                "unknown command", f"{command} does not exist in STOMP {version}"
            )
        for name in required:
            if not frame.get(name):
                raise StompProtocolError(
                    f"missing {name} header",
                    f"a {command} frame requires a non-empty {name!r} header in STOMP {version}",
                )
        if frame.body and command not in _BODY_ALLOWED:
            raise StompProtocolError("unexpected body", f"a {command} frame must not have a body")
        getattr(self, "_on_" + command.lower())(frame)

    def _known_commands(self) -> frozenset[str]:
        raise NotImplementedError  # pragma: no cover

    def _queue(self, frame: Frame) -> None:
        self._out.append(encode(frame, self.version))
        self._sent_since_check = True

    def _start_heartbeats(self, send_ms: int, receive_ms: int) -> None:
        self.send_interval = send_ms / 1000
        self.receive_interval = receive_ms / 1000
        self._last_received = self._last_sent = self._last_check = self._now
        self._sent_since_check = False

    def _close(self, reason: str, error: StompError | None = None) -> None:
        self.state = State.CLOSED
        self._events.append(Close(reason, error))

    def _fail(self, error: StompError, receipt: str | None = None) -> None:
        self._close(error.message, error)


class ServerSession(StompSession):
    """The broker's end of one STOMP connection.

    Args:
        server: the CONNECTED ``server`` header (``name/version``), or ``None``.
        **kwargs: see :class:`StompSession`; ``heartbeat`` is ``(sx, sy)``.
    """

    role = Role.SERVER

    def __init__(self, *, server: str | None = "fullduplex", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.server = server
        #: The CONNECT ``host`` header: the virtual host the client asked for.
        self.host: str | None = None
        self.login: str | None = None
        self.session_id: str | None = None
        self._client_heartbeat = (0, 0)

    def accept(
        self, session_id: str, now: float, *, headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        """Accept the pending CONNECT: send CONNECTED and start heart-beating.

        Args:
            session_id: the CONNECTED ``session`` header (from a counter or a callable).
            now: the current time in seconds.
            headers: extra CONNECTED headers.

        Raises:
            InvalidState: no CONNECT is pending.
        """
        if self.state is not State.CONNECTING:
            raise InvalidState(f"no CONNECT to accept in state {self.state.name}")
        self._now = now
        self.session_id = session_id
        self._parser.version = self.version
        sx, sy = self.heartbeat
        connected = [("version", self.version), ("heart-beat", f"{sx},{sy}")]
        connected.append(("session", session_id))
        if self.server is not None:
            connected.append(("server", self.server))
        connected.extend(headers)
        self.state = State.CONNECTED
        self._queue(Frame("CONNECTED", connected))
        self._start_heartbeats(*negotiate_heartbeat(self.heartbeat, self._client_heartbeat))
        self._process()

    def reject(self, message: str, description: str = "") -> None:
        """Refuse the pending CONNECT (bad credentials...): send ERROR, then close.

        Raises:
            InvalidState: no CONNECT is pending.
        """
        if self.state is not State.CONNECTING:
            raise InvalidState(f"no CONNECT to reject in state {self.state.name}")
        self._fail(StompProtocolError(message, description, code="STOMP_CONNECT_REJECTED"))

    def send_receipt(self, receipt_id: str) -> None:
        """Answer a frame's ``receipt`` header once the frame has been processed.

        Allowed while connected and after DISCONNECT, ignored otherwise.
        """
        if self.state in (State.CONNECTED, State.DISCONNECTING):
            self._queue(Frame("RECEIPT", [("receipt-id", receipt_id)]))

    def send_error(self, error: StompError, receipt: str | None = None) -> None:
        """Send an ERROR frame for ``error`` and close, e.g. when the broker refuses a frame.

        Args:
            error: what went wrong; its ``message``, ``description`` and ``headers``
                make the frame.
            receipt: the offending frame's ``receipt`` header, echoed as ``receipt-id``.
        """
        if self.state is not State.CLOSED:
            self._fail(error, receipt)

    def deliver(self, data: bytes) -> None:
        """Queue an encoded frame (a MESSAGE from the broker engine) for sending.

        Dropped unless the session is connected.
        """
        if self.state is State.CONNECTED:
            self._out.append(data)
            self._sent_since_check = True

    def _known_commands(self) -> frozenset[str]:
        return _CLIENT_COMMANDS | _SERVER_COMMANDS

    def _process(self) -> None:
        super()._process()
        if self.state is State.CONNECTING and self._parser.buffered > self._parser.max_frame_size:
            # Frames wait in the parser until accept(); do not let that wait be a way
            # to make the server buffer without bound.
            self._fail(
                StompProtocolError(
                    "too much data before CONNECTED",
                    "the client sent more than max_frame_size bytes before being connected",
                )
            )

    def _fail(self, error: StompError, receipt: str | None = None) -> None:
        headers = [("message", _one_line(error.message)), ("content-type", "text/plain")]
        if receipt is not None:
            headers.append(("receipt-id", receipt))
        headers.extend(error.headers)
        self._queue(Frame("ERROR", headers, error.description.encode()))
        super()._fail(error, receipt)

    def _on_connect(self, frame: Frame) -> None:
        version = negotiate_version(frame.get("accept-version"), self.versions)
        if version is None:
            supported = ",".join(self.versions)
            raise StompProtocolError(
                "unsupported protocol version",
                f"Supported protocol versions are {' '.join(self.versions)}",
                headers=[("version", supported)],
                code="STOMP_VERSION",
            )
        self._client_heartbeat = parse_heartbeat(frame.get("heart-beat"))
        self.version = version
        self.host = frame.get("host")
        self.login = frame.get("login")
        self.state = State.CONNECTING
        self._events.append(
            ConnectRequest(
                version=version,
                host=self.host,
                login=self.login,
                passcode=frame.get("passcode"),
                heartbeat=self._client_heartbeat,
                headers=frame.headers,
            )
        )

    _on_stomp = _on_connect

    def _on_send(self, frame: Frame) -> None:
        self._events.append(
            Send(
                destination=frame.get("destination") or "",
                body=frame.body,
                headers=frame.headers,
                transaction=frame.get("transaction"),
                receipt=frame.get("receipt"),
            )
        )

    def _on_subscribe(self, frame: Frame) -> None:
        destination = frame.get("destination") or ""
        ack = frame.get("ack", "auto") or "auto"
        if ack not in _ACK_MODES[self.version]:
            raise StompProtocolError(
                "invalid ack mode",
                f"ack must be one of {sorted(_ACK_MODES[self.version])} in STOMP "
                f"{self.version}, got {ack[:40]!r}",
            )
        self._events.append(
            Subscribe(
                id=frame.get("id") or destination,
                destination=destination,
                ack=ack,
                headers=frame.headers,
                receipt=frame.get("receipt"),
            )
        )

    def _on_unsubscribe(self, frame: Frame) -> None:
        # 1.1 and 1.2 require id (checked by the table); 1.0 allows the destination.
        sub_id = frame.get("id") or frame.get("destination")
        if not sub_id:
            raise StompProtocolError(
                "missing id header", "an UNSUBSCRIBE frame requires an 'id' or 'destination'"
            )
        self._events.append(Unsubscribe(sub_id, frame.get("receipt")))

    def _ack_fields(self, frame: Frame) -> tuple[str, str | None]:
        if self.version == "1.2":
            return frame.get("id") or "", None
        return frame.get("message-id") or "", frame.get("subscription")

    def _on_ack(self, frame: Frame) -> None:
        ack_id, subscription = self._ack_fields(frame)
        tx, receipt = frame.get("transaction"), frame.get("receipt")
        self._events.append(Ack(ack_id, subscription, tx, receipt))

    def _on_nack(self, frame: Frame) -> None:
        ack_id, subscription = self._ack_fields(frame)
        tx, receipt = frame.get("transaction"), frame.get("receipt")
        self._events.append(Nack(ack_id, subscription, tx, receipt))

    def _on_begin(self, frame: Frame) -> None:
        self._events.append(Begin(frame.get("transaction") or "", frame.get("receipt")))

    def _on_commit(self, frame: Frame) -> None:
        self._events.append(Commit(frame.get("transaction") or "", frame.get("receipt")))

    def _on_abort(self, frame: Frame) -> None:
        self._events.append(Abort(frame.get("transaction") or "", frame.get("receipt")))

    def _on_disconnect(self, frame: Frame) -> None:
        self.state = State.DISCONNECTING
        self._events.append(Disconnect(frame.get("receipt")))


class ClientSession(StompSession):
    """The client's end of one STOMP connection.

    Args:
        host: the CONNECT ``host`` header (the virtual host; required by 1.2 servers).
        login: the ``login`` header, if any.
        passcode: the ``passcode`` header, if any.
        headers: extra CONNECT headers.
        command: ``"CONNECT"`` (understood by every server) or ``"STOMP"``.
        **kwargs: see :class:`StompSession`; ``heartbeat`` is ``(cx, cy)``.
    """

    role = Role.CLIENT

    def __init__(
        self,
        host: str | None = None,
        *,
        login: str | None = None,
        passcode: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        command: str = "CONNECT",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if command not in ("CONNECT", "STOMP"):
            raise ValueError("command must be CONNECT or STOMP")
        self.host = host
        self.login = login
        self.passcode = passcode
        self.connect_headers = list(headers)
        self.command = command
        #: The CONNECTED ``session`` and ``server`` headers, once connected.
        self.session_id: str | None = None
        self.server: str | None = None
        self._disconnect_receipt: str | None = None

    def connect(self, now: float) -> None:
        """Queue the CONNECT (or STOMP) frame.

        Raises:
            InvalidState: already connecting or connected.
        """
        if self.state is not State.DISCONNECTED:
            raise InvalidState(f"cannot connect in state {self.state.name}")
        self._now = now
        headers = [("accept-version", ",".join(self.versions))]
        if self.host is not None:
            headers.append(("host", self.host))
        if self.login is not None:
            headers.append(("login", self.login))
        if self.passcode is not None:
            headers.append(("passcode", self.passcode))
        cx, cy = self.heartbeat
        headers.append(("heart-beat", f"{cx},{cy}"))
        headers.extend(self.connect_headers)
        self.state = State.CONNECTING
        self._queue(Frame(self.command, headers))

    def send(
        self,
        destination: str,
        body: bytes = b"",
        *,
        headers: Iterable[tuple[str, str]] = (),
        content_type: str | None = None,
        transaction: str | None = None,
        receipt: str | None = None,
    ) -> None:
        """Queue a SEND frame."""
        extra = [] if content_type is None else [("content-type", content_type)]
        self._command_frame(
            "SEND",
            [("destination", destination), *extra, *headers],
            body=body,
            transaction=transaction,
            receipt=receipt,
        )

    def subscribe(
        self,
        destination: str,
        id: str,
        *,
        ack: str = "auto",
        headers: Iterable[tuple[str, str]] = (),
        receipt: str | None = None,
    ) -> None:
        """Queue a SUBSCRIBE frame; ``ack`` is auto, client or client-individual."""
        if ack not in _ACK_MODES[self.version]:
            raise ValueError(f"ack mode {ack!r} does not exist in STOMP {self.version}")
        self._command_frame(
            "SUBSCRIBE",
            [("destination", destination), ("id", id), ("ack", ack), *headers],
            receipt=receipt,
        )

    def unsubscribe(self, id: str, *, receipt: str | None = None) -> None:
        """Queue an UNSUBSCRIBE frame."""
        self._command_frame("UNSUBSCRIBE", [("id", id)], receipt=receipt)

    def ack(
        self, message: Message, *, transaction: str | None = None, receipt: str | None = None
    ) -> None:
        """Queue an ACK for ``message`` with the headers the negotiated version uses."""
        self._command_frame(
            "ACK", self._ack_headers(message), transaction=transaction, receipt=receipt
        )

    def nack(
        self, message: Message, *, transaction: str | None = None, receipt: str | None = None
    ) -> None:
        """Queue a NACK for ``message`` (STOMP 1.1 and 1.2 only)."""
        if self.version == "1.0":
            raise ValueError("NACK does not exist in STOMP 1.0")
        self._command_frame(
            "NACK", self._ack_headers(message), transaction=transaction, receipt=receipt
        )

    def begin(self, transaction: str, *, receipt: str | None = None) -> None:
        """Queue a BEGIN frame."""
        self._command_frame("BEGIN", [], transaction=transaction, receipt=receipt)

    def commit(self, transaction: str, *, receipt: str | None = None) -> None:
        """Queue a COMMIT frame."""
        self._command_frame("COMMIT", [], transaction=transaction, receipt=receipt)

    def abort(self, transaction: str, *, receipt: str | None = None) -> None:
        """Queue an ABORT frame."""
        self._command_frame("ABORT", [], transaction=transaction, receipt=receipt)

    def disconnect(self, *, receipt: str | None = None) -> None:
        """Queue DISCONNECT.

        With a ``receipt`` the session waits in DISCONNECTING for the RECEIPT, so that
        every earlier frame is known to be processed; without one it closes at once.
        """
        self._command_frame("DISCONNECT", [], receipt=receipt)
        if receipt is None:
            self._close("disconnected")
        else:
            self._disconnect_receipt = receipt
            self.state = State.DISCONNECTING

    def _command_frame(
        self,
        command: str,
        headers: list[tuple[str, str]],
        *,
        body: bytes = b"",
        transaction: str | None = None,
        receipt: str | None = None,
    ) -> None:
        if self.state is not State.CONNECTED:
            raise InvalidState(f"cannot send {command} in state {self.state.name}")
        if transaction is not None:
            headers.append(("transaction", transaction))
        if receipt is not None:
            headers.append(("receipt", receipt))
        self._queue(Frame(command, headers, body))

    def _ack_headers(self, message: Message) -> list[tuple[str, str]]:
        if self.version == "1.2":
            if message.ack is None:
                raise ValueError("the message has no ack header: its subscription is auto")
            return [("id", message.ack)]
        headers = [("message-id", message.message_id)]
        if message.subscription is not None:
            headers.append(("subscription", message.subscription))
        return headers

    def _known_commands(self) -> frozenset[str]:
        return _SERVER_COMMANDS

    def _on_connected(self, frame: Frame) -> None:
        version = frame.get("version") or "1.0"
        if version not in self.versions:
            raise StompProtocolError(
                "unsupported protocol version",
                f"the server chose STOMP {version[:20]!r}, not one of {self.versions}",
            )
        server_heartbeat = parse_heartbeat(frame.get("heart-beat"))
        self.version = self._parser.version = version
        self.session_id = frame.get("session")
        self.server = frame.get("server")
        self.state = State.CONNECTED
        self._start_heartbeats(*negotiate_heartbeat(self.heartbeat, server_heartbeat))
        self._events.append(
            Connected(version, self.server, self.session_id, server_heartbeat, frame.headers)
        )

    def _on_message(self, frame: Frame) -> None:
        self._events.append(
            Message(
                destination=frame.get("destination") or "",
                message_id=frame.get("message-id") or "",
                subscription=frame.get("subscription"),
                ack=frame.get("ack"),
                body=frame.body,
                headers=frame.headers,
            )
        )

    def _on_receipt(self, frame: Frame) -> None:
        receipt_id = frame.get("receipt-id") or ""
        self._events.append(Receipt(receipt_id))
        if self.state is State.DISCONNECTING and receipt_id == self._disconnect_receipt:
            self._close("disconnected")

    def _on_error(self, frame: Frame) -> None:
        message = frame.get("message") or ""
        self._events.append(Error(message, frame.body, frame.headers, frame.get("receipt-id")))
        # Spec: the server closes the connection right after an ERROR frame.
        self._close(f"server error: {message}")
