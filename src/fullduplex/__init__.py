"""fullduplex: a WebSocket toolkit for Python."""

from .browser import Blob, CloseEvent, DOMException, Event, MessageEvent, WebSocket
from .client import connect, connect_callbacks
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
from .server import Server, broadcast, serve, serve_callbacks

__all__ = [
    "Blob",
    "CloseCode",
    "CloseEvent",
    "Connection",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "DOMException",
    "Event",
    "FullDuplexError",
    "HandshakeError",
    "InvalidRequest",
    "InvalidResponse",
    "InvalidState",
    "InvalidStatus",
    "InvalidURI",
    "InvalidUTF8",
    "MessageEvent",
    "MessageTooBig",
    "Opcode",
    "PolicyViolation",
    "ProtocolError",
    "Server",
    "State",
    "UnsupportedData",
    "WebSocket",
    "broadcast",
    "connect",
    "connect_callbacks",
    "serve",
    "serve_callbacks",
]

__version__ = "0.1.0"
