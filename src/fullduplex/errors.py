"""The one exception tree of fullduplex.

Every layer may import this leaf module; it imports nothing from the package.

::

    FullDuplexError
    ├── ProtocolError                 the peer broke RFC 6455 (close 1002)
    │   ├── InvalidUTF8               text or close reason not UTF-8 (1007)
    │   ├── MessageTooBig             over max_size (1009)
    │   ├── PolicyViolation           a configured limit or policy (1008)
    │   └── UnsupportedData           a message type we refuse (1003)
    ├── HandshakeError                the opening handshake failed
    │   ├── InvalidRequest            a server refuses a request (carries the HTTP status)
    │   ├── InvalidResponse           a client refuses the server's response
    │   │   └── InvalidStatus         the server did not answer 101
    │   └── InvalidURI                not a usable ws:// or wss:// URL
    ├── ConnectionClosed              the connection is closed (normal or not)
    │   ├── ConnectionClosedOK        closed with 1000 or 1001 after a clean handshake
    │   └── ConnectionClosedError     anything else
    └── InvalidState                  local misuse: an operation the current state forbids

Errors caused by the peer carry the close code (``close_code``) or the HTTP status
(``status``) they lead to, and a stable machine-readable ``code`` string.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "FullDuplexError",
    "HandshakeError",
    "InvalidRequest",
    "InvalidResponse",
    "InvalidState",
    "InvalidStatus",
    "InvalidURI",
    "InvalidUTF8",
    "MessageTooBig",
    "PolicyViolation",
    "ProtocolError",
    "UnsupportedData",
]


class FullDuplexError(Exception):
    """Base class of every exception fullduplex raises on purpose."""


class ProtocolError(FullDuplexError):
    """The peer violated the protocol; the connection fails with ``close_code``.

    Args:
        reason: a human-readable explanation, also used as the close reason.
        code: a stable machine-readable identifier such as ``"WS_RSV_SET"``.
    """

    close_code: ClassVar[int] = 1002
    default_code: ClassVar[str] = "WS_PROTOCOL_ERROR"

    def __init__(self, reason: str, code: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code or self.default_code


class InvalidUTF8(ProtocolError):
    """A text message or a close reason is not valid UTF-8."""

    close_code = 1007
    default_code = "WS_INVALID_UTF8"


class MessageTooBig(ProtocolError):
    """A message is larger than the configured ``max_size``."""

    close_code = 1009
    default_code = "WS_MESSAGE_TOO_BIG"


class PolicyViolation(ProtocolError):
    """The peer exceeded a configured limit (fragments, queue, unsent data)."""

    close_code = 1008
    default_code = "WS_POLICY_VIOLATION"


class UnsupportedData(ProtocolError):
    """The peer sent a kind of message the endpoint does not accept."""

    close_code = 1003
    default_code = "WS_UNSUPPORTED_DATA"


class HandshakeError(FullDuplexError):
    """The opening handshake failed."""


class InvalidRequest(HandshakeError):
    """A server refuses an upgrade request; ``status`` is the HTTP answer.

    Args:
        message: what is wrong, sent as the response body.
        status: the HTTP status code to answer with (400, 403, 404, 426, 431, ...).
        headers: extra response headers, e.g. ``[("Sec-WebSocket-Version", "13")]``.
    """

    def __init__(
        self,
        message: str,
        status: int = 400,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.headers = headers or []


class InvalidResponse(HandshakeError):
    """A client refuses the server's handshake response."""


class InvalidStatus(InvalidResponse):
    """The server answered the upgrade request with a status other than 101.

    ``response`` is the parsed response (status, headers, body).
    """

    def __init__(self, response: object, status: int) -> None:
        super().__init__(f"server rejected WebSocket connection: HTTP {status}")
        self.response = response
        self.status = status


class InvalidURI(HandshakeError):
    """A URL is not a valid ``ws://`` or ``wss://`` URL."""


class ConnectionClosed(FullDuplexError):
    """Raised when using a connection that is closed.

    Attributes:
        code: the close code received from the peer, 1005 if the close frame had
            none, or 1006 if the connection dropped without a close frame.
        reason: the close reason received from the peer ("" if none).
        was_clean: whether the closing handshake completed (both close frames
            exchanged, then TCP closed).
        sent_code: the close code this side sent, or ``None``.
    """

    def __init__(
        self,
        code: int,
        reason: str = "",
        *,
        was_clean: bool = False,
        sent_code: int | None = None,
        sent_reason: str = "",
    ) -> None:
        self.code = code
        self.reason = reason
        self.was_clean = was_clean
        self.sent_code = sent_code
        self.sent_reason = sent_reason
        super().__init__(str(self))

    def __str__(self) -> str:
        detail = f"code {self.code}" + (f" ({self.reason})" if self.reason else "")
        return f"connection closed: {detail}" + ("" if self.was_clean else ", not clean")


class ConnectionClosedOK(ConnectionClosed):
    """The connection closed cleanly with 1000 (normal) or 1001 (going away)."""


class ConnectionClosedError(ConnectionClosed):
    """The connection closed with an error code or without a closing handshake."""


class InvalidState(FullDuplexError):
    """An operation is not allowed in the connection's current state."""


def closed_error(
    code: int,
    reason: str = "",
    *,
    was_clean: bool = False,
    sent_code: int | None = None,
    sent_reason: str = "",
) -> ConnectionClosed:
    """Return the right :class:`ConnectionClosed` subclass for a finished connection."""
    ok = was_clean and code in (1000, 1001) and (sent_code is None or sent_code in (1000, 1001))
    cls = ConnectionClosedOK if ok else ConnectionClosedError
    return cls(code, reason, was_clean=was_clean, sent_code=sent_code, sent_reason=sent_reason)
