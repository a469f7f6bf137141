"""Events the sans-I/O connection hands to the layer above."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CloseReceived", "Event", "Message", "Ping", "Pong"]


@dataclass(frozen=True, slots=True)
class Message:
    """A complete message: ``str`` for a text message, ``bytes`` for binary."""

    data: str | bytes

    @property
    def is_text(self) -> bool:
        return isinstance(self.data, str)


@dataclass(frozen=True, slots=True)
class Ping:
    """The peer sent a ping; the connection has already queued the pong."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Pong:
    """The peer sent a pong (an answer to our ping, or unsolicited)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class CloseReceived:
    """The peer sent a valid close frame (1005 when it carried no code)."""

    code: int
    reason: str


Event = Message | Ping | Pong | CloseReceived
