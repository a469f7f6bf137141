"""fullduplex: a WebSocket toolkit for Python."""

from .client import connect
from .connection import Connection
from .errors import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    FullDuplexError,
    HandshakeError,
    InvalidRequest,
    InvalidResponse,
    InvalidState,
    InvalidStatus,
    InvalidURI,
    InvalidUTF8,
    MessageTooBig,
    PolicyViolation,
    ProtocolError,
    UnsupportedData,
)
from .protocol import CloseCode, Opcode, State
from .server import Server, broadcast, serve

__all__ = [
    "CloseCode",
    "Connection",
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
    "Opcode",
    "PolicyViolation",
    "ProtocolError",
    "Server",
    "State",
    "UnsupportedData",
    "broadcast",
    "connect",
    "serve",
]

__version__ = "0.1.0"
