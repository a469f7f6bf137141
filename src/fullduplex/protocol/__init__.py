"""The sans-I/O WebSocket protocol: no sockets, clocks or event loops."""

from .connection import Connection, Side, State
from .events import CloseReceived, Event, Message, Ping, Pong
from .frames import CloseCode, Opcode

__all__ = [
    "CloseCode",
    "CloseReceived",
    "Connection",
    "Event",
    "Message",
    "Opcode",
    "Ping",
    "Pong",
    "Side",
    "State",
]
