"""fullduplex: a WebSocket toolkit for Python."""

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

__version__ = "0.1.0"
